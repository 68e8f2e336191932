"""Numba kernels for DIEN's recurrences: the GRU cell and its attention variants.

Each row (one behaviour sequence) runs its own recurrence over its real steps only, rows
in parallel (``prange``); no step touches padding, so the work is the number of real
behaviours. A step is the GRU cell in torch's gate order (r, z, n) with W_hh (3H, H):

    g = W_hh h + b_hh;  r = σ(x_r + g_r);  k = σ(x_z + g_z);  c = tanh(x_n + r g_n)
    h' = h + u (c - h),  u = 1 - k (gru), (1 - k) a_t (augru), a_t (agru)

(torch's z, here k, is the weight of h; DIEN's update gate is 1 - k). The input
projections x = W_ih e_t + b_ih of all steps are one matmul outside. The backward writes
the gradients of x, of g (from which dW_hh = Σ dg^T h_prev is one matmul outside) and of
a_t. Why: per-step torch ops (~15 small ops forward, ~25 backward, ×50 steps, ×2
recurrences) were two thirds of DIEN's training step.
"""

from __future__ import annotations

import math

import numba
import numpy as np

GRU, AUGRU, AGRU = 0, 1, 2


@numba.njit(inline="always", fastmath=True, cache=True)
def _update(mode, k, a):  # pragma: no cover - compiled
    """The weight u of the candidate state: 1 - k (GRU), (1 - k) a (AUGRU), a (AGRU)."""
    if mode == AUGRU:
        return (1.0 - k) * a
    if mode == AGRU:
        return a
    return 1.0 - k


@numba.njit(parallel=True, fastmath=True, cache=True)
def rnn_forward(gx, off, att, lens, W, b, mode, hs, rs, ks, cs, gns):  # pragma: no cover - compiled
    """gx (N, 3H) packed: row i's steps at off[i] .. off[i] + lens[i] - 1; att (B, T),
    W (3H, H), b (3H,) -> hs (B, T, H) the state
    after each real step (zero elsewhere, filled by the caller); rs, ks, cs, gns (B, T, H)
    the gates kept for the backward."""
    B = hs.shape[0]
    H = W.shape[1]
    for i in numba.prange(B):
        h = np.zeros(H, hs.dtype)
        g = np.empty(3 * H, hs.dtype)
        for t in range(lens[i]):
            for j in range(3 * H):
                s = b[j]
                for m in range(H):
                    s += W[j, m] * h[m]
                g[j] = s
            a = att[i, t]
            o = off[i] + t
            for j in range(H):
                r = 1.0 / (1.0 + math.exp(-(gx[o, j] + g[j])))
                k = 1.0 / (1.0 + math.exp(-(gx[o, H + j] + g[H + j])))
                c = math.tanh(gx[o, 2 * H + j] + r * g[2 * H + j])
                u = _update(mode, k, a)
                h[j] = h[j] + u * (c - h[j])
                rs[i, t, j] = r
                ks[i, t, j] = k
                cs[i, t, j] = c
                gns[i, t, j] = g[2 * H + j]
                hs[i, t, j] = h[j]


@numba.njit(parallel=True, fastmath=True, cache=True)
def rnn_backward(off, att, lens, W, mode, hs, rs, ks, cs, gns, d_hs,
                 dgx, dgh, datt):  # pragma: no cover - compiled
    """Reverse of :func:`rnn_forward`. d_hs (B, T, H) gradients of the per-step states ->
    dgx, dgh (N, 3H) packed like gx, datt (B, T) (zero-filled by the caller)."""
    B = hs.shape[0]
    H = W.shape[1]
    for i in numba.prange(B):
        dh = np.zeros(H, hs.dtype)
        nh = np.empty(H, hs.dtype)
        for t in range(lens[i] - 1, -1, -1):
            a = att[i, t]
            o = off[i] + t
            da = 0.0
            for j in range(H):
                dh[j] += d_hs[i, t, j]
                hp = hs[i, t - 1, j] if t > 0 else 0.0
                r = rs[i, t, j]
                k = ks[i, t, j]
                c = cs[i, t, j]
                u = _update(mode, k, a)
                du = dh[j] * (c - hp)
                dn = dh[j] * u * (1.0 - c * c)
                if mode == AUGRU:
                    da += du * (1.0 - k)
                    dz = -du * a * k * (1.0 - k)
                elif mode == AGRU:
                    da += du
                    dz = 0.0
                else:
                    dz = -du * k * (1.0 - k)
                dr = dn * gns[i, t, j] * r * (1.0 - r)
                dgx[o, j] = dr
                dgx[o, H + j] = dz
                dgx[o, 2 * H + j] = dn
                dgh[o, j] = dr
                dgh[o, H + j] = dz
                dgh[o, 2 * H + j] = dn * r
                nh[j] = dh[j] * (1.0 - u)
            datt[i, t] = da
            for j in range(3 * H):
                gj = dgh[o, j]
                for m in range(H):
                    nh[m] += gj * W[j, m]
            for m in range(H):
                dh[m] = nh[m]
