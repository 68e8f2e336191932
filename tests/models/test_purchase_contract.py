"""Contract suite for the purchase predictors (CNN+LSTM, LSTM, GRU) on synthetic histories.

Shapes, padding invariance (extra padding changes no score), seeded determinism, exact
state_dict round trip, dense features only when asked, learning a planted rule, length-1
histories, config validation, and the masked pooling against hand-computed values.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqrec.config import load_run_config
from seqrec.data.samples import LabeledSamples, SampleBatch, sample_batches, to_tensors
from seqrec.errors import SchemaError
from seqrec.layers.events import EventEncoder, masked_max_pool
from seqrec.models.cnn_lstm import CNNLSTMConfig
from seqrec.models.purchase_rnn import GRUClassifierConfig, LSTMClassifierConfig
from seqrec.registry import get_model_entry, model_names
from seqrec.schema import Feature, Schema, Table
from seqrec.train.checkpoint import load_tensors, save_tensors
from seqrec.train.ctr_trainer import CTRTrainer, build_torch_optimizer

PURCHASE_MODELS = ["cnn_lstm", "gru", "lstm"]
CONTRACT_MODELS = set(PURCHASE_MODELS)  # read by tests/models/test_contract_coverage.py
T, N, TARGET_CATE = 12, 64, 3


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread, else contention with other test processes on a small
    machine makes each step tens of times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def schema(max_len: int = T, seqdense: bool = True) -> Schema:
    feats = [Feature("hist_cate", "sequence", "cate", max_len=max_len),
             Feature("hist_product", "sequence", "product", max_len=max_len),
             Feature("hist_dow", "sequence", "dow", max_len=max_len)]
    if seqdense:
        feats.append(Feature("hist_num", "seqdense", dim=3, max_len=max_len))
    feats.append(Feature("agg", "dense", dim=4))
    return Schema(tables=(Table("cate", 10, 4), Table("product", 30, 4), Table("dow", 8, 4),
                          Table("user", 100, 4)),
                  features=tuple(feats), time_columns=("cutoff", "hist_time"))


def columns(n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, T + 1, n)
    lens[:2] = (1, T)
    real = np.arange(T)[None, :] < lens[:, None]  # (N, T)
    cate = np.where(real, rng.integers(2, 10, (n, T)), 0)
    num = rng.normal(size=(n, T, 3)).astype(np.float32)
    num[..., 2] = cate == TARGET_CATE  # the "event is in the target category" flag
    hist_time = np.where(real, np.cumsum(rng.uniform(1, 9, (n, T)), 1), 0.0)
    return {
        "hist_cate": cate, "hist_product": np.where(real, rng.integers(2, 30, (n, T)), 0),
        "hist_dow": np.where(real, rng.integers(2, 8, (n, T)), 0),
        "hist_num": num * real[..., None],
        "agg": rng.normal(size=(n, 4)).astype(np.float32),
        "label": (cate == TARGET_CATE).any(1).astype(np.float32),
        "user": rng.integers(2, 100, n), "cutoff": hist_time.max(1) + 1.0, "hist_time": hist_time,
    }


def data(**kw) -> LabeledSamples:
    return LabeledSamples(schema(), columns(**kw))


def model_for(name: str, seed: int = 0, sch: Schema | None = None, **cfg):
    entry = get_model_entry(name)
    torch.manual_seed(seed)
    return entry.model_cls(entry.config_cls(embedding_dim=8, **cfg), sch or schema()).eval()


def pad_more(cols: dict[str, np.ndarray], extra: int = 5) -> dict[str, np.ndarray]:
    out = dict(cols)
    for k in ("hist_cate", "hist_product", "hist_dow", "hist_num", "hist_time"):
        v = cols[k]
        out[k] = np.concatenate([v, np.zeros((len(v), extra, *v.shape[2:]), v.dtype)], 1)
    return out


def test_registered_as_purchase_family():
    assert set(PURCHASE_MODELS) <= set(model_names("purchase"))  # beside non-neural baselines
    assert all(get_model_entry(n).model_cls is not None for n in PURCHASE_MODELS)
    assert not set(PURCHASE_MODELS) & set(model_names("ctr"))


@pytest.mark.parametrize("name", PURCHASE_MODELS)
def test_shapes_finite_and_padding_invariance(name):
    m = model_for(name)
    cols = columns()
    a = m(to_tensors(LabeledSamples(schema(), cols).columns)).logits
    assert a.shape == (N,) and torch.isfinite(a).all()
    padded = LabeledSamples(schema(max_len=T + 5), pad_more(cols))  # validates the padded columns
    b = m(to_tensors(padded.columns)).logits
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", PURCHASE_MODELS)
def test_seeded_determinism_and_state_dict_round_trip(name, tmp_path):
    batch = to_tensors(columns())
    a, b = model_for(name, seed=3), model_for(name, seed=3)
    assert torch.equal(a(batch).logits, b(batch).logits)
    assert not torch.equal(model_for(name, seed=4)(batch).logits, a(batch).logits)
    save_tensors(tmp_path / "model.pt", a.state_dict())
    c = model_for(name, seed=99)
    c.load_state_dict(load_tensors(tmp_path / "model.pt"))
    assert torch.equal(a(batch).logits, c(batch).logits)


@pytest.mark.parametrize("name", PURCHASE_MODELS)
def test_dense_features_only_with_use_dense(name):
    cols = columns()
    other = dict(cols, agg=cols["agg"] + 5.0)
    plain = model_for(name)
    torch.testing.assert_close(plain(to_tensors(cols)).logits, plain(to_tensors(other)).logits,
                               rtol=0, atol=0)
    with_dense = model_for(name, use_dense=True)
    width = plain.mlp.net[0].in_features
    assert with_dense.mlp.net[0].in_features == width + 4
    out = with_dense(to_tensors(cols)).logits
    assert out.shape == (N,) and torch.isfinite(out).all()
    assert not torch.allclose(out, with_dense(to_tensors(other)).logits)
    no_dense = Schema(tables=schema().tables, features=schema().features[:-1])
    with pytest.raises(SchemaError, match="no dense features"):
        model_for(name, sch=no_dense, use_dense=True)


@pytest.mark.parametrize("name", PURCHASE_MODELS)
def test_learns_the_planted_category_rule(name):
    m = model_for(name, dropout=0.0).train()
    batch = to_tensors(columns(seed=1))
    opt = build_torch_optimizer("adam", m, 1e-2)
    first = None
    for _ in range(150):
        loss = F.binary_cross_entropy_with_logits(m(batch).logits, batch["label"])
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        final = F.binary_cross_entropy_with_logits(m(batch).logits, batch["label"]).item()
    assert final < 0.5 * first, (first, final)


@pytest.mark.parametrize("name", PURCHASE_MODELS)
def test_one_trainer_step_lowers_the_loss(name):
    """The trainer the purchase driver uses (CTRTrainer: its objective, its optimiser) takes one
    step on a fixed batch, and the objective on that batch goes down."""
    cfg = load_run_config(raw={"model": {"name": name, "embedding_dim": 8, "dropout": 0.0},
                               "train": {"optimizer": "adam", "lr": 0.01, "seed": 0}})
    entry = get_model_entry(name)
    torch.manual_seed(0)
    m = entry.model_cls(cfg.model, schema()).train()
    d = data(seed=2)
    tr = CTRTrainer(m, cfg, d)
    batch = SampleBatch.of(d.schema, d.columns)
    before = tr.loss(batch)
    tr.opt.zero_grad(set_to_none=True)
    before.backward()
    tr.opt.step()
    with torch.no_grad():
        after = tr.loss(batch).item()
    assert after < before.item() - 2e-3, (before.item(), after)  # seen: drops of 0.0065-0.013


@pytest.mark.parametrize("name", PURCHASE_MODELS)
def test_sparse_gradients_and_minibatch_l2(name):
    m = model_for(name, sparse_grad=True, mba_reg=1e-4).train()
    d = data()
    m.inp.emb.fit_counts(d.columns)  # what the CTR trainer does when mba_reg > 0
    opt = build_torch_optimizer("adam", m, 1e-2)
    batch = next(sample_batches(d, 16, shuffle=True))
    loss = F.binary_cross_entropy_with_logits(m(batch).logits, batch["label"])
    loss = loss + m.config.mba_reg * m.inp.emb.minibatch_l2(batch)
    opt.zero_grad()
    loss.backward()
    assert all(t.weight.grad.is_sparse for t in m.inp.emb.tables.values())
    assert set(m.inp.emb.tables) == {"cate", "product", "dow"}  # the user table is not built
    opt.step()


@pytest.mark.parametrize("name", PURCHASE_MODELS)
def test_length_one_histories(name):
    m = model_for(name)
    cols = columns()
    one = {k: v.copy() for k, v in cols.items()}
    for k in ("hist_cate", "hist_product", "hist_dow", "hist_num", "hist_time"):
        one[k][:, 1:] = 0
    out = m(to_tensors(LabeledSamples(schema(), one).columns)).logits
    assert torch.isfinite(out).all()
    single = {k: v[:1] for k, v in one.items()}  # batch of one sample, one event
    torch.testing.assert_close(m(to_tensors(single)).logits, out[:1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", PURCHASE_MODELS)
def test_ids_only_schema(name):
    sch = schema(seqdense=False)
    cols = {k: v for k, v in columns().items() if k != "hist_num"}
    m = model_for(name, sch=sch)
    assert m.inp.out_dim == 3 * 8
    assert torch.isfinite(m(to_tensors(LabeledSamples(sch, cols).columns)).logits).all()


@pytest.mark.parametrize("bad", [
    {"embedding_dim": 0}, {"hidden": 0}, {"layers": 0}, {"dropout": 1.0}, {"dropout": -0.1},
    {"mlp_hidden": (0,)}, {"mba_reg": -1.0},
])
@pytest.mark.parametrize("cls", [CNNLSTMConfig, LSTMClassifierConfig, GRUClassifierConfig])
def test_bad_config_values(cls, bad):
    (key, value), = bad.items()
    with pytest.raises(ValueError, match=rf"{key}.*got .*{re.escape(str(value))}"):  # names the field and value
        cls(**bad)


@pytest.mark.parametrize("bad", [{"kernel_sizes": ()}, {"kernel_sizes": (3, 0)},
                                 {"conv_channels": 0}, {"pool": 0}])
def test_bad_cnn_config_values(bad):
    (key, value), = bad.items()
    with pytest.raises(ValueError, match=rf"{key}.*got .*{re.escape(str(value))}"):
        CNNLSTMConfig(**bad)


def test_defaults_follow_the_brief():
    c = CNNLSTMConfig()
    assert (c.kernel_sizes, c.conv_channels, c.pool, c.hidden, c.layers) == ((2, 3, 5), 32, 2, 64, 1)
    assert (c.embedding_dim, c.mlp_hidden, c.dropout, c.use_dense) == (16, (64,), 0.2, False)
    assert GRUClassifierConfig().hidden == 100 and LSTMClassifierConfig().hidden == 64


def test_event_vectors_are_zero_at_padding():
    enc = EventEncoder(schema(), 8)
    x, mask = enc(to_tensors(columns()))
    assert x.shape == (N, T, 3 * 8 + 3)
    assert torch.equal(mask, torch.from_numpy(columns()["hist_cate"] != 0))
    assert (x[~mask] == 0).all() and (x[mask].abs().sum(1) > 0).all()


def test_masked_max_pool_hand_computed():
    x = torch.tensor([[[1.0, -2.0], [3.0, -5.0], [-4.0, -1.0], [9.0, 9.0], [7.0, 7.0]],
                      [[-1.0, -1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])  # (2, 5, 2)
    mask = torch.tensor([[True, True, True, False, False], [True, False, False, False, False]])
    out, m = masked_max_pool(x, mask, 2)  # windows {0,1} {2,3} {4,pad}
    want = torch.tensor([[[3.0, -2.0], [-4.0, -1.0], [0.0, 0.0]],  # padded 9s never win
                         [[-1.0, -1.0], [0.0, 0.0], [0.0, 0.0]]])  # nor padded zeros over -1
    assert torch.equal(out, want)
    assert m.tolist() == [[True, True, False], [True, False, False]]
    out3, m3 = masked_max_pool(x, mask, 3)  # windows {0,1,2} {3,4,pad}
    assert torch.equal(out3, torch.tensor([[[3.0, -1.0], [0.0, 0.0]], [[-1.0, -1.0], [0.0, 0.0]]]))
    assert m3.tolist() == [[True, False], [True, False]]
    out1, m1 = masked_max_pool(x, mask, 1)
    assert torch.equal(m1, mask) and torch.equal(out1, x * mask.unsqueeze(-1))
    with pytest.raises(ValueError, match="pool must be >= 1, got 0"):
        masked_max_pool(x, mask, 0)


def test_masked_max_pool_gradient_skips_padding():
    x = torch.tensor([[[1.0], [2.0], [5.0], [0.5]]], requires_grad=True)
    mask = torch.tensor([[True, True, True, False]])
    out, _ = masked_max_pool(x, mask, 2)
    out.sum().backward()
    assert x.grad.squeeze().tolist() == [0.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("name", PURCHASE_MODELS)
def test_excluded_features_are_not_read(name):
    """``exclude`` drops event features: changing an excluded id changes nothing (the mask
    still comes from the first sequence feature), and every id left out narrows the input."""
    full = model_for(name)
    m = model_for(name, exclude=("hist_cate", "hist_product"))
    assert m.inp.out_dim == full.inp.out_dim - 2 * 8
    assert m.inp.ids == ("hist_dow",)
    cols = columns()
    other = dict(cols, hist_cate=np.where(cols["hist_cate"] > 0, 9, 0),
                 hist_product=np.where(cols["hist_product"] > 0, 2, 0))
    a = m(to_tensors(LabeledSamples(schema(), cols).columns)).logits
    b = m(to_tensors(LabeledSamples(schema(), other).columns)).logits
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    padded = LabeledSamples(schema(max_len=T + 5), pad_more(cols))  # still padding-invariant
    torch.testing.assert_close(a, m(to_tensors(padded.columns)).logits, rtol=0, atol=1e-6)
    numbers_only = model_for(name, exclude=("hist_cate", "hist_product", "hist_dow"))
    assert numbers_only.inp.out_dim == 3
    assert torch.isfinite(numbers_only(to_tensors(LabeledSamples(schema(), cols).columns)).logits).all()
    with pytest.raises(SchemaError, match="unknown feature"):
        model_for(name, exclude=("hist_nosuch",))
    with pytest.raises(SchemaError, match="leaves no event feature"):
        model_for(name, sch=schema(seqdense=False), exclude=("hist_cate", "hist_product", "hist_dow"))
