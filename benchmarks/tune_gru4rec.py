"""Random search of GRU4Rec hyperparameters on the validation split (never on test).

    python benchmarks/tune_gru4rec.py --dataset taobao --loss bpr-max --trials 20
    python benchmarks/tune_gru4rec.py --dataset taobao --loss cross-entropy --trials 20 --seed 1
    python benchmarks/tune_gru4rec.py --dataset taobao --loss cross-entropy --dwell --local 2 --trials 12

Every trial trains on the dataset's ``train`` split (training data minus the
validation part carved the same way as the test part) and is scored on
``valid`` by MRR@20 + Recall@20 (``--objective mrr`` or ``recall``: one of them alone;
full-catalogue ranking). The starting point is
``configs/gru4rec_<dataset>_<loss>.toml``; each trial draws the values below (``--local K``:
only K of them, the others stay at the config's values; ``--dwell`` adds dwell-time item
repetition, ``data.dwell_bucket``, to the space, for data with real timestamps).
Trials are appended to ``benchmarks/results/tuning/tune_<dataset>_<loss>.json``
(atomic writes), the best is printed with the ``--set`` overrides that
reproduce it; copy them into the config to adopt them. (Trials recorded before the loss
settings moved to the ``[loss]`` section name them ``model.n_sample``, ``model.sample_alpha``,
``model.bpreg``, ``model.logq``: today ``loss.*``.)
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, write_text

SPACE = {
    "model.layers": [[64], [100], [224], [480]],
    "model.final_act": ["linear", "elu-0.5", "elu-1", "tanh"],
    "model.dropout_embed": [0.0, 0.2, 0.5],
    "model.dropout_hidden": [0.0, 0.1, 0.3, 0.5],
    "loss.n_sample": [0, 512, 2048],
    "loss.sample_alpha": [0.0, 0.25, 0.5, 0.75, 1.0],
    "train.batch_size": [48, 80, 128],
    "train.lr": [0.02, 0.05, 0.1, 0.2],
    "train.momentum": [0.0, 0.2, 0.4],
    "train.epochs": [5, 10, 15],
}
DWELL_SPACE = {"data.dwell_bucket": [0.0, 15.0, 30.0, 60.0, 120.0]}
LOSS_SPACE = {
    "bpr-max": {"loss.bpreg": [0.0, 0.5, 1.0, 2.0]},
    "cross-entropy": {"loss.logq": [0.0, 0.5, 1.0]},
}


def search_space(loss: str, dwell: bool, sets: list[str]) -> dict:
    """The values each trial draws from; a key fixed with ``--set KEY=VALUE`` is held, not searched."""
    space = {**SPACE, **LOSS_SPACE[loss], **(DWELL_SPACE if dwell else {})}
    fixed = {kv.split("=", 1)[0].strip() for kv in sets}
    return {k: v for k, v in space.items() if k not in fixed}


def _objective(name: str, valid: dict) -> float:
    if name == "mrr":
        return valid["mrr@20"]
    if name == "recall":
        return valid["recall@20"]
    return valid["recall@20"] + valid["mrr@20"]


def _toml(value) -> str:
    return json.dumps(value)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--loss", default="bpr-max", choices=sorted(LOSS_SPACE))
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--local", type=int, default=0, help="redraw only K parameters per trial (0 = all)")
    ap.add_argument("--dwell", action="store_true", help="also search data.dwell_bucket")
    ap.add_argument("--objective", default="recall+mrr", choices=["recall+mrr", "mrr", "recall"],
                    help="what 'best' means: valid Recall@20 + MRR@20 (default), MRR@20 or Recall@20")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="fixed override of the starting config for every trial (recorded with it; "
                         "a searched key given here is held at this value)")
    args = ap.parse_args()

    import torch

    from seqrec.config import load_run_config
    from seqrec.experiment import train_run

    torch.set_num_threads(args.threads)
    base = ROOT / f"configs/gru4rec_{args.dataset}_{args.loss}.toml"
    out = Path(args.out or ROOT / f"benchmarks/results/tuning/tune_{args.dataset}_{args.loss}.json")
    trials = json.loads(out.read_text()) if out.exists() else []
    rng = random.Random(args.seed)
    space = search_space(args.loss, args.dwell, args.set)
    for i in range(args.trials):
        keys = rng.sample(sorted(space), args.local) if args.local else sorted(space)
        pick = {k: rng.choice(space[k]) for k in keys}
        overrides = ['data.train_split="train"', "train.progress=false", "train.patience=0",
                     f"train.threads={args.threads}", *args.set] + [f"{k}={_toml(v)}" for k, v in pick.items()]
        cfg = load_run_config(base, overrides)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                m = train_run(cfg, Path(tmp) / "run", progress=False)
            except Exception as exc:  # a diverged trial is a result too
                trials.append({"params": pick, "error": str(exc)})
                print(f"[{i + 1}/{args.trials}] failed: {exc}", flush=True)
                continue
        v = m["valid"]
        rec = {"params": pick, "fixed": args.set, "valid_recall@20": v["recall@20"], "valid_mrr@20": v["mrr@20"],
               "score": _objective(args.objective, v), "objective": args.objective, "seconds": time.perf_counter() - t0,
               "n_valid_events": v["n_events"], "epochs_run": m["epochs"], "best_epoch": m["best_epoch"]}
        trials.append(rec)
        write_text(out, json.dumps(trials, indent=1) + "\n")
        print(f"[{i + 1}/{args.trials}] valid recall@20 {v['recall@20']:.4f} mrr@20 {v['mrr@20']:.4f} "
              f"(epochs {m['epochs']}, best {m['best_epoch']}; {rec['seconds']:.0f} s) {pick}", flush=True)
    done = [t for t in trials if "score" in t]
    if not done:
        return 1
    best = max(done, key=lambda t: _objective(args.objective, {"recall@20": t["valid_recall@20"],
                                                               "mrr@20": t["valid_mrr@20"]}))
    print(f"best of {len(done)}: valid recall@20 {best['valid_recall@20']:.4f} "
          f"mrr@20 {best['valid_mrr@20']:.4f}")
    print("  --set " + " --set ".join([*best.get("fixed", []), *(f"{k}={_toml(v)}" for k, v in best["params"].items())]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
