"""Purchase-prediction benchmark: CNN+LSTM, LSTM, GRU, XGBoost and the rules on identical samples.

    python benchmarks/purchase.py                                  # the whole grid (see GRID)
    python benchmarks/purchase.py --protocols deployment --shift off --seeds 0
    python benchmarks/purchase.py --datasets instacart --models cnn_lstm,xgboost --seeds 0
    python benchmarks/purchase.py --max-len 20,50 --datasets instacart --models cnn_lstm,lstm
    python benchmarks/purchase.py --quick                          # instacart household, seed 0

For every protocol (``deployment``: every active user at the natural base rate;
``article-1to1``: the article's 1:1 samples; see :mod:`seqrec.data.tasks.purchase`), dataset,
category (and window, for CDNOW, which has no categories), shift setting (none / ``[1, 2]``),
history length and seed, the samples are built once and each model is trained and evaluated
on them by ``seqrec.families.purchase.train_purchase_run`` — exactly what ``seqrec train
configs/purchase_<model>_<dataset>.toml --set ...`` runs (the record's ``command``) — in this
one process, one after another; all models of a (protocol, dataset, category, window, shift,
max_len, seed) see the same users, cut-offs and labels. Records (mean and std over seeds)
merge into ``<out>/purchase.json``; ``<out>/purchase.md`` has one table per protocol and
dataset (deployment first) and ``<out>/purchase_pr.png`` the precision-recall curves of
CNN+LSTM, XGBoost and the rules on one category under ``deployment`` (``--plot-on``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
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

RULES = ("bought_before", "recency", "frequency", "rfm_logreg")  # seqrec.baselines.purchase_rules
MODELS = ("cnn_lstm", "lstm", "gru", "xgboost", *RULES)
PROTOCOLS = ("deployment", "article-1to1")  # table order: the deployment protocol is the headline
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
TOPS = ("1%", "5%", "10%")  # seqrec.evaluate.campaign.TOP_FRACS
METRICS = ("precision", "recall", "f1", "auc", "pr_auc", "precision@0.5", "recall@0.5", "f1@0.5",
           "precision@top10%", "precision@top20%", "base_rate",
           *(f"{m}@top{t}" for m in ("precision", "recall", "lift") for t in TOPS))
KEY = ("protocol", "dataset", "category", "window", "model", "shift", "max_len", "variant")


def config_path(model: str, dataset: str) -> Path:
    return ROOT / "configs" / f"purchase_{model}_{dataset}.toml"


def overrides(protocol: str, category: str, window: float, shift: bool, max_len: int | None, seed: int,
              threads: int, extra: list[str] = ()) -> list[str]:
    over = [f"data.purchase.category={json.dumps(category)}", f"train.seed={seed}", "train.progress=false",
            f"train.threads={threads}", *extra]
    if protocol != "article-1to1":  # the configs' default
        over.append(f"data.purchase.protocol={json.dumps(protocol)}")
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


def load_records_here(path: Path) -> list[dict]:
    """The records, those from before the protocol switch marked ``article-1to1`` (what they ran)."""
    records = load_records(path)
    for r in records:
        r.setdefault("protocol", "article-1to1")
    return records


def build_task(model: str, dataset: str, over: list[str]):
    """The samples ``model``'s config builds with ``over``; every model of the grid shares them."""
    from seqrec.config import load_run_config
    from seqrec.families.purchase import load_purchase_task

    return load_purchase_task(load_run_config(config_path(model, dataset), over))


def run_one(model: str, dataset: str, over: list[str], keep: Path | None, task=None) -> tuple[dict, list[tuple]]:
    """Train + evaluate one run (on ``task`` when given); its metrics and test (label, probability) pairs."""
    import csv

    from seqrec.config import load_run_config
    from seqrec.families.purchase import train_purchase_run

    cfg = load_run_config(config_path(model, dataset), over)
    with tempfile.TemporaryDirectory() as td:
        out = keep or Path(td) / "run"
        m = train_purchase_run(cfg, out, task=task)
        with open(out / "test_predictions.csv") as fh:
            preds = [(int(r["label"]), float(r["probability"])) for r in csv.DictReader(fh)]
    return m, preds


def aggregate(runs: list[dict]) -> dict:
    out = {"metrics": {}, "metrics_std": {}}
    for k in METRICS:
        if k not in runs[0]["test"]:
            continue
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


