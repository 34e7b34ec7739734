"""Tests of twmb_geo.ingest.weather: ECCC daily climate reading, row checks, winter indices."""

from __future__ import annotations

import csv
import datetime
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twmb_geo.contracts import validate_frame
from twmb_geo.errors import InputDataError
from twmb_geo.ingest.weather import (
    DAILY_COLUMNS,
    MONTHLY_COLUMNS,
    QUARANTINE_COLUMNS,
    RAW_COLUMNS,
    WINTER_COLUMNS,
    WeatherResult,
    read_eccc_daily,
    transform_weather,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "weather"
REAL_SUBDIR = Path("toronto") / "weather_daily_6158350"
TODAY = datetime.date(2025, 1, 1)

SCHEMAS = {
    "daily": "curated/weather_daily",
    "monthly": "curated/weather_monthly",
    "winters": "curated/weather_winters",
    "quarantine": "curated/quarantine",
}


def _real_files() -> list[Path]:
    files = sorted((REPO / "data" / REAL_SUBDIR).glob("eng-daily-*.csv"))
    assert files, f"the bundled ECCC Toronto daily files are missing from data/{REAL_SUBDIR}"
    return files


def _check_contracts(res: WeatherResult, source_id: str = "src") -> None:
    """Validate every table against its contract (the pipeline adds ``source_id`` to the
    monthly and winter tables, as done here)."""
    for attr, schema in SCHEMAS.items():
        frame = getattr(res, attr)
        if attr in ("monthly", "winters"):
            frame = frame.assign(source_id=source_id)
        validate_frame(frame, schema)


def _plain_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, record) of every data row, by plain csv reading (UTF-8 files only)."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    head = next(i for i, r in enumerate(rows) if r and r[0] == "Date/Time")
    return [
        (i + 1, dict(zip(rows[head], r, strict=True)))
        for i, r in enumerate(rows)
        if i > head and any(v.strip() for v in r)
    ]


@pytest.fixture(scope="module")
def real() -> tuple[list[Path], pd.DataFrame, WeatherResult]:
    files = _real_files()
    raw = read_eccc_daily(files)
    return files, raw, transform_weather(raw, "eccc_toronto_daily", today=TODAY)


# ------------------------------------------------------------------ real data


def test_real_rows_in_equals_independent_count(real):
    files, raw, res = real
    assert len(files) == 28
    expected = 0
    for f in files:
        lines = f.read_text(encoding="utf-8-sig").splitlines()
        head = next(i for i, line in enumerate(lines) if line.startswith('"Date/Time"'))
        expected += sum(1 for line in lines[head + 1 :] if line.strip())
    assert res.rows_in == len(raw) == expected
    assert res.rows_in == len(res.daily) + len(res.quarantine)
    assert res.quarantine.empty
    assert list(raw.columns) == list(RAW_COLUMNS)
    assert (raw["station_id"] == "6158350").all()
    assert (raw["station_name"] == "TORONTO").all()


def test_real_source_row_points_at_the_line(real):
    files, raw, res = real
    for f in files[:3]:
        plain = _plain_rows(f)
        sub = raw[raw["source_file"] == f.name]
        assert sub["source_row"].tolist() == [n for n, _ in plain]
        assert sub["date_time"].tolist() == [r["Date/Time"] for _, r in plain]
    first = res.daily.iloc[0]
    assert (first["source_file"], first["source_row"]) == ("eng-daily-01011990-12311990.csv", 27)


def test_real_daily_shape_and_order(real):
    _, _, res = real
    d = res.daily
    assert list(d.columns) == list(DAILY_COLUMNS)
    assert d["date"].is_monotonic_increasing and d["date"].is_unique
    assert d["date"].iloc[0] == pd.Timestamp("1990-01-01")
    assert d["date"].iloc[-1] == pd.Timestamp("2017-12-31")
    assert d["max_temp_flag"].isna().all()
    _check_contracts(res)


