"""``seqrec prepare`` of DUPN's Taobao tasks (``multitask-taobao``): everything deterministic equals
the in-memory ``taobao_multitask`` recipe (vocabularies, item categories, the pref / buy / cat_buy
rows whole, the ctr / l2r positives' histories and items at their events), the hashed negatives
keep the recipe's rules, Spark writes the same directory as polars, and ``seqrec train`` of DUPN
runs from it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seqrec.config import load_run_config
from seqrec.data.vocab import Vocab
from seqrec.prepare.driver import prepare
from seqrec.prepare.layout import compare_prepared, read_manifest, read_split

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "dupn_taobao.toml"
ALL = ("ctr", "l2r", "pref", "buy", "cat_buy")
TASKS = f"data.multitask.tasks={json.dumps(list(ALL))}"


@pytest.fixture(scope="module")
def polars_dir(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("mt") / "polars"
    t0 = time.perf_counter()
    prepare(load_run_config(CONFIG, overrides=[TASKS]), out, shards=4)
    return out, time.perf_counter() - t0


def _padded(lists: list, width: int = 30) -> np.ndarray:
    out = np.zeros((len(lists), width), dtype=np.int64)
    for i, v in enumerate(lists):
        out[i, :len(v)] = v
    return out


def _value(df: pl.DataFrame, col: str) -> np.ndarray:
    return _padded(df[col].to_list()) if col.startswith("hist_") else df[col].to_numpy()


def test_deterministic_parts_equal_the_in_memory_recipe(polars_dir, data_root):
    from seqrec.data.registry import DATASETS, folder_of
    from seqrec.data.tasks.taobao_multitask import PV, load_log, taobao_multitask

    out, _ = polars_dir
    folder = folder_of(DATASETS["taobao"], data_root)
    mem = taobao_multitask("taobao", folder, tasks=ALL, seed=42)
    for k in ("item", "cate", "user"):
        assert Vocab.load(out / f"vocab_{k}.json").ids_ == mem.vocabs[k].ids_, k
    assert np.array_equal(pl.read_parquet(out / "item_cate.parquet")["cate"].to_numpy(), mem.item_cate)
    log = load_log(folder, 8)
    first = dict(zip(log.raw_users[log.user_first].tolist(), log.user_first.tolist(), strict=True))
    clicks: set = set()
    cols = ("user", "user_key", "query", "day", "item", "cate", "hist_item", "hist_cate", "hist_btype", "hist_gap")
    for split in ("train", "valid", "test"):
        c, df = mem.split(split), read_split(out, split)
        assert df.columns[:-1] == list(c) and df.columns[-1] == "pos"
        for k, t in enumerate(ALL):
            lab, m = f"label_{t}", c["task"] == k
            d = df.filter(pl.col("task") == k).sort("user_key", "day", "pos", maintain_order=True)
            assert (d.drop(lab).select(pl.selectors.starts_with("label_")) == -1).to_numpy().all()
            if t in ("ctr", "l2r", "pref"):  # pairs: the positive, then its negative
                assert d.height % 2 == 0 and (d[lab].to_numpy() == np.tile([1.0, 0.0], d.height // 2)).all()
            if t in ("pref", "buy", "cat_buy"):  # the same rows (pref: its positives) in the same order
                if t == "pref":
                    m, d = m & (c[lab] == 1), d.filter(pl.col(lab) == 1)
                for col in (*cols, *((lab,) if t != "pref" else ())):
                    assert np.array_equal(_value(d, col), c[col][m]), (split, t, col)
                continue
            d = d.filter(pl.col(lab) == 1)  # ctr / l2r positives: the recipe's rows of their events
            idx = np.asarray([first[u] for u in d["user_key"].to_list()], np.int64) + d["pos"].to_numpy()
            assert (log.btype[idx] == PV).all() and (d["pos"].to_numpy() >= 1).all()
            want = log.rows(idx, log.times[idx], 30)
            for col in ("user", "user_key", "hist_item", "hist_cate", "hist_btype", "hist_gap"):
                assert np.array_equal(_value(d, col), want[col]), (split, t, col)
            assert np.array_equal(d["item"].to_numpy(), log.g_item[log.g[idx]])
            assert np.array_equal(d["cate"].to_numpy(), log.g_cate[log.g[idx]])
            assert np.array_equal(d["query"].to_numpy(), log.g_cate[log.g[idx]] if t == "l2r" else 0 * idx)
            clicks |= set(idx.tolist())
    # every click with history is a ctr or l2r row, unless it had no negative (counted)
    has_hist = np.arange(len(log.users)) > log.start
    every = set(np.flatnonzero(has_hist & (log.btype == PV)).tolist())
    dropped = read_manifest(out)["rows_without_negative"]
    assert clicks <= every and len(every - clicks) == dropped["ctr"] + dropped["l2r"]
    assert dropped["ctr"] == 0 and dropped["l2r"] < 0.15 * len(every)


def test_negatives_keep_the_recipe_rules(polars_dir):
    out, _ = polars_dir
    rows = pl.concat([read_split(out, s) for s in ("train", "valid", "test")])
    for k, t in enumerate(ALL[:3]):
        d = rows.filter(pl.col("task") == k).sort("user_key", "pos", f"label_{t}", descending=[False, False, True],
                                                   maintain_order=True)
        pos, neg = d[0::2], d[1::2]
        assert (pos[f"label_{t}"] == 1).all() and (neg[f"label_{t}"] == 0).all()
        assert (pos["user_key"] == neg["user_key"]).all() and (pos["pos"] == neg["pos"]).all()
        assert pos.select(*[c for c in pos.columns if c.startswith("hist_")]).equals(
            neg.select(*[c for c in neg.columns if c.startswith("hist_")]))
        if t == "l2r":  # the negative is of the positive's category (its query)
            assert (neg["cate"] == pos["query"]).all() and (neg["query"] == pos["query"]).all()
        assert neg["item"].n_unique() > 100  # spread over the catalogue, not one item


def test_spark_output_equals_polars_output(polars_dir, spark, tmp_path):
    out, polars_s = polars_dir
    spark.catalog.clearCache()  # what earlier tests' prepare runs left cached in the shared session
    t0 = time.perf_counter()
    prepare(load_run_config(CONFIG, overrides=[TASKS]), tmp_path / "spark", engine="spark", shards=4, spark=spark)
    spark_s = time.perf_counter() - t0
    assert compare_prepared(out, tmp_path / "spark") == []
    print(f"taobao multitask rows {read_manifest(out)['rows']}: polars {polars_s:.1f}s, spark {spark_s:.1f}s")


def test_seqrec_train_dupn_from_a_prepared_directory(data_root, tmp_path, capsys):
    from seqrec.cli import main
    from seqrec.errors import ConfigError
    from seqrec.families.multitask import load_task

    prepared = tmp_path / "prep"
    prepare(load_run_config(CONFIG), prepared, shards=2)
    task = load_task(load_run_config(CONFIG, overrides=[f"data.prepared={prepared}"]))
    assert task.tasks == ("ctr", "l2r", "pref", "buy") and task.train["hist_item"].shape[1] == 30
    with pytest.raises(ConfigError, match="test_day"):
        load_task(load_run_config(CONFIG, overrides=[f"data.prepared={prepared}", "data.multitask.test_day=7"]))
    with pytest.raises(ConfigError, match="multitask family, not ctr"):
        from seqrec.prepare.reader import load_prepared_ctr

        load_prepared_ctr(load_run_config(ROOT / "configs" / "din_taobao.toml", overrides=[f"data.prepared={prepared}"]))
    rc = main(["train", str(CONFIG), "--out", str(tmp_path / "run"), "--no-progress", "--set", "train.epochs=1",
               "--set", f"data.prepared={prepared}"])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    print("dupn 1 epoch from prepared: test AUC", {t: round(v["auc"], 4) for t, v in m["test"].items()
                                                  if isinstance(v, dict) and "auc" in v})
    assert m["data"]["train"]["samples"] == read_manifest(prepared)["rows"]["train"]
