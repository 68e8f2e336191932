"""The canonical event table and its encoded, model-ready form.

Every reader produces a polars DataFrame with the columns

=============  =========================  ===========================================
column         dtype                      meaning
=============  =========================  ===========================================
session_id     Int64 or Utf8              session the event belongs to
item_id        Int64 or Utf8              raw item id (mapped by :class:`Vocab`)
timestamp      Float64                    Unix seconds; datasets without real time use
                                          the event's ordinal position (``has_time`` False)
user_id        Int64 or Utf8, optional    present where the data has users
category_id    Int64 or Utf8, optional    item category where the data has it
event_type     Utf8, optional             pv / cart / fav / buy ... where present
=============  =========================  ===========================================

Rows are ordered by session (sessions in order of their first event) and by
time within a session. :func:`validate_events` enforces the schema with
errors that name the source file, the column and the offending row.
:class:`SessionArrays` is the encoded form the models and evaluators consume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from seqrec.data.vocab import Vocab
from seqrec.errors import DataValidationError, SchemaError

REQUIRED = ("session_id", "item_id", "timestamp")
OPTIONAL = ("user_id", "category_id", "event_type")
ID_COLUMNS = ("session_id", "item_id", "user_id", "category_id")
_ID_TYPES = (pl.Int64, pl.Int32, pl.UInt32, pl.UInt64, pl.Int16, pl.Int8, pl.UInt16, pl.UInt8, pl.Utf8)


def validate_events(df: pl.DataFrame, source: str = "<table>") -> pl.DataFrame:
    """Check ``df`` against the canonical schema; return it with canonical dtypes.

    Raises :class:`SchemaError` for missing/extra columns or wrong types and
    :class:`DataValidationError` for empty tables, null/NaN/empty ids and
    timestamps that go backwards inside a session.
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise SchemaError(
            f"{source}: missing column(s) {missing}; have {df.columns}, need {list(REQUIRED)}"
        )
    extra = [c for c in df.columns if c not in REQUIRED + OPTIONAL]
    if extra:
        raise SchemaError(
            f"{source}: unexpected column(s) {extra}; allowed: {list(REQUIRED + OPTIONAL)}"
        )
    if df.height == 0:
        raise DataValidationError(f"{source}: no events (empty table)")
    casts = {}
    for col in ID_COLUMNS:
        if col not in df.columns:
            continue
        dt = df.schema[col]
        if dt in (pl.Float32, pl.Float64):
            vals = df[col]
            bad = vals.is_nan() | vals.is_null() | (vals != vals.round(0))
            if bad.any():
                row = int(bad.arg_max())
                raise SchemaError(
                    f"{source}: column '{col}' must hold integer or string ids; row {row} has {vals[row]!r}"
                )
            casts[col] = pl.col(col).cast(pl.Int64)
        elif dt not in _ID_TYPES:
            raise SchemaError(f"{source}: column '{col}' has type {dt}; expected integer or string ids")
        elif dt != pl.Utf8:
            casts[col] = pl.col(col).cast(pl.Int64)
    ts_type = df.schema["timestamp"]
    if not ts_type.is_numeric():
        raise SchemaError(
            f"{source}: column 'timestamp' has type {ts_type}; expected numeric Unix seconds"
        )
    casts["timestamp"] = pl.col("timestamp").cast(pl.Float64)
    if "event_type" in df.columns:
        casts["event_type"] = pl.col("event_type").cast(pl.Utf8)
    df = df.with_columns(**casts)
    for col in [c for c in ID_COLUMNS if c in df.columns] + ["timestamp"]:
        s = df[col]
        bad = s.is_null()
        if s.dtype == pl.Float64:
            bad = bad | s.is_nan()
        if s.dtype == pl.Utf8:
            bad = bad | (s.str.strip_chars() == "")
        if bad.any():
            row = int(bad.arg_max())
            raise DataValidationError(
                f"{source}: column '{col}' has a null/NaN/empty value at row {row} "
                f"({int(bad.sum())} such rows)"
            )
    # time must not go backwards inside a session (rows are in file order)
    back = (df["session_id"] == df["session_id"].shift(1)) & (
        df["timestamp"] < df["timestamp"].shift(1)
    )
    if back.fill_null(False).any():
        row = int(back.fill_null(False).arg_max())
        raise DataValidationError(
            f"{source}: timestamps out of order within session {df['session_id'][row]!r} "
            f"at row {row} ({df['timestamp'][row - 1]} then {df['timestamp'][row]}); "
            "sort events by time within each session"
        )
    # a session's rows must be contiguous
    starts = df["session_id"] != df["session_id"].shift(1)
    n_runs = int(starts.fill_null(True).sum())
    n_sessions = df["session_id"].n_unique()
    if n_runs != n_sessions:
        raise DataValidationError(
            f"{source}: rows of a session are not contiguous ({n_runs} runs for {n_sessions} "
            "sessions); group rows by session_id"
        )
    return df


@dataclass
class SessionArrays:
    """Sessions as flat int64 arrays: session ``s`` is ``items[offsets[s]:offsets[s+1]]``.

    ``users[s]`` (index into the user vocabulary) is set where the data has users;
    ``times`` holds the per-event timestamps.
    """

    items: np.ndarray  # (n_events,) int64 vocabulary indices
    offsets: np.ndarray  # (n_sessions + 1,) int64
    times: np.ndarray  # (n_events,) float64
    users: np.ndarray | None = None  # (n_sessions,) int64 or None

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def session(self, s: int) -> np.ndarray:
        return self.items[self.offsets[s] : self.offsets[s + 1]]

    @classmethod
    def from_events(
        cls, df: pl.DataFrame, vocab: Vocab, user_vocab: Vocab | None = None
    ) -> SessionArrays:
        """Encode a canonical (validated, session-contiguous) table; unknown items become OOV."""
        items = vocab.encode_series(df["item_id"])
        starts = (df["session_id"] != df["session_id"].shift(1)).fill_null(True).to_numpy()
        first = np.flatnonzero(starts)
        offsets = np.append(first, len(items)).astype(np.int64)
        users = None
        if user_vocab is not None and "user_id" in df.columns:
            users = user_vocab.encode_series(df["user_id"][first.tolist()])
        return cls(
            items=items,
            offsets=offsets,
            times=df["timestamp"].to_numpy().astype(np.float64),
            users=users,
        )

    @classmethod
    def from_lists(cls, sessions: list[list[int]]) -> SessionArrays:
        """Small helper for tests: sessions given as lists of vocabulary indices."""
        lengths = np.array([len(s) for s in sessions], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = np.array([i for s in sessions for i in s], dtype=np.int64)
        return cls(items=items, offsets=offsets, times=np.arange(len(items), dtype=np.float64))
