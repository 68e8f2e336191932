"""XGBoost on hand-built aggregate features: the purchase-prediction baseline of the article.

The features (``agg``, :data:`seqrec.data.purchase_features.AGG_FEATURES`) summarise each user's
observation window: recency, frequency, quantity / money overall and in the target category,
the category's share of the user's purchases, inter-purchase time statistics, breadth, and
(Taobao) views / carts / favourites. Gradient-boosted trees come from the ``xgboost`` package
(Chen & Guestrin, KDD 2016); nothing of it is re-implemented. Trees stop growing when the
validation log loss has not improved for ``early_stopping_rounds`` rounds.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from seqrec.errors import CheckpointError, ConfigError
from seqrec.io import atomic_write

MODEL_FILE = "model.xgb.json"


@dataclass(frozen=True)
class XGBoostConfig:
    n_estimators: int = 400
    max_depth: int = 4
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 50  # 0 = off

    def __post_init__(self) -> None:
        if self.n_estimators < 1 or self.max_depth < 1 or self.learning_rate <= 0:
            raise ValueError("n_estimators and max_depth must be >= 1 and learning_rate > 0")
        if not (0 < self.subsample <= 1 and 0 < self.colsample_bytree <= 1):
            raise ValueError("subsample and colsample_bytree must be in (0, 1]")


def _xgb():
    try:
        import xgboost
    except ImportError as exc:  # an optional dependency: say how to get it
        raise ConfigError("the xgboost baseline needs the xgboost package: pip install 'seqrec[purchase]'") from exc
    return xgboost


class XGBoostPurchase:
    """``fit(X, y, X_valid, y_valid)``, ``predict_proba(X)``, ``save(dir)`` / ``load(dir)``."""

    def __init__(self, config: XGBoostConfig, seed: int = 0, threads: int = 0) -> None:
        self.config, self.seed, self.threads = config, seed, threads
        self.booster_ = None
        self.best_iteration_: int | None = None

    def _params(self) -> dict:
        c = self.config
        return {"objective": "binary:logistic", "eval_metric": "logloss", "max_depth": c.max_depth,
                "eta": c.learning_rate, "subsample": c.subsample, "colsample_bytree": c.colsample_bytree,
                "min_child_weight": c.min_child_weight, "lambda": c.reg_lambda, "seed": self.seed,
                "nthread": self.threads or os.cpu_count() or 1, "tree_method": "hist"}

    def fit(self, x: np.ndarray, y: np.ndarray, x_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None) -> XGBoostPurchase:
        xgb = _xgb()
        dtrain = xgb.DMatrix(x, label=y)
        evals = [(dtrain, "train")]
        stop = None
        if x_valid is not None and self.config.early_stopping_rounds > 0:
            evals.append((xgb.DMatrix(x_valid, label=y_valid), "valid"))
            stop = self.config.early_stopping_rounds
        self.booster_ = xgb.train(self._params(), dtrain, num_boost_round=self.config.n_estimators,
                                  evals=evals, early_stopping_rounds=stop, verbose_eval=False)
        self.best_iteration_ = getattr(self.booster_, "best_iteration", None)
        return self

    def fit_info(self) -> dict:
        """What the fit chose, for the run's metrics: the trees kept by early stopping."""
        return {"trees": self.best_iteration_}

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.booster_ is None:
            raise RuntimeError("fit() or load() first")
        xgb = _xgb()
        rng = (0, self.best_iteration_ + 1) if self.best_iteration_ is not None else (0, 0)
        return self.booster_.predict(xgb.DMatrix(x), iteration_range=rng).astype(np.float64)

    def save(self, run_dir: str | os.PathLike) -> None:
        from seqrec.train.checkpoint import save_json

        atomic_write(Path(run_dir) / MODEL_FILE, lambda tmp: self.booster_.save_model(tmp + ".json")
                     or os.replace(tmp + ".json", tmp))
        save_json(Path(run_dir) / "xgboost.json", {"config": asdict(self.config), "seed": self.seed,
                                                   "best_iteration": self.best_iteration_})

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> XGBoostPurchase:
        from seqrec.train.checkpoint import load_json

        run_dir = Path(run_dir)
        meta = load_json(run_dir / "xgboost.json")
        if not (run_dir / MODEL_FILE).is_file():
            raise CheckpointError(f"{run_dir / MODEL_FILE} not found: is this a finished xgboost run?")
        xgb = _xgb()
        m = cls(XGBoostConfig(**meta["config"]), seed=meta["seed"])
        m.booster_ = xgb.Booster()
        m.booster_.load_model(str(run_dir / MODEL_FILE))
        m.best_iteration_ = meta["best_iteration"]
        return m
