"""Training loop of the multi-task models: shuffled mini-batches, one BCE per task, early stop.

Loss per mini-batch = Σ_k BCE(logit_k, y_k) over the tasks (equal weights, as the MMoE and PLE
papers' census experiments). ESMM (``model.esmm_tasks``, tasks = (conversion, click)) is trained
over the entire space instead: BCE(pCTR, y_click) + BCE(pCTR · pCVR, y_click · y_conversion)
(Ma et al. SIGIR 2018, eq. 3), with log pCTCVR = log σ(a) + log σ(b) computed in log space.
Adam with ``model.config.weight_decay``. Validation after every epoch: the mean AUC over the
tasks decides early stopping (``train.patience``) and the best weights are restored.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from seqrec.config import RunConfig
from seqrec.evaluate.classification import auc, logloss
from seqrec.train.logs import RunLog
from seqrec.train.objective_trainer import ObjectiveTrainer
from seqrec.train.session_trainer import TrainState


def batches(cols: dict[str, np.ndarray], batch_size: int, *, shuffle: bool = False, seed: int = 0):
    """Mini-batches of tensors (every column, in order or a seeded permutation)."""
    n = len(next(iter(cols.values())))
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size] if order is not None else slice(start, start + batch_size)
        yield {k: torch.from_numpy(np.ascontiguousarray(v[idx])) for k, v in cols.items()}


def multitask_loss(model: torch.nn.Module, logits: torch.Tensor, batch: dict) -> torch.Tensor:
    tasks = model.tasks
    if getattr(model, "esmm_tasks", False):
        cvr, ctr = logits[:, 0], logits[:, 1]
        y_conv, y_click = batch[f"label_{tasks[0]}"], batch[f"label_{tasks[1]}"]
        log_p = F.logsigmoid(ctr) + F.logsigmoid(cvr)  # log pCTCVR
        log_not = torch.log1p(-log_p.exp().clamp(max=1 - 1e-7))
        y = y_click * y_conv
        ctcvr = -(y * log_p + (1 - y) * log_not).mean()
        return F.binary_cross_entropy_with_logits(ctr, y_click) + ctcvr
    return sum(F.binary_cross_entropy_with_logits(logits[:, k], batch[f"label_{t}"]) for k, t in enumerate(tasks))


@torch.no_grad()
def predict(model: torch.nn.Module, cols: dict[str, np.ndarray], batch_size: int = 8192) -> np.ndarray:
    """(N, n_tasks) logits in order (eval mode)."""
    model.eval()
    return torch.cat([model(b).logits for b in batches(cols, batch_size)]).numpy().astype(np.float64)


def evaluate_multitask(model: torch.nn.Module, cols: dict[str, np.ndarray], batch_size: int = 8192) -> dict:
    """Per task: AUC and logloss of its output (ESMM: pCVR and pCTR, and pCTCVR against the joint
    label); ``mean_auc`` over the tasks; ``eval_seconds``."""
    t0 = time.perf_counter()
    logits = predict(model, cols, batch_size)
    out: dict = {}
    for k, t in enumerate(model.tasks):
        y = cols[f"label_{t}"]
        out[t] = {"auc": auc(y, logits[:, k]), "logloss": logloss(y, 1 / (1 + np.exp(-logits[:, k]))),
                  "positives": int(y.sum()), "samples": len(y)}
    if getattr(model, "esmm_tasks", False):
        p = 1 / (1 + np.exp(-logits[:, 0])) / (1 + np.exp(-logits[:, 1]))
        y = cols[f"label_{model.tasks[0]}"] * cols[f"label_{model.tasks[1]}"]
        out["ctcvr"] = {"auc": auc(y, p), "logloss": logloss(y, p), "positives": int(y.sum()), "samples": len(y)}
    out["mean_auc"] = float(np.mean([out[t]["auc"] for t in model.tasks]))
    out["eval_seconds"] = time.perf_counter() - t0
    return out


class MultiTaskObjective:
    """The examples (shuffled rows, a new permutation per epoch) and the loss of a multi-task model."""

    def __init__(self, model: torch.nn.Module, train: dict[str, np.ndarray], cfg: RunConfig) -> None:
        self.model, self.train, self.cfg = model, train, cfg
        self.n_examples = len(next(iter(train.values())))

    def batches(self, epoch: int):
        tc = self.cfg.train
        return batches(self.train, tc.batch_size, shuffle=True, seed=tc.seed + epoch)

    def loss(self, batch: dict) -> torch.Tensor:
        return multitask_loss(self.model, self.model(batch).logits, batch)

    def batch_size(self, batch: dict) -> int:
        return len(batch[f"label_{self.model.tasks[0]}"])


class MultiTaskTrainer(ObjectiveTrainer):
    """Adam with ``model.config.weight_decay``; validation's mean AUC over the tasks decides early
    stopping and the best weights are restored."""

    def __init__(self, model: torch.nn.Module, cfg: RunConfig, train: dict[str, np.ndarray],
                 log: RunLog | None = None) -> None:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr,
                               weight_decay=float(getattr(model.config, "weight_decay", 0.0)))
        super().__init__(model, MultiTaskObjective(model, train, cfg), cfg, opt, log)

    def fit(self, valid: dict[str, np.ndarray] | None = None, on_epoch_end=None) -> TrainState:
        def validate(v):
            m = evaluate_multitask(self.model, v, self.cfg.eval.batch_size)
            return {f"valid_auc_{t}": m[t]["auc"] for t in self.model.tasks}, m["mean_auc"]

        return self.fit_with(valid, validate, on_epoch_end)
