"""PooledDropout: masks are ordinary inverted-dropout masks drawn from the pool, reproducibly."""

import math

import numpy as np
import pytest
import torch

from seqrec.layers.dropout import PooledDropout


def test_mask_is_the_pool_chunk_thresholded_and_scaled():
    d = PooledDropout(pool_size=1000)
    torch.manual_seed(0)
    d.mask((2, 3), 0.3)  # draws the pool
    u = torch.from_numpy(d._pool[d._pos : d._pos + 40].copy())
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


def test_pool_is_the_seeded_pcg64_stream_and_refills_in_place():
    d = PooledDropout(pool_size=64)
    torch.manual_seed(5)
    seed = int(torch.randint(0, 2**62, (1,)).item())
    torch.manual_seed(5)
    m1 = d.mask((8, 8), 0.5)  # the whole pool
    buf = d._pool
    want = np.random.default_rng(seed).random(64, dtype=np.float32)
    assert torch.equal(m1, torch.from_numpy(np.where(want >= 0.5, 2.0, 0.0).astype(np.float32)).view(8, 8))
    d.mask((8, 8), 0.5)  # used up: refilled in the same buffer with fresh numbers
    assert d._pool is buf and not np.array_equal(d._pool, want)


def test_reset_redraws_the_pool_from_torch_rng():
    d = PooledDropout(pool_size=1000)
    torch.manual_seed(11)
    a = d.mask((3, 4), 0.3)
    d.mask((3, 4), 0.3)
    d.reset()
    torch.manual_seed(11)
    assert torch.equal(d.mask((3, 4), 0.3), a)


@pytest.mark.parametrize("p", [0.05, 0.5])
def test_apply_equals_x_times_mask_and_takes_the_same_numbers(p):
    x = torch.randn(7, 13)
    torch.manual_seed(2)
    d1 = PooledDropout(pool_size=200)
    want = [(x * m, m) for m in (d1.mask(x.shape, p) for _ in range(5))]  # refills on the way
    torch.manual_seed(2)
    d2 = PooledDropout(pool_size=200)
    for want_out, want_mask in want:
        out, mask = d2.apply(x, p)
        assert torch.equal(mask, want_mask) and torch.equal(out, want_out)


def test_apply_refuses_what_it_cannot_write_through():
    d = PooledDropout()
    with pytest.raises(ValueError, match="contiguous 2-d float32"):
        d.apply(torch.randn(4, 6).t(), 0.5)
    with pytest.raises(ValueError, match="contiguous 2-d float32"):
        d.apply(torch.randn(4, 6, dtype=torch.float64), 0.5)
