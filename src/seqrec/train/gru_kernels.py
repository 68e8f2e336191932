"""The GRU cell's elementwise work for the fused GRU4Rec step, one numba pass each way.

Backward. Written with torch ops the backward of one cell was 12 small ops (each a dispatch and a
pass over a (B, H) tensor, plus two concatenations). Measured with scratch scripts (not
kept in the repository) at B = 80, H = 224 on the 2-core VM: the torch ops took ~0.36 ms
of a ~7 ms training step (perf_counter sections), 94-116 us in isolation against 40-58 us
for this serial pass; alternating 100-step chunks of the old and new step in one process
(16 rounds, a noisy host) gave median 8,678 -> 9,482 events/s, mean 9,739 -> 9,806.
Every product is rounded in float32 in the same order as the torch expressions it replaces (no fastmath,
float32 constants), so the result is bit-identical to them
(``tests/test_fused_step.py::test_gru_cell_backward_matches_torch_bitwise``):

    d = dh' ⊙ mask,  dn̂ = d (1 - z) (1 - n²),  dẑ = d (h - n) z (1 - z),
    dr̂ = dn̂ gh_n r (1 - r);   dgx = [dr̂, dẑ, dn̂],  dgh = [dr̂, dẑ, dn̂ r]

Forward (torch's gate order r, z, n; ``gx``, ``gh`` include their biases):

    [r, z] = σ(gx_rz + gh_rz),  n = tanh(gx_n + r ⊙ gh_n),  h' = n + z ⊙ (h - n)

with the vectorisable :func:`seqrec.mathf.sigmoidf` and :func:`seqrec.mathf.tanhf`
(relative error <= 6.2e-8, about 1 ulp), rows in parallel. It replaced six torch ops (add, sigmoid, addcmul,
tanh, sub, addcmul); the step alternating with the torch version every step
(ABBA, 4,000 steps, scratch harness): median 7.15 -> 6.95 ms and, in a second run,
6.63 -> 6.47 ms. Not bit-identical to torch's ``sigmoid`` / ``tanh`` (SLEEF), so the
fused step matches the autograd step to float rounding, not bit for bit
(``tests/test_fused_step.py`` compares them with a tolerance).
"""

from __future__ import annotations

import numba
import numpy as np

from seqrec.mathf import sigmoidf, tanhf


@numba.njit(inline="always", cache=True)
def _cell_row(d, h, rz, n, gh, dgx, dgh, hid):  # pragma: no cover - compiled
    one = np.float32(1.0)
    for j in range(hid):
        r = rz[j]
        z = rz[hid + j]
        nn = n[j]
        dn = d[j] * (one - z)
        dz = d[j] * (h[j] - nn) * z * (one - z)
        dn = dn * (one - nn * nn)
        dr = dn * gh[2 * hid + j] * r * (one - r)
        dgx[j] = dr
        dgx[hid + j] = dz
        dgx[2 * hid + j] = dn
        dgh[j] = dr
        dgh[hid + j] = dz
        dgh[2 * hid + j] = dn * r


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
