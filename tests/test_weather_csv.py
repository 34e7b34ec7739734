"""A daily weather CSV in any layout, through a generic ``weather_daily`` profile.

The same year of the bundled ECCC station, rewritten as a US-style file (Fahrenheit,
inches, month-first dates, its own column names), must give the same curated rows as the
ECCC path; bad rows are quarantined with the file's column names in the detail.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twmb_geo.errors import ConfigError, InputDataError
from twmb_geo.ingest.sources import read_source
from twmb_geo.io.profiles import parse_profile

ECCC_YEAR = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "toronto"
    / "weather_daily_6158350"
    / "eng-daily-01011990-12311990.csv"
)
TODAY = dt.date(2024, 1, 1)
VALUES = ("max_temp_c", "min_temp_c", "mean_temp_c", "total_rain_mm", "total_snow_cm")
VALUES += ("total_precip_mm", "snow_on_ground_cm")

US_PROFILE = {
    "id": "us_daily",
    "kind": "weather_daily",
    "format": "csv",
    "description": "a US-style daily export",
    "date_format": "%m/%d/%Y",
    "temperature_unit": "F",
    "precip_unit": "in",
    "columns": {
        "date": "DATE",
        "station_id": "STATION",
        "station_name": "NAME",
        "max_temp_c": "TMAX",
        "min_temp_c": "TMIN",
        "mean_temp_c": "TAVG",
        "total_rain_mm": "RAIN",
        "total_snow_cm": "SNOW",
        "total_precip_mm": "PRCP",
        "snow_on_ground_cm": "SNWD",
    },
}


@pytest.fixture(scope="module")
def eccc() -> pd.DataFrame:
    return read_source(ECCC_YEAR, "eccc_daily", source_id="w", today=TODAY).tables["weather_daily"]


def _us_file(daily: pd.DataFrame, path: Path) -> Path:
    """The curated rows written back in Fahrenheit and inches (full precision)."""

    def text(values: pd.Series) -> pd.Series:
        return values.map(lambda v: "" if pd.isna(v) else repr(float(v)))

    us = pd.DataFrame(
        {
            "STATION": daily["station_id"],
            "NAME": daily["station_name"],
            "DATE": pd.to_datetime(daily["date"]).dt.strftime("%m/%d/%Y"),
            "TMAX": text(daily["max_temp_c"] * 9 / 5 + 32),
            "TMIN": text(daily["min_temp_c"] * 9 / 5 + 32),
            "TAVG": text(daily["mean_temp_c"] * 9 / 5 + 32),
            "RAIN": text(daily["total_rain_mm"] / 25.4),
            "SNOW": text(daily["total_snow_cm"] / 2.54),
            "PRCP": text(daily["total_precip_mm"] / 25.4),
            "SNWD": text(daily["snow_on_ground_cm"] / 2.54),
        }
    )
    us.to_csv(path, index=False)
    return path


def test_fahrenheit_inches_give_the_eccc_values(eccc: pd.DataFrame, tmp_path: Path) -> None:
    assert len(eccc) == 365
    path = _us_file(eccc, tmp_path / "us.csv")
    res = read_source(path, parse_profile(US_PROFILE), source_id="w", today=TODAY)
    got = res.tables["weather_daily"]
    assert res.rows_in == 365 and len(res.quarantine) == 0
    assert list(got["date"]) == list(eccc["date"])
    assert list(got["station_id"]) == list(eccc["station_id"])
    for col in VALUES:
        a, b = got[col].to_numpy(float), eccc[col].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), col
        np.testing.assert_allclose(a, b, atol=1e-9, err_msg=col)
    for name in ("weather_monthly", "weather_winters"):
        mine, ref = (
            res.tables[name],
            read_source(ECCC_YEAR, "eccc_daily", source_id="w", today=TODAY).tables[name],
        )
        pd.testing.assert_frame_equal(mine, ref, check_exact=False, atol=1e-9)


def test_bad_rows_are_quarantined_with_the_files_names(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text(
        "DATE,TMAX,TMIN,PRCP\n"
        "01/02/2020,41,14,0.1\n"  # ok
        "13/45/2020,41,14,0\n"  # not a date
        "01/03/2020,140,14,0\n"  # 60 C
        "01/04/2020,41,14,-1\n"  # negative precip
        "01/05/2020,abc,14,0\n"  # not a number
        ",41,14,0\n"  # no date
        "01/02/2020,41,14,0\n",  # the same day again
        encoding="utf-8",
    )
    prof = {**US_PROFILE, "columns": {"date": "DATE", "max_temp_c": "TMAX", "min_temp_c": "TMIN"}}
    prof["columns"]["total_precip_mm"] = "PRCP"
    res = read_source(path, parse_profile(prof), source_id="st", today=TODAY)
    daily, q = res.tables["weather_daily"], res.quarantine
    assert res.rows_in == 7 and len(daily) == 1 and len(q) == 6
    assert daily["station_id"].tolist() == ["st"]  # no station column: the source id
    assert daily["max_temp_c"].iloc[0] == pytest.approx(5.0)
    assert daily["min_temp_c"].iloc[0] == pytest.approx(-10.0)
    assert daily["total_precip_mm"].iloc[0] == pytest.approx(2.54)
    assert np.isnan(daily["total_snow_cm"].iloc[0])  # unmapped: null
    by_row = dict(zip(q["source_row"], zip(q["reason"], q["detail"], strict=True), strict=True))
    assert by_row[2] == (
        "date_unparseable",
        "DATE='13/45/2020' is not a date (expected date_format '%m/%d/%Y')",
    )
    assert by_row[3][0] == "value_out_of_range" and "TMAX='140'" in by_row[3][1]
    assert "after conversion" in by_row[3][1]
    assert by_row[4] == ("value_out_of_range", "PRCP='-1' is negative")
    assert by_row[5] == ("value_unparseable", "TMAX='abc' is not a number")
    assert by_row[6] == ("date_missing", "DATE is blank")
    assert by_row[7][0] == "duplicate"


def test_blank_station_id_names_the_lines(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("STATION,DATE,TMAX\nA,2020-01-01,5\n,2020-01-02,6\n", encoding="utf-8")
    prof = {**US_PROFILE, "date_format": "auto", "temperature_unit": "C", "precip_unit": "mm"}
    prof["columns"] = {"date": "DATE", "station_id": "STATION", "max_temp_c": "TMAX"}
    with pytest.raises(InputDataError, match=r"1 rows have a blank station id .*w.csv line 2"):
        read_source(path, parse_profile(prof), source_id="w", today=TODAY)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"temperature_unit": "K"}, "'temperature_unit' must be one of ['C', 'F'], got 'K'"),
        ({"precip_unit": "cm"}, "'precip_unit' must be one of ['mm', 'in'], got 'cm'"),
        ({"snow_unit": "ft"}, "'snow_unit' must be one of ['cm', 'mm', 'in'], got 'ft'"),
        ({"columns": {"max_temp_c": "TMAX"}}, "must map the required fields ['date']"),
        ({"columns": {"date": "D", "wind": "W"}}, "fields ['wind'] that kind 'weather_daily'"),
    ],
)
def test_profile_problems(change: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_profile({**US_PROFILE, **change})
    assert needle in str(exc.value), str(exc.value)


def test_unit_keys_belong_to_weather_profiles() -> None:
    doc = {"id": "b", "kind": "breaks", "format": "csv", "temperature_unit": "F"}
    doc |= {
        "columns": {"break_date": "D"},
        "coordinates": [{"x": "X", "y": "Y", "crs": "EPSG:4326"}],
    }
    with pytest.raises(ConfigError, match="apply to kind 'weather_daily' only"):
        parse_profile(doc)


def test_snow_follows_inches_and_eccc_profile_is_unchanged() -> None:
    prof = parse_profile(US_PROFILE)
    assert (prof.temperature_unit, prof.precip_unit, prof.snow_unit) == ("F", "in", "in")
    metric = parse_profile({**US_PROFILE, "temperature_unit": "C", "precip_unit": "mm"})
    assert metric.snow_unit == "cm"
    assert parse_profile({**US_PROFILE, "snow_unit": "mm"}).snow_unit == "mm"


def test_ambiguous_dates_follow_date_order_and_a_guess_is_warned(tmp_path: Path) -> None:
    """Day-first dates that are all ambiguous (days 1-12) were read month-first silently:
    the profile's date_order was ignored and nothing said so."""
    days = [dt.date(2020, m, d) for m in (1, 2, 3) for d in (2, 5, 9)]
    path = tmp_path / "w.csv"
    path.write_text(
        "DATE,TMAX\n" + "".join(f"{d:%d/%m/%Y},{10 + k}\n" for k, d in enumerate(days)),
        encoding="utf-8",
    )
    base = {**US_PROFILE, "date_format": "auto", "temperature_unit": "C"}
    base["columns"] = {"date": "DATE", "max_temp_c": "TMAX"}
    guessed = read_source(path, parse_profile(base), source_id="st", today=TODAY)
    assert any("could not be determined" in w and "date_order" in w for w in guessed.warnings)
    told = read_source(
        path, parse_profile({**base, "date_order": "dmy"}), source_id="st", today=TODAY
    )
    assert told.tables["weather_daily"]["date"].dt.date.tolist() == days
    assert not any("day/month" in w for w in told.warnings)
