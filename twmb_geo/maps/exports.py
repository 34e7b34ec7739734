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

import base64
import json
import logging
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from numpy.typing import ArrayLike
from pyogrio.raw import write_arrow

from .._version import __version__
from ..core.files import atomic_path
from ..core.geometry import GEOMETRY_TYPE_NAMES, union_bounds
from ..errors import InputDataError
from .layers import LAYERS, typed_layer

__all__ = [
    "EXPORT_FORMATS",
    "GPKG_NAME",
    "LayerBlocks",
    "LayerExporter",
    "export_layers",
    "orient_rfc7946",
]

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


#: geometry types that may hold polygon rings
_WITH_RINGS: Final[tuple[int, ...]] = (
    shapely.GeometryType.POLYGON,
    shapely.GeometryType.MULTIPOLYGON,
    shapely.GeometryType.GEOMETRYCOLLECTION,
)


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
    out = arr.copy()
    # only the geometries with rings: GEOS copies every geometry it is given (the lines and
    # points of a 500,000-pipe city's layers: 7.5 s)
    rings = np.isin(shapely.get_type_id(arr), _WITH_RINGS)
    if not rings.any():
        return out
    if hasattr(shapely, "orient_polygons"):
        out[rings] = shapely.orient_polygons(arr[rings], exterior_cw=False)
    else:
        out[rings] = _orient_fallback(arr[rings])
    return out


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


def _check_name(name: str) -> None:
    """A layer name fit for files and tables."""
    if not _LAYER_NAME.match(name):
        raise InputDataError(
            f"map layer name {name!r} cannot be used as a file name; "
            "use letters, digits and underscores, starting with a letter"
        )


def _check_layer(name: str, gdf: gpd.GeoDataFrame) -> None:
    """A layer name fit for files and tables, a GeoDataFrame with a CRS."""
    _check_name(name)
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


#: a single geometry type -> the multi type a GeoPackage layer of both takes
_MULTI: Final[dict[str, str]] = {
    "Point": "MultiPoint",
    "LineString": "MultiLineString",
    "Polygon": "MultiPolygon",
}
_GEOPARQUET_VERSION: Final[str] = "1.1.0"


def _projjson(crs: Any) -> dict[str, Any]:
    """The CRS as PROJJSON without the ids of datum-ensemble members, which older PROJ
    versions do not know (as GDAL and geopandas write it)."""

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "members" and isinstance(value, list):
                    for member in value:
                        member.pop("id", None)
                else:
                    strip(value)

    out: dict[str, Any] = crs.to_json_dict()
    strip(out)
    return out


