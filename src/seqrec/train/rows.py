"""Row-sparse training of large item tables.

A step gathers the (unique) rows it needs from a table as one leaf tensor;
autograd accumulates their gradients there (duplicates summed), and the
optimiser's ``step_rows`` updates exactly those rows. No dense (N, D) gradient
is ever allocated and no sparse COO coalescing is needed.
"""

from __future__ import annotations

import torch


class GatheredRows:
    """The distinct rows of ``idx`` in each of ``tables`` (same first dimension).

    ``leaves[k]`` is the (U, ...) leaf for ``tables[k]``; ``inverse`` maps each
    entry of ``idx`` to its row in the leaves.
    """

    def __init__(self, tables: list[torch.Tensor], idx: torch.Tensor) -> None:
        self.tables = tables
        self.uniq, self.inverse = torch.unique(idx, return_inverse=True)  # (U,), (len(idx),)
        self.leaves = [t.detach().index_select(0, self.uniq).requires_grad_() for t in tables]

    def apply(self, optimizer) -> None:
        """Hand the accumulated row gradients to ``optimizer.step_rows``."""
        for table, leaf in zip(self.tables, self.leaves, strict=True):
            if leaf.grad is not None:
                optimizer.step_rows(table, self.uniq, leaf.grad)
