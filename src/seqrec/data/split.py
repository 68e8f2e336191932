"""Hold-out splits of a canonical event table (whole sessions go to one side).

Both splits follow GRU4Rec / SR-GNN practice: after choosing the held-out
sessions, train sessions shorter than ``min_session_length`` are dropped, then
held-out events on items that do not occur in the (filtered) train part are
dropped, then held-out sessions left shorter than ``min_session_length`` are
dropped. So every held-out item occurs in the train part. Row order is kept.
"""

from __future__ import annotations

import polars as pl

from seqrec.errors import ConfigError, SchemaError

DAY = 86400.0


def _need(df: pl.DataFrame, cols: tuple[str, ...], fn: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SchemaError(f"{fn}: missing column(s) {missing}; have {df.columns}")


def _min_length(df: pl.DataFrame, min_session_length: int) -> pl.DataFrame:
    if min_session_length <= 1:
        return df
    return df.filter(pl.len().over("session_id") >= min_session_length)


def restrict_to_train(
    train: pl.DataFrame, held: pl.DataFrame, min_session_length: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Length-filter ``train``, keep held-out events on train items, length-filter them."""
    train = _min_length(train, min_session_length)
    held = held.filter(pl.col("item_id").is_in(train["item_id"].unique().implode()))
    return train, _min_length(held, min_session_length)


def time_split(
    df: pl.DataFrame, *, test_days: float, min_session_length: int = 2
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """GRU4Rec-style split: a session is test if its last event is within ``test_days``.

    "Within" means ``last_event_time >= max_time - test_days * 86400`` (as in
    GRU4Rec's ``split_data_org``). Returns ``(train, test)``.
    """
    _need(df, ("session_id", "item_id", "timestamp"), "time_split")
    if not test_days > 0:
        raise ConfigError(f"time_split: test_days must be > 0, got {test_days!r}")
    if min_session_length < 1:
        raise ConfigError(f"min_session_length must be >= 1, got {min_session_length!r}")
    cutoff = df["timestamp"].max() - test_days * DAY
    is_test = pl.col("timestamp").max().over("session_id") >= cutoff
    train, test = df.filter(~is_test), df.filter(is_test)
    return restrict_to_train(train, test, min_session_length)


def tail_sessions_split(
    df: pl.DataFrame, fraction: float, min_session_length: int = 2
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Hold out the last ``fraction`` of sessions in row order (for data without real time).

    The first ``round(n_sessions * (1 - fraction))`` sessions stay in train, as in
    SR-GNN's ``split_validation``. Sessions must be contiguous (canonical tables are).
    Returns ``(train, held_out)``.
    """
    _need(df, ("session_id", "item_id"), "tail_sessions_split")
    if not 0 < fraction < 1:
        raise ConfigError(f"tail_sessions_split: fraction must be in (0, 1), got {fraction!r}")
    if min_session_length < 1:
        raise ConfigError(f"min_session_length must be >= 1, got {min_session_length!r}")
    starts = (pl.col("session_id") != pl.col("session_id").shift(1)).fill_null(True)
    rank = starts.cast(pl.Int64).cum_sum() - 1
    n_sessions = int(df.select(starts.sum()).item()) if df.height else 0
    n_train = int(round(n_sessions * (1.0 - fraction)))
    is_held = rank >= n_train
    train, held = df.filter(~is_held), df.filter(is_held)
    return restrict_to_train(train, held, min_session_length)
