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
            return self.apply_folded(s, self.folded())
        if self.training and s.shape[0] < 2:  # one row has no batch variance: use the running one
            bn = self.bn
            z = F.batch_norm(s, bn.running_mean, bn.running_var, training=False, eps=bn.eps)
        else:
            z = self.bn(s)
        p = torch.sigmoid(z)
        return p * s + (1.0 - p) * self.alpha * s

    @torch.no_grad()
    def folded(self) -> tuple[torch.Tensor, ...]:
        """Inference constants (a, b, 1 - α, α) with p(s) = σ(a s + b): the running moments folded
        once (a = 1 / sqrt(Var + ε), b = -E a). Callers that score many blocks keep them."""
        a = torch.rsqrt(self.bn.running_var + self.bn.eps)
        return a, -self.bn.running_mean * a, 1.0 - self.alpha.detach(), self.alpha.detach()

    @staticmethod
    def apply_folded(s: torch.Tensor, consts: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Eval-mode Dice from :meth:`folded`'s constants: s (α + (1 - α) σ(a s + b)), four passes
        over a new tensor (``s`` is read, not written)."""
        a, b, one_minus, alpha = consts
        return torch.addcmul(b, s, a).sigmoid_().mul_(one_minus).add_(alpha).mul_(s)

