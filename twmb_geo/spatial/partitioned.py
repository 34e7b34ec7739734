"""The spatial organisation partition by partition (in this process or on a Dask cluster),
with exactly the whole city's results: break links, the pipe-to-street apportionment, and
row-by-row work in blocks.

:func:`link_breaks_to_pipes_partitioned` gives the links of
:func:`~twmb_geo.spatial.snapping.link_breaks_to_pipes` on the whole city while no task
holds more than one partition: the breaks whose home is the partition's H3 cell, the pipes
within the matching tolerance of the cell (its halo, :mod:`~twmb_geo.spatial.partition`)
and the pipes those breaks name by asset id. Every pipe a break could match is in its
partition, the pipes keep their city order (so "the first of duplicated ids" is the same
pipe), and the reasons that depend on the whole inventory ("pipes_without_geometry") are
decided on the whole inventory. :func:`link_breaks_to_streets_partitioned` does the same
for street segments (the halo: the streets within the street tolerance, and those the
breaks name by segment id).

:func:`pipes_to_streets_partitioned` gives the rows of
:func:`~twmb_geo.spatial.snapping.pipes_to_streets`: pipes are partitioned by the H3 cell
of their representative point, and a partition's task gets every street whose bounding box
comes within the corridor half-width of the bounding box of its pipes (so of every pipe,
however long), the street ids ranked in the same order as in the whole layer.

:func:`map_blocks` runs work done row by row (the pipe and street unit tables) on blocks of
rows, no halo needed; :func:`as_one_frame` puts the tasks' frames together typed as the
whole-city function types its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import shapely

from ..core.cluster import map_partitions
from .partition import halo_members, home_members, partition_points
from .snapping import (
    id_positions,
    link_breaks_to_pipes,
    link_breaks_to_streets,
    pipes_to_streets,
)

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "PartitionReport",
    "as_one_frame",
    "link_breaks_to_pipes_partitioned",
    "link_breaks_to_streets_partitioned",
    "map_blocks",
    "pipes_to_streets_partitioned",
]

R = TypeVar("R")

#: home breaks per partition when the resolution is chosen from the data
DEFAULT_TARGET_ROWS = 50_000


class PartitionReport(dict[str, Any]):
    """What the partitioned run did: ``resolution``, ``partitions``, ``largest`` (breaks),
    ``pipes_in_largest_task`` and ``halo_pipes`` (pipe rows sent twice or more, in all) of
    the break matching; the same keys (``rows_in_largest_task``, ``halo_rows``) under
    ``street_links`` and ``pipe_streets`` for the other partitioned steps."""


def _wired(layer: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The rows of a layer of shapely geometries as a task gets them: geometries as WKB
    (encoded at once; pickled one by one, shapely objects cost ten times as much)."""
    part = layer.iloc[rows].reset_index(drop=True)
    return part.assign(geometry=shapely.to_wkb(part["geometry"].to_numpy(dtype=object)))


def _unwired(layer: pd.DataFrame) -> pd.DataFrame:
    return layer.assign(geometry=shapely.from_wkb(layer["geometry"].to_numpy(dtype=object)))


def _task(
    breaks: pd.DataFrame,
    pipes: pd.DataFrame,
    tolerance_m: float,
    tie_m: float,
    any_located: bool,
) -> pd.DataFrame:
    return link_breaks_to_pipes(
        breaks.reset_index(drop=True),
        _unwired(pipes),
        tolerance_m=tolerance_m,
        tie_m=tie_m,
        any_located=any_located,
    )


