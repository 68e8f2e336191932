"""Contract suite over every registered CTR model (synthetic batches: mechanics only).

Shapes, padding invariance (extra padding changes no score), seeded determinism, exact
checkpoint round trip, "overfits one batch", and bad-input errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.config import load_run_config
from seqrec.data.samples import LabeledSamples, SampleBatch, to_tensors
from seqrec.errors import DataValidationError, SchemaError
from seqrec.families.ctr import build_ctr_model
from seqrec.registry import model_names
from seqrec.schema import Feature, Schema, Table
from seqrec.train.checkpoint import load_tensors, save_tensors
from seqrec.train.ctr_trainer import CTRTrainer

CTR_MODELS = model_names("ctr")
CONTRACT_MODELS = set(CTR_MODELS)  # read by tests/models/test_contract_coverage.py
T = 8


def schema(max_len: int = T) -> Schema:
    return Schema(
        tables=(Table("item", 40, 8), Table("cate", 10, 8), Table("user", 20, 8), Table("btype", 6, 8)),
        features=(Feature("user", "sparse", "user"), Feature("item", "sparse", "item"),
                  Feature("cate", "sparse", "cate"),
                  Feature("hist_item", "sequence", "item", max_len=max_len),
                  Feature("hist_cate", "sequence", "cate", max_len=max_len),
                  Feature("hist_btype", "sequence", "btype", max_len=max_len)),
    )


def columns(n: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, T + 1, n)
    lens[:3] = (0, 1, T)  # empty, single and full histories
    real = np.arange(T)[None, :] < lens[:, None]
    item_cate = rng.integers(2, 10, 40)
    hist = np.where(real, rng.integers(2, 40, (n, T)), 0)
    neg = np.where(real, rng.integers(2, 40, (n, T)), 0)
    t0 = rng.uniform(1e9, 1e9 + 1e5, n)
    gaps = rng.choice([60.0, 600.0, 4000.0], (n, T))
    htime = np.where(real, t0[:, None] + np.cumsum(gaps, 1), 0.0)
    sess = np.where(real, np.cumsum(gaps > 1800, 1), 0)
    item = rng.integers(2, 40, n)
    return {
        "user": rng.integers(2, 20, n), "item": item, "cate": item_cate[item],
        "hist_item": hist, "hist_cate": np.where(real, item_cate[hist], 0),
        "hist_btype": np.where(real, rng.integers(2, 6, (n, T)), 0),
        "neg_hist_item": neg, "neg_hist_cate": np.where(real, item_cate[neg], 0),
        "hist_session": sess.astype(np.int64), "hist_time": htime,
        "time": htime.max(1) + 30.0, "label": (rng.random(n) < 0.5).astype(np.float32),
    }


def model_for(name: str, seed: int = 0, **model):
    cfg = load_run_config(raw={"model": {"name": name, "embedding_dim": 8, **model},
                               "train": {"seed": seed}})
    torch.manual_seed(seed)
    return build_ctr_model(cfg, schema()).eval()


def pad_more(cols: dict[str, np.ndarray], extra: int = 5) -> dict[str, np.ndarray]:
    out = {}
    for k, v in cols.items():
        out[k] = np.concatenate([v, np.zeros((len(v), extra), v.dtype)], 1) if v.ndim == 2 else v
    return out


@pytest.mark.parametrize("name", CTR_MODELS)
def test_shapes_and_finite(name):
    m = model_for(name)
    out = m(to_tensors(columns()))
    assert out.logits.shape == (64,)
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize("name", CTR_MODELS)
def test_padding_invariance(name):
    m = model_for(name)
    cols = columns()
    a = m(to_tensors(cols)).logits
    b = m(to_tensors(pad_more(cols))).logits
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CTR_MODELS)
def test_seeded_determinism_and_checkpoint_round_trip(name, tmp_path):
    a, b = model_for(name, seed=3), model_for(name, seed=3)
    batch = to_tensors(columns())
    assert torch.equal(a(batch).logits, b(batch).logits)
    assert not torch.equal(model_for(name, seed=4)(batch).logits, a(batch).logits)
    save_tensors(tmp_path / "model.pt", a.state_dict())
    c = model_for(name, seed=99)
    c.load_state_dict(load_tensors(tmp_path / "model.pt"))
    c.eval()
    assert torch.equal(a(batch).logits, c(batch).logits)


@pytest.mark.parametrize("name", CTR_MODELS)
def test_overfits_one_batch(name):
    """The trainer's own objective and optimiser (not a re-implementation) drive 150 steps."""
    cfg = load_run_config(raw={"model": {"name": name, "embedding_dim": 8, "dropout": 0.0},
                               "train": {"optimizer": "adam", "lr": 0.01, "seed": 0}})
    torch.manual_seed(0)
    m = build_ctr_model(cfg, schema()).train()
    cols = columns(n=32, seed=1)
    tr = CTRTrainer(m, cfg, LabeledSamples(schema(), cols))
    batch = SampleBatch.of(schema(), cols)
    losses = []
    for _ in range(150):
        loss = tr.loss(batch)
        tr.opt.zero_grad(set_to_none=True)
        loss.backward()
        tr.opt.step()
        losses.append(loss.item())
    m.eval()
    final = torch.nn.functional.binary_cross_entropy_with_logits(m(batch).logits, batch["label"]).item()
    assert final < 0.2 * losses[0], (losses[0], final)


def test_dien_auxiliary_loss_needs_negatives_and_masks_padding():
    m = model_for("dien").train()
    cols = columns()
    out = m(to_tensors(cols))
    assert out.aux_loss is not None and out.aux_loss.item() > 0
    del cols["neg_hist_item"]
    with pytest.raises(SchemaError, match="neg_hist_item"):
        m(to_tensors(cols))
    assert model_for("dien", aux_weight=0.0).train()(to_tensors(cols)).aux_loss is None


def test_bad_input_errors():
    with pytest.raises(SchemaError, match="table 'brand', which does not exist"):
        Schema(tables=(Table("item", 10, 4),),
               features=(Feature("hist_brand", "sequence", "brand", max_len=4),))
    cols = columns()
    with pytest.raises(DataValidationError, match="longer than the configured maximum 4"):
        LabeledSamples(schema(max_len=4), cols)
    bad = dict(cols, label=cols["label"].copy())
    bad["label"][5] = 2.0
    with pytest.raises(DataValidationError, match="row 5 has 2.0"):
        LabeledSamples(schema(), bad)
    gap = dict(cols, hist_item=cols["hist_item"].copy())
    gap["hist_item"][2, 0] = 0  # row 2 is a full history: a hole at its start
    with pytest.raises(DataValidationError, match="'hist_item' row 2 has a behaviour after padding"):
        LabeledSamples(schema(), gap)
    oov = dict(cols, item=cols["item"].copy())
    oov["item"][7] = 40
    with pytest.raises(DataValidationError, match="'item' row 7 has ids outside table 'item'"):
        LabeledSamples(schema(), oov)
