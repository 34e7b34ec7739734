"""Break matching partition by partition (in this process or on a Dask cluster).

:func:`link_breaks_to_pipes_partitioned` gives exactly the links of
:func:`~twmb_geo.spatial.snapping.link_breaks_to_pipes` on the whole city while no task
holds more than one partition: the breaks whose home is the partition's H3 cell, the pipes
within the matching tolerance of the cell (its halo, :mod:`~twmb_geo.spatial.partition`)
and the pipes those breaks name by asset id. Every pipe a break could match is in its
partition, the pipes keep their city order (so "the first of duplicated ids" is the same
pipe), and the reasons that depend on the whole inventory ("pipes_without_geometry") are
decided on the whole inventory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely

from ..core.cluster import map_partitions
from .partition import halo_members, home_members, partition_points
from .snapping import id_positions, link_breaks_to_pipes

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["PartitionReport", "link_breaks_to_pipes_partitioned"]

#: home breaks per partition when the resolution is chosen from the data
DEFAULT_TARGET_ROWS = 50_000


class PartitionReport(dict[str, Any]):
    """What the partitioned run did: ``resolution``, ``partitions``, ``largest`` (breaks),
    ``pipes_in_largest_task`` and ``halo_pipes`` (pipe rows sent twice or more, in all)."""


def _task(
    breaks: pd.DataFrame,
    pipes: pd.DataFrame,
    tolerance_m: float,
    tie_m: float,
    any_located: bool,
) -> pd.DataFrame:
    return link_breaks_to_pipes(
        breaks.reset_index(drop=True),
        pipes.reset_index(drop=True),
        tolerance_m=tolerance_m,
        tie_m=tie_m,
        any_located=any_located,
    )


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
    x = breaks["x"].to_numpy(dtype=float)
    y = breaks["y"].to_numpy(dtype=float)
    res, homes = partition_points(x, y, target_rows=target_rows, resolution=resolution)
    members = home_members(homes)
    geoms = pipes["geometry"].to_numpy(dtype=object)
    any_located = bool((~(shapely.is_missing(geoms) | shapely.is_empty(geoms))).any())
    cells = np.array(sorted(members), dtype=np.uint64)
    halos = halo_members(cells, geoms, tolerance_m, res)
    named = np.full(n, -1, dtype=np.int64)
    if "asset_id" in breaks:
        key = pipes["asset_id"] if "asset_id" in pipes else pipes["pipe_id"]
        named = id_positions(breaks["asset_id"], key.to_numpy(dtype=object))
    groups: list[np.ndarray] = [members[int(c)] for c in cells]
    pipe_sets = [halos[int(c)] for c in cells]
    unhomed = np.flatnonzero(homes == 0)
    if unhomed.size:  # no coordinates: only id links can match them
        groups.append(unhomed)
        pipe_sets.append(np.zeros(0, dtype=np.int64))
    items = []
    sent: list[np.ndarray] = []
    for bpos, ppos in zip(groups, pipe_sets, strict=True):
        ids = named[bpos]
        ppos = np.union1d(ppos, ids[ids >= 0])
        sent.append(ppos)
        items.append((breaks.iloc[bpos], pipes.iloc[ppos], tolerance_m, tie_m, any_located))
    parts = map_partitions(_task, items, client)
    if report is not None:
        every = np.concatenate(sent)
        report.update(
            resolution=int(res),
            partitions=len(groups),
            largest=int(max(len(g) for g in groups)),
            pipes_in_largest_task=int(max(len(p) for p in sent)),
            halo_pipes=int(len(every) - len(np.unique(every))),
        )
    order = np.concatenate(groups)
    out = pd.concat(parts, ignore_index=True)
    out.index = order
    return out.sort_index().reset_index(drop=True)
