"""Purchase-prediction samples: which users will buy from a category in the next window.

The task of the reference article (a CNN+LSTM purchase predictor against XGBoost): a
merchant picks a category and a time window; users are ranked by the probability that
they buy from the category in the window, from their purchase histories.

Recipe (:func:`build_purchase_task`), on a canonical purchase log
(:mod:`seqrec.data.readers.purchase`):

* **Cut-offs.** Time is days (dated logs) or the order number (logs with relative days
  only). Dated logs: the data ends at ``t_end`` (the day after the last event), the test
  cut-off is ``t_end - window`` and the training cut-off ``t_end - 2 window``, the same for
  every user. Order logs: per user with ``n`` orders the test cut-off is order
  ``n - window + 1`` (the window = the last ``window`` orders) and the training cut-off
  ``n - 2 window + 1``. Training and validation samples use the training cut-off, test
  samples the test cut-off, so the training labels' window ends where the test window
  starts.
* **Split by user** (``article-1to1``): users are shuffled (seeded) into train / valid /
  test; no user is in two splits. (``deployment``: see Protocols below.)
* **Inputs**: a user's events in the observation window ``[cut - observation, cut)``
  (``observation = 0``: the whole history before the cut); nothing at or after the cut-off
  enters an input. A user without events there is not a sample.
* **Labels**: positive = the user buys from the category in ``[cut, cut + window)``.
  Negatives, ``no-need`` (the article's rule): users who show no sign of that need, i.e.
  no purchase from the category in the observation window nor in the prediction window;
  users who bought it before but not in the window are left out. ``non-buyers``: every
  other user (the rule a campaign that scores everyone needs; CDNOW's default, where the
  only category is "any purchase" and no-need negatives would have no history).
* **1:1 balance** in every split (``article-1to1``): the larger class is sub-sampled (seeded).
* **Shift augmentation** (training only): for each n in ``shift`` every training sample
  gets a copy whose history stops just before its n-th last purchase (a purchase = a
  basket; for Taobao one buy), same label; copies with no event left are skipped and the
  copies of the larger class are sub-sampled so the training split stays 1:1.
* **Protocols** (``protocol``). The above is ``article-1to1``, the reference article's
  samples. Its no-need negatives and its 1:1 balance use the label window to choose who is
  a sample, so "bought the category before" alone separates the classes there (precision 1
  on every test split with no-need negatives), and nothing like it exists when a campaign
  scores real users. ``deployment`` is what scoring does (``seqrec score-users``): no
  selection by label and no sub-sampling anywhere. Test = **every** user active in the
  observation window before the test cut-off (no user split), so its positive rate is
  exactly the raw rate of buyers among active users; users whose training-window labels
  were used for training appear in test at the later cut-off with a new label window,
  as in production, where a model trained on last month scores everybody today.
  Train / valid = all users split (seeded) into ``1 - valid_frac`` / ``valid_frac`` at the
  training cut-off, at the natural base rate (``test_frac`` is unused); shift copies are
  added without rebalancing. Negatives are every active non-buyer (``negatives`` must not
  be ``no-need``). On order logs (Instacart, Ta-Feng) the window is each user's next
  ``window`` orders, so every user does order in it; the question there is which baskets
  hold the category, not who comes back (dated logs ask both).
* **Encoding** of each event (the last ``max_len``, oldest first, left-aligned): ids of its
  category / sub-category / product / behaviour type / day of week / hour (each through an
  embedding table; ids from the training histories, unknown ids -> OOV = 1), and numbers
  ``hist_num`` = [log1p quantity, log1p basket size, log1p days since the user's previous
  basket (on Taobao, where every behaviour is its own basket, the previous behaviour;
  orders where the log has no days), event in the target category, log1p money]. ``agg``
  holds aggregate features of the whole observation window for the XGBoost baseline
  (:data:`AGG_FEATURES`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from seqrec.config import PurchaseTaskConfig
from seqrec.data.purchase_features import AGG_FEATURES, BTYPES
from seqrec.data.readers.purchase import PurchaseDataset
from seqrec.data.samples import LabeledSamples, SplitSamples
from seqrec.data.vocab import Vocab
from seqrec.errors import ConfigError, DataValidationError
from seqrec.schema import Feature, Schema, Table

ID_FEATURES = ("cate", "sub", "product", "btype")  # log columns with a vocabulary
NUM_FEATURES = ("log_quantity", "log_basket", "log_gap", "in_category", "log_value")
MISSING = -1.0  # aggregate value when undefined (no purchase, fewer than two purchases)


@dataclass(frozen=True)
class Resolved:
    """A task config with the dataset's defaults filled in."""

    dataset: str
    unit: str
    level: str
    column: str | None  # log column the category is matched in (None = any purchase)
    category: str
    window: float
    observation: float
    negatives: str
    shift: tuple[int, ...]
    valid_frac: float
    test_frac: float
    protocol: str = "article-1to1"


