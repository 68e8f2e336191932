"""Inverted dropout whose masks come from a pre-drawn pool of uniform numbers.

On a CPU, drawing a fresh Bernoulli mask for a (80, 224) activation costs more
than the GRU step it regularises. The pool is drawn with numpy's PCG64
(~5x faster than torch's MT19937 here), seeded from torch's RNG so
``torch.manual_seed`` keeps runs reproducible; it is refilled when used up and
each call takes the next contiguous chunk. Statistically this is ordinary dropout: every mask element
is an independent uniform draw compared with ``p``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class PooledDropout(nn.Module):
    def __init__(self, pool_size: int = 1 << 22) -> None:
        super().__init__()
        self.pool_size = pool_size
        self._pool: torch.Tensor | None = None
        self._pos = 0

    def forward(self, x: torch.Tensor, p: float) -> torch.Tensor:
        if not self.training or p <= 0:
            return x
        return x * self.mask(x.shape, p)

    def mask(self, shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
        """The next scaled keep-mask (0 or 1 / (1 - p)) of ``shape``; ``forward`` is x * mask.

        The fused training step multiplies by the same mask in its backward pass.
        """
        n = 1
        for d in shape:
            n *= d
        if self._pool is None or self._pos + n > self._pool.numel():
            seed = int(torch.randint(0, 2**62, (1,)).item())
            rng = np.random.default_rng(seed)
            self._pool = torch.from_numpy(rng.random(max(self.pool_size, n), dtype=np.float32))
            self._pos = 0
        u = self._pool[self._pos : self._pos + n].view(shape)
        self._pos += n
        # compare straight into a float tensor: one pass fewer than (u >= p).to(float32)
        # (13 vs 43 us for (80, 224) on 2 threads; same values)
        return torch.ge(u, p, out=torch.empty(shape, dtype=torch.float32)).mul_(1.0 / (1.0 - p))
