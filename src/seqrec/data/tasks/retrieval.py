"""Retrieval tasks: per-user interactions, held-out targets, and what evaluation excludes.

Item indices are ``1..n_items`` (0 = padding, never a target, never ranked); users are
``0..n_users-1``. Per-user lists are CSR arrays (:class:`CSR`), in time order where the data
has an order (``task.ordered``).

Two protocols:

``bars_task`` — the BARS matching splits (``retrieval/gowalla``, ``retrieval/movielens1m_m1``):
``train.txt`` / ``test.txt``, one line per user, item *sets* (no order, no time). Test: rank
all items for every user with test items, excluding the user's train items (the BARS / LightGCN
protocol; Recall@K divides by the number of test items). The splits have no validation part;
``train_split = "train"`` holds out ``valid_fraction`` of every user's train items (seeded, at
least one for users with >= 2 train items) as validation targets and trains on the rest;
``"train_full"`` trains on all train items and has no validation.

``loo_task`` — leave-one-out on time-ordered sequences (S3-Rec Amazon, ml-100k, Taobao): the
last item is test, the second last validation, the rest train (Kang & McAuley 2018; Zhou et
al. 2020). Test: history = all but the last item, which is also what is excluded from the
ranking (the S3-Rec all-item protocol); validation: history = all but the last two.
``train_split = "train"`` trains on all but the last two items (SASRec / S3-Rec);
``"train_full"`` on all but the last one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqrec.errors import ConfigError, DataValidationError


@dataclass(frozen=True)
class CSR:
    """Per-row lists: row ``r`` is ``values[indptr[r]:indptr[r + 1]]``."""

    indptr: np.ndarray  # (R + 1,) int64
    values: np.ndarray  # (nnz,) int64 (or float64 for times)

    @classmethod
    def from_lists(cls, rows: list[np.ndarray], dtype=np.int64) -> CSR:
        lens = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        values = np.concatenate(rows).astype(dtype) if rows else np.zeros(0, dtype)
        return cls(indptr, values)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def row(self, r: int) -> np.ndarray:
        return self.values[self.indptr[r]:self.indptr[r + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def take(self, rows: np.ndarray) -> CSR:
        """The CSR of ``rows`` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        lens = self.lengths()[rows]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        starts = np.repeat(self.indptr[rows] - indptr[:-1], lens)
        return CSR(indptr, self.values[np.arange(indptr[-1]) + starts])

    def row_ids(self) -> np.ndarray:
        """The row of every value, (nnz,)."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths())

    def padded_tail(self, rows: np.ndarray, max_len: int) -> np.ndarray:
        """The last ``max_len`` values of ``rows``, left-padded with 0: (len(rows), max_len)."""
        rows = np.asarray(rows, dtype=np.int64)
        ends = self.indptr[rows + 1]
        lens = np.minimum(ends - self.indptr[rows], max_len)
        out = np.zeros((len(rows), max_len), dtype=self.values.dtype)
        col = np.arange(max_len)[None, :]
        src = ends[:, None] - max_len + col  # (R, L) positions, valid where col >= max_len - len
        ok = col >= (max_len - lens)[:, None]
        out[ok] = self.values[src[ok]]
        return out


@dataclass(frozen=True)
class EvalSplit:
    """The users evaluated on one split, with their targets, input histories and exclusions."""

    users: np.ndarray  # (U,) user indices
    targets: CSR  # per evaluated user: held-out items
    history: CSR  # per evaluated user: the input history (time order where known)
    exclude: CSR  # per evaluated user: items not ranked (the protocol's seen items)

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class RetrievalTask:
    """Everything a retrieval model trains and is evaluated on (see module docstring)."""

    name: str
    n_users: int
    n_items: int
    train: CSR  # per user (all n_users rows): the training interactions
    valid: EvalSplit | None
    test: EvalSplit
    item_ids: np.ndarray  # raw item id of index i at position i - 1
    user_ids: np.ndarray  # raw user id of index u
    ordered: bool  # train rows are in time order
    protocol: str  # "bars" | "leave-one-out"
    how: str = ""
    train_times: np.ndarray | None = None  # (nnz,) Unix seconds aligned with train.values
    user_features: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n_users,) codes, 0 = unknown
    feature_sizes: dict[str, int] = field(default_factory=dict)  # name -> table rows (0 included)

    def split(self, name: str) -> EvalSplit:
        if name == "valid":
            if self.valid is None:
                raise ConfigError(f"{self.name}: no validation split when training on train_full; "
                                  "set data.train_split = 'train'")
            return self.valid
        if name == "test":
            return self.test
        raise ConfigError(f"split must be 'valid' or 'test', got {name!r}")

    def item_counts(self) -> np.ndarray:
        """Training interactions per item index, (n_items + 1,), index 0 = 0."""
        return np.bincount(self.train.values, minlength=self.n_items + 1).astype(np.float64)

    def item_index(self) -> dict:
        """Raw item id (as str) -> item index."""
        return {str(r): i + 1 for i, r in enumerate(self.item_ids.tolist())}

    def user_index(self) -> dict:
        return {str(r): i for i, r in enumerate(self.user_ids.tolist())}

    def summary(self) -> dict:
        out = {"users": self.n_users, "items": self.n_items, "train_interactions": int(self.train.indptr[-1]),
               "test_users": len(self.test), "test_targets": int(self.test.targets.indptr[-1]),
               "protocol": self.protocol, "ordered": self.ordered}
        if self.valid is not None:
            out.update(valid_users=len(self.valid), valid_targets=int(self.valid.targets.indptr[-1]))
        return out


# -- reading ---------------------------------------------------------------------------------------


def read_user_lines(path: Path, *, min_items: int = 1) -> tuple[np.ndarray, list[np.ndarray]]:
    """``user item item ...`` per line (BARS, S3-Rec): (raw user ids, item arrays in file order)."""
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"{path}: file not found")
    users: list[int] = []
    rows: list[np.ndarray] = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            vals = np.asarray(parts, dtype=np.int64)
        except (ValueError, OverflowError):
            bad = next(p for p in parts if not p.lstrip("-").isdigit() or abs(int(p)) >= 2**63)
            raise DataValidationError(f"{path}: row {lineno}: {bad!r} is not an integer id") from None
        if len(vals) < 1 + min_items:
            raise DataValidationError(f"{path}: row {lineno}: expected 'user item ...' with at least "
                                      f"{min_items} item(s), got {line!r}")
        users.append(int(vals[0]))
        rows.append(vals[1:])
    if not rows:
        raise DataValidationError(f"{path}: no users (the file is empty)")
    return np.asarray(users, dtype=np.int64), rows


def _index_items(rows_raw: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Raw item ids -> indices 1..N, numbered in ascending raw id order (stable)."""
    cat = np.concatenate(rows_raw)
    uniq, inv = np.unique(cat, return_inverse=True)
    out, start = [], 0
    for r in rows_raw:
        out.append(inv[start:start + len(r)].astype(np.int64) + 1)
        start += len(r)
    return uniq, out


