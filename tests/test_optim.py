"""Row-wise optimisers (AdagradM, LazyAdam) against their formulas, and GatheredRows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec.errors import ConfigError
from seqrec.train.optim import Adagrad, AdagradM, LazyAdam, build_optimizer
from seqrec.train.rows import GatheredRows

# the kernels run in float32 with fastmath: compare to a float64 reference with a float32 margin
TOL = {"rtol": 2e-5, "atol": 1e-6}


def _table(n: int = 6, d: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g)


def _adagradm_ref(w, acc, vel, g, lr, mom, eps):
    """acc += g²; v = mom v + lr g / sqrt(acc + eps); w -= v (float64 numpy)."""
    acc = acc + g * g
    vel = mom * vel + lr * g / np.sqrt(acc + eps)
    return w - vel, acc, vel


def test_adagradm_step_rows_hand_computed():
    # one row, two columns, lr 0.1, momentum 0.5, eps 1e-6:
    # step 1, g = (2, -1): acc = (4, 1); v = 0.1 * (2/2.00000025, -1/1.0000005) = (0.1, -0.1) (to 1e-7)
    #          w = (1, 1) - v = (0.9, 1.1)
    # step 2, g = (0, 3):  acc = (4, 10); v = (0.5 * 0.1 + 0, 0.5 * -0.1 + 0.1 * 3 / sqrt(10))
    #          = (0.05, -0.05 + 0.0948683) = (0.05, 0.0448683); w = (0.85, 1.0551317)
    w = torch.tensor([[5.0, 5.0], [1.0, 1.0], [7.0, 7.0]])
    opt = AdagradM([w], lr=0.1, momentum=0.5, eps=1e-6)
    opt.step_rows(w, torch.tensor([1]), torch.tensor([[2.0, -1.0]]))
    assert w[1].tolist() == pytest.approx([0.9, 1.1], abs=1e-6)
    opt.step_rows(w, torch.tensor([1]), torch.tensor([[0.0, 3.0]]))
    assert w[1].tolist() == pytest.approx([0.85, 1.0551317], abs=1e-6)
    assert opt.state[w]["acc"][1].tolist() == pytest.approx([4.0, 10.0])
    assert w[0].tolist() == [5.0, 5.0] and w[2].tolist() == [7.0, 7.0]


def test_adagradm_step_rows_matches_formula_and_leaves_other_rows():
    w = _table(8, 4)
    before = w.clone()
    lr, mom, eps = 0.05, 0.4, 1e-6
    opt = AdagradM([w], lr=lr, momentum=mom, eps=eps)
    ref_w = w.double().numpy().copy()
    ref_acc = np.zeros_like(ref_w)
    ref_vel = np.zeros_like(ref_w)
    rng = np.random.default_rng(1)
    for rows in ([1, 4, 6], [4, 5], [1, 6]):
        idx = np.array(rows)
        g = rng.normal(size=(len(rows), 4)).astype(np.float32)
        opt.step_rows(w, torch.from_numpy(idx), torch.from_numpy(g))
        nw, na, nv = _adagradm_ref(
            ref_w[idx], ref_acc[idx], ref_vel[idx], g.astype(np.float64), lr, mom, eps
        )
        ref_w[idx], ref_acc[idx], ref_vel[idx] = nw, na, nv
        np.testing.assert_allclose(w.numpy(), ref_w, **TOL)
        np.testing.assert_allclose(opt.state[w]["acc"].numpy(), ref_acc, **TOL)
        np.testing.assert_allclose(opt.state[w]["vel"].numpy(), ref_vel, **TOL)
    untouched = [0, 2, 3, 7]
    assert torch.equal(w[untouched], before[untouched])  # bit-identical
    assert torch.equal(opt.state[w]["acc"][untouched], torch.zeros(4, 4))


def test_adagradm_dense_step_matches_formula():
    w = _table(5, 3)
    b = torch.randn(5)
    lr, mom, eps = 0.1, 0.3, 1e-6
    opt = AdagradM([w, b], lr=lr, momentum=mom, eps=eps)
    refs = {}
    for p in (w, b):
        a = p.double().numpy().copy()
        refs[id(p)] = [a, np.zeros_like(a), np.zeros_like(a)]
    rng = np.random.default_rng(2)
    for _ in range(3):
        for p in (w, b):
            p.grad = torch.from_numpy(rng.normal(size=tuple(p.shape)).astype(np.float32))
        opt.step()
        for p in (w, b):
            r = refs[id(p)]
            r[0], r[1], r[2] = _adagradm_ref(
                r[0], r[1], r[2], p.grad.double().numpy(), lr, mom, eps
            )
            np.testing.assert_allclose(p.detach().numpy(), r[0], **TOL)
    # a parameter without a gradient is skipped (not even its state is created)
    c = torch.ones(2, requires_grad=True)
    opt2 = AdagradM([c], lr=0.1)
    opt2.step()
    assert c.tolist() == [1.0, 1.0] and not opt2.state[c]


def test_adagrad_without_momentum_equals_torch_adagrad():
    """momentum = 0 is plain Adagrad: compare with torch.optim.Adagrad (eps moved: ours adds eps
    under the square root, torch after it; eps 0 in torch and 1e-12 here make both g/sqrt(acc))."""
    w_ours = _table(4, 5, seed=3)
    w_torch = w_ours.clone().requires_grad_()
    ours = AdagradM([w_ours], lr=0.2, momentum=0.0, eps=1e-12)
    ref = torch.optim.Adagrad([w_torch], lr=0.2, eps=0.0, initial_accumulator_value=0.0)
    g = torch.Generator().manual_seed(4)
    for _ in range(5):
        grad = torch.randn(4, 5, generator=g)
        w_ours.grad = grad.clone()
        w_torch.grad = grad.clone()
        ours.step()
        ref.step()
        torch.testing.assert_close(w_ours, w_torch.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", ["dense", "rows", "scatter"])
def test_plain_adagrad_is_torch_adagrad_on_every_path(path):
    """``adagrad`` (Adagrad) == torch.optim.Adagrad with its defaults (eps 1e-10 after the root),
    also when only the used rows are updated: a zero-gradient row does not move in either."""
    from seqrec.kernels.optim import ScatterScratch

    w_ours = _table(6, 5, seed=3)
    w_torch = w_ours.clone().requires_grad_()
    ours = build_optimizer("adagrad", [w_ours], 0.2)
    ref = torch.optim.Adagrad([w_torch], lr=0.2)
    g = torch.Generator().manual_seed(4)
    for step in range(5):
        rows = torch.tensor([[0, 2, 5], [1, 2], [0, 3, 4, 5], [2], [0, 1, 2, 3, 4, 5]][step])
        grad = torch.zeros(6, 5)
        grad[rows] = torch.randn(len(rows), 5, generator=g) * (10.0 ** (step - 3))  # tiny to large
        if path == "dense":
            w_ours.grad = grad.clone()
            ours.step()
        elif path == "rows":
            ours.step_rows(w_ours, rows, grad[rows])
        else:
            ours.step_scatter(w_ours, rows, grad[rows].contiguous(), ScatterScratch(6))
        w_torch.grad = grad.clone()
        ref.step()
        torch.testing.assert_close(w_ours, w_torch.detach(), rtol=1e-5, atol=1e-6)


def test_sparse_gradients_update_only_their_rows():
    """``step`` takes an nn.Embedding(sparse=True) gradient: its rows (duplicates summed) go through
    the row update; rows the batch did not use keep their value and velocity."""
    emb = torch.nn.Embedding(7, 3, sparse=True)
    ref = emb.weight.detach().clone()
    opt = AdagradM(emb.parameters(), lr=0.1, momentum=0.5)
    ref_opt = AdagradM([ref], lr=0.1, momentum=0.5)
    for ids in ([1, 4, 4], [2, 4]):
        opt.zero_grad()
        (emb(torch.tensor(ids)) * torch.arange(3.0)).sum().backward()
        assert emb.weight.grad.is_sparse
        opt.step()
        uniq = torch.tensor(sorted(set(ids)))
        counts = torch.tensor([ids.count(i) for i in uniq.tolist()], dtype=torch.float32)
        ref_opt.step_rows(ref, uniq, counts[:, None] * torch.arange(3.0))
        torch.testing.assert_close(emb.weight.detach(), ref)
    assert torch.equal(opt.state[emb.weight]["vel"][[0, 3, 5, 6]], torch.zeros(4, 3))


def test_ctr_optimizer_names_mean_the_same():
    from seqrec.train.ctr_trainer import build_torch_optimizer

    m = torch.nn.Sequential(torch.nn.Embedding(5, 2, sparse=True), torch.nn.Linear(2, 1))
    assert type(build_torch_optimizer("adagrad", m, 0.1).opts[0]) is torch.optim.Adagrad
    (opt,) = build_torch_optimizer("adagrad-momentum", m, 0.1, momentum=0.3).opts
    assert type(opt) is AdagradM and opt.param_groups[0]["momentum"] == 0.3
    with pytest.raises(ConfigError, match="applies to optimizer 'adagrad-momentum' only, not 'adam'"):
        build_torch_optimizer("adam", m, 0.1, momentum=0.3)
    with pytest.raises(ConfigError, match="unknown optimizer 'adamw'"):
        build_torch_optimizer("adamw", m, 0.1)


def test_train_config_optimizer_names_and_momentum():
    from seqrec.config import TrainConfig, load_run_config

    assert TrainConfig().optimizer == "adagrad-momentum"  # the default model's (GRU4Rec's) optimiser
    for model in ("gru4rec", "din"):
        cfg = load_run_config(raw={"model": {"name": model}, "train": {"optimizer": "adagrad"}})
        assert cfg.train.optimizer == "adagrad"
        with pytest.raises(ConfigError, match=r"\[train\]: momentum = 0.2 applies to optimizer 'adagrad-momentum'"):
            load_run_config(raw={"model": {"name": model}, "train": {"optimizer": "adagrad", "momentum": 0.2}})
    with pytest.raises(ConfigError, match=r"\[train\].optimizer: 'adagradm' is not one of"):
        load_run_config(raw={"model": {"name": "gru4rec"}, "train": {"optimizer": "adagradm"}})


def test_step_rows_equals_dense_step_on_touched_rows():
    """A row update with the gathered gradient equals the dense update with a zero-padded
    gradient (first step: untouched rows get g = 0 and v = 0, so they do not move)."""
    w_rows, w_dense = _table(7, 2, seed=5), _table(7, 2, seed=5)
    o_rows = AdagradM([w_rows], lr=0.1, momentum=0.5)
    o_dense = AdagradM([w_dense], lr=0.1, momentum=0.5)
    idx = torch.tensor([2, 5])
    g = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    o_rows.step_rows(w_rows, idx, g)
    full = torch.zeros(7, 2)
    full[idx] = g
    w_dense.grad = full
    o_dense.step()
    torch.testing.assert_close(w_rows, w_dense, rtol=0, atol=0)


def _adam_ref(w, m, v, g, t, lr, b1, b2, eps):
    """Kingma & Ba (2015), Algorithm 1 with the efficient ordering of sec. 2:
    m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²; lr_t = lr sqrt(1-b2^t) / (1-b1^t);
    w -= lr_t m / (sqrt(v) + eps)."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
    return w - lr_t * m / (np.sqrt(v) + eps), m, v


