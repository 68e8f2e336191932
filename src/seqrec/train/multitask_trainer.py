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
from seqrec.errors import DataValidationError
from seqrec.evaluate.classification import auc, gauc, logloss
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
    total = logits.new_zeros(())
    for k, t in enumerate(tasks):
        y = batch[f"label_{t}"]
        m = y >= 0  # -1: the row belongs to another task
        if bool(m.all()):
            total = total + F.binary_cross_entropy_with_logits(logits[:, k], y)
        elif bool(m.any()):
            total = total + F.binary_cross_entropy_with_logits(logits[:, k][m], y[m])
    return total


@torch.no_grad()
def predict(model: torch.nn.Module, cols: dict[str, np.ndarray], batch_size: int = 8192) -> np.ndarray:
    """(N, n_tasks) logits in order (eval mode)."""
    model.eval()
    return torch.cat([model(b).logits for b in batches(cols, batch_size)]).numpy().astype(np.float64)


def task_metrics(y: np.ndarray, logit: np.ndarray, users: np.ndarray | None = None) -> dict:
    """AUC, logloss (and GAUC over ``users``) of one task's rows (labels -1 are skipped)."""
    m = y >= 0
    y, logit = y[m], logit[m]
    out = {"auc": auc(y, logit), "logloss": logloss(y, 1 / (1 + np.exp(-logit))),
           "positives": int(y.sum()), "samples": len(y)}
    if users is not None:  # undefined where no user has both labels (one row per user and day)
        try:
            out["gauc"], out["gauc_users"] = gauc(users[m], y, logit)
        except DataValidationError:
            out["gauc"], out["gauc_users"] = None, 0
    return out


def evaluate_multitask(model: torch.nn.Module, cols: dict[str, np.ndarray], batch_size: int = 8192) -> dict:
    """Per task: AUC and logloss of its output over the task's rows, GAUC where rows have a
    ``user`` (ESMM: pCVR and pCTR, and pCTCVR against the joint label); ``mean_auc`` over the
    tasks; ``eval_seconds``. GAUC groups by ``user_key`` (raw user ids) when present."""
    t0 = time.perf_counter()
    logits = predict(model, cols, batch_size)
    users = cols.get("user_key", cols.get("user"))
    out: dict = {}
    for k, t in enumerate(model.tasks):
        out[t] = task_metrics(cols[f"label_{t}"], logits[:, k], users)
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
        self.keep_best_optimizer = True  # train_state.pt keeps the best epoch's Adam state (warm starts)
        # DDP: where a task labels only some rows (label -1 elsewhere), a batch may hold none of
        # its rows and its head gets no gradient that step; only then must DDP look for them
        self.find_unused = any(bool((train[f"label_{t}"] < 0).any()) for t in model.tasks)

    def fit(self, valid: dict[str, np.ndarray] | None = None, on_epoch_end=None) -> TrainState:
        def validate(v):
            m = evaluate_multitask(self.model, v, self.cfg.eval.batch_size)
            return {f"valid_auc_{t}": m[t]["auc"] for t in self.model.tasks}, m["mean_auc"]

        return self.fit_with(valid, validate, on_epoch_end)
