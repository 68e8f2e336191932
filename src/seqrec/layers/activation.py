"""GRU4Rec's final activations on the sampled scores (Hidasi & Karatzoglou CIKM 2018).

``linear`` (also called ``softmax``: raw scores for cross-entropy), ``tanh``,
``relu``, ``elu-<α>`` and ``leaky-<α>``. Besides the autograd-safe forward
there is an in-place forward and a one-kernel backward (the fused aten
``*_backward`` ops) for the fused training step, which backpropagates by hand:
tanh' = 1 - a², relu' = [s > 0], leaky-α' = α + (1 - α)[s > 0],
elu-α' = 1 where a > 0, else a + α.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_aten = torch.ops.aten


class FinalActivation:
    """Parsed final activation: ``act(s)``, ``act.forward_(s)``, ``act.backward(g, s, a)``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.kind, self.alpha = _parse(name)

    @property
    def linear(self) -> bool:
        return self.kind == "linear"

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        """Autograd-safe forward."""
        if self.kind == "linear":
            return s
        if self.kind == "tanh":
            return torch.tanh(s)
        if self.kind == "relu":
            return s.clamp(min=0.0)
        if self.kind == "leaky":
            return F.leaky_relu(s, self.alpha)
        # elu with exp, not expm1 (~5x faster here; the same to ~1e-7)
        return s.clamp(min=0.0) + self.alpha * (torch.exp(s.clamp(max=0.0)) - 1.0)

    def forward_(self, s: torch.Tensor) -> torch.Tensor:
        """Forward that may overwrite ``s`` (only where :meth:`backward` does not need it)."""
        if self.kind == "linear":
            return s
        if self.kind == "tanh":
            return s.tanh_()
        if self.kind == "elu":  # max(s, 0) + α e^min(s, 0) - α
            e = torch.clamp(s, max=0.0).exp_()
            return s.clamp_(min=0.0).add_(e, alpha=self.alpha).sub_(self.alpha)
        return self(s)  # relu / leaky: the backward reads s

    def backward(self, g: torch.Tensor, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """dL/ds from dL/da ``g``, the input ``s`` and the output ``a``."""
        if self.kind == "linear":
            return g
        if self.kind == "tanh":
            return _aten.tanh_backward(g, a)
        if self.kind == "relu":
            return _aten.threshold_backward(g, s, 0.0)
        if self.kind == "leaky":
            return _aten.leaky_relu_backward(g, s, self.alpha, False)
        return _aten.elu_backward(g, self.alpha, 1.0, 1.0, True, a)


def _parse(name: str) -> tuple[str, float]:
    if name in ("linear", "softmax"):
        return "linear", 0.0
    if name in ("tanh", "relu"):
        return name, 0.0
    for prefix in ("elu-", "leaky-"):
        if name.startswith(prefix):
            try:
                return prefix[:-1], float(name[len(prefix) :])
            except ValueError:
                break
    raise ValueError(f"unknown final_act {name!r}: use linear, tanh, relu, elu-<a> or leaky-<a>")
