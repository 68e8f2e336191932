"""DUPN's tasks on the Taobao UserBehavior sample: one behaviour log, five binary tasks.

DUPN (Ni et al. KDD 2018) learns one user representation from Taobao's search logs with four
tasks (CTR, learning to rank, fashion-icon-follow prediction, purchase-power prediction) and
tests transfer on a fifth (shop preference). The staged sample (814 users, pv / cart / fav /
buy with category and time, nine days) has no search queries, impressions, shops, fashion
icons or purchase-power labels, so each task is its closest honest equivalent here:

* ``ctr``  — at a click (pv), the clicked item (1) vs an item the user never clicked, drawn
  uniformly from the items someone touched **that day** (0; a stand-in for the day's
  impressions, which the sample does not have). No query.
* ``l2r``  — at a click, rank the clicked item (1) above an unclicked item **of the same
  category** someone touched that day (0); the query is that category (a search for it:
  the paper's L2R ranks the items of one query). Both are pointwise rows of a pair, scored by
  AUC and GAUC.
* ``pref`` — at a cart / fav, the item carted or faved (1) vs an item the user viewed
  earlier that day but never carted, faved or bought (0); stands in for FIFP (a preference the user
  declares, rarer than a click). No query.

Negatives are drawn among the log's raw items **of the positive's day** and then encoded like
the positives, so an item first seen on the test day is out of vocabulary whichever side it is
on, about as often. (Drawing them from the vocabulary instead made "the candidate is OOV" alone
score test AUC 0.83-0.88: two thirds of test-day positives are new items and no negative was;
the test ``tests/models/test_dupn_contract.py`` keeps that rule near 0.5.) Rows without such a
negative are left out.
* ``buy``  — at the start of a day, will the user buy anything that day; one row per user and
  day with history (no candidate); stands in for PPP (a property of the user, not of an item).
* ``cat_buy`` — the held-out transfer task (the paper's fifth): at the start of a day, will the
  user buy from category c that day, for each of the (up to 5) most recent distinct
  categories of the history; the query and candidate category are c.

A pv position goes to ``ctr`` or ``l2r`` by a seeded coin (half each) so the two tasks do not
repeat the same histories. Every row has the history before its cut (the event, or the day
start): the most recent ``max_len`` behaviours with item, category, behaviour type and the
time gap to the cut in log2-minute buckets. A row carries ``label_<task>`` for its own task
and -1 for the others (the trainer and the metrics skip -1), its ``task`` index, ``user``,
``user_key`` (the raw user id: GAUC groups by it, users unseen before the test day share the
OOV ``user`` id) and ``day`` (0 = 2017-11-25, UTC+8).

Split by day: test = the day ``test_day`` (default the last, 2017-12-03), valid = the day
before, train = the earlier days (``train_from_day`` drops older training rows: a daily
incremental update trains on one day). The vocabularies hold the ids of the log **before the
test day** in order of first appearance (time order), so the vocabulary of fewer days is a
prefix of the vocabulary of more days (old ids keep their rows when tables grow) and ids first
seen on the test day are out of vocabulary (1), as they would be in production.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from seqrec.data.tasks.ctr import BEHAVIOURS, DAY, _gather, _histories
from seqrec.data.tasks.multitask import MultiTaskData
from seqrec.data.vocab import Vocab
from seqrec.errors import ConfigError, DataValidationError
from seqrec.schema import Feature, Schema, Table

TAOBAO_TASKS = ("ctr", "l2r", "pref", "buy", "cat_buy")
DEFAULT_TASKS = ("ctr", "l2r", "pref", "buy")  # the four joint tasks; cat_buy is held out
GAP_BUCKETS = 15  # log2(minutes + 1) in 0..14, ids 2..16
PV, CART, FAV, BUY = (BEHAVIOURS.index(b) + 2 for b in ("pv", "cart", "fav", "buy"))
CAT_CANDIDATES = 5


def gap_bucket(seconds: np.ndarray) -> np.ndarray:
    """Time gap (seconds, >= 0) -> bucket id 2 + min(floor(log2(minutes + 1)), 14)."""
    minutes = np.maximum(seconds, 0.0) / 60.0
    return (2 + np.minimum(np.floor(np.log2(minutes + 1.0)), GAP_BUCKETS - 1)).astype(np.int64)


def schema_of(n_items: int, n_cates: int, n_users: int, max_len: int, dim: int = 16) -> Schema:
    """The features of every row (DIN reads the same schema: ``item`` / ``cate`` pair with the
    history, ``user`` and ``query`` are other fields)."""
    tables = (Table("item", n_items, dim), Table("cate", n_cates, dim), Table("user", n_users, dim),
              Table("query", n_cates, dim), Table("btype", len(BEHAVIOURS) + 2, dim),
              Table("gap", GAP_BUCKETS + 2, dim))
    feats = (Feature("user", "sparse", "user"), Feature("item", "sparse", "item"), Feature("cate", "sparse", "cate"),
             Feature("query", "sparse", "query"),
             Feature("hist_item", "sequence", "item", max_len=max_len),
             Feature("hist_cate", "sequence", "cate", max_len=max_len),
             Feature("hist_btype", "sequence", "btype", max_len=max_len),
             Feature("hist_gap", "sequence", "gap", max_len=max_len))
    return Schema(tables=tables, features=feats, label=f"label_{DEFAULT_TASKS[0]}", user="user")


class _Log:
    """The encoded log, sorted by (user, time): arrays and per-event user start."""

    def __init__(self, df: pl.DataFrame, day0: float, vocab_days: int) -> None:
        df = df.with_columns(day=((pl.col("timestamp") - day0) // DAY).cast(pl.Int64))
        known = df.filter(pl.col("day") < vocab_days).sort("timestamp", "user_id", maintain_order=True)
        if known.height == 0:
            raise DataValidationError("taobao: no event before the test day; nothing to build a vocabulary from")
        self.vocabs = {"item": Vocab(name="item").fit(known["item_id"].unique(maintain_order=True)),
                       "cate": Vocab(name="cate").fit(known["category_id"].unique(maintain_order=True)),
                       "user": Vocab(name="user").fit(known["user_id"].unique(maintain_order=True))}
        df = df.sort("user_id", "timestamp", maintain_order=True)
        self.users = self.vocabs["user"].encode_series(df["user_id"])
        self.raw_users = df["user_id"].to_numpy()
        self.items = self.vocabs["item"].encode_series(df["item_id"])
        self.cates = self.vocabs["cate"].encode_series(df["category_id"])
        self.btype = df["event_type"].replace_strict({b: i + 2 for i, b in enumerate(BEHAVIOURS)},
                                                     return_dtype=pl.Int64).to_numpy()
        self.times = df["timestamp"].to_numpy().astype(np.float64)
        self.days = df["day"].to_numpy()
        new_user = np.r_[True, self.raw_users[1:] != self.raw_users[:-1]]
        self.user_first = np.flatnonzero(new_user)
        self.start = np.maximum.accumulate(np.where(new_user, np.arange(len(new_user)), 0))
        self.n_items = len(self.vocabs["item"])
        self.item_cate = np.ones(self.n_items, dtype=np.int64)
        self.item_cate[0] = 0
        known_item = self.items > 1
        self.item_cate[self.items[known_item]] = self.cates[known_item]
        # every item of the log, known or not (negatives are drawn here, then encoded: an item first
        # seen on the test day is out of vocabulary whether it is a positive or a negative)
        raw_items = df["item_id"].to_numpy()
        _, self.g = np.unique(raw_items, return_inverse=True)  # (events,) global item index
        self.n_g = int(self.g.max()) + 1
        self.g_item = np.ones(self.n_g, np.int64)
        self.g_item[self.g] = self.items
        self.g_cate = np.ones(self.n_g, np.int64)
        self.g_cate[self.g] = self.cates  # an item's category: the one it was last seen with
        _, self.u = np.unique(self.raw_users, return_inverse=True)  # dense raw-user index
        self.u = self.u.astype(np.int64)

    def keys(self, mask: np.ndarray) -> np.ndarray:
        """Sorted (user, global item) keys of the events in ``mask``."""
        return np.unique(self.u[mask] * self.n_g + self.g[mask])

    def rows(self, cut: np.ndarray, cut_time: np.ndarray, max_len: int,
             first: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """History columns of rows whose history is the events before index ``cut`` of the user
        whose first event is ``first`` (default: the user of event ``cut``; a day cut past a
        user's last event points at the next user's first event, so day rows pass ``first``)."""
        first = self.start[cut] if first is None else first
        hidx, _ = _histories(self.items, first, cut, max_len)
        gap = cut_time[:, None] - np.where(hidx >= 0, self.times[np.maximum(hidx, 0)], 0.0)
        return {"user": self.users[first], "user_key": self.raw_users[first].astype(np.int64),
                "hist_item": _gather(self.items, hidx),
                "hist_cate": _gather(self.cates, hidx), "hist_btype": _gather(self.btype, hidx),
                "hist_gap": np.where(hidx >= 0, gap_bucket(gap), 0)}


def _pairs(cols: dict, pos_g: np.ndarray, neg_g: np.ndarray, log: _Log) -> dict:
    """Each row twice: with its positive and with its negative item (global indices, encoded here)."""
    n = len(pos_g)
    out = {k: np.repeat(v, 2, axis=0) for k, v in cols.items()}
    g = np.stack([pos_g, neg_g], 1).reshape(-1)
    out["item"], out["cate"] = log.g_item[g], log.g_cate[g]
    out["label"] = np.tile(np.array([1.0, 0.0], dtype=np.float32), n)
    return out


def _in(keys: np.ndarray, q: np.ndarray) -> np.ndarray:
    at = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
    return keys[at] == q


def _draw(pools: np.ndarray, lo: np.ndarray, hi: np.ndarray, ok_fn, rng, rounds: int = 30):
    """For each row, an element of ``pools[lo:hi]`` accepted by ``ok_fn(rows, draws)``; rows
    without one after ``rounds`` tries are left out (returned mask)."""
    out = np.zeros(len(lo), np.int64)
    ok = np.zeros(len(lo), bool)
    todo = np.flatnonzero(hi > lo)
    for _ in range(rounds):
        if len(todo) == 0:
            break
        d = pools[lo[todo] + (rng.random(len(todo)) * (hi[todo] - lo[todo])).astype(np.int64)]
        good = ok_fn(todo, d)
        out[todo[good]], ok[todo[good]] = d[good], True
        todo = todo[~good]
    return out, ok


def _day_negatives(log: _Log, pos: np.ndarray, rng):
    """For each click position, an item some user touched **on the same day** that this user
    never clicked (a stand-in for what was on display that day)."""
    day_items = np.unique(np.stack([log.days, log.g], 1), axis=0)  # sorted by (day, item)
    off = np.searchsorted(day_items[:, 0], np.arange(log.days.max() + 2))
    d = log.days[pos]
    clicked = log.keys(log.btype == PV)
    return _draw(day_items[:, 1], off[d], off[d + 1],
                 lambda r, x: ~_in(clicked, log.u[pos[r]] * log.n_g + x), rng)


def _same_category_negatives(log: _Log, pos: np.ndarray, rng):
    """For each click position, an item of its category that someone touched the same day and
    that its user never clicked; rows without one are left out."""
    trip = np.unique(np.stack([log.days, log.g_cate[log.g], log.g], 1), axis=0)  # sorted (day, cate, item)
    key = trip[:, 0] * (log.g_cate.max() + 2) + trip[:, 1]
    d, c = log.days[pos], log.g_cate[log.g[pos]]
    q = d * (log.g_cate.max() + 2) + c
    clicked = log.keys(log.btype == PV)
    return _draw(trip[:, 2], np.searchsorted(key, q, "left"), np.searchsorted(key, q, "right"),
                 lambda r, x: ~_in(clicked, log.u[pos[r]] * log.n_g + x), rng)


def _viewed_negatives(log: _Log, pos: np.ndarray, rng):
    """For each cart / fav position, an item its user viewed earlier **the same day** and never
    carted, faved or bought (anywhere in the log); rows whose user has none are left out."""
    engaged = log.keys(log.btype != PV)
    out = np.zeros(len(pos), dtype=np.int64)
    ok = np.zeros(len(pos), dtype=bool)
    for r, p in enumerate(pos):
        s = max(log.start[p], int(np.searchsorted(log.days[log.start[p]:p], log.days[p])) + log.start[p])
        cand = log.g[s:p][log.btype[s:p] == PV]
        if len(cand):
            cand = cand[~_in(engaged, log.u[p] * log.n_g + cand)]
        if len(cand):
            out[r], ok[r] = cand[rng.integers(len(cand))], True
    return out, ok


def _day_cuts(log: _Log, n_days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user-first-event index u, day d, cut index) for every user and day d >= 1 with history
    before the day start."""
    us, ds, cuts = [], [], []
    for f, e in zip(log.user_first, np.r_[log.user_first[1:], len(log.days)], strict=True):
        first_day = np.searchsorted(log.days[f:e], np.arange(n_days), side="left") + f  # first index with day >= d
        for d in range(1, n_days):
            if first_day[d] > f:
                us.append(f), ds.append(d), cuts.append(first_day[d])
    return np.asarray(us, np.int64), np.asarray(ds, np.int64), np.asarray(cuts, np.int64)


