"""An asset-management export: a main inventory without geometry, linked to breaks by asset id.

The fixture is derived from a small synthetic city (``twmb_geo.synth``): the pipes become
an attribute-only CSV (asset id, material, diameter, install year, length, road segment
id), the breaks a CSV with lon/lat, the asset id and the road segment id; the street layer
is the city's centreline GeoJSON; two made-up neighbourhoods cover the city. ``twmb run``
must train, score and publish a pipe-level model through the id links, and reconcile.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import shapely
from cli_helpers import show, twmb
from threadpoolctl import threadpool_limits

from twmb_geo.contracts import load_schema, validate_frame
from twmb_geo.core.crs import transform_xy
from twmb_geo.store.duckdb_store import TABLES, Store
from twmb_geo.synth import make_city, write_city

UNKNOWN_ASSET = "AM-999999"  # on three breaks: not in the inventory
UNKNOWN_SEGMENT = "RS-404"  # on one pipe: not in the street layer (located through its breaks)

PROFILES = """
[[profile]]
id = "am_pipes"
kind = "pipes"
format = "csv"
description = "Asset-management main inventory (no geometry)"
columns = { asset_id = "AssetID", material = "Material", diameter_mm = "Diameter_mm", construction_year = "InstallYear", measured_length_m = "Length_m", street_segment_id = "RoadSegmentID", removal_year = "RemovalYear" }

[[profile]]
id = "am_breaks"
kind = "breaks"
format = "csv"
description = "Work orders on mains, WGS84 points with the asset id"
date_format = "%Y-%m-%d"
columns = { break_date = "BreakDate", asset_id = "AssetID", street_segment_id = "RoadSegmentID", record_id = "WorkOrder" }
coordinates = [{ name = "wgs84", x = "Longitude", y = "Latitude", crs = "EPSG:4326" }]

[[profile]]
id = "am_areas"
kind = "neighbourhoods"
format = "geojson"
description = "Two made-up districts"
crs = "EPSG:4326"
columns = { area_code = "code", area_name = "name" }
"""

CONFIG = """
[project]
name = "assetcity"
out = "out"
service_area_source = "areas"
today = "2026-01-01"

[features]
esda_permutations = 9

[model]
unit_types = ["pipe"]
schemes = ["forward", "random"]
forward_years = 2
random_folds = 2
max_iter = 20
importance_repeats = 1
horizon = 2
unit_horizons = [1, 2]
n_sims = 20

[profiles]
files = ["profiles.toml"]

[[sources]]
id = "areas"
profile = "am_areas"
path = "areas.geojson"

[[sources]]
id = "mains"
profile = "am_pipes"
path = "mains.csv"

[[sources]]
id = "streets"
profile = "toronto_centreline_geojson"
path = "synth/centreline_4326.geojson"

