"""Campaign metrics for purchase prediction: who to contact when every active user is scored.

Under the ``deployment`` protocol (:mod:`seqrec.data.tasks.purchase`) a test set holds every
active user at the natural base rate (a few percent to a half), and a campaign contacts the
highest-scored fraction. What matters there is how many buyers that fraction holds, so beside
PR-AUC and AUC the report gives, for each fraction ``f`` of users (default 1 %, 5 %, 10 %):

* ``k = ceil(f * N)`` users, at least 1 (a product within float rounding of an integer is
  that integer: 5 % of 400 users is 20, not 21; :func:`seqrec.evaluate.thresholds._top_k`);
* precision@top{f} = buyers among those k / k (the same implementation as
  :func:`seqrec.evaluate.thresholds.precision_at_top`);
* recall@top{f} = buyers among those k / all buyers (at most k / #buyers);
* lift@top{f} = precision@top{f} / base rate: 1 is a random pick, 1 / base rate the most
  possible while k <= #buyers;
* base rate = buyers / users, reported with the numbers of users and buyers.

**Ties** are real here: the rule baselines score with 0/1 flags and counts
(:mod:`seqrec.baselines.purchase_rules`), so hundreds of users share one score. Every metric
is defined for ties and does not depend on the input order:

* top-k: the users tied with the k-th highest score fill the slots left with the tied
  group's mean label, the expectation under random tie-breaking (so a 0/1 rule's precision
  at the top 1 % is the buyers' share among all flagged users, not an accident of order);
* AUC: a tied (buyer, non-buyer) pair counts 1/2, again the expectation under random
  tie-breaking (:mod:`seqrec.evaluate.classification`);
* PR-AUC (average precision): a tied block is one threshold, scikit-learn's step curve with
  no interpolation. For a 0/1 rule that flags users with precision P1 and recall R1 it is
  ``P1 R1 + base_rate (1 - R1)``. This is scikit-learn's number, not the expectation under
  random tie-breaking (which is lower for the unflagged block); it is stated, not adjusted.

Scores only need to be finite (only their order counts). Bad input raises
:class:`seqrec.errors.DataValidationError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from seqrec.errors import DataValidationError
from seqrec.evaluate.classification import _auc, _validate
from seqrec.evaluate.thresholds import (
    _average_precision,
    _check_frac,
    _expected_tp_at_top,
    _precision_at_top,
    _require_positive,
    _top_k,
)

__all__ = ["TOP_FRACS", "campaign_report", "lift_at_top", "recall_at_top"]

TOP_FRACS = (0.01, 0.05, 0.10)


def _recall_at_top(pos: np.ndarray, s: np.ndarray, frac: float) -> float:
    n_pos = _require_positive(pos, "recall at the top")
    return float(_expected_tp_at_top(pos, s, _top_k(frac, len(s))) / n_pos)


def _lift_at_top(pos: np.ndarray, s: np.ndarray, frac: float) -> float:
    n_pos = _require_positive(pos, "lift")
    k = _top_k(frac, len(s))
    # (TP / k) / (n_pos / N) as one division of exact counts
    return float(_expected_tp_at_top(pos, s, k) * len(s) / (k * n_pos))


def recall_at_top(labels: Any, scores: Any, frac: float) -> float:
    """Share of all buyers among the ceil(frac * N) highest-scored users (ties: expected value)."""
    f = _check_frac(frac)
    pos, s = _validate(labels, scores)
    return _recall_at_top(pos, s, f)


def lift_at_top(labels: Any, scores: Any, frac: float) -> float:
    """precision@top(frac) / base rate: how many times better than contacting users at random."""
    f = _check_frac(frac)
    pos, s = _validate(labels, scores)
    return _lift_at_top(pos, s, f)


def _pct(frac: float) -> str:
    return f"{round(100 * frac)}%"


def campaign_report(labels: Any, scores: Any, top_fracs: Iterable[float] = TOP_FRACS) -> dict[str, Any]:
    """Base rate, PR-AUC, AUC and precision / recall / lift at the top fractions, in one dict.

    Keys: ``n_users``, ``n_positive``, ``base_rate``, ``pr_auc``, ``auc`` and per fraction
    ``precision@top{p}%``, ``recall@top{p}%``, ``lift@top{p}%`` (p = round(100 * frac)).
    Both classes must be present.
    """
    fracs = [_check_frac(f) for f in top_fracs]
    keys = [_pct(f) for f in fracs]
    if len(set(keys)) != len(keys):
        raise DataValidationError(f"top_fracs {list(top_fracs)!r} give duplicate keys {keys}")
    pos, s = _validate(labels, scores)
    n_pos = _require_positive(pos, "the campaign report")
    if n_pos == len(pos):
        raise DataValidationError(f"all {len(pos)} labels are 1: AUC and lift need non-buyers too")
    out: dict[str, Any] = {"n_users": len(pos), "n_positive": n_pos, "base_rate": n_pos / len(pos),
                           "pr_auc": _average_precision(pos, s), "auc": _auc(pos, s)}
    for f, key in zip(fracs, keys, strict=True):
        out[f"precision@top{key}"] = _precision_at_top(pos, s, f)
        out[f"recall@top{key}"] = _recall_at_top(pos, s, f)
        out[f"lift@top{key}"] = _lift_at_top(pos, s, f)
    return out
