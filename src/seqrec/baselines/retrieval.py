"""Closed-form retrieval baselines: popularity and ItemCF, fitted on the training interactions.

* :class:`PopRetrieval` — every user gets the items with most training interactions.
* :class:`ItemCF` — item-based collaborative filtering (Sarwar et al. WWW 2001; Linden et al. 2003):
  sim(i, j) = |U_i ∩ U_j| / (|U_i|^alpha |U_j|^(1 - alpha)) over the users who interacted with
  each item (alpha = 0.5: cosine), each item keeping its ``neighbours`` most similar items; a user's
  score for i is the sum of sim(i, j) over the history items j.

Both are :class:`~seqrec.models.retrieval_base.RetrievalModel` modules whose fitted state is in
buffers, so a run saves and loads them like the neural models. Their raw scores tie a lot
(equal counts; ItemCF scores most of the catalogue exactly 0), and the optimistic tie rule would
put a target first among its equals; as for the session baselines (docs/evaluation.md), a tiny
float64 term puts all items in one strict order — by training popularity, then by a fixed random
permutation that does not depend on any target — so optimistic and pessimistic figures agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from seqrec.models.retrieval_base import RetrievalInfo, RetrievalModel


@dataclass(frozen=True)
class PopRetrievalConfig:
    pass


def strict_order(counts: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N + 1,) float64 in [0, 1): the rank of every item by (count, a fixed random permutation),
    divided by N + 1 — distinct for every item, higher for more popular items."""
    perm = np.random.default_rng(seed).permutation(len(counts))
    order = np.lexsort((perm, counts))  # ascending count, ties by the permutation
    rank = np.empty(len(counts), dtype=np.float64)
    rank[order] = np.arange(len(counts))
    return rank / len(counts)


class PopRetrieval(RetrievalModel):
    dot_product = False

    def __init__(self, config: PopRetrievalConfig, info: RetrievalInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.register_buffer("counts", torch.zeros(info.n_items + 1, dtype=torch.float64))

    def fit_task(self, task) -> None:
        c = task.item_counts()
        self.counts = torch.from_numpy(c + 0.5 * strict_order(c))  # counts are integers: order kept

    def score_all(self, batch):
        return self.counts[None, :].expand(len(batch["history"]), -1).clone()  # (B, N + 1) float64


@dataclass(frozen=True)
class ItemCFConfig:
    neighbours: int = 200  # most similar items kept per item
    alpha: float = 0.5  # 0.5 = cosine; 0 = conditional probability |U_i ∩ U_j| / |U_j| ...

    def __post_init__(self) -> None:
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {self.neighbours}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")


class ItemCF(RetrievalModel):
    dot_product = False

    def __init__(self, config: ItemCFConfig, info: RetrievalInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        n = info.n_items + 1
        self.register_buffer("sim_indptr", torch.zeros(n + 1, dtype=torch.int64))
        self.register_buffer("sim_indices", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("sim_values", torch.zeros(0))
        self.register_buffer("tiebreak", torch.zeros(n, dtype=torch.float64))
        self._sim: sp.csr_matrix | None = None

    def fit_task(self, task) -> None:
        tr = task.train
        n = self.info.n_items + 1
        x = sp.csr_matrix((np.ones(len(tr.values), np.float32), tr.values, tr.indptr), shape=(len(tr), n))
        x.data[:] = 1.0
        x.sum_duplicates()
        x.data[:] = 1.0
        co = (x.T @ x).tocsr()  # (N + 1, N + 1) co-occurrence counts
        co.setdiag(0)
        co.eliminate_zeros()
        deg = np.asarray(x.sum(0)).ravel()
        a = self.config.alpha
        left = np.power(np.maximum(deg, 1), -a)
        right = np.power(np.maximum(deg, 1), -(1 - a))
        co = sp.diags(left) @ co @ sp.diags(right)
        self._set(_top_per_row(co.tocsr(), self.config.neighbours))
        self.tiebreak = torch.from_numpy(1e-9 * strict_order(task.item_counts()))

    def _set(self, sim: sp.csr_matrix) -> None:
        self._sim = sim
        self.sim_indptr = torch.from_numpy(sim.indptr.astype(np.int64))
        self.sim_indices = torch.from_numpy(sim.indices.astype(np.int64))
        self.sim_values = torch.from_numpy(sim.data.astype(np.float32))

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        n = self.info.n_items + 1
        self._set(sp.csr_matrix((state["sim_values"].numpy(), state["sim_indices"].numpy(),
                                 state["sim_indptr"].numpy()), shape=(n, n)))
        self.tiebreak = state["tiebreak"].clone()
        return torch.nn.modules.module._IncompatibleKeys([], [])

    def score_all(self, batch):
        h = batch["history"].numpy()  # (B, L)
        n = self.info.n_items + 1
        rows = np.repeat(np.arange(len(h)), h.shape[1])
        cols = h.ravel()
        keep = cols > 0  # padding is no item
        hist = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], cols[keep])), shape=(len(h), n))
        hist.data[:] = 1.0  # duplicates count once
        scores = hist @ self._sim  # (B, N + 1): sum of similarities to the history items
        return torch.from_numpy(np.asarray(scores.todense(), dtype=np.float64)) + self.tiebreak


def _top_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of every row."""
    lens = np.diff(m.indptr)
    if lens.max(initial=0) <= k:
        return m
    rows, cols, vals = [], [], []
    for r in np.flatnonzero(lens):
        a, b = m.indptr[r], m.indptr[r + 1]
        d = m.data[a:b]
        keep = np.argpartition(-d, k - 1)[:k] if len(d) > k else np.arange(len(d))
        rows.append(np.full(len(keep), r))
        cols.append(m.indices[a:b][keep])
        vals.append(d[keep])
    out = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=m.shape)
    out.sort_indices()
    return out