def build_rows(log: _Log, tasks: tuple[str, ...], *, max_len: int, day0: float, n_days: int,
               seed: int) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    has_hist = np.arange(len(log.users)) > log.start
    out: dict[str, dict] = {}
    clicks = np.flatnonzero(has_hist & (log.btype == PV))
    to_ctr = rng.random(len(clicks)) < 0.5
    for task, pos, negatives in (("ctr", clicks[to_ctr], _day_negatives), ("l2r", clicks[~to_ctr], _same_category_negatives),
                                 ("pref", np.flatnonzero(has_hist & ((log.btype == CART) | (log.btype == FAV))),
                                  _viewed_negatives)):
        if task not in tasks:
            continue
        neg, ok = negatives(log, pos, rng)
        p, neg = pos[ok], neg[ok]
        query = log.g_cate[log.g[p]] if task == "l2r" else np.zeros(len(p), np.int64)
        out[task] = _pairs({**log.rows(p, log.times[p], max_len), "query": query, "day": log.days[p]},
                           log.g[p], neg, log)
    if "buy" in tasks or "cat_buy" in tasks:
        first, day, cut = _day_cuts(log, n_days)
        cut_time = day0 + day * DAY
        buy_idx = np.flatnonzero(log.btype == BUY)
        buy_key = np.unique(log.raw_users[buy_idx].astype(np.int64) * n_days + log.days[buy_idx])
        key = log.raw_users[first].astype(np.int64) * n_days + day
        if "buy" in tasks:
            cols = {**log.rows(cut, cut_time, max_len, first), "query": np.zeros(len(cut), np.int64),
                    "item": np.zeros(len(cut), np.int64), "cate": np.zeros(len(cut), np.int64), "day": day}
            cols["label"] = np.isin(key, buy_key).astype(np.float32)
            out["buy"] = cols
        if "cat_buy" in tasks:
            out["cat_buy"] = _category_rows(log, first, day, cut, cut_time, max_len, n_days)
    return out


