"""Export the map layers as files GIS tools read: GeoJSON (RFC 7946), GeoPackage, GeoParquet.

:func:`export_layers` writes every layer of :func:`twmb_geo.maps.layers.map_layers` under one
folder with stable names, so a GIS project or a web map can point at them once::

    folder/geojson/<layer>.geojson      one FeatureCollection per layer (RFC 7946)
    folder/twmb_layers.gpkg             one GeoPackage, one table per layer
    folder/geoparquet/<layer>.parquet   one GeoParquet file per layer

All files are in WGS84 (EPSG:4326) with rows in the layer's order. The GeoJSON follows
RFC 7946: longitude/latitude, no ``crs`` member, coordinates rounded to 7 decimals (about
1 cm), polygon exteriors counter-clockwise and holes clockwise, nulls as JSON ``null``; the
same layers give byte-identical files. Each file is written under a temporary name and
renamed into place, so a reader never sees half a file. Files of known layers that are no
longer present (e.g. ``pipes`` after a run without pipes) are removed so the folder
always mirrors the layers given.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from numpy.typing import ArrayLike

from ..core.files import atomic_path
from ..errors import InputDataError
from .layers import LAYERS, typed_layer

__all__ = ["EXPORT_FORMATS", "GPKG_NAME", "LayerExporter", "export_layers", "orient_rfc7946"]

log = logging.getLogger(__name__)

#: every export format, in the order files are written
EXPORT_FORMATS: Final[tuple[str, ...]] = ("geojson", "gpkg", "geoparquet")
#: file name of the GeoPackage holding every layer
GPKG_NAME: Final[str] = "twmb_layers.gpkg"
_WGS84: Final[str] = "EPSG:4326"
#: GDAL GeoJSON layer creation options giving RFC 7946 output
_GEOJSON_OPTIONS: Final[dict[str, str]] = {
    "RFC7946": "YES",
    "COORDINATE_PRECISION": "7",
    "WRITE_BBOX": "NO",
}
_LAYER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _orient_fallback(geoms: np.ndarray) -> np.ndarray:
    """Per-geometry orientation for shapely < 2.1 (no ``shapely.orient_polygons``)."""
    from shapely.geometry.polygon import orient

    out = geoms.copy()
    types = shapely.get_type_id(geoms)
    for i in np.flatnonzero(types == shapely.GeometryType.POLYGON):
        out[i] = orient(geoms[i], 1.0)
    for i in np.flatnonzero(types == shapely.GeometryType.MULTIPOLYGON):
        out[i] = shapely.MultiPolygon([orient(p, 1.0) for p in geoms[i].geoms])
    return out


def orient_rfc7946(geoms: ArrayLike) -> np.ndarray:
    """Polygon rings in RFC 7946 order: exteriors counter-clockwise, holes clockwise.

    Polygons and multipolygons are re-oriented (same shape, same area); other geometries
    and missing values pass through unchanged. The right-hand rule lets strict GeoJSON
    consumers (d3, some web-map libraries) tell the inside of a ring from the outside.
    """
    arr = np.asarray(geoms, dtype=object)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if hasattr(shapely, "orient_polygons"):
        return np.asarray(shapely.orient_polygons(arr, exterior_cw=False), dtype=object)
    return _orient_fallback(arr)


def _check_formats(formats: Sequence[str]) -> list[str]:
    """The requested formats, validated and de-duplicated, in :data:`EXPORT_FORMATS` order."""
    if isinstance(formats, str):
        formats = [formats]
    allowed = ", ".join(EXPORT_FORMATS)
    wanted = {str(f).strip().lower() for f in formats}
    bad = sorted(wanted - set(EXPORT_FORMATS))
    if bad:
        raise InputDataError(
            f"unknown map export format(s): {', '.join(repr(b) for b in bad)}; "
            f"allowed formats are: {allowed}"
        )
    if not wanted:
        raise InputDataError(f"no map export format given; allowed formats are: {allowed}")
    return [f for f in EXPORT_FORMATS if f in wanted]


def _check_layer(name: str, gdf: gpd.GeoDataFrame) -> None:
    """A layer name fit for files and tables, a GeoDataFrame with a CRS."""
    if not _LAYER_NAME.match(name):
        raise InputDataError(
            f"map layer name {name!r} cannot be used as a file name; "
            "use letters, digits and underscores, starting with a letter"
        )
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InputDataError(f"map layer {name!r} is not a GeoDataFrame")
    if gdf.crs is None:
        raise InputDataError(f"map layer {name!r} has no CRS; set one before exporting")


def _prepare(name: str, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One layer ready to write: checked, WGS84, RFC 7946 ring order, plain index, and
    the declared column types of a package layer (:data:`~.layers.LAYER_TYPES`)."""
    _check_layer(name, gdf)
    out = gdf.to_crs(_WGS84) if not gdf.crs.equals(_WGS84) else gdf.copy()
    out = typed_layer(name, out.reset_index(drop=True))
    geom = out.geometry
    out[geom.name] = gpd.GeoSeries(orient_rfc7946(geom.to_numpy()), crs=_WGS84)
    return out


