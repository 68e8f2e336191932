"""Item-kNN: recommend the items most similar to the session's last item.

The item-to-item baseline of Hidasi et al. (ICLR 2016, "Session-based
recommendations with recurrent neural networks"). Items are compared by the
sessions they occur in: with ``supp_i`` the number of training sessions that
contain item i and ``co_ij`` the number that contain both,

    sim(i, j) = co_ij / ((supp_i + lambda)^alpha * (supp_j + lambda)^(1 - alpha))

which is the cosine similarity of the binary session-occurrence vectors for
``lambda = 0, alpha = 0.5``; ``lambda`` damps coincidental high similarities
of rarely seen items. An item is not its own neighbour (sim(i, i) = 0), and
only the ``k`` most similar neighbours of each item are kept. Items with equal
scores (most of the catalogue scores 0; rare items often share a similarity)
are put in one strict order, by popularity and then a fixed random order, via
a float64 term below 1e-6 (``tiebreak="pop"``, :func:`~seqrec.baselines.base.tie_order`),
so optimistic and pessimistic ranks agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from seqrec.baselines.base import (
    TIEBREAKS,
    SessionBaseline,
    dense_scores,
    session_item_matrix,
    tie_order,
    top_per_row,
)
from seqrec.data.events import SessionArrays


@dataclass(frozen=True)
class ItemKNNConfig:
    k: int = 100  # neighbours kept per item (0 = all)
    lambda_reg: float = 20.0  # support regularisation (paper default)
    alpha: float = 0.5  # 0.5 = symmetric cosine normalisation
    tiebreak: str = "pop"  # equal scores: popularity, then a fixed random order ("none" = raw, ties)
    tiebreak_seed: int = 0  # seed of the fixed random order among equally popular items

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"ItemKNNConfig.k must be >= 0 (0 = all), got {self.k}")
        if self.lambda_reg < 0:
            raise ValueError(f"ItemKNNConfig.lambda_reg must be >= 0, got {self.lambda_reg}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"ItemKNNConfig.alpha must be in [0, 1], got {self.alpha}")
        if self.tiebreak not in TIEBREAKS:
            raise ValueError(f"ItemKNNConfig.tiebreak must be one of {TIEBREAKS}, got {self.tiebreak!r}")


class ItemKNN(SessionBaseline):
    """Scores for the next item = similarity row of the lane's last item (OOV: all zero)."""

    name = "item-knn"
    config_cls = ItemKNNConfig

    def __init__(self, config: ItemKNNConfig | None = None) -> None:
        super().__init__(config)
        self.sim_: sp.csr_matrix | None = None  # (n_items, n_items) float32, top-k per row
        self.support_: np.ndarray | None = None  # (n_items,) sessions containing each item

    def fit(self, train: SessionArrays, n_items: int) -> ItemKNN:
        cfg = self.config
        x = session_item_matrix(train, n_items)  # (S, N) binary
        support = np.asarray(x.sum(0)).ravel()  # (N,)
        co = (x.T @ x).tocoo()  # (N, N) sessions shared by i and j
        off = co.row != co.col
        rows, cols = co.row[off].astype(np.int64), co.col[off].astype(np.int64)
        # co > 0 implies supp > 0 for both items, so the denominator is never 0
        den = np.power(support[rows] + cfg.lambda_reg, cfg.alpha) * np.power(
            support[cols] + cfg.lambda_reg, 1.0 - cfg.alpha
        )
        sims = co.data[off] / den
        sim = top_per_row(rows, cols, sims, n_items, cfg.k, n_items)
        self.n_items = n_items
        self._set_state({"sim": sim.astype(np.float32), "support": support.astype(np.int64)})
        return self

    def step(self, items: torch.Tensor, reset: torch.Tensor) -> torch.Tensor:
        # only the last item matters, so there is no per-lane state to reset
        it, _ = self._check_step(items, reset)
        return dense_scores(self.sim_[it], self._tie)  # (B, n_items) float64 (float32 if no tie-break)

    def _get_state(self) -> dict[str, Any]:
        return {"sim": self.sim_, "support": self.support_}

    def _set_state(self, state: dict[str, Any]) -> None:
        sim = sp.csr_matrix(state["sim"], dtype=np.float32)
        if sim.shape != (self.n_items, self.n_items):
            raise ValueError(f"item-knn: similarity shape {sim.shape} for n_items={self.n_items}")
        self.sim_ = sim
        self.support_ = np.asarray(state["support"], dtype=np.int64)
        self._tie = tie_order(self.support_, self.config.tiebreak, self.config.tiebreak_seed)
