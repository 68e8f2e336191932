"""Float32 ``exp``, ``sigmoid`` and ``tanh`` that numba can vectorise (the pip llvmlite has no SVML).

Inside a numba loop ``math.exp`` is a call into libm, which stops LLVM from
vectorising the loop (one element at a time: ~1.5 ns each here). These are
branch-free arithmetic that LLVM turns into AVX-512/AVX2 code; the BPR-max loss
kernel (:mod:`seqrec.losses.fused`) and the GRU cell of the fused training step
(:mod:`seqrec.train.gru_kernels`) use them.

:func:`expf`:

* Cody-Waite range reduction: ``k = round(x / ln 2)``, ``r = x - k ln 2`` with
  ln 2 split into a short high part and a correction, so ``r`` in
  [-ln2/2, ln2/2] keeps float32 accuracy;
* ``e^r ≈ 1 + r + r² P(r)`` with the degree-5 minimax polynomial ``P`` of
  Cephes' ``expf`` (S. L. Moshier);
* ``2^k`` built directly in the float's exponent bits (:func:`_bits_to_f32`).

The input is clamped to [-87, 88], so the result is a finite, normal float:
``expf(x)`` for ``x < -87`` returns e^-87 (1.6e-38), not 0 or a denormal, and
for ``x > 88`` e^88 (1.65e38), not inf. Callers rely on the result never being
0 or inf (see :mod:`seqrec.losses.fused`). Measured error over [-87, 88]:
<= 1 ulp (6e-8 relative, ``tests/test_fused_step.py``).

:func:`sigmoidf` is ``1 / (1 + expf(-x))``. :func:`tanhf` is ``1 - 2 / (e^{2x} + 1)``,
which loses relative accuracy near 0 (``tanh x ≈ x`` is the difference of two
numbers near 1), so for ``|x| < 0.4`` it uses the odd Taylor series to x^13
(the next term is below 3e-9 of the result there). Measured against float64 at
3M points in [-20, 20]: relative error <= 6.2e-8 for both (about 1 ulp; the test,
``tests/test_fused_step.py``, allows 1.3e-7).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def _bits_to_f32(typingctx, i):
    """Reinterpret an int32's bits as a float32 (no conversion)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


_LO, _HI = np.float32(-87.0), np.float32(88.0)
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # exact in a few bits: k * _LN2_HI has no rounding error
_LN2_LO = np.float32(-2.12194440e-4)  # ln 2 - _LN2_HI
_C5, _C4, _C3 = np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3)
_C2, _C1, _C0 = np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1)
_ONE, _HALF = np.float32(1.0), np.float32(0.5)


@numba.njit(inline="always", cache=True)
def expf(x):  # pragma: no cover - compiled
    """e^x in float32 for x clamped to [-87, 88]; vectorises inside numba loops."""
    x = min(max(x, _LO), _HI)
    k = math.floor(x * _LOG2E + _HALF)
    r = x - k * _LN2_HI - k * _LN2_LO
    p = ((((_C5 * r + _C4) * r + _C3) * r + _C2) * r + _C1) * r + _C0
    y = p * (r * r) + r + _ONE
    return y * _bits_to_f32((np.int32(k) + np.int32(127)) << np.int32(23))


@numba.njit(inline="always", cache=True)
def sigmoidf(x):  # pragma: no cover - compiled
    """1 / (1 + e^-x) in float32; vectorises inside numba loops."""
    return _ONE / (_ONE + expf(-x))


_TWO, _SMALL = np.float32(2.0), np.float32(0.4)
# odd Taylor coefficients of tanh: x^3 .. x^13
_T3, _T5, _T7 = np.float32(-1.0 / 3.0), np.float32(2.0 / 15.0), np.float32(-17.0 / 315.0)
_T9, _T11, _T13 = np.float32(62.0 / 2835.0), np.float32(-1382.0 / 155925.0), np.float32(21844.0 / 6081075.0)


@numba.njit(inline="always", cache=True)
def tanhf(x):  # pragma: no cover - compiled
    """tanh in float32: the series near 0, 1 - 2 / (e^2x + 1) elsewhere (both computed: branch-free)."""
    big = _ONE - _TWO / (expf(_TWO * x) + _ONE)
    x2 = x * x
    small = x + x * x2 * (_T3 + x2 * (_T5 + x2 * (_T7 + x2 * (_T9 + x2 * (_T11 + x2 * _T13)))))
    return small if abs(x) < _SMALL else big
