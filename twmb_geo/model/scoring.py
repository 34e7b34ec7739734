"""Score the latest panel year: ranks, percentiles, risk tiers and per-unit drivers.

:func:`score_units` turns a fitted :class:`~twmb_geo.model.estimators.BreakCountRegressor`
or :class:`~twmb_geo.model.estimators.BreakRiskClassifier` and the latest-year panel rows into one row per unit, sorted riskiest first, with the
risk score, probability and expected breaks next year, the rank, the network percentile,
a named tier and a short text naming the features that push the unit's risk up.

Conventions
-----------
* Rank 1 is the riskiest unit. Ties are broken by input order (stable sort); NaN
  scores rank last (the same convention as :mod:`twmb_geo.model.metrics`).
* The percentile of a unit is ``100 ×`` the share of the network's weight (length in
  km for pipes and streets, one per unit otherwise) held by the units ranked strictly
  after it: the riskiest unit of a large network is near 100, the least risky is 0.
* Tiers (:data:`DEFAULT_TIERS`) are ``(name, minimum percentile)`` pairs from the top;
  a unit gets the first tier whose minimum it reaches.
* Drivers come from :func:`contributions` ("baseline substitution", see there); they
  explain the model's score for one unit relative to a typical unit, not causes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from ..core.cluster import map_partitions
from ..core.vocab import DEFAULT_TIERS
from ._arrays import as_1d, rank_order
from .champion import ChampionModel
from .estimators import RiskEstimator

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "BLOCK_ROWS",
    "DEFAULT_TIERS",
    "assign_tiers",
    "contributions",
    "rank_units",
    "reference_values",
    "score_units",
    "top_drivers",
]


#: Size columns: they scale counts but are nothing a planner can act on, so never drivers.
NOT_DRIVERS: frozenset[str] = frozenset({"area_km2", "exposure_km", "length_km"})
#: Contributions at or below this (in log / logit units) are not listed as drivers.
DRIVER_MIN: float = 0.005
#: Text of a unit without any driver above :data:`DRIVER_MIN`.
NO_DRIVERS: str = "none above reference"

_MU_FLOOR = 1e-9
_P_CLIP = 1e-6
_P_MAX_EXPECTED = 1.0 - 1e-9
# Bytes of one chunk of the stacked substitution matrix (the model's working copies
# come on top; peak memory stays far below 500 MB for 50k units × 30 features).
_CHUNK_BYTES = 32 * 2**20
#: Units whose drivers one task of :func:`score_units` works out.
BLOCK_ROWS = 50_000


# --------------------------------------------------------------------------- ranking


def rank_units(
    score: ArrayLike, weight: ArrayLike | None = None
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Rank units by risk and give each its network percentile.

    Parameters
    ----------
    score : array-like of shape (n,)
        Risk score, higher = riskier; NaN ranks last.
    weight : array-like of shape (n,) or None
        Size of each unit (length in km for pipes/streets); ``None``: 1 per unit.
        Finite, >= 0 and not all zero.

    Returns
    -------
    rank : ndarray of int64
        1 = riskiest; ties broken by input order (stable).
    percentile : ndarray of float64
        ``100 ×`` share of the total weight ranked strictly after the unit, in [0, 100].
    """
    s = as_1d(score, "score")
    n = len(s)
    if weight is None:
        w = np.ones(n, dtype=np.float64)
    else:
        w = as_1d(weight, "weight")
        if len(w) != n:
            raise ValueError(f"weight has length {len(w)} but score has length {n}")
        if not np.all(np.isfinite(w)):
            raise ValueError("weight must be finite (fill null lengths first)")
        if np.any(w < 0):
            raise ValueError("weight must be non-negative")
    if n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    total = float(w.sum())
    if total <= 0:
        raise ValueError("weight is zero for every unit; percentiles are undefined")
    order = rank_order(s)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1, dtype=np.int64)
    w_sorted = w[order]
    after = np.zeros(n, dtype=np.float64)
    after[:-1] = np.cumsum(w_sorted[::-1])[::-1][1:]  # weight ranked strictly after
    pct = np.empty(n, dtype=np.float64)
    pct[order] = np.clip(100.0 * after / total, 0.0, 100.0)
    return rank, pct


# --------------------------------------------------------------------------- tiers


