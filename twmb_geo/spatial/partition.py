"""Spatial partitions with halos: a city split into H3 blocks for work done block by block.

Each located record has one *home* partition: the H3 cell, at the partition resolution, of
its point (a break's location). A partition's *halo* is every record of a second layer (the
pipes a break may match) whose geometry comes within ``halo_m`` of the partition's cell
polygon in the analysis CRS, wherever that record lies. Work that looks no further than
``halo_m`` from a home record (a break matched to the pipes within the tolerance) sees, in
its partition, every record the whole city would show it; the per-partition results of the
home records, put together, are the whole-city result.

The cell polygons have straight edges between projected H3 vertices while H3 assigns points
by its own (gnomonic) edges, so a point can lie a little outside its home polygon; the halo
is widened by :data:`EDGE_SLACK` of the cell edge (a record too many in a halo changes no
result, one too few would).

The resolution is chosen from the data (:func:`choose_resolution`): the coarsest at which
the busiest partition holds at most ``target_rows`` home records.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np
import shapely

from ..core.crs import WGS84, analysis_crs, transform_xy
from ..core.h3cells import cell_polygons, check_resolution, edge_length_m, points_to_cells
from ..errors import ConfigError

__all__ = [
    "EDGE_SLACK",
    "choose_resolution",
    "halo_members",
    "home_cells",
    "home_members",
    "partition_points",
]

#: halo widening, as a share of the cell edge (see the module docstring)
EDGE_SLACK = 0.05
#: the last partitionings made, by their points (a digest of their bytes), target, resolution
#: and CRS: the feature stage partitions the same units for their links, their graphs and
#: their panel, and each partitioning costs an H3 cell per point at every resolution tried
_MEMO: OrderedDict[tuple[Any, ...], tuple[int, np.ndarray]] = OrderedDict()
_MEMO_SIZE = 4
#: resolutions :func:`choose_resolution` considers, coarsest first (res 0 cells are
#: continents; res 12 edges are ~10 m)
_RESOLUTIONS = range(0, 13)


def home_cells(x: np.ndarray, y: np.ndarray, resolution: int) -> np.ndarray:
    """The home partition of analysis-CRS points: their H3 cell at ``resolution`` (uint64;
    0 for a point without finite coordinates, which belongs to no partition)."""
    return partition_points(x, y, resolution=resolution)[1]


def choose_resolution(x: np.ndarray, y: np.ndarray, target_rows: int) -> int:
    """The coarsest H3 resolution at which no partition holds more than ``target_rows``
    of the points (the finest considered, 12, when even that one is too busy)."""
    return partition_points(x, y, target_rows=target_rows)[0]


def partition_points(
    x: np.ndarray,
    y: np.ndarray,
    *,
    target_rows: int | None = None,
    resolution: int | None = None,
) -> tuple[int, np.ndarray]:
    """The partition resolution (``resolution``, else chosen from ``target_rows`` as in
    :func:`choose_resolution`) and the home cell of each point, projected once.

    The last few results are remembered (by a digest of the points' bytes, the target, the
    resolution and the analysis CRS) and handed out as copies: the feature stage partitions
    the same units for their links, their graphs and their panel."""
    limit = 0 if target_rows is None else int(target_rows)
    if resolution is None and limit < 1:
        raise ConfigError(f"partition target_rows must be >= 1, got {target_rows!r}")
    x = np.ascontiguousarray(x, dtype=float)
    y = np.ascontiguousarray(y, dtype=float)
    digest = hashlib.blake2b(x.view(np.uint8).data, digest_size=16)
    digest.update(y.view(np.uint8).data)
    key = (digest.digest(), x.shape, y.shape, limit, resolution, analysis_crs())
    if key in _MEMO:
        _MEMO.move_to_end(key)
        res, homes = _MEMO[key]
        return res, homes.copy()
    res, homes = _partition_points(x, y, limit, resolution)
    _MEMO[key] = (res, homes.copy())
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return res, homes


def _partition_points(
    x: np.ndarray, y: np.ndarray, limit: int, resolution: int | None
) -> tuple[int, np.ndarray]:
    """:func:`partition_points`, made (not remembered)."""
    lon, lat, _ = transform_xy(x, y, analysis_crs(), WGS84)
    if resolution is not None:
        res = check_resolution(resolution, "partition resolution")
        return res, points_to_cells(lon, lat, res)
    for res in _RESOLUTIONS:
        cells = points_to_cells(lon, lat, res)
        found = cells[cells != 0]
        if not found.size or np.unique(found, return_counts=True)[1].max() <= limit:
            return res, cells
    return res, cells


def home_members(homes: np.ndarray) -> dict[int, np.ndarray]:
    """Partition cell -> positions of its home records (ascending), cells ascending."""
    homes = np.asarray(homes, dtype=np.uint64)
    order = np.argsort(homes, kind="stable")
    sorted_homes = homes[order]
    cells, starts = np.unique(sorted_homes, return_index=True)
    ends = np.r_[starts[1:], len(sorted_homes)]
    return {
        int(c): np.sort(order[a:b]) for c, a, b in zip(cells, starts, ends, strict=True) if c != 0
    }


def halo_members(
    cells: np.ndarray, geoms: np.ndarray, halo_m: float, resolution: int
) -> dict[int, np.ndarray]:
    """Partition cell -> positions (ascending) of the geometries within the partition's halo.

    Parameters
    ----------
    cells
        The partitions (H3 cells at ``resolution``).
    geoms
        The records' geometries in the analysis CRS (None or empty: in no halo).
    halo_m
        How far from a partition's cell a record still belongs to it (m); widened by
        :data:`EDGE_SLACK` of the cell edge.
    resolution
        The partitions' H3 resolution.
    """
    if not (np.isfinite(halo_m) and halo_m >= 0):
        raise ConfigError(f"partition halo must be a distance >= 0 m, got {halo_m!r}")
    cells = np.asarray(cells, dtype=np.uint64)
    geoms = np.asarray(geoms, dtype=object)
    out = {int(c): np.zeros(0, dtype=np.int64) for c in cells}
    located = np.flatnonzero(~(shapely.is_missing(geoms) | shapely.is_empty(geoms)))
    if not cells.size or not located.size:
        return out
    reach = halo_m + EDGE_SLACK * edge_length_m(resolution)
    tree = shapely.STRtree(geoms[located])
    ci, gj = tree.query(cell_polygons(cells, analysis_crs()), predicate="dwithin", distance=reach)
    order = np.lexsort((located[gj], ci))
    ci, pos = ci[order], located[gj][order]
    bounds = np.searchsorted(ci, np.arange(len(cells) + 1))
    for k, c in enumerate(cells):
        out[int(c)] = pos[bounds[k] : bounds[k + 1]]
    return out
