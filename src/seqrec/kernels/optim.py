"""Fused row-wise optimiser updates (numba), one pass over the touched rows.

The Adagrad kernels take two epsilons, lr·g / (sqrt(acc + eps) + eps_out): GRU4Rec's
Adagrad with momentum puts its ε inside the root (eps_out = 0), torch's plain Adagrad adds
it outside (eps = 0); see :mod:`seqrec.train.optim`.

With eager PyTorch an Adagrad-with-momentum update of ~2,000 rows of a 224-wide
table is a dozen full passes (gather state, square, add, sqrt, divide, scale,
scatter back ...) and cost more than the forward and backward pass together
(profiled: ~4.8 ms of a 13 ms step). These kernels read each row's parameter,
accumulator and velocity once and write them once, in parallel over rows.

* ``*_rows``: rows given once each (``idx`` unique) with their gradient;
* ``*_scatter``: one gradient row per *use* (duplicates allowed, e.g. an item
  that is a target, a shared sample and an input in the same step). The uses
  of each row are chained without sorting (an (N,) slot map of the table), then
  every distinct row sums its uses and is updated once, in parallel; the
  optional bias table (N,) is updated alongside from a gradient for the first
  K_b <= K uses only (the scored items): a row used only after them (an input
  item of a shared table, which has no bias term) keeps its bias and bias state,
  as the reference implementation's sparse bias gradient leaves it;
* ``*_dense``: a whole parameter (flat), in parallel.

The update is memory-bound (random rows of tables much larger than the
caches), so it runs on as many numba threads as torch uses (measured on 2
cores: 1.9 ms -> 1.2 ms a step for the row updates; see ``set_threads``).
Numba's ``omp`` layer does *not* share torch's OpenMP runtime: its pool
library needs ``libgomp.so.1.0.0`` and loads the system copy next to torch's
bundled ``libgomp.so.1``, so there are two pools (``/proc/self/maps``).
Preloading the system copy so that both use one runtime measured slower
(~4,500 vs ~8,300 events/s in ``benchmarks/gru4rec_speed.py``), and in-process
A/B chunks of the training step with numba on 1 vs 2 threads gave 7,801 vs
8,311 events/s, so the kernels keep 2 threads and their own pool.
"""

from __future__ import annotations

import math

import numba
import numpy as np


def set_threads(n: int) -> None:
    """Run the kernels on ``n`` threads (clipped to numba's maximum)."""
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


@numba.njit(parallel=True, fastmath=True, cache=True)
def adagradm_rows(p, acc, vel, idx, grad, lr, mom, eps, eps_out):  # pragma: no cover - compiled
    """acc += g²; v = mom·v + lr·g/(sqrt(acc + eps) + eps_out); p -= v  (rows ``idx`` only).

    Scalars arrive as float32 so the loops stay in single precision. (Measured:
    the prange version with 2-D indexing vectorises; row views or a serial
    loop ran ~10x slower.) With mom = 0, v is the plain Adagrad update (its old value is
    multiplied by 0).
    """
    n, d = grad.shape
    for k in numba.prange(n):
        r = idx[k]
        for j in range(d):
            g = grad[k, j]
            a = acc[r, j] + g * g
            acc[r, j] = a
            u = mom * vel[r, j] + lr * g / (math.sqrt(a + eps) + eps_out)
            vel[r, j] = u
            p[r, j] -= u


@numba.njit(parallel=True, fastmath=True, cache=True)
def adam_rows(p, m, v, idx, grad, lr_corr, b1, b2, eps):  # pragma: no cover - compiled
    """Lazy Adam on rows ``idx``: moments decay only where the row is used."""
    n, d = grad.shape
    for k in numba.prange(n):
        r = idx[k]
        for j in range(d):
            g = grad[k, j]
            mm = b1 * m[r, j] + (1 - b1) * g
            vv = b2 * v[r, j] + (1 - b2) * g * g
            m[r, j] = mm
            v[r, j] = vv
            p[r, j] -= lr_corr * mm / (math.sqrt(vv) + eps)


