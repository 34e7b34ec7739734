"""Watermains -> ``pipes`` and Toronto Centreline -> ``street_segments`` (twmb_geo.ingest.assets).

How the fixtures were made
--------------------------
``tests/fixtures/toronto_watermains/`` and ``tests/fixtures/toronto_centreline/`` hold small
hand-made files in exactly the City of Toronto's CKAN formats (no real file is available
offline). The records (12 distribution pipes, 6 transmission pipes, 12 centreline segments
on real Toronto streets, with a river, a railway, a trail and a walkway) were typed by hand
into ``tests/fixtures/toronto_watermains/make_fixtures.py``, which writes each dataset twice:

* ``*-4326.geojson``: the portal's GeoJSON copy, EPSG:4326, CKAN's integer ``_id`` in the
  properties, empty text as the string ``"None"``, empty numbers as ``null``;
* ``*-2952.csv``: the portal's CSV copy, same columns plus a ``geometry`` column holding
  GeoJSON text in EPSG:2952 (the WGS84 vertices transformed with pyproj, rounded to 0.1 mm).

Distribution install dates are epoch milliseconds, transmission ones ``%Y-%m-%d`` text; one
pipe has two parts, one a measured length far from its geometry length, two have no
material (``UNK`` and ``"None"``) and one has no diameter or construction year. Rerun the
script to regenerate the files. Bad inputs (self-intersecting, empty, zero-length and
multipart lines, nulls and "None" strings, out-of-range values, duplicate ids, pipes outside
Toronto, a misnamed column, a cp1252 copy) are built in the tests from the good fixtures
with ``tmp_path``.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pyproj import CRS, Transformer

from twmb_geo.contracts import conform, load_schema, validate_frame
from twmb_geo.errors import InputDataError
from twmb_geo.ingest._common import IngestContext, IngestResult
from twmb_geo.ingest.assets import (
    NON_STREET_CLASSES,
    STREET_CLASSES,
    parse_install_dates,
    transform_pipes,
    transform_streets,
)
from twmb_geo.io.profiles import Profile, get_profile, parse_profile
from twmb_geo.io.readers import RawChunk, iter_raw

HERE = Path(__file__).resolve().parent
WM = HERE / "fixtures" / "toronto_watermains"
TCL = HERE / "fixtures" / "toronto_centreline"
TODAY = dt.date(2026, 11, 25)
DIST_GEOJSON = WM / "distribution-watermain-4326.geojson"
DIST_CSV = WM / "distribution-watermain-2952.csv"
TRANS_GEOJSON = WM / "transmission-watermain-4326.geojson"
TRANS_CSV = WM / "transmission-watermain-2952.csv"
TCL_GEOJSON = TCL / "centreline-version-2-4326.geojson"
TCL_CSV = TCL / "centreline-version-2-2952.csv"
ID = "Watermain Asset Identification"
#: a box around Toronto in EPSG:2952 (stands in for the neighbourhood service area)
TORONTO_BOX = shapely.box(300_000, 4_825_000, 335_000, 4_860_000)

BUILTIN = [
    ("toronto_watermains_distribution_geojson", DIST_GEOJSON, 12),
    ("toronto_watermains_distribution_csv", DIST_CSV, 12),
    ("toronto_watermains_transmission_geojson", TRANS_GEOJSON, 6),
    ("toronto_watermains_transmission_csv", TRANS_CSV, 6),
    ("toronto_centreline_geojson", TCL_GEOJSON, 12),
    ("toronto_centreline_csv", TCL_CSV, 12),
]


def _ctx(area: shapely.Geometry | None = None) -> IngestContext:
    return IngestContext(today=TODAY, service_area=area)


def _run(path: Path, profile: Profile | str, area: shapely.Geometry | None = None) -> IngestResult:
    prof = get_profile(profile) if isinstance(profile, str) else profile
    fn = transform_pipes if prof.kind == "pipes" else transform_streets
    return fn(iter_raw(path, prof), "src", prof, _ctx(area))


def _table(res: IngestResult) -> pd.DataFrame:
    return next(iter(res.tables.values()))


def _reasons(res: IngestResult, id_col: str = ID) -> dict[str, str]:
    q = res.quarantine
    return {
        json.loads(r)[id_col] or "": reason
        for r, reason in zip(q["raw_record"], q["reason"], strict=True)
    }


def _flags(df: pd.DataFrame, key: str = "pipe_id") -> dict[str, set[str]]:
    return {k: set(filter(None, f.split(";"))) for k, f in zip(df[key], df["flags"], strict=True)}


def _check_result(res: IngestResult) -> None:
    """Reconciliation and contracts hold for every result."""
    res.reconcile()
    name, df = next(iter(res.tables.items()))
    assert validate_frame(df, f"curated/{name}") == []
    assert list(df[df.columns[0]]) == sorted(df[df.columns[0]])
    q = conform(res.quarantine, "curated/quarantine")
    assert validate_frame(q, "curated/quarantine") == []
    counted: dict[str, int] = {}
    for fl in df["flags"]:
        for f in filter(None, fl.split(";")):
            counted[f] = counted.get(f, 0) + 1
    assert res.flags == counted


# ------------------------------------------------------------------ built-in profiles


@pytest.mark.parametrize(("profile_id", "path", "rows"), BUILTIN, ids=[b[0] for b in BUILTIN])
def test_builtin_profile_reads_its_fixture(profile_id: str, path: Path, rows: int) -> None:
    res = _run(path, profile_id)
    _check_result(res)
    assert res.rows_in == rows and res.accepted == rows and res.quarantine.empty
    df = _table(res)
    assert (df["source_file"] == path.name).all()
    assert sorted(df["source_row"]) == list(range(1, rows + 1))
    geoms = shapely.from_wkb(df["geometry"].to_numpy())
    assert set(shapely.get_type_id(geoms)) == {5}  # MultiLineString
    assert np.allclose(shapely.length(geoms), df["length_m"], rtol=1e-12)
    assert (
        df["centroid_lon"].between(-79.65, -79.1).all()
        and df["centroid_lat"].between(43.58, 43.86).all()
    )
    (crs,) = res.crs
    assert (
        crs["source_id"] == "src" and crs["pair"] == "geometry" and crs["target_crs"] == "EPSG:2952"
    )
    geojson = path.suffix == ".geojson"
    assert crs["source_crs"] == ("EPSG:4326" if geojson else "EPSG:2952")
    if crs["accuracy_m"] is not None:
        assert (df["coord_accuracy_m"] == crs["accuracy_m"]).all()
    if geojson:  # NAD83(CSRS) <-> WGS 84: PROJ reports about 1 m
        assert crs["accuracy_m"] is None or 0 < crs["accuracy_m"] <= 2
    else:
        assert crs["description"] == "identity" and crs["accuracy_m"] == 0.0


def test_builtin_profiles_declare_formats_and_crs() -> None:
    for profile_id, path, _ in BUILTIN:
        prof = get_profile(profile_id)
        sch = load_schema(prof.raw_schema)
        assert sch.layer == "raw" and sch.version == "1.0.0"
        assert sch.crs == {"geometry": prof.crs}
        assert set(prof.raw_columns) <= set(sch.columns)
        assert not sch.field("_id").required
        if path.suffix == ".csv":
            assert (
                prof.format == "csv"
                and prof.geometry_column == "geometry"
                and prof.crs == "EPSG:2952"
            )
        else:
            assert prof.format == "geojson" and prof.crs == "EPSG:4326"
    assert get_profile("toronto_watermains_distribution_csv").date_format == "epoch_ms"
    assert get_profile("toronto_watermains_transmission_geojson").date_format == "%Y-%m-%d"


def _assert_same_tables(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """GeoJSON (EPSG:4326) and CSV (EPSG:2952) copies agree within 1 mm."""
    skip = [
        "source_file",
        "coord_accuracy_m",
        "geometry",
        "length_m",
        "centroid_lon",
        "centroid_lat",
    ]
    pd.testing.assert_frame_equal(a.drop(columns=skip), b.drop(columns=skip))
    ga, gb = shapely.from_wkb(a["geometry"].to_numpy()), shapely.from_wkb(b["geometry"].to_numpy())
    ca, cb = shapely.get_coordinates(ga), shapely.get_coordinates(gb)
    assert ca.shape == cb.shape and np.abs(ca - cb).max() < 1e-3
    assert np.abs(a["length_m"] - b["length_m"]).max() < 1e-3
    assert np.abs(a["centroid_lon"] - b["centroid_lon"]).max() < 1e-7
    assert np.abs(a["centroid_lat"] - b["centroid_lat"]).max() < 1e-7


@pytest.mark.parametrize(
    ("geojson", "csv_path", "gj_profile", "csv_profile"),
    [
        (
            DIST_GEOJSON,
            DIST_CSV,
            "toronto_watermains_distribution_geojson",
            "toronto_watermains_distribution_csv",
        ),
        (
            TRANS_GEOJSON,
            TRANS_CSV,
            "toronto_watermains_transmission_geojson",
            "toronto_watermains_transmission_csv",
        ),
        (TCL_GEOJSON, TCL_CSV, "toronto_centreline_geojson", "toronto_centreline_csv"),
    ],
    ids=["distribution", "transmission", "centreline"],
)
def test_geojson_and_csv_copies_give_identical_tables(
    geojson: Path, csv_path: Path, gj_profile: str, csv_profile: str
) -> None:
    a, b = _run(geojson, gj_profile), _run(csv_path, csv_profile)
    _assert_same_tables(_table(a), _table(b))
    assert a.flags == b.flags


def test_distribution_values_are_decoded() -> None:
    df = _table(_run(DIST_GEOJSON, "toronto_watermains_distribution_geojson")).set_index("pipe_id")
    assert (df["watermain_type"] == 0).all() and (df["watermain_type_desc"] == "Distribution").all()
    assert (df.index == df["asset_id"]).all()
    bloor = df.loc["1000101"]
    assert (
        bloor["material"] == "CI" and bloor["material_desc"] == "Cast Iron" and not bloor["lined"]
    )
    assert bloor["diameter_mm"] == 300.0 and bloor["install_year"] == 1912
    assert bloor["install_date"] == pd.Timestamp("1912-01-01")  # epoch ms of 05:00 UTC
    assert bloor["install_year_source"] == "construction_year" and bloor["status"] == "active"
    assert df.loc["1000103", "install_date"] == pd.Timestamp("1988-06-15")
    assert df["lined"].to_dict() == {k: k in ("1000102", "1000103") for k in df.index}
    assert df.loc["1000102", "material_desc"] == "Cast Iron, Cement Lined"
    # UNK and "None" -> no material, flagged; the published code is kept in material_raw
    assert pd.isna(df.loc["1000108", "material"]) and df.loc["1000108", "material_raw"] == "UNK"
    assert pd.isna(df.loc["1000109", "material"]) and pd.isna(df.loc["1000109", "material_raw"])
    # no construction year: install year from the install date; no diameter: null
    assert (
        df.loc["1000109", "install_year"] == 1931
        and df.loc["1000109", "install_year_source"] == "install_date"
    )
    assert np.isnan(df.loc["1000109", "diameter_mm"])
    assert df["removal_year"].isna().all()
    assert df.loc["1000112", "location_desc"] == "GRACE ST: COLLEGE ST - CAFÉ LANE"
    flags = _flags(df.reset_index())
    assert flags["1000108"] == {"material_missing"}
    assert flags["1000109"] == {"material_missing", "diameter_missing"}
    assert flags["1000110"] == {"multipart"}
    assert flags["1000111"] == {"length_mismatch"}
    assert sum(bool(v) for v in flags.values()) == 4
    multi = shapely.from_wkb(df.loc["1000110", "geometry"])
    assert shapely.get_num_geometries(multi) == 2


def test_transmission_values_are_decoded() -> None:
    df = _table(_run(TRANS_GEOJSON, "toronto_watermains_transmission_geojson")).set_index("pipe_id")
    assert set(df["watermain_type"]) == {1, 2}
    assert df.loc["2000204", "watermain_type_desc"] == "Transmission (class 2)"
    assert df.loc["2000201", "install_date"] == pd.Timestamp("1931-01-01")
    assert pd.isna(df.loc["2000205", "install_date"]) and df.loc["2000205", "install_year"] == 1963
    assert df.loc["2000203", "material_desc"] == "Prestressed Concrete Cylinder Pipe"
    assert df.loc["2000204", "lined"] and df.loc["2000201", "diameter_mm"] == 1200.0


def test_centreline_values_and_street_classes() -> None:
    res = _run(TCL_GEOJSON, "toronto_centreline_geojson")
    df = _table(res).set_index("segment_id")
    assert df.loc["912010", "feature_code_desc"] == "River" and not df.loc["912010", "is_street"]
    assert (
        df.loc["912500", "feature_code_desc"] == "Major Railway"
        and not df.loc["912500", "is_street"]
    )
    not_street = {"912010", "912500", "30100555", "30200777"}  # river, railway, trail, walkway
    assert df["is_street"].to_dict() == {k: k not in not_street for k in df.index}
    assert df["feature_code"].dtype == np.int32 and df.loc["1142562", "feature_code"] == 201500
    assert df.loc["8485620", "linear_name_full"] == "Bloor St W"
    assert pd.isna(df.loc["30006100", "linear_name_full"])  # "None" string -> null
    assert pd.isna(df.loc["912010", "jurisdiction"]) and df.loc["912010", "status"] == "Active"
    assert (
        df.loc["1142563", "from_node"] == "13465835" and df.loc["1142563", "to_node"] == "13465870"
    )
    assert res.flags == {}


def test_street_class_lists_are_disjoint_and_lower_case() -> None:
    assert not STREET_CLASSES & NON_STREET_CLASSES
    assert all(c == c.casefold() for c in STREET_CLASSES | NON_STREET_CLASSES)


@pytest.mark.parametrize(
    "profile_id",
    [
        "toronto_watermains_distribution_geojson",
        "toronto_watermains_distribution_csv",
        "toronto_watermains_transmission_geojson",
        "toronto_watermains_transmission_csv",
    ],
)
def test_toronto_materials_match_codebook_and_contract(profile_id: str) -> None:
    """The Toronto profiles' [materials] is the City's codebook; classes are the contract's."""
    enum = set(load_schema("curated/pipes").field("material_class").enum)
    materials = get_profile(profile_id).materials
    assert {m.material_class for m in materials.values()} <= enum
    path = HERE.parent / "data" / "toronto" / "watermains_codebook.csv"
    with path.open(encoding="utf-8") as fh:
        book = {r["code"]: r["meaning"] for r in csv.DictReader(fh) if r["code_type"] == "material"}
    known = {c: m for c, m in materials.items() if m.material_class != "unknown"}
    for code, entry in known.items():
        assert (entry.label or None) == (book.get(code) or None), code
    assert set(book) - set(known) == {"UNK", "None"}
    assert {"UNK", "NONE"} <= set(materials)
    assert {c for c, m in materials.items() if m.lined} == {"CICL", "DICL", "SPCL"}


