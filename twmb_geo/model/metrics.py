"""Ranking and probability metrics for next-year break risk.

The headline metric is the *capture*: the share of next-year breaks that fall in
the riskiest ``frac`` of the network, where the network is measured in length (km)
for pipes and streets, or in units for cells. All functions are pure and
vectorised; they take array-likes (numpy arrays, pandas Series, lists) of equal
length and never modify their inputs.

Conventions
-----------
* Scores rank descending; NaN scores rank **last** (after every finite score).
* Ties: ``ties="first"`` breaks ties by the order of the input (a stable sort:
  among equal scores, the row that comes first in the input is taken first), so
  results are deterministic but depend on row order. ``ties="average"`` returns
  the capture under a random order within each tie group, with the units of a
  tie group straddling the cut contributing *proportionally* to the share of the
  group's weight that fits in the budget. With equal unit weights (``weight=None``)
  this is exactly the expected capture over uniformly random tie orders; with
  lengths it is the expectation when breaks are spread uniformly along the tied
  length. NaN scores form one tie group.
* The boundary unit (the one that crosses ``frac`` of the total weight) is
  included fractionally, so capture is a continuous, piecewise-linear, monotone
  function of ``frac`` with ``capture(0) == 0`` and ``capture(1) == 1``.
* Undefined values are returned as NaN, never raised: capture with no breaks or
  no weight, AUCs with a single class. Functions emit a :class:`MetricWarning`
  explaining why; :func:`evaluate` collects those explanations under ``"notes"``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn import metrics as skm

from ._arrays import as_1d, rank_order

__all__ = [
    "MetricWarning",
    "brier",
    "calibration_table",
    "capture_at",
    "capture_curve",
    "evaluate",
    "frac_label",
    "leakage_warnings",
    "lift",
    "log_loss",
    "pr_auc",
    "precision_at_k",
    "roc_auc",
]

Ties = Literal["first", "average"]


class MetricWarning(UserWarning):
    """A metric is undefined for the given input and was returned as NaN."""


# --------------------------------------------------------------------------- helpers


def _check_same_length(**arrays: NDArray[np.float64]) -> int:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs must have equal length, got {lengths}")
    return next(iter(lengths.values()))


def _check_counts(y: NDArray[np.float64], name: str) -> None:
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN/inf; drop rows with a null target first")
    if np.any(y < 0):
        raise ValueError(f"{name} must be non-negative")


def _weights(weight: ArrayLike | None, n: int) -> NDArray[np.float64]:
    if weight is None:
        return np.ones(n, dtype=np.float64)
    w = as_1d(weight, "weight")
    if len(w) != n:
        raise ValueError(f"weight has length {len(w)}, expected {n}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weight must be finite and non-negative (fill null lengths first)")
    return w


def _group_ends(sorted_score: NDArray[np.float64], ties: Ties) -> NDArray[np.intp]:
    """Index (in ranked order) of the last member of each tie group."""
    n = len(sorted_score)
    if ties == "first":
        return np.arange(n, dtype=np.intp)
    if ties != "average":
        raise ValueError(f"ties must be 'first' or 'average', got {ties!r}")
    a, b = sorted_score[:-1], sorted_score[1:]
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return np.append(np.flatnonzero(~same), n - 1).astype(np.intp)


#: a score's ranking (:func:`rank_order`) and the ends of its tie groups (:func:`_group_ends`)
Ranked = tuple[NDArray[np.intp], NDArray[np.intp]]


def _ranked(score: NDArray[np.float64], ties: Ties) -> Ranked:
    order = rank_order(score)
    return order, _group_ends(score[order], ties)


def _cumulative(
    y: NDArray[np.float64],
    score: NDArray[np.float64],
    w: NDArray[np.float64],
    ties: Ties,
    ranked: Ranked | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Knots (cumulative weight, cumulative y) at tie-group ends, starting at (0, 0);
    ``ranked``: the score's ranking when already made (the metrics of one score share it)."""
    order, ends = ranked if ranked is not None else _ranked(score, ties)
    cw = np.cumsum(w[order])[ends]
    cy = np.cumsum(y[order])[ends]
    return np.concatenate(([0.0], cw)), np.concatenate(([0.0], cy))


