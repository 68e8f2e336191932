"""Training objectives of the retrieval models: which examples a model learns from, and its loss.

An objective owns the training examples (built by :mod:`seqrec.data.retrieval_sampling` or its
own sampler) and the loss (:mod:`seqrec.losses.retrieval`); the model only computes vectors and
scores. :func:`objective_for` picks it by model name; the settings (number of negatives, logQ,
margin, ...) are fields of the model's config, documented there.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import torch

from seqrec.errors import ConfigError

# model name -> "module:Class" (imported on use, so one model's objective never loads another's)
OBJECTIVES: dict[str, str] = {
    "mf_bpr": "seqrec.train.objectives.pairs:BPRPairs",
    "gmf": "seqrec.train.objectives.ncf:PointwiseNCF",
    "ncf_mlp": "seqrec.train.objectives.ncf:PointwiseNCF",
    "neumf": "seqrec.train.objectives.ncf:PointwiseNCF",
    "youtube_dnn": "seqrec.train.objectives.next_item:SampledSoftmaxNextItem",
    "sasrec": "seqrec.train.objectives.sasrec:SASRecObjective",
    "sasrec-ce": "seqrec.train.objectives.sasrec:SASRecObjective",
    "mind": "seqrec.train.objectives.mind:MINDSampledSoftmax",
    "tdm": "seqrec.train.objectives.tdm:TDMLayerwise",
    "pinsage": "seqrec.train.objectives.pinsage:PinSageMaxMargin",
}


class Objective:
    """Examples + loss of one model for one task (subclasses set ``n_examples``)."""

    n_examples: int = 0
    # batch keys shared by every row (negatives drawn once per batch): never split across ranks
    shared_keys: tuple[str, ...] = ()

    def __init__(self, model: torch.nn.Module, task, cfg) -> None:
        self.model, self.task, self.cfg = model, task, cfg

    def batches(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        """The training batches of epoch ``epoch`` (seeded by it)."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def batch_size(batch: dict[str, torch.Tensor]) -> int:
        return len(next(iter(batch.values())))


def objective_for(model_name: str, model: torch.nn.Module, task, cfg) -> Objective:
    spec = OBJECTIVES.get(model_name)
    if spec is None:
        raise ConfigError(f"model {model_name!r} has no retrieval training objective")
    mod, cls = spec.split(":")
    return getattr(importlib.import_module(mod), cls)(model, task, cfg)