def per_seed(run: dict, seed: int) -> dict:
    """What :func:`aggregate` needs of one run, kept in the record so later seeds can be added."""
    keep = {"seed": seed, "test": {k: run["test"][k] for k in (*METRICS, "n_samples") if k in run["test"]},
            "valid": {"auc": run["valid"]["auc"]}, "threshold": run["threshold"],
            "counts": {"train": {"samples": run["counts"]["train"]["samples"]}},
            **{k: run[k] for k in ("train_seconds", "train_samples_per_s", "peak_rss_mb")}}
    if "C" in run:
        keep["C"] = run["C"]
    return keep


def runs_of(rec: dict) -> list[dict] | None:
    """The per-seed runs of a record: stored, or rebuilt exactly from a one-seed record."""
    if "runs" in rec:
        return rec["runs"]
    if len(rec["seeds"]) != 1:
        return None
    run = {"test": {**rec["metrics"], "n_samples": rec["n_test"][0]}, "valid": {"auc": rec["valid_auc"]},
           "threshold": rec["threshold"][0], "counts": {"train": {"samples": rec["n_train"][0]}},
           **{k: rec[k] for k in ("train_seconds", "train_samples_per_s", "peak_rss_mb")}}
    if "chosen_C" in rec:
        run["C"] = rec["chosen_C"][0]
    return [per_seed(run, rec["seeds"][0])]


def _base_command(cmd: str) -> str:
    return re.sub(r" --set 'train\.seed=\d+'", "", cmd.split("  (seeds")[0])


def add_seeds(old: dict, rec: dict) -> dict:
    """``rec`` (new seeds) combined with ``old`` (the same key and command, other seeds)."""
    same = _base_command(old["command"]) == _base_command(rec["command"])
    before = runs_of(old)
    if not same or before is None or set(old["seeds"]) & set(rec["seeds"]):
        raise SystemExit(f"--add-seeds: cannot combine seeds {old['seeds']} with {rec['seeds']} for "
                         f"{[rec[k] for k in KEY]} (different command, overlapping seeds or no per-seed runs)")
    runs = sorted(before + rec["runs"], key=lambda r: r["seed"])
    seeds = [r["seed"] for r in runs]
    first = old if min(old["seeds"]) < min(rec["seeds"]) else rec
    out = {**rec, **aggregate(runs), "seeds": seeds, "runs": runs, "env_earlier_seeds": old["env"],
           "command": first["command"].split("  (seeds")[0]
           + f"  (seeds {','.join(map(str, seeds))} via --set train.seed=S)"}
    if "C" in runs[0]:
        out["chosen_C"] = [r["C"] for r in runs]
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