def as_2d(t) -> np.ndarray:
    """A torch tensor's storage as a 2-D float32 numpy view (1-D -> (N, 1))."""
    a = t.detach().numpy()
    return a.reshape(a.shape[0], -1) if a.ndim != 2 else a



@numba.njit(parallel=True, fastmath=True, cache=True)
def adagradm_dense(p, acc, vel, grad, lr, mom, eps, eps_out):  # pragma: no cover - compiled
    """AdagradM on every element of flat (n,) arrays."""
    for i in numba.prange(p.shape[0]):
        g = grad[i]
        a = acc[i] + g * g
        acc[i] = a
        u = mom * vel[i] + lr * g / (math.sqrt(a + eps) + eps_out)
        vel[i] = u
        p[i] -= u


@numba.njit(parallel=True, fastmath=True, cache=True)
def adam_dense(p, m, v, grad, lr_corr, b1, b2, eps):  # pragma: no cover - compiled
    for i in numba.prange(p.shape[0]):
        g = grad[i]
        mm = b1 * m[i] + (1 - b1) * g
        vv = b2 * v[i] + (1 - b2) * g * g
        m[i] = mm
        v[i] = vv
        p[i] -= lr_corr * mm / (math.sqrt(vv) + eps)


class ScatterScratch:
    """Reusable index buffers for the ``*_scatter`` kernels of one table of ``n_rows`` rows."""

    def __init__(self, n_rows: int) -> None:
        self.slot = np.full(n_rows, -1, dtype=np.int32)  # -1 between calls
        self.uniq = self.first = self.last = self.nxt = np.empty(0, dtype=np.int64)
        self.buf = np.empty((0, 0), dtype=np.float32)
        self.bsum = np.empty(0, dtype=np.float32)

    def ensure(self, k: int, d: int) -> ScatterScratch:
        if self.uniq.shape[0] < k:
            self.uniq, self.first, self.last, self.nxt = (np.empty(k, dtype=np.int64) for _ in range(4))
            self.bsum = np.empty(k, dtype=np.float32)
        if self.buf.shape[0] < k or self.buf.shape[1] != d:
            self.buf = np.empty((max(k, self.buf.shape[0]), d), dtype=np.float32)
        return self


@numba.njit(cache=True)
def _chain_uses(idx, slot, uniq, first, last, nxt):  # pragma: no cover - compiled
    """Group the uses k of each distinct row idx[k]: uniq[u], first[u], nxt[k] (-1 ends)."""
    n_u = 0
    for k in range(idx.shape[0]):
        r = idx[k]
        s = slot[r]
        nxt[k] = -1
        if s < 0:
            slot[r] = n_u
            uniq[n_u] = r
            first[n_u] = k
            last[n_u] = k
            n_u += 1
        else:
            nxt[last[s]] = k
            last[s] = k
    for u in range(n_u):
        slot[uniq[u]] = -1
    return n_u


@numba.njit(cache=True)
def _sum_multi_uses(grad, bgrad, uniq_n, first, nxt, buf, bsum):  # pragma: no cover - compiled
    """For rows used more than once, sum their uses' gradients into buf[u]; bias: bsum[u] sums
    the uses k < len(bgrad) (uses are chained in increasing k, so a row has a bias gradient
    exactly when first[u] < len(bgrad)).

    Returns the source of every distinct row: src[u] = its only use k, or -1 (read buf[u]).
    """
    d = grad.shape[1]
    src = np.empty(uniq_n, dtype=np.int64)
    nb = bgrad.shape[0]
    for u in range(uniq_n):
        k = first[u]
        if k < nb:
            bsum[u] = bgrad[k]
        if nxt[k] < 0:
            src[u] = k
            continue
        src[u] = -1
        for j in range(d):
            buf[u, j] = grad[k, j]
        k = nxt[k]
        while k >= 0:
            for j in range(d):
                buf[u, j] += grad[k, j]
            if k < nb:
                bsum[u] += bgrad[k]
            k = nxt[k]
    return src


