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

    #: export only (:mod:`seqrec.serve.export` sets it while it traces an eval-mode model): :meth:`weights`
    #: takes :meth:`weights_dense`, whose shapes do not depend on the data, so it traces
    dense_export: bool = False

    def weights(self, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """q (B, D), k (B, T, D), mask (B, T) bool (True = real) -> w (B, T).

        Only the real positions go through the MLP (histories are mostly padding: ~6x less
        work on Amazon), which also keeps padding out of Dice's batch statistics.
        """
        if self.dense_export:
            return self.weights_dense(q, k, mask)
        b_idx = mask.nonzero(as_tuple=True)[0]
        kr = k[mask]  # (N, D) real behaviours
        qr = q.index_select(0, b_idx)  # (N, D)
        wr = self.mlp(torch.cat([kr, qr, kr - qr, kr * qr], dim=-1)).squeeze(-1)  # (N,)
        w = k.new_zeros(mask.shape).masked_scatter(mask, wr)  # (B, T), 0 at padding
        if self.softmax:
            return torch.softmax(w.masked_fill(~mask, -torch.inf), dim=1).nan_to_num(0.0)
        return w

    def weights_dense(self, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:meth:`weights` with every position through the MLP and padding zeroed after: no
        boolean-mask indexing, so it traces and exports (TorchScript, ONNX). The same values in
        eval mode only (Dice then uses its running statistics, so rows do not interact)."""
        qe = q.unsqueeze(1).expand_as(k)  # (B, T, D)
        w = self.mlp(torch.cat([k, qe, k - qe, k * qe], dim=-1)).squeeze(-1)  # (B, T)
        w = w.masked_fill(~mask, 0.0)
        if self.softmax:
            return torch.softmax(w.masked_fill(~mask, -torch.inf), dim=1).nan_to_num(0.0)
        return w

    def weights_many(self, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Many queries against one history per row: q (B, C, D), k (B, T, D), mask (B, T) -> w (B, C, T).

        The same values as :meth:`weights` on every (row, query) pair (TDM scores hundreds of tree
        nodes against one history), without forming the (B, C, T, 4D) input: the first layer is
        linear in [k, q, k - q, k * q], so it splits into a key term (T per row), a query term (C
        per row) and the bilinear term sum_d W_p[:, d] k_d q_d, one batched matrix product. Only
        real positions are computed; Dice sees the same (pair, position) rows as in ``weights``.
        """
        rest = self.mlp.net[1:]
        b_idx, t_idx = mask.nonzero(as_tuple=True)
        m = self.key_terms(k[b_idx, t_idx])  # (R, D + 1, H)
        q1 = torch.cat([q, q.new_ones(q.shape[0], q.shape[1], 1)], dim=2)  # (B, C, D + 1)
        h = torch.bmm(q1.index_select(0, b_idx), m)  # (R, C, H)
        wr = rest(h.reshape(-1, h.shape[-1])).view(h.shape[0], h.shape[1])  # (R, C)
        w = k.new_zeros(mask.shape[0], mask.shape[1], q.shape[1])  # (B, T, C)
        w[b_idx, t_idx] = wr
        w = w.transpose(1, 2)  # (B, C, T)
        if self.softmax:
            return torch.softmax(w.masked_fill(~mask[:, None, :], -torch.inf), dim=2).nan_to_num(0.0)
        return w

    def key_terms(self, kr: torch.Tensor) -> torch.Tensor:
        """(R, D) behaviours -> (R, D + 1, H): for each, the matrix that maps [q, 1] to the first
        layer's output on [k, q, k - q, k ⊙ q]: rows d < D are k_d W_p[:, d] + (W_q - W_d)[:, d]
        (the bilinear and query terms), the last row (W_k + W_d) k + b (the key's own term)."""
        first = self.mlp.net[0]
        w_k, w_q, w_d, w_p = first.weight.split(kr.shape[-1], dim=1)  # (H, D) each
        a_k = kr @ (w_k + w_d).T + first.bias  # (R, H)
        return torch.cat([kr[:, :, None] * w_p.T[None] + (w_q - w_d).T[None], a_k[:, None, :]], dim=1)

    def forward(self, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """-> the weighted sum of the keys (B, D)."""
        w = self.weights(q, k, mask)
        return torch.bmm(w.unsqueeze(1), k).squeeze(1)
