"""The names of shapely's geometry types, as GDAL, GeoParquet and messages spell them."""

from __future__ import annotations

from typing import Final

__all__ = ["GEOMETRY_TYPE_NAMES"]

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
