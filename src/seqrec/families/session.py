"""The session family: next-item prediction in sessions (GRU4Rec, HRNN, POP / item-kNN / SKNN).

``train`` loads the splits (a registered dataset or your own file), builds the item
vocabulary from the training split, trains (networks) or fits (baselines) the model,
evaluates on the validation and test splits with the full-catalogue protocol and writes a
run directory (``config.json``, ``vocab.json`` [+ ``user_vocab.json``], ``model.pt`` or
``baseline/``, ``metrics.json``, ``log.csv``; see :mod:`seqrec.train.checkpoint`).
``evaluate`` and ``recommend`` rebuild everything from that directory alone.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch

from seqrec.config import RunConfig, load_run_config
from seqrec.data.dwell import repeat_by_dwell
from seqrec.data.events import SessionArrays
from seqrec.data.vocab import Vocab
from seqrec.errors import CheckpointError, ConfigError, UnknownIdError
from seqrec.evaluate.ranking import evaluate_sessions
from seqrec.families.base import Family, peak_rss_mb
from seqrec.registry import get_model_entry
from seqrec.train.checkpoint import clear_run_dir, fit_resumable, load_json, load_tensors, save_json


def load_splits(cfg: RunConfig):
    """The configured split tables: your own file (``data.path``) or a registered dataset."""
    if cfg.data.path:
        from seqrec.data.own import session_splits

        return session_splits(cfg.data)
    from seqrec.data.registry import load_dataset

    return load_dataset(cfg.data.dataset, cfg.data.data_dir or None)


def build_model(cfg: RunConfig, n_items: int):
    """Instantiate the configured network (``X(config, n_items)``) or baseline (unfitted)."""
    entry = get_model_entry(cfg.model_name)
    if entry.trainable:
        return entry.model_cls(cfg.model, n_items)
    return entry.model_cls(cfg.model)


def scorer_for(model):
    from seqrec.models.gru4rec import GRU4Rec, GRU4RecScorer

    if isinstance(model, GRU4Rec):
        return GRU4RecScorer(model)
    return model  # baselines are scorers themselves


def _evaluate(cfg: RunConfig, model, arrays: SessionArrays, ties: str | None = None,
              progress: bool = False, split_name: str = "test", context=None) -> dict:
    from seqrec.evaluate.user_sessions import evaluate_hrnn
    from seqrec.models.hrnn import HRNN

    t0 = time.perf_counter()
    if isinstance(model, HRNN):
        m = evaluate_hrnn(model, context, arrays, ks=cfg.eval.ks, ties=ties or cfg.eval.ties,
                          batch_size=cfg.eval.batch_size)
    else:
        m = evaluate_sessions(scorer_for(model), arrays, ks=cfg.eval.ks, ties=ties or cfg.eval.ties,
                              batch_size=cfg.eval.batch_size, progress=progress,
                              desc=f"evaluate {split_name}")
    m["eval_seconds"] = time.perf_counter() - t0
    return m


def train_run(cfg: RunConfig, out: str | os.PathLike, *, resume: bool = False) -> dict:
    """Train the configured model and write ``out``; returns the metrics dict."""
    out = Path(out)
    clear_run_dir(out, resume)  # re-running into an old run directory replaces it
    splits = load_splits(cfg)  # before creating --out: a missing dataset leaves nothing behind
    out.mkdir(parents=True, exist_ok=True)
    train_df = splits.get(cfg.data.train_split)
    validate = cfg.data.train_split != "train_full" and bool(cfg.data.valid_split)
    vocab = Vocab(name="item").fit(train_df["item_id"].unique(maintain_order=True))
    user_vocab = None
    if cfg.model_name == "hrnn":
        if not splits.has_users:
            raise ConfigError(f"model hrnn needs user ids; dataset {cfg.data.name!r} has none")
        user_vocab = Vocab(name="user").fit(splits.train_full["user_id"].unique(maintain_order=True))
    train = SessionArrays.from_events(train_df, vocab, user_vocab)
    if cfg.data.dwell_bucket > 0:
        if not splits.has_time:
            raise ConfigError(f"dwell time needs real timestamps; dataset {cfg.data.name!r} has none")
        train = repeat_by_dwell(train, cfg.data.dwell_bucket, cfg.data.dwell_max_repeat)
    valid = SessionArrays.from_events(splits.get(cfg.data.valid_split), vocab, user_vocab) if validate else None
    test = SessionArrays.from_events(splits.get(cfg.data.test_split), vocab, user_vocab)
    save_json(out / "config.json", cfg.to_dict())
    vocab.save(out / "vocab.json")
    if user_vocab is not None:
        user_vocab.save(out / "user_vocab.json")
    torch.manual_seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    model = build_model(cfg, len(vocab))
    t0 = time.perf_counter()
    if not get_model_entry(cfg.model_name).trainable:
        model.fit(train, len(vocab))
        model.save(out / "baseline")
        train_seconds = time.perf_counter() - t0
        state = {"epochs": 0, "train_events": int(train.n_events)}
    else:
        state = _train_neural(cfg, model, train, valid, out, resume)
        train_seconds = state["train_seconds"]
    metrics: dict = {"family": "session", "dataset": cfg.data.name, "model": cfg.model_name,
                     "train_split": cfg.data.train_split, "n_items": vocab.n_known}
    if valid is not None:
        metrics["valid"] = _evaluate(cfg, model, valid, split_name="valid", context=train)
    metrics["test"] = _evaluate(cfg, model, test, progress=cfg.train.progress, context=train)
    metrics.update(
        train_seconds=train_seconds,
        train_events=state["train_events"],
        train_events_per_s=state["train_events"] / train_seconds if train_seconds > 0 else None,
        epochs=state["epochs"],
        best_epoch=state.get("best_epoch", -1),
        eval_seconds=metrics["test"]["eval_seconds"],
        peak_rss_mb=peak_rss_mb(),
        threads=torch.get_num_threads(),
    )
    save_json(out / "metrics.json", metrics)
    return metrics


def _train_neural(cfg: RunConfig, model, train, valid, out: Path, resume: bool) -> dict:
    from seqrec.models.hrnn import HRNN
    from seqrec.train.hrnn_trainer import HRNNTrainer
    from seqrec.train.logs import RunLog
    from seqrec.train.session_trainer import GRU4RecTrainer

    log = RunLog(out, append=resume)
    trainer_cls = HRNNTrainer if isinstance(model, HRNN) else GRU4RecTrainer
    trainer = trainer_cls(model, cfg, train, log)
    st = fit_resumable(model, trainer, out, valid, resume=resume, log=log)
    return {"train_seconds": st.train_seconds, "train_events": st.train_events, "epochs": st.epoch,
            "best_epoch": st.best_epoch}


# -- loading a run --------------------------------------------------------------------------
class Run:
    """A finished run directory: config, vocabulary and the model ready to score."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise CheckpointError(f"run directory {self.dir} does not exist")
        self.config = load_run_config(raw=load_json(self.dir / "config.json"))
        self.vocab = Vocab.load(self.dir / "vocab.json")
        if not get_model_entry(self.config.model_name).trainable:
            from seqrec.baselines import load_baseline

            self.model = load_baseline(self.dir / "baseline")
        else:
            self.model = build_model(self.config, len(self.vocab))
            self.model.load_state_dict(load_tensors(self.dir / "model.pt"))
            self.model.eval()
        self.user_vocab = (Vocab.load(self.dir / "user_vocab.json")
                           if (self.dir / "user_vocab.json").exists() else None)