# --------------------------------------------------------------------- install dates


@pytest.mark.parametrize(
    ("path", "profile_id"),
    [
        (DIST_GEOJSON, "toronto_watermains_distribution_geojson"),
        (DIST_CSV, "toronto_watermains_distribution_csv"),
        (TRANS_GEOJSON, "toronto_watermains_transmission_geojson"),
        (TRANS_CSV, "toronto_watermains_transmission_csv"),
    ],
)
def test_auto_date_format_matches_the_declared_one(path: Path, profile_id: str) -> None:
    prof = get_profile(profile_id)
    declared = _table(_run(path, prof))
    auto = _table(_run(path, replace(prof, date_format="auto")))
    pd.testing.assert_series_equal(declared["install_date"], auto["install_date"])


def test_parse_install_dates_auto() -> None:
    s = pd.Series(
        [-1830366000000, "582354000000", "1931-01-01", "1931", None, "soon", 1.6015284e12],
        dtype=object,
    )
    dates, missing, bad = parse_install_dates(s, "auto")
    got = [None if pd.isna(d) else d.strftime("%Y-%m-%d") for d in dates]
    assert got == ["1912-01-01", "1988-06-15", "1931-01-01", "1931-01-01", None, None, "2020-10-01"]
    assert missing.tolist() == [False] * 4 + [True, False, False]
    assert bad.tolist() == [False] * 5 + [True, False]


