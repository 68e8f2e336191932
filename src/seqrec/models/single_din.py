"""Single-task DIN baselines for the multi-task datasets: one independent DIN per task.

Each task gets its own :class:`seqrec.models.din.DIN` (Zhou et al. KDD 2018; the CTR family's
model, reading the same schema: the candidate item / category attend over the history of items,
categories, behaviour types and time gaps; user and query go to the final MLP), with no
parameter shared between tasks. Trained on one task's rows (``[data.multitask] tasks = [t]``)
it is the single-task model DUPN is compared with; with several tasks the DINs are independent
and only their losses are summed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqrec.models.din import DIN, DINConfig
from seqrec.models.multitask_base import MultiTaskOutput
from seqrec.schema import Schema


@dataclass(frozen=True)
class SingleDINConfig(DINConfig):
    embedding_dim: int = 16
    weight_decay: float = 0.0


class SingleDIN(nn.Module):
    def __init__(self, config: SingleDINConfig, schema: Schema, tasks: tuple[str, ...]) -> None:
        super().__init__()
        self.config, self.tasks = config, tuple(tasks)
        self.dins = nn.ModuleDict({t: DIN(config, schema) for t in self.tasks})

    def forward(self, batch) -> MultiTaskOutput:
        return MultiTaskOutput(torch.stack([self.dins[t](batch).logits for t in self.tasks], 1))
