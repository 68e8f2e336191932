"""Session-recommendation benchmark: every model on every staged session dataset.

    python benchmarks/session.py                                  # everything (hours)
    python benchmarks/session.py --datasets diginetica --models gru4rec-bpr-max
    python benchmarks/session.py --quick                          # smoke run: yoochoose_100k, 1 epoch

Each (dataset, model) pair is trained and evaluated by ``seqrec.experiment.train_run``
in a fresh child process (``--single``), so peak RSS and speed belong to that run
alone and a crash loses only that run. Records are merged into
``<out>/session.json`` (same (dataset, model) replaced, others kept) and rendered
as one markdown table per dataset in ``<out>/session.md``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    ROOT,
    env_info,
    fmt_int,
    fmt_metric,
    fmt_seconds,
    load_records,
    markdown_table,
    merge_records,
    write_json,
    write_text,
)

# Default model list, in table order.
MODELS = (
    "gru4rec-bpr-max",
    "gru4rec-xe",
    "gru4rec-bpr",
    "gru4rec-top1-max",
    "hrnn",
    "pop",
    "item-knn",
    "sknn",
    "gru4rec-bpr-max-dwell",
)
BASELINES = ("pop", "item-knn", "sknn")
CONFIGS = ROOT / "configs"
FALLBACK_CONFIG = CONFIGS / "gru4rec_yoochoose_100k_bpr-max.toml"
DEFAULT_THREADS = 2
DEFAULT_DWELL = 60.0
QUICK_DATASET = "yoochoose_100k"
KEY = ("dataset", "model")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "POLARS_MAX_THREADS")


# -- what runs where -------------------------------------------------------------------------
def not_applicable(info, model: str) -> str | None:
    """Why ``model`` cannot run on the dataset ``info`` (a registry DatasetEntry), or None."""
    info = info.recipes["session"]
    if model == "hrnn" and not info.has_users:
        return "hrnn needs user ids"
    if model == "gru4rec-bpr-max-dwell" and not info.has_time:
        return "dwell time needs real timestamps"
    return None


def _rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def resolve(
    dataset: str, model: str, *, epochs: int | None, dwell_bucket: float, threads: int
) -> dict:
    """How to build the run config of one (dataset, model) pair.

    Returns ``{"config": path or None, "raw": dict or None, "overrides": [...],
    "note": str or None}``: either a TOML file or a dict, plus ``--set`` overrides.
    """
    path: Path | None = None
    raw: dict | None = None
    overrides: list[str] = []
    note: str | None = None
    neural = model not in BASELINES
    if model.startswith("gru4rec-"):
        kind = "cross-entropy" if model == "gru4rec-xe" else "bpr-max"
        path = CONFIGS / f"gru4rec_{dataset}_{kind}.toml"
        if not path.is_file():
            note = f"{_rel(path)} missing; used {_rel(FALLBACK_CONFIG)} with data.dataset={dataset}"
            path = FALLBACK_CONFIG
            overrides.append(f'data.dataset="{dataset}"')
            if kind == "cross-entropy":
                overrides.append('loss.name="cross-entropy"')
                note += ", loss.name=cross-entropy"
        if model == "gru4rec-bpr":
            overrides.append('loss.name="bpr"')
        elif model == "gru4rec-top1-max":
            overrides.append('loss.name="top1-max"')
        elif model == "gru4rec-bpr-max-dwell":
            overrides.append(f"data.dwell_bucket={dwell_bucket!r}")
    elif model == "hrnn":
        path = CONFIGS / f"hrnn_{dataset}.toml"
        if not path.is_file():
            note = f"{_rel(path)} missing; used the default HRNN config"
            path = None
            raw = {"data": {"dataset": dataset}, "model": {"name": "hrnn"}}
    elif model in BASELINES:
        raw = {"data": {"dataset": dataset}, "model": {"name": model}}
    else:
        raise SystemExit(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    if neural and epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    if threads > 0:
        overrides.append(f"train.threads={threads}")
    return {
        "config": _rel(path) if path else None,
        "raw": raw,
        "overrides": overrides,
        "note": note,
    }


def build_config(spec: dict):
    """The RunConfig that :func:`resolve` describes (raises ConfigError if invalid)."""
    from seqrec.config import load_run_config

    if spec["raw"] is not None:
        return load_run_config(raw=spec["raw"], overrides=spec["overrides"])
    return load_run_config(ROOT / spec["config"], spec["overrides"])


def repro_command(dataset: str, model: str, args) -> str:
    """The shell command that reproduces exactly this one record."""
    cmd = ["python", "benchmarks/session.py", "--datasets", dataset, "--models", model]
    if args.epochs is not None and model not in BASELINES:
        cmd += ["--epochs", str(args.epochs)]
    if args.threads != DEFAULT_THREADS:
        cmd += ["--threads", str(args.threads)]
    if model == "gru4rec-bpr-max-dwell" and args.dwell_bucket != DEFAULT_DWELL:
        cmd += ["--dwell-bucket", f"{args.dwell_bucket:g}"]
    return shlex.join(cmd)


# -- child: one run --------------------------------------------------------------------------
def run_single(args) -> int:
    dataset, model = args.single
    if args.threads > 0:  # before torch / numba / polars are imported
        for var in THREAD_ENV:
            os.environ[var] = str(args.threads)
    import torch

    from seqrec.experiment import train_run

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    spec = resolve(
        dataset, model, epochs=args.epochs, dwell_bucket=args.dwell_bucket, threads=args.threads
    )
    cfg = build_config(spec)
    run_dir = Path(args.runs_dir) / dataset / model
    t0 = time.perf_counter()
    m = train_run(cfg, run_dir, progress=False)
    record = {
        "dataset": dataset,
        "model": model,
        "metrics": m["test"],
        "train_events_per_s": m.get("train_events_per_s"),
        "train_seconds": m["train_seconds"],
        "eval_seconds": m["eval_seconds"],
        "peak_rss_mb": m["peak_rss_mb"],
        "epochs": m["epochs"],
        "threads": m["threads"],
        "train_events": m.get("train_events"),
        "n_items": m.get("n_items"),
        "wall_seconds": time.perf_counter() - t0,
        "config": spec["config"],
        "overrides": spec["overrides"],
        "command": repro_command(dataset, model, args),
        "run_dir": str(run_dir),
        **env_info(),
    }
    if spec["note"]:
        record["config_note"] = spec["note"]
    out = Path(args.record_out) if args.record_out else None
    text = json.dumps(record, indent=2)
    if out is None:
        print(text)
    else:
        write_text(out, text + "\n")
    return 0


# -- parent: the plan, the children, the tables ----------------------------------------------
def _order(names, known) -> list:
    rank = {n: i for i, n in enumerate(known)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def render_markdown(records: list[dict], datasets=None) -> str:
    from seqrec.data.registry import datasets_of

    DATASETS = datasets_of("session")

    by_ds: dict[str, list[dict]] = {}
    for r in records:
        by_ds.setdefault(r["dataset"], []).append(r)
    parts = []
    for ds in _order(datasets if datasets is not None else by_ds, list(DATASETS)):
        recs = by_ds.get(ds, [])
        if not recs:
            continue
        rank = {m: i for i, m in enumerate(MODELS)}
        recs = sorted(recs, key=lambda r: (rank.get(r["model"], len(rank)), r["model"]))
        rows, notes = [], []
        for r in recs:
            mt = r.get("metrics") or {}
            name = r["model"]
            if r.get("config_note"):
                notes.append(f"{len(notes) + 1}. {name}: {r['config_note']}")
                name += f" ({len(notes)})"
            rows.append(
                [
                    name,
                    fmt_metric(mt.get("recall@20")),
                    fmt_metric(mt.get("mrr@20")),
                    fmt_metric(mt.get("ndcg@20")),
                    fmt_int(r.get("train_events_per_s")),
                    fmt_seconds(r.get("train_seconds")),
                    fmt_seconds(r.get("eval_seconds")),
                    fmt_int(r.get("peak_rss_mb")),
                ]
            )
        header = [
            "Model",
            "Recall@20",
            "MRR@20",
            "NDCG@20",
            "train events/s",
            "train s",
            "eval s",
            "peak RSS MB",
        ]
        mt0 = recs[0].get("metrics") or {}
        threads = sorted({str(r.get("threads")) for r in recs})
        dates = sorted(str(r.get("date", ""))[:10] for r in recs)
        epochs = sorted(
            {
                f"{r['model']} {r['epochs']}"
                for r in recs
                if r["model"] not in BASELINES and r.get("epochs") is not None
            }
        )
        info = [
            f"Test: {fmt_int(mt0.get('n_events'))} predictions in "
            f"{fmt_int(mt0.get('n_sessions'))} sessions; threads: {', '.join(threads)}; "
            f"run {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "") + "."
        ]
        if epochs:
            info.append("Epochs: " + ", ".join(_order_epochs(epochs)) + ".")
        block = [f"## {ds}", "", " ".join(info), "", markdown_table(header, rows)]
        if notes:
            block += ["", *notes]
        parts.append("\n".join(block))
    return "\n\n".join(parts)


def _order_epochs(items: list[str]) -> list[str]:
    rank = {m: i for i, m in enumerate(MODELS)}
    return sorted(items, key=lambda s: rank.get(s.rsplit(" ", 1)[0], len(rank)))


MD_HEADER = """# Session-recommendation benchmark