[[sources]]
id = "breaks"
profile = "am_breaks"
path = "breaks.csv"
"""


def _areas(streets: pd.DataFrame) -> dict:
    """Two rectangles (WGS84) splitting the city's extent, with a margin."""
    x0, y0, x1, y1 = shapely.total_bounds(streets.geometry.to_numpy())
    xm = (x0 + x1) / 2
    feats = []
    for code, (a, b) in {"D1": (x0 - 300, xm), "D2": (xm, x1 + 300)}.items():
        xs = np.array([a, b, b, a, a])
        ys = np.array([y0 - 300, y0 - 300, y1 + 300, y1 + 300, y0 - 300])
        lon, lat, _ = transform_xy(xs, ys, "EPSG:2952", "EPSG:4326")
        ring = [[float(u), float(v)] for u, v in zip(lon, lat, strict=True)]
        feats.append(
            {
                "type": "Feature",
                "properties": {"code": code, "name": f"District {code}"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def _write_project(folder: Path) -> dict:
    city = make_city(n_pipes=500, seed=11, start_year=2008, end_year=2016)
    write_city(city, folder / "synth")
    pipes = city.pipes.sort_values("asset_id").reset_index(drop=True)
    seg = pipes["street_id"].astype("Int64").astype(str).to_numpy(dtype=object)
    mains = pd.DataFrame(
        {
            "AssetID": "AM-" + pipes["asset_id"].astype(str),
            "Material": pipes["material_published"].fillna("UNK"),
            "Diameter_mm": pipes["diameter_mm"].astype(int),
            "InstallYear": pipes["construction_year_published"].astype("Int64"),
            "Length_m": pipes["length_m"].round(1),
            "RoadSegmentID": seg,
            "RemovalYear": pipes["removal_year"].astype("Int64"),
        }
    )
    b = city.breaks
    busy = b["asset_id"].value_counts().index[0]  # a pipe with breaks
    row = mains.index[mains["AssetID"] == f"AM-{busy}"][0]
    mains.loc[row, "RoadSegmentID"] = UNKNOWN_SEGMENT
    nolen = mains.index[mains["AssetID"] != f"AM-{busy}"][0]
    mains.loc[nolen, "Length_m"] = np.nan  # no geometry and no length: quarantined
    mains.to_csv(folder / "mains.csv", index=False)

    street_of = dict(zip(pipes["asset_id"].astype(str), seg, strict=True))
    lon, lat, _ = transform_xy(
        b["x"].to_numpy(float), b["y"].to_numpy(float), "EPSG:2952", "EPSG:4326"
    )
    asset = ("AM-" + b["asset_id"].astype(str)).to_numpy(dtype=object)
    road = b["asset_id"].astype(str).map(street_of).to_numpy(dtype=object)
    asset[:3] = UNKNOWN_ASSET
    asset[3:5] = None  # no asset id: spatial matching (none possible without geometry)
    breaks = pd.DataFrame(
        {
            "WorkOrder": [f"WO-{i:05d}" for i in range(1, len(b) + 1)],
            "BreakDate": pd.to_datetime(b["break_date"]).dt.strftime("%Y-%m-%d"),
            "Longitude": np.round(lon, 7),
            "Latitude": np.round(lat, 7),
            "AssetID": asset,
            "RoadSegmentID": road,
        }
    )
    breaks.to_csv(folder / "breaks.csv", index=False)
    (folder / "areas.geojson").write_text(json.dumps(_areas(city.streets)), encoding="utf-8")
    (folder / "profiles.toml").write_text(PROFILES, encoding="utf-8")
    (folder / "twmb.toml").write_text(CONFIG, encoding="utf-8")
    return {"busy": f"AM-{busy}", "nolen": mains.loc[nolen, "AssetID"], "n_breaks": len(b)}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    folder = tmp_path_factory.mktemp("assetcity")
    facts = _write_project(folder)
    load_schema.cache_clear()
    # one OpenMP thread: the gradient boosting of a few thousand rows only waits on more
    with pytest.MonkeyPatch.context() as mp, threadpool_limits(limits=1):
        mp.chdir(folder)
        r = twmb("--config", "twmb.toml", "--out", folder / "out", "run", "--json")
    load_schema.cache_clear()
    assert r.exit_code == 0, show(r)
    return folder, json.loads(r.stdout), facts


def _read(folder: Path, *tables: str) -> dict[str, pd.DataFrame]:
    with Store(folder / "out" / "twmb.duckdb", read_only=True) as store:
        return {t: store.read(t) for t in tables}


def test_run_reconciles_and_quarantines_a_main_without_length(project) -> None:
    folder, doc, facts = project
    assert doc["ok"] is True
    src = {s["source_id"]: s for s in doc["sources"]}
    for s in src.values():
        assert s["rows_in"] == s["accepted"] + s["quarantined"], s
    assert src["mains"]["quarantined_by_reason"] == {"geometry_missing": 1}
    assert src["mains"]["flags"]["no_geometry"] == src["mains"]["accepted"]
    assert src["breaks"]["accepted"] == facts["n_breaks"]
    t = _read(folder, "pipes", "quarantine")
    pipes = t["pipes"]
    validate_frame(pipes, TABLES["pipes"])
    assert pipes["geometry"].isna().all() and (pipes["length_m"] > 0).all()
    assert pipes["street_segment_id"].notna().all()
    q = t["quarantine"]
    assert facts["nolen"] in q.loc[q["source_id"] == "mains", "raw_record"].iloc[0]
    warnings = " | ".join(doc["warnings"])
    assert "reads no geometry" in warnings


def test_breaks_link_to_pipes_by_asset_id_and_to_streets_by_segment_id(project) -> None:
    folder, doc, _ = project
    t = _read(folder, "break_links", "breaks")
    links, breaks = t["break_links"], t["breaks"]
    validate_frame(links, TABLES["break_links"])
    pipe = links[links["unit_type"] == "pipe"].merge(breaks[["break_id", "asset_id"]])
    known = pipe["asset_id"].notna() & (pipe["asset_id"] != UNKNOWN_ASSET)
    assert (pipe.loc[known, "method"] == "asset_id").all()
    assert (pipe.loc[known, "unit_id"] == pipe.loc[known, "asset_id"]).all()
    # an unknown id falls back to spatial matching (impossible without geometry), counted
    unknown = pipe[pipe["asset_id"] == UNKNOWN_ASSET]
    assert len(unknown) == 3 and set(unknown["reason"]) == {"asset_id_unknown"}
    assert set(pipe.loc[pipe["asset_id"].isna(), "reason"]) == {"pipes_without_geometry"}
    warnings = " | ".join(doc["warnings"])
    assert "3 breaks carry an asset id not in the pipe inventory" in warnings
    street = links[links["unit_type"] == "street"]
    assert (street["method"] == "segment_id").all()
    assert (street["distance_m"] < 200).all()  # the named segment is near the break


def test_pipes_are_located_through_their_street_segment_or_breaks(project) -> None:
    folder, _, facts = project
    t = _read(folder, "unit_pipe", "pipe_streets", "pipe_cells", "unit_street")
    pu = t["unit_pipe"].set_index("unit_id")
    assert pu["geometry"].isna().all()
    assert pu.loc[facts["busy"], "location_method"] == "breaks"
    assert pu.loc[facts["busy"], "cell"] is not None
    assert (pu["location_method"].drop(facts["busy"]) == "segment_id").all()
    assert pu["cell"].notna().all() and pu["neighbourhood"].notna().all()
    ps = t["pipe_streets"].set_index("pipe_id")
    by_id = ps[ps["method"] == "segment_id"]
    assert len(by_id) == len(pu) - 1
    assert np.allclose(by_id["overlap_m"], pu.loc[by_id.index, "length_m"])
    # street and cell exposure include the pipes without geometry
    assert np.isclose(t["unit_street"]["pipe_km"].sum(), by_id["overlap_m"].sum() / 1000)
    assert np.isclose(t["pipe_cells"]["length_m"].sum(), pu["length_m"].sum())


def test_a_pipe_level_model_is_trained_scored_and_published(project) -> None:
    folder, doc, _ = project
    (model,) = doc["model"]["models"]
    assert model["unit_type"] == "pipe" and Path(model["card"]).is_file()
    assert model["forward_capture_5pct"] is not None
    # the champion was chosen among pipe candidates and every pipe baseline, by length
    card = json.loads(Path(model["card"]).with_name("card.json").read_text())
    assert card["weight"] == "length_km"
    champ = card["champion"]
    assert model["champion"] == champ["name"] and champ["statement"]
    pipe_rules = {"age", "material_decade", "empirical_bayes", "past_breaks_5y", "past_rate_5y"}
    assert pipe_rules <= set(champ["outer"]["baselines"])
    assert {"boost", "boost_small", "glm"} <= set(champ["outer"]["candidates"])
    t = _read(folder, "models", "risk_scores", "unit_pipe")
    assert set(t["models"]["unit_type"]) == {"pipe"}
    scores = t["risk_scores"]
    assert set(scores["unit_type"]) == {"pipe"}
    ids = set(scores["unit_id"])  # the pipes in service in the target year
    assert len(ids) == len(scores) > 400 and ids <= set(t["unit_pipe"]["unit_id"])
    # the star schema: the pipe dimension without WKT, scored pipes in the fact table
    con = duckdb.connect(str(folder / "out" / "star.duckdb"), read_only=True)
    try:
        n, wkt, cells = con.execute(
            "SELECT count(*), count(wkt), count(*) FILTER (pipe_key > 0 AND h3_index <> 'unknown') "
            "FROM dim_pipe"
        ).fetchone()
        scored = con.execute("SELECT count(*) FROM fact_risk_score").fetchone()[0]
    finally:
        con.close()
    assert n == len(t["unit_pipe"]) + 2 and wkt == 0 and cells == len(t["unit_pipe"])
    assert scored == len(scores)
    assert (folder / "out" / "maps" / "twmb_map.html").is_file()
