"""SR-GNN-style pickles: diginetica, yoochoose1_64 and retailrocket (CGENet/MTD).

``all_train_seq.txt`` holds the training sessions (item-id lists in date order).
SR-GNN's ``test.txt`` holds ``(prefixes, labels)``: for every test session ``s``
the samples ``(s[:-i], s[-i])`` for i = 1..len(s)-1, longest prefix first. The
sessions are rebuilt from it exactly (see :func:`rebuild_test_sessions`). The
pickles carry no time, so ``timestamp`` is a global ordinal (train, then test).
Pickles are loaded with an unpickler that refuses every class, so only plain
lists / tuples / ints / strings can come out of them. A pickle has no rows, so errors name
the file and the index of the element at fault (``element 3, position 1: 'x' is not a
64-bit integer item id``); unreadable bytes of any kind are one DataValidationError.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import polars as pl

from seqrec.data.readers.common import ordinal_time, sessions_frame
from seqrec.data.split import GivenSplit
from seqrec.errors import DataNotFoundError, DataValidationError


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data allowed")


def load_pickle(path: Path) -> object:
    """Load a data-only pickle (lists, tuples, numbers); anything else is an error."""
    if not Path(path).is_file():
        raise DataNotFoundError(f"{path}: file not found")
    try:
        with open(path, "rb") as fh:
            return _PlainUnpickler(io.BytesIO(fh.read())).load()
    except Exception as exc:  # truncated or corrupt bytes fail in many ways, all meaning this
        raise DataValidationError(f"{path}: not a readable data pickle ({type(exc).__name__}: {exc})") from exc


def _id_ok(x: object) -> bool:
    return type(x) is int and -(2**63) <= x < 2**63


def _check_sessions(obj, path: Path, what: str) -> list[list[int]]:
    """A non-empty list of non-empty lists of 64-bit ints; errors name the element index."""
    if not isinstance(obj, list) or not obj:
        raise DataValidationError(f"{path}: expected a non-empty list of {what}, got {type(obj).__name__}")
    for i, s in enumerate(obj):
        if not isinstance(s, list) or not s:
            raise DataValidationError(f"{path}: element {i} is not a non-empty list of item ids: {s!r:.80}")
        j = next((j for j, x in enumerate(s) if not _id_ok(x)), None)
        if j is not None:
            raise DataValidationError(
                f"{path}: element {i}, position {j}: {s[j]!r:.40} is not a 64-bit integer item id"
            )
    return obj


def read_train_sessions(path: Path) -> list[list[int]]:
    """``all_train_seq.txt``: list of item-id lists."""
    return _check_sessions(load_pickle(path), path, "sessions")


def read_test_samples(path: Path) -> tuple[list[list[int]], list[int]]:
    """SR-GNN ``test.txt``: ``(prefixes, labels)`` (extra fields, as in CGENet, are rejected)."""
    obj = load_pickle(path)
    if not (isinstance(obj, tuple | list) and len(obj) == 2
            and all(isinstance(o, list) for o in obj) and len(obj[0]) == len(obj[1])):
        raise DataValidationError(f"{path}: expected (prefixes, labels): two lists of equal length")
    prefixes = _check_sessions(obj[0], path, "prefixes")
    labels = obj[1]
    bad = next((i for i, x in enumerate(labels) if not _id_ok(x)), None)
    if bad is not None:
        raise DataValidationError(f"{path}: label {bad}: {labels[bad]!r:.40} is not a 64-bit integer item id")
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
        raise DataValidationError(f"{path}: expected a non-empty list of sessions, got {type(obj).__name__}")
    for i, s in enumerate(obj):
        if not isinstance(s, list) or not s:
            raise DataValidationError(f"{path}: session {i} is not a non-empty list: {s!r:.80}")
        for j, e in enumerate(s):
            if not (isinstance(e, tuple) and len(e) == 2 and _id_ok(e[0]) and _id_ok(e[1])):
                raise DataValidationError(
                    f"{path}: session {i}, event {j}: {e!r:.60} is not an (item_id, time) "
                    "pair of 64-bit ints"
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
