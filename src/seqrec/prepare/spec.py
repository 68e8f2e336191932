"""What ``seqrec prepare`` builds: the stages of every family, specified once here and
implemented twice (:mod:`seqrec.prepare.polars_engine`, :mod:`seqrec.prepare.spark_engine`).

Recipes (``Job.kind``) and their stages:

``session-given`` (SR-GNN folders: diginetica, yoochoose1_64, retailrocket). Read the pickles
(:mod:`seqrec.data.readers.srgnn`, on the driver for both engines: a pickle is not a table a
cluster can split) into the canonical table with an ordinal ``_row``; valid = the last
``valid_fraction`` of ``train_full``'s sessions in row order (``round(n * (1 - f))`` sessions
stay, Python's rounding), then :func:`~seqrec.data.split.restrict_to_train` (train sessions
< 2 events dropped, held-out events on items absent from train dropped, held-out sessions < 2
dropped); test and train_full as given. Item vocabulary: the items of ``data.train_split`` in
first-seen order of the canonical table (sessions by first event, then row): the session
family's own ``Vocab.fit(unique(maintain_order=True))``. Rows: ``session_id, item_id, item``
(vocabulary index, OOV 1), ``timestamp``; splits train, valid, test, train_full.

``ctr-amazon`` (amazon_beauty, amazon_sports): the ``amazon_ctr`` recipe
(:mod:`seqrec.data.tasks.ctr`). Lines ``user item item ...``; vocabularies sorted by raw id
(items: the sequences' and the attribute file's); category = first listed attribute. For every
user and position p >= 1: history = items before p (the most recent ``max_len``), label-1 row
with the item at p and a label-0 row with a hashed negative; leave-one-out by position from the
end (last -> test, second last -> valid).

``ctr-log`` (taobao, your own log with ``[data] path``): the ``log_ctr`` recipe. Events sorted
by (user, time, file row), sessions cut at gaps > ``session_gap`` with global ids in that order,
vocabularies sorted by raw id, one row pair per click with an earlier behaviour, split by the
target's day period (``floor((t - day0) / (test_days * 86400))``: the last -> test, the one
before -> valid). ``item_cate`` = the category of each item's last event in that order (what the
in-memory recipe's array assignment keeps when an item has two categories).

``retrieval-bars`` (gowalla, movielens1m_m1): the ``bars_task`` recipe. Users = union of the
files' users sorted (index 0..), items = sorted raw ids (index 1..N); rows ``user, items``
(train: every user, the sorted unique train items) and ``user, items`` (test: per test line,
the targets). ``data.train_split = "train"`` holds out ``max(1, round(len * 0.1))`` items of
every user with >= 2 (the items with the smallest ``mix(seed, HOLDOUT_SALT, user, item)``) as
``valid``. Vocabulary files hold the raw ids in index order (items: index = position + 1).

``multitask-taobao`` (taobao, family multitask): the ``taobao_multitask`` recipe
(:mod:`seqrec.data.tasks.taobao_multitask`, DUPN's tasks ``data.multitask.tasks``). The log in the
official window up to the end of ``test_day``; ``day = floor((t - day0) / 86400)``; vocabularies
= the ids of the days before ``test_day`` in first-seen order (time, user, file row). Events in
(user, time, file row) order with ``pos`` within the user; an item's category (``cate`` of a
candidate, the ``l2r`` pool and query) = the encoded category of its last event in that order.
Rows: ``ctr`` / ``l2r`` at a click with history (a hashed coin, ``mix(seed, MT_COIN, user_key,
pos) mod 2`` = 0: ctr), ``pref`` at a cart / fav with history, each a pair (label 1 the event's
item, label 0 the negative; rows without a negative left out); ``buy`` per user and day
1..test_day with earlier events (label: bought that day) and ``cat_buy`` per such row and each
of the (up to 5) most recent distinct known categories of its history (label: bought from it
that day). Histories: the most recent ``max_len`` (the recipe's 30) events before the cut,
``hist_gap`` = ``2 + #{k in 1..14: gap >= 60 (2^k - 1)}`` (the recipe's log2-minute bucket,
exact in integers). Columns: the recipe's features, ``day``, ``task`` (index in the configured
tasks), ``label_<task>`` (-1 on other tasks' rows), ``user_key`` (the raw user: the shard key)
and ``pos`` (the event, or the day's cut); split by day (test = ``test_day``, valid = the day
before, train = ``train_from_day`` .. the day before that).

Deliberate differences from the in-memory recipes (everything else is equal, tested):
negatives come from :mod:`seqrec.prepare.hashing` instead of numpy's generator: the target's
negative is the first of ``NEG_ATTEMPTS`` hashed candidates ``2 + mix(seed, 0, user, pos, a) mod
(items - 2)`` its user never touched (amazon: any event; log: clicks); when all fail the last
candidate is kept and counted in the manifest (``negatives_touched``). DIEN's per-position
negatives are drawn once per (user, event) with stream 1 and gathered like the history, so an
event has the same negative in every history that holds it. The BARS validation hold-out and
the shuffled history order of evaluation come from the hash / are left to the reader.
``multitask-taobao``: the ctr / l2r coin and every negative are hashed (streams ``MT_*``): ctr
and l2r try ``MT_ATTEMPTS`` (the recipe's 30 rounds) candidates ``pool[mix(seed, stream,
user_key, pos, a) mod len(pool)]`` of the pool (the day's raw items, or the day's items of the
positive's category, sorted by raw id) and keep the first its user never clicked, or leave the
row out; pref takes candidate ``mix(seed, MT_PREF, user_key, pos) mod n`` of the n same-day
earlier views its user never engaged with (in event order), so its rows are exactly the
recipe's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqrec.data.vocab import Vocab
from seqrec.errors import ConfigError, DataValidationError

NEG_ATTEMPTS = 8
KINDS = ("session-given", "ctr-amazon", "ctr-log", "retrieval-bars", "multitask-taobao")
MT_ATTEMPTS = 30  # ctr / l2r negatives: candidates tried (the in-memory recipe's rounds)
MT_COIN, MT_CTR, MT_L2R, MT_PREF = 21, 22, 23, 24  # hash streams of the multi-task recipe


@dataclass
class Job:
    """One prepare run: the family, the recipe kind and its inputs (resolved from a config)."""

    family: str
    kind: str
    dataset: str
    folder: Path | None  # a registered dataset's folder (None for your own file)
    params: dict[str, Any]
    data_config: dict
    own: Any = None  # the DataConfig when the log is your own file
    files: list[Path] = field(default_factory=list)


@dataclass
class Result:
    """What an engine hands the writer: frames per split, vocabularies and counts."""

    splits: dict[str, Any]  # split -> polars LazyFrame/DataFrame or Spark DataFrame
    vocabs: dict[str, Vocab]
    item_cate: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


def resolve(cfg) -> Job:
    """The :class:`Job` of a run config; a ConfigError when its dataset has no prepare recipe."""
    import dataclasses

    from seqrec.data.registry import get_dataset, require_files

    family = cfg.family
    dc = cfg.data
    data_cfg = dataclasses.asdict(dc)
    params = {"max_len": dc.max_len, "seed": cfg.train.seed, "train_split": dc.train_split}
    if dc.path:
        if family != "ctr":
            raise ConfigError(f"seqrec prepare: your own data (data.path) is prepared for the ctr family only; "
                              f"model {cfg.model_name!r} is {family}")
        from seqrec.data.own import _not_registered

        _not_registered(dc)
        params.update(session_gap=dc.session_gap, test_days=dc.split.test_days, day0=None)
        return Job(family, "ctr-log", dc.name, None, params, data_cfg, own=dc, files=[Path(dc.path)])
    entry = get_dataset(dc.dataset, family)
    rec = entry.recipes[family]
    kind = None
    if family == "session" and getattr(rec.read, "__name__", "") == "read_srgnn_folder":
        kind = "session-given"
        params.update(valid_fraction=rec.split.valid_fraction, min_session_length=rec.split.min_session_length)
    elif family == "ctr" and dc.dataset.startswith("amazon_"):
        kind = "ctr-amazon"
    elif family == "ctr" and dc.dataset == "taobao":
        from seqrec.data.readers.raw_logs import SESSION_GAP, TAOBAO_START

        kind = "ctr-log"
        params.update(session_gap=SESSION_GAP, test_days=1.0, day0=float(TAOBAO_START))
    elif family == "retrieval" and "BARS" in rec.how:
        kind = "retrieval-bars"
        params.update(valid_fraction=0.1)
    elif family == "multitask" and dc.dataset == "taobao":
        kind = "multitask-taobao"
        params.update(multitask_params(dc.multitask))
    if kind is None:
        raise ConfigError(f"seqrec prepare has no {family} recipe for dataset {dc.dataset!r}; it prepares "
                          "session: SR-GNN folders (diginetica, yoochoose1_64, retailrocket); ctr: amazon_*, "
                          "taobao, your own log; retrieval: gowalla, movielens1m_m1; multitask: taobao")
    folder = require_files(entry, dc.data_dir or None)
    return Job(family, kind, dc.dataset, folder, params, data_cfg, files=[folder / f for f in entry.files])


def multitask_params(mt) -> dict[str, Any]:
    """The ``multitask-taobao`` parameters of ``[data.multitask]``, checked as the recipe checks them
    (histories of the recipe's own ``max_len``, which the multi-task family does not configure)."""
    import inspect

    from seqrec.data.tasks.taobao_multitask import (
        DEFAULT_TASKS,
        TAOBAO_TASKS,
        resolve_test_day,
        taobao_multitask,
    )

    tasks = tuple(mt.tasks) or DEFAULT_TASKS
    unknown = [t for t in tasks if t not in TAOBAO_TASKS]
    if unknown or len(set(tasks)) != len(tasks):
        raise ConfigError(f"data.multitask.tasks: {list(tasks)}; choose distinct tasks from {list(TAOBAO_TASKS)}")
    test_day = resolve_test_day(mt.test_day)
    if not 0 <= mt.train_from_day <= test_day - 2:
        raise ConfigError(f"data.multitask: train_from_day must be in [0, test_day - 2]; got {mt.train_from_day} "
                          f"with test_day {test_day}")
    max_len = inspect.signature(taobao_multitask).parameters["max_len"].default
    return {"tasks": list(tasks), "test_day": test_day, "train_from_day": mt.train_from_day, "max_len": max_len}


# -- small inputs read on the driver, the same for both engines --------------------------------------


def amazon_attributes(path: Path) -> dict[int, int | None]:
    """``item2attributes.json``: raw item id -> its first attribute (the category), None if none."""
    try:
        attrs = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataValidationError(f"{path}: not a readable JSON object ({exc})") from None
    if not isinstance(attrs, dict):
        raise DataValidationError(f"{path}: expected a JSON object item id -> attribute list")
    out: dict[int, int | None] = {}
    for k, v in attrs.items():
        try:
            item = int(k)
        except ValueError:
            raise DataValidationError(f"{path}: key {k!r} is not an integer item id") from None
        if not isinstance(v, list) or (v and not isinstance(v[0], int)):
            raise DataValidationError(f"{path}: item {k}: expected a list of integer attributes, got {v!r:.60}")
        out[item] = v[0] if v else None
    return out


def amazon_item_cate(item_vocab: Vocab, cate_vocab: Vocab, attrs: dict[int, int | None]) -> np.ndarray:
    """The category index of every item index (0 padding, OOV 1 for items without attributes)."""
    item_cate = np.ones(len(item_vocab), dtype=np.int64)
    item_cate[0] = 0
    listed = [(k, v) for k, v in attrs.items() if v is not None]
    if listed:
        idx = item_vocab.encode([k for k, _ in listed])
        item_cate[idx] = cate_vocab.encode([v for _, v in listed])
    return item_cate


def srgnn_tables(folder: Path):
    """The SR-GNN folder as two polars tables with an ordinal ``_row`` (train_full, test)."""
    import polars as pl

    from seqrec.data.readers.srgnn import read_srgnn_folder

    given = read_srgnn_folder(folder)
    tf = given.train_full.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    te = given.test.with_row_index("_row", offset=tf.height).with_columns(pl.col("_row").cast(pl.Int64))
    return tf, te


def n_train_sessions(n_sessions: int, fraction: float) -> int:
    """Sessions kept by :func:`~seqrec.data.split.tail_sessions_split` (Python's rounding)."""
    return int(round(n_sessions * (1.0 - fraction)))


def schema_of(job: Job, vocabs: dict[str, Vocab], dim: int = 18):
    """The CTR feature schema of the prepared samples (the in-memory recipe's ``_schema``)."""
    from seqrec.data.tasks.ctr import _schema

    return _schema(len(vocabs["item"]), len(vocabs["cate"]), len(vocabs["user"]), job.params["max_len"], dim,
                   btypes=job.kind == "ctr-log")
