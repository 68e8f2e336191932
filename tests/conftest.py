"""Shared fixtures: a private dataset cache for the whole run and the real-data root (or skip)."""

from __future__ import annotations

import importlib.util
import sys
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


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="session")
def bench_script():
    """``bench_script("name")`` -> the module ``benchmarks/name.py`` (its sibling helpers importable)."""
    if str(BENCHMARKS) not in sys.path:  # the scripts import their sibling _common
        sys.path.insert(0, str(BENCHMARKS))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def dupn_run(data_root, tmp_path_factory) -> Path:
    """A small DUPN run on the real Taobao sample (configs/dupn_taobao.toml, one epoch), shared by
    the tests of the tools that read a DUPN run (explain, embed-users, look-alike)."""
    from seqrec.cli import main

    out = tmp_path_factory.mktemp("dupn") / "run"
    assert main(["train", "configs/dupn_taobao.toml", "--out", str(out), "--no-progress",
                 "--set", "train.epochs=1", "--set", "train.threads=1"]) == 0
    return out
