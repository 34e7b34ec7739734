"""The pipes' line network built partition by partition (in this process or on a Dask
cluster), equal to :func:`~twmb_geo.spatial.graphs.line_network` on the whole city.

Pipes are partitioned as the panel's units are: by the H3 cell, at the resolution where no
partition holds more than ``target_rows`` pipes, of their point. A task gets its home pipes
and every pipe whose bounding box meets the home pipes' box widened by the end tolerance
(plus 1 m): two pipes are linked only when an end of one comes within the tolerance of the
other, so every pipe linked to a home pipe is there. It returns its home pipes' links as
positions into the pipes sorted by id, and the graph is assembled here as the whole-city
builder assembles it (the same ids, the same weights to the bit).

This process never decodes a pipe's geometry: the bounding boxes are made by tasks of a
block of pipes, and the pipes' boxes a block at a time when they are matched to the
partitions. (The k-nearest and distance-band graphs stay whole: a KD-tree over the units'
points is cheap here, and built per partition it cost this process as much as it saved;
``docs/scale.md``, session 27.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from libpysal.graph import Graph

from ..core.cluster import map_partitions
from ..errors import ConfigError, InputDataError
from . import graphs as gb
from .graphs import _build, _check_tolerance, _decoded, _sort_ids
from .partition import home_members, partition_points

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["line_network_partitioned"]

#: the halo reaches this much further than the end tolerance (m)
_REACH_M = 1.0
#: lines decoded at a time for their bounding boxes and types, and boxes made at a time
_BLOCK = 100_000


def _lines_task(
    cand: np.ndarray, wkb: np.ndarray, home: np.ndarray, tol_m: float, t_junctions: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The links of the pipes at ``home`` (positions in ``cand``) among the pipes of
    ``cand`` (WKB), as positions of the city."""
    g = shapely.from_wkb(wkb)
    rows, cols = gb.line_network_pairs(g, tol_m, t_junctions=t_junctions)
    is_home = np.zeros(len(cand), dtype=bool)
    is_home[home] = True
    pick = is_home[rows]
    return cand[rows[pick]], cand[cols[pick]]


