"""Map files: GeoJSON (RFC 7946), GeoPackage and GeoParquet exports, and the static PNG maps.

Toronto layers come from the shared bundled run (read-only); pipe and street layers from a
small synthetic city generated once for this module without a model, with tiers added
here so the tier maps can be drawn without training anything.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import weakref
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as papq
import pyogrio
import pytest
import shapely
from cli_helpers import ok_json, twmb
from geopandas.testing import assert_geodataframe_equal
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import twmb_geo as tw
from twmb_geo.config import MapsConfig, config_schema
from twmb_geo.errors import InputDataError
from twmb_geo.maps import stage, static
from twmb_geo.maps.exports import (
    EXPORT_FORMATS,
    GPKG_NAME,
    LayerExporter,
    _prepare,
    export_layers,
    orient_rfc7946,
)
from twmb_geo.maps.interactive import write_html_map
from twmb_geo.maps.layers import LAYER_TYPES, iter_layer_blocks, map_layers
from twmb_geo.maps.stage import make_maps
from twmb_geo.maps.static import MAP_NAMES, PAGE_PX, map_view, render_maps
from twmb_geo.maps.views import MapViews, projected
from twmb_geo.store.blocks import key_blocks

#: generous lon/lat box around Toronto
LON = (-79.75, -79.0)
LAT = (43.5, 43.95)
#: layer -> store table holding one row per feature
TABLES = {
    "neighbourhoods": "neighbourhoods",
    "cells": "unit_cell",
    "streets": "unit_street",
    "pipes": "unit_pipe",
    "breaks": "breaks",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VERY_HIGH_RGB = (0x44, 0x01, 0x54)


# --------------------------------------------------------------------------- fixtures


def _store_rows(path: Path, layers: dict[str, gpd.GeoDataFrame]) -> dict[str, int]:
    with tw.open_store(path, read_only=True) as store:
        return {
            name: int(store.query(f"SELECT count(*) AS n FROM {TABLES[name]}")["n"].iloc[0])
            for name in layers
        }


@pytest.fixture(scope="module")
def toronto(bundled_run, bundled_cfg) -> tuple[dict[str, gpd.GeoDataFrame], dict[str, int]]:
    """The map layers of the bundled Toronto run and the store's row counts."""
    with tw.open_store(bundled_cfg.store_path, read_only=True) as store:
        layers = map_layers(store)
    return layers, _store_rows(bundled_cfg.store_path, layers)


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory) -> Path:
    """The store of a small generated city with pipes and streets (no model)."""
    out = tmp_path_factory.mktemp("map_synthetic")
    ok_json(
        twmb(
            "-q", "--out", out, "run", "--example", "synthetic", "--pipes", "600",
            "--seed", "5", "--no-model", "--no-publish", "--no-report", "--json",
        )
    )  # fmt: skip
    return out / "twmb.duckdb"


@pytest.fixture(scope="module")
def synthetic(synthetic_store) -> tuple[dict[str, gpd.GeoDataFrame], dict[str, int]]:
    """Layers of a small generated city with pipes and streets (no model: all unscored)."""
    out = synthetic_store.parent
    with tw.open_store(out / "twmb.duckdb", read_only=True) as store:
        layers = map_layers(store)
    return layers, _store_rows(out / "twmb.duckdb", layers)


