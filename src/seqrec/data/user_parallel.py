"""User-parallel mini-batches for HRNN (Quadrana et al. RecSys 2017, sec. 3.3).

Each lane walks one user's sessions in time order, event by event, predicting
the next event of the same session. When a session ends, the lane moves to
the user's next session (``new_session``: the model updates its user state and
re-initialises the session state); when the user runs out of sessions, the
next user enters the lane (``new_user``: user state reset). Sessions with
fewer than 2 events have nothing to predict and are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class UserStep:
    inputs: torch.Tensor  # (B,) int64
    targets: torch.Tensor  # (B,) int64
    new_session: torch.Tensor  # (B,) bool: first event of a session in this lane
    new_user: torch.Tensor  # (B,) bool: first session of a user in this lane
    keep: torch.Tensor | None  # lanes of the previous step kept (None = all)
    sessions: np.ndarray  # (B,) session index each lane is in


def user_parallel_batches(
    items: np.ndarray, offsets: np.ndarray, session_user: np.ndarray, batch_size: int
) -> Iterator[UserStep]:
    """Sessions must be grouped by user (contiguous) and time-ordered within a user."""
    lengths = np.diff(offsets)
    vs = np.flatnonzero(lengths >= 2)  # usable sessions, still grouped by user
    if len(vs) == 0:
        return
    u = session_user[vs]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])  # first usable session of each user
    u_first, u_end = starts, np.r_[starts[1:], len(vs)]
    n = min(batch_size, len(u_first))
    lane_user = np.arange(n)
    nxt = n
    q = u_first[:n].copy()  # index into vs
    pos = offsets[vs[q]].copy()
    end = offsets[vs[q] + 1].copy()
    new_s = np.ones(n, dtype=bool)
    new_u = np.ones(n, dtype=bool)
    keep = None
    while len(pos):
        yield UserStep(
            inputs=torch.from_numpy(items[pos]),
            targets=torch.from_numpy(items[pos + 1]),
            new_session=torch.from_numpy(new_s.copy()),
            new_user=torch.from_numpy(new_u.copy()),
            keep=keep,
            sessions=vs[q],
        )
        pos += 1
        new_s[:] = False
        new_u[:] = False
        keep = None
        done = np.flatnonzero(pos + 1 >= end)
        if not len(done):
            continue
        q[done] += 1
        same = done[q[done] < u_end[lane_user[done]]]  # the user has another session
        pos[same], end[same] = offsets[vs[q[same]]], offsets[vs[q[same]] + 1]
        new_s[same] = True
        other = np.setdiff1d(done, same, assume_unique=True)
        n_new = min(len(other), len(u_first) - nxt)
        if n_new:
            fill = other[:n_new]
            users = np.arange(nxt, nxt + n_new)
            nxt += n_new
            lane_user[fill] = users
            q[fill] = u_first[users]
            pos[fill], end[fill] = offsets[vs[q[fill]]], offsets[vs[q[fill]] + 1]
            new_s[fill] = True
            new_u[fill] = True
        if n_new < len(other):
            alive = np.ones(len(pos), dtype=bool)
            alive[other[n_new:]] = False
            k = np.flatnonzero(alive)
            lane_user, q, pos, end = lane_user[k], q[k], pos[k], end[k]
            new_s, new_u = new_s[k], new_u[k]
            keep = torch.from_numpy(k)
