"""SR-GNN test.txt: sessions rebuilt from the prefixes reproduce the file exactly."""

from __future__ import annotations

import pickle

import pytest

from seqrec.data.readers.srgnn import (
    augment_sessions,
    load_pickle,
    read_test_samples,
    rebuild_test_sessions,
)
from seqrec.errors import DataValidationError


def test_rebuild_small_example():
    sessions = [[1, 2, 3], [3, 4], [2, 3, 2, 3], [5, 5]]
    prefixes, labels = augment_sessions(sessions)
    assert prefixes[:3] == [[1, 2], [1], [3]] and labels[:3] == [3, 2, 4]
    assert rebuild_test_sessions(prefixes, labels) == sessions


def test_rebuild_does_not_chain_lookalike_sessions():
    # the second session starts with the prefix the first one would continue with
    sessions = [[7, 8, 9], [7, 8], [7, 8]]
    assert rebuild_test_sessions(*augment_sessions(sessions)) == sessions


@pytest.mark.parametrize(
    ("name", "n_sessions", "n_prefixes"),
    [("diginetica", 15_963, 60_858), ("yoochoose1_64", 15_324, 55_898)],
)
def test_round_trip_reproduces_test_file(data_root, name, n_sessions, n_prefixes):
    path = data_root / "session" / name / "test.txt"
    prefixes, labels = read_test_samples(path)
    sessions = rebuild_test_sessions(prefixes, labels)
    assert len(sessions) == n_sessions
    assert sum(len(s) - 1 for s in sessions) == n_prefixes == len(prefixes)
    regenerated = augment_sessions(sessions)
    assert regenerated == (prefixes, labels)
    # byte for byte: the published files are protocol-3 pickles of (prefixes, labels)
    assert pickle.dumps(regenerated, protocol=3) == path.read_bytes()


def test_pickle_loader_refuses_objects(tmp_path):
    bad = tmp_path / "evil.txt"
    bad.write_bytes(pickle.dumps({"a": tmp_path}))  # a PosixPath needs a class lookup
    with pytest.raises(DataValidationError, match="evil.txt"):
        load_pickle(bad)
    broken = tmp_path / "broken.txt"
    broken.write_bytes(b"\x80\x03]q\x00")
    with pytest.raises(DataValidationError, match="broken.txt"):
        load_pickle(broken)
