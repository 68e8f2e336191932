"""Rule baselines for purchase prediction: what a sceptic tries before any model.

Each scores a user from the aggregate features of its observation window (``agg``,
:data:`seqrec.data.purchase_features.AGG_FEATURES`), on exactly the samples the other purchase
models see, and is trained / evaluated / saved by the same driver
(:mod:`seqrec.families.purchase`):

* ``bought_before``: 1 if the user bought from the category in the observation window, else
  0. Under the article's no-need protocol this is the sample selection itself (a negative
  can never have bought the category), so it has precision 1 there.
* ``recency``: the sooner the last purchase from the category, the higher: ``1 / (1 + r)``
  with ``r`` the time since it in the log's unit (days, or orders on order logs); never
  bought = 0, below every buyer. It is ``bought_before`` with its ties broken by recency.
* ``frequency``: purchases (baskets) from the category in the observation window, as
  ``n / (1 + n)``; never bought = 0.
* ``rfm_logreg``: a logistic regression (scikit-learn) on recency / frequency / monetary
  features (:data:`RFM_FEATURES`), standardised on the training split; the inverse L2
  strength ``C`` is picked from ``cs`` by validation PR-AUC (equal -> the smaller C),
  fitted on the training split only.

The three rules learn nothing: their scores are monotone maps of one feature into [0, 1],
so that the same report (thresholds chosen on validation, top-k, AUC) applies, but they
are ranks, not probabilities (their log loss means nothing). Many users share a score
(0/1, counts); the metrics handle ties (:mod:`seqrec.evaluate.campaign`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit

from seqrec.data.purchase_features import AGG_FEATURES
from seqrec.errors import CheckpointError, DataValidationError

MODEL_FILE = "baseline.json"
RULES = ("bought_before", "recency", "frequency")
# (name, how it is built from the aggregates); monetary = money where the log has prices
# (CDNOW), else units bought (Instacart, Ta-Feng and Taobao record no price: value is 0)
RFM_FEATURES = (
    "bought_cat",  # R: any purchase from the category in the window (0/1)
    "log_cat_recency",  # R: log1p(time since the last category purchase), 0 if none
    "bought_any",  # R: any purchase at all (Taobao users may only have viewed)
    "log_recency",  # R: log1p(time since the last purchase), 0 if none
    "log_cat_purchases",  # F: log1p(category baskets)
    "log_purchases",  # F: log1p(baskets)
    "log_cat_recent",  # F: log1p(category lines in the last window-length before the cut-off)
    "cat_share",  # F: category lines / purchase lines
    "log_cat_quantity",  # M: log1p(category units)
    "log_quantity",  # M: log1p(units)
    "log_cat_value",  # M: log1p(category money)
    "log_value",  # M: log1p(money)
)


@dataclass(frozen=True)
class RuleConfig:
    """A rule has no settings: its ranking is fixed by its definition."""


@dataclass(frozen=True)
class RFMLogRegConfig:
    cs: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)  # inverse L2 strengths tried
    max_iter: int = 2000

    def __post_init__(self) -> None:
        if not self.cs or any(not c > 0 for c in self.cs):
            raise ValueError(f"cs must be a non-empty list of positive numbers, got {self.cs}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")


def _agg(x: np.ndarray) -> dict[str, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(AGG_FEATURES):
        raise DataValidationError(f"purchase baselines need the (N, {len(AGG_FEATURES)}) aggregate features "
                                  f"'agg', got shape {x.shape}")
    return {name: x[:, i] for i, name in enumerate(AGG_FEATURES)}


def _log_pos(v: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(v, 0.0))  # MISSING (-1) -> 0, with an indicator beside it


def rfm_features(x: np.ndarray) -> np.ndarray:
    """(N, len(RFM_FEATURES)) recency / frequency / monetary features from the aggregates."""
    a = _agg(x)
    bought_cat = (a["n_cat_purchases"] > 0).astype(np.float64)
    bought_any = (a["n_purchases"] > 0).astype(np.float64)
    cols = [bought_cat, bought_cat * _log_pos(a["cat_recency"]), bought_any,
            bought_any * _log_pos(a["recency"]), _log_pos(a["n_cat_purchases"]), _log_pos(a["n_purchases"]),
            _log_pos(a["cat_recent"]), np.maximum(a["cat_share"], 0.0), _log_pos(a["cat_quantity"]),
            _log_pos(a["quantity"]), _log_pos(a["cat_value"]), _log_pos(a["value"])]
    return np.stack(cols, 1)


def rule_scores(rule: str, x: np.ndarray) -> np.ndarray:
    """The rule's score of every row of the aggregates (see the module doc)."""
    a = _agg(x)
    bought = a["n_cat_purchases"] > 0
    if rule == "bought_before":
        return bought.astype(np.float64)
    if rule == "recency":
        return np.where(bought, 1.0 / (1.0 + np.maximum(a["cat_recency"], 0.0)), 0.0)
    if rule == "frequency":
        n = np.maximum(a["n_cat_purchases"], 0.0)
        return n / (1.0 + n)
    raise ValueError(f"unknown rule {rule!r}; rules: {list(RULES)}")


