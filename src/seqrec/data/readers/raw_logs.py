"""Raw event logs: DIGINETICA item views, Taobao UserBehavior, RetailRocket user sessions.

Each ``read_*`` returns a canonical table; the split is made by :mod:`seqrec.data.split`
with the dataset's recipe (:mod:`seqrec.data.registry`). The Taobao file is parsed by
:func:`read_taobao_raw` only; the session, CTR and purchase recipes all start from it.
Cells are read as text and converted with errors that name the file, the column and the
1-based data row (:mod:`seqrec.data.readers.common`).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seqrec.data.events import validate_events
from seqrec.data.readers.common import (
    INT64_MAX,
    cell_error,
    first_row,
    order_sessions,
    parse_date,
    parse_int,
    read_delimited,
    require_cells,
    split_sessions_by_user,
)
from seqrec.data.readers.generic import read_events
from seqrec.data.sessionize import sessionize
from seqrec.errors import DataNotFoundError, DataValidationError, SchemaError

# Official UserBehavior window: 2017-11-25 00:00:00 to 2017-12-03 23:59:59 (UTC+8).
TAOBAO_START = 1511539200
TAOBAO_END = 1512316800  # exclusive
TAOBAO_COLUMNS = ("user_id", "item_id", "category_id", "event_type", "timestamp")
TAOBAO_FILE = "UserBehavior_head.csv"
TAOBAO_BEHAVIOURS = ("pv", "cart", "fav", "buy")
SESSION_GAP = 1800.0
MAX_UNIX_SECONDS = 4_102_444_800  # 2100-01-01: a larger "Unix time" is a corrupt cell
# retailrocket_users: test = sessions ending in the last 21 days (see read_retailrocket_users).
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


def read_taobao_raw(path: str | Path) -> pl.DataFrame:
    """``UserBehavior.csv`` (no header) as it is: the one parse of this file.

    Columns ``user_id``, ``item_id``, ``category_id`` (Int64), ``event_type`` (pv / cart /
    fav / buy) and ``timestamp`` (Unix seconds, Float64), in file order."""
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
    bad = df.with_row_index().filter(~pl.col("event_type").is_in(TAOBAO_BEHAVIOURS))
    if bad.height:
        raise DataValidationError(f"{path}: column 'event_type' row {int(bad['index'][0]) + 1}: "
                                  f"{bad['event_type'][0]!r} is not one of {list(TAOBAO_BEHAVIOURS)}")
    return df


def in_taobao_window(df: pl.DataFrame, where: str | Path = "taobao") -> pl.DataFrame:
    """The events of the official window (``TAOBAO_START <= t < TAOBAO_END``)."""
    df = df.filter(pl.col("timestamp").is_between(TAOBAO_START, TAOBAO_END, closed="left"))
    if df.height == 0:
        raise DataValidationError(f"{where}: no event in the window [{TAOBAO_START}, {TAOBAO_END})")
    return df


def read_taobao_userbehavior(path: str | Path) -> pl.DataFrame:
    """Taobao events in the official window, cut into 30-min sessions per user."""
    df = sessionize(in_taobao_window(read_taobao_raw(path), path), gap_seconds=SESSION_GAP)
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


def read_diginetica_raw_sample(folder: Path) -> pl.DataFrame:
    """SR-GNN's ``sample`` recipe without the item-support filter (it would empty the sample):
    the views with 1-event sessions dropped."""
    full = read_diginetica_views(Path(folder) / "sample_train-item-views.csv")
    return full.filter(pl.len().over("session_id") >= 2)


def read_taobao(folder: Path) -> pl.DataFrame:
    return read_taobao_userbehavior(Path(folder) / TAOBAO_FILE)


def read_retailrocket_users(folder: Path) -> pl.DataFrame:
    """Test = sessions ending in the last 21 days: 380 of 2,952 sessions (12.9%).

    The sample is sparse (5,566 items in 10,080 events, 3,297 of them seen once),
    so restricting held-out events to train items keeps only 100 of those 380
    sessions. Longer windows do not fix that (56 days: about 200 test sessions,
    but the train part of the validation split falls below 600 sessions), so the
    window is chosen on the share of sessions it holds before the item filter.
    """
    return read_retailrocket_sessions(Path(folder) / "sample_retailrocket.csv")
