"""benchmarks/dupn.py's records and tables from per-seed run metrics (the training itself is the
CLI's, tested elsewhere): one record per (model, task) with the mean, spread and per-seed AUCs."""

from __future__ import annotations

import pytest


def _metrics(auc: float, tasks) -> dict:
    per = {t: {"auc": auc, "gauc": auc - 0.01, "samples": 100, "positives": 50} for t in tasks}
    return {"test": per, "valid": per, "train_samples_per_s": 1000.0, "train_seconds": 10.0, "best_epoch": 2,
            "epochs": 4, "peak_rss_mb": 500.0, "wall_seconds": 12.0}


def test_records_average_over_seeds_and_tables_show_them(bench_script):
    mod = bench_script("dupn")
    per_seed = {}
    for s, a in ((0, 0.70), (1, 0.72)):
        m = _metrics(a, mod.TASKS)
        runs = {("dupn", t): m for t in mod.TASKS}
        runs[("dupn-rt", mod.HELD_OUT)] = _metrics(a - 0.1, (mod.HELD_OUT,))
        per_seed[s] = runs
    recs = mod.records(per_seed, "python benchmarks/dupn.py", {"date": "x"})
    ctr = next(r for r in recs if r["model"] == "dupn" and r["task"] == "ctr")
    assert ctr["metrics"]["auc"] == pytest.approx(0.71) and ctr["metrics"]["auc_per_seed"] == [0.70, 0.72]
    assert ctr["metrics"]["gauc"] == pytest.approx(0.70) and ctr["seeds"] == [0, 1]
    assert {"dataset", "model", "task", "library", "metrics", "train_samples_per_s", "peak_rss_mb",
            "command"} <= set(ctr)
    joint, transfer = mod.tables(recs)
    assert "0.7100 ± 0.0100" in joint and "dupn-rt" in transfer and "0.6100" in transfer


def test_rule_scores_count_the_candidate_and_its_category_in_the_history(bench_script):
    import numpy as np

    mod = bench_script("dupn")
    cols = {"hist_item": np.array([[5, 6, 5, 0], [7, 0, 0, 0]]), "hist_cate": np.array([[2, 3, 2, 0], [2, 0, 0, 0]]),
            "hist_btype": np.array([[2, 5, 3, 0], [5, 5, 0, 0]]), "item": np.array([5, 9]), "cate": np.array([2, 3])}
    assert mod.rule_scores(cols, "ctr").tolist() == [2002.0, 0.0]  # item twice, its category twice
    assert mod.rule_scores(cols, "buy").tolist() == [101.0, 200.0]  # 100 x buys + carts + favs
