"""DUPN's daily incremental update (Ni et al. KDD 2018, sec. 7), measured against a full retrain.

    python benchmarks/dupn_incremental.py                      # base day 5, updates for days 6, 7, 8
    python benchmarks/dupn_incremental.py --base-day 7 --epochs 1 --update-epochs 1 --runs /tmp/r --out /tmp/m.json

Days index the Taobao UserBehavior sample (0 = 2017-11-25 .. 8 = 2017-12-03; see
``seqrec.data.tasks.taobao_multitask``). A version ``v<D>`` is a model tested on day D, validated on
day D-1 and trained on the days before.

* Base: ``RUNS/v<D0>-full``, DUPN from scratch (``configs/dupn_taobao.toml``, test_day = D0, up to
  ``--epochs`` epochs, early stop and best weights on the validation day).
* Each later day D: (a) ``RUNS/v<D>-incremental`` starts from the previous version
  (``train.init_from``: the previous incremental run, the base for D0+1) and trains only on the day
  that got its labels since then (``train_from_day = D - 2``) for up to ``--update-epochs`` epochs,
  best epoch restored on the validation day; the tables grow with the ids first seen on day D-1 (old
  rows and Adam's moments carried, see ``seqrec.train.warm_start``). (b) ``RUNS/v<D>-full``
  retrains from scratch on days 0 .. D-2 with the base's budget.

Every run is one ``python -m seqrec train`` subprocess; its **wall time** is that whole call (start-up,
reading the log and building every day's rows — the same for both kinds —, training, validation,
test scoring, writing the run). Test AUC / GAUC per task come from its ``metrics.json``. Records (one
per kind, day and task) are merged into ``benchmarks/results/multitask.json`` under the key
(dataset, model, task, library, day); the table goes to ``benchmarks/results/dupn_incremental.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from _common import ROOT, env_info, fmt_metric, fmt_seconds, load_records, markdown_table, merge_records, \
    write_json, write_text

CONFIG = "configs/dupn_taobao.toml"
KEY = ("dataset", "model", "task", "library", "day")
INC, FULL = "dupn-incremental", "dupn-full-retrain"
DAY0 = date(2017, 11, 25)
AUC_TOL, WALL_RATIO = 0.005, 0.30  # the must-show


def day_str(d: int) -> str:
    return (DAY0 + timedelta(days=d)).isoformat()


def train(run_dir: Path, *, test_day: int, epochs: int, threads: int, train_from_day: int = 0,
          init_from: Path | None = None, extra: list[str] = ()) -> dict:
    """One ``seqrec train`` subprocess; returns its metrics.json plus the wall time and command."""
    sets = [f"train.epochs={epochs}", f"train.threads={threads}", f"data.multitask.test_day={test_day}",
            f"data.multitask.train_from_day={train_from_day}", *extra]
    if init_from is not None:
        sets.append(f"train.init_from={json.dumps(str(init_from))}")
    cmd = [sys.executable, "-m", "seqrec", "train", CONFIG, "--out", str(run_dir), "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (run_dir.parent / f"{run_dir.name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    m = json.loads((run_dir / "metrics.json").read_text())
    m["wall_seconds"], m["command"] = wall, shlex.join(["python", "-m", "seqrec", *cmd[3:]])
    ws = run_dir / "warm_start.json"
    m["warm"] = json.loads(ws.read_text()) if ws.is_file() else None
    return m


def growth(warm: dict | None) -> dict[str, int]:
    """Rows added per table (``emb.tables.item.weight`` -> ``item``) from a warm_start.json."""
    if not warm:
        return {}
    return {name.split(".")[-2]: new - old for name, (old, new) in sorted(warm["grown"].items())}


def check_runs(runs: dict[tuple[str, int], Path]) -> dict[str, str]:
    """Every versioned run loads with MultiTaskRun; an update's tables are the full retrain's size
    and at least the previous version's (the vocabulary only grows)."""
    from seqrec.families.multitask import MultiTaskRun

    rows, problems = {}, {}
    for (kind, d), path in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        try:
            run = MultiTaskRun(path)
        except Exception as exc:  # reported, not fatal: the table still says what was measured
            problems[path.name] = f"does not load: {exc}"
            continue
        rows[kind, d] = {t.name: t.rows for t in run.schema.tables}
    for (kind, d), r in rows.items():
        prev = rows.get((kind, d - 1)) or rows.get((FULL, d - 1))
        if prev and any(r[t] < prev[t] for t in r):
            problems[f"v{d}-{kind}"] = f"a table shrank: {prev} -> {r}"
        if kind == INC and (FULL, d) in rows and rows[FULL, d] != r:
            problems[f"v{d}-{kind}"] = f"tables differ from the full retrain's: {r} vs {rows[FULL, d]}"
    return problems