@pytest.fixture(scope="module")
def toronto_export(toronto, tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("toronto_export")
    return folder, export_layers(toronto[0], folder)


@pytest.fixture(scope="module")
def toronto_maps(toronto, tmp_path_factory) -> dict[str, Path]:
    return render_maps(toronto[0], tmp_path_factory.mktemp("toronto_png"))


def _with_fake_tiers(gdf: gpd.GeoDataFrame, seed: int) -> gpd.GeoDataFrame:
    """A copy with tiers drawn at random (about 3% very high) and a score year."""
    rng = np.random.default_rng(seed)
    out = gdf.copy()
    tiers = np.array(["very_high", "high", "elevated", "low", "unscored"])
    out["tier"] = rng.choice(tiers, size=len(out), p=[0.03, 0.07, 0.2, 0.6, 0.1])
    out["score_year"] = 2017
    return out


# --------------------------------------------------------------------------- helpers


def _signed_area(ring: np.ndarray) -> float:
    """Shoelace area: positive for a counter-clockwise ring (x east, y north)."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


def _polygons(geometry: dict) -> list[list]:
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    if geometry["type"] == "MultiPolygon":
        return geometry["coordinates"]
    return []


def _positions(coords: list) -> list[list[float]]:
    """Every [lon, lat] position of a GeoJSON coordinates member, flattened."""
    if coords and isinstance(coords[0], (int, float)):
        return [coords]
    return [pos for part in coords for pos in _positions(part)]


def _reject_constant(token: str) -> None:
    raise AssertionError(f"non-JSON number {token} in GeoJSON")


def _check_geojson(path: Path, layer: gpd.GeoDataFrame, rows: int) -> None:
    data = path.read_bytes()
    doc = json.loads(data, parse_constant=_reject_constant)
    assert doc["type"] == "FeatureCollection"
    assert "crs" not in doc, "RFC 7946 has no crs member"
    feats = doc["features"]
    assert len(feats) == rows == len(layer)
    assert set(feats[0]["properties"]) == set(layer.columns.drop("geometry"))
    coords = np.array([p for f in feats for p in _positions(f["geometry"]["coordinates"])])
    assert coords.shape[1] == 2
    assert LON[0] < coords[:, 0].min() and coords[:, 0].max() < LON[1], path.name
    assert LAT[0] < coords[:, 1].min() and coords[:, 1].max() < LAT[1], path.name
    scaled = coords * 1e7
    assert np.abs(scaled - np.round(scaled)).max() < 1e-3, "coordinates not at 7 decimals"
    rings = holes = 0
    for f in feats:
        for poly in _polygons(f["geometry"]):
            assert _signed_area(np.asarray(poly[0])) > 0, "exterior ring must be CCW"
            rings += 1
            for hole in poly[1:]:
                assert _signed_area(np.asarray(hole)) < 0, "hole must be CW"
                holes += 1
    if layer.geom_type.isin(["Polygon", "MultiPolygon"]).any():
        assert rings >= len(layer)


# --------------------------------------------------------------------------- exports


def test_geojson_follows_rfc7946(toronto, toronto_export) -> None:
    layers, rows = toronto
    folder, result = toronto_export
    assert set(layers) == {"neighbourhoods", "cells", "breaks"}
    assert result["files"]["geojson"] == [f"geojson/{n}.geojson" for n in layers]
    for name, layer in layers.items():
        _check_geojson(folder / "geojson" / f"{name}.geojson", layer, rows[name])
    # nulls are JSON null: Toronto breaks are not linked to pipes
    doc = json.loads((folder / "geojson" / "breaks.geojson").read_text())
    assert doc["features"][0]["properties"]["pipe"] is None
    assert doc["features"][0]["properties"]["break_id"] == layers["breaks"]["break_id"].iloc[0]


def test_geojson_is_deterministic(toronto, toronto_export, tmp_path) -> None:
    folder, _ = toronto_export
    again = export_layers(toronto[0], tmp_path, formats=["geojson"])
    assert set(again["files"]) == {"geojson"}
    for rel in again["files"]["geojson"]:
        assert (tmp_path / rel).read_bytes() == (folder / rel).read_bytes(), rel


def test_gpkg_and_geoparquet_read_back(toronto, toronto_export) -> None:
    layers, rows = toronto
    folder, result = toronto_export
    assert result["rows"] == rows
    assert result["files"]["gpkg"] == [GPKG_NAME]
    gpkg = folder / GPKG_NAME
    assert [str(n) for n in pyogrio.list_layers(gpkg)[:, 0]] == list(layers)
    for name, layer in layers.items():
        info = pyogrio.read_info(gpkg, layer=name)
        assert info["crs"] == "EPSG:4326"
        assert info["features"] == rows[name]
        pq = gpd.read_parquet(folder / "geoparquet" / f"{name}.parquet")
        assert pq.crs.to_epsg() == 4326
        assert len(pq) == rows[name]
        assert list(pq.columns) == list(layer.columns)
        np.testing.assert_allclose(pq.total_bounds, layer.total_bounds, atol=1e-9)
    # no temporary files left behind
    assert not [p for p in folder.rglob("*") if ".tmp" in p.name]


def test_line_layers_export(synthetic, tmp_path) -> None:
    layers, rows = synthetic
    assert {"pipes", "streets"} <= set(layers)
    result = export_layers(layers, tmp_path, formats=("geojson", "geoparquet"))
    assert "gpkg" not in result["files"] and not (tmp_path / GPKG_NAME).exists()
    for name in ("pipes", "streets"):
        _check_geojson(tmp_path / "geojson" / f"{name}.geojson", layers[name], rows[name])
        assert len(gpd.read_parquet(tmp_path / "geoparquet" / f"{name}.parquet")) == rows[name]
    # a later export without pipes removes the stale pipe files, keeps the rest
    fewer = {k: v for k, v in layers.items() if k != "pipes"}
    export_layers(fewer, tmp_path, formats=("geojson", "geoparquet"))
    assert not (tmp_path / "geojson" / "pipes.geojson").exists()
    assert not (tmp_path / "geoparquet" / "pipes.parquet").exists()
    assert (tmp_path / "geojson" / "streets.geojson").exists()


def test_plain_geojson_is_the_rfc7946_bytes(synthetic, toronto, tmp_path, monkeypatch) -> None:
    """Points and lines are written without GDAL's RFC 7946 mode, with the same bytes."""
    from twmb_geo.maps import exports

    layers = {**toronto[0], **synthetic[0]}
    real = exports._needs_rfc7946_mode
    seen: dict[str, bool] = {}

    def noted(parquet):
        seen[str(len(seen))] = needs = real(parquet)
        return needs

    monkeypatch.setattr(exports, "_needs_rfc7946_mode", noted)
    plain = export_layers(layers, tmp_path / "plain", formats=["geojson"])
    # breaks, streets and pipes took the plain mode; cells and neighbourhoods (polygons) not
    assert sorted(seen.values()) == [False] * 3 + [True] * 2
    monkeypatch.setattr(exports, "_needs_rfc7946_mode", lambda parquet: True)
    rfc = export_layers(layers, tmp_path / "rfc", formats=["geojson"])
    assert plain["files"] == rfc["files"]
    for rel in plain["files"]["geojson"]:
        got = (tmp_path / "plain" / rel).read_bytes()
        assert got == (tmp_path / "rfc" / rel).read_bytes(), rel
        assert b'"crs"' not in got[:500]


def test_lines_across_the_antimeridian_are_cut(synthetic, tmp_path) -> None:
    """A layer wider than a hemisphere keeps GDAL's RFC 7946 mode, which cuts the lines."""
    pipes = synthetic[0]["pipes"].head(3).to_crs("EPSG:4326")
    pipes = pipes.set_geometry(
        [
            shapely.LineString([(179.9, -17.0), (-179.9, -17.1)]),  # across: cut in two
            shapely.LineString([(178.0, -17.0), (178.5, -17.2)]),
            shapely.LineString([(-179.5, -16.0), (-179.0, -16.2)]),
        ]
    )
    export_layers({"pipes": pipes}, tmp_path, formats=["geojson"])
    doc = json.loads((tmp_path / "geojson" / "pipes.geojson").read_text())
    assert "crs" not in doc
    first = doc["features"][0]["geometry"]
    assert first["type"] == "MultiLineString" and len(first["coordinates"]) == 2
    xs = [p[0] for f in doc["features"] for p in _positions(f["geometry"]["coordinates"])]
    assert min(xs) >= -180.0 and max(xs) <= 180.0
    assert {180.0, -180.0} <= set(xs)


def _geo_metadata(path: Path) -> dict:
    """A GeoParquet file's ``geo`` metadata, without who wrote it."""
    meta = json.loads(papq.read_schema(path).metadata[b"geo"])
    meta.pop("creator")
    return meta


@pytest.mark.parametrize(
    ("city", "rows"), [("synthetic", 97), ("synthetic", 1_000), ("toronto", 4_999)]
)
def test_layer_blocks_join_into_the_whole_layers(
    city, rows, synthetic_store, synthetic, bundled_cfg, toronto
) -> None:
    """Read a block at a time, every layer is the whole layer: same rows, order and types."""
    store_path = synthetic_store if city == "synthetic" else bundled_cfg.store_path
    layers = (synthetic if city == "synthetic" else toronto)[0]
    with tw.open_store(store_path, read_only=True) as store:
        blocks = list(iter_layer_blocks(store, rows))
    assert [n for n, _ in blocks] == sorted((n for n, _ in blocks), key=list(layers).index)
    assert max(len(b) for _, b in blocks) <= rows
    for name, whole in layers.items():
        parts = [b for n, b in blocks if n == name]
        assert len(parts) == math.ceil(len(whole) / rows), name
        assert all(b.crs == whole.crs for b in parts)
        pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole, obj=name)
    with pytest.raises(ValueError, match="at least 1"):
        next(iter_layer_blocks(None, 0))  # type: ignore[arg-type]