def test_real_temperature_coverage(real):
    _, _, res = real
    m = res.monthly
    assert list(m.columns) == list(MONTHLY_COLUMNS)
    assert len(m) == 28 * 12
    assert m.loc[m["year"] <= 2002, "coverage_ok"].all()
    assert (m.loc[m["year"] <= 2002, "temp_coverage"] == 1.0).all()
    y2003 = m[m["year"] == 2003].set_index("month")["coverage_ok"]
    assert y2003.loc[1:6].all() and not y2003.loc[7:12].any()
    late = m[m["year"] >= 2004]
    assert not late["coverage_ok"].any()
    assert (late["days_with_temp"] == 0).all()
    assert late["freezing_degree_days"].isna().all()
    assert late["freeze_thaw_cycles"].isna().all()
    assert late["total_precip_mm"].notna().any()  # precipitation continues
    assert "temperature coverage < 90 % in 2003-07..2017-12 (174 months)" in res.warnings[0]


@pytest.mark.parametrize(("year", "month"), [(1990, 2), (1994, 1), (2003, 3)])
def test_real_hand_checked_month(real, year, month):
    files, _, res = real
    fdd, ft, below, days = Decimal(0), 0, 0, 0
    path = next(f for f in files if f.name == f"eng-daily-0101{year}-1231{year}.csv")
    for _, rec in _plain_rows(path):
        if int(rec["Year"]) != year or int(rec["Month"]) != month:
            continue
        mx, mn, mean = rec["Max Temp (°C)"], rec["Min Temp (°C)"], rec["Mean Temp (°C)"]
        if mean:
            t = Decimal(mean)
        elif mx and mn:
            t = (Decimal(mx) + Decimal(mn)) / 2
        else:
            t = None
        if t is not None and t < 0:
            fdd -= t
        if mx and mn:
            days += 1
            if Decimal(mx) > 0 and Decimal(mn) < 0:
                ft += 1
        if mn and Decimal(mn) < -10:
            below += 1
    row = res.monthly.set_index(["year", "month"]).loc[(year, month)]
    assert row["days_with_temp"] == days
    assert row["freezing_degree_days"] == float(fdd)
    assert row["freeze_thaw_cycles"] == ft
    assert row["days_below_minus10"] == below


def test_real_winters(real):
    _, _, res = real
    w = res.winters
    assert list(w.columns) == list(WINTER_COLUMNS)
    assert w["winter"].tolist() == list(range(1990, 2019))
    wi = w.set_index("winter")
    # winter 1991 = Nov 1990 .. Mar 1991, days of the season inside the data span
    assert wi.loc[1991, "days_in_season"] == 151
    assert wi.loc[1992, "days_in_season"] == 152  # Feb 1992 is a leap month
    assert wi.loc[1990, "days_in_season"] == 90  # data start 1990-01-01
    assert wi.loc[2018, "days_in_season"] == 61  # data end 2017-12-31
    m = res.monthly.set_index(["year", "month"])
    months = [(1990, 11), (1990, 12), (1991, 1), (1991, 2), (1991, 3)]
    for col in ("freezing_degree_days", "freeze_thaw_cycles", "days_below_minus10"):
        assert wi.loc[1991, col] == pytest.approx(sum(m.loc[k, col] for k in months))
    assert wi.loc[1991, "min_temp_c"] == min(m.loc[k, "min_temp_c"] for k in months)
    assert wi.loc[1991:2003, "coverage_ok"].all()
    assert not wi.loc[2004:, "coverage_ok"].any()
    assert any("winters 1990, 2018 are only partly" in x for x in res.warnings)


# ------------------------------------------------------------------ formats


def test_bulk_format():
    raw = read_eccc_daily([FIXTURES / "bulk_format.csv"])
    assert raw["station_id"].tolist() == ["6158355"] * 3
    assert raw["station_name"].iloc[0] == "TORONTO CITY"
    assert raw["source_row"].tolist() == [2, 3, 4]
    res = transform_weather(raw, "bulk", today=TODAY)
    d = res.daily
    assert d["max_temp_c"].tolist() == [2.1, -1.0, 5.5]
    assert d["total_snow_cm"].tolist() == [0.0, 3.2, 0.0]
    row = res.monthly.iloc[0]
    assert (row["days_with_temp"], row["freeze_thaw_cycles"], row["days_below_minus10"]) == (
        3,
        1.0,
        1.0,
    )
    assert row["freezing_degree_days"] == 0.7 + 6.6
    _check_contracts(res)


