"""Fixtures for the data-layer tests: real data root (or skip) and a private cache dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqrec.data.registry import data_dir, load_dataset
from seqrec.data.splits import SessionSplits


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never touch the user's ~/.cache/seqrec from tests."""
    monkeypatch.setenv("SEQREC_CACHE", str(tmp_path_factory.mktemp("seqrec_cache")))


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = data_dir()
    if not (root / "session").is_dir():
        pytest.skip(f"real data not found at {root} (set SEQREC_DATA to the shared data directory)")
    return root


@pytest.fixture(scope="session")
def real_splits(data_root: Path):
    """``real_splits(name)``: each registered dataset read once per test session (no cache)."""
    loaded: dict[str, SessionSplits] = {}

    def get(name: str) -> SessionSplits:
        if name not in loaded:
            loaded[name] = load_dataset(name, data_root, use_cache=False)
        return loaded[name]

    return get
