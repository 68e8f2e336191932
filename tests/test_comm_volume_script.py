"""benchmarks/comm_volume.py: the measured volumes on a real model and the estimate's arithmetic."""

from __future__ import annotations

import pytest


def test_estimate_arithmetic(bench_script):
    mod = bench_script("comm_volume")
    m = {"dense_bytes": 1e6, "sparse_bytes_mean": 2e6, "compute_seconds_median": 0.01}
    e = mod.estimate(m, 100)["8x10G"]
    bps = 10e9 / 8
    comm = 2 * 7 / 8 * 1e6 / bps + 7 * 2e6 / bps
    assert e["comm_seconds"] == pytest.approx(comm)
    assert e["samples_per_s"] == pytest.approx(800 / (0.01 + comm))


@pytest.mark.slow
def test_measures_a_real_model(bench_script, data_root, tmp_path):
    mod = bench_script("comm_volume")
    assert mod.main(["--models", "dupn / taobao", "--steps", "3", "--out", str(tmp_path / "cv.json")]) == 0
    import json

    r = json.loads((tmp_path / "cv.json").read_text())["models"][0]
    # the heads, LSTM and attention are dense; a step touches far fewer rows than the tables hold
    assert 0 < r["dense_bytes"] < r["full_table_bytes"] and 0 < r["sparse_bytes_mean"] < r["full_table_bytes"]
    assert (tmp_path / "cv.md").is_file()
