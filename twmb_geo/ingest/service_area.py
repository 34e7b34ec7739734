"""A service area derived from the data when the project has no boundary source.

``[project] service_area`` picks the method (``auto`` = the boundary source when one is
given, else ``h3``):

* ``h3``: the H3 cells (``[project] h3_resolution``) holding a break, a pipe or street
  vertex, or a point every half cell edge along a pipe or street, with their first ring
  (so a line clipping a cell between two sample points is covered), dissolved: the cell
  units cover the network and little beyond it;
* ``hull``: the convex hull of every pipe, street and break;
* ``none``: no service area (the outside-area check uses the CRS area of use, cell units
  are skipped).

Either way ``geometry_buffered`` adds ``service_area_buffer_m``. The derived area is built
after the geometry sources are read, so their outside-area check falls back to the area of
use of the analysis CRS.
"""

from __future__ import annotations

from collections.abc import Sequence

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import shapely

from ..contracts import conform, validate_frame
from ..core.crs import WGS84, analysis_crs, transform_xy
from ..core.h3cells import cell_polygons, points_to_cells
from ..errors import InputDataError

__all__ = ["DERIVED_SOURCE_ID", "SERVICE_AREA_METHODS", "derived_service_area"]

#: ``source_id`` of a derived service area in the ``service_area`` table
DERIVED_SOURCE_ID = "(derived)"
#: values of ``[project] service_area``
SERVICE_AREA_METHODS = ("auto", "hull", "h3", "none")


def _line_points(lines: np.ndarray, step_m: float) -> np.ndarray:
    """Vertices of the lines plus points every ``step_m`` along them, as ``(n, 2)``."""
    if not lines.size:
        return np.zeros((0, 2))
    dense = shapely.segmentize(lines, max_segment_length=step_m)
    return shapely.get_coordinates(dense)


def _h3_cover(xy: np.ndarray, res: int) -> shapely.Geometry:
    """The dissolved H3 cells (resolution ``res``) holding the points (analysis CRS)."""
    lon, lat, _ = transform_xy(xy[:, 0], xy[:, 1], analysis_crs(), WGS84)
    hit = np.unique(points_to_cells(lon, lat, res))
    hit = hit[hit != 0]
    # one ring more: a line can clip a cell between two of its sample points
    cells = np.unique(np.concatenate([h3i.grid_disk(int(c), 1) for c in hit]))
    polys = cell_polygons(cells.astype(np.uint64))
    # a tiny buffer closes the slivers between projected cell edges
    return shapely.union_all(shapely.buffer(polys, 0.01)).buffer(-0.01)


def derived_service_area(
    lines: Sequence[np.ndarray],
    points_xy: np.ndarray,
    method: str,
    h3_resolution: int,
    buffer_m: float,
) -> pd.DataFrame:
    """The ``service_area`` row of an area derived from the data.

    Parameters
    ----------
    lines
        Arrays of line geometries (pipes, streets) in the analysis CRS.
    points_xy
        ``(n, 2)`` break coordinates in the analysis CRS.
    method : {"h3", "hull"}
    h3_resolution, buffer_m
        The H3 resolution of the ``h3`` cover; the validation buffer in metres.
    """
    geoms = [np.asarray(g, dtype=object) for g in lines if len(g)]
    lines_all = np.concatenate(geoms) if geoms else np.zeros(0, dtype=object)
    pts = np.asarray(points_xy, dtype=float).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if not lines_all.size and not pts.size:
        raise InputDataError(
            "no service area can be derived: the store has no pipes, streets or breaks; "
            "ingest them, or set [project] service_area_source to a boundary source"
        )
    if method == "h3":
        step = h3i.average_hexagon_edge_length(h3_resolution, unit="m") / 2
        area = _h3_cover(np.concatenate([_line_points(lines_all, step), pts]), h3_resolution)
    elif method == "hull":
        parts = [*lines_all, shapely.multipoints(pts)] if pts.size else list(lines_all)
        area = shapely.convex_hull(shapely.geometrycollections(parts))
        if shapely.get_type_id(area) != 3:  # a point or a line: give it an extent
            area = area.buffer(max(buffer_m, 1.0))
    else:
        raise ValueError(f"unknown service-area method {method!r}")
    df = pd.DataFrame(
        {
            "source_id": [DERIVED_SOURCE_ID],
            "method": [method],
            "buffer_m": [float(buffer_m)],
            "area_km2": [area.area / 1e6],
            "geometry": [shapely.to_wkb(area)],
            "geometry_buffered": [shapely.to_wkb(area.buffer(buffer_m))],
        }
    )
    df = conform(df, "curated/service_area")
    validate_frame(df, "curated/service_area")
    return df
