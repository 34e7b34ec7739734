"""The unit-year panel: exposure, break history, spatial lags and next-year targets.

One function builds the panel for any unit type. Counts, exposures and every feature are
units x years matrices; history features come from :mod:`twmb_geo.features.history`
(year t sees years <= t only), lags are sparse matrix products applied year by year
column-wise, so the whole panel is vectorised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ParamSpec

import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from libpysal.graph import Graph

from ..contracts import conform, load_schema
from ..core.units import UNIT_TYPES
from ..spatial import graphs as gb
from ..spatial.nearby import points_within
from .history import history_features, rolling_sum

__all__ = [
    "PANEL_UNIT_COLUMNS",
    "PanelSettings",
    "build_panel",
    "exposure_matrices",
    "graph_lags",
    "local_density",
    "near_counts",
    "panel_chunks",
]

log = logging.getLogger(__name__)

P = ParamSpec("P")

#: the unit-table columns the panel reads, of any unit type (a type lacking one goes
#: without), its partitioned build included; the pipes' also give the exposure
PANEL_UNIT_COLUMNS: tuple[str, ...] = (
    "unit_id",
    "x",
    "y",
    "length_m",
    "area_km2",
    "neighbourhood",
    "install_year",
    "removal_year",
    "geometry",
)


@dataclass(frozen=True)
class PanelSettings:
    """Study window and feature parameters."""

    start_year: int
    end_year: int
    decay_tau: float = 3.0
    near_radius_m: float = 100.0

    @property
    def years(self) -> np.ndarray:
        """The study years, ascending."""
        return np.arange(self.start_year, self.end_year + 1)


def graph_lags(
    graph: Graph, ids: np.ndarray, values: dict[str, np.ndarray], *, order: int = 1
) -> dict[str, np.ndarray]:
    """Row-standardised spatial lags of units x years matrices, aligned with ``ids``.

    Order 1 uses the graph's weights; order ``k >= 2`` the mean over the units at graph
    distance exactly ``k`` (:func:`~twmb_geo.spatial.graphs.higher_order`). NaN values
    count as 0; units without neighbours (or absent from the graph) get NaN.
    """
    w = graph if order == 1 else gb.transformed(gb.higher_order(graph, order), "r")
    return {k: gb.lag(w, np.nan_to_num(v, nan=0.0), ids) for k, v in values.items()}


def local_density(
    graph: Graph, ids: np.ndarray, counts: np.ndarray, size: np.ndarray
) -> np.ndarray:
    """Breaks per unit of size over a unit and its first-ring neighbours (units x years).

    ``counts`` and ``size`` are aligned with ``ids``; NaN where the pooled size is 0.
    """
    binary = gb.transformed(graph, "b")
    num = counts + gb.lag(binary, counts, ids, empty=0.0)
    den = size + gb.lag(binary, size, ids, empty=0.0)
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)


def exposure_matrices(
    unit_type: str,
    ids: np.ndarray,
    years: np.ndarray,
    pipes: pd.DataFrame | None,
    pipe_units_of: pd.DataFrame | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """In-service pipe km, mean age and (pipes only) the in-service mask per unit and year.

    ``pipes`` is the pipe unit table (``unit_id``, ``length_m``, ``install_year``,
    ``removal_year``); ``pipe_units_of`` maps pipes to this unit type (``pipe_id``, ``unit``,
    ``length_m``). A pipe is in service in year t when install_year <= t < removal_year
    (an unknown install year counts as in service).
    """
    if pipes is None or pipes.empty:
        return None, None, None
    inst = pipes["install_year"].to_numpy(dtype=float)
    rem = pipes["removal_year"].to_numpy(dtype=float)
    yr = years[None, :].astype(float)
    alive = (np.isnan(inst)[:, None] | (inst[:, None] <= yr)) & (
        np.isnan(rem)[:, None] | (yr < rem[:, None])
    )
    age = np.where(alive, yr - inst[:, None], np.nan)
    if unit_type == "pipe":
        km = pipes["length_m"].to_numpy(dtype=float) / 1000.0
        return np.where(alive, km[:, None], 0.0), age, alive
    if pipe_units_of is None or pipe_units_of.empty:
        return np.zeros((len(ids), len(years))), np.full((len(ids), len(years)), np.nan), None
    pidx = pd.Index(pipes["unit_id"].astype(str)).get_indexer(pipe_units_of["pipe_id"].astype(str))
    uidx = pd.Index(np.asarray(ids).astype(str)).get_indexer(pipe_units_of["unit"].astype(str))
    ok = (pidx >= 0) & (uidx >= 0)
    m = sp.csr_matrix(
        (pipe_units_of["length_m"].to_numpy(dtype=float)[ok] / 1000.0, (uidx[ok], pidx[ok])),
        shape=(len(ids), len(pipes)),
    )
    exposure = m @ alive.astype(float)
    known = alive & ~np.isnan(age)
    age_sum = m @ np.where(known, age, 0.0)
    age_w = m @ known.astype(float)
    age_mean = np.divide(age_sum, age_w, out=np.full_like(age_sum, np.nan), where=age_w > 0)
    return np.asarray(exposure), np.asarray(age_mean), None


def _counts(
    links: pd.DataFrame, breaks_year: pd.Series, ids: np.ndarray, years: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    m = links[links["status"] == "matched"]
    yr = m["break_id"].map(breaks_year).to_numpy(dtype=float)
    ui = pd.Index(np.asarray(ids).astype(str)).get_indexer(m["unit_id"].astype(str))
    counts = np.zeros((len(ids), len(years)))
    prior = np.zeros(len(ids))
    inside = (ui >= 0) & (yr >= years[0]) & (yr <= years[-1])
    np.add.at(counts, (ui[inside], (yr[inside] - years[0]).astype(int)), 1.0)
    before = (ui >= 0) & (yr < years[0])
    np.add.at(prior, ui[before], 1.0)
    return counts, prior


def near_counts(
    geoms: np.ndarray,
    bx: np.ndarray,
    by: np.ndarray,
    byear: np.ndarray,
    years: np.ndarray,
    radius_m: float,
) -> np.ndarray:
    """Breaks within ``radius_m`` of each geometry, per year (units x years)."""
    out = np.zeros((len(geoms), len(years)))
    located = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not located.any() or len(bx) == 0:
        return out
    gi, bj = points_within(geoms, bx, by, radius_m)
    yj = byear[bj]
    ok = (yj >= years[0]) & (yj <= years[-1])
    cell = gi[ok] * len(years) + (yj[ok] - years[0]).astype(np.int64)
    return np.bincount(cell, minlength=out.size).reshape(out.shape).astype(float)


def _spatial_columns(
    unit_type: str,
    units: pd.DataFrame,
    ids: np.ndarray,
    graphs: dict[str, Graph] | None,
    feats: dict[str, np.ndarray],
    window: np.ndarray,
    unit_rate: np.ndarray | None,
    area: np.ndarray | None,
    exposure: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """Spatial lags on the "adj" and "dist" graphs and the pooled local density."""
    t = window.shape[1]
    cols: dict[str, np.ndarray] = {}
    for gname in ("adj", "dist"):
        g = (graphs or {}).get(gname)
        if g is None:
            continue
        lag1 = {"breaks_last5": feats["breaks_last5"], "decayed": feats["decayed"]}
        if gname == "adj" and unit_rate is not None:
            lag1["rate"] = unit_rate
        for k, v in graph_lags(g, ids, lag1).items():
            cols[f"lag1_{k}_{gname}"] = v
        if gname != "adj":
            continue
        lag2 = {"breaks_last5": feats["breaks_last5"], "decayed": feats["decayed"]}
        for k, v in graph_lags(g, ids, lag2, order=2).items():
            cols[f"lag2_{k}_adj"] = v
        size = area[:, None] * np.ones((1, t)) if area is not None else None
        if size is None and exposure is not None:
            size = exposure
        if size is None and "length_m" in units:
            size = (units["length_m"].to_numpy(dtype=float) / 1000.0)[:, None] * np.ones((1, t))
        if size is not None:
            cols["local_density"] = local_density(g, ids, feats["breaks_last5"] / window, size)
    return cols


def _nbhd_rate_matrix(
    units: pd.DataFrame, nbhd_rate: pd.DataFrame, years: np.ndarray
) -> np.ndarray:
    """Each unit's neighbourhood break rate per year (units x years; NaN when unknown)."""
    wide = nbhd_rate.pivot(index="unit_id", columns="year", values="nbhd_rate_last5").reindex(
        columns=years
    )
    pos = wide.index.get_indexer(
        units["neighbourhood"].astype(object).where(units["neighbourhood"].notna(), "").to_numpy()
    )
    vals = wide.to_numpy(dtype=float)
    return np.where(pos[:, None] >= 0, vals[np.maximum(pos, 0)], np.nan)


