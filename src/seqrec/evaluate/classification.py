"""Binary (CTR) classification metrics: AUC, GAUC, log loss.

One implementation, used by every CTR model and baseline:

* AUC = probability that a random positive is scored above a random negative,
  i.e. the Mann-Whitney U statistic divided by ``n_pos * n_neg``; a tied
  (positive, negative) pair counts as half (average ranks of tied scores), so
  AUC is exact, not a thresholded approximation, and constant scores give 0.5;
* GAUC = per-user AUC averaged over users. Default weighting is the user's
  number of samples (impressions), as in the DIN paper (Zhou et al., KDD 2018,
  the GAUC equation); ``weighted=False`` gives the plain mean over users. Users
  whose samples are all positive or all negative have no AUC and are skipped;
  the number of users used is returned with the value;
* log loss = mean binary cross-entropy, probabilities clipped to
  ``[eps, 1 - eps]`` so one confident mistake cannot make the mean infinite.

Inputs are 1-D array-likes (numpy arrays, lists, torch tensors). Bad values
raise :class:`seqrec.errors.DataValidationError` naming the value and index.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from seqrec.errors import DataValidationError


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor; bf16/half have no numpy dtype, so widen first
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()
        x = x.numpy()
    a = np.asarray(x)
    if a.ndim != 1:
        raise DataValidationError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def _check_lengths(**arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise DataValidationError(f"inputs have different lengths: {desc}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise DataValidationError("empty input: no samples to evaluate")
    return n


def _check_labels(y: np.ndarray) -> np.ndarray:
    if y.dtype.kind not in "biuf":
        raise DataValidationError(f"labels must be numeric 0/1, got dtype {y.dtype}")
    bad = np.flatnonzero((y != 0) & (y != 1))  # NaN fails both tests, so it is caught here
    if len(bad):
        i = int(bad[0])
        raise DataValidationError(
            f"labels must be 0 or 1; found {y[i].item()!r} at index {i} ({len(bad)} invalid)"
        )
    return y == 1


def _check_finite(s: np.ndarray, name: str) -> np.ndarray:
    s = s.astype(np.float64, copy=False)
    bad = np.flatnonzero(~np.isfinite(s))
    if len(bad):
        raise DataValidationError(
            f"{name} contain {len(bad)} NaN/inf value(s); first at index {int(bad[0])}"
        )
    return s


def _check_users(u: np.ndarray) -> np.ndarray:
    # a NaN id differs from itself: every NaN row would become its own one-sample "user"
    if u.dtype.kind == "f" and np.isnan(u).any():
        i = int(np.flatnonzero(np.isnan(u))[0])
        raise DataValidationError(f"users contain NaN ids; first at index {i}")
    return u


def _validate(labels: Any, scores: Any, name: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    y = _to_numpy(labels, "labels")
    s = _to_numpy(scores, name)
    _check_lengths(labels=y, **{name: s})
    return _check_labels(y), _check_finite(s, name)


def _group_u(pos: np.ndarray, s: np.ndarray, users: np.ndarray | None):
    """Per-group (2U, n_pos, n_neg, size); one group when ``users`` is None.

    Rows are sorted by (user, score); a tie block occupying sorted positions
    [a, b) of a user starting at u0 has within-user ranks a-u0+1 .. b-u0, so its
    average rank doubled is a + b + 1 - 2*u0: an integer. Summing doubled ranks
    in int64 keeps U exact (no float rounding) up to ~3e9 samples.
    """
    n = len(s)
    if users is None:
        order = np.argsort(s, kind="stable")
        new_user = np.zeros(n, dtype=bool)
        new_user[0] = True
    else:
        order = np.lexsort((s, users))
        u = users[order]
        new_user = np.r_[True, u[1:] != u[:-1]]
    s, pos = s[order], pos[order]
    new_tie = new_user | np.r_[True, s[1:] != s[:-1]]  # a tie never spans two users
    tie_start = np.flatnonzero(new_tie)
    tie_end = np.r_[tie_start[1:], n]
    user_start = np.flatnonzero(new_user)
    tie_id = np.cumsum(new_tie) - 1
    user_id = np.cumsum(new_user) - 1
    twice_rank = (tie_start + tie_end + 1)[tie_id] - 2 * user_start[user_id]
    n_pos = np.add.reduceat(pos.astype(np.int64), user_start)
    size = np.diff(np.r_[user_start, n])
    twice_rank_sum = np.add.reduceat(np.where(pos, twice_rank, 0), user_start)
    twice_u = twice_rank_sum - n_pos * (n_pos + 1)  # U = R_pos - n_pos (n_pos + 1) / 2
    return twice_u, n_pos, size - n_pos, size


def _auc(pos: np.ndarray, s: np.ndarray) -> float:
    n_pos = int(pos.sum())
    if n_pos == 0 or n_pos == len(pos):
        cls = 1 if n_pos else 0
        raise DataValidationError(
            f"AUC is undefined: all {len(pos)} labels are {cls} (need both classes)"
        )
    twice_u, p, q, _ = _group_u(pos, s, None)
    return float(twice_u[0] / (2.0 * p[0] * q[0]))


def _gauc(pos: np.ndarray, s: np.ndarray, users: np.ndarray) -> tuple[float, float, int]:
    twice_u, p, q, size = _group_u(pos, s, users)
    ok = (p > 0) & (q > 0)
    n_users = int(ok.sum())
    if n_users == 0:
        raise DataValidationError(
            f"GAUC is undefined: none of the {len(p)} users has both a positive and a negative label"
        )
    aucs = twice_u[ok] / (2.0 * p[ok] * q[ok])
    w = size[ok].astype(np.float64)
    return float(np.dot(w, aucs) / w.sum()), float(aucs.mean()), n_users


def auc(labels: Any, scores: Any) -> float:
    """Exact ROC AUC (Mann-Whitney U / (n_pos * n_neg)); tied scores count as half."""
    pos, s = _validate(labels, scores)
    return _auc(pos, s)


def gauc(users: Any, labels: Any, scores: Any, weighted: bool = True) -> tuple[float, int]:
    """Per-user AUC averaged over users with both classes; returns (GAUC, n_users_used).

    ``weighted=True`` weights each user by their number of samples (DIN paper);
    ``weighted=False`` is the plain mean over users.
    """
    pos, s = _validate(labels, scores)
    u = _check_users(_to_numpy(users, "users"))
    _check_lengths(users=u, labels=pos)
    value_w, value_u, n_users = _gauc(pos, s, u)
    return (value_w if weighted else value_u), n_users


def _logloss(pos: np.ndarray, p: np.ndarray, eps: float) -> float:
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(np.where(pos, np.log(p), np.log1p(-p))))


def _check_probs(p: np.ndarray) -> np.ndarray:
    bad = np.flatnonzero((p < 0) | (p > 1))
    if len(bad):
        i = int(bad[0])
        raise DataValidationError(
            f"probs must lie in [0, 1]; found {p[i].item()!r} at index {i} ({len(bad)} outside)"
        )
    return p


def _check_eps(eps: float) -> None:
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps!r}")


def logloss(labels: Any, probs: Any, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy; ``probs`` must be finite and in [0, 1], clipped to [eps, 1-eps]."""
    _check_eps(eps)
    pos, p = _validate(labels, probs, "probs")
    return _logloss(pos, _check_probs(p), eps)


