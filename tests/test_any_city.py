"""A city anywhere runs end to end from TOML alone: four hand-made cities in other CRSs.

``tests/fixtures/cities`` (see ``make_cities.py`` there) holds four small cities in real
exporters' formats: Alberta (lon/lat breaks, 3TM mains, no boundary, streets without node
ids), Texas (state plane in US survey feet, inches, month-first dates), Queensland (southern
hemisphere, MGA zone 56, day-first dates, CRS set in the config) and a London-like city of
breaks only astride the Greenwich meridian whose record ends on 9 January. Each runs
``twmb run`` with no default analysis CRS in force (marker ``other_crs``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import show, twmb
from pyproj import Transformer

from twmb_geo.contracts import load_schema
from twmb_geo.core.crs import current_crs, using_crs
from twmb_geo.store.duckdb_store import Store

pytestmark = [pytest.mark.other_crs, pytest.mark.slow]

CITIES = Path(__file__).resolve().parent / "fixtures" / "cities"

#: city -> (analysis CRS, how it was set, display name)
EXPECTED = {
    "alberta": ("EPSG:26912", "auto", "Alberta Falls"),  # NAD83: the mains' datum
    "texas": ("EPSG:26914", "auto", "Lone Star Springs"),
    "queensland": ("EPSG:7856", "config", "Kangaroo Creek"),
    "london": ("EPSG:32631", "auto", "Greenwich Reach"),
}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def city(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """``twmb --config twmb.toml run --json`` in a copy of one city's folder."""
    name = request.param
    project = tmp_path_factory.mktemp(name) / name
    shutil.copytree(CITIES / name, project, ignore=shutil.ignore_patterns("out"))
    load_schema.cache_clear()
    with pytest.MonkeyPatch.context() as mp, using_crs(None):
        mp.chdir(project)
        r = twmb("--config", "twmb.toml", "run", "--json")
    assert r.exit_code == 0, show(r)
    doc = json.loads(r.stdout)
    with Store(project / "out" / "twmb.duckdb", read_only=True) as store:
        tables = {
            t: store.read(t)
            for t in ("project_crs", "breaks", "quarantine", "pipes", "street_segments")
            if store.has_table(t)
        }
        tables["risk_scores"] = store.read("risk_scores")
    return name, project, doc, tables


def test_no_default_crs_leaks_into_these_tests() -> None:
    assert current_crs() is None


def test_runs_and_reconciles(city) -> None:
    _name, _project, doc, _ = city
    assert doc["ok"] is True
    for src in doc["sources"]:
        excluded = src.get("excluded", {})
        n_excluded = sum(excluded.values()) if isinstance(excluded, dict) else int(excluded)
        assert src["rows_in"] == src["accepted"] + src["quarantined"] + n_excluded, src
        assert src["accepted"] > 0, src


def test_analysis_crs(city) -> None:
    name, project, _doc, tables = city
    crs, method, _ = EXPECTED[name]
    row = tables["project_crs"].iloc[0]
    assert (row["crs"], row["method"]) == (crs, method)
    manifest = json.loads((project / "out" / "manifest.json").read_text())
    assert manifest["analysis_crs"]["crs"] == crs


def test_positions_round_trip(city) -> None:
    """Stored x/y in the analysis CRS go back to the stored lon/lat within a millimetre."""
    name, _, _, tables = city
    crs = EXPECTED[name][0]
    b = tables["breaks"]
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(b["x"], b["y"])
    assert np.abs(lon - b["lon"]).max() < 1e-7 and np.abs(lat - b["lat"]).max() < 1e-7
    south = name == "queensland"
    assert (b["lat"] < 0).all() if south else (b["lat"] > 0).all()


def test_scores_and_outputs(city) -> None:
    name, project, _, tables = city
    assert len(tables["risk_scores"]) > 0
    maps = project / "out" / "maps"
    assert list(maps.rglob("*.png")) and list(maps.rglob("*.html"))
    report = next((project / "out").rglob("report*.html"))
    html = report.read_text(encoding="utf-8")
    assert EXPECTED[name][2] in html
    assert "Toronto" not in html