def _write_geojson(name: str, gdf: gpd.GeoDataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        pyogrio.write_dataframe(
            gdf, tmp, layer=name, driver="GeoJSON", layer_options=_GEOJSON_OPTIONS, use_arrow=True
        )


def _write_parquet(name: str, gdf: gpd.GeoDataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        gdf.to_parquet(tmp, index=False)


class LayerExporter:
    """Writes map layers one at a time into every requested format under one folder.

    Use as a context manager; :meth:`write` each layer (only the prepared copy of the
    layer being written is held), and :attr:`result` after the block. The GeoPackage is
    built under a temporary name and renamed into place when the block ends without
    error; files of known layers not written are removed (see :func:`export_layers`).
    """

    def __init__(self, folder: Path | str, formats: Sequence[str] = EXPORT_FORMATS) -> None:
        self.formats = _check_formats(formats)
        self.folder = Path(folder)
        self.rows: dict[str, int] = {}
        self.files: dict[str, list[str]] = {fmt: [] for fmt in self.formats}
        self._gpkg: ExitStack | None = None
        self._gpkg_tmp: Path | None = None

    @property
    def result(self) -> dict[str, Any]:
        """``{"folder", "files": {format: [paths relative to folder]}, "rows": {layer: n}}``."""
        return {"folder": str(self.folder), "files": self.files, "rows": self.rows}

    def __enter__(self) -> LayerExporter:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def _gpkg_path(self) -> Path:
        """The GeoPackage's temporary name, opened with the first layer written to it."""
        if self._gpkg_tmp is None:
            self._gpkg = ExitStack()
            self._gpkg_tmp = self._gpkg.enter_context(atomic_path(self.folder / GPKG_NAME))
        return self._gpkg_tmp

    def write(self, name: str, gdf: gpd.GeoDataFrame) -> None:
        """Write one layer in every format (its name becomes file and table names)."""
        if name in self.rows:
            raise InputDataError(f"map layer {name!r} is written twice")
        out = _prepare(name, gdf)
        for fmt in self.formats:
            if fmt == "gpkg":
                pyogrio.write_dataframe(
                    out, self._gpkg_path(), layer=name, driver="GPKG", use_arrow=True
                )
                if not self.files[fmt]:
                    self.files[fmt].append(GPKG_NAME)
                continue
            sub, suffix, writer = _PER_LAYER[fmt]
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
            rel = f"{sub}/{name}{suffix}"
            writer(name, out, self.folder / rel)
            self.files[fmt].append(rel)
        self.rows[name] = len(out)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._gpkg is not None:
            self._gpkg.__exit__(exc_type, exc, tb)
        if exc_type is not None:
            return
        if "gpkg" in self.formats and self._gpkg is None:
            (self.folder / GPKG_NAME).unlink(missing_ok=True)
        for fmt in self.formats:
            if fmt == "gpkg":
                continue
            sub, suffix, _ = _PER_LAYER[fmt]
            for name in sorted(set(LAYERS) - set(self.rows)):
                stale = self.folder / sub / f"{name}{suffix}"
                if stale.exists():
                    stale.unlink()
                    log.info("removed %s: layer %r is no longer present", stale, name)
        log.info(
            "exported %d map layer(s) as %s to %s",
            len(self.rows),
            ", ".join(self.formats),
            self.folder,
        )


#: per-layer formats -> (sub-folder, file suffix, writer)
_PER_LAYER: Final[dict[str, tuple[str, str, Callable[[str, gpd.GeoDataFrame, Path], None]]]] = {
    "geojson": ("geojson", ".geojson", _write_geojson),
    "geoparquet": ("geoparquet", ".parquet", _write_parquet),
}


def export_layers(
    layers: Mapping[str, gpd.GeoDataFrame],
    folder: Path | str,
    formats: Sequence[str] = EXPORT_FORMATS,
) -> dict[str, Any]:
    """Write the map layers as GeoJSON, GeoPackage and/or GeoParquet under ``folder``.

    Parameters
    ----------
    layers
        Layer name -> GeoDataFrame (any CRS; written in EPSG:4326), e.g. from
        :func:`~twmb_geo.maps.layers.map_layers`. Names become file and table names.
    folder
        Output folder (created if missing); see the module doc for the layout.
    formats
        Any of ``"geojson"``, ``"gpkg"``, ``"geoparquet"``.

    Returns
    -------
    dict
        ``{"folder": str, "files": {format: [paths relative to folder]},
        "rows": {layer: number of features}}``.

    Raises
    ------
    InputDataError
        An unknown format, a layer without CRS or a name unfit for a file name.
    """
    exporter = LayerExporter(folder, formats)
    for name, gdf in layers.items():
        _check_layer(name, gdf)
    with exporter:
        for name, gdf in layers.items():
            exporter.write(name, gdf)
    return exporter.result
