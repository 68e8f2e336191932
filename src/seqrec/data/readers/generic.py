"""Read a user's own event log (CSV / TSV / Parquet) into the canonical event table.

Column names are mapped explicitly with ``columns={"session_id": "SessionId", ...}``
(canonical name -> file column) or, when ``columns`` is None, recognised from
common spellings (``SessionId``, ``session``, ``ItemId``, ``Time``, ``visitorid`` ...).
Files without a header have columns named ``column_1``, ``column_2``, ... to map from.

Id columns are read as text and become Int64 when every value is an integer,
stay text ids when the first value is not a number, and otherwise raise an
error naming the row (a column is all numbers or all text: "12" next to "abc"
is a typo, not an id). Rows are never dropped silently.

An error about a cell names the file, the file's column and the row, counted from 1 over
the data rows (the header is not counted), e.g. ``clicks.csv: column 'Time' row 17: cannot
parse '2014-13-45' as a time``; ids beyond the 64-bit range, empty cells, times that go back
inside a session and a session whose rows are not contiguous are reported the same way.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import polars as pl

from seqrec.data.events import ID_COLUMNS, OPTIONAL, REQUIRED, validate_events
from seqrec.data.readers.common import (
    INT64_MAX,
    blank_cells,
    cell_error,
    first_row,
    order_sessions,
    read_delimited,
)
from seqrec.data.sessionize import sessionize
from seqrec.errors import ConfigError, DataNotFoundError, DataValidationError, SchemaError

CANONICAL = REQUIRED + OPTIONAL
PARQUET_SUFFIXES = (".parquet", ".pq")
_SEPARATORS = ("\t", ";", ",", "|")
_ALIASES = {
    "session_id": ("sessionid", "session"),
    "item_id": ("itemid", "item"),
    "timestamp": ("timestamp", "time", "ts", "eventtime", "datetime"),
    "user_id": ("userid", "user", "visitorid", "customerid"),
    "category_id": ("categoryid", "category", "cateid"),
    "event_type": ("eventtype", "event", "behaviortype", "behaviourtype", "behavior", "action"),
}


def detect_separator(path: Path) -> str:
    """Pick the delimiter from the first line (tab, ``;``, ``,`` or ``|``, most frequent wins)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    counts = {s: first.count(s) for s in _SEPARATORS}
    best = max(counts, key=counts.get)
    if counts[best] > 0:
        return best
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def _auto_columns(file_cols: list[str]) -> dict[str, str]:
    norm = {re.sub(r"[^a-z0-9]", "", c.lower()): c for c in file_cols}
    out = {}
    for canon in CANONICAL:
        for alias in (canon.replace("_", ""), *_ALIASES[canon]):
            if alias in norm:
                out[canon] = norm[alias]
                break
    return out


_TIME_HINT = "expected Unix seconds or an ISO 8601 date-time; pass time_format= for other layouts"


def id_error_reason(value: str, f: float | None) -> str:
    """Why ``value`` (read as the float ``f``, None when it is not a number) is not an integer id;
    the Spark reader words its errors with it too."""
    if f is None:
        return f"holds numeric ids but {value!r} is not a number"
    if math.isfinite(f) and f == round(f) and abs(f) >= 2**63:
        return f"{value!r} is outside the 64-bit integer range"
    return f"{value!r} is not an integer id"


def _id_cell_error(s: pl.Series, as_float: pl.Series, bad: pl.Series, source: str, col: str) -> SchemaError:
    row = first_row(bad)
    return cell_error(source, col, row, id_error_reason(s[row - 1], as_float[row - 1]))


