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


# families that train under torchrun (seqrec.distributed), and why the others do not
DISTRIBUTED_FAMILIES = ("ctr", "retrieval", "multitask")
# families that read `seqrec prepare` output (data.prepared)
PREPARED_FAMILIES = ("ctr", "retrieval", "multitask")
_NOT_DISTRIBUTED = {
    "session": "GRU4Rec / HRNN train session-parallel lanes whose hidden state runs from step to step, "
               "with a hand-written fused backward and row-wise optimiser updates that bypass autograd, so "
               "DistributedDataParallel cannot reduce them (and lanes split across ranks would no longer "
               "share a step's negatives)",
    "purchase": "the purchase models are small and several are not gradient-trained (XGBoost, RFM)",
}


def train_run(cfg: RunConfig, out: str | os.PathLike, *, resume: bool = False,
              progress: bool | None = None) -> dict:
    """Train the configured model and write the run directory ``out``; the metrics dict.

    Under ``torchrun --nproc-per-node N`` (CTR, retrieval and multi-task families) the ranks
    train one model data-parallel (:mod:`seqrec.distributed`); rank 0 writes the run and
    returns the metrics, the other ranks return ``{}``. ``train.threads = 0`` then gives each
    rank an equal share of this machine's cores."""
    from seqrec import distributed as D

    fam = cfg.family
    world = D.env_context().world
    if world > 1 and fam not in DISTRIBUTED_FAMILIES:
        why = _NOT_DISTRIBUTED.get(fam, "its trainer has no data-parallel path")
        raise ConfigError(f"{cfg.model_name} ({fam} family) cannot train under torchrun with {world} processes: "
                          f"{why}; run it as one process")
    if cfg.data.prepared and fam not in PREPARED_FAMILIES:
        raise ConfigError(f"data.prepared: {cfg.model_name} ({fam} family) does not read a prepared directory "
                          f"(the {', '.join(PREPARED_FAMILIES)} families do); unset it to build the data in memory")
    if (cfg.train.max_steps or cfg.train.step_log) and fam not in DISTRIBUTED_FAMILIES:
        raise ConfigError(f"train.max_steps and train.step_log apply to the {', '.join(DISTRIBUTED_FAMILIES)} "
                          f"families, not to {cfg.model_name} ({fam})")
    _set_threads(cfg.train.threads or D.default_threads())
    if progress is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, progress=progress))
    with D.session() as ctx:
        try:
            return get_family(fam).train(cfg, Path(out), resume=resume)
        except (D.StopRequested, RuntimeError) as exc:  # a peer gone outside the step loop
            if not ctx.active or not D.is_peer_failure(exc):
                raise
            raise D.PeerStopped(f"rank {ctx.rank}: peer rank stopped ({D.peer_detail(exc)}); "
                                f"see {Path(out) / 'train_state.pt'} for the last checkpoint") from exc


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