def _interp_knots(
    budget: NDArray[np.float64], xk: NDArray[np.float64], yk: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Cumulative y at cumulative weight ``budget`` (linear within a group).

    Groups of zero weight are free: they are included as soon as the budget reaches
    them (``budget > 0``), hence the right-sided search over the knots.
    """
    j = np.searchsorted(xk, budget, side="right") - 1  # last knot with xk <= budget
    j = np.clip(j, 0, len(xk) - 1)
    out = yk[j].astype(np.float64)
    inner = j < len(xk) - 1
    jj = j[inner]
    dx = xk[jj + 1] - xk[jj]  # > 0 because xk[jj + 1] > budget >= xk[jj]
    out[inner] += (budget[inner] - xk[jj]) / dx * (yk[jj + 1] - yk[jj])
    out[budget <= 0] = 0.0
    return out


def _capture_many(
    y_count: ArrayLike,
    score: ArrayLike,
    fracs: NDArray[np.float64],
    weight: ArrayLike | None,
    ties: Ties,
    ranked: Ranked | None = None,
) -> NDArray[np.float64]:
    y = as_1d(y_count, "y_count")
    s = as_1d(score, "score")
    n = _check_same_length(y_count=y, score=s)
    _check_counts(y, "y_count")
    w = _weights(weight, n)
    if np.any((fracs < 0) | (fracs > 1)) or np.any(np.isnan(fracs)):
        raise ValueError("frac must lie in [0, 1]")
    total_y = float(y.sum())
    total_w = float(w.sum())
    if n == 0 or total_y <= 0 or total_w <= 0:
        what = "no breaks" if n and total_w > 0 else "no units/weight"
        warnings.warn(f"capture undefined ({what}); returning NaN", MetricWarning, stacklevel=3)
        return np.full(len(fracs), np.nan)
    xk, yk = _cumulative(y, s, w, ties, ranked)
    budget = fracs * xk[-1]  # xk[-1] is the cumulative total: frac == 1 reaches it exactly
    cap = _interp_knots(budget, xk, yk) / yk[-1]
    cap[fracs >= 1] = 1.0
    return np.clip(cap, 0.0, 1.0)


def frac_label(frac: float) -> str:
    """Key suffix for a fraction: ``0.01 -> "1pct"``, ``0.025 -> "2.5pct"``."""
    return f"{frac * 100:g}pct"


# --------------------------------------------------------------------------- capture


def capture_at(
    y_count: ArrayLike,
    score: ArrayLike,
    frac: float,
    weight: ArrayLike | None = None,
    *,
    ties: Ties = "first",
) -> float:
    """Share of breaks caught in the riskiest ``frac`` of the network.

    Parameters
    ----------
    y_count : array-like of shape (n,)
        Observed next-year breaks per unit (``target_count``); finite, >= 0.
    score : array-like of shape (n,)
        Risk score, higher = riskier. NaN ranks last.
    frac : float
        Share of the total weight to inspect, in [0, 1].
    weight : array-like of shape (n,), optional
        Unit size: length in km for pipes and streets (``exposure_km``). ``None``
        counts each unit as 1 (cells). Finite and >= 0; zero-weight units are
        taken for free once the ranking reaches them (for ``frac > 0``).
    ties : {"first", "average"}, default "first"
        ``"first"``: tied units are taken in input order (stable, deterministic).
        ``"average"``: a tie group straddling the cut contributes in proportion to
        the share of its weight inside the budget (the expected capture under a
        random tie order for equal weights).

    Returns
    -------
    float
        Breaks caught / total breaks, in [0, 1]; the unit crossing the budget is
        included fractionally. NaN (with a :class:`MetricWarning`) when there are no
        breaks or no weight.

    Examples
    --------
    >>> capture_at([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.2], 0.5)
    0.5
    """
    return float(_capture_many(y_count, score, np.array([frac], dtype=float), weight, ties)[0])


def capture_curve(
    y_count: ArrayLike,
    score: ArrayLike,
    weight: ArrayLike | None = None,
    fracs: ArrayLike | None = None,
    *,
    ties: Ties = "first",
) -> pd.DataFrame:
    """Capture as a function of the inspected share of the network.

    Parameters
    ----------
    y_count, score, weight, ties
        As in :func:`capture_at`.
    fracs : array-like, optional
        Shares in [0, 1]; default ``np.linspace(0, 1, 101)``.

    Returns
    -------
    pandas.DataFrame
        Columns ``frac``, ``capture`` and ``random`` (the expected capture of a
        random ranking, equal to ``frac``), one row per ``frac``.
    """
    f = np.linspace(0.0, 1.0, 101) if fracs is None else as_1d(fracs, "fracs")
    cap = _capture_many(y_count, score, f, weight, ties)
    return pd.DataFrame({"frac": f, "capture": cap, "random": f})


def precision_at_k(y_any: ArrayLike, score: ArrayLike, k: int, *, ties: Ties = "first") -> float:
    """Share of the ``k`` highest-scored units that break next year.

    Parameters
    ----------
    y_any : array-like of shape (n,)
        Next-year break indicator (``target_any``; any value > 0 counts as a break).
    score : array-like of shape (n,)
        Risk score; NaN ranks last.
    k : int
        Number of units, >= 1; clipped to ``n``.
    ties : {"first", "average"}
        As in :func:`capture_at` (``"average"`` is the expected precision under a
        random order of the tie group at the cut).

    Returns
    -------
    float
        Precision in [0, 1]; NaN when there are no units.
    """
    y = (as_1d(y_any, "y_any") > 0).astype(np.float64)
    s = as_1d(score, "score")
    _check_same_length(y_any=y, score=s)
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return _precisions(y, s, [int(k)], ties)[0]  # NaN when there are no units


def _precisions(
    y: NDArray[np.float64],
    s: NDArray[np.float64],
    ks: Sequence[int],
    ties: Ties,
    ranked: Ranked | None = None,
) -> list[float]:
    """:func:`precision_at_k` of 0/1 ``y`` at every ``k`` (>= 1) of ``ks`` from one ranking."""
    n = len(y)
    if n == 0:
        return [math.nan for _ in ks]
    xk, yk = _cumulative(y, s, np.ones(n), ties, ranked)
    kk = np.minimum(np.asarray(ks, dtype=np.int64), n)
    got = _interp_knots(kk.astype(np.float64), xk, yk) / kk
    return [float(v) for v in got]


# --------------------------------------------------------------------------- classification


def _binary_inputs(
    y_any: ArrayLike, score: ArrayLike, name: str
) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
    y = as_1d(y_any, "y_any")
    s = as_1d(score, name)
    _check_same_length(y_any=y, **{name: s})
    if np.any(np.isnan(y)):
        raise ValueError("y_any contains NaN; drop rows with a null target first")
    return (y > 0).astype(np.int8), s


def _nan_last(s: NDArray[np.float64]) -> NDArray[np.float64]:
    """Replace NaN scores by a value below every finite score (so they rank last)."""
    if not np.any(np.isnan(s)):
        return s
    finite = s[np.isfinite(s)]
    low = (finite.min() - 1.0) if len(finite) else 0.0
    return np.where(np.isnan(s), low, s)


def _single_class(y: NDArray[np.int8], metric: str) -> bool:
    if len(y) == 0 or y.min() == y.max():
        which = "no units" if len(y) == 0 else f"only class {int(y[0])}"
        warnings.warn(
            f"{metric} undefined with a single class ({which}); returning NaN",
            MetricWarning,
            stacklevel=3,
        )
        return True
    return False


def roc_auc(y_any: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve (:func:`sklearn.metrics.roc_auc_score`).

    NaN scores rank last. Returns NaN with a :class:`MetricWarning` when ``y_any``
    holds a single class (the AUC is undefined).
    """
    y, s = _binary_inputs(y_any, score, "score")
    if _single_class(y, "roc_auc"):
        return math.nan
    return float(skm.roc_auc_score(y, _nan_last(s)))


def pr_auc(y_any: ArrayLike, score: ArrayLike) -> float:
    """Average precision (:func:`sklearn.metrics.average_precision_score`).

    NaN scores rank last. Returns NaN with a :class:`MetricWarning` when ``y_any``
    holds a single class.
    """
    y, s = _binary_inputs(y_any, score, "score")
    if _single_class(y, "pr_auc"):
        return math.nan
    return float(skm.average_precision_score(y, _nan_last(s)))


def _probabilities(y_any: ArrayLike, prob: ArrayLike) -> tuple[NDArray[np.int8], NDArray]:
    y, p = _binary_inputs(y_any, prob, "prob")
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("prob must be finite and within [0, 1]")
    return y, p


def brier(y_any: ArrayLike, prob: ArrayLike) -> float:
    """Brier score (mean squared error of the probability); defined for one class too."""
    y, p = _probabilities(y_any, prob)
    if len(y) == 0:
        return math.nan
    return float(skm.brier_score_loss(y, p, labels=[0, 1]))


def log_loss(y_any: ArrayLike, prob: ArrayLike) -> float:
    """Mean log loss (:func:`sklearn.metrics.log_loss` with ``labels=[0, 1]``).

    Well defined with a single class (it is then the mean ``-log(1 - p)`` or
    ``-log(p)``); sklearn clips probabilities of 0 and 1 to its machine epsilon.
    """
    y, p = _probabilities(y_any, prob)
    if len(y) == 0:
        return math.nan
    return float(skm.log_loss(y, p, labels=[0, 1]))


def calibration_table(
    y_any: ArrayLike,
    prob: ArrayLike,
    n_bins: int = 10,
    strategy: Literal["quantile", "uniform"] = "quantile",
) -> pd.DataFrame:
    """Observed break rate against the mean predicted probability per bin.

    Parameters
    ----------
    y_any : array-like of shape (n,)
        Next-year break indicator.
    prob : array-like of shape (n,)
        Predicted probability in [0, 1].
    n_bins : int, default 10
        Requested number of bins.
    strategy : {"quantile", "uniform"}
        ``"quantile"``: edges at quantiles of ``prob`` (duplicate edges merged, so
        heavily tied probabilities give fewer bins); ``"uniform"``: equal-width bins
        on [0, 1]. Bins are closed on the left, the last one on both sides.

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin, ordered by probability: ``bin``, ``prob_lo``,
        ``prob_hi`` (edges), ``n``, ``n_breaks``, ``mean_prob``, ``obs_rate``.
    """
    y, p = _probabilities(y_any, prob)
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    if strategy == "quantile":
        edges = np.quantile(p, np.linspace(0, 1, n_bins + 1)) if len(p) else np.array([0.0, 1.0])
        edges = np.unique(edges)
        if len(edges) == 1:
            edges = np.array([edges[0], edges[0]])
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    nb = len(edges) - 1
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, nb - 1)
    n = np.bincount(idx, minlength=nb)
    n_pos = np.bincount(idx, weights=y.astype(float), minlength=nb)
    sum_p = np.bincount(idx, weights=p, minlength=nb)
    keep = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame(
            {
                "bin": np.arange(nb)[keep],
                "prob_lo": edges[:-1][keep],
                "prob_hi": edges[1:][keep],
                "n": n[keep],
                "n_breaks": n_pos[keep],
                "mean_prob": sum_p[keep] / n[keep],
                "obs_rate": n_pos[keep] / n[keep],
            }
        )
    return table.reset_index(drop=True)


