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
import torch.nn.functional as F
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


def _run_dense(ih: nn.Linear, hh: nn.Linear, x: torch.Tensor, att: torch.Tensor, mask: torch.Tensor,
               mode: str) -> torch.Tensor:
    """:func:`_run` in torch ops of data-independent shapes, for export only: every row steps
    through all T columns and keeps its state past its real steps. The same values as the
    kernel for any mask: each row's real steps are first moved to the front in order (a
    permutation; the identity for left-aligned rows), and step t reads att[:, t] and writes
    hs[:, t] while t < the row's length, as the kernel does. Under ``torch.export`` (ONNX) the
    recurrence is one ``scan`` (an ONNX Scan node, T free); otherwise (TorchScript tracing) a
    Python loop, unrolled into the trace for this T."""
    B, T = mask.shape
    H = hh.weight.shape[1]
    m = mask.long()
    lens = m.sum(1, keepdim=True)  # (B, 1)
    # destination of every column: real steps to 0..len-1 in order, padding after them
    dest = torch.where(mask, m.cumsum(1) - 1, lens + (1 - m).cumsum(1) - 1)  # (B, T)
    gx = ih(x)  # (B, T, 3H)
    gx = torch.zeros_like(gx).scatter(1, dest.unsqueeze(-1).expand(-1, -1, 3 * H), gx)
    live = (torch.arange(T, device=mask.device) < lens).to(x.dtype)  # (B, T): 1 where step t is real
    W, b = hh.weight, hh.bias

    def step(h: torch.Tensor, g: torch.Tensor, a: torch.Tensor, lv: torch.Tensor):
        """h (B, H), g (B, 3H), a and lv (B, 1) -> (next h, the output of step t)."""
        gh = F.linear(h, W, b)  # (B, 3H)
        r = torch.sigmoid(g[:, :H] + gh[:, :H])
        k = torch.sigmoid(g[:, H:2 * H] + gh[:, H:2 * H])
        c = torch.tanh(g[:, 2 * H:] + r * gh[:, 2 * H:])
        u = (1.0 - k) * a if mode == "augru" else (a if mode == "agru" else 1.0 - k)
        h = h + lv * (u * (c - h))  # a padded step leaves h as it is
        return h, h * lv

    h0 = x.new_zeros(B, H)
    a, lv = att.unsqueeze(-1), live.unsqueeze(-1)  # (B, T, 1)
    if torch.compiler.is_exporting():
        from torch._higher_order_ops.scan import scan

        _, hs = scan(lambda h, xs: step(h, *xs), h0, (gx.transpose(0, 1), a.transpose(0, 1), lv.transpose(0, 1)))
        return hs.transpose(0, 1)  # (B, T, H)
    out, h = [], h0
    for t in range(T):
        h, o = step(h, gx[:, t], a[:, t], lv[:, t])
        out.append(o)
    return torch.stack(out, 1)  # (B, T, H), zero past each row's length


class SequenceGRU(nn.Module):
    """A GRU over left-aligned padded sequences: x (B, T, D), mask (B, T) -> (B, T, H)."""

    #: export only (:mod:`seqrec.serve.export`): the recurrence in torch ops (:func:`_run_dense`)
    dense_export: bool = False

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.ih = nn.Linear(in_dim, 3 * hidden)
        self.hh = nn.Linear(hidden, 3 * hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        att = x.new_zeros(x.shape[:2])
        return (_run_dense if self.dense_export else _run)(self.ih, self.hh, x, att, mask, "gru")


class AttentionGRU(nn.Module):
    #: export only (:mod:`seqrec.serve.export`): the recurrence in torch ops (:func:`_run_dense`)
    dense_export: bool = False

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
        hs = (_run_dense if self.dense_export else _run)(self.ih, self.hh, x, a, mask, self.mode)  # (B, T, H)
        last = (lens - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, self.hidden)
        return hs.gather(1, last).squeeze(1) * (lens > 0).unsqueeze(1)
