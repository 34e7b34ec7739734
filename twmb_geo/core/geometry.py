"""Small geometry helpers shared by the layers: shapely's geometry type names, as GDAL,
GeoParquet and messages spell them, and the union of bounding boxes."""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["GEOMETRY_TYPE_NAMES", "union_bounds"]

#: shapely's geometry type ids (``shapely.get_type_id``, 0 to 7) -> names
GEOMETRY_TYPE_NAMES: Final[tuple[str, ...]] = (
    "Point",
    "LineString",
    "LinearRing",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)


def union_bounds(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """The box ``(minx, miny, maxx, maxy)`` covering the boxes ``a`` and ``b``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.r_[np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])]
