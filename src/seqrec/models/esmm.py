"""ESMM: Entire Space Multi-task Model (Ma et al. SIGIR 2018).

Implements eq. 1-3: two towers on shared embeddings give pCTR = σ(ctr logit) and
pCVR = σ(cvr logit); pCTCVR = pCTR x pCVR. Training (in the trainer, ``esmm_tasks``) is over the
entire space of impressions: L = BCE(pCTR, click) + BCE(pCTCVR, click and conversion); pCVR
itself is never fitted on clicked samples only. The output logits are (cvr, ctr) in the order of
``tasks`` = (conversion task, click task).

Census (the peer's setting, torch-rechub's example): "conversion" = income > 50K, "click" = never
married, so the CTCVR label is their conjunction; towers of 16 and 8 units on the concatenated
embeddings (16 wide) of the sparse features only, as the paper's model has no dense inputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from seqrec.models.multitask_base import MultiTaskConfig, MultiTaskModel, MultiTaskOutput, mlp
from seqrec.schema import Schema


@dataclass(frozen=True)
class ESMMConfig(MultiTaskConfig):
    embedding_dim: int = 16
    tower_hidden: tuple[int, ...] = (16, 8)
    use_dense: bool = False


class ESMM(MultiTaskModel):
    #: the trainer supervises pCTR with the second task's label and pCTR x pCVR with both
    esmm_tasks = True

    def __init__(self, config: ESMMConfig, schema: Schema, tasks: tuple[str, ...]) -> None:
        if len(tasks) != 2:
            raise ValueError(f"ESMM has two tasks (conversion, click), got {tasks}")
        if not config.use_dense:
            schema = dataclasses.replace(schema, features=tuple(f for f in schema.features if f.kind != "dense"))
        super().__init__(config, schema, tasks)
        self.cvr = mlp(self.inp.width, config.tower_hidden, config, out_dim=1)
        self.ctr = mlp(self.inp.width, config.tower_hidden, config, out_dim=1)

    def forward(self, batch) -> MultiTaskOutput:
        x = self.inp(batch)  # (B, d)
        return MultiTaskOutput(torch.cat([self.cvr(x), self.ctr(x)], 1))  # (B, 2): cvr, ctr
