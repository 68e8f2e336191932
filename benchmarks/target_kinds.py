"""Where a session model wins or loses: test metrics split by what kind of item the target is.

    python benchmarks/target_kinds.py runs/bench/taobao/gru4rec-bpr-max runs/bench/taobao/item-knn

For each finished run directory (``seqrec train`` or ``benchmarks/session.py`` output), the
test split is evaluated once with the full-catalogue protocol and every prediction is put in
one of three groups: the target is the current item again (``same``), an item seen earlier in
the session (``earlier``), or an item new to the session (``new``). Prints, per run and
group, the number of predictions, Recall@20 and MRR@20. Writes nothing.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

KINDS = ("same", "earlier", "new")


def target_kinds(items: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(len(items),) kind index per input position (-1 where there is no next item)."""
    kind = np.full(len(items), -1, dtype=np.int64)
    for s in range(len(offsets) - 1):
        a, b = int(offsets[s]), int(offsets[s + 1])
        seen: set = set()
        for p in range(a, b - 1):  # diagnostics, once per test event: a plain loop is fine
            seen.add(int(items[p]))
            t = int(items[p + 1])
            kind[p] = 0 if t == items[p] else (1 if t in seen else 2)
    return kind


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories")
    ap.add_argument("--split", default="test")
    ap.add_argument("-k", type=int, default=20)
    args = ap.parse_args()

    from seqrec.data.events import SessionArrays
    from seqrec.data.registry import load_dataset
    from seqrec.evaluate.ranking import evaluate_sessions
    from seqrec.experiment import Run, scorer_for

    for path in args.runs:
        run = Run(path)
        cfg = run.config
        arrays = SessionArrays.from_events(load_dataset(cfg.data.dataset).get(args.split), run.vocab)
        ranks = np.full(len(arrays.items), -1, dtype=np.int64)
        evaluate_sessions(scorer_for(run.model), arrays, ranks_out=ranks, batch_size=cfg.eval.batch_size)
        kind = target_kinds(arrays.items, arrays.offsets)
        done = ranks > 0
        hit = done & (ranks <= args.k)
        rr = np.where(hit, 1.0 / np.maximum(ranks, 1), 0.0)
        parts = [f"all n={int(done.sum())} R@{args.k}={hit[done].mean():.4f} MRR@{args.k}={rr[done].mean():.4f}"]
        for i, name in enumerate(KINDS):
            m = done & (kind == i)
            if m.any():
                parts.append(f"{name} n={int(m.sum())} R={hit[m].mean():.4f} MRR={rr[m].mean():.4f}")
        print(f"{cfg.data.dataset} {path}: " + " | ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
