"""DeepFM (Guo et al. IJCAI 2017) as a non-sequence CTR baseline.

logit = first order (one weight per id, as Wide&Deep's wide part) + FM second order over the
field embeddings v_f (eq. 2: Σ_{i<j} <v_i, v_j> = ½ [(Σ v)² - Σ v²] summed over the
embedding dimension) + a DNN over the same embeddings (shared, sec. 2). Fields: the sparse
features and the mean-pooled history fields.
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
    normal_weights_,
)
from seqrec.models.wide_deep import FirstOrder
from seqrec.schema import Schema


@dataclass(frozen=True)
class DeepFMConfig(CTRConfig):
    mlp_act: str = "relu"


@dataclass(frozen=True)
class DeepFMPaperConfig(DeepFMConfig):
    """``deepfm-paper``: the same model with DeepCTR-Torch's recipe (embeddings and hidden
    weights ~ N(0, 1e-4), dense Adam), the like-for-like row of ``benchmarks/ctr.py``."""

    sparse_grad: bool = False
    init_std: float = 1e-4
    dense_init_std: float = 1e-4


def fm_second_order(e: torch.Tensor) -> torch.Tensor:
    """(B, F, D) -> (B,): Σ_{i<j} <e_i, e_j>."""
    s = e.sum(1)
    return 0.5 * (s * s - (e * e).sum(1)).sum(1)


class DeepFM(nn.Module):
    def __init__(self, config: DeepFMConfig, schema: Schema) -> None:
        super().__init__()
        self.config = config
        self.inp = ctr_inputs(config, schema)
        n_fields = len(self.inp.f.targets) + len(self.inp.f.others) + len(self.inp.f.history)
        self.first = FirstOrder(self.inp)
        self.deep = MLP(n_fields * config.embedding_dim + self.inp.schema.dense_dim(),
                        config.mlp_hidden, config.mlp_act, config.dropout, out_dim=1)
        normal_weights_(config.dense_init_std, *self.deep.linears(output=False))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> ClassifierOutput:
        e = field_embeddings(self.inp, batch)  # (B, F, D)
        parts = [e.flatten(1)]
        d = dense_input(self.inp, batch)
        if d is not None:
            parts.append(d)
        logit = self.first(batch) + fm_second_order(e) + self.deep(torch.cat(parts, 1)).squeeze(-1)
        return ClassifierOutput(logit)
