"""The retrieval family: a user (id, features, behaviour history) -> scores over the whole catalogue.

Candidate generation, the first stage of two-stage recommendation (Covington et al. RecSys 2016):
YouTube DNN, NCF, SASRec, MIND, TDM, PinSage and the baselines popularity, ItemCF and MF-BPR.
Data and protocols: :mod:`seqrec.data.tasks.retrieval`; metrics (Recall / NDCG / HitRate @ 10, 20,
50 over all items, the protocol's seen items excluded): :mod:`seqrec.evaluate.retrieval`.

A retrieval run directory holds ``config.json``, ``ids.json`` (raw item ids by index 1..N and raw
user ids by index), ``model.pt``, ``train_state.pt`` (resume), ``metrics.json``, ``log.csv`` /
``tb/`` and, after ``seqrec index``, ``index.faiss`` + ``index.json`` (:mod:`seqrec.serve.index`;
``seqrec recommend`` then serves through the index).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch

from seqrec.config import RunConfig
from seqrec.data.tasks.retrieval import EvalSplit, RetrievalTask
from seqrec.errors import CheckpointError, ConfigError, UnknownIdError
from seqrec.evaluate.retrieval import KS, evaluate_ranking, mask_scores
from seqrec.families.base import Family, peak_rss_mb
from seqrec.models.retrieval_base import RetrievalInfo
from seqrec.registry import get_model_entry
from seqrec.train.checkpoint import (
    clear_run_dir,
    fit_resumable,
    load_json,
    load_tensors,
    save_json,
    save_tensors,
)


def load_task(cfg: RunConfig) -> RetrievalTask:
    """The configured retrieval task (a registered dataset; the files are checked first)."""
    from seqrec.data.registry import get_dataset, require_files

    if cfg.data.prepared:  # `seqrec prepare` output (retrieval-bars): the same task from its lists
        from seqrec.prepare.retrieval_reader import load_prepared_retrieval

        return load_prepared_retrieval(cfg)
    if cfg.data.path:
        raise ConfigError("retrieval models read a registered dataset (data.dataset); [data] path is for "
                          "session, CTR and purchase data")
    entry = get_dataset(cfg.data.dataset, "retrieval")
    return entry.recipes["retrieval"].build(cfg.data.dataset, require_files(entry, cfg.data.data_dir or None),
                                            train_split=cfg.data.train_split, seed=cfg.train.seed)


def info_of(task: RetrievalTask, cfg: RunConfig) -> RetrievalInfo:
    return RetrievalInfo(task.n_users, task.n_items, dict(task.feature_sizes), cfg.data.max_len)


def build_model(cfg: RunConfig, info: RetrievalInfo) -> torch.nn.Module:
    entry = get_model_entry(cfg.model_name)
    if entry.family != "retrieval":
        raise ConfigError(f"model {cfg.model_name!r} is not a retrieval model")
    return entry.model_cls(cfg.model, info)


def user_batch(users: np.ndarray, history: np.ndarray, features: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The user batch every retrieval model scores (see :mod:`seqrec.models.retrieval_base`):
    ``history`` (B, L) left-padded item indices; example age 0 (serving)."""
    return {"user": torch.from_numpy(np.asarray(users, dtype=np.int64)),
            "history": torch.from_numpy(np.asarray(history, dtype=np.int64)),
            "age": torch.zeros(len(users)),
            **{f"feat_{k}": torch.from_numpy(v) for k, v in features.items()}}


def split_batch(task: RetrievalTask, split: EvalSplit, rows: np.ndarray, max_len: int) -> dict[str, torch.Tensor]:
    users = split.users[rows]
    width = int(min(max_len, max(int(split.history.lengths()[rows].max()), 1)))
    return user_batch(users, split.history.padded_tail(rows, width),
                      {k: v[users] for k, v in task.user_features.items()})


def make_scorer(model: torch.nn.Module, task: RetrievalTask, split: EvalSplit, cfg: RunConfig):
    """``rows -> scores`` for :func:`evaluate_ranking`. Two-tower models compute the item vectors
    once and write every batch's scores into one reused buffer (the evaluator masks it in place
    and is done with it before the next batch)."""
    if not getattr(model, "dot_product", False):
        return lambda rows: model.score_all(split_batch(task, split, rows, cfg.data.max_len))
    with torch.no_grad():
        items = model.item_vectors()
    buf = torch.empty(min(cfg.eval.batch_size, max(len(split.users), 1)), items.shape[0], dtype=items.dtype)
    return lambda rows: model.score_all(split_batch(task, split, rows, cfg.data.max_len), items, buf)