def test_lazy_adam_dense_step_matches_formula_and_torch():
    w = _table(4, 3, seed=6)
    w_torch = w.clone().requires_grad_()
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = LazyAdam([w], lr=lr, betas=(b1, b2), eps=eps)
    ref_torch = torch.optim.Adam([w_torch], lr=lr, betas=(b1, b2), eps=eps)
    rw, rm, rv = w.double().numpy().copy(), np.zeros((4, 3)), np.zeros((4, 3))
    gen = torch.Generator().manual_seed(7)
    for t in range(1, 5):
        grad = torch.randn(4, 3, generator=gen)
        w.grad, w_torch.grad = grad.clone(), grad.clone()
        opt.step()
        ref_torch.step()
        rw, rm, rv = _adam_ref(rw, rm, rv, grad.double().numpy(), t, lr, b1, b2, eps)
        np.testing.assert_allclose(w.numpy(), rw, **TOL)
        # torch puts eps after the bias correction; with eps = 1e-8 the two agree closely
        torch.testing.assert_close(w, w_torch.detach(), rtol=1e-5, atol=1e-6)
    assert opt.t == 4


def test_lazy_adam_step_rows_touches_only_used_rows():
    """Moments of a row decay only when the row is used; bias correction uses the global step
    count (ticked by the dense ``step`` the trainer calls first each step)."""
    w = _table(6, 2, seed=8)
    before = w.clone()
    lr, b1, b2, eps = 0.05, 0.9, 0.99, 1e-8
    opt = LazyAdam([w], lr=lr, betas=(b1, b2), eps=eps)
    rw, rm, rv = w.double().numpy().copy(), np.zeros((6, 2)), np.zeros((6, 2))
    rng = np.random.default_rng(9)
    for t, rows in enumerate(([0, 3], [3], [0, 4]), start=1):
        opt.step()  # no dense grads: only advances the step count
        idx = np.array(rows)
        g = rng.normal(size=(len(rows), 2)).astype(np.float32)
        opt.step_rows(w, torch.from_numpy(idx), torch.from_numpy(g))
        rw[idx], rm[idx], rv[idx] = _adam_ref(
            rw[idx], rm[idx], rv[idx], g.astype(np.float64), t, lr, b1, b2, eps
        )
        np.testing.assert_allclose(w.numpy(), rw, **TOL)
        np.testing.assert_allclose(opt.state[w]["m"].numpy(), rm, **TOL)
    assert torch.equal(w[[1, 2, 5]], before[[1, 2, 5]])


