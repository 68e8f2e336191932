"""CNN+LSTM purchase predictor: convolutions extract local patterns, an LSTM models their order.

The reference article (a Chinese blog post on purchase prediction from purchase histories)
describes: a CNN extracts features from the purchase event sequence (convolution layers with
ReLU, then pooling), an LSTM models the resulting sequence, and fully connected layers
classify; CNN+LSTM learned faster than an LSTM alone. The same convolution-then-recurrence
stacking is the CLDNN of Sainath et al. (ICASSP 2015); the parallel kernel widths follow
Kim, "Convolutional Neural Networks for Sentence Classification" (EMNLP 2014).

Architecture, as implemented here:

1. event vectors x_t (:class:`~seqrec.layers.events.EventEncoder`), dropout;
2. parallel 1-D convolutions over time, one per width in ``kernel_sizes`` (2, 3, 5), each
   ``conv_channels`` (32) wide with 'same'-length output, ReLU, concatenated; outputs at
   padded positions are set to 0 (a window near the end of a history reaches into padding,
   which is zero, so real positions see the same inputs however much padding follows);
3. masked max-pooling over time, window = stride = ``pool`` (2) (pool = 1: none);
4. an LSTM (``hidden`` 64, ``layers`` 1) over the real pooled steps only (packed);
5. its final hidden state [; dense features if ``use_dense``] -> MLP (``mlp_hidden`` (64,),
   ReLU, dropout) -> 1 logit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.layers.events import masked_max_pool
from seqrec.models.purchase_rnn import PurchaseRNN, PurchaseRNNConfig


@dataclass(frozen=True)
class CNNLSTMConfig(PurchaseRNNConfig):
    kernel_sizes: tuple[int, ...] = (2, 3, 5)  # one convolution per width, run in parallel
    conv_channels: int = 32  # output channels of each convolution
    pool: int = 2  # max-pooling window and stride over time (1 = no pooling)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.kernel_sizes or any(k < 1 for k in self.kernel_sizes):
            raise ValueError(f"kernel_sizes must be a non-empty list of widths >= 1, got {self.kernel_sizes}")
        if self.conv_channels < 1 or self.pool < 1:
            raise ValueError(f"conv_channels and pool must be >= 1, got {self.conv_channels}, {self.pool}")


class ConvPool(nn.Module):
    """Parallel 'same' convolutions (ReLU, concatenated), padding zeroed, masked max-pool:
    (B, T, E), (B, T) -> (B, ceil(T / pool), len(kernel_sizes) * channels), (B, ceil(T / pool))."""

    def __init__(self, in_dim: int, kernel_sizes: tuple[int, ...], channels: int, pool: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(in_dim, channels, k) for k in kernel_sizes)
        # 'same' length: k - 1 zeros around the sequence, the odd one (even k) on the right,
        # as torch's padding="same" does, without its copy-and-warn path for even widths
        self.pads = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_sizes)
        self.pool = pool
        self.out_dim = len(kernel_sizes) * channels

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xc = x.transpose(1, 2)  # (B, E, T)
        ys = [torch.relu(conv(F.pad(xc, pad))) for conv, pad in zip(self.convs, self.pads, strict=True)]
        y = torch.cat(ys, 1).transpose(1, 2)  # (B, T, C)
        y = y * mask.unsqueeze(-1).to(y.dtype)  # bias / neighbours make padded outputs non-zero
        return masked_max_pool(y, mask, self.pool)


class CNNLSTM(PurchaseRNN):
    """Events -> parallel convolutions + ReLU -> masked max-pool -> LSTM -> MLP -> logit."""

    rnn_cls = nn.LSTM
    config: CNNLSTMConfig

    def build_front(self, in_dim: int) -> tuple[nn.Module, int]:
        c = self.config
        front = ConvPool(in_dim, c.kernel_sizes, c.conv_channels, c.pool)
        return front, front.out_dim
