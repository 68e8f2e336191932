"""benchmarks/multitask.py end to end on the real census-income data (one model, one seed, one
epoch, seqrec only): the records it writes follow the issue's schema."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_multitask_benchmark_writes_one_record_per_task(bench_script, data_root, tmp_path):
    mod = bench_script("multitask")
    out = tmp_path / "multitask.json"
    assert mod.main(["--models", "mmoe", "--seeds", "0", "--max-epochs", "4", "--no-bn", "--no-peer",
                     "--no-logreg", "--out", str(out)]) == 0
    recs = json.loads(out.read_text())
    assert {(r["model"], r["task"], r["library"]) for r in recs} == {("mmoe", "income", "seqrec"),
                                                                   ("mmoe", "never_married", "seqrec")}
    for r in recs:
        assert r["dataset"] == "census_income" and 0.5 < r["metrics"]["auc"] <= 1
        assert r["train_samples_per_s"] > 0 and r["peak_rss_mb"] > 0 and "multitask.py" in r["command"]
    # the sceptic's baseline joins the same file; the model rows stay
    assert mod.main(["--logreg-only", "--seeds", "0", "--out", str(out)]) == 0
    recs = json.loads(out.read_text())
    base = {r["task"]: r for r in recs if r["model"] == "logreg"}
    assert set(base) == {"income", "never_married"} and all(r["library"] == "sklearn" for r in base.values())
    assert all(0.9 < r["metrics"]["auc"] <= 1 for r in base.values()) and len(recs) == 4
    assert "sceptic" in out.with_suffix(".md").read_text()

