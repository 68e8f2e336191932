"""DUPN's daily incremental update (Ni et al. KDD 2018, sec. 7), measured against a full retrain.

    python benchmarks/dupn_incremental.py --noise-seed 1   # base day 5, days 6-8, day 8 again at seed 1 (~9 min)
    python benchmarks/dupn_incremental.py --base-day 3 --last-day 4 --epochs 1 --update-epochs 1 --runs /tmp/r
        --out /tmp/m.json   # the smallest chain (one line; ~1 min)

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

Every run is ``seqrec train`` (``seqrec.cli.main``) in a fresh process; its **wall time** is that
whole call (reading the log and building every day's rows — the same for both kinds —, training,
validation, test scoring, writing the run); the process's start-up and imports (~10 s, the same for
both) are reported apart (``process_seconds``). The runs import a copy of ``src/`` and the config
taken when the script starts (``RUNS/_source``), so edits to the checkout meanwhile cannot mix
code versions. Test AUC / GAUC per task come from its ``metrics.json``. Records (one
per kind, day and task) are merged into ``benchmarks/results/multitask.json`` under the key
(dataset, model, task, library, day); the table goes to ``benchmarks/results/dupn_incremental.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from _common import (
    ROOT,
    env_info,
    fmt_metric,
    fmt_seconds,
    load_records,
    markdown_table,
    merge_records,
    write_json,
    write_text,
)

CONFIG = "configs/dupn_taobao.toml"
KEY = ("dataset", "model", "task", "library", "day")
INC, FULL = "dupn-incremental", "dupn-full-retrain"
DAY0 = date(2017, 11, 25)
AUC_TOL, WALL_RATIO = 0.005, 0.30  # the must-show


def day_str(d: int) -> str:
    return (DAY0 + timedelta(days=d)).isoformat()


# The child process: exactly ``seqrec train ARGS`` (seqrec.cli.main), its clock around that call only.
# The modules the call would import lazily (torch._dynamo by Adam's constructor, TensorBoard by the
# run log, the data recipe) are imported first, by both kinds alike, so the clock holds the work:
# reading the log, building the rows, the model, training, validation, test scoring, the run files.
CHILD = """import sys, time
import torch._dynamo, torch.utils.tensorboard
import seqrec.data.tasks.taobao_multitask, seqrec.experiment, seqrec.train.multitask_trainer, seqrec.train.warm_start
from seqrec.cli import main
print("SEQREC_FROM", seqrec.__file__)
t0 = time.perf_counter()
rc = main(sys.argv[1:])
print("CALL_SECONDS", time.perf_counter() - t0)
sys.exit(rc)
"""


def snapshot(dest: Path) -> Path:
    """Copy ``src/`` and the config to ``dest``: every run imports this copy, so edits to the working
    tree while the benchmark runs (other work on the same checkout) cannot mix code versions."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (dest / CONFIG).parent.mkdir(parents=True)
    shutil.copy2(ROOT / CONFIG, dest / CONFIG)
    return dest


def train(run_dir: Path, *, test_day: int, epochs: int, threads: int, train_from_day: int = 0,
          init_from: Path | None = None, extra: list[str] = (), source: Path | None = None) -> dict:
    """One ``seqrec train`` in a fresh process (importing ``source/src`` and reading its config when
    given); its metrics.json plus the wall time of the train call (``wall_seconds``) and of the
    whole process (``process_seconds``) and the command."""
    sets = [f"train.epochs={epochs}", f"train.threads={threads}", f"data.multitask.test_day={test_day}",
            f"data.multitask.train_from_day={train_from_day}", *extra]
    if init_from is not None:
        sets.append(f"train.init_from={json.dumps(str(init_from))}")
    args = ["train", CONFIG, "--out", str(run_dir), "--no-progress"]
    for s in sets:
        args += ["--set", s]
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source / "src"), *filter(None, [env.get("PYTHONPATH")])])
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, args[0], str((source or ROOT) / CONFIG), *args[2:]],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    process = time.perf_counter() - t0
    (run_dir.parent / f"{run_dir.name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"seqrec {shlex.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    imported = next(ln.split(" ", 1)[1] for ln in proc.stdout.splitlines() if ln.startswith("SEQREC_FROM "))
    if source is not None and not Path(imported).is_relative_to(source):
        raise SystemExit(f"the run imported seqrec from {imported}, not from the snapshot {source}")
    m = json.loads((run_dir / "metrics.json").read_text())
    call = [ln for ln in proc.stdout.splitlines() if ln.startswith("CALL_SECONDS ")]
    m["wall_seconds"], m["process_seconds"] = float(call[-1].split()[1]), process
    m["command"] = shlex.join(["python", "-m", "seqrec", *args]).replace(f"{ROOT}/", "")
    m["seed"] = json.loads((run_dir / "config.json").read_text())["train"]["seed"]
    ws = run_dir / "warm_start.json"
    m["warm"] = json.loads(ws.read_text()) if ws.is_file() else None
    return m


def git_head() -> str:
    """The commit the runs used (+ '-dirty' with uncommitted changes); '' outside a checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head + ("-dirty" if dirty else "")


def src_digest(root: Path = ROOT) -> str:
    """SHA-1 of the library's sources and the config (what the runs execute)."""
    h = hashlib.sha1()
    for f in [*sorted((root / "src").rglob("*.py")), root / CONFIG]:
        h.update(str(f.relative_to(root)).encode() + f.read_bytes())
    return h.hexdigest()[:12]


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
                    "wall_seconds": m["wall_seconds"], "process_seconds": m["process_seconds"],
                    "train_seconds": m["train_seconds"],
                    "train_samples": m["train_samples"], "epochs_run": m["epochs"], "best_epoch": m["best_epoch"],
                    "init_from": (m["warm"] or {}).get("from"), "rows_added": growth(m["warm"]),
                    "optimizer_state_carried": (m["warm"] or {}).get("optimizer_state"),
                    "settings": settings, "command": m["command"], "env": env})
    return out


