"""Learned next-year break-risk models on the unit-year panel (issue 4).

:class:`BreakRiskModel` is a scikit-learn estimator over panel rows
(``schemas/features/panel.json``): ``fit(X, y)`` with ``X`` a :class:`pandas.DataFrame`
of panel rows and ``y`` = ``target_count`` or ``target_any`` (breaks in year ``t + 1``);
``predict(X)`` returns a risk score (higher = riskier); ``predict_proba(X)`` returns
``(n, 2)`` probabilities ``[P(no break), P(break)]`` in year ``t + 1``.

Kinds
-----
``"hgb"``
    :class:`~sklearn.ensemble.HistGradientBoostingClassifier` on ``y > 0`` with
    ``class_weight="balanced"``. ``predict`` = ``P(break)`` (calibrated when
    ``calibrate``).
``"poisson"``
    :class:`~sklearn.ensemble.HistGradientBoostingRegressor` with ``loss="poisson"`` on
    the break count. ``predict`` = expected breaks next year (never calibrated, so the
    ranking is the model's own); ``predict_proba`` = ``1 - exp(-mu)`` or, with
    ``calibrate``, an isotonic map of ``mu`` to ``y > 0`` fitted on 3-fold out-of-fold
    predictions of the training rows.
``"lightgbm"``
    ``lightgbm.LGBMRegressor`` with the Poisson objective, used like ``"poisson"``, when
    the optional ``lightgbm`` package is installed (``ImportError`` with advice otherwise).
``"logistic"``
    Median imputation (with missing indicators), ``log1p`` of the non-negative
    features, standardisation and :class:`~sklearn.linear_model.LogisticRegression`
    with ``class_weight="balanced"``; a transparent linear reference.

Calibration (``calibrate=True``, classifiers) uses
:class:`~sklearn.calibration.CalibratedClassifierCV` (isotonic, ``cv=3``) on the training
rows only; nothing is ever fitted on the rows being scored. Early stopping is disabled
(it would carve a validation set at random out of the training rows; the number of
iterations is a fixed parameter). With a fixed ``random_state`` results are
deterministic.

Features
--------
``features=None`` uses :data:`DEFAULT_FEATURES` present in ``X`` at fit time, minus
the columns that are entirely null in the training rows (e.g. ``exposure_km`` and
``age_mean`` for cells without pipe data): the break history, the spatial lags and the
exposure/size columns of the panel. ``history_years`` is deliberately left out: when
all units start together it is the calendar year in disguise, and a forward test year
always lies outside its training range. Targets (``target_*``), identifiers
(``unit_type``, ``unit_id``, ``cell``) and ``year``/``history_years`` are refused with
a :class:`ValueError` if requested explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.validation import check_is_fitted

from ..features.history import HISTORY_FEATURES

__all__ = ["DEFAULT_FEATURES", "FORBIDDEN_FEATURES", "BreakRiskModel"]

#: Default feature columns (panel history, spatial lags, exposure/size).
DEFAULT_FEATURES: tuple[str, ...] = (
    # break history of the unit up to year t
    *HISTORY_FEATURES,
    "rate_last5_per_km",
    "density_last5_per_km2",
    # spatial lags (adjacency rings, distance graph, neighbourhood, nearby breaks)
    "lag1_breaks_last5_adj",
    "lag2_breaks_last5_adj",
    "lag1_decayed_adj",
    "lag2_decayed_adj",
    "lag1_rate_adj",
    "lag1_breaks_last5_dist",
    "lag1_decayed_dist",
    "nbhd_rate_last5",
    "near_breaks_last5",
    "local_density",
    # exposure / size / asset
    "exposure_km",
    "area_km2",
    "age_mean",
)

#: Columns never usable as features (targets, identifiers, time).
FORBIDDEN_FEATURES: frozenset[str] = frozenset(
    {"target_count", "target_any", "unit_type", "unit_id", "cell", "year", "history_years"}
)

Kind = Literal["hgb", "poisson", "logistic", "lightgbm"]
_COUNT_KINDS = ("poisson", "lightgbm")


def _forbidden(name: str) -> bool:
    return name in FORBIDDEN_FEATURES or name.startswith("target")


def _numeric(X: pd.DataFrame, cols: Sequence[str]) -> NDArray[np.float64]:
    out = np.empty((len(X), len(cols)), dtype=np.float64)
    for j, c in enumerate(cols):
        out[:, j] = pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _signed_log1p(a: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.sign(a) * np.log1p(np.abs(a))


class BreakRiskModel(BaseEstimator):
    """Next-year break-risk model over panel rows.

    Parameters
    ----------
    kind : {"hgb", "poisson", "logistic", "lightgbm"}, default "hgb"
        Model family (see the module docstring).
    features : list of str or None, default None
        Feature columns; ``None``: :data:`DEFAULT_FEATURES` present and not all-null in
        the training rows. Targets, ids and year columns raise ``ValueError``.
    calibrate : bool, default True
        Isotonic probability calibration on the training rows (``cv=3``).
    random_state : int or None, default 42
        Seed of the boosting and calibration folds.
    learning_rate, max_iter, max_leaf_nodes, min_samples_leaf, l2_regularization : \
        HistGradientBoosting parameters (``kind`` "hgb"/"poisson").
    hgb_params : dict or None
        Further keyword arguments for the HistGradientBoosting estimator
        (e.g. ``{"max_depth": 4}``); ``early_stopping`` is always ``False``.
    C : float, default 1.0
        Inverse regularisation of the logistic model.

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        Feature columns used.
    model_ : estimator
        The fitted (possibly calibrated) scikit-learn estimator.
    classes_ : ndarray ``[0, 1]``
    """

    def __init__(
        self,
        kind: Kind = "hgb",
        features: Sequence[str] | None = None,
        calibrate: bool = True,
        random_state: int | None = 42,
        learning_rate: float = 0.05,
        max_iter: int = 200,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 200,
        l2_regularization: float = 1.0,
        hgb_params: dict[str, Any] | None = None,
        C: float = 1.0,
    ) -> None:
        self.kind = kind
        self.features = features
        self.calibrate = calibrate
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.hgb_params = hgb_params
        self.C = C

    # ------------------------------------------------------------------ helpers

    def _check_frame(self, X: object) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a pandas DataFrame of panel rows, got {type(X).__name__}")
        return X

    def _resolve_features(self, X: pd.DataFrame) -> list[str]:
        if self.features is None:
            cols = [c for c in DEFAULT_FEATURES if c in X.columns]
            cols = [c for c in cols if pd.to_numeric(X[c], errors="coerce").notna().any()]
            if not cols:
                raise ValueError("X has none of the default feature columns with data")
            return cols
        if isinstance(self.features, str):
            raise ValueError("features must be a list of column names, not a string")
        cols = list(self.features)
        if not cols:
            raise ValueError("features must not be empty")
        bad = [c for c in cols if _forbidden(c)]
        if bad:
            raise ValueError(f"columns {bad} cannot be features (targets, ids or year)")
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise KeyError(f"X lacks feature column(s) {missing}")
        if len(set(cols)) != len(cols):
            raise ValueError(f"duplicate feature names in {cols}")
        return cols

    def _hgb_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "learning_rate": self.learning_rate,
            "max_iter": self.max_iter,
            "max_leaf_nodes": self.max_leaf_nodes,
            "min_samples_leaf": self.min_samples_leaf,
            "l2_regularization": self.l2_regularization,
            "random_state": self.random_state,
        }
        kw.update(self.hgb_params or {})
        kw["early_stopping"] = False
        return kw

    def _base(self) -> BaseEstimator:
        if self.kind == "hgb":
            return HistGradientBoostingClassifier(class_weight="balanced", **self._hgb_kwargs())
        if self.kind == "poisson":
            return HistGradientBoostingRegressor(loss="poisson", **self._hgb_kwargs())
        if self.kind == "lightgbm":
            try:
                from lightgbm import LGBMRegressor
            except ImportError:
                raise ImportError(
                    "kind='lightgbm' needs the optional lightgbm package "
                    "(pip install lightgbm); or use kind='poisson' (HistGradientBoosting)"
                ) from None
            return LGBMRegressor(
                objective="poisson",
                n_estimators=self.max_iter,
                learning_rate=self.learning_rate,
                num_leaves=self.max_leaf_nodes,
                min_child_samples=self.min_samples_leaf,
                reg_lambda=self.l2_regularization,
                random_state=self.random_state,
                deterministic=True,
                n_jobs=2,
                verbose=-1,
            )
        if self.kind == "logistic":
            return make_pipeline(
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                FunctionTransformer(_signed_log1p),
                StandardScaler(),
                LogisticRegression(
                    C=self.C, class_weight="balanced", max_iter=1000, random_state=self.random_state
                ),
            )
        raise ValueError(
            f"kind must be 'hgb', 'poisson', 'logistic' or 'lightgbm', got {self.kind!r}"
        )

    def _cv(self) -> KFold:
        return KFold(3, shuffle=True, random_state=self.random_state)

    # ------------------------------------------------------------------ API

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> BreakRiskModel:
        """Fit on panel rows ``X`` and ``y`` (rows with a null ``y`` are ignored).

        ``y`` is ``target_count`` (any non-negative count; ``kind="poisson"`` models the
        count, the classifiers use ``y > 0``) or ``target_any``.
        """
        X = self._check_frame(X)
        yy = np.asarray(pd.to_numeric(pd.Series(np.asarray(y)), errors="coerce"), dtype=float)
        if yy.shape != (len(X),):
            raise ValueError(f"y has shape {yy.shape}, expected ({len(X)},)")
        keep = np.isfinite(yy)
        if np.any(yy[keep] < 0):
            raise ValueError("y must be non-negative")
        Xt, yt = X.loc[keep], yy[keep]
        cols = self._resolve_features(Xt)
        A = _numeric(Xt, cols)
        # a feature with no value in these rows (e.g. one small training fold) carries no
        # information; binning an all-missing column fails, so it becomes a constant
        A[:, np.isnan(A).all(axis=0)] = 0.0
        hit = (yt > 0).astype(np.int64)
        if self.kind not in _COUNT_KINDS and np.unique(hit).size < 2:
            raise ValueError("y needs both rows with and without breaks to fit a classifier")
        base = self._base()
        self.calibrator_: IsotonicRegression | None = None
        if self.kind in _COUNT_KINDS:
            self.model_ = clone(base).fit(A, yt)
            if self.calibrate:
                oof = np.empty(len(yt), dtype=np.float64)
                for tr, te in self._cv().split(A):
                    oof[te] = clone(base).fit(A[tr], yt[tr]).predict(A[te])
                iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
                self.calibrator_ = iso.fit(oof, hit)
        elif self.calibrate:
            self.model_ = CalibratedClassifierCV(base, method="isotonic", cv=self._cv()).fit(A, hit)
        else:
            self.model_ = clone(base).fit(A, hit)
        self.feature_names_in_ = np.asarray(cols, dtype=object)
        self.n_features_in_ = len(cols)
        self.classes_ = np.array([0, 1])
        return self

    def _matrix(self, X: pd.DataFrame) -> NDArray[np.float64]:
        check_is_fitted(self)
        X = self._check_frame(X)
        cols = list(self.feature_names_in_)
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise KeyError(f"X lacks feature column(s) {missing}")
        return _numeric(X, cols)

    @property
    def predicts_counts(self) -> bool:
        """True when :meth:`predict` gives expected break counts (Poisson kinds)."""
        return self.kind in _COUNT_KINDS

    def predict_matrix(self, A: NDArray[np.float64]) -> NDArray[np.float64]:
        """:meth:`predict` on a ready feature matrix (columns = ``feature_names_in_``)."""
        check_is_fitted(self)
        if self.kind in _COUNT_KINDS:
            return np.asarray(self.model_.predict(A), dtype=np.float64)
        return np.asarray(self.model_.predict_proba(A)[:, 1], dtype=np.float64)

    def predict(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Risk score per row: expected breaks next year (Poisson kinds) or ``P(break)``."""
        return self.predict_matrix(self._matrix(X))

    def expected_breaks(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Expected breaks next year: the Poisson mean, or ``-log(1 - p)`` for classifiers."""
        if self.predicts_counts:
            return np.maximum(self.predict(X), 0.0)
        p = np.clip(self.predict_proba(X)[:, 1], 0.0, 1.0 - 1e-9)
        return -np.log1p(-p)

    def predict_proba(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """``(n, 2)`` array ``[1 - p, p]`` with ``p`` = probability of a break next year."""
        if self.kind in _COUNT_KINDS:
            mu = self.predict(X)
            if self.calibrator_ is not None:
                p = self.calibrator_.predict(mu)
            else:
                p = -np.expm1(-np.maximum(mu, 0.0))
        else:
            p = self.predict(X)
        p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])
