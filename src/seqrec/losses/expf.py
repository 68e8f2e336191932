"""A float32 ``exp`` that numba can vectorise (the pip llvmlite has no SVML).

Inside a numba loop ``math.exp`` is a call into libm, which stops LLVM from
vectorising the loop (one element at a time: ~1.5 ns each here). :func:`expf`
is branch-free arithmetic that LLVM turns into AVX-512/AVX2 code:

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