def evaluate_split(model: torch.nn.Module, task: RetrievalTask, split: EvalSplit, cfg: RunConfig,
                   ties: str | None = None) -> dict:
    """Full-ranking metrics of ``model`` on ``split`` (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            score = make_scorer(model, task, split, cfg)
            return evaluate_ranking(score, split, ks=KS, batch_size=cfg.eval.batch_size, ties=ties or cfg.eval.ties)
    finally:
        model.train(was_training)


def _save_ids(out: Path, task: RetrievalTask) -> None:
    save_json(out / "ids.json", {"items": [str(x) for x in task.item_ids.tolist()],
                                 "users": [str(x) for x in task.user_ids.tolist()],
                                 "feature_sizes": task.feature_sizes})


def train_retrieval_run(cfg: RunConfig, out: str | os.PathLike, *, resume: bool = False) -> dict:
    from seqrec.distributed import context, seed_ranks
    from seqrec.train.logs import RunLog
    from seqrec.train.objectives import objective_for
    from seqrec.train.retrieval_trainer import RetrievalTrainer

    out = clear_run_dir(out, resume)
    main = context().is_main  # under torchrun rank 0 alone writes and evaluates
    if main:
        out.mkdir(parents=True, exist_ok=True)
    task = load_task(cfg)
    if main:
        save_json(out / "config.json", cfg.to_dict())
        _save_ids(out, task)
    torch.manual_seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    model = build_model(cfg, info_of(task, cfg))
    t0 = time.perf_counter()
    objective = None
    if hasattr(model, "fit_task"):  # closed-form baselines (popularity, ItemCF): rank 0 fits, once
        if not main:
            return {}
        model.fit_task(task)
        train_seconds, n_examples, epochs, best_epoch = time.perf_counter() - t0, int(task.train.indptr[-1]), 0, 0
        save_tensors(out / "model.pt", model.state_dict())
    else:
        log = RunLog(out, append=resume) if main else None
        objective = objective_for(cfg.model_name, model, task, cfg)
        seed_ranks(cfg.train.seed)
        trainer = RetrievalTrainer(model, objective, cfg, lambda s: evaluate_split(model, task, s, cfg), log)
        st = fit_resumable(model, trainer, out, task.valid, resume=resume, log=log)
        train_seconds, n_examples, epochs, best_epoch = st.train_seconds, st.train_events, st.epoch, st.best_epoch
        if not main:
            return {}
    metrics: dict = {"family": "retrieval", "dataset": cfg.data.name, "model": cfg.model_name,
                     "protocol": task.protocol, "train_split": cfg.data.train_split}
    if getattr(objective, "stats", None):  # an objective's own figures (PinSage's graph build)
        metrics["objective"] = dict(objective.stats)
    if task.valid is not None:
        metrics["valid"] = evaluate_split(model, task, task.valid, cfg)
    if cfg.eval.test:
        metrics["test"] = evaluate_split(model, task, task.test, cfg)
    metrics.update({
        "train_seconds": train_seconds, "train_examples": n_examples,
        "train_samples_per_s": n_examples / train_seconds if train_seconds else None,
        "epochs": epochs, "best_epoch": best_epoch,
        "eval_seconds": metrics.get("test", metrics.get("valid", {})).get("eval_seconds"),
        "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads(), "world_size": context().world,
        **task.summary(),
    })
    save_json(out / "metrics.json", metrics)
    return metrics


class RetrievalRun:
    """A finished retrieval run: config, raw ids and the model ready to score."""

    def __init__(self, run_dir: str | os.PathLike, data_dir: str | None = None) -> None:
        from seqrec.config import load_run_config

        self.dir = Path(run_dir)
        for f in ("config.json", "ids.json", "model.pt"):
            if not (self.dir / f).is_file():
                raise CheckpointError(f"{self.dir} is not a finished retrieval run: {f} is missing")
        cfg = load_run_config(raw=load_json(self.dir / "config.json"))
        if data_dir:
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=data_dir))
        self.config = cfg
        ids = load_json(self.dir / "ids.json")
        self.item_ids: list[str] = ids["items"]
        self.user_ids: list[str] = ids["users"]
        self.item_index = {r: i + 1 for i, r in enumerate(self.item_ids)}
        self.user_index = {r: i for i, r in enumerate(self.user_ids)}
        self.feature_sizes: dict[str, int] = dict(ids.get("feature_sizes", {}))
        self._task: RetrievalTask | None = None
        self.info = RetrievalInfo(len(self.user_ids), len(self.item_ids), self.feature_sizes, cfg.data.max_len)
        self.model = build_model(cfg, self.info)
        self.model.load_state_dict(load_tensors(self.dir / "model.pt"))
        self.model.eval()

    @property
    def index(self):
        """The run's faiss index (:class:`seqrec.serve.index.ItemIndex`, after ``seqrec index``), or
        None; CheckpointError when it is stale (``model.pt`` changed since) or torn."""
        from seqrec.serve.index import ItemIndex, file_sha256, has_index

        if not has_index(self.dir):
            return None
        if not getattr(self.model, "dot_product", False):
            raise CheckpointError(f"{self.dir} has an index but {self.config.model_name} does not score by "
                                  "inner products; delete index.faiss and index.json")
        return ItemIndex.load(self.dir, file_sha256(self.dir / "model.pt"))

    def query_vectors(self, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per user of ``batch``: its (K, D) float32 query vectors (K = 1, or its interests in use)."""
        with torch.no_grad():
            u = self.model.user_vectors(batch).detach().float()  # (B, D) or (B, K, D)
            if not self.model.multi_interest:
                return [row[None, :].numpy() for row in u]
            mask = self.model.interest_mask(batch)  # (B, K)
            return [u[b][mask[b]].numpy() for b in range(len(u))]

    @property
    def task(self) -> RetrievalTask:
        if self._task is None:
            self._task = load_task(self.config)
            if [str(x) for x in self._task.item_ids.tolist()] != self.item_ids:
                raise CheckpointError(f"{self.dir}: the data's items no longer match the ones the model was "
                                      "trained on")
        return self._task


