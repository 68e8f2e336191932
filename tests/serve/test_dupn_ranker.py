"""A DUPN run served as the ranker of a pipeline: r once per request and a task head over the
candidates gives the unsplit model's scores, and a daily update (a new run directory) is swapped in
by the hot reload."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import torch

from seqrec.serve.config import PipelineConfig, PipelineSection, VariantConfig
from seqrec.serve.pipeline import Deadline, PipelineHolder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def taobao_retriever(data_root, tmp_path_factory):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from seqrec.config import load_run_config
    from seqrec.experiment import train_run

    out = tmp_path_factory.mktemp("taobao_pop") / "pop"
    train_run(load_run_config("configs/pop_retrieval_amazon_beauty.toml",
                              ["data.dataset=taobao", "train.progress=false"]), out)
    return out


def _cfg(retriever, ranker, state=None, **kw) -> PipelineConfig:
    v = VariantConfig(name="main", retriever=str(retriever), ranker=str(ranker), candidates=300, **kw)
    return PipelineConfig(pipeline=PipelineSection(name="t", state_dir=str(state or "")), variants=(v,))


def _recommend(holder, items):
    return holder.current.variants["main"].recommend(user=None, items=items, k=10, exclude_seen=True, explain=True,
                                                deadline=Deadline(time.perf_counter(), 30.0))


def test_served_scores_are_the_unsplit_models(taobao_retriever, dupn_run, tmp_path):
    holder = PipelineHolder(_cfg(taobao_retriever, dupn_run, tmp_path / "s", ranker_task="ctr"))
    ranker = holder.current.variants["main"].ranker
    items = [str(i) for i in ranker.vocabs["item"].ids_[:8]]
    res = _recommend(holder, items)
    assert len(res.items) == 10 and res.variant == "main"
    # the unsplit model: the request's history as one row per candidate, the candidate in the row
    cand = ranker.rows([it["id"] for it in res.items])
    batch = ranker.user_batch(ranker.rows(items), None)
    rows = {k: v.repeat(len(cand), *([1] * (v.dim() - 1))) for k, v in batch.items()}
    rows["item"] = torch.from_numpy(cand)
    rows["cate"] = ranker.item_cate[rows["item"]]
    with torch.no_grad():
        want = ranker.model(rows).logits[:, ranker.run.tasks.index("ctr")].numpy()
    got = np.array([it["score"] for it in res.items])  # probabilities
    assert np.allclose(got, 1 / (1 + np.exp(-want)), atol=1e-6)
    assert list(got) == sorted(got, reverse=True)


def test_a_daily_update_is_swapped_in_by_the_hot_reload(taobao_retriever, dupn_run, tmp_path):
    from seqrec.train.checkpoint import load_tensors, save_tensors

    v2 = tmp_path / "v2"
    shutil.copytree(dupn_run, v2)
    w = load_tensors(v2 / "model.pt")
    for k in w:
        if k.startswith("heads.ctr.") and k.endswith("bias"):
            w[k] = w[k] + torch.randn_like(w[k])  # another version of the head
    save_tensors(v2 / "model.pt", w)
    holder = PipelineHolder(_cfg(taobao_retriever, dupn_run, tmp_path / "s", ranker_task="ctr"))
    items = [str(i) for i in holder.current.variants["main"].ranker.vocabs["item"].ids_[:8]]
    before = _recommend(holder, items)
    holder.reload({"main": {"ranker": str(v2)}})
    after = _recommend(holder, items)
    assert after.versions["ranker"] != before.versions["ranker"] and after.versions["ranker"].startswith("v2@")
    assert [i["score"] for i in after.items] != [i["score"] for i in before.items]


def test_bad_ranker_settings_are_one_line_errors(taobao_retriever, dupn_run, tmp_path):
    from seqrec.errors import ConfigError

    with pytest.raises(ConfigError, match="not a task"):
        PipelineHolder(_cfg(taobao_retriever, dupn_run, ranker_task="nope"))
    with pytest.raises(ConfigError, match="eager"):
        PipelineHolder(_cfg(taobao_retriever, dupn_run, ranker_backend="onnx"))
