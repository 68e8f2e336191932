"""Helpers shared by the readers: canonical session order, tables from id lists, one user per
session, and text cells parsed with errors that name the file, the column and the (1-based data) row."""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl

from seqrec.errors import DataValidationError, SchemaError, SeqrecError

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


# -- reading delimited text with errors that name the file, the column and the row ---------------
#
# "row N" in these messages is the N-th data row of the file, 1-based, the header not counted
# (a file with a header: row N is on line N + 1). Every cell is read as text first and then
# converted by the helpers below, so a bad cell is reported where it is, never as a raw polars
# error from a typed read.

INT64_MAX = 2**63 - 1


def cell_error(
    where: str | Path, column: str, row: int, msg: str, cls: type[SeqrecError] = SchemaError
) -> SeqrecError:
    """``{where}: column 'Time' row 17: {msg}`` (``row`` 1-based, header not counted)."""
    return cls(f"{where}: column {column!r} row {row}: {msg}")


def first_row(mask: pl.Series) -> int:
    """1-based row of the first True of a boolean Series (nulls count as False)."""
    return int(mask.fill_null(False).arg_max()) + 1


def _file_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":  # gzip, which polars reads transparently
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataValidationError(f"{path}: not a readable gzip file ({exc})") from exc
    return data


def _rows_of(path: Path, sep: str) -> list[list[str]]:
    """The file's rows as Python's csv module splits them (for error messages only)."""
    text = _file_bytes(path).decode("utf-8", errors="replace")
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
    except csv.Error:
        return [line.split(sep) for line in text.splitlines()]


def _layout_error(
    path: Path, sep: str, has_header: bool, width: int | None, exc: Exception
) -> SeqrecError:
    """Why polars could not split the file: the first row whose field count is off, if any
    (``width``: the number of columns the caller named, else the header's, else the most
    common count)."""
    rows = _rows_of(path, sep)
    if width is None and has_header:
        width = len(rows[0]) if rows else 0
    elif width is None:
        counts = Counter(len(r) for r in rows if r)
        width = counts.most_common(1)[0][0] if counts else 0
    for i, fields in enumerate(rows[1:] if has_header else rows, 1):
        if fields and len(fields) != width:
            return SchemaError(
                f"{path}: row {i} has {len(fields)} fields, expected {width} "
                f"(separator {sep!r})"
            )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SchemaError(f"{path}: cannot parse as delimited text (separator {sep!r}): {first}")