def records(kind: str, d: int, m: dict, settings: dict, env: dict) -> list[dict]:
    out = []
    for t in m["tasks"]:
        te = m["test"][t]
        out.append({"dataset": "taobao", "model": kind, "task": t, "library": "seqrec", "day": day_str(d),
                    "day_index": d, "metrics": {"auc": te["auc"], "gauc": te.get("gauc"),
                                                "valid_auc": m["valid"][t]["auc"]},
                    "mean_auc": m["test"]["mean_auc"], "valid_mean_auc": m["valid"]["mean_auc"],
                    "train_samples_per_s": m["train_samples_per_s"], "peak_rss_mb": m["peak_rss_mb"],
                    "wall_seconds": m["wall_seconds"], "train_seconds": m["train_seconds"],
                    "train_samples": m["train_samples"], "epochs_run": m["epochs"], "best_epoch": m["best_epoch"],
                    "init_from": (m["warm"] or {}).get("from"), "rows_added": growth(m["warm"]),
                    "optimizer_state_carried": (m["warm"] or {}).get("optimizer_state"),
                    "settings": settings, "command": m["command"], "env": env})
    return out


def report(res: dict[tuple[str, int], dict], base_day: int, last_day: int, settings: dict, cmd: str,
           problems: dict) -> str:
    days = range(base_day + 1, last_day + 1)
    summary, per_task, grow = [], [], []
    for d in days:
        inc, full = res[INC, d], res[FULL, d]
        diffs = [inc["test"][t]["auc"] - full["test"][t]["auc"] for t in inc["tasks"]]
        dm = inc["test"]["mean_auc"] - full["test"]["mean_auc"]
        ratio = inc["wall_seconds"] / full["wall_seconds"]
        ok = abs(dm) <= AUC_TOL and ratio < WALL_RATIO
        summary.append([f"{day_str(d)} (day {d})", fmt_metric(inc["test"]["mean_auc"]),
                        fmt_metric(full["test"]["mean_auc"]), f"{dm:+.4f}", f"{max(diffs, key=abs):+.4f}",
                        fmt_seconds(inc["wall_seconds"]), fmt_seconds(full["wall_seconds"]), f"{ratio:.1%}",
                        "yes" if ok else "**no**"])
        for t, df in zip(inc["tasks"], diffs):
            gi, gf = inc["test"][t].get("gauc"), full["test"][t].get("gauc")
            per_task.append([day_str(d), t, fmt_metric(inc["test"][t]["auc"]), fmt_metric(full["test"][t]["auc"]),
                             f"{df:+.4f}", fmt_metric(gi), fmt_metric(gf)])
        g = growth(inc["warm"])
        grow.append([day_str(d), f"v{d - 1}", *[f"{g.get(t, 0):,}" for t in ("item", "cate", "user", "query")],
                     f"{inc['train_samples'] // max(inc['epochs'], 1):,}",
                     f"{full['train_samples'] // max(full['epochs'], 1):,}",
                     f"{inc['best_epoch']}/{inc['epochs']}", f"{full['best_epoch']}/{full['epochs']}",
                     "yes" if (inc["warm"] or {}).get("optimizer_state") else "no"])
    base = res[FULL, base_day]
    lines = [
        "# DUPN: daily incremental update vs full retrain (Taobao UserBehavior sample)", "",
        f"Generated by `{cmd}`. Base `v{base_day}-full`: trained on days 0..{base_day - 2}, validated on "
        f"{day_str(base_day - 1)}, test {day_str(base_day)} mean AUC {fmt_metric(base['test']['mean_auc'])} "
        f"(wall {fmt_seconds(base['wall_seconds'])} s). Then for each day D: the incremental update starts from "
        "the previous version and trains only on day D-2 (the day labelled since); the full retrain trains "
        "days 0..D-2 from scratch. Both validate on day D-1 (early stop, best weights restored) and are "
        f"tested on day D. Settings: {json.dumps(settings)}.", "",
        f"Must-show: test mean AUC within {AUC_TOL} of the full retrain and wall time under "
        f"{WALL_RATIO:.0%} of it.", "",
        markdown_table(["test day", "incr. mean AUC", "full mean AUC", "diff", "largest task diff",
                        "incr. wall s", "full wall s", "incr./full", "met"], summary), "",
        "Per task (test AUC, GAUC by user):", "",
        markdown_table(["day", "task", "incr. AUC", "full AUC", "diff", "incr. GAUC", "full GAUC"], per_task,
                       ["l", "l"] + ["r"] * 5), "",
        "Vocabulary growth (rows added to each table when the update warm-starts from the previous "
        "version, from `warm_start.json`), training rows per epoch, epochs (best/run):", "",
        markdown_table(["day", "from", "item", "cate", "user", "query", "incr. rows", "full rows",
                        "incr. epochs", "full epochs", "Adam state carried"], grow), "",
        "Wall time = the whole `python -m seqrec train` subprocess, same boundaries for both kinds: "
        "interpreter start-up, reading the log and building every day's rows (the incremental run builds "
        "the same rows and then drops the older training days), training, per-epoch validation, test "
        "scoring and writing the run. One torch thread each; the runs are sequential on a shared 2-core "
        "machine, so a few seconds of noise per run are expected.", "",
    ]
    if problems:
        lines += ["Run-directory checks failed:", ""] + [f"* `{k}`: {v}" for k, v in problems.items()] + [""]
    else:
        lines += ["Every versioned run directory loads with `MultiTaskRun`; each update's tables have the full "
                  "retrain's sizes and never shrink.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-day", type=int, default=5, help="test day of the base version (default 5)")
    p.add_argument("--last-day", type=int, default=8)
    p.add_argument("--epochs", type=int, default=5, help="epoch budget of the base and every full retrain")
    p.add_argument("--update-epochs", type=int, default=2, help="epoch budget of an incremental update")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "dupn_daily")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "multitask.json")
    p.add_argument("--md", type=Path, default=None, help="default: dupn_incremental.md beside --out")
    a = p.parse_args(argv)
    if not 3 <= a.base_day < a.last_day <= 8:
        p.error("need 3 <= --base-day < --last-day <= 8 (an update trains on day D-2 >= base's last train day)")
    cmd = shlex.join(["python", "benchmarks/dupn_incremental.py", *(sys.argv[1:] if argv is None else argv)])
    settings = {"config": CONFIG, "epochs": a.epochs, "update_epochs": a.update_epochs, "threads": a.threads,
                "base_day": a.base_day}
    res: dict[tuple[str, int], dict] = {}
    dirs: dict[tuple[str, int], Path] = {}

    def run(kind: str, d: int, **kw) -> None:
        path = a.runs / f"v{d}-{'incremental' if kind == INC else 'full'}"
        m = res[kind, d] = train(path, test_day=d, threads=a.threads, **kw)
        dirs[kind, d] = path
        print(f"v{d}-{kind}: test mean AUC {m['test']['mean_auc']:.4f}  wall {m['wall_seconds']:.1f}s  "
              f"(train {m['train_seconds']:.1f}s, {m['epochs']} epochs, best {m['best_epoch']})", flush=True)

    run(FULL, a.base_day, epochs=a.epochs)
    prev = dirs[FULL, a.base_day]
    for d in range(a.base_day + 1, a.last_day + 1):
        run(INC, d, epochs=a.update_epochs, train_from_day=d - 2, init_from=prev)
        prev = dirs[INC, d]
        run(FULL, d, epochs=a.epochs)
        inc, full = res[INC, d], res[FULL, d]
        print(f"  {day_str(d)}: " + "  ".join(f"{t} {inc['test'][t]['auc']:.4f}/{full['test'][t]['auc']:.4f}"
                                             for t in inc["tasks"])
              + f"  mean {inc['test']['mean_auc']:.4f}/{full['test']['mean_auc']:.4f} "
              f"(diff {inc['test']['mean_auc'] - full['test']['mean_auc']:+.4f})  wall "
              f"{inc['wall_seconds']:.1f}s/{full['wall_seconds']:.1f}s = "
              f"{inc['wall_seconds'] / full['wall_seconds']:.1%}  rows added {growth(inc['warm'])}", flush=True)
    env = env_info()
    new = [r for (kind, d), m in sorted(res.items(), key=lambda kv: (kv[0][1], kv[0][0]))
           for r in records(kind, d, m, settings, env)]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(a.out, merge_records(load_records(a.out), new, KEY))
    problems = check_runs(dirs)
    text = report(res, a.base_day, a.last_day, settings, cmd, problems)
    write_text(a.md or a.out.with_name("dupn_incremental.md"), text)
    print("\n" + text)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
