"""Helpers shared by the readers: canonical session order, tables from id lists, one user per session."""

from __future__ import annotations

import numpy as np
import polars as pl

_ROW = "__seqrec_row"


def order_sessions(df: pl.DataFrame, *, sort_within: bool = False) -> pl.DataFrame:
    """Group rows by session, sessions ordered by first event time (ties: first appearance).

    With ``sort_within`` rows are also sorted by time inside each session (stable);
    otherwise their order inside a session is kept as it is.
    """
    keys = [
        pl.col("timestamp").min().over("session_id"),
        pl.col(_ROW).min().over("session_id"),
    ]
    if sort_within:
        keys.append(pl.col("timestamp"))
    keys.append(pl.col(_ROW))
    return df.with_row_index(_ROW).sort(keys).drop(_ROW)


def ordinal_time(df: pl.DataFrame, start: int = 0) -> pl.DataFrame:
    """Replace/add ``timestamp`` with a global ordinal counter in row order (no real time)."""
    return df.with_columns(
        timestamp=pl.int_range(start, start + df.height, dtype=pl.Int64).cast(pl.Float64)
    )


def sessions_frame(
    sessions: list[list[int]], first_session_id: int = 0, first_time: int = 0
) -> pl.DataFrame:
    """Canonical table from item-id lists: ids ``first_session_id..``, ordinal timestamps."""
    lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    sids = np.repeat(np.arange(first_session_id, first_session_id + len(sessions)), lengths)
    items = np.fromiter((i for s in sessions for i in s), dtype=np.int64, count=int(lengths.sum()))
    df = pl.DataFrame({"session_id": sids.astype(np.int64), "item_id": items})
    return ordinal_time(df, first_time)


def split_sessions_by_user(df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Give each extra user of a multi-user session a new session id (max id + 1, ...).

    Returns the table (sessions grouped again, in canonical order) and how many
    new sessions were made. Needs Int64 session ids.
    """
    first_user = pl.col("user_id").first().over("session_id")
    pairs = (
        df.filter(pl.col("user_id") != first_user)
        .select("session_id", "user_id")
        .unique(maintain_order=True)
    )
    if pairs.height == 0:
        return df, 0
    start = int(df["session_id"].max()) + 1
    pairs = pairs.with_columns(new_id=pl.int_range(start, start + pairs.height, dtype=pl.Int64))
    out = (
        df.join(pairs, on=["session_id", "user_id"], how="left", maintain_order="left")
        .with_columns(session_id=pl.coalesce("new_id", "session_id"))
        .drop("new_id")
    )
    return order_sessions(out), pairs.height
