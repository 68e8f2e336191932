"""Labelled samples (CTR, purchase, any binary task): named numpy columns checked against a
:class:`~seqrec.schema.Schema`, and typed mini-batches of them.

Columns (N = samples):
  sparse feature   (N,) int64            multihot feature (N, L) int64, 0-padded
  dense feature    (N, dim) float32      sequence feature (N, T) int64, 0-padded at the end
  seqdense feature (N, T, dim) float32, 0 where its group's sequences are padding
  label            (N,) float32 in {0, 1}
  user             (N,) int64 (GAUC groups; also a sparse feature when the schema has one)
  any ``schema.time_columns`` (e.g. ``hist_time`` (N, T) float64 seconds, ``time`` (N,))

Histories are left-aligned: positions 0..len-1 hold the behaviours oldest first, the rest 0.
Every check raises a :mod:`seqrec.errors` exception that names the column and the first bad row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from seqrec.errors import ConfigError, DataValidationError, SchemaError
from seqrec.schema import Schema


@dataclass
class LabeledSamples:
    """Samples of a binary task (a click, a purchase): columns by name, the schema they follow."""

    schema: Schema
    columns: dict[str, np.ndarray]
    name: str = "samples"  # shown in error messages (file or task name)

    def __post_init__(self) -> None:
        validate(self)

    def __len__(self) -> int:
        return len(self.columns[self.schema.label])

    def subset(self, idx: np.ndarray, name: str | None = None) -> LabeledSamples:
        return LabeledSamples(self.schema, {k: v[idx] for k, v in self.columns.items()}, name or self.name)

    def labels(self) -> np.ndarray:
        return self.columns[self.schema.label]

    def users(self) -> np.ndarray | None:
        return self.columns.get(self.schema.user) if self.schema.user else None


class SplitSamples:
    """Mixin of a task with ``train`` / ``valid`` / ``test`` :class:`LabeledSamples` attributes."""

    train: LabeledSamples
    valid: LabeledSamples
    test: LabeledSamples

    @property
    def schema(self) -> Schema:
        return self.train.schema

    def split(self, name: str) -> LabeledSamples:
        if name not in ("train", "valid", "test"):
            raise ConfigError(f"unknown split {name!r}; choose train, valid or test")
        return getattr(self, name)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.reshape(len(mask), -1).any(1))[0])


def validate(data: LabeledSamples) -> None:
    """Shapes, dtypes, id ranges, history lengths and labels; raises on the first problem."""
    s, cols, where = data.schema, data.columns, data.name
    if s.label not in cols:
        raise SchemaError(f"{where}: no label column {s.label!r}; columns: {sorted(cols)}")
    n = len(cols[s.label])
    if n == 0:
        raise DataValidationError(f"{where}: no samples")
    for name, arr in cols.items():
        if len(arr) != n:
            raise SchemaError(f"{where}: column {name!r} has {len(arr)} rows, the label has {n}")
    y = cols[s.label]
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        i = _first_bad(bad)
        raise DataValidationError(f"{where}: label {s.label!r} must be 0 or 1; row {i} has {y[i].item()!r}")
    if s.user and s.user not in cols:
        raise SchemaError(f"{where}: no user column {s.user!r} (set schema.user = '' if there is none)")
    for f in s.features:
        if f.name not in cols:
            raise SchemaError(f"{where}: feature {f.name!r} ({f.kind}) has no column; columns: {sorted(cols)}")
        a = cols[f.name]
        if f.kind == "dense":
            if a.dtype != np.float32 or a.shape[1:] != (f.dim,):
                raise SchemaError(f"{where}: dense {f.name!r} must be float32 (N, {f.dim}), got {a.dtype} {a.shape}")
            if not np.isfinite(a).all():
                raise DataValidationError(f"{where}: dense {f.name!r} has NaN/inf at row {_first_bad(~np.isfinite(a))}")
            continue
        if f.kind == "seqdense":
            _check_seqdense(data, f, a, n)
            continue
        if a.dtype != np.int64:
            raise SchemaError(f"{where}: feature {f.name!r} must hold int64 ids, got {a.dtype}")
        want = (n,) if f.kind == "sparse" else (n, f.max_len)
        if f.kind != "sparse" and a.ndim == 2 and a.shape[1] > f.max_len:
            raise DataValidationError(
                f"{where}: {f.kind} {f.name!r} is {a.shape[1]} long, longer than the configured "
                f"maximum {f.max_len}; truncate it (keep the most recent) or raise max_len"
            )
        if a.shape != want:
            raise SchemaError(f"{where}: feature {f.name!r} must have shape {want}, got {a.shape}")
        if f.kind == "sequence" and a.shape[1] > 1:
            gap = (a[:, 1:] != 0) & (a[:, :-1] == 0)  # a behaviour after padding
            if gap.any():
                i = _first_bad(gap)
                raise DataValidationError(
                    f"{where}: sequence {f.name!r} row {i} has a behaviour after padding; "
                    "histories must be left-aligned (oldest first, padding 0 at the end)"
                )
        rows = s.table(f.table).rows
        bad = (a < 0) | (a >= rows)
        if bad.any():
            i = _first_bad(bad)
            raise DataValidationError(
                f"{where}: feature {f.name!r} row {i} has ids outside table {f.table!r} "
                f"(0..{rows - 1}); map unknown ids to OOV (1) with the training vocabulary"
            )


def _check_seqdense(data: LabeledSamples, f, a: np.ndarray, n: int) -> None:
    where = data.name
    if a.dtype != np.float32 or a.ndim != 3 or a.shape[2] != f.dim or len(a) != n:
        raise SchemaError(f"{where}: seqdense {f.name!r} must be float32 (N, T, {f.dim}), got {a.dtype} {a.shape}")
    if a.shape[1] > f.max_len:
        raise DataValidationError(f"{where}: seqdense {f.name!r} is {a.shape[1]} long, longer than the "
                                  f"configured maximum {f.max_len}")
    if not np.isfinite(a).all():
        raise DataValidationError(f"{where}: seqdense {f.name!r} has NaN/inf at row {_first_bad(~np.isfinite(a))}")
    ids = [s for s in data.schema.sequence_group(f.group) if s.name in data.columns]
    if ids:
        pad = data.columns[ids[0].name][:, : a.shape[1]] == 0  # (N, T)
        bad = pad & (a != 0).any(2)
        if bad.any():
            raise DataValidationError(f"{where}: seqdense {f.name!r} row {_first_bad(bad)} has values at "
                                      f"padded positions of {ids[0].name!r}; they must be 0")


def to_tensors(cols: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in cols.items()}


@dataclass(frozen=True)
class SampleBatch(Mapping):
    """One mini-batch of labelled samples: a read-only mapping column name -> tensor (models
    read features by name, ``batch["hist_item"]``, and accept any such mapping), with the label,
    the GAUC groups and the batch size named."""

    columns: dict[str, torch.Tensor]
    label: torch.Tensor  # (B,) float32 in {0, 1}
    user: torch.Tensor | None  # (B,) GAUC groups, when the schema names a user column

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.columns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:  # Mapping semantics: the number of columns
        return len(self.columns)

    @property
    def size(self) -> int:
        """Samples in the batch."""
        return len(self.label)

    @classmethod
    def of(cls, schema: Schema, cols: dict[str, np.ndarray]) -> SampleBatch:
        t = to_tensors(cols)
        return cls(t, t[schema.label], t.get(schema.user) if schema.user else None)


def sample_batches(
    data: LabeledSamples, batch_size: int, *, shuffle: bool = False, seed: int = 0
) -> Iterator[SampleBatch]:
    """Mini-batches (one gather per column per batch, no per-sample loop)."""
    n = len(data)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield SampleBatch.of(data.schema, {k: v[idx] for k, v in data.columns.items()})
