"""DIEN: Deep Interest Evolution Network (Zhou et al. AAAI 2019).

Implements:
  * interest extractor (sec. 4.2): a GRU over the behaviour embeddings (padded steps
    skipped), h_t its hidden states;
  * auxiliary loss (eq. 3): L_aux = -1/N Σ_i Σ_t [log σ(h_t, e_{t+1}) + log(1 - σ(h_t, ê_{t+1}))]
    with e_{t+1} the clicked next behaviour and ê_{t+1} a sampled non-clicked one
    (``neg_<history feature>`` columns; fields without one reuse the positive's value, e.g.
    the behaviour type), σ(·,·) an MLP 100-50-1 on [h_t, e] with sigmoid output; only pairs
    where step t+1 is a real behaviour count (padding masked), averaged over those pairs;
  * interest evolving layer (sec. 4.3): attention a_t over the real steps, then AUGRU
    (eq. 7-8; AGRU / AIGRU as options) whose final state h'_T joins
    [user / context fields, e_a, h'_T] in the final MLP 200-80-1.
    ``attention = "bilinear"`` is the paper's eq. 6, a_t = softmax_t(h_t W e_a);
    ``attention = "mlp"`` is DIN's activation unit on [h_t, e_a, h_t - e_a, h_t ⊙ e_a]
    followed by a softmax over the real steps (what DeepCTR-Torch's DIEN does).
The trainer adds ``aux_weight · L_aux`` to the click loss (the paper's α).

Two registered variants share this class:

* ``dien-paper`` (:class:`DIENPaperConfig`): the architecture and recipe of DeepCTR-Torch
  0.3.0's DIEN (the peer of ``benchmarks/ctr.py``): MLP attention with ReLU and softmax,
  one shared PReLU slope per MLP layer, embeddings and every weight matrix but the
  attention's output ~ N(0, 1e-4), AUGRU biases zero, dense Adam, no logit bias, no extra
  MLP inputs.
* ``dien`` (:class:`DIENConfig`): the same model plus the extras chosen on the validation
  split (``configs/dien_*.toml`` record the figures): bilinear attention (eq. 6), a
  per-item logit bias, [Σ e_t, e_a ⊙ Σ e_t] in the final MLP input (authors' released
  code), Dice in the MLP, embeddings ~ N(0, 1e-2) with torch's init elsewhere, lazy Adam.

  :class:`DIENConfig`'s defaults (for a config that does not set them) keep the extras
  whose removal lowered validation AUC on both Amazon datasets (``ctr_extras.py``): the
  sum-pooled input and the N(0, 1e-2) init. The logit bias and lazy Adam helped on
  neither, Dice and the bilinear attention on Beauty only; they are off, so the default
  attention is the MLP form (set ``attention = "bilinear"`` for eq. 6).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.errors import SchemaError
from seqrec.layers.attention import ActivationUnit
from seqrec.layers.augru import MODES, AttentionGRU, SequenceGRU
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
class DIENConfig(CTRConfig):
    gru_hidden: int = 0  # 0 = the behaviour vector's width
    evolution: str = "augru"  # augru | agru | aigru
    aux_weight: float = 1.0  # 0 = no auxiliary loss
    aux_hidden: tuple[int, ...] = (100, 50)
    attention: str = "mlp"  # mlp (DIN's activation unit + softmax) | bilinear (eq. 6)
    att_hidden: tuple[int, ...] = (80, 40)  # attention = "mlp" only
    att_act: str = "relu"  # attention = "mlp" only
    mlp_act: str = "prelu_shared"
    item_bias: bool = False
    sparse_grad: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.evolution not in MODES:
            raise ValueError(f"evolution must be one of {MODES}, got {self.evolution!r}")
        if self.attention not in ("bilinear", "mlp"):
            raise ValueError(f"attention must be bilinear or mlp, got {self.attention!r}")


@dataclass(frozen=True)
class DIENPaperConfig(DIENConfig):
    """DeepCTR-Torch's DIEN recipe (see the module docstring)."""

    attention: str = "mlp"
    mlp_act: str = "prelu_shared"
    item_bias: bool = False
    sum_product: bool = False
    sparse_grad: bool = False
    init_std: float = 1e-4
    dense_init_std: float = 1e-4


