"""Global Moran's I of each value column, year by year."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
from libpysal.graph import Graph
from scipy import sparse

from ...core.cluster import map_partitions, shared_data, task_share
from ...errors import InputDataError
from ._common import (
    GLOBAL_COLUMNS,
    Alternative,
    _check_alternative,
    _check_block,
    _check_inputs,
    _check_permutations,
    _check_seed,
    _legacy_rng,
    _normal_p,
    _pseudo_p,
    _wide_values,
)

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["global_moran_by_year"]


#: Values (permutations x units) of one block of permuted copies of a year's values (2 MB:
#: in the CPU's cache, 2.6 times faster than blocks of 32 MB).
_PERMUTED_BLOCK: Final[int] = 1 << 18


@dataclass(frozen=True)
class _Weights:
    """A graph's row-standardised weights and esda's sums of them, computed once for every
    year and variable (esda summarises the graph again for each test)."""

    sparse: sparse.csr_array
    s0: float
    s1: float
    s2: float

    @classmethod
    def of(cls, graph: Graph) -> _Weights:
        g = graph.transform("r")  # esda's transformation="r"
        summary = g.summary()
        return cls(g.sparse, summary.s0, summary.s1, summary.s2)


@dataclass(frozen=True)
class _Test:
    """One variable in one year: Moran's I, its normal approximation and the centred values."""

    moran_i: float
    expected_i: float
    z_norm: float
    z: np.ndarray
    z2ss: float


def _moran_test(y: np.ndarray, w: _Weights) -> _Test:
    """``esda.Moran(y, graph, transformation="r")``'s I and normal z, with esda's formulas
    in esda's order (the same bits)."""
    n = len(y)
    z = y - y.mean()
    z2ss = (z * z).sum()
    expected = -1.0 / (n - 1)
    s02 = w.s0 * w.s0
    v_num = n * n * w.s1 - n * w.s2 + 3 * s02
    v_den = (n - 1) * (n + 1) * s02
    se_norm = (v_num / v_den - (1.0 / (n - 1)) ** 2) ** (1 / 2.0)
    moran_i = n / w.s0 * (z * (w.sparse @ z)).sum() / z2ss
    return _Test(moran_i, expected, (moran_i - expected) / se_norm, z, z2ss)


def _moran_block(
    shared: tuple[np.ndarray, np.ndarray, sparse.csr_array, float], order: np.ndarray
) -> np.ndarray:
    """The I of each test under each permutation of ``order`` (one task), shape (tests,
    permutations).

    ``shared`` is (every test's centred values, their sums of squares, the weights, their
    sum): a block of permuted copies is lagged with one sparse product and summed row by
    row, the sums esda makes for each copy, in the same order. The copies are gathered
    units-first, the layout the sparse product reads, into buffers reused for every test
    (a fresh copy per test cost 2.6 times as much, most of it the allocator's).
    """
    zs, z2ss, weights, s0 = shared
    n = zs.shape[1]
    out = np.empty((len(zs), len(order)))
    units_first = np.ascontiguousarray(order.T)
    copies = np.empty(units_first.shape)
    products = np.empty(order.shape)
    for k, z in enumerate(zs):
        np.take(z, units_first, out=copies)
        np.multiply(copies.T, (weights @ copies).T, out=products)
        out[k] = n / s0 * products.sum(axis=1) / z2ss[k]
    return out


def _permuted_moran(
    tests: Sequence[_Test],
    w: _Weights,
    permutations: int,
    seed: int | None,
    *,
    block_permutations: int | None = None,
    client: Client | None = None,
) -> np.ndarray:
    """The I of each random permutation of each test's values, shape (tests, permutations):
    what ``esda.Moran(..., permutations=permutations)`` draws after ``np.random.seed(seed)``,
    bit for bit.

    esda permutes and lags one copy at a time in Python, and draws the same permutations for
    every test on the same graph with the same seed. Here each block of permutations is
    drawn once, in esda's order, for all the tests (years and variables) and evaluated as
    one task (:func:`_moran_block`), on the client's cluster or here.
    """
    n = len(tests[0].z)
    rng = _legacy_rng(seed)
    step = _block_permutations(n, permutations, block_permutations, client)
    shared_values = (
        np.stack([t.z for t in tests]),
        np.array([t.z2ss for t in tests]),
        w.sparse,
        w.s0,
    )
    with shared_data(shared_values, client) as shared:
        jobs = (
            (
                shared,
                np.stack([rng.permutation(n) for _ in range(lo, min(lo + step, permutations))]),
            )
            for lo in range(0, permutations, step)
        )  # drawn as the tasks are submitted: a few blocks in memory at a time
        return np.hstack(map_partitions(_moran_block, jobs, client))


