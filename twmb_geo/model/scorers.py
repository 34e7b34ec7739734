"""Ranking scorers for scikit-learn model selection: capture at a share of the network.

``capture_scorer(0.05)`` is a ``scorer(estimator, X, y)`` for ``scoring=`` of
:func:`sklearn.model_selection.cross_val_score` and ``GridSearchCV``: the share of the
breaks ``y`` caught in the riskiest 5 % of the rows ranked by the estimator
(:func:`twmb_geo.model.metrics.capture_at`, ties at their expected value).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from ._arrays import as_1d
from .metrics import Ties, capture_at

__all__ = ["CaptureScorer", "capture_scorer"]


def _risk_of(estimator: Any, X: Any) -> NDArray[np.float64]:
    """The ranking score of a fitted estimator: ``risk_score``, ``P(break)`` or ``predict``."""
    if hasattr(estimator, "risk_score"):
        return as_1d(estimator.risk_score(X), "risk_score")
    if hasattr(estimator, "predict_proba"):
        return as_1d(estimator.predict_proba(X)[:, 1], "predict_proba")
    return as_1d(estimator.predict(X), "predict")


class CaptureScorer:
    """Scorer ``scorer(estimator, X, y)`` giving :func:`capture_at` of the estimator's ranking.

    Usable as ``scoring=`` of :func:`sklearn.model_selection.cross_val_score` and
    ``GridSearchCV`` (higher is better). Build it with :func:`capture_scorer`.
    """

    def __init__(self, frac: float, weight: str | int | None, ties: Ties) -> None:
        self.frac = frac
        self.weight = weight
        self.ties = ties

    def __repr__(self) -> str:
        return f"capture_scorer(frac={self.frac!r}, weight={self.weight!r}, ties={self.ties!r})"

    def _weights(self, X: Any) -> NDArray[np.float64] | None:
        if self.weight is None:
            return None
        if isinstance(X, pd.DataFrame):
            if self.weight not in X.columns:
                raise ValueError(f"X lacks the weight column {self.weight!r}")
            return pd.to_numeric(X[self.weight], errors="coerce").to_numpy(np.float64, na_value=0.0)
        if not isinstance(self.weight, int):
            raise ValueError(f"weight {self.weight!r} names a column; X is not a DataFrame")
        return as_1d(np.asarray(X)[:, self.weight], "weight")

    def __call__(self, estimator: Any, X: Any, y: ArrayLike) -> float:
        """Capture at ``frac`` of ``estimator``'s ranking of ``X`` (rows with null ``y`` dropped)."""
        yy = as_1d(y, "y")
        keep = ~np.isnan(yy)
        score = _risk_of(estimator, X)
        w = self._weights(X)
        return capture_at(
            yy[keep], score[keep], self.frac, None if w is None else w[keep], ties=self.ties
        )


def capture_scorer(
    frac: float = 0.05, weight: str | int | None = None, *, ties: Ties = "average"
) -> CaptureScorer:
    """A scikit-learn scorer of the capture at ``frac`` (share of breaks in the riskiest share).

    Parameters
    ----------
    frac : float, default 0.05
        Share of the network inspected, in [0, 1].
    weight : str, int or None
        Column of ``X`` holding each row's size (e.g. ``"length_km"``): a name for
        DataFrames, a position for arrays; ``None`` counts every row as 1.
    ties : {"first", "average"}, default "average"
        As in :func:`capture_at`.

    Returns
    -------
    CaptureScorer
        ``scorer(estimator, X, y)`` with ``y`` the break counts; the ranking is the
        estimator's ``risk_score`` (``predict_proba[:, 1]`` or ``predict`` otherwise).
    """
    if not 0.0 <= float(frac) <= 1.0:
        raise ValueError(f"frac must lie in [0, 1], got {frac!r}")
    if ties not in ("first", "average"):
        raise ValueError(f"ties must be 'first' or 'average', got {ties!r}")
    return CaptureScorer(float(frac), weight, ties)
