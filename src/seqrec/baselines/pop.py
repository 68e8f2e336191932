"""POP: recommend the items most popular in training, whatever the session.

The floor every session model must clear (Hidasi et al., ICLR 2016, baseline "POP").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from seqrec.baselines.base import (
    TIEBREAKS,
    SessionBaseline,
    check_train,
    session_item_matrix,
    tie_order,
)
from seqrec.data.events import SessionArrays
from seqrec.data.vocab import N_SPECIAL


@dataclass(frozen=True)
class PopConfig:
    # "events": number of training clicks on the item (the usual POP);
    # "sessions": number of training sessions that contain it.
    count: str = "events"
    # equal counts: a fixed random order (seqrec.baselines.base.tie_order); "none" = raw counts
    tiebreak: str = "pop"
    tiebreak_seed: int = 0  # seed of the fixed random order among equally popular items

    def __post_init__(self) -> None:
        if self.count not in ("events", "sessions"):
            raise ValueError(f"PopConfig.count must be 'events' or 'sessions', got {self.count!r}")
        if self.tiebreak not in TIEBREAKS:
            raise ValueError(f"PopConfig.tiebreak must be one of {TIEBREAKS}, got {self.tiebreak!r}")


class Pop(SessionBaseline):
    """Score of item i = its training popularity, identical for every lane and step."""

    name = "pop"
    config_cls = PopConfig

    def __init__(self, config: PopConfig | None = None) -> None:
        super().__init__(config)
        self.counts_: np.ndarray | None = None  # (n_items,) int64
        self._scores: torch.Tensor | None = None  # (n_items,) float64 (float32 without tie-break)

    def fit(self, train: SessionArrays, n_items: int) -> Pop:
        items = check_train(train, n_items)
        if self.config.count == "events":
            counts = np.bincount(items, minlength=n_items).astype(np.int64)
        else:
            counts = np.asarray(session_item_matrix(train, n_items).sum(0)).ravel().astype(np.int64)
        counts[:N_SPECIAL] = 0  # padding / OOV are never recommended
        self.n_items = n_items
        self._set_state({"counts": counts})
        return self

    def step(self, items: torch.Tensor, reset: torch.Tensor) -> torch.Tensor:
        self._check_step(items, reset)
        # a fresh tensor: the evaluator writes -inf into the special columns in place
        return self._scores.expand(self.n_lanes, -1).clone()  # (B, n_items)

    def _get_state(self) -> dict[str, Any]:
        return {"counts": self.counts_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.counts_ = np.asarray(state["counts"], dtype=np.int64)
        if len(self.counts_) != self.n_items:
            raise ValueError(f"pop: {len(self.counts_)} counts for n_items={self.n_items}")
        tie = tie_order(self.counts_, self.config.tiebreak, self.config.tiebreak_seed)  # < 1e-6: never reorders counts
        if tie is None:
            self._scores = torch.from_numpy(self.counts_.astype(np.float32))
        else:
            self._scores = torch.from_numpy(self.counts_.astype(np.float64) + tie)