def _not_utf8(path: Path) -> bool:
    try:
        _file_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def read_delimited(
    path: str | Path,
    *,
    separator: str,
    has_header: bool = True,
    new_columns: list[str] | None = None,
) -> pl.DataFrame:
    """Every column of a delimited (optionally gzipped) text file as text.

    Errors name the file: an empty file (DataValidationError), a row with more fields than
    the header (SchemaError naming the row), bytes that are not UTF-8 (SchemaError naming the
    column and row). A row with fewer fields has nulls in the missing cells. Without a header
    the columns are ``new_columns`` or ``column_1``, ``column_2``, ...
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise DataValidationError(f"{path}: file is empty")
    try:
        df = pl.read_csv(
            path, separator=separator, has_header=has_header, infer_schema=False,
            encoding="utf8-lossy", new_columns=new_columns,
        )  # fmt: skip
    except pl.exceptions.NoDataError as exc:
        raise DataValidationError(f"{path}: file is empty") from exc
    except (pl.exceptions.PolarsError, OSError) as exc:
        width = len(new_columns) if new_columns is not None else None
        raise _layout_error(path, separator, has_header, width, exc) from exc
    if new_columns is not None and df.width != len(new_columns):
        raise SchemaError(
            f"{path}: expected {len(new_columns)} columns ({', '.join(new_columns)}), "
            f"found {df.width} (separator {separator!r})"
        )
    if not has_header and new_columns is None:  # 1-based names, whatever polars calls them
        df.columns = [f"column_{i + 1}" for i in range(df.width)]
    # polars replaced undecodable bytes with U+FFFD; name the first such cell
    hit = next((c for c in df.columns if df[c].str.contains("\ufffd", literal=True).any()), None)
    if (hit is not None or any("\ufffd" in c for c in df.columns)) and _not_utf8(path):
        if hit is None:
            raise SchemaError(f"{path}: the header holds bytes that are not valid UTF-8")
        row = first_row(df[hit].str.contains("\ufffd", literal=True))
        raise cell_error(path, hit, row, "holds bytes that are not valid UTF-8")
    return df


def blank_cells(s: pl.Series) -> pl.Series:
    """True where a text cell is missing or only whitespace."""
    return s.is_null() | (s.str.strip_chars() == "")


def require_cells(df: pl.DataFrame, columns: Iterable[str], where: str | Path) -> None:
    """Every cell of ``columns`` (text) is non-empty, else an error naming column and row."""
    for c in columns:
        bad = blank_cells(df[c])
        if bad.any():
            raise cell_error(where, c, first_row(bad), "is empty", DataValidationError)


def parse_int(
    s: pl.Series, where: str | Path, column: str | None = None, *, nullable: bool = False,
    lo: int | None = None, hi: int | None = None, what: str = "an integer",
) -> pl.Series:
    """Text cells -> Int64 (``lo <= v <= hi`` when given); errors name column and row."""
    column = column or s.name
    stripped = s.str.strip_chars()
    empty = blank_cells(s)
    if not nullable and empty.any():
        raise cell_error(where, column, first_row(empty), "is empty", DataValidationError)
    out = stripped.cast(pl.Int64, strict=False)
    bad = out.is_null() & ~empty
    if bad.any():
        row = first_row(bad)
        value = s[row - 1]
        try:
            big = abs(int(value.strip())) > INT64_MAX
        except ValueError:
            big = False
        why = "is outside the 64-bit integer range" if big else f"is not {what}"
        raise cell_error(where, column, row, f"{value!r} {why}")
    out_of = pl.Series([False] * len(out))
    if lo is not None:
        out_of = out_of | (out < lo).fill_null(False)
    if hi is not None:
        out_of = out_of | (out > hi).fill_null(False)
    if out_of.any():
        row = first_row(out_of)
        rng = f"from {lo}" if hi is None else f"up to {hi}" if lo is None else f"from {lo} to {hi}"
        raise cell_error(where, column, row, f"{s[row - 1]!r} is not {what} {rng}",
                         DataValidationError)
    return out.alias(s.name)


def parse_float(
    s: pl.Series, where: str | Path, column: str | None = None, *, nullable: bool = False,
    lo: float | None = None, what: str = "a finite number",
) -> pl.Series:
    """Text cells -> finite Float64 (``>= lo`` when given); errors name column and row."""
    column = column or s.name
    empty = blank_cells(s)
    if not nullable and empty.any():
        raise cell_error(where, column, first_row(empty), "is empty", DataValidationError)
    out = s.str.strip_chars().cast(pl.Float64, strict=False)
    bad = (out.is_null() | out.is_nan() | out.is_infinite()).fill_null(True) & ~empty
    if bad.any():
        row = first_row(bad)
        raise cell_error(where, column, row, f"{s[row - 1]!r} is not {what}")
    if lo is not None and (low := (out < lo).fill_null(False)).any():
        row = first_row(low)
        raise cell_error(where, column, row, f"{s[row - 1]!r} is below {lo:g}", DataValidationError)
    return out.alias(s.name)


def parse_date(s: pl.Series, fmt: str, where: str | Path, column: str | None = None) -> pl.Series:
    """Text cells -> Date in strptime format ``fmt``; errors name column and row."""
    column = column or s.name
    empty = blank_cells(s)
    if empty.any():
        raise cell_error(where, column, first_row(empty), "is empty", DataValidationError)
    out = s.str.strip_chars().str.strptime(pl.Date, fmt, strict=False)
    bad = out.is_null()
    if bad.any():
        row = first_row(bad)
        raise cell_error(where, column, row, f"cannot parse {s[row - 1]!r} as a date ({fmt})")
    return out.alias(s.name)


def duplicate_key(s: pl.Series, where: str | Path, column: str | None = None) -> None:
    """A lookup table's key column holds each value once, else an error naming the row."""
    dup = s.is_duplicated() & ~s.is_first_distinct()
    if dup.any():
        row = first_row(dup)
        raise cell_error(where, column or s.name, row, f"{s[row - 1]!r} is given twice",
                         DataValidationError)
