"""The retrieval family from a prepared gowalla directory (``[data] prepared``): the task equals the
in-memory ``bars_task`` on everything deterministic (users, items, train sets, test targets, and
the test histories, drawn as the recipe draws them), the validation hold-out is the hashed one,
wrong directories are one-line ConfigErrors, and ``seqrec train`` runs from it end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seqrec.cli import main
from seqrec.config import load_run_config
from seqrec.errors import ConfigError
from seqrec.families.retrieval import load_task
from seqrec.prepare.driver import prepare

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "mf_bpr_gowalla.toml"


def _cfg(train_split: str, prepared: str = "", **data):
    return load_run_config(CONFIG, overrides=[f"data.train_split={train_split}", f"data.prepared={prepared}",
                                              *(f"{k}={v}" for k, v in data.items())])


@pytest.fixture(scope="module")
def gowalla_dirs(data_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("gowalla")
    for split in ("train_full", "train"):
        prepare(_cfg(split), base / split, shards=4)
    return base


def _sets(csr) -> list[frozenset]:
    return [frozenset(csr.row(r).tolist()) for r in range(len(csr))]


def test_prepared_task_equals_the_in_memory_task(gowalla_dirs):
    mem = load_task(_cfg("train_full"))
    got = load_task(_cfg("train_full", str(gowalla_dirs / "train_full")))
    assert (got.n_users, got.n_items, got.protocol, got.ordered) == (mem.n_users, mem.n_items, "bars", False)
    assert np.array_equal(got.item_ids, mem.item_ids) and np.array_equal(got.user_ids, mem.user_ids)
    assert _sets(got.train) == _sets(mem.train) and got.valid is None
    for k in ("users",):
        assert np.array_equal(getattr(got.test, k), getattr(mem.test, k))
    for k in ("targets", "history", "exclude"):  # the histories' order too: the recipe's own draws
        a, b = getattr(got.test, k), getattr(mem.test, k)
        assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.values, b.values), k


def test_prepared_validation_is_the_hashed_hold_out(gowalla_dirs):
    full = load_task(_cfg("train_full", str(gowalla_dirs / "train_full")))
    got = load_task(_cfg("train", str(gowalla_dirs / "train")))
    mem = load_task(_cfg("train"))
    assert len(got.valid) == len(mem.valid)  # the same users hold out, as many items each
    assert np.array_equal(got.valid.users, mem.valid.users)
    assert np.array_equal(got.valid.targets.lengths(), mem.valid.targets.lengths())
    rows = [frozenset(got.train.row(u).tolist()) | frozenset(got.valid.targets.row(i).tolist())
            for i, u in enumerate(got.valid.users)]
    assert rows == [frozenset(full.train.row(u).tolist()) for u in got.valid.users]
    assert _sets(got.valid.exclude) == [frozenset(got.train.row(u).tolist()) for u in got.valid.users]
    assert np.array_equal(got.test.history.values, full.test.history.values)


def test_wrong_directory_is_a_config_error(gowalla_dirs, tmp_path):
    with pytest.raises(ConfigError, match="train_split"):
        load_task(_cfg("train", str(gowalla_dirs / "train_full")))
    with pytest.raises(ConfigError, match="seed"):
        load_task(load_run_config(CONFIG, overrides=["data.train_split=train", "train.seed=7",
                                                     f"data.prepared={gowalla_dirs / 'train'}"]))
    with pytest.raises(ConfigError, match="not a prepared directory"):
        load_task(_cfg("train_full", str(tmp_path / "nothing")))
    ctr = load_run_config(ROOT / "configs" / "din_amazon_beauty.toml")
    prepare(ctr, tmp_path / "beauty", shards=2)
    with pytest.raises(ConfigError, match="ctr family, not retrieval"):
        load_task(_cfg("train_full", str(tmp_path / "beauty")))


def test_seqrec_train_from_a_prepared_directory(gowalla_dirs, tmp_path, capsys):
    prepared = gowalla_dirs / "train_full"
    recalls = {}
    for name, extra in (("prepared", [f"data.prepared={prepared}"]), ("memory", [])):
        args = ["train", str(CONFIG), "--out", str(tmp_path / name), "--no-progress", "--set", "train.epochs=1"]
        for s in extra:
            args += ["--set", s]
        assert main(args) == 0, capsys.readouterr().err
        recalls[name] = json.loads((tmp_path / name / "metrics.json").read_text())["test"]["recall@20"]
    print(f"mf_bpr gowalla 1 epoch test recall@20: prepared {recalls['prepared']:.4f}, "
          f"in memory {recalls['memory']:.4f}")
    assert recalls["prepared"] == pytest.approx(recalls["memory"], abs=1e-6)
