"""Training loop for the CTR models: shuffled mini-batches, BCE on logits, aux losses, early stop.

Loss per mini-batch = mean binary cross-entropy of the click logits
  + ``aux_weight`` · DIEN's auxiliary loss (when the model returns one)
  + ``mba_reg`` · the mini-batch aware L2 of the embedding rows the batch uses (DIN eq. 4).
Each epoch ends with a validation pass (AUC) when validation data is given; with
``train.patience > 0`` training stops after that many epochs without a better AUC and the
best weights are restored. Progress bar with samples/s; CSV + TensorBoard rows per epoch.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from seqrec.config import RunConfig
from seqrec.data.samples import LabeledSamples, SampleBatch, sample_batches, to_tensors
from seqrec.errors import ConfigError, SeqrecError
from seqrec.evaluate.classification import classification_metrics
from seqrec.train.logs import RunLog
from seqrec.train.session_trainer import TrainState, fit_epochs, lr_factor


class _Optimizers:
    """A dense optimiser plus, for embedding tables with sparse gradients, its lazy twin
    (``SparseAdam`` for Adam: moments of the rows a batch uses only; Adagrad, SGD and
    AdagradM take sparse gradients themselves). Behaves like one optimiser for the trainer."""

    def __init__(self, opts: list[torch.optim.Optimizer]) -> None:
        self.opts = opts
        self.param_groups = [g for o in opts for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.opts:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.opts:
            o.step()

    def state_dict(self) -> dict:
        return {"opts": [o.state_dict() for o in self.opts]}

    def load_state_dict(self, sd: dict) -> None:
        for o, s in zip(self.opts, sd["opts"], strict=True):
            o.load_state_dict(s)


def build_torch_optimizer(name: str, model: torch.nn.Module, lr: float, momentum: float = 0.0) -> _Optimizers:
    """``train.optimizer`` for the CTR and purchase models, the same names as the session models':
    ``adagrad`` torch's Adagrad, ``adagrad-momentum`` GRU4Rec's Adagrad with momentum
    (:class:`seqrec.train.optim.AdagradM`; embedding rows a batch does not use keep their
    velocity and do not move), ``adam`` (dense Adam, ``SparseAdam`` for sparse embeddings),
    ``sgd``. ``momentum`` is used by ``adagrad-momentum`` only."""
    if momentum and name != "adagrad-momentum":
        raise ConfigError(f"train.momentum = {momentum} applies to optimizer 'adagrad-momentum' only, "
                          f"not {name!r}")
    sparse = [m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.sparse]
    ids = {id(p) for p in sparse}
    dense = [p for p in model.parameters() if id(p) not in ids]
    if name == "adam":
        opts = ([torch.optim.Adam(dense, lr=lr)] if dense else []) + \
            ([torch.optim.SparseAdam(sparse, lr=lr)] if sparse else [])  # (a model may be all sparse tables)
    elif name == "adagrad":
        opts = [torch.optim.Adagrad(dense + sparse, lr=lr)]
    elif name == "adagrad-momentum":
        from seqrec.train.optim import AdagradM

        opts = [AdagradM(dense + sparse, lr=lr, momentum=momentum)]
    elif name == "sgd":
        opts = [torch.optim.SGD(dense + sparse, lr=lr)]
    else:
        raise ConfigError(f"unknown optimizer {name!r} for CTR models; choose adagrad, adagrad-momentum, "
                          "adam or sgd")
    return _Optimizers(opts)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, data: LabeledSamples, batch_size: int = 4096) -> np.ndarray:
    """Click logits for every sample, in order."""
    model.eval()
    out = [model(b).logits for b in sample_batches(data, batch_size)]
    return torch.cat(out).numpy().astype(np.float64)


def evaluate_ctr(model: torch.nn.Module, data: LabeledSamples, batch_size: int = 4096) -> dict:
    """AUC, GAUC (weighted and not), logloss on ``data``; ``predict_seconds`` (the forward
    passes, batch assembly included) and ``eval_seconds`` (with the metrics)."""
    t0 = time.perf_counter()
    logits = predict_logits(model, data, batch_size)
    t1 = time.perf_counter()
    m = classification_metrics(data.labels(), logits, data.users(), probs=False)
    m["predict_seconds"] = t1 - t0
    m["eval_seconds"] = time.perf_counter() - t0
    return m


class CTRTrainer:
    def __init__(self, model: torch.nn.Module, cfg: RunConfig, train: LabeledSamples, log: RunLog | None = None):
        self.model, self.cfg, self.train_data, self.log = model, cfg, train, log
        tc = cfg.train
        self.opt = build_torch_optimizer(tc.optimizer, model, tc.lr, tc.momentum)
        self.mba = float(getattr(model.config, "mba_reg", 0.0))
        self.aux_weight = float(getattr(model.config, "aux_weight", 0.0))
        if self.mba > 0:
            model.inp.emb.fit_counts(train.columns)
        self.state = TrainState()
        self.best_state: dict | None = None

    def loss(self, batch: SampleBatch) -> torch.Tensor:
        """The training objective of one batch: BCE on the logits (+ aux_weight · DIEN's auxiliary
        loss, + the mini-batch aware L2)."""
        out = self.model(batch)
        loss = F.binary_cross_entropy_with_logits(out.logits, batch.label)
        if out.aux_loss is not None and self.aux_weight > 0:
            loss = loss + self.aux_weight * out.aux_loss
        if self.mba > 0:
            loss = loss + self.mba * self.model.inp.emb.minibatch_l2(batch)
        return loss

    def _epoch(self, epoch: int) -> tuple[float, int, float]:
        tc = self.cfg.train
        self.model.train()
        for g in self.opt.param_groups:
            g["lr"] = tc.lr * lr_factor(tc.lr_schedule, epoch, tc.epochs)
        n = len(self.train_data)
        bar = tqdm(total=n, desc=f"epoch {epoch + 1}/{tc.epochs}", unit="sample",
                   disable=not tc.progress, leave=False, mininterval=1.0)
        loss_sum, seen, t0 = 0.0, 0, time.perf_counter()
        for step, batch in enumerate(sample_batches(self.train_data, tc.batch_size, shuffle=True,
                                                 seed=tc.seed + epoch), 1):
            loss = self.loss(batch)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            b = batch.size
            lv = loss.item()
            if not math.isfinite(lv):
                raise SeqrecError(f"training diverged at epoch {epoch + 1}, step {step}: loss is {lv}; "
                                  "lower train.lr")
            loss_sum += lv * b
            seen += b
            bar.update(b)
            if step % tc.log_every == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}",
                                samples_s=f"{seen / (time.perf_counter() - t0):,.0f}")
        bar.close()
        return loss_sum / max(seen, 1), seen, time.perf_counter() - t0

    def fit(self, valid: LabeledSamples | None = None, on_epoch_end=None) -> TrainState:
        def validate(v):
            auc = evaluate_ctr(self.model, v, self.cfg.eval.batch_size)["auc"]
            return {"valid_auc": auc}, auc

        return fit_epochs(self, valid, validate, on_epoch_end)

    def training_state(self) -> dict:
        return {"optimizer": self.opt.state_dict(), "state": self.state.__dict__,
                "best_state": self.best_state}

    def load_training_state(self, blob: dict) -> None:
        self.opt.load_state_dict(blob["optimizer"])
        self.state = TrainState(**blob["state"])
        self.best_state = blob.get("best_state")


__all__ = ["CTRTrainer", "evaluate_ctr", "predict_logits", "to_tensors"]
