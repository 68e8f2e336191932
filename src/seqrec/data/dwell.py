"""Dwell-time aware training data (Bogina & Kuflik, RecSys 2017 workshop).

The dwell time of an event is the time until the next event of the same
session (the last event of a session has no measurable dwell and is kept
once). An event with dwell ``d`` is repeated ``min(d // bucket + 1, max_repeat)``
times, so items the user stayed on longer weigh more in training. Applied to
training data only; evaluation runs on the original sessions.
"""

from __future__ import annotations

import numpy as np

from seqrec.data.events import SessionArrays


def dwell_times(arrays: SessionArrays) -> np.ndarray:
    """(n_events,) seconds to the next event in the session; NaN for a session's last event."""
    dt = np.full(arrays.n_events, np.nan)
    if arrays.n_events > 1:
        dt[:-1] = np.diff(arrays.times)
    last = arrays.offsets[1:] - 1
    dt[last[last >= 0]] = np.nan
    return dt


def repeat_by_dwell(arrays: SessionArrays, bucket: float, max_repeat: int = 10) -> SessionArrays:
    """Repeat each event by its dwell time (see module docstring); vectorised."""
    if bucket <= 0:
        raise ValueError(f"dwell bucket must be > 0 seconds, got {bucket}")
    if max_repeat < 1:
        raise ValueError(f"dwell max_repeat must be >= 1, got {max_repeat}")
    dt = dwell_times(arrays)
    reps = np.where(np.isnan(dt), 1, np.floor(np.nan_to_num(dt, nan=0.0).clip(min=0) / bucket) + 1)
    reps = np.minimum(reps, max_repeat).astype(np.int64)
    session_of = np.repeat(np.arange(arrays.n_sessions), arrays.lengths)
    new_len = np.bincount(session_of, weights=reps, minlength=arrays.n_sessions).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(new_len)]).astype(np.int64)
    return SessionArrays(
        items=np.repeat(arrays.items, reps),
        offsets=offsets,
        times=np.repeat(arrays.times, reps),
        users=arrays.users,
    )
