"""How CTR models read a schema: the candidate, its aligned history, the other fields.

* paired fields: a sparse target feature and the history feature of group ``hist`` that
  looks up the same table (``item`` / ``hist_item``, ``cate`` / ``hist_cate``). The
  candidate vector q concatenates the targets' embeddings, the behaviour vectors k_t the
  histories' in the same order;
* history-only fields (e.g. ``hist_btype``, the behaviour type) are appended to k_t, with
  zeros in q at their place, so attention can use them without a target counterpart;
* other sparse fields (user, context) and dense features go straight to the final MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqrec.errors import SchemaError
from seqrec.layers.embedding import FeatureEmbedding
from seqrec.schema import Schema


@dataclass(frozen=True)
class Fields:
    targets: tuple[str, ...]  # sparse features paired with a history feature
    history: tuple[str, ...]  # their history features, same order, then history-only ones
    n_paired: int
    others: tuple[str, ...]  # remaining sparse features
    dense: tuple[str, ...]


def fields_of(schema: Schema, group: str = "hist") -> Fields:
    seq = schema.sequence_group(group)
    if not seq:
        raise SchemaError(f"the schema has no sequence features in group {group!r}")
    sparse = schema.of_kind("sparse")
    targets, paired = [], []
    for f in sparse:
        match = [s for s in seq if s.table == f.table]
        if match:
            targets.append(f.name)
            paired.append(match[0].name)
    if not targets:
        raise SchemaError("no sparse target feature shares a table with the history features")
    hist_only = [s.name for s in seq if s.name not in paired]
    others = [f.name for f in sparse if f.name not in targets]
    return Fields(tuple(targets), tuple(paired + hist_only), len(paired), tuple(others),
                  tuple(f.name for f in schema.of_kind("dense")))


class CTRInputs(nn.Module):
    """Embeddings plus the field bookkeeping above; ``dims`` give the widths models need."""

    def __init__(self, schema: Schema, group: str = "hist", sparse: bool = False,
                 init_std: float = 1e-2) -> None:
        super().__init__()
        self.schema = schema
        self.emb = FeatureEmbedding(schema, init_std=init_std, sparse=sparse)
        self.f = fields_of(schema, group)
        d = self.emb.dim_of
        self.key_dim = sum(d(n) for n in self.f.history)  # width of k_t (and of padded q)
        self.query_dim = sum(d(n) for n in self.f.targets)
        self.other_dim = sum(d(n) for n in self.f.others) + schema.dense_dim()
        self.first_hist = self.f.history[0]

    def query(self, batch) -> torch.Tensor:
        """Candidate vector (B, key_dim): target embeddings, zeros at history-only fields."""
        q = self.emb.group(batch, list(self.f.targets))  # (B, query_dim)
        if self.key_dim > self.query_dim:
            q = torch.cat([q, q.new_zeros(q.shape[0], self.key_dim - self.query_dim)], 1)
        return q

    def keys(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Behaviour vectors (B, T, key_dim) and the mask (B, T) of real positions."""
        return self.emb.group(batch, list(self.f.history)), batch[self.first_hist] != 0

    def other(self, batch) -> torch.Tensor:
        """User / context embeddings and dense features: (B, other_dim) (may be (B, 0))."""
        parts = [self.emb.lookup(batch, n) for n in self.f.others]
        parts += [batch[n] for n in self.f.dense]
        B = batch[self.f.targets[0]].shape[0]
        return torch.cat(parts, 1) if parts else torch.zeros(B, 0)