def _parse_ids(s: pl.Series, source: str, col: str) -> pl.Series:
    """Ids of file column ``col``: Int64 when every value is an integer, else text ids when
    the first value is not a number; errors name the file, the column and the row."""
    if s.dtype == pl.Utf8:
        empty = blank_cells(s)
        if empty.any():
            raise cell_error(source, col, first_row(empty), "is empty (every event needs this id)",
                             DataValidationError)
        stripped = s.str.strip_chars()
        as_int = stripped.cast(pl.Int64, strict=False)
        if as_int.null_count() == 0:
            return as_int
        as_float = stripped.cast(pl.Float64, strict=False)
        if as_float[0] is None:
            return s  # text ids: the first value is not a number
        whole = as_float.is_finite() & (as_float == as_float.round(0)) & (as_float.abs() < 2.0**63)
        bad = as_int.is_null() & ~whole.fill_null(False)
        if bad.any():
            raise _id_cell_error(s, as_float, bad, source, col)
        return as_int.fill_null(as_float.cast(pl.Int64, strict=False))  # "3.0" is id 3
    if s.dtype.is_integer() or s.dtype.is_float():
        if s.null_count():
            raise cell_error(source, col, first_row(s.is_null()), "is empty (every event needs this id)",
                             DataValidationError)
        if s.dtype.is_integer():
            bad = s > INT64_MAX if s.dtype == pl.UInt64 else pl.Series([False] * s.len())
            as_float = s.cast(pl.Float64)
        else:
            as_float = s.cast(pl.Float64)
            bad = ~(as_float.is_finite() & (as_float == as_float.round(0)) & (as_float.abs() < 2.0**63))
        if bad.any():
            raise _id_cell_error(s.cast(pl.Utf8), as_float, bad, source, col)
        return s.cast(pl.Int64)
    raise SchemaError(f"{source}: column {col!r} has type {s.dtype}; expected integer or text ids")


def _parse_time(s: pl.Series, source: str, col: str, time_format: str | None) -> pl.Series:
    """Times of file column ``col`` as Unix seconds (Float64); errors name file, column, row."""
    if s.null_count():
        raise cell_error(source, col, first_row(s.is_null()), "is empty (every event needs a time)",
                         DataValidationError)
    if isinstance(s.dtype, pl.Datetime):
        return (s.dt.epoch("us") / 1e6).cast(pl.Float64)
    if s.dtype == pl.Date:
        return (s.cast(pl.Int64) * 86400).cast(pl.Float64)
    if s.dtype.is_numeric():
        out = s.cast(pl.Float64)
        bad = ~out.is_finite()
        if bad.any():
            row = first_row(bad)
            raise cell_error(source, col, row, f"{s[row - 1]!r} is not a finite time")
        return out
    if s.dtype != pl.Utf8:
        raise SchemaError(f"{source}: column {col!r} has type {s.dtype}; expected time values")
    empty = blank_cells(s)
    if empty.any():
        raise cell_error(source, col, first_row(empty), "is empty (every event needs a time)",
                         DataValidationError)
    stripped = s.str.strip_chars()
    if time_format is None:
        as_float = stripped.cast(pl.Float64, strict=False)
        if as_float[0] is not None:  # numeric times: every value must be a finite number
            bad = ~as_float.is_finite().fill_null(False)
            if bad.any():
                row = first_row(bad)
                raise cell_error(source, col, row, f"cannot parse {s[row - 1]!r} as a time: the "
                                 "column holds Unix seconds but this is not a finite number")
            return as_float
        try:
            parsed = stripped.str.to_datetime(strict=False, time_unit="us")
        except pl.exceptions.PolarsError:  # no date-time layout fits the first value
            raise cell_error(source, col, 1, f"cannot parse {s[0]!r} as a time ({_TIME_HINT})") from None
        hint = _TIME_HINT
    else:
        try:
            parsed = stripped.str.strptime(pl.Datetime("us"), time_format, strict=False)
        except pl.exceptions.PolarsError as exc:
            raise ConfigError(f"time_format {time_format!r} is not a valid strptime format: "
                              f"{str(exc).splitlines()[0]}") from None
        hint = f"expected time_format {time_format!r}"
    bad = parsed.is_null()
    if bad.any():
        row = first_row(bad)
        raise cell_error(source, col, row, f"cannot parse {s[row - 1]!r} as a time ({hint})")
    return (parsed.dt.epoch("us") / 1e6).cast(pl.Float64)


def _read_raw(path: Path, sep: str | None, has_header: bool) -> pl.DataFrame:
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            return pl.read_parquet(path)
        except Exception as exc:  # any pyarrow/polars failure means the same to the user
            raise DataValidationError(f"{path}: not a readable Parquet file ({exc})") from exc
    if sep is None:
        sep = detect_separator(path)
    return read_delimited(path, separator=sep, has_header=has_header)  # no header: column_1, ...


