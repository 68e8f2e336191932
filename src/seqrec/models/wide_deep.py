"""Wide & Deep (Cheng et al. DLRS 2016) as a non-sequence CTR baseline.

wide: a linear model over the sparse ids (a 1-wide embedding per id = one-hot weights)
plus the mean of the history ids' weights; deep: an MLP over the field embeddings (sparse
fields and mean-pooled history fields, :func:`~seqrec.models.ctr_base.field_embeddings`)
and dense features; logit = wide + deep (jointly trained, eq. 3). Deviation: no
hand-crafted cross-product features (none are defined for these datasets).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.layers.embedding import make_table
from seqrec.layers.mlp import MLP
from seqrec.models.ctr_base import (
    ClassifierOutput,
    CTRConfig,
    ctr_inputs,
    dense_input,
    field_embeddings,
    normal_weights_,
)
from seqrec.models.ctr_inputs import CTRInputs
from seqrec.schema import Schema


@dataclass(frozen=True)
class WideDeepConfig(CTRConfig):
    mlp_act: str = "relu"


@dataclass(frozen=True)
class WideDeepPaperConfig(WideDeepConfig):
    """``wide_deep-paper``: the same model with DeepCTR-Torch's recipe (embeddings and hidden
    weights ~ N(0, 1e-4), dense Adam), the like-for-like row of ``benchmarks/ctr.py``."""

    sparse_grad: bool = False
    init_std: float = 1e-4
    dense_init_std: float = 1e-4


class FirstOrder(nn.Module):
    """Σ of one weight per sparse id (+ history means) + a dense linear term + bias."""

    def __init__(self, inp: CTRInputs) -> None:
        super().__init__()
        self.inp = inp
        self.w = nn.ModuleDict({t.name: make_table(t.rows, 1, padding_idx=0, sparse=inp.emb.sparse)
                                for t in inp.schema.tables})
        for e in self.w.values():
            nn.init.zeros_(e.weight)
        dd = inp.schema.dense_dim()
        self.dense = nn.Linear(dd, 1) if dd else None
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, batch) -> torch.Tensor:
        f, tab = self.inp.f, self.inp.emb._table_of
        out = self.bias.expand(batch[f.targets[0]].shape[0]).clone()
        for n in (*f.targets, *f.others):
            out = out + self.w[tab[n]](batch[n]).squeeze(-1)
        mask = batch[self.inp.first_hist] != 0
        n_real = mask.sum(1).clamp(min=1)
        for h in f.history:
            out = out + self.w[tab[h]](batch[h]).squeeze(-1).sum(1) / n_real
        d = dense_input(self.inp, batch)
        if self.dense is not None and d is not None:
            out = out + self.dense(d).squeeze(-1)
        return out


class WideDeep(nn.Module):
    def __init__(self, config: WideDeepConfig, schema: Schema) -> None:
        super().__init__()
        self.config = config
        self.inp = ctr_inputs(config, schema)
        n_fields = len(self.inp.f.targets) + len(self.inp.f.others) + len(self.inp.f.history)
        self.wide = FirstOrder(self.inp)
        self.deep = MLP(n_fields * config.embedding_dim + self.inp.schema.dense_dim(),
                        config.mlp_hidden, config.mlp_act, config.dropout, out_dim=1)
        normal_weights_(config.dense_init_std, *self.deep.linears(output=False))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> ClassifierOutput:
        e = field_embeddings(self.inp, batch)  # (B, F, D)
        parts = [e.flatten(1)]
        d = dense_input(self.inp, batch)
        if d is not None:
            parts.append(d)
        return ClassifierOutput(self.wide(batch) + self.deep(torch.cat(parts, 1)).squeeze(-1))
