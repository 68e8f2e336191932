"""Parquet cache of the split tables: reused, invalidated by file changes, corruption ignored."""

from __future__ import annotations

import dataclasses
import os

import polars as pl
import pytest

from seqrec.data import cache
from seqrec.data.readers.generic import read_events
from seqrec.data.registry import DATASETS, DatasetEntry, SessionRecipe, load_dataset
from seqrec.data.split import GivenSplit, SessionSplits, SplitSpec, time_split

SPLITS = ("train", "valid", "test", "train_full")


def _equal(a: SessionSplits, b: SessionSplits) -> bool:
    same = all(a.get(s).equals(b.get(s)) for s in SPLITS)
    return same and (a.name, a.note, a.has_time, a.has_users) == (
        b.name, b.note, b.has_time, b.has_users,
    )  # fmt: skip


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A registered toy dataset in tmp_path; ``calls`` counts reader invocations."""
    folder = tmp_path / "data" / "session" / "tiny"
    folder.mkdir(parents=True)
    rows = ["sid\titem\tt"]
    for s in range(6):
        rows += [f"{s}\t{s % 3}\t{s * 86400}", f"{s}\t{(s + 1) % 3}\t{s * 86400 + 60}"]
    (folder / "events.tsv").write_text("\n".join(rows) + "\n")
    calls = []

    def reader(path):
        calls.append(path)
        full = read_events(path / "events.tsv", columns={"session_id": "sid", "item_id": "item",
                                                         "timestamp": "t"})  # fmt: skip
        train_full, test = time_split(full, test_days=1)
        train, valid = time_split(train_full, test_days=1)
        return GivenSplit(train_full=train_full, test=test, train=train, valid=valid,
                          extra={"times": test.select("timestamp"), "k": [1, 2]})

    info = DatasetEntry(
        name="tiny", subdir="session/tiny", files=("events.tsv",), source="made in a test",
        licence="research-only", description="toy",
        recipes={"session": SessionRecipe(reader, SplitSpec("given"), "Toy.", has_users=False, has_time=True)},
    )  # fmt: skip
    monkeypatch.setitem(DATASETS, "tiny", info)
    monkeypatch.setenv("SEQREC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "data", folder, calls


def test_second_load_reads_cache(tiny):
    root, _, calls = tiny
    first = load_dataset("tiny", root)
    second = load_dataset("tiny", root)
    assert len(calls) == 1 and _equal(first, second)
    assert second.extra["k"] == [1, 2] and second.extra["times"].equals(first.extra["times"])
    entries = list((root.parent / "cache").iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("tiny-")
    load_dataset("tiny", root, use_cache=False)
    assert len(calls) == 2


def test_changed_file_invalidates_and_prunes(tiny):
    root, folder, calls = tiny
    load_dataset("tiny", root)
    path = folder / "events.tsv"
    path.write_text(path.read_text() + "6\t0\t600000\n6\t1\t600060\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = load_dataset("tiny", root)
    assert len(calls) == 2
    assert 6 in set(again.train_full["session_id"]) | set(again.test["session_id"])
    assert len(list((root.parent / "cache").iterdir())) == 1  # the stale entry was removed


@pytest.mark.parametrize("damage", ["train.parquet", "meta.json", "extra_times.parquet"])
def test_corrupt_cache_is_rebuilt(tiny, damage):
    root, _, calls = tiny
    first = load_dataset("tiny", root)
    (entry,) = (root.parent / "cache").iterdir()
    (entry / damage).write_bytes(b"not parquet or json")
    second = load_dataset("tiny", root)
    assert len(calls) == 2 and _equal(first, second)
    third = load_dataset("tiny", root)  # the rebuilt entry is good again
    assert len(calls) == 2 and _equal(first, third)


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQREC_CACHE", str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SEQREC_CACHE")
    assert cache.cache_dir().parts[-2:] == (".cache", "seqrec")


def test_real_dataset_cached_without_calling_reader(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SEQREC_CACHE", str(tmp_path / "cache"))
    first = load_dataset("diginetica_raw_sample", data_root)

    def boom(folder):
        raise AssertionError("reader called although the cache is valid")

    info = DATASETS["diginetica_raw_sample"]
    rec = dataclasses.replace(info.recipes["session"], read=boom)
    monkeypatch.setitem(DATASETS, info.name, dataclasses.replace(info, recipes={"session": rec}))
    second = load_dataset("diginetica_raw_sample", data_root)
    assert _equal(first, second)
    assert isinstance(second.train, pl.DataFrame)
