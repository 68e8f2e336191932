"""Full-ranking evaluation speed: every Gowalla test user against every item (issue #22 must-show < 10 s).

Times :func:`seqrec.evaluate.retrieval.evaluate_ranking` over all 29,858 test users x 40,981 items
(scores, train-item exclusion, top-50, Recall / NDCG / HitRate @ 10/20/50) for a dot-product scorer:
the user and item vectors of a trained run (``--run``) or random vectors of ``--dim`` (the cost does
not depend on the values). Repeats ``--repeats`` times and prints each wall time and the median.

    python benchmarks/retrieval_eval_speed.py [--run RUN] [--threads 2] [--batch-size 1024]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from seqrec.data.registry import get_dataset, require_files
from seqrec.evaluate.retrieval import evaluate_ranking
from seqrec.io import atomic_write_text
from seqrec.threads import configure_threads

OUT = Path(__file__).resolve().parent / "results" / "retrieval_eval_speed.json"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="gowalla")
    ap.add_argument("--run", default=None, help="a trained dot-product retrieval run (default: random vectors)")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    configure_threads(args.threads)
    entry = get_dataset(args.dataset, "retrieval")
    task = entry.recipes["retrieval"].build(args.dataset, require_files(entry), train_split="train_full")
    split = task.test
    if args.run:
        from seqrec.families.retrieval import RetrievalRun, make_scorer

        run = RetrievalRun(args.run)
        run.model.eval()
        score = make_scorer(run.model, task, split, run.config)  # what `seqrec evaluate` runs
    else:
        g = torch.Generator().manual_seed(0)
        users = torch.randn(task.n_users, args.dim, generator=g)
        items = torch.randn(task.n_items + 1, args.dim, generator=g)
        buf = torch.empty(args.batch_size, task.n_items + 1)  # reused, as make_scorer does

        def score(rows):
            return torch.mm(users[torch.from_numpy(split.users[rows])], items.T, out=buf[:len(rows)])

    walls = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        m = evaluate_ranking(score, split, batch_size=args.batch_size)
        walls.append(time.perf_counter() - t0)
        print(f"{args.dataset}: {m['n_users']:,} users x {task.n_items:,} items in {walls[-1]:.2f} s "
              f"(recall@20 {m['recall@20']:.4f})")
    rec = {"dataset": args.dataset, "users": m["n_users"], "items": task.n_items, "threads": args.threads,
           "batch_size": args.batch_size, "scorer": args.run or f"random dim {args.dim}",
           "seconds": walls, "median_seconds": statistics.median(walls),
           "cpu": _cpu(), "command": "python benchmarks/retrieval_eval_speed.py"
           + (f" --run {args.run}" if args.run else "")}
    print(f"median {rec['median_seconds']:.2f} s")
    atomic_write_text(args.out, json.dumps(rec, indent=2) + "\n")
    return rec


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
