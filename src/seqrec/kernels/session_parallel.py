"""Per-step bookkeeping of session-parallel mini-batches (:mod:`seqrec.data.session_parallel`).

Two numba calls a step instead of ~20 small numpy operations: :func:`advance` moves every lane
one event on and refills the lanes whose session ran out, :func:`events` gathers the step's
input and target items.
"""

from __future__ import annotations

import numba


@numba.njit(cache=True)
def advance(offsets, order, nxt, pos, end, lane_sess, reset, done):  # pragma: no cover - compiled
    """Move every lane one event on; lanes whose session ran out take the next sessions of
    ``order`` from ``nxt`` (reset set). Returns (new nxt, lanes that ran out, of them refilled);
    the lanes that ran out are ``done[:n_done]`` in lane order."""
    n_done = 0
    for b in range(pos.shape[0]):
        pos[b] += 1
        reset[b] = False
        if pos[b] + 1 >= end[b]:
            done[n_done] = b
            n_done += 1
    n_new = min(n_done, order.shape[0] - nxt)
    for k in range(n_new):
        b = done[k]
        sess = order[nxt + k]
        lane_sess[b] = sess
        pos[b] = offsets[sess]
        end[b] = offsets[sess + 1]
        reset[b] = True
    return nxt + n_new, n_done, n_new


@numba.njit(cache=True)
def events(items, pos, inputs, targets):  # pragma: no cover - compiled
    for b in range(pos.shape[0]):
        inputs[b] = items[pos[b]]
        targets[b] = items[pos[b] + 1]