# ------------------------------------------------------------------------ bad inputs


def _gj(*parts: list[tuple[float, float]]) -> str:
    """GeoJSON text of a MultiLineString, as in the City's CSV copies."""
    coords = [[list(p) for p in part] for part in parts]
    return json.dumps({"type": "MultiLineString", "coordinates": coords})


def _line(
    dx: float = 0.0, dy: float = 0.0, n: int = 2, step: float = 50.0
) -> list[tuple[float, float]]:
    return [(312_000.0 + dx + i * step, 4_836_000.0 + dy + i * step / 2) for i in range(n)]


def _csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _write_rows(
    path: Path, fields: list[str], rows: list[dict[str, str]], encoding: str = "utf-8"
) -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\r\n")
        w.writeheader()
        w.writerows(rows)
    return path


_SHORT = {
    "dia": "Watermain Diameter",
    "mat": "Watermain Material",
    "year": "Watermain Construction Year",
    "date": "Watermain Install Date",
    "length": "Watermain Measured Length",
    "type": "Watermain Type",
}


def _pipe(aid: str, geometry: str | None = None, **values: str) -> dict[str, str]:
    """A distribution CSV row (EPSG:2952) with short-named overrides (dia=, mat=, ...)."""
    row = {
        "_id": "1",
        ID: aid,
        "Watermain Type": "0",
        "Watermain Diameter": "150",
        "Watermain Material": "CI",
        "Watermain Install Date": "-1830366000000",
        "Watermain Construction Year": "1912",
        "Watermain Measured Length": "",
        "Watermain Location Description": f"TEST ST {aid}",
        "geometry": _gj(_line()) if geometry is None else geometry,
    }
    row.update({_SHORT[k]: v for k, v in values.items()})
    return row


