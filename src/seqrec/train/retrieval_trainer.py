"""Training loop of the retrieval models: an objective's batches and loss, early stopping on recall@20.

The objective (:mod:`seqrec.train.objectives`) supplies the examples and the loss; this loop
steps the optimiser (``train.optimizer``: sparse-aware, as for the CTR models), logs a row per
epoch, validates with full-ranking Recall@20 on the validation users when the task has them, keeps
the best weights and stops after ``train.patience`` epochs without improvement.
"""

from __future__ import annotations

import math
import time

import torch
from tqdm.auto import tqdm

from seqrec.errors import SeqrecError
from seqrec.train.ctr_trainer import build_torch_optimizer
from seqrec.train.logs import RunLog
from seqrec.train.session_trainer import TrainState, fit_epochs, lr_factor


class RetrievalTrainer:
    def __init__(self, model: torch.nn.Module, objective, cfg, validate_fn=None, log: RunLog | None = None) -> None:
        self.model, self.objective, self.cfg, self.log = model, objective, cfg, log
        self.validate_fn = validate_fn  # split -> metrics dict (the family's full-ranking evaluation)
        tc = cfg.train
        self.opt = build_torch_optimizer(tc.optimizer, model, tc.lr, tc.momentum)
        self.state = TrainState()
        self.best_state: dict | None = None

    def _epoch(self, epoch: int) -> tuple[float, int, float]:
        tc = self.cfg.train
        self.model.train()
        for g in self.opt.param_groups:
            g["lr"] = tc.lr * lr_factor(tc.lr_schedule, epoch, tc.epochs)
        bar = tqdm(total=self.objective.n_examples, desc=f"epoch {epoch + 1}/{tc.epochs}", unit="ex",
                   disable=not tc.progress, leave=False, mininterval=1.0)
        loss_sum, seen, t0 = 0.0, 0, time.perf_counter()
        for step, batch in enumerate(self.objective.batches(epoch), 1):
            loss = self.objective.loss(batch)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            lv = loss.item()
            if not math.isfinite(lv):
                raise SeqrecError(f"training diverged at epoch {epoch + 1}, step {step}: loss is {lv}; "
                                  "lower train.lr")
            b = self.objective.batch_size(batch)
            loss_sum += lv * b
            seen += b
            bar.update(b)
            if step % tc.log_every == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}",
                                ex_s=f"{seen / (time.perf_counter() - t0):,.0f}")
        bar.close()
        return loss_sum / max(seen, 1), seen, time.perf_counter() - t0

    def fit(self, valid=None, on_epoch_end=None) -> TrainState:
        def validate(split):
            m = self.validate_fn(split)
            self.model.train()
            return {"valid_recall@20": m["recall@20"], "valid_ndcg@20": m["ndcg@20"]}, m["recall@20"]

        return fit_epochs(self, valid if self.validate_fn is not None else None, validate, on_epoch_end)

    def training_state(self) -> dict:
        return {"optimizer": self.opt.state_dict(), "state": self.state.__dict__, "best_state": self.best_state}

    def load_training_state(self, blob: dict) -> None:
        self.opt.load_state_dict(blob["optimizer"])
        self.state = TrainState(**blob["state"])
        self.best_state = blob.get("best_state")