def _chunks(
    unit_type: str,
    ids: np.ndarray,
    years: np.ndarray,
    mats: dict[str, np.ndarray],
    alive: np.ndarray | None,
    chunk_units: int,
    emit: np.ndarray | None = None,
) -> Iterator[pd.DataFrame]:
    """Long panel rows from the units x years matrices, ``chunk_units`` units at a time
    (only the units where ``emit`` is true, when given)."""
    n, t = len(ids), len(years)
    if emit is not None:
        shown = np.broadcast_to(np.asarray(emit, dtype=bool)[:, None], (n, t))
        alive = shown if alive is None else alive & shown
    columns = load_schema("features/panel").columns
    for a in range(0, n, chunk_units):
        b = min(n, a + chunk_units)
        keep = alive[a:b].ravel() if alive is not None else slice(None)
        data: dict[str, np.ndarray] = {
            "unit_type": np.full((b - a) * t, unit_type, dtype=object)[keep],
            "unit_id": np.repeat(ids[a:b], t)[keep],
            "year": np.tile(years, b - a).astype(np.int32)[keep],
        }
        for c in columns[3:]:
            m = mats.get(c)
            data[c] = (m[a:b].ravel() if m is not None else np.full((b - a) * t, np.nan))[keep]
        data["history_years"] = data["history_years"].astype(np.int32)
        yield conform(pd.DataFrame(data, copy=False), "features/panel")