class _Table:
    """The little of a store :func:`key_blocks` reads, over one DuckDB table ``t(k)``."""

    def __init__(self, keys: list) -> None:
        import duckdb

        self.con = duckdb.connect()
        self.con.execute("CREATE TABLE t (k VARCHAR)")
        if keys:
            self.con.executemany("INSERT INTO t VALUES (?)", [[k] for k in keys])

    def has_table(self, name: str) -> bool:
        return name == "t"

    def count(self, name: str) -> int:
        return int(self.con.execute("SELECT count(*) FROM t").fetchall()[0][0])

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    def rows(self, block) -> list:
        cond, params = block.where("k")
        return [r[0] for r in self.con.execute(f"SELECT k FROM t WHERE {cond}", params).fetchall()]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    keys=st.lists(st.one_of(st.none(), st.text("abcé", max_size=3)), max_size=40),
    rows=st.integers(1, 12),
)
def test_blocks_hold_every_row_once(keys: list, rows: int) -> None:
    """Blocks partition a table's rows in key order (nulls last), at most ``rows`` each
    when the keys are unique."""
    table = _Table(keys)
    got = [table.rows(b) for b in key_blocks(table, "t", "k", rows)]  # type: ignore[arg-type]
    flat = [k for part in got for k in part]
    assert sorted(flat, key=lambda k: (k is None, k or "")) == sorted(
        keys, key=lambda k: (k is None, k or "")
    )
    lows = [min((k for k in part if k is not None), default=None) for part in got]
    assert lows == sorted(lows, key=lambda k: (k is None, k or ""))
    if len(set(keys)) == len(keys):
        assert all(0 < len(part) <= rows for part in got)
    assert (got == []) == (keys == [])


