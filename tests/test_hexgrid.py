"""H3 organisation: resolutions, points, exact per-cell line lengths, the Toronto cover."""

from __future__ import annotations

import logging

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import BREAKS_ZIP, NEIGHBOURHOODS_ZIP
from hypothesis import given, settings
from hypothesis import strategies as st

import twmb_geo as tw
from twmb_geo.core.crs import transform_xy
from twmb_geo.errors import ConfigError, InputDataError
from twmb_geo.spatial import hexgrid as hg
from twmb_geo.spatial import hexlines

X0, Y0 = 313_000.0, 4_840_000.0  # downtown Toronto, EPSG:2952


def _brute_lengths(line: shapely.Geometry, res: int) -> pd.Series:
    """Per-cell lengths by intersecting the line with every cell of a covering disk."""
    mid = shapely.line_interpolate_point(line, 0.5, normalized=True)
    lon, lat, _ = transform_xy(np.array([mid.x]), np.array([mid.y]), "EPSG:2952", "EPSG:4326")
    centre = h3i.latlng_to_cell(lat[0], lon[0], res)
    k = int(np.ceil(line.length / 2 / (np.sqrt(3) * 0.8 * hg.edge_length_m(res)))) + 2
    cells = np.sort(np.asarray(h3i.grid_disk(centre, k), dtype=np.uint64))
    lens = shapely.length(shapely.intersection(line, hg.cell_polygons(cells)))
    assert abs(lens.sum() - line.length) <= 1e-6 * line.length  # the disk covers the line
    s = pd.Series(lens, index=cells)
    return s[s > 1e-9]


def _check_rows(df: pd.DataFrame, lines: np.ndarray, ids: np.ndarray | None = None) -> None:
    ids = np.arange(len(lines)) if ids is None else ids
    total = df.groupby("line")["length_m"].sum().reindex(ids).to_numpy()
    expect = shapely.length(lines)
    np.testing.assert_allclose(total, expect, rtol=1e-9)
    assert df["cell"].dtype == np.uint64
    assert (df["length_m"] > 0).all()
    assert not df.duplicated(["line", "cell"]).any()


# --------------------------------------------------------------------------- resolution


@pytest.mark.parametrize("res", [0, 9, 15, np.int64(7), np.uint8(3)])
def test_check_resolution_ok(res):
    assert hg.check_resolution(res) == int(res)


@pytest.mark.parametrize("res", [16, -1, 9.0, "9", True, None, 99])
def test_check_resolution_bad(res):
    with pytest.raises(ConfigError, match=r"0\.\.15") as exc:
        hg.check_resolution(res)
    assert repr(res) in str(exc.value) or str(res) in str(exc.value)


def test_every_function_checks_resolution():
    line = np.array([shapely.LineString([(X0, Y0), (X0 + 10, Y0)])])
    for call in (
        lambda: hg.points_to_cells([-79.4], [43.7], 16),
        lambda: hg.lines_to_cells(line, -1),
        lambda: hg.grid_cover(shapely.box(X0, Y0, X0 + 1, Y0 + 1), 16),
        lambda: hg.cell_parents([h3i.latlng_to_cell(43.7, -79.4, 9)], 9.5),
    ):
        with pytest.raises(ConfigError):
            call()


# --------------------------------------------------------------------------- points, cells


def test_points_to_cells_matches_h3_and_nan_is_zero():
    rng = np.random.default_rng(3)
    lon = -79.6 + rng.random(500) * 0.5
    lat = 43.6 + rng.random(500) * 0.25
    lon[::50] = np.nan
    cells = hg.points_to_cells(lon, lat, 9)
    assert cells.dtype == np.uint64 and cells.shape == (500,)
    assert (cells[::50] == 0).all()
    ok = ~np.isnan(lon)
    expect = [h3i.latlng_to_cell(a, b, 9) for a, b in zip(lat[ok], lon[ok], strict=True)]
    assert cells[ok].tolist() == expect
    assert hg.points_to_cells(np.full((2, 3), -79.4), 43.7, 5).shape == (2, 3)


def test_points_to_cells_bad_lat_lists_every_position():
    with pytest.raises(InputDataError) as exc:
        hg.points_to_cells([-79.4, -79.4, -79.4, np.inf], [43.7, 95.0, -91.0, 43.7], 9)
    text = str(exc.value)
    assert "3 point(s)" in text and "position 1" in text and "position 2" in text
    assert "position 3" in text


