"""PinSage: convolutions, minibatch vs whole-catalogue embeddings, user pooling, the objective."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from seqrec.data.tasks.retrieval import CSR, loo_task
from seqrec.models.pinsage import PinSage, PinSageConfig, PinSageConv
from seqrec.models.retrieval_base import RetrievalInfo
from seqrec.train.objectives.pinsage import PinSageMaxMargin, draw_hard, other_items

N_ITEMS = 30


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    rows = [rng.choice(np.arange(1, N_ITEMS + 1), size=rng.integers(4, 10), replace=False) for _ in range(40)]
    return loo_task("tiny", np.arange(40), rows)


def _cfg(batch_size: int = 16, seed: int = 0):
    return SimpleNamespace(train=SimpleNamespace(seed=seed, batch_size=batch_size))


def _model(task, **kw) -> tuple[PinSage, PinSageMaxMargin]:
    torch.manual_seed(0)
    cfg = PinSageConfig(**{"dim": 8, "neighbours": 4, "n_walks": 20, "n_negatives": 10, "hard_lo": 2,
                           "hard_hi": 10, **kw})
    model = PinSage(cfg, RetrievalInfo(task.n_users, task.n_items))
    return model, PinSageMaxMargin(model, task, _cfg())


def test_conv_output_rows_are_unit_length():
    torch.manual_seed(0)
    conv = PinSageConv(6)
    h = torch.randn(9, 6)
    nbr = torch.randint(0, 9, (5, 3))
    w = torch.softmax(torch.randn(5, 3), 1)
    out = conv(h, torch.arange(5), nbr, w)
    assert out.shape == (5, 6)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))


def test_importance_pooling_is_the_weighted_mean_of_neighbour_features():
    torch.manual_seed(0)
    conv = PinSageConv(4)
    with torch.no_grad():
        conv.w.bias.fill_(1.0)  # no dead ReLU: the output is not all zero
    h = torch.randn(3, 4)
    f = torch.relu(conv.q(h))
    got = conv(h, torch.tensor([0]), torch.tensor([[1, 2]]), torch.tensor([[0.25, 0.75]]))
    want = torch.relu(conv.w(torch.cat([h[0], 0.25 * f[1] + 0.75 * f[2]])))
    torch.testing.assert_close(got[0], want / want.norm())


def test_neighbourhoods_are_buffers_set_by_the_objective(task):
    model, _ = _model(task)
    state = model.state_dict()
    assert state["nbr"].shape == (N_ITEMS + 1, 4) and state["nbr"][1:].gt(0).any()
    w = state["nbr_w"][1:]
    torch.testing.assert_close(w.sum(1)[w.sum(1) > 0], torch.ones(int((w.sum(1) > 0).sum())))
    with pytest.raises(ValueError):
        model.set_neighbourhoods(torch.zeros(3, 4, dtype=torch.int64), torch.zeros(3, 4))


def test_minibatch_embeddings_equal_the_whole_catalogue_pass(task):
    model, _ = _model(task, layers=2)
    items = torch.tensor([3, 0, 17, 3, 30])
    model.train()
    z = model.embed(items)
    full = model.item_vectors()
    torch.testing.assert_close(z, full[items])
    assert not full[0].any() and not z[1].any()  # padding row
    torch.testing.assert_close(full[1:].norm(dim=1), torch.ones(N_ITEMS))  # normalize_output


def test_item_vectors_are_cached_in_eval_mode_and_refreshed_after_a_step(task):
    model, objective = _model(task)
    model.eval()
    a = model.item_vectors()
    assert model.item_vectors() is a
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    objective.loss(next(iter(objective.batches(0)))).backward()
    opt.step()
    model.eval()
    assert not torch.equal(model.item_vectors(), a)


def test_user_vector_is_the_mean_of_history_item_embeddings(task):
    model, _ = _model(task)
    model.eval()
    hist = torch.tensor([[0, 0, 4, 9], [0, 0, 0, 7]])
    u = model.user_vectors({"history": hist})
    iv = model.item_vectors()
    torch.testing.assert_close(u[0], (iv[4] + iv[9]) / 2)
    torch.testing.assert_close(u[1], iv[7])


def test_pairs_are_co_interacted_and_never_the_query(task):
    _, objective = _model(task)
    tr = task.train
    user_items = {u: set(tr.row(u).tolist()) for u in range(len(tr))}
    seen = 0
    for batch in objective.batches(0):
        q, p = batch["query"].numpy(), batch["target"].numpy()
        assert (q != p).all()
        seen += len(q)
        assert all(any({a, b} <= s for s in user_items.values()) for a, b in zip(q, p, strict=True))
    assert seen == objective.n_examples == int(sum(len(r) for r in user_items.values() if len(r) >= 2))


def test_other_items_draws_every_other_position():
    values = np.array([5, 6, 7])
    rng = np.random.default_rng(0)
    got = other_items(values, np.zeros(3000, np.int64), np.full(3000, 3), np.ones(3000, np.int64), rng)
    assert set(got.tolist()) == {5, 7}


def test_hard_negatives_exclude_the_positive_and_the_query():
    pool = CSR.from_lists([np.zeros(0, np.int64), np.array([4, 5, 6]), np.array([2]), np.zeros(0, np.int64)])
    query = np.array([1, 1, 2, 3])
    positive = np.array([5, 9, 2, 4])
    out = draw_hard(pool.indptr, pool.values, query, positive, 50, np.random.default_rng(0))
    assert out.shape == (4, 50)
    assert set(out[0].tolist()) == {4, 6}  # 5 is the positive: redrawn
    assert set(out[1].tolist()) == {4, 5, 6}
    assert not out[2].any() and not out[3].any()  # only the positive / an empty pool: masked (0)


def test_curriculum_adds_one_hard_negative_per_epoch(task):
    _, objective = _model(task, hard_negatives=2, hard_from_epoch=2)
    assert [objective.n_hard(e) for e in range(5)] == [0, 1, 2, 2, 2]
    assert "hard" not in next(iter(objective.batches(0)))
    batch = next(iter(objective.batches(2)))
    h, p, q = batch["hard"], batch["target"], batch["query"]
    assert h.shape == (len(q), 2)
    assert not (h == p[:, None]).any() and not (h == q[:, None]).any()
    assert objective.loss(batch).item() >= 0


def test_loss_is_the_max_margin_of_eq_1(task):
    model, objective = _model(task, margin=0.3)
    batch = {"query": torch.tensor([1, 2]), "target": torch.tensor([3, 4]), "neg": torch.tensor([5, 3, 6])}
    z = model.embed(torch.arange(N_ITEMS + 1))
    pos = (z[[1, 2]] * z[[3, 4]]).sum(1)
    neg = z[[1, 2]] @ z[[5, 3, 6]].T
    hinge = torch.relu(neg - pos[:, None] + 0.3)
    hinge[0, 1] = 0.0  # item 3 is query 1's positive: masked
    torch.testing.assert_close(objective.loss(batch), hinge.mean())


def test_bad_config_is_refused():
    for kw in ({"layers": -1}, {"restart": 1.0}, {"hard_lo": 9, "hard_hi": 3}, {"hard_from_epoch": 0}):
        with pytest.raises(ValueError):
            PinSageConfig(**kw)
