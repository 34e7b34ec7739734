"""The design matrix of the piecewise-exponential (proportional-hazards) Poisson GLM.

A pipe's yearly break rate in the survival literature on water mains (Kleiner and Rajani's
reviews; Le Gat's non-homogeneous Poisson models) is a proportional-hazards form: a
baseline hazard of age that depends on the material, multiplied by factors of diameter,
lining, previous failures and the local context. With one row per unit-year and a Poisson
likelihood, a baseline hazard that is constant within age bands is the piecewise-exponential
model, a Cox model with a piecewise baseline (Holford 1980; Laird and Olivier 1981).
:class:`HazardDesign` builds that design from the panel's columns by name:

* material one-hots (``mat_*``): kept, and each crossed with the age bands and with age
  (so every material has its own piecewise baseline and its own ageing slope);
* age (``age_mean``): bands (``age_edges``) and age / 50 capped at 100 years, the median
  and a missing indicator where unknown;
* diameter (``diameter_mm``): its logarithm;
* counts of previous breaks (``breaks_last3``, ``breaks_last5``): ``log1p`` and the levels
  ``>= 1``, ``>= 2``, ``>= 3`` (the number of previous failures as a factor);
* 0/1 columns as they are; every other column ``log1p`` of its non-negative part (signed
  for negative values), the median where missing.

With feature names unknown (a plain array) every column is treated as "other". ``fit``
learns only the medians used for missing values and which columns are 0/1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ._arrays import nan_medians, signed_log1p

__all__ = ["AGE_EDGES", "HISTORY_LEVELS", "HazardDesign"]

#: inner edges of the age bands, in years
AGE_EDGES: tuple[float, ...] = (15.0, 30.0, 45.0, 60.0, 75.0, 90.0)
#: counts of previous breaks that enter as a factor (levels >= 1, 2, 3)
HISTORY_LEVELS: tuple[str, ...] = ("breaks_last3", "breaks_last5")
_AGE = "age_mean"
_DIAMETER = "diameter_mm"
_AGE_CAP = 100.0


class HazardDesign(TransformerMixin, BaseEstimator):
    """Piecewise-exponential design of panel features (see the module docstring).

    Parameters
    ----------
    feature_names : sequence of str or None, default None
        Names of the input columns, in order; ``None`` treats every column as "other".
    age_edges : sequence of float, default :data:`AGE_EDGES`
        Inner edges of the age bands, increasing.

    Attributes
    ----------
    medians_ : ndarray
        Median of every input column in the fitted rows (0 where a column is all missing).
    binary_ : ndarray of bool
        Columns that held only 0 and 1 in the fitted rows (entered as they are).
    n_features_in_ : int
    """

    def __init__(
        self, feature_names: Sequence[str] | None = None, age_edges: Sequence[float] = AGE_EDGES
    ) -> None:
        self.feature_names = feature_names
        self.age_edges = age_edges

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _names(self, n: int) -> list[str]:
        if self.feature_names is None:
            return [f"x{j}" for j in range(n)]
        names = [str(c) for c in self.feature_names]
        if len(names) != n:
            raise ValueError(f"feature_names has {len(names)} names for {n} columns")
        return names

    def fit(self, X: Any, y: Any = None) -> HazardDesign:
        """Learn the medians used where a value is missing."""
        A = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        self._names(A.shape[1])
        edges = np.asarray(self.age_edges, dtype=float)
        if edges.ndim != 1 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"age_edges must increase, got {list(self.age_edges)}")
        self.medians_ = nan_medians(A)
        filled = np.where(np.isnan(A), self.medians_, A)
        self.binary_: NDArray[np.bool_] = np.asarray(np.isin(filled, (0.0, 1.0)).all(axis=0))
        return self

    def transform(self, X: Any) -> NDArray[np.float64]:
        """The design matrix (one row per input row)."""
        check_is_fitted(self)
        A = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
        names = self._names(A.shape[1])
        col = {n: j for j, n in enumerate(names)}
        filled = np.where(np.isnan(A), self.medians_, A)
        out: list[NDArray[np.float64]] = []
        used: set[str] = set()
        mats = [n for n in names if n.startswith("mat_")]
        bands: list[NDArray[np.float64]] = []
        age_lin = None
        if _AGE in col:
            j = col[_AGE]
            age = np.clip(filled[:, j], 0.0, _AGE_CAP)
            band = np.digitize(age, np.asarray(self.age_edges, dtype=float))
            bands = [(band == b).astype(float) for b in range(1, len(self.age_edges) + 1)]
            age_lin = age / 50.0
            out += [age_lin, *bands, np.isnan(A[:, j]).astype(float)]
            used.add(_AGE)
        for m in mats:
            mm = filled[:, col[m]]
            out.append(mm)
            if age_lin is not None:
                out += [mm * age_lin, *(mm * b for b in bands)]
            used.add(m)
        if _DIAMETER in col:
            j = col[_DIAMETER]
            d = filled[:, j]
            out += [np.log(np.where(d > 0, d, 1.0)), np.isnan(A[:, j]).astype(float)]
            used.add(_DIAMETER)
        for h in HISTORY_LEVELS:
            if h in col:
                v = np.maximum(filled[:, col[h]], 0.0)
                out += [np.log1p(v), *((v >= k).astype(float) for k in (1, 2, 3))]
                used.add(h)
        for n in names:
            if n in used:
                continue
            v = filled[:, col[n]]
            out.append(v if self.binary_[col[n]] else signed_log1p(v))
        if not out:
            return np.empty((len(A), 0), dtype=np.float64)
        return np.column_stack(out)
