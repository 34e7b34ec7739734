"""A user adds another city with TOML and JSON files only, no code.

``tests/fixtures/springfield`` holds the made-up City of Springfield (near Hamilton, Ontario):
a project config, a profile file with two profiles, the raw schema of its breaks CSV, a
neighbourhoods GeoJSON and a Windows-1252 breaks CSV with one deliberately bad row per
quarantine reason (see the README there).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import flat, show, twmb
from pyproj import Transformer

from twmb_geo.contracts import load_schema
from twmb_geo.core.crs import using_crs
from twmb_geo.store.duckdb_store import Store

pytestmark = pytest.mark.other_crs

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "springfield"
CONFIG = "springfield.toml"

GOOD = [f"WO-{i:04d}" for i in range(1, 25)]
REPAIRED = "WO-0100"  # Easting/Northing swapped; swapping back lands in town
EXPECTED_REASONS = {
    "WO-9001": "date_unparseable",
    "WO-9002": "date_missing",
    "WO-9003": "date_out_of_range",
    "WO-9004": "date_future",
    "WO-9005": "duplicate",
    "WO-9006": "outside_service_area",
    "WO-9007": "coords_missing",
    "WO-9008": "coords_invalid",
    "WO-9009": "swapped_xy",
    "WO-9010": "value_unparseable",
    "WO-9011": "year_mismatch",
}
AREAS = {
    "SP01": "Old Town",
    "SP02": "Évangéline Heights",
    "SP03": "Lakeview",
    "SP04": "Sainte-Thérèse",
}


# --------------------------------------------------------------------------- helpers


def copy_city(dest: Path) -> Path:
    shutil.copytree(FIXTURE, dest)
    return dest


@pytest.fixture(autouse=True)
def _fresh_schema_cache() -> Iterator[None]:
    # load_schema caches by the reference string and resolves a relative raw_schema path
    # against the working directory of its first call: tests that change directory start
    # from an empty cache.
    load_schema.cache_clear()
    yield
    load_schema.cache_clear()


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """``twmb --config springfield.toml --out OUT run --json`` run from the project folder."""
    project = copy_city(tmp_path_factory.mktemp("city") / "springfield")
    load_schema.cache_clear()
    with pytest.MonkeyPatch.context() as mp, using_crs(None):
        mp.chdir(project)
        r = twmb("--config", CONFIG, "--out", project / "out", "run", "--json")
    assert r.exit_code == 0, show(r)
    doc = json.loads(r.stdout)
    return project, doc


def tables(project: Path) -> dict[str, pd.DataFrame]:
    with Store(project / "out" / "twmb.duckdb", read_only=True) as store:
        return {t: store.read(t) for t in ("breaks", "quarantine", "neighbourhoods")}


def raw_csv() -> pd.DataFrame:
    return pd.read_csv(FIXTURE / "breaks.csv", encoding="cp1252", dtype=str, keep_default_na=False)


# --------------------------------------------------------------------------- the run
def test_run_is_ok_and_reconciles(city: tuple[Path, dict]) -> None:
    project, doc = city
    assert doc["ok"] is True and doc["command"] == "run"
    src = {s["source_id"]: s for s in doc["sources"]}
    assert list(src) == ["springfield_areas", "springfield_breaks"]  # areas first

    areas = src["springfield_areas"]
    assert areas["profile"] == "springfield_neighbourhoods"
    assert (areas["rows_in"], areas["accepted"]) == (5, 4)
    assert areas["quarantined_by_reason"] == {"id_duplicate": 1}

    breaks = src["springfield_breaks"]
    assert breaks["profile"] == "springfield_breaks_csv"
    assert breaks["kind"] == "breaks"
    assert breaks["rows_in"] == len(raw_csv()) == 36
    assert breaks["accepted"] == len(GOOD) + 1 == 25
    assert breaks["rows_in"] == breaks["accepted"] + breaks["quarantined"]
    assert breaks["quarantined_by_reason"] == {r: 1 for r in EXPECTED_REASONS.values()}
    assert breaks["flags"] == {"utm17_swapped_xy_repaired": 1}
    assert not [w for w in doc["warnings"] if "no service area" in w], doc["warnings"]
    for name in ("summary.json", "manifest.json", "twmb.duckdb"):
        assert (project / "out" / name).is_file()


def test_each_bad_row_is_quarantined_with_its_reason(city: tuple[Path, dict]) -> None:
    q = tables(city[0])["quarantine"]
    qb = q[q["source_id"] == "springfield_breaks"]
    got = {
        json.loads(rec)["WorkOrder"]: reason
        for rec, reason in zip(qb["raw_record"], qb["reason"], strict=True)
    }
    assert got == EXPECTED_REASONS
    raw = raw_csv()
    rows = {wo: i + 1 for i, wo in enumerate(raw["WorkOrder"])}  # 1-based data rows
    assert sorted(qb["source_row"]) == sorted(rows[wo] for wo in EXPECTED_REASONS)
    assert set(qb["source_file"]) == {"breaks.csv"}
    detail = dict(zip(qb["reason"], qb["detail"], strict=True))
    assert "31/02/2019" in detail["date_unparseable"]
    assert f"row {rows['WO-0001']}" in detail["duplicate"]
    qa = q[q["source_id"] == "springfield_areas"]
    assert qa["reason"].tolist() == ["id_duplicate"]
    assert "SP02" in qa["detail"].iloc[0]


def test_accepted_rows(city: tuple[Path, dict]) -> None:
    b = tables(city[0])["breaks"]
    raw = raw_csv()
    accepted = raw[raw["WorkOrder"].isin([*GOOD, REPAIRED])].reset_index(drop=True)
    assert len(b) == len(accepted)
    b = b.sort_values("source_row").reset_index(drop=True)
    assert b["source_row"].tolist() == (accepted.index + 1).tolist()
    assert set(b["source_id"]) == {"springfield_breaks"}
    assert set(b["coord_source"]) == {"utm17"}
    # mapped fields, decoded from Windows-1252
    assert b["material"].tolist() == accepted["PipeMaterial"].tolist()
    assert "Béton" in set(b["material"])
    assert b["asset_id"].tolist() == accepted["MainID"].tolist()
    assert b["diameter_mm"].tolist() == accepted["DiameterMM"].astype(float).tolist()
    dates = pd.to_datetime(accepted["ReportedOn"], format="%d/%m/%Y")
    assert (pd.to_datetime(b["break_date"]) == dates).all()
    # positions: UTM 17N NAD83 -> the analysis CRS chosen from the data (the same CRS);
    # the repaired row is swapped back
    e, n = accepted["Easting"].astype(float), accepted["Northing"].astype(float)
    rep = (accepted["WorkOrder"] == REPAIRED).to_numpy()
    e, n = np.where(rep, n, e), np.where(rep, e, n)
    x, y = Transformer.from_crs("EPSG:26917", "EPSG:26917", always_xy=True).transform(e, n)
    assert np.hypot(b["x"] - x, b["y"] - y).max() < 5
    with Store(city[0] / "out" / "twmb.duckdb", read_only=True) as store:
        assert store.read("project_crs")["crs"].tolist() == ["EPSG:26917"]
    assert b.loc[rep, "flags"].tolist() == ["utm17_swapped_xy_repaired"]
    assert set(b.loc[~rep, "flags"]) == {""}


def test_summary_per_year_and_neighbourhoods(city: tuple[Path, dict]) -> None:
    project, doc = city
    assert doc["breaks_per_year"] == {
        "2015": 4,
        "2016": 4,
        "2017": 4,
        "2018": 5,
        "2019": 4,
        "2020": 4,
    }
    assert doc["breaks_total"] == 25
    top = doc["top_neighbourhoods"]
    assert {t["area_code"]: t["area_name"] for t in top} == AREAS
    assert sum(t["breaks"] for t in top) == 25  # every accepted break is in one area
    nb = tables(project)["neighbourhoods"]
    assert dict(zip(nb["area_code"], nb["area_name"], strict=True)) == AREAS
    assert np.allclose(nb["area_km2"], 4.0, atol=0.05)


def test_profiles_lists_the_city_profiles(
    city: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, _ = city
    monkeypatch.chdir(project)
    r = twmb("--config", CONFIG, "--out", project / "out", "profiles", "--json")
    assert r.exit_code == 0, show(r)
    by_id = {p["id"]: p for p in json.loads(r.stdout)["profiles"]}
    assert by_id["springfield_breaks_csv"]["kind"] == "breaks"
    assert by_id["springfield_breaks_csv"]["format"] == "csv"
    assert by_id["springfield_neighbourhoods"]["kind"] == "neighbourhoods"
    origin = Path(by_id["springfield_breaks_csv"]["origin"])
    assert origin.resolve() == (project / "springfield_profiles.toml").resolve()
    assert "toronto_breaks_shapefile" in by_id  # the built-ins are still listed

    r = twmb("--config", CONFIG, "--out", project / "out", "profiles")
    assert r.exit_code == 0, show(r)
    assert "springfield_breaks_csv" in r.stdout and "springfield_neighbourhoods" in r.stdout


# --------------------------------------------------------------------------- bad profiles
BAD_PROFILE = """\
[[profile]]
id = "springfield_breaks_csv"
kind = "sewer_breaks"
format = "csv"
colour = "blue"
description = "broken on purpose"
raw_schema = "{schema}"
columns = {{ break_date = "ReportedOnDate", material = "PipeMaterial" }}
coordinates = [{{ name = "utm17", x = "Easting", y = "Northing", crs = "EPSG:26917" }}]
checks = {{ year_mismatch = "drop" }}