# -- BARS ------------------------------------------------------------------------------------------


def bars_task(name: str, folder: Path, *, train_split: str = "train_full", valid_fraction: float = 0.1,
              seed: int = 0) -> RetrievalTask:
    """A BARS matching split (see module docstring)."""
    folder = Path(folder)
    tr_users, tr_rows = read_user_lines(folder / "train.txt")
    te_users, te_rows = read_user_lines(folder / "test.txt")
    if len(np.unique(tr_users)) != len(tr_users):
        raise DataValidationError(f"{folder / 'train.txt'}: a user appears on two lines")
    uniq_users = np.union1d(tr_users, te_users)
    n_users = len(uniq_users)
    items, idx_rows = _index_items(tr_rows + te_rows)
    train_by_user: list[np.ndarray] = [np.zeros(0, np.int64)] * n_users
    for u, r in zip(np.searchsorted(uniq_users, tr_users), idx_rows[:len(tr_rows)], strict=True):
        train_by_user[u] = np.unique(r)
    test_pos = np.searchsorted(uniq_users, te_users)
    test_rows = [np.unique(r) for r in idx_rows[len(tr_rows):]]
    for u, r, raw_u in zip(test_pos, test_rows, te_users, strict=True):
        if np.intersect1d(r, train_by_user[u]).size:
            raise DataValidationError(f"{folder / 'test.txt'}: user {raw_u} has test items that are also "
                                      "train items (BARS splits never do)")
    full_train = CSR.from_lists(train_by_user)
    order = np.argsort(test_pos, kind="stable")
    test_users = test_pos[order]
    targets = CSR.from_lists([test_rows[i] for i in order])
    rng = np.random.default_rng(seed)

    def shuffled(csr: CSR, users: np.ndarray) -> CSR:
        """Histories in a seeded random order: a set has none, and a model that reads only the
        last ``max_len`` items then sees a random subset, not the highest item ids."""
        return CSR.from_lists([rng.permutation(csr.row(u)) for u in users])

    test = EvalSplit(test_users, targets, shuffled(full_train, test_users), full_train.take(test_users))
    valid = None
    train = full_train
    if train_split == "train":
        keep, held = [], []
        for r in train_by_user:
            n_hold = int(round(len(r) * valid_fraction)) if len(r) >= 2 else 0
            n_hold = max(n_hold, 1) if len(r) >= 2 else 0
            perm = rng.permutation(len(r))
            held.append(np.sort(r[perm[:n_hold]]))
            keep.append(np.sort(r[perm[n_hold:]]))
        train = CSR.from_lists(keep)
        vu = np.flatnonzero(np.fromiter((len(h) for h in held), np.int64, n_users))
        valid = EvalSplit(vu, CSR.from_lists([held[u] for u in vu]), shuffled(train, vu), train.take(vu))
    elif train_split != "train_full":
        raise ConfigError(f"data.train_split must be 'train' or 'train_full', got {train_split!r}")
    how = ("BARS split: rank all items for every test user, excluding the user's train items; "
           + (f"validation = {valid_fraction:.0%} of each user's train items (seed {seed})"
              if valid is not None else "trained on all train items"))
    return RetrievalTask(name, n_users, len(items), train, valid, test, items, uniq_users,
                         ordered=False, protocol="bars", how=how)


