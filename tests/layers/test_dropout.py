"""PooledDropout: masks are ordinary inverted-dropout masks drawn from the pool, reproducibly."""

import math

import torch

from seqrec.layers.dropout import PooledDropout


def test_mask_is_the_pool_chunk_thresholded_and_scaled():
    d = PooledDropout(pool_size=1000)
    torch.manual_seed(0)
    d.mask((2, 3), 0.3)  # draws the pool
    u = d._pool[d._pos : d._pos + 40].clone()
    m = d.mask((4, 10), 0.3)
    want = torch.where(u >= 0.3, 1.0 / 0.7, 0.0).view(4, 10)
    assert m.dtype == torch.float32 and m.shape == (4, 10)
    assert torch.equal(m, want)


def test_keep_rate_and_scale():
    d = PooledDropout()
    torch.manual_seed(1)
    p, n = 0.2, 1_000_000
    m = d.mask((n,), p)
    kept = (m > 0).double().mean().item()
    assert abs(kept - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    assert set(torch.unique(m).tolist()) == {0.0, 1.0 / (1 - p)}


def test_seeded_masks_repeat_and_the_pool_refills():
    def draw():
        torch.manual_seed(7)
        d = PooledDropout(pool_size=100)  # refilled every few calls
        return torch.stack([d.mask((6, 7), 0.5) for _ in range(10)])

    a, b = draw(), draw()
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])  # consecutive calls take fresh numbers


def test_forward_multiplies_by_the_mask_and_is_identity_in_eval_or_at_zero():
    x = torch.randn(5, 8)
    d = PooledDropout()
    torch.manual_seed(3)
    y = d(x, 0.4)
    torch.manual_seed(3)
    d2 = PooledDropout()
    assert torch.equal(y, x * d2.mask(x.shape, 0.4))
    assert d(x, 0.0) is x
    d.eval()
    assert d(x, 0.4) is x
