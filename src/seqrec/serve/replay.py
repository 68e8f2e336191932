"""``seqrec replay PIPELINE.toml --data DATASET``: an offline A/B test on held-out interactions.

Every test user of the dataset's retrieval task (its history and held-out item(s), e.g. Amazon
Beauty's leave-one-out split) is served by the variant the pipeline assigns it (the same sticky
hash as the service) with the history as input and the history's items excluded. A user counts a
hit when a held-out item is among the ``k`` items shown; NDCG@k uses the rank of the held-out
items (binary relevance, ideal DCG over min(#held out, k) items).

Per variant: users, hit rate and NDCG with a 95% bootstrap interval (users resampled within the
variant), and against the first variant (the control) the relative lift of each with its 95%
bootstrap interval (both variants resampled; percentile intervals, ``n_boot`` resamples, seeded).
"""

from __future__ import annotations

import time

import numpy as np

from seqrec.errors import ConfigError
from seqrec.serve.config import PipelineConfig
from seqrec.serve.pipeline import Deadline, Pipeline


def load_eval_split(dataset: str, data_dir: str | None = None):
    """(task, split): the dataset's retrieval task and its test split."""
    from seqrec.data.registry import get_dataset, require_files

    entry = get_dataset(dataset, "retrieval")
    task = entry.recipes["retrieval"].build(dataset, require_files(entry, data_dir), train_split="train", seed=0)
    return task, task.test


def _ndcg(ranked: list[str], targets: set[str], k: int) -> float:
    dcg = sum(1.0 / np.log2(r + 2) for r, i in enumerate(ranked[:k]) if i in targets)
    ideal = sum(1.0 / np.log2(r + 2) for r in range(min(len(targets), k)))
    return dcg / ideal if ideal else 0.0


def _interval(x: np.ndarray, rng, n_boot: int) -> list[float]:
    if len(x) == 0:
        return [float("nan"), float("nan")]
    means = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def _lift(a: np.ndarray, b: np.ndarray, rng, n_boot: int) -> dict:
    """Relative lift of ``b`` over ``a`` (b / a - 1) with its 95% bootstrap interval."""
    if len(a) == 0 or len(b) == 0 or a.mean() == 0:
        return {"lift": None, "ci95": None}
    ma = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1)
    mb = b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1)
    ok = ma > 0
    lifts = mb[ok] / ma[ok] - 1.0
    return {"lift": float(b.mean() / a.mean() - 1.0),
            "ci95": [float(np.percentile(lifts, 2.5)), float(np.percentile(lifts, 97.5))]}


def replay(cfg: PipelineConfig, dataset: str, *, k: int = 20, users: int = 0, seed: int = 0, n_boot: int = 1000,
           data_dir: str | None = None, progress: bool = False) -> dict:
    """Serve every (or ``users`` sampled) test user by its variant; per-variant metrics and lifts."""
    if k < 1:
        raise ConfigError(f"-k must be >= 1, got {k}")
    task, split = load_eval_split(dataset, data_dir)
    pipe = Pipeline(cfg)
    rows = np.arange(len(split))
    rng = np.random.default_rng(seed)
    if users and users < len(rows):
        rows = np.sort(rng.choice(rows, users, replace=False))
    item_ids = np.asarray([str(x) for x in task.item_ids.tolist()], dtype=object)
    hits: dict[str, list[float]] = {v: [] for v in pipe.variants}
    gains: dict[str, list[float]] = {v: [] for v in pipe.variants}
    seconds: dict[str, float] = {v: 0.0 for v in pipe.variants}
    it = rows
    if progress:
        from tqdm import tqdm

        it = tqdm(rows, desc="replay", unit="user")
    t_all = time.perf_counter()
    for r in it:
        user = str(task.user_ids[split.users[r]])
        hist = item_ids[split.history.row(r) - 1].tolist()
        targets = set(item_ids[split.targets.row(r) - 1].tolist())
        v = pipe.assign(user, None)
        t0 = time.perf_counter()
        res = v.recommend(user=user, items=hist, k=k, exclude_seen=True, explain=False,
                          deadline=Deadline(time.perf_counter(), 1e9))
        seconds[v.name] += time.perf_counter() - t0
        shown = [i["id"] for i in res.items]
        hits[v.name].append(float(bool(targets & set(shown))))
        gains[v.name].append(_ndcg(shown, targets, k))
    boot = np.random.default_rng(seed + 1)
    out = {"dataset": dataset, "k": k, "users": int(len(rows)), "of_users": int(len(split)), "seed": seed,
           "n_boot": n_boot, "seconds": time.perf_counter() - t_all, "variants": {}}
    names = list(pipe.variants)
    for name in names:
        h, g = np.asarray(hits[name]), np.asarray(gains[name])
        out["variants"][name] = {
            "versions": pipe.variants[name].versions, "users": int(len(h)),
            f"hitrate@{k}": float(h.mean()) if len(h) else None, "hitrate_ci95": _interval(h, boot, n_boot),
            f"ndcg@{k}": float(g.mean()) if len(g) else None, "ndcg_ci95": _interval(g, boot, n_boot),
            "ms_per_user": 1e3 * seconds[name] / max(len(h), 1),
        }
    if len(names) > 1:
        ctl = names[0]
        out["control"] = ctl
        for name in names[1:]:
            out["variants"][name]["lift_vs_" + ctl] = {
                "hitrate": _lift(np.asarray(hits[ctl]), np.asarray(hits[name]), boot, n_boot),
                "ndcg": _lift(np.asarray(gains[ctl]), np.asarray(gains[name]), boot, n_boot)}
    return out


def format_report(res: dict) -> str:
    k = res["k"]
    lines = [f"offline A/B replay on {res['dataset']}: {res['users']:,} of {res['of_users']:,} test users, "
             f"top {k}, {res['seconds']:.1f}s"]
    for name, v in res["variants"].items():
        hr, hci, nd, nci = v[f"hitrate@{k}"], v["hitrate_ci95"], v[f"ndcg@{k}"], v["ndcg_ci95"]
        line = (f"  {name:<16} users {v['users']:>6,}  hitrate@{k} {hr:.4f} [{hci[0]:.4f}, {hci[1]:.4f}]  "
                f"ndcg@{k} {nd:.4f} [{nci[0]:.4f}, {nci[1]:.4f}]  {v['ms_per_user']:.1f} ms/user")
        lines.append(line)
        for key, lift in v.items():
            if key.startswith("lift_vs_"):
                for m in ("hitrate", "ndcg"):
                    x = lift[m]
                    if x["lift"] is not None:
                        lines.append(f"  {'':<16} {m} lift vs {key[8:]}: {100 * x['lift']:+.1f}% "
                                     f"(95% CI {100 * x['ci95'][0]:+.1f}% .. {100 * x['ci95'][1]:+.1f}%)")
    return "\n".join(lines)