class _Saved:
    """``save(dir)`` / ``load(dir)`` of a baseline's name, config and learned state as JSON."""

    name = ""
    config_cls: type = RuleConfig

    def _state(self) -> dict:
        return {}

    def _set_state(self, state: dict) -> None:
        pass

    def save(self, run_dir: str | os.PathLike) -> None:
        from seqrec.train.checkpoint import save_json

        save_json(Path(run_dir) / MODEL_FILE, {"model": self.name, "config": asdict(self.config),
                                               "state": self._state()})

    @classmethod
    def load(cls, run_dir: str | os.PathLike):
        from seqrec.config_values import from_dict
        from seqrec.train.checkpoint import load_json

        path = Path(run_dir) / MODEL_FILE
        if not path.is_file():
            raise CheckpointError(f"{path} not found: is this a finished {cls.name} run?")
        meta = load_json(path)
        if meta.get("model") != cls.name:
            raise CheckpointError(f"{path} holds a {meta.get('model')!r} baseline, not {cls.name!r}")
        m = cls(from_dict(cls.config_cls, meta["config"], str(path)))
        m._set_state(meta["state"])
        return m


class PurchaseRule(_Saved):
    """A fixed scoring rule: ``fit`` learns nothing, ``predict_proba`` is the rule's score.

    Same interface as :class:`seqrec.baselines.xgboost_purchase.XGBoostPurchase`:
    ``fit(X, y, X_valid, y_valid)``, ``predict_proba(X)``, ``fit_info()``, ``save`` / ``load``."""

    def __init__(self, config: RuleConfig | None = None, seed: int = 0, threads: int = 0) -> None:
        self.config = config or RuleConfig()

    def fit(self, x: np.ndarray, y: np.ndarray, x_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None) -> PurchaseRule:
        _agg(x)  # the same input check as scoring
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return rule_scores(self.name, x)

    def fit_info(self) -> dict:
        return {}


class BoughtBefore(PurchaseRule):
    name = "bought_before"


class Recency(PurchaseRule):
    name = "recency"


class Frequency(PurchaseRule):
    name = "frequency"


class RFMLogReg(_Saved):
    """Logistic regression on :func:`rfm_features`; C chosen by validation PR-AUC."""

    name = "rfm_logreg"
    config_cls = RFMLogRegConfig

    def __init__(self, config: RFMLogRegConfig | None = None, seed: int = 0, threads: int = 0) -> None:
        self.config = config or RFMLogRegConfig()
        self.seed = seed
        self.mean_ = self.scale_ = self.coef_ = None
        self.intercept_ = 0.0
        self.c_: float | None = None
        self.valid_pr_auc_: dict[str, float] = {}

    def _z(self, x: np.ndarray) -> np.ndarray:
        return (rfm_features(x) - self.mean_) / self.scale_

    def fit(self, x: np.ndarray, y: np.ndarray, x_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None) -> RFMLogReg:
        from sklearn.linear_model import LogisticRegression

        from seqrec.evaluate.thresholds import average_precision

        if x_valid is None or y_valid is None:
            raise DataValidationError("rfm_logreg picks its regularisation on validation data: pass x_valid, y_valid")
        f = rfm_features(x)
        self.mean_ = f.mean(0)
        sd = f.std(0)
        self.scale_ = np.where(sd > 0, sd, 1.0)  # a constant feature (no prices) stays 0
        z, zv = (f - self.mean_) / self.scale_, (rfm_features(x_valid) - self.mean_) / self.scale_
        best = None
        for c in sorted(self.config.cs):  # ascending: an equal PR-AUC keeps the smaller C
            lr = LogisticRegression(C=c, max_iter=self.config.max_iter).fit(z, y)
            ap = average_precision(y_valid, zv @ lr.coef_[0] + lr.intercept_[0])
            self.valid_pr_auc_[f"{c:g}"] = ap
            if best is None or ap > best[0]:
                best = (ap, c, lr.coef_[0].copy(), float(lr.intercept_[0]))
        _, self.c_, self.coef_, self.intercept_ = best
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.coef_ is None:
            raise RuntimeError("fit() or load() first")
        # one formula at training and after loading, so a saved run reproduces its scores exactly
        return expit(self._z(x) @ self.coef_ + self.intercept_)

    def fit_info(self) -> dict:
        return {"C": self.c_, "valid_pr_auc_by_C": self.valid_pr_auc_,
                "coef": dict(zip(RFM_FEATURES, map(float, self.coef_), strict=True))}

    def _state(self) -> dict:
        return {"mean": self.mean_.tolist(), "scale": self.scale_.tolist(), "coef": self.coef_.tolist(),
                "intercept": self.intercept_, "C": self.c_, "valid_pr_auc": self.valid_pr_auc_}

    def _set_state(self, state: dict) -> None:
        self.mean_, self.scale_, self.coef_ = (np.array(state[k], dtype=np.float64)
                                               for k in ("mean", "scale", "coef"))
        self.intercept_, self.c_, self.valid_pr_auc_ = state["intercept"], state["C"], state["valid_pr_auc"]


BASELINES = {c.name: c for c in (BoughtBefore, Recency, Frequency, RFMLogReg)}
