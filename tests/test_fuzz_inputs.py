"""Fuzz suite (issue 15): whole input files built from the profiles' own columns.

Hypothesis writes complete CSV and GeoJSON files for every built-in profile of those
formats, an ECCC daily weather file and a generic weather table, with hostile content in
every cell and in the file itself: encodings (UTF-8, with and without BOM, cp1252,
UTF-16), line endings, huge and empty fields, NaN and infinities, extreme and swapped
coordinates, broken geometry text, dates in every format the readers know (and junk),
duplicate headers, rows with extra fields, spreadsheet formulas, HTML, control and
right-to-left characters.

Every file must end one of two ways, never with a traceback:

* accepted: rows in = accepted + quarantined (+ excluded) and rows in = rows written; the
  quarantine and the curated tables satisfy their contracts; accepted coordinates are
  finite and dates lie between the profile's ``min_date`` and today;
* refused as a whole with :class:`~twmb_geo.errors.InputDataError` (exit 3) naming the file.

The examples are derandomised (the same files on every run) and bounded so the suite takes
about a minute on one core; ``TWMB_FUZZ_EXAMPLES=N`` runs N examples per profile instead (a deeper run).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_helpers import show, twmb
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import twmb_geo as tw
from twmb_geo.contracts import validate_frame
from twmb_geo.core.crs import using_crs
from twmb_geo.errors import InputDataError
from twmb_geo.ingest.eccc import DISPLAY_NAMES
from twmb_geo.io.profiles import Profile, parse_profile

TODAY = dt.date(2026, 11, 25)
#: small enough that an oversize field is cheap to write
MAX_FIELD = 600
EXAMPLES = int(os.environ.get("TWMB_FUZZ_EXAMPLES", "0"))

FUZZ = settings(
    max_examples=EXAMPLES or 50,
    deadline=None,
    derandomize=not EXAMPLES,
    database=None,
    # shrinking a failing whole file takes minutes; the failing file is printed unshrunk
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip

CSV_PROFILES = [
    "toronto_breaks_csv",
    "toronto_watermains_distribution_csv",
    "toronto_watermains_transmission_csv",
    "toronto_centreline_csv",
    "synthetic_watermains_abandoned_csv",
]
GEOJSON_PROFILES = [
    "toronto_breaks_geojson",
    "toronto_watermains_distribution_geojson",
    "toronto_centreline_geojson",
    "toronto_neighbourhoods_158",
]
#: a generic weather table (the NOAA GHCN-Daily layout of the weather_csv docs)
NOAA = parse_profile(
    {
        "id": "noaa_ghcn_daily",
        "kind": "weather_daily",
        "format": "csv",
        "temperature_unit": "F",
        "precip_unit": "in",
        "columns": {
            "date": "DATE",
            "station_id": "STATION",
            "max_temp_c": "TMAX",
            "min_temp_c": "TMIN",
            "total_precip_mm": "PRCP",
            "total_snow_cm": "SNOW",
        },
    }
)
REASONS = set(
    next(
        f for f in tw.contracts.load_schema("curated/quarantine").fields if f.name == "reason"
    ).enum
    or ()
)


def profile(pid: str) -> Profile:
    return replace(tw.get_profile(pid), max_field_bytes=MAX_FIELD)


# --------------------------------------------------------------------------- cell values

HOSTILE = [
    "", " ", "NaN", "nan", "inf", "-inf", "Infinity", "1e309", "-0", "NULL", "None", "N/A",
    '=HYPERLINK("http://example.invalid","x")', "+1+1", "-1-1", "@SUM(A1:A9)", "\t=1", "\r=1",
    "<script>alert(1)</script>", "<b>&amp;&lt;</b>", "'\"", 'a,"b",c', "two\nlines",
    "ünïcødé € ß", "😀🚰", "\u202etxet\u202c", "\x00nul", "\x1b[31mred", "0x1F", "1,5",
    "  42  ", "٣٤", "1e-400", "9" * 40,
]  # fmt: skip


def hostile() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOSTILE),
        st.text(max_size=12),
        st.just("y" * (MAX_FIELD + 1)),
        st.integers(MAX_FIELD // 2, MAX_FIELD - 10).map(lambda n: "z" * n),
    )


def num_text(lo: float, hi: float) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(int(lo), int(hi)).map(str),
        st.floats(lo, hi, allow_nan=False).map(repr),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
    )


DATE_FORMATS = [
    "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d",
    "%d-%b-%Y", "%B %d, %Y", "%Y%m%d", "%Y-%m-%dT%H:%M:%S-05:00", "%Y-%m-%dT%H:%M:%SZ",
]  # fmt: skip


def date_text() -> st.SearchStrategy[str]:
    when = st.datetimes(dt.datetime(1700, 1, 1), dt.datetime(2100, 12, 31))
    epoch = dt.datetime(1970, 1, 1)
    return st.one_of(
        st.tuples(when, st.sampled_from(DATE_FORMATS)).map(lambda t: t[0].strftime(t[1])),
        when.map(lambda d: str(int((d - epoch).total_seconds() * 1000))),  # epoch ms
        when.map(lambda d: str(int((d - epoch).total_seconds()))),  # epoch s
        st.integers(-10, 80_000).map(str),  # Excel serials and small numbers
        st.sampled_from(["2014-02-30", "2014-13-01", "31/31/2014", "0000-00-00", "2014"]),
    )


def coord_text(crs: str | None, axis: str) -> st.SearchStrategy[str]:
    near = {
        ("EPSG:4326", "x"): (-79.6, -79.1),
        ("EPSG:4326", "y"): (43.58, 43.85),
        ("EPSG:2019", "x"): (295_000.0, 330_000.0),
        ("EPSG:2019", "y"): (4_825_000.0, 4_860_000.0),
    }.get((crs or "", axis), (-1e6, 1e6))
    return st.one_of(
        st.floats(*near).map(repr),
        st.sampled_from(["0", "-0.0", "180.0001", "-91", "1e308", "-1e308", "43.7", "-79.4"]),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
    )


def plausible(canonical: str) -> st.SearchStrategy[str]:
    """A value for one curated field, from its name (what the column means)."""
    if canonical.endswith("date") or canonical in {"date", "date_time"}:
        return date_text()
    if canonical.endswith("year") or canonical in {"month", "day"}:
        return num_text(1700, 2100)
    if canonical.endswith(("_mm", "_m", "_c", "_cm", "temp", "rain", "snow", "precip")) or (
        canonical in {"snow_on_ground", "watermain_type"}
    ):
        return num_text(-100, 4000)
    if canonical.endswith(("_id", "node", "code")):
        return st.one_of(st.integers(-5, 10**12).map(str), st.text(min_size=1, max_size=8))
    return st.text(max_size=30)


def cell(canonical: str) -> st.SearchStrategy[str]:
    return st.one_of(plausible(canonical), plausible(canonical), hostile())


def line_wkt(crs: str | None) -> st.SearchStrategy[Any]:
    """A GeoJSON geometry (as a dict, or broken text) near the profile's CRS origin."""
    if crs in (None, "EPSG:4326"):
        x0, y0, span = -79.4, 43.7, 0.05
    else:
        x0, y0, span = 315_000.0, 4_840_000.0, 5_000.0
    pt = st.tuples(
        st.floats(x0 - span, x0 + span, allow_nan=False),
        st.floats(y0 - span, y0 + span, allow_nan=False),
    ).map(list)
    odd = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e308, -1e308, 0.0, 1e-320]),
    )
    bad_pt = st.tuples(odd, odd).map(list)
    return st.one_of(
        st.lists(pt, min_size=2, max_size=5).map(
            lambda c: {"type": "LineString", "coordinates": c}
        ),
        st.lists(st.lists(pt, min_size=2, max_size=3), min_size=1, max_size=3).map(
            lambda c: {"type": "MultiLineString", "coordinates": c}
        ),
        st.lists(st.one_of(pt, bad_pt), min_size=0, max_size=4).map(
            lambda c: {"type": "LineString", "coordinates": c}
        ),
        pt.map(lambda c: {"type": "LineString", "coordinates": [c, c]}),
        pt.map(lambda c: {"type": "Point", "coordinates": c}),
        pt.map(lambda c: {"type": "Point", "coordinates": [c[1], c[0]]}),
        pt.map(lambda c: {"type": "Polygon", "coordinates": [[c, c, c, c]]}),
        st.sampled_from(
            [
                None,
                {},
                {"type": "LineString"},
                {"type": "Nope", "coordinates": []},
                {"type": "LineString", "coordinates": "abc"},
                {"type": "GeometryCollection", "geometries": []},
            ]
        ),
    )


