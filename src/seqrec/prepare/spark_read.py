"""Reading files as Spark DataFrames with file-order row numbers and the local readers' errors.

File order: every record gets ``(input_file_block_start(), monotonically_increasing_id())``
right after the scan. Inside one split of a file the id grows with the record, and splits
are ordered by their byte offset, so sorting by the pair is file order however the splits
were packed into partitions. Exact 1-based row numbers (``_rowno``) come from the records per
split (a tiny aggregate collected on the driver) turned into offsets; they name rows in errors
exactly as the polars readers do (the n-th data row, header not counted).

Checks are gathered into one aggregation per table (the first bad row of each check) and
raised in the local reader's order with the local reader's text: :func:`first_failure`.
"""

from __future__ import annotations

from pathlib import Path

from seqrec.data.readers.common import INT64_MAX, cell_error
from seqrec.errors import DataNotFoundError, DataValidationError, SchemaError

INT_RE = r"^[+-]?[0-9]+$"
WS = r"^\s+|\s+$"


def _F():
    from pyspark.sql import functions as F

    return F


def with_rowno(df):
    """``df`` (straight from a file scan) with ``_rowno``: its 1-based row in the file."""
    F = _F()
    df = df.withColumn("_blk", F.input_file_block_start()).withColumn("_mid", F.monotonically_increasing_id())
    blocks = sorted((r["_blk"], r["n"], r["m"]) for r in
                    df.groupBy("_blk").agg(F.count("*").alias("n"), F.min("_mid").alias("m")).collect())
    offsets, total = [], 0
    for blk, n, m in blocks:
        offsets.append((blk, total - m))
        total += n
    spark = df.sparkSession
    off = spark.createDataFrame(offsets or [(0, 0)], "_blk long, _off long")
    return (df.join(F.broadcast(off), on="_blk").withColumn("_rowno", F.col("_mid") + F.col("_off") + 1)
            .drop("_blk", "_mid", "_off"))


def strip(col):
    return _F().regexp_replace(col, WS, "")


def blank(col):
    return col.isNull() | (strip(col) == "")


def first_failure(df, checks: list[tuple[str, object]]) -> tuple[str, int] | None:
    """The first check (in list order) that some row fails, with its first failing ``_rowno``;
    None when every row passes. ``checks``: (name, boolean column: True = bad)."""
    if not checks:
        return None
    F = _F()
    aggs = [F.min(F.when(bad, F.col("_rowno"))).alias(f"c{i}") for i, (_, bad) in enumerate(checks)]
    row = df.agg(*aggs).collect()[0]
    for i, (name, _) in enumerate(checks):
        if row[f"c{i}"] is not None:
            return name, int(row[f"c{i}"])
    return None


def value_at(df, column: str, rowno: int):
    F = _F()
    return df.filter(F.col("_rowno") == rowno).select(column).collect()[0][0]


def int_checks(col: str, *, lo: int | None = None, hi: int | None = None) -> list[tuple[str, object]]:
    """``parse_int``'s checks of text column ``col``: empty, not an integer, out of range."""
    F = _F()
    c = F.col(col)
    v = F.expr(f"try_cast(regexp_replace(`{col}`, '{WS}', '') as bigint)")
    bad = ~blank(c) & (~strip(c).rlike(INT_RE) | v.isNull())
    out = [(f"{col}:empty", blank(c)), (f"{col}:int", bad)]
    rng = F.lit(False)
    if lo is not None:
        rng = rng | (v < lo)
    if hi is not None:
        rng = rng | (v > hi)
    if lo is not None or hi is not None:
        out.append((f"{col}:range", F.coalesce(rng, F.lit(False))))
    return out


def int_value(col: str):
    return _F().expr(f"cast(regexp_replace(`{col}`, '{WS}', '') as bigint)")


def int_error(check: str, value, what: str, lo=None, hi=None) -> tuple[str, type]:
    """(message, error class) ``parse_int`` raises for failing ``check`` (empty / int / range)."""
    kind = check.rsplit(":", 1)[1]
    if kind == "empty":
        return ("is empty", DataValidationError)
    if kind == "int":
        try:
            big = abs(int(value.strip())) > INT64_MAX
        except ValueError:
            big = False
        why = "is outside the 64-bit integer range" if big else f"is not {what}"
        return (f"{value!r} {why}", SchemaError)
    rng = f"from {lo}" if hi is None else f"up to {hi}" if lo is None else f"from {lo} to {hi}"
    return (f"{value!r} is not {what} {rng}", DataValidationError)


def raise_cell(where, column: str, rowno: int, msg_cls: tuple[str, type]) -> None:
    msg, cls = msg_cls
    raise cell_error(where, column, rowno, msg, cls)


def check_file(path: Path) -> None:
    """What the local readers say before reading: missing file, empty file."""
    if not path.is_file():
        raise DataNotFoundError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataValidationError(f"{path}: file is empty")


def read_text_lines(spark, path: Path):
    """Lines of a text file: ``_rowno`` (1-based line) and ``value`` (the line)."""
    return with_rowno(spark.read.text(str(path)))


def too_many_fields(spark, path: Path, sep: str, width: int) -> None:
    """The layout error polars gives a row with more fields than ``width`` (naming the first row
    whose field count differs, as :func:`~seqrec.data.readers.common.read_delimited` does)."""
    F = _F()
    lines = read_text_lines(spark, path).withColumn("_n", F.size(F.split("value", "\\" + sep if sep in "|" else sep)))
    lines = lines.filter(F.col("value") != "")
    if lines.filter(F.col("_n") > width).limit(1).count():
        row = lines.filter(F.col("_n") != width).agg(F.min("_rowno")).collect()[0][0]
        n = lines.filter(F.col("_rowno") == row).select("_n").collect()[0][0]
        raise SchemaError(f"{path}: row {row} has {n} fields, expected {width} (separator {sep!r})")


def codes(spark, ids: list, raw: str, idx: str, base: int = 2):
    """(raw id, index) table of a vocabulary's ids, indices from ``base``."""
    import numpy as np
    import pyarrow as pa

    return spark.createDataFrame(pa.table({raw: pa.array(ids), idx: np.arange(base, base + len(ids), dtype=np.int64)}))


def sorted_distinct(df, col: str) -> list:
    return sorted(r[0] for r in df.select(col).distinct().collect())