def test_cp1252_file_with_crlf():
    path = FIXTURES / "classic_cp1252.csv"
    assert b"\xb0C" in path.read_bytes() and b"\x86" in path.read_bytes()
    raw = read_eccc_daily(path)  # a single path is accepted too
    assert raw["source_row"].tolist() == [17, 18, 19, 20]
    assert raw["data_quality"].iloc[1] == "†"
    assert raw["station_id"].iloc[0] == "6158350"
    res = transform_weather(raw, "cp", today=TODAY)
    d = res.daily
    assert d["max_temp_c"].iloc[0] == -3.2 and d["min_temp_c"].iloc[0] == -11.5
    assert np.isnan(d["max_temp_c"].iloc[2]) and d["max_temp_flag"].iloc[2] == "M"
    assert pd.isna(d["max_temp_flag"].iloc[0])
    assert np.isnan(d["total_precip_mm"].iloc[3])
    row = res.monthly.iloc[0]
    assert (row["days_observed"], row["days_with_temp"]) == (4, 3)
    # day 4 has no mean: T_mean = (4.0 + -0.5) / 2 > 0
    assert row["freezing_degree_days"] == 8.7
    assert row["precip_coverage"] == 3 / 28


@pytest.mark.parametrize("degree", ["°", "Â°", "º", "?", "\ufffd", ""])
def test_degree_sign_variants(tmp_path, degree):
    text = (FIXTURES / "bulk_format.csv").read_text(encoding="utf-8-sig")
    path = tmp_path / "variant.csv"
    path.write_text(text.replace("°", degree), encoding="utf-8")
    raw = read_eccc_daily([path])
    assert raw["max_temp"].tolist() == ["2.1", "-1.0", "5.5"]


def test_utf16_with_bom(tmp_path):
    text = (FIXTURES / "bulk_format.csv").read_text(encoding="utf-8-sig")
    path = tmp_path / "utf16.csv"
    path.write_bytes(text.encode("utf-16"))
    raw = read_eccc_daily([path])
    assert raw["station_id"].tolist() == ["6158355"] * 3


def test_latin1_bytes_outside_cp1252(tmp_path):
    data = (FIXTURES / "classic_cp1252.csv").read_bytes().replace(b"ONTARIO", b"ONT\x81RIO")
    path = tmp_path / "latin1.csv"
    path.write_bytes(data)
    assert len(read_eccc_daily([path])) == 4


# ------------------------------------------------------------------ row checks


@pytest.fixture(scope="module")
def bad() -> WeatherResult:
    raw = read_eccc_daily([FIXTURES / "bad_rows.csv", FIXTURES / "dup_day.csv"])
    return transform_weather(raw, "bad", today=TODAY)


def test_every_reason(bad):
    q = bad.quarantine.set_index(["source_file", "source_row"])
    expected = {
        ("bad_rows.csv", 18): "date_unparseable",  # 2001-02-30
        ("bad_rows.csv", 19): "date_unparseable",  # Day disagrees with Date/Time
        ("bad_rows.csv", 20): "date_missing",
        ("bad_rows.csv", 21): "date_future",
        ("bad_rows.csv", 22): "value_unparseable",
        ("bad_rows.csv", 23): "value_out_of_range",  # 61 C
        ("bad_rows.csv", 24): "value_out_of_range",  # min > max
        ("bad_rows.csv", 25): "value_out_of_range",  # negative precipitation
        ("bad_rows.csv", 26): "value_unparseable",
        ("dup_day.csv", 17): "duplicate",  # 2001-01-10 already in bad_rows.csv line 29
    }
    assert q["reason"].to_dict() == expected
    assert q.loc[("bad_rows.csv", 26), "reasons"] == "value_unparseable;value_out_of_range"
    assert bad.rows_in == 14 == len(bad.daily) + len(bad.quarantine)
    assert bad.daily["source_row"].tolist() == [17, 29, 27, 18]  # sorted by date
    assert bad.daily["date"].dt.day.tolist() == [1, 10, 11, 12]
    # the duplicate keeps the first occurrence (blank temperatures are not an error)
    kept = bad.daily[bad.daily["day"] == 10].iloc[0]
    assert kept["source_file"] == "bad_rows.csv" and np.isnan(kept["max_temp_c"])
    assert list(bad.quarantine.columns) == list(QUARANTINE_COLUMNS)
    _check_contracts(bad)


