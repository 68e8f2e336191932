"""Fixtures of the prepare tests: one SparkSession for the whole test session (local[2]) and the
four must-show datasets prepared once by each engine."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

CONFIGS = {"diginetica": "configs/gru4rec_diginetica_bpr-max.toml", "amazon_beauty": "configs/din_amazon_beauty.toml",
           "gowalla": "configs/youtube_dnn_gowalla.toml", "taobao": "configs/din_taobao.toml"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for every test that needs one (skips without pyspark or Java)."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+ on PATH")
    from seqrec.prepare.spark_engine import get_session

    session = get_session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def prepared(data_root, spark, tmp_path_factory):
    """``prepared(name)`` -> (polars dir, spark dir, seconds per engine), built once per dataset."""
    from seqrec.config import load_run_config
    from seqrec.prepare.driver import prepare

    base = tmp_path_factory.mktemp("prepared")
    done: dict[str, tuple[Path, Path, dict]] = {}

    def get(name: str):
        if name not in done:
            cfg = load_run_config(ROOT / CONFIGS[name])
            secs = {}
            for engine in ("polars", "spark"):
                t0 = time.perf_counter()
                prepare(cfg, base / f"{name}_{engine}", engine=engine, spark=spark if engine == "spark" else None)
                secs[engine] = time.perf_counter() - t0
            done[name] = (base / f"{name}_polars", base / f"{name}_spark", secs)
        return done[name]

    return get