def test_lazy_adam_state_dict_keeps_step_count():
    w = _table(3, 2)
    opt = LazyAdam([w], lr=0.01)
    w.grad = torch.ones(3, 2)
    opt.step()
    opt.step()
    sd = opt.state_dict()
    opt2 = LazyAdam([w], lr=0.01)
    opt2.load_state_dict(sd)
    assert opt2.t == 2


def test_gathered_rows_sums_duplicate_gradients():
    table = torch.arange(15, dtype=torch.float32).reshape(5, 3)
    bias = torch.zeros(5)
    idx = torch.tensor([3, 1, 3, 3])
    rows = GatheredRows([table, bias], idx)
    assert rows.uniq.tolist() == [1, 3]
    assert rows.inverse.tolist() == [1, 0, 1, 1]
    assert torch.equal(rows.leaves[0], table[[1, 3]])
    w = torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0], [100.0, 200.0, 300.0], [0.5, 0.5, 0.5]])
    x = rows.leaves[0].index_select(0, rows.inverse)  # (4, 3)
    ((x * w).sum() + rows.leaves[1].index_select(0, rows.inverse).sum()).backward()
    # row 3 appears at positions 0, 2 and 3: gradient w[0] + w[2] + w[3]
    assert rows.leaves[0].grad.tolist() == [[10.0, 20.0, 30.0], [101.5, 202.5, 303.5]]
    assert rows.leaves[1].grad.tolist() == [1.0, 3.0]

    calls = []

    class Recorder:
        def step_rows(self, p, i, g):
            calls.append((p, i.tolist(), g.clone()))

    rows.apply(Recorder())
    assert calls[0][0] is table and calls[0][1] == [1, 3]
    assert calls[1][0] is bias and calls[1][2].tolist() == [1.0, 3.0]
    # the tables are untouched by the gather and the backward pass
    assert torch.equal(table, torch.arange(15, dtype=torch.float32).reshape(5, 3))