def test_a_layer_written_in_blocks_is_the_layer_written_whole(synthetic, tmp_path) -> None:
    """Blocks give the files GDAL and geopandas write of the whole layer: the same GeoJSON
    bytes, GeoParquet rows and metadata, GeoPackage table and geometry type (a line layer
    mixing single and multi line strings is a multi line string table, as pyogrio makes)."""
    layer = synthetic[0]["pipes"].copy()
    lines = layer.geometry.to_numpy().copy()
    one_part = np.flatnonzero(shapely.get_num_geometries(lines) == 1)[::3]
    lines[one_part] = shapely.get_geometry(lines[one_part], 0)  # now single line strings
    layer = layer.set_geometry(gpd.GeoSeries(lines, crs=layer.crs))
    prepared = _prepare("pipes", layer)
    reference = tmp_path / "reference"
    (reference / "geojson").mkdir(parents=True)
    options = {"RFC7946": "YES", "COORDINATE_PRECISION": "7", "WRITE_BBOX": "NO"}
    pyogrio.write_dataframe(
        prepared, reference / "pipes.geojson", layer="pipes", driver="GeoJSON",
        layer_options=options, use_arrow=True,
    )  # fmt: skip
    pyogrio.write_dataframe(prepared, reference / "p.gpkg", layer="pipes", use_arrow=True)
    prepared.to_parquet(reference / "pipes.parquet", index=False)
    with LayerExporter(tmp_path / "blocks") as exporter, exporter.layer("pipes") as out:
        for start in range(0, len(layer), 97):
            out.write(layer.iloc[start : start + 97])
        assert out.rows == len(layer)
    blocks = tmp_path / "blocks"
    assert (blocks / "geojson/pipes.geojson").read_bytes() == (
        reference / "pipes.geojson"
    ).read_bytes()
    assert_geodataframe_equal(
        gpd.read_parquet(blocks / "geoparquet/pipes.parquet"),
        gpd.read_parquet(reference / "pipes.parquet"),
    )
    meta = _geo_metadata(blocks / "geoparquet/pipes.parquet")
    assert meta == _geo_metadata(reference / "pipes.parquet")
    assert meta["columns"]["geometry"]["geometry_types"] == ["LineString", "MultiLineString"]
    assert papq.ParquetFile(blocks / "geoparquet/pipes.parquet").num_row_groups == math.ceil(
        len(layer) / 97
    )
    info = pyogrio.read_info(blocks / GPKG_NAME, layer="pipes")
    assert info["geometry_type"] == "MultiLineString"
    assert info["geometry_type"] == pyogrio.read_info(reference / "p.gpkg")["geometry_type"]
    back = pyogrio.read_dataframe(blocks / GPKG_NAME, layer="pipes")
    assert_geodataframe_equal(back, pyogrio.read_dataframe(reference / "p.gpkg"))
    assert (back.geom_type == "MultiLineString").all()  # promoted, as the table's type says
    assert not [p for p in blocks.rglob("*") if p.name.startswith(".")]  # no scratch left
    # without GeoParquet, the blocks go to a scratch file that never has a name
    plain = tmp_path / "plain"
    with LayerExporter(plain, ("geojson", "gpkg")) as exporter, exporter.layer("pipes") as out:
        for start in range(0, len(layer), 97):
            out.write(layer.iloc[start : start + 97])
            assert not list(plain.rglob("*.parquet")), "a named scratch file"
    assert (plain / "geojson/pipes.geojson").read_bytes() == (
        reference / "pipes.geojson"
    ).read_bytes()
    assert_geodataframe_equal(pyogrio.read_dataframe(plain / GPKG_NAME, layer="pipes"), back)
    assert sorted(p.name for p in plain.rglob("*")) == sorted(
        [GPKG_NAME, "geojson", "pipes.geojson"]
    )


def test_blocks_of_a_layer_must_agree(synthetic, tmp_path) -> None:
    """A block whose columns cannot take the types of the first block is refused by name;
    the layer's files are not left half written."""
    layer = synthetic[0]["streets"]
    refused = pytest.raises(InputDataError, match="'streets': a block's columns")
    exporter = LayerExporter(tmp_path, formats=("geojson",))
    with refused, exporter, exporter.layer("streets") as out:
        out.write(layer.iloc[:10].assign(note=1.5))
        out.write(layer.iloc[10:20].assign(note="long"))
    assert not (tmp_path / "geojson" / "streets.geojson").exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    no_block = pytest.raises(ValueError, match="no block")
    with LayerExporter(tmp_path) as exporter, no_block, exporter.layer("streets"):
        pass


_GPKG_TYPE = {"string": "TEXT", "int32": "MEDIUMINT", "int64": "INTEGER", "float64": "REAL"}
_GPKG_TYPE["date"] = "DATE"
_ARROW_TYPE = {"string": "string", "int32": "int32", "int64": "int64", "float64": "double"}
_ARROW_TYPE["date"] = "date32[day]"


def _file_types(folder: Path, name: str) -> tuple[dict[str, str], dict[str, str]]:
    import sqlite3

    import pyarrow.parquet as papq

    with sqlite3.connect(folder / GPKG_NAME) as con:
        cols = con.execute(f'PRAGMA table_info("{name}")').fetchall()
    gpkg = {c[1]: c[2] for c in cols if c[1] not in ("fid", "geom")}
    schema = papq.read_schema(folder / "geoparquet" / f"{name}.parquet")
    arrow = {f.name: str(f.type) for f in schema if f.name != "geometry"}
    return gpkg, arrow


