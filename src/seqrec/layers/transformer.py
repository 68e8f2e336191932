"""Self-attention block for behaviour sequences (BST, Chen et al. 2019; DSIN's session encoder).

A standard post-norm transformer encoder layer (multi-head self-attention, feed-forward,
residuals, layer norm; Vaswani et al. 2017) from ``torch.nn`` with a key padding mask.
Padded positions never act as keys; a sequence with no real position at all (an empty
history or session) is given one dummy key so attention stays finite, and its outputs are
zeroed, so padding changes nothing.
"""

from __future__ import annotations

import torch
from torch import nn


class SelfAttentionBlock(nn.Module):
    def __init__(self, dim: int, heads: int = 2, ff: int = 0, dropout: float = 0.1, layers: int = 1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        layer = nn.TransformerEncoderLayer(dim, heads, ff or 4 * dim, dropout, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), mask (B, T) bool (True = real) -> (B, T, D), zero at padded positions."""
        empty = ~mask.any(1)  # (B,)
        pad = ~mask
        if bool(empty.any()):
            pad = pad.clone()
            pad[empty, 0] = False
        y = self.enc(x, src_key_padding_mask=pad)
        return y * mask.unsqueeze(-1)
