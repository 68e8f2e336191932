"""Your own data, from a config's ``[data] path`` instead of a registered dataset name.

::

    [data]
    path = "clicks.csv"            # a file, or an SR-GNN folder (all_train_seq.txt + test.txt)
    format = "csv"                 # csv | tsv | parquet | gru4rec-tsv | srgnn ("" = from the name)
    columns = {session_id = "SessionId", item_id = "ItemId", timestamp = "Time"}
    split = {kind = "time", test_days = 1}

The file goes through the same stages as a registered dataset: a reader returns the
canonical event table (:func:`seqrec.data.readers.generic.read_events`: ids checked, times
parsed, a file with a user column and no session column cut into sessions by
``session_gap``), then the split stage (:mod:`seqrec.data.split`), then the family's own
recipe: next-item sessions, CTR samples from a user log (:func:`seqrec.data.tasks.ctr.log_ctr`)
or purchase samples from an orders log (every event a purchase unless ``event_type`` says
``buy`` / other behaviours).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seqrec.data.readers.generic import (
    PARQUET_SUFFIXES,
    _auto_columns,
    detect_separator,
    read_events,
)
from seqrec.data.readers.gru4rec_tsv import read_gru4rec_tsv
from seqrec.data.readers.srgnn import read_srgnn_folder
from seqrec.data.split import GivenSplit, SessionSplits, SplitSpec, split_events
from seqrec.errors import ConfigError, DataNotFoundError, SchemaError

_SEPARATOR = {"csv": ",", "tsv": "\t"}


def data_format(dc) -> str:
    """The configured format, or the one the path implies."""
    if dc.format:
        return dc.format
    p = Path(dc.path)
    if p.is_dir():
        return "srgnn"
    suffix = p.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return "tsv" if suffix in (".tsv", ".tab") else "csv"


def _path(dc) -> Path:
    p = Path(dc.path).expanduser()
    fmt = data_format(dc)
    if fmt == "srgnn":
        missing = [f for f in ("all_train_seq.txt", "test.txt") if not (p / f).is_file()]
        if not p.is_dir() or missing:
            raise DataNotFoundError(f"data.path {p}: an SR-GNN folder needs all_train_seq.txt and test.txt "
                                    f"(missing: {missing or 'the folder'})")
    elif not p.is_file():
        raise DataNotFoundError(f"data.path {p}: no such file")
    return p


def _file_columns(p: Path, fmt: str) -> list[str]:
    if fmt == "parquet":
        try:
            return list(pl.read_parquet_schema(p))
        except Exception as exc:  # any pyarrow/polars failure means the same to the user
            raise SchemaError(f"{p}: not a readable Parquet file ({exc})") from None
    sep = _SEPARATOR.get(fmt) or detect_separator(p)
    with open(p, encoding="utf-8", errors="replace") as fh:
        return [c.strip().strip('"') for c in fh.readline().rstrip("\r\n").split(sep)]


def read_own(dc) -> tuple[pl.DataFrame | GivenSplit, bool, bool]:
    """The reader stage: (canonical table or given split, has real time, has users)."""
    fmt = data_format(dc)
    p = _path(dc)
    if fmt == "srgnn":
        return read_srgnn_folder(p), False, False
    if fmt == "gru4rec-tsv":
        return read_gru4rec_tsv(p), True, False
    mapping = dc.columns.mapping()
    found = mapping or _auto_columns(_file_columns(p, fmt))
    gap = dc.session_gap if "session_id" not in found and "user_id" in found else None
    df = read_events(p, columns=mapping, sep=_SEPARATOR.get(fmt), time_format=dc.time_format or None,
                     session_gap=gap, sort=True)
    return df, "timestamp" in found, "user_id" in found


def split_spec(dc, events) -> SplitSpec:
    s = dc.split
    kind = s.kind or ("given" if isinstance(events, GivenSplit) else "time")
    return SplitSpec(kind, test_days=s.test_days, valid_days=s.valid_days, test_fraction=s.test_fraction,
                     valid_fraction=s.valid_fraction, min_session_length=s.min_session_length)


def session_splits(dc) -> SessionSplits:
    """Next-item sessions from your own data: read, then split by ``[data.split]``."""
    _not_registered(dc)
    events, has_time, has_users = read_own(dc)
    spec = split_spec(dc, events)
    if spec.kind == "time" and not has_time:
        raise ConfigError(f"data.path {dc.path}: no time column, so split kind 'time' is impossible; "
                          "map columns.timestamp or set split = {kind = \"tail\"}")
    how = (f"your own data ({dc.path}, {data_format(dc)}); split {spec.kind}"
           + (f", test = sessions ending in the last {spec.test_days:g} days" if spec.kind == "time" else "")
           + (f", test = the last {spec.test_fraction:.0%} of sessions" if spec.kind == "tail" else "") + ".")
    return split_events(dc.name, events, spec, has_time=has_time, has_users=has_users, how=how)


def user_log(dc, family: str) -> pl.DataFrame:
    """A user behaviour log (one table with users and time) for the CTR and purchase recipes."""
    _not_registered(dc)
    events, has_time, has_users = read_own(dc)
    if isinstance(events, GivenSplit) or not has_users or not has_time:
        raise ConfigError(f"data.path {dc.path}: {family} samples need a user column and a time column "
                          "(map columns.user_id and columns.timestamp)")
    return events


def purchase_log(dc) -> pl.DataFrame:
    """Your orders / behaviour log as the canonical purchase log (seqrec.data.readers.purchase)."""
    from seqrec.data.readers.purchase import canonical_log

    df = user_log(dc, "purchase")
    btype = pl.col("event_type") if "event_type" in df.columns else pl.lit("buy")
    cate = pl.col("category_id").cast(pl.Utf8) if "category_id" in df.columns else pl.lit(None, pl.Utf8)
    local = pl.from_epoch(pl.col("timestamp").cast(pl.Int64), time_unit="s")
    return canonical_log(df.with_row_index("order_id").select(
        user_id=pl.col("user_id").cast(pl.Utf8), time=pl.col("timestamp") / 86400.0,
        day=pl.col("timestamp") / 86400.0, order_id=pl.col("order_id").cast(pl.Int64), btype=btype,
        product=pl.col("item_id").cast(pl.Utf8), cate=cate, sub=pl.lit(None, pl.Utf8), quantity=pl.lit(1.0),
        value=pl.lit(0.0), dow=local.dt.weekday() - 1, hour=local.dt.hour(),
    ), str(dc.path))


def purchase_recipe(dc, log: pl.DataFrame):
    """Purchase defaults for your own log: days, category level when there is a category column."""
    from seqrec.data.readers.purchase import PurchaseDataset

    has_cate = log["cate"].null_count() < log.height
    return PurchaseDataset(
        name=dc.name, subdir=str(Path(dc.path).parent), files=(Path(dc.path).name,),
        source=f"your own data: {dc.path}", licence="yours", unit="day",
        levels={"category": "cate", "product": "product"} if has_cate else {"product": "product"},
        default_level="category" if has_cate else "any", window=3.0, observation=0.0, negatives="non-buyers",
        reader=lambda _folder: log, description="your own orders log")


def _not_registered(dc) -> None:
    from seqrec.data.registry import DATASETS

    if dc.dataset in DATASETS:
        raise ConfigError(f"data.dataset = {dc.dataset!r} is a registered dataset, but data.path is set too; "
                          "drop one (with path, dataset only names your data: pick another name)")


def event_counts(df: pl.DataFrame) -> dict:
    """Events, sessions, users, items and the time range of a canonical table."""
    out = {"events": df.height, "items": df["item_id"].n_unique()}
    if "session_id" in df.columns:
        out["sessions"] = df["session_id"].n_unique()
    if "user_id" in df.columns:
        out["users"] = df["user_id"].n_unique()
    if "timestamp" in df.columns and df.height:
        out["time_range"] = [float(df["timestamp"].min()), float(df["timestamp"].max())]
    return out
