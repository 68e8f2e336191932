"""One registry of every dataset of every family: where its files live, where they came
from, and each family's recipe for it.

A :class:`DatasetEntry` is a set of files (``<data_dir>/<subdir>/<files>``) with its
public source and licence, and ``recipes``: family name -> what that family builds from
the files (:class:`SessionRecipe` for ``session``, :class:`CTRRecipe` for ``ctr``,
:class:`~seqrec.data.readers.purchase.PurchaseDataset` for ``purchase``). One file read
by several families (Taobao UserBehavior) is one entry with several recipes, and is
parsed by one reader. ``seqrec datasets`` lists this table.

``load_dataset(name)`` (the session recipe) checks that every file exists (a missing one
is a :class:`~seqrec.errors.DataNotFoundError` saying where to get it and where to put
it), reads them, applies the split stage (:mod:`seqrec.data.split`) and caches the
split tables as Parquet (:mod:`seqrec.data.cache`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqrec.data import cache
from seqrec.data.paths import ENV_DATA, data_dir
from seqrec.data.readers import gru4rec_tsv, purchase, raw_logs, srgnn
from seqrec.data.split import SessionSplits, SplitSpec, split_events
from seqrec.errors import ConfigError, DataNotFoundError

log = logging.getLogger(__name__)

__all__ = ["DATASETS", "ENV_DATA", "CTRRecipe", "DatasetEntry", "RetrievalRecipe", "SessionRecipe", "data_dir", "dataset_status",
           "datasets_of", "get_dataset", "load_dataset", "recipe", "require_files"]


@dataclass(frozen=True)
class SessionRecipe:
    """Next-item sessions: the reader (files -> canonical table or given split) and the split."""

    read: Callable[[Path], Any]
    split: SplitSpec
    how: str
    has_users: bool
    has_time: bool


@dataclass(frozen=True)
class CTRRecipe:
    """CTR samples: ``build(name, folder, max_len=, seed=)`` -> a CTRTask (seqrec.data.tasks.ctr)."""

    build: Callable[..., Any]
    how: str


@dataclass(frozen=True)
class MultiTaskRecipe:
    """Several binary labels per row: ``build(name, folder, seed=)`` -> a MultiTaskData
    (seqrec.data.tasks.multitask)."""

    build: Callable[..., Any]
    how: str


def _taobao_multitask_build(name: str, folder: Path, **kw: Any) -> Any:
    from seqrec.data.tasks.taobao_multitask import taobao_multitask

    return taobao_multitask(name, folder, **kw)


def _census_build(name: str, folder: Path, **kw: Any) -> Any:
    from seqrec.data.tasks.multitask import census_task

    return census_task(name, folder, **kw)


@dataclass(frozen=True)
class DatasetEntry:
    """What the registry knows about one dataset (shown by ``seqrec datasets``)."""

    name: str
    subdir: str
    files: tuple[str, ...]
    source: str
    licence: str
    description: str
    recipes: dict[str, Any] = field(default_factory=dict)

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(self.recipes)


@dataclass(frozen=True)
class RetrievalRecipe:
    """User -> whole-catalogue ranking: ``build(name, folder, train_split=, seed=)`` -> a
    RetrievalTask (seqrec.data.tasks.retrieval)."""

    build: Callable[..., Any]
    how: str


def _retrieval_build(kind: str) -> Callable[..., Any]:
    def build(name: str, folder: Path, **kw: Any) -> Any:
        from seqrec.data.tasks import retrieval

        return getattr(retrieval, f"{kind}_task")(name, folder, **kw)

    return build


_LOO_HOW = ("leave-one-out per user (last item test, second last validation); rank all items excluding "
            "the user's history (S3-Rec all-item protocol)")
_AMAZON_RETRIEVAL = RetrievalRecipe(_retrieval_build("amazon"), _LOO_HOW)
_BARS = RetrievalRecipe(_retrieval_build("bars"), "BARS matching split: rank all items excluding the "
                        "user's train items; validation held out from train (10% per user, seeded)")
_BARS_SOURCE = "BARS matching benchmark (reczoo/BARS); see retrieval/README.md for the exact commits"


def _ctr_build(kind: str) -> Callable[..., Any]:
    def build(name: str, folder: Path, **kw: Any) -> Any:
        from seqrec.data.tasks import ctr

        return ctr.amazon_ctr(name, folder, **kw) if kind == "amazon" else ctr.taobao_ctr(folder, **kw)

    return build


_AMAZON_SOURCE = "GitHub RUCAIBox/CIKM2020-S3Rec data/ (Amazon review 5-core, McAuley lab)"
_AMAZON_CTR = CTRRecipe(_ctr_build("amazon"), "leave-one-out per user; 1 sampled untouched item per target")
_TAOBAO_CTR = CTRRecipe(_ctr_build("taobao"),
                        "clicks vs sampled unclicked items; last day test, day before valid")
_GIVEN = SplitSpec("given", valid_fraction=0.1)
_SRGNN_HOW = ("test sessions rebuilt exactly from the test.txt prefixes; valid = last 10% of all_train_seq "
              "sessions (file = date order) restricted to items of the first 90%; train_full = all of "
              "all_train_seq; no real time (ordinal timestamps).")

_SRGNN_PROC = "preprocessed with CRIPAC-DIG/SR-GNN datasets/preprocess.py"
DATASETS: dict[str, DatasetEntry] = {
    d.name: d
    for d in (
        DatasetEntry(
            name="diginetica",
            subdir="session/diginetica",
            files=("all_train_seq.txt", "test.txt"),
            source=(
                "DIGINETICA (CIKM Cup 2016 Track 2, train-item-views.csv), "
                f"{_SRGNN_PROC}; files from GitHub CCIIPLab/GCE-GNN commit "
                "212575302e42d64b8cf0b9ffe1b71b0db398d5be, datasets/diginetica/"
            ),
            licence="research-only (no open licence; released for the CIKM Cup 2016)",
            description="SR-GNN DIGINETICA benchmark: 186,670 train sessions, 43,097 items",
            recipes={"session": SessionRecipe(
                srgnn.read_srgnn_folder, _GIVEN,
                "Given SR-GNN split (last 7 days as test, all test items occur in train); " + _SRGNN_HOW,
                has_users=False, has_time=False)},
        ),
        DatasetEntry(
            name="yoochoose1_64",
            subdir="session/yoochoose1_64",
            files=("all_train_seq.txt", "test.txt"),
            source=(
                "YOOCHOOSE clicks (RecSys Challenge 2015), "
                f"{_SRGNN_PROC}; files from GitHub "
                "YuhanZhen/WSDM23-DGNNs--for-Session-based-Recommendation commit "
                "a1f246cc2e4914582829fdb15b89b6c0bdbadd81, datasets/yoochoose1_64/"
            ),
            licence="research-only, CC BY-NC-ND 4.0",
            description="SR-GNN YOOCHOOSE 1/64 benchmark: 116,167 train sessions",
            recipes={"session": SessionRecipe(
                srgnn.read_srgnn_folder, _GIVEN,
                "Given SR-GNN split (last day as test, train = most recent 1/64; test kept as published: "
                "its 369 items absent from the 1/64 train stay in and count as misses); " + _SRGNN_HOW,
                has_users=False, has_time=False)},
        ),
        DatasetEntry(
            name="retailrocket",
            subdir="session/retailrocket",
            files=("all_train_seq.txt", "all_test_seq_time.txt"),
            source=(
                "RetailRocket recommender system dataset (Kaggle retailrocket/ecommerce-dataset, "
                "events.csv); all_train_seq.txt from GitHub MSJeinlong/CGENet commit "
                "361cab1829696845656c0b3727a837ff7e1d6991, all_test_seq_time.txt from "
                "sessionRec/MTD commit 76502cb9a4fc9a5656d948e5bb827710d0a4726b, "
                "datasets/retailrocket/"
            ),
            licence="research-only, CC BY-NC-SA 4.0 (as listed on Kaggle)",
            description="RetailRocket view sessions: 126,168 train, 4,775 timed test sessions",
            recipes={"session": SessionRecipe(
                srgnn.read_retailrocket, _GIVEN,
                "Given time split (last 7 days as test, all test items occur in train); test = "
                "all_test_seq_time.txt sessions ordered by start time, their real Unix times in "
                "extra['test_times']; valid = last 10% of all_train_seq sessions restricted to items "
                "of the first 90%; train_full = all of all_train_seq; ordinal timestamps.",
                has_users=False, has_time=False)},
        ),
        DatasetEntry(
            name="yoochoose_100k",
            subdir="session/yoochoose_100k",
            files=gru4rec_tsv.YOOCHOOSE_100K_FILES,
            source=(
                "YOOCHOOSE clicks (RecSys Challenge 2015), 100k-click sample; GitHub "
                "rn5l/session-rec commit 5dcd583cbd8d44703a5248b9a308945f24b91390, "
                "data/rsc15/prepared/"
            ),
            licence="research-only, CC BY-NC-ND 4.0",
            description="GRU4Rec TSV (SessionId, ItemId, Time): 21,210 sessions, 2,933 items",
            recipes={"session": SessionRecipe(
                gru4rec_tsv.read_yoochoose_100k, SplitSpec("given"),
                "Given GRU4Rec/session-rec split: test = sessions ending in the last 24 h of the data "
                "(items restricted to train_full, sessions >= 2 events); valid = the same rule inside "
                "train_full (train = train_tr, valid = train_valid; 81 train_full sessions are in "
                "neither); sessions ordered by first event time.",
                has_users=False, has_time=True)},
        ),
        DatasetEntry(
            name="diginetica_raw_sample",
            subdir="session/diginetica_raw_sample",
            files=("sample_train-item-views.csv",),
            source=(
                "DIGINETICA (CIKM Cup 2016 Track 2) train-item-views sample; GitHub "
                "CRIPAC-DIG/SR-GNN commit e21cfa431f74c25ae6e4ae9261deefe11d1cb488, "
                "datasets/sample_train-item-views.csv"
            ),
            licence="research-only (no open licence; released for the CIKM Cup 2016)",
            description="raw DIGINETICA item views (';'), 12,391 events in 2,986 sessions",
            recipes={"session": SessionRecipe(
                raw_logs.read_diginetica_raw_sample, SplitSpec("time", test_days=7.0),
                "Time split as in SR-GNN: 1-event sessions dropped, test = sessions whose last event "
                "is in the last 7 days, valid = the same rule inside train_full; held-out events on "
                "items unseen in their train part dropped, then sessions < 2 events dropped. SR-GNN's "
                "item-support >= 5 filter is NOT applied (it would wipe out this small sample).",
                has_users=False, has_time=True)},
        ),
        DatasetEntry(
            name="taobao",
            subdir="session/taobao_userbehavior_sample",
            files=("UserBehavior_head.csv",),
            source=(
                "Alibaba Tianchi UserBehavior (dataset 649), head of the file; GitHub "
                "Haohanblue/mydeep commit ef812addc2c164f1d3ef48564a5c393ec293bc61, "
                "mydeep/UserBehavior.csv (last, truncated user removed)"
            ),
            licence="research-only (Tianchi non-commercial terms; cite Zhu et al., KDD 2018)",
            description="Taobao pv/cart/fav/buy events of 814 users, category ids, Unix time",
            recipes={
                "session": SessionRecipe(
                    raw_logs.read_taobao, SplitSpec("time", test_days=1.0),
                    "Events outside 2017-11-25..2017-12-03 (UTC+8) dropped, sessions = 30-min gaps per "
                    "user, all behaviours (pv/cart/fav/buy) kept in the sequence; test = sessions whose "
                    "last event is in the last day, valid = the same rule inside train_full; held-out "
                    "items restricted to their train part; sessions < 2 events dropped.",
                    has_users=True, has_time=True),
                "ctr": _TAOBAO_CTR,
                "purchase": purchase.TAOBAO,
                "retrieval": RetrievalRecipe(
                    _retrieval_build("taobao"),
                    "every behaviour in the official window, items at first occurrence per user, "
                    "users >= 3 items; " + _LOO_HOW),
                "multitask": MultiTaskRecipe(
                    _taobao_multitask_build,
                    "DUPN's tasks: ctr (click vs an item touched that day), l2r (click vs a same-category item "
                    "that day, query = category), pref (cart/fav vs an item viewed that day), buy (buys that "
                    "day), cat_buy (held out: buys from a recent category that day); last day test, day "
                    "before valid"),
            },
        ),
        DatasetEntry(
            name="retailrocket_users",
            subdir="session/retailrocket_user_sessions_sample",
            files=("sample_retailrocket.csv",),
            source=(
                "RetailRocket recommender system dataset (Kaggle retailrocket/ecommerce-dataset, "
                "events.csv), view sample; GitHub kangshitao/SR-GTM commit "
                "264e1fa19d39ab883c7635b30a5fd3c848b3b5e5, datasets/sample_retailrocket.csv"
            ),
            licence="research-only, CC BY-NC-SA 4.0 (as listed on Kaggle)",
            description="RetailRocket views with visitor ids and 30-min sessions, 2,496 users",
            recipes={"session": SessionRecipe(
                raw_logs.read_retailrocket_users,
                SplitSpec("time", test_days=raw_logs.RETAILROCKET_USERS_TEST_DAYS),
                "Given 30-min session ids (the 2 that mix two visitors are split per visitor); test = "
                f"sessions whose last event is in the last {raw_logs.RETAILROCKET_USERS_TEST_DAYS:g} days "
                "(380 of 2,952 sessions, 12.9%, before the item filter: the sample is sparse, so few "
                "held-out events are on train items), valid = the same rule inside train_full; held-out "
                "items restricted to their train part; sessions < 2 events dropped.",
                has_users=True, has_time=True)},
        ),
        DatasetEntry(
            name="amazon_beauty",
            subdir="sequential/amazon_beauty",
            files=("Beauty.txt", "Beauty_item2attributes.json"),
            source=_AMAZON_SOURCE,
            licence="research-only (Amazon review data, McAuley lab)",
            description="Amazon Beauty 5-core sequences: 22,363 users, 12,101 items, with categories",
            recipes={"ctr": _AMAZON_CTR, "retrieval": _AMAZON_RETRIEVAL},
        ),
        DatasetEntry(
            name="amazon_sports",
            subdir="sequential/amazon_sports",
            files=("Sports_and_Outdoors.txt", "Sports_and_Outdoors_item2attributes.json"),
            source=_AMAZON_SOURCE,
            licence="research-only (Amazon review data, McAuley lab)",
            description="Amazon Sports 5-core sequences: 35,598 users, 18,357 items, with categories",
            recipes={"ctr": _AMAZON_CTR, "retrieval": _AMAZON_RETRIEVAL},
        ),
        DatasetEntry(
            name="census_income",
            subdir="multitask/census_income",
            files=("census-income.test.gz",),
            source=("UCI Census-Income (KDD), dataset 117; drawbridge/keras-mmoe commit "
                    "2718f56e4313716fd3a86e9510bc2df0cc366238, data/census-income.test.gz"),
            licence="CC BY 4.0 (UCI; cite the repository and donors)",
            description="US census 1994-95, 99,762 people (the official test file): income > 50K, never married",
            recipes={"multitask": MultiTaskRecipe(
                _census_build, "MMoE's task group 1 (income > 50K, never married); the staged file split "
                "60/20/20 by a seeded permutation")},
        ),
        DatasetEntry(
            name="gowalla",
            subdir="retrieval/gowalla",
            files=("train.txt", "test.txt"),
            source=_BARS_SOURCE + " (LightGCN's Gowalla split, gusye1234/LightGCN-PyTorch 947ca2b)",
            licence="research use (SNAP Gowalla check-ins, Cho et al. KDD 2011)",
            description="Gowalla check-in item sets: 29,858 users, 40,981 items, BARS Gowalla_m1",
            recipes={"retrieval": _BARS},
        ),
        DatasetEntry(
            name="movielens1m_m1",
            subdir="retrieval/movielens1m_m1",
            files=("train.txt", "test.txt"),
            source=_BARS_SOURCE + " (LCFN's MovieLens-1M split, reczoo/RecZoo fd2379d)",
            licence="research, non-commercial (GroupLens MovieLens 1M terms)",
            description="MovieLens-1M item sets: 6,022 users, 3,043 items, BARS Movielens1M_m1",
            recipes={"retrieval": _BARS},
        ),
        DatasetEntry(
            name="ml-100k",
            subdir="sequential/ml-100k",
            files=("ml-100k.inter", "ml-100k.user", "ml-100k.item"),
            source="GroupLens MovieLens 100K as RecBole atomic files (PyPI recbole==1.2.1 dataset_example)",
            licence="research, non-commercial (GroupLens usage licence)",
            description="MovieLens 100K ratings with time and user age / gender / occupation",
            recipes={"retrieval": RetrievalRecipe(
                _retrieval_build("ml100k"), "every rating an interaction, time order per user; user features "
                "age bucket, gender, occupation; " + _LOO_HOW)},
        ),
        *(DatasetEntry(name=p.name, subdir=p.subdir, files=p.files, source=p.source, licence=p.licence,
                       description=p.description, recipes={"purchase": p})
          for p in purchase.PURCHASE_DATASETS.values() if p.name != "taobao"),
    )
}


def get_dataset(name: str, family: str | None = None) -> DatasetEntry:
    """The registry entry (with a recipe for ``family`` when given); a ConfigError listing the
    known names otherwise."""
    entry = DATASETS.get(name) if isinstance(name, str) else None
    if name == "":
        raise ConfigError("no data configured: set data.dataset to a registered name (seqrec datasets) "
                          "or data.path to your own file")
    if entry is None:
        known = sorted(n for n, e in DATASETS.items() if family is None or family in e.recipes)
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {', '.join(known)}")
    if family is not None and family not in entry.recipes:
        known = sorted(n for n, e in DATASETS.items() if family in e.recipes)
        raise ConfigError(f"dataset {name!r} has no {family} recipe (it has {', '.join(entry.families)}); "
                          f"{family} datasets: {', '.join(known)}")
    return entry


def datasets_of(family: str) -> dict[str, DatasetEntry]:
    """The entries with a recipe for ``family``, in registry order."""
    return {n: e for n, e in DATASETS.items() if family in e.recipes}


def recipe(name: str, family: str) -> Any:
    """``family``'s recipe for dataset ``name``."""
    return get_dataset(name, family).recipes[family]