def test_cell_str_round_trip_and_validation():
    cells = hg.points_to_cells([-79.4, np.nan, -79.3], [43.7, np.nan, 43.8], 9)
    s = hg.cell_str(cells)
    assert s[1] == "" and s[0] == h3i.int_to_str(int(cells[0])) and len(s[2]) == 15
    assert (hg.cells_from_str(s) == cells).all()
    assert (hg._as_cells(s) == cells).all()
    with pytest.raises(InputDataError, match="invalid H3 cell"):
        hg.cells_from_str(["89f2bc8ffffffff", "nonsense"])
    with pytest.raises(InputDataError, match="invalid H3 cell"):
        hg.cell_str([12345])


def test_cell_polygons_centroids_and_lat_lng_order():
    cells = hg.points_to_cells([-79.40, -79.35, -79.30, np.nan], [43.65, 43.70, 43.75, np.nan], 9)
    lon, lat = hg.cell_centroids(cells)
    assert np.isnan(lon[3]) and np.isnan(lat[3])
    assert np.allclose([lat[0], lon[0]], h3i.cell_to_latlng(int(cells[0])))
    ll = hg.cell_polygons(cells, crs="EPSG:4326")
    assert ll[3] is None
    ring = np.asarray(ll[0].exterior.coords)[:-1]
    bnd = np.asarray(h3i.cell_to_boundary(int(cells[0])))  # (lat, lng)
    assert ring[:, 0].min() < -79 and ring[:, 1].min() > 43  # x = lon, y = lat
    assert {tuple(r) for r in np.round(ring, 12)} == {tuple(b) for b in np.round(bnd[:, ::-1], 12)}
    polys = hg.cell_polygons(cells[:3])
    assert all(p.exterior.is_ccw for p in polys)
    x, y, _ = transform_xy(lon[:3], lat[:3], "EPSG:4326", "EPSG:2952")
    assert shapely.contains_xy(polys, x, y).all()
    # planar area in EPSG:2952 close to H3's geodesic cell area (scale factor ~0.9999)
    areas = np.array([h3i.cell_area(int(c), unit="m^2") for c in cells[:3]])
    np.testing.assert_allclose(shapely.area(polys), areas, rtol=2e-3)


def test_cell_polygons_tile_random_points():
    rng = np.random.default_rng(5)
    x = X0 + rng.random(2000) * 5000
    y = Y0 + rng.random(2000) * 5000
    lon, lat, _ = transform_xy(x, y, "EPSG:2952", "EPSG:4326")
    cells = hg.points_to_cells(lon, lat, 10)
    polys = hg.cell_polygons(cells)
    inside = shapely.dwithin(polys, shapely.points(x, y), 1e-6)
    assert inside.all()


def test_cell_parents():
    cells = hg.points_to_cells([-79.40, -79.35, np.nan], [43.65, 43.70, np.nan], 9)
    par = hg.cell_parents(cells, 7)
    assert par[2] == 0
    assert par[:2].tolist() == [h3i.cell_to_parent(int(c), 7) for c in cells[:2]]
    assert (hg.cell_resolutions(par[:2]) == 7).all()
    assert (hg.cell_parents(cells, 9) == cells).all()
    with pytest.raises(ConfigError, match=r"0\.\.9.*got 10"):
        hg.cell_parents(cells, 10)
    with pytest.raises(ConfigError):
        hg.cell_parents(cells, -1)


# --------------------------------------------------------------------------- lines


def test_line_inside_one_cell_and_between_two_centres():
    c0 = h3i.latlng_to_cell(43.7, -79.4, 9)
    c1 = sorted(h3i.grid_ring(c0, 1))[0]
    lon, lat = hg.cell_centroids(np.array([c0, c1], dtype=np.uint64))
    x, y, _ = transform_xy(lon, lat, "EPSG:4326", "EPSG:2952")
    short = shapely.LineString([(x[0], y[0]), (x[0] + 10.0, y[0])])
    df = hg.lines_to_cells(np.array([short]), 9)
    assert df["cell"].tolist() == [c0] and df["length_m"].iloc[0] == pytest.approx(10.0, abs=1e-9)
    across = shapely.LineString([(x[0], y[0]), (x[1], y[1])])
    df = hg.lines_to_cells(np.array([across]), 9)
    assert sorted(df["cell"].tolist()) == sorted([c0, c1])
    # the shared edge bisects the centre-to-centre segment (H3 hexagons are near regular)
    np.testing.assert_allclose(df["length_m"], across.length / 2, rtol=2e-3)
    assert df["length_m"].sum() == pytest.approx(across.length, rel=1e-12)


