"""GRUs over padded behaviour sequences, plain and attention-driven (DIEN, Zhou et al. AAAI 2019).

:func:`masked_gru` runs a ``nn.GRU`` over left-aligned padded sequences with packing, so
padded steps never enter the recurrence (outputs there are 0).

:class:`AttentionGRU` is DIEN's interest-evolving layer (sec. 4.3), with attention scores
a_t from the target (eq. 6) and three ways to use them:
  * ``augru`` (eq. 7-8):  ũ_t = a_t · u_t,   h_t = (1 - ũ_t) ⊙ h_{t-1} + ũ_t ⊙ h̃_t
  * ``agru``  (eq. 5):    h_t = (1 - a_t) · h_{t-1} + a_t · h̃_t
  * ``aigru`` (eq. 4):    the GRU input is a_t · i_t
u_t is the update gate and h̃_t the candidate state of a standard GRU cell (torch's gate
order r, z, n; torch writes h_t = (1 - z) n + z h_{t-1}, so its z is DIEN's 1 - u). The
input projections of all steps are one matmul; the loop is over time steps only, and a
padded step keeps the previous state, so the final state is the state at each
sequence's last real behaviour.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

MODES = ("augru", "agru", "aigru")


def masked_gru(gru: nn.GRU, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x (B, T, D), lengths (B,) >= 0 -> outputs (B, T, H), zero at padded steps."""
    B, T, _ = x.shape
    out = x.new_zeros(B, T, gru.hidden_size)
    real = lengths > 0
    if not bool(real.any()):
        return out
    packed = pack_padded_sequence(x[real], lengths[real].cpu(), batch_first=True, enforce_sorted=False)
    y, _ = gru(packed)
    y, _ = pad_packed_sequence(y, batch_first=True, total_length=T)
    out[real] = y
    return out


class AttentionGRU(nn.Module):
    def __init__(self, in_dim: int, hidden: int, mode: str = "augru") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.hidden = hidden
        self.ih = nn.Linear(in_dim, 3 * hidden)
        self.hh = nn.Linear(hidden, 3 * hidden)

    def forward(self, x: torch.Tensor, att: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), att (B, T), mask (B, T) bool, left-aligned -> final state (B, H).

        Like a packed sequence: the rows are sorted by length, and step t updates only the
        rows still running, so the work is the number of real behaviours, not B x T.
        """
        lengths = mask.sum(1)
        order = torch.argsort(lengths, descending=True)
        lens = lengths[order]
        x, a = x[order], (att * mask)[order].unsqueeze(-1)  # (B, T, D), (B, T, 1)
        if self.mode == "aigru":
            x = x * a
        T_max = int(lens[0]) if len(lens) else 0
        gx = self.ih(x[:, :T_max])  # (B, T', 3H): all input projections at once
        B, H = x.shape[0], self.hidden
        running = (lens.unsqueeze(1) > torch.arange(T_max)).sum(0).tolist()  # rows still running
        h = x.new_zeros(B, H)
        for t, n in enumerate(running):
            hp = h[:n]
            xr, xz, xn = gx[:n, t].chunk(3, 1)
            hr, hz, hn = self.hh(hp).chunk(3, 1)
            r = torch.sigmoid(xr + hr)
            keep = torch.sigmoid(xz + hz)  # torch's z: weight of h_{t-1}
            cand = torch.tanh(xn + r * hn)
            if self.mode == "augru":
                u = (1.0 - keep) * a[:n, t]  # DIEN's update gate, scaled by attention
            elif self.mode == "agru":
                u = a[:n, t].expand_as(hp)
            else:
                u = 1.0 - keep
            h = torch.cat([hp + u * (cand - hp), h[n:]], 0)  # (1 - u) h + u h~; ended rows keep h
        return h[torch.argsort(order)]
