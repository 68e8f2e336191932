"""The purchase family: will a user buy (from a category) in the next window
(``seqrec train | evaluate | score-users``).

A purchase run directory holds ``config.json``, ``schema.json``, ``vocab_<column>.json``,
the model (``model.pt`` for the neural models, ``model.xgb.json`` + ``xgboost.json`` for
XGBoost, ``baseline.json`` for the rules and the RFM logistic regression), ``metrics.json``
(the protocol, the decision threshold chosen on validation, and the validation and test
reports: :func:`seqrec.evaluate.thresholds.purchase_report` merged with
:func:`seqrec.evaluate.campaign.campaign_report`),
``test_predictions.csv`` (user index, label, probability of every test sample) and, for
neural models, ``log.csv`` / ``tb/``. Samples are rebuilt from the data and the config
(seeded, deterministic); ``evaluate`` refuses a run whose data no longer gives the same
vocabularies.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import time
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit

from seqrec.config import RunConfig
from seqrec.data.samples import LabeledSamples
from seqrec.data.tasks.purchase import (
    PurchaseTask,
    build_purchase_task,
    check_category,
    purchase_dataset,
    read_purchase_log,
    resolve,
    scoring_samples,
)
from seqrec.errors import CheckpointError, ConfigError
from seqrec.evaluate.campaign import campaign_report
from seqrec.evaluate.thresholds import best_f1_threshold, purchase_report
from seqrec.families.base import Family, peak_rss_mb, read_run_files
from seqrec.io import atomic_write_text
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


def uses_aggregates(cfg: RunConfig) -> bool:
    """XGBoost, the rules and the RFM logistic regression: fit / predict on the ``agg`` features."""
    cls = get_model_entry(cfg.model_name).model_cls
    return cls is not None and not issubclass(cls, torch.nn.Module)


def purchase_source(cfg: RunConfig):
    """(canonical purchase log, its recipe): your own file (``data.path``) or a registered dataset."""
    if cfg.data.path:
        from seqrec.data.own import purchase_log, purchase_recipe

        log = purchase_log(cfg.data)
        return log, purchase_recipe(cfg.data, log)
    return read_purchase_log(cfg.data.dataset, cfg.data.data_dir or None), purchase_dataset(cfg.data.dataset)


def load_purchase_task(cfg: RunConfig) -> PurchaseTask:
    log, info = purchase_source(cfg)
    return build_purchase_task(log, info, cfg.data.purchase, max_len=cfg.data.max_len, seed=cfg.train.seed)


def check_task(cfg: RunConfig, task: PurchaseTask) -> None:
    """ConfigError unless ``task`` is what :func:`load_purchase_task` builds for ``cfg``."""
    want = (cfg.data.name, resolve(purchase_source(cfg)[1], cfg.data.purchase),
            cfg.data.max_len, cfg.train.seed)
    if (task.name, task.spec, task.max_len, task.seed) != want:
        raise ConfigError(f"the given samples were built for {(task.name, task.spec, task.max_len, task.seed)}, "
                          f"the config asks for {want}")


def build_purchase_model(cfg: RunConfig, schema: Schema):
    entry = get_model_entry(cfg.model_name)
    if entry.family != "purchase":
        raise ConfigError(f"model {cfg.model_name!r} is not a purchase-prediction model")
    if uses_aggregates(cfg):
        return entry.model_cls(cfg.model, seed=cfg.train.seed, threads=torch.get_num_threads())
    return entry.model_cls(cfg.model, schema)


def predict_probs(model, data: LabeledSamples, batch_size: int = 4096) -> np.ndarray:
    """Purchase probability (rules: a score in [0, 1]) of every sample, in order."""
    from seqrec.train.ctr_trainer import predict_logits

    if not isinstance(model, torch.nn.Module):
        return model.predict_proba(data.columns["agg"])
    return expit(predict_logits(model, data, batch_size))


def purchase_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """Thresholded and top-20 % metrics (the article's) merged with the campaign metrics
    (base rate, precision / recall / lift at the top 1 / 5 / 10 %); shared keys agree."""
    return {**purchase_report(labels, probs, threshold), **campaign_report(labels, probs)}


def _fit(cfg: RunConfig, model, task: PurchaseTask, out: Path, resume: bool) -> dict:
    t0 = time.perf_counter()
    if not isinstance(model, torch.nn.Module):
        tr, va = task.train.columns, task.valid.columns
        model.fit(tr["agg"], tr["label"], va["agg"], va["label"])
        model.save(out)
        return {"train_seconds": time.perf_counter() - t0, "epochs": 1, **model.fit_info()}
    from seqrec.train.ctr_trainer import CTRTrainer
    from seqrec.train.logs import RunLog

    log = RunLog(out, append=resume)
    trainer = CTRTrainer(model, cfg, task.train, log)
    st = fit_resumable(model, trainer, out, task.valid, resume=resume, log=log)
    return {"train_seconds": st.train_seconds, "epochs": st.epoch, "best_epoch": st.best_epoch}


def train_purchase_run(cfg: RunConfig, out: str | os.PathLike, *, resume: bool = False,
                       task: PurchaseTask | None = None) -> dict:
    """Build the samples (or take ``task``, checked to be what ``cfg`` builds: a benchmark
    shares one build between models), train, pick the threshold on validation, evaluate."""
    out = clear_run_dir(out, resume)
    if task is None:
        task = load_purchase_task(cfg)  # before creating --out: bad input leaves nothing behind
    else:
        check_task(cfg, task)
    save_task_files(out, cfg.to_dict(), task.schema, task.vocabs)
    torch.manual_seed(cfg.train.seed)
    model = build_purchase_model(cfg, task.schema)
    fit = _fit(cfg, model, task, out, resume)
    valid_p = predict_probs(model, task.valid, cfg.eval.batch_size)
    threshold = best_f1_threshold(task.valid.labels(), valid_p)
    t0 = time.perf_counter()
    test_p = predict_probs(model, task.test, cfg.eval.batch_size)
    eval_seconds = time.perf_counter() - t0
    spec = task.spec
    metrics = {
        "family": "purchase", "dataset": cfg.data.name, "model": cfg.model_name, "category": spec.category,
        "level": spec.level, "unit": spec.unit, "window": spec.window, "observation": spec.observation,
        "negatives": spec.negatives, "shift": list(spec.shift), "max_len": cfg.data.max_len,
        "protocol": spec.protocol, "threshold": threshold,
        "valid": purchase_metrics(task.valid.labels(), valid_p, threshold),
        "test": purchase_metrics(task.test.labels(), test_p, threshold),
        "counts": task.counts, **fit, "eval_seconds": eval_seconds,
        # samples x epochs per second of training (XGBoost: one pass over the samples)
        "train_samples_per_s": len(task.train) * max(fit["epochs"], 1) / max(fit["train_seconds"], 1e-9),
        "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads(),
    }
    save_json(out / "metrics.json", metrics)
    _write_csv(out / "test_predictions.csv", ["user_index", "label", "probability"],
               [(int(u), int(y), f"{p:.6f}") for u, y, p in
                zip(task.test.columns["user"], task.test.labels(), test_p, strict=True)])
    return metrics


class PurchaseRun:
    """A finished purchase run: config, schema, vocabularies, model, chosen threshold."""

    def __init__(self, run_dir: str | os.PathLike, data_dir: str | None = None) -> None:
        self.dir, cfg, self.schema, self.vocabs = read_run_files(
            run_dir, ("config.json", "schema.json", "metrics.json"), "purchase", data_dir)
        self.config = cfg
        self.threshold = float(load_json(self.dir / "metrics.json")["threshold"])
        if uses_aggregates(cfg):
            self.model = get_model_entry(cfg.model_name).model_cls.load(self.dir)
        else:
            self.model = build_purchase_model(cfg, self.schema)
            self.model.load_state_dict(load_tensors(self.dir / "model.pt"))
            self.model.eval()


def evaluate_purchase_run(run_dir: str | os.PathLike, split: str = "test", data_dir: str | None = None) -> dict:
    """The report of a saved purchase run on ``split``, at the threshold chosen on validation."""
    run = PurchaseRun(run_dir, data_dir)
    task = load_purchase_task(run.config)
    if task.schema != run.schema or any(task.vocabs[k].ids_ != v.ids_ for k, v in run.vocabs.items()):
        raise CheckpointError(f"{run_dir}: the data no longer gives the samples the model was trained on")
    data = task.split(split)
    return purchase_metrics(data.labels(), predict_probs(run.model, data), run.threshold)


def score_users(run_dir: str | os.PathLike, category: str, top: int | None = None,
                out: str | os.PathLike | None = None, data_dir: str | None = None) -> tuple[Path, list[tuple]]:
    """Rank every user with a history at the end of the data by the probability of buying from
    ``category`` in the next window; write ``rank,user_id,probability`` (top ``top``) as CSV.

    This scores **everyone** active in the observation window, past buyers of the category
    included, with no selection by label: the ``deployment`` protocol of
    :mod:`seqrec.data.tasks.purchase`. A run trained and tested under ``article-1to1`` was
    measured on a 1:1 sample whose negatives never bought the category; its test figures
    do not describe this ranking (the ``deployment`` figures do)."""
    run = PurchaseRun(run_dir, data_dir)
    pc = run.config.data.purchase
    log, info = purchase_source(run.config)
    spec = resolve(info, pc)
    if category != spec.category:
        check_category(log, resolve(info, dataclasses.replace(pc, category=category)))  # unknown at all?
        raise ConfigError(f"this run was trained for category {spec.category!r}; train one for {category!r} "
                          f"with --set data.purchase.category={category!r}")
    if top is not None and top < 1:
        raise ConfigError(f"--top must be positive, got {top}")
    users, data = scoring_samples(log, info, pc, run.schema, run.vocabs)
    probs = predict_probs(run.model, data)
    order = np.lexsort((users, -probs))  # highest first; ties by user id, so the file is stable
    if top is not None:
        order = order[:top]
    rows = [(r + 1, str(users[i]), float(probs[i])) for r, i in enumerate(order)]
    path = Path(out) if out else run.dir / f"scores_{_safe(category)}.csv"
    _write_csv(path, ["rank", "user_id", "probability"], [(r, u, f"{p:.6f}") for r, u, p in rows])
    return path, rows


def _write_csv(path: Path, header: list[str], rows) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


class PurchaseFamily(Family):
    name = "purchase"
    description = "will a user buy (from a category) in the next window"

    def check_data(self, cfg: RunConfig) -> dict:
        log, info = purchase_source(cfg)
        task = build_purchase_task(log, info, cfg.data.purchase, max_len=cfg.data.max_len, seed=cfg.train.seed)
        out = {"family": self.name, "dataset": cfg.data.name, "events": log.height,
               "users": log["user_id"].n_unique(), "orders": log["order_id"].n_unique(),
               "time_range": [float(log["time"].min()), float(log["time"].max())], "unit": info.unit}
        for part in ("train", "valid", "test"):
            d = task.split(part)
            out[part] = {"samples": len(d), "positives": int(d.labels().sum())}
        return out

    def train(self, cfg: RunConfig, out: Path, *, resume: bool = False) -> dict:
        return train_purchase_run(cfg, out, resume=resume)

    def load_run(self, run_dir, data_dir=None) -> PurchaseRun:
        return PurchaseRun(run_dir, data_dir)

    def evaluate(self, run_dir, *, split="test", ties=None, data_dir=None) -> dict:
        return evaluate_purchase_run(run_dir, split=split, data_dir=data_dir)

    def summary(self, cfg: RunConfig, m: dict, out: str) -> str:
        t = m["test"]
        return (f"{cfg.model_name} on {cfg.data.name} / {m['category']}: test precision={t['precision']:.4f} "
                f"recall={t['recall']:.4f} f1={t['f1']:.4f} auc={t['auc']:.4f} pr_auc={t['pr_auc']:.4f} "
                f"({t['n_samples']} users, threshold {m['threshold']:.3f} from validation); "
                f"train {m['train_seconds']:.1f}s; run written to {out}")


FAMILY = PurchaseFamily()
