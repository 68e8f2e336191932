"""``seqrec prepare`` with the polars and the Spark engine on the four must-show datasets:
the outputs compared (``seqrec.prepare.compare_prepared``) and the wall time of both.

Each engine runs in its own fresh process (``seqrec prepare CONFIG --engine E --json``), so
neither profits from the other's warm caches. Columns: the rows per split; the process wall
time (Python start and imports included); the prepare time the manifest records (Spark: with
the SparkSession start, then without it). Spark runs ``local[2]``: on one machine it pays for
a JVM, task scheduling and shuffles that polars does not have; it is there for data that does
not fit one machine, and this table says what it costs when the data does.

    python benchmarks/prepare_engines.py                  # writes results/prepare_engines.{json,md}
    python benchmarks/prepare_engines.py --datasets taobao --master local[2]

A run of some datasets keeps the other datasets' rows of the existing results (each row says
when it was measured).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, env_info, fmt_int, fmt_seconds, markdown_table, write_json, write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = {"diginetica": "configs/gru4rec_diginetica_bpr-max.toml",
           "amazon_beauty": "configs/din_amazon_beauty.toml",
           "gowalla": "configs/youtube_dnn_gowalla.toml",
           "taobao": "configs/din_taobao.toml",
           "taobao_multitask": "configs/dupn_taobao.toml"}  # DUPN's tasks (multitask-taobao)


def run_engine(config: str, engine: str, out: Path, master: str, shards: int) -> dict:
    cmd = [sys.executable, "-m", "seqrec", "prepare", str(ROOT / config), "--engine", engine, "--out", str(out),
           "--master", master, "--shards", str(shards), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    start = float(m.get("session_start_seconds") or 0.0)
    return {"process_seconds": wall, "prepare_seconds": m["seconds"], "session_start_seconds": start,
            "prepare_seconds_excl_start": m["seconds"] - start, "rows": m["rows"]}


def _merged(records: list[dict], args) -> list[dict]:
    """``records`` with the existing results' rows of the datasets not run now (same master and
    shards only), in the order of CONFIGS."""
    path = RESULTS / "prepare_engines.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    by = {}
    if old.get("master") == args.master and old.get("shards") == args.shards:
        by = {r["dataset"]: {**r, "measured": r.get("measured", old.get("env", {}).get("date", ""))}
              for r in old.get("records", []) if r.get("dataset") in CONFIGS}
    by.update({r["dataset"]: r for r in records})
    return [by[k] for k in CONFIGS if k in by]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--shards", type=int, default=8)
    args = ap.parse_args(argv)
    from seqrec.prepare.layout import compare_prepared

    records = []
    with tempfile.TemporaryDirectory(prefix="prepare-bench-") as tmp:
        for name in args.datasets:
            rec = {"dataset": name, "config": CONFIGS[name]}
            for engine in ("polars", "spark"):
                rec[engine] = run_engine(CONFIGS[name], engine, Path(tmp) / f"{name}_{engine}", args.master,
                                         args.shards)
                print(f"{name} {engine}: {rec[engine]['process_seconds']:.1f}s", flush=True)
            diffs = compare_prepared(Path(tmp) / f"{name}_polars", Path(tmp) / f"{name}_spark")
            rec.update(equal=not diffs, differences=diffs[:10], rows=rec["polars"]["rows"], measured=env_info()["date"])
            records.append(rec)
    records = _merged(records, args)
    header = ["dataset", "measured", "rows per split", "equal", "polars s (process)", "polars s (prepare)",
              "spark s (process)", "spark s (prepare, incl. session start)", "spark s (excl. session start)"]
    table = markdown_table(header, [
        [r["dataset"], r.get("measured", "")[:16], ", ".join(f"{s} {fmt_int(n)}" for s, n in r["rows"].items()), "yes" if r["equal"] else "NO",
         fmt_seconds(r["polars"]["process_seconds"]), fmt_seconds(r["polars"]["prepare_seconds"]),
         fmt_seconds(r["spark"]["process_seconds"]), fmt_seconds(r["spark"]["prepare_seconds"]),
         fmt_seconds(r["spark"]["prepare_seconds_excl_start"])] for r in records])
    env = env_info()
    write_json(RESULTS / "prepare_engines.json", {"env": env, "master": args.master, "shards": args.shards,
                                                   "records": records})
    write_text(RESULTS / "prepare_engines.md",
               f"# seqrec prepare: polars vs Spark ({args.master}, {args.shards} shards)\n\n"
               f"{env['date']}, {env['cpu_count']} CPU(s), {env['platform']}. Each engine in a fresh process; "
               "'equal' = compare_prepared found no difference (manifest engine / seconds ignored).\n\n"
               f"{table}\n")
    print(table)
    return 0 if all(r["equal"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