def _category_rows(log: _Log, first, day, cut, cut_time, max_len: int, n_days: int) -> dict:
    """One row per (user, day, recent category): bought from it that day?"""
    base = log.rows(cut, cut_time, max_len, first)
    buy_idx = np.flatnonzero((log.btype == BUY) & (log.cates > 1))
    bought = np.unique(((log.raw_users[buy_idx].astype(np.int64) * n_days + log.days[buy_idx]) << 24)
                       + log.cates[buy_idx])
    rows, cates = [], []
    for r in range(len(cut)):
        h = base["hist_cate"][r]
        h = h[h > 1][::-1]  # most recent first
        _, at = np.unique(h, return_index=True)
        recent = h[np.sort(at)][:CAT_CANDIDATES]
        rows.append(np.full(len(recent), r)), cates.append(recent)
    rows, cates = np.concatenate(rows), np.concatenate(cates)
    cols = {k: v[rows] for k, v in base.items()}
    key = ((log.raw_users[first[rows]].astype(np.int64) * n_days + day[rows]) << 24) + cates
    cols.update(query=cates, cate=cates, item=np.zeros(len(rows), np.int64), day=day[rows],
                label=np.isin(key, bought).astype(np.float32))
    return cols


def n_days() -> int:
    """Days in the official window (2017-11-25 .. 2017-12-03, UTC+8)."""
    from seqrec.data.readers.raw_logs import TAOBAO_END, TAOBAO_START

    return int(round((TAOBAO_END - TAOBAO_START) / DAY))