def test_details_and_raw_record(bad):
    q = bad.quarantine.set_index("source_row")
    q = q[q["source_file"] == "bad_rows.csv"]
    assert q.loc[22, "detail"] == "Max Temp (°C)='abc' is not a number"
    assert q.loc[23, "detail"] == "Max Temp (°C)='61.0' is outside -60..50 °C"
    assert "Min Temp (°C)='2.0' is greater than Max Temp (°C)='-5.0'" in q.loc[24, "detail"]
    assert "Total Precip (mm)='-1.0' is negative" in q.loc[25, "detail"]
    assert "'2001-02-30' is not a date" in q.loc[18, "detail"]
    assert "Year/Month/Day='2001'/'01'/'04'" in q.loc[19, "detail"]
    assert q.loc[20, "detail"] == "Date/Time is blank"
    assert "after today (2025-01-01)" in q.loc[21, "detail"]
    assert q.loc[26, "detail"] == (
        "Max Temp (°C)='x' is not a number; Min Temp (°C)='-70.0' is outside -60..50 °C"
    )
    dup = bad.quarantine[bad.quarantine["reason"] == "duplicate"].iloc[0]
    assert "already seen in bad_rows.csv line 29" in dup["detail"]
    rec = json.loads(q.loc[22, "raw_record"])
    assert rec["max_temp"] == "abc" and rec["source_row"] == 22 and rec["max_temp_flag"] is None
    assert list(rec) == sorted(rec)
    assert ", " not in q.loc[22, "raw_record"] and ": " not in q.loc[22, "raw_record"]


def test_min_max_tolerance_and_warning(bad):
    row = bad.daily[bad.daily["day"] == 11].iloc[0]
    assert (row["max_temp_c"], row["min_temp_c"]) == (-1.0, -0.98)
    assert bad.warnings[-1] == (
        "quarantined 10 of 14 rows: date_unparseable=2, date_missing=1, date_future=1, "
        "duplicate=1, value_unparseable=2, value_out_of_range=3"
    )


def test_today_decides_future():
    raw = read_eccc_daily([FIXTURES / "bulk_format.csv"])
    res = transform_weather(raw, "bulk", today=datetime.date(2020, 1, 2))
    assert res.quarantine["source_row"].tolist() == [4]
    assert res.quarantine["reason"].tolist() == ["date_future"]
    assert len(res.daily) == 2


# ------------------------------------------------------------------ unusable files


def test_missing_columns_names_file_and_columns():
    with pytest.raises(InputDataError) as exc:
        read_eccc_daily([FIXTURES / "missing_columns.csv"])
    text = str(exc.value)
    assert "missing_columns.csv" in exc.value.message
    assert "Max Temp (°C)" in text and "Total Precip (mm)" in text


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("empty.csv", "file is empty"),
        ("header_only.csv", "no data rows"),
        ("no_such_file.csv", "does not exist"),
    ],
)
def test_unusable_file(name, needle):
    with pytest.raises(InputDataError) as exc:
        read_eccc_daily([FIXTURES / name])
    assert name in exc.value.message and needle in str(exc.value)