# --------------------------------------------------------------------------- summary


def _new_unit_metrics(
    y: NDArray[np.float64],
    s: NDArray[np.float64],
    w: NDArray[np.float64] | None,
    f: NDArray[np.float64],
    m: NDArray[np.bool_],
    ties: Ties,
) -> dict[str, float | int]:
    """Capture and precision ranked within the units that never broke before (mask ``m``)."""
    if m.shape != y.shape:
        raise ValueError(f"new_mask has shape {m.shape}, expected {y.shape}")
    out: dict[str, float | int] = {"n_new": int(m.sum()), "n_breaks_new": float(y[m].sum())}
    caps_new = _capture_many(y[m], s[m], f, None if w is None else w[m], ties)
    for fr, c in zip(f, caps_new, strict=True):
        out[f"capture_new_{frac_label(fr)}"] = float(c)
    n_new = int(m.sum())
    y_any = (y[m] > 0).astype(np.float64)
    precisions = _precisions(y_any, s[m], [max(1, round(fr * n_new)) for fr in f], ties)
    for fr, p in zip(f, precisions, strict=True):
        out[f"precision_new_{frac_label(fr)}"] = p
    return out


def evaluate(
    y_count: ArrayLike,
    score: ArrayLike,
    prob: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    fracs: Sequence[float] = (0.01, 0.05, 0.10),
    new_mask: ArrayLike | None = None,
    *,
    ties: Ties = "average",
) -> dict[str, float | int | list[str]]:
    """All metrics for one ranking, as a flat dict.

    Parameters
    ----------
    y_count : array-like of shape (n,)
        Next-year breaks (``target_count``); ``y_any = y_count > 0``.
    score : array-like of shape (n,)
        Risk score (NaN ranks last).
    prob : array-like of shape (n,), optional
        Probability of any break; adds ``brier``, ``log_loss``.
    weight : array-like of shape (n,), optional
        Length in km for pipes/streets; ``None`` for cells (each unit counts 1).
    fracs : sequence of float
        Shares of the network for capture and precision.
    new_mask : array-like of bool, optional
        Units that never broke before (``breaks_to_date == 0``); adds
        ``capture_new_*``/``precision_new_*`` computed by ranking within those units.
    ties : {"first", "average"}, default "average"
        Tie handling for capture and precision. The default is the expected value
        under random tie order, so baselines with heavy ties (e.g. most units
        with zero past breaks) are not favoured or penalised by row order.

    Returns
    -------
    dict
        ``n``, ``n_breaks``, ``n_any``, ``capture_<p>`` and ``precision_<p>`` for
        each ``frac`` (key suffix from :func:`frac_label`; precision at
        ``k = max(1, round(frac * n))`` units), ``roc_auc``, ``pr_auc``, optional
        ``brier``/``log_loss``, optional ``n_new``, ``n_breaks_new``,
        ``capture_new_<p>``, ``precision_new_<p>``, and ``notes``: the
        reasons for any NaN.
    """
    y = as_1d(y_count, "y_count")
    s = as_1d(score, "score")
    n = _check_same_length(y_count=y, score=s)
    _check_counts(y, "y_count")
    w = None if weight is None else _weights(weight, n)
    y_any = (y > 0).astype(np.float64)
    f = np.asarray(list(fracs), dtype=float)
    out: dict[str, float | int | list[str]] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetricWarning)
        out["n"] = n
        out["n_breaks"] = float(y.sum())
        out["n_any"] = int(y_any.sum())
        ranked = _ranked(s, ties)  # one sort for the capture and the precision
        caps = _capture_many(y, s, f, w, ties, ranked)
        for fr, c in zip(f, caps, strict=True):
            out[f"capture_{frac_label(fr)}"] = float(c)
        ks = [max(1, round(fr * n)) for fr in f]
        for fr, prec in zip(f, _precisions(y_any, s, ks, ties, ranked), strict=True):
            out[f"precision_{frac_label(fr)}"] = prec
        out["roc_auc"] = roc_auc(y_any, s)
        out["pr_auc"] = pr_auc(y_any, s)
        if prob is not None:
            p = as_1d(prob, "prob")
            _check_same_length(y_count=y, prob=p)
            out["brier"] = brier(y_any, p)
            out["log_loss"] = log_loss(y_any, p)
        if new_mask is not None:
            out.update(_new_unit_metrics(y, s, w, f, np.asarray(new_mask, dtype=bool), ties))
    out["notes"] = sorted({str(wm.message) for wm in caught if wm.category is MetricWarning})
    return out


