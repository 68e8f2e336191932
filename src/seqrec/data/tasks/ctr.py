"""CTR samples with behaviour histories from real logs (DIN / DIEN / DSIN / BST and baselines).

Two recipes, both vectorised (numpy index arithmetic, no loop over samples):

``amazon_ctr("amazon_beauty" | "amazon_sports", folder)`` — S3-Rec Amazon review sequences (items in
time order per user, item attributes). For every user and every position p >= 1 of the
user's sequence: history = the items before p (the most recent ``max_len``) with their
categories, target = the item at p (label 1) and one item the user never touched, drawn
uniformly from the catalogue with a fixed seed (label 0) with the same history.
Leave-one-out in time per user: the user's last target -> test, the second last -> valid,
the rest -> train (the DIN paper's Amazon protocol, Zhou et al. KDD 2018, sec. 6.1).
Category = the item's first listed attribute (S3-Rec's attributes are Amazon categories
and brand, unnamed; the first one is the most general category the item lists).

``log_ctr(events)`` — a user behaviour log (canonical columns ``user_id``, ``item_id``,
``timestamp``, optional ``category_id`` and ``event_type``; ``taobao_ctr(folder)`` is it on the
Taobao UserBehavior sample: pv / cart / fav / buy with category and Unix time, and your own
log from ``[data] path`` is it too). For every click (pv) with at least one earlier behaviour: history = the user's
previous behaviours of any type (most recent ``max_len``) with category, behaviour type,
time and 30-minute session id (the shared sessionizer, for DSIN), target = the clicked item
(label 1) and an item the user never clicked, drawn from the catalogue with its category
(label 0). Without ``event_type`` every event is a click; without ``category_id`` every
item has one category. Split by time like the session split of the same data: targets on the
last ``test_days`` days -> test, the ``test_days`` before -> valid, earlier -> train (days
counted from ``day0``, Taobao's official start; histories may reach back across days).

Extra columns (not features): ``hist_len``, ``neg_hist_item`` / ``neg_hist_cate`` (one
sampled non-clicked item per history position, for DIEN's auxiliary loss), and for Taobao
``hist_time``, ``time`` (seconds) and ``hist_session`` (session ids, increasing with time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from seqrec.data.samples import LabeledSamples, SplitSamples
from seqrec.data.sessionize import sessionize
from seqrec.data.vocab import Vocab
from seqrec.errors import ConfigError, DataValidationError
from seqrec.schema import Feature, Schema, Table

BEHAVIOURS = ("pv", "cart", "fav", "buy")
DAY = 86400.0


@dataclass
class CTRTask(SplitSamples):
    """Train / valid / test samples of one recipe plus what models and serving need."""

    name: str
    train: LabeledSamples
    valid: LabeledSamples
    test: LabeledSamples
    vocabs: dict[str, Vocab]
    item_cate: np.ndarray  # (item rows,) category index of every item index


def _histories(items: np.ndarray, user_start: np.ndarray, pos: np.ndarray, max_len: int):
    """Left-aligned (N, max_len) index matrix of the events before ``pos`` (same user), and lengths."""
    length = np.minimum(pos - user_start, max_len)  # (N,)
    ar = np.arange(max_len)
    idx = (pos - length)[:, None] + ar[None, :]  # (N, T)
    valid = ar[None, :] < length[:, None]
    return np.where(valid, idx, -1), length


def _gather(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    out = values[np.maximum(idx, 0)]
    out[idx < 0] = 0
    return out


def _sample_untouched(users: np.ndarray, touched: np.ndarray, n_items: int, rng) -> np.ndarray:
    """For each sample, an item index in 2..n_items-1 that its user never touched.

    ``touched`` holds user * n_items + item for every (user, item) the user touched.
    """
    keys = np.unique(touched)

    def seen(q: np.ndarray) -> np.ndarray:  # membership by binary search (np.isin sorts q too)
        pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
        return keys[pos] == q

    out = rng.integers(2, n_items, size=len(users))
    bad = seen(users * n_items + out)
    for _ in range(100):
        if not bad.any():
            return out
        idx = np.flatnonzero(bad)
        out[idx] = rng.integers(2, n_items, size=len(idx))
        bad[idx] = seen(users[idx] * n_items + out[idx])
    raise DataValidationError("could not draw negatives: some users touched almost every item")


def _schema(n_items: int, n_cates: int, n_users: int, max_len: int, dim: int, btypes: bool) -> Schema:
    tables = [Table("item", n_items, dim), Table("cate", n_cates, dim), Table("user", n_users, dim)]
    feats = [Feature("user", "sparse", "user"), Feature("item", "sparse", "item"),
             Feature("cate", "sparse", "cate"),
             Feature("hist_item", "sequence", "item", max_len=max_len),
             Feature("hist_cate", "sequence", "cate", max_len=max_len)]
    if btypes:
        tables.append(Table("btype", len(BEHAVIOURS) + 2, dim))
        feats.append(Feature("hist_btype", "sequence", "btype", max_len=max_len))
    return Schema(tables=tuple(tables), features=tuple(feats))


def _pair_samples(cols: dict[str, np.ndarray], neg_item: np.ndarray, item_cate: np.ndarray) -> dict:
    """Each target row once with label 1 and once with its negative item, label 0 (interleaved)."""
    n = len(neg_item)
    out = {k: np.repeat(v, 2, axis=0) for k, v in cols.items()}
    out["item"][1::2] = neg_item
    out["cate"][1::2] = item_cate[neg_item]
    label = np.zeros(2 * n, dtype=np.float32)
    label[0::2] = 1.0
    out["label"] = label
    return out


def _neg_history(hist_item: np.ndarray, users: np.ndarray, touched, n_items, item_cate, rng):
    flat = _sample_untouched(np.repeat(users, hist_item.shape[1]), touched, n_items, rng)
    neg = flat.reshape(hist_item.shape)
    neg[hist_item == 0] = 0
    return neg, item_cate[neg]


AMAZON_FILES = {"amazon_beauty": ("Beauty.txt", "Beauty_item2attributes.json"),
                "amazon_sports": ("Sports_and_Outdoors.txt", "Sports_and_Outdoors_item2attributes.json")}


def amazon_ctr(name: str, folder: Path, *, max_len: int = 50, dim: int = 18, seed: int = 0) -> CTRTask:
    """Build the Amazon CTR task from ``folder`` (see module docstring)."""
    if name not in AMAZON_FILES:
        raise ConfigError(f"unknown Amazon dataset {name!r}; choose one of {sorted(AMAZON_FILES)}")
    seq_path, attr_path = (Path(folder) / f for f in AMAZON_FILES[name])
    attrs = json.loads(attr_path.read_text())
    users_raw, items_raw = [], []
    for lineno, line in enumerate(seq_path.read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) < 2:
            raise DataValidationError(f"{seq_path}:{lineno}: expected 'user item item ...', got {line!r}")
        users_raw.append(np.full(len(parts) - 1, int(parts[0]), dtype=np.int64))
        items_raw.append(np.asarray(parts[1:], dtype=np.int64))
    user_raw = np.concatenate(users_raw)
    item_raw = np.concatenate(items_raw)
    item_vocab = Vocab(name="item").fit(sorted({int(k) for k in attrs} | set(np.unique(item_raw).tolist())))
    cate_vocab = Vocab(name="cate").fit(sorted({v[0] for v in attrs.values() if v}))
    user_vocab = Vocab(name="user").fit(np.unique(user_raw).tolist())
    items = item_vocab.encode(item_raw.tolist())
    users = user_vocab.encode(user_raw.tolist())
    item_cate = np.ones(len(item_vocab), dtype=np.int64)  # OOV category unless listed
    item_cate[0] = 0
    for raw, a in attrs.items():
        if a:
            item_cate[item_vocab.encode([int(raw)])[0]] = cate_vocab.encode([a[0]])[0]
    # positions: every event but the user's first; the user's last two go to test / valid
    new_user = np.r_[True, users[1:] != users[:-1]]
    start = np.maximum.accumulate(np.where(new_user, np.arange(len(users)), 0))
    pos = np.flatnonzero(~new_user)
    end = np.r_[np.flatnonzero(new_user)[1:], len(users)]  # exclusive end of each event's user
    from_end = end[np.searchsorted(np.flatnonzero(new_user), pos, side="right") - 1] - pos
    hidx, hlen = _histories(items, start[pos], pos, max_len)
    cols = {"user": users[pos], "item": items[pos], "cate": item_cate[items[pos]],
            "hist_item": _gather(items, hidx)}
    cols["hist_cate"] = item_cate[cols["hist_item"]]
    cols["hist_len"] = hlen.astype(np.int64)
    rng = np.random.default_rng(seed)
    touched = users * len(item_vocab) + items
    cols["neg_hist_item"], cols["neg_hist_cate"] = _neg_history(
        cols["hist_item"], cols["user"], touched, len(item_vocab), item_cate, rng)
    neg = _sample_untouched(cols["user"], touched, len(item_vocab), rng)
    data = _pair_samples(cols, neg, item_cate)
    which = np.repeat(np.where(from_end == 1, 2, np.where(from_end == 2, 1, 0)), 2)
    schema = _schema(len(item_vocab), len(cate_vocab), len(user_vocab), max_len, dim, btypes=False)
    return _task(name, schema, data, which, {"item": item_vocab, "cate": cate_vocab, "user": user_vocab},
                 item_cate)


def _task(name, schema, data, which, vocabs, item_cate) -> CTRTask:
    parts = []
    for i, split in enumerate(("train", "valid", "test")):
        idx = np.flatnonzero(which == i)
        parts.append(LabeledSamples(schema, {k: v[idx] for k, v in data.items()}, f"{name} {split}"))
    return CTRTask(name, *parts, vocabs=vocabs, item_cate=item_cate)


def taobao_ctr(folder: Path, *, max_len: int = 50, dim: int = 18, seed: int = 0,
               session_gap: float = 1800.0) -> CTRTask:
    """The Taobao CTR task: :func:`log_ctr` on the official window of UserBehavior."""
    from seqrec.data.readers.raw_logs import (
        TAOBAO_FILE,
        TAOBAO_START,
        in_taobao_window,
        read_taobao_raw,
    )

    df = in_taobao_window(read_taobao_raw(Path(folder) / TAOBAO_FILE))
    return log_ctr(df, "taobao", max_len=max_len, dim=dim, seed=seed, session_gap=session_gap,
                   day0=TAOBAO_START)


def log_behaviours(df: pl.DataFrame, name: str) -> pl.DataFrame:
    """A canonical log as ``user_id, item_id, category_id, btype, timestamp`` (float seconds): every
    event a pv without ``event_type``, one category 0 without ``category_id``; a DataValidationError
    for a behaviour type outside pv / cart / fav / buy or an empty log."""
    if "event_type" not in df.columns:
        df = df.with_columns(event_type=pl.lit("pv"))
    if "category_id" not in df.columns:
        df = df.with_columns(category_id=pl.lit(0, pl.Int64))
    bad = df.filter(~pl.col("event_type").is_in(BEHAVIOURS))
    if bad.height:
        raise DataValidationError(f"{name}: behaviour type must be one of {BEHAVIOURS}; got "
                                  f"{bad['event_type'][0]!r}")
    df = df.select("user_id", "item_id", "category_id", pl.col("event_type").alias("btype"),
                   pl.col("timestamp").cast(pl.Float64))
    if df.height == 0:
        raise DataValidationError(f"{name}: no events")
    return df


def log_ctr(df: pl.DataFrame, name: str, *, max_len: int = 50, dim: int = 18, seed: int = 0,
            session_gap: float = 1800.0, day0: float | None = None, test_days: float = 1.0) -> CTRTask:
    """CTR samples from a behaviour log (see module docstring); ``day0`` = the first event's time
    when None."""
    df = log_behaviours(df, name)
    df = sessionize(df, gap_seconds=session_gap)  # sorted by (user, time)
    item_vocab = Vocab(name="item").fit(df["item_id"].unique().sort())
    cate_vocab = Vocab(name="cate").fit(df["category_id"].unique().sort())
    user_vocab = Vocab(name="user").fit(df["user_id"].unique().sort())
    items = item_vocab.encode_series(df["item_id"])
    cates = cate_vocab.encode_series(df["category_id"])
    users = user_vocab.encode_series(df["user_id"])
    btype = df["btype"].replace_strict({b: i + 2 for i, b in enumerate(BEHAVIOURS)},
                                       return_dtype=pl.Int64).to_numpy()
    times = df["timestamp"].to_numpy()
    sess = df["session_id"].to_numpy().astype(np.int64)
    item_cate = np.ones(len(item_vocab), dtype=np.int64)
    item_cate[0] = 0
    item_cate[items] = cates  # an item's category is fixed in this data
    new_user = np.r_[True, users[1:] != users[:-1]]
    start = np.maximum.accumulate(np.where(new_user, np.arange(len(users)), 0))
    pos = np.flatnonzero(~new_user & (btype == 2))  # clicks with some history
    if len(pos) == 0:
        raise DataValidationError(f"{name}: no click has an earlier behaviour of its user; nothing to learn")
    hidx, hlen = _histories(items, start[pos], pos, max_len)
    cols = {"user": users[pos], "item": items[pos], "cate": cates[pos],
            "hist_item": _gather(items, hidx), "hist_cate": _gather(cates, hidx),
            "hist_btype": _gather(btype, hidx), "hist_session": _gather(sess, hidx),
            "hist_time": np.where(hidx >= 0, times[np.maximum(hidx, 0)], 0.0),
            "time": times[pos], "hist_len": hlen.astype(np.int64)}
    rng = np.random.default_rng(seed)
    clicked = users[btype == 2] * len(item_vocab) + items[btype == 2]
    cols["neg_hist_item"], cols["neg_hist_cate"] = _neg_history(
        cols["hist_item"], cols["user"], clicked, len(item_vocab), item_cate, rng)
    neg = _sample_untouched(cols["user"], clicked, len(item_vocab), rng)
    data = _pair_samples(cols, neg, item_cate)
    day0 = float(times.min()) if day0 is None else day0
    period = np.floor((data["time"] - day0) / (test_days * DAY))
    last = np.floor((times.max() - day0) / (test_days * DAY))
    which = np.where(period >= last, 2, np.where(period >= last - 1, 1, 0))
    for i, part in enumerate(("train", "valid", "test")):
        if not (which == i).any():
            raise DataValidationError(f"{name}: the time split leaves no {part} samples "
                                      f"(test_days = {test_days:g}); the log spans too few days")
    schema = _schema(len(item_vocab), len(cate_vocab), len(user_vocab), max_len, dim, btypes=True)
    return _task(name, schema, data, which,
                 {"item": item_vocab, "cate": cate_vocab, "user": user_vocab}, item_cate)