def _per_size(
    counts_last5: np.ndarray, window: np.ndarray, size: np.ndarray | None
) -> np.ndarray | None:
    """Yearly breaks of the last 5 years per unit of ``size`` (NaN where the size is 0)."""
    if size is None:
        return None
    n, t = window.shape
    return np.divide(counts_last5 / window, size, out=np.full((n, t), np.nan), where=size > 0)


def panel_chunks(
    unit_type: str,
    units: pd.DataFrame,
    links: pd.DataFrame,
    breaks: pd.DataFrame,
    settings: PanelSettings,
    *,
    graphs: dict[str, Graph] | None = None,
    pipes: pd.DataFrame | None = None,
    pipe_units_of: pd.DataFrame | None = None,
    nbhd_rate: pd.DataFrame | None = None,
    chunk_units: int = 100_000,
    emit: np.ndarray | None = None,
) -> Iterator[pd.DataFrame]:
    """The panel rows of one unit type (units x study years; pipes only while in service),
    ``chunk_units`` units at a time, for streaming them into the store (bounded memory for
    city-scale pipe panels).

    Parameters
    ----------
    units
        The unit table (``unit_id`` sorted, ``area_km2`` for areal units, ``neighbourhood``,
        ``geometry`` WKB for the near-break count of linear units).
    links
        ``break_links`` rows of this unit type.
    breaks
        Curated breaks (``break_id``, ``year``, ``x``, ``y``).
    graphs
        ``{"adj": Graph, "dist": Graph}`` (libpysal, indexed by ``unit_id``) for spatial
        lags (missing ones give NaN).
    pipes, pipe_units_of
        Pipe units and the pipe -> unit apportionment, for exposure and age.
    nbhd_rate
        ``unit_id`` (neighbourhood), ``year``, ``nbhd_rate_last5`` to attach by neighbourhood.
    chunk_units
        Units per chunk.
    emit
        Boolean per unit: only these units' rows are returned; the others still feed the
        spatial features of their neighbours (the halo of a partition,
        :mod:`~twmb_geo.features.partitioned`).
    """
    ids = units["unit_id"].astype(str).to_numpy(dtype=object)
    years = settings.years
    n, t = len(ids), len(years)
    by_year = pd.Series(breaks["year"].to_numpy(), index=breaks["break_id"].to_numpy())
    counts, prior = _counts(links, by_year, ids, years)
    feats = history_features(counts, prior_total=prior, tau=settings.decay_tau)
    exposure, age, alive = exposure_matrices(unit_type, ids, years, pipes, pipe_units_of)
    history_years = np.broadcast_to(np.arange(1, t + 1, dtype=float), (n, t))
    window = np.minimum(history_years, 5.0)
    rate = _per_size(feats["breaks_last5"], window, exposure)
    area = units["area_km2"].to_numpy(dtype=float) if not UNIT_TYPES[unit_type].linear else None
    density = _per_size(feats["breaks_last5"], window, area[:, None] if area is not None else None)
    unit_rate = rate if rate is not None else density
    cols = _spatial_columns(unit_type, units, ids, graphs, feats, window, unit_rate, area, exposure)
    if UNIT_TYPES[unit_type].linear and "geometry" in units:
        geoms = shapely.from_wkb(units["geometry"].to_numpy(dtype=object))
        near = near_counts(
            geoms,
            breaks["x"].to_numpy(float),
            breaks["y"].to_numpy(float),
            breaks["year"].to_numpy(int),
            years,
            settings.near_radius_m,
        )
        cols["near_breaks_last5"] = rolling_sum(near, 5)
    target = np.full((n, t), np.nan)
    target[:, :-1] = counts[:, 1:]
    if alive is not None:
        target[:, :-1] = np.where(alive[:, 1:], target[:, :-1], np.nan)
    nan = np.full((n, t), np.nan)
    mats: dict[str, np.ndarray] = {
        "history_years": history_years,
        "exposure_km": exposure if exposure is not None else nan,
        "area_km2": np.broadcast_to(area[:, None], (n, t)) if area is not None else nan,
        "age_mean": age if age is not None else nan,
        **feats,
        "rate_last5_per_km": rate if rate is not None else nan,
        "density_last5_per_km2": density if density is not None else nan,
        **cols,
        "target_count": target,
        "target_any": np.where(np.isnan(target), np.nan, (target > 0).astype(float)),
    }
    if nbhd_rate is not None and "neighbourhood" in units:
        mats["nbhd_rate_last5"] = _nbhd_rate_matrix(units, nbhd_rate, years)
    elif unit_type == "neighbourhood":
        mats["nbhd_rate_last5"] = unit_rate if unit_rate is not None else nan
    yield from _chunks(unit_type, ids, years, mats, alive, chunk_units, emit)


def _concatenated(chunks: Callable[P, Iterator[pd.DataFrame]]) -> Callable[P, pd.DataFrame]:
    def whole(*args: P.args, **kwargs: P.kwargs) -> pd.DataFrame:
        parts = list(chunks(*args, **kwargs))
        if not parts:
            columns = load_schema("features/panel").columns
            return conform(pd.DataFrame({c: [] for c in columns}), "features/panel")
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

    whole.__name__ = whole.__qualname__ = "build_panel"
    whole.__doc__ = (
        "The panel of one unit type as one frame: :func:`panel_chunks` (same parameters), "
        "concatenated."
    )
    return whole


build_panel = _concatenated(panel_chunks)
