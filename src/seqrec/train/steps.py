"""The step loop of one epoch, shared by the CTR trainer and the objective trainers (retrieval,
multi-task), for one process or N torchrun ranks (:mod:`seqrec.distributed`).

Per step: the loss of this rank's rows is computed through the replicated loss module
(:class:`LossModule` in :class:`seqrec.distributed.Replicated`: DDP for the dense parameters,
an all-gather for the sparse tables; the plain module for one process), scaled by
``local size * world / global size`` so the all-reduced gradient is that of the global
batch's mean loss, the optimiser steps, and the step's global loss (all-reduced
``loss x size``, ``size``) is what the progress bar, the divergence check, ``steps.csv``
(``train.step_log``) and the epoch's mean see. ``train.max_steps`` ends training after that
many optimiser steps in total (counted in ``TrainState.steps``, so it holds across resumes).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from seqrec import distributed as D
from seqrec.errors import SeqrecError


class LossModule(torch.nn.Module):
    """``forward(batch)`` = the training loss of ``batch``: what DDP wraps, because the
    trainers' losses call several model methods (``user_vectors``, ``item_vectors_of``, ...)
    rather than one ``forward``. The model is a submodule, so DDP sees its parameters."""

    def __init__(self, model: torch.nn.Module, loss_fn: Callable) -> None:
        super().__init__()
        self.model = model
        self._loss_fn = loss_fn

    def forward(self, batch) -> torch.Tensor:
        return self._loss_fn(batch)


class StepLog:
    """``steps.csv`` (``train.step_log``): the global loss of every optimiser step, written by
    rank 0 (appended on resume), flushed each row."""

    def __init__(self, run_dir: str | Path, append: bool = False) -> None:
        path = Path(run_dir) / "steps.csv"
        new = not (append and path.exists())
        self._fh = open(path, "w" if new else "a", newline="")  # noqa: SIM115 - closed in close()
        self._csv = csv.writer(self._fh)
        if new:
            self._csv.writerow(["step", "epoch", "loss", "size"])

    def write(self, step: int, epoch: int, loss: float, size: float) -> None:
        self._csv.writerow([step, epoch, f"{loss:.9g}", int(size)])
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def step_module(trainer, loss_fn: Callable, find_unused: bool = False):
    """The trainer's loss module, replicated under torchrun (:class:`seqrec.distributed.Replicated`);
    built once, on first use (after a resume has loaded the weights; it broadcasts rank 0's)."""
    mod = getattr(trainer, "_step_module", None)
    if mod is None:
        mod = D.wrap_ddp(LossModule(trainer.model, loss_fn), find_unused=find_unused)
        trainer._step_module = mod
    return mod


def run_epoch(trainer, epoch: int, batches: Iterable, size_fn: Callable, *, total: int, unit: str,
              find_unused: bool = False) -> tuple[float, int, float]:
    """One epoch over ``batches`` = ``(local batch, global size)`` pairs (see
    :func:`seqrec.distributed.sharded` / :func:`~seqrec.distributed.local_batches`) with
    ``trainer.loss``; returns (mean global loss, global examples, seconds). The trainer gives
    ``model``, ``opt``, ``cfg``, ``state`` (``TrainState``) and optionally ``step_log``."""
    tc = trainer.cfg.train
    ctx = D.context()
    module = step_module(trainer, trainer.loss, find_unused)
    bar = tqdm(total=total, desc=f"epoch {epoch + 1}/{tc.epochs}", unit=unit,
               disable=not (tc.progress and ctx.is_main), leave=False, mininterval=1.0)
    loss_sum, seen, step, t0 = 0.0, 0, 0, time.perf_counter()
    state, step_log = trainer.state, getattr(trainer, "step_log", None)
    it = iter(batches)
    try:
        while not (tc.max_steps and state.steps >= tc.max_steps):
            item = next(it, None)
            if item is None:
                break
            batch, global_size = item
            step += 1
            D.test_kill_hook(epoch, step)
            loss = module(batch)
            size = size_fn(batch)
            trainer.opt.zero_grad(set_to_none=True)
            (loss * (size * ctx.world / global_size) if ctx.active else loss).backward()
            D.reduce_gradients(module)
            trainer.opt.step()
            lv = loss.item()
            if ctx.active:
                total_loss, global_size = D.all_sum([lv * size, float(size)])
                lv = total_loss / max(global_size, 1e-12)
            if not math.isfinite(lv):
                raise SeqrecError(f"training diverged at epoch {epoch + 1}, step {step}: loss is {lv}; "
                                  "lower train.lr")
            state.steps += 1
            if step_log is not None:
                step_log.write(state.steps, epoch + 1, lv, global_size)
            loss_sum += lv * global_size
            seen += int(global_size)
            bar.update(int(global_size))
            if step % tc.log_every == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}",
                                per_s=f"{seen / (time.perf_counter() - t0):,.0f}")
    except (RuntimeError, D.StopRequested) as exc:
        if ctx.active and D.is_peer_failure(exc):
            raise D.PeerStopped(f"rank {ctx.rank}: peer rank stopped during epoch {epoch + 1} step {step} "
                                f"({D.peer_detail(exc)})") from exc
        raise
    finally:
        bar.close()
    return loss_sum / max(seen, 1), seen, time.perf_counter() - t0
