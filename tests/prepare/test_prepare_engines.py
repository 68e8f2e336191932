"""Spark output == polars output on the four must-show datasets, and the polars output's
deterministic parts (vocabularies, rows, histories, positive targets, splits) == the in-memory
recipes'. Negatives differ from the in-memory numpy draws by design (seqrec.prepare.spec)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from seqrec.data.vocab import Vocab
from seqrec.prepare.layout import compare_prepared, read_manifest, read_split

pytestmark = pytest.mark.slow
DATASETS = ("diginetica", "amazon_beauty", "gowalla", "taobao")


@pytest.mark.parametrize("name", DATASETS)
def test_spark_output_equals_polars_output(prepared, name):
    pol, spk, secs = prepared(name)
    assert compare_prepared(pol, spk) == []
    mp, ms = read_manifest(pol), read_manifest(spk)
    assert (mp["engine"], ms["engine"]) == ("polars", "spark")
    print(f"{name}: rows {mp['rows']}; polars {secs['polars']:.1f}s, spark {secs['spark']:.1f}s")


def _padded(lists: list, width: int, dtype) -> np.ndarray:
    out = np.zeros((len(lists), width), dtype=dtype)
    for i, v in enumerate(lists):
        out[i, :len(v)] = v
    return out


@pytest.mark.parametrize("name", ["amazon_beauty", "taobao"])
def test_ctr_positives_equal_the_in_memory_recipe(prepared, name):
    from seqrec.families.ctr import load_ctr_task

    pol, _, _ = prepared(name)
    task = load_ctr_task(name, max_len=50, seed=42)
    for k in ("item", "cate", "user"):
        assert Vocab.load(pol / f"vocab_{k}.json").ids_ == task.vocabs[k].ids_, k
    assert (pl.read_parquet(pol / "item_cate.parquet")["cate"].to_numpy() == task.item_cate).all()
    for split in ("train", "valid", "test"):
        c = task.split(split).columns
        pos = c["label"] == 1
        order = np.argsort(c["user"][pos], kind="stable")  # the recipe's rows: per user in position order
        df = read_split(pol, split)
        assert df.height == len(c["label"]) and int(df["label"].sum()) == int(pos.sum())
        df = df.filter(pl.col("label") == 1).sort("user", "pos")
        for col in ("user", "item", "cate", "hist_len", *(("time",) if "time" in c else ())):
            assert (df[col].to_numpy() == c[col][pos][order]).all(), (split, col)
        for col in [k for k in c if k.startswith("hist_") and k != "hist_len"]:
            assert (_padded(df[col].to_list(), 50, c[col].dtype) == c[col][pos][order]).all(), (split, col)


@pytest.mark.parametrize("name", ["amazon_beauty", "taobao"])
def test_negatives_are_untouched_and_counted(prepared, name):
    pol, _, _ = prepared(name)
    m = read_manifest(pol)
    assert m["negatives_touched"] == 0
    rows = pl.concat([read_split(pol, s) for s in ("train", "valid", "test")])
    neg, posr = rows.filter(pl.col("label") == 0), rows.filter(pl.col("label") == 1)
    assert neg.height == posr.height
    assert (neg["item"] >= 2).all()
    if name == "amazon_beauty":  # never an item of the user's sequence
        seen = posr.select("user", pl.col("hist_item").list.concat(pl.concat_list("item")).alias("i")).explode("i")
        assert neg.join(seen, left_on=["user", "item"], right_on=["user", "i"], how="semi").height == 0


def test_session_splits_equal_the_in_memory_split(prepared):
    from seqrec.data.registry import load_dataset

    pol, _, _ = prepared("diginetica")
    splits = load_dataset("diginetica")
    vocab = Vocab(name="item").fit(splits.train_full["item_id"].unique(maintain_order=True))
    assert Vocab.load(pol / "vocab_item.json").ids_ == vocab.ids_
    for split in ("train", "valid", "test", "train_full"):
        want = splits.get(split).select("session_id", "item_id", "timestamp").sort("session_id", "timestamp")
        got = read_split(pol, split).sort("session_id", "timestamp")
        assert got.select(want.columns).equals(want), split
        assert (got["item"].to_numpy() == vocab.encode_series(got["item_id"])).all()


def test_retrieval_lists_equal_the_bars_task(prepared, data_root):
    from seqrec.data.registry import DATASETS, folder_of
    from seqrec.data.tasks.retrieval import bars_task

    pol, _, _ = prepared("gowalla")
    t = bars_task("gowalla", folder_of(DATASETS["gowalla"], data_root), train_split="train_full")
    assert Vocab.load(pol / "vocab_item.json").ids_ == t.item_ids.tolist()
    assert Vocab.load(pol / "vocab_user.json").ids_ == t.user_ids.tolist()
    tr = read_split(pol, "train").sort("user")
    assert tr.height == len(t.train)
    assert np.array_equal(np.concatenate(tr["items"].to_list()), t.train.values)
    te = read_split(pol, "test").sort("user")
    assert (te["user"].to_numpy() == t.test.users).all()
    assert np.array_equal(np.concatenate(te["items"].to_list()), t.test.targets.values)