def test_attribute_types_are_declared_and_the_same_for_every_city(
    toronto, synthetic, toronto_export, tmp_path
) -> None:
    """Toronto (scored) and an unscored synthetic city with pipes write every layer column
    with its declared type, all-null columns included (no TEXT dates, REAL nulls or Arrow
    null types)."""
    folder, _ = toronto_export
    export_layers(synthetic[0], tmp_path)
    seen: dict[str, tuple] = {}
    for where, layers in ((folder, toronto[0]), (tmp_path, synthetic[0])):
        for name in layers:
            gpkg, arrow = _file_types(where, name)
            declared = LAYER_TYPES[name]
            assert list(gpkg) == list(declared) == list(arrow), name
            assert gpkg == {c: _GPKG_TYPE[t] for c, t in declared.items()}, name
            assert arrow == {c: _ARROW_TYPE[t] for c, t in declared.items()}, name
            if name in seen:
                assert seen[name] == (gpkg, arrow), name  # the same in both cities
            seen[name] = (gpkg, arrow)
    unscored = gpd.read_parquet(tmp_path / "geoparquet" / "pipes.parquet")
    assert unscored["risk_score"].isna().all()  # all null, and still typed double


@pytest.mark.parametrize("formats", [["shapefile"], ["geojson", "kml"], []])
def test_unknown_formats_are_rejected(formats, tmp_path) -> None:
    with pytest.raises(InputDataError) as err:
        export_layers({}, tmp_path, formats=formats)
    for fmt in EXPORT_FORMATS:
        assert fmt in str(err.value)
    assert not list(tmp_path.iterdir())


def test_layer_without_crs_is_rejected(tmp_path) -> None:
    layer = gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.Point(0, 0)])
    with pytest.raises(InputDataError, match="no CRS"):
        export_layers({"cells": layer}, tmp_path)


# --------------------------------------------------------------------------- ring orientation


@st.composite
def star_rings(
    draw, r_min: float, r_max: float, centre: tuple[float, float], n_min: int = 3
) -> np.ndarray:
    """A simple closed ring: vertices at increasing angles, random radii; either winding.

    With at least 5 vertices and jitter below half a step, no gap between vertex angles
    exceeds 108 degrees, so every edge stays at least ``0.58 * r_min`` from the centre.
    """
    n = draw(st.integers(n_min, 12))
    jitter = draw(st.lists(st.floats(0.0, 0.5), min_size=n, max_size=n))
    radii = draw(st.lists(st.floats(r_min, r_max), min_size=n, max_size=n))
    angle = 2 * math.pi * (np.arange(n) + np.asarray(jitter)) / n
    ring = np.c_[np.asarray(radii) * np.cos(angle), np.asarray(radii) * np.sin(angle)]
    ring = ring + np.asarray(centre)
    if draw(st.booleans()):
        ring = ring[::-1]
    return np.vstack([ring, ring[:1]])


@st.composite
def polygons(draw) -> shapely.Geometry:
    """A polygon (maybe with a hole) or a multipolygon of two, with random ring windings."""
    parts = []
    for k in range(draw(st.integers(1, 2))):
        centre = (-79.4 + 0.1 * k, 43.7)
        shell = draw(star_rings(0.02, 0.03, centre, n_min=5))
        holes = [draw(star_rings(0.002, 0.011, centre))] if draw(st.booleans()) else []
        parts.append(shapely.Polygon(shell, holes))
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


@settings(max_examples=150, deadline=None)
@given(polygons())
def test_orientation_is_right_hand_and_keeps_the_shape(geom: shapely.Geometry) -> None:
    from twmb_geo.maps.exports import _orient_fallback

    assert geom.is_valid
    out = orient_rfc7946([geom])[0]
    assert out.geom_type == geom.geom_type
    assert shapely.equals(out, geom)
    assert math.isclose(out.area, geom.area, rel_tol=1e-12)
    for poly in shapely.get_parts(out):
        assert _signed_area(shapely.get_coordinates(poly.exterior)) > 0
        for hole in poly.interiors:
            assert _signed_area(shapely.get_coordinates(hole)) < 0
    # the shapely < 2.1 fallback gives the same rings
    assert shapely.equals_exact(_orient_fallback(np.array([geom], dtype=object))[0], out)


def test_orientation_passes_other_geometries_through() -> None:
    line = shapely.LineString([(0, 0), (1, 1)])
    point = shapely.Point(1, 2)
    given = np.array([line, None, point], dtype=object)
    out = orient_rfc7946(given)
    assert out is not given and list(out) == [line, None, point]  # the same objects
    # beside polygons (clockwise exteriors, one inside a collection) they stay in place
    cw = shapely.Polygon([(0, 0), (0, 1), (1, 1), (1, 0)])
    mixed = np.array(
        [line, cw, None, shapely.GeometryCollection([point, cw]), shapely.MultiPolygon([cw])],
        dtype=object,
    )
    out = orient_rfc7946(mixed)
    assert out[0] is line and out[2] is None
    whole = shapely.orient_polygons(mixed, exterior_cw=False)  # every geometry given to GEOS
    assert shapely.equals_exact(out[[0, 1, 3, 4]], whole[[0, 1, 3, 4]]).all()
    ccw = shapely.get_coordinates(out[1].exterior)
    assert _signed_area(ccw) > 0 and shapely.equals(out[1], cw)
    assert _signed_area(shapely.get_coordinates(out[3].geoms[1].exterior)) > 0
    assert _signed_area(shapely.get_coordinates(out[4].geoms[0].exterior)) > 0


