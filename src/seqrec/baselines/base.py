"""Shared plumbing for the session baselines: input checks, sparse helpers, save/load.

Every baseline fits on :class:`~seqrec.data.events.SessionArrays`, implements the
:class:`~seqrec.evaluate.ranking.SessionScorer` protocol and persists its fitted
state as ``baseline.json`` (name, config, ``n_items``) + ``state.npz`` (numpy
arrays; sparse matrices stored as their CSR parts), both written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from seqrec.data.events import SessionArrays
from seqrec.data.vocab import N_SPECIAL
from seqrec.errors import CheckpointError, DataValidationError
from seqrec.io import atomic_write, atomic_write_text
from seqrec.train.checkpoint import load_json

META_FILE = "baseline.json"
STATE_FILE = "state.npz"
FORMAT_VERSION = 1


def check_train(train: SessionArrays, n_items: int) -> np.ndarray:
    """Validate training indices against ``n_items``; return the item array (int64)."""
    items = np.asarray(train.items, dtype=np.int64)
    if n_items <= N_SPECIAL:
        raise DataValidationError(f"n_items={n_items}: the vocabulary holds no real item")
    if len(items) and (items.min() < 0 or items.max() >= n_items):
        raise DataValidationError(
            f"training item indices span [{items.min()}, {items.max()}] but n_items={n_items}; "
            "encode train with the same vocabulary and pass len(vocab)"
        )
    return items


def session_item_matrix(train: SessionArrays, n_items: int) -> sp.csr_matrix:
    """Binary (n_sessions, n_items) CSR: 1 where the session contains the item.

    Padding/OOV events carry no item information and are left out; repeated
    clicks on an item count once (sessions are compared as sets).
    """
    items = check_train(train, n_items)
    rows = np.repeat(np.arange(train.n_sessions, dtype=np.int64), train.lengths)
    real = items >= N_SPECIAL
    x = sp.csr_matrix(
        (np.ones(int(real.sum()), dtype=np.float64), (rows[real], items[real])),
        shape=(train.n_sessions, n_items),
    )
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def top_per_row(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_rows: int, k: int, n_cols: int
) -> sp.csr_matrix:
    """Keep the ``k`` largest values of each row of a COO triple (``k = 0``: keep all).

    Ties are broken in favour of the larger column index (deterministic). Returns
    a CSR matrix with sorted indices.
    """
    if k > 0 and len(vals):
        order = np.lexsort((-cols, -vals, rows))  # by row, then value desc, then col desc
        rows, cols, vals = rows[order], cols[order], vals[order]
        starts = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
        rank = np.arange(len(rows)) - starts[rows]
        keep = rank < k
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
    out = sp.csr_matrix((vals, (rows, cols)), shape=(n_rows, n_cols))
    out.sort_indices()
    return out


def dense_scores(m: sp.spmatrix, base: np.ndarray | None = None) -> torch.Tensor:
    """(B, N) sparse scores -> dense tensor, writing only the stored entries.

    ``base`` (N,) is added to every row (the tie-break of :func:`tie_order`); the
    result is then float64, since the tie-break's steps (~1e-11) are far below
    float32's resolution at non-zero scores. Without ``base``: float32. Much
    faster than ``toarray()`` on the wide, very sparse rows of the kNN baselines.
    """
    m = sp.csr_matrix(m)
    if base is None:
        out = np.zeros(m.shape, dtype=np.float32)
    else:
        out = np.broadcast_to(np.asarray(base, dtype=np.float64), m.shape).copy()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    out[rows, m.indices] += m.data
    return torch.from_numpy(out)


TIEBREAKS = ("pop", "none")
TIEBREAK_EPS = 1e-6


def tie_order(counts: np.ndarray, mode: str, seed: int = 0) -> np.ndarray | None:
    """A tiny float64 term (< 1e-6) per item that puts all items in one strict order.

    Baselines score in steps (kNN: 0 for most of the catalogue, and equal
    similarities among rare items; POP: equal counts). With ties the optimistic
    rank (1 + items strictly higher) puts the target first among its equals:
    that inflated the taobao item-kNN MRR@20 to 0.1394 from 0.0486 under the
    pessimistic rule (``notes/pitfalls.md``: a material gap between the two is
    a bug). Items are ordered by ``counts`` (more popular first), then by a
    fixed pseudo-random permutation (``seed``, the config's ``tiebreak_seed``) that does not
    depend on the target, so a tie is broken as a random draw would break it.
    The term is ``TIEBREAK_EPS * (position + 1) / (N + 1)``: distinct for all N
    items and below 1e-6, so it can only reorder scores that differ by less than
    that. ``"none"`` = raw scores.

    (Before, the term was popularity alone and float32: lost to rounding at
    non-zero scores, and equal for items of equal popularity.)
    """
    if mode == "none":
        return None
    counts = np.asarray(counts, dtype=np.float64)
    n = len(counts)
    shuffle = np.random.default_rng(seed).permutation(n)
    order = np.lexsort((shuffle, counts))  # ascending: least popular first
    position = np.empty(n, dtype=np.float64)
    position[order] = np.arange(n, dtype=np.float64)
    return TIEBREAK_EPS * (position + 1.0) / (n + 1.0)


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class SessionBaseline:
    """Base class: config handling, lane count bookkeeping, atomic save/load.

    Subclasses set ``name`` and ``config_cls``, implement ``fit``, ``step`` and
    ``_get_state`` / ``_set_state`` (name -> array or sparse matrix).
    """

    name: ClassVar[str]
    config_cls: ClassVar[type]

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.config_cls()
        if not isinstance(self.config, self.config_cls):
            raise TypeError(f"{type(self).__name__} needs a {self.config_cls.__name__}")
        self.n_items = 0
        self.n_lanes = 0

    def reconfigured(self, **changes: Any) -> SessionBaseline:
        """A copy with config fields changed (e.g. ``tiebreak``), sharing the fitted state."""
        self._check_fitted()
        new = type(self)(dataclasses.replace(self.config, **changes))
        new.n_items = self.n_items
        new._set_state(self._get_state())
        return new

    # -- SessionScorer protocol (stateless defaults) ----------------------------------
    def begin(self, n_lanes: int) -> None:
        self._check_fitted()
        self.n_lanes = int(n_lanes)

    def keep(self, lanes: torch.Tensor) -> None:
        self.n_lanes = len(lanes)

    def _check_step(
        self, items: torch.Tensor, reset: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        it, rs = as_numpy(items).astype(np.int64, copy=False), as_numpy(reset).astype(bool)
        if it.shape != (self.n_lanes,) or rs.shape != (self.n_lanes,):
            raise ValueError(
                f"{self.name}: step got items {tuple(it.shape)} / reset {tuple(rs.shape)} "
                f"for {self.n_lanes} lanes; call begin(n_lanes) and keep(lanes) first"
            )
        if len(it) and (it.min() < 0 or it.max() >= self.n_items):
            raise ValueError(f"{self.name}: item index out of range [0, {self.n_items})")
        return it, rs

    def _check_fitted(self) -> None:
        if not self.n_items:
            raise RuntimeError(f"{self.name}: call fit() or load() before scoring")

    # -- persistence ------------------------------------------------------------------
    def _get_state(self) -> dict[str, np.ndarray | sp.spmatrix]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def save(self, path_dir: str | os.PathLike) -> None:
        """Write ``baseline.json`` + ``state.npz`` into ``path_dir`` (atomically, state first)."""
        self._check_fitted()
        d = Path(path_dir)
        arrays: dict[str, np.ndarray] = {}
        for key, val in self._get_state().items():
            if sp.issparse(val):
                m = sp.csr_matrix(val)
                arrays[f"{key}.csr_data"] = m.data
                arrays[f"{key}.csr_indices"] = m.indices
                arrays[f"{key}.csr_indptr"] = m.indptr
                arrays[f"{key}.csr_shape"] = np.asarray(m.shape, dtype=np.int64)
            else:
                arrays[key] = np.asarray(val)

        def _w(tmp: str) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
                np.savez(fh, **arrays)

        atomic_write(d / STATE_FILE, _w)
        meta = {
            "name": self.name,
            "format_version": FORMAT_VERSION,
            "n_items": self.n_items,
            "config": dataclasses.asdict(self.config),
        }
        atomic_write_text(d / META_FILE, json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path_dir: str | os.PathLike) -> SessionBaseline:
        """Rebuild a fitted baseline saved by :meth:`save` (scores are bit-for-bit identical)."""
        d = Path(path_dir)
        meta = read_meta(d)
        if meta.get("name") != cls.name:
            raise CheckpointError(
                f"{d / META_FILE} holds baseline {meta.get('name')!r}, not {cls.name!r}"
            )
        cfg = meta.get("config", {})
        allowed = {f.name for f in dataclasses.fields(cls.config_cls)}
        unknown = sorted(set(cfg) - allowed)
        if unknown:
            raise CheckpointError(
                f"{d / META_FILE}: unknown config key(s) {unknown}; allowed: {sorted(allowed)}"
            )
        model = cls(cls.config_cls(**cfg))
        try:
            with np.load(d / STATE_FILE, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{d / STATE_FILE} is missing or corrupt: {exc}") from exc
        state: dict[str, Any] = {}
        for key in {k.split(".csr_")[0] for k in raw}:
            if f"{key}.csr_data" in raw:
                shape = tuple(int(s) for s in raw[f"{key}.csr_shape"])
                state[key] = sp.csr_matrix(
                    (raw[f"{key}.csr_data"], raw[f"{key}.csr_indices"], raw[f"{key}.csr_indptr"]),
                    shape=shape,
                )
            else:
                state[key] = raw[key]
        model.n_items = int(meta["n_items"])
        try:
            model._set_state(state)
        except KeyError as exc:
            raise CheckpointError(f"{d / STATE_FILE} lacks array {exc}") from exc
        except ValueError as exc:  # shapes that do not match n_items
            raise CheckpointError(f"{d / STATE_FILE} is inconsistent: {exc}") from exc
        return model


def read_meta(path_dir: Path) -> dict:
    """The saved baseline's ``baseline.json`` (CheckpointError when missing or corrupt)."""
    return load_json(Path(path_dir) / META_FILE)
