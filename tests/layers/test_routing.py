"""B2I dynamic routing (MIND, Li et al. 2019): shapes, eq. 9, masks, padding, eqs. 3-6 by hand,
routing logits that are state and not parameters, and label-aware attention (eq. 10)."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec.layers.routing import B2IRouting, dynamic_interests, label_aware_attention, squash


def _close(a, b, rtol=1e-5, atol=1e-6):
    """assert_close without torch.testing (its first call imports for seconds)."""
    assert a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol), (a, b)


def _inputs(lengths, width, dim=8, seed=0):
    """(B, width, dim) embeddings, garbage at padded positions, and the (B, width) mask."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(len(lengths), width, dim, generator=g)
    col = torch.arange(width)[None, :]
    mask = col >= width - torch.tensor(lengths)[:, None]  # left padded, most recent last
    return emb, mask


def test_shapes_and_mask():
    r = B2IRouting(8, 6, n_interests=4).eval()
    emb, mask = _inputs([10, 3, 1], 10)
    u, m = r(emb, mask)
    assert u.shape == (3, 4, 6) and m.shape == (3, 4) and m.dtype == torch.bool


def test_dynamic_number_of_interests_follows_eq_9():
    n = torch.tensor([0, 1, 2, 3, 4, 7, 8, 15, 16, 100])
    # max(1, min(4, floor(log2 n)))
    assert dynamic_interests(n, 4).tolist() == [1, 1, 1, 1, 2, 2, 3, 3, 4, 4]
    assert dynamic_interests(n, 2).tolist() == [1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    r = B2IRouting(8, 6, n_interests=4).eval()
    emb, mask = _inputs([1, 4, 9, 20], 20)
    u, m = r(emb, mask)
    assert m.tolist() == [[True, False, False, False], [True, True, False, False],
                          [True, True, True, False], [True, True, True, True]]
    assert torch.all(u[~m] == 0)  # unused interests are zeros
    assert torch.all(u[m].norm(dim=-1) > 0)
    fixed = B2IRouting(8, 6, n_interests=4, dynamic=False).eval()
    assert fixed(emb, mask)[1].all()


def test_padded_behaviours_change_nothing():
    r = B2IRouting(8, 6, n_interests=3).eval()
    emb, mask = _inputs([5, 2], 6)
    u, _ = r(emb, mask)
    # other garbage at the padded positions
    emb2 = emb.clone()
    emb2[~mask] = 100.0
    assert torch.equal(r(emb2, mask)[0], u)
    # more left padding (the eval logits are indexed from the most recent behaviour)
    wide = torch.cat([torch.randn(2, 7, 8), emb], dim=1)
    wmask = torch.cat([torch.zeros(2, 7, dtype=torch.bool), mask], dim=1)
    _close(r(wide, wmask)[0], u, rtol=1e-6, atol=1e-7)
    # in training too, for the same random logits
    r.train()
    torch.manual_seed(3)
    a = r(emb, mask)[0]
    torch.manual_seed(3)
    assert torch.equal(r(emb2, mask)[0], a)


def test_routing_logits_are_not_parameters():
    r = B2IRouting(8, 6, n_interests=4)
    assert [n for n, _ in r.named_parameters()] == ["S.weight"]  # the shared bilinear map only
    assert list(r.buffers()) == [] and list(r.state_dict()) == ["S.weight"]
    emb, mask = _inputs([9, 9], 9)
    # training: fresh N(0, sigma^2) logits every forward, so two calls differ
    assert not torch.equal(r(emb, mask)[0], r(emb, mask)[0])
    # eval: seeded, the same every call and whatever else is in the batch
    r.eval()
    a = r(emb, mask)[0]
    assert torch.equal(r(emb, mask)[0], a)
    _close(r(emb[1:], mask[1:])[0], a[1:], rtol=1e-6, atol=1e-7)
    # another eval seed gives other logits
    r2 = B2IRouting(8, 6, n_interests=4, eval_seed=1).eval()
    r2.load_state_dict(r.state_dict())
    assert not torch.equal(r2(emb, mask)[0], a)


def test_random_logits_break_the_symmetry():
    """With sigma = 0 and a shared S every interest is the same capsule; with sigma > 0 they differ."""
    emb, mask = _inputs([16], 16)
    sym = B2IRouting(8, 6, n_interests=4, sigma=0.0).eval()
    u = sym(emb, mask)[0][0]
    _close(u, u[:1].expand_as(u))
    rnd = B2IRouting(8, 6, n_interests=4, sigma=1.0).eval()
    rnd.load_state_dict(sym.state_dict())
    v = rnd(emb, mask)[0][0]
    assert (v[0] - v[1]).abs().max() > 1e-3


def test_squash():
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    s = squash(z)
    # |z| = 5: 25 / 26 * z / 5
    _close(s[0], torch.tensor([3.0, 4.0]) * (25 / 26 / 5))
    assert torch.equal(s[1], torch.zeros(2))


def test_routing_equals_algorithm_1_by_hand():
    """Eqs. 3-6 with explicit loops for a known starting logit matrix."""
    torch.manual_seed(0)
    k, it = 3, 3
    r = B2IRouting(4, 5, n_interests=k, iterations=it, dynamic=False).eval()
    emb, mask = _inputs([4], 6, dim=4)
    b0 = torch.randn(1, k, 6)
    r.initial_logits = lambda bsz, length, device: b0.clone()
    got = r(emb, mask)[0][0]
    S = r.S.weight.detach()
    hat = [S @ emb[0, i] for i in range(6)]
    used = [i for i in range(6) if mask[0, i]]
    b = b0[0].clone()
    for step in range(it):
        u = []
        for j in range(k):
            z = torch.zeros(5)
            for i in used:
                w_ij = math.exp(b[j, i]) / sum(math.exp(b[jj, i]) for jj in range(k))  # eq. 3
                z = z + w_ij * hat[i]  # eq. 4
            n2 = float(z @ z)
            u.append(z * (n2 / (1 + n2) / math.sqrt(n2)))  # eq. 5
        if step < it - 1:
            for j in range(k):
                for i in range(6):
                    b[j, i] = b[j, i] + u[j] @ hat[i]  # eq. 6
    _close(got.detach(), torch.stack(u), rtol=1e-5, atol=1e-6)


def test_detached_routing_keeps_the_value_and_the_gradient_of_the_last_round():
    emb, mask = _inputs([6, 3], 6)
    a = B2IRouting(8, 6, n_interests=2).eval()
    d = B2IRouting(8, 6, n_interests=2, detach=True).eval()
    d.load_state_dict(a.state_dict())
    _close(d(emb, mask)[0], a(emb, mask)[0])
    d(emb, mask)[0].sum().backward()
    assert d.S.weight.grad is not None and d.S.weight.grad.abs().sum() > 0


def test_label_aware_attention_limits():
    v = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]])  # (1, K=3, D=2)
    mask = torch.tensor([[True, True, False]])  # the third interest is not in use
    e = torch.tensor([[3.0, 1.0]])  # closest used interest (largest inner product): 3 vs 2 -> the first
    for mode in ("power", "scaled"):
        mean = label_aware_attention(v, mask, e, 0.0, mode)
        _close(mean, torch.tensor([[0.5, 1.0]]))  # p = 0: mean of the used ones
        hard = label_aware_attention(v, mask, e, math.inf, mode)
        assert torch.equal(hard, torch.tensor([[1.0, 0.0]]))
    _close(label_aware_attention(v, mask, e, 60.0, "power"), torch.tensor([[1.0, 0.0]]))
    _close(label_aware_attention(v, mask, e, 60.0, "scaled"), torch.tensor([[1.0, 0.0]]))
    # p = 2, eq. 10 as written: softmax([3^2, 2^2]) = softmax([9, 4])
    w = torch.softmax(torch.tensor([9.0, 4.0]), 0)
    _close(label_aware_attention(v, mask, e, 2.0, "power"),
                               (w[0] * v[0, 0] + w[1] * v[0, 1])[None])
    with pytest.raises(ValueError, match="whole-number"):
        label_aware_attention(v, mask, e, 1.5, "power")


def test_identity_init_makes_one_interest_the_squashed_sum():
    r = B2IRouting(8, 8, n_interests=4, identity_init=True).eval()
    assert torch.equal(r.S.weight, torch.eye(8))
    emb, mask = _inputs([3], 5)  # 3 behaviours -> K'_u = 1: every behaviour routes to it (w = 1)
    u, m = r(emb, mask)
    assert m.tolist() == [[True, False, False, False]]
    _close(u[0, 0], squash(emb[0, 2:].sum(0)))
