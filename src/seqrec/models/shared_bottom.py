"""Shared-Bottom multi-task model (Caruana 1997; the baseline of Ma et al. KDD 2018, fig. 1a).

y_k = h^k(f(x)): one bottom MLP f shared by every task, one tower h^k per task (sec. 3 of the
MMoE paper, eq. 1). For census the bottom is 117 units wide, the size the MMoE paper's comparison
and torch-rechub's example choose so that Shared-Bottom has about as many parameters as an MMoE
with 8 experts of 16 units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seqrec.models.multitask_base import (
    MultiTaskConfig,
    MultiTaskModel,
    MultiTaskOutput,
    mlp,
    towers,
)
from seqrec.schema import Schema


@dataclass(frozen=True)
class SharedBottomConfig(MultiTaskConfig):
    bottom_hidden: tuple[int, ...] = (117,)


class SharedBottom(MultiTaskModel):
    def __init__(self, config: SharedBottomConfig, schema: Schema, tasks: tuple[str, ...]) -> None:
        super().__init__(config, schema, tasks)
        self.bottom = mlp(self.inp.width, config.bottom_hidden, config)
        self.towers = towers(self.bottom.out_dim, len(self.tasks), config)

    def forward(self, batch) -> MultiTaskOutput:
        h = self.bottom(self.inp(batch))  # (B, H)
        return MultiTaskOutput(torch.cat([t(h) for t in self.towers], 1))  # (B, n_tasks)