def _raw(project: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(project / name, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def test_alberta_filters_and_lonlat(city) -> None:
    name, project, doc, tables = city
    if name != "alberta":
        pytest.skip("Alberta only")
    raw = _raw(project, "Water_Main_Breaks.csv")
    src = next(s for s in doc["sources"] if s["source_id"] == "breaks")
    mains = int((raw["BREAK_TYPE"] == "MAIN BREAK").sum())
    assert src["rows_in"] == len(raw)
    assert src["accepted"] + src["quarantined"] == mains
    # streets without node ids got derived nodes
    st = tables["street_segments"]
    assert st["from_node"].notna().all() and st["to_node"].notna().all()


def test_texas_feet_inches_and_month_first(city) -> None:
    name, project, _, tables = city
    if name != "texas":
        pytest.skip("Texas only")
    raw = _raw(project, "water_main_breaks.csv")
    b = tables["breaks"].sort_values("source_row")
    acc = raw.iloc[b["source_row"].to_numpy() - 1]
    want = pd.to_datetime(acc["date_reported"], format="%m/%d/%Y").to_numpy()
    assert (pd.to_datetime(b["break_date"]).to_numpy() == want).all()
    assert set(b["diameter_mm"].round()) <= {152.0, 203.0, 254.0, 305.0}
    # state plane feet -> metres: the same points in NAD83 / UTM 14N
    x, y = Transformer.from_crs("EPSG:2277", "EPSG:26914", always_xy=True).transform(
        acc["x_coordinate"].astype(float), acc["y_coordinate"].astype(float)
    )
    assert np.hypot(b["x"] - x, b["y"] - y).max() < 0.01
    p = tables["pipes"]
    assert np.allclose(p["length_m"], p["measured_length_m"], rtol=0.01)


def test_queensland_day_first(city) -> None:
    name, project, _, tables = city
    if name != "queensland":
        pytest.skip("Queensland only")
    raw = _raw(project, "main_breaks.csv")
    b = tables["breaks"].sort_values("source_row")
    acc = raw.iloc[b["source_row"].to_numpy() - 1]
    want = pd.to_datetime(acc["Date Reported"], format="%d/%m/%Y").to_numpy()
    assert (pd.to_datetime(b["break_date"]).to_numpy() == want).all()
    assert np.allclose(b["x"], acc["Easting"].astype(float), atol=1e-6)
    assert np.allclose(b["y"], acc["Northing"].astype(float), atol=1e-6)


def test_london_partial_last_year(city) -> None:
    name, _, doc, tables = city
    if name != "london":
        pytest.skip("London only")
    b = tables["breaks"]
    assert b["lon"].min() < 0 < b["lon"].max()  # astride the Greenwich meridian
    assert int(b["year"].max()) == 2021
    text = " ".join(doc.get("warnings", []))
    assert "2021" in text and "partial" in text


def test_no_service_area_at_all(tmp_path: Path) -> None:
    """``service_area = "none"``: no area, no cell units; pipes and streets still modelled."""
    project = tmp_path / "alberta"
    shutil.copytree(CITIES / "alberta", project, ignore=shutil.ignore_patterns("out"))
    cfg = (project / "twmb.toml").read_text()
    cfg = cfg.replace('out = "out"\n', 'out = "out"\nservice_area = "none"\n')
    cfg = cfg.replace(
        "[model]\n", '[model]\nunit_types = ["pipe", "street"]\nschemes = ["forward"]\n'
    )
    (project / "twmb.toml").write_text(cfg)
    load_schema.cache_clear()
    with pytest.MonkeyPatch.context() as mp, using_crs(None):
        mp.chdir(project)
        r = twmb("--config", "twmb.toml", "run", "--json")
    assert r.exit_code == 0, show(r)
    with Store(project / "out" / "twmb.duckdb", read_only=True) as store:
        assert store.count("service_area") == 0
        assert store.count("unit_cell") == 0
        scored = set(store.read("risk_scores")["unit_type"])
    assert scored == {"pipe", "street"}