# --------------------------------------------------------------------------- whole files


def columns_of(prof: Profile) -> dict[str, str]:
    """raw column -> the curated field it feeds (or 'x@CRS' / 'y@CRS' / 'geometry')."""
    cols = {raw: canonical for canonical, raw in prof.columns.items()}
    for pair in prof.coordinates:
        if pair.x and pair.y:
            cols[pair.x] = f"x@{pair.crs}"
            cols[pair.y] = f"y@{pair.crs}"
    if prof.geometry_column:
        cols[prof.geometry_column] = "geometry"
    return cols


def value(role: str, crs: str | None) -> st.SearchStrategy[str]:
    if role == "geometry":
        return st.one_of(
            line_wkt(crs).map(lambda g: json.dumps(g, allow_nan=True)),
            line_wkt(crs).map(lambda g: json.dumps(g)[:-3]),  # truncated text
            hostile(),
        )
    if role[:2] in {"x@", "y@"}:
        return st.one_of(coord_text(role[2:], role[0]), hostile())
    return cell(role)


@st.composite
def csv_file(draw: st.DrawFn, prof: Profile, extra: dict[str, str] | None = None) -> dict:
    """A whole CSV: header, rows, and the file-level knobs; returns the bytes and rows."""
    cols = {**columns_of(prof), **(extra or {})}
    header = list(cols)
    if draw(st.booleans()):  # an unread column the file carries too
        header.append("REMARKS")
        cols["REMARKS"] = "remarks"
    order = draw(st.permutations(header))
    n = draw(st.integers(0, 12))
    rows = [[draw(value(cols[h], prof.crs)) for h in order] for _ in range(n)]
    # pair coordinates swapped on some rows
    if rows and draw(st.booleans()):
        xs = [i for i, h in enumerate(order) if cols[h].startswith("x@")]
        ys = [i for i, h in enumerate(order) if cols[h].startswith("y@")]
        if xs and ys:
            r = draw(st.sampled_from(rows))
            r[xs[0]], r[ys[0]] = r[ys[0]], r[xs[0]]
    extra_field = bool(rows) and draw(st.booleans())
    if extra_field:
        draw(st.sampled_from(rows)).append("surplus")
    dup_header = draw(st.sampled_from([None, *order]))
    head = list(order)
    if dup_header is not None and len(head) > 1:
        head[(order.index(dup_header) + 1) % len(head)] = dup_header
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]))
    text = "".join(csv_line(r) + newline for r in [head, *rows])
    data = text.encode(encoding, errors="replace")
    return {"bytes": data, "rows": n, "header": head, "encoding": encoding}


