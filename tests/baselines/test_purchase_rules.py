"""Rule baselines for purchase prediction (seqrec.baselines.purchase_rules): scores by hand,
the RFM features, the logistic regression's validation choice and exact save / load."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec.baselines.purchase_rules import (
    BASELINES,
    RFM_FEATURES,
    BoughtBefore,
    Frequency,
    Recency,
    RFMLogReg,
    RFMLogRegConfig,
    rfm_features,
    rule_scores,
)
from seqrec.config import load_run_config
from seqrec.data.tasks.purchase import AGG_FEATURES, MISSING
from seqrec.errors import CheckpointError, ConfigError, DataValidationError
from seqrec.evaluate.thresholds import average_precision
from seqrec.registry import get_model_entry, model_names


def agg(**rows: list[float]) -> np.ndarray:
    """(N, len(AGG_FEATURES)) aggregates: the named columns given, the others 0."""
    n = len(next(iter(rows.values())))
    x = np.zeros((n, len(AGG_FEATURES)))
    for name, values in rows.items():
        x[:, AGG_FEATURES.index(name)] = values
    return x


# users: never bought the category; bought 1x 9 days ago; 3x, last 1 day ago; 1x, 1 day ago
X = agg(n_cat_purchases=[0, 1, 3, 1], cat_recency=[MISSING, 9, 1, 1], n_purchases=[4, 2, 5, 1],
        recency=[2, 3, 1, 1], cat_recent=[0, 0, 2, 1], cat_share=[0, 0.5, 0.6, 1.0],
        cat_quantity=[0, 1, 4, 2], quantity=[6, 3, 9, 2], cat_value=[0, 0, 0, 0], value=[0, 0, 0, 0])


def test_rule_scores_by_hand():
    np.testing.assert_array_equal(rule_scores("bought_before", X), [0, 1, 1, 1])
    np.testing.assert_allclose(rule_scores("recency", X), [0, 1 / 10, 1 / 2, 1 / 2])
    np.testing.assert_allclose(rule_scores("frequency", X), [0, 1 / 2, 3 / 4, 1 / 2])
    for cls in (BoughtBefore, Recency, Frequency):
        np.testing.assert_array_equal(cls().fit(X, np.zeros(4)).predict_proba(X), rule_scores(cls.name, X))
    with pytest.raises(ValueError, match="unknown rule 'nosuch'"):
        rule_scores("nosuch", X)


def test_recency_is_bought_before_with_ties_broken():
    rng = np.random.default_rng(0)
    n = rng.integers(0, 4, 200)
    x = agg(n_cat_purchases=n, cat_recency=np.where(n > 0, rng.integers(1, 30, 200), MISSING))
    r, b = rule_scores("recency", x), rule_scores("bought_before", x)
    assert ((r > 0) == (b == 1)).all()  # the same split: every buyer above every never-buyer
    assert r[b == 1].min() > r[b == 0].max()
    assert (r >= 0).all() and (r <= 1).all()


def test_rfm_features_by_hand():
    f = dict(zip(RFM_FEATURES, rfm_features(X)[1], strict=True))
    assert f["bought_cat"] == 1 and f["log_cat_recency"] == pytest.approx(np.log1p(9))
    assert f["bought_any"] == 1 and f["log_recency"] == pytest.approx(np.log1p(3))
    assert f["log_cat_purchases"] == pytest.approx(np.log1p(1)) and f["log_purchases"] == pytest.approx(np.log1p(2))
    assert f["cat_share"] == 0.5 and f["log_cat_quantity"] == pytest.approx(np.log1p(1))
    assert f["log_cat_value"] == 0 and f["log_value"] == 0
    never = dict(zip(RFM_FEATURES, rfm_features(X)[0], strict=True))
    assert never["bought_cat"] == 0 and never["log_cat_recency"] == 0  # MISSING never leaks as -1


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Buyers are users with many recent category purchases (plus noise)."""
    rng = np.random.default_rng(seed)
    k = rng.poisson(1.0, n)
    rec = np.where(k > 0, rng.integers(1, 60, n), MISSING)
    logit = 1.2 * k - 0.05 * np.maximum(rec, 0) - 1.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    x = agg(n_cat_purchases=k, cat_recency=rec, n_purchases=k + rng.poisson(3, n), recency=rng.integers(1, 20, n),
            cat_recent=rng.poisson(0.5, n), cat_share=rng.random(n), cat_quantity=k * 2, quantity=rng.poisson(9, n),
            cat_value=np.zeros(n), value=np.zeros(n))
    return x, y


def test_rfm_logreg_picks_c_on_validation_and_learns():
    (x, y), (xv, yv), (xt, yt) = synthetic(600, 0), synthetic(300, 1), synthetic(600, 2)
    m = RFMLogReg(RFMLogRegConfig(cs=(100.0, 0.001, 1.0))).fit(x, y, xv, yv)
    scores = m.valid_pr_auc_
    assert set(scores) == {"0.001", "1", "100"}
    best = max(scores.values())
    assert m.c_ == min(float(c) for c, v in scores.items() if v == best)  # equal -> smaller C
    assert scores[f"{m.c_:g}"] == pytest.approx(average_precision(yv, m.predict_proba(xv)))
    assert average_precision(yt, m.predict_proba(xt)) > average_precision(yt, rule_scores("bought_before", xt))
    p = m.predict_proba(xt)
    assert ((p > 0) & (p < 1)).all()
    info = m.fit_info()
    assert info["C"] == m.c_ and info["coef"]["log_cat_purchases"] > 0
    assert info["coef"]["log_value"] == 0  # a constant feature (no prices) gets no weight


def test_save_load_reproduces_scores_exactly(tmp_path):
    (x, y), (xv, yv) = synthetic(300, 3), synthetic(200, 4)
    m = RFMLogReg().fit(x, y, xv, yv)
    m.save(tmp_path)
    again = RFMLogReg.load(tmp_path)
    np.testing.assert_array_equal(again.predict_proba(xv), m.predict_proba(xv))
    assert again.config == m.config and again.c_ == m.c_
    r = tmp_path / "rule"
    r.mkdir()
    Recency().save(r)
    np.testing.assert_array_equal(Recency.load(r).predict_proba(X), rule_scores("recency", X))
    with pytest.raises(CheckpointError, match="'recency' baseline, not 'frequency'"):
        Frequency.load(r)
    with pytest.raises(CheckpointError, match="not found"):
        Frequency.load(tmp_path / "nothing")


def test_bad_input():
    with pytest.raises(DataValidationError, match=f"\\(N, {len(AGG_FEATURES)}\\)"):
        BoughtBefore().predict_proba(np.zeros((3, 4)))
    with pytest.raises(DataValidationError, match="x_valid"):
        RFMLogReg().fit(X, np.array([0, 1, 1, 0]))
    with pytest.raises(RuntimeError, match="fit"):
        RFMLogReg().predict_proba(X)
    with pytest.raises(ValueError, match="cs"):
        RFMLogRegConfig(cs=(0.0,))


def test_registered_and_configurable():
    assert set(BASELINES) <= set(model_names("purchase"))
    for name, cls in BASELINES.items():
        entry = get_model_entry(name)
        assert entry.family == "purchase" and entry.model_cls is cls
    raw = {"data": {"dataset": "instacart", "purchase": {"category": "frozen"}}, "model": {"name": "rfm_logreg"}}
    assert load_run_config(raw=raw).model == RFMLogRegConfig()
    with pytest.raises(ConfigError, match="cs"):
        load_run_config(raw=raw, overrides=["model.cs=[]"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_run_config(raw={**raw, "model": {"name": "recency", "window": 3}})
