"""Fully connected stacks with the activations the CTR papers use (ReLU, PReLU, Dice).

``prelu`` learns one slope per channel; ``prelu_shared`` one slope for the whole layer
(``torch.nn.PReLU()``'s default, which is what DeepCTR-Torch builds for "prelu").
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from seqrec.layers.dice import Dice

ACTIVATIONS = ("relu", "prelu", "prelu_shared", "dice", "sigmoid", "none")


def activation(name: str, channels: int) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "prelu":
        return nn.PReLU(channels, init=0.25)
    if name == "prelu_shared":
        return nn.PReLU(1, init=0.25)
    if name == "dice":
        return Dice(channels)
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


class MLP(nn.Module):
    """in_dim -> hidden[0] -> ... -> hidden[-1] (optional BatchNorm, then activation and dropout
    after each), then an optional linear output layer of ``out_dim`` units. Works on (B, C) and
    (B, T, C)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], act: str = "relu", dropout: float = 0.0,
                 out_dim: int = 0, batch_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers.append(nn.Linear(d, h))
            if batch_norm:  # after the Linear, before the activation (torch-rechub's MLP)
                layers.append(nn.BatchNorm1d(h))
            layers.append(activation(act, h))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = h
        if out_dim:
            layers.append(nn.Linear(d, out_dim))
            d = out_dim
        self.net = nn.Sequential(*layers)
        self.out_dim = d
        self.has_out = bool(out_dim)

    def linears(self, output: bool = True) -> list[nn.Linear]:
        """The Linear layers in order; ``output=False`` leaves out the output layer."""
        lin = [m for m in self.net if isinstance(m, nn.Linear)]
        return lin[:-1] if self.has_out and not output else lin

    def forward(self, x):
        if x.dim() == 2:
            return self.net(x)
        lead = x.shape[:-1]  # (B, T, C): per-channel activations see (B * T, C)
        return self.net(x.reshape(-1, x.shape[-1])).reshape(*lead, self.out_dim)
