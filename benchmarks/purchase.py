"""Purchase-prediction benchmark: CNN+LSTM, LSTM, GRU and XGBoost on identical samples.

    python benchmarks/purchase.py                                  # the whole grid (see GRID)
    python benchmarks/purchase.py --datasets instacart --models cnn_lstm,xgboost --seeds 0
    python benchmarks/purchase.py --max-len 20,50 --datasets instacart --models cnn_lstm,lstm
    python benchmarks/purchase.py --quick                          # instacart household, seed 0

For every dataset, category (and window, for CDNOW, which has no categories), shift
setting (none / ``[1, 2]``), history length and seed, each model is trained and evaluated by
``seqrec.experiment_purchase.train_purchase_run`` — exactly what ``seqrec train
configs/purchase_<model>_<dataset>.toml --set ...`` runs — in this one process, one after
another. The samples are rebuilt per run from the same config and seed, so all models of a
(dataset, category, window, shift, max_len, seed) see the same users, cut-offs and labels.
Records (mean and std over seeds) merge into ``<out>/purchase.json``; ``<out>/purchase.md``
has one table per dataset and ``<out>/purchase_pr.png`` the precision-recall curves of
CNN+LSTM and XGBoost on one category (``--plot-on``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    ROOT,
    env_info,
    load_records,
    markdown_table,
    merge_records,
    write_json,
    write_text,
)

from seqrec.errors import SeqrecError

MODELS = ("cnn_lstm", "lstm", "gru", "xgboost")
# dataset -> categories of different popularity (Instacart departments by number of buyers:
# frozen 505 of 593 users, household 380, international 289, babies 141; Taobao's categories
# have at most 31 buyers in the 814-user sample, so "any" leads; CDNOW has no categories, its
# windows vary instead; Ta-Feng has products only: products 11, 9 and 1025 have 3,026, 2,563
# and 1,142 buyers of 7,384)
GRID = {
    "instacart": {"categories": ["frozen", "household", "international", "babies"], "windows": [0]},
    "taobao": {"categories": ["any", "1464116", "4801426"], "windows": [0]},
    "cdnow": {"categories": ["any"], "windows": [30, 90, 180]},
    "tafeng": {"categories": ["11", "9", "1025"], "windows": [0]},
}
SHIFT = [1, 2]
METRICS = ("precision", "recall", "f1", "auc", "pr_auc", "precision@0.5", "recall@0.5", "f1@0.5",
           "precision@top10%", "precision@top20%")
KEY = ("dataset", "category", "window", "model", "shift", "max_len", "variant")


def config_path(model: str, dataset: str) -> Path:
    return ROOT / "configs" / f"purchase_{model}_{dataset}.toml"


def overrides(category: str, window: float, shift: bool, max_len: int | None, seed: int, threads: int,
              extra: list[str] = ()) -> list[str]:
    over = [f"data.purchase.category={json.dumps(category)}", f"train.seed={seed}", "train.progress=false",
            f"train.threads={threads}", *extra]
    if window:
        over.append(f"data.purchase.window={window}")
    if shift:
        over.append(f"data.purchase.shift={json.dumps(SHIFT)}")
    if max_len:
        over.append(f"data.max_len={max_len}")
    return over


def command(model: str, dataset: str, over: list[str]) -> str:
    sets = " ".join(f"--set '{o}'" for o in over if not o.startswith(("train.progress", "train.threads")))
    return f"seqrec train configs/purchase_{model}_{dataset}.toml --out RUN_DIR {sets}"


def run_one(model: str, dataset: str, over: list[str], keep: Path | None) -> tuple[dict, list[tuple]]:
    """Train + evaluate one run; its metrics and its test (label, probability) pairs."""
    import csv

    from seqrec.config import load_run_config
    from seqrec.experiment_purchase import train_purchase_run

    cfg = load_run_config(config_path(model, dataset), over)
    with tempfile.TemporaryDirectory() as td:
        out = keep or Path(td) / "run"
        m = train_purchase_run(cfg, out)
        with open(out / "test_predictions.csv") as fh:
            preds = [(int(r["label"]), float(r["probability"])) for r in csv.DictReader(fh)]
    return m, preds


def aggregate(runs: list[dict]) -> dict:
    out = {"metrics": {}, "metrics_std": {}}
    for k in METRICS:
        vals = [r["test"][k] for r in runs]
        out["metrics"][k] = statistics.fmean(vals)
        out["metrics_std"][k] = statistics.stdev(vals) if len(vals) > 1 else 0.0
    out["valid_auc"] = statistics.fmean(r["valid"]["auc"] for r in runs)  # what model choices may use
    out["threshold"] = [r["threshold"] for r in runs]
    out["n_test"] = [r["test"]["n_samples"] for r in runs]
    out["n_train"] = [r["counts"]["train"]["samples"] for r in runs]
    out["train_seconds"] = statistics.fmean(r["train_seconds"] for r in runs)
    out["train_samples_per_s"] = statistics.fmean(r["train_samples_per_s"] for r in runs)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return out


def pr_curve(preds: list[tuple]) -> tuple[list[float], list[float]]:
    """Recall and precision after each distinct score, highest first (step curve)."""
    import numpy as np

    y = np.array([p[0] for p in preds], dtype=float)
    s = np.array([p[1] for p in preds])
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]  # end of each tied group
    tp = np.cumsum(y)[last]
    return list(tp / y.sum()), list(tp / (last + 1))


def plot(curves: dict, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, (rec, prec, ap) in curves.items():
        ax.step([0.0, *rec], [prec[0], *prec], where="post", label=f"{name} (PR-AUC {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _span(ns: list[int]) -> str:
    return f"{min(ns)}" if min(ns) == max(ns) else f"{min(ns)}-{max(ns)}"


def render(records: list[dict]) -> str:
    lines = ["Generated by `benchmarks/purchase.py`. Test split (1:1 positives:negatives, users disjoint "
             "from training, test cut-off after the training cut-off). precision / recall / F1 at the "
             "threshold chosen on validation (max F1); AUC and PR-AUC threshold-free; P@top20% = precision "
             "among the 20% highest-scored users. Mean over seeds (± std where several)."]
    for ds in GRID:
        rows = [r for r in records if r["dataset"] == ds]
        if not rows:
            continue
        rows.sort(key=lambda r: (GRID[ds]["categories"].index(r["category"]) if r["category"] in
                                 GRID[ds]["categories"] else 99, r["window"], r.get("variant", ""),
                                 r["max_len"], r["shift"], MODELS.index(r["model"])))
        lines += ["", f"### {ds}", ""]
        body = []
        for r in rows:
            m, sd = r["metrics"], r["metrics_std"]

            def cell(k, m=m, sd=sd, r=r):
                return f"{m[k]:.3f}" + (f" ± {sd[k]:.3f}" if len(r["seeds"]) > 1 else "")

            body.append([r["category"], f"{r['window']:g}", str(r["max_len"]), "yes" if r["shift"] else "no",
                         r["model"] + (f" [{r['variant']}]" if r.get("variant") else ""), cell("precision"), cell("recall"), cell("f1"), cell("auc"), cell("pr_auc"),
                         f"{m['precision@top20%']:.3f}", _span(r["n_test"]),
                         f"{statistics.fmean(r['n_train']):,.0f}", str(len(r["seeds"])),
                         f"{r['train_seconds']:.1f}"])
        lines.append(markdown_table(
            ["category", "window", "history", "shift", "model", "precision", "recall", "F1", "AUC", "PR-AUC",
             "P@top20%", "test n", "train n", "seeds", "train s"], body,
            ["l", "r", "r", "l", "l"] + ["r"] * 10))
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(GRID))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--categories", default="", help="override the grid's categories (comma-separated)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--shift", choices=["both", "on", "off"], default="both")
    ap.add_argument("--max-len", default="", help="history lengths to run (default: each config's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--plot-on", default="instacart:household",
                    help="dataset:category whose PR curves (CNN+LSTM vs XGBoost, no shift, seed 0) are drawn")
    ap.add_argument("--quick", action="store_true", help="instacart household, seed 0, no shift")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="extra config override for every run (an ablation); needs --variant")
    ap.add_argument("--variant", default="", help="label of the --set ablation (part of the record key)")
    args = ap.parse_args()
    if bool(args.set) != bool(args.variant):
        raise SystemExit("--set and --variant go together: name the ablation the overrides make")
    if args.quick:
        args.datasets, args.categories, args.seeds, args.shift = "instacart", "household", "0", "off"

    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    shifts = {"both": [False, True], "on": [True], "off": [False]}[args.shift]
    lens = [int(x) for x in args.max_len.split(",") if x] or [None]
    env = env_info()
    new, curves = [], {}
    plot_ds, plot_cat = args.plot_on.split(":", 1)
    for ds in args.datasets.split(","):
        if ds not in GRID:
            raise SystemExit(f"unknown dataset {ds!r}; known: {', '.join(GRID)}")
        cats = args.categories.split(",") if args.categories else GRID[ds]["categories"]
        for cat in cats:
            for window in GRID[ds]["windows"]:
                for max_len in lens:
                    for shift in shifts:
                        for model in args.models.split(","):
                            runs, ran, preds0, skipped = [], [], None, None
                            for seed in seeds:
                                over = overrides(cat, window, shift, max_len, seed, args.threads, args.set)
                                t0 = time.perf_counter()
                                try:
                                    m, preds = run_one(model, ds, over, None)
                                except SeqrecError as exc:  # e.g. a split without positives
                                    print(f"{ds} {cat} {model} seed {seed}: skipped: {exc}", flush=True)
                                    skipped = str(exc)
                                    continue
                                runs.append(m)
                                ran.append(seed)
                                preds0 = preds0 or preds
                                t = m["test"]
                                print(f"{ds} {cat} w={m['window']:g} len={m['max_len']} shift={shift} {model} "
                                      f"seed {seed}: f1 {t['f1']:.3f} auc {t['auc']:.3f} pr_auc {t['pr_auc']:.3f} "
                                      f"(test {t['n_samples']}, train {m['counts']['train']['samples']}) "
                                      f"{time.perf_counter() - t0:.1f}s", flush=True)
                            if not runs:
                                print(f"{ds} {cat} {model}: no seed could run ({skipped})", flush=True)
                                continue
                            first = runs[0]
                            rec = {"dataset": ds, "category": cat, "window": first["window"],
                                   "unit": first["unit"], "level": first["level"],
                                   "negatives": first["negatives"], "model": model, "shift": shift,
                                   "shift_n": SHIFT if shift else [], "max_len": first["max_len"],
                                   "variant": args.variant, "overrides": args.set,
                                   "seeds": ran, **aggregate(runs),
                                   "command": command(model, ds, overrides(cat, window, shift, max_len, seeds[0],
                                                                           args.threads, args.set))
                                   + f"  (seeds {','.join(map(str, seeds))} via --set train.seed=S)",
                                   "threads": args.threads, "env": env}
                            new.append(rec)
                            if not args.variant and (ds, cat, shift, model) in ((plot_ds, plot_cat, False, "cnn_lstm"),
                                                                                (plot_ds, plot_cat, False, "xgboost")):
                                rec_, prec_ = pr_curve(preds0)
                                curves[model] = (rec_, prec_, runs[0]["test"]["pr_auc"])
                            records = merge_records(load_records(out / "purchase.json"), [rec], KEY)
                            write_json(out / "purchase.json", records)
                            write_text(out / "purchase.md", render(records))
    if len(curves) == 2 and not args.no_plot:
        plot(curves, f"{plot_ds} / {plot_cat}: test precision-recall (seed {seeds[0]}, no shift)",
             out / "purchase_pr.png")
        print(f"wrote {out / 'purchase_pr.png'}")
    print(f"{len(new)} records merged into {out / 'purchase.json'}; tables in {out / 'purchase.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
