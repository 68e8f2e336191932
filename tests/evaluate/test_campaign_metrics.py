"""Golden tests (hand-computed, ties included) and scikit-learn cross-checks for the campaign
metrics of :mod:`seqrec.evaluate.campaign` (base rate, precision / recall / lift at the top)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

from seqrec.errors import DataValidationError
from seqrec.evaluate.campaign import TOP_FRACS, campaign_report, lift_at_top, recall_at_top
from seqrec.evaluate.thresholds import average_precision, precision_at_top

# 10 users, 3 buyers (base rate 0.3); ties at 0.8 (a buyer and a non-buyer), 0.5 (1 buyer of 3), 0.2
Y = [1, 0, 1, 0, 1, 0, 0, 0, 0, 0]
S = [0.9, 0.8, 0.8, 0.5, 0.5, 0.5, 0.2, 0.2, 0.1, 0.0]


def test_top_k_golden_with_ties():
    # top 10 %: k = 1, user 0 (a buyer) alone: P = 1, R = 1/3, lift = 1 / 0.3
    assert precision_at_top(Y, S, 0.1) == 1.0
    assert recall_at_top(Y, S, 0.1) == pytest.approx(1 / 3)
    assert lift_at_top(Y, S, 0.1) == pytest.approx(10 / 3)
    # top 20 %: k = 2; user 0 above the cut, one slot for the tie at 0.8 (1 buyer of 2):
    # expected TP = 1 + 1/2 -> P = 0.75, R = 0.5, lift = 2.5
    assert precision_at_top(Y, S, 0.2) == pytest.approx(0.75)
    assert recall_at_top(Y, S, 0.2) == pytest.approx(0.5)
    assert lift_at_top(Y, S, 0.2) == pytest.approx(2.5)
    # top 50 %: k = 5; 0.9, 0.8, 0.8 above (2 buyers), 2 slots for the tie at 0.5 (1 buyer of 3):
    # expected TP = 2 + 2/3 -> P = 8/15, R = 8/9, lift = 16/9
    assert precision_at_top(Y, S, 0.5) == pytest.approx(8 / 15)
    assert recall_at_top(Y, S, 0.5) == pytest.approx(8 / 9)
    assert lift_at_top(Y, S, 0.5) == pytest.approx(16 / 9)
    # everyone: recall 1, lift 1
    assert recall_at_top(Y, S, 1.0) == 1.0 and lift_at_top(Y, S, 1.0) == pytest.approx(1.0)


def test_report_golden():
    out = campaign_report(Y, S, top_fracs=(0.1, 0.2, 0.5))
    assert (out["n_users"], out["n_positive"]) == (10, 3)
    assert out["base_rate"] == pytest.approx(0.3)
    # AUC over 3 x 7 pairs: buyer 0.9 beats 7; buyer 0.8 beats 6, ties 1 (1/2); buyer 0.5 beats 4,
    # ties 2 (1) -> (7 + 6.5 + 5) / 21 = 37/42
    assert out["auc"] == pytest.approx(37 / 42)
    # AP: thresholds 0.9 (P 1, R 1/3), 0.8 (P 2/3, R 2/3), 0.5 (P 1/2, R 1) -> 1/3 + 2/9 + 1/6 = 13/18
    assert out["pr_auc"] == pytest.approx(13 / 18)
    assert out["precision@top20%"] == pytest.approx(0.75)
    assert out["recall@top50%"] == pytest.approx(8 / 9)
    assert out["lift@top10%"] == pytest.approx(10 / 3)
    assert out["auc"] == pytest.approx(roc_auc_score(Y, S))
    assert out["pr_auc"] == pytest.approx(average_precision_score(Y, S))


def test_default_fractions_and_keys():
    out = campaign_report(Y, S)
    assert TOP_FRACS == (0.01, 0.05, 0.10)
    assert set(out) == {"n_users", "n_positive", "base_rate", "pr_auc", "auc",
                        *(f"{m}@top{p}%" for m in ("precision", "recall", "lift") for p in (1, 5, 10))}
    # 1 % and 5 % of 10 users are both k = 1
    assert out["precision@top1%"] == out["precision@top5%"] == out["precision@top10%"] == 1.0


def test_binary_rule_golden():
    """A 0/1 rule flags 3 users, 2 of them buyers (P1 = R1 = 2/3), of 8 users with 3 buyers."""
    y = [1, 1, 0, 0, 1, 0, 0, 0]
    flag = [1, 1, 1, 0, 0, 0, 0, 0]
    out = campaign_report(y, flag, top_fracs=(0.125, 0.5))
    # PR-AUC, a tied block is one threshold: P1 R1 + base (1 - R1) = 4/9 + (3/8)(1/3) = 41/72
    assert out["pr_auc"] == pytest.approx(41 / 72) == average_precision_score(y, flag)
    # k = 1 of the 3 flagged (2 buyers): expected TP 2/3
    assert out["precision@top12%"] == pytest.approx(2 / 3)
    # k = 4: the 3 flagged (2 buyers) + 1 slot among the 5 unflagged (1 buyer): 2 + 1/5
    assert out["precision@top50%"] == pytest.approx(2.2 / 4)
    assert out["recall@top50%"] == pytest.approx(2.2 / 3)
    # AUC: flagged buyers beat 4 of 5 unflagged non-buyers and tie 1 flagged non-buyer (1/2) each;
    # the unflagged buyer ties 4 non-buyers, loses to 1: (2 * 4.5 + 2) / 15 = 11/15
    assert out["auc"] == pytest.approx(11 / 15) == roc_auc_score(y, flag)


def _brute_expected_tp(y: np.ndarray, s: np.ndarray, k: int) -> Fraction:
    """Mean buyers among the first k over every order of the users (ties broken every way)."""
    total, n = Fraction(0), 0
    for perm in itertools.permutations(range(len(s))):
        order = sorted(range(len(s)), key=lambda i: (-s[i], perm[i]))
        total += int(y[order[:k]].sum())
        n += 1
    return total / n


@pytest.mark.parametrize("seed", range(4))
def test_top_k_is_the_expectation_over_tie_breaks(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(7) < 0.4).astype(int)
    y[0], y[1] = 1, 0
    s = rng.integers(0, 3, 7).astype(float)  # 3 distinct scores: big ties
    for k in range(1, 8):
        frac = k / 7
        exact = _brute_expected_tp(y, s, k)
        assert precision_at_top(y, s, frac) == pytest.approx(float(exact / k))
        assert recall_at_top(y, s, frac) == pytest.approx(float(exact / y.sum()))
        assert lift_at_top(y, s, frac) == pytest.approx(float(exact / k / Fraction(int(y.sum()), 7)))


@pytest.mark.parametrize("seed", range(6))
def test_matches_sklearn_without_ties_at_the_cut(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 400))
    y = (rng.random(n) < 0.2).astype(int)
    y[:2] = (1, 0)
    s = rng.permutation(n).astype(float)  # distinct scores: the top k is a set
    for frac in (0.01, 0.05, 0.1, 0.33):
        out = campaign_report(y, s, (frac,))
        key = f"{round(100 * frac)}%"
        k = int(np.ceil(frac * n - 1e-9))
        pred = (s >= np.sort(s)[n - k]).astype(int)
        assert pred.sum() == k
        assert out[f"precision@top{key}"] == pytest.approx(precision_score(y, pred))
        assert out[f"recall@top{key}"] == pytest.approx(recall_score(y, pred))
        assert out[f"lift@top{key}"] == pytest.approx(precision_score(y, pred) / y.mean())
    out = campaign_report(y, np.round(s / n, 1))  # ties everywhere for AUC and AP
    assert out["auc"] == pytest.approx(roc_auc_score(y, np.round(s / n, 1)))
    assert out["pr_auc"] == pytest.approx(average_precision_score(y, np.round(s / n, 1)))
    assert out["pr_auc"] == average_precision(y, np.round(s / n, 1))


def test_order_does_not_matter_and_scores_need_not_be_probabilities():
    perm = np.random.default_rng(0).permutation(len(Y))
    a = campaign_report(Y, S)
    b = campaign_report(np.array(Y)[perm], np.array(S)[perm])
    assert a == b
    shifted = campaign_report(Y, np.array(S) * 100 - 7)  # any monotone map of the scores
    assert shifted == a


def test_k_is_exact_for_round_products():
    # 5 % of 400 users is 20 (not 21 by float rounding): 20 buyers on top, then a non-buyer
    y = np.r_[np.ones(20), np.zeros(380)]
    s = -np.arange(400, dtype=float)
    assert precision_at_top(y, s, 0.05) == 1.0
    assert recall_at_top(y, s, 0.05) == 1.0
    assert lift_at_top(y, s, 0.05) == pytest.approx(20.0)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: campaign_report([0, 0, 0], [0.1, 0.2, 0.3]), "all 3 labels are 0"),
    (lambda: campaign_report([1, 1], [0.1, 0.2]), "all 2 labels are 1"),
    (lambda: campaign_report([1, 0], [0.1, float("nan")]), "NaN"),
    (lambda: campaign_report([1, 0, 1], [0.1, 0.2]), "different lengths"),
    (lambda: campaign_report([1, 2], [0.1, 0.2]), "0 or 1"),
    (lambda: campaign_report(Y, S, (0.05, 0.051)), "duplicate"),
    (lambda: recall_at_top(Y, S, 0.0), r"\(0, 1\]"),
    (lambda: lift_at_top(Y, S, 1.5), r"\(0, 1\]"),
    (lambda: recall_at_top([0, 0], [0.1, 0.2], 0.5), "all 2 labels are 0"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(DataValidationError, match=match):
        call()