def test_gathered_rows_with_optimizer_updates_only_gathered_rows():
    table = _table(6, 2, seed=10)
    before = table.clone()
    opt = AdagradM([table], lr=0.1)
    rows = GatheredRows([table], torch.tensor([4, 4, 2]))
    rows.leaves[0].index_select(0, rows.inverse).sum().backward()  # row 4: g = 2, row 2: g = 1
    rows.apply(opt)
    # first Adagrad step moves every touched entry by lr * g / sqrt(g² + eps) ≈ lr = 0.1
    torch.testing.assert_close(table[[2, 4]], before[[2, 4]] - 0.1, rtol=0, atol=1e-6)
    assert torch.equal(table[[0, 1, 3, 5]], before[[0, 1, 3, 5]])


def test_optimizer_validation():
    w = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="lr"):
        AdagradM([w], lr=0.0)
    with pytest.raises(ValueError, match="momentum"):
        AdagradM([w], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="lr"):
        LazyAdam([w], lr=-1.0)
    with pytest.raises(ConfigError, match="'sgd' is not implemented for the session models"):
        build_optimizer("sgd", [w], 0.1)
    with pytest.raises(ConfigError, match="unknown optimizer 'adamw'"):
        build_optimizer("adamw", [w], 0.1)
    with pytest.raises(ConfigError, match="applies to optimizer 'adagrad-momentum' only, not 'adagrad'"):
        build_optimizer("adagrad", [w], 0.1, 0.2)
    assert type(build_optimizer("adagrad-momentum", [w], 0.1, 0.2)) is AdagradM
    assert type(build_optimizer("adagrad", [w], 0.1)) is Adagrad
    assert isinstance(build_optimizer("adam", [w], 0.1), LazyAdam)
    with pytest.raises(KeyError):
        AdagradM([w], lr=0.1).step_rows(torch.zeros(3, 2), torch.tensor([0]), torch.ones(1, 2))


