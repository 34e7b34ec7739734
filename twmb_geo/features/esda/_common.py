"""Shared constants, input checks and p-value helpers of the ESDA layer.

The LISA cluster labels and hot-spot persistence classes are the shared vocabulary of
:mod:`twmb_geo.core.vocab` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from libpysal.graph import Graph
from scipy import stats

from ...errors import InputDataError

Alternative = Literal["two-sided", "greater", "lesser", "directed"]
_ALTERNATIVES: Final[tuple[str, ...]] = ("two-sided", "greater", "lesser", "directed")

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


def _legacy_rng(seed: int | None) -> np.random.RandomState:
    """NumPy's legacy generator as esda draws from it after ``np.random.seed(seed)``.

    A seed of None continues from a copy of the global generator's state (what esda draws
    unseeded) without changing that state for the caller.
    """
    rng = np.random.RandomState(seed)
    if seed is None:
        rng.set_state(np.random.get_state())  # noqa: NPY002 - the global state, left as it is
    return rng


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


def _check_block(block: int | None, name: str) -> None:
    if block is None:
        return
    if isinstance(block, bool) or not isinstance(block, int | np.integer) or block < 1:
        raise InputDataError(f"{name} must be a positive integer or None, got {block!r}")


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


def _within(values: pd.Index, of: pd.Index) -> np.ndarray:
    """Whether each of ``values`` is in ``of`` (unique): ``isin`` by hash lookup, which for
    string ids is 20 times faster than pandas' ``isin`` (a Python loop for Arrow strings)."""
    return np.asarray(of.get_indexer(values) >= 0)


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
    missing = units[~_within(units, ids)]
    extra = ids[~_within(ids, units)]
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
    isolated = _within(ids, pd.Index(graph.isolates))
    connected = ids[~isolated]
    if len(connected) < _MIN_UNITS:
        raise InputDataError(
            f"Moran's I needs at least {_MIN_UNITS} units with neighbours; the graph has "
            f"{len(connected)} ({int(isolated.sum())} of its {len(ids)} units are islands)"
        )
    return connected, ids[isolated]


def _check_inputs(
    panel: pd.DataFrame, graph: Graph, value_cols: Sequence[str], unit_col: str, year_col: str
) -> tuple[pd.Index, pd.Index, Graph]:
    """Validate the panel and the graph; return (non-island ids, island ids, analysis graph)."""
    _check_columns(panel, [unit_col, year_col, *value_cols], "panel")
    _check_keys(panel, unit_col, year_col, "panel")
    _check_values(panel, value_cols, unit_col)
    connected, islands = _check_graph(graph, panel, unit_col)
    return connected, islands, _analysis_graph(graph, connected)


def _analysis_graph(graph: Graph, connected: pd.Index) -> Graph:
    """The graph restricted to its non-island units (the graph itself if it has none)."""
    if len(connected) == graph.n:
        return graph
    return graph.subgraph(connected)


def _wide_values(
    panel: pd.DataFrame, col: str, unit_col: str, year_col: str, ids: pd.Index
) -> pd.DataFrame:
    """Units (rows, in ``ids`` order) x years (sorted columns); absent rows -> 0.

    ``panel`` has one row per (unit, year) (checked before); rows of units not in ``ids``
    are left out. Placed by position (a pivot and a reindex cost ten times as much for
    string ids).
    """
    years, column = np.unique(panel[year_col].to_numpy(), return_inverse=True)
    row = ids.get_indexer(panel[unit_col])
    keep = row >= 0
    wide = np.zeros((len(ids), len(years)))
    wide[row[keep], column[keep]] = panel[col].to_numpy(dtype=float)[keep]
    return pd.DataFrame(wide, index=ids, columns=pd.Index(years, name=year_col))


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