def classification_metrics(
    labels: Any,
    scores_or_probs: Any,
    users: Any = None,
    *,
    probs: bool = True,
    eps: float = 1e-7,
) -> dict[str, Any]:
    """AUC, GAUC (weighted and unweighted), log loss, sample count and positive rate.

    ``probs=True``: the scores are probabilities in [0, 1]. ``probs=False``: they
    are logits; log loss then uses a numerically stable sigmoid. AUC and GAUC are
    computed on the values as given: on logits this avoids ties the sigmoid would
    create where it saturates in float64. GAUC keys are None when ``users`` is None.
    """
    _check_eps(eps)
    name = "probs" if probs else "logits"
    pos, s = _validate(labels, scores_or_probs, name)
    p = _check_probs(s) if probs else expit(s)
    out: dict[str, Any] = {
        "auc": _auc(pos, s),
        "gauc": None,
        "gauc_unweighted": None,
        "logloss": _logloss(pos, p, eps),
        "n_samples": len(pos),
        "n_gauc_users": None,
        "positive_rate": float(pos.mean()),
    }
    if users is not None:
        u = _check_users(_to_numpy(users, "users"))
        _check_lengths(users=u, labels=pos)
        out["gauc"], out["gauc_unweighted"], out["n_gauc_users"] = _gauc(pos, s, u)
    return out