def csv_line(cells: list[str]) -> str:
    """One RFC 4180 record: a cell with a comma, quote, CR or LF is quoted (the csv module
    leaves LF unquoted when the line terminator is CR, which makes two records of one)."""
    return ",".join(
        '"' + c.replace('"', '""') + '"' if any(ch in c for ch in ',"\r\n') else c for c in cells
    )


def json_value(role: str, crs: str | None) -> st.SearchStrategy[Any]:
    text = value(role, crs)
    return st.one_of(
        text,
        text.map(_as_number),
        st.sampled_from([None, True, [], {"a": 1}, float("nan"), float("inf")]),
    )


def _as_number(s: str) -> Any:
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s


@st.composite
def geojson_file(draw: st.DrawFn, prof: Profile) -> dict:
    cols = columns_of(prof)
    kind_geom = {"breaks": "Point", "neighbourhoods": "Polygon"}.get(prof.kind, "LineString")
    n = draw(st.integers(0, 10))
    feats = []
    for _ in range(n):
        props = {h: draw(json_value(role, "EPSG:4326")) for h, role in cols.items()}
        if draw(st.booleans()):
            props.pop(draw(st.sampled_from(sorted(props))), None)
        geom = draw(line_wkt("EPSG:4326"))
        if kind_geom == "Point" and isinstance(geom, dict) and geom.get("coordinates"):
            c = geom["coordinates"]
            geom = {"type": "Point", "coordinates": c[0] if isinstance(c[0], list) else c}
        elif kind_geom == "Polygon" and isinstance(geom, dict) and geom.get("type") == "LineString":
            c = geom.get("coordinates")
            ring = list(c) if isinstance(c, list) else []
            geom = {"type": "Polygon", "coordinates": [ring + ring[:1]]}
        feats.append({"type": "Feature", "properties": props, "geometry": geom})
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": feats}
    text = json.dumps(doc, allow_nan=True, ensure_ascii=draw(st.booleans()),
                      indent=draw(st.sampled_from([None, 1])))  # fmt: skip
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    data = text.encode("utf-8")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return {"bytes": data, "rows": n}


