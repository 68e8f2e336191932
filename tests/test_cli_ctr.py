"""``seqrec train / evaluate`` for CTR models on real data (Taobao sample, tiny settings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqrec.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "train.epochs=1", "--set", "model.embedding_dim=8", "--set", "train.batch_size=512",
        "--no-progress"]


def _cli(capsys, argv: list) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.slow
@pytest.mark.parametrize("model", ["din", "dsin"])
def test_ctr_train_and_evaluate_json(model, data_root, tmp_path, capsys):
    out = tmp_path / model
    rc, so, se = _cli(capsys, ["train", ROOT / f"configs/{model}_taobao.toml", "--out", out, *TINY])
    assert rc == 0, se
    assert "test auc=" in so
    for f in ("config.json", "schema.json", "model.pt", "metrics.json", "log.csv", "vocab_item.json"):
        assert (out / f).is_file(), f
    trained = json.loads((out / "metrics.json").read_text())["test"]
    assert trained["auc"] > 0.55  # one epoch on real clicks beats chance clearly
    rc, so, se = _cli(capsys, ["evaluate", out, "--json"])
    assert rc == 0, se
    m = json.loads(so)
    assert {"auc", "gauc", "logloss"} <= set(m)
    for k in ("auc", "gauc", "logloss"):  # the checkpoint reproduces the training-time metrics
        assert m[k] == pytest.approx(trained[k], abs=1e-9)


def test_dsin_without_timestamps_is_one_clear_error(data_root, tmp_path, capsys):
    cfg = tmp_path / "dsin.toml"
    cfg.write_text('[data]\ndataset = "amazon_beauty"\n[model]\nname = "dsin"\n[train]\nepochs = 1\n')
    rc, _, se = _cli(capsys, ["train", cfg, "--out", tmp_path / "run", "--no-progress"])
    assert rc == 2
    assert len(se.strip().splitlines()) == 1 and "hist_session" in se


def test_unknown_ctr_dataset(tmp_path, capsys):
    cfg = tmp_path / "din.toml"
    cfg.write_text('[data]\ndataset = "criteo_full"\n[model]\nname = "din"\n')
    rc, _, se = _cli(capsys, ["train", cfg, "--out", tmp_path / "run"])
    assert rc == 2 and "unknown dataset 'criteo_full'" in se and "amazon_beauty" in se and len(se.strip().splitlines()) == 1
