"""GRU4Rec / session-rec TSV files (``SessionId``, ``ItemId``, ``Time``) and yoochoose_100k."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seqrec.data.readers.generic import read_events
from seqrec.data.split import GivenSplit

GRU4REC_COLUMNS = {"session_id": "SessionId", "item_id": "ItemId", "timestamp": "Time"}
YOOCHOOSE_100K_PREFIX = "yoochoose-clicks-100k"
YOOCHOOSE_100K_FILES = tuple(
    f"{YOOCHOOSE_100K_PREFIX}_{part}.txt"
    for part in ("train_full", "test", "train_tr", "train_valid")
)


def read_gru4rec_tsv(path: str | Path) -> pl.DataFrame:
    """One GRU4Rec TSV file as a canonical table, sessions ordered by first event time."""
    return read_events(path, columns=GRU4REC_COLUMNS, sep="\t")


def read_yoochoose_100k(folder: Path) -> GivenSplit:
    """The given session-rec files: train_tr / train_valid / train_full / test."""
    folder = Path(folder)
    t = {
        part: read_gru4rec_tsv(folder / f"{YOOCHOOSE_100K_PREFIX}_{part}.txt")
        for part in ("train_full", "test", "train_tr", "train_valid")
    }
    return GivenSplit(train_full=t["train_full"], test=t["test"], train=t["train_tr"], valid=t["train_valid"])