def evaluate_retrieval_run(run_dir, split: str = "test", ties: str | None = None, data_dir: str | None = None) -> dict:
    run = RetrievalRun(run_dir, data_dir)
    task = run.task
    return evaluate_split(run.model, task, task.split(split), run.config, ties)


def recommend_retrieval(run_dir, items: list[str] | None = None, *, user: str | None = None, k: int = 20,
                        unknown: str = "skip") -> dict:
    """Top-``k`` items for a known user (its history from the data; seen items excluded) or for a
    history of raw item ids (unknown ids skipped and reported, or an error with ``unknown="error"``)."""
    run = RetrievalRun(run_dir)
    n_items = len(run.item_ids)
    if k > n_items:
        raise ConfigError(f"-k {k} is larger than the catalogue ({n_items} items)")
    unknown_ids: list[str] = []
    if user is not None:
        if user not in run.user_index:
            raise UnknownIdError(f"user {user!r} is not in the training data of {run_dir}")
        task = run.task
        u = run.user_index[user]
        hist = task.test.history.row(int(np.searchsorted(task.test.users, u))) \
            if u in set(task.test.users.tolist()) else task.train.row(u)
        users = np.asarray([u])
        feats = {kk: v[users] for kk, v in task.user_features.items()}
    else:
        items = items or []
        hist = np.asarray([run.item_index[i] for i in items if i in run.item_index], dtype=np.int64)
        unknown_ids = [i for i in items if i not in run.item_index]
        if unknown_ids and unknown == "error":
            raise UnknownIdError(f"item id(s) not in the training data: {unknown_ids}")
        if len(hist) == 0:
            raise UnknownIdError("the history is empty: give at least one known item id with --items "
                                 f"(unknown: {unknown_ids})" if unknown_ids else
                                 "the history is empty: give --user or --items")
        users = np.zeros(1, dtype=np.int64)  # models with user embeddings need --user
        feats = {kk: np.zeros(1, np.int64) for kk in run.feature_sizes}  # unknown user: features unknown
        if getattr(run.model, "needs_user", False):
            raise ConfigError(f"{run.config.model_name} scores known users only: use --user")
    tail = hist[-run.config.data.max_len:]
    batch = user_batch(users, tail[None, :], feats)
    index = run.index
    if index is not None:  # the user side once, then the index (each interest queries it; merged)
        from seqrec.serve.index import top_k_excluding

        idx, vals = top_k_excluding(index, run.query_vectors(batch)[0], k, np.asarray(hist, np.int64))
        return {"items": [run.item_ids[i - 1] for i in idx.tolist()], "scores": vals.tolist(),
                "unknown": unknown_ids, "history_length": len(hist), "index": index.kind}
    from seqrec.data.tasks.retrieval import CSR

    with torch.no_grad():
        scores = run.model.score_all(batch).float()
        mask_scores(scores, CSR(np.asarray([0, len(hist)]), np.asarray(hist, np.int64)), np.zeros(1, np.int64))
        vals, idx = torch.topk(scores[0], k)
    keep = torch.isfinite(vals)
    return {"items": [run.item_ids[i - 1] for i in idx[keep].tolist()], "scores": vals[keep].tolist(),
            "unknown": unknown_ids, "history_length": len(hist), "index": None}


