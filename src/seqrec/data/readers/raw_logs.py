"""Raw event logs: DIGINETICA item views, Taobao UserBehavior, RetailRocket user sessions.

Each ``read_*`` returns the full canonical table; each ``load_*`` makes the
dataset's default time split (test carved from the whole log, validation carved
the same way from the rest). Cells are read as text and converted with errors that name
the file, the column and the 1-based data row (:mod:`seqrec.data.readers.common`).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seqrec.data.events import validate_events
from seqrec.data.readers.common import (
    INT64_MAX,
    cell_error,
    first_row,
    make_splits,
    order_sessions,
    parse_date,
    parse_int,
    read_delimited,
    require_cells,
    split_sessions_by_user,
)
from seqrec.data.readers.generic import read_events
from seqrec.data.sessionize import sessionize
from seqrec.data.split import time_split
from seqrec.data.splits import SessionSplits
from seqrec.errors import DataNotFoundError, DataValidationError, SchemaError

# Official UserBehavior window: 2017-11-25 00:00:00 to 2017-12-03 23:59:59 (UTC+8).
TAOBAO_START = 1511539200
TAOBAO_END = 1512316800  # exclusive
TAOBAO_COLUMNS = ("user_id", "item_id", "category_id", "event_type", "timestamp")
SESSION_GAP = 1800.0
MAX_UNIX_SECONDS = 4_102_444_800  # 2100-01-01: a larger "Unix time" is a corrupt cell
# retailrocket_users: test = sessions ending in the last 21 days (see load_retailrocket_users).
RETAILROCKET_USERS_TEST_DAYS = 21.0


def _read_text(path: Path, **kwargs: object) -> pl.DataFrame:
    """The file's cells as text (see :func:`read_delimited`); at least one data row."""
    if not path.is_file():
        raise DataNotFoundError(f"{path}: file not found")
    df = read_delimited(path, **kwargs)
    if df.height == 0:
        raise DataValidationError(f"{path}: no data rows")
    return df


def read_diginetica_views(path: str | Path) -> pl.DataFrame:
    """``train-item-views.csv`` (``;``): timestamp = eventdate (UTC midnight) + timeframe / 1000.

    Rows are sorted by ``timeframe`` inside each session, as SR-GNN does. The
    ``user_id`` column is dropped: most rows are ``NA`` and no user has two sessions.
    """
    path = Path(path)
    df = _read_text(path, separator=";")
    need = ["session_id", "item_id", "timeframe", "eventdate"]
    if missing := [c for c in need if c not in df.columns]:
        raise SchemaError(f"{path}: missing column(s) {missing}; the file has {df.columns}")
    day = parse_date(df["eventdate"], "%Y-%m-%d", path)
    df = pl.DataFrame({
        "session_id": parse_int(df["session_id"], path, what="an integer session id"),
        "item_id": parse_int(df["item_id"], path, what="an integer item id"),
        "timestamp": day.cast(pl.Int64).cast(pl.Float64) * 86400.0
        + parse_int(df["timeframe"], path, lo=0, what="a time in milliseconds") / 1000.0,
    })  # fmt: skip
    return validate_events(order_sessions(df, sort_within=True), source=str(path))


def read_taobao_userbehavior(
    path: str | Path, *, window: tuple[int, int] | None = (TAOBAO_START, TAOBAO_END)
) -> pl.DataFrame:
    """``UserBehavior.csv`` (no header), events in ``window`` (``start <= t < end``), 30-min sessions."""
    path = Path(path)
    df = _read_text(path, separator=",", has_header=False, new_columns=list(TAOBAO_COLUMNS))
    require_cells(df, ["event_type"], path)
    df = df.with_columns(
        parse_int(df["user_id"], path, what="an integer user id"),
        parse_int(df["item_id"], path, what="an integer item id"),
        parse_int(df["category_id"], path, what="an integer category id"),
        parse_int(df["timestamp"], path, lo=0, hi=MAX_UNIX_SECONDS, what="a Unix time in seconds")
        .cast(pl.Float64),
    )
    if window is not None:
        df = df.filter(pl.col("timestamp").is_between(window[0], window[1], closed="left"))
        if df.height == 0:
            raise DataValidationError(f"{path}: no event in the window [{window[0]}, {window[1]})")
    df = sessionize(df, gap_seconds=SESSION_GAP)
    return validate_events(order_sessions(df), source=str(path))


