"""Look-alike on a DUPN run's user vectors: RALM vs seed-mean vs popularity (Taobao sample).

For the evaluation day D (default: the run's test day, 2017-12-03) and every category with at least
``--min-seeds`` seeds (users who bought from it on days before D) and one target (a user who is not
a seed and buys from it on D), each method ranks the candidates (every user seen before D, minus
the seeds); precision@K and recall@K of the targets, averaged over the categories
(:mod:`seqrec.lookalike` says what each method is).

The user vectors are DUPN's r (query-free) **as of the start of the window's target day** (history
before it: ``seqrec.families.dupn_users.user_rows(before_day=...)``), never the ``embed-users``
default (which has seen the test day). RALM's attention is trained on the windows whose target day
is in ``--train-days`` (default 2 .. D-1: seeds = the days before, targets = that day), each with
the vectors as of its own day; never on day D. Its settings (steps, lr, l2) were chosen with
``--eval-day`` = the day before the test day (training days 2 .. D-2), as was the standardisation of
the vectors, then run once on the test day.

With 814 users a category has about 800 candidates and 1-2 targets: K = 100 is 12% of the
candidates (chance recall@100 ~ 0.12, printed; K = 10 and 50 are the sharper tests), and
precision@K is bounded by targets / K (~0.015 at K = 100). Records (``dataset`` taobao, ``task``
lookalike, ``model`` ralm / seed-mean / popularity) merge into ``results/multitask.json``. Use::

    python benchmarks/ralm.py --run runs/final/taobao/dupn
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ROOT,
    env_info,
    fmt_metric,
    load_records,
    markdown_table,
    merge_records,
    write_json,
)

KEY = ("dataset", "model", "task", "library", "day")
BEHAVIOURS = {"pv": 2, "cart": 3, "fav": 4, "buy": 5}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a DUPN run directory")
    p.add_argument("--eval-day", type=int, default=None, help="target day of the evaluation (default: the test day)")
    p.add_argument("--train-days", default=None, help="RALM's training target days, 'a-b' (default 2 .. eval day - 1)")
    p.add_argument("--behaviours", default="buy", help="what makes a seed / target, comma-separated (default buy)")
    p.add_argument("--min-seeds", type=int, default=3)
    p.add_argument("--ks", default="10,50,100")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--l2", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "multitask.json"))
    p.add_argument("--no-write", action="store_true", help="print only")
    a = p.parse_args(argv)
    import numpy as np
    import torch

    from seqrec import lookalike as la
    from seqrec.families.base import peak_rss_mb
    from seqrec.families.dupn_users import (
        check_dupn,
        read_log,
        represent_rows,
        run_test_day,
        user_rows,
    )

    torch.set_num_threads(a.threads)
    ks = tuple(int(k) for k in a.ks.split(","))
    beh = tuple(BEHAVIOURS[b.strip()] for b in a.behaviours.split(","))
    run = check_dupn(a.run, a.data_dir)
    log = read_log(run)
    ev = la.Events.from_log(log)
    test_day = run_test_day(run)
    day = test_day if a.eval_day is None else a.eval_day
    if not 1 <= day <= test_day:
        raise SystemExit(f"--eval-day must be in [1, {test_day}] (the run's log ends with day {test_day})")
    lo, hi = (2, day - 1) if a.train_days is None else (int(x) for x in a.train_days.split("-"))
    if hi >= day:
        raise SystemExit(f"--train-days {lo}-{hi}: RALM trains on windows before the evaluation day {day} only")

    def vectors(d: int) -> np.ndarray:  # r as of the start of day d, standardised (seqrec.lookalike)
        return la.standardise(represent_rows(run.model, user_rows(run, before_day=d, log=log)))

    cases = la.make_cases(ev, day, behaviours=beh, min_seeds=a.min_seeds)
    if not cases:
        raise SystemExit(f"no category of day {day} has >= {a.min_seeds} seeds and a target")
    vec = vectors(day)
    windows = [(vectors(d), la.make_cases(ev, d, behaviours=beh, min_seeds=a.min_seeds)) for d in range(lo, hi + 1)]
    model = la.RALM(vec.shape[1], seed=a.seed)
    untrained = la.evaluate(lambda c: la.ralm_scores(model, vec, c.seeds), cases, ks)
    t0 = time.perf_counter()
    fit = la.train_ralm(model, windows, steps=a.steps, lr=a.lr, l2=a.l2, seed=a.seed)
    train_s = time.perf_counter() - t0
    res = {"ralm": la.evaluate(lambda c: la.ralm_scores(model, vec, c.seeds), cases, ks),
           "seed-mean": la.evaluate(lambda c: la.seed_mean_scores(vec, c.seeds), cases, ks),
           "popularity": la.evaluate(lambda c: la.popularity_scores(ev, day, c.cate), cases, ks)}
    chance = la.chance(cases, ks)
    raw = represent_rows(run.model, user_rows(run, before_day=day, log=log))
    raw_mean = la.evaluate(lambda c: la.seed_mean_scores(raw, c.seeds), cases, ks)

    day_iso = (date(2017, 11, 25) + timedelta(days=day)).isoformat()
    command = "python benchmarks/ralm.py " + " ".join(argv if argv is not None else sys.argv[1:])
    common = {"dataset": "taobao", "task": "lookalike", "library": "seqrec",
              "day": None if day == test_day else day_iso, "eval_day": day_iso, "run": str(a.run),
              "behaviours": a.behaviours, "min_seeds": a.min_seeds, "chance": chance,
              "vectors": "DUPN r (query 0) as of the start of the day, standardised per dimension",
              "peak_rss_mb": peak_rss_mb(), "command": command,
              "env": {**env_info(), "torch_threads": torch.get_num_threads()}}
    recs = []
    for m, r in res.items():
        rec = {**common, "model": m, "metrics": r, "train_samples_per_s": None}
        if m == "ralm":
            rec.update(train_samples_per_s=fit["targets"] * fit["steps"] / train_s, train_seconds=train_s,
                       train={**fit, "days": [lo, hi], "lr": a.lr, "l2": a.l2},
                       untrained_metrics=untrained, alpha=float(torch.sigmoid(model.mix.detach())),
                       temperature=float(model.log_tau.detach().exp()))
        if m == "seed-mean":
            rec["raw_vectors_metrics"] = raw_mean
        recs.append({k: rec[k] for k in ("dataset", "model", "task", "library", "day")} | rec)
    if not a.no_write:
        write_json(a.out, merge_records(load_records(a.out), recs, KEY))

    cols = [f"{m}@{k}" for k in ks for m in ("precision", "recall")]
    rows = [[name, *(fmt_metric(r[c]) for c in cols)]
            for name, r in [*res.items(), ("ralm (untrained)", untrained), ("seed-mean (raw vectors)", raw_mean),
                           ("chance (expected)", chance)]]
    print(f"Look-alike on {day_iso} ({a.behaviours}): {len(cases)} categories, {res['ralm']['targets']} targets, "
          f"median {res['ralm']['seeds_median']:.0f} seeds and {res['ralm']['candidates_median']:.0f} candidates; "
          f"RALM trained on days {lo}-{hi} ({fit['cases']} cases, {fit['targets']} targets, "
          f"loss {fit['loss_first']:.3f} -> {fit['loss_last']:.3f}, {train_s:.1f}s)")
    print(markdown_table(["method", *cols], rows))
    print("standard error of recall@K over the categories: " + "; ".join(
        f"{m} " + "/".join(f"{r[f'recall@{k}_se']:.3f}" for k in ks) for m, r in res.items()))
    if not a.no_write:
        print(f"records merged into {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