@st.composite
def eccc_file(draw: st.DrawFn) -> dict:
    names = {c: DISPLAY_NAMES[c] for c in DISPLAY_NAMES}
    extra = {"Longitude (x)": "x@EPSG:4326", "Latitude (y)": "y@EPSG:4326"}
    pseudo = replace(
        tw.get_profile("toronto_breaks_csv"), columns={c: n for c, n in names.items()},
        coordinates=(), geometry_column=None, crs=None,
    )  # fmt: skip
    return draw(csv_file(pseudo, extra))


# --------------------------------------------------------------------------- the checks


def read(path: Path, prof: Profile | str, *, own_crs: bool) -> tw.IngestResult | None:
    """Read one fuzzed file; None when it was refused cleanly as a whole."""
    try:
        if own_crs:
            with using_crs(None):
                return tw.read_source(path, prof, source_id="fz", today=TODAY)
        return tw.read_source(path, prof, source_id="fz", today=TODAY)
    except InputDataError as e:
        assert path.name in str(e), f"the error does not name the file: {e}"
        return None
    except Exception as e:
        e.add_note(f"fuzzed file: {path}")
        raise


def check(res: tw.IngestResult | None, rows: int, prof: Profile) -> None:
    if res is None:
        return
    q = res.quarantine
    assert res.rows_in == res.accepted + len(q) + res.excluded_rows
    assert res.rows_in == rows, f"{rows} rows written, {res.rows_in} read"
    assert set(q["reason"]) <= REASONS
    validate_frame(q, "curated/quarantine")
    main = next(iter(res.tables.values()))
    for c in ("x", "y", "lon", "lat"):
        if c in main.columns and len(main):
            assert np.isfinite(main[c].to_numpy(dtype=float)).all(), c
    for c in ("break_date", "install_date", "date"):
        if c in main.columns and main[c].notna().any():
            d = pd.to_datetime(main[c]).dropna()
            assert d.max().date() <= TODAY, c
            assert d.min().date() >= dt.date.fromisoformat(prof.min_date), c


@pytest.mark.parametrize(
    ("pid", "fmt"), [(p, "csv") for p in CSV_PROFILES] + [(p, "geojson") for p in GEOJSON_PROFILES]
)
@FUZZ
@given(data=st.data(), own_crs=st.booleans())
def test_files(tmp_path_factory, pid: str, fmt: str, data: st.DataObject, own_crs: bool) -> None:
    """One whole file per example, read with the analysis CRS in force or chosen from it."""
    prof = profile(pid)
    f = data.draw(csv_file(prof) if fmt == "csv" else geojson_file(prof))
    path = tmp_path_factory.mktemp("fz") / f"fuzz.{fmt}"
    path.write_bytes(f["bytes"])
    check(read(path, prof, own_crs=own_crs), f["rows"], prof)


