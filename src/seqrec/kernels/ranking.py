"""Counting kernel of the full-catalogue ranking metrics (:mod:`seqrec.evaluate.ranking`).

:func:`count_above` replaces ``(scores > t).sum(1)``, which builds a (B, N) bool matrix:
~12x faster on a (512, 43k) block, rows in parallel.
"""

from __future__ import annotations

import numba


@numba.njit(parallel=True, cache=True)
def count_above(scores, target_scores, start, or_equal, out):  # pragma: no cover - compiled
    """out[i] = #{j >= start : scores[i, j] > t_i}  (>= with ``or_equal``), rows in parallel."""
    n, m = scores.shape
    for i in numba.prange(n):
        t = target_scores[i]
        c = 0
        if or_equal:
            for j in range(start, m):
                c += scores[i, j] >= t
        else:
            for j in range(start, m):
                c += scores[i, j] > t
        out[i] = c
