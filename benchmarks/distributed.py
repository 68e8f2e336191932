"""One process against two torchrun ranks on one machine: the same shipped config, the same global
batch, one epoch (issue #25, distributed training).

For DIN / amazon_beauty and YouTube DNN / gowalla this trains ``seqrec train CONFIG`` as one
process with 2 threads and as ``torchrun --nproc-per-node 2`` with 1 thread per rank, the two
alternated A B A B (``--rounds`` rounds), and records per run: the test metrics, the wall time of
the whole command (start-up, data, training, evaluation), the training time and samples/s that
``metrics.json`` reports (rank 0's clock; samples of the global batch), and the peak RSS of every
rank (``VmHWM`` of each training process, polled from ``/proc`` while it runs).

What it can and cannot say: on one 2-core machine two ranks share the cores one process would
use, so this measures the cost of the data-parallel machinery (a second copy of the data and
model, per-step collectives, the duplicated global-batch assembly), not a speed-up; the figures
also move with whatever else runs on the machine (the output records the load average).

    python benchmarks/distributed.py            # writes results/distributed.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, env_info, markdown_table, write_json, write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MODELS = {  # name -> (config, metrics shown, extra --set overrides)
    "din/amazon_beauty": ("configs/din_amazon_beauty.toml", ("auc", "gauc", "logloss"), ()),
    "youtube_dnn/gowalla": ("configs/youtube_dnn_gowalla.toml", ("recall@20", "ndcg@20"), ()),
    # the item tables with sparse gradients (SparseAdam; a rank sends the rows it used, not the tables)
    "youtube_dnn+sparse/gowalla": ("configs/youtube_dnn_gowalla.toml", ("recall@20", "ndcg@20"),
                                   ("model.sparse=true",)),
}
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _peak_rss(pid: int) -> tuple[str | None, float] | None:
    """(RANK of the process or None, VmHWM in MiB) of a seqrec training process."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"seqrec" not in cmd or b"torch.distributed.run" in cmd:
            return None
        env = dict(e.split(b"=", 1) for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in e)
        hwm = next(int(x.split()[1]) for x in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if x.startswith("VmHWM"))
    except (OSError, StopIteration, ValueError):
        return None
    rank = env.get(b"RANK")
    return (rank.decode() if rank else None), hwm / 1024


def run_one(config: str, ranks: int, data_dir: str | None, sets: tuple[str, ...] = ()) -> dict:
    """Train ``config`` for one epoch on ``ranks`` processes; its record."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        threads = 2 if ranks == 1 else 1
        head = [sys.executable] if ranks == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                    "--nproc-per-node", str(ranks)]
        cmd = head + ["-m", "seqrec", "train", config, "--out", str(out), "--no-progress",
                      "--set", "train.epochs=1", "--set", f"train.threads={threads}"]
        if data_dir:
            cmd += ["--set", f"data.data_dir={data_dir}"]
        for kv in sets:
            cmd += ["--set", kv]
        env = {k: v for k, v in os.environ.items() if k not in _TORCHRUN_VARS}
        env["OMP_NUM_THREADS"] = str(threads)
        peaks: dict[str, float] = {}
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def poll() -> None:
            while proc.poll() is None:
                for pid in _descendants(proc.pid):
                    got = _peak_rss(pid)
                    if got is not None:
                        key = got[0] or "0"
                        peaks[key] = max(peaks.get(key, 0.0), got[1])
                time.sleep(0.5)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        stdout, stderr = proc.communicate()
        wall = time.perf_counter() - t0
        watcher.join()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
        m = json.loads((out / "metrics.json").read_text())
    return {"ranks": ranks, "threads_per_rank": threads, "wall_s": wall, "train_s": m["train_seconds"],
            "samples_per_s": m["train_samples_per_s"], "test": m["test"], "world_size": m.get("world_size"),
            "peak_rss_mb": [round(peaks[k], 1) for k in sorted(peaks)], "summary": stdout.strip().splitlines()[-1]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated keys of MODELS")
    ap.add_argument("--rounds", type=int, default=2, help="A B rounds per model (default 2)")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    records = []
    for name in args.models.split(","):
        config, shown, sets = MODELS[name]
        for r in range(args.rounds):
            for ranks in (1, 2):
                load = os.getloadavg()[0]
                rec = {"model": name, "round": r + 1, "load_before": load, **run_one(config, ranks, args.data_dir, sets)}
                records.append(rec)
                print(f"{name} round {r + 1} ranks {ranks}: wall {rec['wall_s']:.1f}s train {rec['train_s']:.1f}s "
                      f"{rec['samples_per_s']:,.0f} samples/s "
                      + " ".join(f"{k}={rec['test'][k]:.4f}" for k in shown)
                      + f" peak RSS {rec['peak_rss_mb']} MiB (load {load:.1f})", flush=True)
    info = env_info() | {"note": "one 2-core machine shared with other jobs: 1 process x 2 threads against "
                                 "2 ranks x 1 thread (gloo); A B alternated"}
    write_json(RESULTS / "distributed.json", {"env": info, "records": records})
    rows = []
    for rec in records:
        shown = MODELS[rec["model"]][1]  # (config, shown, sets)
        rows.append([rec["model"], str(rec["round"]), f"{rec['ranks']} x {rec['threads_per_rank']}",
                     " ".join(f"{k} {rec['test'][k]:.4f}" for k in shown), f"{rec['wall_s']:.1f}",
                     f"{rec['train_s']:.1f}", f"{rec['samples_per_s']:,.0f}",
                     " / ".join(f"{x:,.0f}" for x in rec["peak_rss_mb"]), f"{rec['load_before']:.1f}"])
    table = markdown_table(["model / data", "round", "ranks x threads", "test metrics", "wall s", "train s",
                            "train samples/s", "peak RSS MiB per rank", "load avg before"], rows)
    write_text(RESULTS / "distributed.md",
               "# One process against two torchrun ranks (one epoch, shipped configs)\n\n"
               f"{info['date']}, torch {info['torch_version']}, {info['cpu_count']} cores shared with other jobs. "
               "Generated by `python benchmarks/distributed.py`.\n\n" + table + "\n")


if __name__ == "__main__":
    main()