def _break_groups(
    breaks: pd.DataFrame,
    geoms: np.ndarray,
    named: np.ndarray,
    halo_m: float,
    resolution: int | None,
    target_rows: int,
) -> tuple[int, list[np.ndarray], list[np.ndarray]]:
    """The partition resolution, the breaks of each partition (positions, by home cell,
    then the breaks without coordinates) and the layer rows each one's task needs: those
    within ``halo_m`` of its cell and those its breaks name (``named``: a layer position
    per break, -1 for none)."""
    x = breaks["x"].to_numpy(dtype=float)
    y = breaks["y"].to_numpy(dtype=float)
    res, homes = partition_points(x, y, target_rows=target_rows, resolution=resolution)
    members = home_members(homes)
    cells = np.array(sorted(members), dtype=np.uint64)
    halos = halo_members(cells, geoms, halo_m, res)
    groups: list[np.ndarray] = [members[int(c)] for c in cells]
    rows = [halos[int(c)] for c in cells]
    unhomed = np.flatnonzero(homes == 0)
    if unhomed.size:  # no coordinates: only id links can match them
        groups.append(unhomed)
        rows.append(np.zeros(0, dtype=np.int64))
    sent = []
    for bpos, lpos in zip(groups, rows, strict=True):
        ids = named[bpos]
        sent.append(np.union1d(lpos, ids[ids >= 0]))
    return res, groups, sent


def _summary(res: int, groups: list[np.ndarray], sent: list[np.ndarray]) -> dict[str, int]:
    every = np.concatenate(sent) if sent else np.zeros(0, dtype=np.int64)
    return {
        "resolution": int(res),
        "partitions": len(groups),
        "largest": int(max((len(g) for g in groups), default=0)),
        "rows_in_largest_task": int(max((len(p) for p in sent), default=0)),
        "halo_rows": int(len(every) - len(np.unique(every))),
    }


def _in_input_order(parts: list[pd.DataFrame], groups: list[np.ndarray]) -> pd.DataFrame:
    """The tasks' rows (one per home record, in each group's order) in the input's order."""
    out = pd.concat(parts, ignore_index=True)
    out.index = np.concatenate(groups)
    return out.sort_index().reset_index(drop=True)