# --------------------------------------------------------------------------- PNG maps


def _image(path: Path) -> np.ndarray:
    """RGB pixels of a PNG checked for signature, format and page size."""
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == PAGE_PX
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def _map_area(rgb: np.ndarray) -> np.ndarray:
    """The middle of the map frame, where the city is."""
    h, w = rgb.shape[:2]
    return rgb[int(0.25 * h) : int(0.75 * h), int(0.1 * w) : int(0.6 * w)]


def _coloured_share(rgb: np.ndarray) -> float:
    """Share of pixels that are clearly coloured (not white, grey or black)."""
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    return float((chroma > 40).mean())


def _near(rgb: np.ndarray, colour: tuple[int, int, int], tol: int = 30) -> int:
    return int((np.abs(rgb - np.asarray(colour)).max(axis=2) <= tol).sum())


def test_toronto_maps_are_drawn(toronto_maps) -> None:
    assert list(toronto_maps) == ["risk_cells", "hotspots", "break_density"]
    for name, path in toronto_maps.items():
        assert path.name == f"{name}.png"
        rgb = _image(path)
        assert rgb.std() > 20, f"{name} looks blank"
        share = _coloured_share(_map_area(rgb))
        assert share > 0.25, f"{name}: only {share:.0%} coloured pixels where the city is"
    # the very-high tier colour is on the risk map
    assert _near(_map_area(_image(toronto_maps["risk_cells"])), VERY_HIGH_RGB) > 50


def test_maps_are_deterministic(toronto, toronto_maps, tmp_path) -> None:
    again = render_maps(toronto[0], tmp_path)
    assert list(again) == list(toronto_maps)
    for name, path in again.items():
        assert path.read_bytes() == toronto_maps[name].read_bytes(), name


def test_maps_without_data_are_skipped(toronto, tmp_path, caplog) -> None:
    layers = dict(toronto[0])
    cells = layers["cells"].copy()
    cells["tier"] = "unscored"
    cells["hotspot_class"] = "not computed"
    layers["cells"] = cells
    stale = tmp_path / "risk_cells.png"
    stale.write_bytes(b"old")
    with caplog.at_level(logging.INFO, logger="twmb_geo.maps.static"):
        maps = render_maps(layers, tmp_path)
    assert list(maps) == ["break_density"]
    assert not stale.exists(), "a stale map of a skipped name must be removed"
    assert "risk_cells skipped" in caplog.text and "risk score" in caplog.text
    assert "hotspots skipped" in caplog.text and "tier_pipes skipped" in caplog.text
    assert render_maps({}, tmp_path / "none") == {}


def test_tier_maps_of_pipes_and_streets(synthetic, tmp_path) -> None:
    layers = dict(synthetic[0])
    # without a model the lines are unscored: no tier maps
    unscored = render_maps(layers, tmp_path / "unscored")
    assert "tier_pipes" not in unscored and "tier_streets" not in unscored
    layers["pipes"] = _with_fake_tiers(layers["pipes"], 1)
    layers["streets"] = _with_fake_tiers(layers["streets"], 2)
    maps = render_maps(layers, tmp_path / "scored", place="Testville")
    assert {"tier_pipes", "tier_streets", "break_density"} <= set(maps)
    assert set(maps) <= set(MAP_NAMES)
    for name in ("tier_pipes", "tier_streets"):
        rgb = _image(maps[name])
        assert rgb.std() > 20
        assert _near(_map_area(rgb), VERY_HIGH_RGB) > 50, f"{name}: very high lines missing"


def test_maps_of_the_columns_they_read_are_the_same(synthetic, toronto, tmp_path) -> None:
    """The stage keeps of each layer only what the static maps read; the PNGs stay the same."""
    layers = dict(synthetic[0])
    layers["pipes"] = _with_fake_tiers(layers["pipes"], 1)
    layers["streets"] = _with_fake_tiers(layers["streets"], 2)
    for name, full in (("synthetic", layers), ("toronto", toronto[0])):
        views = {k: map_view(v) for k, v in full.items()}
        assert all(set(v.columns) < set(full[k].columns) for k, v in views.items())
        every = render_maps(full, tmp_path / name / "full", place="Testville", source="src")
        slim = render_maps(views, tmp_path / name / "view", place="Testville", source="src")
        assert set(every) == set(slim) and len(every) >= 3
        for key, path in every.items():
            assert path.read_bytes() == slim[key].read_bytes(), f"{name}: {key}"


