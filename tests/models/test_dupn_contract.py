"""Contract of DUPN and the single-task DINs on the real Taobao multi-task rows, and the recipe
that builds those rows: shapes, determinism, eval-mode batch independence (the BatchNorm pitfall),
per-task BatchNorm statistics, attention, masked per-task losses, freezing, transfer warm starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqrec.config import load_run_config
from seqrec.families.multitask import build_model
from seqrec.train.multitask_trainer import batches, multitask_loss

CONTRACT_MODELS = ["dupn", "single_din"]
CONFIG = {"dupn": "configs/dupn_taobao.toml", "single_din": "configs/single_din_taobao.toml"}


def _build(tasks=("ctr", "l2r", "pref", "buy", "cat_buy"), **kw):
    from seqrec.data.registry import get_dataset, require_files
    from seqrec.data.tasks.taobao_multitask import taobao_multitask

    folder = require_files(get_dataset("taobao", "multitask"), None)
    return taobao_multitask("taobao", folder, tasks=tasks, **kw)


@pytest.fixture(scope="module")
def taobao(data_root):
    return _build()


def _model(name, data, *over):
    cfg = load_run_config(CONFIG[name], list(over))
    torch.manual_seed(0)
    return build_model(cfg, data.schema, data.tasks), cfg


def _mixed_batch(data, n=64, part="valid"):
    """n rows of every task (a batch with all tasks in it)."""
    cols = data.split(part)
    idx = np.concatenate([np.flatnonzero(cols["task"] == k)[:n] for k in range(len(data.tasks))])
    return {k: torch.from_numpy(np.ascontiguousarray(v[idx])) for k, v in cols.items()}


# -- the recipe --------------------------------------------------------------------------------
def test_rows_belong_to_one_task_each(taobao):
    for part in ("train", "valid", "test"):
        cols = taobao.split(part)
        for k, t in enumerate(taobao.tasks):
            y = cols[f"label_{t}"]
            own = cols["task"] == k
            assert set(np.unique(y[own])) <= {0.0, 1.0} and (y[~own] == -1).all()
    assert (taobao.test["day"] == 8).all() and (taobao.valid["day"] == 7).all() and (taobao.train["day"] < 7).all()


def test_pair_tasks_and_their_negatives(taobao):
    cols, tasks = taobao.train, taobao.tasks
    for t in ("ctr", "l2r", "pref"):
        rows = cols["task"] == tasks.index(t)
        y = cols[f"label_{t}"][rows]
        assert y[0::2].all() and not y[1::2].any()  # (positive, negative) pairs with one history
        assert np.array_equal(cols["hist_item"][rows][0::2], cols["hist_item"][rows][1::2])
    l2r = cols["task"] == tasks.index("l2r")
    cate, query = cols["cate"][l2r], cols["query"][l2r]
    # same-category negatives (2 of 26,309 pairs differ: items logged under two categories, an item's
    # category is the one it was last seen with)
    assert (cate[0::2] == cate[1::2]).mean() > 0.999 and (query == cate).mean() > 0.999
    ctr = cols["task"] == tasks.index("ctr")
    assert (cols["query"][ctr] == 0).all()
    pref = np.flatnonzero(cols["task"] == tasks.index("pref"))
    neg = pref[1::2]
    viewed = [(cols["hist_item"][r] == cols["item"][r]).any() for r in neg]
    assert np.mean(viewed) > 0.9  # items the user viewed earlier that day (a few beyond max_len)


def test_out_of_vocabulary_candidates_do_not_give_the_label_away(taobao):
    """Test-day items are OOV; negatives come from the same day's items, so 'the candidate is
    OOV' alone must not separate positives from negatives (it scored 0.83-0.88 AUC when
    negatives were drawn from the vocabulary)."""
    from seqrec.evaluate.classification import auc

    cols = taobao.test
    for k, t in enumerate(taobao.tasks[:3]):
        rows = cols["task"] == k
        y, oov = cols[f"label_{t}"][rows], (cols["item"][rows] == 1).astype(float)
        assert oov[y == 1].mean() > 0.4 and abs(auc(y, oov) - 0.5) < 0.05, t


def test_day_tasks_one_row_per_user_and_day(taobao):
    cols = taobao.test
    buy = cols["task"] == taobao.tasks.index("buy")
    assert (cols["item"][buy] == 0).all() and (cols["query"][buy] == 0).all()
    assert len(np.unique(cols["user_key"][buy])) == buy.sum()
    cb = cols["task"] == taobao.tasks.index("cat_buy")
    assert np.array_equal(cols["query"][cb], cols["cate"][cb]) and (cols["cate"][cb] > 1).all()
    # the candidate categories come from the user's history
    assert all(c in h for c, h in zip(cols["cate"][cb][:200], cols["hist_cate"][cb][:200], strict=True))


def test_histories_and_gaps(taobao):
    h, g, b = taobao.train["hist_item"], taobao.train["hist_gap"], taobao.train["hist_btype"]
    real = h != 0
    assert ((g >= 2) == real).all() and ((b >= 2) == real).all() and (g <= 16).all()
    lengths = real.sum(1)  # left-aligned: real behaviours first
    assert (real == (np.arange(h.shape[1])[None, :] < lengths[:, None])).all()


def test_vocabulary_of_fewer_days_is_a_prefix(taobao, data_root):
    early = _build(tasks=("buy",), test_day=6)
    for name in ("item", "cate", "user"):
        a, b = early.vocabs[name].ids_, taobao.vocabs[name].ids_
        assert len(a) <= len(b) and b[:len(a)] == a
    assert len(early.vocabs["item"]) < len(taobao.vocabs["item"])
    # ids first seen on the test day are out of vocabulary
    assert (taobao.test["item"] == 1).any() and not (taobao.train["item"] == 1).any()


def test_unknown_task_and_bad_days_are_config_errors(data_root):
    from seqrec.errors import ConfigError

    with pytest.raises(ConfigError, match="choose distinct tasks"):
        _build(tasks=("ctr", "nope"))
    with pytest.raises(ConfigError, match="test_day"):
        _build(tasks=("ctr",), test_day=1)


# -- the models ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONTRACT_MODELS)
def test_shapes_determinism_and_batch_independence(taobao, name):
    m, _ = _model(name, taobao)
    m.train()
    for b in batches(taobao.train, 512, shuffle=True):
        m(b)  # move BatchNorm's running statistics
        break
    m.eval()
    b = _mixed_batch(taobao)
    with torch.no_grad():
        out = m(b).logits
        assert out.shape == (len(b["task"]), len(taobao.tasks)) and torch.isfinite(out).all()
        assert torch.equal(out, m(b).logits)
        rows = torch.arange(0, len(b["task"]), 7)
        alone = m({k: v[rows] for k, v in b.items()}).logits  # another batch composition
    assert torch.allclose(out[rows], alone, atol=1e-5)


def test_dupn_head_statistics_come_from_its_own_task(taobao):
    m, _ = _model("dupn", taobao)
    m.train()
    b = _mixed_batch(taobao)
    keep = b["task"] != taobao.tasks.index("buy")
    bns = {t: [x for x in h.modules() if isinstance(x, torch.nn.BatchNorm1d)] for t, h in m.heads.items()}
    assert all(bns.values())  # every head has BatchNorm (the config's batch_norm = true)
    before = {t: bn[0].running_mean.clone() for t, bn in bns.items()}
    m({k: v[keep] for k, v in b.items()})
    assert torch.equal(bns["buy"][0].running_mean, before["buy"])  # no buy rows: its statistics unchanged
    assert not torch.equal(bns["ctr"][0].running_mean, before["ctr"])


def test_dupn_attention_is_a_distribution_over_real_behaviours(taobao):
    m, _ = _model("dupn", taobao)
    m.eval()
    b = _mixed_batch(taobao)
    with torch.no_grad():
        r, w = m.represent(b)
    real = b["hist_item"] != 0
    assert r.shape == (len(w), m.repr_dim)
    assert (w[~real] == 0).all() and (w >= 0).all()
    has = real.any(1)
    assert torch.allclose(w[has].sum(1), torch.ones(int(has.sum())), atol=1e-6)
    empty = {k: v[:2].clone() for k, v in b.items()}
    for k in ("hist_item", "hist_cate", "hist_btype", "hist_gap"):
        empty[k].zero_()
    with torch.no_grad():
        assert torch.isfinite(m(empty).logits).all()  # a user without history still gets a score


def test_masked_loss_is_each_tasks_bce_over_its_rows(taobao):
    m, _ = _model("dupn", taobao)
    b = _mixed_batch(taobao, 16)
    logits = torch.randn(len(b["task"]), len(taobao.tasks))
    want = 0.0
    for k, t in enumerate(taobao.tasks):
        rows = b["task"] == k
        want = want + F.binary_cross_entropy_with_logits(logits[rows, k], b[f"label_{t}"][rows])
    assert torch.allclose(multitask_loss(m, logits, b), want)


@pytest.mark.parametrize("name", CONTRACT_MODELS)
def test_overfits_one_batch(taobao, name):
    m, _ = _model(name, taobao)
    b = _mixed_batch(taobao, 24, "train")
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    m.train()
    first = multitask_loss(m, m(b).logits, b).item()
    for _ in range(120):
        loss = multitask_loss(m, m(b).logits, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


def test_frozen_representation_trains_the_heads_only(taobao):
    m, _ = _model("dupn", taobao, "model.freeze_representation=true")
    b = _mixed_batch(taobao, 32, "train")
    frozen = {k: v.clone() for k, v in m.state_dict().items() if not k.startswith("heads.")}
    head = m.heads["ctr"].state_dict()
    head = {k: v.clone() for k, v in head.items()}
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    m.train()
    for _ in range(3):
        loss = multitask_loss(m, m(b).logits, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in frozen.items())
    assert any(not torch.equal(v, m.heads["ctr"].state_dict()[k]) for k, v in head.items())


def test_transfer_warm_start_keeps_the_shared_layers_and_adds_a_head(taobao, tmp_path):
    from seqrec.train.checkpoint import save_tensors
    from seqrec.train.warm_start import warm_start

    four = _build(tasks=("ctr", "l2r", "pref", "buy"))
    src, _ = _model("dupn", four)
    save_tensors(tmp_path / "model.pt", src.state_dict())
    one = _build(tasks=("cat_buy",))
    dst, _ = _model("dupn", one, "train.seed=3")
    rep = warm_start(dst, tmp_path)
    assert rep["new"] and all(k.startswith("heads.cat_buy") for k in rep["new"])
    s, d = src.state_dict(), dst.state_dict()
    assert all(torch.equal(s[k], d[k]) for k in d if not k.startswith("heads."))


def test_a_one_row_batch_still_backpropagates(taobao):
    """BatchNorm cannot train on one row: the head skips it, and the loss still has a graph
    (a final batch of one row used to stop training with 'does not require grad')."""
    m, _ = _model("dupn", taobao)
    m.train()
    b = {k: v[:1] for k, v in _mixed_batch(taobao, 4, "train").items()}
    loss = multitask_loss(m, m(b).logits, b)
    loss.backward()
    assert loss.requires_grad


def test_candidate_attention_makes_r_depend_on_the_candidate_category_only(taobao):
    m, _ = _model("dupn", taobao, "model.candidate_attention=true")
    m.eval()
    b = _mixed_batch(taobao, 8)
    other = dict(b, item=b["item"].flip(0))  # other items, same categories
    with torch.no_grad():
        assert torch.equal(m.represent(b)[0], m.represent(other)[0])
        moved = dict(b, cate=b["cate"].flip(0))
        assert not torch.equal(m.represent(b)[0], m.represent(moved)[0])
    with pytest.raises(ValueError, match="one category"):
        m.score_candidates(m.represent(b)[0][:1], b["item"][:4], torch.tensor([2, 3, 4, 5]), "ctr")


@pytest.mark.slow
def test_the_run_log_has_every_tasks_validation_auc(dupn_run):
    import csv

    rows = list(csv.DictReader((dupn_run / "log.csv").open()))
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert epochs and all(float(r[f"valid_auc_{t}"]) > 0 for r in epochs for t in ("ctr", "l2r", "pref", "buy"))
