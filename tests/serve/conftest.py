"""Shared fixtures of the serving tests: small real-data runs a pipeline can serve, trained once
per test session, and the pipeline config that serves them."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["train.epochs=1", "train.progress=false", "train.threads=1"]


@pytest.fixture(scope="session")
def beauty_pipeline_runs(tmp_path_factory, data_root) -> tuple[Path, Path]:
    """(retriever, ranker): a one-epoch YouTube DNN with a flat faiss index and a one-epoch DIN
    (directory ``din``), both on Amazon Beauty; about 25 s on one core."""
    pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'seqrec[serve]')")
    pytest.importorskip("faiss", reason="faiss-cpu is not installed (pip install 'seqrec[index]')")
    from seqrec.config import load_run_config
    from seqrec.experiment import build_index, train_run
    from seqrec.serve.index import IndexParams

    out = tmp_path_factory.mktemp("beauty_pipeline")
    ret, din = out / "youtube_dnn", out / "din"
    train_run(load_run_config(ROOT / "configs/youtube_dnn_amazon_beauty.toml",
                              [*QUIET, "train.patience=0", "model.dim=16", "model.layers=[32]", "eval.test=false"]), ret)
    build_index(ret, IndexParams(kind="flat"), check=0)
    train_run(load_run_config(ROOT / "configs/din_amazon_beauty.toml",
                              [*QUIET, "model.embedding_dim=8", "train.batch_size=1024"]), din)
    return ret, din


@pytest.fixture(scope="session")
def serve_runs(beauty_pipeline_runs, tmp_path_factory) -> dict[str, Path]:
    """The Beauty retriever and ranker plus a tiny GRU4Rec session run on yoochoose_100k."""
    from seqrec.config import load_run_config
    from seqrec.experiment import train_run

    gru = tmp_path_factory.mktemp("session_run") / "gru4rec"
    train_run(load_run_config(ROOT / "configs/gru4rec_yoochoose_100k_bpr-max.toml",
                              [*QUIET, "model.layers=[32]", "loss.n_sample=128", "train.batch_size=64",
                               "loss.sample_cache=100000"]), gru)
    ret, din = beauty_pipeline_runs
    return {"retriever": ret, "ranker": din, "session": gru}


@pytest.fixture(scope="session")
def make_pipeline():
    """``make_pipeline(runs, state_dir or None)`` -> a PipelineConfig with one variant ``main``
    (retrieve 1,000, rank them) and, when ``runs`` has one, the session model."""
    from seqrec.serve.config import PipelineConfig, PipelineSection, SessionConfig, VariantConfig

    def make(runs: dict, state: Path | None, **variant) -> PipelineConfig:
        v = VariantConfig(name="main", retriever=str(runs["retriever"]), ranker=str(runs.get("ranker", "")),
                          candidates=1000, **variant)
        return PipelineConfig(pipeline=PipelineSection(name="test", state_dir=str(state) if state else ""),
                              variants=(v,), session=SessionConfig(run=str(runs.get("session", ""))))

    return make
