"""DUPN on the Taobao sample: joint training vs single-task DINs, the multi-task baselines, transfer.

For every seed (default 0, 1, 2) this trains, each in its own ``python -m seqrec train`` process
(so ``peak_rss_mb`` is that run's) and in this order:

* ``dupn`` on the four joint tasks (ctr / l2r / pref / buy; ``configs/dupn_taobao.toml``);
* ``dupn+cand`` (not the paper: the attention context also gets the candidate's category,
  ``model.candidate_attention``): the row that measures what DIN's target attention is worth;
* ``single_din`` once per task (``configs/single_din_taobao.toml`` with ``data.multitask.tasks =
  [task]``): the single-task model of the paper's multi- vs single-task comparison;
* ``shared_bottom``, ``mmoe``, ``ple`` on the four tasks (``configs/<model>_taobao.toml``);
* ``rule``: the sceptic's rule (:func:`rule_scores`, no training) on every task, each seed's rows;
* the transfer runs on the held-out ``cat_buy`` task (``configs/dupn_taobao_transfer_*.toml``):
  ``dupn-rs`` (DUPN on cat_buy alone), ``dupn-rt`` / ``dupn-ft`` (the seed's four-task DUPN
  loaded, representation frozen / fine-tuned, new head) and ``dupn-ra`` (DUPN on all five tasks).

Every setting is the config's; epochs are chosen by early stopping on the validation day
(2017-12-02), the best epoch restored, and the test day (2017-12-03) scored once per run.
Records (one per dataset, model, task, library) are merged into ``benchmarks/results/multitask.json``
with ``metrics`` = test ``auc`` / ``gauc`` mean, std and per seed, ``train_samples_per_s``,
``train_seconds`` and ``peak_rss_mb`` (medians over seeds) and ``command``; the table goes to
``benchmarks/results/dupn.md``. Seed 0's four-task DUPN is written to ``runs/final/taobao/dupn``
(the run the transfer configs, ``seqrec explain`` and ``seqrec embed-users`` examples use).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import env_info, load_records, markdown_table, merge_records, write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TASKS = ("ctr", "l2r", "pref", "buy")
HELD_OUT = "cat_buy"
KEY = ("dataset", "model", "task", "library", "day")
BASELINES = ("shared_bottom", "mmoe", "ple")
TRANSFER = ("rs", "rt", "ft", "ra")
ROW_ORDER = ["dupn", "dupn+cand", "single_din", *BASELINES, "dupn-ra", "rule"]
TABLE_MODELS = {"dupn", "dupn+cand", "single_din", *BASELINES, *(f"dupn-{k}" for k in TRANSFER), "rule"}


def train(config: str, out: Path, sets: list[str], threads: int) -> dict:
    """One ``seqrec train`` process; its metrics.json plus the wall time."""
    cmd = [sys.executable, "-m", "seqrec", "train", str(ROOT / config), "--out", str(out), "--no-progress",
           "--set", f"train.threads={threads}"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    m["wall_seconds"] = time.perf_counter() - t0
    return m


def line(label: str, m: dict, tasks) -> str:
    per = " ".join(f"{t}={m['test'][t]['auc']:.4f}" for t in tasks)
    return (f"{label:<28} {per}  epochs {m['best_epoch']}/{m['epochs']}  {m['train_samples_per_s']:,.0f} samples/s  "
            f"{m['wall_seconds']:.0f}s")


def run_seed(seed: int, runs: Path, args) -> dict[tuple[str, str], dict]:
    """{(model, task): metrics of that run} for one seed."""
    out: dict[tuple[str, str], dict] = {}
    seed_set = [f"train.seed={seed}"]
    dupn_dir = ROOT / "runs" / "final" / "taobao" / "dupn" if seed == 0 else runs / f"seed{seed}" / "dupn"
    if "dupn" in args.only:
        m = train("configs/dupn_taobao.toml", dupn_dir, seed_set, args.threads)
        print(line(f"seed {seed} dupn", m, TASKS), flush=True)
        for t in TASKS:
            out[("dupn", t)] = m
    if "dupn+cand" in args.only:
        m = train("configs/dupn_taobao.toml", runs / f"seed{seed}" / "dupn_cand",
                  seed_set + ["model.candidate_attention=true"], args.threads)
        print(line(f"seed {seed} dupn+cand", m, TASKS), flush=True)
        for t in TASKS:
            out[("dupn+cand", t)] = m
    if "single_din" in args.only:
        for t in TASKS:
            m = train("configs/single_din_taobao.toml", runs / f"seed{seed}" / f"single_din_{t}",
                      seed_set + [f'data.multitask.tasks=["{t}"]'], args.threads)
            print(line(f"seed {seed} single_din[{t}]", m, (t,)), flush=True)
            out[("single_din", t)] = m
    for b in BASELINES:
        if b in args.only:
            m = train(f"configs/{b}_taobao.toml", runs / f"seed{seed}" / b, seed_set, args.threads)
            print(line(f"seed {seed} {b}", m, TASKS), flush=True)
            for t in TASKS:
                out[(b, t)] = m
    if "transfer" in args.only:
        for k in TRANSFER:
            sets = list(seed_set)
            if k in ("rt", "ft"):
                sets.append(f'train.init_from="{dupn_dir}"')
            m = train(f"configs/dupn_taobao_transfer_{k}.toml", runs / f"seed{seed}" / f"transfer_{k}", sets,
                      args.threads)
            print(line(f"seed {seed} dupn-{k}", m, (HELD_OUT,)), flush=True)
            out[(f"dupn-{k}", HELD_OUT)] = m
            if k == "ra":
                for t in TASKS:
                    out[("dupn-ra", t)] = m
    return out


def rule_scores(cols: dict, task: str) -> np.ndarray:
    """The sceptic's rule, no training: a candidate task scores 1000 x (times the candidate item is
    in the history) + (history behaviours in the candidate's category); ``buy`` scores 100 x (buys
    in the history) + carts + favs. Its sign is chosen on the validation day."""
    if task == "buy":
        b = cols["hist_btype"]
        return 100.0 * (b == 5).sum(1) + (b == 3).sum(1) + (b == 4).sum(1)
    same_item = (cols["hist_item"] == cols["item"][:, None]) & (cols["item"][:, None] > 1)
    same_cate = (cols["hist_cate"] == cols["cate"][:, None]) & (cols["cate"][:, None] > 1)
    return 1000.0 * same_item.sum(1) + same_cate.sum(1)


def rule_records(seeds, command: str, env: dict) -> list[dict]:
    """Test AUC / GAUC of :func:`rule_scores` on each seed's rows (the seed redraws the negatives)."""
    from seqrec.data.registry import get_dataset, require_files
    from seqrec.data.tasks.taobao_multitask import TAOBAO_TASKS, taobao_multitask
    from seqrec.train.multitask_trainer import task_metrics

    folder = require_files(get_dataset("taobao", "multitask"), None)
    per = {t: [] for t in TAOBAO_TASKS}
    for s in seeds:
        d = taobao_multitask("taobao", folder, tasks=TAOBAO_TASKS, seed=s)
        for t in TAOBAO_TASKS:
            # the rule's direction is chosen on the validation day (pref: a negative was viewed earlier
            # that day too, so "seen before" points the other way there)
            sign = 1.0 if task_metrics(d.valid[f"label_{t}"], rule_scores(d.valid, t))["auc"] >= 0.5 else -1.0
            m = task_metrics(d.test[f"label_{t}"], sign * rule_scores(d.test, t), d.test["user_key"])
            per[t].append({**m, "sign": sign})
    recs = []
    for t, ms in per.items():
        a = [m["auc"] for m in ms]
        g = [m["gauc"] for m in ms]
        metrics = {"auc": float(np.mean(a)), "auc_std": float(np.std(a)), "auc_per_seed": a,
                   "sign_per_seed": [m["sign"] for m in ms]}
        if all(x is not None for x in g):
            metrics.update(gauc=float(np.mean(g)), gauc_per_seed=g)
        recs.append({"dataset": "taobao", "model": "rule", "task": t, "library": "seqrec", "day": None,
                     "metrics": metrics, "seeds": list(seeds), "rule": rule_scores.__doc__.split("rule, ")[1],
                     "epochs_chosen": [], "train_seconds": 0.0,
                     "train_samples_per_s": None, "peak_rss_mb": None, "command": command, "env": env})
    return recs