[[profile]]
id = "springfield_neighbourhoods"
kind = "neighbourhoods"
format = "geojson"
description = "fine"
crs = "EPSG:4326"
columns = {{ area_code = "code", area_name = "name" }}
"""
BAD_PROFILE_PROBLEMS = (
    "'kind' must be one of",
    "got 'sewer_breaks'",
    "unknown keys ['colour']",
    "year_mismatch must be 'quarantine' or 'flag', got 'drop'",
    "columns ['ReportedOnDate'] are not declared in raw schema",
)


@pytest.fixture
def bad_profile_city(tmp_path: Path) -> Path:
    project = copy_city(tmp_path / "springfield")
    schema = project / "springfield_breaks.schema.json"
    (project / "springfield_profiles.toml").write_text(
        BAD_PROFILE.format(schema=schema), encoding="utf-8"
    )
    return project


def test_invalid_user_profile_lists_every_problem(bad_profile_city: Path) -> None:
    project = bad_profile_city
    r = twmb("--config", project / CONFIG, "--out", project / "out", "run", "--json")
    assert r.exit_code == 2, show(r)
    assert "Traceback" not in r.stdout + r.stderr
    assert r.stderr.count("error:") == 1, show(r)  # one error ...
    msg = flat(r.stderr)
    assert "springfield_breaks_csv" in msg and "springfield_profiles.toml" in msg, msg
    for problem in BAD_PROFILE_PROBLEMS:  # ... listing every problem
        assert problem in msg, f"{problem!r} missing from\n{r.stderr}"
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 2
    for problem in BAD_PROFILE_PROBLEMS:
        assert problem in doc["error"]
    assert not (project / "out" / "twmb.duckdb").exists()


def test_invalid_user_profile_is_reported_once(bad_profile_city: Path) -> None:
    project = bad_profile_city
    r = twmb("--config", project / CONFIG, "--out", project / "out", "profiles", "--json")
    assert r.exit_code == 2, show(r)
    error = json.loads(r.stdout)["error"]
    for problem in BAD_PROFILE_PROBLEMS:
        assert error.count(problem) == 1, error
    assert "source 'springfield_areas'" not in error, error


def test_relative_raw_schema_is_found_next_to_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = copy_city(tmp_path / "springfield")
    monkeypatch.chdir(tmp_path)  # not the project folder
    r = twmb(
        "--config", Path("springfield") / CONFIG, "--out", tmp_path / "out", "ingest", "--json"
    )
    assert r.exit_code == 0, show(r)
    src = {s["source_id"]: s for s in json.loads(r.stdout)["sources"]}
    assert src["springfield_breaks"]["accepted"] == 25
    assert project.is_dir()
