"""GRUs over padded behaviour sequences, plain and attention-driven (DIEN, Zhou et al. AAAI 2019).

:class:`SequenceGRU` is DIEN's interest extractor: a GRU over left-aligned padded
sequences whose padded steps never enter the recurrence (outputs there are 0).

:class:`AttentionGRU` is DIEN's interest-evolving layer (sec. 4.3), with attention scores
a_t from the target (eq. 6) and three ways to use them:
  * ``augru`` (eq. 7-8):  ũ_t = a_t · u_t,   h_t = (1 - ũ_t) ⊙ h_{t-1} + ũ_t ⊙ h̃_t
  * ``agru``  (eq. 5):    h_t = (1 - a_t) · h_{t-1} + a_t · h̃_t
  * ``aigru`` (eq. 4):    the GRU input is a_t · i_t
u_t is the update gate and h̃_t the candidate state of a standard GRU cell (torch's gate
order r, z, n; torch writes h_t = (1 - z) n + z h_{t-1}, so its z is DIEN's 1 - u). The
final state is the state at each sequence's last real behaviour.

Both run the recurrence in :mod:`seqrec.kernels.gru` (each row over its own real
steps, rows in parallel, hand-written backward); the input projections of all steps are
one matmul here, and so is the hidden-to-hidden weight gradient.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from seqrec.kernels import gru as K

MODES = ("augru", "agru", "aigru")
_KERNEL_MODE = {"gru": K.GRU, "aigru": K.GRU, "augru": K.AUGRU, "agru": K.AGRU}


class _RNN(torch.autograd.Function):
    """(gx (N, 3H) packed real steps, att (B, T), W (3H, H), b (3H,), lens (B,), idx (N,)
    the flat (B * T) positions of the real steps, mode) -> states (B, T, H)."""

    @staticmethod
    def forward(ctx, gx, att, W, b, lens, idx, mode):
        B, T = att.shape
        H = W.shape[1]
        lens_np = lens.numpy().astype(np.int64)
        off = np.cumsum(lens_np) - lens_np
        gx_np = gx.detach().contiguous().numpy()
        att_np = att.detach().contiguous().numpy()
        W_np = W.detach().contiguous().numpy()
        dt = gx_np.dtype
        hs = np.zeros((B, T, H), dt)
        bufs = [np.empty((B, T, H), dt) for _ in range(4)]
        K.rnn_forward(gx_np, off, att_np, lens_np, W_np, b.detach().contiguous().numpy(), mode, hs, *bufs)
        ctx.np = (off, att_np, lens_np, W_np, hs, bufs)
        ctx.mode, ctx.idx, ctx.N = mode, idx, gx.shape[0]
        return torch.from_numpy(hs)

    @staticmethod
    def backward(ctx, d_hs):
        off, att_np, lens_np, W_np, hs, bufs = ctx.np
        B, T, H = hs.shape
        dt = hs.dtype
        dgx = np.zeros((ctx.N, 3 * H), dt)
        dgh = np.zeros((ctx.N, 3 * H), dt)
        datt = np.zeros((B, T), dt)
        K.rnn_backward(off, att_np, lens_np, W_np, ctx.mode, hs, *bufs, d_hs.contiguous().numpy(),
                       dgx, dgh, datt)
        ctx.np = None
        hprev = torch.from_numpy(hs).roll(1, 1)
        hprev[:, 0] = 0.0  # the state before step t (zero before the first)
        g = torch.from_numpy(dgh)
        dW = g.t() @ hprev.reshape(-1, H).index_select(0, ctx.idx)
        return torch.from_numpy(dgx), torch.from_numpy(datt), dW, g.sum(0), None, None, None


def _run(ih: nn.Linear, hh: nn.Linear, x: torch.Tensor, att: torch.Tensor, mask: torch.Tensor,
         mode: str) -> torch.Tensor:
    """Input projections of the real steps only (left-aligned: row-major order keeps each
    row's steps together), then the recurrence."""
    idx = mask.reshape(-1).nonzero().squeeze(1)
    gx = ih(x.reshape(-1, x.shape[-1]).index_select(0, idx))
    return _RNN.apply(gx, att, hh.weight, hh.bias, mask.sum(1), idx, _KERNEL_MODE[mode])


class SequenceGRU(nn.Module):
    """A GRU over left-aligned padded sequences: x (B, T, D), mask (B, T) -> (B, T, H)."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.ih = nn.Linear(in_dim, 3 * hidden)
        self.hh = nn.Linear(hidden, 3 * hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        att = x.new_zeros(x.shape[:2])
        return _run(self.ih, self.hh, x, att, mask, "gru")


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
        """x (B, T, D), att (B, T), mask (B, T) bool, left-aligned -> final state (B, H)."""
        lens = mask.sum(1)
        a = att * mask
        if self.mode == "aigru":
            x = x * a.unsqueeze(-1)
        hs = _run(self.ih, self.hh, x, a, mask, self.mode)  # (B, T, H)
        last = (lens - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, self.hidden)
        return hs.gather(1, last).squeeze(1) * (lens > 0).unsqueeze(1)
