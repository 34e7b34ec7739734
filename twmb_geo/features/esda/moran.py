"""Global Moran's I of each value column, year by year."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import esda
import numpy as np
import pandas as pd
from libpysal.graph import Graph

from ...errors import InputDataError
from ._common import (
    GLOBAL_COLUMNS,
    Alternative,
    _check_alternative,
    _check_inputs,
    _check_permutations,
    _check_seed,
    _legacy_rng,
    _normal_p,
    _pseudo_p,
    _wide_values,
)

__all__ = ["global_moran_by_year"]


#: Values (permutations x units) of one block of permuted copies of a year's values.
_PERMUTED_BLOCK: Final[int] = 1 << 22


def _permuted_moran(tests: Sequence[esda.Moran], permutations: int, seed: int | None) -> np.ndarray:
    """The I of each random permutation of each test's values, shape (tests, permutations):
    what ``esda.Moran(..., permutations=permutations)`` draws after ``np.random.seed(seed)``,
    bit for bit.

    esda permutes and lags one copy at a time in Python, and draws the same permutations for
    every test on the same graph with the same seed. Here each block of permutations is
    drawn once for all the tests (years and variables), and a block of permuted copies is
    lagged with one sparse product and summed row by row: the same sums in the same order.
    """
    first = tests[0]
    n = first.n
    lag = first.w.sparse  # the tests share the graph
    # esda permutes the centred values (``Moran.z`` is rescaled after its permutations)
    centred = [mi.y - mi.y.mean() for mi in tests]
    rng = _legacy_rng(seed)
    out = np.empty((len(tests), permutations))
    step = max(1, _PERMUTED_BLOCK // n)
    for lo in range(0, permutations, step):
        hi = min(lo + step, permutations)
        order = np.stack([rng.permutation(n) for _ in range(lo, hi)])
        for k, (mi, z) in enumerate(zip(tests, centred, strict=True)):
            zp = z[order]
            inum = (zp * (lag @ zp.T).T).sum(axis=1)
            out[k, lo:hi] = mi.n / mi.summary.s0 * inum / mi.z2ss
    return out


def _moran_row(
    y: np.ndarray, graph: Graph, *, permutations: int, alternative: str
) -> tuple[dict[str, Any], esda.Moran | None]:
    """Global Moran statistics of one variable in one year without the permutation ones
    (NaN and a note when constant), and esda's test (None when constant)."""
    n = len(y)
    row: dict[str, Any] = {
        "n": n,
        "moran_i": np.nan,
        "expected_i": -1.0 / (n - 1),
        "z_norm": np.nan,
        "p_norm": np.nan,
        "p_sim": np.nan,
        "z_sim": np.nan,
        "permutations": permutations,
        "note": None,
    }
    if np.all(y == y[0]):
        row["note"] = "constant"
        return row, None
    with np.errstate(divide="ignore", invalid="ignore"):
        mi = esda.Moran(y, graph, transformation="r", permutations=0, two_tailed=True)
    row["moran_i"] = float(mi.I)
    row["expected_i"] = float(mi.EI)
    row["z_norm"] = float(mi.z_norm)
    row["p_norm"] = _normal_p(float(mi.z_norm), alternative)
    return row, mi


def _permutation_stats(
    rows: list[dict[str, Any]],
    tests: list[tuple[int, esda.Moran]],
    *,
    permutations: int,
    seed: int | None,
    alternative: str,
) -> None:
    """Fill ``p_sim`` and ``z_sim`` of the tested rows (esda's formulas)."""
    sims = _permuted_moran([mi for _, mi in tests], permutations, seed)
    for (k, mi), sim in zip(tests, sims, strict=True):
        rows[k]["p_sim"] = float(_pseudo_p(np.array([mi.I]), sim[None, :], alternative)[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            rows[k]["z_sim"] = float((mi.I - sim.sum() / permutations) / sim.std())


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
    connected, islands, sub = _check_inputs(panel, graph, value_cols, unit_col, year_col)

    rows: list[dict[str, Any]] = []
    tests: list[tuple[int, esda.Moran]] = []
    for col in value_cols:
        wide = _wide_values(panel, col, unit_col, year_col, connected)
        for year in wide.columns:
            row, mi = _moran_row(
                wide[year].to_numpy(), sub, permutations=permutations, alternative=alternative
            )
            row.update({year_col: year, "variable": col, "n_islands_excluded": len(islands)})
            if mi is not None:
                tests.append((len(rows), mi))
            rows.append(row)
    if permutations and tests:
        _permutation_stats(
            rows, tests, permutations=permutations, seed=seed, alternative=alternative
        )

    out = pd.DataFrame(rows, columns=[year_col, *GLOBAL_COLUMNS[1:]])
    out[year_col] = out[year_col].astype(panel[year_col].dtype)
    order = {c: i for i, c in enumerate(value_cols)}
    out = out.assign(_v=out["variable"].map(order))
    out = out.sort_values([year_col, "_v"], kind="stable").drop(columns="_v")
    out["note"] = out["note"].astype("string")
    return out.reset_index(drop=True)