def _block_permutations(
    n: int, permutations: int, block_permutations: int | None, client: Client | None
) -> int:
    """Permutations per task: ``block_permutations``, else as many as hold
    :data:`_PERMUTED_BLOCK` values, and on a cluster no more than an equal share for two
    tasks per worker."""
    if block_permutations is not None:
        return block_permutations
    step = max(1, _PERMUTED_BLOCK // n)
    if client is None:
        return step
    return min(step, task_share(permutations, client))


def _moran_row(
    y: np.ndarray, w: _Weights, *, permutations: int, alternative: str
) -> tuple[dict[str, Any], _Test | None]:
    """Global Moran statistics of one variable in one year without the permutation ones
    (NaN and a note when constant), and its test (None when constant)."""
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
        test = _moran_test(np.asarray(y, dtype=float), w)
    row["moran_i"] = float(test.moran_i)
    row["expected_i"] = float(test.expected_i)
    row["z_norm"] = float(test.z_norm)
    row["p_norm"] = _normal_p(float(test.z_norm), alternative)
    return row, test


def _permutation_stats(
    rows: list[dict[str, Any]],
    tests: list[tuple[int, _Test]],
    w: _Weights,
    *,
    permutations: int,
    seed: int | None,
    alternative: str,
    block_permutations: int | None,
    client: Client | None,
) -> None:
    """Fill ``p_sim`` and ``z_sim`` of the tested rows (esda's formulas)."""
    sims = _permuted_moran(
        [t for _, t in tests],
        w,
        permutations,
        seed,
        block_permutations=block_permutations,
        client=client,
    )
    for (k, test), sim in zip(tests, sims, strict=True):
        observed = np.array([test.moran_i])
        rows[k]["p_sim"] = float(_pseudo_p(observed, sim[None, :], alternative)[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            rows[k]["z_sim"] = float((test.moran_i - sim.sum() / permutations) / sim.std())


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
    block_permutations: int | None = None,
    client: Client | None = None,
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
    block_permutations : int or None
        Permutations one task evaluates for every year and variable. None: as many as hold
        262,144 permuted values (2 MB) per task; on a cluster, no more than an equal share
        for two tasks per worker. The result does not depend on it.
    client : distributed.Client or None
        A Dask client: the tasks run on its cluster, the values and the graph sent once to
        each worker and each block of permutations (drawn here, in esda's order) with its
        task; None: in this process.

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
    _check_block(block_permutations, "block_permutations")
    _check_permutations(permutations, 0)
    _check_seed(seed)
    connected, islands, sub = _check_inputs(panel, graph, value_cols, unit_col, year_col)

    rows: list[dict[str, Any]] = []
    tests: list[tuple[int, _Test]] = []
    w = _Weights.of(sub)
    for col in value_cols:
        wide = _wide_values(panel, col, unit_col, year_col, connected)
        for year in wide.columns:
            row, test = _moran_row(
                wide[year].to_numpy(), w, permutations=permutations, alternative=alternative
            )
            row.update({year_col: year, "variable": col, "n_islands_excluded": len(islands)})
            if test is not None:
                tests.append((len(rows), test))
            rows.append(row)
    if permutations and tests:
        _permutation_stats(
            rows,
            tests,
            w,
            permutations=permutations,
            seed=seed,
            alternative=alternative,
            block_permutations=block_permutations,
            client=client,
        )

    out = pd.DataFrame(rows, columns=[year_col, *GLOBAL_COLUMNS[1:]])
    out[year_col] = out[year_col].astype(panel[year_col].dtype)
    order = {c: i for i, c in enumerate(value_cols)}
    out = out.assign(_v=out["variable"].map(order))
    out = out.sort_values([year_col, "_v"], kind="stable").drop(columns="_v")
    out["note"] = out["note"].astype("string")
    return out.reset_index(drop=True)
