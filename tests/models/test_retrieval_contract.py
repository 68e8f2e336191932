"""Contract suite over every registered retrieval model, on a tiny synthetic leave-one-out task.

Shapes, determinism with a seed, an exact checkpoint round trip, padding invariance of the user
side, and for trained models: the objective's loss falls when it overfits one batch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.config import load_run_config
from seqrec.data.tasks.retrieval import loo_task
from seqrec.families.retrieval import build_model, info_of, split_batch
from seqrec.registry import model_names

CONTRACT_MODELS = model_names("retrieval")
N_USERS, N_ITEMS = 24, 30


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    rows = [rng.choice(np.arange(100, 100 + N_ITEMS), size=rng.integers(4, 12), replace=False)
            for _ in range(N_USERS)]
    times = [np.sort(rng.integers(1_500_000_000, 1_500_900_000, size=len(r))).astype(float) for r in rows]
    feats = {"age": rng.integers(0, 4, N_USERS), "gender": rng.integers(0, 3, N_USERS)}
    return loo_task("synthetic", np.arange(N_USERS) + 7, rows, times=times, user_features=feats,
                    feature_sizes={"age": 4, "gender": 3})


def _cfg(name: str):
    return load_run_config(raw={"data": {"dataset": "synthetic", "max_len": 8, "train_split": "train"},
                                "model": {"name": name},
                                "train": {"batch_size": 16, "seed": 0, "progress": False, "epochs": 1}})


def _model(name: str, task, seed: int = 0):
    cfg = _cfg(name)
    torch.manual_seed(seed)
    model = build_model(cfg, info_of(task, cfg))
    if hasattr(model, "fit_task"):
        model.fit_task(task)
    return cfg, model


def _scores(model, task, cfg, extra_pad: int = 0) -> torch.Tensor:
    rows = np.arange(len(task.test))
    batch = split_batch(task, task.test, rows, cfg.data.max_len)
    if extra_pad:
        batch["history"] = torch.cat([torch.zeros(len(rows), extra_pad, dtype=torch.int64), batch["history"]], 1)
    model.eval()
    with torch.no_grad():
        return model.score_all(batch)


@pytest.mark.parametrize("name", ["itemcf", "pop_retrieval"])
def test_baselines_put_every_item_in_a_strict_order(name, task):
    cfg, model = _model(name, task)
    s = _scores(model, task, cfg)[:, 1:]
    assert all(len(torch.unique(row)) == task.n_items for row in s)  # no ties left to the tie rule


def test_contract_covers_the_retrieval_family():
    assert {"itemcf", "mf_bpr", "pop_retrieval"} <= set(CONTRACT_MODELS)


@pytest.mark.parametrize("name", CONTRACT_MODELS)
def test_scores_shape_and_finite_ranked_items(name, task):
    cfg, model = _model(name, task)
    s = _scores(model, task, cfg)
    assert s.shape == (len(task.test), task.n_items + 1)
    assert s.dtype in (torch.float32, torch.float64)
    assert not torch.isnan(s).any()
    assert torch.isfinite(s[:, 1:]).any(dim=1).all(), "every user must get some finite item scores"


@pytest.mark.parametrize("name", CONTRACT_MODELS)
def test_same_seed_same_scores(name, task):
    cfg, a = _model(name, task, seed=3)
    _, b = _model(name, task, seed=3)
    assert torch.equal(_scores(a, task, cfg), _scores(b, task, cfg))


@pytest.mark.parametrize("name", CONTRACT_MODELS)
def test_checkpoint_round_trip_is_exact(name, task, tmp_path):
    cfg, a = _model(name, task, seed=1)
    torch.save(a.state_dict(), tmp_path / "m.pt")
    torch.manual_seed(99)
    b = build_model(cfg, info_of(task, cfg))
    b.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert torch.equal(_scores(a, task, cfg), _scores(b, task, cfg))


@pytest.mark.parametrize("name", CONTRACT_MODELS)
def test_extra_history_padding_changes_nothing(name, task):
    cfg, model = _model(name, task)
    torch.testing.assert_close(_scores(model, task, cfg), _scores(model, task, cfg, extra_pad=5),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in CONTRACT_MODELS if n not in ("itemcf", "pop_retrieval")])
def test_loss_falls_when_overfitting_one_batch(name, task):
    from seqrec.train.objectives import objective_for

    cfg, model = _model(name, task)
    objective = objective_for(name, model, task, cfg)
    batch = next(iter(objective.batches(0)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for step in range(60):
        torch.manual_seed(step % 3)  # the same few negative draws recur
        loss = objective.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < 0.6 * first, f"{name}: loss {first:.4f} -> {last:.4f}"