class DIEN(nn.Module):
    def __init__(self, config: DIENConfig, schema: Schema) -> None:
        super().__init__()
        self.config = config
        self.inp = ctr_inputs(config, schema)
        self.item_bias = ItemBias(self.inp) if config.item_bias else None
        d = self.inp.key_dim
        H = config.gru_hidden or d
        self.extractor = SequenceGRU(d, H)
        if config.attention == "mlp":
            if d != H:
                raise ValueError(f"attention = 'mlp' needs gru_hidden equal to the behaviour width {d}")
            self.att = ActivationUnit(d, config.att_hidden, config.att_act, softmax=True)
        else:
            self.att_w = nn.Linear(d, H, bias=False)  # h_t W e_a
        self.evolve = AttentionGRU(H, H, config.evolution)
        self.aux = MLP(H + d, config.aux_hidden, "sigmoid", out_dim=1) if config.aux_weight > 0 else None
        extra = 2 * d if config.sum_product else 0
        self.mlp = MLP(d + H + extra + self.inp.other_dim, config.mlp_hidden, config.mlp_act,
                       config.dropout, out_dim=1)
        if config.dense_init_std > 0:
            normal_weights_(config.dense_init_std, self.extractor, self.evolve, *self.mlp.linears(),
                            *(self.aux.linears() if self.aux is not None else ()),
                            *(self.att.mlp.linears(output=False) if config.attention == "mlp" else ()))
            with torch.no_grad():
                self.evolve.ih.bias.zero_()
                self.evolve.hh.bias.zero_()

    def _negatives(self, batch) -> torch.Tensor:
        """Embeddings of the sampled non-clicked behaviours (B, T, D)."""
        emb, f = self.inp.emb, self.inp.f
        if "neg_" + f.history[0] not in batch:
            raise SchemaError(f"DIEN's auxiliary loss needs a 'neg_{f.history[0]}' column "
                              "(sampled non-clicked behaviours); set aux_weight = 0 to train without")
        parts = []
        for h in f.history:
            table = emb.tables[emb._table_of[h]]
            parts.append(table(batch.get("neg_" + h, batch[h])))
        return torch.cat(parts, -1)

    def _aux_loss(self, h: torch.Tensor, k: torch.Tensor, neg: torch.Tensor, mask: torch.Tensor):
        valid = (mask[:, 1:] & mask[:, :-1]).reshape(-1)  # step t+1 is real
        ht = h[:, :-1].reshape(-1, h.shape[-1])[valid]
        pos = self.aux(torch.cat([ht, k[:, 1:].reshape(-1, k.shape[-1])[valid]], 1)).squeeze(-1)
        ngt = self.aux(torch.cat([ht, neg[:, 1:].reshape(-1, k.shape[-1])[valid]], 1)).squeeze(-1)
        if ht.shape[0] == 0:
            return h.sum() * 0.0
        return F.binary_cross_entropy_with_logits(
            torch.cat([pos, ngt]), torch.cat([torch.ones_like(pos), torch.zeros_like(ngt)]))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> ClassifierOutput:
        q = self.inp.query(batch)  # (B, D)
        k, mask = self.inp.keys(batch)  # (B, T, D), (B, T)
        h = self.extractor(k, mask)  # (B, T, H), zero at padding
        if self.config.attention == "mlp":
            a = self.att.weights(q, h, mask)  # (B, T), softmax over the real steps
        else:
            scores = torch.bmm(h, self.att_w(q).unsqueeze(-1)).squeeze(-1)  # (B, T)
            a = torch.softmax(scores.masked_fill(~mask, -torch.inf), 1).nan_to_num(0.0)
        final = self.evolve(h, a, mask)  # (B, H)
        parts = [q, final, self.inp.other(batch)]
        if self.config.sum_product:
            parts.append(sum_product(q, k, mask))
        logits = self.mlp(torch.cat(parts, 1)).squeeze(-1)
        aux = None
        if self.aux is not None and self.training:
            aux = self._aux_loss(h, k, self._negatives(batch), mask)
        return ClassifierOutput(add_item_bias(self, logits, batch), aux)