@pytest.mark.parametrize("make", [lambda ps: AdagradM(ps, lr=0.1, momentum=0.3), lambda ps: LazyAdam(ps, lr=0.01)])
def test_bound_dense_step_equals_step_dense_and_rebinds_after_load_state_dict(make):
    def params():
        return [torch.nn.Parameter(_table(5, 4, seed=1)), torch.nn.Parameter(_table(1, 7, seed=2)[0])]

    grads = [_table(5, 4, seed=3), _table(1, 7, seed=4)[0]]
    a, b = params(), params()
    oa, ob = make(a), make(b)
    bufs = [torch.zeros_like(p) for p in b]
    bound = ob.bind(b, bufs)
    for step in range(3):
        oa.step_dense(list(zip(a, [g * (step + 1) for g in grads], strict=True)))
        for buf, g in zip(bufs, grads, strict=True):
            buf.copy_(g * (step + 1))
        ob.step_bound(bound)
    for p, q in zip(a, b, strict=True):
        assert torch.equal(p, q)
    # a checkpoint's state replaces the state tensors: the binding must follow, not keep
    # writing into the old ones
    saved = {k: v for k, v in oa.state_dict().items()}
    saved = {"state": {i: {n: t.clone() for n, t in s.items()} for i, s in saved["state"].items()},
             "param_groups": saved["param_groups"], **({"t": saved["t"]} if "t" in saved else {})}
    ob.load_state_dict(saved)
    oa.step_dense(list(zip(a, grads, strict=True)))
    for buf, g in zip(bufs, grads, strict=True):
        buf.copy_(g)
    ob.step_bound(bound)
    for p, q in zip(a, b, strict=True):
        assert torch.equal(p, q)
    for sa, sb in zip(oa.state.values(), ob.state.values(), strict=True):
        for n in sa:
            if torch.is_tensor(sa[n]):
                assert torch.equal(sa[n], sb[n])


def test_bound_scatter_sums_duplicate_uses_and_follows_the_formula():
    """step_scatter_bound (the fused step's row update) against the float64 AdagradM formula, with
    the uses of a row summed first; rows not in ``idx`` do not move."""
    from seqrec.kernels.optim import ScatterScratch

    w, b = torch.nn.Parameter(_table(9, 3, seed=5)), torch.nn.Parameter(_table(1, 9, seed=6)[0])
    w0, b0 = w.detach().double().numpy().copy(), b.detach().double().numpy().copy()
    opt = AdagradM([w, b], lr=0.1, momentum=0.2)
    bound = opt.bind([w, b])
    idx = torch.tensor([4, 1, 4, 8, 0, 1])  # rows 4 and 1 used twice
    g, bg = _table(6, 3, seed=7), _table(1, 6, seed=8)[0]
    rows = [0, 1, 4, 8]
    gw = np.zeros((9, 3))
    gb = np.zeros(9)
    np.add.at(gw, idx.numpy(), g.double().numpy())
    np.add.at(gb, idx.numpy(), bg.double().numpy())
    want_w, acc, vel = w0.copy(), np.zeros((9, 3)), np.zeros((9, 3))
    want_b, accb, velb = b0.copy(), np.zeros(9), np.zeros(9)
    for _ in range(2):
        assert opt.step_scatter_bound(bound, idx, g, ScatterScratch(9), bg) == 4
        want_w[rows], acc[rows], vel[rows] = _adagradm_ref(want_w[rows], acc[rows], vel[rows], gw[rows],
                                                           0.1, 0.2, 1e-6)
        want_b[rows], accb[rows], velb[rows] = _adagradm_ref(want_b[rows], accb[rows], velb[rows], gb[rows],
                                                             0.1, 0.2, 1e-6)
    np.testing.assert_allclose(w.detach().numpy(), want_w, **TOL)
    np.testing.assert_allclose(b.detach().numpy(), want_b, **TOL)
    untouched = [2, 3, 5, 6, 7]
    assert np.array_equal(w.detach().numpy()[untouched], w0[untouched].astype(np.float32))
    # step_scatter (an un-bound call) is the same update
    w2, b2 = torch.nn.Parameter(_table(9, 3, seed=5)), torch.nn.Parameter(_table(1, 9, seed=6)[0])
    opt2 = AdagradM([w2, b2], lr=0.1, momentum=0.2)
    for _ in range(2):
        opt2.step_scatter(w2, idx, g, ScatterScratch(9), b2, bg)
    assert torch.equal(w2, w) and torch.equal(b2, b)


