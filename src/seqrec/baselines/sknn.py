"""SKNN: session-based k-nearest neighbours (Jannach & Ludewig, RecSys 2017).

"When recurrent neural networks meet the neighborhood for session-based
recommendation": the current session s (the set of items seen since the lane's
last reset) is compared with past training sessions n by cosine similarity of
binary item vectors, sim(s, n) = |s ∩ n| / sqrt(|s| |n|). Only the
``sample_size`` most recent training sessions that share at least one item with
s are considered, the ``k`` most similar of them are kept (N_s), and

    score(i) = sum over n in N_s with i in n of sim(s, n).

Everything is done for all lanes at once with sparse products: lanes x items
(B, N) @ items x sessions (N, S) gives the overlaps, a per-row selection picks
the sample and the neighbours, and neighbours (B, S) @ sessions x items (S, N)
gives the scores.
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
    as_numpy,
    dense_scores,
    session_item_matrix,
    tie_order,
    top_per_row,
)
from seqrec.data.events import SessionArrays
from seqrec.data.vocab import N_SPECIAL


@dataclass(frozen=True)
class SKNNConfig:
    k: int = 100  # neighbour sessions kept (0 = all sampled)
    sample_size: int = 500  # most recent candidate sessions considered (0 = all)
    # recency of a training session: "time" = timestamp of its last event (ties: later in
    # train wins), "order" = its position in train (later = more recent). They agree when
    # train is in time order or carries ordinal timestamps.
    recency: str = "time"
    tiebreak: str = "pop"  # equal scores: popularity, then a fixed random order ("none" = raw)
    tiebreak_seed: int = 0  # seed of the fixed random order among equally popular items

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"SKNNConfig.k must be >= 0 (0 = all), got {self.k}")
        if self.sample_size < 0:
            raise ValueError(
                f"SKNNConfig.sample_size must be >= 0 (0 = all), got {self.sample_size}"
            )
        if self.recency not in ("time", "order"):
            raise ValueError(f"SKNNConfig.recency must be 'time' or 'order', got {self.recency!r}")
        if self.tiebreak not in TIEBREAKS:
            raise ValueError(f"SKNNConfig.tiebreak must be one of {TIEBREAKS}, got {self.tiebreak!r}")


class SKNN(SessionBaseline):
    """Session-based kNN scorer; the lane state is the set of items since its last reset."""

    name = "sknn"
    config_cls = SKNNConfig

    def __init__(self, config: SKNNConfig | None = None) -> None:
        super().__init__(config)
        # training sessions sorted from oldest to most recent: column j of the overlap
        # matrix is the j-th oldest session, so "most recent" = largest column index
        self.sessions_: sp.csr_matrix | None = None  # (S, N) binary
        self.session_index_: np.ndarray | None = None  # (S,) row of each session in train
        self._items_sessions: sp.csr_matrix | None = None  # (N, S) transpose of sessions_
        self._sizes: np.ndarray | None = None  # (S,) distinct items per session
        self._lanes: sp.csr_matrix | None = None  # (B, N) binary: items seen per lane

    def fit(self, train: SessionArrays, n_items: int) -> SKNN:
        x = session_item_matrix(train, n_items)  # (S, N), train order
        if self.config.recency == "time" and train.n_events:
            lengths = train.lengths
            last = np.full(train.n_sessions, -np.inf)
            nonempty = lengths > 0
            last[nonempty] = np.asarray(train.times)[train.offsets[1:][nonempty] - 1]
            order = np.lexsort((np.arange(train.n_sessions), last))  # time, then position
        else:
            order = np.arange(train.n_sessions)
        self.n_items = n_items
        self._set_state({"sessions": x[order], "session_index": order.astype(np.int64)})
        return self

    def begin(self, n_lanes: int) -> None:
        super().begin(n_lanes)
        self._lanes = sp.csr_matrix((self.n_lanes, self.n_items), dtype=np.float64)

    def keep(self, lanes: torch.Tensor) -> None:
        super().keep(lanes)
        self._lanes = self._lanes[as_numpy(lanes).astype(np.int64)]

    def step(self, items: torch.Tensor, reset: torch.Tensor) -> torch.Tensor:
        it, rs = self._check_step(items, reset)
        b = self.n_lanes
        # forget lanes that start a new session, then add this step's items
        lanes = sp.diags((~rs).astype(np.float64)) @ self._lanes
        lanes.eliminate_zeros()
        real = it >= N_SPECIAL  # OOV/padding carry no item to compare on
        add = sp.csr_matrix(
            (np.ones(int(real.sum())), (np.flatnonzero(real), it[real])), shape=(b, self.n_items)
        )
        lanes = (lanes + add).tocsr()
        lanes.data[:] = 1.0  # a set: repeated clicks count once
        self._lanes = lanes
        lane_sizes = np.diff(lanes.indptr)  # (B,) |s|

        overlap = (lanes @ self._items_sessions).tocsr()  # (B, S) |s ∩ n|, only n sharing an item
        overlap.sort_indices()
        rows = np.repeat(np.arange(b), np.diff(overlap.indptr))
        cols, ov = overlap.indices.astype(np.int64), overlap.data
        m = self.config.sample_size
        if m > 0:  # the m most recent candidates = the last m columns of each row
            recent = np.arange(len(cols)) >= overlap.indptr[rows + 1] - m
            rows, cols, ov = rows[recent], cols[recent], ov[recent]
        sim = ov / np.sqrt(lane_sizes[rows] * self._sizes[cols])
        neighbours = top_per_row(rows, cols, sim, b, self.config.k, len(self._sizes))  # (B, S)
        scores = neighbours @ self.sessions_  # (B, N)
        return dense_scores(scores, self._tie)

    def _get_state(self) -> dict[str, Any]:
        return {"sessions": self.sessions_, "session_index": self.session_index_}

    def _set_state(self, state: dict[str, Any]) -> None:
        x = sp.csr_matrix(state["sessions"], dtype=np.float64)
        if x.shape[1] != self.n_items:
            raise ValueError(
                f"sknn: session matrix has {x.shape[1]} columns for n_items={self.n_items}"
            )
        self.sessions_ = x
        self.session_index_ = np.asarray(state["session_index"], dtype=np.int64)
        self._items_sessions = x.T.tocsr()
        self._sizes = np.diff(x.indptr).astype(np.float64)
        self._tie = tie_order(np.asarray(x.sum(0)).ravel(), self.config.tiebreak, self.config.tiebreak_seed)
