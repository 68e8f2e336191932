"""SR-GNN-style pickles: diginetica, yoochoose1_64 and retailrocket (CGENet/MTD).

``all_train_seq.txt`` holds the training sessions (item-id lists in date order).
SR-GNN's ``test.txt`` holds ``(prefixes, labels)``: for every test session ``s``
the samples ``(s[:-i], s[-i])`` for i = 1..len(s)-1, longest prefix first. The
sessions are rebuilt from it exactly (see :func:`rebuild_test_sessions`). The
pickles carry no time, so ``timestamp`` is a global ordinal (train, then test).
Pickles are loaded with an unpickler that refuses every class, so only plain
lists / tuples / ints / strings can come out of them.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import polars as pl

from seqrec.data.readers.common import ordinal_time, sessions_frame
from seqrec.data.split import GivenSplit
from seqrec.errors import DataValidationError


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data allowed")


def load_pickle(path: Path) -> object:
    """Load a data-only pickle (lists, tuples, numbers); anything else is an error."""
    try:
        with open(path, "rb") as fh:
            return _PlainUnpickler(io.BytesIO(fh.read())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataValidationError(f"{path}: not a readable data pickle ({exc})") from exc


def _check_sessions(obj, path: Path, what: str) -> list[list[int]]:
    if not isinstance(obj, list) or not obj:
        raise DataValidationError(f"{path}: expected a non-empty list of {what}, got {type(obj)}")
    for i, s in enumerate(obj):
        if not isinstance(s, list) or not s or not all(type(x) is int for x in s):
            raise DataValidationError(
                f"{path}: entry {i} is not a non-empty list of ints: {s!r:.80}"
            )
    return obj


def read_train_sessions(path: Path) -> list[list[int]]:
    """``all_train_seq.txt``: list of item-id lists."""
    return _check_sessions(load_pickle(path), path, "sessions")


def read_test_samples(path: Path) -> tuple[list[list[int]], list[int]]:
    """SR-GNN ``test.txt``: ``(prefixes, labels)`` (extra fields, as in CGENet, are rejected)."""
    obj = load_pickle(path)
    if not (isinstance(obj, tuple | list) and len(obj) == 2 and len(obj[0]) == len(obj[1])):
        raise DataValidationError(f"{path}: expected (prefixes, labels) of equal length")
    prefixes = _check_sessions(obj[0], path, "prefixes")
    labels = obj[1]
    if not all(type(x) is int for x in labels):
        raise DataValidationError(f"{path}: labels must be ints")
    return prefixes, labels


def rebuild_test_sessions(prefixes: list[list[int]], labels: list[int]) -> list[list[int]]:
    """Undo SR-GNN's augmentation: consecutive samples of one session are chained.

    Sample k continues the session of sample k-1 iff prefix[k-1] has length >= 2,
    prefix[k] == prefix[k-1][:-1] and label[k] == prefix[k-1][-1]. The session is
    its first (longest) prefix plus its label. A session always ends with a
    length-1 prefix, so two sessions can never be chained by accident.
    """
    sessions: list[list[int]] = []
    prev: list[int] | None = None
    for p, y in zip(prefixes, labels, strict=True):
        if prev is not None and len(prev) >= 2 and y == prev[-1] and p == prev[:-1]:
            prev = p
            continue
        sessions.append([*p, y])
        prev = p
    return sessions


def augment_sessions(sessions: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """SR-GNN's prefix augmentation: ``(s[:-i], s[-i])`` for i = 1..len(s)-1, longest first."""
    prefixes, labels = [], []
    for s in sessions:
        for i in range(1, len(s)):
            prefixes.append(s[:-i])
            labels.append(s[-i])
    return prefixes, labels


def read_srgnn_folder(folder: Path) -> GivenSplit:
    """An SR-GNN folder: train = ``all_train_seq.txt``, test rebuilt from ``test.txt``."""
    folder = Path(folder)
    train_seqs = read_train_sessions(folder / "all_train_seq.txt")
    test_seqs = rebuild_test_sessions(*read_test_samples(folder / "test.txt"))
    train_full = sessions_frame(train_seqs)
    test = sessions_frame(test_seqs, first_session_id=len(train_seqs), first_time=train_full.height)
    return GivenSplit(train_full=train_full, test=test)


def read_test_seq_time(path: Path) -> list[list[tuple[int, int]]]:
    """retailrocket ``all_test_seq_time.txt``: sessions of ``(item_id, unix_seconds)``."""
    obj = load_pickle(path)
    if not isinstance(obj, list) or not obj:
        raise DataValidationError(f"{path}: expected a non-empty list of sessions")
    for i, s in enumerate(obj):
        ok = (
            isinstance(s, list)
            and s
            and all(
                isinstance(e, tuple) and len(e) == 2 and type(e[0]) is int and type(e[1]) is int
                for e in s
            )
        )
        if not ok:
            raise DataValidationError(
                f"{path}: session {i} is not a list of (item_id, time) int pairs: {s!r:.80}"
            )
    return obj


def read_retailrocket(folder: Path) -> GivenSplit:
    """retailrocket: train = all_train_seq.txt, test = all_test_seq_time.txt (by start time)."""
    folder = Path(folder)
    train_seqs = read_train_sessions(folder / "all_train_seq.txt")
    timed = read_test_seq_time(folder / "all_test_seq_time.txt")
    order = sorted(range(len(timed)), key=lambda i: (timed[i][0][1], i))
    timed = [timed[i] for i in order]
    train_full = sessions_frame(train_seqs)
    test = sessions_frame(
        [[e[0] for e in s] for s in timed],
        first_session_id=len(train_seqs),
        first_time=train_full.height,
    )
    test_times = test.select("session_id", "item_id").with_columns(
        timestamp=pl.Series([float(e[1]) for s in timed for e in s], dtype=pl.Float64)
    )
    return GivenSplit(train_full=train_full, test=ordinal_time(test, train_full.height),
                      extra={"test_times": test_times})
