"""Shared fixtures: a private dataset cache for the whole run and the real-data root (or skip)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqrec.data.registry import data_dir


@pytest.fixture(scope="session", autouse=True)
def _private_cache_session(tmp_path_factory: pytest.TempPathFactory):
    """Never touch the user's ~/.cache/seqrec from tests. Session-scoped so module-scoped
    fixtures (trained runs shared by several tests) see it too; one cache for the run."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQREC_CACHE", str(tmp_path_factory.mktemp("seqrec_cache")))
        yield


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = data_dir()
    if not (root / "session").is_dir():
        pytest.skip(f"real data not found at {root} (set SEQREC_DATA to the shared data directory)")
    return root
