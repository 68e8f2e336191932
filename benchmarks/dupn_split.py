"""DUPN's model split (Ni et al. KDD 2018, sec. 4.2): equality and speed on real users and items.

For U real test users (one query-free ``ctr`` row of the run's test day each: its history, user id,
query 0) and C real items of the test day (the candidates, with their categories), score every
(user, candidate) pair with every task head in two ways:

* **unsplit**: ``model(batch).logits`` over the U * C rows, each row repeating its user's history
  (fed in chunks of ``--batch`` rows, as a ranker is served; the rows are built before the clock);
* **split**: ``model.represent`` once per user (U rows), then ``model.score_candidates`` per task
  head over the C candidates.

Both give (U, C, n_tasks) logits in eval mode; the script reports the largest absolute difference
and the median seconds of each way over ``--repeats`` interleaved rounds (A B A B ..., so a change in
the machine's load hits both), their ratio, and candidate scores per second. Writes
``results/dupn_split.json`` (one object). Use::

    python benchmarks/dupn_split.py --run runs/final/taobao/dupn
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, env_info, write_json  # noqa: E402

NAMES = ("user", "query", "item", "cate", "hist_item", "hist_cate", "hist_btype", "hist_gap")


def pick(data, n_users: int, n_items: int, seed: int = 0) -> tuple[dict, np.ndarray, np.ndarray]:
    """(U user rows: one test-day ctr row per distinct known user, seeded; C candidate items and
    their categories: distinct known items of the test day, seeded)."""
    rng = np.random.default_rng(seed)
    t = data.test
    k = data.tasks.index("ctr") if "ctr" in data.tasks else 0
    ok = np.flatnonzero((t["task"] == k) & (t["user"] >= 2) & (t["hist_item"][:, 0] > 0) & (t["query"] == 0))
    _, first = np.unique(t["user_key"][ok], return_index=True)
    rows = ok[np.sort(rng.permutation(first)[:n_users])]
    users = {n: t[n][rows] for n in NAMES}
    items = np.unique(t["item"][t["item"] > 1])
    items = np.sort(rng.permutation(items)[:n_items])
    return users, items, data.item_cate[items]


def unsplit_rows(users: dict, items: np.ndarray, cates: np.ndarray) -> dict:
    U, C = len(users["user"]), len(items)
    out = {n: np.repeat(v, C, axis=0) for n, v in users.items()}
    out["item"], out["cate"] = np.tile(items, U), np.tile(cates, U)
    return out


def score_unsplit(model, rows: dict, batch: int):
    import torch

    n = len(rows["user"])
    with torch.no_grad():
        out = [model({k: v[s:s + batch] for k, v in rows.items()}).logits for s in range(0, n, batch)]
    return torch.cat(out)


def score_split(model, users: dict, items, cates):
    import torch

    with torch.no_grad():
        r, _ = model.represent(users)
        return torch.stack([model.score_candidates(r, items, cates, t) for t in model.tasks], -1)


def compare(model, users: dict, items: np.ndarray, cates: np.ndarray, *, batch: int = 4096,
            repeats: int = 3) -> dict:
    """Max abs diff of the two ways and their timings (seconds per round, interleaved)."""
    import torch

    model.eval()
    U, C = len(users["user"]), len(items)
    tu = {k: torch.as_tensor(v) for k, v in users.items()}
    ti, tc = torch.as_tensor(items), torch.as_tensor(cates)
    rows = {k: torch.as_tensor(v) for k, v in unsplit_rows(users, items, cates).items()}
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a = score_unsplit(model, rows, batch)
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = score_split(model, tu, ti, tc)
        tb.append(time.perf_counter() - t0)
    a = a.reshape(U, C, -1)
    diff = (a - b).abs()
    return {"users": U, "candidates": C, "tasks": list(model.tasks), "pairs": U * C,
            "max_abs_diff": float(diff.max()),
            "max_abs_diff_per_task": {t: float(diff[..., k].max()) for k, t in enumerate(model.tasks)},
            "max_abs_logit": float(a.abs().max()),
            "seconds_unsplit": ta, "seconds_split": tb,
            "median_seconds_unsplit": statistics.median(ta), "median_seconds_split": statistics.median(tb),
            "speedup": statistics.median(ta) / statistics.median(tb),
            "scores_per_s_unsplit": U * C * len(model.tasks) / statistics.median(ta),
            "scores_per_s_split": U * C * len(model.tasks) / statistics.median(tb)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a DUPN run directory")
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (A B A B ...)")
    p.add_argument("--batch", type=int, default=4096, help="rows per forward of the unsplit model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dupn_split.json"))
    a = p.parse_args(argv)
    import torch

    from seqrec.families.dupn_users import check_dupn
    from seqrec.families.multitask import load_task

    torch.set_num_threads(a.threads)
    run = check_dupn(a.run, a.data_dir)
    data = load_task(run.config)
    users, items, cates = pick(data, a.users, a.items, a.seed)
    res = compare(run.model, users, items, cates, batch=a.batch, repeats=a.repeats)
    rec = {"dataset": "taobao", "model": "dupn", "run": str(a.run), "split": "test", **res,
           "unsplit_batch": a.batch, "threads": torch.get_num_threads(),
           "command": "python benchmarks/dupn_split.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "env": env_info()}
    write_json(a.out, rec)
    print(f"DUPN split on {res['users']} users x {res['candidates']} items x {len(res['tasks'])} heads "
          f"({torch.get_num_threads()} thread(s), {a.repeats} rounds): unsplit {res['median_seconds_unsplit']:.3f}s, "
          f"split {res['median_seconds_split']:.3f}s (median), speedup {res['speedup']:.1f}x; "
          f"max abs diff {res['max_abs_diff']:.2e}; written to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
