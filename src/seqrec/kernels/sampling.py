"""Inverse-CDF kernel of the popularity sampler (:mod:`seqrec.data.sampling`).

Sorting a row's uniforms *before* the inverse CDF gives the same draws as sorting after it
(the map is monotone), and sorted keys let each search start where the previous one ended:
:func:`inverse_cdf_sorted_rows` gallops forward from there, rows in parallel. Same bits as
``np.searchsorted(cdf, u, "right")`` followed by a row sort (``tests/test_batching.py``).
"""

from __future__ import annotations

import numba


@numba.njit(parallel=True, cache=True)
def inverse_cdf_sorted_rows(cdf, u, out):  # pragma: no cover - compiled
    """out[r] = sorted(searchsorted(cdf, u[r], side="right")); sorts ``u`` rows in place."""
    n = cdf.shape[0]
    for r in numba.prange(u.shape[0]):
        row = u[r]
        row.sort()
        lo = 0  # answer for the previous (smaller) key: no later answer is below it
        for j in range(row.shape[0]):
            x = row[j]
            # gallop: find hi with cdf[hi] > x (or hi = n), the answer lies in [lo, hi]
            step = 1
            hi = lo
            while hi < n and cdf[hi] <= x:
                lo = hi + 1
                hi += step
                step *= 2
            if hi > n:
                hi = n
            # binary search for the first index in [lo, hi) with cdf[index] > x
            while lo < hi:
                mid = (lo + hi) >> 1
                if cdf[mid] <= x:
                    lo = mid + 1
                else:
                    hi = mid
            out[r, j] = lo
