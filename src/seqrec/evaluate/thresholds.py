"""Threshold and top-of-list metrics for purchase prediction (who buys in a window).

The task ranks users by the probability that they buy from a category in a time
window. Beside AUC and log loss (from :mod:`seqrec.evaluate.classification`) it is
judged by thresholded precision/recall/F1, by PR-AUC and by the precision of a
campaign that targets the top fraction of users. Definitions, one implementation each:

* prediction at threshold ``t``: positive iff ``prob >= t``;
* precision = TP / (TP + FP), **0 when nothing is predicted positive** (as
  scikit-learn's ``zero_division=0``); recall = TP / (TP + FN), **undefined
  without a positive label** (raises); F1 = 2 P R / (P + R), **0 when P + R = 0**;
* best F1 threshold: the score value ``t`` (among the distinct scores) whose
  ``prob >= t`` rule has the highest F1; equal F1 -> the largest such ``t``.
  Choose it on validation data, then apply it to test;
* average precision (PR-AUC) = sum_k (R_k - R_{k-1}) P_k over the distinct score
  values taken as thresholds in decreasing order, R_0 = 0; tied scores are one
  threshold (exactly scikit-learn's ``average_precision_score``);
* precision@top(frac) = precision among the ceil(frac * N) highest-scored users;
  the users tied with the last one taken count with the tied group's mean label
  (the expected precision under random tie-breaking), so input order is irrelevant.

Bad input raises :class:`seqrec.errors.DataValidationError` naming the value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from seqrec.errors import DataValidationError
from seqrec.evaluate.classification import _auc, _check_probs, _logloss, _validate

__all__ = [
    "average_precision",
    "best_f1_threshold",
    "precision_at_top",
    "precision_recall_f1",
    "purchase_report",
    "report_table",
]


def _check_threshold(threshold: Any) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise DataValidationError(f"threshold must be a number, got {threshold!r}") from None
    if not math.isfinite(t):
        raise DataValidationError(f"threshold must be finite, got {threshold!r}")
    return t


def _require_positive(pos: np.ndarray, what: str) -> int:
    n_pos = int(pos.sum())
    if n_pos == 0:
        raise DataValidationError(
            f"{what} is undefined: all {len(pos)} labels are 0 (need at least one positive)"
        )
    return n_pos


def _prf(pos: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float | int]:
    n_pos = _require_positive(pos, "recall")
    pred = p >= threshold
    n_pred = int(pred.sum())
    tp = int((pred & pos).sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_pos
    # F1 = 2 TP / (n_pred + n_pos): the same value as 2PR/(P+R), 0 when TP = 0
    f1 = 2.0 * tp / (n_pred + n_pos)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "threshold": threshold,
        "n_predicted_positive": n_pred,
    }


def precision_recall_f1(labels: Any, probs: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Precision, recall and F1 of the rule ``prob >= threshold``.

    Returns ``precision``, ``recall``, ``f1``, ``threshold``, ``n_predicted_positive``.
    Precision is 0 when nothing is predicted positive (scikit-learn's
    ``zero_division=0``); recall needs at least one positive label (else
    DataValidationError); F1 is 0 when precision + recall = 0.
    """
    t = _check_threshold(threshold)
    pos, p = _validate(labels, probs, "probs")
    return _prf(pos, _check_probs(p), t)


