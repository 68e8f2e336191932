"""Parquet cache of a dataset's split tables, so the second ``load_dataset`` is fast.

One folder per entry, ``<cache_dir>/<dataset>-<key>/``, with one Parquet file per
table and ``meta.json``. The key hashes the source files' names, sizes and
modification times plus :data:`READER_VERSION`, so editing a data file or a
reader (bump the constant) invalidates the entry. Every file is written
atomically and ``meta.json`` last, so a half-written entry is never read; an
entry that cannot be read is ignored (and rebuilt by the caller).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

import polars as pl

from seqrec.data.events import validate_events
from seqrec.data.split import SessionSplits
from seqrec.io import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

#: Bump when a reader or split changes what it returns for the same files.
READER_VERSION = 1
SPLITS = ("train", "valid", "test", "train_full")
_META = "meta.json"


def cache_dir() -> Path:
    """``$SEQREC_CACHE`` or ``~/.cache/seqrec``."""
    env = os.environ.get("SEQREC_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "seqrec"


def cache_key(name: str, folder: Path, files: tuple[str, ...]) -> str:
    """Hash of the dataset name, its files' (name, size, mtime) and READER_VERSION."""
    stamp = []
    for f in sorted(files):
        st = (Path(folder) / f).stat()
        stamp.append([f, st.st_size, st.st_mtime_ns])
    blob = json.dumps({"name": name, "files": stamp, "reader": READER_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def entry_dir(name: str, key: str) -> Path:
    return cache_dir() / f"{name}-{key}"


def load(name: str, key: str) -> SessionSplits | None:
    """The cached splits, or None when absent or unreadable (a warning is logged)."""
    folder = entry_dir(name, key)
    meta_path = folder / _META
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        tables = {}
        for split in SPLITS:
            df = pl.read_parquet(folder / f"{split}.parquet")
            if df.height != meta["rows"][split]:
                raise ValueError(f"{split}: {df.height} rows, meta says {meta['rows'][split]}")
            tables[split] = validate_events(df, source=f"cache {folder}/{split}.parquet")
        extra = dict(meta["extra_json"])
        for k in meta["extra_tables"]:
            extra[k] = pl.read_parquet(folder / f"extra_{k}.parquet")
        return SessionSplits(
            name=meta["name"],
            has_time=bool(meta["has_time"]),
            has_users=bool(meta["has_users"]),
            note=meta["note"],
            extra=extra,
            **tables,
        )
    except Exception as exc:  # a corrupt entry of any kind just means "rebuild"
        log.warning("ignoring unreadable cache entry %s (%s); rebuilding", folder, exc)
        return None


def save(splits: SessionSplits, key: str) -> Path | None:
    """Write ``splits`` under ``key``; drop older entries of the same dataset.

    Returns the entry folder, or None when ``extra`` holds something that is
    neither a DataFrame nor JSON data (then nothing is cached).
    """
    extra_tables = {k: v for k, v in splits.extra.items() if isinstance(v, pl.DataFrame)}
    extra_json = {k: v for k, v in splits.extra.items() if k not in extra_tables}
    try:
        json.dumps(extra_json)
    except TypeError:
        log.warning("not caching %s: extra holds non-JSON values", splits.name)
        return None
    folder = entry_dir(splits.name, key)
    (folder / _META).unlink(missing_ok=True)  # invalid until rewritten last
    for split in SPLITS:
        _write_parquet(splits.get(split), folder / f"{split}.parquet")
    for k, df in extra_tables.items():
        _write_parquet(df, folder / f"extra_{k}.parquet")
    meta = {
        "name": splits.name,
        "key": key,
        "reader_version": READER_VERSION,
        "has_time": splits.has_time,
        "has_users": splits.has_users,
        "note": splits.note,
        "rows": {s: splits.get(s).height for s in SPLITS},
        "extra_json": extra_json,
        "extra_tables": sorted(extra_tables),
    }
    atomic_write_text(folder / _META, json.dumps(meta, indent=1))
    _prune(splits.name, keep=folder)
    return folder


def _write_parquet(df: pl.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: df.write_parquet(tmp))


def _prune(name: str, keep: Path) -> None:
    pattern = re.compile(re.escape(name) + r"-[0-9a-f]{16}")
    for old in cache_dir().glob(f"{name}-*"):
        if old != keep and old.is_dir() and pattern.fullmatch(old.name):
            shutil.rmtree(old, ignore_errors=True)
