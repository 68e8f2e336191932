"""Full-ranking retrieval metrics: Recall@K, NDCG@K and HitRate@K over the whole catalogue.

For every evaluated user the model scores **all** items; the protocol's excluded items (the
user's train items or history) and the padding index 0 are set to -inf, so they are never
ranked. Every held-out target gets a rank, ``1 + #items scored strictly higher`` (ties
optimistic, DESIGN.md) or ``#items scored at least as high, itself included`` (pessimistic),
and with the target set T of a user:

* Recall@K  = |{t in T : rank(t) <= K}| / |T|  (BARS / LightGCN: divided by |T|, not min(|T|, K));
* NDCG@K    = sum_{t : rank(t) <= K} 1 / log2(rank(t) + 1)  /  sum_{i=1}^{min(|T|, K)} 1 / log2(i + 1);
* HitRate@K = 1 if any target has rank <= K.

Each is averaged over evaluated users with at least one target. A target that is also excluded
(a repeat of a history item under leave-one-out) scores -inf and is a miss, as in S3-Rec.

Only the top ``max(K)`` scores of a row are needed: when a target scores at least the
``max(K)``-th largest value, every item scored strictly higher is inside that top list, so
its rank is exact from the top list alone; a target below it has rank > max(K). The work per
user batch is one matrix of scores, one masked fill and one ``topk``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from seqrec.data.tasks.retrieval import CSR, EvalSplit

KS = (10, 20, 50)
METRICS = ("recall", "ndcg", "hitrate")


def padded(csr: CSR, rows: np.ndarray) -> torch.Tensor:
    """Rows of ``csr`` right-padded with 0: (len(rows), longest row)."""
    lens = csr.lengths()[rows]
    width = max(int(lens.max()) if len(lens) else 0, 1)
    out = np.zeros((len(rows), width), dtype=np.int64)
    col = np.arange(width)[None, :]
    ok = col < lens[:, None]
    out[ok] = csr.values[(csr.indptr[rows][:, None] + col)[ok]]
    return torch.from_numpy(out)


def mask_scores(scores: torch.Tensor, exclude: CSR, rows: np.ndarray) -> torch.Tensor:
    """Set padding (column 0) and each row's excluded items to -inf, in place; returns scores."""
    scores[:, 0] = -math.inf
    lens = exclude.lengths()[rows]
    if lens.sum():
        r = np.repeat(np.arange(len(rows)), lens)
        starts = np.repeat(exclude.indptr[rows], lens)
        within = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        cols = exclude.values[starts + within]
        scores[torch.from_numpy(r), torch.from_numpy(cols)] = -math.inf
    return scores


def target_ranks(scores: torch.Tensor, targets: torch.Tensor, kmax: int, ties: str = "optimistic") -> torch.Tensor:
    """Ranks of ``targets`` (B, T; 0 = no target) in masked ``scores`` (B, N + 1), as float;
    ``inf`` when the rank is above ``kmax`` or the slot is padding."""
    kmax = min(kmax, scores.shape[1])
    top = torch.topk(scores, kmax, dim=1).values  # (B, kmax), descending
    ts = scores.gather(1, targets)  # (B, T)
    higher = (top[:, None, :] > ts[:, :, None]).sum(-1)  # (B, T)
    if ties == "pessimistic":
        same = (top[:, None, :] == ts[:, :, None]).sum(-1)
        ranks = (higher + same).double()
        # a tie with the kmax-th value may continue past the top list: count it on the full row
        edge = (ts == top[:, -1:]) & (targets > 0)
        for b, t in edge.nonzero().tolist():
            ranks[b, t] = float((scores[b] >= ts[b, t]).sum())
    elif ties == "optimistic":
        ranks = (higher + 1).double()
    else:
        raise ValueError(f"ties must be 'optimistic' or 'pessimistic', got {ties!r}")
    inside = (ts >= top[:, -1:]) & torch.isfinite(ts) & (targets > 0) & (ranks <= kmax)
    return torch.where(inside, ranks, torch.full_like(ranks, math.inf))


def user_metrics(ranks: torch.Tensor, n_targets: torch.Tensor, ks=KS) -> dict[str, torch.Tensor]:
    """Per-user Recall / NDCG / HitRate @ each K from target ranks (B, T) and |T| (B,)."""
    out = {}
    gain = torch.where(torch.isfinite(ranks), 1.0 / torch.log2(ranks + 1.0), torch.zeros_like(ranks))
    disc = 1.0 / torch.log2(torch.arange(2, max(ks) + 2, dtype=torch.float64))  # (Kmax,)
    idcg_cum = torch.cumsum(disc, 0)
    for k in ks:
        hit = ranks <= k  # (B, T)
        hits = hit.sum(1).double()
        out[f"recall@{k}"] = hits / n_targets
        ideal = idcg_cum[(torch.clamp(n_targets, max=k) - 1).long()]
        out[f"ndcg@{k}"] = (gain * hit).sum(1) / ideal
        out[f"hitrate@{k}"] = (hits > 0).double()
    return out


def evaluate_ranking(score_fn: Callable[[np.ndarray], torch.Tensor], split: EvalSplit, *, ks=KS,
                     batch_size: int = 1024, ties: str = "optimistic") -> dict:
    """Mean Recall / NDCG / HitRate @ ``ks`` over the users of ``split`` with targets.

    ``score_fn(rows)`` returns the scores (len(rows), n_items + 1) of the split's users at
    positions ``rows``; it may return a fresh tensor the evaluator masks in place."""
    t0 = time.perf_counter()
    n_t = split.targets.lengths()
    rows_all = np.flatnonzero(n_t > 0)
    sums: dict[str, float] = {}
    with torch.no_grad():
        for s in range(0, len(rows_all), batch_size):
            rows = rows_all[s:s + batch_size]
            scores = score_fn(rows)
            if scores.dtype not in (torch.float32, torch.float64):
                scores = scores.float()  # float64 kept: the baselines' tie-break terms need it
            mask_scores(scores, split.exclude, rows)
            ranks = target_ranks(scores, padded(split.targets, rows), max(ks), ties)
            per_user = user_metrics(ranks, torch.from_numpy(n_t[rows]).double(), ks)
            for k, v in per_user.items():
                sums[k] = sums.get(k, 0.0) + float(v.sum())
    n = max(len(rows_all), 1)
    out = {k: v / n for k, v in sorted(sums.items())}
    out["n_users"] = int(len(rows_all))
    out["eval_seconds"] = time.perf_counter() - t0
    return out


def topk_items(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, item indices) of the ``k`` best finite scores per row; -inf entries are dropped
    by the caller (a row may have fewer than ``k`` rankable items)."""
    k = min(k, scores.shape[1])
    return torch.topk(scores, k, dim=1)
