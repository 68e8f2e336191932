"""Session-parallel mini-batches (Hidasi et al. ICLR 2016, sec. 3.1.1).

B lanes each walk one session event by event: at step t lane b feeds the
item at position p_b and predicts the item at p_b + 1. When a lane's session
runs out, the next unused session enters that lane and only that lane's
hidden state is reset. When no session is left, finished lanes are dropped
(the batch shrinks) until every session is consumed. The work per step is a
few numpy index operations, never a loop over events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from seqrec.kernels.session_parallel import advance, events


@dataclass
class SessionStep:
    inputs: torch.Tensor  # (B,) int64 items fed this step
    targets: torch.Tensor  # (B,) int64 next items
    reset: torch.Tensor  # (B,) bool: lane starts a new session (hidden := 0)
    keep: torch.Tensor | None  # lanes of the previous step kept (None = all kept)
    lanes: np.ndarray  # (B,) session index each lane is walking (for user-level models)


def session_parallel_batches(
    items: np.ndarray,
    offsets: np.ndarray,
    batch_size: int,
    order: np.ndarray | None = None,
) -> Iterator[SessionStep]:
    """Yield one :class:`SessionStep` per step over sessions ``order`` (default: all, in order).

    Sessions shorter than 2 events are skipped (they have nothing to predict). The per-step
    bookkeeping is two compiled calls (:mod:`seqrec.kernels.session_parallel`) instead of ~20
    small numpy operations: on diginetica (batch 80) 10.7 -> 5.6 us a step in a tight loop,
    and 100 -> 54 us between real training steps, where the caches are cold (scratch timings; same steps, checked
    equal over 830k steps).
    """
    if order is None:
        order = np.arange(len(offsets) - 1)
    lengths = offsets[order + 1] - offsets[order]
    order = np.ascontiguousarray(order[lengths >= 2], dtype=np.int64)
    if len(order) == 0:
        return
    items = np.ascontiguousarray(items)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    n = min(batch_size, len(order))
    lane_sess = order[:n].copy()
    nxt = n
    pos = offsets[lane_sess].copy()
    end = offsets[lane_sess + 1].copy()  # exclusive
    reset = np.ones(n, dtype=bool)
    done = np.empty(n, dtype=np.int64)
    keep = None
    while len(pos):
        inputs, targets = np.empty(len(pos), dtype=items.dtype), np.empty(len(pos), dtype=items.dtype)
        events(items, pos, inputs, targets)
        yield SessionStep(
            inputs=torch.from_numpy(inputs),
            targets=torch.from_numpy(targets),
            reset=torch.from_numpy(reset.copy()),
            keep=keep,
            lanes=lane_sess.copy(),
        )
        keep = None
        nxt, n_done, n_new = advance(offsets, order, nxt, pos, end, lane_sess, reset, done)
        if n_new < n_done:  # no session left for some lanes: drop them (the batch shrinks)
            alive = np.ones(len(pos), dtype=bool)
            alive[done[n_new:n_done]] = False
            k = np.flatnonzero(alive)
            lane_sess, pos, end, reset = lane_sess[k], pos[k], end[k], reset[k]
            keep = torch.from_numpy(k)