def test_maps_drawn_a_block_at_a_time_are_the_maps_of_the_whole_layers(
    synthetic, toronto, tmp_path
) -> None:
    """Views added in blocks (of one feature: every tier's lines drawn one at a time, too)
    draw the same bytes as whole layers, lines with no geometry and multi-part lines
    included; the scratch file of the lines leaves nothing in the folder."""
    layers = dict(synthetic[0])
    pipes = _with_fake_tiers(layers["pipes"], 1)
    geoms = pipes.geometry.to_numpy().copy()
    geoms[:3] = None
    geoms[3] = shapely.LineString()
    geoms[4] = shapely.multilinestrings(shapely.get_parts(geoms[5:7]))
    layers["pipes"] = pipes.set_geometry(geoms)
    layers["streets"] = _with_fake_tiers(layers["streets"], 2)
    head = {k: v.iloc[:200] for k, v in layers.items()}  # blocks of one feature: a few hundred
    cases = (("synthetic", layers, (97,)), ("head", head, (1,)), ("toronto", toronto[0], (4_999,)))
    for name, whole, rows in cases:
        every = render_maps(whole, tmp_path / name / "whole", place="Testville", source="src")
        assert len(every) >= 3
        assert {"tier_pipes", "tier_streets"} <= set(every) or name == "toronto"
        for n in rows:
            scratch = tmp_path / name / f"scratch{n}"
            with MapViews.of(whole, block_rows=n, scratch=scratch) as views:
                assert not scratch.exists() or not any(scratch.iterdir()), "a named scratch file"
                maps = render_maps(views, tmp_path / name / str(n), place="Testville", source="src")
            assert set(maps) == set(every)
            for key, path in every.items():
                assert maps[key].read_bytes() == path.read_bytes(), f"{name}, blocks of {n}: {key}"


def test_tier_maps_hold_one_block_of_lines(synthetic, monkeypatch, tmp_path) -> None:
    """The views keep no line geometry, and a tier's lines are handed to matplotlib one
    block at a time, every part once, in layer order."""
    layers = dict(synthetic[0])
    layers["pipes"] = _with_fake_tiers(layers["pipes"], 1)
    layers["streets"] = _with_fake_tiers(layers["streets"], 2)
    drawn: list[list[np.ndarray]] = []
    original = static._SpooledLines.set_segments

    def spy(self, segments):
        if len(segments):
            drawn.append(list(segments))
        return original(self, segments)

    monkeypatch.setattr(static._SpooledLines, "set_segments", spy)
    with MapViews.of(layers, block_rows=50) as views:
        pipes = views.lines("pipes")
        assert pipes is not None and not any(
            isinstance(v, gpd.GeoSeries | shapely.Geometry) for v in vars(pipes).values()
        )
        assert not any(isinstance(c.dtype, gpd.array.GeometryDtype) for _, c in pipes.attrs.items())
        render_maps(views, tmp_path, place="Testville")
    parts = sum(len(shapely.get_parts(layers[k].geometry.to_numpy())) for k in ("pipes", "streets"))
    assert sum(map(len, drawn)) == parts
    assert max(map(len, drawn)) <= 50 * max(
        int(shapely.get_num_geometries(layers[k].geometry.to_numpy()).max())
        for k in ("pipes", "streets")
    )
    assert len(drawn) > parts // 50


def test_a_line_layer_without_scores_keeps_no_parts(synthetic, tmp_path) -> None:
    """A line layer without a ``tier`` column (a store not scored yet) draws no tier map, so
    its parts are not written to the scratch file; its rows and bounds are still kept
    (a block of empty lines only adds neither)."""
    layers = dict(synthetic[0])
    pipes = layers["pipes"].drop(columns=[c for c in ("tier",) if c in layers["pipes"]])
    empty = pipes.iloc[:3].copy()
    empty.geometry = [shapely.LineString()] * 3
    pipes = pd.concat([empty, pipes], ignore_index=True)
    scored = _with_fake_tiers(layers["pipes"], 1)
    with MapViews(tmp_path) as views:
        views.add("pipes", pipes.iloc[:3])
        views.add("pipes", pipes.iloc[3:])
        views.add("streets", _with_fake_tiers(layers["streets"], 2))
        lines = views.lines("pipes")
        assert lines is not None and "tier" not in lines.attrs
        assert len(lines.attrs) == len(pipes) - 3  # empty lines are not drawn
        assert lines.blocks == [] and lines.file.seek(0, 2) == 0
        want = projected(pipes.iloc[3:]).total_bounds
        np.testing.assert_array_equal(lines.bounds, want)
        assert lines.part_count("unscored") == 0 and list(lines.parts("unscored")) == []
    with MapViews(tmp_path) as views:
        views.add("pipes", scored)
        lines = views.lines("pipes")
        assert lines is not None and lines.blocks and lines.file.seek(0, 2) > 0


# --------------------------------------------------------------------------- the maps stage