def records(per_seed: dict[int, dict], command: str, env: dict) -> list[dict]:
    keys = sorted({k for runs in per_seed.values() for k in runs})
    recs = []
    for model, task in keys:
        ms = [per_seed[s][(model, task)] for s in sorted(per_seed) if (model, task) in per_seed[s]]
        seeds = [s for s in sorted(per_seed) if (model, task) in per_seed[s]]
        a = [m["test"][task]["auc"] for m in ms]
        g = [m["test"][task].get("gauc") for m in ms]
        va = [m["valid"][task]["auc"] for m in ms]
        metrics = {"auc": float(np.mean(a)), "auc_std": float(np.std(a)), "auc_per_seed": a,
                   "valid_auc": float(np.mean(va)), "valid_auc_per_seed": va}
        if all(x is not None for x in g):
            metrics.update(gauc=float(np.mean(g)), gauc_per_seed=g)
        recs.append({"dataset": "taobao", "model": model, "task": task, "library": "seqrec", "day": None,
                     "metrics": metrics, "seeds": seeds,
                     "test_rows": ms[0]["test"][task]["samples"], "test_positives": ms[0]["test"][task]["positives"],
                     "train_samples_per_s": float(np.median([m["train_samples_per_s"] for m in ms])),
                     "train_seconds": float(np.median([m["train_seconds"] for m in ms])),
                     "train_seconds_per_seed": [m["train_seconds"] for m in ms],
                     "epochs_chosen": [m["best_epoch"] for m in ms],
                     "peak_rss_mb": float(np.median([m["peak_rss_mb"] for m in ms])),
                     "command": command, "env": env})
    return recs


