"""The model split scores exactly what the unsplit model scores (real Amazon Beauty histories)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.config import load_run_config
from seqrec.families.ctr import build_ctr_model, load_ctr_task
from seqrec.serve.split import DIENSplit, DINSplit, ExpandScorer, naive_scores, split_scorer


@pytest.fixture(scope="module")
def beauty(data_root):
    return load_ctr_task("amazon_beauty", str(data_root))


def _model(name: str, task, **model):
    cfg = load_run_config(f"configs/{name}_amazon_beauty.toml", [f"model.{k}={v}" for k, v in model.items()])
    torch.manual_seed(0)
    m = build_ctr_model(cfg, task.schema)
    with torch.no_grad():  # trained-looking statistics: Dice's running moments away from (0, 1)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
            if hasattr(mod, "alpha") and isinstance(mod.alpha, torch.nn.Parameter):
                mod.alpha.uniform_(-0.5, 0.5)
    return m.eval()


def _users(task, n=6, seed=0):
    """One-row user batches of real test histories (lengths from 1 to the longest)."""
    cols = task.test.columns
    lens = (cols["hist_item"] != 0).sum(1)
    order = np.argsort(lens)
    rows = order[np.linspace(0, len(order) - 1, n).astype(int)]
    names = [k for k in cols if k.startswith("hist_") and k in [f.name for f in task.schema.features]] + ["user"]
    return [{k: torch.from_numpy(cols[k][r:r + 1]) for k in names} for r in rows]


@pytest.mark.parametrize("name, cls, model", [
    ("din", DINSplit, {}),
    ("din", DINSplit, {"att_softmax": "true", "sum_product": "false", "item_bias": "false"}),
    ("dien", DIENSplit, {}),
    ("dien", DIENSplit, {"attention": '"bilinear"', "item_bias": "true"}),
    ("bst", ExpandScorer, {}),
    ("deepfm", ExpandScorer, {}),
])
def test_split_equals_the_unsplit_forward(beauty, name, cls, model):
    m = _model(name, beauty, **model)
    item_cate = torch.from_numpy(np.asarray(beauty.item_cate, np.int64))
    scorer = split_scorer(m, item_cate)
    assert type(scorer) is cls
    items = torch.from_numpy(np.random.default_rng(1).integers(2, len(item_cate), 300))
    with torch.inference_mode():
        for user in _users(beauty):
            got = scorer.score(scorer.encode(user), items)
            want = naive_scores(m, user, item_cate, items)
            assert got.shape == (300,)
            assert torch.allclose(got, want, atol=1e-5, rtol=0), (got - want).abs().max()
            one = naive_scores(m, user, item_cate, items[:5], per_candidate=True)
            assert torch.allclose(got[:5], one, atol=1e-5, rtol=0)


def test_din_attention_weights_match_the_activation_unit(beauty):
    m = _model("din", beauty)
    item_cate = torch.from_numpy(np.asarray(beauty.item_cate, np.int64))
    scorer = DINSplit(m, item_cate)
    user = _users(beauty)[-1]
    items = torch.arange(2, 40)
    with torch.inference_mode():
        w = scorer.attention(scorer.encode(user), items)  # (C, n) real positions
        batch = {k: v.expand(len(items), -1) for k, v in user.items()}
        batch.update({"item": items, "cate": item_cate[items]})
        q = m.inp.query(batch)
        k, mask = m.inp.keys(batch)
        ref = m.att.weights(q, k, mask)[:, mask[0]]
    assert torch.allclose(w, ref, atol=1e-5)
