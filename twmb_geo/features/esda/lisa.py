"""Local Moran's I (LISA) year by year, with Benjamini-Hochberg FDR control and labels."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import esda
import numpy as np
import pandas as pd
from libpysal.graph import Graph

from ...core.vocab import QUADRANT_LABELS
from ...errors import InputDataError
from ._common import (
    Alternative,
    _check_alternative,
    _check_inputs,
    _check_permutations,
    _check_seed,
    _pseudo_p,
    _seeded_global_rng,
    _wide_values,
)

__all__ = ["benjamini_hochberg", "local_moran_by_year"]


def benjamini_hochberg(p_values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) controlling the false discovery rate.

    Parameters
    ----------
    p_values : array-like of float
        P-values in ``[0, 1]``. NaN entries (untested units) are ignored: they are not
        counted among the tests and their q-value is NaN.

    Returns
    -------
    numpy.ndarray
        ``q_i = min(1, min_{k: p_(k) >= p_i} m * p_(k) / k)`` where ``p_(k)`` is the k-th
        smallest of the ``m`` non-NaN p-values, aligned with the input. Rejecting
        ``q < alpha`` is the BH step-up procedure at level ``alpha``. The q-values are
        >= p, never above 1, and non-decreasing in p (ties share a q-value).

    Notes
    -----
    ``esda.fdr`` returns only the BH rejection threshold for one ``alpha`` (and falls back
    to the Bonferroni bound when nothing is rejected), not per-test q-values, hence this
    function. It matches ``scipy.stats.false_discovery_control(p, method="bh")``.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise InputDataError(f"p_values must be one-dimensional, got shape {p.shape}")
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise InputDataError("p_values must lie in [0, 1]")
    q = np.full(p.shape, np.nan)
    pv = p[finite]
    m = pv.size
    if m == 0:
        return q
    order = np.argsort(pv, kind="stable")
    scaled = pv[order] * m / np.arange(1, m + 1)
    monotone = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(monotone, 1.0)
    q[finite] = out
    return q


def _lisa_year(
    y: np.ndarray, graph: Graph, *, permutations: int, seed: int | None, alternative: str
) -> tuple[np.ndarray, np.ndarray]:
    """LISA of one year: rows (local I, p_sim, BH q-value) and the esda quadrants."""
    with _seeded_global_rng(seed), warnings.catch_warnings():
        # esda 2.9 warns that the default alternative of its conditional
        # randomisation will change; p_sim is recomputed below for other alternatives.
        warnings.filterwarnings(
            "ignore", message="The alternative hypothesis", category=DeprecationWarning
        )
        lm = esda.Moran_Local(
            y,
            graph,
            transformation="r",
            permutations=permutations,
            geoda_quads=False,
            n_jobs=1,
            keep_simulations=True,
            seed=seed,
        )
    if alternative == "directed":
        p_sim = np.asarray(lm.p_sim, dtype=float)
    else:
        p_sim = _pseudo_p(np.asarray(lm.Is), np.asarray(lm.rlisas), alternative)
    return np.vstack([lm.Is, p_sim, benjamini_hochberg(p_sim)]), np.asarray(lm.q)


def _lisa_frame(
    ids: pd.Index,
    years: np.ndarray,
    wide: pd.DataFrame,
    stats: np.ndarray,
    quadrant: np.ndarray,
    n_conn: int,
    *,
    alpha: float,
    fdr: bool,
) -> pd.DataFrame:
    """Long LISA rows (unit, year, value, statistics, significance, cluster label)."""
    local_i, p_sim, q_value = stats
    test = q_value if fdr else p_sim
    with np.errstate(invalid="ignore"):
        significant = test < alpha  # NaN -> False
    labels = np.array(["not significant", *QUADRANT_LABELS.values()], dtype=object)
    cluster = labels[np.where(significant, quadrant, 0)]
    cluster[:, n_conn:] = "island"
    return pd.DataFrame(
        {
            "unit": np.tile(ids.to_numpy(), len(years)),
            "year": np.repeat(years, len(ids)),
            "value": wide.to_numpy().T.ravel(),
            "local_i": local_i.ravel(),
            "quadrant": pd.array(np.where(quadrant == 0, pd.NA, quadrant).ravel(), dtype="Int64"),
            "p_sim": p_sim.ravel(),
            "q_value": q_value.ravel(),
            "significant": significant.ravel(),
            "cluster": cluster.ravel().astype(str),
        }
    )


def local_moran_by_year(
    panel: pd.DataFrame,
    graph: Graph,
    *,
    value_col: str = "breaks",
    unit_col: str = "unit_id",
    year_col: str = "year",
    permutations: int = 999,
    seed: int | None = 42,
    alpha: float = 0.05,
    fdr: bool = True,
    alternative: Alternative = "two-sided",
) -> pd.DataFrame:
    """Local Moran's I (LISA) of one value column in each year, with cluster labels.

    Parameters
    ----------
    panel : pandas.DataFrame
        One row per (unit, year) with ``unit_col``, ``year_col`` and ``value_col``.
        Non-negative, finite values; a graph unit absent in a year counts as 0 that year.
    graph : libpysal.graph.Graph
        Spatial weights over the panel's units, binary or row-standardised (esda
        row-standardises it, ``transformation="r"``). Islands get cluster ``"island"``.
    value_col : str, default "breaks"
        Column to analyse.
    unit_col, year_col : str
        Names of the unit and year columns (kept as the output's first two columns).
    permutations : int, default 999
        Conditional permutations per unit (at least 1). With ``R`` permutations the
        smallest attainable ``p_sim`` is ``1/(R+1)`` (``2/(R+1)`` two-sided), so FDR
        control over many units needs enough permutations to reach significance.
    seed : int or None, default 42
        Seed of the conditional randomisation (the same for every year).
    alpha : float, default 0.05
        Significance level, in (0, 1).
    fdr : bool, default True
        Judge significance by the Benjamini-Hochberg q-value across the (non-island)
        units of each year instead of the raw ``p_sim``.
    alternative : {"two-sided", "greater", "lesser", "directed"}, default "two-sided"
        Alternative hypothesis of ``p_sim``; ``"directed"`` equals
        ``esda.Moran_Local(...).p_sim`` (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        One row per (unit, year) over every graph unit and panel year, sorted by
        (year, unit), with columns ``unit_col``, ``year_col``, ``value`` (the value used,
        0 for absent rows), ``local_i``, ``quadrant`` (nullable int: 1 HH, 2 LH, 3 LL,
        4 HL), ``p_sim``, ``q_value`` (BH within the year), ``significant`` (bool) and
        ``cluster`` (one of :data:`CLUSTER_LABELS`). Islands and constant years have NaN
        statistics and a missing quadrant.

    Raises
    ------
    twmb_geo.errors.InputDataError
        As :func:`global_moran_by_year`, plus ``alpha`` outside (0, 1).
    """
    if not isinstance(value_col, str):
        raise InputDataError(f"value_col must be one column name, got {value_col!r}")
    _check_alternative(alternative)
    _check_permutations(permutations, 1)
    _check_seed(seed)
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise InputDataError(f"alpha must be in (0, 1), got {alpha!r}")
    connected, islands, sub = _check_inputs(panel, graph, [value_col], unit_col, year_col)

    all_ids = connected.append(islands)
    wide = _wide_values(panel, value_col, unit_col, year_col, all_ids)
    n_conn, n_all = len(connected), len(all_ids)
    years = wide.columns.to_numpy()

    stats = np.full((3, len(years), n_all), np.nan)  # local_i, p_sim, q_value
    quadrant = np.zeros((len(years), n_all), dtype=np.int64)  # 0 = none
    for k, year in enumerate(years):
        y = wide[year].to_numpy()[:n_conn]
        if np.all(y == y[0]):
            continue
        stats[:, k, :n_conn], quadrant[k, :n_conn] = _lisa_year(
            y, sub, permutations=permutations, seed=seed, alternative=alternative
        )
    out = _lisa_frame(all_ids, years, wide, stats, quadrant, n_conn, alpha=alpha, fdr=fdr)
    out.columns = [unit_col, year_col, *out.columns[2:]]
    out[year_col] = out[year_col].astype(panel[year_col].dtype)
    out = out.sort_values([year_col, unit_col], kind="stable")
    return out.reset_index(drop=True)
