"""Behaviour logs as Spark DataFrames: the Taobao UserBehavior file and your own CSV / TSV /
Parquet log, with the checks and one-line errors of the local readers
(:func:`~seqrec.data.readers.raw_logs.read_taobao_raw`, :func:`~seqrec.data.readers.generic.read_events`).

Both return ``user_id, item_id, category_id, event_type, timestamp, _rowno``: ids long (or
text ids as the local reader keeps them), times double seconds, ``_rowno`` the 1-based data row.
The Spark engine reads numeric times only (Unix seconds, or Parquet timestamp / date columns);
a text date-time column is a ConfigError pointing to ``--engine polars``. Errors about the
configuration rather than the cells (no user or time column mapped, an SR-GNN folder) are the
local code's own: it is called to raise them.
"""

from __future__ import annotations

from pathlib import Path

import seqrec.prepare.spark_read as sr
from seqrec.data.readers.common import cell_error
from seqrec.errors import ConfigError, DataValidationError, SchemaError


def read_taobao(spark, path: Path):
    """``UserBehavior.csv`` (no header) with ``read_taobao_raw``'s checks, then the official window."""
    from pyspark.sql import functions as F

    from seqrec.data.readers.raw_logs import (
        MAX_UNIX_SECONDS,
        TAOBAO_BEHAVIOURS,
        TAOBAO_COLUMNS,
        TAOBAO_END,
        TAOBAO_START,
    )

    path = Path(path)
    sr.check_file(path)
    sr.too_many_fields(spark, path, ",", len(TAOBAO_COLUMNS))
    raw = spark.read.csv(str(path), schema=", ".join(f"{c} string" for c in TAOBAO_COLUMNS), header=False)
    df = sr.with_rowno(raw).cache()
    if df.limit(1).count() == 0:
        raise DataValidationError(f"{path}: no data rows")
    whats = {"user_id": ("an integer user id", None, None), "item_id": ("an integer item id", None, None),
             "category_id": ("an integer category id", None, None),
             "timestamp": ("a Unix time in seconds", 0, MAX_UNIX_SECONDS)}
    checks = [("event_type:empty", sr.blank(F.col("event_type")))]
    for c, (_, lo, hi) in whats.items():
        checks += sr.int_checks(c, lo=lo, hi=hi)
    checks.append(("event_type:value", ~F.col("event_type").isin(*TAOBAO_BEHAVIOURS)))
    hit = sr.first_failure(df, checks)
    if hit is not None:
        check, row = hit
        col = check.split(":")[0]
        value = sr.value_at(df, col, row)
        if check == "event_type:empty":
            raise cell_error(path, col, row, "is empty", DataValidationError)
        if check == "event_type:value":
            raise DataValidationError(f"{path}: column 'event_type' row {row}: {value!r} is not one of "
                                      f"{list(TAOBAO_BEHAVIOURS)}")
        what, lo, hi = whats[col]
        sr.raise_cell(path, col, row, sr.int_error(check, value, what, lo, hi))
    out = df.select(*(sr.int_value(c).alias(c) for c in ("user_id", "item_id", "category_id")), "event_type",
                    sr.int_value("timestamp").cast("double").alias("timestamp"), "_rowno")
    out = out.filter((F.col("timestamp") >= TAOBAO_START) & (F.col("timestamp") < TAOBAO_END))
    if out.limit(1).count() == 0:
        raise DataValidationError(f"taobao: no event in the window [{TAOBAO_START}, {TAOBAO_END})")
    return out


def _mapping(dc) -> tuple[Path, str, dict[str, str]]:
    from seqrec.data.own import _auto_columns, _file_columns, _path, data_format, user_log

    fmt = data_format(dc)
    p = _path(dc)
    mapping = dc.columns.mapping() or _auto_columns(_file_columns(p, fmt) if fmt not in ("srgnn",) else [])
    if fmt in ("srgnn", "gru4rec-tsv") or "user_id" not in mapping or "timestamp" not in mapping:
        user_log(dc, "CTR")  # raises the local reader's error for this configuration
        raise ConfigError(f"data.path {dc.path}: the spark engine reads logs with user and time columns only")
    if dc.time_format:
        raise ConfigError(f"data.path {dc.path}: time_format is read by the polars engine only; "
                          "use --engine polars or give Unix seconds")
    return p, fmt, mapping


