"""Profile materials (``[materials]`` -> canonical classes), units and ``[[where]]`` row filters.

Small CSV files written per test: watermains in EPSG:2952 (GeoJSON text geometry) and
breaks in WGS84, both in Toronto so the default reference area holds.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_helpers import show, twmb

from twmb_geo.contracts import load_schema, validate_frame
from twmb_geo.core.vocab import DEFAULT_MATERIALS, MATERIAL_CLASSES, MATERIAL_GROUPS
from twmb_geo.errors import ConfigError, InputDataError
from twmb_geo.ingest._common import IngestResult
from twmb_geo.ingest.sources import read_source
from twmb_geo.io.profiles import Profile, load_profile_file, parse_profile
from twmb_geo.store.duckdb_store import Store
from twmb_geo.store.summary import summarize

TODAY = dt.date(2026, 11, 25)
SPRINGFIELD = Path(__file__).resolve().parent / "fixtures" / "springfield"

# ------------------------------------------------------------------------ helpers


def _line(i: int) -> str:
    x0, y0 = 313_000.0 + 50.0 * i, 4_835_000.0
    return json.dumps({"type": "LineString", "coordinates": [[x0, y0], [x0 + 30.48, y0]]})


PIPES = [
    # ID, MAT, DIA (in), LEN (ft), OWNER
    ("P1", "DI", "6", "100", "CITY"),
    ("P2", " ydi ", "8", "100", "CITY"),
    ("P3", "pvc   c900", "12", "100", "CITY"),
    ("P4", "AC", "4", "100", "PRIVATE"),
    ("P5", "XYZ", "6", "100", "CITY"),
    ("P6", "xyz", "6", "100", "CITY"),
    ("P7", "", "6", "100", "CITY"),
    ("P8", "UNK", "6", "100", "CITY"),
    ("P9", "Own", "6", "100", "CITY"),
    ("P10", "QQ", "6", "100", "CITY"),
]


def _pipes_csv(tmp_path: Path) -> Path:
    df = pd.DataFrame(PIPES, columns=["ID", "MAT", "DIA", "LEN", "OWNER"])
    df["geometry"] = [_line(i) for i in range(len(df))]
    path = tmp_path / "mains.csv"
    df.to_csv(path, index=False)
    return path


def _pipes_profile(**extra: Any) -> Profile:
    doc: dict[str, Any] = {
        "id": "test_mains",
        "kind": "pipes",
        "format": "csv",
        "crs": "EPSG:2952",
        "geometry_column": "geometry",
        "columns": {
            "asset_id": "ID",
            "material": "MAT",
            "diameter_mm": "DIA",
            "measured_length_m": "LEN",
        },
        "diameter_unit": "in",
        "length_unit": "ft",
        "materials": {"own": {"class": "other", "label": "Our own pipe"}, "QQ": "steel"},
    }
    doc.update(extra)
    return parse_profile(doc, origin="test")


BREAKS = pd.DataFrame(
    {
        "ID": [f"B{i}" for i in range(1, 11)],
        "DATE": [
            "2015-01-05",
            "2016-02-05",
            "2017-03-05",
            "2018-04-05",
            "2019-05-05",
            "2020-06-05",
            "2021-07-05",
            "not a date",
            "2022-08-05",
            "2023-09-05",
        ],
        "TYPE": ["MAIN", "MAIN", "SERVICE", "HYDRANT", "MAIN", "", "MAIN", "MAIN", "MAIN", "MAIN"],
        "SIZE": ["6", "8", "1", "6", "12", "6", "", "6", "16", "6"],
        "LON": [f"{-79.40 + 0.002 * i:.4f}" for i in range(10)],
        "LAT": ["43.70"] * 10,
    }
)


def _breaks_csv(tmp_path: Path) -> Path:
    path = tmp_path / "breaks.csv"
    BREAKS.to_csv(path, index=False)
    return path


def _breaks_profile(where: list[dict[str, Any]] | None = None, **extra: Any) -> Profile:
    doc: dict[str, Any] = {
        "id": "test_breaks",
        "kind": "breaks",
        "format": "csv",
        "date_format": "%Y-%m-%d",
        "columns": {"break_date": "DATE", "diameter_mm": "SIZE", "record_id": "ID"},
        "coordinates": [{"name": "wgs84", "x": "LON", "y": "LAT", "crs": "EPSG:4326"}],
    }
    if where is not None:
        doc["where"] = where
    doc.update(extra)
    return parse_profile(doc, origin="test")


def _reconciles(res: IngestResult) -> None:
    res.reconcile()
    assert res.rows_in == res.accepted + len(res.quarantine) + sum(res.excluded.values())


def _accepted_ids(res: IngestResult) -> list[str]:
    """The accepted breaks as B<data row>."""
    return [f"B{r}" for r in sorted(res.tables["breaks"]["source_row"])]


# ------------------------------------------------------------------------ materials


def test_material_classes_and_groups_are_consistent() -> None:
    assert list(MATERIAL_CLASSES) == [
        "cast_iron",
        "ductile_iron",
        "pvc",
        "asbestos_cement",
        "steel",
        "concrete",
        "copper",
        "hdpe",
        "other",
        "unknown",
    ]
    assert {m.material_class for m in DEFAULT_MATERIALS.values()} <= set(MATERIAL_CLASSES)
    grouped = [c for g in MATERIAL_GROUPS.values() for c in g]
    assert len(grouped) == len(set(grouped)) and set(grouped) <= set(MATERIAL_CLASSES)
    enum = load_schema("curated/pipes").field("material_class").enum
    assert enum is not None and list(enum) == list(MATERIAL_CLASSES)


def test_materials_map_to_classes_keep_raw_and_warn_on_unknown(tmp_path: Path) -> None:
    res = read_source(_pipes_csv(tmp_path), _pipes_profile(), source_id="mains", today=TODAY)
    _reconciles(res)
    df = res.tables["pipes"].set_index("asset_id").loc[[p[0] for p in PIPES]]
    assert validate_frame(res.tables["pipes"], "curated/pipes") == []
    assert df["material_raw"].tolist() == [
        "DI",
        "ydi",
        "pvc   c900",
        "AC",
        "XYZ",
        "xyz",
        None,
        "UNK",
        "Own",
        "QQ",
    ]
    assert df["material_class"].tolist() == [
        "ductile_iron",
        "ductile_iron",
        "pvc",
        "asbestos_cement",
        "unknown",
        "unknown",
        "unknown",
        "unknown",
        "other",
        "steel",
    ]
    assert df["material"].tolist() == [
        "DI",
        "YDI",
        "PVC C900",
        "AC",
        None,
        None,
        None,
        None,
        "OWN",
        "QQ",
    ]
    # the profile's label, else the built-in one, else the class label
    assert df.loc["P9", "material_desc"] == "Our own pipe"
    assert df.loc["P1", "material_desc"] == "Ductile Iron"
    assert df.loc["P10", "material_desc"] == "Steel"
    flags = dict(zip(df.index, df["flags"], strict=True))
    assert "material_unrecognised" in flags["P5"] and "material_unrecognised" in flags["P6"]
    assert "material_missing" in flags["P7"] and "material_missing" in flags["P8"]
    assert res.flags["material_unrecognised"] == 2
    warning = [w for w in res.warnings if "not in [materials]" in w]
    assert warning == [
        "source 'mains': 2 material codes not in [materials]: 'XYZ' (1 rows), 'xyz' (1 rows) "
        "mapped to unknown; add them to the profile's [materials] table"
    ]


def test_profile_materials_override_the_defaults(tmp_path: Path) -> None:
    prof = _pipes_profile(materials={"DI": {"class": "cast_iron", "lined": True}})
    res = read_source(_pipes_csv(tmp_path), prof, today=TODAY)
    df = res.tables["pipes"].set_index("asset_id")
    assert df.loc["P1", "material_class"] == "cast_iron" and bool(df.loc["P1", "lined"])
    assert df.loc["P2", "material_class"] == "ductile_iron" and not bool(df.loc["P2", "lined"])


def test_units_inches_to_mm_and_feet_to_m(tmp_path: Path) -> None:
    res = read_source(_pipes_csv(tmp_path), _pipes_profile(), today=TODAY)
    df = res.tables["pipes"].set_index("asset_id")
    assert df.loc["P1", "diameter_mm"] == pytest.approx(152.4)
    assert df.loc["P3", "diameter_mm"] == pytest.approx(304.8)
    assert np.allclose(df["measured_length_m"], 30.48)
    # the geometry is 30.48 m long: no length mismatch once feet are metres
    assert not df["flags"].str.contains("length_mismatch").any()
    metric = _pipes_profile(diameter_unit="mm", length_unit="m")
    df2 = read_source(_pipes_csv(tmp_path), metric, today=TODAY).tables["pipes"]
    assert df2.set_index("asset_id").loc["P1", "diameter_mm"] == 6.0
    assert df2["flags"].str.contains("length_mismatch").all()


def test_break_diameter_in_inches(tmp_path: Path) -> None:
    res = read_source(_breaks_csv(tmp_path), _breaks_profile(diameter_unit="in"), today=TODAY)
    b = res.tables["breaks"].set_index("source_row")
    assert b.loc[1, "diameter_mm"] == pytest.approx(152.4)


def test_shared_materials_of_a_profile_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        "[materials]\nABC = 'pvc'\nDEF = 'steel'\n\n"
        "[[profile]]\nid = 'a'\nkind = 'neighbourhoods'\nformat = 'geojson'\n"
        "columns = { area_code = 'c', area_name = 'n' }\n"
        "materials = { def = 'concrete' }\n\n"
        "[[profile]]\nid = 'b'\nkind = 'neighbourhoods'\nformat = 'geojson'\n"
        "columns = { area_code = 'c', area_name = 'n' }\n",
        encoding="utf-8",
    )
    a, b = load_profile_file(path)
    assert a.material_map["ABC"].material_class == "pvc"
    assert a.material_map["DEF"].material_class == "concrete"
    assert b.material_map["DEF"].material_class == "steel"


# ------------------------------------------------------------------------ row filters

WHERE_CASES = [
    ([{"column": "TYPE", "equals": "MAIN"}], ["B1", "B2", "B5", "B7", "B9", "B10"], 3),
    (
        [{"column": "TYPE", "in": ["MAIN", "HYDRANT"]}],
        ["B1", "B2", "B4", "B5", "B7", "B9", "B10"],
        2,
    ),
    (
        [{"column": "TYPE", "not_in": ["SERVICE"]}],
        ["B1", "B2", "B4", "B5", "B6", "B7", "B9", "B10"],
        1,
    ),
    ([{"column": "TYPE", "not_null": True}], ["B1", "B2", "B3", "B4", "B5", "B7", "B9", "B10"], 1),
    ([{"column": "SIZE", "min": 6}], ["B1", "B2", "B4", "B5", "B6", "B9", "B10"], 2),
    ([{"column": "SIZE", "min": 6, "max": 12}], ["B1", "B2", "B4", "B5", "B6", "B10"], 3),
    ([{"column": "SIZE", "equals": 6}], ["B1", "B4", "B6", "B10"], 5),
    # an unparseable date (B8) fails a date range: excluded, not quarantined
    ([{"column": "DATE", "max": "2019-12-31"}], ["B1", "B2", "B3", "B4", "B5"], 5),
    ([{"column": "DATE", "min": dt.date(2020, 1, 1)}], ["B6", "B7", "B9", "B10"], 6),
]


@pytest.mark.parametrize(("where", "kept", "excluded"), WHERE_CASES)
def test_where_operators(where: list[dict], kept: list[str], excluded: int, tmp_path: Path) -> None:
    res = read_source(_breaks_csv(tmp_path), _breaks_profile(where), today=TODAY)
    _reconciles(res)
    assert res.rows_in == len(BREAKS)
    assert sum(res.excluded.values()) == excluded
    assert list(res.excluded) == [_breaks_profile(where).where[0].label]
    # B8 (unparseable date) is quarantined when the filters keep it, never excluded silently
    quarantined = set(res.quarantine["source_row"])
    assert quarantined <= {8}
    assert _accepted_ids(res) == kept
    assert any("excluded by the profile's [[where]]" in w for w in res.warnings)


def test_where_rules_count_each_row_once_under_its_first_failing_rule(tmp_path: Path) -> None:
    where = [
        {"column": "TYPE", "in": ["MAIN"]},
        {"column": "SIZE", "max": 8},
    ]
    res = read_source(_breaks_csv(tmp_path), _breaks_profile(where), today=TODAY)
    _reconciles(res)
    assert res.excluded == {"where:TYPE in ['MAIN']": 3, "where:SIZE <= 8": 3}
    assert _accepted_ids(res) == ["B1", "B2", "B10"]
    assert len(res.quarantine) == 1  # B8: kept by the filters, then its date fails


def test_where_applies_to_pipes_with_geometry(tmp_path: Path) -> None:
    prof = _pipes_profile(where=[{"column": "OWNER", "not_in": ["PRIVATE"]}])
    res = read_source(_pipes_csv(tmp_path), prof, today=TODAY)
    _reconciles(res)
    assert res.excluded == {"where:OWNER not in ['PRIVATE']": 1}
    df = res.tables["pipes"]
    assert "P4" not in set(df["asset_id"]) and len(df) == len(PIPES) - 1
    assert sorted(df["source_row"]) == [r for r in range(1, len(PIPES) + 1) if r != 4]


def test_where_on_a_missing_column_names_the_file_and_column(tmp_path: Path) -> None:
    path = _breaks_csv(tmp_path)
    prof = _breaks_profile([{"column": "BREAK_TYPE", "equals": "MAIN"}])
    with pytest.raises(InputDataError) as exc:
        read_source(path, prof, today=TODAY)
    assert str(path) in str(exc.value) and "'BREAK_TYPE'" in str(exc.value)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"where": [{"column": "TYPE", "like": "M%"}]}, "unknown operators ['like']"),
        ({"where": [{"column": "TYPE"}]}, "give exactly one of"),
        ({"where": [{"column": "TYPE", "equals": "A", "in": ["B"]}]}, "give exactly one of"),
        ({"where": [{"equals": "A"}]}, "needs 'column'"),
        ({"where": [{"column": "TYPE", "in": []}]}, "non-empty list"),
        ({"where": [{"column": "TYPE", "not_null": False}]}, "'not_null' must be true"),
        ({"where": [{"column": "DATE", "min": "yesterday"}]}, "neither a number nor an ISO date"),
        ({"where": {"column": "TYPE"}}, "array of tables"),
        ({"materials": {"XX": "granite"}}, "class must be one of"),
        ({"materials": {"XX": {"class": "pvc", "colour": "blue"}}}, "unknown keys ['colour']"),
        ({"materials": {"xx": "pvc", "XX ": "steel"}}, "listed twice"),
        ({"diameter_unit": "cm"}, "'diameter_unit' must be one of ['mm', 'in']"),
        ({"length_unit": "yd"}, "'length_unit' must be one of ['m', 'ft']"),
    ],
)
def test_bad_profile_entries_are_clear_errors(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _breaks_profile(**bad)
    assert message in str(exc.value), str(exc.value)


def test_where_excluded_rows_reach_the_report_store_and_summary(tmp_path: Path) -> None:
    """``twmb ingest`` with a row filter: excluded in the report, run_inputs and summary."""
    project = tmp_path / "springfield"
    shutil.copytree(SPRINGFIELD, project)
    prof = project / "springfield_profiles.toml"
    text = prof.read_text(encoding="utf-8")
    marker = (
        'checks = { duplicate_key = ["break_date", "utm17"], duplicate_record_id = "ignore", '
        'year_mismatch = "quarantine" }\n'
    )
    assert marker in text
    prof.write_text(
        text.replace(
            marker,
            marker + 'where = [{ column = "WorkOrder", not_in = ["WO-0001", "WO-0002"] }]\n',
        ),
        encoding="utf-8",
    )
    load_schema.cache_clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        r = twmb("--config", "springfield.toml", "--out", project / "out", "ingest", "--json")
    load_schema.cache_clear()
    assert r.exit_code == 0, show(r)
    doc = json.loads(r.stdout)
    src = {s["source_id"]: s for s in doc["sources"]}["springfield_breaks"]
    rule = "where:WorkOrder not in ['WO-0001', 'WO-0002']"
    assert src["excluded"] == 2 and src["excluded_by_rule"] == {rule: 2}
    assert src["rows_in"] == 36 == src["accepted"] + src["quarantined"] + src["excluded"]
    with Store(project / "out" / "twmb.duckdb", read_only=True) as store:
        ri = store.read("run_inputs")
        from_store = summarize(store)["reconciliation"]
    row = ri[ri["source_id"] == "springfield_breaks"].iloc[0]
    assert int(row["excluded"]) == 2 and json.loads(row["excluded_by_rule"]) == {rule: 2}
    assert from_store["springfield_breaks"]["excluded"] == 2
    manifest = json.loads((project / "out" / "manifest.json").read_text(encoding="utf-8"))
    msrc = {s["source_id"]: s for s in manifest["sources"]}["springfield_breaks"]
    assert msrc["excluded"] == 2


def test_where_max_day_includes_the_whole_day(tmp_path: Path) -> None:
    df = BREAKS.copy()
    df.loc[0, "DATE"] = "2015-01-05T23:30:00"
    path = tmp_path / "b.csv"
    df.to_csv(path, index=False)
    prof = _breaks_profile([{"column": "DATE", "max": "2015-01-05"}], date_format="auto")
    res = read_source(path, prof, today=TODAY)
    assert res.accepted == 1 and sum(res.excluded.values()) == len(BREAKS) - 1


def test_everything_excluded_says_so(tmp_path: Path) -> None:
    prof = _breaks_profile([{"column": "TYPE", "equals": "NOTHING"}])
    with pytest.raises(InputDataError, match=r"\[\[where\]\] row filters excluded"):
        read_source(_breaks_csv(tmp_path), prof, today=TODAY)
