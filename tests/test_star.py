"""Tests of the Power BI star schema (twmb_geo.publish.star) on the bundled Toronto run."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from star_slicing import check_partition, check_spatial_slicer, check_year_slicer

import twmb_geo as tw
from twmb_geo.contracts import conform, load_schema, validate_frame
from twmb_geo.publish import STAR_TABLES, build_star, check_keys, prepare_star
from twmb_geo.publish.base import StarRows
from twmb_geo.publish.powerbi.report import starter_pages
from twmb_geo.publish.sql import star_schema
from twmb_geo.publish.star import (
    DIMENSIONS,
    FACTS,
    KEY_DIMENSIONS,
    MAX_WKT_CHARS,
    NOT_APPLICABLE_KEY,
    UNKNOWN_KEY,
    _dim_pipe,
    _fact_unit_year,
    _unit_key_maps,
    _wkt,
)
from twmb_geo.publish.topojson import SHAPE_MAPS, star_topojson

#: Toronto's bounding box, WGS84 (lon, lat)
LON_RANGE = (-79.7, -79.1)
LAT_RANGE = (43.55, 43.9)


@pytest.fixture(scope="module")
def star(bundled_run, bundled_cfg) -> dict[str, pd.DataFrame]:
    with tw.open_store(bundled_cfg.store_path, read_only=True) as s:
        return build_star(s)


@pytest.fixture(scope="module")
def store_counts(bundled_run, bundled_cfg) -> dict[str, int]:
    with tw.open_store(bundled_cfg.store_path, read_only=True) as s:
        return {t: s.count(t) for t in ("breaks", "unit_cell", "panel", "risk_scores")}


def test_every_table_is_built_and_validates(star) -> None:
    assert tuple(star) == STAR_TABLES
    assert STAR_TABLES[: len(DIMENSIONS)] == DIMENSIONS
    for name, df in star.items():
        sch = load_schema(f"star/{name}")
        assert sch.layer == "star"
        assert validate_frame(df, sch, raise_=False) == [], name


def test_row_counts(star, store_counts) -> None:
    assert len(star["fact_break"]) == store_counts["breaks"] == 35_439
    assert len(star["dim_h3_cell"]) == store_counts["unit_cell"] + 2 == 6_024 + 2
    assert len(star["fact_unit_year"]) == store_counts["panel"]
    assert len(star["fact_risk_score"]) == store_counts["risk_scores"]
    # no pipes or streets in the bundled data: only the special rows
    assert star["dim_pipe"]["pipe_key"].tolist() == [NOT_APPLICABLE_KEY, UNKNOWN_KEY]
    assert star["dim_street_segment"]["street_key"].tolist() == [-2, -1]
    assert len(star["dim_neighbourhood"]) == 140 + 2
    # dim_year: every year of every fact, the special rows first
    years = star["dim_year"]["year_key"].tolist()
    assert years[:2] == [-2, -1] and years[2:] == list(range(1990, years[-1] + 1))
    assert years[-1] >= 2017  # the scored target year and the simulated years
    assert len(star["dim_model"]) >= 2
    for fact in ("fact_hotspot", "fact_cv_metric", "fact_simulation"):
        assert len(star[fact]) > 0, fact


def test_every_fact_key_resolves(star) -> None:
    assert check_keys(star) == []
    for fact in FACTS:
        for key in KEY_DIMENSIONS:
            if key in star[fact].columns:
                assert star[fact][key].notna().all()
    fb = star["fact_break"]
    assert (fb["cell_key"] > 0).all() and (fb["neighbourhood_key"] > 0).all()
    # every break could lie on a pipe and a street: not linked is unknown, not "n/a"
    assert (fb["pipe_key"] == UNKNOWN_KEY).all() and (fb["street_key"] == UNKNOWN_KEY).all()
    assert (fb["year_key"] == fb["year"]).all()


def test_slicers_filter_every_fact(star, bundled_cfg) -> None:
    """A neighbourhood, cell or year selection filters every fact like the store says."""
    assert check_partition(star) == []
    fb = star["fact_break"]
    nb = star["dim_neighbourhood"].set_index("neighbourhood_key")["neighbourhood_code"]
    busiest = fb["neighbourhood_key"].value_counts().index[:3]
    quiet = fb["neighbourhood_key"].value_counts().index[-2:]
    cell_dim = star["dim_h3_cell"].set_index("cell_key")["h3_index"]
    cells = fb["cell_key"].value_counts().index[:3]
    with tw.open_store(bundled_cfg.store_path, read_only=True) as s:
        assert (
            check_spatial_slicer(star, s, "neighbourhood", [nb[k] for k in [*busiest, *quiet]])
            == []
        )
        assert check_spatial_slicer(star, s, "cell", [cell_dim[k] for k in cells]) == []
        assert check_year_slicer(star, s, [1990, 2008, 2016, 2017]) == []
    # the cell facts reach every neighbourhood slicer (they were all key 0 before)
    risk = star["fact_risk_score"]
    cell_risk = risk[(risk["unit_type"] == "cell") & risk["is_current"].astype(bool)]
    assert cell_risk["neighbourhood_key"].nunique() == 140
    assert (cell_risk["neighbourhood_key"] > 0).all()
    hot = star["fact_hotspot"]
    assert (hot.loc[hot["unit_type"] == "cell", "neighbourhood_key"] > 0).all()


def test_check_keys_reports_dangling_keys(star) -> None:
    broken = dict(star)
    fb = star["fact_break"].copy()
    fb.loc[0, "cell_key"] = 10**9
    broken["fact_break"] = fb
    problems = check_keys(broken)
    assert len(problems) == 1 and "fact_break.cell_key" in problems[0]


def test_surrogate_keys(star) -> None:
    for dim in DIMENSIONS:
        key = next(k for k, d in KEY_DIMENSIONS.items() if d == dim)
        keys = star[dim][key]
        assert keys.is_unique and str(keys.dtype) == "int64"
        if dim in ("dim_date", "dim_year"):
            continue
        assert keys.tolist() == [-2, -1, *range(1, len(keys) - 1)]  # n/a, unknown, 1..n
    cells = star["dim_h3_cell"]
    assert cells["h3_index"].iloc[:2].tolist() == ["not applicable", "unknown"]
    assert cells["neighbourhood_name"].iloc[:2].tolist() == ["Not applicable", "Unknown"]
    assert cells["h3_index"].iloc[2:].is_monotonic_increasing
    assert cells["h3_index"].iloc[2:].str.fullmatch("[0-9a-f]{15}").all()
    assert star["fact_break"]["break_id"].is_monotonic_increasing


def test_build_is_deterministic(star, bundled_cfg) -> None:
    with tw.open_store(bundled_cfg.store_path, read_only=True) as s:
        again = build_star(s)
    for name in STAR_TABLES:
        pd.testing.assert_frame_equal(star[name], again[name], check_exact=True)
        h1 = pd.util.hash_pandas_object(star[name], index=True).to_numpy()
        h2 = pd.util.hash_pandas_object(again[name], index=True).to_numpy()
        assert np.array_equal(h1, h2), name


def test_dim_date_covers_the_breaks(star, bundled_cfg) -> None:
    dd = star["dim_date"]
    dates = pd.to_datetime(dd["date"])
    assert (dates.diff().dropna() == pd.Timedelta(days=1)).all()
    assert (dates.iloc[0].month, dates.iloc[0].day) == (1, 1)
    assert (dates.iloc[-1].month, dates.iloc[-1].day) == (12, 31)
    assert (dd["date_key"] == dates.dt.strftime("%Y%m%d").astype(np.int64)).all()
    with tw.open_store(bundled_cfg.store_path, read_only=True) as s:
        breaks = s.query("SELECT DISTINCT break_date FROM breaks")
    keys = pd.to_datetime(breaks["break_date"]).dt.strftime("%Y%m%d").astype(np.int64)
    assert keys.isin(dd["date_key"]).all()
    row = dd.set_index("date_key")
    assert row.loc[20160131, "winter_season"] == "2015-16"
    assert row.loc[20151130, "winter_season"] == "2015-16"
    assert row.loc[20150715, "winter_season"] == "none"
    assert row.loc[20160131, "month_name"] == "January"
    assert row.loc[20160131, "day_name"] == "Sunday" and row.loc[20160131, "day_of_week"] == 7


def test_map_columns_are_wgs84_in_toronto(star) -> None:
    for name in ("dim_h3_cell", "dim_neighbourhood"):
        df = star[name].iloc[2:]  # skip the special rows
        geoms = shapely.from_wkt(df["wkt"].to_numpy())
        assert shapely.is_valid_input(geoms).all() and not shapely.is_missing(geoms).any()
        b = shapely.bounds(geoms)
        assert (b[:, 0] >= LON_RANGE[0]).all() and (b[:, 2] <= LON_RANGE[1]).all(), name
        assert (b[:, 1] >= LAT_RANGE[0]).all() and (b[:, 3] <= LAT_RANGE[1]).all(), name
        assert df["centroid_lon"].between(*LON_RANGE).all()
        assert df["centroid_lat"].between(*LAT_RANGE).all()
    fb = star["fact_break"]
    assert fb["lon"].between(*LON_RANGE).all() and fb["lat"].between(*LAT_RANGE).all()


def test_every_polygon_fits_power_bi_text(star) -> None:
    """Toronto's three longest neighbourhood polygons (up to 75,250 characters) are
    simplified to fit; every other WKT is exact."""
    for name in ("dim_h3_cell", "dim_neighbourhood"):
        df = star[name].iloc[2:]
        assert df["wkt"].str.len().max() <= MAX_WKT_CHARS, name
        assert df["wkt_tolerance_m"].notna().all()
    nb = star["dim_neighbourhood"].iloc[2:]
    simplified = nb[nb["wkt_tolerance_m"] > 0]
    assert 1 <= len(simplified) <= 5
    assert (star["dim_h3_cell"]["wkt_tolerance_m"].iloc[2:] == 0).all()
    assert star["dim_neighbourhood"]["wkt_tolerance_m"].iloc[:2].isna().all()


def _decode_topojson(doc: dict, name: str) -> list[tuple[dict, shapely.Geometry]]:
    """An independent TopoJSON decoder: quantised delta arcs -> WGS84 polygons."""
    (sx, sy), (tx, ty) = doc["transform"]["scale"], doc["transform"]["translate"]
    arcs = []
    for arc in doc["arcs"]:
        q = np.cumsum(np.asarray(arc, dtype=float), axis=0)
        arcs.append(np.column_stack([q[:, 0] * sx + tx, q[:, 1] * sy + ty]))

    def ring(refs: list[int]) -> np.ndarray:
        parts = [arcs[i] if i >= 0 else arcs[~i][::-1] for i in refs]
        return np.vstack([parts[0], *[p[1:] for p in parts[1:]]])

    out = []
    for g in doc["objects"][name]["geometries"]:
        polys = [g["arcs"]] if g["type"] == "Polygon" else g["arcs"]
        shape = shapely.MultiPolygon(
            [shapely.Polygon(ring(p[0]), [ring(h) for h in p[1:]]) for p in polys]
        )
        out.append((g["properties"], shape))
    return out


def test_topojson_for_the_shape_map(star) -> None:
    """Every neighbourhood and cell is in the TopoJSON with its key and code, shared borders
    are shared arcs, and the decoded shapes are the dimension's polygons."""
    files = star_topojson(star)
    assert set(files) == {"neighbourhoods.topojson", "h3_cells.topojson"}
    for dim, (name, cols) in SHAPE_MAPS.items():
        doc = json.loads(files[f"{name}.topojson"])
        assert doc["type"] == "Topology" and list(doc["objects"]) == [name]
        shapes = _decode_topojson(doc, name)
        real = star[dim][star[dim][cols[0]] > 0].set_index(cols[0])
        assert sorted(p[cols[0]] for p, _ in shapes) == sorted(real.index)
        for props, shape in shapes[:: max(1, len(shapes) // 200)]:
            row = real.loc[props[cols[0]]]
            assert props[cols[1]] == row[cols[1]]
            truth = shapely.from_wkt(row["wkt"])
            assert shape.is_valid
            assert shapely.symmetric_difference(shape, truth).area <= 1e-3 * truth.area
    cells = json.loads(files["h3_cells.topojson"])
    # neighbouring hexagons share edges: far fewer arcs than 6 per cell
    assert len(cells["arcs"]) < 4 * len(cells["objects"]["h3_cells"]["geometries"])
    assert star_topojson(star) == files  # deterministic


def test_long_wkt_is_simplified_within_its_tolerance() -> None:
    # a 20,000-vertex ring (about 0.9 MB of WKT) and a small square, in the analysis CRS
    angle = np.linspace(0, 2 * np.pi, 20_000, endpoint=False)
    wiggle = 300 + 2 * np.sin(angle * 900)
    ring = np.column_stack([313_000 + wiggle * np.cos(angle), 4_835_000 + wiggle * np.sin(angle)])
    big = shapely.Polygon(ring)
    small = shapely.box(313_000, 4_835_000, 313_100, 4_835_100)
    out = _wkt(pd.Series([shapely.to_wkb(big), shapely.to_wkb(small), None]))
    assert len(out["wkt"][0]) <= MAX_WKT_CHARS < len(shapely.to_wkt(big))
    tol = out["wkt_tolerance_m"]
    assert tol[0] > 0 and tol[1] == 0 and np.isnan(tol[2]) and out["wkt"][2] is None
    # back in the analysis CRS, the simplified ring stays within its tolerance of the truth
    import pyproj

    back = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:2952", always_xy=True)
    got = shapely.transform(
        shapely.from_wkt(out["wkt"][0]),
        lambda c: np.column_stack(back.transform(c[:, 0], c[:, 1])),
    )
    assert got.is_valid
    assert shapely.hausdorff_distance(got, big) <= tol[0] + 0.2  # + 6-decimal rounding


def test_unit_year_rate(star) -> None:
    fy = star["fact_unit_year"]
    has = fy["exposure_km"].notna() & (fy["exposure_km"] > 0)
    expected = fy.loc[has, "breaks"] / fy.loc[has, "exposure_km"] * 100
    np.testing.assert_allclose(fy.loc[has, "rate_per_100km"], expected)
    assert fy.loc[~has, "rate_per_100km"].isna().all()
    # conformed keys: a cell row carries its cell and the cell's neighbourhood, pipes and
    # streets do not apply; a neighbourhood row carries only its own key
    cells = fy[fy["unit_type"] == "cell"]
    assert (cells["cell_key"] > 0).all() and (cells["neighbourhood_key"] > 0).all()
    assert (cells[["pipe_key", "street_key"]] == NOT_APPLICABLE_KEY).all().all()
    nb = fy[fy["unit_type"] == "neighbourhood"]
    assert (nb["neighbourhood_key"] > 0).all()
    assert (nb[["cell_key", "pipe_key", "street_key"]] == NOT_APPLICABLE_KEY).all().all()
    assert (fy["year_key"] == fy["year"]).all()
    assert fy["breaks"].sum() == len(star["fact_break"]) * fy["unit_type"].nunique()


def test_unit_year_rate_with_exposure() -> None:
    dims = {
        "dim_h3_cell": pd.DataFrame({"cell_key": [-2, -1, 1], "h3_index": ["n/a", "u", "c1"]}),
        "dim_pipe": pd.DataFrame({"pipe_key": [-2, -1, 1, 2], "unit_id": ["n", "u", "P1", "P2"]}),
        "dim_street_segment": pd.DataFrame(
            {"street_key": [-2, -1, 1], "unit_id": ["n", "u", "S1"]}
        ),
        "dim_neighbourhood": pd.DataFrame(
            {"neighbourhood_key": [-2, -1, 1], "neighbourhood_code": ["n", "u", "x"]}
        ),
    }
    places = {
        "pipe": pd.DataFrame(
            {
                "unit_id": ["P1", "P2"],
                "street": ["S1", None],
                "cell": ["c1", "elsewhere"],
                "neighbourhood": ["x", "x"],
            }
        ),
        "street": pd.DataFrame({"unit_id": ["S1"], "cell": ["c1"], "neighbourhood": ["x"]}),
        "cell": pd.DataFrame({"unit_id": ["c1"], "neighbourhood": ["x"]}),
        "neighbourhood": pd.DataFrame({"unit_id": ["x"]}),
    }
    panel = pd.DataFrame(
        {
            "unit_type": ["pipe"] * 3,
            "unit_id": ["P1", "P2", "P2"],
            "year": [2000, 2000, 2001],
            "breaks": [2.0, 1.0, 0.0],
            "exposure_km": [0.5, 0.0, np.nan],
        }
    )
    indexed = {k: v.set_index("unit_id") for k, v in places.items()}
    out = _fact_unit_year(panel, _unit_key_maps(dims), indexed)
    assert out["pipe_key"].tolist() == [1, 2, 2]
    # P1 lies on S1 in c1; P2 on no known street, in a cell outside the grid: unknown
    assert out["street_key"].tolist() == [1, -1, -1]
    assert out["cell_key"].tolist() == [1, -1, -1]
    assert out["neighbourhood_key"].tolist() == [1, 1, 1]
    assert out["year_key"].tolist() == [2000, 2000, 2001]
    assert out["rate_per_100km"].iloc[0] == pytest.approx(400.0)
    assert out["rate_per_100km"].iloc[1:].isna().all()


def test_dim_pipe_labels() -> None:
    pipes = pd.DataFrame(
        {
            "unit_id": ["b", "a", "c"],
            "asset_id": ["2", "1", "3"],
            "material": ["CI", None, "XYZ"],
            "material_desc": ["Cast Iron", None, None],
            "diameter_mm": [150.0, 200.0, np.nan],
            "install_year": [1956.0, np.nan, 2001.0],
            "removal_year": [np.nan, 2010.0, np.nan],
            "lined": [False, True, False],
            "length_m": [10.0, 20.0, 30.0],
            "neighbourhood": ["001", None, "002"],
            "cell": [None, None, None],
            "centroid_lat": [43.7, 43.7, 43.7],
            "centroid_lon": [-79.4, -79.4, -79.4],
            "geometry": [shapely.to_wkb(shapely.LineString([(313000, 4835000), (313100, 4835000)]))]
            * 3,
        }
    )
    dim = _dim_pipe(pipes).set_index("unit_id")
    assert dim.loc["unknown", "pipe_key"] == UNKNOWN_KEY
    assert dim.loc["not applicable", "pipe_key"] == NOT_APPLICABLE_KEY
    assert dim.loc["not applicable", "material"] == "N/A"
    assert dim.loc[["a", "b", "c"], "pipe_key"].tolist() == [1, 2, 3]
    assert dim.loc["b", "material_desc"] == "Cast Iron"
    assert dim.loc["a", "material_desc"] == "Unknown" and dim.loc["a", "material"] == "UNK"
    assert dim.loc["c", "material_desc"] == "XYZ"
    assert dim.loc["b", "install_decade"] == "1950s" and dim.loc["a", "install_decade"] == "unknown"
    assert dim.loc["a", "status"] == "abandoned" and dim.loc["b", "status"] == "active"
    line = shapely.from_wkt(dim.loc["b", "wkt"])
    assert LON_RANGE[0] < line.bounds[0] < LON_RANGE[1]


@pytest.mark.parametrize("rows", [997, 100_000])
def test_breaks_in_blocks_are_the_whole_fact(star, bundled_cfg, rows: int) -> None:
    """``fact_break`` made a block of breaks at a time (with only their links) is the fact
    made of every break at once: same keys 1..n in ``break_id`` order, dates and unit keys."""
    from twmb_geo.publish.star import _fact_break, _fact_break_chunks, _finish

    maps = _unit_key_maps(star)
    with tw.open_store(bundled_cfg.store_path, read_only=True) as s:
        whole = _finish("fact_break", _fact_break(s.read("breaks"), s.read("break_links"), maps))
        chunks = list(_fact_break_chunks(s, maps, rows))
    assert len(chunks) == -(-len(whole) // rows) and len(whole) > 30_000
    got = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(got, whole, check_exact=True)
    pd.testing.assert_frame_equal(got, star["fact_break"], check_exact=True)
    assert (got["cell_key"] > 0).mean() > 0.9  # the links reached their blocks


def _line_units(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` pipes and ``n`` street segments with ids out of order and some nulls."""
    rng = np.random.default_rng(seed)
    ids = [f"U{int(i):04d}" for i in rng.permutation(n) * 7]
    x = 313_000 + rng.uniform(0, 5_000, n)
    y = 4_835_000 + rng.uniform(0, 5_000, n)
    lines = shapely.to_wkb(shapely.linestrings(np.stack([np.c_[x, y], np.c_[x + 50, y + 20]], 1)))
    some = rng.random(n) < 0.3
    common = {
        "unit_id": ids,
        "length_m": rng.uniform(5, 200, n),
        "x": x,
        "y": y,
        "centroid_lon": np.full(n, -79.4),
        "centroid_lat": np.full(n, 43.7),
        "neighbourhood": np.where(some, None, "001"),
        "cell": np.where(some, None, "89283082803ffff"),
        "geometry": lines,
    }
    pipes = pd.DataFrame(
        {
            **common,
            "asset_id": [f"A{i}" for i in range(n)],
            "material": np.where(some, None, "CI"),
            "material_class": "cast_iron",
            "segment_id": None,
            "location_method": "geometry",
            "material_desc": np.where(some, None, "Cast iron"),
            "diameter_mm": np.where(some, np.nan, 150.0),
            "install_year": np.where(some, np.nan, 1950.0 + rng.integers(0, 60, n)),
            "removal_year": np.where(rng.random(n) < 0.1, 2010.0, np.nan),
            "lined": rng.random(n) < 0.5,
        }
    )
    streets = pd.DataFrame(
        {
            **common,
            "name": np.where(some, None, "Main St"),
            "feature_code_desc": "Local",
            "is_street": True,
            "from_node": [f"n{i}" for i in range(n)],
            "to_node": [f"n{i + 1}" for i in range(n)],
            "pipe_km": np.nan,
        }
    )
    return pipes, streets


@pytest.mark.parametrize("rows", [1, 7, 1_000])
def test_line_dimensions_in_blocks_are_the_whole_dimensions(tmp_path: Path, rows: int) -> None:
    """``dim_pipe`` and ``dim_street_segment`` made a block of units at a time (the publish
    holds one block of a 20-million-pipe network) are the dimensions made whole, and their
    key maps reach the facts the same."""
    from twmb_geo.publish.star import _dim_street_segment, _finish, _line_dimension_chunks

    pipes, streets = _line_units(40, seed=rows)
    with tw.open_store(tmp_path / "lines.duckdb") as s:
        s.insert("unit_pipe", conform(pipes, "features/unit_pipe"))
        s.insert("unit_street", conform(streets, "features/unit_street"))
        whole = {
            "dim_pipe": _finish("dim_pipe", _dim_pipe(s.read("unit_pipe"))),
            "dim_street_segment": _finish(
                "dim_street_segment", _dim_street_segment(s.read("unit_street"))
            ),
        }
        for name, expected in whole.items():
            chunks = list(_line_dimension_chunks(s, name, rows))
            assert len(chunks) == 1 + -(-40 // rows), name  # the special members, then blocks
            got = pd.concat(chunks, ignore_index=True)
            pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=name)
        star = build_star(s)
    for name, expected in whole.items():
        pd.testing.assert_frame_equal(star[name], expected, check_exact=True, obj=name)
    assert star["dim_pipe"]["pipe_key"].tolist() == [-2, -1, *range(1, 41)]
    assert check_keys(star) == []


def test_empty_store_gives_unknown_rows_and_empty_facts(tmp_path: Path) -> None:
    with tw.open_store(tmp_path / "empty.duckdb") as s:
        tables = build_star(s)
    assert tuple(tables) == STAR_TABLES
    assert tables["dim_date"].empty
    for dim in DIMENSIONS[1:]:
        assert tables[dim].iloc[:, 0].tolist() == [-2, -1], dim
    for fact in FACTS:
        assert tables[fact].empty, fact
        assert list(tables[fact].columns) == load_schema(f"star/{fact}").columns
    assert check_keys(tables) == []


def test_publish_folder_is_complete_deterministic_and_swapped(
    bundled_run, bundled_cfg, tmp_path
) -> None:
    import hashlib

    import pyarrow.parquet as pq
    from cli_helpers import ok_json, twmb

    from twmb_geo.publish.star import STAR_TABLES

    target = tmp_path / "star"
    (tmp_path / ".star.staging" / "parquet").mkdir(parents=True)  # a dead publish's leftovers
    doc = ok_json(twmb("-q", "--out", bundled_cfg.out_dir, "publish", "--folder", target, "--json"))
    assert set(doc["rows"]) == set(STAR_TABLES)
    assert not (tmp_path / ".star.staging").exists()

    def digest() -> dict[str, str]:
        return {
            p.relative_to(target).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(target.rglob("*.*"))
            if p.name != "manifest.json"
        }

    first = digest()
    assert len(first) == 2 * len(STAR_TABLES) + 2  # + the two TopoJSON files
    assert {"topojson/neighbourhoods.topojson", "topojson/h3_cells.topojson"} <= set(first)
    for t in STAR_TABLES:
        assert pq.read_metadata(target / "parquet" / f"{t}.parquet").num_rows == doc["rows"][t]
        csv = pd.read_csv(target / "csv" / f"{t}.csv")
        assert len(csv) == doc["rows"][t], t
    assert doc["rows"]["fact_break"] == 35_439
    tw.publish_star(bundled_cfg, folder=target)
    assert digest() == first  # same store, byte-identical files
    assert not list(bundled_cfg.out_dir.glob(".star.spool-*"))  # the spool is removed


def test_spooled_star_equals_the_star_in_memory(
    star, bundled_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fact_unit_year`` built a chunk at a time into a spool (chunks far smaller than the
    table: the bundled panel has hundreds of thousands of rows) is the table built from the
    whole panel at once; every other table, spooled as soon as it is built, is the same
    frame; the folder target writes the same CSV bytes and the same Parquet values (a
    column null in the city typed by its contract) from either."""
    import pyarrow.parquet as pq

    from twmb_geo.core.compute import parallel_map
    from twmb_geo.core.units import UNIT_TYPES
    from twmb_geo.publish import base
    from twmb_geo.publish.files import write_star_folder
    from twmb_geo.publish.star import (
        _UNIT_YEAR_COLUMNS,
        _finish,
        _places,
        check_keys,
        spool_star,
    )
    from twmb_geo.publish.tables import SpooledTable, column_of, frame_of

    with tw.open_store(bundled_cfg.store_path, read_only=True) as s:
        panel = s.read("panel", columns=_UNIT_YEAR_COLUMNS)
        places = _places({n: s.read(spec.table) for n, spec in UNIT_TYPES.items()})
        spooled = spool_star(s, tmp_path, chunk_rows=7_919, spool_rows=0)  # every table
    unit_year = spooled["fact_unit_year"]
    assert isinstance(unit_year, SpooledTable) and len(unit_year) == len(panel) > 50_000
    # the whole panel at once, sorted in pandas: what the star was before it was chunked
    whole = _finish("fact_unit_year", _fact_unit_year(panel, _unit_key_maps(star), places))
    pd.testing.assert_frame_equal(frame_of(unit_year), whole, check_exact=True)
    for name in STAR_TABLES:
        assert isinstance(spooled[name], SpooledTable), name  # nothing held but the file
        pd.testing.assert_frame_equal(frame_of(spooled[name]), star[name], check_exact=True)
        for col in star[name].columns:  # one column read alone is the same column
            pd.testing.assert_series_equal(column_of(spooled[name], col), star[name][col])
    assert check_keys(spooled) == []
    assert len(list(unit_year.chunks(10_000))) == -(-len(panel) // 10_000)
    assert unit_year.row_groups > 10  # the checksums' pieces (one per row group)
    pd.testing.assert_frame_equal(
        pd.concat([unit_year.row_group(g) for g in range(unit_year.row_groups)], ignore_index=True),
        whole,
        check_exact=True,
    )
    # checksums of spooled tables made a row group at a time, here or in two worker
    # processes, are those of the frames; a star this small is hashed here unless told
    expected = prepare_star(star).checksums
    plans: list[int] = []

    def spy(fn, jobs, plan, **kw):
        plans.append(plan.n_jobs)
        return parallel_map(fn, jobs, plan, **kw)

    monkeypatch.setattr(base, "parallel_map", spy)
    assert prepare_star(spooled, threads=2).checksums == expected
    monkeypatch.setattr(base, "PARALLEL_CHECKSUM_ROWS", len(unit_year))
    (tmp_path / "rows").mkdir()
    prepared = prepare_star(spooled, threads=2, row_files=tmp_path / "rows")
    assert prepared.checksums == expected
    assert plans == [1, 2]
    # the workers wrote each row group's canonical rows to its row file, in table order
    for name in STAR_TABLES:
        files = prepared.row_files[name]
        assert len(files) == spooled[name].row_groups, name
        got = []
        for f in files:
            with contextlib.closing(sqlite3.connect(f)) as conn:
                got += conn.execute("SELECT * FROM rows ORDER BY rowid").fetchall()
        assert got == list(StarRows(star[name], star_schema(name))), name

    write_star_folder(star, tmp_path / "a")
    write_star_folder(spooled, tmp_path / "b")
    for name in STAR_TABLES:
        a = (tmp_path / "a" / "csv" / f"{name}.csv").read_bytes()
        assert a == (tmp_path / "b" / "csv" / f"{name}.csv").read_bytes(), name
        pa_a = pq.read_table(tmp_path / "a" / "parquet" / f"{name}.parquet")
        assert pa_a.equals(pq.read_table(tmp_path / "b" / "parquet" / f"{name}.parquet")), name


def test_starter_report_filters_select_data_on_the_bundled_run(star) -> None:
    """Every visual filter of the starter report matches rows of the bundled run's star (a
    value spelled differently from the data would leave its visual empty)."""
    checked = 0
    for page in starter_pages():
        for v in page.visuals:
            by_table: dict[str, pd.Series] = {}
            for f in v.filters:
                df = star[f.field.table]
                hit = df[f.field.name].isin(list(f.values))
                if not f.exclude:
                    assert hit.any(), f"{v.name}: no {f.field.query_ref} in {f.values}"
                keep = ~hit if f.exclude else hit
                by_table[f.field.table] = by_table.get(f.field.table, keep) & keep
            for table, keep in by_table.items():
                assert keep.any(), f"{v.name}: its filters leave no row of {table}"
                checked += 1
    assert checked >= 7


CRAFTED_NAMES = ['=HYPERLINK("http://x.test","y")', "+1+1", "-2+3", "@SUM(A1:A9)", "\tcmd", "\rx"]


def test_csv_copy_neutralises_formulas_parquet_keeps_values(tmp_path: Path) -> None:
    """Crafted street names are written as text in the CSV copy, true values in Parquet."""
    import pyarrow.parquet as pq

    from twmb_geo.publish.files import write_star_folder

    with tw.open_store(tmp_path / "empty.duckdb") as s:
        tables = build_star(s)
    special = tables["dim_street_segment"]
    n = len(CRAFTED_NAMES) + 3
    crafted = pd.DataFrame(
        {
            "street_key": range(1, n + 1),
            "unit_id": [f"u{i}" for i in range(n)],
            "name": [*CRAFTED_NAMES, "-12.5", "Main St", None],
            "feature_class": ["Local"] * n,
            "is_street": [True] * n,
            "length_m": [-5.0, *[10.0] * (n - 1)],
        }
    )
    tables["dim_street_segment"] = pd.concat([special, crafted], ignore_index=True)
    original = tables["dim_street_segment"].copy()
    write_star_folder(tables, tmp_path / "star")

    csv = pd.read_csv(
        tmp_path / "star" / "csv" / "dim_street_segment.csv",
        dtype={"name": str},
        keep_default_na=False,
        na_values=[""],
    )
    names = csv["name"].tolist()
    assert names[2:-1] == [
        '\'=HYPERLINK("http://x.test","y")',
        "'+1+1",
        "'-2+3",
        "'@SUM(A1:A9)",
        "'\tcmd",
        "'\rx",
        "-12.5",  # a number as text: a spreadsheet reads the same number, runs nothing
        "Main St",
    ]
    assert pd.isna(names[-1])
    assert csv["street_key"].tolist()[:2] == [-2, -1]  # negative numbers untouched
    assert csv["length_m"].iloc[2] == -5.0
    text = (tmp_path / "star" / "csv" / "dim_street_segment.csv").read_bytes().decode("utf-8")
    assert "\r\n-2," in text and ",-5.0," in text
    assert text.count("\r\n") == len(tables["dim_street_segment"]) + 1  # the CR is quoted
    parquet = pq.read_table(tmp_path / "star" / "parquet" / "dim_street_segment.parquet")
    assert parquet.column("name").to_pylist()[2:-1] == [*CRAFTED_NAMES, "-12.5", "Main St"]
    pd.testing.assert_frame_equal(tables["dim_street_segment"], original)  # input untouched


def test_spreadsheet_safe_column_kinds() -> None:
    from twmb_geo.publish.files import spreadsheet_safe

    df = pd.DataFrame(
        {
            "obj": pd.Series(["=1+1", None, 3, "ok", "-", "+5"], dtype=object),
            "str": pd.Series(["@x", pd.NA, "a", "-1e3", "-1e", ".5"], dtype="string"),
            "cat": pd.Categorical(["=A", "b", "=A", "b", "c", "c"]),
            "num": [-1, -2, 3, 4, 5, 6],
            "date": pd.to_datetime(["2024-01-01"] * 6),
        }
    )
    out = spreadsheet_safe(df)
    assert out["obj"].tolist() == ["'=1+1", None, 3, "ok", "'-", "+5"]
    assert out["str"].tolist()[:1] == ["'@x"] and pd.isna(out["str"].iloc[1])
    assert out["str"].tolist()[2:] == ["a", "-1e3", "'-1e", ".5"]
    assert out["cat"].tolist() == ["'=A", "b", "'=A", "b", "c", "c"]
    assert out["num"].tolist() == [-1, -2, 3, 4, 5, 6]
    pd.testing.assert_series_equal(out["date"], df["date"])
    clean = df.drop(columns=["obj", "str", "cat"])
    assert spreadsheet_safe(clean) is clean  # nothing to escape: no copy


@pytest.mark.parametrize("chunk_rows", [1, 100])
def test_unit_year_duplicate_key_is_refused_across_chunks(tmp_path: Path, chunk_rows) -> None:
    """Two pipes missing from ``dim_pipe`` get the same keys (-1) in the same year: a primary
    key clash the chunked build catches whether the rows share a chunk or sit either side of
    a chunk boundary; a panel without the clash goes through."""
    from twmb_geo.core.units import UNIT_TYPES
    from twmb_geo.errors import ContractError
    from twmb_geo.publish.star import _fact_unit_year_chunks

    dims = {
        "dim_h3_cell": pd.DataFrame({"cell_key": [-2, -1], "h3_index": ["n/a", "u"]}),
        "dim_pipe": pd.DataFrame({"pipe_key": [-2, -1, 1], "unit_id": ["n", "u", "P1"]}),
        "dim_street_segment": pd.DataFrame({"street_key": [-2, -1], "unit_id": ["n", "u"]}),
        "dim_neighbourhood": pd.DataFrame(
            {"neighbourhood_key": [-2, -1], "neighbourhood_code": ["n", "u"]}
        ),
    }
    places = {n: pd.DataFrame(index=pd.Index([], name="unit_id")) for n in UNIT_TYPES}

    def chunks(ids: list[str]) -> list[pd.DataFrame]:
        with tw.open_store(tmp_path / f"{'-'.join(ids)}.duckdb") as s:
            s.execute(
                "CREATE TABLE panel AS SELECT * FROM (VALUES "
                + ", ".join(f"('pipe', '{u}', 2000, 1.0, 0.5)" for u in ids)
                + ") AS t(unit_type, unit_id, year, breaks, exposure_km)"
            )
            return list(_fact_unit_year_chunks(s, _unit_key_maps(dims), places, chunk_rows))

    ok = chunks(["P1", "Q"])
    assert pd.concat(ok)["pipe_key"].tolist() == [-1, 1]  # sorted by the keys
    with pytest.raises(ContractError, match="not unique"):
        chunks(["P1", "Q", "R"])


def test_risk_scores_a_unit_type_at_a_time(bundled_cfg, bundled_run, tmp_path: Path) -> None:
    """``fact_risk_score`` finished a unit type at a time (the publish holds one type's
    scores) is the fact built from every score at once, with scores of two unit types."""
    import shutil

    from twmb_geo.core.units import UNIT_TYPES
    from twmb_geo.publish.star import _fact_risk_score, _finish, _places, spool_star
    from twmb_geo.publish.tables import SpooledTable, frame_of

    path = tmp_path / "two_types.duckdb"
    shutil.copy(bundled_cfg.store_path, path)
    with tw.open_store(path) as s:
        scores = s.read("risk_scores")
        codes = s.read("neighbourhoods")["area_code"].to_numpy()
        extra = scores.iloc[: len(codes)].copy()
        extra["unit_type"], extra["unit_id"] = "neighbourhood", codes
        s.insert("risk_scores", extra)
        spooled = spool_star(s, tmp_path / "spool", spool_rows=0)
        star = build_star(s)
        scores, sims = s.read("risk_scores"), s.read("simulation_unit")
        places = _places({n: s.read(spec.table) for n, spec in UNIT_TYPES.items()})
    every = _fact_risk_score(scores, sims, star, _unit_key_maps(star), places)
    every = _finish("fact_risk_score", every)
    assert every["unit_type"].value_counts().to_dict() == {"cell": 6024, "neighbourhood": 140}
    assert isinstance(spooled["fact_risk_score"], SpooledTable)
    pd.testing.assert_frame_equal(frame_of(spooled["fact_risk_score"]), every, check_exact=True)
    pd.testing.assert_frame_equal(star["fact_risk_score"], every, check_exact=True)
    assert check_keys(spooled) == []


def test_small_tables_stay_frames_and_large_ones_are_spooled(tmp_path: Path) -> None:
    """``spool_table(min_rows=)``: under the threshold a conformed frame and no file; at it,
    a file holding every chunk in order (those held before the threshold first)."""
    from twmb_geo.publish.tables import SpooledTable, frame_of, spool_table

    schema = load_schema("star/dim_year")
    rows = pd.DataFrame(
        {
            "year_key": range(2000, 2010),
            "year": range(2000, 2010),
            "year_label": [str(y) for y in range(2000, 2010)],
            "decade": ["2000s"] * 10,
        }
    )
    chunks = [rows.iloc[:3], rows.iloc[3:3], rows.iloc[3:7], rows.iloc[7:]]
    small = spool_table(tmp_path / "a.parquet", schema, iter(chunks), min_rows=11)
    assert isinstance(small, pd.DataFrame) and not (tmp_path / "a.parquet").exists()
    pd.testing.assert_frame_equal(small, conform(rows, schema))
    for at in (0, 1, 5, 10):
        big = spool_table(tmp_path / f"b{at}.parquet", schema, iter(chunks), min_rows=at)
        assert isinstance(big, SpooledTable) and len(big) == 10, at
        pd.testing.assert_frame_equal(frame_of(big), conform(rows, schema))
    empty = spool_table(tmp_path / "c.parquet", schema, iter([rows.iloc[:0]]), min_rows=0)
    assert isinstance(empty, SpooledTable) and len(empty) == 0  # a file was asked for
    none = spool_table(tmp_path / "d.parquet", schema, iter([]), min_rows=5)
    assert isinstance(none, pd.DataFrame) and list(none.columns) == schema.columns