def _tier_problems(tiers: object) -> list[str]:
    """Every problem of a tier specification (empty list: valid)."""
    if isinstance(tiers, str | bytes) or not isinstance(tiers, Sequence):
        return [f"tiers must be a sequence of (name, minimum percentile) pairs, got {tiers!r}"]
    if len(tiers) == 0:
        return ["tiers is empty; give at least one (name, minimum percentile) pair"]
    problems: list[str] = []
    names: list[Any] = []
    thresholds: list[float] = []
    for i, entry in enumerate(tiers):
        if isinstance(entry, str | bytes) or not isinstance(entry, Sequence) or len(entry) != 2:
            problems.append(f"tier {i} must be a (name, minimum percentile) pair, got {entry!r}")
            continue
        name, threshold = entry
        names.append(name)
        if not isinstance(name, str) or not name.strip():
            problems.append(f"tier {i} name must be a non-empty string, got {name!r}")
        try:
            t = float(threshold)
        except (TypeError, ValueError):
            problems.append(f"tier {i} ({name!r}) minimum must be a number, got {threshold!r}")
            t = math.nan
        else:
            if not 0.0 <= t <= 100.0:
                problems.append(f"tier {i} ({name!r}) minimum {threshold!r} is not in [0, 100]")
        thresholds.append(t)
    dupes = sorted({str(x) for x in names if isinstance(x, str) and names.count(x) > 1})
    if dupes:
        problems.append(f"tier names must be unique; repeated: {dupes}")
    if len(thresholds) == len(tiers):
        for i in range(1, len(thresholds)):
            a, b = thresholds[i - 1], thresholds[i]
            if not (math.isnan(a) or math.isnan(b)) and not b < a:
                problems.append(
                    f"minimums must be strictly decreasing: tier {i} ({names[i]!r}) has "
                    f"{b:g} after {a:g}"
                )
        if not math.isnan(thresholds[-1]) and thresholds[-1] != 0.0:
            problems.append(
                f"the last tier ({names[-1]!r}) must have minimum 0 so every unit gets a "
                f"tier, got {thresholds[-1]:g}"
            )
    return problems


def _check_tiers(tiers: object) -> None:
    problems = _tier_problems(tiers)
    if problems:
        raise ValueError("invalid tiers:\n" + "\n".join(f"  - {p}" for p in problems))


def assign_tiers(
    percentile: ArrayLike, tiers: Sequence[tuple[str, float]] = DEFAULT_TIERS
) -> NDArray[np.object_]:
    """Name the risk tier of each unit from its percentile.

    Parameters
    ----------
    percentile : array-like of shape (n,)
        Risk percentiles in [0, 100] (from :func:`rank_units`).
    tiers : sequence of (str, float)
        ``(name, minimum percentile)`` from the top: unique non-empty names, strictly
        decreasing minimums in [0, 100], the last one 0. A unit gets the first tier
        whose minimum it reaches.

    Returns
    -------
    ndarray of object
        Tier name per unit.

    Raises
    ------
    ValueError
        Listing every problem of ``tiers``, or if a percentile is NaN or outside [0, 100].
    """
    _check_tiers(tiers)
    p = as_1d(percentile, "percentile")
    bad = ~((p >= 0.0) & (p <= 100.0))
    if np.any(bad):
        raise ValueError(
            f"percentile must lie in [0, 100]; {int(bad.sum())} value(s) do not, "
            f"e.g. {p[bad][:3].tolist()}"
        )
    names = np.asarray([name for name, _ in tiers], dtype=object)
    ascending = np.asarray([float(t) for _, t in tiers], dtype=np.float64)[::-1]
    # index (ascending) of the largest minimum <= p; the last minimum is 0, so >= 0
    k = np.searchsorted(ascending, p, side="right") - 1
    return names[::-1][k]


# --------------------------------------------------------------------------- contributions


def _link(model: RiskEstimator, A: NDArray[np.float64]) -> NDArray[np.float64]:
    """``log(mu)`` (Poisson kinds) or ``logit(p)`` (classifiers) of feature rows ``A``."""
    if model.predicts_counts:
        mu = np.asarray(model.model_.predict(A), dtype=np.float64)
        return np.log(np.maximum(mu, _MU_FLOOR))
    p = np.asarray(model.model_.predict_proba(A)[:, 1], dtype=np.float64)
    p = np.clip(p, _P_CLIP, 1.0 - _P_CLIP)
    return np.log(p) - np.log1p(-p)


