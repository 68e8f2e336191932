"""The generic driver behind ``seqrec train | evaluate | recommend`` and the benchmarks.

It knows no family: the model registry names the family of a config's model, a run's
``config.json`` records the family it was trained as, and :func:`seqrec.families.get_family`
returns the module that does the work (:class:`seqrec.families.base.Family`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from seqrec.config import RunConfig
from seqrec.errors import CheckpointError, ConfigError
from seqrec.families import get_family
from seqrec.families.base import Family
from seqrec.threads import configure_threads
from seqrec.train.checkpoint import load_json


def _set_threads(n: int) -> None:
    configure_threads(n)  # train.threads: every pool (seqrec.threads)


def train_run(cfg: RunConfig, out: str | os.PathLike, *, resume: bool = False,
              progress: bool | None = None) -> dict:
    """Train the configured model and write the run directory ``out``; the metrics dict."""
    _set_threads(cfg.train.threads)
    if progress is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, progress=progress))
    return get_family(cfg.family).train(cfg, Path(out), resume=resume)


def run_family(run_dir: str | os.PathLike) -> Family:
    """The family a run directory was trained as (``family`` in its ``config.json``)."""
    path = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a run directory: config.json is missing")
    raw = load_json(path)
    name = raw.get("family") if isinstance(raw, dict) else None
    if not isinstance(name, str):
        raise CheckpointError(f"{path}: no 'family' recorded (a run from before families; retrain it)")
    return get_family(name)


def load_run(run_dir: str | os.PathLike, data_dir: str | None = None):
    """A finished run of any family, loaded and ready to score."""
    return run_family(run_dir).load_run(run_dir, data_dir)


def evaluate_run(run_dir: str | os.PathLike, split: str = "test", ties: str | None = None,
                 data_dir: str | None = None) -> dict:
    """Recompute the metrics of a saved run on ``split`` from its checkpoint alone."""
    fam = run_family(run_dir)
    cfg_threads = load_json(Path(run_dir) / "config.json").get("train", {}).get("threads", 0)
    _set_threads(cfg_threads if isinstance(cfg_threads, int) else 0)
    return fam.evaluate(run_dir, split=split, ties=ties, data_dir=data_dir)


def recommend(run_dir: str | os.PathLike, items: list, k: int = 20, unknown: str = "skip",
              user: str | None = None) -> dict:
    """Top-``k`` items for ``items`` (raw ids), or for a known ``user``, from a run whose family recommends."""
    if k <= 0:
        raise ConfigError(f"-k must be positive, got {k}")
    if user is None:
        return run_family(run_dir).recommend(run_dir, items, k=k, unknown=unknown)
    return run_family(run_dir).recommend(run_dir, items, k=k, unknown=unknown, user=user)


def build_index(run_dir: str | os.PathLike, params, check: int = 200) -> dict:
    """``seqrec index``: an ANN index of the run's item vectors, saved in the run directory
    (:class:`seqrec.serve.index.IndexParams`); torch uses the index's thread count meanwhile."""
    fam = run_family(run_dir)
    _set_threads(params.threads)
    return fam.index(run_dir, params, check=check)


def summary(cfg: RunConfig, metrics: dict, out: str) -> str:
    """The line ``seqrec train`` prints, written by the model's family."""
    return get_family(cfg.family).summary(cfg, metrics, out)
