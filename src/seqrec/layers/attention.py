"""Target attention over a behaviour sequence.

:class:`ActivationUnit` is DIN's local activation unit (Zhou et al. KDD 2018, sec. 4.1,
eq. 3 and fig. 2): for the candidate embedding q and each behaviour embedding k_t,

    w_t = MLP([k_t, q, k_t - q, k_t ⊙ q]),     v = Σ_t w_t k_t

with **no softmax** over t (the paper keeps the weights un-normalised so that v carries
the intensity of the user's interest); ``softmax=True`` normalises them instead. Padded
positions get weight 0 (or -inf before a softmax), so padding never changes the output.
DSIN uses two of these (over session interests and over their Bi-LSTM states).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from seqrec.layers.mlp import MLP


class ActivationUnit(nn.Module):
    def __init__(self, dim: int, hidden: Sequence[int] = (80, 40), act: str = "dice",
                 softmax: bool = False, query_dim: int | None = None) -> None:
        super().__init__()
        qd = query_dim or dim
        if qd != dim:
            raise ValueError(f"query ({qd}) and keys ({dim}) must have the same width")
        self.mlp = MLP(4 * dim, hidden, act=act, out_dim=1)
        self.softmax = softmax

    def weights(self, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """q (B, D), k (B, T, D), mask (B, T) bool (True = real) -> w (B, T).

        Only the real positions go through the MLP (histories are mostly padding: ~6x less
        work on Amazon), which also keeps padding out of Dice's batch statistics.
        """
        b_idx = mask.nonzero(as_tuple=True)[0]
        kr = k[mask]  # (N, D) real behaviours
        qr = q.index_select(0, b_idx)  # (N, D)
        wr = self.mlp(torch.cat([kr, qr, kr - qr, kr * qr], dim=-1)).squeeze(-1)  # (N,)
        w = k.new_zeros(mask.shape).masked_scatter(mask, wr)  # (B, T), 0 at padding
        if self.softmax:
            return torch.softmax(w.masked_fill(~mask, -torch.inf), dim=1).nan_to_num(0.0)
        return w

    def forward(self, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """-> the weighted sum of the keys (B, D)."""
        w = self.weights(q, k, mask)
        return torch.bmm(w.unsqueeze(1), k).squeeze(1)
