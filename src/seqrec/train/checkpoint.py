"""Run directories: weights, config, vocabulary, metrics — every file written atomically.

Layout of ``RUN_DIR``::

    config.json     the full run config (model name + its config)
    vocab.json      item vocabulary (and user_vocab.json for user models)
    model.pt        state dict (tensors only) of a neural model
    baseline/       fitted state of a non-neural baseline
    train_state.pt  optimiser + epoch + early-stopping state, for ``--resume``
    metrics.json    final metrics (valid/test) and speed figures
    log.csv         training log; tb/ holds the TensorBoard events
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from seqrec.errors import CheckpointError, ConfigError
from seqrec.io import atomic_write, atomic_write_text


def clear_run_dir(out: str | os.PathLike, resume: bool = False) -> Path:
    """``--out`` semantics: an existing seqrec run directory is replaced (kept with ``resume``);
    any other non-empty directory is refused, so a typo never deletes a user's files. Under
    torchrun only rank 0 touches the directory (the other ranks never write in it)."""
    from seqrec.distributed import context

    out = Path(out)
    if not context().is_main:
        return out
    if out.exists() and not resume and any(out.iterdir()):
        if not (out / "config.json").exists():
            raise ConfigError(f"--out {out} exists and is not a seqrec run directory; choose another")
        shutil.rmtree(out)
    return out


def save_task_files(out: Path, config: dict, schema, vocabs: dict) -> None:
    """``config.json``, ``schema.json`` and ``vocab_<name>.json`` of a schema-built task run."""
    out.mkdir(parents=True, exist_ok=True)
    save_json(out / "config.json", config)
    save_json(out / "schema.json", schema.to_dict())
    for name, v in vocabs.items():
        v.save(out / f"vocab_{name}.json")


def save_tensors(path: str | os.PathLike, obj) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_tensors(path: str | os.PathLike):
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p} not found: is this a finished seqrec run directory?")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise CheckpointError(f"{p} cannot be read as a seqrec checkpoint: {exc}") from exc


def save_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def load_json(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p} not found: is this a seqrec run directory?")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{p} is not valid JSON: {exc}") from exc


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, tuple | set):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def fit_resumable(model: torch.nn.Module, trainer, out: Path, valid, *, resume: bool, log):
    """``trainer.fit(valid)`` with an atomic checkpoint after every epoch (``model.pt`` and
    ``train_state.pt``), continuing from ``train_state.pt`` when ``resume``; closes ``log``
    and writes the final (best, when early stopping restored them) weights.

    Under torchrun (:mod:`seqrec.distributed`) every rank reads the checkpoint it resumes from
    and rank 0 alone writes (``log`` is None on the others). The state holds nothing that
    depends on the number of ranks (weights, optimiser, epoch and step counters, the sampler's
    stream; ``world_size`` is recorded for information only), so a run resumes at any world size.
    A peer that stops mid-epoch ends this rank with one line naming the last checkpoint."""
    from seqrec import distributed as D

    out = Path(out)
    ctx = D.context()
    if resume and (out / "train_state.pt").exists():
        blob = load_tensors(out / "train_state.pt")
        model.load_state_dict(blob["model"])
        trainer.load_training_state(blob["trainer"])
    if trainer.cfg.train.step_log and ctx.is_main and hasattr(trainer, "state"):
        from seqrec.train.steps import StepLog

        trainer.step_log = StepLog(out, append=resume)

    def checkpoint(tr) -> None:
        if ctx.is_main:
            save_tensors(out / "model.pt", model.state_dict())
            save_tensors(out / "train_state.pt", {"model": model.state_dict(), "trainer": tr.training_state(),
                                                  "world_size": ctx.world})

    try:
        state = trainer.fit(valid, on_epoch_end=checkpoint)
    except (D.PeerStopped, D.StopRequested, RuntimeError) as exc:
        if not ctx.active or not (isinstance(exc, D.PeerStopped) or D.is_peer_failure(exc)):
            raise
        done = trainer.state.epoch
        last = (f"the last checkpoint is {out / 'train_state.pt'} (epoch {done})" if done
                else "no epoch had finished, so there is no checkpoint")
        what = str(exc) if isinstance(exc, D.PeerStopped) else \
            f"rank {ctx.rank}: peer rank stopped after epoch {done} ({D.peer_detail(exc)})"
        raise D.PeerStopped(f"{what}; {last}") from exc
    finally:
        if log is not None:
            log.close()
        if getattr(trainer, "step_log", None) is not None:
            trainer.step_log.close()
    if ctx.is_main:
        save_tensors(out / "model.pt", model.state_dict())
    return state
