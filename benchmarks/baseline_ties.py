"""How much a baseline's metrics depend on how its tied scores are broken.

    python benchmarks/baseline_ties.py runs/bench/taobao/item-knn runs/bench/taobao/sknn --seeds 5

For each saved POP / item-kNN / SKNN run directory the test split is evaluated with
the full-catalogue protocol on

* the raw scores (``tiebreak = "none"``): optimistic ranks (1 + items strictly
  higher), pessimistic ranks (+ items tied with the target), and the expectation
  when ties are broken uniformly at random, computed exactly from those two ranks
  (the target is equally likely at every rank from the optimistic to the
  pessimistic one);
* the strict order seqrec uses by default (``tiebreak = "pop"``: popularity, then a
  fixed random permutation) for ``tiebreak_seed`` = 0 .. ``--seeds`` - 1.

Prints Recall@K / MRR@K per line. Writes nothing.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def expected_metrics(lo: np.ndarray, hi: np.ndarray, k: int) -> tuple[float, float]:
    """Mean Recall@k and MRR@k when each target's rank is uniform on [lo, hi] (1-based)."""
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    n = (hi - lo + 1).astype(np.float64)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, k + 1))])  # H[j] = sum_{r<=j} 1/r
    top = np.minimum(hi, k)
    inside = lo <= k
    recall = np.where(inside, (top - lo + 1) / n, 0.0)
    bottom = np.clip(lo - 1, 0, k)
    mrr = np.where(inside, (harmonic[np.clip(top, 0, k)] - harmonic[bottom]) / n, 0.0)
    return float(recall.mean()), float(mrr.mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="POP / item-kNN / SKNN run directories")
    ap.add_argument("--split", default="test")
    ap.add_argument("-k", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=5, help="tiebreak_seed values 0 .. N-1")
    args = ap.parse_args()

    from seqrec.baselines.base import SessionBaseline
    from seqrec.data.events import SessionArrays
    from seqrec.data.registry import load_dataset
    from seqrec.evaluate.ranking import evaluate_sessions
    from seqrec.families.session import Run

    for path in args.runs:
        run = Run(path)
        if not isinstance(run.model, SessionBaseline):
            raise SystemExit(f"{path}: not a POP / item-kNN / SKNN run")
        arrays = SessionArrays.from_events(load_dataset(run.config.data.dataset).get(args.split), run.vocab)
        bs = run.config.eval.batch_size

        def ranks(model, ties: str, arrays=arrays, bs=bs) -> np.ndarray:
            out = np.full(len(arrays.items), -1, dtype=np.int64)
            evaluate_sessions(model, arrays, ranks_out=out, batch_size=bs, ties=ties)
            return out[out > 0]

        def metrics(r: np.ndarray) -> str:
            hit = r <= args.k
            return f"{hit.mean():.4f} / {np.where(hit, 1.0 / r, 0.0).mean():.4f}"

        raw = run.model.reconfigured(tiebreak="none")
        lo, hi = ranks(raw, "optimistic"), ranks(raw, "pessimistic")
        exp_r, exp_m = expected_metrics(lo, hi, args.k)
        print(f"{run.config.data.dataset} {path} (Recall@{args.k} / MRR@{args.k}, n={len(lo)})")
        print(f"  raw scores: optimistic {metrics(lo)}, pessimistic {metrics(hi)}, "
              f"expected under random tie-breaking {exp_r:.4f} / {exp_m:.4f}")
        for seed in range(args.seeds):
            strict = run.model.reconfigured(tiebreak="pop", tiebreak_seed=seed)
            r_opt, r_pes = ranks(strict, "optimistic"), ranks(strict, "pessimistic")
            same = "equal" if np.array_equal(r_opt, r_pes) else "DIFFER"
            print(f"  strict order, tiebreak_seed {seed}: {metrics(r_opt)} "
                  f"(optimistic and pessimistic ranks {same})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
