"""Purchase-log readers and the ``[data.purchase]`` config: the four real logs against the
counts in their READMEs, hand-written CDNOW lines, missing files and bad config values."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from seqrec.config import load_run_config
from seqrec.data.readers.purchase import (
    COLUMNS,
    PURCHASE_DATASETS,
    read_cdnow,
)
from seqrec.data.registry import dataset_status
from seqrec.data.tasks.purchase import read_purchase_log
from seqrec.errors import ConfigError, DataNotFoundError, DataValidationError


def _purchase_raw(**purchase) -> dict:
    return {"data": {"dataset": "instacart", "purchase": purchase}, "model": {"name": "xgboost"}}


@pytest.mark.parametrize(("purchase", "match"), [
    ({"shift": [0]}, "shift"),
    ({"shift": [-1, 2]}, "shift"),
    ({"shift": 1}, "expected a list"),
    ({"valid_frac": 0.0}, "valid_frac"),
    ({"test_frac": 1.0}, "test_frac"),
    ({"valid_frac": 0.5, "test_frac": 0.5}, "sum below 1"),
    ({"negatives": "everyone"}, "negatives"),
    ({"window": -3}, "window"),
    ({"categry": "pets"}, "categry"),
])
def test_bad_purchase_config(purchase, match):
    with pytest.raises(ConfigError, match=match):
        load_run_config(raw=_purchase_raw(**purchase))


def test_purchase_config_from_toml_values():
    cfg = load_run_config(raw=_purchase_raw(category="pets", shift=[1, 2], window=3, negatives="non-buyers"))
    pc = cfg.data.purchase
    assert (pc.category, pc.shift, pc.window, pc.negatives) == ("pets", (1, 2), 3.0, "non-buyers")
    cfg = load_run_config(raw=_purchase_raw(), overrides=["data.purchase.category=household"])
    assert cfg.data.purchase.category == "household" and cfg.data.purchase.shift == ()


@pytest.mark.parametrize("name", sorted(PURCHASE_DATASETS))
def test_missing_data_file_says_where(name, tmp_path):
    info = PURCHASE_DATASETS[name]
    with pytest.raises(DataNotFoundError) as exc:
        read_purchase_log(name, tmp_path)
    msg = str(exc.value)
    assert info.files[0] in msg and str(tmp_path / info.subdir) in msg and "Put the files in" in msg
    row = {r["name"]: r for r in dataset_status(tmp_path)}[name]
    assert row["found"] is False and row["missing"] == list(info.files)


def test_unknown_purchase_dataset():
    with pytest.raises(ConfigError, match="unknown dataset 'nosuch'.*cdnow"):
        read_purchase_log("nosuch")


HEADER = "customer_id date number_of_cds dollar_value\n"


@pytest.mark.parametrize(("lines", "match"), [
    (" 00002 19970112  5\n", r"line 4 has 3 fields"),
    (" 00002 19971312  5   77.00\n", r"line 4, column 'date': cannot parse '19971312' as a date"),
    (" 00002 19970112  x   77.00\n", r"line 4, column 'number_of_cds': cannot parse 'x'"),
    (" 00002 19970112  1   inf\n", r"line 4, column 'dollar_value': cannot parse 'inf'"),
])
def test_malformed_cdnow_line(tmp_path, lines, match):
    good = " 00001 19970101  1   11.77\n 00002 19970112  1   12.00\n"
    (tmp_path / "CDNOW_master.txt").write_text(HEADER + good + lines + " 00003 19970102  2   20.76\n")
    with pytest.raises(DataValidationError, match=match) as exc:
        read_cdnow(tmp_path)
    assert "CDNOW_master.txt" in str(exc.value)
    (tmp_path / "CDNOW_master.txt").write_text(good + lines)  # no header: line 3
    with pytest.raises(DataValidationError, match=match.replace("4", "3")):
        read_cdnow(tmp_path)


def test_cdnow_reader_by_hand(tmp_path):
    (tmp_path / "CDNOW_master.txt").write_text(
        HEADER + " 00002 19970112  1   12.00\n 00001 19970101  1   11.77\n 00002 19970112  5   77.00\n"
        " 00002 19980101  1   5.00\n")
    df = read_cdnow(tmp_path)
    assert df["user_id"].to_list() == ["00001", "00002", "00002", "00002"]
    assert df["time"].to_list() == [0.0, 11.0, 11.0, 365.0]
    assert df["quantity"].to_list() == [1.0, 1.0, 5.0, 1.0] and df["value"].to_list() == [11.77, 12.0, 77.0, 5.0]
    o = df["order_id"].to_list()
    assert o[1] == o[2] and len({o[0], o[1], o[3]}) == 3  # one purchase per customer and day
    assert df["dow"].to_list()[0] == 2  # 1997-01-01 was a Wednesday (Monday = 0)


# -- readers on the real data -------------------------------------------------------------------
# rows, users, purchases (baskets) from the READMEs in ../shared/data
README_COUNTS = {
    "instacart": (150_000, 593, 15_183),
    "cdnow": (69_659, 23_570, None),
    "tafeng": (178_216 + 178_841, 7_384, 33_146 + 33_568),
    "taobao": (84_287, 814, None),
}


@pytest.fixture(scope="module")
def real_log(data_root: Path):
    loaded: dict[str, pl.DataFrame] = {}

    def get(name: str) -> pl.DataFrame:
        if name not in loaded:
            loaded[name] = read_purchase_log(name, data_root)
        return loaded[name]

    return get


@pytest.mark.parametrize("name", sorted(README_COUNTS))
def test_reader_counts_and_order(real_log, name):
    df = real_log(name)
    rows, users, orders = README_COUNTS[name]
    assert dict(df.schema) == COLUMNS
    assert df.height == rows
    assert df["user_id"].n_unique() == users
    if orders is not None:
        assert df["order_id"].n_unique() == orders
    key = df.select("user_id", "time")
    assert key.equals(key.sort("user_id", "time"))
    # a basket is one user at one time
    per_order = df.group_by("order_id").agg(pl.col("user_id").n_unique(), pl.col("time").n_unique())
    assert (per_order["user_id"] == 1).all() and (per_order["time"] == 1).all()


def test_instacart_reader(real_log):
    df = real_log("instacart")
    top = df["cate"].value_counts(sort=True).head(5)
    assert top.rows() == [("produce", 43_580), ("dairy eggs", 25_575), ("snacks", 13_772),
                          ("beverages", 12_077), ("frozen", 10_194)]
    assert df["product"].n_unique() == 14_190
    g = df.group_by("user_id").agg(n=pl.col("time").n_unique(), lo=pl.col("time").min(), hi=pl.col("time").max())
    assert (g["lo"] == 1).all() and (g["hi"] == g["n"]).all()  # order numbers 1..n
    assert g["n"].min() == 9 and g["n"].max() == 99
    first = df.filter(pl.col("user_id") == "1").group_by("time").agg(pl.col("day").first()).sort("time")
    assert first["day"][0] == 0.0 and first["day"].is_sorted()


def test_tafeng_reader(real_log):
    df = real_log("tafeng")
    assert df["product"].n_unique() == 5_000
    assert df["user_id"].str.contains(" ").sum() == 0  # padded ids are stripped
    g = df.group_by("user_id").agg(n=pl.col("time").n_unique(), lo=pl.col("time").min(), hi=pl.col("time").max())
    assert (g["lo"] == 1).all() and (g["hi"] == g["n"]).all()  # future baskets follow the history's


def test_cdnow_reader(real_log):
    df = real_log("cdnow")
    assert df["quantity"].sum() == 167_881
    assert df["value"].sum() == pytest.approx(2_500_315.63)
    assert (df["time"].min(), df["time"].max()) == (0.0, 545.0)  # 1997-01-01 .. 1998-06-30


def test_taobao_reader(real_log):
    df = real_log("taobao")
    assert dict(df["btype"].value_counts().iter_rows()) == {"pv": 75_693, "cart": 4_494, "fav": 2_351,
                                                              "buy": 1_749}
    assert df["product"].n_unique() == 55_233 and df["cate"].n_unique() == 2_911
    first = df.filter(pl.col("user_id") == "1").row(0, named=True)  # 1,2268318,2520377,pv,1511544070
    assert (first["product"], first["cate"], first["btype"]) == ("2268318", "2520377", "pv")
    assert first["time"] == pytest.approx((1511544070 + 8 * 3600) / 86400)
    assert (first["hour"], first["dow"]) == (1, 5)  # 2017-11-25 01:21 China time, a Saturday
    assert df["order_id"].n_unique() == df.height  # every event is its own purchase


def test_purchase_status_finds_the_real_data(data_root):
    rows = {r["name"]: r for r in dataset_status(data_root) if "purchase" in r["families"]}
    assert set(rows) == set(PURCHASE_DATASETS)
    assert all(r["found"] and not r["missing"] for r in rows.values())
    assert list(PURCHASE_DATASETS["instacart"].levels) == ["department", "aisle", "product"]
