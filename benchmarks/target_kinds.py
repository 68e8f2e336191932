"""Where a session model wins or loses: test metrics split by what kind of item the target is.

    python benchmarks/target_kinds.py runs/bench/taobao/gru4rec-bpr-max runs/bench/taobao/item-knn

For each finished run directory (``seqrec train`` or ``benchmarks/session.py`` output), the
test split is evaluated once with the full-catalogue protocol and every prediction is put in
one of three groups: the target is the current item again (``same``), an item seen earlier in
the session (``earlier``), or an item new to the session (``new``). Prints, per run and
group, the number of predictions, Recall@20 and MRR@20. Writes nothing.

``--user-history`` (datasets with user ids) splits the ``new`` group by the user's own
training history (the run's training split): ``new/pair`` where the same user had the
current item and the target together in one training session, ``new/item`` where the
user had the target in training but not with the current item, ``new/other`` for the rest.
It shows whether a model's MRR comes from returning users, which a session-only model
cannot see.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import polars as pl

KINDS = ("same", "earlier", "new")
HISTORY_KINDS = ("new/pair", "new/item", "new/other")


def target_kinds(items: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(len(items),) kind index per input position (-1 where there is no next item)."""
    items = np.asarray(items, dtype=np.int64)
    n = len(items)
    kind = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return kind
    session = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    # first position of each (session, item): the target at p + 1 was seen earlier iff its
    # first position in the session is <= p
    _, first, inverse = np.unique(session * (int(items.max()) + 1) + items, return_index=True,
                                  return_inverse=True)
    first_pos = first[inverse.ravel()]
    p = np.flatnonzero(session[:-1] == session[1:])
    t = p + 1
    kind[p] = np.where(items[t] == items[p], 0, np.where(first_pos[t] <= p, 1, 2))
    return kind


def user_history_kinds(train: pl.DataFrame, events: pl.DataFrame, kind: np.ndarray) -> np.ndarray:
    """(len(events),) index into HISTORY_KINDS for the ``new`` positions of ``kind``, else -1.

    ``train`` and ``events`` are canonical tables with ``user_id``; ``events`` is in the
    row order the kinds were computed on (session-contiguous, as SessionArrays reads it).
    """
    for name, df in (("training", train), ("evaluated", events)):
        if "user_id" not in df.columns:
            raise SystemExit(f"--user-history needs user ids; the {name} table has no user_id column")
    q = (
        events.select("session_id", "user_id", cur="item_id")
        .with_columns(tgt=pl.col("cur").shift(-1).over("session_id"))
        .with_row_index("pos")
        .filter(pl.Series(kind == 2))
    )
    tr = train.select("session_id", "user_id", "item_id").unique()
    pairs = (
        tr.join(tr, on=["session_id", "user_id"], suffix="_2")
        .filter(pl.col("item_id") != pl.col("item_id_2"))
        .select("user_id", cur="item_id", tgt="item_id_2")
        .unique()
    )
    seen = tr.select("user_id", tgt="item_id").unique()
    in_pair = q.join(pairs, on=["user_id", "cur", "tgt"], how="semi")["pos"].to_numpy()
    in_seen = q.join(seen, on=["user_id", "tgt"], how="semi")["pos"].to_numpy()
    out = np.full(len(kind), -1, dtype=np.int64)
    out[q["pos"].to_numpy()] = 2
    out[in_seen] = 1
    out[in_pair] = 0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories")
    ap.add_argument("--split", default="test")
    ap.add_argument("-k", type=int, default=20)
    ap.add_argument("--user-history", action="store_true",
                    help="split new-to-session targets by the user's training history")
    args = ap.parse_args()

    from seqrec.data.events import SessionArrays
    from seqrec.data.registry import load_dataset
    from seqrec.evaluate.ranking import evaluate_sessions
    from seqrec.families.session import Run, scorer_for

    tables: dict[tuple[str, str], pl.DataFrame] = {}

    def table(dataset: str, split: str) -> pl.DataFrame:  # each split read once for all runs
        if (dataset, split) not in tables:
            tables[dataset, split] = load_dataset(dataset).get(split)
        return tables[dataset, split]

    for path in args.runs:
        run = Run(path)
        cfg = run.config
        scorer = scorer_for(run.model)
        if not hasattr(scorer, "begin"):  # HRNN: evaluated with the user's earlier sessions
            raise SystemExit(f"{path}: target_kinds scores session models position by position; "
                             f"{type(run.model).__name__} runs are evaluated with user context")
        events = table(cfg.data.dataset, args.split)
        arrays = SessionArrays.from_events(events, run.vocab)
        ranks = np.full(len(arrays.items), -1, dtype=np.int64)
        evaluate_sessions(scorer, arrays, ranks_out=ranks, batch_size=cfg.eval.batch_size)
        kind = target_kinds(arrays.items, arrays.offsets)
        done = ranks > 0
        hit = done & (ranks <= args.k)
        rr = np.where(hit, 1.0 / np.maximum(ranks, 1), 0.0)
        parts = [f"all n={int(done.sum())} R@{args.k}={hit[done].mean():.4f} MRR@{args.k}={rr[done].mean():.4f}"]
        groups = [(KINDS, kind)]
        if args.user_history:
            train = table(cfg.data.dataset, cfg.data.train_split)
            groups.append((HISTORY_KINDS, user_history_kinds(train, events, kind)))
        for names, group in groups:
            for i, name in enumerate(names):
                m = done & (group == i)
                if m.any():
                    parts.append(f"{name} n={int(m.sum())} R={hit[m].mean():.4f} MRR={rr[m].mean():.4f}")
        print(f"{cfg.data.dataset} {path}: " + " | ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
