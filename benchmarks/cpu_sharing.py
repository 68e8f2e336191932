"""Training throughput alone and beside another 2-thread job, before and after a change.

For each model (GRU4Rec: train events/s; DIN, DIEN: train samples/s) the run
is ``python -m seqrec.cli train CONFIG --out TMP --set train.epochs=E`` in a
subprocess, and the figure is the run's own ``train_events_per_s`` /
``train_samples_per_s`` from ``metrics.json``. Two conditions:

* quiet: the run alone;
* contended: beside a background process that multiplies 384 x 384 float32
  matrices in a loop on 2 torch threads (default OpenMP settings), started
  1.5 s before the run and killed after it.

Two code versions: "before" (``--before-rev REV``, checked out in a temporary
``git worktree``) and "after" (this tree). Every child gets the same
environment with the thread variables (``OMP_*``, ``GOMP_*``, ``KMP_*``,
``MKL_NUM_THREADS``, ``NUMBA_*THREAD*``, ``POLARS_MAX_THREADS``) removed, so each
version runs with the defaults its own code sets. Runs alternate before /
after within each (repeat, model, condition), so both see the same machine.
Each version and model gets one unmeasured warm-up run first (numba compiles
into a fresh worktree's cache on its first run).

Writes ``benchmarks/results/cpu_sharing.json`` (every run) and the section
"Sharing the CPU" of ``docs/performance.md`` (medians). Needs the datasets
yoochoose_100k and amazon_beauty (``$SEQREC_DATA`` or ``../shared/data``).

    python benchmarks/cpu_sharing.py                         # all three, 2 repeats
    python benchmarks/cpu_sharing.py --models din --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# model -> (config, train epochs, metrics.json key, unit)
MODELS: dict[str, tuple[str, int, str, str]] = {
    "gru4rec": ("configs/gru4rec_yoochoose_100k_bpr-max.toml", 3, "train_events_per_s", "events/s"),
    "din": ("configs/din_amazon_beauty.toml", 1, "train_samples_per_s", "samples/s"),
    "dien": ("configs/dien_amazon_beauty.toml", 1, "train_samples_per_s", "samples/s"),
}
VERSIONS = ("before", "after")
CONDITIONS = ("quiet", "contended")
THREAD_ENV = re.compile(r"^(OMP_|GOMP_|KMP_|MKL_NUM_THREADS$|NUMBA_NUM_THREADS$|NUMBA_THREADING_LAYER$"
                        r"|POLARS_MAX_THREADS$)")
# the other job: a fixed 2-thread torch workload that never ends by itself
LOAD_CODE = ("import torch\ntorch.set_num_threads(2)\na = torch.randn(384, 384)\nb = torch.randn(384, 384)\n"
             "while True:\n    a @ b\n")
SECTION_START, SECTION_END = "<!-- cpu_sharing:start -->", "<!-- cpu_sharing:end -->"
REQUIRED_RATIO = 0.40  # contended / quiet, after the change


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="gru4rec,din,dien",
                    help=f"comma-separated, from {', '.join(MODELS)} (default: all)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per (model, condition, version)")
    ap.add_argument("--before-rev", default=None,
                    help="git revision of the 'before' code (default: the parent of the commit that "
                         "added src/seqrec/threads.py)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/cpu_sharing.json"))
    ap.add_argument("--doc", default=str(ROOT / "docs/performance.md"),
                    help="markdown file whose 'Sharing the CPU' section is (re)written; '' = none")
    ap.add_argument("--epochs", type=int, default=None,
                    help="train epochs for every model (default: gru4rec 3, din 1, dien 1)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the unmeasured first run of each")
    ap.add_argument("--run-timeout", type=float, default=1800.0,
                    help="seconds before a run is stopped and recorded as missing (default 1800)")
    args = ap.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown or not args.models:
        ap.error(f"--models: unknown {unknown}; choose from {', '.join(MODELS)}")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    return args


def plan_runs(models: list[str], repeats: int) -> list[tuple[int, str, str, str]]:
    """(repeat, model, condition, version) in run order: before / after alternate (ABBA over
    repeats, so neither version always goes first)."""
    plan = []
    for rep in range(repeats):
        versions = VERSIONS if rep % 2 == 0 else VERSIONS[::-1]
        for model in models:
            for cond in CONDITIONS:
                plan += [(rep, model, cond, v) for v in versions]
    return plan


def child_env(src: Path, data_root: str | None) -> dict[str, str]:
    """The environment of a run: ours without the thread variables, ``src`` on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not THREAD_ENV.match(k)}
    env["PYTHONPATH"] = str(src)
    if data_root:
        env["SEQREC_DATA"] = data_root
    return env