@FUZZ
@given(data=st.data())
def test_weather_files(tmp_path_factory, data: st.DataObject) -> None:
    root = tmp_path_factory.mktemp("fz")
    f = data.draw(eccc_file())
    (root / "eccc.csv").write_bytes(f["bytes"])
    check(read(root / "eccc.csv", "eccc_daily", own_crs=False), f["rows"], NOAA)
    g = data.draw(csv_file(NOAA))
    (root / "noaa.csv").write_bytes(g["bytes"])
    check(read(root / "noaa.csv", NOAA, own_crs=False), g["rows"], NOAA)


@settings(FUZZ, max_examples=EXAMPLES or 12)
@given(data=st.data())
def test_cli_never_shows_a_traceback(tmp_path_factory, data: st.DataObject) -> None:
    """The whole command on fuzzed breaks: exit 0 reconciled, or exit 3 naming the file."""
    root = tmp_path_factory.mktemp("fz")
    f = data.draw(csv_file(tw.get_profile("toronto_breaks_csv")))
    (root / "b.csv").write_bytes(f["bytes"])
    (root / "twmb.toml").write_text(
        '[project]\nname = "fuzz"\ncrs = "EPSG:2952"\n\n[[sources]]\nid = "breaks"\n'
        'profile = "toronto_breaks_csv"\npath = "b.csv"\n',
        encoding="utf-8",
    )
    r = twmb("-q", "--config", root / "twmb.toml", "--out", root / "out", "ingest", "--json")
    assert "Traceback" not in r.stdout + r.stderr, show(r)
    assert r.exit_code in (0, 3), show(r)
    if r.exit_code == 0:
        src = json.loads(r.stdout)["sources"][0]
        assert src["rows_in"] == f["rows"], show(r)
        assert src["rows_in"] == src["accepted"] + src["quarantined"] + src.get("excluded", 0)
    else:
        assert "b.csv" in r.stderr, show(r)


# --------------------------------------------------------------------------- found by the fuzzer
# Each failed on the code before the fuzz suite (a traceback, or a contract error for a bad row).


def _geojson(path: Path, features: list[tuple[dict, dict | None]]) -> Path:
    feats = [{"type": "Feature", "properties": p, "geometry": g} for p, g in features]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}), encoding="utf-8")
    return path


BREAK = {"BREAK_DATE": "2014-03-04", "BREAK_YEAR": 2014, "_id": 1, "POINT_X": None,
         "POINT_Y": None, "XCOORD": None, "YCOORD": None}  # fmt: skip


def test_extent_of_two_far_apart_points() -> None:
    """Before: ValueError (the median of two points is near neither)."""
    from twmb_geo.core.crs import lonlat_bounds

    box = lonlat_bounds(np.array([-79.4, 100.0]), np.array([43.7, -40.0]), "EPSG:4326")
    assert box == (-79.4, 43.7, -79.4, 43.7)


@pytest.mark.other_crs
def test_no_usable_coordinates_without_a_crs_is_exit_3_naming_the_file(tmp_path) -> None:
    """Before: AnalysisCRSError with a traceback."""
    path = _geojson(tmp_path / "nowhere.geojson", [({**BREAK, "POINT_X": "x"}, None)])
    with pytest.raises(InputDataError, match=r"nowhere\.geojson: cannot choose an analysis CRS"):
        tw.read_source(path, "toronto_breaks_geojson", today=TODAY)


def test_line_geojson_with_a_one_point_line_quarantines_that_row(tmp_path) -> None:
    """Before: GEOSException ('point array must contain 0 or >1 elements') for the file."""
    props = {c: "1" for c in tw.get_profile("toronto_centreline_geojson").columns.values()}
    good = {"type": "LineString", "coordinates": [[-79.40, 43.70], [-79.41, 43.71]]}
    one = {"type": "LineString", "coordinates": [[-79.40, 43.70]]}
    path = _geojson(
        tmp_path / "tcl.geojson",
        [({**props, "CENTRELINE_ID": 1}, good), ({**props, "CENTRELINE_ID": 2}, one)],
    )
    res = tw.read_source(path, "toronto_centreline_geojson", today=TODAY)
    assert res.accepted == 1
    assert res.quarantine.set_index("source_row")["reason"].to_dict() == {2: "geometry_invalid"}


