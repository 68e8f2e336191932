"""The GRU cells of GRU4Rec's fused training step and of DIEN's recurrences, in numba.

A GRU cell (Cho et al., "Learning phrase representations using RNN encoder-decoder for
statistical machine translation", EMNLP 2014) in torch's gate order r, z, n, with
gx = W x + b and gh = U h + c (biases included):

    r = σ(gx_r + gh_r),  z = σ(gx_z + gh_z),  n = tanh(gx_n + r ⊙ gh_n),  h' = h + u ⊙ (n - h)

where u, the weight of the candidate n, is 1 - z for a plain GRU (torch writes
h' = n + z ⊙ (h - n)); DIEN's attention variants (Zhou et al., "Deep interest evolution
network for click-through rate prediction", AAAI 2019) set u = a (1 - z) (AUGRU) or u = a
(AGRU) with the attention score a. Given dh' (and u, ∂u/∂z), the gradients of the gate
pre-activations are the same for every variant and are written once, in
:func:`gate_backward`:

    dn̂ = dh' u (1 - n²),  dẑ = dh' (n - h) ∂u/∂z z (1 - z),  dr̂ = dn̂ gh_n r (1 - r)
    dgx = [dr̂, dẑ, dn̂],  dgh = [dr̂, dẑ, dn̂ r],  dh (through the interpolation) = dh' (1 - u)

It is inlined at numba-IR level into both callers, so each compiles it with its own flags.

GRU4Rec (:mod:`seqrec.kernels.gru4rec_step`; one-step truncated BPTT, so no dh): the cell's
elementwise work, one pass each way.

* Backward, :func:`gru_cell_backward`. Written with torch ops the backward of one cell was
  12 small ops (each a dispatch and a pass over a (B, H) tensor, plus two concatenations).
  Measured with scratch scripts (not kept in the repository) at B = 80, H = 224 on the
  2-core VM: the torch ops took ~0.36 ms of a ~7 ms training step (perf_counter sections),
  94-116 us in isolation against 40-58 us for this serial pass; alternating 100-step chunks
  of the old and new step in one process (16 rounds, a noisy host) gave median 8,678 ->
  9,482 events/s, mean 9,739 -> 9,806. Every product is rounded in float32 in the same order
  as the torch expressions it replaces (no fastmath, float32 constants; u = 1 - z and
  ∂u/∂z = -1 only flip signs, which is exact), so the result is bit-identical to them
  (``tests/test_fused_step.py::test_gru_cell_backward_matches_torch_bitwise``).
* Forward, :func:`gru_cell_forward`, with the vectorisable :func:`seqrec.kernels.mathf.sigmoidf`
  and :func:`~seqrec.kernels.mathf.tanhf` (relative error <= 6.2e-8, about 1 ulp), rows in
  parallel. It replaced six torch ops (add, sigmoid, addcmul, tanh, sub, addcmul); the step
  alternating with the torch version every step (ABBA, 4,000 steps, scratch harness): median
  7.15 -> 6.95 ms and, in a second run, 6.63 -> 6.47 ms. Not bit-identical to torch's
  ``sigmoid`` / ``tanh`` (SLEEF), so the fused step matches the autograd step to float
  rounding, not bit for bit (``tests/test_fused_step.py`` compares them with a tolerance).

DIEN (:mod:`seqrec.layers.augru`), :func:`rnn_forward` / :func:`rnn_backward`: each row (one
behaviour sequence) runs its own recurrence over its real steps only, rows in parallel
(``prange``); no step touches padding, so the work is the number of real behaviours. The
input projections x = W_ih e_t + b_ih of all steps are one matmul outside, and so is
dW_hh = Σ dgh^T h_prev; the backward writes the gradients of x, of gh and of a_t, and
carries dh = dh' (1 - u) + dgh W_hh to the previous step. Why: per-step torch ops (~15 small
ops forward, ~25 backward, ×50 steps, ×2 recurrences) were two thirds of DIEN's training step.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from seqrec.kernels.mathf import sigmoidf, tanhf

_ONE = np.float32(1.0)
_MINUS_ONE = np.float32(-1.0)


@numba.njit(inline="always", cache=True)
def gate_backward(d, h, r, z, n, u, du_dz, gh_n):  # pragma: no cover - compiled
    """The backward of one unit of a GRU cell h' = h + u (n - h) (see the module docstring).

    d = dL/dh'; h the previous state; r, z, n the gate values; u the weight of the candidate
    (1 - z, or AUGRU's a (1 - z), or AGRU's a) and du_dz = ∂u/∂z (-1, -a, 0); gh_n the
    hidden-side candidate pre-activation (bias included).
    -> (dr̂, dẑ, dn̂, d gh_n = dn̂ r, du = d (n - h), dh = d (1 - u)): the caller turns du into
    the attention score's gradient (AUGRU: du (1 - z), AGRU: du) and adds dgh W_hh to dh.
    Products are rounded left to right (float32 stays float32: the constants are float32).
    """
    du = d * (n - h)
    dn = d * u * (_ONE - n * n)
    dz = du * du_dz * z * (_ONE - z)
    dr = dn * gh_n * r * (_ONE - r)
    return dr, dz, dn, dn * r, du, d * (_ONE - u)


# -- GRU4Rec: one cell step of B lanes -------------------------------------------------------
@numba.njit(inline="always", cache=True)
def _cell_row(d, h, rz, n, gh, dgx, dgh, hid):  # pragma: no cover - compiled
    for j in range(hid):
        r = rz[j]
        z = rz[hid + j]
        dr, dz, dn, dgh_n, _, _ = gate_backward(d[j], h[j], r, z, n[j], _ONE - z, _MINUS_ONE,
                                                gh[2 * hid + j])
        dgx[j] = dr
        dgx[hid + j] = dz
        dgx[2 * hid + j] = dn
        dgh[j] = dr
        dgh[hid + j] = dz
        dgh[2 * hid + j] = dgh_n


@numba.njit(cache=True)
def gru_cell_backward(dh, mask, h, rz, n, gh, dgx, dgh):  # pragma: no cover - compiled
    """dh, h, n (B, H); mask (B, H) or size 0 (no dropout); rz (B, 2H) = [r, z];
    gh (B, 3H) (its last H columns are gh_n); writes dgx, dgh (B, 3H). Any memory layout."""
    b_rows, hid = dh.shape
    d = np.empty(hid, dtype=np.float32)
    for b in range(b_rows):
        if mask.size > 0:
            for j in range(hid):
                d[j] = dh[b, j] * mask[b, j]
        else:
            d[:] = dh[b]
        _cell_row(d, h[b], rz[b], n[b], gh[b], dgx[b], dgh[b], hid)


@numba.njit(parallel=True, error_model="numpy", cache=True)
def gru_cell_forward(gx, gh, h, rz, n, h_new):  # pragma: no cover - compiled
    """gx, gh (B, 3H) (biases included), h (B, H) -> writes rz (B, 2H) = [r, z], n and h_new (B, H)."""
    b_rows, hid = h.shape
    for b in numba.prange(b_rows):
        for j in range(2 * hid):
            rz[b, j] = sigmoidf(gx[b, j] + gh[b, j])
        for j in range(hid):
            n[b, j] = tanhf(gx[b, 2 * hid + j] + rz[b, j] * gh[b, 2 * hid + j])
        for j in range(hid):
            h_new[b, j] = n[b, j] + rz[b, hid + j] * (h[b, j] - n[b, j])


# -- DIEN: GRU / AUGRU / AGRU recurrences over packed sequences -----------------------------
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
                k = ks[i, t, j]
                u = _update(mode, k, a)
                if mode == AUGRU:  # u = a (1 - k): ∂u/∂k = -a, ∂u/∂a = 1 - k
                    du_dk, du_da = -a, 1.0 - k
                elif mode == AGRU:  # u = a
                    du_dk, du_da = 0.0, 1.0
                else:  # u = 1 - k
                    du_dk, du_da = -1.0, 0.0
                dr, dz, dn, dgh_n, du, dhp = gate_backward(dh[j], hp, rs[i, t, j], k, cs[i, t, j], u,
                                                           du_dk, gns[i, t, j])
                da += du * du_da
                dgx[o, j] = dr
                dgx[o, H + j] = dz
                dgx[o, 2 * H + j] = dn
                dgh[o, j] = dr
                dgh[o, H + j] = dz
                dgh[o, 2 * H + j] = dgh_n
                nh[j] = dhp
            datt[i, t] = da
            for j in range(3 * H):
                gj = dgh[o, j]
                for m in range(H):
                    nh[m] += gj * W[j, m]
            for m in range(H):
                dh[m] = nh[m]