def _bounds_task(values: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The bounding box of each line of a block (WKB or shapely; NaN for none) and the
    units whose geometry is not a line."""
    g = _decoded(values)
    problems = gb.geometry_type_problems(g, ids, (1, 2, 5))
    return (np.zeros((0, 4)) if problems else shapely.bounds(g)), problems


def _line_bounds(values: np.ndarray, ids: np.ndarray, client: Client | None) -> np.ndarray:
    """The bounding box of each line, decoded in tasks of a block of lines; every
    geometry that is not a line is listed in one error, in the order of the units."""
    blocks = [slice(lo, lo + _BLOCK) for lo in range(0, len(values), _BLOCK)]
    done = map_partitions(_bounds_task, ((values[b], ids[b]) for b in blocks), client)
    problems = [p for _, found in done for p in found]
    if problems:
        raise gb.geometry_type_error(problems, "lines")
    return np.concatenate([bounds for bounds, _ in done]) if done else np.zeros((0, 4))


def _pipes_near(bounds: np.ndarray, homes: list[np.ndarray], reach: float) -> list[np.ndarray]:
    """Per partition, the pipes whose bounding box meets the box of its home pipes widened
    by ``reach`` (every pipe within ``reach`` of a home pipe is one of them). The pipes'
    boxes are made a block at a time: this process never holds one per pipe."""
    boxes = np.full(len(homes), None, dtype=object)
    for j, home in enumerate(homes):
        b = bounds[home]
        b = b[~np.isnan(b[:, 0])]
        if len(b):
            (x0, y0), (x1, y1) = b[:, :2].min(axis=0) - reach, b[:, 2:].max(axis=0) + reach
            boxes[j] = shapely.box(x0, y0, x1, y1)
    tree = shapely.STRtree(boxes)
    located = np.flatnonzero(~np.isnan(bounds[:, 0]))
    pipe: list[np.ndarray] = []
    part: list[np.ndarray] = []
    for lo in range(0, located.size, _BLOCK):
        block = located[lo : lo + _BLOCK]
        i, k = tree.query(shapely.box(*bounds[block].T), predicate="intersects")
        pipe.append(block[i])
        part.append(k)
    p, k = (
        np.concatenate([np.zeros(0, np.int64), *pipe]),
        np.concatenate([np.zeros(0, np.int64), *part]),
    )
    order = np.lexsort((p, k))
    p, k = p[order], k[order]
    cuts = np.searchsorted(k, np.arange(len(homes) + 1))
    return [p[cuts[j] : cuts[j + 1]] for j in range(len(homes))]


def line_network_partitioned(
    ids: Any,
    geoms: Any,
    x: Any,
    y: Any,
    tol_m: float = 1.0,
    *,
    t_junctions: bool = True,
    target_rows: int = 50_000,
    resolution: int | None = None,
    client: Client | None = None,
    report: dict[str, Any] | None = None,
) -> Graph:
    """:func:`~twmb_geo.spatial.graphs.line_network`, one partition of pipes per task.

    Parameters
    ----------
    ids, geoms, tol_m, t_junctions
        As for :func:`~twmb_geo.spatial.graphs.line_network` (``geoms`` shapely or WKB).
    x, y
        A point of each pipe (analysis CRS) that gives it its home partition; a pipe
        without one is a home pipe of one more task.
    target_rows, resolution
        Most pipes per partition when the H3 resolution of the partitions is chosen from
        the data, or that resolution.
    client
        A Dask client to run the tasks on (default: in this process).
    report
        Filled with ``resolution``, ``partitions``, ``largest`` (home pipes),
        ``largest_task`` (pipes a task was sent) and ``halo_units`` (pipes sent beyond the
        home pipes, in all).

    Returns
    -------
    libpysal.graph.Graph
        Equal to the whole-city graph.
    """
    _check_tolerance(tol_m)
    if isinstance(target_rows, bool) or not isinstance(target_rows, int) or target_rows < 1:
        raise ConfigError(f"partition target_rows must be an integer >= 1; got {target_rows!r}")
    sid, order = _sort_ids(ids)
    g = np.asarray(geoms, dtype=object).ravel()
    xa, ya = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if not g.size == xa.size == ya.size == order.size:
        raise InputDataError(
            f"need one geometry and point per pipe ({order.size}); got {g.size} geometries, "
            f"{xa.size} x and {ya.size} y"
        )
    g = g[order]
    bounds = _line_bounds(g, sid, client)
    # the tasks get WKB (shapely objects pickle one by one, ten times as slow)
    wkb = np.array([v if isinstance(v, bytes | bytearray) else None for v in g], dtype=object)
    shaped = np.flatnonzero(shapely.is_geometry(g))
    if shaped.size:
        wkb[shaped] = shapely.to_wkb(g[shaped])
    del g
    # partitioned in the caller's order, as the panel partitions the same units (made once)
    point = np.isfinite(xa) & np.isfinite(ya)
    res, homes = partition_points(
        np.where(point, xa, np.nan),
        np.where(point, ya, np.nan),
        target_rows=target_rows,
        resolution=resolution,
    )
    homes = homes[order]
    members = home_members(homes)
    groups = [members[c] for c in sorted(members)]
    unhomed = np.flatnonzero(homes == 0)
    if unhomed.size:  # pipes without a point: one more partition
        groups.append(unhomed)
    near = _pipes_near(bounds, groups, float(tol_m) + _REACH_M)
    sent: list[int] = []

    def items() -> Iterator[tuple[Any, ...]]:
        for home, found in zip(groups, near, strict=True):
            cand = np.union1d(found, home)
            sent.append(cand.size)
            yield cand, wkb[cand], np.searchsorted(cand, home), float(tol_m), bool(t_junctions)

    done = map_partitions(_lines_task, items(), client)
    if report is not None:
        report.update(
            resolution=int(res),
            partitions=len(groups),
            largest=int(max((g.size for g in groups), default=0)),
            largest_task=int(max(sent, default=0)),
            halo_units=int(sum(sent) - len(sid)),
        )
    rows = [np.zeros(0, np.int64), *(r for r, _ in done)]
    cols = [np.zeros(0, np.int64), *(c for _, c in done)]
    return _build("line_network", sid, np.concatenate(rows), np.concatenate(cols))
