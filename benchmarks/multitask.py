"""Multi-task peer benchmark (issue #24): seqrec's Shared-Bottom, MMoE, PLE and ESMM vs torch-rechub 0.9.0
on census-income (MMoE paper task group 1: income > 50K, never married).

    python benchmarks/multitask.py                          # 4 models x seeds 0 1 2, + the "+bn" rows
    python benchmarks/multitask.py --models mmoe --seeds 0 --no-bn --max-epochs 5

Per seed the data is ``census_task(..., seed=S)`` (a seeded 60/20/20 split, so a seed varies the split
and the initialisation); both libraries get exactly those arrays (see ``_rechub_mtl_peer.py``). Per
(seed, model) the runs are adjacent: seqrec, torch-rechub, then seqrec with ``model.batch_norm=true``
(``<model>+bn``, torch-rechub's MLP architecture). Settings: ``configs/<model>_census_income.toml``
(torch-rechub's census example: Adam lr 1e-3, weight decay 1e-4, batch 1024) for both libraries; the
epoch is chosen on validation for both the same way: up to ``--max-epochs`` epochs, early stop on the
validation mean AUC over the two tasks with ``--patience``, the best epoch's weights restored; then the
test split is scored once. Speed: both clocks wrap one call per epoch (seqrec ``MultiTaskTrainer._epoch``,
torch-rechub ``MTLTrainer.train_one_epoch``): batch assembly + forward + backward + optimiser step over
the training split, no validation; same torch thread count (``--threads``) for both, one process.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _common import (
    ROOT,
    env_info,
    fmt_int,
    fmt_metric,
    load_records,
    markdown_table,
    merge_records,
    write_json,
    write_text,
)

DATASET = "census_income"
MODELS = ("shared_bottom", "mmoe", "ple", "esmm")
LIB, PEER = "seqrec", "torch-rechub"
KEY = ("dataset", "model", "task", "library", "day")  # day: the daily-update records (benchmarks/dupn_incremental.py)
RESULTS = ROOT / "benchmarks" / "results"

FOOTNOTES = [
    "Same rows, splits and integer codes for both libraries (seqrec's `census_task`, seeded 60/20/20 "
    "split of the official test file, codes by training frequency, dense columns min-max scaled on "
    "train); both scored by seqrec's `auc` on their own outputs (torch-rechub's: probabilities).",
    "BatchNorm: torch-rechub's `MLP` puts BatchNorm1d after every hidden Linear (experts, bottom, towers) "
    "and its MMOE/PLE gates are `MLP(dims=[n_experts], activation='softmax')`, i.e. Linear -> "
    "BatchNorm1d -> softmax. seqrec follows the papers (no BatchNorm); the `<model>+bn` rows add "
    "BatchNorm1d after every hidden Linear, but seqrec's gates stay Linear -> softmax (no BN in gates).",
    "Loss: torch-rechub's MTLTrainer takes the *mean* of the task BCEs (Shared-Bottom, MMOE, PLE); seqrec "
    "sums them. With Adam this mostly rescales nothing but the weight decay's relative strength (1e-4 "
    "on both). ESMM: both sum BCE(pCTR, never married) + BCE(pCTR*pCVR, both); torch-rechub on "
    "probabilities (`BCELoss`), seqrec in log space.",
    "Init: both draw embeddings from N(0, 1e-4) and use PyTorch's default Linear init; seqrec's "
    "tables keep row 0 (padding) at zero with `padding_idx=0`, torch-rechub's have no padding row "
    "(code 0 never occurs in this data, so it is inert). Same seed, different draws.",
    "ESMM inputs: torch-rechub splits the sparse features into 'user' (det_ind_code, det_occ_code, "
    "race, education, sex) and 'item' (the other 27) and concatenates user then item embeddings; "
    "seqrec concatenates all 32 in schema order. Both feed the concatenation (32 x 16) to both towers "
    "and neither uses the dense columns, so this is only a permutation of the towers' input weights.",
    "Dense input: seqrec feeds one 7-wide `dense` column; torch-rechub gets the same values as 7 "
    "DenseFeature columns (its census example's layout) and concatenates them *before* the sparse "
    "embeddings (seqrec: after). A permutation of the first layer's inputs.",
    "Epoch choice: MTLTrainer.fit stops early on one task's AUC (`earlystop_taskid`), so torch-rechub "
    "is trained with its own `train_one_epoch` inside our loop that applies seqrec's rule (validation "
    "mean AUC of the two tasks, strictly better, patience, best weights restored).",
    "Batches: seqrec slices a seeded permutation of the numpy columns per batch; torch-rechub's "
    "DataLoader collates one dict per row (its `TorchDataset`) — part of what the speed ratio measures. "
    "torch-rechub's trainer also runs a (zero-coefficient) `RegularizationLoss` every step and a tqdm bar.",
    "MMoE/PLE gates: seqrec's are Linear with bias -> softmax over experts, as the authors' Keras layer; "
    "torch-rechub's add BatchNorm (above).",
    "peak_rss_mb is the benchmark process's peak so far (both libraries share one process), not a "
    "per-run figure.",
]


def config_path(model: str) -> Path:
    return ROOT / "configs" / f"{model}_{DATASET}.toml"


def load_data(seed: int):
    from seqrec.data.registry import get_dataset, require_files
    from seqrec.data.tasks.multitask import census_task

    entry = get_dataset(DATASET, "multitask")
    return census_task(DATASET, require_files(entry), seed=seed)


def run_config(model: str, seed: int, args, bn: bool):
    from seqrec.config import load_run_config

    ov = [f"train.epochs={args.max_epochs}", f"train.patience={args.patience}", f"train.seed={seed}",
          "train.progress=false", f"train.threads={args.threads}"]
    if bn:
        ov.append("model.batch_norm=true")
    return load_run_config(config_path(model), ov)


def train_eval_seqrec(model: str, data, seed: int, args, bn: bool) -> dict:
    """seqrec's run: build, fit with early stopping on validation (best epoch restored), score."""
    import resource

    import torch

    from seqrec.families.multitask import build_model
    from seqrec.train.multitask_trainer import MultiTaskTrainer, evaluate_multitask

    cfg = run_config(model, seed, args, bn)
    torch.manual_seed(seed)
    np.random.seed(seed)
    net = build_model(cfg, data.schema, data.tasks)
    trainer = MultiTaskTrainer(net, cfg, data.train)
    epoch_seconds: list[float] = []
    inner = trainer._epoch

    def timed(e):  # the same clock boundary as the peer's: one call per epoch
        t0 = time.perf_counter()
        out = inner(e)
        epoch_seconds.append(time.perf_counter() - t0)
        return out

    trainer._epoch = timed
    st = trainer.fit(data.valid)
    valid = evaluate_multitask(net, data.valid, cfg.eval.batch_size)
    test = evaluate_multitask(net, data.test, cfg.eval.batch_size)
    train_s = sum(epoch_seconds)
    n = len(data.train[f"label_{data.tasks[0]}"])
    return {
        "library": LIB, "valid": {t: valid[t]["auc"] for t in data.tasks} | {"mean_auc": valid["mean_auc"]},
        "test": {t: test[t]["auc"] for t in data.tasks} | {"mean_auc": test["mean_auc"]},
        "epochs_chosen": st.best_epoch, "epochs_run": st.epoch, "train_seconds": train_s,
        "epoch_seconds": epoch_seconds, "train_samples_per_s": n * len(epoch_seconds) / train_s,
        "train_samples_per_epoch": n, "history": st.history,
        "n_params": sum(p.numel() for p in net.parameters()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "settings": {"lr": cfg.train.lr, "batch_size": cfg.train.batch_size,
                     "weight_decay": cfg.model.weight_decay, "batch_norm": cfg.model.batch_norm},
    }


def one_line(model: str, lib: str, seed: int, r: dict, tasks) -> str:
    aucs = " ".join(f"{t}={r['test'][t]:.4f}" for t in tasks)
    return (f"  seed {seed} {model:<18} {lib:<13} epoch {r['epochs_chosen']:>2}/{r['epochs_run']:<2} "
            f"valid mean {r['valid']['mean_auc']:.4f}  test {aucs}  {r['train_samples_per_s']:,.0f} samples/s")


def records(runs: dict, tasks, seeds, command: str, env: dict, settings: dict) -> list[dict]:
    """One record per (model, task, library) from runs[(model_row, library)] = [per-seed results]."""
    out = []
    for (row, lib), rs in runs.items():
        sps = [r["train_samples_per_s"] for r in rs]
        ratio = None
        if lib == LIB and (row.removesuffix("+bn"), PEER) in runs:
            peer = runs[(row.removesuffix("+bn"), PEER)]
            ratio = [a / b for a, b in zip(sps, [p["train_samples_per_s"] for p in peer], strict=True)]
        for t in tasks:
            per = [r["test"][t] for r in rs]
            rec = {
                "dataset": DATASET, "model": row, "task": t, "library": lib,
                "metrics": {"auc": float(np.mean(per)), "auc_std": float(np.std(per, ddof=1)) if len(per) > 1 else 0.0,
                            "auc_per_seed": per, "valid_auc": float(np.mean([r["valid"][t] for r in rs])),
                            "valid_auc_per_seed": [r["valid"][t] for r in rs],
                            "valid_mean_auc_per_seed": [r["valid"]["mean_auc"] for r in rs]},
                "seeds": list(seeds),
                "epochs_chosen": [r["epochs_chosen"] for r in rs], "epochs_run": [r["epochs_run"] for r in rs],
                "train_samples_per_s": float(np.mean(sps)), "train_samples_per_s_per_seed": sps,
                "seconds_per_epoch": float(np.mean([np.mean(r["epoch_seconds"]) for r in rs])),
                "n_params": rs[0]["n_params"], "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                "settings": settings | {"batch_norm": row.endswith("+bn") or lib == PEER},
                "command": command, "env": env,
            }
            if lib == PEER:
                rec |= {"library_version": rs[0]["library_version"], "peer_model": rs[0]["peer_model"]}
            if ratio is not None:
                rec |= {"speed_ratio_per_seed": ratio, "speed_ratio_median": statistics.median(ratio)}
            out.append(rec)
    return out


def pm(rec: dict | None) -> str:
    if rec is None:
        return "–"
    m = rec["metrics"]
    return f"{fmt_metric(m['auc'])} ± {m['auc_std']:.4f}"


def table(recs: list[dict], models, tasks) -> str:
    by = {(r["model"], r["task"], r["library"]): r for r in recs}
    rows = []
    for m in models:
        for t in tasks:
            ours, bn, peer = by.get((m, t, LIB)), by.get((f"{m}+bn", t, LIB)), by.get((m, t, PEER))
            ratio = ours.get("speed_ratio_median") if ours else None
            ep = "/".join(str(round(float(np.mean(r["epochs_chosen"])), 1)) if r else "–" for r in (ours, bn, peer))
            rows.append([m, t, pm(ours), pm(bn), pm(peer), ep,
                         fmt_int(ours["train_samples_per_s"]) if ours else "–",
                         fmt_int(peer["train_samples_per_s"]) if peer else "–",
                         f"{ratio:.2f}x" if ratio else "–"])
    return markdown_table(["model", "task", "seqrec AUC", "seqrec +bn AUC", "torch-rechub AUC",
                           "epochs (ours/+bn/peer)", "seqrec samples/s", "rechub samples/s",
                           "speed ratio (median)"], rows, ["l", "l"] + ["r"] * 7)


def paper_check(recs: list[dict], tasks) -> list[str]:
    """MMoE vs Shared-Bottom per task, per library (the MMoE paper's census comparison)."""
    by = {(r["model"], r["task"], r["library"]): r for r in recs}
    lines = []
    for row, lib in (("{}", LIB), ("{}+bn", LIB), ("{}", PEER)):
        for t in tasks:
            a, b = by.get((row.format("mmoe"), t, lib)), by.get((row.format("shared_bottom"), t, lib))
            if a is None or b is None:
                continue
            pa, pb = a["metrics"]["auc_per_seed"], b["metrics"]["auc_per_seed"]
            wins = sum(x > y for x, y in zip(pa, pb, strict=True))
            lines.append(f"- {lib} {row.format('mmoe')} vs {row.format('shared_bottom')}, {t}: "
                         f"{a['metrics']['auc']:.4f} vs {b['metrics']['auc']:.4f} "
                         f"(diff {a['metrics']['auc'] - b['metrics']['auc']:+.4f}; MMoE higher in {wins}/{len(pa)} seeds)")
    return lines


def logreg_baseline(data) -> dict:
    """The sceptic's baseline: one logistic regression per task on one-hot categorical columns plus
    the 7 scaled continuous ones (scikit-learn, lbfgs); C chosen on validation AUC among 0.1, 1, 10, 100."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    from seqrec.evaluate.classification import auc

    sparse = [f.name for f in data.schema.of_kind("sparse")]
    offsets = np.cumsum([0] + [data.schema.table(n).rows for n in sparse])

    def design(cols):
        n = len(cols["dense"])
        idx = np.stack([cols[c] + offsets[i] for i, c in enumerate(sparse)], 1)  # (N, F)
        onehot = sp.csr_matrix((np.ones(idx.size, np.float32), (np.repeat(np.arange(n), len(sparse)), idx.ravel())),
                               shape=(n, int(offsets[-1])))
        return sp.hstack([onehot, sp.csr_matrix(cols["dense"])]).tocsr()

    x_tr, x_va, x_te = design(data.train), design(data.valid), design(data.test)
    out = {}
    for t in data.tasks:
        y = f"label_{t}"
        best = None
        for c in (0.1, 1.0, 10.0, 100.0):
            m = LogisticRegression(C=c, max_iter=1000).fit(x_tr, data.train[y])
            v = auc(data.valid[y], m.decision_function(x_va))
            if best is None or v > best[0]:
                best = (v, c, m)
        v, c, m = best
        out[t] = {"valid_auc": v, "C": c, "auc": auc(data.test[y], m.decision_function(x_te))}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--max-epochs", type=int, default=50)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-bn", action="store_true", help="skip the seqrec <model>+bn rows")
    p.add_argument("--no-peer", action="store_true", help="seqrec rows only")
    p.add_argument("--no-logreg", action="store_true", help="skip the logistic-regression baseline")
    p.add_argument("--logreg-only", action="store_true",
                   help="only the logistic-regression rows (the other records of --out are kept)")
    p.add_argument("--out", default=str(RESULTS / "multitask.json"))
    args = p.parse_args(argv)

    import torch
    from _rechub_mtl_peer import rechub_mtl_available, train_eval_rechub_mtl

    torch.set_num_threads(args.threads)
    why = None if args.no_peer else rechub_mtl_available()
    if why:
        print(f"torch-rechub rows skipped: {why}", file=sys.stderr)
    command = "python benchmarks/multitask.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    env = env_info() | {"torch_threads": torch.get_num_threads()}
    runs: dict[tuple[str, str], list[dict]] = {}
    tasks, settings = None, None
    logreg: list[dict] = []
    t_all = time.perf_counter()
    for seed in args.seeds:
        data = load_data(seed)
        tasks = data.tasks
        print(f"seed {seed}: {data.summary()}", flush=True)
        if not args.no_logreg:
            lr_res = logreg_baseline(data)
            logreg.append(lr_res)
            print(f"  seed {seed} logreg             sklearn       test " +
                  " ".join(f"{t}={lr_res[t]['auc']:.4f} (C={lr_res[t]['C']:g})" for t in data.tasks), flush=True)
        for m in [] if args.logreg_only else args.models:
            r = train_eval_seqrec(m, data, seed, args, bn=False)
            settings = {"max_epochs": args.max_epochs, "patience": args.patience, "threads": args.threads,
                        **{k: v for k, v in r["settings"].items() if k != "batch_norm"}}
            runs.setdefault((m, LIB), []).append(r)
            print(one_line(m, LIB, seed, r, tasks), flush=True)
            if not args.no_peer and not why:
                s = r["settings"]
                r = train_eval_rechub_mtl(m, data, epochs=args.max_epochs, patience=args.patience,
                                          batch_size=s["batch_size"], lr=s["lr"], weight_decay=s["weight_decay"],
                                          seed=seed)
                runs.setdefault((m, PEER), []).append(r)
                print(one_line(m, PEER, seed, r, tasks), flush=True)
            if not args.no_bn:
                r = train_eval_seqrec(m, data, seed, args, bn=True)
                runs.setdefault((f"{m}+bn", LIB), []).append(r)
                print(one_line(f"{m}+bn", LIB, seed, r, tasks), flush=True)
    recs = records(runs, tasks, args.seeds, command, env, settings)
    for t in tasks if logreg else ():
        a = [r[t]["auc"] for r in logreg]
        recs.append({"dataset": DATASET, "model": "logreg", "task": t, "library": "sklearn",
                     "metrics": {"auc": float(np.mean(a)), "auc_std": float(np.std(a)), "auc_per_seed": a,
                                 "valid_auc": float(np.mean([r[t]["valid_auc"] for r in logreg]))},
                     "C_per_seed": [r[t]["C"] for r in logreg], "train_samples_per_s": None,
                     "peak_rss_mb": None, "command": command, "env": env})
    base = {r["task"]: r for r in recs if r["model"] == "logreg"}
    base_lines = [f"- logreg (one-hot categoricals + scaled continuous, one model per task, C on validation), "
                  f"{t}: {base[t]['metrics']['auc']:.4f} ± {base[t]['metrics']['auc_std']:.4f}" for t in base]
    out = Path(args.out)
    all_recs = merge_records(load_records(out), recs, KEY)
    write_json(out, all_recs)
    models_rows = [m for m in MODELS if any(r["model"] == m for r in all_recs if r["dataset"] == DATASET)]
    tab = table([r for r in all_recs if r["dataset"] == DATASET], models_rows, tasks)
    check = paper_check([r for r in all_recs if r["dataset"] == DATASET], tasks)
    md = [f"# Multi-task models on census-income: seqrec vs torch-rechub {recs[-1].get('library_version', '0.9.0')}",
          "", "Generated by " + ", ".join(f"`{c}`" for c in sorted({r["command"] for r in all_recs
                                                                     if r["dataset"] == DATASET}))
          + f" (last run {env['date']}, torch {env['torch_version']}, {env['torch_threads']} "
          f"thread(s), {env['cpu_count']} CPUs). Test AUC mean ± std over seeds {args.seeds} (each seed: its own "
          "60/20/20 split and initialisation); epochs chosen on validation (mean AUC of the two tasks, "
          f"patience {args.patience}, at most {args.max_epochs}), best epoch restored, test scored once.",
          "", tab, "",
          "Speed ratio: seqrec (no BN) train samples/s over torch-rechub's, per seed from adjacent runs in "
          "this invocation, median shown (per seed in the JSON). Clock: one call per epoch (seqrec "
          "`MultiTaskTrainer._epoch`, torch-rechub `MTLTrainer.train_one_epoch`): batch assembly + forward + "
          "backward + optimiser step over the 60% training split; validation not timed.", "",
          "The sceptic's baseline (test AUC over the same seeds and splits):", "", *base_lines, "",
          "Paper check (MMoE paper, census group 1: MMoE at least as good as Shared-Bottom on both tasks):", "",
          *check, "", "Differences that remain between the two implementations:", "",
          *[f"{i}. {n}" for i, n in enumerate(FOOTNOTES, 1)], ""]
    write_text(out.with_suffix(".md"), "\n".join(md))
    print()
    print(tab)
    print()
    print("\n".join(check))
    print(f"\nwrote {out} and {out.with_suffix('.md')} in {time.perf_counter() - t_all:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
