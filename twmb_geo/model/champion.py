"""The published ranking: a champion candidate refitted on every labelled row, with calibration.

A *candidate* is one way to rank units for next year: a learned model (for example
Poisson boosting), a baseline rule (breaks in the past five years, empirical Bayes...) or a
blend of a model with a baseline. :class:`ChampionModel` holds the candidate that won the
champion selection (:mod:`twmb_geo.model.selection`) and gives every number a planner reads
from that one ranking:

* ``risk_score`` - the candidate's score (a blend: the weighted mean of its members'
  percentiles among the reference rows, the units of the latest training year);
* ``expected_breaks`` - an isotonic (monotone) map of the score to next-year breaks, fitted
  on the candidate's *forward* out-of-fold predictions (passed to :meth:`ChampionModel.fit`
  as ``calibration``), so counts, Monte Carlo bands and the renewal scenario follow the
  ranking and are calibrated out of time; per km of length when units are length-weighted;
* ``break_probability`` - ``1 - exp(-expected_breaks)``.

Length-weighted units (pipes, streets) are ranked by *density*: a learned model's expected
breaks divided by the unit's length, so the riskiest 5 % of network length holds the most
breaks; baselines already score rates or counts as documented in
:mod:`twmb_geo.model.baselines`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, clone
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.validation import check_is_fitted

from ._arrays import count_target
from .estimators import BreakCountRegressor, BreakRiskClassifier

__all__ = [
    "ChampionModel",
    "ChampionScores",
    "Ecdf",
    "RateCalibrator",
    "fit_member",
    "member_score",
]

_FLOOR = 1e-9
_P_CLIP = 1e-6


class Ecdf:
    """Mid-rank empirical distribution of reference scores (NaN maps to 0, ranked last)."""

    def __init__(self, reference: ArrayLike) -> None:
        r = np.asarray(reference, dtype=np.float64)
        self.sorted_ = np.sort(r[np.isfinite(r)])

    def __call__(self, s: ArrayLike) -> NDArray[np.float64]:
        x = np.asarray(s, dtype=np.float64)
        n = len(self.sorted_)
        if n == 0:
            return np.zeros(len(x))
        lo = np.searchsorted(self.sorted_, x, side="left")
        hi = np.searchsorted(self.sorted_, x, side="right")
        out = (lo + hi) / (2.0 * n)
        return np.where(np.isfinite(x), out, 0.0)


class RateCalibrator:
    """Isotonic map of a ranking score to expected breaks per unit of weight.

    Fitted on (score, observed next-year breaks, weight) triples: with weights (lengths in
    km) the target is breaks per km with the length as sample weight, else breaks per unit.
    Rows with a NaN score get the observed rate of such rows (the overall rate if none).
    """

    def fit(self, score: ArrayLike, y: ArrayLike, w: ArrayLike | None = None) -> RateCalibrator:
        """Fit on scores, observed counts and optional weights (rows with bad values skipped)."""
        s = np.asarray(score, dtype=np.float64)
        yy = np.asarray(y, dtype=np.float64)
        ww = np.ones(len(s)) if w is None else np.asarray(w, dtype=np.float64)
        ok = np.isfinite(yy) & np.isfinite(ww) & (ww > 0)
        s, yy, ww = s[ok], yy[ok], ww[ok]
        fin = np.isfinite(s)
        self.rate_ = float(yy.sum() / ww.sum()) if ww.sum() > 0 else 0.0
        self.nan_rate_ = float(yy[~fin].sum() / ww[~fin].sum()) if (~fin).any() else self.rate_
        self.iso_: IsotonicRegression | None = None
        if fin.sum() >= 2:
            iso = IsotonicRegression(y_min=0.0, increasing=True, out_of_bounds="clip")
            self.iso_ = iso.fit(s[fin], yy[fin] / ww[fin], sample_weight=ww[fin])
        return self

    def rate(self, score: ArrayLike) -> NDArray[np.float64]:
        """Expected breaks per unit of weight for ``score``."""
        s = np.asarray(score, dtype=np.float64)
        out = np.full(len(s), self.nan_rate_, dtype=np.float64)
        fin = np.isfinite(s)
        if self.iso_ is not None and fin.any():
            out[fin] = self.iso_.predict(s[fin])
        elif fin.any():
            out[fin] = self.rate_
        return out


def _is_model(est: Any) -> bool:
    return isinstance(est, BreakCountRegressor | BreakRiskClassifier)


def _weights(X: pd.DataFrame, col: str | None) -> NDArray[np.float64] | None:
    if col is None:
        return None
    return pd.to_numeric(X[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def member_score(est: Any, X: pd.DataFrame, density_col: str | None) -> NDArray[np.float64]:
    """Score of one fitted member: a model's expected breaks (per km when ``density_col``), else
    the baseline's own score (higher = riskier, NaN ranks last)."""
    if not _is_model(est):
        return np.asarray(est.risk_score(X), dtype=np.float64)
    mu = np.asarray(est.expected_breaks(X), dtype=np.float64)
    w = _weights(X, density_col)
    if w is None:
        return mu
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(w) & (w > 0), mu / w, mu)