def folder_of(entry: DatasetEntry, root: str | Path | None = None) -> Path:
    return data_dir(root) / entry.subdir


def require_files(entry: DatasetEntry, root: str | Path | None = None) -> Path:
    """The dataset's folder; DataNotFoundError naming the missing files, the source and where to put them."""
    folder = folder_of(entry, root)
    missing = [folder / f for f in entry.files if not (folder / f).is_file()]
    if missing:
        raise DataNotFoundError(
            f"dataset {entry.name!r}: missing file(s) {', '.join(str(p) for p in missing)}. "
            f"Source: {entry.source}. Put the files in {folder}/ "
            f"(i.e. <data_dir>/{entry.subdir}/) or set {ENV_DATA} to the data directory."
        )
    return folder


def dataset_status(data_dir: str | Path | None = None) -> list[dict]:
    """One row per registered dataset: its families, where it is expected, which files are missing."""
    rows = []
    for entry in DATASETS.values():
        folder = folder_of(entry, data_dir)
        missing = [f for f in entry.files if not (folder / f).is_file()]
        recipes = {fam: (r.how if hasattr(r, "how") else r.description) for fam, r in entry.recipes.items()}
        rows.append({"name": entry.name, "families": list(entry.families), "path": str(folder),
                     "found": not missing, "missing": missing, "description": entry.description,
                     "recipes": recipes, "source": entry.source, "licence": entry.licence})
    return rows


def load_dataset(
    name: str, data_dir: str | Path | None = None, *, use_cache: bool = True
) -> SessionSplits:
    """Read (or fetch from the cache) the split session tables of a registered dataset."""
    entry = get_dataset(name, "session")
    rec: SessionRecipe = entry.recipes["session"]
    folder = require_files(entry, data_dir)
    key = None
    if use_cache:
        try:
            key = cache.cache_key(name, folder, entry.files)
            cached = cache.load(name, key)
        except OSError as exc:
            log.warning("dataset cache unavailable (%s); reading the files", exc)
            key, cached = None, None
        if cached is not None:
            return cached
    splits = split_events(name, rec.read(folder), rec.split, has_time=rec.has_time,
                          has_users=rec.has_users, how=rec.how)
    if key is not None:
        try:
            cache.save(splits, key)
        except OSError as exc:  # read-only or full disk: the data is still usable
            log.warning("could not write the dataset cache (%s)", exc)
    return splits
