"""Event sequences for purchase prediction: event vectors, masked pooling, the RNN's final state.

A user's history is a left-aligned padded sequence of events (oldest first, id 0 = padding).
The event vector concatenates the embeddings of every id feature of the group with the
event's numbers (``seqdense`` features), and is exactly zero at padded positions:

    x_t = [E_1[id_1,t] ; ... ; E_k[id_k,t] ; v_t] * m_t,   m_t = 1 if position t is real

The helpers below keep padding out of every later step (pooling, recurrence), so appending
extra padding never changes a model's output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.errors import SchemaError
from seqrec.layers.embedding import FeatureEmbedding
from seqrec.schema import Schema


class EventEncoder(nn.Module):
    """Batch -> event vectors (B, T, out_dim) and the mask (B, T) of real positions.

    Only the tables the group's id features use are built (a purchase schema may also carry
    a large user table the sequence models never read). ``emb`` is a
    :class:`~seqrec.layers.embedding.FeatureEmbedding`, so the trainer's mini-batch aware
    regulariser works through ``model.inp.emb``.
    """

    def __init__(self, schema: Schema, dim: int, group: str = "hist", sparse: bool = False,
                 exclude: tuple[str, ...] = ()) -> None:
        super().__init__()
        seq_all = schema.sequence_group(group)
        if not seq_all:
            raise SchemaError(f"the schema has no sequence features in group {group!r}; "
                              f"features: {[f.name for f in schema.features]}")
        names = [f.name for f in schema.features]
        unknown = sorted(set(exclude) - set(names))
        if unknown:
            raise SchemaError(f"exclude names unknown feature(s) {unknown}; features: {names}")
        self.mask_feature = seq_all[0].name  # real positions, whether or not it is embedded
        seq = [f for f in seq_all if f.name not in exclude]
        numbers = [f for f in schema.of_kind("seqdense") if f.group == group and f.name not in exclude]
        if not seq and not numbers:
            raise SchemaError(f"exclude {list(exclude)} leaves no event feature")
        used = {f.table for f in seq}
        wide = schema.with_dim(dim)
        own = replace(wide, tables=tuple(t for t in wide.tables if t.name in used), features=tuple(seq))
        self.emb = FeatureEmbedding(own, sparse=sparse)
        self.ids = tuple(f.name for f in seq)
        self.numbers = tuple(f.name for f in numbers)
        self.out_dim = len(seq) * dim + sum(f.dim for f in numbers)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        mask = batch[self.mask_feature] != 0  # (B, T)
        t = mask.shape[1]
        parts = [self.emb.lookup(batch, n) for n in self.ids]  # each (B, T, D)
        for n in self.numbers:
            v = batch[n].float()  # (B, T', dim), T' <= T
            if v.shape[1] < t:
                v = F.pad(v, (0, 0, 0, t - v.shape[1]))
            parts.append(v)
        x = torch.cat(parts, -1)  # (B, T, out_dim)
        # padding rows are zero already; the mask also guards a stray id behind the first
        # feature's padding
        return x * mask.unsqueeze(-1).to(x.dtype), mask


def masked_max_pool(x: torch.Tensor, mask: torch.Tensor, pool: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Max over non-overlapping windows of ``pool`` steps (window = stride = pool).

    (B, T, C), (B, T) -> (B, ceil(T / pool), C), (B, ceil(T / pool)). Windows start at
    position 0, so a left-aligned sequence stays left-aligned and extra trailing padding
    only adds padded steps. A pooled step is real if any of its inputs is real; padded
    inputs never win the max; padded pooled steps are 0. ``pool == 1`` only zeroes padding.
    """
    if pool < 1:
        raise ValueError(f"pool must be >= 1, got {pool}")
    if pool == 1:
        return x * mask.unsqueeze(-1).to(x.dtype), mask
    b, t, c = x.shape
    tp = -(-t // pool)
    extra = tp * pool - t
    if extra:
        x = F.pad(x, (0, 0, 0, extra))
        mask = torch.cat([mask, mask.new_zeros(b, extra)], 1)
    x = x.masked_fill(~mask.unsqueeze(-1), float("-inf"))  # (B, tp * pool, C)
    pooled = x.view(b, tp, pool, c).amax(2)  # (B, tp, C)
    pmask = mask.view(b, tp, pool).any(2)  # (B, tp)
    return pooled.masked_fill(~pmask.unsqueeze(-1), 0.0), pmask


def final_state(rnn: nn.RNNBase, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Run a batch-first LSTM / GRU and return the last layer's output after each sequence's
    last real step: (B, T, C), (B, T) -> (B, H).

    Histories are left-aligned, so the padding after a sequence's last real step never
    reaches the state read out there: running over the padded batch and gathering at
    ``length - 1`` equals running over the real steps only. (Packed sequences give the
    same numbers but their CPU backward zero-fills a packed-size gradient at every time
    step, ~4x slower here.) The RNN runs over the longest real length of the batch only.
    A row without real steps (which the data should not contain) reads step 0.
    """
    lengths = mask.sum(1)  # (B,)
    t = max(int(lengths.max()), 1)
    out, _ = rnn(x[:, :t])  # (B, t, H)
    idx = (lengths - 1).clamp(min=0)  # (B,)
    return out[torch.arange(out.shape[0]), idx]  # (B, H)
