"""YouTube DNN candidate generation: inputs (history, features, example age), the label never in
the user vector, serving at age 0, and the logQ-corrected sampled softmax on hand-computed cases."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from seqrec.config import load_run_config
from seqrec.data.retrieval_sampling import next_item_batches
from seqrec.data.tasks.retrieval import CSR, EvalSplit, RetrievalTask, loo_task
from seqrec.families.retrieval import user_batch
from seqrec.losses.retrieval import sampled_softmax
from seqrec.models.retrieval_base import RetrievalInfo
from seqrec.models.youtube_dnn import YouTubeDNN, YouTubeDNNConfig
from seqrec.train.objectives.next_item import SampledSoftmaxNextItem

DAY = 86400.0


def _seq_task() -> RetrievalTask:
    """6 users, 12 items, time-ordered, with user features (ml-100k-like)."""
    rng = np.random.default_rng(0)
    rows = [rng.permutation(np.arange(1, 13))[: 4 + u] for u in range(6)]
    times = [np.arange(len(r), dtype=np.float64) * DAY * (u + 1) for u, r in enumerate(rows)]
    feats = {"gender": np.array([1, 2, 1, 2, 0, 1]), "occupation": np.array([1, 2, 3, 1, 2, 3])}
    return loo_task("toy", np.arange(6), rows, times=times, user_features=feats,
                    feature_sizes={"gender": 3, "occupation": 4})


def _set_task() -> RetrievalTask:
    """A BARS-like task: unordered item sets, no times, no features."""
    train = CSR.from_lists([np.array([1, 2, 3, 4]), np.array([2, 5, 6]), np.array([1, 7, 8, 9, 10])])
    test = EvalSplit(np.array([0, 1]), CSR.from_lists([np.array([5]), np.array([1])]),
                     CSR.from_lists([train.row(0), train.row(1)]), CSR.from_lists([train.row(0), train.row(1)]))
    return RetrievalTask("toyset", 3, 10, train, None, test, np.arange(1, 11), np.arange(3), ordered=False,
                         protocol="bars")


def _model(task: RetrievalTask, **kw) -> YouTubeDNN:
    torch.manual_seed(0)
    cfg = YouTubeDNNConfig(**{"dim": 8, "layers": (16,), "feature_dim": 4, "n_negatives": 5, **kw})
    return YouTubeDNN(cfg, RetrievalInfo(task.n_users, task.n_items, dict(task.feature_sizes), 8))


def _all_batches(task: RetrievalTask, max_len: int = 8) -> list[dict]:
    return list(next_item_batches(task, 4, max_len, seed=3))


@pytest.mark.parametrize("make", [_seq_task, _set_task])
def test_label_never_in_history_nor_user_vector(make):
    task = make()
    model = _model(task).eval()
    for b in _all_batches(task):
        hist, tgt = b["history"], b["target"]
        # every item of the toy data is distinct within a user, so the label never appears in its history
        assert not (hist == tgt[:, None]).any()
        with torch.no_grad():
            u = model.user_vectors(b)
            u2 = model.user_vectors({**b, "target": torch.zeros_like(tgt)})
        assert torch.equal(u, u2)  # the user side never reads the label


def test_history_is_the_past_in_order():
    task = _seq_task()
    b = next(iter(next_item_batches(task, 100, 8, seed=0, shuffle=False)))
    for u, hist, tgt in zip(b["user"].tolist(), b["history"].tolist(), b["target"].tolist(), strict=True):
        row = task.train.row(u).tolist()
        p = row.index(tgt)
        assert [h for h in hist if h] == row[max(0, p - 8):p]


def test_example_age_used_in_training_and_zero_at_serving():
    task = _seq_task()
    ages = torch.cat([b["age"] for b in _all_batches(task)])
    assert ages.max() > 0  # training examples carry their age (days before the end of training)
    model = _model(task).eval()
    b = _all_batches(task)[0]
    with torch.no_grad():
        u_old = model.user_vectors({**b, "age": torch.full_like(b["age"], 100.0)})
        u_now = model.user_vectors({**b, "age": torch.zeros_like(b["age"])})
    assert not torch.allclose(u_old, u_now)  # the user vector depends on the example age
    serve = user_batch(np.array([0, 1]), np.array([[1, 2], [0, 3]]), {k: v[:2] for k, v in task.user_features.items()})
    assert torch.equal(serve["age"], torch.zeros(2))  # serving asks for "now"
    off = _model(task, example_age=False).eval()
    with torch.no_grad():
        assert torch.equal(off.user_vectors({**b, "age": torch.full_like(b["age"], 100.0)}),
                           off.user_vectors({**b, "age": torch.zeros_like(b["age"])}))


def test_user_features_used_when_present():
    task = _seq_task()
    b = _all_batches(task)[0]
    assert "feat_gender" in b and "feat_occupation" in b
    model = _model(task).eval()
    assert sorted(model.features) == ["gender", "occupation"]
    other = {**b, "feat_occupation": (b["feat_occupation"] % 3) + 1}
    with torch.no_grad():
        assert not torch.allclose(model.user_vectors(b), model.user_vectors(other))
    off = _model(task, use_features=False).eval()
    assert len(off.features) == 0
    with torch.no_grad():
        assert torch.equal(off.user_vectors(b), off.user_vectors(other))


def test_history_mean_ignores_padding_and_empty_history():
    task = _set_task()
    model = _model(task, example_age=False, layers=(), project=True).eval()
    b = {"history": torch.tensor([[0, 0, 2, 3], [2, 3, 3, 2], [0, 0, 0, 0]]), "age": torch.zeros(3)}
    x = model.tower_input(b)
    w = model.item_in.weight
    assert torch.allclose(x[0], (w[2] + w[3]) / 2) and torch.allclose(x[1], (w[2] + w[3]) / 2)
    assert torch.equal(x[2], torch.zeros(8))


def test_tie_and_item_vectors_of():
    task = _set_task()
    tied = _model(task, tie=True)
    assert tied.item_out is None and torch.equal(tied.item_vectors(), tied.item_in.weight)
    m = _model(task, normalize=True)
    idx = torch.tensor([[1, 4], [10, 0]])
    assert torch.allclose(m.item_vectors_of(idx), m.item_vectors()[idx])
    assert torch.allclose(m.item_vectors()[1:].norm(dim=-1), torch.ones(10))
    assert torch.allclose(m.user_vectors(_all_batches(task)[0]).norm(dim=-1), torch.ones(4))


def test_paper_tower_last_relu_layer_is_the_user_vector():
    task = _set_task()
    m = _model(task, layers=(16, 8), project=False)
    assert isinstance(m.tower[-1], torch.nn.ReLU)
    assert (m.user_vectors(_all_batches(task)[0]) >= 0).all()
    with pytest.raises(ValueError, match="project = false"):
        YouTubeDNNConfig(dim=8, layers=(16,), project=False)


@pytest.mark.parametrize("bad", [{"dim": 0}, {"temperature": 0.0}, {"n_negatives": 0}, {"dropout": 1.0},
                                 {"sample_alpha": 2.0}, {"layers": (0,)}, {"reg": -1.0}])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        YouTubeDNNConfig(**bad)


def test_sampled_softmax_logq_hand_computed():
    # one row: positive logit 2 with Q = 0.5, negatives logits (1, 3) with Q = (0.25, 2.0)
    pos, neg = torch.tensor([2.0]), torch.tensor([[1.0, 3.0]])
    lq_pos, lq_neg = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25, 2.0]))
    z = [2 - math.log(0.5), 1 - math.log(0.25), 3 - math.log(2.0)]
    expect = -(z[0] - math.log(sum(math.exp(v) for v in z)))
    got = sampled_softmax(pos, neg, pos_log_q=lq_pos, neg_log_q=lq_neg)
    assert got.item() == pytest.approx(expect, rel=1e-6)
    # an accidental hit is removed from the denominator; temperature divides before the correction
    got = sampled_softmax(pos, neg, pos_log_q=lq_pos, neg_log_q=lq_neg, accidental=torch.tensor([[False, True]]),
                          temperature=0.5)
    z = [4 - math.log(0.5), 2 - math.log(0.25)]
    assert got.item() == pytest.approx(-(z[0] - math.log(sum(math.exp(v) for v in z))), rel=1e-6)


def _objective(task, **kw):
    model = _model(task, **kw)
    cfg = SimpleNamespace(train=SimpleNamespace(seed=0, batch_size=4), data=SimpleNamespace(max_len=8))
    return model, SampledSoftmaxNextItem(model, task, cfg)


def test_objective_logq_values_mixed_sampling():
    task = _set_task()  # item counts: 1:2, 2:2, 3..10: 1 each (12 interactions)
    _, obj = _objective(task, n_negatives=5, sample_alpha=1.0, in_batch=True)
    items = torch.tensor([1, 3])
    q_s = torch.tensor([2 / 12, 1 / 12])  # alpha = 1: the sampler draws by count
    q_d = torch.tensor([2 / 12, 1 / 12])  # in-batch: the data frequency
    expect = torch.log(5 * q_s + 4 * q_d)  # expected count among a row's candidates, S = 5, B = 4
    assert torch.allclose(obj.log_q(items, 4), expect)
    _, uni = _objective(task, n_negatives=5, sample_alpha=0.0)
    assert torch.allclose(uni.log_q(items, 4), torch.log(torch.tensor([5 / 10, 5 / 10])))


def test_objective_loss_equals_hand_assembled_softmax():
    task = _set_task()
    model, obj = _objective(task, n_negatives=3, sample_alpha=1.0, in_batch=True, temperature=0.5)
    b = _all_batches(task)[0]
    torch.manual_seed(0)
    state = obj.sampler.rng.bit_generator.state
    got = obj.loss(b)
    obj.sampler.rng.bit_generator.state = state
    neg = torch.cat([obj.sampler.sample(3), b["target"]])
    u = model.user_vectors(b)
    items = model.item_vectors()
    t = b["target"]
    logits = torch.cat([(u * items[t]).sum(-1, keepdim=True), u @ items[neg].T], 1) / 0.5
    counts = torch.from_numpy(task.item_counts()).float()
    q = 3 * counts / counts.sum() + len(t) * counts / counts.sum()
    logits = logits - torch.log(q[torch.cat([t[:, None], neg[None].expand(len(t), -1)], 1)])
    logits[:, 1:] = logits[:, 1:].masked_fill(neg[None, :] == t[:, None], -math.inf)
    expect = (torch.logsumexp(logits, 1) - logits[:, 0]).mean()
    assert got.item() == pytest.approx(expect.item(), rel=1e-5)


def test_training_lowers_the_loss():
    task = _seq_task()
    model, obj = _objective(task, n_negatives=5, in_batch=True)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    b = _all_batches(task)[0]
    first = obj.loss(b).item()
    for _ in range(30):
        loss = obj.loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert obj.loss(b).item() < 0.5 * first


@pytest.mark.parametrize("name", ["gowalla", "movielens1m_m1", "amazon_beauty", "amazon_sports", "ml-100k"])
def test_shipped_configs_load(name):
    from pathlib import Path

    cfg = load_run_config(Path(__file__).parents[2] / "configs" / f"youtube_dnn_{name}.toml")
    assert cfg.model_name == "youtube_dnn" and cfg.data.dataset == name


def test_sparse_tables_give_the_dense_model_s_loss_and_row_gradients():
    """``sparse = true``: the same parameters and loss as the dense model, the item and feature
    tables' gradients sparse (only the rows the batch used) and equal to the dense gradients' rows,
    and one step of the CTR/retrieval optimiser (SparseAdam twin) runs."""
    from seqrec.train.ctr_trainer import build_torch_optimizer

    task = _seq_task()
    dense, sparse = _model(task), _model(task, sparse=True)
    sparse.load_state_dict(dense.state_dict())
    batch = _all_batches(task)[0]
    cfg = SimpleNamespace(train=SimpleNamespace(seed=0), data=SimpleNamespace(max_len=8))
    losses = []
    for m in (dense, sparse):
        obj = SampledSoftmaxNextItem(m, task, cfg)
        loss = obj.loss(batch)
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for name in ("item_in", "item_out"):
        gd, gs = getattr(dense, name).weight.grad, getattr(sparse, name).weight.grad
        assert not gd.is_sparse and gs.is_sparse
        assert torch.allclose(gs.to_dense(), gd, atol=1e-6)
        assert gs.coalesce().indices().numel() < gd.shape[0]  # only the rows the batch touched
    opt = build_torch_optimizer("adam", sparse, lr=0.01)
    assert any(isinstance(o, torch.optim.SparseAdam) for o in opt.opts)
    before = sparse.item_out.weight.detach().clone()
    opt.step()
    moved = (sparse.item_out.weight.detach() != before).any(1)
    assert moved.any() and not moved.all()  # lazy: untouched rows keep their values
