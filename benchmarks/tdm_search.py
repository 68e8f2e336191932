"""TDM: beam search down the tree against brute force over every leaf, for one trained run.

The same trained scorer is evaluated two ways on the same users (``tdm`` = the run's beam search,
``tdm-bruteforce`` = every leaf scored, the ``model.search = "bruteforce"`` switch), so the tree's
cost and its loss of recall are visible:

* full-ranking Recall / NDCG / HitRate @ 10, 20, 50 of both (the protocol's exclusions applied
  after scoring, as for every retrieval model), and the ratio beam / brute force;
* (user, node) pairs scored per user, and that as a fraction of the catalogue;
* latency per user: one user per call (a request), median and mean over ``--latency-users``
  users, torch on one thread.

Brute force costs ``n_items`` scorer calls per user; ``--users N`` evaluates both on a seeded
sample of N users (the beam also on all users). Writes ``benchmarks/results/tdm_search.json``
(records keyed by dataset, model, split, users).

    python benchmarks/tdm_search.py RUN_DIR [RUN_DIR ...] [--users 2000] [--beams 100,200,400]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, env_info, load_records, merge_records, write_json  # noqa: E402

from seqrec.data.tasks.retrieval import EvalSplit  # noqa: E402
from seqrec.evaluate.retrieval import KS, evaluate_ranking  # noqa: E402
from seqrec.families.retrieval import RetrievalRun, split_batch  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "tdm_search.json"


def subset(split: EvalSplit, rows: np.ndarray) -> EvalSplit:
    return EvalSplit(split.users[rows], split.targets.take(rows), split.history.take(rows), split.exclude.take(rows))


def evaluate(model, task, split: EvalSplit, cfg, search: str, beam: int) -> dict:
    """Metrics + (user, node) pairs scored per user, with ``search`` and ``beam`` on ``model``."""
    model.config = dataclasses.replace(model.config, search=search, beam=beam)
    scored: list[torch.Tensor] = []

    def score(rows):
        batch = split_batch(task, split, rows, cfg.data.max_len)
        if search == "bruteforce":
            scored.append(torch.full((len(rows),), task.n_items))
            return model.bruteforce(batch)
        items, scores, n = model.beam_search(batch, beam)
        scored.append(n)
        out = scores.new_full((len(rows), task.n_items + 1), -float("inf"))
        return out.scatter_(1, items, scores)

    m = evaluate_ranking(score, split, ks=KS, batch_size=cfg.eval.batch_size, ties=cfg.eval.ties)
    per_user = float(torch.cat(scored).double().mean())
    m.update(scored_per_user=per_user, scored_fraction=per_user / task.n_items)
    return m


def latency(model, task, split: EvalSplit, cfg, search: str, beam: int, n: int, seed: int = 0) -> dict:
    """One user per call: median / mean milliseconds over ``n`` sampled users."""
    model.config = dataclasses.replace(model.config, search=search, beam=beam)
    rows = np.random.default_rng(seed).choice(len(split), size=min(n, len(split)), replace=False)
    times = []
    with torch.no_grad():
        model.score_all(split_batch(task, split, rows[:1], cfg.data.max_len))  # warm-up
        for r in rows:
            batch = split_batch(task, split, np.asarray([r]), cfg.data.max_len)
            t0 = time.perf_counter()
            model.score_all(batch)
            times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1e3
    return {"latency_ms_median": float(np.median(ms)), "latency_ms_mean": float(ms.mean()), "latency_users": len(ms)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="finished tdm run directories")
    ap.add_argument("--split", default="test", choices=["valid", "test"])
    ap.add_argument("--users", type=int, default=0, help="brute force on a seeded sample of N users (0 = all)")
    ap.add_argument("--beams", default="", help="extra beam widths evaluated on all users, e.g. 100,400")
    ap.add_argument("--no-bruteforce", action="store_true", help="only the beam widths on all users")
    ap.add_argument("--latency-users", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    records = []
    for run_dir in args.runs:
        run = RetrievalRun(run_dir)
        model, task, cfg = run.model, run.task, run.config
        if cfg.model_name != "tdm":
            raise SystemExit(f"{run_dir} is a {cfg.model_name} run, not tdm")
        split = task.split(args.split)
        beam = model.config.beam
        n_eval = int((split.targets.lengths() > 0).sum())
        base = {"dataset": cfg.data.name, "library": "seqrec", "split": args.split, "run": str(run_dir),
                "n_items": task.n_items, "tree_depth": model.tree.depth, "threads": args.threads,
                "command": "python benchmarks/tdm_search.py " + " ".join(sys.argv[1:] if argv is None else argv)}
        # 1. the run's beam (and any extra widths) on every user
        for b in sorted({beam, *(int(x) for x in args.beams.split(",") if x)}):
            m = evaluate(model, task, split, cfg, "beam", b)
            rec = {**base, "model": "tdm", "beam": b, "users": n_eval, "metrics": m,
                   "eval_seconds": m["eval_seconds"]}
            records.append(rec)
            print(f"{cfg.data.name} beam={b} all {n_eval} users: recall@20={m['recall@20']:.4f} "
                  f"recall@50={m['recall@50']:.4f} scored {m['scored_per_user']:.0f}/user "
                  f"({m['scored_fraction']:.2%}) in {m['eval_seconds']:.1f}s", flush=True)
        if args.no_bruteforce:
            continue
        # 2. brute force and the run's beam on the same users
        rows = np.flatnonzero(split.targets.lengths() > 0)
        if args.users and args.users < len(rows):
            rows = np.sort(np.random.default_rng(0).choice(rows, size=args.users, replace=False))
        sub = subset(split, rows)
        pair = {}
        for search in ("beam", "bruteforce"):
            m = evaluate(model, task, sub, cfg, search, beam)
            lat = latency(model, task, sub, cfg, search, beam, args.latency_users)
            pair[search] = m
            name = "tdm" if search == "beam" else "tdm-bruteforce"
            records.append({**base, "model": name, "beam": beam if search == "beam" else None,
                            "users": len(rows), "sample": len(rows) < n_eval, "metrics": m,
                            "eval_seconds": m["eval_seconds"], **lat})
            print(f"{cfg.data.name} {name} on {len(rows)} users: recall@20={m['recall@20']:.4f} "
                  f"recall@50={m['recall@50']:.4f} hitrate@10={m['hitrate@10']:.4f} scored "
                  f"{m['scored_per_user']:.0f}/user ({m['scored_fraction']:.2%}); eval {m['eval_seconds']:.1f}s; "
                  f"latency {lat['latency_ms_median']:.1f} ms/user (median, 1 user per call)", flush=True)
        ratio = {k: (pair["beam"][k] / pair["bruteforce"][k] if pair["bruteforce"][k] else None)
                 for k in ("recall@20", "recall@50", "ndcg@20", "hitrate@10")}
        records[-1]["beam_over_bruteforce"] = ratio
        records[-2]["beam_over_bruteforce"] = ratio
        print(f"{cfg.data.name} beam / brute force: " + ", ".join(
            f"{k} {v:.3f}" if v is not None else f"{k} n/a" for k, v in ratio.items()), flush=True)
    env = env_info()
    for r in records:
        r["env"] = env
    out = Path(args.out)
    write_json(out, merge_records(load_records(out), records, ("dataset", "model", "split", "users", "beam")))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
