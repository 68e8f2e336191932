"""Helpers of the torchrun tests (imported by name: pytest puts this folder on sys.path): run ``seqrec train`` (or a worker script) as one process or
as a 2-rank torchrun job on this machine (gloo, one thread per rank)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available")
ROOT = Path(__file__).resolve().parents[2]
WORKERS = Path(__file__).with_name("_workers.py")

def env(**extra) -> dict:
    """This process's environment without torchrun's variables, one thread per process."""
    out = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    out.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return out


def launch(args: list[str], ranks: int, timeout: float = 300, **extra) -> subprocess.CompletedProcess:
    """``python ARGS`` alone (ranks = 1) or ``torchrun --nproc-per-node RANKS ARGS``."""
    head = [sys.executable] if ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks),
         "--master-port", str(_free_port())]
    return subprocess.run(head + args, cwd=ROOT, env=env(**extra), capture_output=True, text=True,
                          timeout=timeout)


def train(config: str, out: Path, ranks: int, *sets: str, resume: bool = False, check: bool = True,
          **extra) -> subprocess.CompletedProcess:
    """``seqrec train CONFIG --out OUT`` with ``train.threads=1`` and ``--set``s, on RANKS ranks."""
    args = ["-m", "seqrec", "train", config, "--out", str(out), "--no-progress", "--set", "train.threads=1"]
    for s in sets:
        args += ["--set", s]
    res = launch(args + (["--resume"] if resume else []), ranks, **extra)
    if check:
        assert res.returncode == 0, f"{ranks} rank(s) failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    return res


def step_losses(run: Path) -> list[float]:
    with open(run / "steps.csv") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


def epoch_rows(run: Path) -> list[dict]:
    with open(run / "log.csv") as fh:
        return [r for r in csv.DictReader(fh) if r["kind"] == "epoch"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
