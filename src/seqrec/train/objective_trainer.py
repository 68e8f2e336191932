"""The epoch loop of the models whose examples and loss come from an *objective*.

An objective supplies ``n_examples``, ``batches(epoch)``, ``loss(batch)`` and ``batch_size(batch)``
(the retrieval objectives of :mod:`seqrec.train.objectives`, the multi-task objective of
:mod:`seqrec.train.multitask_trainer`). This loop steps the optimiser, sets the learning rate of
``train.lr_schedule``, shows progress, stops on a non-finite loss, and checkpoints through
:func:`seqrec.train.checkpoint.fit_resumable` (``training_state`` / ``load_training_state``).
Subclasses say how to validate (:meth:`fit`).
"""

from __future__ import annotations

import math
import time

import torch
from tqdm.auto import tqdm

from seqrec.errors import SeqrecError
from seqrec.train.logs import RunLog
from seqrec.train.session_trainer import TrainState, fit_epochs, lr_factor


class ObjectiveTrainer:
    def __init__(self, model: torch.nn.Module, objective, cfg, opt, log: RunLog | None = None) -> None:
        self.model, self.objective, self.cfg, self.opt, self.log = model, objective, cfg, opt, log
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

    def fit_with(self, valid, validate, on_epoch_end=None) -> TrainState:
        """``validate(valid)`` -> (log columns, score; higher is better); see :func:`fit_epochs`."""
        return fit_epochs(self, valid, validate, on_epoch_end)

    def training_state(self) -> dict:
        out = {"optimizer": self.opt.state_dict(), "state": self.state.__dict__, "best_state": self.best_state}
        if getattr(self, "best_optimizer", None) is not None:  # the optimiser state of the best epoch
            out["best_optimizer"] = self.best_optimizer
        return out

    def load_training_state(self, blob: dict) -> None:
        self.opt.load_state_dict(blob["optimizer"])
        self.state = TrainState(**blob["state"])
        self.best_state = blob.get("best_state")
        self.best_optimizer = blob.get("best_optimizer")
