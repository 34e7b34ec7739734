"""Simple, transparent baselines for next-year break risk, as scikit-learn regressors.

Every baseline takes ``X`` = a pandas DataFrame of panel rows (``schemas/features/
panel.json``; pipe rows joined with ``material``/``install_year`` from
``unit_pipe`` where needed), or a numeric array whose first columns are, in order, the
columns the baseline reads (``feature_names_in_`` after a fit on a frame). All follow
the same contract:

* ``fit(X, y)`` learns only from the training rows; rows with a null ``y`` (the last
  panel year, out-of-service pipes) are ignored.
* ``predict(X)`` (= ``risk_score(X)``) returns a float risk score per row (higher =
  riskier; NaN where the score's inputs are missing, which
  :mod:`twmb_geo.model.metrics` ranks last). ``score`` is scikit-learn's R² of that
  score against ``y``; rank them with :func:`twmb_geo.model.metrics.capture_scorer`.
* ``break_probability(X)`` returns ``P(break)`` from a monotone map of the score fitted
  on the training rows: an isotonic regression (non-decreasing, clipped outside the
  training range) of ``y > 0`` on the training scores. Rows with a NaN score get the
  observed break share of NaN-score training rows (or the overall share if there were
  none). With ``calibrate=False`` that map is not fitted (a ranking only: validation
  folds and the champion's members read the score, never the baseline's own
  probability, and the map is most of the cost of a fit on millions of rows) and
  ``break_probability`` raises.
* Parameters are stored verbatim by ``__init__`` (``get_params``/``clone`` work);
  everything learned lives in attributes ending in ``_``.

Which ``y``: the score-only baselines (:class:`PastBreaksBaseline`,
:class:`AgeBaseline`) and :class:`EmpiricalBayesRateBaseline` use ``y`` only for
``break_probability`` and accept ``target_any`` or ``target_count`` (``y > 0`` is
used). :class:`MaterialDecadeBaseline` estimates break *rates* from ``y`` and
should be given ``target_count`` (``target_any`` gives the rate of break-years).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.utils import Tags
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data

from ._arrays import count_target, is_frame, missing_columns_error

__all__ = [
    "AgeBaseline",
    "EmpiricalBayesRateBaseline",
    "MaterialDecadeBaseline",
    "PastBreaksBaseline",
    "cross_section_eb",
]

UNKNOWN = "UNKNOWN"


def _num(X: pd.DataFrame, col: str) -> NDArray[np.float64]:
    return pd.to_numeric(X[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


class _ScoreBaseline(RegressorMixin, BaseEstimator):
    """Shared input handling, ``fit`` and ``break_probability``; subclasses give the score."""

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.positive_only = True
        assert tags.regressor_tags is not None
        tags.regressor_tags.poor_score = True  # a ranking rule, not a fitted mean of y
        return tags

    def _required(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit_score(self, X: pd.DataFrame, y: NDArray[np.float64]) -> None:
        """Learn score parameters from the training rows (``y`` finite)."""

    def _score(self, X: pd.DataFrame) -> NDArray[np.float64]:  # pragma: no cover
        raise NotImplementedError

    def _frame(self, X: Any, *, reset: bool) -> pd.DataFrame:
        """The required columns of ``X`` as a frame (by name, or by position for arrays)."""
        cols = self._required()
        if is_frame(X) and (reset or hasattr(self, "feature_names_in_")):
            missing = [c for c in cols if c not in X.columns]
            if missing:
                raise missing_columns_error(type(self).__name__, missing)
            if reset:
                self.feature_names_in_ = np.asarray(cols, dtype=object)
                self.n_features_in_ = len(cols)
            return X
        A = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan")
        if A.shape[1] < len(cols):
            raise ValueError(
                f"X has {A.shape[1]} feature(s), but {type(self).__name__} reads {len(cols)} "
                f"columns {cols} (pass a DataFrame, or an array with them first)"
            )
        return pd.DataFrame(A[:, : len(cols)], columns=cols)

    def fit(self, X: Any, y: ArrayLike) -> _ScoreBaseline:
        """Fit on rows ``X`` and targets ``y`` (rows with null ``y`` ignored).

        Parameters
        ----------
        X : pandas.DataFrame or array of shape (n, k)
            Panel rows with the columns named by the parameters.
        y : array-like of shape (n,)
            ``target_count`` or ``target_any`` (see the module docstring).

        Returns
        -------
        self
        """
        yy = count_target(y, type(self).__name__)
        Xf = self._frame(X, reset=True)
        check_consistent_length(Xf, yy)
        keep = ~np.isnan(yy)
        if not keep.any():
            raise ValueError("no row with a known target (y is null in every row)")
        Xt, yt = Xf.loc[keep], yy[keep]
        self._fit_score(Xt, yt)
        if not self.calibrate:
            for name in ("calibrator_", "base_rate_", "nan_rate_"):  # of an earlier fit
                self.__dict__.pop(name, None)
            return self
        s = self._score(Xt)
        hit = (yt > 0).astype(np.float64)
        finite = np.isfinite(s)
        self.base_rate_ = float(hit.mean()) if len(hit) else 0.0
        self.nan_rate_ = float(hit[~finite].mean()) if np.any(~finite) else self.base_rate_
        if np.any(finite):
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
            self.calibrator_: IsotonicRegression | None = iso.fit(s[finite], hit[finite])
        else:
            self.calibrator_ = None
        return self

    def predict(self, X: Any) -> NDArray[np.float64]:
        """Risk score per row (higher = riskier; NaN where inputs are missing)."""
        check_is_fitted(self)
        return self._score(self._frame(X, reset=False))

    def risk_score(self, X: Any) -> NDArray[np.float64]:
        """Same as :meth:`predict`."""
        return self.predict(X)

    def break_probability(self, X: Any) -> NDArray[np.float64]:
        """``P(break)`` per row: the isotonic map of the score (fitted with ``calibrate``)."""
        check_is_fitted(self)
        if not self.calibrate:
            raise ValueError(
                f"{type(self).__name__} was fitted with calibrate=False: it ranks but has no "
                "break probability (fit it with calibrate=True)"
            )
        s = self.predict(X)
        p = np.full(len(s), self.nan_rate_, dtype=np.float64)
        finite = np.isfinite(s)
        if self.calibrator_ is not None and np.any(finite):
            p[finite] = self.calibrator_.predict(s[finite])
        elif np.any(finite):
            p[finite] = self.base_rate_
        return np.clip(p, 0.0, 1.0)


class PastBreaksBaseline(_ScoreBaseline):
    """Score = a past-break column, ``breaks_last5`` by default.

    Parameters
    ----------
    column : str, default "breaks_last5"
        Any panel history column (``breaks_to_date``, ``decayed``, ``rate_last5_per_km``...).
    calibrate : bool, default True
        Fit the isotonic map behind :meth:`break_probability` (False: a ranking only).
    """

    def __init__(self, column: str = "breaks_last5", calibrate: bool = True) -> None:
        self.column = column
        self.calibrate = calibrate

    def _required(self) -> list[str]:
        return [self.column]

    def _score(self, X: pd.DataFrame) -> NDArray[np.float64]:
        return _num(X, self.column)


class AgeBaseline(_ScoreBaseline):
    """Score = pipe age, ``age_mean`` by default (older = riskier).

    Parameters
    ----------
    column : str, default "age_mean"
        Age column; NaN (no pipe data) ranks last.
    calibrate : bool, default True
        Fit the isotonic map behind :meth:`break_probability` (False: a ranking only).
    """

    def __init__(self, column: str = "age_mean", calibrate: bool = True) -> None:
        self.column = column
        self.calibrate = calibrate

    def _required(self) -> list[str]:
        return [self.column]

    def _score(self, X: pd.DataFrame) -> NDArray[np.float64]:
        return _num(X, self.column)


def _dense_unique(key: NDArray[np.int64], size: int) -> tuple[NDArray[np.int64], NDArray[np.intp]]:
    """``np.unique(key, return_inverse=True)`` of keys in ``[0, size)``, by a table of the
    keys present instead of a sort when ``size`` is small beside ``len(key)``."""
    if size > 4 * len(key) + 65_536:
        return np.unique(key, return_inverse=True)
    present = np.zeros(size, dtype=bool)
    present[key] = True
    slot = np.cumsum(present, dtype=np.intp) - 1
    return np.flatnonzero(present).astype(np.int64), slot[key]


def _decade_classes(
    X: pd.DataFrame, material_col: str, year_col: str
) -> tuple[NDArray[np.int64], NDArray[np.object_]]:
    """The class index of every row and the ``"MATERIAL|decade"`` label of every class."""
    codes, uniq = pd.factorize(X[material_col], use_na_sentinel=True)
    names = pd.Series(uniq, dtype="string").str.strip().str.upper().fillna(UNKNOWN)
    names = names.mask(names == "", UNKNOWN).to_numpy(dtype=object)
    names = np.append(names, UNKNOWN)  # code -1 (missing) indexes the last name
    dec = np.floor(_num(X, year_col) / 10.0)
    known = np.isfinite(dec)
    lo = float(dec[known].min()) if known.any() else 0.0
    dec_i = np.where(known, np.nan_to_num(dec) - lo, -1).astype(np.int64) + 1  # 0 = unknown
    span = int(dec_i.max()) + 1
    pairs, pair = _dense_unique((codes.astype(np.int64) + 1) * span + dec_i, len(names) * span)
    labels = np.array(
        [
            f"{names[c - 1]}|{int((d - 1 + lo) * 10) if d else UNKNOWN}"
            for c, d in zip(pairs // span, pairs % span, strict=True)
        ],
        dtype=object,
    )
    # materials that differ only in case or spaces share a label: one class per label
    code, uniq = pd.factorize(labels)
    return code[pair].astype(np.int64, copy=False), np.asarray(uniq, dtype=object)


class MaterialDecadeBaseline(_ScoreBaseline):
    """Break rate per km-year by material x install decade (pipes).

    ``rate[class] = sum(y) / sum(exposure_km)`` over the training rows of the class
    (each row is one unit-year, so the rate is breaks per km per year). Material is
    upper-cased, null material or install year form their own ``UNKNOWN`` class;
    classes unseen in training (or with zero training exposure) get the global
    rate ``sum(y) / sum(exposure_km)``. Rows with a null/zero exposure are skipped
    in fit.

    Parameters
    ----------
    material_col, year_col, exposure_col : str
        Columns of ``X`` (join ``material``/``install_year`` from ``unit_pipe``).
    output : {"rate", "expected"}, default "rate"
        ``"rate"``: breaks per km-year (rank by density: best for length-weighted
        capture). ``"expected"``: rate x ``exposure_km`` = expected breaks of the
        unit next year (for unit-weighted rankings); NaN without exposure.
    calibrate : bool, default True
        Fit the isotonic map behind :meth:`break_probability` (False: a ranking only).

    Attributes
    ----------
    rates_ : dict[str, float]
        Fitted rate per ``"MATERIAL|decade"`` class.
    global_rate_ : float
    """

    def __init__(
        self,
        material_col: str = "material",
        year_col: str = "install_year",
        exposure_col: str = "exposure_km",
        output: Literal["rate", "expected"] = "rate",
        calibrate: bool = True,
    ) -> None:
        self.material_col = material_col
        self.year_col = year_col
        self.exposure_col = exposure_col
        self.output = output
        self.calibrate = calibrate

    def _required(self) -> list[str]:
        return [self.material_col, self.year_col, self.exposure_col]

    def _fit_score(self, X: pd.DataFrame, y: NDArray[np.float64]) -> None:
        if self.output not in ("rate", "expected"):
            raise ValueError(f"output must be 'rate' or 'expected', got {self.output!r}")
        exp = _num(X, self.exposure_col)
        ok = np.isfinite(exp) & (exp > 0)
        if not np.any(ok):
            raise ValueError(f"no training row has a positive {self.exposure_col}")
        pair, labels = _decade_classes(X, self.material_col, self.year_col)
        ys = np.bincount(pair[ok], weights=y[ok], minlength=len(labels))
        es = np.bincount(pair[ok], weights=exp[ok], minlength=len(labels))
        seen = np.bincount(pair[ok], minlength=len(labels)) > 0
        self.global_rate_ = float(y[ok].sum() / exp[ok].sum())
        classes = zip(labels[seen], ys[seen], es[seen], strict=True)
        self.rates_ = {str(k): float(a / b) for k, a, b in sorted(classes)}

    def _score(self, X: pd.DataFrame) -> NDArray[np.float64]:
        pair, labels = _decade_classes(X, self.material_col, self.year_col)
        g = self.global_rate_
        rate = np.array([self.rates_.get(str(k), g) for k in labels], dtype=np.float64)[pair]
        if self.output == "expected":
            return rate * _num(X, self.exposure_col)
        return rate


def _mom_prior(c: NDArray[np.float64], e: NDArray[np.float64]) -> tuple[float, float]:
    """Gamma(alpha, beta) prior for Poisson rates by the method of moments.

    Pooled mean ``m = sum(c) / sum(e)``; between-unit variance
    ``tau2 = sum(e (c/e - m)^2) / sum(e) - m / mean(e)`` (Marshall 1991). A
    non-positive ``tau2`` (no extra-Poisson variation) is floored at
    ``1e-6 * m^2``, i.e. near-complete shrinkage to ``m``.
    """
    ok = np.isfinite(c) & np.isfinite(e) & (e > 0)
    c, e = c[ok], e[ok]
    if len(c) == 0 or c.sum() <= 0:
        return 0.0, 1.0  # no information: posterior mean c / (1 + e) ~ 0
    m = float(c.sum() / e.sum())
    s2 = float(np.sum(e * (c / e - m) ** 2) / e.sum())
    tau2 = max(s2 - m / float(e.mean()), 1e-6 * m * m)
    return m * m / tau2, m / tau2


class EmpiricalBayesRateBaseline(_ScoreBaseline):
    """Gamma-Poisson (empirical Bayes) shrinkage of each unit's past break rate.

    For a row with ``c = breaks_to_date`` over exposure ``e`` (``exposure_km *
    history_years`` km-years; ``history_years`` alone when the exposure is null,
    e.g. cells without pipe data) the score is the posterior mean rate
    ``(alpha + c) / (beta + e)``: units with small exposure are pulled harder
    toward the pooled rate ``alpha / beta``. Two priors are fitted by the method
    of moments on the training rows, one per exposure basis (per km-year on rows
    with exposure, per year on all rows), so mixed rows stay on their own scale.
    Note: ``exposure_km`` here is the current in-service length, used as a proxy
    for the length over the whole history.

    Parameters
    ----------
    count_col, exposure_col, years_col : str
        Columns of ``X``.
    output : {"rate", "expected"}, default "rate"
        ``"rate"``: posterior rate (per km-year, or per year without exposure).
        ``"expected"``: posterior rate x ``exposure_km`` (expected breaks next year).
    calibrate : bool, default True
        Fit the isotonic map behind :meth:`break_probability` (False: a ranking only).

    Attributes
    ----------
    alpha_km_, beta_km_ : float
        Prior for rates per km-year.
    alpha_yr_, beta_yr_ : float
        Prior for rates per unit-year (rows without exposure).
    """

    def __init__(
        self,
        count_col: str = "breaks_to_date",
        exposure_col: str = "exposure_km",
        years_col: str = "history_years",
        output: Literal["rate", "expected"] = "rate",
        calibrate: bool = True,
    ) -> None:
        self.count_col = count_col
        self.exposure_col = exposure_col
        self.years_col = years_col
        self.output = output
        self.calibrate = calibrate

    def _required(self) -> list[str]:
        return [self.count_col, self.exposure_col, self.years_col]

    def _basis(self, X: pd.DataFrame) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        c = _num(X, self.count_col)
        km = _num(X, self.exposure_col)
        yrs = _num(X, self.years_col)
        has_km = np.isfinite(km)
        return c, km, yrs, has_km

    def _fit_score(self, X: pd.DataFrame, y: NDArray[np.float64]) -> None:
        if self.output not in ("rate", "expected"):
            raise ValueError(f"output must be 'rate' or 'expected', got {self.output!r}")
        c, km, yrs, has_km = self._basis(X)
        self.alpha_km_, self.beta_km_ = _mom_prior(c[has_km], (km * yrs)[has_km])
        self.alpha_yr_, self.beta_yr_ = _mom_prior(c, yrs)

    def _score(self, X: pd.DataFrame) -> NDArray[np.float64]:
        c, km, yrs, has_km = self._basis(X)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate_km = (self.alpha_km_ + c) / (self.beta_km_ + km * yrs)
            rate_yr = (self.alpha_yr_ + c) / (self.beta_yr_ + yrs)
        rate = np.where(has_km, rate_km, rate_yr)
        if self.output == "expected":
            return np.where(has_km, rate * km, rate)
        return rate


def cross_section_eb(X: pd.DataFrame) -> NDArray[np.float64]:
    """Empirical-Bayes rates of rows ``X`` with the prior fitted on ``X`` itself.

    For one year's cross-section of units (features only, no target), as
    :class:`EmpiricalBayesRateBaseline` scores it: ``breaks_to_date`` over
    ``exposure_km * history_years`` (or ``history_years`` without exposure).
    """
    eb = EmpiricalBayesRateBaseline()
    eb._fit_score(X, np.zeros(len(X)))
    return eb._score(X)
