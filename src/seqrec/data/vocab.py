"""Stable vocabulary: raw id <-> contiguous index.

Index 0 is padding and index 1 is the out-of-vocabulary (OOV) slot; known ids
get indices 2.. in the order they were first fitted (stable across runs for the
same input order). The vocabulary is saved beside every checkpoint so a model
always sees the same mapping it was trained with.

Unknown ids at inference are handled explicitly by ``unknown=``:

* ``"oov"``   -> index 1 (models treat it as "an item we know nothing about":
  GRU4Rec feeds an all-zero embedding, so the session state moves on without
  item information; OOV is never recommended);
* ``"error"`` -> :class:`~seqrec.errors.UnknownIdError` naming the ids;
* ``"drop"``  -> the ids are removed (``encode`` then returns a mask of kept rows).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from seqrec.errors import CheckpointError, UnknownIdError

PAD = 0
OOV = 1
N_SPECIAL = 2


class Vocab:
    """Raw-id <-> index mapping with padding (0) and OOV (1) reserved."""

    def __init__(self, ids: Sequence | None = None, name: str = "item") -> None:
        self.name = name
        self.ids_: list = []
        self._index: dict = {}
        if ids is not None:
            self.fit(ids)

    # -- building -----------------------------------------------------------------
    def fit(self, ids: Iterable) -> Vocab:
        """Add ids not yet known, in first-seen order (existing indices never change)."""
        values = ids.to_list() if isinstance(ids, pl.Series) else list(ids)
        for v in values:
            v = _normalise(v)
            if v not in self._index:
                self._index[v] = len(self.ids_) + N_SPECIAL
                self.ids_.append(v)
        return self

    def __len__(self) -> int:
        """Number of rows an embedding table needs (specials included)."""
        return len(self.ids_) + N_SPECIAL

    @property
    def n_known(self) -> int:
        return len(self.ids_)

    def __contains__(self, raw) -> bool:
        return _normalise(raw) in self._index

    # -- mapping ------------------------------------------------------------------
    def encode(self, ids: Iterable, unknown: str = "oov") -> np.ndarray:
        """Map raw ids to int64 indices; see module docstring for ``unknown``."""
        values = ids.to_list() if isinstance(ids, pl.Series) else list(ids)
        out = np.fromiter(
            (self._index.get(_normalise(v), OOV) for v in values), dtype=np.int64, count=len(values)
        )
        if unknown == "oov":
            return out
        missing = out == OOV
        if unknown == "error":
            if missing.any():
                bad = [values[i] for i in np.flatnonzero(missing)[:5]]
                raise UnknownIdError(
                    f"{int(missing.sum())} {self.name} id(s) not in the training vocabulary, e.g. {bad}"
                )
            return out
        if unknown == "drop":
            return out[~missing]
        raise ValueError(f"unknown= must be 'oov', 'error' or 'drop', got {unknown!r}")

    def encode_series(self, ids: pl.Series) -> np.ndarray:
        """Fast path for a polars column: vectorised join instead of a Python loop."""
        if self.n_known == 0:
            return np.full(len(ids), OOV, dtype=np.int64)
        keys = pl.Series("raw", [_normalise(v) for v in self.ids_])
        if ids.dtype != keys.dtype:
            try:
                ids = ids.cast(keys.dtype, strict=True)
            except Exception:  # mixed types: fall back to the exact slow path
                return self.encode(ids)
        table = pl.DataFrame({"raw": keys, "idx": np.arange(N_SPECIAL, len(self), dtype=np.int64)})
        joined = pl.DataFrame({"raw": ids}).join(table, on="raw", how="left", maintain_order="left")
        return joined["idx"].fill_null(OOV).to_numpy().astype(np.int64, copy=False)

    def decode(self, indices: Iterable[int]) -> list:
        """Map indices back to raw ids (padding/OOV decode to None)."""
        out = []
        for i in indices:
            i = int(i)
            out.append(self.ids_[i - N_SPECIAL] if i >= N_SPECIAL else None)
        return out

    # -- persistence --------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write JSON atomically (temp file + rename)."""
        from seqrec.io import atomic_write_text

        payload = {"name": self.name, "pad": PAD, "oov": OOV, "ids": self.ids_}
        atomic_write_text(path, json.dumps(payload))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"vocabulary file {p} not found")
        try:
            payload = json.loads(p.read_text())
            v = cls(name=payload.get("name", "item"))
            v.fit(payload["ids"])
        except (json.JSONDecodeError, KeyError) as exc:
            raise CheckpointError(f"vocabulary file {p} is corrupt: {exc}") from exc
        return v


def _normalise(v):
    """Numpy scalars -> Python scalars so 5, np.int64(5) and 5 from JSON are one key."""
    if isinstance(v, np.generic):
        return v.item()
    return v
