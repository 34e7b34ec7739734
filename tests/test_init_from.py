"""`twmb init --from`: inspect files in real exporters' formats and draft profiles + config."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
from cli_helpers import show, twmb
from hypothesis import given, settings
from hypothesis import strategies as st

from twmb_geo.config import load_config
from twmb_geo.errors import InputDataError
from twmb_geo.io.inspect import (
    CHECK,
    draft_project,
    guess_material_class,
    inspect_file,
    sniff_date_format,
    utm_zone_crs,
)
from twmb_geo.io.profiles import _KEYS, parse_profile


def _epoch_ms(d: dt.date) -> int:
    return int(dt.datetime(d.year, d.month, d.day, 14, tzinfo=dt.UTC).timestamp() * 1000)


def _hub_breaks_csv(path: Path, n: int = 40) -> Path:
    """ArcGIS Hub CSV export: UTF-8 BOM, OBJECTID, GlobalID, epoch-ms dates, LATITUDE/LONGITUDE."""
    rng = np.random.default_rng(1)
    lines = [
        "OBJECTID,GlobalID,BREAK_DATE,BREAK_TYPE,FACILITYID,MATERIAL,DIAMETER,LATITUDE,LONGITUDE"
    ]
    for i in range(n):
        d = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3000)))
        btype = ["Main Break", "Hydrant", "Service"][i % 3]
        mat = ["CI", "DI", "PVC"][i % 3]
        lat, lon = 53.5 + rng.uniform(-0.1, 0.1), -113.5 + rng.uniform(-0.1, 0.1)
        lines.append(
            f"{i + 1},{{6f1c{i:04d}-0000-4000-8000-00000000{i:04d}}},{_epoch_ms(d)},{btype},"
            f"WM{1000 + i},{mat},{[6, 8, 12][i % 3]},{lat:.6f},{lon:.6f}"
        )
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode("utf-8"))
    return path


def _socrata_breaks_csv(path: Path) -> Path:
    """Socrata CSV: lower_snake names, dd/mm/yyyy dates, a POINT location column."""
    rows = ["break_id,break_date,asset_id,pipe_material,latitude,longitude,location"]
    dates = ["03/02/2019", "25/12/2019", "07/07/2020", "14/01/2021", "01/11/2021", "30/06/2022"]
    for i, d in enumerate(dates * 3):
        lat, lon = -33.87 + i * 0.001, 151.2 + i * 0.001
        rows.append(f"B{i},{d},A{i % 5},AC,{lat:.5f},{lon:.5f},POINT ({lon:.5f} {lat:.5f})")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _pipes_geojson(path: Path, length_factor: float | None = None) -> Path:
    """ArcGIS Hub GeoJSON of mains: lines, Shape__Length, MATERIAL codes, DIAMETER in inches.

    Shape__Length is in the hosted layer's units: Web Mercator metres by default (not true
    lengths), or ``length_factor`` times the true length in metres.
    """
    from pyproj import Geod, Transformer

    merc = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    feats = []
    for i in range(30):
        x, y = -96.8 + i * 0.002, 32.78
        if length_factor is None:
            (mx0, mx1), (my0, my1) = merc.transform([x, x + 0.0015], [y, y + 0.0005])
            shape_len = float(np.hypot(mx1 - mx0, my1 - my0))
        else:
            true = Geod(ellps="WGS84").line_length([x, x + 0.0015], [y, y + 0.0005])
            shape_len = true * length_factor
        feats.append(
            {
                "type": "Feature",
                "properties": {
                    "OBJECTID": i + 1,
                    "FACILITYID": f"WM-{i:05d}",
                    "MATERIAL": ["DI", "CI", "PVC", "AC", "XYZ"][i % 5],
                    "DIAMETER": [6, 8, 12, 16, 24][i % 5],
                    "INSTALLDATE": f"19{60 + i}-05-01T00:00:00Z",
                    "LIFECYCLESTATUS": "Active",
                    "Shape__Length": round(shape_len, 3),
                },
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[x, y], [x + 0.0015, y + 0.0005]],
                },
            }
        )
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}), encoding="utf-8")
    return path


def _inventory_csv(path: Path) -> Path:
    """Asset-management export: mains without geometry, linked to breaks by asset id."""
    rows = ["ASSET_ID,MATERIAL,DIAMETER_MM,INSTALL_YEAR,LENGTH_M,ROAD_SEGMENT_ID"]
    for i in range(25):
        rows.append(
            f"A{i},{['Cast Iron', 'Ductile Iron', 'PVC', 'Asbestos Cement', 'Unknown'][i % 5]},"
            f"{[150, 200, 300][i % 3]},{1950 + i},{100 + i}.5,S{i % 7}"
        )
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _known(doc: dict[str, Any]) -> dict[str, Any]:
    """The drafted profile, after checking it uses only keys the profile parser knows."""
    assert set(doc) <= _KEYS, sorted(set(doc) - _KEYS)
    return doc


def _profiles(text: str) -> list[dict[str, Any]]:
    return list(tomllib.loads(text)["profile"])


def test_hub_breaks_csv_with_bom_and_epoch_ms(tmp_path: Path) -> None:
    g = inspect_file(_hub_breaks_csv(tmp_path / "Water_Main_Breaks.csv"))
    assert (g.format, g.bom, g.kind) == ("csv", True, "breaks")
    assert g.guesses["encoding"].certain
    assert g.mapping["break_date"] == "BREAK_DATE"
    assert g.mapping["asset_id"] == "FACILITYID"
    assert g.mapping["record_id"] == "OBJECTID"
    assert g.mapping["material"] == "MATERIAL" and g.mapping["diameter_mm"] == "DIAMETER"
    assert g.date_format == "epoch_ms" and g.date_order is None
    assert g.diameter_unit == "in"
    assert g.materials == {"CI": "cast_iron", "DI": "ductile_iron", "PVC": "pvc"}
    [pair] = g.coordinates
    assert (pair.x, pair.y, pair.crs) == ("LONGITUDE", "LATITUDE", "EPSG:4326")
    assert g.filter_column == "BREAK_TYPE" and len(g.filter_values) == 3
    text = draft_project([g], tmp_path).profiles_toml
    [doc] = _profiles(text)
    assert doc["date_format"] == "epoch_ms" and doc["diameter_unit"] == "in"
    assert doc["materials"]["DI"] == "ductile_iron"
    assert "# [[profile.where]]" in text and '# column = "BREAK_TYPE"' in text
    assert "# GUESS: " in text and "byte-order mark" in text
    prof = parse_profile(_known(doc))
    assert prof.kind == "breaks" and prof.coordinates[0].crs == "EPSG:4326"


def test_socrata_csv_day_first(tmp_path: Path) -> None:
    g = inspect_file(_socrata_breaks_csv(tmp_path / "main_breaks.csv"))
    assert g.kind == "breaks" and not g.bom
    assert g.mapping["break_date"] == "break_date"
    assert g.mapping["record_id"] == "break_id" and g.mapping["asset_id"] == "asset_id"
    assert g.mapping["material"] == "pipe_material"
    assert (g.date_format, g.date_order, g.date_pattern) == ("auto", "dmy", "%d/%m/%Y")
    assert "day-first: 9 of 18 values have a first field > 12" in g.guesses["date_order"].evidence
    assert g.materials == {"AC": "asbestos_cement"}
    assert g.coordinates[0].crs == "EPSG:4326"
    draft = draft_project([g], tmp_path)
    # southern hemisphere, 151 E: UTM zone 56 south
    assert draft.project_crs == utm_zone_crs(151.2, -33.87) == "EPSG:32756"
    [doc] = _profiles(draft.profiles_toml)
    assert doc["date_order"] == "dmy"
    parse_profile(_known(doc))


def test_pipes_geojson_lines_in_inches(tmp_path: Path) -> None:
    g = inspect_file(_pipes_geojson(tmp_path / "Water_Mains.geojson"))
    assert (g.format, g.kind, g.geometry_type) == ("geojson", "pipes", "LineString")
    assert g.file_crs == "EPSG:4326" and g.guesses["crs"].certain
    assert g.mapping["asset_id"] == "FACILITYID"
    assert g.mapping["install_date"] == "INSTALLDATE"
    assert "measured_length_m" not in g.mapping  # Web Mercator units, not lengths
    assert any("Shape__Length" in n and "geometry" in n for n in g.notes)
    assert g.mapping["record_id"] == "OBJECTID"
    assert g.diameter_unit == "in" and g.date_format == "auto"
    assert g.materials == {
        "AC": "asbestos_cement",
        "CI": "cast_iron",
        "DI": "ductile_iron",
        "PVC": "pvc",
        "XYZ": "other",
    }
    assert "no rule matched" in g.guesses["materials.XYZ"].evidence
    draft = draft_project([g], tmp_path)
    assert draft.project_crs == "EPSG:32614"  # 96.8 W
    [doc] = _profiles(draft.profiles_toml)
    assert "crs" not in doc  # the file says it; written as a comment only
    parse_profile(_known(doc))


@pytest.mark.parametrize(("factor", "unit"), [(1.0, "m"), (3.28084, "ft")])
def test_shape_length_unit_from_geometry(tmp_path: Path, factor: float, unit: str) -> None:
    g = inspect_file(_pipes_geojson(tmp_path / "mains.geojson", length_factor=factor))
    assert g.mapping["measured_length_m"] == "Shape__Length"
    assert g.length_unit == unit and "match the lines' length" in g.guesses["length_unit"].evidence


def test_inventory_without_geometry(tmp_path: Path) -> None:
    g = inspect_file(_inventory_csv(tmp_path / "mains_inventory.csv"))
    assert g.kind == "pipes" and g.geometry_type is None and not g.coordinates
    assert g.mapping["asset_id"] == "ASSET_ID"
    assert g.mapping["construction_year"] == "INSTALL_YEAR"
    assert g.mapping["measured_length_m"] == "LENGTH_M" and g.length_unit == "m"
    assert g.diameter_unit == "mm"
    assert g.materials["Cast Iron"] == "cast_iron" and g.materials["Unknown"] == "unknown"
    assert g.materials["Asbestos Cement"] == "asbestos_cement"
    [doc] = _profiles(draft_project([g], tmp_path).profiles_toml)
    parse_profile(_known(doc))


def test_projected_columns_fitted_from_lonlat_else_check(tmp_path: Path) -> None:
    from pyproj import Transformer

    crs = utm_zone_crs(-113.5, 53.5)
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    rows = ["INCIDENT_DATE,X_COORD,Y_COORD,LAT,LON"]
    for i in range(10):
        lon, lat = -113.5 + i * 0.01, 53.5 + i * 0.01
        x, y = tr.transform(lon, lat)
        rows.append(f"2020-0{1 + i % 9}-1{i % 9},{x:.2f},{y:.2f},{lat},{lon}")
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    g = inspect_file(tmp_path / "a.csv")
    assert [p.crs for p in g.coordinates] == ["EPSG:4326", crs]
    assert "median" in g.guesses["coordinates.projected"].evidence
    # without the lon/lat columns the projected pair cannot be placed: CHECK
    (tmp_path / "b.csv").write_text(
        "\n".join(",".join(r.split(",")[:3]) for r in rows) + "\n", encoding="utf-8"
    )
    g = inspect_file(tmp_path / "b.csv")
    assert [p.crs for p in g.coordinates] == [CHECK]
    assert g.kind == "breaks" and g.date_format == "auto"
    assert g.to_check[0].value == CHECK


def test_draft_project_loads_and_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    files = [
        _hub_breaks_csv(data / "breaks.csv"),
        _pipes_geojson(data / "mains.geojson"),
        _inventory_csv(data / "inventory.csv"),
    ]
    proj = tmp_path / "newcity"
    r = twmb("init", "--from", files[0], "--from", files[1], files[2], "--dir", proj, "--json")
    assert r.exit_code == 0, show(r)
    out = json.loads(r.stdout)
    assert out["sources"] == [
        {"id": "breaks", "profile": "newcity_breaks", "kind": "breaks", "file": str(files[0])},
        {"id": "pipes", "profile": "newcity_pipes", "kind": "pipes", "file": str(files[1])},
        {
            "id": "pipes_inventory",
            "profile": "newcity_pipes_inventory",
            "kind": "pipes",
            "file": str(files[2]),
        },
    ]
    assert out["crs"] == "auto"  # Edmonton and Dallas: several zones
    assert any(g["value"] == "other" for g in out["to_check"])
    cfg_doc = tomllib.loads((proj / "twmb.toml").read_text(encoding="utf-8"))
    assert cfg_doc["project"]["name"] == "newcity" and cfg_doc["project"]["crs"] == "auto"
    assert cfg_doc["sources"][0]["path"] == "../data/breaks.csv"
    # the drafts load as written (sources pointed at the files)
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    prof = tomllib.loads((proj / "profiles.toml").read_text(encoding="utf-8"))
    prof["profile"] = [_known(p) for p in prof["profile"]]
    (stripped / "profiles.toml").write_text(tomli_w.dumps(prof), encoding="utf-8")
    cfg_doc["sources"] = [
        {**s, "path": str((proj / s["path"]).resolve())} for s in cfg_doc["sources"]
    ]
    (stripped / "twmb.toml").write_text(tomli_w.dumps(cfg_doc), encoding="utf-8")
    cfg = load_config(stripped / "twmb.toml")
    assert [s.profile for s in cfg.sources] == [s["profile"] for s in out["sources"]]
    assert cfg.service_area_source is None
    # refuses to overwrite; --force does
    r = twmb("init", "--from", files[0], "--dir", proj)
    assert r.exit_code != 0 and "--force" in r.stderr
    r = twmb("init", "--from", files[0], "--dir", proj, "--force")
    assert r.exit_code == 0, show(r)
    assert "GUESS" in r.stdout and "profiles.toml" in r.stdout


def test_unreadable_inputs(tmp_path: Path) -> None:
    (tmp_path / "x.docx").write_text("x")
    with pytest.raises(InputDataError, match="unknown file type"):
        inspect_file(tmp_path / "x.docx")
    (tmp_path / "e.zip").write_bytes(b"not a zip")
    with pytest.raises(InputDataError, match="zip"):
        inspect_file(tmp_path / "e.zip")


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("DIP", "ductile_iron"),
        ("YDI", "ductile_iron"),
        ("CICL", "cast_iron"),
        ("PVC C900", "pvc"),
        ("A/C", "asbestos_cement"),
        ("HDPE DR11", "hdpe"),
        ("STL", "steel"),
        ("PCCP", "concrete"),
        ("CU", "copper"),
        ("UNK", "unknown"),
        ("Lead", "other"),
        ("ZZ", None),
    ],
)
def test_material_rules(code: str, cls: str | None) -> None:
    assert guess_material_class(code) == cls


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.dates(dt.date(1950, 1, 1), dt.date(2030, 12, 31)), min_size=1, max_size=40),
    st.sampled_from(["dmy", "mdy"]),
    st.sampled_from(["/", "-", "."]),
)
def test_date_order_sniffer_never_wrong(dates: list[dt.date], order: str, sep: str) -> None:
    fmt = sep.join(["%d", "%m", "%Y"] if order == "dmy" else ["%m", "%d", "%Y"])
    _, got, pattern, _ = sniff_date_format([d.strftime(fmt) for d in dates])
    if any(d.day > 12 for d in dates):
        assert got == order and pattern == fmt
    else:
        assert got == "auto" and pattern is None


def test_date_sniffer_forms() -> None:
    assert sniff_date_format(["2020-01-02", "2021-12-31T10:00:00Z"])[:2] == ("auto", None)
    assert sniff_date_format(["1577934000", "1609470000"])[0] == "epoch_s"
    assert sniff_date_format(["43831", "44197"])[0] == "excel"
    assert sniff_date_format(["1990", "2016"])[0] == "year"
    assert sniff_date_format(["2020/01/02"])[1] == "ymd"
    assert sniff_date_format(["13/01/2020", "01/13/2020"])[1] == "auto"  # contradictory
    assert sniff_date_format([])[0] == CHECK


def test_zipped_shapefile_areas_with_prj(tmp_path: Path) -> None:
    import zipfile

    import pyogrio
    import shapely

    crs = utm_zone_crs(-114.07, 51.05)  # UTM 11N
    polys = [
        shapely.box(700_000 + i * 1000, 5_650_000, 700_900 + i * 1000, 5_651_000) for i in range(4)
    ]
    shp = tmp_path / "shp" / "Community_Boundaries.shp"
    shp.parent.mkdir()
    pyogrio.raw.write(
        shp,
        shapely.to_wkb(np.array(polys)),
        [
            np.array(["BNF", "CHN", "DOV", "EAU"], dtype=object),
            np.array(["Banff Trail", "Chinook", "Dover", "Eau Claire"], dtype=object),
        ],
        fields=["COMM_CODE", "NAME"],
        geometry_type="Polygon",
        crs=crs,
        driver="ESRI Shapefile",
    )
    zpath = tmp_path / "Community_Boundaries.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in shp.parent.iterdir():
            zf.write(f, f.name)
    g = inspect_file(zpath)
    assert (g.format, g.member, g.kind) == (
        "shapefile",
        "Community_Boundaries.shp",
        "neighbourhoods",
    )
    assert g.file_crs == crs and g.guesses["crs"].certain
    assert g.mapping == {"area_code": "COMM_CODE", "area_name": "NAME"}
    draft = draft_project([g], tmp_path / "calgary")
    assert draft.project_crs == crs
    assert 'service_area_source = "neighbourhoods"' in draft.config_toml
    [doc] = _profiles(draft.profiles_toml)
    assert doc["member"] == "Community_Boundaries.shp"
    parse_profile(_known(doc))
