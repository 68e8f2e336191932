"""Read a user's own event log (CSV / TSV / Parquet) into the canonical event table.

Column names are mapped explicitly with ``columns={"session_id": "SessionId", ...}``
(canonical name -> file column) or, when ``columns`` is None, recognised from
common spellings (``SessionId``, ``session``, ``ItemId``, ``Time``, ``visitorid`` ...).
Files without a header have columns named ``column_1``, ``column_2``, ... to map from.

Id columns are read as text and become Int64 when every value is an integer,
stay text ids when the first value is not a number, and otherwise raise an
error naming the row (a column is all numbers or all text: "12" next to "abc"
is a typo, not an id). Rows are never dropped silently.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from seqrec.data.events import ID_COLUMNS, OPTIONAL, REQUIRED, validate_events
from seqrec.data.readers.common import order_sessions
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


def _bad_row(source: str, col: str, s: pl.Series, bad: pl.Series, what: str) -> SchemaError:
    row = int(bad.arg_max())
    return SchemaError(
        f"{source}: column '{col}' {what}; row {row} has {s[row]!r} ({int(bad.sum())} such rows)"
    )


def _parse_ids(s: pl.Series, source: str, col: str) -> pl.Series:
    if s.dtype != pl.Utf8:
        return s
    stripped = s.str.strip_chars()
    as_int = stripped.cast(pl.Int64, strict=False)
    if as_int.null_count() == s.null_count():
        return as_int
    as_float = stripped.cast(pl.Float64, strict=False)
    first = s.drop_nulls()
    numeric = first.len() > 0 and as_float[int(s.is_not_null().arg_max())] is not None
    if not numeric:
        return s  # text ids (validate_events rejects empty strings)
    bad = as_float.is_null() & s.is_not_null()
    if bad.any():
        raise _bad_row(source, col, s, bad, "holds numeric ids but a value is not a number")
    return as_float  # validate_events names the row if a value is not integral (e.g. 1.5)


def _parse_time(s: pl.Series, source: str, time_format: str | None) -> pl.Series:
    col = "timestamp"
    if isinstance(s.dtype, pl.Datetime):
        return (s.dt.epoch("us") / 1e6).cast(pl.Float64)
    if s.dtype == pl.Date:
        return (s.cast(pl.Int64) * 86400).cast(pl.Float64)
    if s.dtype.is_numeric():
        return s.cast(pl.Float64)
    if s.dtype != pl.Utf8:
        raise SchemaError(f"{source}: column '{col}' has type {s.dtype}; expected time values")
    stripped = s.str.strip_chars()
    if time_format is None:
        as_float = stripped.cast(pl.Float64, strict=False)
        if as_float.null_count() == s.null_count():
            return as_float
        first = int(s.is_not_null().arg_max()) if s.null_count() < s.len() else 0
        if as_float[first] is not None:
            bad = as_float.is_null() & s.is_not_null()
            raise _bad_row(source, col, s, bad, "holds numeric times but a value is not a number")
        parsed = stripped.str.to_datetime(strict=False, time_unit="us")
        what = "holds date-times but a value is not ISO 8601 (pass time_format=)"
    else:
        parsed = stripped.str.strptime(pl.Datetime("us"), time_format, strict=False)
        what = f"does not match time_format {time_format!r}"
    bad = parsed.is_null() & s.is_not_null()
    if bad.any():
        raise _bad_row(source, col, s, bad, what)
    return (parsed.dt.epoch("us") / 1e6).cast(pl.Float64)


def _read_raw(path: Path, sep: str | None, has_header: bool) -> pl.DataFrame:
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            return pl.read_parquet(path)
        except Exception as exc:  # any pyarrow/polars failure means the same to the user
            raise DataValidationError(f"{path}: not a readable Parquet file ({exc})") from exc
    if sep is None:
        sep = detect_separator(path)
    try:
        df = pl.read_csv(path, separator=sep, has_header=has_header, infer_schema=False)
    except pl.exceptions.NoDataError as exc:
        raise DataValidationError(f"{path}: file is empty (no header, no rows)") from exc
    except (pl.exceptions.ComputeError, pl.exceptions.ShapeError) as exc:
        raise SchemaError(
            f"{path}: cannot parse as delimited text (separator {sep!r}): {exc}"
        ) from exc
    if not has_header:  # fixed 1-based names, whatever the polars version calls them
        df.columns = [f"column_{i + 1}" for i in range(df.width)]
    return df


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
            conv[col] = _parse_ids(df[col], source, col)
        elif col == "timestamp":
            conv[col] = _parse_time(df[col], source, time_format)
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
        df = validate_events(df, source=source)  # row numbers refer to file rows
    df = order_sessions(df, sort_within=sort)
    return validate_events(df, source=source)