def fit_member(est: BaseEstimator, X: pd.DataFrame, y: NDArray[np.float64]) -> Any:
    """Fit a clone of ``est`` on count targets ``y`` (binarised for a classifier)."""
    e = clone(est)
    if isinstance(e, BreakRiskClassifier):
        return e.fit(X, np.where(np.isnan(y), np.nan, y > 0))
    return e.fit(X, y)


#: seed of the calibration sample of large training sets
_CALIBRATION_SEED = 42


@dataclass(frozen=True)
class ChampionScores:
    """A champion's predictions of the same rows from one evaluation of its members
    (:meth:`ChampionModel.evaluate`)."""

    risk_score: NDArray[np.float64]
    expected_breaks: NDArray[np.float64]
    probability: NDArray[np.float64]
    link: NDArray[np.float64]


class ChampionModel(BaseEstimator):
    """One candidate ranking (a model, a baseline or a blend), fitted and calibrated.

    Parameters
    ----------
    name : str, default "champion"
        Candidate name (as in the model card).
    members : sequence of (str, estimator)
        Unfitted estimators: one for a model or baseline candidate, two for a blend.
    weights : sequence of float or None
        Blend weight of each member (summing to 1); ``None`` for a single member.
    density_col : str or None
        Length column of length-weighted units: models are ranked by expected breaks per km
        and calibrated per km. ``None``: every unit counts 1.
    year_col : str, default "year"
        Year column; the blend's reference rows are the training rows of the latest year.
    calibration_rows : int or None, default 200_000
        Without out-of-fold scores, the calibration is fitted on the training rows, at
        most this many (a seeded random sample: an isotonic fit on a million pipe-years
        costs seconds and gains nothing); ``None`` uses every row.

    Attributes
    ----------
    members_ : list of (str, fitted estimator)
    references_ : list of Ecdf
        Reference distribution per member (blends only).
    calibration_ : RateCalibrator
        Score -> expected breaks (per km with ``density_col``).
    feature_names_in_ : ndarray of str
        Every column the members read, in first-seen order.
    """

    predicts_counts: ClassVar[bool] = True

    def __init__(
        self,
        name: str = "champion",
        members: Sequence[tuple[str, BaseEstimator]] = (),
        weights: Sequence[float] | None = None,
        density_col: str | None = None,
        year_col: str = "year",
        calibration_rows: int | None = 200_000,
    ) -> None:
        self.name = name
        self.members = members
        self.weights = weights
        self.density_col = density_col
        self.year_col = year_col
        self.calibration_rows = calibration_rows

    # ------------------------------------------------------------------ fit

    def _check(self) -> None:
        if not self.members:
            raise ValueError("ChampionModel needs at least one member")
        if self.weights is not None and len(self.weights) != len(self.members):
            raise ValueError("weights must have one value per member")
        if self.weights is None and len(self.members) > 1:
            raise ValueError("a blend of several members needs weights")

    def fit(
        self,
        X: pd.DataFrame,
        y: ArrayLike,
        calibration: tuple[ArrayLike, ArrayLike, ArrayLike | None] | None = None,
    ) -> ChampionModel:
        """Fit every member on ``X``/``y`` (break counts) and the calibration.

        Parameters
        ----------
        X : DataFrame
            Panel rows with every column the members read.
        y : array-like
            Next-year break counts (null rows ignored).
        calibration : (score, y, weight) or None
            Out-of-fold scores of this candidate with their observed counts and lengths
            (forward validation); ``None`` calibrates on the training rows themselves.
        """
        self._check()
        if not isinstance(X, pd.DataFrame):
            raise TypeError("ChampionModel is fitted on a DataFrame of panel rows")
        yy = count_target(y, type(self).__name__)
        self.members_ = [(n, fit_member(e, X, yy)) for n, e in self.members]
        names: list[str] = []
        for _, m in self.members_:
            names += [str(c) for c in getattr(m, "feature_names_in_", []) if str(c) not in names]
        if self.density_col and self.density_col not in names:
            names.append(self.density_col)
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = len(names)
        self.references_: list[Ecdf] = []
        if len(self.members_) > 1:
            known = ~np.isnan(yy)
            years = pd.to_numeric(X[self.year_col], errors="coerce").to_numpy()
            ref = X[known & (years == np.nanmax(years[known]))]
            self.references_ = [
                Ecdf(member_score(m, ref, self.density_col)) for _, m in self.members_
            ]
        if calibration is None:
            rows = np.flatnonzero(~np.isnan(yy))
            cap = self.calibration_rows
            if cap is not None and len(rows) > cap:
                rng = np.random.default_rng(_CALIBRATION_SEED)
                rows = np.sort(rng.choice(rows, size=int(cap), replace=False))
            Xk = X.iloc[rows]
            calibration = (self.raw_score(Xk), yy[rows], _weights(Xk, self.density_col))
        score, yc, w = calibration
        self.calibration_ = RateCalibrator().fit(score, yc, w if self.density_col else None)
        return self

    # ------------------------------------------------------------------ predict

    def member_scores(self, X: pd.DataFrame) -> list[NDArray[np.float64]]:
        """Each fitted member's score of ``X`` (see :func:`member_score`)."""
        check_is_fitted(self)
        return [member_score(m, X, self.density_col) for _, m in self.members_]

    def risk_score(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Ranking score per row, higher = riskier; -1 where the inputs are missing (last).

        Scores of every candidate are >= 0 (counts, rates, ages, percentiles), so -1 ranks
        a unit without the rule's input (a street without mains under a per-km rule) last.
        """
        return self._risk(self.raw_score(X))

    def raw_score(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """The candidate's score per row, NaN where its inputs are missing."""
        scores = self.member_scores(X)
        if len(scores) == 1:
            return scores[0]
        assert self.weights is not None
        return np.sum(
            [w * ref(s) for w, ref, s in zip(self.weights, self.references_, scores, strict=True)],
            axis=0,
        )

    def predict(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Expected breaks next year per row (same as :meth:`expected_breaks`)."""
        return self.expected_breaks(X)

    def expected_rate(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Calibrated expected breaks per unit of weight (per km, or per unit)."""
        return self.calibration_.rate(self.raw_score(X))

    def expected_breaks(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Calibrated expected breaks next year per row."""
        return self._expected(self.raw_score(X), X)

    def break_probability(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """``P(any break next year) = 1 - exp(-expected_breaks)``."""
        return self._probability(self.expected_breaks(X))

    def link(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """The score on an additive scale (log, or logit of a blend's percentile) for drivers."""
        return self._link(self.raw_score(X))

    def evaluate(self, X: pd.DataFrame) -> ChampionScores:
        """:meth:`risk_score`, :meth:`expected_breaks`, :meth:`break_probability` and
        :meth:`link` of ``X`` from one evaluation of the members (scoring needs all four)."""
        s = self.raw_score(X)
        expected = self._expected(s, X)
        return ChampionScores(self._risk(s), expected, self._probability(expected), self._link(s))

    @staticmethod
    def _risk(s: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.where(np.isfinite(s), s, -1.0)

    def _expected(self, s: NDArray[np.float64], X: pd.DataFrame) -> NDArray[np.float64]:
        rate = self.calibration_.rate(s)
        w = _weights(X, self.density_col)
        if w is None:
            return rate
        return rate * np.where(np.isfinite(w) & (w > 0), w, 0.0)

    @staticmethod
    def _probability(expected: NDArray[np.float64]) -> NDArray[np.float64]:
        return -np.expm1(-np.maximum(expected, 0.0))

    def _link(self, s: NDArray[np.float64]) -> NDArray[np.float64]:
        if len(self.members_) > 1:
            p = np.clip(np.nan_to_num(s, nan=0.0), _P_CLIP, 1.0 - _P_CLIP)
            return np.log(p) - np.log1p(-p)
        return np.log(np.maximum(np.nan_to_num(s, nan=0.0), _FLOOR))

    @property
    def model_members(self) -> list[Any]:
        """The fitted learned models among the members (empty for a baseline)."""
        check_is_fitted(self)
        return [m for _, m in self.members_ if _is_model(m)]