def test_break_projecting_outside_the_analysis_area_is_quarantined(tmp_path) -> None:
    """Before: ContractError (a WGS 84 point valid on Earth but thousands of km from the city
    was accepted without a service area)."""
    far = {"type": "Point", "coordinates": [100.0, -40.0]}
    near = {"type": "Point", "coordinates": [-79.4, 43.7]}
    path = _geojson(tmp_path / "b.geojson", [(BREAK, near), ({**BREAK, "_id": 2}, far)])
    res = tw.read_source(path, "toronto_breaks_geojson", today=TODAY)
    assert res.accepted == 1
    assert res.quarantine["reason"].tolist() == ["outside_service_area"]


def test_neighbourhood_polygons_that_do_not_project_are_quarantined(tmp_path) -> None:
    """Before: ContractError (null centroid) for a polygon with coordinates beyond the CRS,
    and a GEOSException (orientationIndex NaN/Inf) for one with an infinite vertex."""
    ring = [[-79.4, 43.7], [-79.39, 43.7], [-79.39, 43.71], [-79.4, 43.7]]
    huge = [[1e308, 1e308], [-1e308, 1e308], [-1e308, -1e308], [1e308, 1e308]]
    away = [[100.0, -40.0], [100.1, -40.0], [100.1, -40.1], [100.0, -40.0]]
    inf = [[-79.35, 43.695], [0.0, float("inf")], [-79.42, 43.68], [-79.35, 43.695]]
    path = _geojson(
        tmp_path / "n.geojson",
        [
            (
                {"AREA_SHORT_CODE": "1", "AREA_NAME": "A"},
                {"type": "Polygon", "coordinates": [ring]},
            ),
            (
                {"AREA_SHORT_CODE": "2", "AREA_NAME": "B"},
                {"type": "Polygon", "coordinates": [huge]},
            ),
            (
                {"AREA_SHORT_CODE": "3", "AREA_NAME": "C"},
                {"type": "Polygon", "coordinates": [away]},
            ),
            (
                {"AREA_SHORT_CODE": "4", "AREA_NAME": "D"},
                {"type": "Polygon", "coordinates": [inf]},
            ),
        ],
    )
    res = tw.read_source(path, "toronto_neighbourhoods_158", today=TODAY)
    assert res.accepted == 1
    got = res.quarantine.set_index("source_row")["reason"].to_dict()
    assert got == {2: "geometry_invalid", 3: "outside_service_area", 4: "geometry_invalid"}


def test_every_neighbourhood_invalid_names_the_file_and_the_reasons(tmp_path) -> None:
    """Before: "source 'x': every neighbourhood row is invalid (see quarantine)" with no file,
    and no quarantine to see (the ingest stops)."""
    path = _geojson(tmp_path / "n.geojson", [({"AREA_SHORT_CODE": "1", "AREA_NAME": ""}, None)])
    with pytest.raises(InputDataError) as e:
        tw.read_source(path, "toronto_neighbourhoods_158", today=TODAY)
    assert "n.geojson: every neighbourhood row is invalid" in str(e.value)
    assert "id_missing 1" in str(e.value) and "row 1:" in str(e.value)


def test_weather_table_with_every_row_refused_reconciles(tmp_path) -> None:
    """Before: KeyError 'DATE' when the reader refused every row."""
    path = tmp_path / "noaa.csv"
    path.write_text(
        "DATE,STATION,TMAX,TMIN,PRCP,SNOW\n2014-01-01,S,1,2,3,4,surplus\n", encoding="utf-8"
    )
    res = tw.read_source(path, NOAA, today=TODAY)
    assert (res.rows_in, res.accepted) == (1, 0)
    assert res.quarantine["reason"].tolist() == ["extra_fields"]
