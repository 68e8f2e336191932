"""Embedding tables: the one place models get them from, and the lookups they need.

Every embedding table of every model is made by :func:`make_table` (a plain ``nn.Embedding``
today), and the schema-built models read their features through :class:`FeatureEmbedding`
(``lookup`` / ``group`` / ``pooled``). That is the interface a sharded implementation replaces:
docs/scale.md says how a TorchRec ``EmbeddingBagCollection`` / ``EmbeddingCollection`` takes
its place where a TorchRec build matching the installed torch exists (TorchRec 1.9.2's fbgemm
does not load against torch 2.13.0, so the tables stay replicated, with sparse gradients under
``torchrun``).

One ``nn.Embedding`` per schema table (row 0 = padding, kept at zero); every feature looks
up the table it names, so a history of items and the target item share one item table.
Also the mini-batch aware regulariser of DIN (Zhou et al. KDD 2018, sec. 4.2, eq. 4):

    L2(W) ≈ Σ_tables Σ_{j in batch} ||w_j||² / n_j

over the distinct ids j that occur in the mini-batch (any feature using the table), each
scaled by 1 / n_j, its occurrence count in the training samples — instead of an L2 over
the whole table, which costs a full pass per step and over-penalises rare rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from seqrec.schema import NUMERIC, Schema


def make_table(rows: int, dim: int, *, padding_idx: int | None = None, sparse: bool = False) -> nn.Embedding:
    """A ``rows`` x ``dim`` embedding table (torch's default N(0, 1) init; callers re-initialise).

    ``sparse``: the backward pass gives the rows a batch used only (a sparse gradient): lazy
    optimisers (SparseAdam, Adagrad) touch only those rows, and DistributedDataParallel with gloo
    all-gathers those rows instead of all-reducing the whole table."""
    return nn.Embedding(rows, dim, padding_idx=padding_idx, sparse=sparse)


class FeatureEmbedding(nn.Module):
    def __init__(self, schema: Schema, init_std: float = 1e-2, sparse: bool = False) -> None:
        super().__init__()
        self.schema = schema
        self.sparse = sparse  # sparse gradients: optimisers update only the rows used
        self.tables = nn.ModuleDict(
            {t.name: make_table(t.rows, t.dim, padding_idx=0, sparse=sparse) for t in schema.tables}
        )
        for emb in self.tables.values():
            nn.init.normal_(emb.weight, std=init_std)
            with torch.no_grad():
                emb.weight[0].zero_()
        self._table_of = {f.name: f.table for f in schema.features if f.kind not in NUMERIC}
        self.inv_counts: dict[str, torch.Tensor] = {}

    def dim_of(self, feature: str) -> int:
        return self.schema.table(self._table_of[feature]).dim

    def lookup(self, batch: Mapping[str, torch.Tensor], feature: str) -> torch.Tensor:
        """(B,) -> (B, D); (B, T) -> (B, T, D)."""
        return self.tables[self._table_of[feature]](batch[feature])

    def group(self, batch: Mapping[str, torch.Tensor], names: list[str]) -> torch.Tensor:
        """Concatenate the embeddings of aligned features: (B, [T,] sum of D)."""
        return torch.cat([self.lookup(batch, n) for n in names], dim=-1)

    def pooled(self, batch: Mapping[str, torch.Tensor], feature: str, mode: str = "sum") -> torch.Tensor:
        """Sum / mean of a padded id list's embeddings over its non-zero ids: (B, L) -> (B, D)."""
        e = self.lookup(batch, feature)  # padding rows are zero
        if mode == "sum":
            return e.sum(1)
        n = (batch[feature] != 0).sum(1, keepdim=True).clamp(min=1)
        return e.sum(1) / n

    # -- mini-batch aware regularisation ----------------------------------------------------
    def fit_counts(self, columns: dict[str, np.ndarray]) -> None:
        """Occurrence counts n_j of every id of every table in the training samples."""
        counts = {t.name: np.zeros(t.rows, dtype=np.float64) for t in self.schema.tables}
        for f in self.schema.features:
            if f.kind in NUMERIC or f.name not in columns:
                continue
            ids = columns[f.name].reshape(-1)
            counts[f.table] += np.bincount(ids, minlength=len(counts[f.table]))
        for name, c in counts.items():
            inv = np.where(c > 0, 1.0 / np.maximum(c, 1.0), 0.0)
            inv[0] = 0.0  # padding is never penalised
            self.inv_counts[name] = torch.from_numpy(inv.astype(np.float32))

    def minibatch_l2(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Σ over tables of Σ_{distinct ids j in the batch} ||w_j||² / n_j (call fit_counts first)."""
        if not self.inv_counts:
            raise RuntimeError("fit_counts() must run on the training samples first")
        ids: dict[str, list[torch.Tensor]] = {}
        for f in self.schema.features:
            if f.kind not in NUMERIC and f.name in batch:
                ids.setdefault(f.table, []).append(batch[f.name].reshape(-1))
        total = torch.zeros(())
        for table, parts in ids.items():
            uniq = torch.unique(torch.cat(parts))
            w = self.tables[table](uniq)  # (U, D); a sparse gradient like the lookups
            total = total + (w.pow(2).sum(1) * self.inv_counts[table].index_select(0, uniq)).sum()
        return total
