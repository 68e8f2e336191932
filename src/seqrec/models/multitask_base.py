"""What the multi-task models share: the input layer, the config fields, the output.

Every multi-task model is ``X(config, schema, tasks)``: a batch (dict of tensors: one column per
schema feature) -> :class:`MultiTaskOutput`, the logits of every task (B, n_tasks) in the order of
``tasks``. The input is every sparse feature's embedding and the dense features, concatenated
(B, F * D + dense): the MMoE paper's input for census (Ma et al. KDD 2018, sec. 6.3), and what
torch-rechub's models build (its ``EmbeddingLayer`` with ``squeeze_dim=True``). The losses live in
the trainer (:mod:`seqrec.train.multitask_trainer`): BCE per task, summed; ESMM says how its two
outputs are supervised with ``esmm_tasks``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.layers.embedding import FeatureEmbedding
from seqrec.layers.mlp import ACTIVATIONS, MLP
from seqrec.schema import Schema


@dataclass(frozen=True)
class MultiTaskConfig:
    embedding_dim: int = 4
    tower_hidden: tuple[int, ...] = (8,)  # each task's tower before its logit
    activation: str = "relu"
    dropout: float = 0.0
    init_std: float = 1e-4  # embedding rows ~ N(0, init_std) (torch-rechub's RandomNormal(0, 1e-4))
    # BatchNorm1d after every hidden Linear layer (torch-rechub's MLP has it; the papers do not).
    # In eval mode it uses the running statistics: a row's output never depends on its batch
    batch_norm: bool = False
    weight_decay: float = 0.0  # the optimiser's L2 on every parameter (torch-rechub's example: 1e-4)

    def __post_init__(self) -> None:
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {self.embedding_dim}")
        acts = [a for a in ACTIVATIONS if a not in ("sigmoid", "none")]
        if self.activation not in acts:
            raise ValueError(f"activation must be one of {acts}, got {self.activation!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class MultiTaskOutput:
    logits: torch.Tensor  # (B, n_tasks), the order of the model's ``tasks``


class MultiTaskInputs(nn.Module):
    """Sparse embeddings, mean-pooled behaviour histories (each ``sequence`` feature averaged over
    its real positions, DeepCTR's variable-length sparse feature) and dense features
    concatenated: batch -> (B, width)."""

    def __init__(self, schema: Schema, dim: int, init_std: float) -> None:
        super().__init__()
        self.schema = schema.with_dim(dim)
        self.emb = FeatureEmbedding(self.schema, init_std=init_std)
        self.sparse = [f.name for f in self.schema.of_kind("sparse")]
        self.sequence = [f.name for f in self.schema.of_kind("sequence")]
        self.dense = [f.name for f in self.schema.of_kind("dense")]
        self.width = (len(self.sparse) + len(self.sequence)) * dim + self.schema.dense_dim()

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts = [self.emb.lookup(batch, n) for n in self.sparse]
        parts += [self.emb.pooled(batch, n, "mean") for n in self.sequence]
        parts += [batch[n] for n in self.dense]
        return torch.cat(parts, 1)  # (B, width)


def mlp(in_dim: int, hidden: tuple[int, ...], cfg: MultiTaskConfig, out_dim: int = 0) -> MLP:
    """The configured MLP (activation, dropout, optional BatchNorm)."""
    return MLP(in_dim, hidden, cfg.activation, cfg.dropout, out_dim=out_dim, batch_norm=cfg.batch_norm)


def towers(in_dim: int, n: int, cfg: MultiTaskConfig) -> nn.ModuleList:
    """One MLP tower per task ending in a single logit."""
    return nn.ModuleList(mlp(in_dim, cfg.tower_hidden, cfg, out_dim=1) for _ in range(n))


class MultiTaskModel(nn.Module):
    """Base of the multi-task models: the config, the task names and the input layer."""

    def __init__(self, config: MultiTaskConfig, schema: Schema, tasks: tuple[str, ...]) -> None:
        super().__init__()
        self.config, self.tasks = config, tuple(tasks)
        self.inp = MultiTaskInputs(schema, config.embedding_dim, config.init_std)
