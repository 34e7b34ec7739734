"""Dates: the day/month order settled per source, never guessed value by value."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import twmb_geo as tw
from twmb_geo.core.locales import locale_date_order
from twmb_geo.errors import ConfigError
from twmb_geo.ingest.dates import decide_order, order_evidence, parse_dates, read_dates
from twmb_geo.ingest.pipes import parse_install_dates
from twmb_geo.io.profiles import parse_profile

TODAY = dt.date(2026, 11, 25)
_dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31))


def _text(values: list[str]) -> pd.Series:
    return pd.Series(values, dtype=object)


def _days(series: pd.Series) -> list[str | None]:
    return [None if pd.isna(d) else d.strftime("%Y-%m-%d") for d in series]


# ------------------------------------------------------------------ property tests


@settings(max_examples=40, deadline=None)
@given(
    st.lists(_dates, min_size=1, max_size=40),
    st.sampled_from(["%d/%m/%Y", "%m/%d/%Y", "%d-%m-%y", "%m.%d.%Y %H:%M"]),
)
def test_auto_round_trips_when_one_value_settles_the_order(dates, fmt) -> None:
    day_first = fmt.startswith("%d")
    # one unambiguous value (day 25) settles the order for the whole column
    settle = dt.date(2001, 3, 25)
    values = [d.strftime(fmt) for d in [*dates, settle]]
    out, missing, bad = parse_dates(_text(values), "auto")
    assert not missing.any() and not bad.any()
    want = [*dates, settle]
    if "%y" in fmt:  # two-digit years pivot as strptime does
        want = [dt.datetime.strptime(v, fmt).date() for v in values]
    assert [t.date() for t in out] == want
    p = read_dates(_text(values), "auto")
    assert p.decision is not None and p.decision.order == ("dmy" if day_first else "mdy")
    assert p.decision.basis == "evidence"


@given(st.lists(st.one_of(st.none(), st.text(max_size=12), _dates.map(str)), max_size=30))
def test_every_value_is_parsed_missing_unparseable_or_conflicting(values) -> None:
    p = read_dates(pd.Series(values, dtype=object), "auto")
    parsed = p.dates.notna().to_numpy()
    total = parsed.astype(int) + p.missing + p.unparseable + p.conflict
    assert np.all(total == 1)


# ------------------------------------------------------------------ decisions


def test_majority_evidence_decides_and_contradicting_values_conflict() -> None:
    values = ["25/03/2015", "13/01/2016", "03/04/2015", "12/25/2015", "31/02/2015", None]
    p = read_dates(_text(values), "auto")
    assert p.decision is not None and p.decision.order == "dmy"
    assert _days(p.dates) == ["2015-03-25", "2016-01-13", "2015-04-03", None, None, None]
    assert p.conflict.tolist() == [False, False, False, True, False, False]
    assert p.unparseable.tolist() == [False] * 4 + [True, False]
    assert p.missing.tolist() == [False] * 5 + [True]
    w = p.decision.warning("src", "prof")
    assert w == (
        "source 'src': dates read day-first (dd/mm/yyyy) from 2 unambiguous values; "
        "1 ambiguous read the same way; 1 contradicting quarantined (date_order_conflict)"
    )


def test_all_ambiguous_reads_month_first_with_a_warning() -> None:
    p = read_dates(_text(["03/04/2015", "05/06/2015", "07/07/2015"]), "auto")
    assert _days(p.dates) == ["2015-03-04", "2015-05-06", "2015-07-07"]
    assert p.decision is not None and p.decision.basis == "default"
    w = p.decision.warning("src", "my_city")
    assert w is not None
    assert "2 ambiguous" in w and "'03/04/2015'" in w and "could not be determined" in w
    assert 'date_order = "dmy"' in w and "'my_city'" in w


@pytest.mark.parametrize(
    ("locale", "order", "want"),
    [
        ("en_GB", "dmy", "2015-04-03"),
        ("en-us", "mdy", "2015-03-04"),
        ("pt_BR", "dmy", "2015-04-03"),
    ],
)
def test_locale_decides_when_every_value_is_ambiguous(locale, order, want) -> None:
    p = read_dates(_text(["03/04/2015"]), "auto", locale=locale)
    assert p.decision is not None and (p.decision.order, p.decision.basis) == (order, "locale")
    assert _days(p.dates) == [want]
    assert "by locale" in (p.decision.warning("s", "p") or "")


def test_evidence_beats_locale_and_date_order_beats_evidence() -> None:
    ev = order_evidence(_text(["25/03/2015", "03/04/2015"]))
    assert (ev.day_first, ev.month_first, ev.ambiguous) == (1, 0, 1)
    assert decide_order(ev, locale="en_US").order == "dmy"
    declared = decide_order(ev, "mdy", locale="en_GB")
    assert (declared.order, declared.basis) == ("mdy", "date_order")
    p = read_dates(_text(["25/03/2015", "03/04/2015"]), "auto", order="mdy")
    assert p.conflict.tolist() == [True, False]
    assert _days(p.dates) == [None, "2015-03-04"]


def test_ymd_order_and_year_first_values() -> None:
    p = read_dates(_text(["15/03/04", "2015/03/04", "03/04/2015"]), "auto", order="ymd")
    assert _days(p.dates) == ["2015-03-04", "2015-03-04", None]
    assert p.conflict.tolist() == [False, False, True]
    # a 4-digit first field is a year whatever the order, and settles nothing
    q = read_dates(_text(["2015/03/04", "2015.12.25 10:00"]), "auto", order="dmy")
    assert _days(q.dates) == ["2015-03-04", "2015-12-25"]
    assert order_evidence(_text(["2015/03/04"])).total == 0


def test_iso_timestamps_numbers_and_month_names_are_not_affected() -> None:
    values = ["2015-03-04", "2015-03-04T23:59:00", "Mar 4, 2015", "4 March 2015", "1931"]
    out, _, bad = parse_dates(_text(values), "auto")
    assert _days(out) == ["2015-03-04"] * 4 + ["1931-01-01"] and not bad.any()
    assert read_dates(_text(values)).decision is None


def test_locale_table() -> None:
    assert locale_date_order("en_US") == "mdy"
    assert locale_date_order("es_MX") == "dmy" and locale_date_order("de_DE") == "dmy"
    assert locale_date_order("en_CA") is None  # both orders in use: settles nothing
    with pytest.raises(KeyError, match="unknown locale"):
        locale_date_order("xx_YY")


# ------------------------------------------------------------------ install dates


def test_install_dates_year_only_column() -> None:
    s = pd.Series([1965, "1972", 1988.0, "2001.0", None, "n/a", 2150], dtype=object)
    dates, missing, bad = parse_install_dates(s, "auto")
    years = ["1965-01-01", "1972-01-01", "1988-01-01", "2001-01-01"]
    # 2150 is not a year 1800-2100, and too small for epoch milliseconds (read so it was
    # 1970-01-01, silently): not parsed
    assert _days(dates) == [*years, None, None, None]
    assert missing.tolist() == [False] * 4 + [True, False, False]
    assert bad.tolist() == [False] * 5 + [True, True]


def test_install_date_formats() -> None:
    assert _days(parse_install_dates(pd.Series([19650704, "20010101"]), "auto")[0]) == [
        "1965-07-04",
        "2001-01-01",
    ]
    assert _days(parse_install_dates(pd.Series(["1965", 1990]), "year")[0]) == [
        "1965-01-01",
        "1990-01-01",
    ]
    assert _days(parse_install_dates(pd.Series([23743]), "excel")[0]) == ["1965-01-01"]
    assert _days(parse_install_dates(pd.Series([-157766400]), "epoch_s")[0]) == ["1965-01-01"]
    assert _days(parse_install_dates(pd.Series(["04/07/1965"]), "auto", "dmy")[0]) == ["1965-07-04"]


# ------------------------------------------------------------------ profile keys


def _profile(**extra) -> dict:
    return {
        "id": "p",
        "kind": "breaks",
        "format": "csv",
        "columns": {"break_date": "DATE"},
        "coordinates": [{"name": "wgs84", "x": "LON", "y": "LAT", "crs": "EPSG:4326"}],
        **extra,
    }


def test_profile_keys_are_validated() -> None:
    p = parse_profile(_profile(date_order="dmy", locale="fr_FR"))
    assert (p.date_order, p.locale) == ("dmy", "fr_FR")
    assert parse_profile(_profile()).date_order == "auto"
    with pytest.raises(ConfigError) as exc:
        parse_profile(_profile(date_order="dym", locale="klingon", date_format="dd/mm"))
    text = str(exc.value)
    assert "'date_order' must be one of" in text and "'dym'" in text
    assert "unknown locale 'klingon'" in text
    assert "'date_format' must be one of" in text


# ------------------------------------------------------------------ through the breaks transform


def _breaks_csv(path: Path, days: list[dt.date], fmt: str) -> Path:
    rng = np.random.default_rng(12)
    pd.DataFrame(
        {
            "DATE": [d.strftime(fmt) for d in days],
            "LON": np.round(rng.uniform(-79.5, -79.3, len(days)), 6),
            "LAT": np.round(rng.uniform(43.65, 43.75, len(days)), 6),
        }
    ).to_csv(path, index=False)
    return path


def _breaks_profile(**extra):
    return parse_profile(_profile(chunk_size=500, **extra), origin="test")


def _days_2000() -> list[dt.date]:
    rng = np.random.default_rng(5)
    days = [dt.date(1995, 1, 1) + dt.timedelta(days=int(k)) for k in rng.integers(0, 11_000, 2000)]
    # the first chunk (500 rows) holds only ambiguous days: the decision must span chunks
    low = [d for d in days if d.day <= 12]
    return low[:500] + [d for d in days if d.day > 12] + low[500:]


def test_breaks_2000_day_first_rows_none_wrong(tmp_path) -> None:
    days = _days_2000()
    assert len(days) == 2000
    path = _breaks_csv(tmp_path / "b.csv", days, "%d/%m/%Y")
    r = tw.read_source(path, _breaks_profile(), source_id="dmy_city", today=TODAY)
    assert r.rows_in == 2000 and r.accepted == 2000 and r.quarantine.empty
    got = r.tables["breaks"].sort_values("source_row")["break_date"].dt.date.tolist()
    assert got == days  # 0 wrong
    n_amb = sum(d.day <= 12 and d.day != d.month for d in days)
    n_unamb = sum(d.day > 12 for d in days)
    assert (
        f"source 'dmy_city': dates read day-first (dd/mm/yyyy) from {n_unamb:,} unambiguous "
        f"values; {n_amb:,} ambiguous read the same way; 0 contradicting quarantined"
    ) in r.warnings[0]


def test_breaks_contradicting_row_is_quarantined(tmp_path) -> None:
    days = _days_2000()[:600]
    path = _breaks_csv(tmp_path / "b.csv", days, "%d/%m/%Y")
    df = pd.read_csv(path, dtype=str)
    df.loc[10, "DATE"] = "03/25/2015"  # month-first: contradicts the source's order
    df.to_csv(path, index=False)
    r = tw.read_source(path, _breaks_profile(), source_id="s", today=TODAY)
    assert r.quarantined_by_reason == {"date_order_conflict": 1}
    row = r.quarantine.iloc[0]
    assert row["source_row"] == 11 and "03/25/2015" in row["detail"]
    assert "day-first" in row["detail"]
    assert "1 contradicting quarantined" in r.warnings[0]
    assert r.accepted == 599


def test_breaks_all_ambiguous_warns_and_date_order_silences(tmp_path) -> None:
    days = [d for d in _days_2000() if d.day <= 12][:300]
    path = _breaks_csv(tmp_path / "b.csv", days, "%d/%m/%Y")
    r = tw.read_source(path, _breaks_profile(), source_id="s", today=TODAY)
    assert any("could not be determined" in w and "date_order" in w for w in r.warnings)
    fixed = tw.read_source(path, _breaks_profile(date_order="dmy"), source_id="s", today=TODAY)
    got = fixed.tables["breaks"].sort_values("source_row")["break_date"].dt.date.tolist()
    assert got == days
    assert not any("day/month" in w or "day-first" in w for w in fixed.warnings)
    by_locale = tw.read_source(path, _breaks_profile(locale="en_AU"), source_id="s", today=TODAY)
    assert by_locale.tables["breaks"]["break_date"].dt.date.sort_values().tolist() == sorted(days)