def _reference(
    A: NDArray[np.float64], cols: list[str], reference: pd.Series | None
) -> NDArray[np.float64]:
    if reference is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column -> NaN
            return np.nanmedian(A, axis=0) if len(A) else np.full(len(cols), np.nan)
    ref = pd.Series(reference)
    missing = [c for c in cols if c not in ref.index]
    if missing:
        raise ValueError(f"reference lacks a value for feature(s) {missing}")
    try:
        return ref.loc[cols].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"reference values must be numeric: {exc}") from exc


def _frame_reference(model: ChampionModel, X: pd.DataFrame) -> pd.Series:
    """A champion's reference: the median of a numeric column, else its most common value."""
    cols = [str(c) for c in model.feature_names_in_ if c != model.density_col]
    ref: dict[str, Any] = {}
    for c in cols:
        v = X[c]
        num = pd.to_numeric(v, errors="coerce")
        if num.notna().any() or v.isna().all():
            ref[c] = float(num.median()) if num.notna().any() else np.nan
        else:
            mode = v.mode(dropna=True)
            ref[c] = mode.iloc[0] if len(mode) else None
    return pd.Series(ref, index=pd.Index(cols), dtype=object)


def reference_values(model: RiskEstimator | ChampionModel, X: pd.DataFrame) -> pd.Series:
    """The reference :func:`contributions` uses when given none, computed over ``X``.

    The NaN-aware median of each feature (NaN for an all-NaN column; for a champion's
    non-numeric column, its most common value). Computed once over every unit and passed
    to :func:`contributions` of each block of units, a block's drivers are those of the
    whole network.
    """
    if isinstance(model, ChampionModel):
        return _frame_reference(model, X)
    cols = [str(c) for c in model.feature_names_in_]
    return pd.Series(_reference(model.feature_matrix(X), cols, None), index=pd.Index(cols))


def _frame_contributions(
    model: ChampionModel,
    X: pd.DataFrame,
    reference: pd.Series | None,
    base: NDArray[np.float64] | None = None,
) -> pd.DataFrame:
    """Baseline substitution on the frame, one column at a time (any champion); ``base``:
    ``model.link(X)`` if already known.

    Only the rows whose value differs from the reference are scored again (a champion's
    score of a row depends on that row alone): about half the rows of a city's features.
    """
    cols = [str(c) for c in model.feature_names_in_ if c != model.density_col]
    out = np.zeros((len(X), len(cols)), dtype=np.float64)
    if len(X) and cols:
        if reference is None:
            reference = _frame_reference(model, X)
        missing = [c for c in cols if c not in reference.index]
        if missing:
            raise ValueError(f"reference lacks a value for feature(s) {missing}")
        if base is None:
            base = model.link(X)
        for j, c in enumerate(cols):
            v = X[c]
            ref: Any = reference[c]
            rows = np.flatnonzero(~((v == ref) | (v.isna() & pd.isna(ref))).to_numpy())
            if len(rows):
                B = X.iloc[rows].copy()
                B[c] = ref
                out[rows, j] = base[rows] - model.link(B)
    return pd.DataFrame(out, index=X.index, columns=cols)


