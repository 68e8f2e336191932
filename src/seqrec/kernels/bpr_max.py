"""BPR-max from the raw scores, final activation included, in one numba pass (the fused step's hot path).

The closed form of :func:`seqrec.losses.sampled.loss_and_grad` for BPR-max is
~20 elementwise torch passes over the (B, M) score matrix (profiled: 0.8 ms of
a ~6 ms step at B = 80, M = 2,128); an earlier version of this module still
left the activation, ``exp``, ``sigmoid`` and the row max to torch (~12 passes,
0.9 ms a step measured inside the training step, against 0.54 ms now). Here one parallel numba
kernel does a row at a time while it sits in L1, with the vectorisable
:func:`seqrec.kernels.mathf.expf`:

1. ``a = act(s)`` (linear, relu, leaky-α, elu-α in the kernel; tanh is applied
   by torch before it, in place), with the row maximum taken on the raw scores
   by torch: the activations are non-decreasing, so max act(s) = act(max s);
2. ``e_j = exp(a_j - max)`` and ``σ_j = σ(t - a_j) = 1 / (1 + e_j c)`` with the
   row constant ``c = exp(max - t)``: one exponential per score instead of two
   (rows with ``max - t > 60``, where ``e_j c`` could lose accuracy, recompute
   ``σ_j = 1 / (1 + exp(a_j - t))`` directly);
3. the four sums over the negatives, the loss, and the gradient times the
   final activation's derivative (written from ``a`` alone: linear 1, tanh
   1 - a², relu [a > 0], leaky-α [a > 0] + α[a <= 0], elu-α [a > 0] + (a + α)[a <= 0]).

Same equations as ``_bpr_max_grad``::

    P = Σ s σ,  R = Σ s a²,  S2 = Σ s σ²   (s = softmax over the negatives, σ = σ(t - a_j))
    dL/da_j = s_j [λ (a_j² + 2 a_j) - σ_j² / P + P / P - λ R],  dL/dt = (S2 - P) / P

``expf`` clamps its argument to [-87, 88], so ``e_j`` is never 0: a row whose
negatives all sit more than 87 below the maximum gets equal (tiny) softmax
weights instead of 0/0; its σ are ~1, so its loss and gradient are ~0 either way.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from seqrec.kernels.mathf import expf
from seqrec.layers.activation import FinalActivation

_EPS = 1e-24
_ACT_CODES = {"linear": 0, "tanh": 1, "relu": 2, "leaky": 3, "elu": 4}
_DIRECT = np.float32(60.0)  # max - t above this: σ from its own exponential


# The slope and the activation are inlined at numba-IR level: with a separately compiled slope,
# a process that compiled these kernels and one that loaded them from numba's on-disk cache
# produced different bits (tests/test_fused_step.py), so seeded runs were not repeatable.
@numba.njit(inline="always", cache=True)
def _act_slope(a, code, alpha):  # pragma: no cover - compiled
    if code <= 1:
        return np.float32(1.0) if code == 0 else np.float32(1.0) - a * a
    if code == 2:
        return np.float32(1.0) if a > 0 else np.float32(0.0)
    if code == 3:
        return np.float32(1.0) if a > 0 else alpha
    return np.float32(1.0) if a > 0 else a + alpha


@numba.njit(inline="always", cache=True)
def _act(x, code, alpha):  # pragma: no cover - compiled
    """The final activation (tanh: already applied, identity here); branch-free for the vectoriser."""
    if code <= 1:
        return x
    if code == 2:
        return max(x, np.float32(0.0))
    if code == 3:
        return x if x > 0 else alpha * x
    neg = alpha * (expf(min(x, np.float32(0.0))) - np.float32(1.0))
    return x if x > 0 else neg


@numba.njit(inline="always", cache=True)
def _fill_row(s, i, code, alpha, mx, c, e, sg):  # pragma: no cover - compiled
    """s[i] <- act(s[i]); e = exp(a - mx); σ = 1 / (1 + e c). Called with a literal ``code`` so that
    each activation gets its own vectorised loop."""
    for j in range(s.shape[1]):
        aj = _act(s[i, j], code, alpha)
        s[i, j] = aj
        ej = expf(aj - mx)
        e[i, j] = ej
        sg[i, j] = np.float32(1.0) / (np.float32(1.0) + ej * c)


_LANES = 16


@numba.njit(inline="always", cache=True)
def _row_sums(a, e, sg, i):  # pragma: no cover - compiled
    """(Σ e, Σ e σ, Σ e σ², Σ e a²) over row i, in 16 interleaved partial sums: a fixed order,
    so no ``fastmath`` is needed to break the serial dependency chain (with ``fastmath`` the
    bits differed between a process that compiled the kernel and one that loaded it from
    numba's cache). Against one running sum per quantity: the whole kernel 367 vs 433 us
    (medians of 10 alternated rounds, (80, 2,128) scores, elu, 2 threads)."""
    m = a.shape[1]
    acc = np.zeros((4, _LANES), dtype=np.float32)
    n_full = m - m % _LANES
    for j0 in range(0, n_full, _LANES):
        for lane in range(_LANES):
            j = j0 + lane
            ej, sj, aj = e[i, j], sg[i, j], a[i, j]
            acc[0, lane] += ej
            acc[1, lane] += ej * sj
            acc[2, lane] += ej * sj * sj
            acc[3, lane] += ej * aj * aj
    for j in range(n_full, m):
        ej, sj, aj = e[i, j], sg[i, j], a[i, j]
        acc[0, 0] += ej
        acc[1, 0] += ej * sj
        acc[2, 0] += ej * sj * sj
        acc[3, 0] += ej * aj * aj
    out0 = np.float32(0.0)
    out1 = np.float32(0.0)
    out2 = np.float32(0.0)
    out3 = np.float32(0.0)
    for lane in range(_LANES):
        out0 += acc[0, lane]
        out1 += acc[1, lane]
        out2 += acc[2, lane]
        out3 += acc[3, lane]
    return out0, out1, out2, out3


# error_model="numpy": no zero check on each division, which kept LLVM from vectorising 1 / (1 + x)
@numba.njit(parallel=True, error_model="numpy", cache=True)
def _bpr_max_kernel(s, smax, code, alpha, bpreg, inv_b, e, sg, grad, loss):  # pragma: no cover - compiled
    b_rows, m = s.shape
    for i in numba.prange(b_rows):
        mx = _act(smax[i], code, alpha)
        t = _act(s[i, i], code, alpha)
        c = expf(mx - t)
        if code <= 1:
            _fill_row(s, i, 0, alpha, mx, c, e, sg)
        elif code == 2:
            _fill_row(s, i, 2, alpha, mx, c, e, sg)
        elif code == 3:
            _fill_row(s, i, 3, alpha, mx, c, e, sg)
        else:
            _fill_row(s, i, 4, alpha, mx, c, e, sg)
        if mx - t > _DIRECT:
            for j in range(m):
                sg[i, j] = np.float32(1.0) / (np.float32(1.0) + expf(s[i, j] - t))
        z, p, s2, r = _row_sums(s, e, sg, i)
        # the target column is not a negative
        ei, si, ai = e[i, i], sg[i, i], s[i, i]
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
        c2 = p / pe - bpreg * r
        inv_pe = np.float32(1.0) / pe
        scale = inv_z * inv_b
        for j in range(m):
            aj = s[i, j]
            sj = sg[i, j]
            g = e[i, j] * scale * (bpreg * (aj * aj + np.float32(2.0) * aj) - sj * sj * inv_pe + c2)
            grad[i, j] = g * _act_slope(aj, code, alpha)
        grad[i, i] = (s2 - p) * inv_pe * inv_b * _act_slope(ai, code, alpha)


class BprMaxWork:
    """Reusable scratch for :func:`bpr_max_from_scores` (two (B, M) float32 arrays and the
    per-row losses), grown as needed; one per caller (not thread-safe)."""

    def __init__(self) -> None:
        self._buf = np.empty(0, dtype=np.float32)

    def arrays(self, b: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = b * m
        if self._buf.shape[0] < 2 * n + b:
            self._buf = np.empty(2 * n + b, dtype=np.float32)
        buf = self._buf
        return buf[:n].reshape(b, m), buf[n : 2 * n].reshape(b, m), buf[2 * n : 2 * n + b]


def bpr_max_from_scores(
    s: torch.Tensor, act: FinalActivation, bpreg: float, work: BprMaxWork | None = None,
    norm: int | None = None,
) -> tuple[float, torch.Tensor]:
    """(BPR-max loss of ``act(s)``, dL/ds) for raw scores ``s`` (B, M), M >= 2, float32.

    The loss is the mean over the B rows, the gradient that of their sum / ``norm`` (default
    B), as in :func:`seqrec.losses.sampled.loss_and_grad`.

    ``s`` is overwritten with ``act(s)`` (the fused step no longer needs it), so it must be a
    contiguous float32 tensor: a copy would leave the caller's ``s`` unchanged. ``work``:
    scratch kept by a caller that calls every step (saves two (B, M) allocations a call).
    """
    if s.dtype != torch.float32 or not s.is_contiguous() or s.dim() != 2:
        raise ValueError(f"bpr_max_from_scores needs a contiguous 2-d float32 tensor, got {s.dtype} "
                         f"{tuple(s.shape)} (contiguous: {s.is_contiguous()})")
    if act.kind == "tanh":
        s.tanh_()
    smax = s.amax(1)
    b, m = s.shape
    e, sg, loss = (work or BprMaxWork()).arrays(b, m)
    grad = torch.empty_like(s)
    _bpr_max_kernel(s.numpy(), smax.numpy(), _ACT_CODES[act.kind], np.float32(act.alpha), np.float32(bpreg),
                    np.float32(1.0) / np.float32(norm or b), e, sg, grad.numpy(), loss)
    return float(loss.sum()) / b, grad  # (np.mean costs ~3x a sum here)
