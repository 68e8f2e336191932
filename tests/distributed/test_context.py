"""The distributed context from torchrun's environment, row sharding, and the runs that refuse
to train under torchrun (no process group is started: the checks come first)."""

from __future__ import annotations

import pytest
import torch

from seqrec import distributed as D
from seqrec.config import load_run_config
from seqrec.errors import ConfigError, SeqrecError
from seqrec.experiment import train_run

GRU4REC = "configs/gru4rec_yoochoose_100k_bpr-max.toml"


def test_one_process_is_a_no_op_context(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    with D.session() as ctx:
        assert not ctx.active and ctx.is_main and ctx.world == 1
        t = torch.arange(6)
        assert D.gather_rows(t) is t and D.all_sum([1.0, 2.0]) == [1.0, 2.0]
        assert D.on_main(lambda: 7) == 7 and D.default_threads() == 0


def test_env_parsing(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    ctx = D.env_context()
    assert (ctx.rank, ctx.world, ctx.local_world) == (3, 4, 2) and not D.is_main_process()
    assert D.default_threads(cores=16) == 8 and D.default_threads(cores=1) == 1
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(SeqrecError, match="inconsistent"):
        D.env_context()


def test_shard_range_splits_evenly_and_contiguously():
    for n in (0, 1, 5, 17, 256):
        for world in (1, 2, 3):
            parts = [D.shard_range(n, r, world) for r in range(world)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
            assert max(hi - lo for lo, hi in parts) - min(hi - lo for lo, hi in parts) <= 1


def test_shard_rows_keeps_shared_keys_whole(monkeypatch):
    monkeypatch.setattr(D, "_CTX", D.DistContext(rank=1, world=2))
    batch = {"user": torch.arange(5), "hist": torch.zeros(5, 3), "neg": torch.arange(5) + 10}
    out = D.shard_rows(batch, shared_keys=("neg",))
    assert out["user"].tolist() == [3, 4] and out["hist"].shape == (2, 3)
    assert out["neg"].tolist() == list(range(10, 15))  # shared by the whole batch: never split
    # a batch with fewer rows than ranks is skipped by every rank alike
    got = list(D.sharded([{"x": torch.arange(4)}, {"x": torch.arange(1)}], lambda b: len(b["x"])))
    assert len(got) == 1 and got[0][0]["x"].tolist() == [2, 3] and got[0][1] == 4


def test_session_family_refuses_torchrun(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ConfigError, match="cannot train under torchrun with 2 processes: GRU4Rec"):
        train_run(load_run_config(GRU4REC), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_max_steps_is_refused_where_it_would_do_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ConfigError, match="max_steps and train.step_log apply to"):
        train_run(load_run_config(GRU4REC, ["train.max_steps=5"]), tmp_path / "run")


def test_prepared_data_is_refused_where_the_family_does_not_read_it(tmp_path):
    cfg = load_run_config(GRU4REC, [f"data.prepared={tmp_path}"])
    with pytest.raises(ConfigError, match="does not read a prepared directory"):
        train_run(cfg, tmp_path / "run")
