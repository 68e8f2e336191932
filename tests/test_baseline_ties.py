"""benchmarks/baseline_ties.py: expected metrics under random tie-breaking, and the script on a real run."""

import sys

import numpy as np
import pytest

from seqrec.baselines import ItemKNN, ItemKNNConfig, Pop
from seqrec.data.events import SessionArrays


def test_expected_metrics_hand_computed(bench_script):
    bt = bench_script("baseline_ties")
    # rank 1..4 uniform: Recall@2 = 2/4, MRR@2 = (1 + 1/2) / 4; rank 3 exactly: 0 / 0;
    # rank 2..3 uniform: Recall@2 = 1/2, MRR@2 = (1/2) / 2
    r, m = bt.expected_metrics(np.array([1, 3, 2]), np.array([4, 3, 3]), k=2)
    assert r == pytest.approx((0.5 + 0.0 + 0.5) / 3)
    assert m == pytest.approx((1.5 / 4 + 0.0 + 0.25) / 3)
    # no ties: the plain metrics
    r, m = bt.expected_metrics(np.array([1, 5]), np.array([1, 5]), k=20)
    assert (r, m) == pytest.approx((1.0, (1 + 1 / 5) / 2))


def test_reconfigured_copy_shares_the_fit_and_changes_only_the_config():
    train = SessionArrays.from_lists([[2, 3, 4], [2, 3], [3, 5], [2, 4, 4]])
    knn = ItemKNN().fit(train, 6)
    raw = knn.reconfigured(tiebreak="none")
    assert raw.config == ItemKNNConfig(tiebreak="none") and knn.config.tiebreak == "pop"
    assert (raw.sim_ != knn.sim_).nnz == 0
    other = Pop().fit(train, 6).reconfigured(tiebreak_seed=3)
    assert other.config.tiebreak_seed == 3
    with pytest.raises(RuntimeError, match="fit"):
        Pop().reconfigured(tiebreak="none")


@pytest.mark.slow
def test_script_on_a_real_item_knn_run(bench_script, data_root, tmp_path, monkeypatch, capsys):
    from seqrec.cli import main

    monkeypatch.setenv("SEQREC_DATA", str(data_root))
    cfg = tmp_path / "knn.toml"
    cfg.write_text('[data]\ndataset = "yoochoose_100k"\n[model]\nname = "item-knn"\n')
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["baseline_ties.py", str(tmp_path / "run"), "--seeds", "2"])
    assert bench_script("baseline_ties").main() == 0
    out = capsys.readouterr().out.splitlines()
    assert "n=10152" in out[0]
    assert "expected under random tie-breaking" in out[1]
    assert len(out) == 4 and all("ranks equal" in line for line in out[2:])