@numba.njit(parallel=True, fastmath=True, cache=True)
def adagradm_scatter(p, acc, vel, pb, accb, velb, idx, grad, bgrad,
                     slot, uniq, first, last, nxt, buf, bsum, lr, mom, eps, eps_out):  # pragma: no cover
    """AdagradM on the distinct rows of ``idx``, each with the sum of its uses' gradients.

    p/acc/vel (N, D) and grad (K, D); the bias pb/accb/velb (N,) with bgrad (K_b,), K_b <= K:
    the bias gradients of the first K_b uses; rows with no use below K_b keep their bias
    (size-0 arrays: no bias). Returns the number of distinct rows.
    """
    n_u = _chain_uses(idx, slot, uniq, first, last, nxt)
    src = _sum_multi_uses(grad, bgrad, n_u, first, nxt, buf, bsum)
    d = p.shape[1]
    for u in numba.prange(n_u):
        r = uniq[u]
        k = src[u]
        if k >= 0:  # used once: straight from its gradient row
            for j in range(d):
                g = grad[k, j]
                a = acc[r, j] + g * g
                acc[r, j] = a
                v = mom * vel[r, j] + lr * g / (math.sqrt(a + eps) + eps_out)
                vel[r, j] = v
                p[r, j] -= v
        else:
            for j in range(d):
                g = buf[u, j]
                a = acc[r, j] + g * g
                acc[r, j] = a
                v = mom * vel[r, j] + lr * g / (math.sqrt(a + eps) + eps_out)
                vel[r, j] = v
                p[r, j] -= v
    if pb.shape[0]:
        nb = bgrad.shape[0]
        for u in numba.prange(n_u):
            if first[u] >= nb:  # no scored use: no bias term, no bias update
                continue
            r = uniq[u]
            gb = bsum[u]
            a = accb[r] + gb * gb
            accb[r] = a
            v = mom * velb[r] + lr * gb / (math.sqrt(a + eps) + eps_out)
            velb[r] = v
            pb[r] -= v
    return n_u


@numba.njit(parallel=True, fastmath=True, cache=True)
def adam_scatter(p, m, v, pb, mb, vb, idx, grad, bgrad,
                 slot, uniq, first, last, nxt, buf, bsum, lr_corr, b1, b2, eps):  # pragma: no cover
    """Lazy Adam on the distinct rows of ``idx`` (see :func:`adagradm_scatter`)."""
    n_u = _chain_uses(idx, slot, uniq, first, last, nxt)
    src = _sum_multi_uses(grad, bgrad, n_u, first, nxt, buf, bsum)
    d = p.shape[1]
    for u in numba.prange(n_u):
        r = uniq[u]
        k = src[u]
        if k >= 0:
            for j in range(d):
                g = grad[k, j]
                mm = b1 * m[r, j] + (1 - b1) * g
                vv = b2 * v[r, j] + (1 - b2) * g * g
                m[r, j] = mm
                v[r, j] = vv
                p[r, j] -= lr_corr * mm / (math.sqrt(vv) + eps)
        else:
            for j in range(d):
                g = buf[u, j]
                mm = b1 * m[r, j] + (1 - b1) * g
                vv = b2 * v[r, j] + (1 - b2) * g * g
                m[r, j] = mm
                v[r, j] = vv
                p[r, j] -= lr_corr * mm / (math.sqrt(vv) + eps)
    if pb.shape[0]:
        nb = bgrad.shape[0]
        for u in numba.prange(n_u):
            if first[u] >= nb:
                continue
            r = uniq[u]
            gb = bsum[u]
            mm = b1 * mb[r] + (1 - b1) * gb
            vv = b2 * vb[r] + (1 - b2) * gb * gb
            mb[r] = mm
            vb[r] = vv
            pb[r] -= lr_corr * mm / (math.sqrt(vv) + eps)
    return n_u
