"""Model split vs the naive path: scoring 1,000 candidates for one user with a CTR ranker.

For real Amazon Beauty test histories (their real lengths, the last 50 items as the model sees
them) and 1,000 candidates (the YouTube DNN retriever's top 1,000 for that history, as in the
service), three ways to get the same logits:

* ``split``  — :mod:`seqrec.serve.split`: the item side precomputed at load, the user side once, the
  candidates as one batch (what the service runs);
* ``naive``  — the model's forward on 1,000 full samples (the history copied per candidate);
* ``per_candidate`` — one forward of one sample per candidate (measured on fewer users: slow).

Interleaved (each round runs every path once on the same user, rounds over users), one thread,
the same ``time.perf_counter`` boundaries around each call. Reports median / p95 ms per user,
speedups, and the max abs difference of the logits (split vs naive). Results go to
``benchmarks/results/serving.json`` under ``"split"``.

    python benchmarks/serve_split.py [--rankers din dien] [--users 200]

Then, for the first ranker, the split scorer by history length (3, 8, 20, 50 items) with 1 and 2
torch threads (``"split_by_history"``): DIN's cost grows with the (candidate, behaviour) pairs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, env_info, update_result_key  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "serving.json"


def update_results(key: str, value, path: Path = RESULTS) -> None:
    update_result_key(path, key, value)


def bench_ranker(ranker_dir: Path, retriever_dir: Path, n_users: int, n_per_candidate: int, seed: int) -> dict:
    from seqrec.serve.split import naive_scores
    from seqrec.serve.stages import Ranker, Retriever

    rk, rt = Ranker(ranker_dir), Retriever(retriever_dir)
    task = rt.run.task
    split = task.test
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(split), n_users, replace=False)
    to_ranker = np.concatenate([[0], rk.rows(rt.item_ids.tolist())])
    model = rk.run.model
    times = {"split": [], "naive": [], "per_candidate": []}
    diffs, lens = [], []
    with torch.inference_mode():
        for j, r in enumerate(rows):
            hist = split.history.row(r)
            cand, _ = rt.retrieve(hist, 1000, hist)
            items = torch.from_numpy(to_ranker[cand])
            hrows = to_ranker[hist]
            user = rk.user_batch(hrows[hrows != 1], None)
            lens.append(int((user["hist_item"] != 0).sum()))
            t0 = time.perf_counter()
            a = rk.scorer.score(rk.scorer.encode(user), items)
            t1 = time.perf_counter()
            b = naive_scores(model, user, rk.item_cate, items)
            t2 = time.perf_counter()
            times["split"].append(t1 - t0)
            times["naive"].append(t2 - t1)
            diffs.append(float((a - b).abs().max()))
            if j < n_per_candidate:
                t3 = time.perf_counter()
                c = naive_scores(model, user, rk.item_cate, items, per_candidate=True)
                times["per_candidate"].append(time.perf_counter() - t3)
                diffs.append(float((a - c).abs().max()))

    def stats(x):
        x = 1e3 * np.asarray(x)
        return {"median_ms": float(np.median(x)), "p95_ms": float(np.percentile(x, 95)),
                "mean_ms": float(x.mean()), "n": len(x)}

    out = {"ranker": rk.name, "run": str(ranker_dir), "scorer": rk.scorer.kind, "candidates": 1000,
           "users": n_users, "history_len_mean": float(np.mean(lens)), "history_len_max": int(max(lens)),
           "max_abs_diff": float(max(diffs)), **{k: stats(v) for k, v in times.items()}}
    m = np.asarray(times["split"])
    out["speedup_vs_naive"] = float(np.mean(times["naive"]) / m.mean())
    k = len(times["per_candidate"])
    out["speedup_vs_per_candidate"] = float(np.mean(times["per_candidate"]) / m[:k].mean()) if k else None
    return out


def bench_lengths(ranker_dir: Path, lengths: list[int], threads: list[int], rounds: int, seed: int) -> list[dict]:
    """The split scorer on 1,000 candidates by history length and torch thread count: histories
    of ``n`` catalogue items drawn with a seed (DIN's cost depends on n, not on which items),
    rounds interleaved over (length, threads); median ms per call."""
    from seqrec.serve.stages import Ranker

    rk = Ranker(ranker_dir)
    rng = np.random.default_rng(seed)
    n_rows = len(rk.item_cate)
    items = torch.from_numpy(rng.integers(2, n_rows, 1000))
    users = {n: rk.user_batch(rng.integers(2, n_rows, n), None) for n in lengths}
    times: dict[tuple[int, int], list[float]] = {(n, t): [] for n in lengths for t in threads}
    with torch.inference_mode():
        for _ in range(rounds):
            for n in lengths:
                for t in threads:
                    torch.set_num_threads(t)
                    t0 = time.perf_counter()
                    rk.scorer.score(rk.scorer.encode(users[n]), items)
                    times[(n, t)].append(time.perf_counter() - t0)
    torch.set_num_threads(1)
    return [{"ranker": rk.name, "history_len": n, "threads": t, "candidates": 1000,
             "median_ms": float(1e3 * np.median(v[1:])), "p95_ms": float(1e3 * np.percentile(v[1:], 95)),
             "rounds": rounds} for (n, t), v in times.items()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rankers", nargs="+", default=["din", "dien"])
    ap.add_argument("--runs", default=str(ROOT / "runs/final/amazon_beauty"))
    ap.add_argument("--retriever", default="youtube_dnn")
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--per-candidate-users", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lengths", type=int, nargs="+", default=[3, 8, 20, 50])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    runs = Path(args.runs)
    rows = [bench_ranker(runs / r, runs / args.retriever, args.users, args.per_candidate_users, args.seed)
            for r in args.rankers]
    print(f"{'ranker':<8} {'hist':>5} {'split ms':>9} {'naive ms':>9} {'per-cand ms':>12} {'x naive':>8} "
          f"{'x per-cand':>10} {'max diff':>9}")
    for r in rows:
        pc = r["per_candidate"]["median_ms"] if r["per_candidate"]["n"] else float("nan")
        print(f"{r['ranker']:<8} {r['history_len_mean']:>5.1f} {r['split']['median_ms']:>9.2f} "
              f"{r['naive']['median_ms']:>9.2f} {pc:>12.1f} {r['speedup_vs_naive']:>8.2f} "
              f"{r['speedup_vs_per_candidate'] or float('nan'):>10.1f} {r['max_abs_diff']:>9.1e}")
    update_results("split", {"env": env_info(), "threads": 1, "rows": rows}, Path(args.out))
    by_len = bench_lengths(runs / args.rankers[0], args.lengths, args.threads, args.rounds, args.seed)
    print(f"\n{args.rankers[0]}, 1,000 candidates, by history length (median ms):")
    for t in args.threads:
        print(f"  {t} thread(s): " + "  ".join(f"n={r['history_len']} {r['median_ms']:.2f}"
                                             for r in by_len if r["threads"] == t))
    update_results("split_by_history", {"env": env_info(), "rows": by_len}, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
