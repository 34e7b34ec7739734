"""Learned next-year break-risk models on the unit-year panel, as scikit-learn estimators.

Two estimators share one private base:

:class:`BreakCountRegressor` (``RegressorMixin``)
    Expected breaks next year. ``kind="poisson"``:
    :class:`~sklearn.ensemble.HistGradientBoostingRegressor` with ``loss="poisson"`` on
    the break count; ``kind="glm"``: median imputation (with missing indicators), signed
    ``log1p``, standardisation and :class:`~sklearn.linear_model.PoissonRegressor`;
    ``kind="pwe"``: the piecewise-exponential proportional-hazards design
    (:class:`~twmb_geo.model.hazard_design.HazardDesign`: age bands by material, log
    diameter, previous breaks as levels), standardisation and ``PoissonRegressor``;
    ``kind="lightgbm"``: ``lightgbm.LGBMRegressor`` with the Poisson
    objective when the optional package is installed (``ImportError`` with advice
    otherwise). ``predict`` = expected breaks (never calibrated, so the ranking is the
    model's own); ``break_probability`` = ``1 - exp(-mu)`` or, with ``calibrate``, an
    isotonic map of ``mu`` to ``y > 0`` fitted on 3-fold out-of-fold predictions of the
    training rows.
:class:`BreakRiskClassifier` (``ClassifierMixin``)
    Binary labels (``target_any``; counts must be binarised first). ``kind="hgb"``:
    :class:`~sklearn.ensemble.HistGradientBoostingClassifier` with
    ``class_weight="balanced"``; ``kind="logistic"``: median imputation (with missing
    indicators), signed ``log1p``, standardisation and
    :class:`~sklearn.linear_model.LogisticRegression` with ``class_weight="balanced"``.
    ``predict_proba`` is calibrated by :class:`~sklearn.calibration.CalibratedClassifierCV`
    (isotonic, ``cv=3``) on the training rows when ``calibrate``.

Both give ``risk_score`` (higher = riskier: expected breaks, or ``P(break)``),
``break_probability`` (``P(any break next year)``) and ``expected_breaks``.
:func:`make_estimator` returns the estimator of a configured ``kind``. Nothing is ever
fitted on the rows being scored; early stopping is disabled (the number of iterations is
a fixed parameter); with a fixed ``random_state`` results are deterministic.

Inputs
------
``X`` is a :class:`pandas.DataFrame` of panel rows (``schemas/features/panel.json``) or a
plain numeric array. With a frame the feature columns are ``features`` or, when ``None``,
the :data:`DEFAULT_FEATURES` present and not entirely null in the training rows (a frame
with none of them uses all its columns); they are read by name at predict time, so
extra columns (ids, targets) may come along. ``history_years`` is deliberately left out
of the defaults: when all units start together it is the calendar year in disguise.
Targets (``target_*``), identifiers (``unit_type``, ``unit_id``, ``cell``) and
``year``/``history_years`` are refused with a :class:`ValueError`. With an array every
column is a feature. Rows whose target is null (the last panel year) are ignored by
``fit``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression, PoissonRegressor
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils import Tags
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data

from ..core.model_kinds import MODEL_KINDS, model_kind
from ..features.history import HISTORY_FEATURES
from ._arrays import (
    count_target,
    frame_numeric,
    is_frame,
    label_target,
    missing_columns_error,
    nan_medians,
    signed_log1p,
)
from ._binning import binned_raw_predict, plain_mapper, sorted_mapper
from .hazard_design import HazardDesign

__all__ = [
    "CLASSIFIER_KINDS",
    "DEFAULT_FEATURES",
    "DEFAULT_KIND",
    "DEFAULT_LEARNING_RATE",
    "DEFAULT_MAX_ITER",
    "FORBIDDEN_FEATURES",
    "MIN_EXPOSURE",
    "REGRESSOR_KINDS",
    "BreakCountRegressor",
    "BreakRiskClassifier",
    "RiskEstimator",
    "make_estimator",
]

#: Default model kind (``[model] kind``).
DEFAULT_KIND: Final[str] = "poisson"
#: Default boosting iterations (``[model] max_iter``).
DEFAULT_MAX_ITER: Final[int] = 100
#: Default boosting learning rate (``[model] learning_rate``).
DEFAULT_LEARNING_RATE: Final[float] = 0.1
#: Smallest exposure of a row (1 m of pipe when exposure is in km): a unit of unknown or zero
#: size still gets a finite rate and a near-zero expected count.
MIN_EXPOSURE: Final[float] = 1e-3
#: Kinds of :class:`BreakCountRegressor`.
REGRESSOR_KINDS: Final[tuple[str, ...]] = tuple(
    n for n, k in MODEL_KINDS.items() if k.task == "count"
)
#: Kinds of :class:`BreakRiskClassifier`.
CLASSIFIER_KINDS: Final[tuple[str, ...]] = tuple(
    n for n, k in MODEL_KINDS.items() if k.task == "probability"
)

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

_P_MAX_EXPECTED = 1.0 - 1e-9


def _forbidden(name: str) -> bool:
    return name in FORBIDDEN_FEATURES or name.startswith("target")


#: the name saved models' pipelines refer to
_signed_log1p = signed_log1p


def _n_iter(model: Any, default: int) -> int:
    """Boosting (or solver) iterations of a fitted scikit-learn or LightGBM model."""
    est = model
    if isinstance(est, CalibratedClassifierCV):
        est = est.calibrated_classifiers_[0].estimator
    if isinstance(est, Pipeline):
        est = est[-1]
    n: Any = getattr(est, "n_iter_", None)
    if n is None:
        n = getattr(est, "n_estimators_", default)
    return int(np.max(n))


class _PanelModel(BaseEstimator):
    """Feature selection, input handling and shared boosting parameters."""

    predicts_counts: ClassVar[bool]
    features: Sequence[str] | None
    calibrate: bool
    random_state: int | None
    learning_rate: float
    max_iter: int
    max_leaf_nodes: int
    min_samples_leaf: int
    l2_regularization: float
    hgb_params: dict[str, Any] | None

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------ features

    def _resolve_features(self, X: pd.DataFrame) -> list[str]:
        if self.features is None:
            present = [c for c in DEFAULT_FEATURES if c in X.columns]
            if not present:
                return self._all_columns(X)
            cols = [c for c in present if pd.to_numeric(X[c], errors="coerce").notna().any()]
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
            raise ValueError(f"X lacks feature column(s) {missing}")
        if len(set(cols)) != len(cols):
            raise ValueError(f"duplicate feature names in {cols}")
        return cols

    def _all_columns(self, X: pd.DataFrame) -> list[str]:
        cols = [str(c) for c in X.columns]
        if len(cols) == 0:
            raise ValueError("X has 0 feature(s); at least one column is required")
        bad = [c for c in cols if _forbidden(c)]
        if bad:
            raise ValueError(
                f"X has none of the default panel features and columns {bad} that cannot be "
                "features (targets, ids or year); pass features=[...]"
            )
        return cols

    # ------------------------------------------------------------------ inputs

    def _fit_matrix(
        self, X: Any, y: NDArray[Any], rows: NDArray[np.intp]
    ) -> tuple[NDArray[np.float64], NDArray[Any]]:
        """Feature matrix and target of the training ``rows``; sets the feature names.

        Only those rows of the feature columns are read, so a subsample of a large panel
        costs its own size.
        """
        if is_frame(X):
            check_consistent_length(X, y)
            cols = self._resolve_features(X.iloc[rows] if self.features is None else X)
            A = frame_numeric(X, cols, rows)
            self.feature_names_in_ = np.asarray(cols, dtype=object)
            self.n_features_in_ = len(cols)
        else:
            if self.features is not None:
                raise ValueError("features names DataFrame columns; X is an array")
            A = validate_data(self, X, reset=True, dtype=np.float64, ensure_all_finite="allow-nan")
            check_consistent_length(A, y)
            A = A[rows]
        if len(A) == 0:
            raise ValueError("no row with a known target (y is null in every row)")
        # a feature with no value in these rows (e.g. one small training fold) carries no
        # information; binning an all-missing column fails, so it becomes a constant
        A[:, np.isnan(A).all(axis=0)] = 0.0
        return A, y[rows]

    def feature_matrix(self, X: Any) -> NDArray[np.float64]:
        """The float matrix of the model's features (columns = ``feature_names_in_``)."""
        check_is_fitted(self)
        names = getattr(self, "feature_names_in_", None)
        if names is not None and is_frame(X):
            missing = [c for c in names if c not in X.columns]
            if missing:
                raise missing_columns_error(type(self).__name__, missing)
            return frame_numeric(X, list(names))
        return np.asarray(
            validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
        )

    # ------------------------------------------------------------------ boosting

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

    def _cv(self) -> KFold:
        return KFold(3, shuffle=True, random_state=self.random_state)

    # ------------------------------------------------------------------ risk API

    def risk_score_matrix(self, A: NDArray[np.float64]) -> NDArray[np.float64]:
        """:meth:`risk_score` on a ready feature matrix (from :meth:`feature_matrix`)."""
        raise NotImplementedError

    def risk_score(self, X: Any) -> NDArray[np.float64]:
        """Ranking score per row, higher = riskier."""
        return self.risk_score_matrix(self.feature_matrix(X))

    def break_probability(self, X: Any) -> NDArray[np.float64]:
        """Probability of at least one break next year, per row."""
        raise NotImplementedError

    def expected_breaks(self, X: Any) -> NDArray[np.float64]:
        """Expected breaks next year per row."""
        raise NotImplementedError


