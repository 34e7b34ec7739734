"""Local Moran's I (LISA) year by year, with Benjamini-Hochberg FDR control and labels."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import esda
import numpy as np
import pandas as pd
from libpysal.graph import Graph
from scipy import sparse

from ...core.cluster import map_partitions, shared_data, task_share
from ...core.vocab import QUADRANT_LABELS
from ...errors import InputDataError
from ._common import (
    Alternative,
    _check_alternative,
    _check_block,
    _check_inputs,
    _check_permutations,
    _check_seed,
    _legacy_rng,
    _pseudo_p,
    _wide_values,
)

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["BLOCK_UNITS", "benjamini_hochberg", "local_moran_by_year"]


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


#: Units per LISA task on a cluster at most (each task also reads every unit's values).
BLOCK_UNITS: Final[int] = 50_000
#: Elements (units x permutations x neighbours) of one block of conditional draws: 2 MB of
#: int64 positions, and as much again for the values drawn (blocks that stay in the CPU's
#: cache: 1.5 times faster than blocks of 32 MB, measured in ``docs/features.md``).
_DRAW_BLOCK: Final[int] = 1 << 18


def _draw_positions(n: int, max_card: int, permutations: int, seed: int | None) -> np.ndarray:
    """esda's conditional-randomisation draws (``esda.crand.vec_permutations``): for each
    permutation, ``max_card`` distinct positions among a unit's ``n - 1`` other units.

    A seed of None takes one from NumPy's legacy global generator, as esda does.
    """
    if seed is None:  # esda draws a seed from the global generator
        seed = int(_legacy_rng(None).randint(12345, 12345000))
    rng = _legacy_rng(seed)
    out = np.empty((permutations, max_card), dtype=np.int64)
    for k in range(permutations):
        out[k] = rng.choice(n - 1, size=max_card, replace=False)
    return out


def _lisa_block(
    shared: tuple[np.ndarray, np.ndarray, np.ndarray],
    weights: sparse.csr_array,
    self_weights: np.ndarray,
    observed: np.ndarray,
    first: int,
    alternative: str,
) -> np.ndarray:
    """Pseudo p-values of the units ``first, first + 1, ...`` (one task), shape (years,
    units).

    ``shared`` is (z of every unit and year, the draws, each year's scaling): a unit's
    conditional draws are values of any other unit, so every task reads the whole ``z``.
    ``weights`` are the block's rows (columns: every unit) without self-weights, which come
    in ``self_weights``; ``observed`` is the block's local I.
    """
    z, positions, scaling = shared
    permutations = positions.shape[0]
    card = np.diff(weights.indptr)
    p = np.empty(observed.shape)
    for k in np.unique(card):
        units = np.flatnonzero(card == k)
        if k:
            wk = weights.data[weights.indptr[units][:, None] + np.arange(k)]
            sw = self_weights[units]
        else:  # an island: esda draws one neighbour with weight 0 and no self-weight
            wk, sw = np.zeros((len(units), 1)), np.zeros(len(units))
        width = wk.shape[1]
        step = max(1, _DRAW_BLOCK // (permutations * width))
        for lo in range(0, len(units), step):
            local = units[lo : lo + step]
            g = local + first
            pos = positions[None, :, :width]
            pos = pos + (pos >= g[:, None, None])  # skip the unit itself
            wg = wk[lo : lo + step, :, None]
            for t, zt in enumerate(z):
                zi = zt[g]
                lag = np.matmul(zt[pos], wg)[..., 0]
                sims = zi[:, None] * (lag + (sw[lo : lo + step] * zi)[:, None]) * scaling[t]
                p[t, local] = _pseudo_p(observed[t, local], sims, alternative)
    return p


def _conditional_p(
    z: np.ndarray,
    observed: np.ndarray,
    weights: sparse.csr_array,
    *,
    permutations: int,
    seed: int | None,
    alternative: str,
    block_units: int | None = None,
    client: Client | None = None,
) -> np.ndarray:
    """Pseudo p-values of local Moran's I by conditional randomisation, every year at once.

    ``z`` and ``observed`` have shape (years, units): esda's standardised values and local
    I of each year; ``weights`` is esda's transformed weights matrix. The draws, and so the
    simulated statistics, are those of ``esda.Moran_Local(..., n_jobs=1, seed=seed)`` bit
    for bit (``esda.crand.compute_chunk`` with ``_moran_local_crand``), computed for blocks
    of units of equal cardinality with NumPy instead of one unit at a time in Python
    (esda's loop when numba is absent). The draws depend only on the graph and the seed,
    so each block's positions serve every year. The units are split into tasks of
    ``block_units`` (:func:`_block_units`), run on the client's cluster or here; a unit's
    p-values do not depend on the split. Returns shape (years, units).
    """
    n = z.shape[1]
    w = sparse.csr_array(weights, copy=True)
    self_weights = w.diagonal()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sparse.SparseEfficiencyWarning)
        w.setdiag(0)
    w.eliminate_zeros()
    positions = _draw_positions(n, int(np.diff(w.indptr).max()), permutations, seed)
    # one year at a time, as esda sums (a sum along axis 0 rounds differently)
    scaling = np.array([(n - 1) / (zt * zt).sum() for zt in z])
    step = _block_units(n, block_units, client)
    with shared_data((z, positions, scaling), client) as shared:
        jobs = (
            (shared, w[lo : lo + step], self_weights[lo : lo + step], observed[:, lo : lo + step],
             lo, alternative)
            for lo in range(0, n, step)
        )  # fmt: skip
        return np.hstack(map_partitions(_lisa_block, jobs, client))


def _block_units(n: int, block_units: int | None, client: Client | None) -> int:
    """Units per LISA task: in this process ``block_units`` or all of them; on a cluster an
    equal share for two tasks per worker, at most ``block_units`` (or :data:`BLOCK_UNITS`)."""
    if client is None:
        return n if block_units is None else block_units
    return min(task_share(n, client), BLOCK_UNITS if block_units is None else block_units)


def _lisa_years(
    values: np.ndarray,
    graph: Graph,
    *,
    permutations: int,
    seed: int | None,
    alternative: str,
    block_units: int | None,
    client: Client | None,
) -> tuple[np.ndarray, np.ndarray]:
    """LISA of the columns (years) of ``values`` (units x years, none constant): stats
    (local I, p_sim, BH q-value) of shape (3, years, units) and the esda quadrants."""
    n_years = values.shape[1]
    z = np.empty((n_years, values.shape[0]))
    local_i = np.empty_like(z)
    quadrant = np.empty(z.shape, dtype=np.int64)
    for t in range(n_years):
        lm = esda.Moran_Local(
            values[:, t], graph, transformation="r", permutations=0, geoda_quads=False
        )
        z[t], local_i[t], quadrant[t] = lm.z, lm.Is, lm.q
    weights = graph.transform("r").sparse  # the matrix esda's transformation="r" lags with
    p_sim = _conditional_p(
        z,
        local_i,
        weights,
        permutations=permutations,
        seed=seed,
        alternative=alternative,
        block_units=block_units,
        client=client,
    )
    q_value = np.vstack([benjamini_hochberg(row) for row in p_sim])
    return np.stack([local_i, p_sim, q_value]), quadrant


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
    block_units: int | None = None,
    client: Client | None = None,
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
    block_units : int or None
        Units whose conditional permutations one task computes: in this process
        ``block_units`` (None: every unit in one task); on a cluster an equal share for two
        tasks per worker, at most ``block_units`` (None: :data:`BLOCK_UNITS`). The result
        does not depend on it.
    client : distributed.Client or None
        A Dask client: the tasks run on its cluster, every year's values sent once to each
        worker (a unit's draws are values of any other unit); None: in this process.

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
    _check_block(block_units, "block_units")
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
    values = wide.to_numpy(dtype=float)[:n_conn]
    live = np.flatnonzero(~np.all(values == values[:1], axis=0))  # constant years: no test
    if len(live):
        stats[:, live, :n_conn], quadrant[live, :n_conn] = _lisa_years(
            values[:, live],
            sub,
            permutations=permutations,
            seed=seed,
            alternative=alternative,
            block_units=block_units,
            client=client,
        )
    out = _lisa_frame(all_ids, years, wide, stats, quadrant, n_conn, alpha=alpha, fdr=fdr)
    out.columns = [unit_col, year_col, *out.columns[2:]]
    out[year_col] = out[year_col].astype(panel[year_col].dtype)
    out = out.sort_values([year_col, unit_col], kind="stable")
    return out.reset_index(drop=True)