def test_every_problem_of_every_file_is_listed(tmp_path):
    lines = (FIXTURES / "bad_rows.csv").read_text(encoding="utf-8-sig").splitlines()
    lines[16] = lines[16].rsplit(",", 3)[0]  # truncated row (line 17)
    lines[17] += ',"extra"'  # one field too many (line 18)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("\n".join(lines) + "\n", encoding="utf-8")
    no_header = tmp_path / "no_header.csv"
    no_header.write_text('"Station Name","X"\n"a","b"\n', encoding="utf-8")
    files = [
        FIXTURES / "missing_columns.csv",
        FIXTURES / "empty.csv",
        ragged,
        no_header,
        FIXTURES / "bulk_format.csv",
        tmp_path / "gone.csv",
    ]
    with pytest.raises(InputDataError) as exc:
        read_eccc_daily(files)
    err = exc.value
    assert len(err.problems) == 6
    assert "5 ECCC daily weather files" in err.message
    text = str(err)
    for needle in (
        "missing_columns.csv: missing required columns",
        "empty.csv: file is empty",
        "ragged.csv: 1 rows have fewer than the header's 27 fields (truncated?): lines 17",
        "ragged.csv: 1 rows have more than the header's 27 fields: lines 18",
        "no_header.csv: no header row",
        "gone.csv: file does not exist",
    ):
        assert needle in text
    assert "bulk_format.csv" not in text


def test_unbalanced_quote_is_reported(tmp_path):
    lines = (FIXTURES / "bulk_format.csv").read_text(encoding="utf-8-sig").splitlines()
    lines[2] = lines[2][:-1]  # the last field's closing quote is lost
    path = tmp_path / "quote.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"odd number of '\"': 3"):
        read_eccc_daily([path])


def test_all_rows_quarantined():
    raw = read_eccc_daily([FIXTURES / "bulk_format.csv"])
    res = transform_weather(raw, "bulk", today=datetime.date(2019, 12, 31))
    assert res.daily.empty and len(res.quarantine) == res.rows_in == 3
    assert list(res.monthly.columns) == list(MONTHLY_COLUMNS) and res.monthly.empty
    assert list(res.winters.columns) == list(WINTER_COLUMNS) and res.winters.empty
    assert res.warnings[0] == "no daily rows accepted out of 3"
    _check_contracts(res)


def test_no_files_and_bad_transform_input():
    with pytest.raises(InputDataError):
        read_eccc_daily([])
    with pytest.raises(ValueError, match="lacks columns"):
        transform_weather(pd.DataFrame({"date_time": ["2001-01-01"]}), "x", today=TODAY)
    raw = read_eccc_daily([FIXTURES / "bulk_format.csv"])
    with pytest.raises(ValueError, match="coverage_threshold"):
        transform_weather(raw, "x", today=TODAY, coverage_threshold=1.5)


# ------------------------------------------------------------------ indices


def _raw(
    start: datetime.date, temps: list[tuple[str, str, str]], station: str = "1"
) -> pd.DataFrame:
    """A raw frame of consecutive days with (max, min, mean) strings ('' = blank)."""
    n = len(temps)
    dates = [start + datetime.timedelta(days=i) for i in range(n)]
    blank = [None] * n

    def col(values):
        return pd.Series([v or None for v in values], dtype="str")

    frame = {c: col(blank) for c in RAW_COLUMNS if c != "source_row"}
    frame.update(
        date_time=col([d.isoformat() for d in dates]),
        year=col([str(d.year) for d in dates]),
        month=col([f"{d.month:02d}" for d in dates]),
        day=col([f"{d.day:02d}" for d in dates]),
        max_temp=col([t[0] for t in temps]),
        min_temp=col([t[1] for t in temps]),
        mean_temp=col([t[2] for t in temps]),
        total_precip=col(["1.0"] * n),
        station_id=col([station] * n),
        source_file=col(["synthetic.csv"] * n),
    )
    frame["source_row"] = pd.Series(np.arange(n, dtype=np.int64) + 2)
    return pd.DataFrame(frame)[list(RAW_COLUMNS)]