def pm(rec: dict | None, key: str = "auc") -> str:
    if rec is None:
        return "—"
    m = rec["metrics"]
    if key == "gauc":
        return f"{m['gauc']:.4f}" if m.get("gauc") is not None else "—"
    return f"{m['auc']:.4f} ± {m['auc_std']:.4f}"


def tables(recs: list[dict]) -> tuple[str, str]:
    by = {(r["model"], r["task"]): r for r in recs if r["dataset"] == "taobao" and r.get("day") is None}
    rows = []
    for model in sorted(TABLE_MODELS - {"dupn-rs", "dupn-rt", "dupn-ft"}, key=ROW_ORDER.index):
        if any((model, t) in by for t in TASKS):
            rows.append([model, *[pm(by.get((model, t))) for t in TASKS]])
    joint = markdown_table(["model", *[f"{t} AUC" for t in TASKS]], rows)
    trows = []
    for k in (*TRANSFER, "rule"):
        r = by.get((f"dupn-{k}" if k != "rule" else "rule", HELD_OUT))
        if r:
            trows.append([r["model"], pm(r), pm(r, "gauc"), f"{r['train_seconds']:.1f}",
                          ", ".join(str(e) for e in r["epochs_chosen"])])
    transfer = markdown_table(["model", "cat_buy AUC", "cat_buy GAUC", "train s (median)", "epochs chosen"], trows)
    return joint, transfer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", default="dupn,dupn+cand,single_din,shared_bottom,mmoe,ple,transfer,rule",
                   help="comma-separated parts to run")
    p.add_argument("--runs", default=str(ROOT / "runs" / "dupn_bench"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS / "multitask.json"))
    args = p.parse_args(argv)
    args.only = set(args.only.split(","))
    command = "python benchmarks/dupn.py " + " ".join(argv if argv is not None else sys.argv[1:])
    env = env_info()
    t0 = time.perf_counter()
    per_seed = {s: run_seed(s, Path(args.runs), args) for s in args.seeds}
    recs = records(per_seed, command.strip(), env)
    if "rule" in args.only:
        recs += rule_records(args.seeds, command.strip(), env)
    out = Path(args.out)
    all_recs = merge_records(load_records(out), recs, KEY)
    write_json(out, all_recs)
    joint, transfer = tables(all_recs)
    md = ["# DUPN on the Taobao UserBehavior sample", "",
          "Generated by " + ", ".join(f"`{c}`" for c in sorted({r["command"] for r in all_recs
                                                                   if r["model"] in TABLE_MODELS}))
          + f" (last run {env['date']}, torch {env['torch_version']}, {args.threads} thread(s) per run). Test "
          "day 2017-12-03, validation 2017-12-02; test AUC mean ± std over the seeds. `single_din` is "
          "the CTR family's `din` (DIN with the authors' candidate x summed-history product, `sum_product`); "
          "DUPN's weight decay was chosen on validation, the other rows keep DUPN's optimiser settings "
          "untuned. `rule`: " + rule_scores.__doc__.split("rule, no training: ")[1].replace("\n", " "), "",
          "## Joint training vs single-task DIN and the multi-task baselines", "", joint, "",
          "## Transfer to the held-out task (cat_buy)", "", transfer, ""]
    write_text(out.with_name("dupn.md"), "\n".join(md))
    print("\n" + joint + "\n\n" + transfer)
    print(f"\nwrote {out} and {out.with_name('dupn.md')} in {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