def _rebuilt(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each column made from one whole array, as a whole-city function
    makes it (pandas infers a text column's dtype from its values, which differ from task
    to task: a block of missing names is ``object``, one with names ``str``)."""
    return pd.DataFrame(
        {c: frame[c].to_numpy(dtype=object if frame[c].dtype.kind == "O" else None) for c in frame}
    )


def as_one_frame(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The tasks' frames as one, typed as the whole-city function types its frame (one
    part: that part)."""
    if len(parts) == 1:
        return parts[0]
    return _rebuilt(pd.concat(parts, ignore_index=True))


def map_blocks(
    fn: Callable[..., R],
    frame: pd.DataFrame,
    args: tuple[Any, ...] = (),
    *,
    rows: int = DEFAULT_TARGET_ROWS,
    client: Client | None = None,
) -> list[R]:
    """``fn(block, *args)`` for consecutive blocks of ``rows`` rows of ``frame`` on the
    client's cluster, results in order; without a client, ``fn(frame, *args)`` once (work
    done row by row needs no halo: a block is any slice)."""
    if client is None or len(frame) <= rows:
        return [fn(frame, *args)]
    items = ((frame.iloc[lo : lo + rows], *args) for lo in range(0, len(frame), rows))
    return map_partitions(fn, items, client)


def link_breaks_to_pipes_partitioned(
    breaks: pd.DataFrame,
    pipes: pd.DataFrame,
    *,
    tolerance_m: float = 25.0,
    tie_m: float = 1.0,
    resolution: int | None = None,
    target_rows: int = DEFAULT_TARGET_ROWS,
    client: Client | None = None,
    report: PartitionReport | None = None,
) -> pd.DataFrame:
    """:func:`~twmb_geo.spatial.snapping.link_breaks_to_pipes`, one partition per task.

    Parameters
    ----------
    breaks, pipes, tolerance_m, tie_m
        As for :func:`~twmb_geo.spatial.snapping.link_breaks_to_pipes`.
    resolution
        H3 resolution of the partitions (default: chosen so that no partition holds more
        than ``target_rows`` breaks).
    target_rows
        Most breaks per partition when the resolution is chosen.
    client
        A Dask client to run the partitions on (default: in this process).
    report
        Filled with what the partitioning did, when given.

    Returns
    -------
    pandas.DataFrame
        The links, one row per break in the order of ``breaks``: equal to the whole-city
        function's.
    """
    n = len(breaks)
    if n == 0:
        return link_breaks_to_pipes(breaks, pipes, tolerance_m=tolerance_m, tie_m=tie_m)
    geoms = pipes["geometry"].to_numpy(dtype=object)
    any_located = bool((~(shapely.is_missing(geoms) | shapely.is_empty(geoms))).any())
    named = np.full(n, -1, dtype=np.int64)
    if "asset_id" in breaks:
        key = pipes["asset_id"] if "asset_id" in pipes else pipes["pipe_id"]
        named = id_positions(breaks["asset_id"], key.to_numpy(dtype=object))
    res, groups, sent = _break_groups(breaks, geoms, named, tolerance_m, resolution, target_rows)
    items = (
        (breaks.iloc[bpos], _wired(pipes, ppos), tolerance_m, tie_m, any_located)
        for bpos, ppos in zip(groups, sent, strict=True)
    )
    parts = map_partitions(_task, items, client)
    if report is not None:
        s = _summary(res, groups, sent)
        report.update(
            resolution=s["resolution"],
            partitions=s["partitions"],
            largest=s["largest"],
            pipes_in_largest_task=s["rows_in_largest_task"],
            halo_pipes=s["halo_rows"],
        )
    return _in_input_order(parts, groups)


def _streets_task(
    breaks: pd.DataFrame, streets: pd.DataFrame, tolerance_m: float, any_streets: bool
) -> pd.DataFrame:
    return link_breaks_to_streets(
        breaks.reset_index(drop=True),
        _unwired(streets),
        tolerance_m=tolerance_m,
        any_streets=any_streets,
    )


def link_breaks_to_streets_partitioned(
    breaks: pd.DataFrame,
    streets: pd.DataFrame,
    *,
    tolerance_m: float = 50.0,
    resolution: int | None = None,
    target_rows: int = DEFAULT_TARGET_ROWS,
    client: Client | None = None,
    report: PartitionReport | None = None,
) -> pd.DataFrame:
    """:func:`~twmb_geo.spatial.snapping.link_breaks_to_streets`, one partition per task.

    A partition's task gets its home breaks, the street segments (``is_street``) within
    ``tolerance_m`` of its cell and the segments its breaks name by ``street_segment_id``
    (any class); whether the whole layer has any street decides the ``no_streets`` reason.
    Parameters as for :func:`link_breaks_to_pipes_partitioned`; the links equal the
    whole-city function's, one row per break in the order of ``breaks``.
    """
    n = len(breaks)
    if n == 0 or not len(streets):
        return link_breaks_to_streets(breaks, streets, tolerance_m=tolerance_m)
    geoms = streets["geometry"].to_numpy(dtype=object)
    if "is_street" in streets:  # only streets are nearest candidates
        geoms = np.where(streets["is_street"].astype(bool).to_numpy(), geoms, None)
    any_streets = bool((~(shapely.is_missing(geoms) | shapely.is_empty(geoms))).any())
    named = np.full(n, -1, dtype=np.int64)
    if "street_segment_id" in breaks:
        named = id_positions(
            breaks["street_segment_id"], streets["segment_id"].to_numpy(dtype=object)
        )
    res, groups, sent = _break_groups(breaks, geoms, named, tolerance_m, resolution, target_rows)
    items = (
        (breaks.iloc[bpos], _wired(streets, spos), tolerance_m, any_streets)
        for bpos, spos in zip(groups, sent, strict=True)
    )
    parts = map_partitions(_streets_task, items, client)
    if report is not None:
        report["street_links"] = _summary(res, groups, sent)
    return _in_input_order(parts, groups)


#: pipes whose geometries are decoded at a time for their bounding boxes
_BOUNDS_BLOCK = 100_000


def _bounds(values: np.ndarray) -> np.ndarray:
    """The bounding box of each geometry (shapely or WKB; NaN for a missing one), decoded
    a block at a time so that the whole layer's geometries are never held at once."""
    out = np.full((len(values), 4), np.nan)
    for lo in range(0, len(values), _BOUNDS_BLOCK):
        block = values[lo : lo + _BOUNDS_BLOCK]
        wkb = np.array([isinstance(v, bytes | bytearray | memoryview) for v in block])
        geoms = np.asarray(block, dtype=object).copy()
        if wkb.any():
            geoms[wkb] = shapely.from_wkb(geoms[wkb])
        out[lo : lo + len(block)] = shapely.bounds(geoms)
    return out


def _pipe_streets_task(
    pipes: pd.DataFrame, streets: pd.DataFrame, half_width_m: float
) -> pd.DataFrame:
    return pipes_to_streets(
        pipes.reset_index(drop=True), streets.reset_index(drop=True), half_width_m=half_width_m
    )


def pipes_to_streets_partitioned(
    pipes: pd.DataFrame,
    streets: pd.DataFrame,
    *,
    half_width_m: float = 15.0,
    resolution: int | None = None,
    target_rows: int = DEFAULT_TARGET_ROWS,
    client: Client | None = None,
    report: PartitionReport | None = None,
) -> pd.DataFrame:
    """:func:`~twmb_geo.spatial.snapping.pipes_to_streets`, one partition of pipes per task.

    Parameters
    ----------
    pipes
        ``pipe_id``, ``geometry`` (shapely or WKB) and the representative point ``x``,
        ``y`` (analysis CRS) that gives a pipe its home partition; pipes without a point
        form one more task (without geometry they run under no street).
    streets, half_width_m
        As for :func:`~twmb_geo.spatial.snapping.pipes_to_streets`.
    resolution, target_rows, client, report
        As for :func:`link_breaks_to_pipes_partitioned`, counted in pipes (the report under
        ``pipe_streets``).

    Returns
    -------
    pandas.DataFrame
        One row per pipe in the order of ``pipes``: equal to the whole-city function's.
    """
    s = streets[streets["is_street"].astype(bool)] if "is_street" in streets else streets
    if not len(pipes) or not len(s):
        return pipes_to_streets(pipes, streets, half_width_m=half_width_m)
    s = s.reset_index(drop=True)
    x = pipes["x"].to_numpy(dtype=float)
    y = pipes["y"].to_numpy(dtype=float)
    res, homes = partition_points(x, y, target_rows=target_rows, resolution=resolution)
    members = home_members(homes)
    groups = [members[c] for c in sorted(members)]
    unhomed = np.flatnonzero(homes == 0)
    if unhomed.size:
        groups.append(unhomed)
    pb = _bounds(pipes["geometry"].to_numpy(dtype=object))
    sb = _bounds(s["geometry"].to_numpy(dtype=object))
    has = ~np.isnan(sb[:, 0])
    tree = shapely.STRtree(shapely.box(*sb[has].T))
    spos = np.flatnonzero(has)
    reach = half_width_m + 1.0  # a street too many changes nothing, one too few would
    sent = []
    for g in groups:
        b = pb[g]
        b = b[~np.isnan(b[:, 0])]
        if not len(b):  # no pipe geometry: no street to run under
            sent.append(np.zeros(0, dtype=np.int64))
            continue
        box = shapely.box(
            b[:, 0].min() - reach,
            b[:, 1].min() - reach,
            b[:, 2].max() + reach,
            b[:, 3].max() + reach,
        )
        sent.append(np.sort(spos[tree.query(box, predicate="intersects")]))
    del pb, sb, tree
    cols = [c for c in ("pipe_id", "geometry") if c in pipes]
    items = (
        (pipes.iloc[g][cols], s.iloc[p], half_width_m) for g, p in zip(groups, sent, strict=True)
    )
    parts = map_partitions(_pipe_streets_task, items, client)
    if report is not None:
        report["pipe_streets"] = _summary(res, groups, sent)
    return _rebuilt(_in_input_order(parts, groups))
