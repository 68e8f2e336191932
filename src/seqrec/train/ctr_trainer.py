"""Training loop for the CTR models: shuffled mini-batches, BCE on logits, aux losses, early stop.

Loss per mini-batch = mean binary cross-entropy of the click logits
  + ``aux_weight`` · DIEN's auxiliary loss (when the model returns one)
  + ``mba_reg`` · the mini-batch aware L2 of the embedding rows the batch uses (DIN eq. 4).
Each epoch ends with a validation pass (AUC) when validation data is given; with
``train.patience > 0`` training stops after that many epochs without a better AUC and the
best weights are restored. Progress bar with samples/s; CSV + TensorBoard rows per epoch.
Under torchrun each rank trains on its slice of every global batch (:mod:`seqrec.train.steps`).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from seqrec import distributed as D
from seqrec.config import RunConfig
from seqrec.data.samples import LabeledSamples, SampleBatch, sample_batches, to_tensors
from seqrec.errors import ConfigError
from seqrec.evaluate.classification import classification_metrics
from seqrec.train.logs import RunLog
from seqrec.train.session_trainer import TrainState, fit_epochs, lr_factor
from seqrec.train.steps import run_epoch


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


def _rows(batch: SampleBatch) -> int:
    return batch.size


def _length(data) -> int:
    try:
        return len(data)
    except TypeError:  # a stream that does not know its length
        return 0


def local_sample_batches(data: LabeledSamples, batch_size: int, *, seed: int):
    """``(this rank's rows, global rows)`` of the shuffled global batches of ``data``: the
    permutation of :func:`sample_batches` (seed ``seed``), each global batch cut into the ranks'
    contiguous slices before its rows are gathered (for one process: the whole batch). A last
    batch with fewer rows than ranks is left out by every rank."""
    ctx = D.context()
    n = len(data)
    order = np.random.default_rng(seed).permutation(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        if len(idx) < ctx.world:
            continue
        lo, hi = D.shard_range(len(idx))
        yield SampleBatch.of(data.schema, {k: v[idx[lo:hi]] for k, v in data.columns.items()}), len(idx)


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
        data = self.train_data
        if getattr(data, "streamed", False):  # prepared Parquet shards: each rank reads its own
            ctx = D.context()
            batches = D.local_batches(data.batches(max(tc.batch_size // ctx.world, 1), shuffle=True,
                                                   seed=tc.seed + epoch, rank=ctx.rank, world=ctx.world),
                                      _rows)
        else:
            batches = local_sample_batches(data, tc.batch_size, seed=tc.seed + epoch)
        return run_epoch(self, epoch, batches, _rows, total=_length(data), unit="sample")

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
