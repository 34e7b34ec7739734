"""The lon/lat extent of a source, from which a project's analysis CRS can be chosen.

Read before any source is transformed: the analysis CRS must be known first. Geometry
coordinates are taken in the file's CRS (or the profile's), coordinate columns in the
first coordinate pair of the profile that has values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from ..core.crs import WGS84, crs_label, lonlat_bounds, merge_bounds
from ..io.profiles import Profile
from ..io.readers import RawChunk, iter_raw

__all__ = ["LOCATED_KINDS", "SourceExtent", "source_extent"]

#: source kinds whose records carry a location
LOCATED_KINDS = ("neighbourhoods", "pipes", "streets", "breaks")


def _chunk_bounds(
    chunk: RawChunk, profile: Profile
) -> tuple[tuple[float, float, float, float], str] | None:
    if chunk.geometry is not None and (
        profile.kind != "breaks" or any(p.geometry for p in profile.coordinates)
    ):
        xy = shapely.get_coordinates(chunk.geometry)
        crs = crs_label(chunk.crs) if chunk.crs is not None else profile.crs or WGS84
        box = lonlat_bounds(xy[:, 0], xy[:, 1], crs) if len(xy) else None
        if box is not None:
            return box, crs
    for pair in profile.coordinates:
        if pair.geometry or not pair.x or not pair.y or pair.crs is None:
            continue
        if pair.x not in chunk.frame or pair.y not in chunk.frame:
            continue
        x = pd.to_numeric(chunk.frame[pair.x], errors="coerce").to_numpy(dtype=float)
        y = pd.to_numeric(chunk.frame[pair.y], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(x) & np.isfinite(y) & ~((x == 0) & (y == 0))
        box = lonlat_bounds(x[ok], y[ok], pair.crs) if ok.any() else None
        if box is not None:
            return box, pair.crs
    return None


@dataclass(frozen=True)
class SourceExtent:
    """A source's lon/lat extent and the CRSs its coordinates were given in."""

    bounds: tuple[float, float, float, float]
    crss: tuple[str, ...]


def source_extent(files: Sequence[Path], profile: Profile) -> SourceExtent | None:
    """The lon/lat extent ``(west, south, east, north)`` of a source's records, if located.

    Stray points (0/0, swapped pairs) do not move it: each chunk contributes the box of its
    points within :data:`~twmb_geo.core.crs.STRAY_DEG` degrees of its median position.
    """
    if profile.kind not in LOCATED_KINDS:
        return None
    boxes, crss = [], []
    for f in files:
        for chunk in iter_raw(f, profile):
            found = _chunk_bounds(chunk, profile)
            if found is not None:
                boxes.append(found[0])
                crss.append(found[1])
    merged = merge_bounds(boxes)
    return SourceExtent(merged, tuple(dict.fromkeys(crss))) if merged is not None else None