def report(res: dict[tuple[str, int], dict], base_day: int, last_day: int, settings: dict, cmd: str,
           problems: dict, noise: dict | None = None) -> str:
    days = range(base_day + 1, last_day + 1)
    summary, per_task, grow = [], [], []
    for d in days:
        inc, full = res[INC, d], res[FULL, d]
        diffs = [inc["test"][t]["auc"] - full["test"][t]["auc"] for t in inc["tasks"]]
        dm = inc["test"]["mean_auc"] - full["test"]["mean_auc"]
        ratio = inc["wall_seconds"] / full["wall_seconds"]
        ok = abs(dm) <= AUC_TOL and ratio < WALL_RATIO
        secs = [f"{fmt_seconds(m['wall_seconds'])} ({fmt_seconds(m['train_seconds'])})" for m in (inc, full)]
        summary.append([f"{day_str(d)} (day {d})", fmt_metric(inc["test"]["mean_auc"]),
                        fmt_metric(full["test"]["mean_auc"]), f"{dm:+.4f}", f"{max(diffs, key=abs):+.4f}",
                        *secs, f"{ratio:.1%}", f"{inc['process_seconds'] / full['process_seconds']:.1%}",
                        "yes" if ok else "**no**"])
        for t, df in zip(inc["tasks"], diffs, strict=True):
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
                        "incr. wall s (train)", "full wall s (train)", "incr./full", "incl. start-up", "met"],
                       summary), "",
        "Per task (test AUC, GAUC by user):", "",
        markdown_table(["day", "task", "incr. AUC", "full AUC", "diff", "incr. GAUC", "full GAUC"], per_task,
                       ["l", "l"] + ["r"] * 5), "",
        "Vocabulary growth (rows added to each table when the update warm-starts from the previous "
        "version, from `warm_start.json`), training rows per epoch, epochs (best/run):", "",
        markdown_table(["day", "from", "item", "cate", "user", "query", "incr. rows", "full rows",
                        "incr. epochs", "full epochs", "Adam state carried"], grow), "",
        "Wall time = the `seqrec train` call (`seqrec.cli.main`, timed inside a fresh process per run), "
        "same boundaries for both kinds: reading the log and building every day's rows (the incremental "
        "run builds the same rows, then drops the older training days), the model (and the warm start), "
        "training, validation after every epoch, test scoring and writing the run; (train) = the epochs' "
        "training loops alone (`train_seconds`). `incl. start-up` is the ratio of the whole processes "
        "(interpreter start-up and imports added to both). One torch thread each; the runs are "
        "sequential on a shared 2-core machine, so a few seconds of noise per run are expected.", "",
    ]
    if noise:
        lines += noise_section(res, last_day, noise)
    if problems:
        lines += ["Run-directory checks failed:", ""] + [f"* `{k}`: {v}" for k, v in problems.items()] + [""]
    else:
        lines += ["Every versioned run directory loads with `MultiTaskRun`; each update's tables have the full "
                  "retrain's sizes and never shrink.", ""]
    return "\n".join(lines)


