"""Golden values of the full-ranking retrieval metrics (Recall / NDCG / HitRate @ K), exclusion included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec.data.tasks.retrieval import CSR, EvalSplit
from seqrec.evaluate.retrieval import evaluate_ranking, mask_scores, target_ranks, user_metrics

L2 = math.log2


def _split(targets, exclude):
    n = len(targets)
    return EvalSplit(np.arange(n), CSR.from_lists([np.asarray(t) for t in targets]),
                     CSR.from_lists([np.asarray(e) for e in exclude]), CSR.from_lists([np.asarray(e) for e in exclude]))


def _run(scores, targets, exclude, ks=(2, 5), ties="optimistic"):
    split = _split(targets, exclude)
    s = torch.tensor(scores, dtype=torch.float32)
    return evaluate_ranking(lambda rows: s[rows].clone(), split, ks=ks, ties=ties)


# items 1..6 scored 0.9 .. 0.4; index 0 is padding
ROW = [5.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]


def test_golden_with_train_item_excluded():
    m = _run([ROW], targets=[[3, 6]], exclude=[[1]])
    # after excluding item 1: 2 -> rank 1, 3 -> rank 2, 4, 5, 6 -> rank 5; padding (score 5.0) never ranked
    assert m["recall@2"] == pytest.approx(0.5)
    assert m["hitrate@2"] == 1.0
    assert m["ndcg@2"] == pytest.approx((1 / L2(3)) / (1 + 1 / L2(3)))
    assert m["recall@5"] == pytest.approx(1.0)
    assert m["ndcg@5"] == pytest.approx((1 / L2(3) + 1 / L2(6)) / (1 + 1 / L2(3)))


def test_without_exclusion_the_same_scores_rank_lower():
    m = _run([ROW], targets=[[3, 6]], exclude=[[]])
    assert m["recall@2"] == 0.0 and m["hitrate@2"] == 0.0  # item 3 is third now
    assert m["recall@5"] == pytest.approx(0.5)
    assert m["ndcg@5"] == pytest.approx((1 / L2(4)) / (1 + 1 / L2(3)))


def test_recall_divides_by_all_targets_and_ndcg_ideal_caps_at_k():
    # 3 targets, K = 2: recall = hits / 3 (BARS), ideal DCG over min(3, 2) = 2 positions
    m = _run([ROW], targets=[[1, 2, 3]], exclude=[[]])
    assert m["recall@2"] == pytest.approx(2 / 3)
    assert m["ndcg@2"] == pytest.approx(1.0)


def test_excluded_target_is_a_miss():
    m = _run([ROW], targets=[[2]], exclude=[[2]])
    assert m["hitrate@5"] == 0.0 and m["recall@5"] == 0.0


def test_ties_optimistic_and_pessimistic():
    row = [0.0, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1]  # items 1, 2, 3 tied at the top
    opt = _run([row], targets=[[3]], exclude=[[]], ks=(1, 2))
    pes = _run([row], targets=[[3]], exclude=[[]], ks=(1, 2), ties="pessimistic")
    assert opt["hitrate@1"] == 1.0 and opt["ndcg@1"] == 1.0  # rank 1 = 1 + 0 strictly higher
    assert pes["hitrate@2"] == 0.0  # rank 3 = three items at least as high, itself included


def test_pessimistic_tie_past_the_top_list_counts_the_whole_row():
    row = [0.0] + [0.5] * 6  # everything tied; top list of max(K) = 2 cannot see the others
    pes = _run([row], targets=[[4]], exclude=[[]], ks=(1, 2), ties="pessimistic")
    assert pes["hitrate@2"] == 0.0
    s = torch.tensor([row])
    ranks = target_ranks(mask_scores(s.clone(), CSR.from_lists([np.zeros(0, np.int64)]), np.zeros(1, np.int64)),
                         torch.tensor([[4]]), 2, "pessimistic")
    assert torch.isinf(ranks).all()


def test_users_without_targets_are_not_averaged():
    m = _run([ROW, ROW], targets=[[2], []], exclude=[[], []])
    assert m["n_users"] == 1 and m["hitrate@2"] == 1.0


def _brute(scores, targets, exclude, ks):
    """Independent reference: full sort of every row (optimistic ties)."""
    out = {f"{m}@{k}": [] for m in ("recall", "ndcg", "hitrate") for k in ks}
    for s, t, e in zip(scores, targets, exclude, strict=True):
        if not len(t):
            continue
        s = s.astype(np.float64).copy()
        s[0] = -np.inf
        s[list(e)] = -np.inf
        ranks = [1 + int((s > s[i]).sum()) if np.isfinite(s[i]) else 10**9 for i in t]
        for k in ks:
            hits = [r for r in ranks if r <= k]
            out[f"recall@{k}"].append(len(hits) / len(t))
            out[f"hitrate@{k}"].append(float(bool(hits)))
            idcg = sum(1 / np.log2(i + 2) for i in range(min(len(t), k)))
            out[f"ndcg@{k}"].append(sum(1 / np.log2(r + 1) for r in hits) / idcg)
    return {k: float(np.mean(v)) for k, v in out.items()}


def test_matches_a_full_sort_on_random_data_with_ties():
    rng = np.random.default_rng(0)
    n_items, n_users = 60, 200
    scores = rng.integers(0, 25, size=(n_users, n_items + 1)).astype(np.float32)  # many ties
    targets, exclude = [], []
    for _ in range(n_users):
        perm = rng.permutation(np.arange(1, n_items + 1))
        exclude.append(perm[:rng.integers(0, 10)])
        targets.append(perm[10:10 + rng.integers(0, 6)])
    ks = (3, 10, 20)
    ours = _run(scores.tolist(), targets, exclude, ks=ks)
    ref = _brute(scores, targets, exclude, ks)
    for k, v in ref.items():
        assert ours[k] == pytest.approx(v, abs=1e-9), k


def test_user_metrics_shapes():
    ranks = torch.tensor([[1.0, math.inf], [3.0, 4.0]], dtype=torch.float64)
    m = user_metrics(ranks, torch.tensor([2.0, 2.0], dtype=torch.float64), ks=(2,))
    assert m["recall@2"].tolist() == [0.5, 0.0]
