"""Training loop of the multi-task models: shuffled mini-batches, one BCE per task, early stop.

Loss per mini-batch = Σ_k BCE(logit_k, y_k) over the tasks (equal weights, as the MMoE and PLE
papers' census experiments). ESMM (``model.esmm_tasks``, tasks = (conversion, click)) is trained
over the entire space instead: BCE(pCTR, y_click) + BCE(pCTR · pCVR, y_click · y_conversion)
(Ma et al. SIGIR 2018, eq. 3), with log pCTCVR = log σ(a) + log σ(b) computed in log space.
Adam with ``model.config.weight_decay``. Validation after every epoch: the mean AUC over the
tasks decides early stopping (``train.patience``) and the best weights are restored.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from seqrec.config import RunConfig
from seqrec.errors import SeqrecError
from seqrec.evaluate.classification import auc, logloss
from seqrec.train.logs import RunLog
from seqrec.train.session_trainer import TrainState, fit_epochs, lr_factor


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


class MultiTaskTrainer:
    def __init__(self, model: torch.nn.Module, cfg: RunConfig, train: dict[str, np.ndarray],
                 log: RunLog | None = None) -> None:
        self.model, self.cfg, self.train_data, self.log = model, cfg, train, log
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr,
                                    weight_decay=float(getattr(model.config, "weight_decay", 0.0)))
        self.state = TrainState()
        self.best_state: dict | None = None

    def _epoch(self, epoch: int) -> tuple[float, int, float]:
        tc = self.cfg.train
        self.model.train()
        for g in self.opt.param_groups:
            g["lr"] = tc.lr * lr_factor(tc.lr_schedule, epoch, tc.epochs)
        n = len(next(iter(self.train_data.values())))
        bar = tqdm(total=n, desc=f"epoch {epoch + 1}/{tc.epochs}", unit="sample", disable=not tc.progress,
                   leave=False, mininterval=1.0)
        loss_sum, seen, t0 = 0.0, 0, time.perf_counter()
        for step, batch in enumerate(batches(self.train_data, tc.batch_size, shuffle=True, seed=tc.seed + epoch), 1):
            loss = multitask_loss(self.model, self.model(batch).logits, batch)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            lv, b = loss.item(), len(batch[f"label_{self.model.tasks[0]}"])
            if not math.isfinite(lv):
                raise SeqrecError(f"training diverged at epoch {epoch + 1}, step {step}: loss is {lv}; lower train.lr")
            loss_sum += lv * b
            seen += b
            bar.update(b)
        bar.close()
        return loss_sum / max(seen, 1), seen, time.perf_counter() - t0

    def fit(self, valid: dict[str, np.ndarray] | None = None, on_epoch_end=None) -> TrainState:
        def validate(v):
            m = evaluate_multitask(self.model, v, self.cfg.eval.batch_size)
            return {f"valid_auc_{t}": m[t]["auc"] for t in self.model.tasks}, m["mean_auc"]

        return fit_epochs(self, valid, validate, on_epoch_end)

    def training_state(self) -> dict:
        return {"optimizer": self.opt.state_dict(), "state": self.state.__dict__, "best_state": self.best_state}

    def load_training_state(self, blob: dict) -> None:
        self.opt.load_state_dict(blob["optimizer"])
        self.state = TrainState(**blob["state"])
        self.best_state = blob.get("best_state")
