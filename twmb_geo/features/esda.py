"""Exploratory spatial data analysis of water-main break hot spots (Moran's I, LISA).

Three steps, each a thin, validated and deterministic layer over :mod:`esda`:

* :func:`global_moran_by_year` - global Moran's I of each value column, year by year.
* :func:`local_moran_by_year` - local Moran's I (LISA) of one value column, year by year,
  with Benjamini-Hochberg false-discovery-rate control across the units of each year and
  a cluster label per unit.
* :func:`hotspot_persistence` - a per-unit summary of the yearly LISA labels into one
  persistence class.

Conventions
-----------
Panel
    A long table with one row per (unit, year) and non-negative numeric value columns
    (break counts, break rates). A unit of the graph that has no row in a year is treated
    as **zero for every value column** in that year: the panel is a count panel, and an
    absent row means no recorded breaks (so the count and the rate are both 0). Every
    graph unit must appear in the panel in at least one year and every panel unit must be
    in the graph; NaN/inf and negative values are rejected rather than guessed at.
Graph
    A plain :class:`libpysal.graph.Graph` whose ``unique_ids`` are the panel's units. The
    weights may be binary or already row-standardised: both functions ask esda to
    row-standardise (``transformation="r"``), which is idempotent, so either gives the
    same result. Self-weights are not expected.
Islands
    Units without neighbours (``graph.isolates``) have no spatial lag. They are removed
    before any statistic is computed (their values do not enter the mean or variance),
    counted in ``n_islands_excluded`` by the global statistic, and labelled ``"island"``
    with NaN statistics by the local one.
Inference
    ``p_sim`` is a permutation pseudo p-value, ``(M + 1) / (R + 1)`` for ``R``
    permutations. ``alternative`` chooses what counts as "as extreme" (M):
    ``"two-sided"`` (default; twice the smaller one-sided pseudo p-value, capped at 1,
    the choice esda recommends from its next major release), ``"greater"`` (positive
    autocorrelation / clusters only), ``"lesser"`` (negative autocorrelation / outliers
    only) or ``"directed"`` (esda 2.9's and GeoDa's historical default: the smaller
    one-sided tail, without doubling; this reproduces ``esda.Moran(...).p_sim`` and
    ``esda.Moran_Local(...).p_sim`` exactly). The normal-approximation ``p_norm`` of the
    global statistic follows the same alternative (``"directed"`` = one tail, in the
    direction of the observed z). Power: with ``R`` permutations no ``p_sim`` is below
    ``1/(R+1)`` (``2/(R+1)`` two-sided), and BH across ``m`` units rejects the ``k``
    smallest only when they are below ``alpha * k / m``; a plateau of equally high units
    also caps each unit's conditional-permutation p-value. On ~100 units, two-sided LISA
    with FDR therefore needs about 9999 permutations to flag a 5 x 5 block reliably.
Determinism
    esda draws global permutations from NumPy's legacy global generator and seeds it for
    local ones. Every esda call here runs with that generator seeded with ``seed`` and its
    previous state restored afterwards, and with ``n_jobs=1``, so the same data and seed
    give identical frames and the caller's random state is left untouched. Each year (and
    each variable) uses the same seed, so the result for a year does not depend on which
    other years are in the panel. ``seed=None`` gives non-reproducible draws. (Swapping
    the global generator is not thread-safe: do not run these functions concurrently in
    threads of one process.)
Degenerate years
    A variable that is constant over the non-island units in a year has no defined
    Moran's I: the global row gets NaN statistics and ``note="constant"``; the local rows
    get NaN statistics and the cluster ``"not significant"``.

LISA cluster labels
-------------------
Quadrants follow esda (``geoda_quads=False``): 1 = HH (high value, high lag),
2 = LH, 3 = LL, 4 = HL, where "high" means above the year's mean of the non-island units.
A unit is significant when its Benjamini-Hochberg q-value (``fdr=True``) or its ``p_sim``
(``fdr=False``) is below ``alpha``. Significant units are labelled ``"hot spot"`` (HH),
``"cold spot"`` (LL), ``"high outlier"`` (HL) or ``"low outlier"`` (LH); all others are
``"not significant"``; islands are ``"island"``.

Persistence classes
-------------------
:func:`hotspot_persistence` counts, per unit, the years in which it was assessed
(``years_observed``: rows whose cluster is not ``"island"``), hot (``"hot spot"``) and cold
(``"cold spot"``). The *recent window* is the last ``recent_years`` calendar years of the
whole table (``year > max_year - recent_years``). Each unit gets exactly one class: the
first rule below that it satisfies, in this order of precedence:

1. ``"not assessed"`` - no assessed year (an island in every year).
2. ``"persistent hot spot"`` - hot in at least 2 years and ``share_hot >= min_share``.
3. ``"emerging hot spot"`` - hot in at least 2 years of the recent window, never hot
   before it, and assessed in at least one year before it (so "new" means something).
4. ``"intermittent hot spot"`` - hot in at least 2 years (and, by precedence, neither
   persistent nor emerging, i.e. ``share_hot < min_share``).
5. ``"transient hot spot"`` - hot in exactly 1 year (even when that was its only assessed
   year: persistence needs repetition).
6. ``"persistent cold spot"`` - never hot, cold in at least 2 years and
   ``share_cold >= min_share``.
7. ``"other significant"`` - never hot and not a persistent cold spot, but significant in
   at least one year (a cold spot below ``min_share``, or a spatial outlier).
8. ``"never significant"`` - assessed, but never significant.

Hot-spot classes take precedence over cold-spot ones: a unit that was a hot spot in any
year is reported as some kind of hot spot. ``longest_hot_run`` counts consecutive hot
years along the table's own sequence of years (a year absent from the whole table does not
break a run; a year in which the unit was not hot, or was an island, does).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, Literal

import esda
import numpy as np
import pandas as pd
from libpysal.graph import Graph
from scipy import stats

from ..errors import InputDataError

__all__ = [
    "CLUSTER_LABELS",
    "GLOBAL_COLUMNS",
    "LOCAL_COLUMNS",
    "PERSISTENCE_CLASSES",
    "PERSISTENCE_COLUMNS",
    "QUADRANT_LABELS",
    "Alternative",
    "benjamini_hochberg",
    "global_moran_by_year",
    "hotspot_persistence",
    "local_moran_by_year",
]

Alternative = Literal["two-sided", "greater", "lesser", "directed"]
_ALTERNATIVES: Final[tuple[str, ...]] = ("two-sided", "greater", "lesser", "directed")

#: LISA quadrant (esda numbering) -> cluster label when significant.
QUADRANT_LABELS: Final[dict[int, str]] = {
    1: "hot spot",
    2: "low outlier",
    3: "cold spot",
    4: "high outlier",
}
#: Every value of the ``cluster`` column of :func:`local_moran_by_year`.
CLUSTER_LABELS: Final[tuple[str, ...]] = (
    "hot spot",
    "cold spot",
    "high outlier",
    "low outlier",
    "not significant",
    "island",
)
#: Persistence classes in order of precedence (the first rule that matches wins).
PERSISTENCE_CLASSES: Final[tuple[str, ...]] = (
    "not assessed",
    "persistent hot spot",
    "emerging hot spot",
    "intermittent hot spot",
    "transient hot spot",
    "persistent cold spot",
    "other significant",
    "never significant",
)

#: Columns of :func:`global_moran_by_year` (the first one is the panel's year column).
GLOBAL_COLUMNS: Final[tuple[str, ...]] = (
    "year", "variable", "n", "moran_i", "expected_i", "z_norm", "p_norm", "p_sim",
    "z_sim", "permutations", "n_islands_excluded", "note",
)  # fmt: skip
#: Columns of :func:`local_moran_by_year` (the first two are the panel's unit and year).
LOCAL_COLUMNS: Final[tuple[str, ...]] = (
    "unit_id", "year", "value", "local_i", "quadrant", "p_sim", "q_value", "significant",
    "cluster",
)  # fmt: skip
#: Columns of :func:`hotspot_persistence` (the first one is the table's unit column).
PERSISTENCE_COLUMNS: Final[tuple[str, ...]] = (
    "unit_id", "years_observed", "years_hot", "years_cold", "share_hot", "share_cold",
    "first_hot", "last_hot", "longest_hot_run", "years_hot_recent", "hot_recent", "class",
)  # fmt: skip

_N_EXAMPLES: Final[int] = 5
_MIN_UNITS: Final[int] = 3


# --------------------------------------------------------------------------- helpers


def _examples(values: Sequence[Any] | pd.Index | np.ndarray) -> str:
    """Render up to five values for an error message."""
    shown = [repr(v.item() if isinstance(v, np.generic) else v) for v in list(values)[:_N_EXAMPLES]]
    more = ", ..." if len(values) > _N_EXAMPLES else ""
    return ", ".join(shown) + more


@contextmanager
def _seeded_global_rng(seed: int | None) -> Iterator[None]:
    """Seed NumPy's legacy global generator for the block, then restore its state.

    esda's global Moran permutes with ``np.random.permutation`` and its conditional
    randomisation calls ``np.random.seed``; this keeps both reproducible without leaking
    a changed random state to the caller.
    """
    state = np.random.get_state()  # noqa: NPY002 - esda draws from the legacy global generator
    try:
        if seed is not None:
            np.random.seed(seed)  # noqa: NPY002 - esda draws from the legacy global generator
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002 - esda draws from the legacy global generator


def _check_alternative(alternative: str) -> None:
    if alternative not in _ALTERNATIVES:
        raise InputDataError(
            f"alternative={alternative!r} is not supported; use one of {', '.join(_ALTERNATIVES)}"
        )


def _check_permutations(permutations: int, minimum: int) -> None:
    if isinstance(permutations, bool) or not isinstance(permutations, int | np.integer):
        raise InputDataError(f"permutations must be an integer, got {permutations!r}")
    if permutations < minimum:
        raise InputDataError(f"permutations must be >= {minimum}, got {permutations}")


def _check_seed(seed: int | None) -> None:
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputDataError(f"seed must be a non-negative integer or None, got {seed!r}")


def _check_columns(frame: pd.DataFrame, required: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InputDataError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputDataError(
            f"{what} is missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"it has {', '.join(repr(c) for c in frame.columns) or 'no columns'}"
        )
    if frame.empty:
        raise InputDataError(f"{what} has no rows")


def _check_keys(frame: pd.DataFrame, unit_col: str, year_col: str, what: str) -> None:
    """Units and years must be present, years integral, (unit, year) unique."""
    for col in (unit_col, year_col):
        n_null = int(frame[col].isna().sum())
        if n_null:
            raise InputDataError(f"{what}: column {col!r} has {n_null} missing value(s)")
    years = frame[year_col]
    if not pd.api.types.is_numeric_dtype(years) or pd.api.types.is_bool_dtype(years):
        raise InputDataError(
            f"{what}: column {year_col!r} must hold integer years, got dtype {years.dtype}"
        )
    if not np.all(np.mod(years.to_numpy(dtype=float), 1) == 0):
        raise InputDataError(f"{what}: column {year_col!r} must hold whole-number years")
    dup = frame.duplicated([unit_col, year_col], keep=False)
    if dup.any():
        pairs = frame.loc[dup, [unit_col, year_col]].drop_duplicates()
        raise InputDataError(
            f"{what} has {len(pairs)} duplicated ({unit_col}, {year_col}) pair(s); "
            "aggregate to one row per unit and year first",
            [f"{u!r}, {y!r}" for u, y in pairs.head(_N_EXAMPLES).itertuples(index=False)],
        )


def _check_values(panel: pd.DataFrame, value_cols: Sequence[str], unit_col: str) -> None:
    """Value columns must be numeric, finite and non-negative (counts and rates)."""
    for col in value_cols:
        s = panel[col]
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            raise InputDataError(f"panel column {col!r} must be numeric, got dtype {s.dtype}")
        v = s.to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isfinite(v)
        if bad.any():
            raise InputDataError(
                f"panel column {col!r} has {int(bad.sum())} missing or infinite value(s) "
                f"(units {_examples(panel.loc[bad, unit_col].unique())}); fill them, or drop "
                "those units from both the panel and the graph",
            )
        neg = v < 0
        if neg.any():
            raise InputDataError(
                f"panel column {col!r} has {int(neg.sum())} negative value(s) (units "
                f"{_examples(panel.loc[neg, unit_col].unique())}); break counts and rates "
                "cannot be negative",
            )


def _check_graph(graph: Graph, panel: pd.DataFrame, unit_col: str) -> tuple[pd.Index, pd.Index]:
    """Check the graph against the panel; return (non-island ids, island ids) in graph order."""
    if not isinstance(graph, Graph):
        raise InputDataError(
            f"graph must be a libpysal.graph.Graph, got {type(graph).__name__} "
            "(convert a legacy W with Graph.from_W)"
        )
    ids = pd.Index(graph.unique_ids)
    if len(ids) < _MIN_UNITS:
        raise InputDataError(
            f"Moran's I needs at least {_MIN_UNITS} units; the graph has {len(ids)}"
        )
    units = pd.Index(panel[unit_col].unique())
    missing = units[~units.isin(ids)]
    extra = ids[~ids.isin(units)]
    if len(missing) or len(extra):
        problems = []
        if len(missing):
            problems.append(
                f"{len(missing)} panel unit(s) missing from the graph: {_examples(missing)}"
            )
        if len(extra):
            problems.append(
                f"{len(extra)} graph id(s) absent from the panel: {_examples(extra)} (add "
                "rows with zero values for units without breaks)"
            )
        raise InputDataError(
            f"the graph ids do not match the panel's {unit_col!r} values "
            f"(graph: {len(ids)} ids, dtype {ids.dtype}; panel: {len(units)} units, "
            f"dtype {units.dtype})",
            problems,
        )
    isolated = ids.isin(pd.Index(graph.isolates))
    connected = ids[~isolated]
    if len(connected) < _MIN_UNITS:
        raise InputDataError(
            f"Moran's I needs at least {_MIN_UNITS} units with neighbours; the graph has "
            f"{len(connected)} ({int(isolated.sum())} of its {len(ids)} units are islands)"
        )
    return connected, ids[isolated]


def _analysis_graph(graph: Graph, connected: pd.Index) -> Graph:
    """The graph restricted to its non-island units (the graph itself if it has none)."""
    if len(connected) == graph.n:
        return graph
    return graph.subgraph(connected)


def _wide_values(
    panel: pd.DataFrame, col: str, unit_col: str, year_col: str, ids: pd.Index
) -> pd.DataFrame:
    """Units (rows, in ``ids`` order) x years (sorted columns); absent rows -> 0."""
    wide = panel.pivot(index=unit_col, columns=year_col, values=col)
    wide = wide.reindex(index=ids).sort_index(axis=1)
    return wide.astype(float).fillna(0.0)


def _pseudo_p(observed: np.ndarray, sims: np.ndarray, alternative: str) -> np.ndarray:
    """Permutation pseudo p-values, ``(M + 1) / (R + 1)``, vectorised over rows.

    ``observed`` has shape (n,), ``sims`` shape (n, R). ``"directed"`` reproduces esda 2.9.
    """
    n_perm = sims.shape[1]
    ge = (sims >= observed[:, None]).sum(axis=1)
    if alternative == "directed":
        larger = np.where(n_perm - ge < ge, n_perm - ge, ge)
        return (larger + 1.0) / (n_perm + 1.0)
    greater = (ge + 1.0) / (n_perm + 1.0)
    lesser = ((sims <= observed[:, None]).sum(axis=1) + 1.0) / (n_perm + 1.0)
    if alternative == "greater":
        return greater
    if alternative == "lesser":
        return lesser
    return np.minimum(1.0, 2.0 * np.minimum(greater, lesser))


def _normal_p(z: float, alternative: str) -> float:
    if not np.isfinite(z):
        return float("nan")
    if alternative == "greater":
        return float(stats.norm.sf(z))
    if alternative == "lesser":
        return float(stats.norm.cdf(z))
    one_tail = float(stats.norm.sf(abs(z)))
    return min(1.0, 2.0 * one_tail) if alternative == "two-sided" else one_tail


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


# --------------------------------------------------------------------------- global


def global_moran_by_year(
    panel: pd.DataFrame,
    graph: Graph,
    *,
    value_cols: Sequence[str] = ("breaks", "rate_per_km"),
    unit_col: str = "unit_id",
    year_col: str = "year",
    permutations: int = 999,
    seed: int | None = 42,
    alternative: Alternative = "two-sided",
) -> pd.DataFrame:
    """Global Moran's I of each value column in each year of a unit-year panel.

    Parameters
    ----------
    panel : pandas.DataFrame
        One row per (unit, year) with ``unit_col``, ``year_col`` and ``value_cols``.
        Non-negative, finite values; a graph unit absent in a year counts as 0 that year.
    graph : libpysal.graph.Graph
        Spatial weights over the panel's units, binary or row-standardised (esda
        row-standardises it, ``transformation="r"``). Islands are excluded.
    value_cols : sequence of str, default ("breaks", "rate_per_km")
        Columns to test, in output order within a year.
    unit_col, year_col : str
        Names of the unit and year columns.
    permutations : int, default 999
        Random permutations for ``p_sim``/``z_sim``; 0 gives analytical results only.
    seed : int or None, default 42
        Seed of the permutations (the same for every year and variable).
    alternative : {"two-sided", "greater", "lesser", "directed"}, default "two-sided"
        Alternative hypothesis of ``p_sim`` and ``p_norm`` (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        One row per (year, variable), sorted by year then by ``value_cols`` order, with
        columns ``year_col``, ``variable``, ``n`` (units tested), ``moran_i``,
        ``expected_i`` (-1/(n-1)), ``z_norm``, ``p_norm`` (normality assumption),
        ``p_sim`` (permutation pseudo p), ``z_sim`` (I standardised by the permutation
        mean and standard deviation), ``permutations``, ``n_islands_excluded`` and
        ``note`` (``"constant"`` when the variable has no variation that year, when every
        statistic is NaN; missing otherwise).

    Raises
    ------
    twmb_geo.errors.InputDataError
        Missing columns, duplicated (unit, year) rows, non-numeric, missing, infinite or
        negative values, graph ids not matching the panel's units, fewer than 3 (non-island)
        units, or bad parameters.
    """
    value_cols = list(value_cols) if not isinstance(value_cols, str) else [value_cols]
    if not value_cols:
        raise InputDataError("value_cols must name at least one column")
    if len(set(value_cols)) != len(value_cols):
        raise InputDataError(f"value_cols has duplicates: {value_cols}")
    _check_alternative(alternative)
    _check_permutations(permutations, 0)
    _check_seed(seed)
    _check_columns(panel, [unit_col, year_col, *value_cols], "panel")
    _check_keys(panel, unit_col, year_col, "panel")
    _check_values(panel, value_cols, unit_col)
    connected, islands = _check_graph(graph, panel, unit_col)
    sub = _analysis_graph(graph, connected)

    n = len(connected)
    rows: list[dict[str, Any]] = []
    for col in value_cols:
        wide = _wide_values(panel, col, unit_col, year_col, connected)
        for year in wide.columns:
            y = wide[year].to_numpy()
            row: dict[str, Any] = {
                year_col: year,
                "variable": col,
                "n": n,
                "moran_i": np.nan,
                "expected_i": -1.0 / (n - 1),
                "z_norm": np.nan,
                "p_norm": np.nan,
                "p_sim": np.nan,
                "z_sim": np.nan,
                "permutations": permutations,
                "n_islands_excluded": len(islands),
                "note": None,
            }
            if np.all(y == y[0]):
                row["note"] = "constant"
                rows.append(row)
                continue
            with _seeded_global_rng(seed), np.errstate(divide="ignore", invalid="ignore"):
                mi = esda.Moran(
                    y, sub, transformation="r", permutations=permutations, two_tailed=True
                )
            row["moran_i"] = float(mi.I)
            row["expected_i"] = float(mi.EI)
            row["z_norm"] = float(mi.z_norm)
            row["p_norm"] = _normal_p(float(mi.z_norm), alternative)
            if permutations:
                if alternative == "directed":
                    row["p_sim"] = float(mi.p_sim)
                else:
                    sims = np.asarray(mi.sim, dtype=float)[None, :]
                    row["p_sim"] = float(_pseudo_p(np.array([mi.I]), sims, alternative)[0])
                row["z_sim"] = float(mi.z_sim)
            rows.append(row)

    out = pd.DataFrame(rows, columns=[year_col, *GLOBAL_COLUMNS[1:]])
    out[year_col] = out[year_col].astype(panel[year_col].dtype)
    order = {c: i for i, c in enumerate(value_cols)}
    out = out.assign(_v=out["variable"].map(order))
    out = out.sort_values([year_col, "_v"], kind="stable").drop(columns="_v")
    out["note"] = out["note"].astype("string")
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- local


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
    _check_columns(panel, [unit_col, year_col, value_col], "panel")
    _check_keys(panel, unit_col, year_col, "panel")
    _check_values(panel, [value_col], unit_col)
    connected, islands = _check_graph(graph, panel, unit_col)
    sub = _analysis_graph(graph, connected)

    all_ids = connected.append(islands)
    wide = _wide_values(panel, value_col, unit_col, year_col, all_ids)
    n_conn, n_all = len(connected), len(all_ids)
    years = wide.columns.to_numpy()

    local_i = np.full((len(years), n_all), np.nan)
    quadrant = np.zeros((len(years), n_all), dtype=np.int64)  # 0 = none
    p_sim = np.full((len(years), n_all), np.nan)
    q_value = np.full((len(years), n_all), np.nan)
    for k, year in enumerate(years):
        y = wide[year].to_numpy()[:n_conn]
        if np.all(y == y[0]):
            continue
        with _seeded_global_rng(seed), warnings.catch_warnings():
            # esda 2.9 warns that the default alternative of its conditional
            # randomisation will change; p_sim is recomputed below for other alternatives.
            warnings.filterwarnings(
                "ignore", message="The alternative hypothesis", category=DeprecationWarning
            )
            lm = esda.Moran_Local(
                y,
                sub,
                transformation="r",
                permutations=permutations,
                geoda_quads=False,
                n_jobs=1,
                keep_simulations=True,
                seed=seed,
            )
        local_i[k, :n_conn] = lm.Is
        quadrant[k, :n_conn] = lm.q
        if alternative == "directed":
            p_sim[k, :n_conn] = lm.p_sim
        else:
            p_sim[k, :n_conn] = _pseudo_p(np.asarray(lm.Is), np.asarray(lm.rlisas), alternative)
        q_value[k, :n_conn] = benjamini_hochberg(p_sim[k, :n_conn])

    test = q_value if fdr else p_sim
    with np.errstate(invalid="ignore"):
        significant = test < alpha  # NaN -> False
    labels = np.array(["not significant", *QUADRANT_LABELS.values()], dtype=object)
    code = np.where(significant, quadrant, 0)
    cluster = labels[code]
    cluster[:, n_conn:] = "island"

    out = pd.DataFrame(
        {
            unit_col: np.tile(all_ids.to_numpy(), len(years)),
            year_col: np.repeat(years, n_all),
            "value": wide.to_numpy().T.ravel(),
            "local_i": local_i.ravel(),
            "quadrant": pd.array(np.where(quadrant == 0, pd.NA, quadrant).ravel(), dtype="Int64"),
            "p_sim": p_sim.ravel(),
            "q_value": q_value.ravel(),
            "significant": significant.ravel(),
            "cluster": cluster.ravel().astype(str),
        }
    )
    out[year_col] = out[year_col].astype(panel[year_col].dtype)
    out = out.sort_values([year_col, unit_col], kind="stable")
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- persistence


def hotspot_persistence(
    lisa: pd.DataFrame,
    *,
    min_share: float = 0.5,
    recent_years: int = 5,
    unit_col: str = "unit_id",
    year_col: str = "year",
) -> pd.DataFrame:
    """Summarise yearly LISA clusters into one hot-spot persistence class per unit.

    Parameters
    ----------
    lisa : pandas.DataFrame
        Output of :func:`local_moran_by_year` (at least ``unit_col``, ``year_col`` and
        ``cluster``), one row per (unit, year).
    min_share : float, default 0.5
        Share of assessed years, in (0, 1], that makes a hot (cold) spot persistent.
    recent_years : int, default 5
        Length of the recent window: the last ``recent_years`` calendar years of the table.
    unit_col, year_col : str
        Names of the unit and year columns.

    Returns
    -------
    pandas.DataFrame
        One row per unit, sorted by unit, with columns ``unit_col``, ``years_observed``
        (non-island years), ``years_hot``, ``years_cold``, ``share_hot``, ``share_cold``
        (NaN when never assessed), ``first_hot``, ``last_hot`` (nullable years),
        ``longest_hot_run``, ``years_hot_recent``, ``hot_recent`` (hot in at least one
        recent year) and ``class`` (one of :data:`PERSISTENCE_CLASSES`; the rules and
        their precedence are in the module docstring).

    Raises
    ------
    twmb_geo.errors.InputDataError
        Missing columns, duplicated (unit, year) rows, unknown cluster labels, or bad
        ``min_share``/``recent_years``.
    """
    if not (isinstance(min_share, float | int) and 0 < min_share <= 1):
        raise InputDataError(f"min_share must be in (0, 1], got {min_share!r}")
    if isinstance(recent_years, bool) or not isinstance(recent_years, int) or recent_years < 1:
        raise InputDataError(f"recent_years must be a positive integer, got {recent_years!r}")
    _check_columns(lisa, [unit_col, year_col, "cluster"], "lisa")
    _check_keys(lisa, unit_col, year_col, "lisa")
    unknown = pd.Index(lisa["cluster"].unique()).difference(pd.Index(CLUSTER_LABELS))
    if len(unknown):
        raise InputDataError(
            f"lisa column 'cluster' has unknown label(s) {_examples(unknown)}; expected "
            f"{', '.join(CLUSTER_LABELS)}"
        )

    df = lisa[[unit_col, year_col, "cluster"]].sort_values([unit_col, year_col], kind="stable")
    cluster = df["cluster"]
    observed = cluster.ne("island")
    hot = cluster.eq("hot spot")
    cold = cluster.eq("cold spot")
    signif = cluster.isin(["hot spot", "cold spot", "high outlier", "low outlier"])
    max_year = df[year_col].max()
    recent = df[year_col] > max_year - recent_years
    before = ~recent
    hot_year = df[year_col].where(hot)

    # runs of consecutive hot years along the table's own sequence of years
    position = df[year_col].map({y: i for i, y in enumerate(np.sort(df[year_col].unique()))})
    units = df[unit_col]
    hot_rows = pd.DataFrame({"u": units[hot], "pos": position[hot]})
    new_run = hot_rows["u"].ne(hot_rows["u"].shift()) | hot_rows["pos"].diff().ne(1)
    run_len = hot_rows.groupby([hot_rows["u"], new_run.cumsum()], sort=False).size()
    longest = run_len.groupby(level=0, sort=False).max()

    parts = pd.DataFrame(
        {
            "observed": observed,
            "hot": hot,
            "cold": cold,
            "signif": signif,
            "hot_recent": hot & recent,
            "hot_before": hot & before,
            "obs_before": observed & before,
            "hot_year": hot_year,
        }
    )
    g = parts.groupby(units, sort=True)
    agg = g[["observed", "hot", "cold", "signif", "hot_recent", "hot_before", "obs_before"]].sum()
    first_hot = g["hot_year"].min()
    last_hot = g["hot_year"].max()

    years_observed = agg["observed"].astype(np.int64)
    years_hot = agg["hot"].astype(np.int64)
    years_cold = agg["cold"].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share_hot = (years_hot / years_observed.where(years_observed > 0)).astype(float)
        share_cold = (years_cold / years_observed.where(years_observed > 0)).astype(float)
    years_hot_recent = agg["hot_recent"].astype(np.int64)

    conditions = [
        years_observed.eq(0),
        years_hot.ge(2) & share_hot.ge(min_share),
        years_hot_recent.ge(2) & agg["hot_before"].eq(0) & agg["obs_before"].gt(0),
        years_hot.ge(2),
        years_hot.eq(1),
        years_cold.ge(2) & share_cold.ge(min_share),
        agg["signif"].gt(0),
    ]
    klass = np.select(
        [c.to_numpy(dtype=bool) for c in conditions],
        list(PERSISTENCE_CLASSES[:-1]),
        default=PERSISTENCE_CLASSES[-1],
    )

    out = pd.DataFrame(
        {
            "years_observed": years_observed,
            "years_hot": years_hot,
            "years_cold": years_cold,
            "share_hot": share_hot,
            "share_cold": share_cold,
            "first_hot": first_hot.astype("Int64"),
            "last_hot": last_hot.astype("Int64"),
            "longest_hot_run": longest.reindex(agg.index, fill_value=0).astype(np.int64),
            "years_hot_recent": years_hot_recent,
            "hot_recent": years_hot_recent.gt(0),
            "class": klass.astype(str),
        },
        index=agg.index,
    )
    out.index.name = unit_col
    return out.reset_index()
