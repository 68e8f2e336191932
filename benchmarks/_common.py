"""Helpers shared by the benchmark scripts: result files, environment info, formatting.

Results are a JSON list of records, one per (dataset, model). A run for a
subset merges into the existing file (records with the same key are replaced,
the others kept), so a full table can be built up piecewise. Every write goes
through :func:`seqrec.io.atomic_write_text`, so an interrupted benchmark never
leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # repository root (configs/ lives here)


def now_iso() -> str:
    """UTC time of day, to the second, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def env_info() -> dict:
    """Versions and machine facts recorded with every result (imports torch)."""
    import torch

    import seqrec

    return {
        "date": now_iso(),
        "seqrec_version": seqrec.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def load_records(path: str | os.PathLike) -> list[dict]:
    """The records in a results file; [] if it does not exist. A corrupt file raises
    (it is never silently overwritten)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path} is not valid JSON ({exc}); move it away and re-run") from exc
    if not isinstance(data, list):
        raise SystemExit(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def merge_records(old: Iterable[dict], new: Iterable[dict], key: Sequence[str]) -> list[dict]:
    """``old`` with every record whose ``key`` fields match one in ``new`` replaced."""
    merged = {tuple(r.get(k) for k in key): r for r in old}
    for r in new:
        merged[tuple(r.get(k) for k in key)] = r
    return list(merged.values())


def write_json(path: str | os.PathLike, data) -> None:
    from seqrec.io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    from seqrec.io import atomic_write_text

    atomic_write_text(path, text)


# -- formatting ------------------------------------------------------------------------------
NA = "–"


def fmt_metric(v) -> str:
    """A fraction with 4 decimals (0.5123)."""
    return NA if v is None else f"{v:.4f}"


def fmt_int(v) -> str:
    """A count or rate with thousands separators (12,345)."""
    return NA if v is None else f"{v:,.0f}"


def fmt_seconds(v) -> str:
    if v is None:
        return NA
    return f"{v:,.2f}" if v < 10 else f"{v:,.1f}"


def markdown_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], align: Sequence[str] | None = None
) -> str:
    """A GitHub markdown table; ``align`` holds 'l' or 'r' per column (default: first
    column left, the rest right)."""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def read_result_object(path: str | os.PathLike) -> dict:
    """A results file holding one JSON object of results by key (e.g. ``results/serving.json``);
    {} if it does not exist. A corrupt file raises (it is never silently overwritten)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path} is not valid JSON ({exc}); move it away and re-run") from exc
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a JSON object of results by key, got {type(data).__name__}")
    return data


def update_result_key(path: str | os.PathLike, key: str, value) -> None:
    """Set ``key`` of a results object file to ``value``, keeping the other keys; atomic."""
    from seqrec.io import atomic_write_text

    data = read_result_object(path)
    data[key] = value
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")