def test_the_stage_writes_what_the_whole_layers_give(
    bundled_cfg, toronto, toronto_export, tmp_path
) -> None:
    """Block by block (5,000 features: the cells and the breaks in several), the stage's
    files equal those of every layer held at once."""
    cfg = replace(bundled_cfg, compute=replace(bundled_cfg.compute, partition_rows=5_000))
    result = make_maps(cfg, folder=tmp_path)
    folder, whole = toronto_export
    assert result["rows"] == whole["rows"] == {k: len(v) for k, v in toronto[0].items()}
    assert max(result["rows"].values()) > 5_000
    assert result["exports"]["files"] == whole["files"]
    for rel in whole["files"]["geojson"]:
        assert (tmp_path / rel).read_bytes() == (folder / rel).read_bytes(), rel
    for rel in whole["files"]["geoparquet"]:
        back, again = gpd.read_parquet(tmp_path / rel), gpd.read_parquet(folder / rel)
        assert_geodataframe_equal(back, again, check_less_precise=False)
        assert _geo_metadata(tmp_path / rel) == _geo_metadata(folder / rel), rel
    for name, layer in toronto[0].items():
        back = gpd.read_file(tmp_path / GPKG_NAME, layer=name, engine="pyogrio")
        again = gpd.read_file(folder / GPKG_NAME, layer=name, engine="pyogrio")
        assert len(back) == len(layer)
        assert back.drop(columns="geometry").equals(again.drop(columns="geometry")), name
        assert back.geometry.geom_equals_exact(again.geometry, 0).all(), name
    place, credit = bundled_cfg.city_name, bundled_cfg.credit_line()
    pngs = render_maps(toronto[0], tmp_path / "whole", place=place, source=credit)
    assert set(result["png"]) == set(pngs)
    for key, path in pngs.items():
        assert Path(result["png"][key]).read_bytes() == path.read_bytes(), key
    title = f"{place} water main breaks"
    page = write_html_map(toronto[0], tmp_path / "whole.html", title=title, source=credit)
    assert Path(result["html"]["path"]).read_bytes() == Path(page["path"]).read_bytes()
    assert result["html"]["totals"] == result["html"]["layers"] == result["rows"]


def test_the_stage_holds_one_block_at_a_time(bundled_cfg, monkeypatch, tmp_path) -> None:
    """When the next block is read, nothing holds the one before (the stage's memory is one
    block plus what the maps keep); the HTML map is cut to ``[maps] html_max_features``."""
    alive: list[weakref.ref] = []
    seen: list[tuple[str, int]] = []
    built = stage.iter_layer_blocks

    def watched(store, block_rows):
        for name, block in built(store, block_rows):
            gc.collect()
            assert [r for r in alive if r() is not None] == [], f"a block is held at {name}"
            alive.append(weakref.ref(block))
            seen.append((name, len(block)))
            yield name, block

    monkeypatch.setattr(stage, "iter_layer_blocks", watched)
    cfg = replace(
        bundled_cfg,
        maps=MapsConfig(html_max_features=50),
        compute=replace(bundled_cfg.compute, partition_rows=2_000),
    )
    result = make_maps(cfg, folder=tmp_path)
    assert len(alive) > len(result["rows"]) >= 3  # the cells and the breaks in blocks
    assert max(n for _, n in seen) == 2_000
    for name, rows in result["rows"].items():
        assert sum(n for layer, n in seen if layer == name) == rows, name
    html = result["html"]
    assert html["totals"] == result["rows"]
    assert all(n <= 50 for name, n in html["layers"].items() if name != "breaks")
    assert any(html["layers"][k] < html["totals"][k] for k in html["layers"])
    text = Path(html["path"]).read_text(encoding="utf-8")
    assert '"subset":"highest risk"' in text and '"subset":"latest years"' in text


_SOURCE = '[[sources]]\nid = "n"\nprofile = "toronto_neighbourhoods_140"\npath = "n.zip"\n'


def test_maps_section_of_the_config(tmp_path) -> None:
    path = tmp_path / "twmb.toml"
    path.write_text("[maps]\nhtml_max_features = 2500\n\n" + _SOURCE, encoding="utf-8")
    cfg = tw.load_config(path)
    assert cfg.maps == MapsConfig(html_max_features=2500)
    again = tw.load_config(tw.write_config(cfg, tmp_path / "again.toml"))
    assert again.maps == cfg.maps
    default = tw.write_config(tw.default_config(tmp_path / "out"), tmp_path / "d.toml")
    assert "[maps]" not in default.read_text(encoding="utf-8")  # defaults are left out
    assert set(config_schema()["properties"]["maps"]["properties"]) == set(
        MapsConfig.__dataclass_fields__
    )
    for bad in ("0", "-5", "1.5", '"all"', "true"):
        path.write_text(f"[maps]\nhtml_max_features = {bad}\nzoom = 3\n\n" + _SOURCE)
        with pytest.raises(tw.ConfigError) as err:
            tw.load_config(path)
        problems = err.value.problems
        assert any("[maps] html_max_features must be an integer >= 1" in p for p in problems)
        assert any("[maps] has unknown keys ['zoom']" in p for p in problems), problems


def test_an_export_that_fails_leaves_the_files_before_it(toronto, tmp_path) -> None:
    layers = toronto[0]
    export_layers(layers, tmp_path, formats=("gpkg",))
    before = (tmp_path / GPKG_NAME).read_bytes()
    first = next(iter(layers))
    with pytest.raises(RuntimeError, match="stopped"), LayerExporter(tmp_path) as exporter:
        exporter.write(first, layers[first])
        with pytest.raises(InputDataError, match="written twice"):
            exporter.write(first, layers[first])
        raise RuntimeError("stopped")
    assert (tmp_path / GPKG_NAME).read_bytes() == before  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
