"""DIN: Deep Interest Network (Zhou et al. KDD 2018).

Implements: embedding of the candidate ad e_a and of each user behaviour e_t (goods and
category ids concatenated, shared tables); the local activation unit (eq. 3)
v_U(A) = Σ_t a(e_t, e_a) e_t with a(.) = MLP([e_t, e_a, e_t - e_a, e_t ⊙ e_a]) and **no
softmax** (sec. 4.1; optional); the concatenation [user / context fields, e_a, v_U] into an
MLP 200-80-1 (PReLU / Dice, eq. 8, sec. 4.3); the mini-batch aware regulariser (eq. 4) via
``mba_reg``. The attention MLP is 80-40 with Dice, as in the authors' code (the paper
draws PReLU/Dice); with history-only fields (behaviour type) the candidate is zero-padded
at those fields (see :mod:`seqrec.models.ctr_inputs`).

Two registered variants share this class:

* ``din-paper`` (:class:`DINPaperConfig`): the architecture and recipe of DeepCTR-Torch
  0.3.0's DIN, the peer of ``benchmarks/ctr.py``: MLP with one shared PReLU slope per
  layer, embeddings and hidden weights ~ N(0, 1e-4), dense Adam on every parameter, no
  logit bias and no extra MLP inputs.
* ``din`` (:class:`DINConfig`): the same model plus the extras chosen on the validation
  split (``configs/din_*.toml`` record the figures). Candidates, all from the authors'
  released code or our earlier recipe: a per-item logit bias (``item_bias``), the
  sum-pooled history and its product with the candidate in the MLP input
  (``sum_product``; DIEN repository, ``item_his_eb_sum``), Dice in the MLP, embeddings
  ~ N(0, 1e-2) with torch's default init elsewhere, lazy (sparse) Adam on the tables.

  :class:`DINConfig`'s defaults (for a config that does not set them) keep the extras
  whose removal lowered validation AUC on most datasets measured (``ctr_extras.py``,
  Beauty / Sports / Taobao): the sum-pooled input and the N(0, 1e-2) init (all three);
  the logit bias, Dice in the MLP and lazy Adam helped on Beauty only and are off. The
  attention unit keeps Dice (as the peer's DIN does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.layers.attention import ActivationUnit
from seqrec.layers.mlp import MLP
from seqrec.models.ctr_base import (
    ClassifierOutput,
    CTRConfig,
    ItemBias,
    add_item_bias,
    ctr_inputs,
    normal_weights_,
    sum_product,
)
from seqrec.schema import Schema


@dataclass(frozen=True)
class DINConfig(CTRConfig):
    mlp_act: str = "prelu_shared"
    item_bias: bool = False
    sparse_grad: bool = False
    att_hidden: tuple[int, ...] = (80, 40)
    att_act: str = "dice"
    att_softmax: bool = False


@dataclass(frozen=True)
class DINPaperConfig(DINConfig):
    """DeepCTR-Torch's DIN recipe (see the module docstring)."""

    mlp_act: str = "prelu_shared"
    item_bias: bool = False
    sum_product: bool = False
    sparse_grad: bool = False
    init_std: float = 1e-4
    dense_init_std: float = 1e-4


class DIN(nn.Module):
    def __init__(self, config: DINConfig, schema: Schema) -> None:
        super().__init__()
        self.config = config
        self.inp = ctr_inputs(config, schema)
        self.item_bias = ItemBias(self.inp) if config.item_bias else None
        d = self.inp.key_dim
        self.att = ActivationUnit(d, config.att_hidden, config.att_act, config.att_softmax)
        extra = 2 * d if config.sum_product else 0
        self.mlp = MLP(2 * d + extra + self.inp.other_dim, config.mlp_hidden, config.mlp_act,
                       config.dropout, out_dim=1)
        normal_weights_(config.dense_init_std, *self.mlp.linears(output=False),
                        *self.att.mlp.linears(output=False))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> ClassifierOutput:
        q = self.inp.query(batch)  # (B, D)
        k, mask = self.inp.keys(batch)  # (B, T, D), (B, T)
        v = self.att(q, k, mask)  # (B, D)
        parts = [q, v, self.inp.other(batch)]
        if self.config.sum_product:
            parts.append(sum_product(q, k, mask))
        x = torch.cat(parts, 1)
        return ClassifierOutput(add_item_bias(self, self.mlp(x).squeeze(-1), batch))
