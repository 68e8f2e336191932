"""Resume across world sizes, a rank killed mid-epoch, the multi-task family under torchrun and
the families that refuse it. MMoE on census_income (the shipped config; an epoch takes ~1 s,
so each job is mostly start-up): deterministic (no dropout, no batch statistics), so a
resumed run must equal an uninterrupted one up to float summation order. The refusals are in
``test_context.py``."""

from __future__ import annotations

import json

import pytest
import torch
from _dist_helpers import epoch_rows, train
from _dist_helpers import pytestmark as _gloo

pytestmark = [pytest.mark.slow, _gloo]
MMOE = "configs/mmoe_census_income.toml"


@pytest.fixture(scope="module")
def uninterrupted(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("mmoe") / "whole"
    train(MMOE, out, 1, "train.epochs=2")
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize(("first", "second"), [(2, 1), (1, 2)])
def test_resume_across_world_sizes(uninterrupted, tmp_path, first, second):
    out = tmp_path / "run"
    train(MMOE, out, first, "train.epochs=1")
    state = torch.load(out / "train_state.pt", weights_only=True)
    assert state["world_size"] == first and state["trainer"]["state"]["epoch"] == 1
    train(MMOE, out, second, "train.epochs=2", resume=True)
    state = torch.load(out / "train_state.pt", weights_only=True)
    assert state["world_size"] == second and state["trainer"]["state"]["epoch"] == 2
    assert [r["epoch"] for r in epoch_rows(out)] == ["1", "2"]  # continued from epoch 1, not restarted
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs"] == 2 and m["world_size"] == second
    for task in ("income", "never_married"):
        assert abs(m["test"][task]["auc"] - uninterrupted["test"][task]["auc"]) < 1e-4
        assert abs(m["test"][task]["logloss"] - uninterrupted["test"][task]["logloss"]) < 1e-4


def test_killed_rank_fails_the_job_and_keeps_the_checkpoint(data_root, tmp_path):
    out = tmp_path / "run"
    res = train(MMOE, out, 2, "train.epochs=3", check=False,
                SEQREC_TEST_KILL_RANK="1", SEQREC_TEST_KILL_STEP="2:10")
    assert res.returncode != 0
    line = next((x for x in res.stderr.splitlines() if x.startswith("seqrec train: error:")), None)
    assert line is not None, res.stderr[-3000:]
    assert "rank 0: peer rank stopped during epoch 2 step 10" in line
    assert f"the last checkpoint is {out / 'train_state.pt'} (epoch 1)" in line
    # the epoch-1 checkpoint is intact: it loads, says epoch 1, and model.pt holds the same weights
    state = torch.load(out / "train_state.pt", weights_only=True)
    assert state["trainer"]["state"]["epoch"] == 1
    weights = torch.load(out / "model.pt", weights_only=True)
    assert all(torch.equal(weights[k], state["model"][k]) for k in weights)
    assert len(epoch_rows(out)) == 1 and not (out / "metrics.json").exists()
    # and the job resumes from it
    train(MMOE, out, 2, "train.epochs=2", resume=True)
    assert [r["epoch"] for r in epoch_rows(out)] == ["1", "2"]
