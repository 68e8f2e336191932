"""The epoch loop of the models whose examples and loss come from an *objective*.

An objective supplies ``n_examples``, ``batches(epoch)``, ``loss(batch)`` and ``batch_size(batch)``
(the retrieval objectives of :mod:`seqrec.train.objectives`, the multi-task objective of
:mod:`seqrec.train.multitask_trainer`). This loop steps the optimiser, sets the learning rate of
``train.lr_schedule``, shows progress, stops on a non-finite loss, and checkpoints through
:func:`seqrec.train.checkpoint.fit_resumable` (``training_state`` / ``load_training_state``).
Subclasses say how to validate (:meth:`fit`). Under torchrun every rank builds the same seeded
global batch and trains on its slice of the rows (:func:`seqrec.distributed.sharded`; an
objective's ``shared_keys`` name tensors shared by the whole batch, never split); the
``training_state`` keeps the objective's sampler stream (``sampler.rng``), the same on every
rank, so a resumed run draws the negatives the uninterrupted one would have, at any world size.
"""

from __future__ import annotations

import torch

from seqrec import distributed as D
from seqrec.train.logs import RunLog
from seqrec.train.session_trainer import TrainState, fit_epochs, lr_factor
from seqrec.train.steps import run_epoch


class ObjectiveTrainer:
    def __init__(self, model: torch.nn.Module, objective, cfg, opt, log: RunLog | None = None) -> None:
        self.model, self.objective, self.cfg, self.opt, self.log = model, objective, cfg, opt, log
        self.state = TrainState()
        self.best_state: dict | None = None
        self.find_unused = False  # DDP: parameters some batches never reach (multi-task heads)

    def _epoch(self, epoch: int) -> tuple[float, int, float]:
        tc = self.cfg.train
        self.model.train()
        for g in self.opt.param_groups:
            g["lr"] = tc.lr * lr_factor(tc.lr_schedule, epoch, tc.epochs)
        obj = self.objective
        batches = D.sharded(obj.batches(epoch), obj.batch_size, tuple(getattr(obj, "shared_keys", ())))
        return run_epoch(self, epoch, batches, obj.batch_size, total=obj.n_examples, unit="ex",
                         find_unused=self.find_unused)

    def loss(self, batch) -> torch.Tensor:
        """The objective's loss of ``batch`` (what the step loop's DDP wrapper computes)."""
        return self.objective.loss(batch)

    def fit_with(self, valid, validate, on_epoch_end=None) -> TrainState:
        """``validate(valid)`` -> (log columns, score; higher is better); see :func:`fit_epochs`."""
        return fit_epochs(self, valid, validate, on_epoch_end)

    def training_state(self) -> dict:
        out = {"optimizer": self.opt.state_dict(), "state": self.state.__dict__, "best_state": self.best_state}
        if getattr(self, "best_optimizer", None) is not None:  # the optimiser state of the best epoch
            out["best_optimizer"] = self.best_optimizer
        rng = _sampler_rng(self.objective)
        if rng is not None:
            out["sampler_rng"] = rng.bit_generator.state
        return out

    def load_training_state(self, blob: dict) -> None:
        self.opt.load_state_dict(blob["optimizer"])
        self.state = TrainState(**blob["state"])
        self.best_state = blob.get("best_state")
        self.best_optimizer = blob.get("best_optimizer")
        rng = _sampler_rng(self.objective)
        if rng is not None and blob.get("sampler_rng") is not None:
            rng.bit_generator.state = blob["sampler_rng"]


def _sampler_rng(objective):
    """The numpy generator of an objective's negative sampler (drawn from inside ``loss``), if any."""
    return getattr(getattr(objective, "sampler", None), "rng", None)
