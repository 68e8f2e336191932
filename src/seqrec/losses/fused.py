"""BPR-max with the final activation's backward in one numba pass (the fused step's hot path).

The closed form of :func:`seqrec.losses.sampled.loss_and_grad` for BPR-max is
~20 elementwise torch passes over the (B, M) score matrix (profiled: 0.8 ms of
a ~6 ms step at B = 80, M = 2,128). Here torch does only what it vectorises
best (``exp`` and ``sigmoid``); one parallel numba kernel does the rest per
row: the four sums over the negatives, the loss, and the gradient times the
final activation's derivative (written from the activated scores ``a`` alone:
linear 1, tanh 1 - a², relu [a > 0], leaky-α [a > 0] + α[a <= 0],
elu-α [a > 0] + (a + α)[a <= 0]). Same equations as ``_bpr_max_grad``:

    P = Σ s σ,  R = Σ s a²,  S2 = Σ s σ²   (s = softmax over the negatives, σ = σ(t - a_j))
    dL/da_j = s_j [λ (a_j² + 2 a_j) - σ_j² / P + P / P - λ R],  dL/dt = (S2 - P) / P
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from seqrec.layers.activation import FinalActivation

_EPS = 1e-24
_ACT_CODES = {"linear": 0, "tanh": 1, "relu": 2, "leaky": 3, "elu": 4}


# No fastmath and the slope inlined at numba-IR level: with fastmath and a separately compiled
# slope, a process that compiled these kernels and one that loaded them from numba's on-disk
# cache produced different bits (tests/test_fused_step.py), so seeded runs were not repeatable.
@numba.njit(inline="always", cache=True)
def _act_slope(a, code, alpha):  # pragma: no cover - compiled
    if code == 0:
        return np.float32(1.0)
    if code == 1:
        return np.float32(1.0) - a * a
    if code == 2:
        return np.float32(1.0) if a > 0 else np.float32(0.0)
    if code == 3:
        return np.float32(1.0) if a > 0 else alpha
    return np.float32(1.0) if a > 0 else a + alpha


@numba.njit(parallel=True, cache=True)
def _bpr_max_kernel(a, e, sg, bpreg, code, alpha, grad, loss):  # pragma: no cover - compiled
    b_rows, m = a.shape
    inv_b = np.float32(1.0) / np.float32(b_rows)
    for i in numba.prange(b_rows):
        z = np.float32(0.0)
        p = np.float32(0.0)
        s2 = np.float32(0.0)
        r = np.float32(0.0)
        for j in range(m):
            ej = e[i, j]
            sj = sg[i, j]
            aj = a[i, j]
            z += ej
            p += ej * sj
            s2 += ej * sj * sj
            r += ej * aj * aj
        # the target column is not a negative
        ei, si, ai = e[i, i], sg[i, i], a[i, i]
        z -= ei
        p -= ei * si
        s2 -= ei * si * si
        r -= ei * ai * ai
        inv_z = np.float32(1.0) / z
        p *= inv_z
        s2 *= inv_z
        r *= inv_z
        pe = p + np.float32(_EPS)
        loss[i] = -math.log(pe) + bpreg * r
        c = p / pe - bpreg * r
        inv_pe = np.float32(1.0) / pe
        scale = inv_z * inv_b
        for j in range(m):
            aj = a[i, j]
            sj = sg[i, j]
            g = e[i, j] * scale * (bpreg * (aj * aj + np.float32(2.0) * aj) - sj * sj * inv_pe + c)
            grad[i, j] = g * _act_slope(aj, code, alpha)
        grad[i, i] = (s2 - p) * inv_pe * inv_b * _act_slope(ai, code, alpha)


def bpr_max_through_act(
    a: torch.Tensor, act: FinalActivation, bpreg: float
) -> tuple[float, torch.Tensor]:
    """(BPR-max loss, dL/ds) for scores s with activated scores ``a = act(s)`` (B, M), M >= 2."""
    t = a.diagonal().unsqueeze(1)  # (B, 1)
    e = torch.exp(a - a.amax(1, keepdim=True))  # (B, M)
    sg = torch.sigmoid(t - a)  # σ(t - a_j)
    grad = torch.empty_like(a)
    loss = np.empty(a.shape[0], dtype=np.float32)
    _bpr_max_kernel(a.contiguous().numpy(), e.numpy(), sg.numpy(), np.float32(bpreg),
                    _ACT_CODES[act.kind], np.float32(act.alpha), grad.numpy(), loss)
    return float(loss.mean()), grad
