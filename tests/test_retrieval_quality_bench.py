"""benchmarks/retrieval_quality.py: rows from run directories, the published-figure verdicts, refusals."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("retrieval_quality")


def _run(path, dataset, model, test=None, **extra):
    path.mkdir(parents=True)
    m = {"family": "retrieval", "dataset": dataset, "model": model, "protocol": "bars", "train_split": "train_full",
         "epochs": 8, "best_epoch": -1, "train_seconds": 12.0, "train_samples_per_s": 1000.0, **extra}
    if test is not None:
        m["test"] = {k: test for k in bench_keys()} | {"n_users": 10, "eval_seconds": 1.0}
    (path / "metrics.json").write_text(json.dumps(m))
    (path / "config.json").write_text(json.dumps({"model": {"name": model}}))
    return path


def bench_keys():
    return ("recall@20", "ndcg@20", "recall@50", "hitrate@10", "ndcg@10", "hitrate@20")


def test_verdicts_against_published_and_best_of(bench, tmp_path):
    _run(tmp_path / "runs/a", "gowalla", "mf_bpr", test=0.17)  # published 0.1627: met
    _run(tmp_path / "runs/b", "gowalla", "youtube_dnn", test=0.15)  # published 0.1754: below
    out, md = tmp_path / "q.json", tmp_path / "q.md"
    recs = bench.main([str(tmp_path / "runs"), "--out", str(out), "--md", str(md)])
    by = {r["model"]: r for r in recs}
    assert by["mf_bpr"]["published"][0]["met"] is True
    assert by["youtube_dnn"]["published"][0]["met"] is False
    text = md.read_text()
    assert "**met** (recall@20)" in text and "below by 0.0254 (recall@20)" in text
    assert "Best model here: mf_bpr recall@20 0.1700; LightGCN (BARS) 0.1820 (below by 0.0120)" in text
    # a rerun replaces its (dataset, model) row instead of adding one
    _run(tmp_path / "runs2/a", "gowalla", "mf_bpr", test=0.18)
    recs = bench.main([str(tmp_path / "runs2"), "--out", str(out), "--md", str(md)])
    assert sorted(r["model"] for r in recs) == ["mf_bpr", "youtube_dnn"]
    assert next(r for r in recs if r["model"] == "mf_bpr")["test"]["recall@20"] == 0.18


def test_a_run_without_test_metrics_is_refused_by_name(bench, tmp_path):
    run = _run(tmp_path / "tuning", "gowalla", "gmf")
    with pytest.raises(SystemExit, match="tuning.*no test metrics"):
        bench.main([str(run), "--out", str(tmp_path / "q.json"), "--md", str(tmp_path / "q.md")])


def test_a_folder_skips_pretraining_runs(bench, tmp_path, capsys):
    _run(tmp_path / "runs/gowalla/ncf_mlp", "gowalla", "ncf_mlp")  # no test metrics
    _run(tmp_path / "runs/gowalla/gmf", "gowalla", "gmf", test=0.11)
    recs = bench.main([str(tmp_path / "runs"), "--out", str(tmp_path / "q.json"), "--md", str(tmp_path / "q.md")])
    assert [r["model"] for r in recs] == ["gmf"]
    assert "skipped" in capsys.readouterr().out
