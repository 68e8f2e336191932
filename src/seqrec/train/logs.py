"""Training records: a CSV log (one row per logging interval / epoch) and TensorBoard scalars."""

from __future__ import annotations

import csv
import os
from pathlib import Path

COLUMNS = ("kind", "epoch", "step", "events", "loss", "events_per_s", "lr", "elapsed_s",
           "valid_recall@20", "valid_mrr@20", "valid_auc")


class RunLog:
    """Appends rows to ``log.csv`` (flushed each row) and mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: str | os.PathLike, tensorboard: bool = True, append: bool = False,
                 extra_columns: tuple[str, ...] = ()) -> None:
        """``extra_columns``: a family's own columns after the common ones (the multi-task
        family's per-task validation AUCs)."""
        self.path = Path(run_dir) / "log.csv"
        new = not (append and self.path.exists())
        self._fh = open(self.path, "w" if new else "a", newline="")  # noqa: SIM115 - closed in close()
        self._csv = csv.DictWriter(self._fh, fieldnames=(*COLUMNS, *extra_columns), extrasaction="ignore")
        if new:
            self._csv.writeheader()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # tensorboard is a dependency

            self._tb = SummaryWriter(str(Path(run_dir) / "tb"))

    def write(self, **row) -> None:
        self._csv.writerow({k: _fmt(v) for k, v in row.items()})
        self._fh.flush()
        if self._tb is not None:
            # epoch rows: the epoch number (their ``events`` is the epoch's own count, the same
            # every epoch); interval rows: the events seen so far
            step = int(row["epoch"]) if row.get("kind") == "epoch" and row.get("epoch") else \
                int(row.get("events", row.get("step", 0)) or 0)
            for k, v in row.items():
                if k not in ("kind", "epoch", "step", "events") and isinstance(v, int | float):
                    self._tb.add_scalar(f"{row.get('kind', 'train')}/{k}", v, step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v