# -- leave-one-out ---------------------------------------------------------------------------------


def loo_task(name: str, users_raw: np.ndarray, rows_raw: list[np.ndarray], *, train_split: str = "train",
             times: list[np.ndarray] | None = None, user_features: dict[str, np.ndarray] | None = None,
             feature_sizes: dict[str, int] | None = None, source: str = "") -> RetrievalTask:
    """Leave-one-out on per-user sequences in time order (see module docstring).

    Users with fewer than 3 items cannot give train, valid and test items and are refused
    (the S3-Rec files are 5-core)."""
    if train_split not in ("train", "train_full"):
        raise ConfigError(f"data.train_split must be 'train' or 'train_full', got {train_split!r}")
    short = [i for i, r in enumerate(rows_raw) if len(r) < 3]
    if short:
        raise DataValidationError(f"{source or name}: user {users_raw[short[0]]} has {len(rows_raw[short[0]])} "
                                  "item(s); leave-one-out needs at least 3 per user")
    items, rows = _index_items(rows_raw)
    n_users = len(rows)
    cut = 2 if train_split == "train" else 1
    train = CSR.from_lists([r[:-cut] for r in rows])
    users = np.arange(n_users, dtype=np.int64)
    hist_test = CSR.from_lists([r[:-1] for r in rows])
    hist_valid = CSR.from_lists([r[:-2] for r in rows])
    test = EvalSplit(users, CSR.from_lists([r[-1:] for r in rows]), hist_test, hist_test)
    valid = EvalSplit(users, CSR.from_lists([r[-2:-1] for r in rows]), hist_valid, hist_valid)
    train_times = np.concatenate([t[:-cut] for t in times]).astype(np.float64) if times is not None else None
    how = ("leave-one-out: last item test, second last validation; rank all items excluding the user's "
           f"history (S3-Rec protocol); trained on all but the last {cut}")
    return RetrievalTask(name, n_users, len(items), train, valid, test, items,
                         np.asarray(users_raw), ordered=True, protocol="leave-one-out", how=how,
                         train_times=train_times, user_features=user_features or {},
                         feature_sizes=feature_sizes or {})


def amazon_task(name: str, folder: Path, *, train_split: str = "train", seed: int = 0) -> RetrievalTask:
    from seqrec.data.tasks.ctr import AMAZON_FILES

    path = Path(folder) / AMAZON_FILES[name][0]
    users, rows = read_user_lines(path)
    return loo_task(name, users, rows, train_split=train_split, source=str(path))


ML100K_AGE_BUCKETS = (18, 25, 35, 45, 50, 56)  # MovieLens 1M's age groups, applied to ml-100k ages


