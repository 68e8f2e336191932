"""DLRM (Naumov et al. 2019) as a non-sequence CTR baseline.

A bottom MLP maps the dense features to one D-wide vector (skipped when there are none),
the sparse and mean-pooled history fields are embedded (D wide), the dot interaction takes
every pairwise dot product <x_i, x_j> (i < j) of those vectors, and the top MLP sees
[bottom output (or nothing), the dot products] -> logit (sec. 2-3, "dot" interaction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.layers.mlp import MLP
from seqrec.models.ctr_base import (
    ClassifierOutput,
    CTRConfig,
    ctr_inputs,
    dense_input,
    field_embeddings,
)
from seqrec.schema import Schema


@dataclass(frozen=True)
class DLRMConfig(CTRConfig):
    mlp_act: str = "relu"
    bottom_hidden: tuple[int, ...] = (64,)


def dot_interaction(x: torch.Tensor) -> torch.Tensor:
    """(B, F, D) -> (B, F (F - 1) / 2): the upper triangle of x xᵀ."""
    F_ = x.shape[1]
    z = torch.bmm(x, x.transpose(1, 2))  # (B, F, F)
    iu = torch.triu_indices(F_, F_, offset=1)
    return z[:, iu[0], iu[1]]


class DLRM(nn.Module):
    def __init__(self, config: DLRMConfig, schema: Schema) -> None:
        super().__init__()
        self.config = config
        self.inp = ctr_inputs(config, schema)
        D = config.embedding_dim
        dd = self.inp.schema.dense_dim()
        self.bottom = MLP(dd, config.bottom_hidden, "relu", out_dim=D) if dd else None
        n = len(self.inp.f.targets) + len(self.inp.f.others) + len(self.inp.f.history) + (1 if dd else 0)
        self.top = MLP(n * (n - 1) // 2 + (D if dd else 0), config.mlp_hidden, config.mlp_act,
                       config.dropout, out_dim=1)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> ClassifierOutput:
        e = field_embeddings(self.inp, batch)  # (B, F, D)
        parts = []
        d = dense_input(self.inp, batch)
        if self.bottom is not None and d is not None:
            b = self.bottom(d)  # (B, D)
            e = torch.cat([b.unsqueeze(1), e], 1)
            parts.append(b)
        parts.append(dot_interaction(e))
        return ClassifierOutput(self.top(torch.cat(parts, 1)).squeeze(-1))
