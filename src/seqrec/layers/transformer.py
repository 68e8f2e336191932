"""Self-attention block for behaviour sequences (BST, Chen et al. 2019; DSIN's session encoder;
SASRec, Kang & McAuley 2018).

An encoder layer as in Vaswani et al. 2017: multi-head scaled dot-product self-attention
(eq. 1-2 there), a position-wise feed-forward net (ReLU), a residual around each, and a
layer norm after each residual (post-norm) when ``layer_norm`` is set. Padded positions
never act as keys; a sequence with no real position at all (an empty history or session)
is given one dummy key so attention stays finite, and its outputs are zeroed, so padding
changes nothing.

``layer_norm=False`` keeps the residuals but drops the normalisation (DSIN's and BST's
default; the better of the two on the Taobao task, numbers in their docstrings). Written
here rather than taken from ``torch.nn.TransformerEncoder`` (same equations, tested
against it): with that module and its initialisation DSIN did not learn on the Taobao
task (valid AUC 0.50 after 400 steps of batch 256).

``norm_first=True`` is the pre-norm layer SASRec uses (Kang & McAuley 2018, sec. III-C:
g(x) = x + Dropout(g(LayerNorm(x))) around attention and around the feed-forward net), with
one more layer norm on the last layer's output. ``causal=True`` lets position t attend to
positions <= t only (SASRec's causality, sec. III-B); every position may always attend to
itself, so a padded query (left padding has no real key at or before it) stays finite.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ff: int, dropout: float, layer_norm: bool,
                 norm_first: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.norm_first = norm_first
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff), nn.ReLU(), nn.Linear(ff, dim))
        self.drop = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(dim) if layer_norm else nn.Identity()
        self.norm2 = nn.LayerNorm(dim) if layer_norm else nn.Identity()
        self.p = dropout

    def _attend(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        h = self.heads
        q, k, v = self.qkv(x).view(B, T, 3, h, D // h).permute(2, 0, 3, 1, 4)  # each (B, h, T, d)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                           dropout_p=self.p if self.training else 0.0)
        return self.out(a.transpose(1, 2).reshape(B, T, D))  # (B, T, D)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``allowed`` (B, 1, 1 or T, T) bool: which keys each query may attend to."""
        if self.norm_first:
            x = x + self.drop(self._attend(self.norm1(x), allowed))
            return x + self.drop(self.ff(self.norm2(x)))
        x = self.norm1(x + self.drop(self._attend(x, allowed)))
        return self.norm2(x + self.drop(self.ff(x)))


class SelfAttentionBlock(nn.Module):
    def __init__(self, dim: int, heads: int = 2, ff: int = 0, dropout: float = 0.1, layers: int = 1,
                 layer_norm: bool = True, norm_first: bool = False, causal: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        if norm_first and not layer_norm:
            raise ValueError("norm_first needs layer_norm")
        self.causal = causal
        self.layers = nn.ModuleList(
            _EncoderLayer(dim, heads, ff or 4 * dim, dropout, layer_norm, norm_first) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim) if norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), mask (B, T) bool (True = real) -> (B, T, D), zero at padded positions."""
        if self.causal:
            T = mask.shape[1]
            eye = torch.eye(T, dtype=torch.bool, device=mask.device)
            allowed = (mask[:, None, :] & torch.ones_like(eye).tril()) | eye  # (B, T, T)
            allowed = allowed[:, None]  # (B, 1, T, T)
        else:
            keys = mask.clone()
            keys[:, 0] |= ~mask.any(1)  # an empty sequence attends to one dummy key
            allowed = keys[:, None, None, :]  # (B, 1, 1, T)
        for layer in self.layers:
            x = layer(x, allowed)
        return self.final_norm(x) * mask.unsqueeze(-1)