def _ottawa_line() -> list[tuple[float, float]]:
    tr = Transformer.from_crs("EPSG:4326", "EPSG:2952", always_xy=True)
    xs, ys = tr.transform([-75.70, -75.69], [45.42, 45.421])
    return list(zip(xs, ys, strict=True))


BAD_PIPES = {
    # asset id: (row values, expected reason or None when accepted, expected flags)
    "GOOD": ({}, None, set()),
    "SELFX": (
        {
            "geometry": _gj(
                [(312000, 4836000), (312100, 4836100), (312100, 4836000), (312000, 4836100)]
            )
        },
        None,
        {"self_intersecting"},
    ),
    "EMPTY": ({"geometry": _gj()}, "geometry_missing", None),
    "LINESTRING": (
        {"geometry": json.dumps({"type": "LineString", "coordinates": _line()})},
        None,
        set(),
    ),
    "COLLECTION": (
        {
            "geometry": json.dumps(
                {
                    "type": "GeometryCollection",
                    "geometries": [
                        {"type": "LineString", "coordinates": _line()},
                        {"type": "Point", "coordinates": [312000, 4836000]},
                    ],
                }
            )
        },
        None,
        {"geometry_repaired"},
    ),
    "ZERO": ({"geometry": _gj([(312000, 4836000), (312000, 4836000)])}, "geometry_invalid", None),
    "MULTI": ({"geometry": _gj(_line(), _line(dx=200))}, None, {"multipart"}),
    "DEGEN": (
        {"geometry": _gj(_line(), [(312500, 4836500), (312500, 4836500)])},
        None,
        {"geometry_repaired"},
    ),
    "POINT": (
        {"geometry": json.dumps({"type": "Point", "coordinates": [312000, 4836000]})},
        "geometry_invalid",
        None,
    ),
    "POLY": (
        {
            "geometry": json.dumps(
                {
                    "type": "Polygon",
                    "coordinates": [
                        [[312000, 4836000], [312100, 4836000], [312100, 4836100], [312000, 4836000]]
                    ],
                }
            )
        },
        "geometry_invalid",
        None,
    ),
    "BADTEXT": ({"geometry": "MULTILINESTRING garbage"}, "geometry_invalid", None),
    "NONEMAT": (
        {"mat": "None", "dia": "", "year": "None"},
        None,
        {"material_missing", "diameter_missing"},
    ),
    "UNKMAT": ({"mat": "UNK"}, None, {"material_missing"}),
    "XYZMAT": ({"mat": "XYZ"}, None, {"material_unrecognised"}),
    "NOYEAR": ({"year": "", "date": ""}, None, {"install_year_missing"}),
    "DIA0": ({"dia": "0"}, "value_out_of_range", None),
    "DIA3500": ({"dia": "9500"}, "value_out_of_range", None),
    "DIAX": ({"dia": "6 in"}, "value_unparseable", None),
    "Y1750": ({"year": "1750"}, "value_out_of_range", None),
    "Y2999": ({"year": "2999"}, "value_out_of_range", None),
    "Y19X5": ({"year": "19x5"}, "value_unparseable", None),
    "YHALF": ({"year": "1955.5"}, "value_unparseable", None),
    "DATEX": ({"date": "yesterday"}, "value_unparseable", None),
    "DATEFUT": ({"date": "1924992000000"}, "value_out_of_range", None),  # 2031-01-01
    "LENNEG": ({"length": "-5"}, "value_out_of_range", None),
    "LENX": ({"length": "long"}, "value_unparseable", None),
    "TYPE7": ({"type": "7"}, "value_out_of_range", None),
    "MISMATCH": ({"length": "500"}, None, {"length_mismatch"}),
    "CLOSE": ({"length": "58"}, None, set()),  # 55.9 m line: within 5 m
    "OTTAWA": ({"geometry": _gj(_ottawa_line())}, "outside_service_area", None),
}