def _thresholds_desc(pos: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores in decreasing order, with TP and #predicted of ``s >= value``.

    One sort; the counts at the last row of each tie block are the counts of the
    rule ``s >= block value`` because the whole block is on the positive side.
    """
    order = np.argsort(-s, kind="stable")
    s_desc = s[order]
    tp_cum = np.cumsum(pos[order], dtype=np.int64)
    last = np.r_[s_desc[1:] != s_desc[:-1], True]  # last row of each tie block
    idx = np.flatnonzero(last)
    return s_desc[idx], tp_cum[idx], idx + 1


def best_f1_threshold(labels: Any, probs: Any) -> float:
    """The threshold ``t`` among the distinct probs maximising F1 of ``prob >= t``.

    F1(t) = 2 TP(t) / (#predicted(t) + #positives). Equal F1 -> the largest ``t``
    (fewest users flagged). Needs at least one positive label. Vectorised: one
    sort and cumulative counts. Pick it on validation data; apply it on test.
    """
    pos, p = _validate(labels, probs, "probs")
    _check_probs(p)
    n_pos = _require_positive(pos, "F1")
    values, tp, n_pred = _thresholds_desc(pos, p)
    # Each F1 is one correctly rounded division of integers, so equal ratios give
    # bit-equal floats and argmax (first max = largest t, values decrease) is exact.
    f1 = 2.0 * tp / (n_pred + n_pos)
    return float(values[int(np.argmax(f1))])


def _average_precision(pos: np.ndarray, s: np.ndarray) -> float:
    n_pos = _require_positive(pos, "average precision")
    _, tp, n_pred = _thresholds_desc(pos, s)
    d_tp = np.diff(tp, prepend=0)  # (R_k - R_{k-1}) * n_pos
    return float(np.sum(d_tp * (tp / n_pred)) / n_pos)


def average_precision(labels: Any, scores: Any) -> float:
    """PR-AUC as step-wise average precision: sum_k (R_k - R_{k-1}) P_k.

    k runs over the distinct score values in decreasing order, each used as the
    threshold ``score >= value`` (tied scores are one threshold), R_0 = 0. Equal to
    scikit-learn's ``average_precision_score``. Needs at least one positive label.
    """
    pos, s = _validate(labels, scores)
    return _average_precision(pos, s)


def _check_frac(frac: Any) -> float:
    try:
        f = float(frac)
    except (TypeError, ValueError):
        raise DataValidationError(f"frac must be a number in (0, 1], got {frac!r}") from None
    if not 0.0 < f <= 1.0:  # NaN fails too
        raise DataValidationError(f"frac must be in (0, 1], got {frac!r}")
    return f


def _top_k(frac: float, n: int) -> int:
    x = frac * n
    # 0.7 * 10 is 7.000000000000001 in floats; a product within float rounding
    # (relative 1e-12) of an integer is that integer, not the next one up
    k = round(x) if abs(x - round(x)) <= 1e-12 * max(1.0, x) else math.ceil(x)
    return min(max(int(k), 1), n)


def _expected_tp_at_top(pos: np.ndarray, s: np.ndarray, k: int) -> float:
    """Expected positives among the k highest scores when ties are broken at random."""
    cut = np.sort(s)[len(s) - k]  # the k-th highest score
    above = s > cut
    tied = s == cut
    n_above = int(above.sum())
    pos_tied = int((tied & pos).sum())
    # the k - n_above slots left go to the tied group; expected positives = share * mean label
    return int((above & pos).sum()) + (k - n_above) * pos_tied / int(tied.sum())


def _precision_at_top(pos: np.ndarray, s: np.ndarray, frac: float) -> float:
    k = _top_k(frac, len(s))
    return float(_expected_tp_at_top(pos, s, k) / k)


def precision_at_top(labels: Any, scores: Any, frac: float) -> float:
    """Precision among the top ceil(frac * N) users by score (who a campaign would target).

    Users tied with the last one taken count with the tied group's mean label, i.e.
    the expected precision under random tie-breaking; the result does not depend on
    input order. ``frac`` must be in (0, 1]; frac * N within a relative 1e-12 of an
    integer is taken as that integer (so 70% of 10 users is 7, not 8 through float rounding).
    """
    f = _check_frac(frac)
    pos, s = _validate(labels, scores)
    return _precision_at_top(pos, s, f)


def _top_key(frac: float) -> str:
    return f"precision@top{round(100 * frac)}%"


def purchase_report(
    labels: Any,
    probs: Any,
    threshold: float | None = None,
    top_fracs: Iterable[float] = (0.1, 0.2),
) -> dict[str, Any]:
    """All purchase-prediction metrics in one dict.

    Keys: ``auc``, ``pr_auc`` (average precision), ``logloss``, ``precision``,
    ``recall``, ``f1`` at ``threshold`` (the one chosen on validation, e.g. by
    :func:`best_f1_threshold`; 0.5 when None), ``precision@0.5``, ``recall@0.5``,
    ``f1@0.5``, ``threshold``, ``precision@top{round(100*frac)}%`` per frac,
    ``n_samples``, ``n_positive``. Probs must be finite and in [0, 1]; both classes
    must be present (AUC).
    """
    t = 0.5 if threshold is None else _check_threshold(threshold)
    fracs = [_check_frac(f) for f in top_fracs]
    keys = [_top_key(f) for f in fracs]
    if len(set(keys)) != len(keys):
        raise DataValidationError(f"top_fracs {list(top_fracs)!r} give duplicate keys {keys}")
    pos, p = _validate(labels, probs, "probs")
    _check_probs(p)
    at_t = _prf(pos, p, t)
    at_half = _prf(pos, p, 0.5)
    out: dict[str, Any] = {
        "auc": _auc(pos, p),
        "pr_auc": _average_precision(pos, p),
        "logloss": _logloss(pos, p, 1e-7),
        "precision": at_t["precision"],
        "recall": at_t["recall"],
        "f1": at_t["f1"],
        "precision@0.5": at_half["precision"],
        "recall@0.5": at_half["recall"],
        "f1@0.5": at_half["f1"],
        "threshold": t,
    }
    for f, key in zip(fracs, keys, strict=True):
        out[key] = _precision_at_top(pos, p, f)
    out["n_samples"] = len(pos)
    out["n_positive"] = int(pos.sum())
    return out


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4f}"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return str(v).replace("|", "\\|").replace("\n", " ")


def report_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A markdown table with one row per model: ``model`` first, then the metrics.

    ``columns`` picks and orders the metric columns (default: every key in order of
    first appearance over the rows). Floats print with 4 decimals; a metric a row
    lacks prints as ``-``. Numeric columns are right-aligned.
    """
    if not rows:
        raise DataValidationError("report_table needs at least one row")
    for i, row in enumerate(rows):
        if "model" not in row:
            raise DataValidationError(f"row {i} has no 'model' key (keys: {sorted(row)})")
    if columns is None:
        cols = list(dict.fromkeys(k for row in rows for k in row if k != "model"))
    else:
        cols = [c for c in columns if c != "model"]
        unknown = [c for c in cols if not any(c in row for row in rows)]
        if unknown:
            raise DataValidationError(f"columns {unknown} appear in no row")
    cols = ["model", *cols]
    cells = [[_cell(row.get(c)) for c in cols] for row in rows]

    def numeric(c: str) -> bool:
        vals = [row[c] for row in rows if row.get(c) is not None]
        return bool(vals) and all(
            isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_))
            for v in vals
        )

    align = ["---:" if c != "model" and numeric(c) else "---" for c in cols]
    lines = [
        "| " + " | ".join(cols) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(r) + " |" for r in cells),
    ]
    return "\n".join(lines) + "\n"
