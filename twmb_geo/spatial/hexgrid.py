"""H3 organisation: points, lines and areas to H3 cells, and cell geometry in the analysis CRS.

Cells are ``uint64`` inside the package (``h3.api.basic_int``); hex strings only at the
edges (:func:`cell_str`, :func:`cells_from_str`). The value ``0`` means "no cell".

A cell's *polygon* in the analysis CRS is the H3 boundary (``cell_to_boundary``) projected vertex
by vertex with straight edges between the projected vertices. All lengths and
intersection tests here use those polygons, so they tile the plane (up to ~1e-8 m where
neighbours compute a shared vertex independently) and per-cell line lengths add up to the
line length.
"""

from __future__ import annotations

from typing import Literal

import h3
import h3.api.basic_int as h3i
import numpy as np
import shapely

from ..core.crs import WGS84, analysis_crs, transform_geometries
from ..core.h3cells import _as_cells as _as_cells
from ..core.h3cells import _listed as _listed
from ..core.h3cells import (
    cell_centroids,
    cell_parents,
    cell_polygons,
    cell_resolutions,
    cell_str,
    cells_from_str,
    check_resolution,
    edge_length_m,
    points_to_cells,
)
from ..errors import ConfigError, InputDataError
from .hexlines import lines_to_cells

__all__ = [
    "cell_centroids",
    "cell_parents",
    "cell_polygons",
    "cell_resolutions",
    "cell_str",
    "cells_from_str",
    "check_resolution",
    "edge_length_m",
    "grid_cover",
    "lines_to_cells",
    "points_to_cells",
]


_MAX_COVER_CELLS = 20_000_000


def grid_cover(
    area: shapely.Geometry,
    res: int,
    *,
    contain: Literal["overlap", "center"] = "overlap",
) -> np.ndarray:
    """Every cell of the area, so cells without events are units too.

    Parameters
    ----------
    area : shapely geometry
        Polygonal area in the analysis CRS.
    res : int
        H3 resolution 0..15.
    contain : {"overlap", "center"}
        ``"overlap"`` (default): every cell whose analysis-CRS polygon intersects the area.
        ``"center"``: cells whose H3 centre lies in the area (``h3shape_to_cells``; the
        convention behind published cell counts, which leaves out boundary cells).

    Returns
    -------
    numpy.ndarray of uint64, sorted ascending.

    Notes
    -----
    Candidates are the centre-contained cells of the area buffered by 1.6 edge lengths
    (a cell touching the area has its centre within ~1 edge length of it), then filtered
    by an exact ``intersects`` test in the analysis CRS.
    """
    res = check_resolution(res)
    if contain not in ("overlap", "center"):
        raise ConfigError(f"contain must be 'overlap' or 'center'; got {contain!r}")
    if area is None or shapely.is_empty(area):
        return np.zeros(0, dtype=np.uint64)
    if shapely.get_type_id(area) not in (3, 6, 7):
        raise InputDataError(f"grid_cover needs a polygonal area; got {area.geom_type}")
    est = shapely.area(area) / h3i.average_hexagon_area(res, unit="m^2")
    if est > _MAX_COVER_CELLS:
        raise ConfigError(
            f"H3 resolution {res} would cover the area with about {est:,.0f} cells "
            f"(limit {_MAX_COVER_CELLS:,}); use a coarser resolution"
        )
    if contain == "center":
        return _center_cells(area, res)
    tol = 0.05 * edge_length_m(res)
    search = shapely.buffer(shapely.simplify(area, tol), 1.6 * edge_length_m(res) + tol)
    cand = _center_cells(search, res)
    if cand.size == 0:
        return cand
    shapely.prepare(area)
    keep = shapely.intersects(area, cell_polygons(cand))
    return cand[keep]


def _center_cells(area: shapely.Geometry, res: int) -> np.ndarray:
    """Cells whose centre lies in the area (h3 ``center`` containment), sorted."""
    polys = [p for p in shapely.get_parts(area) if shapely.get_type_id(p) == 3 and p.area > 0]
    if not polys:
        return np.zeros(0, dtype=np.uint64)
    ll, _ = transform_geometries(np.asarray(polys, dtype=object), analysis_crs(), WGS84)
    cells: list[int] = []
    for p in ll:
        cells.extend(h3i.h3shape_to_cells(h3.geo_to_h3shape(p.__geo_interface__), res))
    return np.unique(np.asarray(cells, dtype=np.uint64))