def noise_section(res: dict, d: int, noise: dict) -> list[str]:
    """The last day rerun with another ``train.seed`` (it also redraws the sampled negatives and the
    ctr / l2r coin, so the test rows of the day differ too): how far one run's AUC moves by chance."""
    seed, base_seed = noise["seed"], res[FULL, d]["seed"]
    rows = []
    for label, m in ((f"incremental, seed {base_seed}", res[INC, d]), (f"incremental, seed {seed}", noise[INC]),
                     (f"full retrain, seed {base_seed}", res[FULL, d]), (f"full retrain, seed {seed}", noise[FULL])):
        rows.append([label, *[fmt_metric(m["test"][t]["auc"]) for t in m["tasks"]], fmt_metric(m["test"]["mean_auc"]),
                     fmt_seconds(m["wall_seconds"])])
    tasks = res[FULL, d]["tasks"]
    full_gap = noise[FULL]["test"]["mean_auc"] - res[FULL, d]["test"]["mean_auc"]
    inc_gap = noise[INC]["test"]["mean_auc"] - res[INC, d]["test"]["mean_auc"]
    same = noise[INC]["test"]["mean_auc"] - noise[FULL]["test"]["mean_auc"]
    return [f"Noise floor, test day {day_str(d)}: the same two recipes with `train.seed={seed}` (the seed also "
            "redraws the sampled negatives and the ctr/l2r split of clicks, so the test rows differ too). "
            f"Full retrain seed {seed} - seed {base_seed}: {full_gap:+.4f} mean AUC; incremental: {inc_gap:+.4f}; "
            f"incremental - full at seed {seed}: {same:+.4f}.", "",
            markdown_table(["run", *tasks, "mean AUC", "wall s"], rows), ""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-day", type=int, default=5, help="test day of the base version (default 5)")
    p.add_argument("--last-day", type=int, default=8)
    p.add_argument("--epochs", type=int, default=5, help="epoch budget of the base and every full retrain")
    p.add_argument("--update-epochs", type=int, default=2,
                   help="epoch budget of an incremental update (2: the first update's validation mean AUC "
                        "over epochs 1..5 was 0.5800 0.5982 0.5970 0.6006 0.5998)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--noise-seed", type=int, default=None,
                   help="also rerun the last day's update and full retrain with this train.seed (the noise floor)")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "dupn_daily")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "multitask.json")
    p.add_argument("--md", type=Path, default=None, help="default: dupn_incremental.md beside --out")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="an extra config override for every run (repeatable)")
    p.add_argument("--note", action="append", default=[], help="a line for the report (why an override)")
    a = p.parse_args(argv)
    if not 3 <= a.base_day < a.last_day <= 8:
        p.error("need 3 <= --base-day < --last-day <= 8 (an update trains on day D-2 >= base's last train day)")
    cmd = shlex.join(["python", "benchmarks/dupn_incremental.py", *(sys.argv[1:] if argv is None else argv)])
    a.runs = a.runs.resolve()  # the runs' processes work in the repository root
    source = snapshot(a.runs / "_source")
    settings = {"config": CONFIG, "epochs": a.epochs, "update_epochs": a.update_epochs, "threads": a.threads,
                "base_day": a.base_day, "overrides": a.set, "git": git_head(), "src_sha1": src_digest(source)}
    res: dict[tuple[str, int], dict] = {}
    dirs: dict[tuple[str, int], Path] = {}

    def run(kind: str, d: int, **kw) -> None:
        path = a.runs / f"v{d}-{'incremental' if kind == INC else 'full'}"
        m = res[kind, d] = train(path, test_day=d, threads=a.threads, extra=a.set, source=source, **kw)
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
    noise = None
    if a.noise_seed is not None:
        d, extra = a.last_day, [*a.set, f"train.seed={a.noise_seed}"]
        before = dirs.get((INC, d - 1), dirs[FULL, a.base_day])
        noise = {"seed": a.noise_seed, INC: train(a.runs / f"v{d}-incremental-seed{a.noise_seed}", test_day=d,
                                                   epochs=a.update_epochs, threads=a.threads, train_from_day=d - 2,
                                                   init_from=before, extra=extra, source=source),
                 FULL: train(a.runs / f"v{d}-full-seed{a.noise_seed}", test_day=d, epochs=a.epochs,
                             threads=a.threads, extra=extra, source=source)}
        for kind in (INC, FULL):
            print(f"v{d}-{kind} seed {a.noise_seed}: test mean AUC {noise[kind]['test']['mean_auc']:.4f}", flush=True)
    env = env_info()
    new = [r for (kind, d), m in sorted(res.items(), key=lambda kv: (kv[0][1], kv[0][0]))
           for r in records(kind, d, m, settings, env)]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(a.out, merge_records(load_records(a.out), new, KEY))
    problems = check_runs(dirs)
    if src_digest() != settings["src_sha1"]:
        print("note: the working tree's src/ or config changed while the benchmark ran; the runs used the "
              f"snapshot {source} (src_sha1 {settings['src_sha1']})", flush=True)
    text = report(res, a.base_day, a.last_day, settings, cmd, problems, noise)
    text += "".join(f"\nNote: {n}\n" for n in a.note)
    write_text(a.md or a.out.with_name("dupn_incremental.md"), text)
    print("\n" + text)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
