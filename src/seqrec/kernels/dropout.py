"""Dropout mask and masked activation in one pass (:meth:`seqrec.layers.dropout.PooledDropout.apply`)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def mask_and_apply(x, u, p, scale, out, mask):  # pragma: no cover - compiled
    """mask = scale where u >= p else 0; out = x * mask (x, out, mask (B, D); u flat (B*D,))."""
    b, d = x.shape
    zero = np.float32(0.0)
    for i in range(b):
        for j in range(d):
            mk = scale if u[i * d + j] >= p else zero
            mask[i, j] = mk
            out[i, j] = x[i, j] * mk