def _check_order(df: pl.DataFrame, source: str, mapping: dict[str, str]) -> None:
    """File order: time never goes back inside a session, and a session's rows are contiguous."""
    sid, t = df["session_id"], df["timestamp"]
    same = (sid == sid.shift(1)).fill_null(False)
    back = same & (t < t.shift(1)).fill_null(False)
    if back.any():
        row = first_row(back)
        raise cell_error(
            source, mapping.get("timestamp", "timestamp"), row,
            f"time {t[row - 1]} is before the previous event's {t[row - 2]} in session "
            f"{sid[row - 1]!r}; sort events by time within each session (or pass sort=True)",
            DataValidationError,
        )  # fmt: skip
    again = ~same & ~sid.is_first_distinct()
    if again.any():
        row = first_row(again)
        raise cell_error(
            source, mapping["session_id"], row,
            f"session {sid[row - 1]!r} started on an earlier row but other sessions' rows came "
            "in between; group rows by session (or pass sort=True)",
            DataValidationError,
        )  # fmt: skip


def read_events(
    path: str | Path,
    *,
    columns: dict[str, str] | None = None,
    sep: str | None = None,
    has_header: bool = True,
    time_format: str | None = None,
    session_gap: float | None = None,
    sort: bool = False,
) -> pl.DataFrame:
    """Read an event log and return the validated canonical table.

    ``columns`` maps canonical names to file columns; unmapped file columns are
    ignored. Without a ``timestamp`` column the row position is used as time.
    Date-time strings become Unix seconds (ISO 8601, or ``time_format`` in
    strptime syntax; naive times are taken as UTC). With ``session_gap`` (seconds)
    a file with users and no session column is cut into sessions per user.
    Sessions are put in order of their first event; with ``sort=True`` events are
    also grouped by session and sorted by time inside it, otherwise a session's
    rows must already be contiguous and in time order (else an error naming the
    session and row).
    """
    path = Path(path).expanduser()
    source = str(path)
    if not path.is_file():
        raise DataNotFoundError(f"event file not found: {path}")
    if path.stat().st_size == 0:
        raise DataValidationError(f"{source}: file is empty")
    raw = _read_raw(path, sep, has_header)
    if raw.height == 0:
        raise DataValidationError(f"{source}: file has a header but no data rows")

    if columns is None:
        mapping = _auto_columns(raw.columns)
    else:
        unknown = [k for k in columns if k not in CANONICAL]
        if unknown:
            raise ConfigError(
                f"columns: unknown canonical name(s) {unknown}; allowed: {list(CANONICAL)}"
            )
        mapping = dict(columns)
        for canon, file_col in mapping.items():
            if file_col not in raw.columns:
                raise SchemaError(
                    f"{source}: column {file_col!r} (mapped to {canon}) not in the file; "
                    f"the file has columns {raw.columns}"
                )
    if "item_id" not in mapping:
        raise SchemaError(
            f"{source}: no item column found in {raw.columns}; "
            "map it with columns={'item_id': '<file column>', ...}"
        )
    df = raw.select([pl.col(f).alias(c) for c, f in mapping.items()])

    conv = {}
    for col in df.columns:
        if col in ID_COLUMNS:
            conv[col] = _parse_ids(df[col], source, mapping[col])
        elif col == "timestamp":
            conv[col] = _parse_time(df[col], source, mapping[col], time_format)
        elif col == "event_type":
            conv[col] = df[col].cast(pl.Utf8)
    df = df.with_columns(**conv)
    if "timestamp" not in df.columns:
        df = df.with_columns(timestamp=pl.int_range(df.height, dtype=pl.Int64).cast(pl.Float64))

    if session_gap is not None:
        if "session_id" in df.columns:
            raise ConfigError(
                f"{source}: session_gap given but the file has a session column "
                f"({mapping['session_id']!r}); drop one of the two"
            )
        if "user_id" not in df.columns or "timestamp" not in mapping:
            raise SchemaError(
                f"{source}: session_gap needs a user column and a time column; "
                f"the file has {raw.columns}"
            )
        try:
            df = sessionize(df, gap_seconds=session_gap)
        except (DataValidationError, SchemaError) as exc:
            raise type(exc)(f"{source}: {exc}") from exc
        sort = True
    elif "session_id" not in df.columns:
        raise SchemaError(
            f"{source}: no session column found in {raw.columns}; map it with "
            "columns={'session_id': ...} or give session_gap= with a user column"
        )
    df = df.select([c for c in CANONICAL if c in df.columns])
    if not sort:
        _check_order(df, source, mapping)
        df = validate_events(df, source=source)
    df = order_sessions(df, sort_within=sort)
    return validate_events(df, source=source)
