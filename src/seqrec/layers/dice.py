"""Dice activation (Zhou et al. KDD 2018, DIN sec. 4.3, eq. 8).

    f(s) = p(s) · s + (1 - p(s)) · α · s,   p(s) = σ((s - E[s]) / sqrt(Var[s] + ε))

E[s] and Var[s] are per feature (channel): in training the mini-batch statistics (over
the batch, and over time for (B, T, C) inputs), at inference the running averages kept
during training — exactly a BatchNorm without affine parameters feeding a sigmoid. α is
learned per channel (initialised to 0, so Dice starts as a data-adaptive gated ReLU-like).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Dice(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-8, momentum: float = 0.1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(channels, eps=eps, momentum=momentum, affine=False)
        self.alpha = nn.Parameter(torch.zeros(channels))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if s.dim() == 3:  # (B, T, C): statistics over batch and time
            return self.forward(s.reshape(-1, s.shape[-1])).reshape(s.shape)
        if not self.training and not torch.is_grad_enabled():  # serving: 4 in-place passes, not 9
            bn = self.bn
            a = torch.rsqrt(bn.running_var + bn.eps)
            p = torch.addcmul(-bn.running_mean * a, s, a).sigmoid_()  # p(s)
            return p.mul_(1.0 - self.alpha).add_(self.alpha).mul_(s)  # s (α + (1 - α) p)
        if self.training and s.shape[0] < 2:  # one row has no batch variance: use the running one
            bn = self.bn
            z = F.batch_norm(s, bn.running_mean, bn.running_var, training=False, eps=bn.eps)
        else:
            z = self.bn(s)
        p = torch.sigmoid(z)
        return p * s + (1.0 - p) * self.alpha * s