class BreakCountRegressor(RegressorMixin, _PanelModel):
    """Expected breaks next year by Poisson gradient boosting.

    Parameters
    ----------
    kind : {"poisson", "lightgbm"}, default "poisson"
        Booster (see the module docstring).
    features : list of str or None, default None
        Feature columns of a DataFrame ``X`` (see the module docstring).
    calibrate : bool, default True
        Fit the isotonic map of ``break_probability`` on 3-fold out-of-fold predictions.
    random_state : int or None, default 42
        Seed of the boosting and the calibration folds.
    learning_rate, max_iter, max_leaf_nodes, min_samples_leaf, l2_regularization : \
        Boosting parameters.
    hgb_params : dict or None
        Further keyword arguments of the HistGradientBoosting estimator
        (e.g. ``{"max_depth": 4}``); ``early_stopping`` is always ``False``.
    alpha : float, default 1e-3
        L2 penalty of ``kind="glm"`` (standardised features).
    max_rows : int or None, default None
        Train on at most about this many rows: every row with a break is kept and rows
        without one are sampled (seeded by ``random_state``) and weighted by the inverse of
        their sampling rate, so expected counts stay unbiased (negative subsampling with
        importance weights). ``None`` trains on every row.
    exposure : str or None, default None
        A column of the DataFrame ``X`` the expected count is proportional to (a pipe's
        length in km): the learner fits breaks per unit of it, weighted by it (for the
        Poisson deviance the same as an offset ``log exposure``); ``risk_score`` is then the
        rate per unit of exposure and ``predict`` the rate times the row's exposure (at
        least :data:`MIN_EXPOSURE`). ``None`` learns counts directly.

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        Feature columns used (only when fitted on a DataFrame).
    n_features_in_ : int
    model_ : estimator
        The fitted booster (or GLM pipeline).
    calibrator_ : IsotonicRegression or None
    n_iter_ : int
        Boosting iterations.
    """

    predicts_counts: ClassVar[bool] = True

    def __init__(
        self,
        kind: str = "poisson",
        features: Sequence[str] | None = None,
        calibrate: bool = True,
        random_state: int | None = 42,
        learning_rate: float = DEFAULT_LEARNING_RATE,
        max_iter: int = DEFAULT_MAX_ITER,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 200,
        l2_regularization: float = 1.0,
        hgb_params: dict[str, Any] | None = None,
        alpha: float = 1e-3,
        max_rows: int | None = None,
        exposure: str | None = None,
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
        self.alpha = alpha
        self.max_rows = max_rows
        self.exposure = exposure

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags

    def _booster(self) -> BaseEstimator:
        return _learner(self, "count")

    def fit(self, X: Any, y: ArrayLike) -> BreakCountRegressor:
        """Fit on rows ``X`` and break counts ``y`` (``target_count``; null rows ignored)."""
        yy = count_target(y, type(self).__name__)
        rows = np.flatnonzero(~np.isnan(yy))
        keep, sw = _sample_rows(yy[rows], self.max_rows, self.random_state)
        if keep is not None:
            rows = rows[keep]
        A, yt = self._fit_matrix(X, yy, rows)
        size = None if self.exposure is None else self._size(X)[rows]
        base = self._booster()
        if size is not None:
            # Poisson deviance of rate y / L weighted by L = that of counts with offset log L
            yt = yt / size
            sw = size if sw is None else sw * size
        self.model_ = _fit_weighted(clone(base), A, yt, sw)
        self.calibrator_: IsotonicRegression | None = None
        if self.calibrate:
            hit = (yt > 0).astype(np.int64)
            oof = np.empty(len(yt), dtype=np.float64)
            for tr, te in self._cv().split(A):
                fold = _fit_weighted(clone(base), A[tr], yt[tr], None if sw is None else sw[tr])
                oof[te] = fold.predict(A[te])
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self.calibrator_ = iso.fit(oof if size is None else oof * size, hit)
        self.n_iter_ = _n_iter(self.model_, self.max_iter)
        return self

    def _size(self, X: Any) -> NDArray[np.float64]:
        """The ``exposure`` of every row, at least :data:`MIN_EXPOSURE` (missing: the minimum)."""
        if not is_frame(X):
            raise ValueError(f"exposure={self.exposure!r} names a column: X must be a DataFrame")
        if self.exposure not in X.columns:
            raise missing_columns_error(type(self).__name__, [str(self.exposure)])
        v = pd.to_numeric(X[self.exposure], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return np.where(np.isfinite(v), np.maximum(v, MIN_EXPOSURE), MIN_EXPOSURE)

    def risk_score_matrix(self, A: NDArray[np.float64]) -> NDArray[np.float64]:
        """Expected breaks of a ready feature matrix (per unit of ``exposure`` when set)."""
        check_is_fitted(self)
        return np.asarray(self.model_.predict(A), dtype=np.float64)

    def predict(self, X: Any) -> NDArray[np.float64]:
        """Expected breaks next year per row (the Poisson mean)."""
        mu = self.risk_score(X)
        return mu if self.exposure is None else mu * self._size(X)

    def expected_breaks(self, X: Any) -> NDArray[np.float64]:
        """Expected breaks next year, floored at 0."""
        return np.maximum(self.predict(X), 0.0)

    def break_probability(self, X: Any) -> NDArray[np.float64]:
        """``P(any break next year)``: the isotonic map of ``mu``, or ``1 - exp(-mu)``."""
        mu = self.predict(X)
        if self.calibrator_ is not None:
            p = self.calibrator_.predict(mu)
        else:
            p = -np.expm1(-np.maximum(mu, 0.0))
        return np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)


class BreakRiskClassifier(ClassifierMixin, _PanelModel):
    """Probability of any break next year (binary classifier).

    Parameters
    ----------
    kind : {"hgb", "logistic"}, default "hgb"
        Model family (see the module docstring).
    features, random_state, learning_rate, max_iter, max_leaf_nodes, min_samples_leaf, \
    l2_regularization, hgb_params
        As in :class:`BreakCountRegressor` (boosting parameters for ``kind="hgb"``).
    calibrate : bool, default True
        Isotonic probability calibration on the training rows (``cv=3``).
    C : float, default 1.0
        Inverse regularisation of the logistic model.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels; the second is the break class.
    feature_names_in_ : ndarray of str
        Feature columns used (only when fitted on a DataFrame).
    n_features_in_ : int
    model_ : estimator
        The fitted (possibly calibrated) scikit-learn estimator.
    n_iter_ : int
    """

    predicts_counts: ClassVar[bool] = False

    def __init__(
        self,
        kind: str = "hgb",
        features: Sequence[str] | None = None,
        calibrate: bool = True,
        random_state: int | None = 42,
        learning_rate: float = DEFAULT_LEARNING_RATE,
        max_iter: int = DEFAULT_MAX_ITER,
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

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        assert tags.classifier_tags is not None
        tags.classifier_tags.multi_class = False
        return tags

    def _base(self) -> BaseEstimator:
        return _learner(self, "probability")

    def _binary(self, labels: NDArray[Any]) -> NDArray[np.int64]:
        y_type = type_of_target(labels, input_name="y", raise_unknown=True)
        if y_type != "binary":
            if y_type.startswith("continuous"):
                raise ValueError(f"Unknown label type: {y_type}; y must hold class labels")
            raise ValueError(
                "Only binary classification is supported. The type of the target is "
                f"{y_type}; binarise break counts first (target_any, or y > 0)"
            )
        self.classes_ = np.unique(labels)
        if self.classes_.size < 2:
            raise ValueError(
                "y has one class only; a classifier needs rows with and without breaks"
            )
        return (labels == self.classes_[1]).astype(np.int64)

    def fit(self, X: Any, y: ArrayLike) -> BreakRiskClassifier:
        """Fit on rows ``X`` and binary labels ``y`` (``target_any``; null rows ignored)."""
        labels, known = label_target(y, type(self).__name__)
        A, yt = self._fit_matrix(X, labels, np.flatnonzero(known))
        hit = self._binary(yt)
        base = self._base()
        if self.calibrate:
            self.model_ = CalibratedClassifierCV(base, method="isotonic", cv=self._cv()).fit(A, hit)
        else:
            self.model_ = clone(base).fit(A, hit)
        self.n_iter_ = _n_iter(self.model_, self.max_iter)
        return self

    def risk_score_matrix(self, A: NDArray[np.float64]) -> NDArray[np.float64]:
        """``P(break)`` of a ready feature matrix."""
        check_is_fitted(self)
        return np.asarray(self.model_.predict_proba(A)[:, 1], dtype=np.float64)

    def break_probability(self, X: Any) -> NDArray[np.float64]:
        """``P(any break next year)`` per row."""
        return np.clip(self.risk_score(X), 0.0, 1.0)

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        """``(n, 2)`` array ``[1 - p, p]``, ``p`` = probability of the break class."""
        p = self.break_probability(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> NDArray[Any]:
        """The more probable label of each row."""
        check_is_fitted(self)
        return self.classes_[(self.break_probability(X) > 0.5).astype(np.intp)]

    def expected_breaks(self, X: Any) -> NDArray[np.float64]:
        """``-log(1 - p)``: the Poisson mean with ``P(any break) = p``."""
        p = np.clip(self.break_probability(X), 0.0, _P_MAX_EXPECTED)
        return -np.log1p(-p)


def _sample_rows(
    y: NDArray[np.float64], max_rows: int | None, seed: int | None
) -> tuple[NDArray[np.intp] | None, NDArray[np.float64] | None]:
    """Rows to train on and their weights (see ``max_rows`` of BreakCountRegressor);
    ``(None, None)``: every row, unweighted."""
    if max_rows is None or len(y) <= max_rows:
        return None, None
    pos = y > 0
    n_zero = int((~pos).sum())
    room = max(int(max_rows) - int(pos.sum()), 1)
    q = min(1.0, room / max(n_zero, 1))
    if q >= 1.0:
        return None, None
    keep = np.flatnonzero(pos | (np.random.default_rng(seed).random(len(y)) < q))
    return keep, np.where(pos[keep], 1.0, 1.0 / q)


def _fit_weighted(
    est: BaseEstimator,
    A: NDArray[np.float64],
    y: NDArray[np.float64],
    w: NDArray[np.float64] | None,
) -> BaseEstimator:
    """``est.fit`` with sample weights (routed to the last step of a pipeline)."""
    if w is None:
        return est.fit(A, y)
    if isinstance(est, Pipeline):
        return est.fit(A, y, **{f"{est.steps[-1][0]}__sample_weight": w})
    return est.fit(A, y, sample_weight=w)


#: builds the learner of one model kind from the estimator's parameters
LearnerFactory = Callable[[Any], BaseEstimator]


class _QuantileBins:
    """Bin thresholds from plain quantiles of the training rows, whatever the sample weights.

    scikit-learn's weighted binning is about 60 times slower than the unweighted one (29 s
    against 0.5 s for 100,000 rows and 30 features here), and sample weights are what the
    zero subsampling (``max_rows``) and balanced classes produce; the weights still enter
    every gradient and leaf value. The thresholds come from one sort per feature
    (:mod:`~twmb_geo.model._binning`, equal to scikit-learn's), and predictions walk the
    trees on the binned rows (:func:`~twmb_geo.model._binning.binned_raw_predict`, the same
    bits, a third faster). Should the private hooks change, the overrides are simply not
    called and fitting or predicting is only slower.
    """

    _bin_mapper: Any

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        """The booster's own fit; the fitted mapper is scikit-learn's class again."""
        out = super().fit(*args, **kwargs)  # type: ignore[misc]
        self._bin_mapper = plain_mapper(self._bin_mapper)
        return out

    def _bin_data(self, X: Any, sample_weight: Any, is_training_data: bool) -> Any:
        if is_training_data:
            self._bin_mapper = sorted_mapper(self._bin_mapper)
        return super()._bin_data(X, None, is_training_data)  # type: ignore[misc]

    def _raw_predict(self, X: Any, n_threads: int | None = None) -> Any:
        if not getattr(self, "_in_fit", False):
            check_is_fitted(self)
            raw = binned_raw_predict(self, X, n_threads)
            if raw is not None:
                return raw
        return super()._raw_predict(X, n_threads)  # type: ignore[misc]


class _Booster(_QuantileBins, HistGradientBoostingRegressor):
    """Histogram gradient boosting regressor with unweighted bin thresholds."""


class _BoostedClassifier(_QuantileBins, HistGradientBoostingClassifier):
    """Histogram gradient boosting classifier with unweighted bin thresholds."""


def _poisson(est: Any) -> BaseEstimator:
    return _Booster(loss="poisson", **est._hgb_kwargs())


def _lightgbm(est: Any) -> BaseEstimator:
    try:
        from lightgbm import LGBMRegressor  # an optional dependency
    except ImportError:
        raise ImportError(
            "kind='lightgbm' needs the optional lightgbm package "
            "(pip install lightgbm); or use kind='poisson' (HistGradientBoosting)"
        ) from None
    return LGBMRegressor(
        objective="poisson",
        n_estimators=est.max_iter,
        learning_rate=est.learning_rate,
        num_leaves=est.max_leaf_nodes,
        min_child_samples=est.min_samples_leaf,
        reg_lambda=est.l2_regularization,
        random_state=est.random_state,
        deterministic=True,
        n_jobs=2,
        verbose=-1,
    )


class _MedianImputer(TransformerMixin, BaseEstimator):
    """Missing values to the column's median (0 for an all-missing column), plus an indicator
    column for each column with a missing value in the fitted rows: ``SimpleImputer(
    strategy="median", add_indicator=True, keep_empty_features=True)`` without its masked-array
    median, which took 1.5 s per fit on 300,000 rows here (``np.nanmedian`` partitions)."""

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: Any, y: Any = None) -> _MedianImputer:
        A = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        self.statistics_ = nan_medians(A)
        self.indicator_ = np.flatnonzero(np.isnan(A).any(axis=0))
        return self

    def transform(self, X: Any) -> NDArray[np.float64]:
        check_is_fitted(self)
        A = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
        missing = np.isnan(A)
        out = np.where(missing, self.statistics_, A)
        return np.hstack([out, missing[:, self.indicator_].astype(np.float64)])


def _glm(est: Any) -> BaseEstimator:
    return make_pipeline(
        _MedianImputer(),
        FunctionTransformer(_signed_log1p),
        StandardScaler(),
        PoissonRegressor(alpha=est.alpha, max_iter=300),
    )


def _pwe(est: Any) -> BaseEstimator:
    names = getattr(est, "feature_names_in_", None)
    return make_pipeline(
        HazardDesign(None if names is None else [str(n) for n in names]),
        StandardScaler(),
        PoissonRegressor(alpha=est.alpha, solver="newton-cholesky", max_iter=100),
    )


def _hgb(est: Any) -> BaseEstimator:
    return _BoostedClassifier(class_weight="balanced", **est._hgb_kwargs())


def _logistic(est: Any) -> BaseEstimator:
    return make_pipeline(
        _MedianImputer(),
        FunctionTransformer(_signed_log1p),
        StandardScaler(),
        LogisticRegression(
            C=est.C, class_weight="balanced", max_iter=1000, random_state=est.random_state
        ),
    )


#: model kind -> learner factory (every kind of :data:`twmb_geo.core.model_kinds.MODEL_KINDS`)
LEARNERS: dict[str, LearnerFactory] = {
    "poisson": _poisson,
    "lightgbm": _lightgbm,
    "glm": _glm,
    "pwe": _pwe,
    "hgb": _hgb,
    "logistic": _logistic,
}


def register_learner(kind: str, factory: LearnerFactory) -> None:
    """Register the learner of the registered model kind ``kind``."""
    model_kind(kind)
    if kind in LEARNERS:
        raise ValueError(f"model kind {kind!r} already has a learner")
    LEARNERS[kind] = factory


def _learner(est: Any, task: str) -> BaseEstimator:
    spec = model_kind(est.kind)
    if spec.task != task or est.kind not in LEARNERS:
        wanted = [n for n, k in MODEL_KINDS.items() if k.task == task and n in LEARNERS]
        raise ValueError(f"kind must be one of {wanted}, got {est.kind!r}")
    return LEARNERS[est.kind](est)


#: Either fitted risk model (what training, scoring and the registry handle).
RiskEstimator = BreakCountRegressor | BreakRiskClassifier


def make_estimator(kind: str = DEFAULT_KIND, **params: Any) -> RiskEstimator:
    """The estimator of ``kind``: a regressor for count kinds, a classifier for probability kinds."""
    if model_kind(kind).task == "count":
        return BreakCountRegressor(kind=kind, **params)
    return BreakRiskClassifier(kind=kind, **params)
