"""What every retrieval model computes: a user side, an item side, and scores over the catalogue.

A retrieval model maps a *user batch* to scores over all items ``0..n_items`` (index 0 is
padding and is never ranked). The user batch is a mapping of tensors built by the retrieval
family (:func:`seqrec.families.retrieval.user_batch`), the same for every model:

* ``user``     (B,)   user indices (models with a user embedding: MF, NCF);
* ``history``  (B, L) item indices, left-padded with 0, most recent last (time order where the
  data has one, ascending item index for the unordered BARS sets);
* ``age``      (B,)   example age in days (YouTube DNN; 0 at serving);
* ``feat_<name>`` (B,) user feature codes (0 = unknown), for the names in ``info.feature_sizes``.

Two-tower models (``dot_product = True``) score ``user_vectors(batch) @ item_vectors().T``,
which is what a faiss index serves; multi-interest models return (B, K, D) user vectors and a
(B, K) mask of the interests in use, and an item's score is its best interest's score. Models
that are not inner products (NCF's MLP, TDM's attention scorer) override ``score_all``.
Training objectives (losses and samplers) live outside the models, in
:mod:`seqrec.train.retrieval_objectives`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class RetrievalInfo:
    """What a model needs to know about the data to be built (sizes only)."""

    n_users: int
    n_items: int  # item indices 1..n_items; tables have n_items + 1 rows (0 = padding)
    feature_sizes: dict[str, int] = field(default_factory=dict)  # user feature -> table rows
    max_len: int = 50  # longest history a batch carries


class RetrievalModel(nn.Module):
    """Base class: subclasses implement ``user_vectors`` and ``item_vectors`` (or ``score_all``)."""

    #: scores are inner products of user and item vectors (a faiss index can serve them)
    dot_product: bool = True
    #: user_vectors returns (B, K, D) interests and interest_mask a (B, K) bool mask
    multi_interest: bool = False

    def user_vectors(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, D) user vectors, or (B, K, D) interests for multi-interest models."""
        raise NotImplementedError

    def interest_mask(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, K) True for the interests in use (multi-interest models only)."""
        raise NotImplementedError

    def item_vectors(self) -> torch.Tensor:
        """(n_items + 1, D) item vectors; row 0 is padding."""
        raise NotImplementedError

    def score_all(self, batch: Mapping[str, torch.Tensor], items: torch.Tensor | None = None,
                  out: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_items + 1) scores of every item for every user of the batch.

        ``items`` (the ``item_vectors()``, computed once per evaluation by the caller) and ``out``
        (a reusable (>= B, n_items + 1) float buffer: no 100-MB allocation per batch) are optional."""
        items = self.item_vectors() if items is None else items  # (N + 1, D)
        u = self.user_vectors(batch)
        dest = None if out is None else out[:u.shape[0]]
        if not self.multi_interest:
            return torch.mm(u, items.T) if dest is None else torch.mm(u, items.T, out=dest)  # (B, N + 1)
        mask = self.interest_mask(batch)  # (B, K)
        best = dest
        for k in range(u.shape[1]):  # one (B, N + 1) matrix at a time: no (B, K, N + 1) tensor
            s = (u[:, k] @ items.T).masked_fill_(~mask[:, k:k + 1], float("-inf"))
            if best is None:
                best = s
            elif k == 0:
                best.copy_(s)
            elif dest is None:
                best = torch.maximum(best, s)
            else:
                torch.maximum(best, s, out=best)
        return best
