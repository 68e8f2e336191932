"""Golden tests (hand-computed) and scikit-learn cross-checks for the purchase-prediction metrics."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from seqrec.errors import DataValidationError
from seqrec.evaluate.classification import auc, logloss
from seqrec.evaluate.thresholds import (
    average_precision,
    best_f1_threshold,
    precision_at_top,
    precision_recall_f1,
    purchase_report,
    report_table,
)

# Running example: 3 positives (idx 0, 2, 4); two rows tied at 0.5, exactly at the threshold.
Y = [1, 0, 1, 0, 1, 0]
P = [0.9, 0.5, 0.5, 0.3, 0.2, 0.7]

# --- precision / recall / F1 -------------------------------------------------------------------


def test_prf_golden_tie_at_threshold():
    # prob >= 0.5 -> idx 0 (0.9), 1 (0.5), 2 (0.5), 5 (0.7): 4 predicted, TP = idx 0, 2 = 2
    # precision = 2/4 = 0.5; recall = 2/3; F1 = 2 * 0.5 * 2/3 / (0.5 + 2/3) = (2/3) / (7/6) = 4/7
    out = precision_recall_f1(Y, P, 0.5)
    assert out == {
        "precision": pytest.approx(0.5),
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(4 / 7),
        "threshold": 0.5,
        "n_predicted_positive": 4,
    }
    # just above the tie: only 0.9 and 0.7 -> TP 1 of 2 predicted
    # precision = 1/2, recall = 1/3, F1 = 2 * (1/6) / (5/6) = 2/5
    out = precision_recall_f1(Y, P, 0.5000001)
    assert (out["precision"], out["recall"], out["f1"]) == pytest.approx((0.5, 1 / 3, 0.4))
    assert out["n_predicted_positive"] == 2


def test_prf_default_threshold_is_half():
    assert precision_recall_f1(Y, P) == precision_recall_f1(Y, P, 0.5)


def test_prf_all_negative_predictions():
    # nothing has prob >= 0.95: TP = 0, nothing predicted -> precision 0 (zero_division=0),
    # recall 0/3 = 0, F1 = 0 since precision + recall = 0
    out = precision_recall_f1(Y, P, 0.95)
    assert out == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "threshold": 0.95,
        "n_predicted_positive": 0,
    }


def test_prf_predictions_all_wrong_gives_zero_f1():
    # predicted positive: idx 1 only (0.8), which is a negative: P = 0/1, R = 0/1, F1 = 0
    out = precision_recall_f1([1, 0], [0.1, 0.8], 0.5)
    assert (out["precision"], out["recall"], out["f1"]) == (0.0, 0.0, 0.0)


def test_prf_perfect_and_constant():
    # perfect ranker, threshold between classes: P = R = F1 = 1
    out = precision_recall_f1([0, 1, 0, 1], [0.2, 0.9, 0.1, 0.8], 0.5)
    assert (out["precision"], out["recall"], out["f1"]) == (1.0, 1.0, 1.0)
    # constant 0.4 with threshold 0.4: all 5 predicted, 2 positives
    # P = 2/5, R = 1, F1 = 2 * 0.4 / 1.4 = 4/7
    out = precision_recall_f1([1, 0, 0, 1, 0], [0.4] * 5, 0.4)
    assert (out["precision"], out["recall"], out["f1"]) == pytest.approx((0.4, 1.0, 4 / 7))


@pytest.mark.parametrize("seed", range(8))
def test_prf_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 200))
    y = (rng.random(n) < 0.3).astype(int)
    y[0] = 1
    p = np.round(rng.random(n), 1)  # many ties, several exactly at the thresholds below
    for t in (0.0, 0.3, 0.5, 0.7, 1.0, 1.01):
        pred = (p >= t).astype(int)
        out = precision_recall_f1(y, p, t)
        assert out["precision"] == pytest.approx(precision_score(y, pred, zero_division=0))
        assert out["recall"] == pytest.approx(recall_score(y, pred, zero_division=0))
        assert out["f1"] == pytest.approx(f1_score(y, pred, zero_division=0))
        assert out["n_predicted_positive"] == int(pred.sum())


# --- best F1 threshold -------------------------------------------------------------------------


def test_best_f1_threshold_golden():
    # running example, n_pos = 3, F1(t) = 2 TP / (#pred + 3):
    #   t=0.9: TP 1, pred 1 -> 2/4 = 0.5     t=0.7: TP 1, pred 2 -> 2/5 = 0.4
    #   t=0.5: TP 2, pred 4 -> 4/7 = 0.571   t=0.3: TP 2, pred 5 -> 4/8 = 0.5
    #   t=0.2: TP 3, pred 6 -> 6/9 = 0.667   -> best 0.2
    assert best_f1_threshold(Y, P) == 0.2
    # tied scores: labels 1,0,1,0 at 0.8,0.8,0.3,0.1, n_pos = 2
    #   t=0.8: TP 1, pred 2 -> 2/4; t=0.3: TP 2, pred 3 -> 4/5; t=0.1: TP 2, pred 4 -> 4/6
    assert best_f1_threshold([1, 0, 1, 0], [0.8, 0.8, 0.3, 0.1]) == 0.3


def test_best_f1_threshold_tie_takes_largest():
    # n_pos = 2: t=0.9: TP 1, pred 1 -> 2/3; t=0.8: 2/4; t=0.7: 2/5; t=0.6: TP 2, pred 4 -> 4/6
    # F1(0.9) = F1(0.6) = 2/3 -> the larger, 0.9
    assert best_f1_threshold([1, 0, 0, 1], [0.9, 0.8, 0.7, 0.6]) == 0.9
    assert best_f1_threshold([1, 0, 0, 1][::-1], [0.9, 0.8, 0.7, 0.6][::-1]) == 0.9


def test_best_f1_threshold_perfect_and_constant():
    # perfect ranker: t = 0.8 flags exactly the two positives, F1 = 1
    assert best_f1_threshold([0, 1, 0, 1], [0.2, 0.9, 0.1, 0.8]) == 0.8
    # constant scorer: the only distinct value
    assert best_f1_threshold([1, 0, 0, 1, 0], [0.4] * 5) == 0.4


def _brute_best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    n_pos = int(y.sum())
    best_t, best_f1 = None, Fraction(-1)
    for t in sorted(set(p.tolist())):  # ascending; ">=" lets a later equal F1 win -> largest t
        pred = p >= t
        f1 = Fraction(2 * int((pred & (y == 1)).sum()), int(pred.sum()) + n_pos)
        if f1 >= best_f1:
            best_t, best_f1 = t, f1
    return best_t


@pytest.mark.parametrize("seed", range(10))
def test_best_f1_threshold_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 150))
    y = (rng.random(n) < 0.35).astype(int)
    y[0] = 1
    p = np.round(rng.random(n), 1 if seed % 2 else 2)
    t = best_f1_threshold(y, p)
    assert t == _brute_best_threshold(y, p)
    best = precision_recall_f1(y, p, t)["f1"]
    for v in np.unique(p):
        assert precision_recall_f1(y, p, v)["f1"] <= best + 1e-12


# --- average precision -------------------------------------------------------------------------


def test_average_precision_golden_running_example():
    # thresholds 0.9, 0.7, 0.5, 0.3, 0.2 (desc): (TP, pred) = (1,1), (1,2), (2,4), (2,5), (3,6)
    # R: 1/3, 1/3, 2/3, 2/3, 1;  P: 1, 1/2, 1/2, 2/5, 1/2
    # AP = 1/3 * 1 + 0 + 1/3 * 1/2 + 0 + 1/3 * 1/2 = 2/3
    assert average_precision(Y, P) == pytest.approx(2 / 3)


def test_average_precision_golden_tie_is_one_threshold():
    # labels 1,1,0,1,0 at 0.8, 0.6, 0.6, 0.6, 0.1; n_pos = 3
    # t=0.8: TP 1, pred 1 -> P 1,   dR 1/3
    # t=0.6: TP 3, pred 4 -> P 3/4, dR 2/3   (the three tied rows enter together)
    # t=0.1: TP 3, pred 5 -> dR 0
    # AP = 1/3 + 2/3 * 3/4 = 5/6   (positive-first tie-breaking would give 1, negative-first 29/36)
    y, s = [1, 1, 0, 1, 0], [0.8, 0.6, 0.6, 0.6, 0.1]
    assert average_precision(y, s) == pytest.approx(5 / 6)
    assert average_precision(y[::-1], s[::-1]) == pytest.approx(5 / 6)


def test_average_precision_perfect_and_constant():
    assert average_precision([0, 1, 0, 1], [0.2, 0.9, 0.1, 0.8]) == pytest.approx(1.0)
    # constant: one threshold, P = 2/5, dR = 1 -> AP = base rate 0.4
    assert average_precision([1, 0, 0, 1, 0], [0.4] * 5) == pytest.approx(0.4)
    # worst ranker: positives last. t=.4: P 0; t=.3: P 0; t=.2: TP 1/3, dR 1/2; t=.1: TP 2/4, dR 1/2
    # AP = 1/2 * 1/3 + 1/2 * 1/2 = 5/12
    assert average_precision([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == pytest.approx(5 / 12)


def test_average_precision_accepts_logits():
    assert average_precision([1, 0, 1], [3.0, -2.0, -5.0]) == pytest.approx(
        average_precision_score([1, 0, 1], [3.0, -2.0, -5.0])
    )


@pytest.mark.parametrize("seed", range(8))
def test_average_precision_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 300))
    y = (rng.random(n) < 0.2).astype(int)
    y[-1] = 1
    s = np.round(rng.random(n), 1)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


# --- precision at top --------------------------------------------------------------------------

# sorted desc: 0.9 (1), 0.8 (0), then 0.7 x4 with labels 1,0,1,1 (mean 3/4), 0.3 (0),
# 0.2 x2 (0, 0), 0.1 (1); N = 10, 5 positives
YT = [1, 0, 1, 0, 1, 1, 0, 0, 0, 1]
ST = [0.9, 0.8, 0.7, 0.7, 0.7, 0.7, 0.3, 0.2, 0.2, 0.1]


@pytest.mark.parametrize(
    ("frac", "expected"),
    [
        (0.05, 1.0),  # k = ceil(0.5) = 1: 0.9 -> 1/1
        (0.2, 0.5),  # k = 2: 0.9 (1), 0.8 (0) -> 1/2
        (0.3, 7 / 12),  # k = 3: 1 above-cut positive + 1 slot * 3/4 -> 1.75 / 3
        (0.5, 0.65),  # k = 5: 1 + 3 slots * 3/4 = 3.25 -> 3.25 / 5
        (0.6, 2 / 3),  # k = 6: the whole tie group: (1 + 3) / 6
        (0.7, 4 / 7),  # k = 7 (0.7 * 10 = 7.000000000000001 in floats, still 7): 4 / 7
        (0.75, 0.5),  # k = ceil(7.5) = 8: 4 above + 1 slot of the (0, 0) group at 0.2 -> 4 / 8
        (1.0, 0.5),  # everyone: 5 / 10
    ],
)
def test_precision_at_top_golden_with_ties(frac, expected):
    assert precision_at_top(YT, ST, frac) == pytest.approx(expected)


def test_precision_at_top_does_not_depend_on_order():
    perm = np.random.default_rng(3).permutation(len(YT))
    y, s = np.array(YT)[perm], np.array(ST)[perm]
    for frac in (0.1, 0.3, 0.5, 0.75):
        assert precision_at_top(y, s, frac) == pytest.approx(precision_at_top(YT, ST, frac))


def test_precision_at_top_perfect_and_constant():
    assert precision_at_top([0, 1, 0, 1], [0.2, 0.9, 0.1, 0.8], 0.5) == 1.0
    # constant: every slot is a draw from the single tie group -> base rate 2/5, for any k
    for frac in (0.2, 0.5, 1.0):
        assert precision_at_top([1, 0, 0, 1, 0], [0.4] * 5, frac) == pytest.approx(0.4)


@pytest.mark.parametrize("seed", range(5))
def test_precision_at_top_equals_mean_over_all_tie_breaks(seed):
    # exact expectation: every input order, stable sort by score, take the top k
    rng = np.random.default_rng(seed)
    n = 6
    y = rng.integers(0, 2, n)
    s = np.round(rng.random(n) * 0.4, 1)  # values in {0, .1, .2, .3, .4}: many ties
    for frac in (0.2, 0.5, 0.8):
        k = math.ceil(frac * n)
        total = 0.0
        perms = list(itertools.permutations(range(n)))
        for perm in perms:
            idx = np.array(perm)
            top = idx[np.argsort(-s[idx], kind="stable")[:k]]
            total += y[top].mean()
        assert precision_at_top(y, s, frac) == pytest.approx(total / len(perms))


# --- purchase report and table -----------------------------------------------------------------


def test_purchase_report_golden():
    out = purchase_report(Y, P, threshold=0.2)
    assert list(out) == [
        "auc",
        "pr_auc",
        "logloss",
        "precision",
        "recall",
        "f1",
        "precision@0.5",
        "recall@0.5",
        "f1@0.5",
        "threshold",
        "precision@top10%",
        "precision@top20%",
        "n_samples",
        "n_positive",
    ]
    # AUC: pos 0.9 beats 3 negs -> 3; pos 0.5: tie 0.5 -> 0.5, beats 0.3 -> 1, loses to 0.7 -> 1.5;
    # pos 0.2 -> 0; U = 4.5; AUC = 4.5 / 9 = 0.5
    assert out["auc"] == pytest.approx(0.5)
    assert out["pr_auc"] == pytest.approx(2 / 3)
    assert out["logloss"] == pytest.approx(log_loss(Y, P))
    # threshold 0.2 flags everyone: P = 3/6, R = 1, F1 = 2/3
    assert (out["precision"], out["recall"], out["f1"]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert (out["precision@0.5"], out["recall@0.5"], out["f1@0.5"]) == pytest.approx(
        (0.5, 2 / 3, 4 / 7)
    )
    assert out["threshold"] == 0.2
    # top 10% of 6 -> ceil(0.6) = 1 user (0.9, positive); top 20% -> ceil(1.2) = 2: 0.9, 0.7 -> 1/2
    assert out["precision@top10%"] == 1.0
    assert out["precision@top20%"] == 0.5
    assert (out["n_samples"], out["n_positive"]) == (6, 3)


def test_purchase_report_default_threshold_and_fracs():
    out = purchase_report(Y, P, top_fracs=(0.05, 0.5))
    assert out["threshold"] == 0.5
    assert (out["precision"], out["recall"], out["f1"]) == (
        out["precision@0.5"],
        out["recall@0.5"],
        out["f1@0.5"],
    )
    assert "precision@top5%" in out and "precision@top50%" in out
    assert "precision@top10%" not in out


@pytest.mark.parametrize("seed", range(4))
def test_purchase_report_agrees_with_parts_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(120) < 0.25).astype(int)
    y[:2] = [0, 1]
    p = np.round(rng.random(120), 1)
    t = best_f1_threshold(y, p)
    out = purchase_report(y, p, threshold=t)
    assert out["auc"] == pytest.approx(roc_auc_score(y, p)) == auc(y, p)
    assert out["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert out["logloss"] == logloss(y, p)
    assert out["f1"] == pytest.approx(f1_score(y, (p >= t).astype(int)))
    assert out["precision@top20%"] == precision_at_top(y, p, 0.2)


def test_report_table():
    rows = [
        {"model": "cnn_lstm", "auc": 0.81234, "f1": 0.5, "n_samples": 100},
        {"model": "lr", "auc": np.float32(0.7), "n_samples": 100, "note": "a|b"},
    ]
    assert report_table(rows) == (
        "| model | auc | f1 | n_samples | note |\n"
        "| --- | ---: | ---: | ---: | --- |\n"
        "| cnn_lstm | 0.8123 | 0.5000 | 100 | - |\n"
        "| lr | 0.7000 | - | 100 | a\\|b |\n"
    )
    assert report_table(rows, columns=["f1", "auc"]) == (
        "| model | f1 | auc |\n"
        "| --- | ---: | ---: |\n"
        "| cnn_lstm | 0.5000 | 0.8123 |\n"
        "| lr | - | 0.7000 |\n"
    )


def test_report_table_from_reports():
    reports = [{"model": m, **purchase_report(Y, P)} for m in ("a", "b")]
    table = report_table(reports, columns=["auc", "pr_auc", "precision@top10%"])
    assert table.splitlines()[0] == "| model | auc | pr_auc | precision@top10% |"
    assert table.splitlines()[2] == "| a | 0.5000 | 0.6667 | 1.0000 |"


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda p: precision_recall_f1(Y, p),
        lambda p: best_f1_threshold(Y, p),
        lambda p: purchase_report(Y, p),
    ],
)
def test_probs_nan_and_out_of_range(call):
    with pytest.raises(DataValidationError, match=r"NaN/inf.*index 2"):
        call([0.9, 0.5, float("nan"), 0.3, 0.2, 0.7])
    with pytest.raises(DataValidationError, match=r"\[0, 1\].*1\.2.*index 1"):
        call([0.9, 1.2, 0.5, 0.3, 0.2, 0.7])
    with pytest.raises(DataValidationError, match=r"\[0, 1\].*-0\.1.*index 5"):
        call([0.9, 0.5, 0.5, 0.3, 0.2, -0.1])


def test_scores_nan_for_ranking_metrics():
    s = [0.9, float("nan"), 0.5]
    with pytest.raises(DataValidationError, match=r"scores.*NaN/inf.*index 1"):
        average_precision([1, 0, 1], s)
    with pytest.raises(DataValidationError, match=r"scores.*NaN/inf.*index 1"):
        precision_at_top([1, 0, 1], s, 0.5)


@pytest.mark.parametrize(
    "call",
    [
        lambda y: precision_recall_f1(y, [0.1, 0.2, 0.3]),
        lambda y: best_f1_threshold(y, [0.1, 0.2, 0.3]),
        lambda y: average_precision(y, [0.1, 0.2, 0.3]),
        lambda y: precision_at_top(y, [0.1, 0.2, 0.3], 0.5),
        lambda y: purchase_report(y, [0.1, 0.2, 0.3]),
    ],
)
def test_labels_not_binary(call):
    with pytest.raises(DataValidationError, match=r"labels must be 0 or 1.*2.*index 1"):
        call([1, 2, 0])


def test_no_positive_labels():
    with pytest.raises(DataValidationError, match=r"recall is undefined.*labels are 0"):
        precision_recall_f1([0, 0, 0], [0.1, 0.6, 0.3])
    with pytest.raises(DataValidationError, match=r"average precision is undefined.*labels are 0"):
        average_precision([0, 0, 0], [0.1, 0.6, 0.3])
    with pytest.raises(DataValidationError, match=r"F1 is undefined.*labels are 0"):
        best_f1_threshold([0, 0, 0], [0.1, 0.6, 0.3])
    with pytest.raises(DataValidationError, match=r"undefined.*labels are 0"):
        purchase_report([0, 0, 0], [0.1, 0.6, 0.3])


@pytest.mark.parametrize("frac", [0, 0.0, -0.1, 1.5, float("nan"), "a lot", None])
def test_frac_out_of_range(frac):
    with pytest.raises(DataValidationError, match=r"frac must be"):
        precision_at_top(YT, ST, frac)
    with pytest.raises(DataValidationError, match=r"frac must be"):
        purchase_report(Y, P, top_fracs=(0.1, frac))


def test_duplicate_top_frac_keys():
    with pytest.raises(DataValidationError, match=r"duplicate keys.*precision@top10%"):
        purchase_report(Y, P, top_fracs=(0.1, 0.1001))


@pytest.mark.parametrize(
    "call",
    [
        lambda: precision_recall_f1([1, 0], [0.1, 0.2, 0.3]),
        lambda: best_f1_threshold([1, 0], [0.1, 0.2, 0.3]),
        lambda: average_precision([1, 0], [0.1, 0.2, 0.3]),
        lambda: precision_at_top([1, 0], [0.1, 0.2, 0.3], 0.5),
        lambda: purchase_report([1, 0], [0.1, 0.2, 0.3]),
    ],
)
def test_length_mismatch(call):
    with pytest.raises(DataValidationError, match=r"different lengths: labels=2, .*=3"):
        call()


def test_empty_input_and_bad_threshold():
    with pytest.raises(DataValidationError, match="empty input"):
        average_precision([], [])
    with pytest.raises(DataValidationError, match=r"threshold must be finite, got nan"):
        precision_recall_f1(Y, P, float("nan"))
    with pytest.raises(DataValidationError, match=r"threshold must be a number, got 'high'"):
        purchase_report(Y, P, threshold="high")


def test_report_table_errors():
    with pytest.raises(DataValidationError, match="at least one row"):
        report_table([])
    with pytest.raises(DataValidationError, match=r"row 1 has no 'model' key"):
        report_table([{"model": "a", "auc": 0.5}, {"auc": 0.6}])
    with pytest.raises(DataValidationError, match=r"columns \['acu'\] appear in no row"):
        report_table([{"model": "a", "auc": 0.5}], columns=["acu"])
