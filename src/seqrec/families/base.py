"""What every task family provides, and what the generic driver (:mod:`seqrec.experiment`) calls.

A *family* is one kind of task: its data (splits, vocabularies, schema built from a
config), its batches and loss (through its trainer), its metrics, and its run
directory (what is saved and how it is loaded back). The driver never looks inside a
family: it reads the family's name from the model registry (training) or from
``config.json`` (a saved run) and calls the methods below. A new family is a new
module in :mod:`seqrec.families` defining ``FAMILY``; nothing else changes.

This mirrors RecBole, where the model type picks the dataloader and the trainer, and
TorchRec, where the loss lives outside the model.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

from seqrec.errors import CheckpointError, ConfigError


def read_run_files(run_dir: str | os.PathLike, required: tuple[str, ...], what: str,
                   data_dir: str | None = None):
    """(path, config, schema, vocabularies) of a run directory holding a ``schema.json`` (the CTR
    and purchase families); CheckpointError naming the first missing file."""
    import dataclasses

    from seqrec.config import load_run_config
    from seqrec.data.vocab import Vocab
    from seqrec.schema import Schema
    from seqrec.train.checkpoint import load_json

    path = Path(run_dir)
    for f in required:
        if not (path / f).is_file():
            raise CheckpointError(f"{path} is not a finished {what} run: {f} is missing")
    cfg = load_run_config(raw=load_json(path / "config.json"))
    if data_dir:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=data_dir))
    schema = Schema.from_dict(load_json(path / "schema.json"))
    vocabs = {p.stem.removeprefix("vocab_"): Vocab.load(p) for p in sorted(path.glob("vocab_*.json"))}
    return path, cfg, schema, vocabs


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Family:
    """Base class of a task family; subclasses override what they support."""

    name: str = ""
    description: str = ""
    #: what ``seqrec recommend`` means for this family ("" = not supported)
    recommend_help: str = ""

    def check_data(self, cfg) -> dict:
        """Read and validate the configured data without training; return its counts."""
        raise NotImplementedError

    def train(self, cfg, out: Path, *, resume: bool = False) -> dict:
        """Build the data, train (or fit) the model, evaluate, write ``out``; the metrics."""
        raise NotImplementedError

    def load_run(self, run_dir: str | os.PathLike, data_dir: str | None = None) -> Any:
        """A finished run directory, loaded and ready to score."""
        raise NotImplementedError

    def evaluate(self, run_dir: str | os.PathLike, *, split: str = "test", ties: str | None = None,
                 data_dir: str | None = None) -> dict:
        """The run's metrics on ``split``, recomputed from its checkpoint."""
        raise NotImplementedError

    def summary(self, cfg, metrics: dict, out: str) -> str:
        """One line for ``seqrec train`` to print."""
        raise NotImplementedError

    def recommend(self, run_dir: str | os.PathLike, items: list[str], *, k: int = 20,
                  unknown: str = "skip", user: str | None = None) -> dict:
        """Top-``k`` items for ``items`` (raw id strings) or a known ``user``; families without it refuse."""
        raise ConfigError(f"seqrec recommend is not available for {self.name} models")

    def index(self, run_dir: str | os.PathLike, params: Any, *, check: int = 200) -> dict:
        """Build and save an ANN index of the run's item vectors (``seqrec index``); families without
        item vectors refuse."""
        raise ConfigError(f"seqrec index is for retrieval runs (two-tower models); this is a {self.name} run")
