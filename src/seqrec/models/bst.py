"""BST: Behavior Sequence Transformer (Chen et al. DLP-KDD 2019, Alibaba).

Implements: the sequence [behaviour_1 .. behaviour_T, candidate] of item + category
embeddings, plus a position embedding from the time interval pos(v_i) = t(candidate) -
t(v_i) (sec. 3.2.1), bucketised on a log scale (bucket = floor(log2(1 + gap in minutes)),
capped) where timestamps exist (``hist_time`` / ``time`` columns) and the number of steps
back otherwise (Amazon has no times); one transformer layer (multi-head self-attention,
feed-forward, residual + layer norm; sec. 3.2.2); then [user / context fields,
transformer outputs] into an MLP (the paper: 1024-512-256, LeakyReLU).
Deviation: instead of flattening all T + 1 outputs (the paper's sequences have a fixed
length of 20), the candidate's output and the mean of the real behaviours' outputs are
used, so padding never changes the score; the MLP default is 200-80 like the others.
Deviation: no layer norm after the residuals by default (``layer_norm = true`` restores
it): on the Taobao task valid AUC after 400 steps of batch 256 is 0.778 without and 0.719
with it. Position embeddings start at the item tables' scale (N(0, 0.01)); at N(0, 1) they
buried the behaviour embeddings and BST did not learn (valid AUC 0.50).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.errors import SchemaError
from seqrec.layers.embedding import make_table
from seqrec.layers.mlp import MLP
from seqrec.layers.transformer import SelfAttentionBlock
from seqrec.models.ctr_base import ClassifierOutput, CTRConfig, ItemBias, add_item_bias, ctr_inputs
from seqrec.schema import Schema


@dataclass(frozen=True)
class BSTConfig(CTRConfig):
    heads: int = 2
    layers: int = 1
    position_buckets: int = 64
    mlp_act: str = "relu"
    layer_norm: bool = False


class BST(nn.Module):
    def __init__(self, config: BSTConfig, schema: Schema) -> None:
        super().__init__()
        self.config = config
        self.inp = ctr_inputs(config, schema)
        self.item_bias = ItemBias(self.inp) if config.item_bias else None
        d = self.inp.key_dim
        if d % config.heads:
            raise SchemaError(f"BST: behaviour width {d} must be divisible by heads={config.heads}")
        self.pos = make_table(config.position_buckets, d)
        nn.init.normal_(self.pos.weight, std=1e-2)  # the item tables' scale: N(0, 1) rows bury them
        self.encoder = SelfAttentionBlock(d, config.heads, dropout=config.dropout, layers=config.layers,
                                          layer_norm=config.layer_norm)
        self.mlp = MLP(2 * d + self.inp.other_dim, config.mlp_hidden, config.mlp_act,
                       config.dropout, out_dim=1)

    def positions(self, batch, mask: torch.Tensor) -> torch.Tensor:
        """Position bucket of each behaviour (B, T) and of the candidate (bucket 0)."""
        nb = self.config.position_buckets
        if "hist_time" in batch and "time" in batch:
            gap = (batch["time"].unsqueeze(1) - batch["hist_time"]).clamp(min=0) / 60.0
            b = torch.floor(torch.log2(1.0 + gap)).long() + 1
        else:
            n = mask.sum(1, keepdim=True)
            b = n - torch.arange(mask.shape[1]).unsqueeze(0)  # steps back from the candidate
        return torch.where(mask, b.clamp(1, nb - 1), 0)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> ClassifierOutput:
        q = self.inp.query(batch)  # (B, D)
        k, mask = self.inp.keys(batch)  # (B, T, D)
        seq = torch.cat([k, q.unsqueeze(1)], 1)  # (B, T + 1, D)
        full = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
        pos = torch.cat([self.positions(batch, mask), mask.new_zeros(mask.shape[0], 1, dtype=torch.long)], 1)
        y = self.encoder(seq + self.pos(pos), full)  # (B, T + 1, D)
        n = mask.sum(1, keepdim=True).clamp(min=1)
        hist = (y[:, :-1] * mask.unsqueeze(-1)).sum(1) / n
        x = torch.cat([y[:, -1], hist, self.inp.other(batch)], 1)
        return ClassifierOutput(add_item_bias(self, self.mlp(x).squeeze(-1), batch))