def _bad_pipe_rows() -> list[dict[str, str]]:
    rows = []
    for aid, (values, _, _) in BAD_PIPES.items():
        geometry = values.get("geometry")
        rows.append(_pipe(aid, geometry, **{k: v for k, v in values.items() if k != "geometry"}))
    rows += [
        _pipe("DUP"),
        _pipe("DUP"),  # identical copy
        _pipe("DUP", _gj(_line(dx=500))),  # same id, other geometry
        _pipe("DUPB", dia="-1"),  # broken first copy ...
        _pipe("DUPB"),  # ... does not push out the good second one
        _pipe("", _gj(_line(dx=900))),
        _pipe("None", _gj(_line(dx=950))),
    ]
    for i, r in enumerate(rows, start=1):
        r["_id"] = str(i)
    return rows


@pytest.fixture(scope="module")
def bad_pipes(tmp_path_factory: pytest.TempPathFactory) -> tuple[IngestResult, Path]:
    fields, _ = _csv_rows(DIST_CSV)
    path = _write_rows(
        tmp_path_factory.mktemp("bad") / "bad-watermains-2952.csv", fields, _bad_pipe_rows()
    )
    return _run(path, "toronto_watermains_distribution_csv"), path


def test_bad_pipe_rows_get_their_reason_codes(bad_pipes: tuple[IngestResult, Path]) -> None:
    res, _ = bad_pipes
    _check_result(res)
    reasons = _reasons(res)
    expected = {aid: want for aid, (_, want, _) in BAD_PIPES.items() if want}
    for aid, want in expected.items():
        assert reasons.get(aid) == want, aid
    df = _table(res)
    accepted = _flags(df)
    for aid, (_, want, flags) in BAD_PIPES.items():
        if want is None:
            assert accepted.get(aid) == flags, aid
    assert res.rows_in == len(_bad_pipe_rows())
    assert res.rows_in == res.accepted + len(res.quarantine)


def test_bad_pipe_details_name_field_and_value(bad_pipes: tuple[IngestResult, Path]) -> None:
    res, _ = bad_pipes
    q = res.quarantine.assign(
        aid=[json.loads(r)[ID] for r in res.quarantine["raw_record"]]
    ).set_index("source_row")
    detail = dict(zip(q["aid"], q["detail"], strict=False))
    assert "Watermain Diameter='9500'" in detail["DIA3500"]
    assert "Watermain Construction Year='19x5'" in detail["Y19X5"]
    assert "Watermain Install Date='yesterday'" in detail["DATEX"]
    assert "outside the area of use of EPSG:2952" in detail["OTTAWA"]
    assert "geometry='MULTILINESTRING garbage'" in detail["BADTEXT"]
    assert "Point, not a line" in detail["POINT"]
    # the CSV's geometry text is kept as published in the raw record
    raw = {json.loads(r)[ID]: json.loads(r) for r in res.quarantine["raw_record"]}
    assert raw["BADTEXT"]["geometry"] == "MULTILINESTRING garbage"
    assert raw["DIA3500"]["Watermain Diameter"] == "9500"


def test_duplicates_and_missing_ids(bad_pipes: tuple[IngestResult, Path]) -> None:
    res, _ = bad_pipes
    q = res.quarantine
    dups = q[q["reason"] == "id_duplicate"]
    assert len(dups) == 2
    assert dups["detail"].str.contains("identical record").sum() == 1
    assert dups["detail"].str.contains("different geometry").sum() == 1
    assert (q["reason"] == "id_missing").sum() == 2  # "" and "None"
    df = _table(res).set_index("pipe_id")
    assert df.loc["DUP", "source_row"] < dups["source_row"].min()  # the first copy is kept
    # DUPB: first copy out of range, second copy accepted
    assert "DUPB" in df.index
    dupb = q[[json.loads(r)[ID] == "DUPB" for r in q["raw_record"]]]
    assert dupb["reason"].tolist() == ["value_out_of_range"]


def test_duplicates_are_found_across_chunks(bad_pipes: tuple[IngestResult, Path]) -> None:
    res, path = bad_pipes
    prof = replace(get_profile("toronto_watermains_distribution_csv"), chunk_size=4)
    chunked = _run(path, prof)
    assert len(list(iter_raw(path, prof))) > 5
    pd.testing.assert_frame_equal(_table(chunked), _table(res))
    pd.testing.assert_frame_equal(chunked.quarantine, res.quarantine)