def find_data_root() -> str | None:
    """$SEQREC_DATA, or a shared/data above the working directory or this repository."""
    if os.environ.get("SEQREC_DATA"):
        return os.environ["SEQREC_DATA"]
    for base in (Path.cwd(), ROOT):
        for parent in (base, *base.parents):
            if (parent / "shared" / "data").is_dir():
                return str((parent / "shared" / "data").resolve())
    return None


def default_before_rev() -> str:
    out = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--", "src/seqrec/threads.py"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not out:
        raise SystemExit("src/seqrec/threads.py is not committed yet: give --before-rev")
    return out[-1] + "^"


def rev_id(rev: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", "rev-parse", "--short", rev], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()


def start_load(env: dict[str, str]) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", LOAD_CODE], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(1.5)  # its pool is up and spinning before the run starts
    if p.poll() is not None:
        raise SystemExit(f"the background load exited at once (code {p.returncode})")
    return p


def train_once(tree: Path, model: str, env: dict[str, str], epochs: int | None, contended: bool,
               timeout: float | None = None) -> dict:
    """One training run of ``model`` with the code in ``tree``; its throughput and timings
    (``value`` None when it ran past ``timeout`` seconds)."""
    config, default_epochs, key, _ = MODELS[model]
    ep = epochs or default_epochs
    load = start_load(env) if contended else None
    try:
        with tempfile.TemporaryDirectory(prefix="cpu_sharing_") as tmp:
            cmd = [sys.executable, "-m", "seqrec.cli", "train", config, "--out", tmp + "/run",
                   "--set", f"train.epochs={ep}", "--no-progress"]
            t0 = time.perf_counter()
            try:
                r = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return {"value": None, "train_seconds": None, "wall_seconds": round(time.perf_counter() - t0, 2),
                        "threads": None, "epochs": ep, "timed_out": True}
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} (in {tree}) failed:\n{r.stderr[-3000:]}")
            m = json.loads(Path(tmp, "run", "metrics.json").read_text())
    finally:
        if load is not None:
            load.kill()
            load.wait()
    return {"value": m[key], "train_seconds": m.get("train_seconds"), "wall_seconds": round(wall, 2),
            "threads": m.get("threads"), "epochs": ep}


def summarise(records: list[dict], models: list[str]) -> list[dict]:
    """Median throughput per (model, version, condition) and the contended / quiet ratios."""
    rows = []
    for model in models:
        row: dict = {"model": model, "unit": MODELS[model][3]}
        for v in VERSIONS:
            for c in CONDITIONS:
                vals = [r["value"] for r in records if (r["model"], r["version"], r["condition"]) == (model, v, c)
                        and r["value"] is not None]
                row[f"{v}_{c}"] = statistics.median(vals) if vals else None
            q, k = row[f"{v}_quiet"], row[f"{v}_contended"]
            row[f"{v}_ratio"] = k / q if q and k is not None else None
        rows.append(row)
    return rows


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def format_table(rows: list[dict]) -> str:
    """The summary as a markdown table (also printed)."""
    head = ("| model | unit | before quiet | before contended | after quiet | after contended "
            "| contended/quiet before | contended/quiet after |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r['model']} | {r['unit']} | {_num(r['before_quiet'])} | {_num(r['before_contended'])} "
                     f"| {_num(r['after_quiet'])} | {_num(r['after_contended'])} "
                     f"| {_ratio(r['before_ratio'])} | {_ratio(r['after_ratio'])} |")
    return "\n".join(lines)


def machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({name})"


def markdown_section(rows: list[dict], meta: dict) -> str:
    return "\n".join([
        SECTION_START,
        "## Sharing the CPU",
        "",
        f"`{meta['command']}` on {meta['date']}, {meta['machine']}; before = `{meta['before_rev']}`, "
        f"after = `{meta['after_rev']}`{' (with uncommitted changes)' if meta.get('after_dirty') else ''}. "
        f"Medians of {meta['repeats']} run(s) each, before and after alternating. "
        "Quiet: the training run alone; contended: beside a 2-thread torch matmul loop (default OpenMP "
        "settings). Each figure is the run's own train throughput (GRU4Rec: events/s over "
        f"{MODELS['gru4rec'][1] if meta.get('epochs') is None else meta['epochs']} epoch(s); "
        "DIN, DIEN: samples/s over one epoch). The thread settings are explained in `src/seqrec/threads.py`.",
        "",
        format_table(rows),
        "",
        SECTION_END,
    ])


def write_doc(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Performance notes\n"
    if SECTION_START in text and SECTION_END in text:
        a, rest = text.split(SECTION_START, 1)
        text = a + section + rest.split(SECTION_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    before_rev = args.before_rev or default_before_rev()
    data_root = find_data_root()
    after_dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                      capture_output=True, text=True).stdout.strip())
    meta = {
        "command": "python benchmarks/cpu_sharing.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "repeats": args.repeats, "epochs": args.epochs,
        "before_rev": rev_id(before_rev), "after_rev": rev_id("HEAD"), "after_dirty": after_dirty,
        "data_root": data_root, "load_before": os.getloadavg(),
    }
    if meta["load_before"][0] > 1.0:
        print(f"warning: load average {meta['load_before'][0]:.1f} before starting: the machine is not quiet, "
              "so 'quiet' will not be")
    dropped = sorted(k for k in os.environ if THREAD_ENV.match(k))
    if dropped:
        print(f"note: not passed to the runs: {', '.join(dropped)}")
    plan = plan_runs(args.models, args.repeats)
    records: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="cpu_sharing_before_") as tmp:
        before_tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(before_tree), before_rev], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            trees = {"before": before_tree, "after": ROOT}
            envs = {v: child_env(trees[v] / "src", data_root) for v in VERSIONS}
            if not args.no_warmup:
                for model in args.models:
                    for v in VERSIONS:
                        print(f"warm-up {model} {v} ...", flush=True)
                        train_once(trees[v], model, envs[v], 1, False, args.run_timeout)
            t_all = time.perf_counter()
            for i, (rep, model, cond, v) in enumerate(plan, 1):
                r = train_once(trees[v], model, envs[v], args.epochs, cond == "contended", args.run_timeout)
                r.update(model=model, version=v, condition=cond, repeat=rep, load1=os.getloadavg()[0])
                records.append(r)
                got = (f"{r['value']:10,.0f} {MODELS[model][3]}  ({r['train_seconds']:.1f} s train, "
                       f"{r['threads']} threads)" if r["value"] is not None
                       else f"stopped after {args.run_timeout:.0f} s")
                print(f"[{i}/{len(plan)}] {model:8s} {cond:9s} {v:6s} {got}", flush=True)
            meta["seconds"] = round(time.perf_counter() - t_all, 1)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before_tree)], cwd=ROOT,
                           capture_output=True)
    rows = summarise(records, args.models)
    print()
    print(format_table(rows))
    bad = [r["model"] for r in rows if r["after_ratio"] is not None and r["after_ratio"] < REQUIRED_RATIO]
    print(f"\nafter: contended >= {REQUIRED_RATIO:.0%} of quiet for every model: "
          + ("yes" if not bad else f"NO ({', '.join(bad)})"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "summary": rows, "runs": records}, indent=2) + "\n")
    print(f"wrote {out}")
    if args.doc:
        write_doc(Path(args.doc), markdown_section(rows, meta))
        print(f"wrote {args.doc}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