def test_winter_labelling_and_empty_months():
    days = [datetime.date(1990, 10, 31), datetime.date(1990, 11, 1), datetime.date(1991, 3, 31)]
    days.append(datetime.date(1991, 4, 1))
    raws = [_raw(d, [("-1.0", "-3.0", "")]) for d in days]
    raw = pd.concat(raws, ignore_index=True)
    res = transform_weather(raw, "s", today=TODAY)
    w = res.winters.set_index("winter")
    assert w.index.tolist() == [1991]  # Nov 1990 .. Mar 1991
    assert w.loc[1991, "days_with_temp"] == 2  # Oct 31 and Apr 1 are outside the season
    assert w.loc[1991, "days_in_season"] == 151
    assert w.loc[1991, "freezing_degree_days"] == 4.0
    m = res.monthly
    assert len(m) == 7  # 1990-10 .. 1991-04, empty months included
    empty = m[(m["year"] == 1991) & (m["month"] == 1)].iloc[0]
    assert empty["days_observed"] == 0 and empty["temp_coverage"] == 0.0
    assert np.isnan(empty["freezing_degree_days"]) and np.isnan(empty["total_precip_mm"])
    assert empty["precip_coverage"] == 0.0
    _check_contracts(res)


def test_two_stations_are_kept_apart():
    raw = pd.concat(
        [
            _raw(datetime.date(2000, 1, 30), [("1.0", "-1.0", "")] * 3, station="B"),
            _raw(datetime.date(2000, 1, 30), [("-5.0", "-15.0", "")] * 3, station="A"),
        ],
        ignore_index=True,
    )
    res = transform_weather(raw, "s", today=TODAY, coverage_threshold=0.0)
    assert res.quarantine.empty  # same dates, different stations: not duplicates
    assert res.daily["station_id"].tolist() == ["A"] * 3 + ["B"] * 3
    m = res.monthly.set_index(["station_id", "month"])
    assert m.loc[("A", 1), "days_below_minus10"] == 2 and m.loc[("B", 1), "days_below_minus10"] == 0
    assert m.loc[("B", 2), "freeze_thaw_cycles"] == 1 and m.loc[("A", 2), "freeze_thaw_cycles"] == 0
    assert res.monthly["coverage_ok"].all()


_TENTHS = st.one_of(st.none(), st.integers(-450, 400))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    days=st.lists(st.tuples(_TENTHS, _TENTHS, _TENTHS), min_size=1, max_size=75),
    start=st.dates(datetime.date(1995, 10, 1), datetime.date(1996, 3, 31)),
)
def test_indices_match_plain_loop(days, start):
    def txt(v: int | None) -> str:
        return "" if v is None else str(Decimal(v) / 10)

    temps = []
    for a, b, mean in days:
        lo, hi = (a, b) if a is None or b is None else (min(a, b), max(a, b))
        temps.append((txt(hi), txt(lo), txt(mean)))
    res = transform_weather(_raw(start, temps), "h", today=TODAY)
    assert res.quarantine.empty and len(res.daily) == len(days)

    expected: dict[tuple[int, int], dict[str, object]] = {}
    for i, (mx, mn, mean) in enumerate(temps):
        d = start + datetime.timedelta(days=i)
        e = expected.setdefault((d.year, d.month), {"fdd": Decimal(0), "n_t": 0, "n": 0, "ft": 0})
        t = Decimal(mean) if mean else (Decimal(mx) + Decimal(mn)) / 2 if mx and mn else None
        if t is not None:
            e["n_t"] += 1
            e["fdd"] += max(Decimal(0), -t)
        if mx and mn:
            e["n"] += 1
            e["ft"] += Decimal(mx) > 0 and Decimal(mn) < 0
    m = res.monthly.set_index(["year", "month"])
    for key, e in expected.items():
        row = m.loc[key]
        assert row["days_with_temp"] == e["n"]
        if e["n_t"]:
            assert row["freezing_degree_days"] == float(e["fdd"])
            assert row["freezing_degree_days"] >= 0
        else:
            assert np.isnan(row["freezing_degree_days"])
        if e["n"]:
            assert row["freeze_thaw_cycles"] == e["ft"] <= row["days_with_temp"]
        else:
            assert np.isnan(row["freeze_thaw_cycles"])
    w = res.winters
    assert (w["freezing_degree_days"].dropna() >= 0).all()
    ft = w["freeze_thaw_cycles"]
    assert (ft.isna() | (ft <= w["days_with_temp"])).all()
    assert (w["days_with_temp"] <= w["days_in_season"]).all()