def test_service_area_check(tmp_path: Path) -> None:
    fields, _ = _csv_rows(DIST_CSV)
    tr = Transformer.from_crs("EPSG:4326", "EPSG:2952", always_xy=True)
    xs, ys = tr.transform([-79.640, -79.630], [43.590, 43.592])  # Mississauga
    rows = [
        _pipe("IN"),
        _pipe("MISSISSAUGA", _gj(list(zip(xs, ys, strict=True)))),
        _pipe("EDGE", _gj([(299_000.0, 4_836_000.0), (301_000.0, 4_836_000.0)])),
    ]
    path = _write_rows(tmp_path / "sa.csv", fields, rows)
    without = _run(path, "toronto_watermains_distribution_csv")
    with_area = _run(path, "toronto_watermains_distribution_csv", area=TORONTO_BOX)
    assert without.accepted == 3  # inside the area of use of EPSG:2952
    assert _reasons(with_area) == {
        "MISSISSAUGA": "outside_service_area"
    }  # EDGE crosses the boundary
    assert "outside the service area" in with_area.quarantine["detail"].iloc[0]


def test_service_area_is_prepared_in_a_pooled_worker() -> None:
    """A context sent to a worker process arrives with its service area prepared (pickling
    drops the preparation, and unprepared line tests against a detailed boundary cost
    about 180 times more); its tests give the same answers."""
    area = shapely.buffer(shapely.Point(315_000.0, 4_840_000.0), 5_000.0, quad_segs=256)
    ctx = _ctx(area)
    assert shapely.is_prepared(ctx.service_area)
    assert not shapely.is_prepared(pickle.loads(pickle.dumps(area)))
    moved = pickle.loads(pickle.dumps(ctx))
    assert shapely.is_prepared(moved.service_area)
    assert moved.service_area.equals(area) and moved.today == ctx.today
    lines = shapely.linestrings(
        [[(315_000.0 + d, 4_840_000.0), (315_000.0 + d, 4_840_100.0)] for d in (0, 4_999, 6_000)]
    )
    assert shapely.intersects(moved.service_area, lines).tolist() == [True, True, False]
    assert _ctx().service_area is None and pickle.loads(pickle.dumps(_ctx())).service_area is None


def test_bad_geojson_rows(tmp_path: Path) -> None:
    doc = json.loads(DIST_GEOJSON.read_text(encoding="utf-8"))
    feats = doc["features"][:4]
    feats[1]["geometry"] = None
    feats[2]["geometry"] = {"type": "Point", "coordinates": [-79.4, 43.66]}
    feats[3]["properties"].update(
        {
            "Watermain Material": "None",
            "Watermain Diameter": "None",
            "Watermain Construction Year": "None",
        }
    )
    extra = json.loads(json.dumps(feats[0]))
    extra["properties"]["Watermain Asset Identification"] = "None"
    doc["features"] = [*feats, extra]
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(doc), encoding="utf-8")
    res = _run(path, "toronto_watermains_distribution_geojson")
    _check_result(res)
    assert sorted(res.quarantine["reason"]) == [
        "geometry_invalid",
        "geometry_missing",
        "id_missing",
    ]
    df = _table(res).set_index("pipe_id")
    assert _flags(df.reset_index())["1000104"] == {"material_missing", "diameter_missing"}
    assert (
        df.loc["1000104", "install_year"] == 1995
        and df.loc["1000104", "install_year_source"] == "install_date"
    )


def test_bad_street_rows(tmp_path: Path) -> None:
    fields, rows = _csv_rows(TCL_CSV)
    rows[1]["CENTRELINE_ID"] = rows[0]["CENTRELINE_ID"]  # same id, other geometry
    rows[2]["CENTRELINE_ID"] = "None"
    rows[3]["FEATURE_CODE"] = "road"
    rows[4]["FEATURE_CODE_DESC"] = "Flying Road"  # unknown class, road feature code
    rows[5]["FEATURE_CODE_DESC"] = "None"
    rows[5]["FEATURE_CODE"] = "209001"  # unknown class, not a road code
    rows[6]["geometry"] = json.dumps({"type": "MultiLineString", "coordinates": []})
    rows.append(dict(rows[0]))  # identical copy
    path = _write_rows(tmp_path / "bad-tcl.csv", fields, rows)
    res = _run(path, "toronto_centreline_csv")
    _check_result(res)
    assert sorted(res.quarantine["reason"]) == [
        "geometry_missing",
        "id_duplicate",
        "id_duplicate",
        "id_missing",
        "value_unparseable",
    ]
    df = _table(res).set_index("segment_id")
    assert (
        df.loc["1144660", "is_street"]
        and "feature_class_unrecognised" in df.loc["1144660", "flags"]
    )
    assert not df.loc["910340", "is_street"] and pd.isna(df.loc["910340", "feature_code_desc"])
    assert res.flags == {"feature_class_unrecognised": 2}


def test_misnamed_column_names_column_and_profile(tmp_path: Path) -> None:
    text = DIST_CSV.read_text(encoding="utf-8").replace("Watermain Diameter", "Watermain Diam", 1)
    path = tmp_path / "renamed.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputDataError) as exc:
        _run(path, "toronto_watermains_distribution_csv")
    msg = str(exc.value)
    assert "'Watermain Diameter'" in msg and "toronto_watermains_distribution_csv" in msg
    doc = TCL_GEOJSON.read_text(encoding="utf-8").replace('"FEATURE_CODE_DESC"', '"FEATURE_DESC"')
    path = tmp_path / "renamed.geojson"
    path.write_text(doc, encoding="utf-8")
    with pytest.raises(InputDataError) as exc:
        _run(path, "toronto_centreline_geojson")
    assert "'FEATURE_CODE_DESC'" in str(exc.value) and "toronto_centreline_geojson" in str(
        exc.value
    )