def _is_capture_key(key: str) -> bool:
    return key.startswith("capture_")


def lift(
    model_metrics: Mapping[str, object], baseline_metrics: Mapping[str, object]
) -> dict[str, float]:
    """Ratio model / baseline for every capture metric present in both dicts.

    Returns ``{"capture_5pct": 1.8, ...}``; NaN where the baseline is 0 or NaN.
    """
    out: dict[str, float] = {}
    for key, value in model_metrics.items():
        if not _is_capture_key(key) or key not in baseline_metrics:
            continue
        m, b = float(value), float(baseline_metrics[key])  # type: ignore[arg-type]
        out[key] = m / b if (b > 0 and math.isfinite(b) and math.isfinite(m)) else math.nan
    return out


def leakage_warnings(
    metrics: Mapping[str, object],
    baselines: Mapping[str, Mapping[str, object]],
    auc_limit: float = 0.95,
    capture_ratio_limit: float = 2.0,
) -> list[str]:
    """Warnings that a model looks too good to be true (target leakage).

    Parameters
    ----------
    metrics : mapping
        Output of :func:`evaluate` for the model.
    baselines : mapping of name -> mapping
        Output of :func:`evaluate` for each baseline on the same rows.
    auc_limit : float, default 0.95
        Warn when ``roc_auc`` exceeds it (next-year breaks are too noisy for that).
    capture_ratio_limit : float, default 2.0
        Warn when a capture metric exceeds this multiple of the best baseline's.

    Returns
    -------
    list of str
        One human-readable warning per finding; empty when nothing is suspicious.
    """
    out: list[str] = []
    auc = float(metrics.get("roc_auc", math.nan))  # type: ignore[arg-type]
    if math.isfinite(auc) and auc > auc_limit:
        out.append(
            f"possible leakage: ROC AUC {auc:.3f} > {auc_limit:.2f}; next-year breaks are "
            "rarely this predictable, check that no feature uses data after year t"
        )
    for key, value in metrics.items():
        if not _is_capture_key(key):
            continue
        m = float(value)  # type: ignore[arg-type]
        vals = {
            name: float(b[key])  # type: ignore[arg-type]
            for name, b in baselines.items()
            if key in b and math.isfinite(float(b[key]))  # type: ignore[arg-type]
        }
        if not vals or not math.isfinite(m):
            continue
        best_name = max(vals, key=vals.__getitem__)
        best = vals[best_name]
        if best > 0 and m > capture_ratio_limit * best:
            out.append(
                f"possible leakage: {key} {m:.3f} is {m / best:.1f}x the best baseline "
                f"({best_name}: {best:.3f}), above the {capture_ratio_limit:g}x limit"
            )
    return out
