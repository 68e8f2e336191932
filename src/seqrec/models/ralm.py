"""RALM's look-alike towers (Liu et al. KDD 2019, "Real-time Attention Based Look-alike Model for
Recommender System", sec. 4) over fixed user vectors: compute only. The seed sets, the training on
earlier windows, the baselines and the metrics are in :mod:`seqrec.lookalike` (its docstring lists
the deviations from the paper).

* both towers project their vectors with one shared layer P = I + ΔP, then L2-normalise;
* global attention (target-independent): g = Σ_i a_i s_i, a = softmax_i(w^T tanh(W s_i));
* local attention (target-dependent): l = Σ_i b_i s_i, b = softmax_i(τ · u^T W_l s_i), W_l = I + ΔW_l;
* score(u) = α · cos(u, g) + (1 - α) · cos(u, l), α = sigmoid of one learned number.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class RALM(nn.Module):
    """RALM's look-alike tower pair (see the module docstring) over fixed user vectors of size
    ``dim``; ``att_hidden`` is the width of the global attention's W."""

    def __init__(self, dim: int, att_hidden: int = 16, temperature: float = 10.0, alpha: float = 0.5,
                 seed: int = 0) -> None:
        super().__init__()
        self.dim = dim
        self.d_proj = nn.Parameter(torch.zeros(dim, dim))  # P = I + d_proj (shared by both towers)
        self.d_local = nn.Parameter(torch.zeros(dim, dim))  # W_l = I + d_local
        with torch.random.fork_rng():  # W's initial values depend on ``seed`` only
            torch.manual_seed(seed)
            self.W = nn.Linear(dim, att_hidden)
        self.w = nn.Parameter(torch.zeros(att_hidden))  # 0: uniform global attention
        self.log_tau = nn.Parameter(torch.tensor(float(np.log(temperature))))
        self.mix = nn.Parameter(torch.logit(torch.tensor(float(alpha))))
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(10.0))))  # the training softmax's scale only
        self.trained = False

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x + x @ self.d_proj, dim=-1)

    def _attend(self, seeds, users, mask):
        single = seeds.dim() == 2
        if single:
            seeds = seeds.unsqueeze(0)
            mask = None if mask is None else mask.unsqueeze(0)
        if mask is None:
            mask = torch.ones(seeds.shape[:2], dtype=torch.bool)
        s, u = self.project(seeds), self.project(users)  # (B, S, d), (N, d)
        a = torch.softmax((torch.tanh(self.W(s)) @ self.w).masked_fill(~mask, float("-inf")), 1)  # (B, S)
        logit = self.log_tau.exp() * torch.einsum("nd,bsd->bns", u, s + s @ self.d_local.T)
        b = torch.softmax(logit.masked_fill(~mask.unsqueeze(1), float("-inf")), 2)  # (B, N, S)
        return single, s, u, a, b

    def attention(self, seeds: torch.Tensor, users: torch.Tensor,
                  mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(global weights (S,), local weights (N, S)) of seed vectors (S, dim) for users (N, dim);
        with a batch of seed sets (B, S, dim) and their ``mask`` (B, S): (B, S) and (B, N, S)."""
        single, _, _, a, b = self._attend(seeds, users, mask)
        return (a[0], b[0]) if single else (a, b)

    def forward(self, seeds: torch.Tensor, users: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """score(u) (N,) of users (N, dim) against one seed set (S, dim), or (B, N) against a batch
        of padded seed sets (B, S, dim) with ``mask`` (B, S) True at real seeds."""
        single, s, u, a, b = self._attend(seeds, users, mask)
        g = torch.einsum("bs,bsd->bd", a, s)
        loc = torch.einsum("bns,bsd->bnd", b, s)
        cos_g = u @ nn.functional.normalize(g, dim=-1).T  # (N, B); u is unit length
        cos_l = nn.functional.cosine_similarity(u.unsqueeze(0), loc, dim=-1)  # (B, N)
        alpha = torch.sigmoid(self.mix)
        out = alpha * cos_g.T + (1 - alpha) * cos_l
        return out[0] if single else out

    def penalty(self) -> torch.Tensor:
        return (self.d_proj ** 2).sum() + (self.d_local ** 2).sum() + (self.W.weight ** 2).sum() + (self.w ** 2).sum()