def test_missing_geometry_column_and_crs(tmp_path: Path) -> None:
    text = DIST_CSV.read_text(encoding="utf-8").replace(",geometry\n", ",geom\n", 1)
    path = tmp_path / "nogeom.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputDataError, match=r"'geometry'.*toronto_watermains_distribution_csv"):
        _run(path, "toronto_watermains_distribution_csv")
    prof = replace(get_profile("toronto_watermains_distribution_csv"), crs=None)
    with pytest.raises(InputDataError, match="no CRS"):
        _run(DIST_CSV, prof)


def test_cp1252_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "cp1252.csv"
    path.write_bytes(DIST_CSV.read_text(encoding="utf-8").encode("cp1252"))
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    res = _run(path, "toronto_watermains_distribution_csv")
    df = _table(res).set_index("pipe_id")
    assert df.loc["1000112", "location_desc"] == "GRACE ST: COLLEGE ST - CAFÉ LANE"
    ref = _table(_run(DIST_CSV, "toronto_watermains_distribution_csv"))
    pd.testing.assert_frame_equal(
        _table(res).drop(columns="source_file"), ref.drop(columns="source_file")
    )


def test_wrong_kind_is_refused() -> None:
    prof = get_profile("toronto_centreline_csv")
    with pytest.raises(InputDataError, match="kind"):
        transform_pipes(iter_raw(TCL_CSV, prof), "src", prof, _ctx())


# ------------------------------------------------------------------------ properties

_GEOJSON_PROFILE = get_profile("toronto_watermains_distribution_geojson")
_CSV_PROFILE = get_profile("toronto_watermains_distribution_csv")
_TO_MTM = Transformer.from_crs("EPSG:4326", "EPSG:2952", always_xy=True)


def _chunk(rows: list[dict], geoms: list, crs: str, geometry_text: bool) -> RawChunk:
    frame = pd.DataFrame(rows, columns=[*_CSV_PROFILE.raw_columns]).astype(object)
    frame = frame.where(frame.notna(), None)
    if not geometry_text:
        frame = frame.drop(columns=["geometry"])
    frame["source_file"] = "mem"
    frame["source_row"] = np.arange(1, len(rows) + 1, dtype=np.int64)
    return RawChunk(
        frame=frame, geometry=np.array(geoms, dtype=object), crs=CRS(crs), path=Path("mem")
    )


_lonlat = st.tuples(st.integers(-79_600_000, -79_150_000), st.integers(43_590_000, 43_850_000))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_lonlat, min_size=2, max_size=6), min_size=1, max_size=6))
def test_length_is_planar_length_in_mtm(lines: list[list[tuple[int, int]]]) -> None:
    parts = [[(x / 1e6, y / 1e6) for x, y in line] for line in lines]
    for p in parts:
        assume(len(set(p)) >= 2)
    rows = [
        {
            ID: f"P{i}",
            "Watermain Type": 0,
            "Watermain Diameter": 150,
            "Watermain Material": "PVC",
            "Watermain Install Date": 1_000_000_000_000,
            "Watermain Construction Year": 2001,
        }
        for i in range(len(parts))
    ]
    geoms = [shapely.MultiLineString([p]) for p in parts]
    res = transform_pipes(
        [_chunk(rows, geoms, "EPSG:4326", False)], "src", _GEOJSON_PROFILE, _ctx()
    )
    assert res.accepted == len(parts) and res.quarantine.empty
    df = _table(res).set_index("pipe_id")
    for i, p in enumerate(parts):
        xs, ys = _TO_MTM.transform([c[0] for c in p], [c[1] for c in p])
        expected = float(np.hypot(np.diff(xs), np.diff(ys)).sum())
        assert df.loc[f"P{i}", "length_m"] == pytest.approx(expected, rel=1e-6)