def resolve_test_day(test_day: int) -> int:
    """``data.multitask.test_day`` (-1 = the last day) checked: a ConfigError outside [2, last]."""
    last = n_days() - 1
    day = last if test_day < 0 else test_day
    if not 2 <= day <= last:
        raise ConfigError(f"data.multitask: test_day must be in [2, {last}] (or -1, the last); got {test_day}")
    return day


def load_log(folder: Path, test_day: int) -> _Log:
    """The encoded log of the staged sample up to the end of ``test_day`` (vocabularies of the days
    before it): what the rows of a run with that test day are built from."""
    from seqrec.data.readers.raw_logs import (
        TAOBAO_FILE,
        TAOBAO_START,
        in_taobao_window,
        read_taobao_raw,
    )

    path = Path(folder) / TAOBAO_FILE
    df = in_taobao_window(read_taobao_raw(path), path).filter(pl.col("timestamp") < TAOBAO_START + (test_day + 1) * DAY)
    return _Log(df, TAOBAO_START, vocab_days=test_day)


def taobao_multitask(name: str, folder: Path, *, tasks: tuple[str, ...] = (), test_day: int = -1,
                     train_from_day: int = 0, max_len: int = 30, dim: int = 16, seed: int = 0) -> MultiTaskData:
    """Build the rows (see the module docstring) from the staged UserBehavior sample."""
    from seqrec.data.readers.raw_logs import TAOBAO_START

    tasks = tuple(tasks) or DEFAULT_TASKS
    unknown = [t for t in tasks if t not in TAOBAO_TASKS]
    if unknown or len(set(tasks)) != len(tasks):
        raise ConfigError(f"data.multitask.tasks: {list(tasks)}; choose distinct tasks from {list(TAOBAO_TASKS)}")
    test_day = resolve_test_day(test_day)
    if not 0 <= train_from_day <= test_day - 2:
        raise ConfigError(f"data.multitask: train_from_day must be in [0, test_day - 2]; got {train_from_day} "
                          f"with test_day {test_day}")
    log = load_log(folder, test_day)
    per_task = build_rows(log, tasks, max_len=max_len, day0=TAOBAO_START, n_days=test_day + 1, seed=seed)
    parts = []
    for k, t in enumerate(tasks):
        cols = per_task[t]
        label = cols.pop("label")
        cols["task"] = np.full(len(label), k, np.int64)
        for u in tasks:
            cols[f"label_{u}"] = label if u == t else np.full(len(label), -1.0, np.float32)
        parts.append(cols)
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    day = data["day"]
    split = {"train": (day < test_day - 1) & (day >= train_from_day), "valid": day == test_day - 1,
             "test": day == test_day}
    out = {}
    for part, m in split.items():
        if not m.any():
            raise DataValidationError(f"{name}: the day split leaves no {part} rows (test_day = {test_day})")
        out[part] = {k: v[m] for k, v in data.items()}
    v = log.vocabs
    schema = schema_of(len(v["item"]), len(v["cate"]), len(v["user"]), max_len, dim)
    mt = MultiTaskData(name, schema, tasks, out["train"], out["valid"], out["test"])
    mt.vocabs, mt.item_cate = v, log.item_cate
    return mt