def test_straight_line_along_a_known_path_matches_brute_force():
    a = h3i.latlng_to_cell(43.66, -79.42, 10)
    b = h3i.latlng_to_cell(43.69, -79.36, 10)
    lon, lat = hg.cell_centroids(np.array([a, b], dtype=np.uint64))
    x, y, _ = transform_xy(lon, lat, "EPSG:4326", "EPSG:2952")
    line = shapely.LineString(np.column_stack([x, y]))
    df = hg.lines_to_cells(np.array([line]), 10, pieces=True)
    brute = _brute_lengths(line, 10)
    got = df.set_index("cell")["length_m"]
    assert got.index.tolist() == sorted(brute.index.tolist())
    np.testing.assert_allclose(got.to_numpy(), brute.loc[got.index].to_numpy(), rtol=1e-9)
    assert len(df) > 50  # many cells; the H3 grid path's cells are all crossed
    path = set(h3i.grid_path_cells(a, b))
    assert len(path - set(got.index.tolist())) <= 2  # grid path may differ at exact ties
    _check_rows(df, np.array([line]))


@settings(max_examples=40, deadline=None)
@given(
    dx=st.floats(0, 20_000),
    dy=st.floats(0, 20_000),
    angle=st.floats(0, 2 * np.pi),
    length=st.floats(0.01, 3_000),
    res=st.integers(6, 11),
    bend=st.floats(-0.9, 0.9),
)
def test_random_lines_exact_lengths_and_pieces(dx, dy, angle, length, res, bend):
    p0 = np.array([X0 - 10_000 + dx, Y0 - 10_000 + dy])
    d = length * np.array([np.cos(angle), np.sin(angle)])
    p1 = p0 + d / 2 + bend * np.array([-d[1], d[0]]) / 2
    line = shapely.LineString([p0, p1, p0 + d])
    df = hg.lines_to_cells(np.array([line]), res, pieces=True)
    _check_rows(df, np.array([line]))
    pieces = df["geometry"].to_numpy()
    np.testing.assert_allclose(shapely.length(pieces), df["length_m"], rtol=1e-7, atol=1e-7)
    polys = hg.cell_polygons(df["cell"].to_numpy())
    assert shapely.covers(shapely.buffer(polys, 1e-6), pieces).all()
    brute = _brute_lengths(line, res)
    big = brute[brute > 1e-6]
    assert set(big.index.tolist()) <= set(df["cell"].tolist())


def test_many_random_lines_sum_to_length(monkeypatch):
    rng = np.random.default_rng(11)
    n = 5_000
    start = np.column_stack([X0 + rng.random(n) * 15_000, Y0 + rng.random(n) * 15_000])
    ang = rng.random(n) * 2 * np.pi
    length = rng.random(n) * 800
    end = start + length[:, None] * np.column_stack([np.cos(ang), np.sin(ang)])
    lines = shapely.linestrings(np.stack([start, end], axis=1))
    ids = np.array([f"L{i:05d}" for i in rng.permutation(n)], dtype=object)
    df = hg.lines_to_cells(lines, 9, ids=ids)
    _check_rows(df, lines, ids)
    assert df["line"].is_monotonic_increasing
    assert (df.groupby("line")["cell"].apply(lambda c: c.is_monotonic_increasing)).all()
    # the refinement path (pieces too long for the adjacency argument) gives the same rows
    coarse = hg.lines_to_cells(lines[:500], 9, ids=ids[:500], _spacing_factor=4.0)
    fine = hg.lines_to_cells(lines[:500], 9, ids=ids[:500])
    assert coarse[["line", "cell"]].equals(fine[["line", "cell"]])
    np.testing.assert_allclose(coarse["length_m"], fine["length_m"], rtol=1e-9, atol=1e-7)
    # chunking (by pieces, then by pairs) does not change the result
    monkeypatch.setattr(hexlines, "_SUBS_PER_CHUNK", 300)
    monkeypatch.setattr(hexlines, "_PAIRS_PER_CHUNK", 77)
    chunked = hg.lines_to_cells(lines[:500], 9, ids=ids[:500])
    assert chunked[["line", "cell"]].equals(fine[["line", "cell"]])
    np.testing.assert_allclose(chunked["length_m"], fine["length_m"], rtol=1e-12)


def test_multilines_wkb_and_long_lines():
    a = shapely.LineString([(X0, Y0), (X0 + 300, Y0 + 40), (X0 + 500, Y0 - 200)])
    b = shapely.LineString([(X0 + 2_000, Y0), (X0 + 2_000, Y0 + 700)])
    multi = shapely.MultiLineString([a, b])
    long = shapely.LineString([(X0 - 10_000, Y0 - 8_000), (X0 + 12_000, Y0 + 9_000)])
    ring = shapely.LinearRing([(X0, Y0), (X0 + 400, Y0), (X0 + 400, Y0 + 400)])
    geoms = np.array([multi, long, ring])
    df = hg.lines_to_cells(shapely.to_wkb(geoms), 10)
    _check_rows(df, geoms)
    parts = hg.lines_to_cells(np.array([a, b]), 10)
    both = parts.groupby("cell")["length_m"].sum()
    got = df[df["line"] == 0].set_index("cell")["length_m"]
    np.testing.assert_allclose(got.to_numpy(), both.loc[got.index].to_numpy(), rtol=1e-12)
    assert (df["line"] == 1).sum() > 150  # a 27.8 km line at res 10 crosses ~200 cells