_KINDS = [
    "good",
    "good",
    "no_geom",
    "point",
    "zero",
    "bad_dia",
    "bad_year",
    "unparseable",
    "no_id",
    "outside",
    "dup",
    "multi",
    "none_strings",
]
_EXPECT = {
    "no_geom": "geometry_missing",
    "point": "geometry_invalid",
    "zero": "geometry_invalid",
    "bad_dia": "value_out_of_range",
    "bad_year": "value_out_of_range",
    "unparseable": "value_unparseable",
    "no_id": "id_missing",
    "outside": "outside_service_area",
    "dup": "id_duplicate",
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_KINDS), min_size=1, max_size=25), st.integers(1, 4))
def test_rows_in_equal_accepted_plus_quarantined(kinds: list[str], n_chunks: int) -> None:
    rows: list[dict] = []
    geoms: list = []
    expected: list[str | None] = []
    last_good: int | None = None
    for i, kind in enumerate(kinds):
        row = {
            ID: f"A{i:03d}",
            "Watermain Type": "0",
            "Watermain Diameter": "200",
            "Watermain Material": "CI",
            "Watermain Install Date": "-1830366000000",
            "Watermain Construction Year": "1912",
            "Watermain Measured Length": None,
            "Watermain Location Description": None,
            "_id": str(i),
        }
        g = shapely.MultiLineString([_line(dx=10 * i, n=3)])
        if kind == "dup" and last_good is None:
            kind = "good"
        if kind == "no_geom":
            g = None
        elif kind == "point":
            g = shapely.Point(312_000, 4_836_000)
        elif kind == "zero":
            g = shapely.LineString([(312_000, 4_836_000), (312_000, 4_836_000)])
        elif kind == "bad_dia":
            row["Watermain Diameter"] = "9999"
        elif kind == "bad_year":
            row["Watermain Construction Year"] = "1700"
        elif kind == "unparseable":
            row["Watermain Measured Length"] = "12 m"
        elif kind == "no_id":
            row[ID] = None
        elif kind == "outside":
            g = shapely.MultiLineString([_ottawa_line()])
        elif kind == "dup":
            row[ID], g = rows[last_good][ID], geoms[last_good]
        elif kind == "multi":
            g = shapely.MultiLineString([_line(dx=10 * i), _line(dx=10 * i + 300)])
        elif kind == "none_strings":
            row["Watermain Material"] = None
            row["Watermain Diameter"] = None
        if kind in ("good", "multi", "none_strings"):
            last_good = i
        row["geometry"] = None if g is None else shapely.to_geojson(g)
        rows.append(row)
        geoms.append(g)
        expected.append(_EXPECT.get(kind))
    bounds = np.linspace(0, len(rows), n_chunks + 1).astype(int)
    chunks = []
    for a, b in itertools.pairwise(bounds):
        if b > a:
            ch = _chunk(rows[a:b], geoms[a:b], "EPSG:2952", True)
            ch.frame["source_row"] = np.arange(a + 1, b + 1, dtype=np.int64)
            chunks.append(ch)
    res = transform_pipes(chunks, "src", _CSV_PROFILE, _ctx())
    res.reconcile()
    assert res.rows_in == len(rows) == res.accepted + len(res.quarantine)
    got = dict(zip(res.quarantine["source_row"], res.quarantine["reason"], strict=True))
    assert got == {i + 1: r for i, r in enumerate(expected) if r}
    validate_frame(_table(res), "curated/pipes")


def test_empty_geometry_cell_in_csv_is_quarantined(tmp_path: Path) -> None:
    fields, rows = _csv_rows(DIST_CSV)
    rows[0]["geometry"] = ""
    path = _write_rows(tmp_path / "empty-cell.csv", fields, rows)
    res = _run(path, "toronto_watermains_distribution_csv")
    assert res.quarantine["reason"].tolist() == ["geometry_missing"]
    assert res.accepted == len(rows) - 1


# ------------------------------------------------------------------ attribute-only inventories

_AM_COLUMNS = {
    "asset_id": "AssetID",
    "material": "Material",
    "diameter_mm": "Diameter",
    "construction_year": "InstallYear",
    "measured_length_m": "Length",
    "street_segment_id": "RoadSegID",
}


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_inventory_without_geometry_gives_pipes_without_geometry(
    tmp_path: Path, fmt: str
) -> None:
    raw = pd.DataFrame(
        {
            "AssetID": ["A1", "A2", "A3", "A4", "A5"],
            "Material": ["CI", "PVC", "DIP", "CI", "AC"],
            "Diameter": ["150", "200", "300", "150", "100"],
            "InstallYear": ["1955", "1990", "1970", "1960", ""],
            "Length": ["120.5", "", "abc", "0", "80"],
            "RoadSegID": ["S1", "S2", "S3", "S4", ""],
        }
    )
    path = tmp_path / f"mains.{fmt}"
    if fmt == "csv":
        raw.to_csv(path, index=False)
    else:
        raw.to_excel(path, index=False)
    prof = parse_profile(
        {"id": "am", "kind": "pipes", "format": fmt, "description": "", "columns": _AM_COLUMNS}
    )
    res = _run(path, prof)
    _check_result(res)
    df = _table(res).set_index("pipe_id")
    assert list(df.index) == ["A1", "A5"]
    assert df["geometry"].isna().all() and df["centroid_lon"].isna().all()
    assert df["length_m"].tolist() == [120.5, 80.0]
    assert df["street_segment_id"].tolist() == ["S1", None]
    assert all("no_geometry" in f for f in _flags(_table(res)).values())
    assert _reasons(res, "AssetID") == {
        "A2": "geometry_missing",
        "A3": "value_unparseable",
        "A4": "geometry_missing",
    }
    detail = dict(zip(res.quarantine["reason"], res.quarantine["detail"], strict=False))
    assert "no geometry and Length=" in detail["geometry_missing"]
    assert any("reads no geometry" in w for w in res.warnings)


def test_a_street_layer_without_geometry_is_still_an_error(tmp_path: Path) -> None:
    path = tmp_path / "streets.csv"
    pd.DataFrame({"CENTRELINE_ID": ["1", "2"]}).to_csv(path, index=False)
    prof = parse_profile(
        {
            "id": "st",
            "kind": "streets",
            "format": "csv",
            "description": "",
            "columns": {"centreline_id": "CENTRELINE_ID"},
        }
    )
    with pytest.raises(InputDataError, match="reads no line geometry"):
        _run(path, prof)