def ml100k_task(name: str, folder: Path, *, train_split: str = "train", seed: int = 0) -> RetrievalTask:
    """ml-100k (RecBole atomic files): every rating is an interaction, in time order per user
    (ties by file order); user features age bucket, gender, occupation (codes from 1, 0 = unknown)."""
    import polars as pl

    folder = Path(folder)
    inter_p, user_p = folder / "ml-100k.inter", folder / "ml-100k.user"
    try:
        inter = pl.read_csv(inter_p, separator="\t", schema_overrides={"user_id:token": pl.Utf8,
                                                                        "item_id:token": pl.Utf8})
        prof = pl.read_csv(user_p, separator="\t", infer_schema_length=0)
    except Exception as exc:  # polars' parse errors name no row; say which file
        raise DataValidationError(f"{folder}: cannot read ml-100k files: {exc}") from exc
    for p, df, cols in ((inter_p, inter, ("user_id:token", "item_id:token", "timestamp:float")),
                        (user_p, prof, ("user_id:token", "age:token", "gender:token", "occupation:token"))):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataValidationError(f"{p}: missing column(s) {missing}; found {df.columns}")
    inter = inter.with_row_index("row").with_columns(
        pl.col("user_id:token").cast(pl.Int64, strict=False).alias("u"),
        pl.col("item_id:token").cast(pl.Int64, strict=False).alias("i"),
        pl.col("timestamp:float").cast(pl.Float64, strict=False).alias("t"))
    bad = inter.filter(pl.col("u").is_null() | pl.col("i").is_null() | pl.col("t").is_null())
    if bad.height:
        r = bad.row(0, named=True)
        raise DataValidationError(f"{inter_p}: row {r['row'] + 2}: user, item and timestamp must be numbers")
    inter = inter.sort(["u", "t", "row"])
    u = inter["u"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, u[1:] != u[:-1], True])
    it, tt = inter["i"].to_numpy(), inter["t"].to_numpy()
    rows = [it[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    times = [tt[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    users = u[bounds[:-1]]
    prof = prof.with_columns(pl.col("user_id:token").cast(pl.Int64, strict=False).alias("u"))
    feats: dict[str, np.ndarray] = {}
    sizes: dict[str, int] = {}
    by_user = {int(r["u"]): r for r in prof.iter_rows(named=True) if r["u"] is not None}
    age = np.zeros(len(users), np.int64)
    for k, raw in enumerate(users):
        r = by_user.get(int(raw))
        if r is not None and (r["age:token"] or "").isdigit():
            age[k] = 1 + int(np.searchsorted(ML100K_AGE_BUCKETS, int(r["age:token"]), side="right"))
    feats["age"], sizes["age"] = age, len(ML100K_AGE_BUCKETS) + 2
    for col, key in (("gender:token", "gender"), ("occupation:token", "occupation")):
        vals = sorted({r[col] for r in by_user.values() if r[col]})
        code = {v: i + 1 for i, v in enumerate(vals)}
        feats[key] = np.asarray([code.get((by_user.get(int(x)) or {}).get(col), 0) for x in users], np.int64)
        sizes[key] = len(vals) + 1
    return loo_task(name, users, rows, train_split=train_split, times=times, user_features=feats,
                    feature_sizes=sizes, source=str(inter_p))


def taobao_task(name: str, folder: Path, *, train_split: str = "train", seed: int = 0) -> RetrievalTask:
    """The Taobao UserBehavior sample (the TDM paper's data): every behaviour in the official window,
    in time order per user, each item kept at its first occurrence (a repeat of a seen item is not
    a new item to retrieve), then leave-one-out; users with fewer than 3 distinct items dropped."""
    import polars as pl

    from seqrec.data.readers.raw_logs import in_taobao_window, read_taobao_raw

    path = Path(folder) / "UserBehavior_head.csv"
    df = in_taobao_window(read_taobao_raw(path), path).with_row_index("row")
    df = df.sort(["user_id", "timestamp", "row"]).unique(["user_id", "item_id"], keep="first",
                                                         maintain_order=True)
    df = df.filter(pl.len().over("user_id") >= 3)
    u = df["user_id"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, u[1:] != u[:-1], True])
    it, tt = df["item_id"].to_numpy(), df["timestamp"].to_numpy()
    rows = [it[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    times = [tt[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return loo_task(name, u[bounds[:-1]], rows, train_split=train_split, times=times, source=str(path))