def evaluate_run(run_dir: str | os.PathLike, split: str = "test", ties: str | None = None,
                 data_dir: str | None = None) -> dict:
    """Recompute the metrics of a saved run on ``split`` from the checkpoint alone."""
    run = Run(run_dir)
    cfg = run.config
    if data_dir:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=data_dir))
    splits = load_splits(cfg)
    arrays = SessionArrays.from_events(splits.get(split), run.vocab, run.user_vocab)
    context = None
    if run.user_vocab is not None:
        context = SessionArrays.from_events(splits.get(cfg.data.train_split), run.vocab, run.user_vocab)
    return _evaluate(cfg, run.model, arrays, ties=ties, split_name=split, context=context)


def parse_ids(text: str, vocab: Vocab) -> list:
    """Comma-separated raw ids; cast to int when the vocabulary holds ints."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ConfigError("--items is empty: give a comma-separated list of item ids")
    numeric = bool(vocab.ids_) and isinstance(vocab.ids_[0], int)
    out = []
    for p in parts:
        if numeric:
            try:
                out.append(int(p))
                continue
            except ValueError:
                pass
        out.append(p)
    return out


def recommend(run: Run | str | os.PathLike, items: list, k: int = 20, unknown: str = "skip") -> dict:
    """Top-``k`` next items after the session ``items`` (raw ids, in order).

    Unknown ids: ``skip`` (default) leaves them out and reports them;
    ``error`` raises :class:`UnknownIdError`. Items of the session are not excluded
    from the result (repeat clicks are common in these datasets).
    """
    run = run if isinstance(run, Run) else Run(run)
    if k <= 0:
        raise ConfigError(f"-k must be positive, got {k}")
    idx = run.vocab.encode(items, unknown="oov")
    unknown_ids = [items[i] for i in np.flatnonzero(idx == 1)]
    if unknown_ids and unknown == "error":
        raise UnknownIdError(f"item id(s) not in the training vocabulary: {unknown_ids}")
    known = idx[idx != 1]
    if len(known) == 0:
        raise UnknownIdError(f"none of the session's items is known to the model: {items}")
    from seqrec.models.hrnn import HRNN

    if isinstance(run.model, HRNN):
        raise ConfigError("recommend for hrnn needs a user history; use evaluate instead")
    scorer = scorer_for(run.model)
    scorer.begin(1)
    reset = torch.tensor([True])
    with torch.no_grad():
        for i in known:
            scores = scorer.step(torch.tensor([int(i)]), reset)
            reset = torch.tensor([False])
    scores = scores[0].clone()
    scores[:2] = -torch.inf
    k = min(k, run.vocab.n_known)
    top = torch.topk(scores, k)
    return {
        "items": run.vocab.decode(top.indices.tolist()),
        "scores": [float(s) for s in top.values],
        "unknown": unknown_ids,
    }


class SessionFamily(Family):
    name = "session"
    description = "next item in a session (GRU4Rec, HRNN, POP / item-kNN / SKNN)"
    recommend_help = "top-k next items after a session's items"

    def check_data(self, cfg: RunConfig) -> dict:
        import polars as pl

        from seqrec.data.own import event_counts, read_own
        from seqrec.data.split import GivenSplit

        out: dict = {"family": self.name, "dataset": cfg.data.name}
        if cfg.data.path:  # the file as read, before the split's filters
            events = read_own(cfg.data)[0]
            if isinstance(events, GivenSplit):
                events = pl.concat([events.train_full, events.test], how="diagonal")
            out["file"] = event_counts(events)
        splits = load_splits(cfg)
        out["split"] = splits.note
        for part in ("train", "valid", "test", "train_full"):
            out[part] = event_counts(splits.get(part))
        return out

    def train(self, cfg: RunConfig, out: Path, *, resume: bool = False) -> dict:
        return train_run(cfg, out, resume=resume)

    def load_run(self, run_dir, data_dir=None) -> Run:
        return Run(run_dir)

    def evaluate(self, run_dir, *, split="test", ties=None, data_dir=None) -> dict:
        return evaluate_run(run_dir, split=split, ties=ties, data_dir=data_dir)

    def summary(self, cfg: RunConfig, m: dict, out: str) -> str:
        t, ks = m["test"], max(cfg.eval.ks)
        eps = m.get("train_events_per_s")
        return (f"{cfg.model_name} on {cfg.data.name}: test recall@{ks}={t[f'recall@{ks}']:.4f} "
                f"mrr@{ks}={t[f'mrr@{ks}']:.4f} ndcg@{ks}={t[f'ndcg@{ks}']:.4f} "
                f"({t['n_events']} predictions); train {m['train_seconds']:.1f}s"
                + (f" ({eps:,.0f} events/s)" if eps else "") + f"; run written to {out}")

    def recommend(self, run_dir, items, *, k=20, unknown="skip", user=None) -> dict:
        if user is not None:
            raise ConfigError("session models recommend for a session: use --items, not --user")
        run = Run(run_dir)
        return recommend(run, parse_ids(",".join(map(str, items)), run.vocab), k=k, unknown=unknown)


FAMILY = SessionFamily()
