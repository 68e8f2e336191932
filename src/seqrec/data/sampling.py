"""Popularity^alpha negative sampling from a pre-drawn cache (GRU4Rec CIKM 2018, sec. 4.1).

Drawing 2048 items with ``torch.multinomial`` at every step costs more than the
step itself; instead a large cache of draws is generated at once (inverse CDF
over uniform numbers) and consumed ``n_sample`` at a time.

Each step's draws are kept in increasing item order (the losses do not depend
on column order, and the trainer's gather and row update then walk memory
forwards: measured ~0.5 ms less per step). Sorting a row's uniforms *before*
the inverse CDF gives the same draws as sorting after it (the map is
monotone), and sorted keys let each search start where the previous one
ended: :func:`seqrec.kernels.sampling.inverse_cdf_sorted_rows` gallops forward
from there, in parallel over rows. Same bits as ``np.searchsorted(cdf, u, "right")`` followed
by a row sort (``tests/test_batching.py``). Measured on diginetica's counts
(43k items, alpha 0.4, 4,882 steps x 2,048 draws, 2 threads): 1.5-2.7 s with
``searchsorted`` + sort, 0.43 s here, i.e. 0.40 -> 0.11 ms per training step.
"""

from __future__ import annotations

import numpy as np
import torch

from seqrec.kernels.sampling import inverse_cdf_sorted_rows


class PopularitySampler:
    """Draws item indices with probability proportional to ``count ** alpha``.

    counts: (n_items,) training occurrence counts (padding/OOV rows 0, never drawn).
    """

    def __init__(
        self, counts: np.ndarray, alpha: float, n_sample: int, cache_size: int = 10_000_000, seed: int = 0
    ) -> None:
        counts = np.asarray(counts, dtype=np.float64)
        weights = np.where(counts > 0, counts**alpha, 0.0)
        if weights.sum() <= 0:
            raise ValueError("cannot sample negatives: no item has a positive count")
        self.probs = weights / weights.sum()
        self.cdf = np.cumsum(self.probs)
        self.cdf[-1] = 1.0
        self.n_sample = n_sample
        self.n_batches = max(1, cache_size // max(n_sample, 1))
        self.rng = np.random.default_rng(seed)
        self._cache: torch.Tensor | None = None
        self._pos = 0

    def _refill(self) -> None:
        u = self.rng.random((self.n_batches, self.n_sample))
        draws = np.empty(u.shape, dtype=np.int64)
        inverse_cdf_sorted_rows(self.cdf, u, draws)  # each row in increasing item order
        self._cache = torch.from_numpy(draws)
        self._pos = 0

    def next(self) -> torch.Tensor:
        """The next ``n_sample`` draws as an int64 tensor (shared by the whole mini-batch)."""
        if self.n_sample == 0:
            return torch.empty(0, dtype=torch.int64)
        if self._cache is None or self._pos >= self.n_batches:
            self._refill()
        out = self._cache[self._pos]
        self._pos += 1
        return out
