"""PLE: Progressive Layered Extraction (Tang et al. RecSys 2020).

Implements the Customized Gate Control layer (CGC, sec. 4.2, eq. 2-4) stacked into PLE (sec.
4.3, eq. 5-6): at each level, every task has ``n_specific`` experts of its own and all tasks share
``n_shared`` experts; task k's gate is a softmax over its own and the shared experts' outputs
(g^k(x) = w^k(x) S^k(x)); below the last level a shared gate mixes every expert for the next
level's shared input. Towers on the last level's task outputs. Census setting (torch-rechub's
example): one level, 2 specific + 1 shared experts of 16 units, towers of 8.
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
class PLEConfig(MultiTaskConfig):
    n_levels: int = 1
    n_specific: int = 2
    n_shared: int = 1
    expert_hidden: tuple[int, ...] = (16,)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_levels < 1 or self.n_specific < 1 or self.n_shared < 1:
            raise ValueError("n_levels, n_specific and n_shared must be >= 1")


class _CGC(nn.Module):
    """One extraction level: inputs (task inputs..., shared input) -> (task outputs..., shared output)."""

    def __init__(self, d: int, n_tasks: int, cfg: PLEConfig, last: bool) -> None:
        super().__init__()

        def expert():
            return mlp(d, cfg.expert_hidden, cfg)

        self.n_tasks, self.last = n_tasks, last
        self.specific = nn.ModuleList(nn.ModuleList(expert() for _ in range(cfg.n_specific)) for _ in range(n_tasks))
        self.shared = nn.ModuleList(expert() for _ in range(cfg.n_shared))
        self.task_gates = nn.ModuleList(nn.Linear(d, cfg.n_specific + cfg.n_shared) for _ in range(n_tasks))
        self.shared_gate = None if last else nn.Linear(d, n_tasks * cfg.n_specific + cfg.n_shared)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        shared_in = xs[-1]
        shared = [f(shared_in) for f in self.shared]  # each (B, H)
        specific = [[f(xs[k]) for f in self.specific[k]] for k in range(self.n_tasks)]
        out = []
        for k in range(self.n_tasks):
            e = torch.stack(specific[k] + shared, 1)  # (B, n_specific + n_shared, H)
            w = torch.softmax(self.task_gates[k](xs[k]), -1)  # (B, n_specific + n_shared)
            out.append(torch.bmm(w.unsqueeze(1), e).squeeze(1))  # (B, H)
        if not self.last:
            e = torch.stack([f for s in specific for f in s] + shared, 1)  # every expert
            w = torch.softmax(self.shared_gate(shared_in), -1)
            out.append(torch.bmm(w.unsqueeze(1), e).squeeze(1))
        return out


class PLE(MultiTaskModel):
    def __init__(self, config: PLEConfig, schema: Schema, tasks: tuple[str, ...]) -> None:
        super().__init__(config, schema, tasks)
        n, h = len(self.tasks), config.expert_hidden[-1]
        dims = [self.inp.width] + [h] * (config.n_levels - 1)
        self.levels = nn.ModuleList(_CGC(dims[i], n, config, last=i == config.n_levels - 1)
                                    for i in range(config.n_levels))
        self.towers = towers(h, n, config)

    def forward(self, batch) -> MultiTaskOutput:
        x = self.inp(batch)  # (B, d)
        xs = [x] * (len(self.tasks) + 1)  # every task's input and the shared one
        for level in self.levels:
            xs = level(xs)
        return MultiTaskOutput(torch.cat([t(xs[k]) for k, t in enumerate(self.towers)], 1))