Generated by `benchmarks/session.py` (see benchmarks/README.md). Metrics are on the
test split, full-catalogue ranking, as fractions. Speed and memory are per run
(one child process each) and only comparable between runs on the same machine
with the same thread count.
"""


def write_results(out: Path, new: list[dict]) -> list[dict]:
    json_path = out / "session.json"
    records = merge_records(load_records(json_path), new, KEY)
    write_json(json_path, records)
    write_text(out / "session.md", MD_HEADER + "\n" + render_markdown(records) + "\n")
    return records


def _child_env(threads: int) -> dict:
    env = dict(os.environ)
    if threads > 0:
        env.update({var: str(threads) for var in THREAD_ENV})
    return env


def run_all(args) -> int:
    from seqrec.data.registry import dataset_status, datasets_of

    DATASETS = datasets_of("session")

    explicit_models = args.models is not None
    datasets = args.datasets or ([QUICK_DATASET] if args.quick else list(DATASETS))
    models = args.models or list(MODELS)
    bad = [d for d in datasets if d not in DATASETS]
    if bad:
        raise SystemExit(f"unknown dataset(s) {bad}; known: {', '.join(DATASETS)}")
    bad = [m for m in models if m not in MODELS]
    if bad:
        raise SystemExit(f"unknown model(s) {bad}; known: {', '.join(MODELS)}")
    staged = {row["name"]: row for row in dataset_status()}
    plan = []
    for ds in datasets:
        if not staged[ds]["found"]:
            print(
                f"skip {ds}: not staged (missing {', '.join(staged[ds]['missing'])} "
                f"in {staged[ds]['path']})",
                file=sys.stderr,
            )
            continue
        for model in _order(models, MODELS):
            why = not_applicable(DATASETS[ds], model)
            if why:
                if explicit_models:
                    print(f"skip {ds} {model}: {why}", file=sys.stderr)
                continue
            plan.append((ds, model))
    if not plan:
        print("nothing to run", file=sys.stderr)
        return 1
    if args.dry_run:
        bad_configs = 0
        for i, (ds, model) in enumerate(plan, 1):
            spec = resolve(
                ds, model, epochs=args.epochs, dwell_bucket=args.dwell_bucket, threads=args.threads
            )
            src = spec["config"] or f"dict {json.dumps(spec['raw'])}"
            note = f"  # {spec['note']}" if spec["note"] else ""
            try:
                build_config(spec)
            except Exception as exc:  # report every bad config, not just the first
                note += f"  # INVALID: {exc}"
                bad_configs += 1
            print(f"[{i}/{len(plan)}] {ds} {model}: {src} {' '.join(spec['overrides'])}{note}")
            print(f"    {repro_command(ds, model, args)}")
        return 1 if bad_configs else 0
    out = Path(args.out)
    runs_dir = Path(args.runs_dir).resolve()
    failures = []
    t_all = time.perf_counter()
    for i, (ds, model) in enumerate(plan, 1):
        tag = f"[{i}/{len(plan)}] {ds} {model}"
        print(f"{tag} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="seqrec-bench-") as td:
            rec_path = Path(td) / "record.json"
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--single",
                ds,
                model,
                "--record-out",
                str(rec_path),
                "--runs-dir",
                str(runs_dir),
                "--threads",
                str(args.threads),
                "--dwell-bucket",
                repr(args.dwell_bucket),
            ]
            if args.epochs is not None:
                cmd += ["--epochs", str(args.epochs)]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=_child_env(args.threads), check=False)
            dt = time.perf_counter() - t0
            if proc.returncode != 0 or not rec_path.exists():
                failures.append((ds, model, proc.returncode))
                print(
                    f"{tag} FAILED (exit {proc.returncode}) after {dt:.1f} s; reproduce: "
                    f"{repro_command(ds, model, args)}",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            record = json.loads(rec_path.read_text(encoding="utf-8"))
        write_results(out, [record])
        mt = record["metrics"]
        print(
            f"{tag} done in {dt:.1f} s: recall@20 {fmt_metric(mt.get('recall@20'))}, "
            f"mrr@20 {fmt_metric(mt.get('mrr@20'))}, peak RSS "
            f"{fmt_int(record.get('peak_rss_mb'))} MB",
            file=sys.stderr,
            flush=True,
        )
    total = time.perf_counter() - t_all
    records = load_records(out / "session.json")
    touched = sorted({ds for ds, _ in plan})
    table = render_markdown(records, touched)
    if table:
        print(table)
    print(
        f"\n{len(plan) - len(failures)}/{len(plan)} runs done in {total:.1f} s; results in "
        f"{out / 'session.json'} and {out / 'session.md'}",
        file=sys.stderr,
    )
    if failures:
        print(
            "failed: " + ", ".join(f"{d} {m} (exit {rc})" for d, m, rc in failures), file=sys.stderr
        )
        return 1
    return 0


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Train and evaluate every model on every staged session dataset."
    )
    p.add_argument(
        "--datasets",
        type=_csv,
        default=None,
        help="comma-separated datasets (default: all registered and staged)",
    )
    p.add_argument(
        "--models",
        type=_csv,
        default=None,
        help=f"comma-separated models (default: {','.join(MODELS)})",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="train.epochs for the neural models (default: each config's value)",
    )
    p.add_argument(
        "--out",
        default=str(ROOT / "benchmarks" / "results"),
        help="results folder for session.json / session.md (default: benchmarks/results)",
    )
    p.add_argument(
        "--runs-dir",
        default=str(ROOT / "runs" / "bench"),
        help="where the run directories go (default: runs/bench)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"torch / numba / polars threads per run (default {DEFAULT_THREADS}; "
        "0 = library defaults)",
    )
    p.add_argument(
        "--dwell-bucket",
        type=float,
        default=DEFAULT_DWELL,
        help=f"seconds per extra copy for gru4rec-bpr-max-dwell (default {DEFAULT_DWELL:g})",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: --epochs 1 and only {QUICK_DATASET} (unless given)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the runs, configs and overrides; train nothing",
    )
    p.add_argument("--single", nargs=2, metavar=("DATASET", "MODEL"), help=argparse.SUPPRESS)
    p.add_argument("--record-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick and args.epochs is None:
        args.epochs = 1
    if args.epochs is not None and args.epochs <= 0:
        p.error("--epochs must be positive")
    if args.threads < 0:
        p.error("--threads must be >= 0")
    if args.dwell_bucket <= 0:
        p.error("--dwell-bucket must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.single:
        return run_single(args)
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
