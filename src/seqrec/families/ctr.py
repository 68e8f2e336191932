"""The CTR family: click-through-rate prediction with behaviour histories (DIN, DIEN, DSIN, BST,
Wide&Deep, DeepFM, DLRM, ...).

A CTR run directory holds ``config.json``, ``schema.json``, ``vocab_<table>.json`` for the
item / cate / user vocabularies, ``model.pt``, ``train_state.pt`` (resume), ``metrics.json``
(valid and test AUC, GAUC, logloss, speed) and ``log.csv`` / ``tb/``. The samples are
rebuilt deterministically from the data and the config (seeded), and cached as ``.npz``
under ``$SEQREC_CACHE`` (keyed by the recipe, its arguments and the source files).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from seqrec.config import RunConfig
from seqrec.data.cache import cache_dir
from seqrec.data.samples import LabeledSamples
from seqrec.data.tasks.ctr import CTRTask
from seqrec.data.vocab import Vocab
from seqrec.errors import CheckpointError, ConfigError
from seqrec.families.base import Family, peak_rss_mb, read_run_files
from seqrec.io import atomic_write
from seqrec.registry import get_model_entry
from seqrec.schema import Schema
from seqrec.train.checkpoint import (
    clear_run_dir,
    fit_resumable,
    load_tensors,
    save_json,
    save_task_files,
    save_tensors,
)
from seqrec.train.ctr_trainer import CTRTrainer, evaluate_ctr

TASK_VERSION = 1  # bump when a task recipe changes what it builds


def _task_key(cfg: RunConfig) -> str:
    if cfg.data.path:
        files = [Path(cfg.data.path)]
    else:
        from seqrec.data.registry import folder_of, get_dataset

        entry = get_dataset(cfg.data.dataset, "ctr")
        files = [folder_of(entry, cfg.data.data_dir or None) / f for f in entry.files]
    stamp = [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.is_file()]
    blob = json.dumps({"task": cfg.data.name, "max_len": cfg.data.max_len, "seed": cfg.train.seed,
                       "data": dataclasses.asdict(cfg.data) if cfg.data.path else None,
                       "files": stamp, "v": TASK_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_ctr_task(name: str, root: str | None = None, **kwargs) -> CTRTask:
    """The CTR task of registered dataset ``name`` (files checked first), built afresh."""
    from seqrec.data.registry import get_dataset, require_files

    entry = get_dataset(name, "ctr")
    return entry.recipes["ctr"].build(name, require_files(entry, root), **kwargs)


def _build_task(cfg: RunConfig) -> CTRTask:
    if cfg.data.path:
        from seqrec.data.own import user_log
        from seqrec.data.tasks.ctr import log_ctr

        return log_ctr(user_log(cfg.data, "CTR"), cfg.data.name, max_len=cfg.data.max_len, seed=cfg.train.seed,
                       session_gap=cfg.data.session_gap, test_days=cfg.data.split.test_days)
    return load_ctr_task(cfg.data.dataset, cfg.data.data_dir or None, max_len=cfg.data.max_len,
                         seed=cfg.train.seed)


def load_task(cfg: RunConfig) -> CTRTask:
    """The configured CTR task, from the cache when the same recipe was built before."""
    if cfg.data.prepared:  # `seqrec prepare` output: train streams from its shards, valid / test in memory
        from seqrec.prepare.reader import load_prepared_ctr

        return load_prepared_ctr(cfg)
    path = cache_dir() / f"ctr-{cfg.data.name}-{_task_key(cfg)}.npz"
    if path.is_file():
        try:
            return _read_task(path)
        except Exception:  # a broken cache entry is rebuilt
            path.unlink(missing_ok=True)
    task = _build_task(cfg)
    _write_task(path, task)
    return task


def _write_task(path: Path, task: CTRTask) -> None:
    arrays = {f"{split}/{k}": v for split in ("train", "valid", "test")
              for k, v in task.split(split).columns.items()}
    arrays["item_cate"] = task.item_cate
    meta = {"name": task.name, "schema": task.schema.to_dict(),
            "vocabs": {k: v.ids_ for k, v in task.vocabs.items()}}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)


def _read_task(path: Path) -> CTRTask:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        schema = Schema.from_dict(meta["schema"])
        parts = {s: {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(s + "/")}
                 for s in ("train", "valid", "test")}
        item_cate = z["item_cate"]
    vocabs = {k: Vocab(ids, name=k) for k, ids in meta["vocabs"].items()}
    data = [LabeledSamples(schema, parts[s], f"{meta['name']} {s}") for s in ("train", "valid", "test")]
    return CTRTask(meta["name"], *data, vocabs=vocabs, item_cate=item_cate)


def build_ctr_model(cfg: RunConfig, schema: Schema) -> torch.nn.Module:
    entry = get_model_entry(cfg.model_name)
    if entry.family != "ctr":
        raise ConfigError(f"model {cfg.model_name!r} is not a CTR model")
    return entry.model_cls(cfg.model, schema)


def train_ctr_run(cfg: RunConfig, out: str | os.PathLike, *, resume: bool = False) -> dict:
    from seqrec.distributed import context, seed_ranks
    from seqrec.train.logs import RunLog

    out = clear_run_dir(out, resume)
    task = load_task(cfg)
    main = context().is_main  # under torchrun rank 0 alone writes and evaluates
    if main:
        save_task_files(out, cfg.to_dict(), task.schema, task.vocabs)
        # every item row's category row: serving derives a candidate's features from its id alone
        save_tensors(out / "item_cate.pt", {"item_cate": torch.from_numpy(np.asarray(task.item_cate, np.int64))})
    torch.manual_seed(cfg.train.seed)
    model = build_ctr_model(cfg, task.schema)
    seed_ranks(cfg.train.seed)
    log = RunLog(out, append=resume) if main else None
    trainer = CTRTrainer(model, cfg, task.train, log)
    st = fit_resumable(model, trainer, out, task.valid, resume=resume, log=log)
    if not main:
        return {}
    test = evaluate_ctr(model, task.test, cfg.eval.batch_size)
    infer = len(task.test) / max(test["predict_seconds"], 1e-9)
    metrics = {
        "family": "ctr", "dataset": cfg.data.name, "model": cfg.model_name,
        "valid": evaluate_ctr(model, task.valid, cfg.eval.batch_size), "test": test,
        "train_seconds": st.train_seconds, "train_samples": st.train_events,
        "train_samples_per_s": st.train_events / st.train_seconds if st.train_seconds else None,
        "infer_samples_per_s": infer, "epochs": st.epoch, "best_epoch": st.best_epoch,
        "eval_seconds": test["eval_seconds"], "peak_rss_mb": peak_rss_mb(),
        "threads": torch.get_num_threads(), "world_size": context().world,
        "n_train": len(task.train), "n_valid": len(task.valid), "n_test": len(task.test),
    }
    save_json(out / "metrics.json", metrics)
    return metrics


class CTRRun:
    """A finished CTR run: config, schema, vocabularies and the model ready to score."""

    def __init__(self, run_dir: str | os.PathLike, data_dir: str | None = None) -> None:
        self.dir, self.config, self.schema, self.vocabs = read_run_files(
            run_dir, ("config.json", "schema.json", "model.pt"), "CTR", data_dir)
        self.model = build_ctr_model(self.config, self.schema)
        self.model.load_state_dict(load_tensors(self.dir / "model.pt"))
        self.model.eval()


def evaluate_ctr_run(run_dir: str | os.PathLike, split: str = "test", data_dir: str | None = None) -> dict:
    """Recompute AUC / GAUC / logloss of a saved CTR run on ``split`` from its checkpoint."""
    run = CTRRun(run_dir, data_dir)
    task = load_task(run.config)
    if task.schema != run.schema:
        raise CheckpointError(f"{run_dir}: the data no longer matches the schema the model was trained on")
    data: LabeledSamples = task.split(split)
    return evaluate_ctr(run.model, data, run.config.eval.batch_size)


class CTRFamily(Family):
    name = "ctr"
    description = "click-through rate of a candidate item given the user's behaviour history"

    def check_data(self, cfg: RunConfig) -> dict:
        task = _build_task(cfg)
        out = {"family": self.name, "dataset": cfg.data.name,
               **{f"vocab_{k}": len(v) for k, v in task.vocabs.items()}}
        for part in ("train", "valid", "test"):
            d = task.split(part)
            out[part] = {"samples": len(d), "positives": int(d.labels().sum())}
        return out

    def train(self, cfg: RunConfig, out: Path, *, resume: bool = False) -> dict:
        return train_ctr_run(cfg, out, resume=resume)

    def load_run(self, run_dir, data_dir=None) -> CTRRun:
        return CTRRun(run_dir, data_dir)

    def evaluate(self, run_dir, *, split="test", ties=None, data_dir=None) -> dict:
        return evaluate_ctr_run(run_dir, split=split, data_dir=data_dir)

    def summary(self, cfg: RunConfig, m: dict, out: str) -> str:
        t, sps = m["test"], m.get("train_samples_per_s")
        return (f"{cfg.model_name} on {cfg.data.name}: test auc={t['auc']:.4f} gauc={t['gauc']:.4f} "
                f"logloss={t['logloss']:.4f} ({t['n_samples']} samples); train {m['train_seconds']:.1f}s"
                + (f" ({sps:,.0f} samples/s)" if sps else "") + f"; run written to {out}")


FAMILY = CTRFamily()
