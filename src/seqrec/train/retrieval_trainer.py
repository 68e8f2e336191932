"""Training loop of the retrieval models: an objective's batches and loss, early stopping on recall@20.

The objective (:mod:`seqrec.train.objectives`) supplies the examples and the loss; the loop
(:class:`seqrec.train.objective_trainer.ObjectiveTrainer`) steps the optimiser
(``train.optimizer``: sparse-aware, as for the CTR models) and logs a row per epoch; this trainer
validates with full-ranking Recall@20 on the validation users when the task has them, keeps the
best weights and stops after ``train.patience`` epochs without improvement.
"""

from __future__ import annotations

import torch

from seqrec.train.ctr_trainer import build_torch_optimizer
from seqrec.train.logs import RunLog
from seqrec.train.objective_trainer import ObjectiveTrainer
from seqrec.train.session_trainer import TrainState


class RetrievalTrainer(ObjectiveTrainer):
    def __init__(self, model: torch.nn.Module, objective, cfg, validate_fn=None, log: RunLog | None = None) -> None:
        tc = cfg.train
        super().__init__(model, objective, cfg, build_torch_optimizer(tc.optimizer, model, tc.lr, tc.momentum), log)
        self.validate_fn = validate_fn  # split -> metrics dict (the family's full-ranking evaluation)

    def fit(self, valid=None, on_epoch_end=None) -> TrainState:
        def validate(split):
            m = self.validate_fn(split)
            self.model.train()
            return {"valid_recall@20": m["recall@20"], "valid_ndcg@20": m["ndcg@20"]}, m["recall@20"]

        return self.fit_with(valid if self.validate_fn is not None else None, validate, on_epoch_end)
