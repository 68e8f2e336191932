"""Every registered dataset loads from the real files with the documented counts and invariants."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from seqrec.data.events import validate_events
from seqrec.data.readers.raw_logs import (
    TAOBAO_END,
    TAOBAO_START,
    read_diginetica_views,
    read_retailrocket_sessions,
    read_taobao_raw,
    read_taobao_userbehavior,
)
from seqrec.data.registry import DATASETS, datasets_of
from seqrec.data.sessionize import sessionize

SPLITS = ("train", "valid", "test", "train_full")
# (events, sessions) per split, from the folder READMEs where they give them.
EXPECTED = {
    "diginetica": {"test": (76_821, 15_963), "train_full": (906_140, 186_670)},
    "yoochoose1_64": {"test": (71_222, 15_324), "train_full": (486_026, 116_167)},
    "retailrocket": {"test": (24_682, 4_775), "train_full": (685_984, 126_168)},
    "yoochoose_100k": {
        "train": (53_254, 13_629),
        "valid": (16_539, 4_084),
        "test": (13_568, 3_416),
        "train_full": (70_278, 17_794),
    },
    # time splits made here (see each SessionSplits.note)
    "diginetica_raw_sample": {
        "train": (9_775, 1_763),
        "valid": (155, 40),
        "test": (411, 113),
        "train_full": (10_292, 1_856),
    },
    "taobao": {
        "train": (58_062, 7_120),
        "valid": (2_732, 563),
        "test": (3_116, 631),
        "train_full": (68_928, 8_400),
    },
    "retailrocket_users": {
        "train": (7_543, 2_169),
        "valid": (250, 89),
        "test": (260, 100),
        "train_full": (8_915, 2_571),
    },
}


def _items(df: pl.DataFrame) -> set:
    return set(df["item_id"].unique().to_list())


def _sessions(df: pl.DataFrame) -> set:
    return set(df["session_id"].unique().to_list())


def test_every_registered_dataset_is_covered():
    assert set(datasets_of("session")) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dataset_loads_with_counts_and_invariants(name, real_splits):
    s = real_splits(name)
    info = DATASETS[name].recipes["session"]
    assert s.name == name
    assert (s.has_time, s.has_users) == (info.has_time, info.has_users)
    counts = s.counts()
    for split, (events, sessions) in EXPECTED[name].items():
        assert (counts[split]["events"], counts[split]["sessions"]) == (events, sessions), split
    assert "Counts:" in s.note and f"{counts['test']['events']:,} events" in s.note

    for split in SPLITS:
        df = s.get(split)
        assert validate_events(df, source=split).equals(df)
        assert df.schema["session_id"] == pl.Int64 and df.schema["item_id"] == pl.Int64
        assert df.schema["timestamp"] == pl.Float64
        assert ("user_id" in df.columns) == info.has_users
        # sessions ordered by their first event time (ties keep file order)
        first = df.group_by("session_id", maintain_order=True).agg(pl.col("timestamp").first())
        assert first["timestamp"].is_sorted(), split
        if info.has_users:  # one user per session
            assert df.group_by("session_id").agg(pl.col("user_id").n_unique())["user_id"].max() == 1

    # session ids never shared between splits that are used together
    assert not _sessions(s.train) & _sessions(s.valid)
    assert not _sessions(s.train_full) & _sessions(s.test)
    # train_full holds every train and valid session (valid filtering may drop events)
    assert _sessions(s.train) | _sessions(s.valid) <= _sessions(s.train_full)
    in_train = pl.col("session_id").is_in(s.train["session_id"].unique().implode())
    assert s.train_full.filter(in_train).equals(s.train)
    # held-out items occur in their training part, except the literature yoochoose1_64 test
    assert _items(s.valid) <= _items(s.train)
    if name == "yoochoose1_64":
        assert len(_items(s.test) - _items(s.train_full)) == 369
    else:
        assert _items(s.test) <= _items(s.train_full)


@pytest.mark.parametrize("name", ["diginetica", "yoochoose1_64", "retailrocket"])
def test_ordinal_time_for_pickled_data(name, real_splits):
    s = real_splits(name)
    n = s.train_full.height
    assert s.train_full["timestamp"].to_list() == [float(i) for i in range(n)]
    assert s.test["timestamp"].to_list() == [float(n + i) for i in range(s.test.height)]
    assert s.test["session_id"].min() == s.train_full["session_id"].max() + 1


def test_srgnn_test_prefix_counts(real_splits):
    for name, n_prefixes in (("diginetica", 60_858), ("yoochoose1_64", 55_898)):
        lengths = real_splits(name).test.group_by("session_id").len()["len"]
        assert int((lengths - 1).sum()) == n_prefixes
        assert lengths.min() >= 2


def test_retailrocket_test_times(real_splits):
    s = real_splits("retailrocket")
    times = s.extra["test_times"]
    assert times.select("session_id", "item_id").equals(s.test.select("session_id", "item_id"))
    utc = timezone.utc
    assert times["timestamp"].min() == datetime(2015, 9, 11, 1, 34, 33, tzinfo=utc).timestamp()
    assert times["timestamp"].max() == datetime(2015, 9, 18, 2, 58, 58, tzinfo=utc).timestamp()
    # real times are ordered within sessions and sessions by start time
    validate_events(times, source="test_times")
    starts = times.group_by("session_id", maintain_order=True).agg(pl.col("timestamp").first())
    assert starts["timestamp"].is_sorted()


def test_diginetica_raw_reader(data_root):
    df = read_diginetica_views(
        data_root / "session/diginetica_raw_sample/sample_train-item-views.csv"
    )
    assert (df.height, df["session_id"].n_unique(), df["item_id"].n_unique()) == (
        12_391,
        2_986,
        7_139,
    )
    # session 1: rows 526309 ms and 1031018 ms after the start of 2016-05-09 UTC
    day = datetime(2016, 5, 9, tzinfo=timezone.utc).timestamp()
    s1 = df.filter(pl.col("session_id") == 1)
    assert s1["timestamp"].is_sorted()
    assert day + 526.309 in s1["timestamp"].to_list()


def test_taobao_reader(data_root):
    path = data_root / "session/taobao_userbehavior_sample/UserBehavior_head.csv"
    raw = sessionize(read_taobao_raw(path), gap_seconds=1800.0)
    assert (raw.height, raw["user_id"].n_unique(), raw["session_id"].n_unique()) == (
        84_287,
        814,
        14_096,
    )
    df = read_taobao_userbehavior(path)
    assert df.height == 84_287 - 35
    assert df["timestamp"].min() >= TAOBAO_START and df["timestamp"].max() < TAOBAO_END
    assert dict(df["event_type"].value_counts().iter_rows()).keys() == {"pv", "cart", "fav", "buy"}
    assert set(df.columns) == {
        "session_id", "item_id", "timestamp", "user_id", "category_id", "event_type",
    }  # fmt: skip


def test_retailrocket_users_reader(data_root):
    df = read_retailrocket_sessions(
        data_root / "session/retailrocket_user_sessions_sample/sample_retailrocket.csv"
    )
    # 2,950 given sessions; 8701 and 12599 mix two visitors and are split per visitor
    assert (df.height, df["session_id"].n_unique(), df["user_id"].n_unique()) == (
        10_080,
        2_952,
        2_496,
    )
    assert df["item_id"].n_unique() == 5_566
    assert df.group_by("session_id").agg(pl.col("user_id").n_unique())["user_id"].max() == 1
    assert df.filter(pl.col("session_id") == 8701)["user_id"].unique().to_list() == [6957]


def test_time_split_rule_on_real_data(real_splits, data_root):
    """Test sessions are those whose last raw event is in the last day; the rest train."""
    s = real_splits("taobao")
    raw = read_taobao_userbehavior(
        data_root / "session/taobao_userbehavior_sample/UserBehavior_head.csv"
    )
    ends = raw.group_by("session_id").agg(pl.col("timestamp").max())
    cutoff = raw["timestamp"].max() - 86400
    late = set(ends.filter(pl.col("timestamp") >= cutoff)["session_id"].to_list())
    assert _sessions(s.test) <= late
    assert not _sessions(s.train_full) & late
