"""Fixtures for the data-layer tests: a fresh cache dir per test and datasets read once (``data_root`` is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqrec.data.registry import load_dataset
from seqrec.data.split import SessionSplits


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never touch the user's ~/.cache/seqrec from tests."""
    monkeypatch.setenv("SEQREC_CACHE", str(tmp_path_factory.mktemp("seqrec_cache")))


@pytest.fixture(scope="session")
def real_splits(data_root: Path):
    """``real_splits(name)``: each registered dataset read once per test session (no cache)."""
    loaded: dict[str, SessionSplits] = {}

    def get(name: str) -> SessionSplits:
        if name not in loaded:
            loaded[name] = load_dataset(name, data_root, use_cache=False)
        return loaded[name]

    return get