@pytest.mark.parametrize("opt_name", ["adagrad-momentum", "adagrad", "adam"])
def test_bound_scatter_bias_gradient_covers_only_the_first_uses(opt_name):
    """A bias gradient shorter than ``idx`` belongs to its first K_b uses (the scored items); a
    row used only after them (an input row of a shared table) keeps its bias and bias state,
    even with a velocity from an earlier step (the reference's sparse bias gradient has no
    such row), while its table row is updated as usual."""
    from seqrec.kernels.optim import ScatterScratch

    def run(bias_split: bool):
        w, b = torch.nn.Parameter(_table(9, 3, seed=5)), torch.nn.Parameter(_table(1, 9, seed=6)[0])
        opt = build_optimizer(opt_name, [w, b], lr=0.1, momentum=0.5 if opt_name == "adagrad-momentum" else 0.0)
        bound = opt.bind([w, b])
        # step 1: row 6 is scored (bias gradient, so a bias velocity / moments)
        opt.step_scatter_bound(bound, torch.tensor([6, 4]), _table(2, 3, seed=7), ScatterScratch(9),
                               _table(1, 2, seed=8)[0])
        b1, st1 = b.detach().clone(), {k: v.clone() for k, v in opt.state[b].items()}
        # step 2: uses 0..3 scored, uses 4..5 inputs: row 1 both, row 6 input only
        idx = torch.tensor([4, 1, 4, 8, 1, 6])
        g, bg = _table(6, 3, seed=9), _table(1, 6, seed=10)[0]
        if bias_split:
            opt.step_scatter_bound(bound, idx, g, ScatterScratch(9), bg[:4].contiguous())
        else:  # the full-length call with the input uses' bias gradients zeroed, for comparison
            bz = bg.clone()
            bz[4:] = 0
            opt.step_scatter_bound(bound, idx, g, ScatterScratch(9), bz)
        return w.detach(), b.detach(), b1, st1, opt.state[b]

    w, b, b1, st1, st = run(True)
    w_full, b_full, _, _, st_full = run(False)
    assert torch.equal(w, w_full)  # the table rows do not depend on the bias split
    assert b[6] == b1[6]  # input-only row: bias and its state untouched
    for k in st:
        assert torch.equal(st[k][6], st1[k][6]), k
    if opt_name == "adagrad":  # no momentum: a zero gradient does not move a row (lazy == dense)
        assert b_full[6] == b1[6]
    else:
        assert b_full[6] != b1[6]  # (the zero-gradient update would have moved it by momentum)
    for r in (1, 4, 8):  # scored rows: the same update either way
        assert b[r] == b_full[r], r


def test_bind_refuses_mismatched_or_non_contiguous_buffers():
    p = torch.nn.Parameter(_table(4, 3))
    opt = AdagradM([p], lr=0.1)
    with pytest.raises(ValueError, match="one gradient buffer"):
        opt.bind([p], [torch.zeros(3, 4)])
    bound = opt.bind([p], [torch.zeros(3, 4).t()])  # right shape, wrong layout
    with pytest.raises(ValueError, match="contiguous float32"):
        opt.step_bound(bound)
