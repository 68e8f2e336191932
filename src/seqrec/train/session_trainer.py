"""Training loop for GRU4Rec: session-parallel steps, shared negatives, row-wise updates.

One step (Hidasi & Karatzoglou CIKM 2018):
  1. lanes that start a new session get a zero hidden state;
  2. the output items are the B targets plus ``n_sample`` items drawn once for
     the whole batch from supp^alpha (pre-drawn cache);
  3. the (B, B + n_sample) scores go to the sampled loss, whose gradient is that
     of the lanes' sum divided by ``train.batch_size`` (also when fewer lanes are
     left at the end of an epoch, as in the reference implementation: those
     steps move the weights in proportion to their lanes), and the optimiser
     updates exactly the item rows the step used (biases: the scored rows only)
     plus the dense GRU weights:
     by default with :class:`~seqrec.kernels.gru4rec_step.FusedGRU4RecStep`
     (hand-written backward), with ``train.fused = false`` or for HRNN through
     autograd on the gathered distinct rows (``GatheredRows``);
  4. the hidden state (after hidden dropout, as the reference carries it) goes
     to the next step without backpropagating into earlier steps.
Epochs end with an optional validation pass (full-catalogue Recall/MRR@20)
driving early stopping; each epoch ends with an atomic checkpoint for resume.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from seqrec.config import RunConfig
from seqrec.data.events import SessionArrays
from seqrec.data.sampling import PopularitySampler
from seqrec.data.session_parallel import session_parallel_batches
from seqrec.evaluate.ranking import evaluate_sessions
from seqrec.kernels.gru4rec_step import FusedGRU4RecStep
from seqrec.losses.sampled import sampled_loss
from seqrec.models.gru4rec import GRU4Rec, GRU4RecScorer
from seqrec.train.logs import RunLog
from seqrec.train.optim import build_optimizer
from seqrec.train.rows import GatheredRows


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Learning-rate multiplier for ``epoch`` (0-based): constant, linear or cosine decay."""
    if schedule == "constant":
        return 1.0
    frac = epoch / max(epochs, 1)
    if schedule == "linear":
        return 1.0 - frac
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * frac))
    from seqrec.errors import ConfigError

    raise ConfigError(f"unknown lr_schedule {schedule!r}; choose constant, linear or cosine")


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    best_score: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list = field(default_factory=list)
    train_seconds: float = 0.0
    train_events: int = 0
    steps: int = 0  # optimiser steps so far (``train.max_steps``; the CTR and objective trainers count them)

    def observe(self, score: float, epoch: int) -> bool:
        """Record epoch ``epoch``'s validation score; True when it is the best so far."""
        if score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        self.bad_epochs += 1
        return False


def fit_epochs(trainer, valid, validate, on_epoch_end=None) -> TrainState:
    """The epoch loop both trainers share: ``trainer._epoch(e)`` -> (loss, events, seconds);
    ``validate(valid)`` -> (log columns, score, higher is better). Logs a row per epoch,
    keeps the best weights, calls ``on_epoch_end(trainer)`` (checkpointing), stops after
    ``train.patience`` epochs without a better score and then restores the best weights.
    Under torchrun (:mod:`seqrec.distributed`) rank 0 validates and broadcasts the result, so
    every rank keeps the same best weights and stops at the same epoch; ``train.max_steps``
    ends the loop after the epoch in which that many steps were taken."""
    from seqrec.distributed import on_main

    tc, state = trainer.cfg.train, trainer.state
    while state.epoch < tc.epochs:
        e = state.epoch
        loss, n, secs = trainer._epoch(e)
        state.train_seconds += secs
        state.train_events += n
        row = {"kind": "epoch", "epoch": e + 1, "events": n, "loss": loss,
               "events_per_s": n / secs, "elapsed_s": secs}
        if valid is not None:
            cols, score = on_main(lambda: validate(valid))
            row.update(cols)
            if state.observe(score, e + 1):
                trainer.best_state = copy.deepcopy(trainer.model.state_dict())
                if getattr(trainer, "keep_best_optimizer", False):  # what a warm start continues from
                    trainer.best_optimizer = copy.deepcopy(trainer.opt.state_dict())
        state.history.append(row)
        if trainer.log is not None:
            trainer.log.write(**row)
        state.epoch = e + 1
        if on_epoch_end is not None:
            on_epoch_end(trainer)
        if valid is not None and tc.patience > 0 and state.bad_epochs >= tc.patience:
            break
        if getattr(tc, "max_steps", 0) and state.steps >= tc.max_steps:  # (a partial config: no limit)
            break
    if trainer.best_state is not None and tc.patience > 0:
        trainer.model.load_state_dict(trainer.best_state)
    return state