def resolve(info: PurchaseDataset, pc: PurchaseTaskConfig) -> Resolved:
    level = pc.level or info.default_level
    if pc.category == "any":
        column = None
    elif level not in info.levels:
        raise ConfigError(f"{info.name} has no category level {level!r}; levels: {['any', *info.levels]}")
    else:
        column = info.levels[level]
    window = pc.window or info.window
    if info.unit == "order" and window != int(window):
        raise ConfigError(f"{info.name} counts windows in orders; window must be whole, got {window}")
    obs = info.observation if pc.observation < 0 else pc.observation
    # deployment keeps every active user: the negatives are all non-buyers whatever the dataset's rule
    negatives = "non-buyers" if pc.protocol == "deployment" else pc.negatives or info.negatives
    return Resolved(info.name, info.unit, "any" if column is None else level, column, pc.category, window,
                    obs, negatives, tuple(sorted(set(pc.shift))), pc.valid_frac, pc.test_frac, pc.protocol)


@dataclass
class PurchaseTask(SplitSamples):
    name: str
    spec: Resolved
    train: LabeledSamples
    valid: LabeledSamples
    test: LabeledSamples
    vocabs: dict[str, Vocab]
    counts: dict = field(default_factory=dict)  # per split: positives, negatives, users, ...
    seed: int = 0  # what built it (a benchmark reuses one build for several models)
    max_len: int = 50


def check_category(log: pl.DataFrame, spec: Resolved) -> None:
    """ConfigError naming the most-bought categories when no purchase has ``spec.category``."""
    if spec.column is None:
        return
    buys = log.filter(pl.col("btype") == "buy")
    if buys.filter(pl.col(spec.column) == spec.category).height:
        return
    top = (buys.group_by(spec.column).agg(pl.col("user_id").n_unique().alias("n")).drop_nulls(spec.column)
           .sort(["n", spec.column], descending=[True, False]))[spec.column].to_list()
    raise ConfigError(f"unknown category {spec.category!r} at level {spec.level!r} of {spec.dataset} "
                      f"(no purchase has it); most bought: {top[:12]}")