class _GeoParquetBlocks:
    """A GeoParquet file written a block at a time: one row group per block, the file's
    ``geo`` metadata (geometry types, bounding box) of all the blocks, written at the end.

    It also notes what GDAL needs to write the same rows: the layer's geometry types and
    whether they have Z.
    """

    def __init__(self, path: Path | IO[bytes]) -> None:
        #: the file: a path, or an open scratch file without a name
        self.path = path
        self.rows = 0
        #: the geometry types present (GDAL's names) and whether any has Z
        self.types: set[str] = set()
        self.has_z = False
        self._parquet_types: set[str] = set()
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._bounds = np.array([np.inf, np.inf, -np.inf, -np.inf])
        self._geo: dict[str, Any] = {}

    def write(self, name: str, gdf: gpd.GeoDataFrame) -> None:
        """Append one prepared block (WGS84, typed) as a row group."""
        table = pa.table(gdf.to_arrow(index=False, geometry_encoding="WKB"))
        if self._writer is None:
            self._schema = table.schema
            # the Arrow schema is stored at the end, with the `geo` metadata of every block
            self._writer = pq.ParquetWriter(self.path, self._schema, store_schema=False)
            column = gdf.geometry.name
            self._geo = {
                "primary_column": column,
                "columns": {column: {"encoding": "WKB", "crs": _projjson(gdf.crs)}},
                "version": _GEOPARQUET_VERSION,
                "creator": {"library": "twmb_geo", "version": __version__},
            }
        elif not table.schema.equals(self._schema, check_metadata=False):
            table = _cast_block(name, table, self._schema)
        geoms = gdf.geometry.to_numpy()
        present = ~shapely.is_missing(geoms)
        ids = shapely.get_type_id(geoms[present])
        self.types.update(GEOMETRY_TYPE_NAMES[i] for i in np.unique(ids))
        z = shapely.has_z(geoms[present])
        self.has_z |= bool(z.any())
        bounds = shapely.total_bounds(geoms)
        if np.isfinite(bounds).all():
            self._bounds = union_bounds(self._bounds, bounds)
        # GeoParquet names a 3D type "<type> Z" and a linear ring a line string
        self._parquet_types.update(
            f"{GEOMETRY_TYPE_NAMES[i].replace('LinearRing', 'LineString')}{' Z' if has else ''}"
            for i, has in set(zip(ids.tolist(), z.tolist(), strict=True))
        )
        self._writer.write_table(table)
        self.rows += len(table)

    @property
    def opened(self) -> bool:
        """Whether a block was written (the file has the layer's columns)."""
        return bool(self._geo)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """The bounding box of every block's geometries (infinite when there are none)."""
        west, south, east, north = self._bounds.tolist()
        return west, south, east, north

    @property
    def geometry(self) -> str:
        """The geometry column's name."""
        return str(self._geo["primary_column"])

    def close(self) -> None:
        """Write the ``geo`` metadata of every block and close the file."""
        if self._writer is None or self._schema is None:
            return
        column = self._geo["primary_column"]
        meta = self._geo["columns"][column]
        meta["geometry_types"] = sorted(self._parquet_types)
        if np.isfinite(self._bounds).all():
            meta["bbox"] = self._bounds.tolist()
        geo = json.dumps(self._geo)
        schema = self._schema.with_metadata({**(self._schema.metadata or {}), b"geo": geo})
        # the Arrow schema as pyarrow stores it (base64 of its IPC message), with `geo`
        arrow = base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")
        self._writer.add_key_value_metadata({"geo": geo, "ARROW:schema": arrow})
        self._writer.close()
        self._writer = None

    def abort(self) -> None:
        """Close the file without its metadata (it is removed by the caller)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _needs_rfc7946_mode(parquet: _GeoParquetBlocks) -> bool:
    """Whether GDAL's RFC 7946 mode would change a layer's GeoJSON.

    The mode copies and transforms every feature to cut geometries at the antimeridian,
    orients polygon rings and writes Z with 3 decimals; otherwise, at the same coordinate
    precision, its bytes are those of the plain mode less the ``crs`` member (a third of
    the time of the 500,000-pipe lines). Points and lines in one hemisphere of longitude,
    without Z, need none of it.
    """
    west, south, east, north = parquet.bounds
    return (
        parquet.has_z
        or bool(parquet.types - {"Point", "MultiPoint", "LineString", "MultiLineString"})
        or not (west >= -180.0 and east <= 180.0 and south >= -90.0 and north <= 90.0)
        or east - west > 180.0
    )


def _cast_block(name: str, table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A block's rows in the types of the layer's first block, or a clear error."""
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise InputDataError(
            f"map layer {name!r}: a block's columns ({table.schema}) do not match those of "
            f"its first block ({schema}): {exc}"
        ) from exc


def _gdal_geometry_type(types: set[str], has_z: bool, driver: str) -> tuple[str, bool]:
    """The layer geometry type GDAL is given for geometries of ``types``, and whether single
    geometries are promoted to multi ones: as pyogrio's ``write_dataframe`` infers it (a
    GeoPackage layer of line strings and multi line strings is a multi line string layer)."""
    kind, promote = "Unknown", False
    if len(types) == 1:
        kind = next(iter(types))
    elif len(types) == 2:
        single = sorted(types)[0 if sorted(types)[0] in _MULTI else 1]
        if _MULTI.get(single) in types and driver == "GPKG":
            kind, promote = _MULTI[single], True
    if has_z and kind != "Unknown":
        kind = f"{kind} Z"
    return kind, promote


def _promoted(wkb: pa.Array) -> pa.Array:
    """WKB geometries with every single point, line string and polygon made a multi one."""
    geoms = shapely.from_wkb(np.asarray(wkb.to_numpy(zero_copy_only=False), dtype=object))
    ids = shapely.get_type_id(geoms)
    for single, make in (
        (shapely.GeometryType.POINT, shapely.multipoints),
        (shapely.GeometryType.LINESTRING, shapely.multilinestrings),
        (shapely.GeometryType.POLYGON, shapely.multipolygons),
    ):
        at = ids == single
        if at.any():
            geoms[at] = make(np.atleast_2d(geoms[at]), axis=0)
    return pa.array(shapely.to_wkb(geoms), type=pa.binary())


