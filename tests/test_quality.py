"""Data-quality decisions: duplicates in metres (ingest) and a partial last year (features)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TODAY
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

import twmb_geo as tw
from twmb_geo.features.build import _study_years
from twmb_geo.features.coverage import last_year_coverage
from twmb_geo.ingest.duplicates import Candidates, DuplicateState, find_duplicates
from twmb_geo.io.profiles import parse_profile

# -- duplicates: the rule on two rows ---------------------------------------------------

_ids = st.sampled_from([None, "A", "B"])


def _two(d: float, angle: float, rid: tuple, aid: tuple, same_key: bool = True) -> Candidates:
    x0, y0 = 314_000.123, 4_840_000.456
    x1, y1 = x0 + d * math.cos(angle), y0 + d * math.sin(angle)
    px, py = np.array([x0, x1]), np.array([y0, y1])
    return Candidates(
        h=np.array([7, 7 if same_key else 8], dtype=np.uint64),
        row=np.array([1, 2]),
        px=px,
        py=py,
        cx=px,
        cy=py,
        rid=np.array(rid, dtype=object),
        aid=np.array(aid, dtype=object),
        i=np.array([0, 1]),
    )


@settings(max_examples=120, deadline=None)
@given(
    d=st.floats(0, 100),
    tol=st.floats(0, 50),
    angle=st.floats(0, 2 * math.pi),
    rid=st.tuples(_ids, _ids),
    aid=st.tuples(_ids, _ids),
    distinct=st.booleans(),
    split=st.booleans(),
)
def test_two_rows_are_duplicates_iff_close_and_ids_allow(
    d: float, tol: float, angle: float, rid: tuple, aid: tuple, distinct: bool, split: bool
) -> None:
    cand = _two(d, angle, rid, aid)
    real = float(np.hypot(cand.px[1] - cand.px[0], cand.py[1] - cand.py[0]))

    def differ(p: tuple) -> bool:
        return p[0] is not None and p[1] is not None and p[0] != p[1]

    expected = real <= tol and not differ(aid) and not (distinct and differ(rid))
    if split:  # the first row in an earlier chunk
        first = Candidates(**{k: v[:1] for k, v in cand.__dict__.items()})
        second = Candidates(**{k: v[1:] for k, v in cand.__dict__.items()})
        second.i = np.array([0])
        state, _ = find_duplicates(DuplicateState(), first, 1, tol, record_ids_distinct=distinct)
        _, res = find_duplicates(state, second, 1, tol, record_ids_distinct=distinct)
        got = bool(res.dup[0])
    else:
        _, res = find_duplicates(DuplicateState(), cand, 2, tol, record_ids_distinct=distinct)
        got = bool(res.dup[1])
        assert not res.dup[0]  # the first row is always kept
    assert got == expected
    if got:
        assert res.kept_row[-1] == 1 and res.distance_m[-1] == pytest.approx(real)


@settings(deadline=None)
@given(d=st.floats(0, 10))
def test_different_keys_never_match(d: float) -> None:
    cand = _two(d, 0.3, (None, None), (None, None), same_key=False)
    _, res = find_duplicates(DuplicateState(), cand, 2, 50.0)
    assert not res.dup.any()


def test_kd_tree_matches_brute_force_and_names_the_earliest_row() -> None:
    n = 1_500
    rng = np.random.default_rng(1)
    x = np.round(rng.uniform(0, 400, n), 1)
    y = np.round(rng.uniform(0, 400, n), 1)
    h = rng.integers(0, 3, n).astype(np.uint64)  # three dates
    x[10], y[10], h[10] = x[3] + 1.0, y[3], h[3]  # close to row 3
    x[20], y[20], h[20] = x[3] - 1.0, y[3], h[3]  # close to 3, and 2 m from 10
    none = np.full(n, None, dtype=object)
    cand = Candidates(h, np.arange(n) + 1, x, y, x, y, none, none, np.arange(n))
    _, res = find_duplicates(DuplicateState(), cand, n, 1.5)
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    match = (d <= 1.5) & (h[:, None] == h[None, :]) & np.tri(n, k=-1, dtype=bool)
    assert res.dup.tolist() == match.any(axis=1).tolist()
    assert res.kept_row[res.dup].tolist() == (match.argmax(axis=1)[res.dup] + 1).tolist()
    assert res.kept_row[[10, 20]].tolist() == [4, 4]  # source rows of index 3


# -- duplicates: through a lon/lat profile --------------------------------------------

LONLAT_PROFILE = {
    "id": "lonlat_breaks",
    "kind": "breaks",
    "format": "csv",
    "description": "breaks with lon/lat only",
    "columns": {"break_date": "date", "record_id": "incident", "asset_id": "asset"},
    "coordinates": [{"name": "wgs84", "x": "lon", "y": "lat", "crs": "EPSG:4326"}],
}
_GEOD = Geod(ellps="WGS84")


def _lonlat_rows() -> pd.DataFrame:
    lon0, lat0 = -79.40049, 43.70012
    rows = [("2015-03-01", lon0, lat0, "I-1", "M1")]
    for dist, inc in ((10, "I-2"), (30, "I-3"), (77, "I-4")):  # same date, other incidents
        lon, lat, _ = _GEOD.fwd(lon0, lat0, 90, dist)
        rows.append(("2015-03-01", lon, lat, inc, None))
    lon2, lat2, _ = _GEOD.fwd(lon0, lat0, 0, 2.0)
    rows += [
        ("2015-03-01", lon2, lat2, None, "M1"),  # 2 m away, same asset: a duplicate of row 1
        ("2015-03-01", lon0, lat0, None, "M2"),  # same spot, another asset: kept
        ("2015-03-02", lon0, lat0, None, None),  # same spot, next day: kept
        ("2015-03-01", lon0, lat0, "I-1", None),  # same incident id again: a duplicate
    ]
    return pd.DataFrame(rows, columns=["date", "lon", "lat", "incident", "asset"])


def _read(df: pd.DataFrame, tmp_path: Path, **checks: object) -> tw.IngestResult:
    path = tmp_path / "b.csv"
    df.to_csv(path, index=False)
    prof = parse_profile({**LONLAT_PROFILE, "checks": checks})
    return tw.read_source(path, prof, today=TODAY)


def test_lonlat_breaks_tens_of_metres_apart_are_not_duplicates(tmp_path: Path) -> None:
    df = _lonlat_rows()
    # the old rule (raw lon/lat rounded to 3 decimals + date) merged the first four rows
    assert df.iloc[:4][["lon", "lat"]].round(3).nunique().max() == 1
    r = _read(df, tmp_path)
    q = r.quarantine.set_index("source_row")
    assert q["reason"].to_dict() == {5: "duplicate", 8: "duplicate"}
    assert "as row 1 (kept), 2.0 m apart (tolerance 5 m)" in q.loc[5, "detail"]
    assert r.accepted == 6 and r.accepted + len(r.quarantine) == r.rows_in
    assert any("2 row(s) quarantined as duplicates" in w and "within 5 m" in w for w in r.warnings)


def test_duplicate_tolerance_and_record_id_settings(tmp_path: Path) -> None:
    df = _lonlat_rows()
    wide = _read(df, tmp_path, duplicate_distance_m=100.0, duplicate_record_id="ignore")
    # I-2..I-4 fall within 100 m and their ids are ignored; M2 differs from M1 but matches
    # row 2, which names no asset
    q = wide.quarantine.set_index("source_row")["detail"]
    assert sorted(q.index) == [2, 3, 4, 5, 6, 8]
    assert "as row 2 (kept), 10.0 m apart" in q[6]
    alias = _read(df, tmp_path, duplicate_max_distance_m=1.0)  # old key, no pair in the key
    assert sorted(alias.quarantine["source_row"]) == [8]
    off = _read(df, tmp_path, duplicate_key=[])
    assert off.quarantine.empty


@pytest.mark.parametrize(
    ("checks", "problem"),
    [
        ({"duplicate_distance_m": -1}, "duplicate_distance_m must be a number of metres >= 0"),
        ({"duplicate_distance_m": "5 m"}, "duplicate_distance_m must be a number of metres"),
        ({"duplicate_record_id": "unique"}, "duplicate_record_id must be 'distinct'"),
        (
            {"duplicate_distance_m": 5, "duplicate_max_distance_m": 10},
            "duplicate_max_distance_m is the old name of duplicate_distance_m",
        ),
    ],
)
def test_bad_duplicate_checks_are_reported(checks: dict, problem: str) -> None:
    with pytest.raises(tw.ConfigError) as err:
        parse_profile({**LONLAT_PROFILE, "checks": checks})
    assert any(problem in p for p in err.value.problems), err.value.problems


def test_max_distance_keeps_its_meaning_with_a_pair_in_the_key() -> None:
    prof = parse_profile(
        {
            **LONLAT_PROFILE,
            "checks": {"duplicate_key": ["break_date", "wgs84"], "duplicate_max_distance_m": 50},
        }
    )
    assert prof.duplicate_pair == "wgs84"
    assert prof.duplicate_max_distance_m == 50.0 and prof.duplicate_distance_m == 5.0


# -- partial last year -----------------------------------------------------------------


def _dates(last: str, per_year: int = 400, first_year: int = 2008) -> pd.Series:
    """``per_year`` breaks spread over each year from ``first_year`` up to ``last``."""
    end = pd.Timestamp(last)
    parts = []
    for year in range(first_year, end.year + 1):
        start = pd.Timestamp(year=year, month=1, day=1)
        stop = min(end, pd.Timestamp(year=year, month=12, day=31))
        n = per_year if stop.year < end.year else max(1, round(per_year * (stop.day_of_year / 366)))
        parts.append(pd.Series(pd.date_range(start, stop, periods=n)))
    return pd.concat(parts, ignore_index=True)


def test_a_record_ending_on_9_january_is_a_partial_year() -> None:
    d = pd.concat(
        [_dates("2015-12-31"), pd.Series(pd.to_datetime(["2016-01-02"] * 2 + ["2016-01-09"]))]
    )
    cov = last_year_coverage(d)
    assert cov is not None and cov.partial
    assert (cov.year, cov.days_covered, cov.breaks, cov.expected) == (2016, 9, 3, 400.0)
    assert cov.note(kept=False) == (
        "2016 has 9 day(s) of data (3 breaks, expected ~400; last break 2016-01-09): "
        "treated as partial, not used as a target or score basis"
    )


@pytest.mark.parametrize(
    ("dates", "partial"),
    [
        (_dates("2016-12-31"), False),  # a complete final year
        (_dates("2016-12-20"), False),  # ends 11 days early: covered 0.97
        (_dates("2016-08-31"), False),  # 2/3 of the year at the usual rate: not markedly fewer
        (_dates("2016-01-09", first_year=2014), False),  # 2 years of history: cannot judge
    ],
)
def test_complete_or_unjudgeable_years_are_not_flagged(dates: pd.Series, partial: bool) -> None:
    cov = last_year_coverage(dates)
    assert cov is not None and cov.partial is partial


def test_thresholds_are_settings() -> None:
    d = _dates("2016-08-31")
    assert not last_year_coverage(d).partial
    assert last_year_coverage(d, break_ratio=0.7).partial  # 267 breaks < 0.7 x 400
    assert not last_year_coverage(d, break_ratio=0.7, min_coverage=0.6).partial


def _breaks(dates: pd.Series) -> pd.DataFrame:
    d = pd.to_datetime(dates)
    return pd.DataFrame({"break_date": d, "year": d.dt.year})


def test_partial_last_year_ends_the_study_a_year_earlier(tmp_path: Path) -> None:
    cfg = tw.default_config(tmp_path / "out")
    partial = _breaks(pd.concat([_dates("2015-12-31"), pd.Series(pd.to_datetime(["2016-01-09"]))]))
    y0, y1, notes = _study_years(cfg, partial)
    assert (y0, y1) == (2008, 2015)
    assert len(notes) == 1 and notes[0].startswith("2016 has 9 day(s) of data (1 breaks")
    keep = replace(cfg, features=replace(cfg.features, partial_year="keep"))
    y0, y1, notes = _study_years(keep, partial)
    assert y1 == 2016 and "kept as a target" in notes[0]
    fixed = replace(cfg, features=replace(cfg.features, study_end=2016))
    assert _study_years(fixed, partial)[1:] == (2016, [])
    complete = _breaks(_dates("2016-12-31"))
    assert _study_years(cfg, complete)[1:] == (2016, [])


def test_partial_year_setting_is_checked(tmp_path: Path) -> None:
    cfg = tw.default_config(tmp_path / "out")
    path = tmp_path / "twmb.toml"
    tw.write_config(replace(cfg, features=replace(cfg.features, partial_year="drop")), path)
    with pytest.raises(tw.ConfigError) as err:
        tw.load_config(path)
    assert any(
        "partial_year must be 'auto' (a partial last year is not a target or score basis) "
        "or 'keep', got 'drop'" in p
        for p in err.value.problems
    ), err.value.problems
    tw.write_config(
        replace(cfg, features=replace(cfg.features, partial_year="keep")), path, overwrite=True
    )
    assert tw.load_config(path).features.partial_year == "keep"
