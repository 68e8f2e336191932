"""The multi-task family: several binary labels per row, one model with a head per task
(Shared-Bottom, MMoE, PLE, ESMM, DUPN, and single-task DINs).

Data: a registered dataset's ``multitask`` recipe (:mod:`seqrec.data.tasks.multitask`; census-income
now). A run directory holds ``config.json``, ``schema.json``, ``tasks.json``, ``vocab_<table>.json`` and
``item_cate.pt`` (datasets with raw ids, e.g. Taobao: what serving reads), ``model.pt``,
``train_state.pt`` (resume), ``metrics.json`` (valid and test AUC / logloss per task, speed) and
``log.csv`` / ``tb/``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from seqrec.config import RunConfig
from seqrec.errors import CheckpointError, ConfigError
from seqrec.families.base import Family, peak_rss_mb
from seqrec.registry import get_model_entry
from seqrec.schema import Schema
from seqrec.train.checkpoint import clear_run_dir, fit_resumable, load_json, load_tensors, save_json


def load_task(cfg: RunConfig):
    """The configured multi-task data (a registered dataset; files checked first), split by the seed."""
    from seqrec.data.registry import get_dataset, require_files

    if cfg.data.prepared:  # `seqrec prepare` output (multitask-taobao): its rows, read into memory
        from seqrec.prepare.reader import load_prepared_multitask

        return load_prepared_multitask(cfg)
    if cfg.data.path:
        raise ConfigError("multi-task models read a registered dataset (data.dataset); [data] path is not "
                          "supported for this family yet")
    entry = get_dataset(cfg.data.dataset, "multitask")
    mt = cfg.data.multitask
    return entry.recipes["multitask"].build(cfg.data.dataset, require_files(entry, cfg.data.data_dir or None),
                                            seed=cfg.train.seed, tasks=mt.tasks, test_day=mt.test_day,
                                            train_from_day=mt.train_from_day)


def build_model(cfg: RunConfig, schema: Schema, tasks: tuple[str, ...]) -> torch.nn.Module:
    entry = get_model_entry(cfg.model_name)
    if entry.family != "multitask":
        raise ConfigError(f"model {cfg.model_name!r} is not a multi-task model")
    return entry.model_cls(cfg.model, schema, tuple(tasks))


def train_multitask_run(cfg: RunConfig, out: str | os.PathLike, *, resume: bool = False) -> dict:
    from seqrec.distributed import context, seed_ranks
    from seqrec.train.logs import RunLog
    from seqrec.train.multitask_trainer import MultiTaskTrainer, evaluate_multitask

    out = clear_run_dir(out, resume)
    main = context().is_main  # under torchrun rank 0 alone writes and evaluates
    if main:
        out.mkdir(parents=True, exist_ok=True)
    data = load_task(cfg)
    if main:
        save_json(out / "config.json", cfg.to_dict())
        save_json(out / "schema.json", data.schema.to_dict())
        save_json(out / "tasks.json", {"tasks": list(data.tasks)})
    if main and getattr(data, "vocabs", None):  # datasets with raw ids (Taobao): what serving maps ids with
        from seqrec.train.checkpoint import save_tensors

        for name, v in data.vocabs.items():
            v.save(out / f"vocab_{name}.json")
        save_tensors(out / "item_cate.pt", {"item_cate": torch.from_numpy(data.item_cate)})
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, data.schema, data.tasks)
    log = RunLog(out, append=resume, extra_columns=tuple(f"valid_auc_{t}" for t in data.tasks)) if main else None
    trainer = MultiTaskTrainer(model, cfg, data.train, log)
    warm = None
    if cfg.train.init_from and not resume:
        from seqrec.train.warm_start import warm_start

        warm = warm_start(model, cfg.train.init_from, trainer.opt)  # every rank: the same start
        if main:
            save_json(out / "warm_start.json", warm)
    seed_ranks(cfg.train.seed)
    st = fit_resumable(model, trainer, out, data.valid, resume=resume, log=log)
    if not main:
        return {}
    bs = cfg.eval.batch_size
    metrics = {"family": "multitask", "dataset": cfg.data.name, "model": cfg.model_name, "tasks": list(data.tasks),
               "valid": evaluate_multitask(model, data.valid, bs), "test": evaluate_multitask(model, data.test, bs),
               "train_seconds": st.train_seconds, "train_samples": st.train_events,
               "train_samples_per_s": st.train_events / st.train_seconds if st.train_seconds else None,
               "epochs": st.epoch, "best_epoch": st.best_epoch, "peak_rss_mb": peak_rss_mb(),
               "threads": torch.get_num_threads(), "world_size": context().world, "data": data.summary(),
               **({"warm_start": warm} if warm else {})}
    save_json(out / "metrics.json", metrics)
    return metrics


class MultiTaskRun:
    """A finished multi-task run: config, schema, tasks and the model ready to score."""

    def __init__(self, run_dir: str | os.PathLike, data_dir: str | None = None) -> None:
        from seqrec.config import load_run_config

        self.dir = Path(run_dir)
        for f in ("config.json", "schema.json", "tasks.json", "model.pt"):
            if not (self.dir / f).is_file():
                raise CheckpointError(f"{self.dir} is not a finished multi-task run: {f} is missing")
        cfg = load_run_config(raw=load_json(self.dir / "config.json"))
        if data_dir:
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=data_dir))
        self.config = cfg
        self.schema = Schema.from_dict(load_json(self.dir / "schema.json"))
        self.tasks = tuple(load_json(self.dir / "tasks.json")["tasks"])
        self.model = build_model(cfg, self.schema, self.tasks)
        self.model.load_state_dict(load_tensors(self.dir / "model.pt"))
        self.model.eval()


class MultiTaskFamily(Family):
    name = "multitask"
    description = "several binary labels per row, one model with a head per task"

    def check_data(self, cfg: RunConfig) -> dict:
        return {"family": self.name, "dataset": cfg.data.name, **load_task(cfg).summary()}

    def train(self, cfg: RunConfig, out: Path, *, resume: bool = False) -> dict:
        return train_multitask_run(cfg, out, resume=resume)

    def load_run(self, run_dir, data_dir=None) -> MultiTaskRun:
        return MultiTaskRun(run_dir, data_dir)

    def evaluate(self, run_dir, *, split="test", ties=None, data_dir=None) -> dict:
        from seqrec.train.multitask_trainer import evaluate_multitask

        run = MultiTaskRun(run_dir, data_dir)
        data = load_task(run.config)
        if data.schema != run.schema:
            raise CheckpointError(f"{run_dir}: the data no longer matches the schema the model was trained on")
        return evaluate_multitask(run.model, data.split(split), run.config.eval.batch_size)

    def summary(self, cfg: RunConfig, m: dict, out: str) -> str:
        t = m["test"]
        per = " ".join(f"{k}={t[k]['auc']:.4f}" for k in m["tasks"])
        sps = m.get("train_samples_per_s")
        return (f"{cfg.model_name} on {cfg.data.name}: test auc {per}; train {m['train_seconds']:.1f}s"
                + (f" ({sps:,.0f} samples/s)" if sps else "") + f"; run written to {out}")


FAMILY = MultiTaskFamily()
