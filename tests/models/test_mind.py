"""MIND (Li et al. 2019): interests and masks, scores = max over the used interests, label-aware
training vector, padding, user features, the mean-pooling variant, config checks, and the
objective learning on a tiny task."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from seqrec.data.tasks.retrieval import loo_task
from seqrec.models.mind import MIND, MINDConfig
from seqrec.models.retrieval_base import RetrievalInfo
from seqrec.train.objectives import objective_for

INFO = RetrievalInfo(n_users=5, n_items=30, max_len=20)


def _model(info=INFO, **kw) -> MIND:
    torch.manual_seed(0)
    return MIND(MINDConfig(dim=8, **kw), info).eval()


def _batch(histories, width=None):
    width = width or max(len(h) for h in histories)
    hist = torch.zeros(len(histories), width, dtype=torch.long)
    for r, h in enumerate(histories):
        if h:
            hist[r, width - len(h):] = torch.tensor(h)
    return {"user": torch.arange(len(histories)), "history": hist, "age": torch.zeros(len(histories))}


HIST = [[1], [2, 3, 4, 5], [6, 7, 8, 9, 10, 11, 12, 13, 14], list(range(1, 21)), []]


def test_shapes_and_interest_mask():
    m = _model(n_interests=4, hidden=(16,))
    b = _batch(HIST)
    v, mask = m.user_vectors(b), m.interest_mask(b)
    assert v.shape == (5, 4, 8) and mask.shape == (5, 4)
    assert mask.sum(1).tolist() == [1, 2, 3, 4, 1]  # eq. 9; an empty history gets one interest
    assert m.item_vectors().shape == (31, 8)
    assert m.score_all(b).shape == (5, 31)


def test_scores_are_the_max_over_used_interests():
    m = _model(n_interests=4, hidden=(16,), init_std=1.0)
    b = _batch(HIST)
    with torch.no_grad():
        v, mask, items = m.user_vectors(b), m.interest_mask(b), m.item_vectors()
        s = m.score_all(b)
    for r in range(len(HIST)):
        used = v[r, mask[r]]  # (K'_u, D)
        assert torch.allclose(s[r], (used @ items.T).max(0).values, atol=1e-6)
    # the unused interests (after the tower they are not 0) must not count
    every = torch.einsum("bkd,nd->bkn", v, items).max(1).values
    assert not torch.allclose(every[~mask.all(1)], s[~mask.all(1)], atol=1e-3)


def test_extra_padding_changes_no_score():
    m = _model(n_interests=3, hidden=(16,))
    with torch.no_grad():
        a = m.score_all(_batch(HIST))
        b = m.score_all(_batch(HIST, width=32))
    assert torch.allclose(a, b, atol=1e-6)


def test_eval_scores_are_deterministic_and_batch_independent():
    m = _model(n_interests=4)
    with torch.no_grad():
        a = m.score_all(_batch(HIST))
        b = m.score_all(_batch(HIST[2:3]))
    assert torch.equal(m.score_all(_batch(HIST)), a)
    assert torch.allclose(b[0], a[2], atol=1e-6)


def test_routing_logits_are_not_parameters():
    m = _model(n_interests=4, hidden=(16,))
    names = {n for n, _ in m.named_parameters()}
    assert {n for n in names if not n.startswith("tower.")} == {"item.weight", "routing.S.weight"}
    assert len(names) == 2 + 4  # the tower: two Linear layers
    assert set(m.state_dict()) == names  # no stored routing state either


def test_label_aware_vector_limits():
    m = _model(n_interests=4, hidden=(16,), label_attention="scaled")
    b = _batch(HIST)
    target = m.item_vectors()[torch.tensor([3, 4, 5, 6, 7])]
    with torch.no_grad():
        v, mask = m.user_vectors(b), m.interest_mask(b)
        s = torch.einsum("bkd,bd->bk", v, target).masked_fill(~mask, -math.inf)
        closest = v[torch.arange(5), s.argmax(1)]
        mean = (v * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        hard = MIND(dataclasses.replace(m.config, label_power=math.inf), INFO)
        hard.load_state_dict(m.state_dict())
        avg = MIND(dataclasses.replace(m.config, label_power=0.0), INFO)
        avg.load_state_dict(m.state_dict())
        assert torch.allclose(hard.eval().train_user_vector(b, target), closest)
        assert torch.allclose(avg.eval().train_user_vector(b, target), mean, atol=1e-6)


def test_user_features_enter_every_interest():
    info = RetrievalInfo(n_users=5, n_items=30, feature_sizes={"age": 4, "gender": 3}, max_len=20)
    m = _model(info, n_interests=2, feature_dim=3)
    b = _batch(HIST)
    b["feat_age"] = torch.tensor([1, 2, 3, 0, 1])
    b["feat_gender"] = torch.tensor([1, 1, 2, 2, 0])
    with torch.no_grad():
        v = m.user_vectors(b)
        b2 = dict(b, feat_age=torch.tensor([2, 2, 3, 0, 1]))
        v2 = m.user_vectors(b2)
    assert v.shape == (5, 2, 8)
    assert not torch.allclose(v[0], v2[0]) and torch.allclose(v[1:], v2[1:])
    assert m.tower.net[0].in_features == 8 + 2 * 3
    off = _model(info, n_interests=2, use_features=False)
    assert off.user_vectors(b).shape == (5, 2, 8)


def test_mean_extractor_is_one_interest_of_the_mean_history():
    m = _model(extractor="mean")
    b = _batch(HIST)
    with torch.no_grad():
        v = m.user_vectors(b)
        assert v.shape == (5, 1, 8) and m.interest_mask(b).all()
        items = m.item_vectors()
        assert torch.allclose(v[1, 0], items[[2, 3, 4, 5]].mean(0))
        assert torch.allclose(m.score_all(b), v[:, 0] @ items.T)


@pytest.mark.parametrize("bad", [dict(n_interests=0), dict(iterations=0), dict(sigma=-1.0),
                                 dict(extractor="max"), dict(label_attention="dot"),
                                 dict(label_attention="power", label_power=1.5), dict(hidden=(0,))])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        MINDConfig(**bad)


def test_objective_learns_a_tiny_task():
    rng = np.random.default_rng(0)
    # ten user groups, each with its own pool of three items: the history gives the pool away
    rows = [rng.choice(np.arange(1, 4) + 3 * (u % 10), size=12) for u in range(40)]
    task = loo_task("tiny", np.arange(40), rows)
    info = RetrievalInfo(task.n_users, task.n_items, {}, 10)
    torch.manual_seed(0)
    model = MIND(MINDConfig(dim=8, n_interests=2, hidden=(16,), n_negatives=10, init_std=0.3,
                                  dropout=0.0), info)
    cfg = SimpleNamespace(train=SimpleNamespace(seed=0, batch_size=64), data=SimpleNamespace(max_len=10))
    obj = objective_for("mind", model, task, cfg)
    assert obj.n_examples == 40 * 9
    batch = next(iter(obj.batches(0)))
    first = obj.loss(batch).item()
    for _ in range(60):  # plain SGD by hand (torch.optim's first step imports for seconds)
        loss = obj.loss(batch)
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.3 * p.grad
    assert loss.item() < 0.5 * first
    model.eval()
    with torch.no_grad():
        s = model.score_all(_batch([[1, 2, 3]]))[0]
    assert s[1:4].min() > s[4:].max()  # the group's own items first