def test_degenerate_lines_get_no_rows_and_are_reported(caplog):
    good = shapely.LineString([(X0, Y0), (X0 + 50, Y0 + 50)])
    geoms = np.array(
        [
            good,
            None,
            shapely.LineString(),
            shapely.LineString([(X0, Y0), (X0, Y0)]),
            shapely.MultiLineString([]),
        ],
        dtype=object,
    )
    with caplog.at_level(logging.WARNING, logger="twmb_geo.spatial.hexgrid"):
        df = hg.lines_to_cells(geoms, 9, ids=np.array([10, 11, 12, 13, 14]))
    assert set(df["line"]) == {10}
    assert df.attrs["degenerate"] == [11, 12, 13, 14]
    assert "4 of 5 line(s)" in caplog.text
    empty = hg.lines_to_cells(np.array([None], dtype=object), 9)
    assert empty.empty and list(empty.columns) == ["line", "cell", "length_m"]


def test_bad_lines_are_listed():
    with np.errstate(invalid="ignore"):
        nan_line = shapely.from_wkt(f"LINESTRING ({X0} {Y0}, NaN {Y0})")
    geoms = np.array(
        [
            shapely.Point(X0, Y0),
            nan_line,
            shapely.box(0, 0, 1, 1),
            "not a geometry",
        ],
        dtype=object,
    )
    with pytest.raises(InputDataError, match="not geometries"):
        hg.lines_to_cells(geoms, 9)
    with pytest.raises(InputDataError) as exc:
        hg.lines_to_cells(geoms[:3], 9, ids=["a", "b", "c"])
    text = str(exc.value)
    assert "'a': Point" in text and "'b': non-finite" in text and "'c': Polygon" in text
    line = shapely.LineString([(X0, Y0), (X0 + 1, Y0)])
    with pytest.raises(InputDataError, match="duplicate"):
        hg.lines_to_cells(np.array([line, line]), 9, ids=[1, 1])


# --------------------------------------------------------------------------- cover


@pytest.fixture(scope="module")
def toronto() -> shapely.Geometry:
    res = tw.read_source(NEIGHBOURHOODS_ZIP, "toronto_neighbourhoods_140")
    area = shapely.union_all(shapely.from_wkb(res.tables["neighbourhoods"]["geometry"]))
    shapely.prepare(area)
    return area


def test_grid_cover_toronto_res9(toronto):
    cover = hg.grid_cover(toronto, 9)
    centre = hg.grid_cover(toronto, 9, contain="center")
    # published figure 5,749 = cells whose centre is in the boundary (h3 "center");
    # every cell touching the boundary adds the ring of edge cells (6,024 here).
    assert len(centre) == 5_749
    assert 5_950 <= len(cover) <= 6_100
    assert cover.dtype == np.uint64 and (np.diff(cover.astype(np.int64)) > 0).all()
    assert np.isin(centre, cover).all()
    assert shapely.intersects(toronto, hg.cell_polygons(cover)).all()
    # completeness: no neighbour outside the cover touches the area
    ring = np.setdiff1d(
        np.unique(np.concatenate([h3i.grid_disk(int(c), 1) for c in cover])).astype(np.uint64),
        cover,
    )
    assert not shapely.intersects(toronto, hg.cell_polygons(ring)).any()
    breaks = pyogrio.read_dataframe(BREAKS_ZIP, read_geometry=False, columns=["POINT_X", "POINT_Y"])
    cells = hg.points_to_cells(breaks["POINT_X"].to_numpy(), breaks["POINT_Y"].to_numpy(), 9)
    assert len(cells) > 30_000 and np.isin(cells, cover).all()
    assert not np.isin(cells, centre).all()  # edge cells matter: some breaks are only there


def test_grid_cover_edge_cases(toronto):
    assert hg.grid_cover(shapely.Polygon(), 9).size == 0
    tiny = shapely.box(X0, Y0, X0 + 1, Y0 + 1)
    assert hg.grid_cover(tiny, 9).size in (1, 2)
    assert hg.grid_cover(tiny, 9, contain="center").size <= 1
    with pytest.raises(ConfigError, match="coarser"):
        hg.grid_cover(toronto, 15)
    with pytest.raises(ConfigError, match="contain"):
        hg.grid_cover(tiny, 9, contain="full")
    with pytest.raises(InputDataError, match="polygonal"):
        hg.grid_cover(shapely.Point(X0, Y0), 9)