# -- the log as flat arrays --------------------------------------------------------------------
class EventArrays:
    """The sorted log as numpy arrays plus per-user offsets, with the target-category flags."""

    def __init__(self, log: pl.DataFrame, spec: Resolved) -> None:
        check_category(log, spec)
        match = pl.lit(True) if spec.column is None else (pl.col(spec.column) == spec.category).fill_null(False)
        orders = (log.group_by("order_id", maintain_order=True)
                  .agg(pl.col("user_id").first(), pl.col("day").first().alias("oday"),
                       pl.col("time").first().alias("otime"), pl.len().alias("basket")))
        orders = orders.with_columns(
            gap=(pl.coalesce("oday", "otime") - pl.coalesce("oday", "otime").shift(1).over("user_id"))
            .fill_null(0.0))
        df = log.join(orders.select("order_id", "basket", "gap"), on="order_id", how="left",
                      maintain_order="left").with_columns(
            match=match, buy=pl.col("btype") == "buy")
        self.df = df
        uid = df["user_id"].to_numpy()
        starts = np.flatnonzero(np.concatenate([[True], uid[1:] != uid[:-1]]))  # the log is user-sorted
        self.users = uid[starts]  # raw ids
        self.start = np.append(starts, df.height).astype(np.int64)  # (U + 1,) offsets
        self.time = df["time"].to_numpy().astype(np.float64)
        # (user, time) as one sortable number, for vectorised per-user binary searches
        self._t0, self._span = float(self.time.min()), float(self.time.max() - self.time.min()) + 2.0
        user_of = np.repeat(np.arange(len(starts)), np.diff(self.start))
        self._key = user_of * self._span + (self.time - self._t0)
        self.day = df["day"].fill_null(df["time"]).to_numpy().astype(np.float64)
        self.buy = df["buy"].to_numpy()
        self.match = df["match"].to_numpy()
        self.cat_buy = self.buy & self.match
        order = df["order_id"].to_numpy()
        first = np.ones(len(order), dtype=bool)
        first[1:] = order[1:] != order[:-1]
        self.purchase_start = first & self.buy  # first event of each purchase (basket)
        self.order = order
        self.unit = spec.unit

    @property
    def n_users(self) -> int:
        return len(self.users)

    def count_before(self, u: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Per user u, the global index of its first event at time >= t (events before t end there)."""
        t = np.clip(t - self._t0, -1.0, self._span - 1.0)  # stay inside the user's key range
        return np.searchsorted(self._key, u * self._span + t, side="left").astype(np.int64)

    def cut_offs(self, spec: Resolved, which: str) -> np.ndarray:
        """Cut-off per user for ``which`` in {"train", "test", "score"}."""
        k = {"train": 2, "test": 1, "score": 0}[which]
        if self.unit == "day":
            t_end = math.floor(self.time.max()) + 1.0
            return np.full(self.n_users, t_end - k * spec.window)
        n_orders = np.maximum.reduceat(self.time, self.start[:-1])  # last order number per user
        return n_orders + 1.0 - k * spec.window


# -- samples ---------------------------------------------------------------------------------
@dataclass
class Samples:
    """History ranges [start, end) into the global event arrays, with cut-offs and labels."""

    user: np.ndarray  # (N,) user index
    start: np.ndarray  # (N,) global index of the first history event
    end: np.ndarray  # (N,) one past the last history event
    cut: np.ndarray  # (N,) the prediction time
    label: np.ndarray  # (N,) 0/1
    shifted: np.ndarray  # (N,) how many purchases were dropped (0 = original)

    def take(self, idx: np.ndarray) -> Samples:
        return Samples(*(getattr(self, f)[idx] for f in ("user", "start", "end", "cut", "label", "shifted")))

    @staticmethod
    def concat(parts: list[Samples]) -> Samples:
        return Samples(*(np.concatenate([getattr(p, f) for p in parts])
                         for f in ("user", "start", "end", "cut", "label", "shifted")))

    def __len__(self) -> int:
        return len(self.user)


def ranges(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start[i], end[i])`` without a Python loop."""
    n = end - start
    offsets = np.repeat(start - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
    return offsets + np.arange(int(n.sum()))


def _range_any(flags: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    cs = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    return cs[hi] - cs[lo] > 0


def label_users(ev: EventArrays, spec: Resolved, users: np.ndarray, cut: np.ndarray,
                with_labels: bool = True) -> Samples:
    """Samples of ``users`` at their cut-offs: history ranges and labels (no balancing)."""
    obs_lo = cut - spec.observation if spec.observation > 0 else np.full(len(cut), -np.inf)
    end = ev.count_before(users, cut)
    start = ev.count_before(users, obs_lo)
    keep = end > start  # a user with no event in the observation window is not a sample
    if not with_labels:
        z = np.zeros(int(keep.sum()), dtype=np.int64)
        return Samples(users[keep], start[keep], end[keep], cut[keep], z.astype(np.float32), z)
    win_end = ev.count_before(users, cut + spec.window)
    label = _range_any(ev.cat_buy, end, win_end)
    if spec.negatives == "no-need":
        keep &= label | ~_range_any(ev.cat_buy, start, end)
    idx = np.flatnonzero(keep)
    return Samples(users[idx], start[idx], end[idx], cut[idx], label[idx].astype(np.float32),
                   np.zeros(len(idx), dtype=np.int64))


def check_both_classes(s: Samples, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the positives and negatives; DataValidationError when a class is empty."""
    pos, neg = np.flatnonzero(s.label == 1), np.flatnonzero(s.label == 0)
    if len(pos) == 0 or len(neg) == 0:
        raise DataValidationError(
            f"{where}: {len(pos)} positives and {len(neg)} negatives; a window with no "
            f"{'positives' if len(pos) == 0 else 'negatives'} cannot be learned or evaluated "
            "(choose a more popular category, a longer window, or negatives='non-buyers')")
    return pos, neg


def balance(s: Samples, rng: np.random.Generator, where: str, keep_first: int | None = None) -> Samples:
    """Sub-sample the larger class to 1:1; ``keep_first`` rows (originals) are never dropped."""
    pos, neg = check_both_classes(s, where)
    n = min(len(pos), len(neg))

    def pick(ix: np.ndarray) -> np.ndarray:
        if len(ix) == n:
            return ix
        if keep_first is None:
            return np.sort(rng.choice(ix, n, replace=False))
        fixed, extra = ix[ix < keep_first], ix[ix >= keep_first]
        if len(fixed) >= n:
            return np.sort(rng.choice(fixed, n, replace=False))
        return np.sort(np.concatenate([fixed, rng.choice(extra, n - len(fixed), replace=False)]))

    return s.take(np.sort(np.concatenate([pick(pos), pick(neg)])))


def shift_augment(ev: EventArrays, s: Samples, shifts: tuple[int, ...]) -> Samples:
    """Copies of ``s`` whose histories stop before their n-th last purchase, for n in ``shifts``."""
    if not shifts:
        return s.take(np.arange(0))
    cs = np.concatenate([[0], np.cumsum(ev.purchase_start, dtype=np.int64)])
    where = np.flatnonzero(ev.purchase_start)  # global index of the k-th purchase start
    parts = []
    for n in shifts:
        n_in = cs[s.end] - cs[s.start]  # purchases in each history
        ok = n_in >= n
        k = cs[s.end[ok]] - n  # rank of the n-th last purchase among all purchase starts
        new_end = s.end.copy()
        new_end[ok] = where[k]
        ok &= new_end > s.start
        c = s.take(np.flatnonzero(ok))
        c.end = new_end[ok]
        c.shifted = np.full(len(c), n, dtype=np.int64)
        parts.append(c)
    return Samples.concat(parts)


# -- encoding ---------------------------------------------------------------------------------
def fit_vocabs(ev: EventArrays, s: Samples) -> dict[str, Vocab]:
    """Vocabularies of the id columns over the events of the given (training) histories."""
    sub = ev.df[np.unique(ranges(s.start, s.end))]
    vocabs = {}
    for c in ID_FEATURES:
        values = sub[c].drop_nulls()
        if c == "btype" and ev.df[c].n_unique() < 2:
            continue
        if len(values):
            vocabs[c] = Vocab(values.unique(maintain_order=True), name=c)
    return vocabs


def build_schema(vocabs: dict[str, Vocab], ev: EventArrays, max_len: int) -> Schema:
    tables, feats = [], []
    for c, v in vocabs.items():
        tables.append(Table(c, len(v), 16))
        feats.append(Feature(f"hist_{c}", "sequence", table=c, max_len=max_len))
    for c, rows in (("dow", 9), ("hour", 26)):
        if (ev.df[c] >= 0).any():
            tables.append(Table(c, rows, 16))
            feats.append(Feature(f"hist_{c}", "sequence", table=c, max_len=max_len))
    feats.append(Feature("hist_num", "seqdense", dim=len(NUM_FEATURES), max_len=max_len))
    feats.append(Feature("agg", "dense", dim=len(AGG_FEATURES)))
    return Schema(tuple(tables), tuple(feats), label="label", user="",  # one sample per user: no GAUC
                  time_columns=("cutoff", "hist_time", "shifted"))


def encode(ev: EventArrays, s: Samples, schema: Schema, vocabs: dict[str, Vocab], spec: Resolved,
           name: str) -> LabeledSamples:
    """Model inputs of the samples: padded sequences (last max_len events), numbers, aggregates."""
    T = schema.max_len("hist")
    first = np.maximum(s.start, s.end - T)
    length = s.end - first
    ar = np.arange(T)
    valid = ar[None, :] < length[:, None]  # (N, T)
    idx = np.where(valid, first[:, None] + ar[None, :], 0)  # (N, T) global event index
    cols: dict[str, np.ndarray] = {}
    for f in schema.sequence_group("hist"):
        c = f.name.removeprefix("hist_")
        if c in vocabs:
            codes = vocabs[c].encode_series(ev.df[c])  # null / unknown -> OOV (1)
        else:  # dow / hour: fixed ids 2.., unknown (-1) -> 1
            codes = ev.df[c].to_numpy().astype(np.int64) + 2
        cols[f.name] = np.where(valid, codes[idx], 0).astype(np.int64)
    d = ev.df
    num = np.stack([np.log1p(d["quantity"].to_numpy()), np.log1p(d["basket"].to_numpy()),
                    np.log1p(np.maximum(d["gap"].to_numpy(), 0.0)), ev.match.astype(np.float64),
                    np.log1p(np.maximum(d["value"].to_numpy(), 0.0))], 1)  # (E, 5)
    cols["hist_num"] = np.where(valid[..., None], num[idx], 0.0).astype(np.float32)
    cols["agg"] = aggregates(ev, s, spec).astype(np.float32)
    cols["label"] = s.label.astype(np.float32)
    cols["user"] = s.user.astype(np.int64)
    cols["cutoff"] = s.cut.astype(np.float64)
    cols["hist_time"] = np.where(valid, ev.time[idx], np.nan)
    cols["shifted"] = s.shifted
    return LabeledSamples(schema, cols, name)


def aggregates(ev: EventArrays, s: Samples, spec: Resolved) -> np.ndarray:
    """(N, len(AGG_FEATURES)) hand-built features over each sample's whole history."""
    lengths = s.end - s.start
    sample = np.repeat(np.arange(len(s)), lengths)
    rows = ranges(s.start, s.end)
    d = ev.df[rows].with_columns(sample=pl.Series(sample), cut=pl.Series(s.cut[sample]),
                                 match=pl.Series(ev.match[rows]), pstart=pl.Series(ev.purchase_start[rows]))
    buy, cat = pl.col("buy"), pl.col("buy") & pl.col("match")
    # purchase times (one per basket) for gap statistics, in days where the log has them
    ptime = pl.col("day").fill_null(pl.col("time"))
    p = (d.filter(pl.col("pstart")).with_columns(g=ptime - ptime.shift(1).over("sample"))
         .group_by("sample").agg(gap_mean=pl.col("g").mean(), gap_std=pl.col("g").std(),
                                 gap_last=pl.col("g").last()))
    a = d.group_by("sample").agg(
        n_events=pl.len(), n_buy_lines=buy.sum(), n_purchases=pl.col("pstart").sum(),
        n_cat_lines=cat.sum(), n_cat_purchases=pl.col("order_id").filter(cat).n_unique(),
        quantity=pl.col("quantity").filter(buy).sum(), cat_quantity=pl.col("quantity").filter(cat).sum(),
        value=pl.col("value").filter(buy).sum(), cat_value=pl.col("value").filter(cat).sum(),
        recency=(pl.col("cut") - pl.col("time").filter(buy).max()).first(),
        cat_recency=(pl.col("cut") - pl.col("time").filter(cat).max()).first(),
        cat_first_age=(pl.col("cut") - pl.col("time").filter(cat).min()).first(),
        tenure=(pl.col("cut") - pl.col("time").min()).first(),
        n_products=pl.col("product").filter(buy).n_unique(), n_cates=pl.col("cate").filter(buy).n_unique(),
        cat_recent=(cat & (pl.col("time") >= pl.col("cut") - spec.window)).sum(),
        last_has_cat=pl.col("match").filter(pl.col("order_id") == pl.col("order_id").filter(buy).last())
        .any().cast(pl.Float64),
        **{f"n_{b}": (pl.col("btype") == b).sum() for b in BTYPES},
        **{f"cat_{b}": ((pl.col("btype") == b) & pl.col("match")).sum() for b in BTYPES},
    ).join(p, on="sample", how="left").sort("sample")
    a = a.with_columns(cat_share=pl.col("n_cat_lines") / pl.col("n_buy_lines").clip(1))
    out = a.select([pl.col(c).cast(pl.Float64) for c in AGG_FEATURES]).to_numpy()
    return np.where(np.isfinite(out), out, MISSING)


# -- the task ---------------------------------------------------------------------------------
def build_purchase_task(log: pl.DataFrame, info: PurchaseDataset, pc: PurchaseTaskConfig, *,
                        max_len: int = 50, seed: int = 0) -> PurchaseTask:
    """Train / valid / test samples of the configured category and windows (see module doc)."""
    spec = resolve(info, pc)
    ev = EventArrays(log, spec)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(ev.n_users)
    deploy = spec.protocol == "deployment"
    n_test = 0 if deploy else round(spec.test_frac * ev.n_users)
    n_valid = round(spec.valid_frac * ev.n_users)
    groups = {"test": perm if deploy else perm[:n_test], "valid": perm[n_test:n_test + n_valid],
              "train": perm[n_test + n_valid:]}
    cuts = {"train": ev.cut_offs(spec, "train"), "test": ev.cut_offs(spec, "test")}
    what = f"{info.name} category {spec.category!r} ({spec.level}), window {spec.window:g} {spec.unit}s"
    samples, counts = {}, {}
    for split, users in groups.items():
        users = np.sort(users)
        cut = cuts["test" if split == "test" else "train"][users]
        s = label_users(ev, spec, users, cut)
        if len(s) == 0:
            raise DataValidationError(f"{what}, {split}: no user has an event before the cut-off "
                                      "(the window is too long for this data)")
        if s.label.sum() == 0 and not _range_any(ev.buy, s.end, ev.count_before(s.user, s.cut + spec.window)).any():
            raise DataValidationError(
                f"{what}, {split}: empty window: no user of this split buys anything in the "
                f"{spec.window:g} {spec.unit}s after the cut-off (the data has no purchases there); "
                "choose another window")
        counts[split] = {"users": len(s), "positives_all": int(s.label.sum()),
                         "negatives_all": int(len(s) - s.label.sum())}
        if deploy:  # the natural base rate: no sub-sampling, copies added as they come
            check_both_classes(s, f"{what}, {split} split")
        else:
            s = balance(s, rng, f"{what}, {split} split")
        if split == "train" and spec.shift:
            n0 = len(s)
            s = Samples.concat([s, shift_augment(ev, s, spec.shift)])
            if not deploy:
                s = balance(s, rng, f"{what}, shifted train", keep_first=n0)
            counts[split]["augmented"] = len(s) - n0
        counts[split].update(samples=len(s), positives=int(s.label.sum()))
        samples[split] = s
    vocabs = fit_vocabs(ev, samples["train"])
    schema = build_schema(vocabs, ev, max_len)
    data = {k: encode(ev, v, schema, vocabs, spec, f"{info.name}/{spec.category}/{k}")
            for k, v in samples.items()}
    return PurchaseTask(info.name, spec, data["train"], data["valid"], data["test"], vocabs, counts, seed,
                        max_len)


def scoring_samples(log: pl.DataFrame, info: PurchaseDataset, pc: PurchaseTaskConfig, schema: Schema,
                    vocabs: dict[str, Vocab]) -> tuple[np.ndarray, LabeledSamples]:
    """Every user with a history at the end of the data, encoded for scoring the window after it.

    Returns the raw user ids and their (unlabelled) inputs."""
    spec = resolve(info, pc)
    ev = EventArrays(log, spec)
    users = np.arange(ev.n_users)
    s = label_users(ev, spec, users, ev.cut_offs(spec, "score"), with_labels=False)
    data = encode(ev, s, schema, vocabs, spec, f"{info.name}/{spec.category}/score")
    return ev.users[s.user], data


def purchase_dataset(name: str) -> PurchaseDataset:
    """The purchase recipe of registered dataset ``name`` (ConfigError if it has none)."""
    from seqrec.data.registry import recipe

    return recipe(name, "purchase")


def read_purchase_log(name: str, root: str | Path | None = None) -> pl.DataFrame:
    """The canonical purchase log of a registered dataset (files checked first)."""
    from seqrec.data.registry import get_dataset, require_files

    entry = get_dataset(name, "purchase")
    return entry.recipes["purchase"].reader(require_files(entry, root))
