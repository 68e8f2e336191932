"""Fully connected stacks with the activations the CTR papers use (ReLU, PReLU, Dice)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from seqrec.layers.dice import Dice

ACTIVATIONS = ("relu", "prelu", "dice", "sigmoid", "none")


def activation(name: str, channels: int) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "prelu":
        return nn.PReLU(channels, init=0.25)
    if name == "dice":
        return Dice(channels)
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


class MLP(nn.Module):
    """in_dim -> hidden[0] -> ... -> hidden[-1] (activation and dropout after each), then
    an optional linear output layer of ``out_dim`` units. Works on (B, C) and (B, T, C)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], act: str = "relu", dropout: float = 0.0,
                 out_dim: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), activation(act, h)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = h
        if out_dim:
            layers.append(nn.Linear(d, out_dim))
            d = out_dim
        self.net = nn.Sequential(*layers)
        self.out_dim = d

    def forward(self, x):
        if x.dim() == 2:
            return self.net(x)
        lead = x.shape[:-1]  # (B, T, C): per-channel activations see (B * T, C)
        return self.net(x.reshape(-1, x.shape[-1])).reshape(*lead, self.out_dim)
