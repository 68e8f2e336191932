"""Sum-pooled-history MLP: the "Base Model" DIN is compared against (Zhou et al. 2018, sec. 4).

Embedding & MLP: the behaviour embeddings are sum-pooled (padding contributes zero), then
[user / context fields, candidate, pooled history] go through an MLP 200-80-1 (PReLU).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.layers.mlp import MLP
from seqrec.models.ctr_base import ClassifierOutput, CTRConfig, ItemBias, add_item_bias, ctr_inputs
from seqrec.schema import Schema


@dataclass(frozen=True)
class MLPSumConfig(CTRConfig):
    pass


class MLPSum(nn.Module):
    def __init__(self, config: MLPSumConfig, schema: Schema) -> None:
        super().__init__()
        self.config = config
        self.inp = ctr_inputs(config, schema)
        self.item_bias = ItemBias(self.inp) if config.item_bias else None
        d = self.inp.key_dim
        self.mlp = MLP(2 * d + self.inp.other_dim, config.mlp_hidden, config.mlp_act,
                       config.dropout, out_dim=1)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> ClassifierOutput:
        k, mask = self.inp.keys(batch)
        pooled = (k * mask.unsqueeze(-1)).sum(1)  # (B, D)
        x = torch.cat([self.inp.query(batch), pooled, self.inp.other(batch)], 1)
        return ClassifierOutput(add_item_bias(self, self.mlp(x).squeeze(-1), batch))