def read_retailrocket_sessions(path: str | Path) -> pl.DataFrame:
    """SR-GTM ``sample_retailrocket.csv`` (tab-separated): given 30-min ``session_id``.

    Two given sessions (8701, 12599) mix two visitors, an upstream sessionizing
    slip; each extra visitor's events get a new session id so a session has one user.
    """
    df = read_events(
        path,
        columns={
            "session_id": "session_id", "item_id": "item_id",
            "timestamp": "timestamp", "user_id": "user_id",
        },
    )  # fmt: skip
    if df.schema["session_id"] != pl.Int64:  # text ids: new ids for split sessions need numbers
        raise cell_error(path, "session_id", 1,
                         f"{df['session_id'][0]!r} is not an integer session id")  # fmt: skip
    if int(df["session_id"].max()) >= INT64_MAX - df.height:
        row = first_row(df["session_id"] == df["session_id"].max())
        raise cell_error(path, "session_id", row, "is too large: new session ids must fit in 64 bits")
    df, _ = split_sessions_by_user(df)
    return validate_events(df, source=str(path))


def _time_splits(
    name: str, full: pl.DataFrame, days: float, *, has_users: bool, how: str
) -> SessionSplits:
    train_full, test = time_split(full, test_days=days)
    train, valid = time_split(train_full, test_days=days)
    return make_splits(
        name, train=train, valid=valid, test=test, train_full=train_full,
        has_time=True, has_users=has_users, how=how,
    )  # fmt: skip


def load_diginetica_raw_sample(folder: Path) -> SessionSplits:
    """SR-GNN's ``sample`` recipe without the item-support filter (it would empty the sample)."""
    full = read_diginetica_views(Path(folder) / "sample_train-item-views.csv")
    full = full.filter(pl.len().over("session_id") >= 2)
    how = (
        "Time split as in SR-GNN: 1-event sessions dropped, test = sessions whose last event "
        "is in the last 7 days, valid = the same rule inside train_full; held-out events on "
        "items unseen in their train part dropped, then sessions < 2 events dropped. SR-GNN's "
        "item-support >= 5 filter is NOT applied (it would wipe out this small sample)."
    )
    return _time_splits("diginetica_raw_sample", full, 7.0, has_users=False, how=how)


def load_taobao(folder: Path) -> SessionSplits:
    full = read_taobao_userbehavior(Path(folder) / "UserBehavior_head.csv")
    how = (
        "Events outside 2017-11-25..2017-12-03 (UTC+8) dropped, sessions = 30-min gaps per "
        "user, all behaviours (pv/cart/fav/buy) kept in the sequence; test = sessions whose "
        "last event is in the last day, valid = the same rule inside train_full; held-out "
        "items restricted to their train part; sessions < 2 events dropped."
    )
    return _time_splits("taobao", full, 1.0, has_users=True, how=how)


def load_retailrocket_users(folder: Path) -> SessionSplits:
    """Test = sessions ending in the last 21 days: 380 of 2,952 sessions (12.9%).

    The sample is sparse (5,566 items in 10,080 events, 3,297 of them seen once),
    so restricting held-out events to train items keeps only 100 of those 380
    sessions. Longer windows do not fix that (56 days: about 200 test sessions,
    but the train part of the validation split falls below 600 sessions), so the
    window is chosen on the share of sessions it holds before the item filter.
    """
    full = read_retailrocket_sessions(Path(folder) / "sample_retailrocket.csv")
    days = RETAILROCKET_USERS_TEST_DAYS
    last = full.group_by("session_id").agg(pl.col("timestamp").max())["timestamp"]
    in_window = int((last >= last.max() - days * 86400).sum())
    share = f"{in_window:,} of {last.len():,} sessions, {in_window / last.len():.1%}"
    how = (
        "Given 30-min session ids (the 2 that mix two visitors are split per visitor); "
        f"test = sessions whose last event is in the last {days:g} days ({share} before the "
        "item filter: the sample is sparse, so few held-out events are on train items), "
        "valid = the same rule inside train_full; held-out items restricted to their train "
        "part; sessions < 2 events dropped."
    )
    return _time_splits("retailrocket_users", full, days, has_users=True, how=how)