class GRU4RecTrainer:
    """Fits a :class:`GRU4Rec` on session arrays (see module docstring)."""

    def __init__(self, model: GRU4Rec, cfg: RunConfig, train: SessionArrays, log: RunLog | None = None):
        self.model = model
        self.cfg = cfg
        self.train_data = train
        self.log = log
        self.net = model  # the GRU4Rec whose item tables are trained row-wise
        self.counts = np.bincount(train.items, minlength=model.n_items).astype(np.float64)
        self.counts[:2] = 0  # never sample padding / OOV
        # logQ correction (cross-entropy): log-probability that an item fills a column —
        # in-batch targets follow the data distribution (∝ count), the shared extra
        # samples follow the sampling distribution (∝ count^alpha).
        self.log_q_data: torch.Tensor | None = None
        self.log_q_sample: torch.Tensor | None = None
        if cfg.loss is None:
            from seqrec.errors import ConfigError

            raise ConfigError("session models need the run config's [loss] settings (load_run_config sets them)")
        lc = self.lc = cfg.loss  # the sampled loss and its negatives
        if lc.name == "cross-entropy" and lc.logq > 0:
            with np.errstate(divide="ignore"):
                p_data = self.counts / self.counts.sum()
                w = np.where(self.counts > 0, self.counts**lc.sample_alpha, 0.0)
                p_sample = w / w.sum()
            self.log_q_data = torch.from_numpy(np.log(np.maximum(p_data, 1e-12))).float()  # (N,)
            self.log_q_sample = torch.from_numpy(np.log(np.maximum(p_sample, 1e-12))).float()
        tc = cfg.train
        self.opt = build_optimizer(tc.optimizer, model.parameters(), tc.lr, tc.momentum)
        # GRU4Rec trains with the fused step; HRNN (a user GRU feeds the session start) and
        # ``train.fused = false`` go through autograd on gathered rows
        self.fused = (FusedGRU4RecStep(model.fast_path_params(), self.opt, loss=lc.name, bpreg=lc.bpreg,
                                       logq=lc.logq, bf16=tc.matmul_dtype == "bfloat16",
                                       batch_size=tc.batch_size)
                      if tc.fused and isinstance(model, GRU4Rec) else None)
        if self.fused is None and tc.matmul_dtype != "float32":
            from seqrec.errors import ConfigError

            raise ConfigError(f"train.matmul_dtype = {tc.matmul_dtype!r} applies to GRU4Rec's fused step only; "
                              "HRNN and train.fused = false train in float32")
        self.state = TrainState()
        self.best_state: dict | None = None

    # -- one epoch ------------------------------------------------------------------
    def _epoch(self, epoch: int) -> tuple[float, int, float]:
        tc = self.cfg.train
        self.model.train()
        sampler, factor = self._begin_epoch(epoch)
        lengths = self.train_data.lengths
        n_pred = int((lengths[lengths >= 2] - 1).sum())
        bar = tqdm(total=n_pred, desc=f"epoch {epoch + 1}/{tc.epochs}", unit="ev",
                   disable=not tc.progress, leave=False, mininterval=1.0)
        loss_sum, n_ev = 0.0, 0
        t0 = time.perf_counter()
        for steps, (lv, B) in enumerate(self._run_steps(epoch, sampler), 1):
            if not math.isfinite(lv):
                from seqrec.errors import SeqrecError

                raise SeqrecError(
                    f"training diverged at epoch {epoch + 1}, step {steps}: loss is {lv}; "
                    "lower train.lr or loss.bpreg"
                )
            loss_sum += lv * B
            n_ev += B
            bar.update(B)
            if steps % tc.log_every == 0:
                now = time.perf_counter()
                eps = n_ev / (now - t0)
                bar.set_postfix(loss=f"{loss_sum / n_ev:.4f}", ev_s=f"{eps:,.0f}")
                if self.log is not None:
                    self.log.write(kind="step", epoch=epoch + 1, step=steps, events=n_ev,
                                   loss=loss_sum / n_ev, events_per_s=eps, lr=tc.lr * factor,
                                   elapsed_s=now - t0)
        bar.close()
        seconds = time.perf_counter() - t0
        return loss_sum / max(n_ev, 1), n_ev, seconds

    def _run_steps(self, epoch: int, sampler):
        """Session-parallel steps over the training sessions; yields (loss, lanes) per step."""
        tc, data = self.cfg.train, self.train_data
        order = np.arange(data.n_sessions)
        if tc.shuffle_sessions:
            np.random.default_rng(tc.seed + epoch).shuffle(order)
        hidden = self.net.init_hidden(min(tc.batch_size, data.n_sessions))
        for st in session_parallel_batches(data.items, data.offsets, tc.batch_size, order):
            if st.keep is not None:
                hidden = [h.index_select(0, st.keep) for h in hidden]
            reset = st.reset.numpy()
            if reset.any():  # new sessions start from a zero state (in place: hidden is ours)
                for h in hidden:
                    h.numpy()[reset] = 0.0
            lv, hidden = self._step(sampler, st.inputs, st.targets, hidden)
            yield lv, len(st.inputs)

    def _begin_epoch(self, epoch: int):
        """Seed RNGs for the epoch (reproducible also on resume), set the lr; -> (sampler, lr factor)."""
        lc, tc = self.lc, self.cfg.train
        torch.manual_seed(tc.seed + epoch)
        self.net.dropout.reset()
        # draw at most one epoch's worth of samples at a time (small data needs far fewer
        # than the default 10M-item cache)
        steps = int((self.train_data.lengths.clip(min=1) - 1).sum()) // max(tc.batch_size, 1) + 1
        cache = min(lc.sample_cache, max(steps, 1) * max(lc.n_sample, 1))
        sampler = PopularitySampler(self.counts, lc.sample_alpha, lc.n_sample, cache, seed=tc.seed + epoch)
        factor = lr_factor(tc.lr_schedule, epoch, tc.epochs)
        for g in self.opt.param_groups:
            g["lr"] = tc.lr * factor
        return sampler, factor

    def _step(self, sampler, inputs, targets, hidden, extra=None):
        """One optimisation step; returns (loss value, detached new hidden)."""
        net, lc = self.net, self.lc
        B = len(inputs)
        samples = sampler.next()
        log_q = None
        if self.log_q_data is not None:
            log_q = torch.cat([self.log_q_data.index_select(0, targets),
                               self.log_q_sample.index_select(0, samples)])  # (M,)
        if self.fused is not None and extra is None:
            return self.fused(inputs, targets, samples, hidden, log_q)
        out_items = torch.cat([targets, samples])  # (M,) targets, then shared samples
        tables = [net.item_out, net.item_bias]
        if net.item_in is None:  # constrained: inputs and outputs share the table
            rows = GatheredRows(tables, torch.cat([inputs, out_items]))
            x = rows.leaves[0].index_select(0, rows.inverse[:B])  # (B, H)
            cols = rows.inverse[B:]
            in_rows = None
        else:
            rows = GatheredRows(tables, out_items)
            in_rows = GatheredRows([net.item_in], inputs)
            x = in_rows.leaves[0].index_select(0, in_rows.inverse)  # (B, D)
            cols = rows.inverse
        scores, hidden = net(x, hidden, rows.leaves[0], rows.leaves[1], cols, extra)  # (B, M)
        loss = sampled_loss(lc.name, scores, bpreg=lc.bpreg, logq=lc.logq, log_q=log_q)
        self.opt.zero_grad(set_to_none=True)
        # the gradient of the lanes' sum over the configured batch size (see loss_and_grad)
        (loss * (B / self.cfg.train.batch_size)).backward()
        self.opt.step()
        # constrained: the bias has no term for an input item, only scored rows update their bias
        rows.apply(self.opt, only={1: slice(B, None)} if net.item_in is None else None)
        if in_rows is not None:
            in_rows.apply(self.opt)
        return loss.item(), [h.detach() for h in hidden]

    # -- full fit -----------------------------------------------------------------------
    def fit(self, valid: SessionArrays | None = None, on_epoch_end=None) -> TrainState:
        """Train for ``train.epochs`` (from ``state.epoch`` when resuming).

        With ``valid`` and ``train.patience > 0`` stops after ``patience`` epochs
        without a better valid Recall@20 and restores the best weights.
        ``on_epoch_end(trainer)`` is called after each epoch (checkpointing).
        """
        def validate(v):
            m = self._validate(v)
            self.model.train()
            return {"valid_recall@20": m["recall@20"], "valid_mrr@20": m["mrr@20"]}, m["recall@20"]

        return fit_epochs(self, valid, validate, on_epoch_end)

    def _validate(self, valid: SessionArrays) -> dict:
        return evaluate_sessions(GRU4RecScorer(self.model), valid, ks=(20,),
                                 batch_size=self.cfg.eval.batch_size)

    # -- resume support -------------------------------------------------------------------
    def training_state(self) -> dict:
        return {"optimizer": self.opt.state_dict(), "state": self.state.__dict__,
                "best_state": self.best_state}

    def load_training_state(self, blob: dict) -> None:
        self.opt.load_state_dict(blob["optimizer"])
        self.state = TrainState(**blob["state"])
        self.best_state = blob.get("best_state")