def read_own(spark, dc):
    """Your own log (``[data] path``) as ``read_events`` reads it for the CTR recipe."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from seqrec.data.own import _SEPARATOR
    from seqrec.data.readers.generic import CANONICAL, detect_separator

    p, fmt, mapping = _mapping(dc)
    source = str(p)
    sr.check_file(p)
    if fmt == "parquet":
        try:
            raw = spark.read.parquet(str(p))
        except Exception as exc:  # any reader failure means the same to the user
            raise DataValidationError(f"{p}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    else:
        sep = _SEPARATOR.get(fmt) or detect_separator(p)
        raw = spark.read.csv(str(p), sep=sep, header=True, inferSchema=False, enforceSchema=False)
    unknown = [k for k in mapping if k not in CANONICAL]
    if unknown:
        raise ConfigError(f"columns: unknown canonical name(s) {unknown}; allowed: {list(CANONICAL)}")
    for canon, col in mapping.items():
        if col not in raw.columns:
            raise SchemaError(f"{source}: column {col!r} (mapped to {canon}) not in the file; "
                              f"the file has columns {raw.columns}")
    if "item_id" not in mapping:
        raise SchemaError(f"{source}: no item column found in {raw.columns}; "
                          "map it with columns={'item_id': '<file column>', ...}")
    df = sr.with_rowno(raw.select(*(F.col(f"`{f}`").alias(c) for c, f in mapping.items()))).cache()
    if df.limit(1).count() == 0:
        raise DataValidationError(f"{source}: file has a header but no data rows")
    types = dict((f.name, f.dataType) for f in df.schema.fields)
    conv = {}
    for col in mapping:  # the local reader's order: mapped columns in turn
        t, file_col = types[col], mapping[col]
        if col == "timestamp":
            conv[col] = _time(df, source, file_col, t, T)
        elif col == "event_type":
            conv[col] = F.col(col).cast("string")
        else:
            conv[col] = _ids(df, source, col, file_col, t, T)
    return df.select(*(v.alias(k) for k, v in conv.items() if k != "session_id"), "_rowno")


def _first_bad(df, bad):
    from pyspark.sql import functions as F

    return df.agg(F.min(F.when(bad, F.col("_rowno")))).collect()[0][0]


def _ids(df, source: str, col: str, file_col: str, t, T):
    """``_parse_ids``: Int64 when every value is an integer, text ids when the first value is not
    a number, else an error naming the row."""
    from pyspark.sql import functions as F

    c = F.col(col)
    if isinstance(t, T.StringType):
        row = _first_bad(df, sr.blank(c))
        if row is not None:
            raise cell_error(source, file_col, row, "is empty (every event needs this id)", DataValidationError)
        as_int = F.when(sr.strip(c).rlike(sr.INT_RE), F.expr(f"try_cast(regexp_replace(`{col}`, '{sr.WS}', '') "
                                                               "as bigint)"))
        as_float = F.expr(f"try_cast(regexp_replace(`{col}`, '{sr.WS}', '') as double)")
        if _first_bad(df, as_int.isNull()) is None:
            return as_int
        first = df.filter(F.col("_rowno") == 1).select(as_float.alias("f")).collect()[0]["f"]
        if first is None:
            return c  # text ids
        whole = (~F.isnan(as_float) & (F.abs(as_float) < 2.0 ** 63) & (as_float == F.round(as_float, 0))
                 & (F.abs(as_float) != float("inf")))
        row = _first_bad(df, as_int.isNull() & ~F.coalesce(whole, F.lit(False)))
        if row is not None:
            value = sr.value_at(df, col, row)
            f = df.filter(F.col("_rowno") == row).select(as_float.alias("f")).collect()[0]["f"]
            raise _id_error(source, file_col, row, value, f)
        return F.coalesce(as_int, as_float.cast("long"))
    if isinstance(t, T.IntegralType | T.FloatType | T.DoubleType):
        row = _first_bad(df, c.isNull())
        if row is not None:
            raise cell_error(source, file_col, row, "is empty (every event needs this id)", DataValidationError)
        if isinstance(t, T.IntegralType):
            return c.cast("long")
        whole = ~F.isnan(c) & (F.abs(c) < 2.0 ** 63) & (c == F.round(c, 0))
        row = _first_bad(df, ~whole)
        if row is not None:
            v = sr.value_at(df, col, row)
            raise _id_error(source, file_col, row, str(v), v)
        return c.cast("long")
    raise SchemaError(f"{source}: column {file_col!r} has type {t.simpleString()}; expected integer or text ids")


def _id_error(source, col, row, value, f) -> SchemaError:
    from seqrec.data.readers.generic import id_error_reason

    return cell_error(source, col, row, id_error_reason(value, f))


def _time(df, source: str, file_col: str, t, T):
    """``_parse_time`` for numeric times: Unix seconds as double; errors name file, column, row."""
    from pyspark.sql import functions as F

    c = F.col("timestamp")
    row = _first_bad(df, c.isNull())
    if row is not None:
        raise cell_error(source, file_col, row, "is empty (every event needs a time)", DataValidationError)
    if isinstance(t, T.TimestampType | T.TimestampNTZType):
        return F.unix_micros(c.cast("timestamp")) / 1e6
    if isinstance(t, T.DateType):
        return (F.unix_date(c) * 86400).cast("double")
    if isinstance(t, T.NumericType):
        out = c.cast("double")
        row = _first_bad(df, F.isnan(out) | (F.abs(out) == float("inf")))
        if row is not None:
            raise cell_error(source, file_col, row, f"{sr.value_at(df, 'timestamp', row)!r} is not a finite time")
        return out
    if not isinstance(t, T.StringType):
        raise SchemaError(f"{source}: column {file_col!r} has type {t.simpleString()}; expected time values")
    row = _first_bad(df, sr.blank(c))
    if row is not None:
        raise cell_error(source, file_col, row, "is empty (every event needs a time)", DataValidationError)
    as_float = F.expr(f"try_cast(regexp_replace(timestamp, '{sr.WS}', '') as double)")
    first = df.filter(F.col("_rowno") == 1).select(as_float.alias("f")).collect()[0]["f"]
    if first is None:
        raise ConfigError(f"{source}: column {file_col!r} holds date-times; the spark engine reads Unix "
                          "seconds only (use --engine polars)")
    bad = as_float.isNull() | F.isnan(as_float) | (F.abs(as_float) == float("inf"))
    row = _first_bad(df, bad)
    if row is not None:
        raise cell_error(source, file_col, row, f"cannot parse {sr.value_at(df, 'timestamp', row)!r} as a time: "
                         "the column holds Unix seconds but this is not a finite number")
    return as_float
