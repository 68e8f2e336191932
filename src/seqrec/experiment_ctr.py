"""Train / evaluate CTR models end to end (what ``seqrec train`` / ``evaluate`` run for them).

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

from seqrec.config import RunConfig, load_run_config
from seqrec.data.cache import cache_dir
from seqrec.data.ctr import CTRData
from seqrec.data.tasks.ctr import CTRTask, load_ctr_task
from seqrec.data.vocab import Vocab
from seqrec.errors import CheckpointError, ConfigError
from seqrec.io import atomic_write
from seqrec.registry import get_model_entry
from seqrec.schema import Schema
from seqrec.train.checkpoint import (
    clear_run_dir,
    fit_resumable,
    load_json,
    load_tensors,
    save_json,
    save_task_files,
)
from seqrec.train.ctr_trainer import CTRTrainer, evaluate_ctr

TASK_VERSION = 1  # bump when a task recipe changes what it builds


def _task_key(cfg: RunConfig) -> str:
    from seqrec.data.registry import data_dir
    from seqrec.data.tasks.ctr import AMAZON, TAOBAO

    name = cfg.data.dataset
    files = [AMAZON[name][0] + "/" + f for f in AMAZON[name][1:]] if name in AMAZON else [
        "/".join(TAOBAO)]
    root = data_dir(cfg.data.data_dir or None)
    stamp = [[f, (root / f).stat().st_size, (root / f).stat().st_mtime_ns] for f in files
             if (root / f).is_file()]
    blob = json.dumps({"task": name, "max_len": cfg.data.max_len, "seed": cfg.train.seed,
                       "files": stamp, "v": TASK_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_task(cfg: RunConfig) -> CTRTask:
    """The configured CTR task, from the cache when the same recipe was built before."""
    path = cache_dir() / f"ctr-{cfg.data.dataset}-{_task_key(cfg)}.npz"
    if path.is_file():
        try:
            return _read_task(path)
        except Exception:  # a broken cache entry is rebuilt
            path.unlink(missing_ok=True)
    task = load_ctr_task(cfg.data.dataset, max_len=cfg.data.max_len, seed=cfg.train.seed,
                         root=cfg.data.data_dir or None)
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
    data = [CTRData(schema, parts[s], f"{meta['name']} {s}") for s in ("train", "valid", "test")]
    return CTRTask(meta["name"], *data, vocabs=vocabs, item_cate=item_cate)


def build_ctr_model(cfg: RunConfig, schema: Schema) -> torch.nn.Module:
    entry = get_model_entry(cfg.model_name)
    if entry.family != "ctr":
        raise ConfigError(f"model {cfg.model_name!r} is not a CTR model")
    return entry.model_cls(cfg.model, schema)


def train_ctr_run(cfg: RunConfig, out: str | os.PathLike, *, resume: bool = False) -> dict:
    from seqrec.experiment import peak_rss_mb
    from seqrec.train.logs import RunLog

    out = clear_run_dir(out, resume)
    task = load_task(cfg)
    save_task_files(out, cfg.to_dict(), task.schema, task.vocabs)
    torch.manual_seed(cfg.train.seed)
    model = build_ctr_model(cfg, task.schema)
    log = RunLog(out, append=resume)
    trainer = CTRTrainer(model, cfg, task.train, log)
    st = fit_resumable(model, trainer, out, task.valid, resume=resume, log=log)
    test = evaluate_ctr(model, task.test, cfg.eval.batch_size)
    infer = len(task.test) / max(test["predict_seconds"], 1e-9)
    metrics = {
        "dataset": cfg.data.dataset, "model": cfg.model_name,
        "valid": evaluate_ctr(model, task.valid, cfg.eval.batch_size), "test": test,
        "train_seconds": st.train_seconds, "train_samples": st.train_events,
        "train_samples_per_s": st.train_events / st.train_seconds if st.train_seconds else None,
        "infer_samples_per_s": infer, "epochs": st.epoch, "best_epoch": st.best_epoch,
        "eval_seconds": test["eval_seconds"], "peak_rss_mb": peak_rss_mb(),
        "threads": torch.get_num_threads(),
        "n_train": len(task.train), "n_valid": len(task.valid), "n_test": len(task.test),
    }
    save_json(out / "metrics.json", metrics)
    return metrics


def evaluate_ctr_run(run_dir: str | os.PathLike, split: str = "test", data_dir: str | None = None) -> dict:
    """Recompute AUC / GAUC / logloss of a saved CTR run on ``split`` from its checkpoint."""
    run_dir = Path(run_dir)
    for f in ("config.json", "schema.json", "model.pt"):
        if not (run_dir / f).is_file():
            raise CheckpointError(f"{run_dir} is not a finished CTR run: {f} is missing")
    cfg = load_run_config(raw=load_json(run_dir / "config.json"))
    if data_dir:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=data_dir))
    schema = Schema.from_dict(load_json(run_dir / "schema.json"))
    task = load_task(cfg)
    if task.schema != schema:
        raise CheckpointError(f"{run_dir}: the data no longer matches the schema the model was trained on")
    model = build_ctr_model(cfg, schema)
    model.load_state_dict(load_tensors(run_dir / "model.pt"))
    data: CTRData = task.split(split)
    return evaluate_ctr(model, data, cfg.eval.batch_size)
