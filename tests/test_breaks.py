"""Breaks ingestion on the real Toronto releases and on hand-made edge cases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
from conftest import BREAKS_XLSX, BREAKS_ZIP, TODAY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Transformer

import twmb_geo as tw
from twmb_geo.ingest.dates import parse_dates

COLS = ["BREAK_DATE", "BREAK_YEAR", "XCOORD", "YCOORD", "POINT_X", "POINT_Y"]
_TO_MTM27 = Transformer.from_crs("EPSG:4326", "EPSG:2019", always_xy=True)


@pytest.fixture(scope="module")
def shp_result(service_area):
    return tw.read_source(
        BREAKS_ZIP, "toronto_breaks_shapefile", service_area=service_area, today=TODAY
    )


@pytest.fixture(scope="module")
def xlsx_result(service_area):
    return tw.read_source(
        BREAKS_XLSX, "toronto_breaks_xlsx", service_area=service_area, today=TODAY
    )


@pytest.fixture(scope="module")
def raw_breaks() -> pd.DataFrame:
    df = pyogrio.read_dataframe(BREAKS_ZIP, read_geometry=False)
    df["BREAK_DATE"] = pd.to_datetime(df["BREAK_DATE"]).dt.strftime("%Y-%m-%d")
    return df[COLS]


def test_shapefile_reconciles_and_finds_known_problems(shp_result) -> None:
    r = shp_result
    assert r.rows_in == 35_465
    assert r.accepted + len(r.quarantine) == 35_465
    assert r.quarantined_by_reason == {"duplicate": 18, "year_mismatch": 8}
    # the year mismatch that is also a duplicate lists both reasons
    both = r.quarantine[r.quarantine["reasons"] == "duplicate;year_mismatch"]
    assert len(both) == 1
    breaks = r.tables["breaks"]
    assert breaks["break_id"].is_unique
    # the record whose XCOORD/YCOORD are swapped is found and located from its WGS84 pair
    swapped = breaks[breaks["flags"].str.contains("mtm_nad27_swapped_xy")]
    assert list(swapped["source_row"]) == [33653]
    assert swapped["coord_source"].iloc[0] == "wgs84"
    assert swapped["lon"].iloc[0] == pytest.approx(-79.279922, abs=1e-6)
    assert (breaks["coord_source"] == "wgs84").all()
    assert r.flags["mtm_nad27_invalid"] == 3  # X == Y in three records


def test_ballpark_nad27_is_detected_and_measured(shp_result) -> None:
    rec = next(c for c in shp_result.crs if c["pair"] == "mtm_nad27")
    assert rec["ballpark"] is True
    assert "ca_nrc_MAY76V20.tif" in rec["missing_grids"]
    me = rec["measured_error_m"]
    assert 10 < me["median"] < 25 and me["n"] > 35_000
    assert any("ballpark" in w for w in shp_result.warnings)
    wgs = next(c for c in shp_result.crs if c["pair"] == "wgs84")
    assert wgs["ballpark"] is False and wgs["accuracy_m"] is not None


def test_xlsx_release_quarantines_what_it_cannot_repair(xlsx_result) -> None:
    r = xlsx_result
    assert r.rows_in == 35_465
    by = r.quarantined_by_reason
    assert by["duplicate"] == 18
    assert by["swapped_xy"] == 1  # no other pair to repair from, and swapping back does not fit
    assert by["coords_invalid"] == 3
    assert r.accepted + len(r.quarantine) == r.rows_in
    assert (r.tables["breaks"]["coord_source"] == "mtm_nad27").all()
    # NAD27 positions carry no PROJ accuracy: the transformation is a ballpark one
    assert r.tables["breaks"]["coord_accuracy_m"].isna().all()


def test_releases_agree_on_duplicates(shp_result, xlsx_result) -> None:
    def dup_keys(res):
        q = res.quarantine[res.quarantine["reasons"].str.contains("duplicate")]
        return len(q)

    assert dup_keys(shp_result) == dup_keys(xlsx_result) == 18


def _write_csv(df: pd.DataFrame, path: Path, encoding: str = "utf-8") -> Path:
    df.to_csv(path, index=False, encoding=encoding)
    return path


def test_break_ids_survive_reordering(raw_breaks, service_area, tmp_path) -> None:
    sample = raw_breaks.iloc[:3000]
    a = tw.read_source(
        _write_csv(sample, tmp_path / "a.csv"),
        "toronto_breaks_csv",
        service_area=service_area,
        today=TODAY,
    )
    shuffled = sample.sample(frac=1.0, random_state=7)
    b = tw.read_source(
        _write_csv(shuffled, tmp_path / "b.csv"),
        "toronto_breaks_csv",
        service_area=service_area,
        today=TODAY,
    )
    cols = ["break_id", "break_date", "x", "y"]
    ka = a.tables["breaks"][cols].sort_values("break_id").reset_index(drop=True)
    kb = b.tables["breaks"][cols].sort_values("break_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(ka, kb)


def _row(date="2010-01-15", year=2010, lon=-79.40, lat=43.70, mtm=True) -> dict:
    x, y = _TO_MTM27.transform(lon, lat)
    return {
        "BREAK_DATE": date,
        "BREAK_YEAR": year,
        "XCOORD": x if mtm else None,
        "YCOORD": y if mtm else None,
        "POINT_X": lon,
        "POINT_Y": lat,
    }


def test_row_level_reasons(service_area, tmp_path) -> None:
    future = (TODAY + dt.timedelta(days=30)).isoformat()
    rows = [
        _row(),  # 1 ok
        _row(date="not a date"),  # 2 date_unparseable
        _row(date=None),  # 3 date_missing
        _row(date=future, year=TODAY.year),  # 4 date_future
        {
            **_row(),
            "XCOORD": None,
            "YCOORD": None,
            "POINT_X": None,
            "POINT_Y": None,
        },  # 5 coords_missing
        _row(lon=-78.0, lat=44.5),  # 6 outside_service_area
        _row(),  # 7 duplicate of 1
        _row(year=2011, lon=-79.45),  # 8 year_mismatch
        {
            **_row(lon=-79.5),
            "POINT_X": 43.70,
            "POINT_Y": -79.5,
        },  # 9 WGS84 swapped, MTM fine -> accepted, flagged
        {**_row(lon=-79.3), "XCOORD": "abc"},  # 10 MTM unparseable, WGS84 fine -> accepted, flagged
    ]
    path = _write_csv(pd.DataFrame(rows), tmp_path / "cases.csv")
    r = tw.read_source(path, "toronto_breaks_csv", service_area=service_area, today=TODAY)
    reasons = dict(zip(r.quarantine["source_row"], r.quarantine["reason"], strict=True))
    assert reasons == {
        2: "date_unparseable",
        3: "date_missing",
        4: "date_future",
        5: "coords_missing",
        6: "outside_service_area",
        7: "duplicate",
        8: "year_mismatch",
    }
    acc = r.tables["breaks"].set_index("source_row")
    assert sorted(acc.index) == [1, 9, 10]
    assert "wgs84_swapped_xy" in acc.loc[9, "flags"] and acc.loc[9, "coord_source"] == "mtm_nad27"
    assert "mtm_nad27_invalid" in acc.loc[10, "flags"]
    detail = r.quarantine.set_index("source_row")["detail"]
    assert "BREAK_DATE" in detail[2] and "row 1" in detail[7]
    assert r.quarantine["raw_record"].str.startswith("{").all()


def test_swap_back_repair_without_another_pair(service_area, tmp_path) -> None:
    x, y = _TO_MTM27.transform(-79.40, 43.70)
    df = pd.DataFrame(
        {
            "BREAK DATE": ["2001-05-06", "2001-05-07"],
            "BREAK YEAR": [2001, 2001],
            "X COORD": [y, x],
            "Y COORD": [x, y],
        }
    )
    path = tmp_path / "b.xlsx"
    df.to_excel(path, index=False)
    r = tw.read_source(path, "toronto_breaks_xlsx", service_area=service_area, today=TODAY)
    b = r.tables["breaks"].set_index("source_row")
    assert b.loc[1, "flags"] == "mtm_nad27_swapped_xy_repaired"
    assert b.loc[1, "x"] == pytest.approx(b.loc[2, "x"]) and b.loc[1, "y"] == pytest.approx(
        b.loc[2, "y"]
    )


def test_cp1252_csv(service_area, tmp_path) -> None:
    df = pd.DataFrame([_row()]).assign(NOTE="Rue Saint-Laurent, près du métro")
    path = _write_csv(df, tmp_path / "w.csv", encoding="cp1252")
    assert "é".encode("cp1252") in path.read_bytes()
    r = tw.read_source(path, "toronto_breaks_csv", service_area=service_area, today=TODAY)
    assert r.accepted == 1


def test_chunked_csv_matches_single_chunk(raw_breaks, service_area, tmp_path) -> None:
    from dataclasses import replace

    sample = pd.concat(
        [raw_breaks.iloc[:2000], raw_breaks.iloc[:50]], ignore_index=True
    )  # 50 cross-chunk dups
    path = _write_csv(sample, tmp_path / "c.csv")
    prof = tw.get_profile("toronto_breaks_csv")
    one = tw.read_source(path, prof, service_area=service_area, today=TODAY)
    many = tw.read_source(
        path, replace(prof, chunk_size=300), service_area=service_area, today=TODAY
    )
    pd.testing.assert_frame_equal(one.tables["breaks"], many.tables["breaks"])
    pd.testing.assert_frame_equal(one.quarantine, many.quarantine)
    assert many.quarantined_by_reason["duplicate"] >= 50


# -- property tests -------------------------------------------------------------------

_dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31))


@given(
    st.lists(_dates, min_size=1, max_size=30),
    st.sampled_from(["%Y-%m-%d", "%d/%m/%Y", "%Y%m%d", "auto"]),
)
def test_parse_dates_round_trips(dates, fmt) -> None:
    text_fmt = "%Y-%m-%d" if fmt == "auto" else fmt
    s = pd.Series([d.strftime(text_fmt) for d in dates], dtype=object)
    out, missing, bad = parse_dates(s, fmt)
    assert not missing.any() and not bad.any()
    assert [t.date() for t in out] == dates


@given(
    st.lists(st.one_of(st.none(), st.text(max_size=12), _dates.map(str)), min_size=1, max_size=30)
)
def test_parse_dates_partitions_every_value(values) -> None:
    out, missing, bad = parse_dates(pd.Series(values, dtype=object), "auto")
    assert len(out) == len(values)
    # every value is exactly one of: parsed, missing, unparseable
    parsed = out.notna().to_numpy()
    assert np.all(parsed.astype(int) + missing.astype(int) + bad.astype(int) == 1)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lon=st.floats(-79.55, -79.20),
    lat=st.floats(43.65, 43.78),
    swap_wgs=st.booleans(),
    swap_mtm=st.booleans(),
)
def test_swapped_pairs_resolve_to_the_same_place(
    service_area, tmp_path, lon, lat, swap_wgs, swap_mtm
) -> None:
    """Swapping X/Y in either pair never moves an accepted break by more than the datum error."""
    row = _row(lon=lon, lat=lat)
    if swap_wgs:
        row["POINT_X"], row["POINT_Y"] = row["POINT_Y"], row["POINT_X"]
    if swap_mtm:
        row["XCOORD"], row["YCOORD"] = row["YCOORD"], row["XCOORD"]
    path = _write_csv(pd.DataFrame([row]), tmp_path / "p.csv")
    r = tw.read_source(path, "toronto_breaks_csv", service_area=service_area, today=TODAY)
    if r.accepted == 0:  # only possible near the boundary where swapping back may leave the area
        assert r.quarantine["reason"].iloc[0] in ("swapped_xy", "outside_service_area")
        return
    b = r.tables["breaks"].iloc[0]
    assert abs(b["lon"] - lon) < 5e-4 and abs(b["lat"] - lat) < 5e-4
    if swap_wgs and swap_mtm:
        assert "swapped_xy_repaired" in b["flags"]
