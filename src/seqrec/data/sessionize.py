"""Cut a user's event stream into sessions at inactivity gaps.

A new session starts at a user's first event and whenever the time since the
same user's previous event is *strictly greater* than ``gap_seconds``: a gap of
exactly ``gap_seconds`` stays in the session (the usual "more than 30 minutes"
rule of GRU4Rec / session-rec preprocessing). Used by the raw-log readers and,
per user history, by the DSIN session features.
"""

from __future__ import annotations

import math

import polars as pl

from seqrec.errors import ConfigError, DataValidationError, SchemaError

_ROW = "__seqrec_row"


def sessionize(
    df: pl.DataFrame,
    gap_seconds: float = 1800.0,
    user_col: str = "user_id",
    time_col: str = "timestamp",
) -> pl.DataFrame:
    """Return ``df`` sorted by user then time with a new Int64 ``session_id`` column.

    Rows of the input may come in any order; ties in time keep their input
    order. Session ids are 0, 1, 2, ... in (user, time) order. All other columns
    are kept; an existing ``session_id`` column is replaced.

    >>> df = pl.DataFrame({"user_id": [1, 1, 1], "timestamp": [0.0, 1800.0, 3601.0]})
    >>> sessionize(df)["session_id"].to_list()
    [0, 0, 1]
    """
    if not isinstance(gap_seconds, int | float) or math.isnan(gap_seconds) or gap_seconds < 0:
        raise ConfigError(f"gap_seconds must be a number >= 0, got {gap_seconds!r}")
    missing = [c for c in (user_col, time_col) if c not in df.columns]
    if missing:
        raise SchemaError(f"sessionize: missing column(s) {missing}; have {df.columns}")
    if not df.schema[time_col].is_numeric():
        raise SchemaError(
            f"sessionize: column '{time_col}' has type {df.schema[time_col]}; "
            "expected numeric Unix seconds"
        )
    for col in (user_col, time_col):
        bad = df[col].is_null()
        if df.schema[col].is_float():
            bad = bad | df[col].is_nan()
        if bad.any():
            row = int(bad.arg_max())
            raise DataValidationError(
                f"sessionize: column '{col}' has a null/NaN value at row {row} "
                f"({int(bad.sum())} such rows)"
            )
    user, time = pl.col(user_col), pl.col(time_col)
    new_session = (user != user.shift(1)) | ((time - time.shift(1)) > gap_seconds)
    out = (
        df.drop("session_id", strict=False)
        .with_row_index(_ROW)
        .sort([user_col, time_col, _ROW])
        .with_columns(
            session_id=(new_session.fill_null(True).cast(pl.Int64).cum_sum() - 1).cast(pl.Int64)
        )
        .drop(_ROW)
    )
    return out.select(["session_id", *[c for c in out.columns if c != "session_id"]])
