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

    def apply(self, optimizer, only: dict[int, slice | torch.Tensor] | None = None) -> None:
        """Hand the accumulated row gradients to ``optimizer.step_rows``.

        ``only``: {table number: positions in ``idx``}: that table updates just the rows at
        those positions (e.g. the output bias, which has no gradient from an input use).
        """
        for k, (table, leaf) in enumerate(zip(self.tables, self.leaves, strict=True)):
            if leaf.grad is None:
                continue
            if only is not None and k in only:
                sel = torch.unique(self.inverse[only[k]])  # (U_k,) rows of the leaves
                optimizer.step_rows(table, self.uniq[sel], leaf.grad[sel])
            else:
                optimizer.step_rows(table, self.uniq, leaf.grad)