def contributions(
    model: RiskEstimator | ChampionModel, X: pd.DataFrame, reference: pd.Series | None = None
) -> pd.DataFrame:
    """Per-unit feature contributions by baseline substitution.

    For unit ``x`` and feature ``j``::

        contribution_j(x) = g(x) - g(x with feature j set to reference_j)

    with ``g = log(mu)`` (Poisson kinds, ``mu`` floored at 1e-9) or
    ``g = logit(p)`` (classifiers, ``p`` clipped to [1e-6, 1 - 1e-6]). A positive value
    means the unit's value of ``j`` raises its risk above what it would be with a typical
    value. Contributions are one-at-a-time effects: with interactions they need not sum
    to ``g(x) - g(reference)``.

    Parameters
    ----------
    model : RiskEstimator
        Fitted model.
    X : DataFrame
        Panel rows with every column of ``model.feature_names_in_``.
    reference : Series or None
        Reference value per feature name; ``None``: the NaN-aware median of each feature
        over ``X`` (NaN when the whole column is NaN).

    Returns
    -------
    DataFrame
        Index of ``X``, one column per feature. A feature equal to its reference
        (both NaN included) contributes exactly 0.

    Notes
    -----
    Only (unit, feature) pairs that differ from the reference are evaluated; they are
    stacked into matrices of at most ~32 MB and scored by the fitted estimator in one
    call per chunk.
    """
    if isinstance(model, ChampionModel):
        return _frame_contributions(model, X, reference)
    cols = [str(c) for c in model.feature_names_in_]
    A = model.feature_matrix(X)
    n, n_feat = A.shape
    ref = _reference(A, cols, reference)
    out = np.zeros((n, n_feat), dtype=np.float64)
    if n == 0:
        return pd.DataFrame(out, index=X.index, columns=cols)
    same = np.equal(A, ref) | (np.isnan(A) & np.isnan(ref))
    rows, feats = np.nonzero(~same)
    if len(rows):
        base = _link(model, A)
        chunk = max(1, _CHUNK_BYTES // (8 * max(n_feat, 1)))
        for start in range(0, len(rows), chunk):
            r, f = rows[start : start + chunk], feats[start : start + chunk]
            B = A[r]
            B[np.arange(len(r)), f] = ref[f]
            out[r, f] = base[r] - _link(model, B)
    return pd.DataFrame(out, index=X.index, columns=cols)


# --------------------------------------------------------------------------- drivers


def top_drivers(contrib: pd.DataFrame, X: pd.DataFrame, k: int = 3) -> list[str]:
    """Text naming the ``k`` features that raise each unit's risk the most.

    Parameters
    ----------
    contrib : DataFrame
        Output of :func:`contributions`.
    X : DataFrame
        The rows ``contrib`` was computed on (same index), with its columns.
    k : int, default 3
        Maximum number of drivers per unit (>= 1).

    Returns
    -------
    list of str
        Per unit, e.g. ``"breaks_last5=3 (+0.82); lag1_decayed_adj=1.25 (+0.40)"``:
        features with a contribution above 0.005, largest first (ties by column
        order), value to 4 significant digits; ``"none above reference"`` if none.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    cols = [str(c) for c in contrib.columns]
    missing = [c for c in contrib.columns if c not in X.columns]
    if missing:
        raise ValueError(f"X lacks the contribution column(s) {missing}")
    if len(X) != len(contrib) or not X.index.equals(contrib.index):
        raise ValueError(
            "X and contrib must have the same index (the rows contrib was computed on)"
        )
    n = len(contrib)
    if n == 0:
        return []
    if not cols:
        return [NO_DRIVERS] * n
    C = contrib.to_numpy(dtype=np.float64, na_value=np.nan)
    V = np.column_stack(
        [
            pd.to_numeric(X[c], errors="coerce").to_numpy(np.float64, na_value=np.nan)
            for c in contrib.columns
        ]
    )
    key = np.where(C > DRIVER_MIN, -C, np.inf)  # non-drivers sort last
    kk = min(int(k), len(cols))
    idx = np.argsort(key, axis=1, kind="stable")[:, :kk]
    c_top = np.take_along_axis(C, idx, axis=1)
    v_top = np.take_along_axis(V, idx, axis=1)
    count = (np.take_along_axis(key, idx, axis=1) < np.inf).sum(axis=1)
    names = np.asarray(cols, dtype=object)[idx]
    return [
        "; ".join(
            f"{nm}={v:.4g} ({c:+.2f})" for nm, v, c in zip(nr[:m], vr[:m], cr[:m], strict=True)
        )
        if m
        else NO_DRIVERS
        for nr, vr, cr, m in zip(
            names.tolist(), v_top.tolist(), c_top.tolist(), count.tolist(), strict=True
        )
    ]


# --------------------------------------------------------------------------- scoring


def _block_scores(
    model: RiskEstimator | ChampionModel, X: pd.DataFrame, reference: pd.Series, n_drivers: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], list[str]]:
    """Risk score, probability, expected breaks and :func:`top_drivers` (against
    ``reference``) of the units in ``X``: one task of :func:`score_units`."""
    if isinstance(model, ChampionModel):
        sc = model.evaluate(X)
        risk, prob, expected = sc.risk_score, sc.probability, sc.expected_breaks
        contrib = _frame_contributions(model, X, reference, base=sc.link)
    else:
        risk = np.asarray(model.risk_score(X), dtype=np.float64)
        prob = np.asarray(model.break_probability(X), dtype=np.float64)
        expected = np.asarray(model.expected_breaks(X), dtype=np.float64)
        contrib = contributions(model, X, reference)
    contrib = contrib[[c for c in contrib.columns if c not in NOT_DRIVERS]]
    return risk, prob, expected, top_drivers(contrib, X, k=n_drivers)


def score_units(
    model: RiskEstimator | ChampionModel,
    X: pd.DataFrame,
    *,
    weight: ArrayLike | None = None,
    tiers: Sequence[tuple[str, float]] = DEFAULT_TIERS,
    n_drivers: int = 3,
    reference: pd.Series | None = None,
    block_rows: int = BLOCK_ROWS,
    client: Client | None = None,
) -> pd.DataFrame:
    """Score, rank and explain the latest-year panel rows, riskiest first.

    Parameters
    ----------
    model : RiskEstimator
        Fitted model.
    X : DataFrame
        One panel row per unit (the latest year), with ``unit_id`` and the features.
    weight : array-like of shape (n,) or None
        Unit size aligned with the rows of ``X`` (length in km for pipes/streets);
        ``None``: every unit counts 1. See :func:`rank_units`.
    tiers : sequence of (str, float), default DEFAULT_TIERS
        See :func:`assign_tiers`.
    n_drivers : int, default 3
        Drivers listed per unit (see :func:`top_drivers`).
    reference : Series or None
        Reference feature values of :func:`contributions` (default:
        :func:`reference_values` over ``X``).
    block_rows : int, default BLOCK_ROWS
        Units scored and explained per task. The scores and the drivers (a model
        evaluation per unit and feature that differs from the reference: the cost of
        scoring) are worked out a block of units at a time against the whole network's
        reference, so the result does not depend on the blocks and memory holds one
        block's substitutions.
    client : distributed.Client or None
        A Dask client: the blocks run on its cluster (:func:`~twmb_geo.core.cluster.map_partitions`);
        None: in this process, one after another.

    Returns
    -------
    DataFrame
        Sorted by ``rank`` with a fresh index; columns ``unit_id`` (str),
        ``risk_score`` (``model.risk_score``), ``probability`` (P(any break next year)),
        ``expected_breaks`` (``mu`` for Poisson kinds; ``-log(1 - p)`` for classifiers, the
        Poisson mean with ``P(any) = p``), ``rank`` (int64), ``percentile``, ``tier``,
        ``drivers``. Deterministic.
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a pandas DataFrame of panel rows, got {type(X).__name__}")
    if "unit_id" not in X.columns:
        raise ValueError("X lacks the unit_id column")
    if len(X) == 0:
        raise ValueError("X has no rows to score")
    if X["unit_id"].isna().any():
        raise ValueError(f"unit_id is null in {int(X['unit_id'].isna().sum())} row(s)")
    uid = X["unit_id"].astype(str)
    dup = uid[uid.duplicated(keep="first")].unique()
    if len(dup):
        raise ValueError(
            f"unit_id must be unique (one row per unit, the latest year); {len(dup)} "
            f"duplicated, e.g. {dup[:5].tolist()}"
        )
    _check_tiers(tiers)
    if isinstance(n_drivers, bool) or not isinstance(n_drivers, int | np.integer) or n_drivers < 1:
        raise ValueError(f"n_drivers must be a positive integer, got {n_drivers!r}")
    if (
        isinstance(block_rows, bool)
        or not isinstance(block_rows, int | np.integer)
        or block_rows < 1
    ):
        raise ValueError(f"block_rows must be a positive integer, got {block_rows!r}")

    ref = reference if reference is not None else reference_values(model, X)
    blocks = map_partitions(
        _block_scores,
        (
            (model, X.iloc[lo : lo + block_rows], ref, n_drivers)
            for lo in range(0, len(X), block_rows)
        ),
        client,
    )
    risk, prob, expected = (np.concatenate([b[i] for b in blocks]) for i in range(3))
    drivers = [d for b in blocks for d in b[3]]
    rank, pct = rank_units(risk, weight)
    tier = assign_tiers(pct, tiers)

    out = pd.DataFrame(
        {
            "unit_id": uid.to_numpy(dtype=object),
            "risk_score": risk,
            "probability": prob,
            "expected_breaks": expected,
            "rank": rank,
            "percentile": pct,
            "tier": tier,
            "drivers": np.asarray(drivers, dtype=object),
        }
    )
    order = np.argsort(rank, kind="stable")
    return out.iloc[order].reset_index(drop=True)