def _gdal_rows(path: Path | IO[bytes], geometry: str, promote: bool) -> pa.RecordBatchReader:
    """The rows of a layer's GeoParquet file, a row group at a time, as GDAL is given them:
    plain Arrow types, no pandas or GeoParquet metadata, WKB geometries (promoted to multi
    ones when ``promote``)."""
    if not isinstance(path, Path):
        path.seek(0)
    source = pq.ParquetFile(path)
    schema = pa.schema([pa.field(f.name, f.type, f.nullable) for f in source.schema_arrow])
    at = schema.get_field_index(geometry)

    def batches() -> Iterator[pa.RecordBatch]:
        with source:
            for group in range(source.num_row_groups):
                for batch in source.read_row_group(group).to_batches():
                    columns = list(batch.columns)
                    if promote:
                        columns[at] = _promoted(columns[at])
                    yield pa.RecordBatch.from_arrays(columns, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


class LayerBlocks:
    """The blocks of one layer being exported (from :meth:`LayerExporter.layer`)."""

    def __init__(self, name: str, parquet: _GeoParquetBlocks) -> None:
        self.name = name
        self._parquet = parquet

    @property
    def rows(self) -> int:
        """Rows written so far."""
        return self._parquet.rows

    def write(self, gdf: gpd.GeoDataFrame) -> None:
        """Write the layer's next block (any CRS; its rows follow the blocks before)."""
        _check_layer(self.name, gdf)
        self._parquet.write(self.name, _prepare(self.name, gdf))


class LayerExporter:
    """Writes map layers one at a time, each in blocks if need be, into every requested
    format under one folder.

    Use as a context manager; :meth:`write` a whole layer, or write a layer's blocks in
    order inside :meth:`layer`, and read :attr:`result` after the block. Only the block
    being written is held: the blocks go to the layer's GeoParquet file (a scratch file
    without a name when GeoParquet is not asked for), from which GDAL streams the GeoJSON and the
    GeoPackage table a row group at a time, so the files are those of the layer written
    whole. The GeoPackage is built under a temporary name and renamed into place when the
    block ends without error; files of known layers not written are removed (see
    :func:`export_layers`).
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
        """Write one whole layer in every format (its name becomes file and table names)."""
        with self.layer(name) as blocks:
            blocks.write(gdf)

    @contextmanager
    def layer(self, name: str) -> Iterator[LayerBlocks]:
        """Write layer ``name`` a block at a time: ``with exporter.layer(name) as out:``
        then ``out.write(block)`` for each block in order; the files are complete when the
        ``with`` block ends without error."""
        if name in self.rows:
            raise InputDataError(f"map layer {name!r} is written twice")
        _check_name(name)
        with ExitStack() as stack:
            path: Path | IO[bytes]
            if "geoparquet" in self.formats:
                (self.folder / "geoparquet").mkdir(parents=True, exist_ok=True)
                rel = f"geoparquet/{name}.parquet"
                path = stack.enter_context(atomic_path(self.folder / rel))
            else:
                # no name: nothing is left behind, even by a killed process
                path = stack.enter_context(tempfile.TemporaryFile(dir=self.folder))
            parquet = _GeoParquetBlocks(path)
            try:
                yield LayerBlocks(name, parquet)
            except BaseException:
                parquet.abort()
                raise
            if not parquet.opened:
                raise ValueError(f"map layer {name!r}: no block was written")
            parquet.close()
            self._write_gdal(name, parquet)
            if "geoparquet" in self.formats:
                self.files["geoparquet"].append(rel)
        self.rows[name] = parquet.rows

    def _write_gdal(self, name: str, parquet: _GeoParquetBlocks) -> None:
        """The layer's GeoJSON file and GeoPackage table, streamed from its GeoParquet."""
        geometry = parquet.geometry
        for fmt in self.formats:
            if fmt == "geoparquet":
                continue
            driver = "GPKG" if fmt == "gpkg" else "GeoJSON"
            kind, promote = _gdal_geometry_type(parquet.types, parquet.has_z, driver)
            rows = _gdal_rows(parquet.path, geometry, promote)
            options: dict[str, Any] = {
                "geometry_name": geometry,
                "geometry_type": kind,
                "crs": _WGS84,
            }
            if fmt == "gpkg":
                write_arrow(rows, self._gpkg_path(), layer=name, driver=driver, **options)
                if not self.files[fmt]:
                    self.files[fmt].append(GPKG_NAME)
                continue
            (self.folder / "geojson").mkdir(parents=True, exist_ok=True)
            rel = f"geojson/{name}.geojson"
            layer_options = _GEOJSON_OPTIONS
            if not _needs_rfc7946_mode(parquet):
                # the same bytes without GDAL's per-feature copy and transform; a layer
                # without a CRS gets no `crs` member
                layer_options = {**_GEOJSON_OPTIONS, "RFC7946": "NO"}
                options["crs"] = None
            with atomic_path(self.folder / rel) as tmp, warnings.catch_warnings():
                warnings.filterwarnings("ignore", "'crs' was not provided", UserWarning)
                write_arrow(
                    rows, tmp, layer=name, driver=driver, layer_options=layer_options, **options
                )
            self.files[fmt].append(rel)

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
        for fmt, (sub, suffix) in _PER_LAYER.items():
            if fmt not in self.formats:
                continue
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


#: per-layer formats -> (sub-folder, file suffix)
_PER_LAYER: Final[dict[str, tuple[str, str]]] = {
    "geojson": ("geojson", ".geojson"),
    "geoparquet": ("geoparquet", ".parquet"),
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
