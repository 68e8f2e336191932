"""Golden tests for the CTR classification metrics (values by hand) and sklearn cross-checks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from seqrec.errors import DataValidationError
from seqrec.evaluate.classification import auc, classification_metrics, gauc, logloss

# --- golden values -----------------------------------------------------------------------------


def test_auc_golden_with_tie():
    # positives: idx0 (0.8), idx2 (0.3); negatives: idx1 (0.8), idx3 (0.1)
    # pairs (pos, neg): (0.8, 0.8) tie -> 0.5; (0.8, 0.1) -> 1; (0.3, 0.8) -> 0; (0.3, 0.1) -> 1
    # U = 0.5 + 1 + 0 + 1 = 2.5; AUC = 2.5 / (2 * 2) = 0.625
    # via ranks: 0.1 -> 1, 0.3 -> 2, 0.8, 0.8 -> (3 + 4) / 2 = 3.5 each;
    #   R_pos = 3.5 + 2 = 5.5; U = 5.5 - 2 * 3 / 2 = 2.5
    assert auc([1, 0, 1, 0], [0.8, 0.8, 0.3, 0.1]) == pytest.approx(0.625)


def test_auc_golden_three_way_tie():
    # positives 0.9, 0.4; negatives 0.4, 0.4, 0.2
    # pos 0.9 beats all 3 negatives -> 3; pos 0.4: tie, tie, beats 0.2 -> 0.5 + 0.5 + 1 = 2
    # U = 5; AUC = 5 / (2 * 3) = 5/6
    assert auc([1, 1, 0, 0, 0], [0.9, 0.4, 0.4, 0.4, 0.2]) == pytest.approx(5 / 6)


def test_auc_extremes():
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    assert auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.0)
    # every pair tied -> 0.5 each -> AUC 0.5
    assert auc([1, 0, 1, 0, 0], [0.3] * 5) == pytest.approx(0.5)


def test_auc_accepts_torch_bool_and_low_precision():
    y = torch.tensor([True, False, True, False])
    s = torch.tensor([0.8, 0.8, 0.3, 0.1], dtype=torch.bfloat16, requires_grad=True)
    assert auc(y, s) == pytest.approx(0.625)
    assert auc(np.array([1.0, 0.0, 1.0, 0.0]), np.float32([0.8, 0.8, 0.3, 0.1])) == pytest.approx(
        0.625
    )


# three users, rows interleaved (not sorted by user or score):
#   user "a": labels 1, 0, 0    scores 0.6, 0.6, 0.7
#   user "b": labels 1, 0, 1, 0 scores 0.8, 0.8, 0.3, 0.1
#   user "c": labels 1, 1       scores 0.1, 0.9        (one class only -> excluded)
USERS = ["b", "a", "c", "b", "a", "b", "c", "a", "b"]
LABELS = [1, 1, 1, 0, 0, 1, 1, 0, 0]
SCORES = [0.8, 0.6, 0.1, 0.8, 0.6, 0.3, 0.9, 0.7, 0.1]
# user a: pos 0.6 vs neg 0.6 -> 0.5, vs neg 0.7 -> 0; U = 0.5; AUC = 0.5 / (1 * 2) = 0.25
# user b: the first golden example -> AUC 0.625
# weighted by samples: (3 * 0.25 + 4 * 0.625) / (3 + 4) = (0.75 + 2.5) / 7 = 3.25 / 7
# unweighted: (0.25 + 0.625) / 2 = 0.4375
GAUC_W = 3.25 / 7
GAUC_U = 0.4375


def test_gauc_golden_weighted_and_unweighted():
    assert gauc(USERS, LABELS, SCORES) == (pytest.approx(GAUC_W), 2)
    assert pytest.approx(0.4642857142857) == GAUC_W
    assert gauc(USERS, LABELS, SCORES, weighted=False) == (pytest.approx(GAUC_U), 2)


def test_gauc_torch_int_users_and_permutation_invariance():
    ids = {"a": 7, "b": 3, "c": 11}
    u = torch.tensor([ids[x] for x in USERS])
    assert gauc(u, torch.tensor(LABELS), torch.tensor(SCORES)) == (pytest.approx(GAUC_W), 2)
    perm = np.random.default_rng(0).permutation(len(USERS))
    value, n = gauc(np.array(USERS)[perm], np.array(LABELS)[perm], np.array(SCORES)[perm])
    assert (value, n) == (pytest.approx(GAUC_W), 2)


def test_gauc_single_user_equals_auc():
    value, n = gauc([5, 5, 5, 5], [1, 0, 1, 0], [0.8, 0.8, 0.3, 0.1])
    assert (value, n) == (pytest.approx(0.625), 1)


def test_logloss_golden():
    # -ln 0.9 = 0.105360516, -ln(1 - 0.2) = 0.223143551, -ln 0.5 = 0.693147181,
    # label 0 with prob 0 -> clipped to 1e-7 -> -ln(1 - 1e-7) = 1.00000005e-7
    # sum = 1.021651248 + 0.0000001 = 1.021651348; mean = 0.255412837
    assert logloss([1, 0, 1, 0], [0.9, 0.2, 0.5, 0.0]) == pytest.approx(0.255412837, abs=1e-9)


def test_logloss_clipping():
    # both predictions certain and wrong: clipped to 1e-7 -> -ln(1e-7) = 7 ln 10 = 16.11809565
    assert logloss([1, 0], [0.0, 1.0]) == pytest.approx(16.11809565)
    # a single class is fine for log loss; eps moves the clip
    assert logloss([1], [0.0], eps=1e-3) == pytest.approx(-math.log(1e-3))


def test_classification_metrics_golden():
    m = classification_metrics(LABELS, SCORES, USERS)
    # global AUC over all 9 rows: positives 0.8, 0.6, 0.1, 0.3, 0.9; negatives 0.8, 0.6, 0.7, 0.1
    # pos 0.8: 0.5 + 1 + 1 + 1 = 3.5; pos 0.6: 0 + 0.5 + 0 + 1 = 1.5; pos 0.1: 0 + 0 + 0 + 0.5 = 0.5
    # pos 0.3: 0 + 0 + 0 + 1 = 1;     pos 0.9: 4;   U = 10.5; AUC = 10.5 / (5 * 4) = 0.525
    assert m["auc"] == pytest.approx(0.525)
    assert m["gauc"] == pytest.approx(GAUC_W)
    assert m["gauc_unweighted"] == pytest.approx(GAUC_U)
    assert m["n_gauc_users"] == 2
    assert m["n_samples"] == 9
    assert m["positive_rate"] == pytest.approx(5 / 9)
    assert m["logloss"] == pytest.approx(logloss(LABELS, SCORES))
    assert set(m) == {
        "auc",
        "gauc",
        "gauc_unweighted",
        "logloss",
        "n_samples",
        "n_gauc_users",
        "positive_rate",
    }


def test_classification_metrics_without_users():
    m = classification_metrics([1, 0, 1, 0], [0.8, 0.8, 0.3, 0.1])
    assert m["gauc"] is None and m["gauc_unweighted"] is None and m["n_gauc_users"] is None
    assert m["auc"] == pytest.approx(0.625)
    assert m["n_samples"] == 4
    assert m["positive_rate"] == pytest.approx(0.5)


def test_classification_metrics_logits_golden():
    # sigmoid(0) = 0.5, sigmoid(ln 4) = 4 / 5 = 0.8, sigmoid(-ln 4) = 0.2
    # labels 1, 1, 0: -(ln 0.5 + ln 0.8 + ln 0.8) / 3 = (0.693147181 + 2 * 0.223143551) / 3
    #                 = 1.139434283 / 3 = 0.379811428
    m = classification_metrics([1, 1, 0], [0.0, math.log(4), -math.log(4)], probs=False)
    assert m["logloss"] == pytest.approx(0.379811428, abs=1e-9)
    assert m["auc"] == pytest.approx(1.0)


def test_classification_metrics_logits_extreme_are_stable():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would warn
        m = classification_metrics([0, 1], [1000.0, -1000.0], probs=False)
    # sigmoid gives 1 and 0, both wrong, both clipped -> -ln(1e-7) = 16.11809565 each
    assert m["logloss"] == pytest.approx(16.11809565)
    assert m["auc"] == pytest.approx(0.0)
    # sigmoid(40) and sigmoid(50) are both 1.0 in float64; AUC on the logits still separates them
    m = classification_metrics([0, 1], [40.0, 50.0], probs=False)
    assert m["auc"] == pytest.approx(1.0)


# --- cross-checks against scikit-learn ---------------------------------------------------------


def _random_data(seed: int, n: int, n_users: int):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, size=n)
    labels = (rng.random(n) < 0.3).astype(np.int64)
    # one decimal -> at most 11 distinct scores: lots of ties; the clip keeps 0 and 1 out so
    # sklearn's log_loss (which clips at machine eps, not 1e-7) sees the same values
    probs = np.clip(np.round(0.3 * labels + rng.random(n) * 0.7, 1), 0.01, 0.99)
    return users, labels, probs


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_auc_and_logloss_match_sklearn(seed):
    _, y, p = _random_data(seed, n=1000 + 137 * seed, n_users=1)
    assert len(np.unique(p)) <= 11
    assert auc(y, p) == pytest.approx(roc_auc_score(y, p), rel=1e-12)
    assert auc(y, p.astype(np.float32)) == pytest.approx(
        roc_auc_score(y, p.astype(np.float32)), rel=1e-12
    )
    assert logloss(y, p) == pytest.approx(log_loss(y, p, labels=[0, 1]), rel=1e-12)


def _slow_gauc(users, labels, scores):
    aucs, sizes = [], []
    for u in np.unique(users):
        m = users == u
        if len(np.unique(labels[m])) == 2:
            aucs.append(roc_auc_score(labels[m], scores[m]))
            sizes.append(m.sum())
    aucs, sizes = np.array(aucs), np.array(sizes, dtype=np.float64)
    return float(np.dot(aucs, sizes) / sizes.sum()), float(aucs.mean()), len(aucs)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_gauc_matches_per_user_sklearn_loop(seed):
    users, y, p = _random_data(seed, n=3000, n_users=600)
    want_w, want_u, want_n = _slow_gauc(users, y, p)
    assert want_n < len(np.unique(users))  # some users have one class and must be skipped
    assert gauc(users, y, p) == (pytest.approx(want_w, rel=1e-12), want_n)
    assert gauc(users, y, p, weighted=False) == (pytest.approx(want_u, rel=1e-12), want_n)
    m = classification_metrics(y, p, users)
    assert m["gauc"] == pytest.approx(want_w, rel=1e-12)
    assert m["gauc_unweighted"] == pytest.approx(want_u, rel=1e-12)
    assert m["n_gauc_users"] == want_n
    assert m["auc"] == pytest.approx(roc_auc_score(y, p), rel=1e-12)


def test_logits_logloss_matches_sklearn():
    rng = np.random.default_rng(7)
    z = rng.normal(0, 3, size=500)
    y = (rng.random(500) < 0.4).astype(int)
    m = classification_metrics(y, z, probs=False)
    assert m["logloss"] == pytest.approx(log_loss(y, 1 / (1 + np.exp(-z))), rel=1e-9)
    assert m["auc"] == pytest.approx(roc_auc_score(y, z), rel=1e-12)


# --- validation errors -------------------------------------------------------------------------


def _auc(y, s):
    return auc(y, s)


def _gauc(y, s):
    return gauc(np.zeros(len(y), dtype=int), y, s)


def _metrics(y, s):
    return classification_metrics(y, s)


@pytest.mark.parametrize("fn", [_auc, _gauc, _metrics])
@pytest.mark.parametrize(
    ("labels", "scores", "match"),
    [
        ([1, 0, 1], [0.5, 0.5], r"different lengths: labels=3, (scores|probs)=2"),
        ([], [], r"empty input"),
        ([1, 0, 1, 2], [0.1, 0.2, 0.3, 0.4], r"labels must be 0 or 1; found 2 at index 3"),
        ([1, -1, 0], [0.1, 0.2, 0.3], r"found -1 at index 1 \(1 invalid\)"),
        ([1.0, float("nan"), 0.0], [0.1, 0.2, 0.3], r"found nan at index 1"),
        (["1", "0"], [0.1, 0.2], r"labels must be numeric 0/1"),
        (
            [1, 0, 1, 0],
            [0.1, float("nan"), float("inf"), 0.3],
            r"2 NaN/inf value\(s\); first at index 1",
        ),
        ([[1, 0]], [[0.1, 0.2]], r"labels must be 1-D, got shape \(1, 2\)"),
    ],
)
def test_validation_errors(fn, labels, scores, match):
    with pytest.raises(DataValidationError, match=match):
        fn(labels, scores)


@pytest.mark.parametrize("cls", [0, 1])
def test_auc_single_class(cls):
    with pytest.raises(DataValidationError, match=rf"AUC is undefined: all 3 labels are {cls}"):
        auc([cls] * 3, [0.1, 0.2, 0.3])
    with pytest.raises(DataValidationError, match=r"AUC is undefined"):
        classification_metrics([cls] * 3, [0.1, 0.2, 0.3])


def test_gauc_errors():
    with pytest.raises(DataValidationError, match=r"none of the 2 users has both"):
        gauc([1, 1, 2, 2], [1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(DataValidationError, match=r"different lengths: users=3, labels=4"):
        gauc([1, 1, 2], [1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(DataValidationError, match=r"users contain NaN ids; first at index 2"):
        gauc([1.0, 1.0, float("nan"), 2.0], [1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(DataValidationError, match=r"different lengths: users=3, labels=4"):
        classification_metrics([1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4], users=[1, 1, 2])


def test_logloss_errors():
    with pytest.raises(
        DataValidationError, match=r"probs must lie in \[0, 1\]; found 1.5 at index 1"
    ):
        logloss([1, 0, 1], [0.5, 1.5, -0.1])
    with pytest.raises(DataValidationError, match=r"\(2 outside\)"):
        logloss([1, 0, 1], [0.5, 1.5, -0.1])
    with pytest.raises(
        DataValidationError, match=r"probs contain 1 NaN/inf value\(s\); first at index 0"
    ):
        logloss([1, 0], [float("nan"), 0.5])
    with pytest.raises(DataValidationError, match=r"labels must be 0 or 1; found 3 at index 0"):
        logloss([3, 0], [0.5, 0.5])
    with pytest.raises(DataValidationError, match=r"different lengths: labels=1, probs=2"):
        logloss([1], [0.5, 0.5])
    with pytest.raises(DataValidationError, match=r"empty input"):
        logloss([], [])
    with pytest.raises(ValueError, match=r"eps must be in \(0, 0.5\)"):
        logloss([1], [0.5], eps=0.0)


def test_metrics_probs_range_checked_only_for_probs():
    with pytest.raises(
        DataValidationError, match=r"probs must lie in \[0, 1\]; found 2.0 at index 1"
    ):
        classification_metrics([1, 0], [0.5, 2.0])
    # the same values are valid logits
    assert classification_metrics([1, 0], [0.5, 2.0], probs=False)["auc"] == pytest.approx(0.0)
    with pytest.raises(DataValidationError, match=r"logits contain 1 NaN/inf"):
        classification_metrics([1, 0], [0.5, float("inf")], probs=False)
