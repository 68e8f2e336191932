"""MMoE: Multi-gate Mixture-of-Experts (Ma et al. KDD 2018).

Implements eq. 5-7: n experts f_i (MLPs on the input x), one gate per task
g^k(x) = softmax(W_gk x) over the experts, f^k(x) = Σ_i g^k(x)_i f_i(x), and a tower
y_k = h^k(f^k(x)) per task. Census setting (sec. 6.3 and torch-rechub's example): 8 experts of
one 16-unit ReLU layer, towers of 8 units. The gates are linear maps with a bias, as in the
authors' released Keras layer (the paper writes W_gk x).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqrec.models.multitask_base import (
    MultiTaskConfig,
    MultiTaskModel,
    MultiTaskOutput,
    mlp,
    towers,
)
from seqrec.schema import Schema


@dataclass(frozen=True)
class MMoEConfig(MultiTaskConfig):
    n_experts: int = 8
    expert_hidden: tuple[int, ...] = (16,)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_experts < 1:
            raise ValueError(f"n_experts must be >= 1, got {self.n_experts}")


class MMoE(MultiTaskModel):
    def __init__(self, config: MMoEConfig, schema: Schema, tasks: tuple[str, ...]) -> None:
        super().__init__(config, schema, tasks)
        d = self.inp.width
        self.experts = nn.ModuleList(mlp(d, config.expert_hidden, config)
                                     for _ in range(config.n_experts))
        self.gates = nn.ModuleList(nn.Linear(d, config.n_experts) for _ in self.tasks)
        self.towers = towers(config.expert_hidden[-1], len(self.tasks), config)

    def gate_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_tasks, n_experts): each task's softmax over the experts."""
        return torch.stack([torch.softmax(g(x), -1) for g in self.gates], 1)

    def forward(self, batch) -> MultiTaskOutput:
        x = self.inp(batch)  # (B, d)
        e = torch.stack([f(x) for f in self.experts], 1)  # (B, n_experts, H)
        mixed = torch.bmm(self.gate_weights(x), e)  # (B, n_tasks, H)
        return MultiTaskOutput(torch.cat([t(mixed[:, k]) for k, t in enumerate(self.towers)], 1))