def plot(curves: dict, title: str, path: Path, base_rate: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.8))
    for name, (rec, prec, ap) in curves.items():
        ax.step([0.0, *rec], [prec[0], *prec], where="post", label=f"{name} (PR-AUC {ap:.3f})")
    if base_rate is not None:
        ax.axhline(base_rate, color="grey", ls=":", lw=1, label=f"base rate {base_rate:.3f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _span(ns: list[int]) -> str:
    return f"{min(ns)}" if min(ns) == max(ns) else f"{min(ns)}-{max(ns)}"


def _sorted(rows: list[dict], ds: str) -> list[dict]:
    cats = GRID[ds]["categories"]
    return sorted(rows, key=lambda r: (cats.index(r["category"]) if r["category"] in cats else 99, r["window"],
                                       r.get("variant", ""), r["max_len"], r["shift"], MODELS.index(r["model"])))


def _cell(r: dict, k: str, std: bool = True) -> str:
    v = f"{r['metrics'][k]:.3f}"
    return v + (f" ± {r['metrics_std'][k]:.3f}" if std and len(r["seeds"]) > 1 else "")


def _model(r: dict) -> str:
    return r["model"] + (f" [{r['variant']}]" if r.get("variant") else "")


INTRO = {
    "deployment": "Every user active in the observation window before the test cut-off is scored, at the natural "
                  "base rate, with no selection by label (what `seqrec score-users` does); train / valid: all users "
                  "split 80 / 20 at the training cut-off, also at the natural rate. base rate = buyers / users in "
                  "test; P@k / R@k = precision / recall among the k% highest-scored users (ties: expected value "
                  "under random tie-breaking); lift@k = P@k / base rate. Mean over seeds (± std where several); "
                  "the test users are the same for every seed, so the ± is the model's seed-to-seed spread.",
    "article-1to1": "The reference article's samples: negatives show no sign of need (never bought the category in "
                    "the observation window; CDNOW: every non-buyer), 1:1 positives:negatives in every split, test "
                    "users disjoint from training, test cut-off after the training cut-off. precision / recall / F1 "
                    "at the threshold chosen on validation (max F1); AUC and PR-AUC threshold-free; P@top20% = "
                    "precision among the 20% highest-scored users. Mean over seeds (± std where several).",
}


def _deployment_table(rows: list[dict]) -> str:
    body = []
    for r in rows:
        m = r["metrics"]
        body.append([r["category"], f"{r['window']:g}", str(r["max_len"]), "yes" if r["shift"] else "no", _model(r),
                     f"{m['base_rate']:.3f}", _cell(r, "pr_auc"), _cell(r, "auc"),
                     *(_cell(r, f"precision@top{t}", t == "5%") for t in TOPS),
                     *(_cell(r, f"recall@top{t}", False) for t in TOPS),
                     *(f"{m[f'lift@top{t}']:.2f}" for t in TOPS),
                     _span(r["n_test"]), f"{statistics.fmean(r['n_train']):,.0f}", str(len(r["seeds"])),
                     f"{r['train_seconds']:.1f}"])
    return markdown_table(
        ["category", "window", "history", "shift", "model", "base rate", "PR-AUC", "AUC",
         *(f"P@{t}" for t in TOPS), *(f"R@{t}" for t in TOPS), *(f"lift@{t}" for t in TOPS),
         "users", "train n", "seeds", "train s"], body, ["l", "r", "r", "l", "l"] + ["r"] * 16)


def _article_table(rows: list[dict]) -> str:
    body = []
    for r in rows:
        body.append([r["category"], f"{r['window']:g}", str(r["max_len"]), "yes" if r["shift"] else "no", _model(r),
                     _cell(r, "precision"), _cell(r, "recall"), _cell(r, "f1"), _cell(r, "auc"), _cell(r, "pr_auc"),
                     f"{r['metrics']['precision@top20%']:.3f}", _span(r["n_test"]),
                     f"{statistics.fmean(r['n_train']):,.0f}", str(len(r["seeds"])), f"{r['train_seconds']:.1f}"])
    return markdown_table(
        ["category", "window", "history", "shift", "model", "precision", "recall", "F1", "AUC", "PR-AUC",
         "P@top20%", "test n", "train n", "seeds", "train s"], body, ["l", "r", "r", "l", "l"] + ["r"] * 10)


def render(records: list[dict]) -> str:
    lines = ["Generated by `benchmarks/purchase.py`. Two protocols (`src/seqrec/data/tasks/purchase.py`): "
             "`deployment` first (the headline), then `article-1to1`. Rule baselines (`bought_before`, `recency`, "
             "`frequency`, `rfm_logreg`; `src/seqrec/baselines/purchase_rules.py`) are in every table."]
    for protocol in PROTOCOLS:
        recs = [r for r in records if r.get("protocol", "article-1to1") == protocol]
        if not recs:
            continue
        lines += ["", f"## Protocol `{protocol}`", "", INTRO[protocol]]
        for ds in GRID:
            rows = _sorted([r for r in recs if r["dataset"] == ds], ds)
            if rows:
                table = _deployment_table if protocol == "deployment" else _article_table
                lines += ["", f"### {ds} ({protocol})", "", table(rows)]
    return "\n".join(lines) + "\n"


def run_group(args, ds: str, protocol: str, cat: str, window: float, max_len: int | None, shift: bool,
              seeds: list[int], models: list[str]) -> dict[str, tuple[list[dict], list[int], list | None]]:
    """Every model on the samples of each seed (built once per seed); per model: runs, seeds, seed-0 preds."""
    out = {m: ([], [], None) for m in models}
    for seed in seeds:
        over = overrides(protocol, cat, window, shift, max_len, seed, args.threads, args.set)
        try:
            task = build_task(models[0], ds, over)
        except SeqrecError as exc:  # e.g. a split without positives
            print(f"{protocol} {ds} {cat} seed {seed}: skipped: {exc}", flush=True)
            continue
        for model in models:
            t0 = time.perf_counter()
            m, preds = run_one(model, ds, over, None, task)
            runs, ran, preds0 = out[model]
            runs.append(m)
            ran.append(seed)
            out[model] = (runs, ran, preds0 or preds)
            t = m["test"]
            print(f"{protocol} {ds} {cat} w={m['window']:g} len={m['max_len']} shift={shift} {model} seed {seed}: "
                  f"pr_auc {t['pr_auc']:.3f} auc {t['auc']:.3f} P@5% {t['precision@top5%']:.3f} "
                  f"lift@5% {t['lift@top5%']:.2f} f1 {t['f1']:.3f} (test {t['n_samples']}, base rate "
                  f"{t['base_rate']:.3f}, train {m['counts']['train']['samples']}) "
                  f"{time.perf_counter() - t0:.1f}s", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--protocols", default=",".join(PROTOCOLS))
    ap.add_argument("--datasets", default=",".join(GRID))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--categories", default="", help="override the grid's categories (comma-separated)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--shift", choices=["both", "on", "off"], default="both")
    ap.add_argument("--max-len", default="", help="history lengths to run (default: each config's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--plot-on", default="instacart:household",
                    help="dataset:category whose deployment PR curves (seed 0, no shift) are drawn")
    ap.add_argument("--quick", action="store_true", help="instacart household, seed 0, no shift")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="extra config override for every run (an ablation); needs --variant")
    ap.add_argument("--variant", default="", help="label of the --set ablation (part of the record key)")
    ap.add_argument("--add-seeds", action="store_true",
                    help="combine these seeds with an existing record of the same key and command (else replaced)")
    args = ap.parse_args()
    if bool(args.set) != bool(args.variant):
        raise SystemExit("--set and --variant go together: name the ablation the overrides make")
    if args.quick:
        args.datasets, args.categories, args.seeds, args.shift = "instacart", "household", "0", "off"
    models = args.models.split(",")
    for name, values, known in (("protocol", args.protocols.split(","), PROTOCOLS), ("model", models, MODELS),
                                ("dataset", args.datasets.split(","), tuple(GRID))):
        bad = [v for v in values if v not in known]
        if bad:
            raise SystemExit(f"unknown {name}(s) {bad}; known: {', '.join(known)}")

    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    shifts = {"both": [False, True], "on": [True], "off": [False]}[args.shift]
    lens = [int(x) for x in args.max_len.split(",") if x] or [None]
    env = env_info()
    n_new, curves, plot_base = 0, {}, None
    plot_ds, plot_cat = args.plot_on.split(":", 1)
    for protocol in args.protocols.split(","):
        for ds in args.datasets.split(","):
            cats = args.categories.split(",") if args.categories else GRID[ds]["categories"]
            for cat, window, max_len, shift in itertools.product(cats, GRID[ds]["windows"], lens, shifts):
                results = run_group(args, ds, protocol, cat, window, max_len, shift, seeds, models)
                new = []
                for model, (runs, ran, preds0) in results.items():
                    if not runs:
                        print(f"{protocol} {ds} {cat} {model}: no seed could run", flush=True)
                        continue
                    first = runs[0]
                    rec = {"protocol": protocol, "dataset": ds, "category": cat, "window": first["window"],
                           "unit": first["unit"], "level": first["level"], "negatives": first["negatives"],
                           "model": model, "shift": shift, "shift_n": SHIFT if shift else [],
                           "max_len": first["max_len"], "variant": args.variant, "overrides": args.set,
                           "seeds": ran, **aggregate(runs), "runs": [per_seed(r, s) for r, s in zip(runs, ran, strict=True)],
                           "command": command(model, ds, overrides(protocol, cat, window, shift, max_len, seeds[0],
                                                                   args.threads, args.set))
                           + f"  (seeds {','.join(map(str, seeds))} via --set train.seed=S)",
                           "threads": args.threads, "env": env}
                    if "C" in first:  # the RFM logistic regression: the C validation picked, per seed
                        rec["chosen_C"] = [r["C"] for r in runs]
                    new.append(rec)
                    if (not args.variant and protocol == "deployment" and not shift and (ds, cat) == (plot_ds, plot_cat)
                            and model in ("cnn_lstm", "xgboost", "rfm_logreg", "recency", "bought_before")):
                        rec_, prec_ = pr_curve(preds0)
                        curves[model] = (rec_, prec_, runs[0]["test"]["pr_auc"])
                        plot_base = runs[0]["test"]["base_rate"]
                records = load_records_here(out / "purchase.json")
                if args.add_seeds:
                    old = {tuple(r.get(k) for k in KEY): r for r in records}
                    new = [add_seeds(old[k], r) if (k := tuple(r.get(k) for k in KEY)) in old else r for r in new]
                records = merge_records(records, new, KEY)
                write_json(out / "purchase.json", records)
                write_text(out / "purchase.md", render(records))
                n_new += len(new)
    if {"cnn_lstm", "xgboost"} <= curves.keys() and not args.no_plot:
        plot(curves, f"{plot_ds} / {plot_cat}, deployment protocol: test precision-recall (seed {seeds[0]})",
             out / "purchase_pr.png", plot_base)
        print(f"wrote {out / 'purchase_pr.png'}")
    print(f"{n_new} records merged into {out / 'purchase.json'}; tables in {out / 'purchase.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
