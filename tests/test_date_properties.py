"""Dates, every supported ``date_format`` (issue 15, case 1): generate dates, write them in
the format, read them back. Each value comes back as the same day, or is reported (missing,
unparseable, an order conflict: quarantined with a reason), never silently as another day.

``auto`` may read an all-ambiguous column (03/04/2015 ...) in the wrong day/month order, but
never silently: the decision then says why (``basis`` "default" or "locale") and warns.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

import twmb_geo as tw
from twmb_geo.ingest.dates import read_dates
from twmb_geo.io.profiles import DATE_FORMATS, parse_profile

_OK = settings(max_examples=25, deadline=None)
_days = st.dates(min_value=dt.date(1850, 1, 1), max_value=dt.date(2099, 12, 31))
_pivot_days = st.dates(min_value=dt.date(1969, 1, 1), max_value=dt.date(2068, 12, 31))
_times = st.times()
_offsets = st.sampled_from(["-05:00", "-04:00", "+00:00", "+02:00", "+05:30", "-09:30"])

#: strftime patterns a profile may give as ``date_format`` (a sample of every kind of field)
PATTERNS = [
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%d.%m.%Y",
    "%Y%m%d",
    "%d %b %Y",
    "%B %d, %Y",
    "%A %d %B %Y",
    "%b %d %Y %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%m/%d/%Y %I:%M %p",
    "%Y-%j",
    "%Y-%m-%d %H:%M:%S%z",
    "%d-%m-%y",
]

#: text ``auto`` reads without a day/month choice
AUTO_UNAMBIGUOUS = [
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%z",  # offsets mixed row by row
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y/%m/%d",
    "%Y.%m.%d %H:%M",
    "%d %b %Y",
    "%B %d, %Y",
    "%b %d %Y %I:%M %p",
]

#: numeric text ``auto`` reads in one day/month order per column
AUTO_NUMERIC = [
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d-%m-%y",
    "%m.%d.%Y %H:%M",
    "%d/%m/%Y %H:%M:%S%z",
    "%m/%d/%Y %I:%M %p",
]


def _write(day: dt.date, fmt: str, t: dt.time, offset: str) -> str:
    """``day`` at time ``t`` in ``fmt``; ``%z`` gets ``offset``."""
    stamp = dt.datetime.combine(day, t)
    return stamp.strftime(fmt.replace("%z", offset.replace(":", "")))


def _got(p) -> list[dt.date | None]:
    return [None if pd.isna(d) else d.date() for d in p.dates]


def _reconciles(p, n: int) -> None:
    """Each value is exactly one of: parsed, missing, unparseable, a conflict."""
    parsed = p.dates.notna().to_numpy()
    assert np.all(parsed.astype(int) + p.missing + p.unparseable + p.conflict == 1)
    assert len(parsed) == n


def _strptime_day(value: str, fmt: str) -> dt.date:
    return dt.datetime.strptime(value, fmt).date()


@_OK
@given(
    days=st.lists(st.tuples(_days, _times, _offsets), min_size=1, max_size=30),
    fmt=st.sampled_from(PATTERNS),
)
def test_a_strftime_pattern_reads_back_every_day(days, fmt) -> None:
    if "%y" in fmt:  # two-digit years are only one day in the strptime pivot window
        days = [(d.replace(year=1969 + d.year % 100), t, o) for d, t, o in days]
    values = [_write(d, fmt, t, o) for d, t, o in days]
    p = read_dates(pd.Series(values, dtype=object), fmt)
    _reconciles(p, len(values))
    assert _got(p) == [d for d, _, _ in days]  # the wall-clock day, whatever the offset


@_OK
@given(
    days=st.lists(st.tuples(_days, _times, _offsets), min_size=1, max_size=30),
    fmt=st.sampled_from(AUTO_UNAMBIGUOUS),
    numbers=st.lists(_days, max_size=5),
)
def test_auto_reads_unambiguous_text_and_numbers_back(days, fmt, numbers) -> None:
    values: list[object] = [_write(d, fmt, t, o) for d, t, o in days]
    # numbers: yyyymmdd as digits or an int, a year, epoch milliseconds (1970 aside)
    values += [int(d.strftime("%Y%m%d")) for d in numbers]
    values += [str(d.year) for d in numbers]
    ms = [d for d in numbers if abs((d - dt.date(1970, 1, 1)).days) > 1500]
    values += [int(pd.Timestamp(d).value // 1_000_000) + 3_600_000 for d in ms]
    want = [d for d, _, _ in days] + numbers + [dt.date(d.year, 1, 1) for d in numbers] + ms
    p = read_dates(pd.Series(values, dtype=object), "auto")
    _reconciles(p, len(values))
    assert _got(p) == want


@_OK
@given(
    days=st.lists(st.tuples(_pivot_days, _times, _offsets), min_size=1, max_size=40),
    fmt=st.sampled_from(AUTO_NUMERIC),
    locale=st.sampled_from([None, "en_US", "en_GB"]),
)
def test_auto_never_reads_a_numeric_date_silently_wrong(days, fmt, locale) -> None:
    values = [_write(d, fmt, t, o) for d, t, o in days]
    truth = [_strptime_day(v, fmt) for v in values]
    p = read_dates(pd.Series(values, dtype=object), "auto", locale=locale)
    _reconciles(p, len(values))
    got = _got(p)
    wrong = [g is not None and g != w for g, w in zip(got, truth, strict=True)]
    if any(wrong):
        # only when no value settles the order, and never without a warning
        assert p.decision is not None and p.decision.basis in ("default", "locale")
        assert p.decision.evidence.day_first == p.decision.evidence.month_first == 0
        assert p.decision.warning("s", "p") is not None
    # told the order, nothing is wrong and nothing is lost
    order = "mdy" if fmt.startswith("%m") else "dmy"
    told = read_dates(pd.Series(values, dtype=object), "auto", order=order)
    assert _got(told) == truth


@_OK
@given(
    stamps=st.lists(
        st.datetimes(min_value=dt.datetime(1850, 1, 1), max_value=dt.datetime(2099, 12, 31)),
        min_size=1,
        max_size=30,
    ),
    fmt=st.sampled_from([f for f in DATE_FORMATS if f != "auto"]),
    as_text=st.booleans(),
)
def test_numeric_keywords_read_back_every_day(stamps, fmt, as_text) -> None:
    stamps = [s.replace(microsecond=0) for s in stamps]
    ts = pd.Series(pd.to_datetime(stamps))
    if fmt == "epoch_ms":
        num = (ts - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)
    elif fmt == "epoch_s":
        num = (ts - pd.Timestamp(0)) // pd.Timedelta(seconds=1)
    elif fmt == "excel":
        num = (ts - pd.Timestamp("1899-12-30")) / pd.Timedelta(days=1)
    else:  # year
        num = ts.dt.year
    values = num.astype(str) if as_text else num.astype(object)
    p = read_dates(values.astype(object), fmt)
    _reconciles(p, len(stamps))
    assert _got(p) == [s.date() if fmt != "year" else dt.date(s.year, 1, 1) for s in stamps]


@_OK
@given(
    numbers=st.lists(
        st.one_of(
            st.integers(1, 2_958_465),  # Excel serial days (to 9999-12-31)
            st.integers(-2_208_988_800, 4_102_444_800),  # epoch seconds 1900-2100
        ),
        min_size=1,
        max_size=20,
    )
)
def test_auto_never_reads_seconds_or_serial_days_as_january_1970(numbers) -> None:
    """Under ``auto`` a small number is a year, a yyyymmdd date or unparseable; before, it
    was read as epoch milliseconds: some day in January 1970, silently."""
    p = read_dates(pd.Series(numbers, dtype=object), "auto")
    _reconciles(p, len(numbers))
    for v, g in zip(numbers, _got(p), strict=True):
        if g is None:
            continue
        year = 1800 <= v <= 2100 and g == dt.date(v, 1, 1)
        ymd = g.strftime("%Y%m%d") == str(v)
        far = abs(v) >= 1e11
        assert year or ymd or far, (v, g)


# --------------------------------------------------------------------------- through breaks

_PROFILE = {
    "id": "prop",
    "kind": "breaks",
    "format": "csv",
    "columns": {"break_date": "DATE"},
    "coordinates": [{"name": "wgs84", "x": "LON", "y": "LAT", "crs": "EPSG:4326"}],
    "checks": {"duplicate_key": []},
}


@settings(max_examples=8, deadline=None)
@given(
    days=st.lists(
        st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2025, 12, 31)),
        min_size=2,
        max_size=30,
    ),
    fmt=st.sampled_from(["%d/%m/%Y", "%Y-%m-%dT%H:%M:%S%z", "%d %b %Y"]),
    junk=st.lists(
        st.sampled_from(["", "n/a", "31/02/2015", "2015-13-45", "yesterday"]), max_size=4
    ),
)
def test_breaks_rows_in_equal_accepted_plus_quarantined(tmp_path_factory, days, fmt, junk) -> None:
    rng = np.random.default_rng(len(days))
    values = [_write(d, fmt, dt.time(23, 30), "-05:00") for d in days] + junk
    path = tmp_path_factory.mktemp("p") / "b.csv"
    pd.DataFrame(
        {
            "DATE": values,
            "LON": np.round(rng.uniform(-79.5, -79.3, len(values)), 6),
            "LAT": np.round(rng.uniform(43.65, 43.75, len(values)), 6),
        }
    ).to_csv(path, index=False)
    res = tw.read_source(path, parse_profile(_PROFILE), today=dt.date(2026, 1, 1))
    assert res.rows_in == len(values) == res.accepted + len(res.quarantine)
    got = res.tables["breaks"].set_index("source_row")["break_date"].dt.date
    assert set(got.index) <= set(range(1, len(days) + 1))  # junk never becomes a date
    if any(day != days[row - 1] for row, day in got.items()):  # only all-ambiguous, warned
        assert any("could not be determined" in w for w in res.warnings)
    assert set(res.quarantine["source_row"]) >= {len(days) + 1 + k for k in range(len(junk))}
