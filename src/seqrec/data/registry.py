"""Registered datasets: where their files live, where they came from, how they split.

``load_dataset(name)`` checks that every file exists (a missing one is a
:class:`~seqrec.errors.DataNotFoundError` saying where to get it and where to
put it), reads them with the dataset's reader and caches the canonical split
tables as Parquet (:mod:`seqrec.data.cache`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seqrec.data import cache
from seqrec.data.readers import gru4rec_tsv, raw_logs, srgnn
from seqrec.data.splits import SessionSplits
from seqrec.errors import ConfigError, DataNotFoundError

log = logging.getLogger(__name__)

ENV_DATA = "SEQREC_DATA"


def data_dir(override: str | Path | None = None) -> Path:
    """Root of the data tree: ``override``, ``$SEQREC_DATA``, ``../shared/data``, or a
    ``shared/data`` found walking up from the package. Not checked for existence
    when given explicitly; errors come when files are read."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    default = Path.cwd().parent / "shared" / "data"
    if default.is_dir():
        return default.resolve()
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return default


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about one dataset (shown by ``seqrec datasets``)."""

    name: str
    subdir: str
    files: tuple[str, ...]
    source: str
    licence: str
    description: str
    has_users: bool
    has_time: bool
    split: str
    reader: Callable[[Path], SessionSplits]


_SRGNN_PROC = "preprocessed with CRIPAC-DIG/SR-GNN datasets/preprocess.py"
DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
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
            has_users=False,
            has_time=False,
            split="given: last 7 days test (60,858 prefixes); valid = last 10% of train",
            reader=srgnn.load_diginetica,
        ),
        DatasetInfo(
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
            has_users=False,
            has_time=False,
            split="given: last day test (55,898 prefixes); valid = last 10% of train",
            reader=srgnn.load_yoochoose1_64,
        ),
        DatasetInfo(
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
            has_users=False,
            has_time=False,
            split="given: last 7 days test; valid = last 10% of train",
            reader=srgnn.load_retailrocket,
        ),
        DatasetInfo(
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
            has_users=False,
            has_time=True,
            split="given: last 24 h test; train_tr / train_valid = last 24 h of train_full",
            reader=gru4rec_tsv.load_yoochoose_100k,
        ),
        DatasetInfo(
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
            has_users=False,
            has_time=True,
            split="time: last 7 days test, valid = last 7 days of the rest",
            reader=raw_logs.load_diginetica_raw_sample,
        ),
        DatasetInfo(
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
            has_users=True,
            has_time=True,
            split="time: last day test, valid = last day of the rest; 30-min sessions",
            reader=raw_logs.load_taobao,
        ),
        DatasetInfo(
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
            has_users=True,
            has_time=True,
            split=(
                f"time: last {raw_logs.RETAILROCKET_USERS_TEST_DAYS:g} days test, "
                "valid = the same window inside the rest"
            ),
            reader=raw_logs.load_retailrocket_users,
        ),
    )
}


def get_dataset_info(name: str) -> DatasetInfo:
    """The registry entry; an unknown name is a ConfigError listing the known ones."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}"
        ) from None


def _folder(info: DatasetInfo, root: str | Path | None) -> Path:
    return data_dir(root) / info.subdir


def dataset_status(data_dir: str | Path | None = None) -> list[dict]:
    """One row per registered dataset: where it is expected and which files are missing."""
    rows = []
    for info in DATASETS.values():
        folder = _folder(info, data_dir)
        missing = [f for f in info.files if not (folder / f).is_file()]
        rows.append(
            {
                "name": info.name,
                "path": str(folder),
                "found": not missing,
                "missing": missing,
                "description": info.description,
                "split": info.split,
                "source": info.source,
                "licence": info.licence,
                "has_users": info.has_users,
                "has_time": info.has_time,
            }
        )
    return rows


def load_dataset(
    name: str, data_dir: str | Path | None = None, *, use_cache: bool = True
) -> SessionSplits:
    """Read (or fetch from the cache) the canonical split tables of a registered dataset."""
    info = get_dataset_info(name)
    folder = _folder(info, data_dir)
    missing = [folder / f for f in info.files if not (folder / f).is_file()]
    if missing:
        raise DataNotFoundError(
            f"dataset {name!r}: missing file(s) {', '.join(str(p) for p in missing)}. "
            f"Source: {info.source}. Put the files in {folder}/ "
            f"(i.e. <data_dir>/{info.subdir}/) or set {ENV_DATA} to the data directory."
        )
    key = None
    if use_cache:
        try:
            key = cache.cache_key(name, folder, info.files)
            cached = cache.load(name, key)
        except OSError as exc:
            log.warning("dataset cache unavailable (%s); reading the files", exc)
            key, cached = None, None
        if cached is not None:
            return cached
    splits = info.reader(folder)
    if key is not None:
        try:
            cache.save(splits, key)
        except OSError as exc:  # read-only or full disk: the data is still usable
            log.warning("could not write the dataset cache (%s)", exc)
    return splits