def index_retrieval_run(run_dir, params, *, check: int = 200, seed: int = 0) -> dict:
    """Build the faiss index of a dot-product run's item vectors (rows 1..N), save it in the run
    directory, and measure it on up to ``check`` test users' query vectors: recall of the exact
    top-100 and time per query (batch of 1) against exact scoring of every item."""
    from seqrec.serve.index import ItemIndex, file_sha256

    run = RetrievalRun(run_dir)
    name = run.config.model_name
    if not getattr(run.model, "dot_product", False):
        raise ConfigError(f"{name} does not score by inner products of user and item vectors, so a faiss index "
                          "cannot serve it; seqrec index is for two-tower models (dot_product)")
    with torch.no_grad():
        items = run.model.item_vectors()[1:].detach().float().contiguous()  # (N, D); row 0 is padding
    index = ItemIndex.build(items.numpy(), params, seed=seed)
    meta = index.save(run.dir, file_sha256(run.dir / "model.pt"))
    out = {"path": str(run.dir / "index.faiss"), "model": name, **meta}
    out["check"] = _check_index(run, index, items, check, seed) if check > 0 else None
    return out


def _check_index(run: RetrievalRun, index, items: torch.Tensor, n: int, seed: int) -> dict | None:
    from seqrec.errors import DataNotFoundError

    try:
        task = run.task
    except DataNotFoundError:
        return None  # the data is gone: the index is built, only the check is skipped
    split = task.test
    rows = np.sort(np.random.default_rng(seed).choice(len(split), min(n, len(split)), replace=False))
    queries = np.concatenate(run.query_vectors(split_batch(task, split, rows, run.config.data.max_len)))
    k = min(100, index.n_items)
    q = torch.from_numpy(queries)
    t0 = time.perf_counter()
    exact = [torch.topk(q[i:i + 1] @ items.T, k).indices + 1 for i in range(len(q))]  # (1, k) each
    t_exact = (time.perf_counter() - t0) / len(q)
    t0 = time.perf_counter()
    found = [index.search(queries[i:i + 1], k)[0] for i in range(len(q))]
    t_index = (time.perf_counter() - t0) / len(q)
    recall = float(np.mean([len(set(a.ravel().tolist()) & set(e.ravel().tolist())) / k
                            for a, e in zip(found, exact, strict=True)]))
    return {"queries": len(q), "k": k, "recall": recall, "index_ms_per_query": 1e3 * t_index,
            "exact_ms_per_query": 1e3 * t_exact, "split": "test"}


class RetrievalFamily(Family):
    name = "retrieval"
    description = "a user (id, features, history) -> scores over the whole catalogue (candidate generation)"
    recommend_help = "top-k of the whole catalogue for --user ID or a history --items ID,ID,..."

    def check_data(self, cfg: RunConfig) -> dict:
        return {"family": self.name, "dataset": cfg.data.name, **load_task(cfg).summary()}

    def train(self, cfg: RunConfig, out: Path, *, resume: bool = False) -> dict:
        return train_retrieval_run(cfg, out, resume=resume)

    def load_run(self, run_dir, data_dir=None) -> RetrievalRun:
        return RetrievalRun(run_dir, data_dir)

    def evaluate(self, run_dir, *, split="test", ties=None, data_dir=None) -> dict:
        return evaluate_retrieval_run(run_dir, split=split, ties=ties, data_dir=data_dir)

    def summary(self, cfg: RunConfig, m: dict, out: str) -> str:
        sps = m.get("train_samples_per_s")
        if "test" not in m and "valid" not in m:  # train_full with eval.test = false (e.g. a pretraining run)
            return (f"{cfg.model_name} on {cfg.data.name}: not evaluated (no validation split, eval.test = "
                    f"false); train {m['train_seconds']:.1f}s" + (f" ({sps:,.0f} examples/s)" if sps else "")
                    + f"; run written to {out}")
        part = "test" if "test" in m else "valid"
        t = m[part]
        return (f"{cfg.model_name} on {cfg.data.name}: {part} recall@20={t['recall@20']:.4f} "
                f"ndcg@20={t['ndcg@20']:.4f} hitrate@20={t['hitrate@20']:.4f} ({t['n_users']} users, "
                f"all {m['items']:,} items ranked in {t['eval_seconds']:.1f}s); train {m['train_seconds']:.1f}s"
                + (f" ({sps:,.0f} examples/s)" if sps else "") + f"; run written to {out}")

    def recommend(self, run_dir, items, *, k=20, unknown="skip", user=None) -> dict:
        return recommend_retrieval(run_dir, items, user=user, k=k, unknown=unknown)

    def index(self, run_dir, params, *, check: int = 200) -> dict:
        return index_retrieval_run(run_dir, params, check=check)


FAMILY = RetrievalFamily()
