"""Environment and Climate Change Canada (ECCC) daily climate data: read, check, summarise.

Two steps:

* :func:`read_eccc_daily` reads one or more ECCC daily CSV files, in either the classic
  "eng-daily" layout (a metadata preamble, then the table) or the newer bulk layout (no
  preamble, station columns first), saved as UTF-8 (with or without BOM), cp1252 or
  latin-1. It returns every data row as raw strings under canonical column names, with the
  file name and the 1-based line number of each row.
* :func:`transform_weather` checks each row (quarantining failures with a reason, never
  dropping a row silently), builds the curated daily table and derives winter-severity
  indices per month and per winter season (November to March).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ReconciliationError
from .eccc import DISPLAY_NAMES, RAW_COLUMNS, read_eccc_daily
from .weather_indices import (
    MONTHLY_COLUMNS,
    WINTER_COLUMNS,
    _coverage_warnings,
    _monthly,
    _winters,
)

__all__ = [
    "DAILY_COLUMNS",
    "DISPLAY_NAMES",
    "MONTHLY_COLUMNS",
    "QUARANTINE_COLUMNS",
    "RAW_COLUMNS",
    "REASONS",
    "WINTER_COLUMNS",
    "WeatherFormat",
    "WeatherResult",
    "read_eccc_daily",
    "transform_weather",
]

#: Row-check reason codes, in priority order (``reason`` is the first that fails).
REASONS: tuple[str, ...] = (
    "date_unparseable", "date_missing", "date_future", "duplicate",
    "value_unparseable", "value_out_of_range",
)  # fmt: skip

TEMP_MIN_C = -60.0
TEMP_MAX_C = 50.0
MIN_MAX_TOLERANCE_C = 0.05


_TEMPS = ("max_temp", "min_temp", "mean_temp")
_AMOUNTS = ("total_rain", "total_snow", "total_precip", "snow_on_ground")
_NUMERIC = (*_TEMPS, *_AMOUNTS)
_CURATED_VALUE = {
    "max_temp": "max_temp_c",
    "min_temp": "min_temp_c",
    "mean_temp": "mean_temp_c",
    "total_rain": "total_rain_mm",
    "total_snow": "total_snow_cm",
    "total_precip": "total_precip_mm",
    "snow_on_ground": "snow_on_ground_cm",
}
DAILY_COLUMNS: tuple[str, ...] = (
    "station_id", "station_name", "date", "year", "month", "day",
    "max_temp_c", "min_temp_c", "mean_temp_c", "max_temp_flag", "min_temp_flag", "mean_temp_flag",
    "total_rain_mm", "total_snow_cm", "total_precip_mm", "snow_on_ground_cm",
    "source_id", "source_file", "source_row",
)  # fmt: skip
QUARANTINE_COLUMNS: tuple[str, ...] = (
    "source_id", "source_file", "source_row", "reason", "reasons", "detail", "raw_record",
)  # fmt: skip


@dataclass(frozen=True)
class WeatherFormat:
    """How the raw frame's values are written: names in messages, dates and units.

    The defaults are those of ECCC files (:func:`read_eccc_daily`); a generic daily CSV
    (``ingest.weather_csv``) sets its own.

    Attributes
    ----------
    names
        Canonical raw column -> the file's column name, used in quarantine details.
    parse_date
        Raw date texts -> timestamps (NaT where unparseable); None parses ``YYYY-MM-DD``
        and checks it against the Year/Month/Day columns.
    date_hint
        What a date should look like, for the "is not a date" detail.
    scales
        Canonical value column -> ``(offset, factor)``: the value used is
        ``(raw + offset) * factor`` (e.g. Fahrenheit ``(-32, 5/9)``, inches ``(0, 25.4)``).
    notes
        Warnings ``parse_date`` leaves, such as how a day/month order was settled.
    """

    names: Mapping[str, str] = field(default_factory=lambda: dict(DISPLAY_NAMES))
    parse_date: Callable[[pd.Series], pd.Series] | None = None
    date_hint: str = "YYYY-MM-DD"
    scales: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    #: warnings ``parse_date`` leaves (how a day/month order was settled)
    notes: list[str] = field(default_factory=list)


@dataclass
class WeatherResult:
    """Output of :func:`transform_weather`.

    Attributes
    ----------
    daily, monthly, winters, quarantine
        Curated daily rows, monthly and winter-season indices, and rejected rows.
    rows_in
        Raw rows received; always ``len(daily) + len(quarantine)``.
    warnings
        Human-readable notes (coverage gaps, quarantine counts, partial winters).
    """

    daily: pd.DataFrame
    monthly: pd.DataFrame
    winters: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: int
    warnings: list[str] = field(default_factory=list)


def _clean(s: pd.Series) -> pd.Series:
    """Strip a raw column to ``str`` dtype, blank -> NaN."""
    s = pd.Series(s.astype(object).to_numpy(), dtype="str").str.strip()
    return s.where(s.str.len() > 0)


def _accumulate(parts: list[tuple[np.ndarray, pd.Series | str]], n: int, sep: str) -> np.ndarray:
    """Join, per row, the texts of the parts whose mask is true (vectorised over rows).

    Each part is (boolean mask over the ``n`` rows, text for the masked rows or one string).
    """
    out = pd.Series("", index=pd.RangeIndex(n), dtype="str")
    for mask, text in parts:
        if not mask.any():
            continue
        piece = text if isinstance(text, str) else np.asarray(text, dtype=object)
        current = out[mask]
        out[mask] = (current.where(current == "", current + sep) + piece).to_numpy()
    return out.to_numpy(dtype=object)


def _raw_json(raw: pd.DataFrame) -> list[str]:
    cols = sorted(raw.columns)
    records = raw[cols].astype(object).where(raw[cols].notna(), None).to_dict("records")
    return [
        json.dumps(rec, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        for rec in records
    ]


#: (reason, mask over all rows, function giving the message for the given failing rows)
_Detail = tuple[str, pd.Series, Callable[[pd.Index], "pd.Series | str"]]


def _quoted(c: dict[str, pd.Series], col: str, ix: pd.Index) -> pd.Series:
    """The cleaned values of ``col`` at ``ix`` in single quotes."""
    return "'" + c[col].loc[ix].fillna("") + "'"


def _value_text(
    c: dict[str, pd.Series], col: str, suffix: str, names: Mapping[str, str]
) -> Callable[[pd.Index], pd.Series]:
    """Message maker: the display name of ``col``, its quoted value and ``suffix``."""

    def text(ix: pd.Index) -> pd.Series:
        return names.get(col, col) + "=" + _quoted(c, col, ix) + suffix

    return text


@dataclass
class _Dates:
    """Parsed dates and the date-check masks."""

    text: pd.Series
    date: pd.Series
    missing: pd.Series
    not_a_date: pd.Series
    disagree: pd.Series
    valid: pd.Series
    future: pd.Series


def _check_dates(
    c: dict[str, pd.Series], idx: pd.Index, today: datetime.date, fmt: WeatherFormat
) -> _Dates:
    """Parse ``Date/Time`` and compare it with Year/Month/Day and today."""
    dt_text = c["date_time"]
    if fmt.parse_date is None:
        date = pd.to_datetime(dt_text, format="%Y-%m-%d", errors="coerce")
    else:
        date = pd.Series(pd.to_datetime(fmt.parse_date(dt_text)).to_numpy(), index=idx)
    date_missing = dt_text.isna()
    not_a_date = ~date_missing & date.isna()
    disagree = pd.Series(False, index=idx)
    for part in ("year", "month", "day"):
        same = pd.to_numeric(c[part], errors="coerce") == getattr(date.dt, part)
        disagree |= date.notna() & c[part].notna() & ~same.fillna(False).astype(bool)
    valid_date = date.notna() & ~disagree
    date_future = valid_date & (date > pd.Timestamp(today))
    return _Dates(dt_text, date, date_missing, not_a_date, disagree, valid_date, date_future)


def _date_details(
    c: dict[str, pd.Series], dates: _Dates, today: datetime.date, fmt: WeatherFormat
) -> list[_Detail]:
    """Detail makers of the date checks."""
    name = fmt.names.get("date_time", "date")
    return [
        (
            "date_unparseable",
            dates.not_a_date,
            lambda ix: name + "=" + _quoted(c, "date_time", ix)
            + f" is not a date (expected {fmt.date_hint})",
        ),
        (
            "date_unparseable",
            dates.disagree,
            lambda ix: name + "=" + _quoted(c, "date_time", ix)
            + " disagrees with Year/Month/Day=" + _quoted(c, "year", ix) + "/"
            + _quoted(c, "month", ix) + "/" + _quoted(c, "day", ix),
        ),
        ("date_missing", dates.missing, lambda ix: f"{name} is blank"),
        (
            "date_future",
            dates.future,
            lambda ix: name + "=" + _quoted(c, "date_time", ix) + f" is after today ({today})",
        ),
    ]  # fmt: skip


def _check_duplicates(
    raw: pd.DataFrame, station: pd.Series, dates: _Dates
) -> tuple[pd.Series, _Detail]:
    """Rows repeating station + date (the first in input order wins) and their detail."""
    key = pd.DataFrame({"s": station, "d": dates.date}).loc[dates.valid]
    duplicate = pd.Series(False, index=raw.index)
    duplicate[key.index[key.duplicated(keep="first").to_numpy()]] = True

    def dup_text(ix: pd.Index) -> pd.Series:
        first = (
            key.assign(f=raw["source_file"], r=raw["source_row"].astype("str"))
            .groupby(["s", "d"], sort=False)[["f", "r"]]
            .transform("first")
            .loc[ix]
        )
        return (
            "station " + station.loc[ix] + " date " + dates.text.loc[ix]
            + " already seen in " + first["f"].astype("str") + " line " + first["r"]
        )  # fmt: skip

    return duplicate, ("duplicate", duplicate, dup_text)


def _check_values(
    c: dict[str, pd.Series], idx: pd.Index, fmt: WeatherFormat
) -> tuple[dict[str, pd.Series], pd.Series, pd.Series, list[_Detail]]:
    """Parse the numeric columns; returns values, unparseable and out-of-range masks, details."""
    details: list[_Detail] = []
    values: dict[str, pd.Series] = {}
    names = fmt.names
    unparseable = pd.Series(False, index=idx)
    for col in _NUMERIC:
        num = pd.to_numeric(c[col], errors="coerce").astype(np.float64)
        bad = c[col].notna() & ~np.isfinite(num)
        offset, factor = fmt.scales.get(col, (0.0, 1.0))
        values[col] = ((num + offset) * factor).where(~bad)
        unparseable |= bad
        details.append(("value_unparseable", bad, _value_text(c, col, " is not a number", names)))
    out_of_range = pd.Series(False, index=idx)
    for col in _TEMPS:
        bad = (values[col] < TEMP_MIN_C) | (values[col] > TEMP_MAX_C)
        out_of_range |= bad
        conv = " after conversion" if col in fmt.scales else ""
        text = _value_text(c, col, f" is outside {TEMP_MIN_C:g}..{TEMP_MAX_C:g} °C{conv}", names)
        details.append(("value_out_of_range", bad, text))
    inverted = values["min_temp"] > values["max_temp"] + MIN_MAX_TOLERANCE_C
    out_of_range |= inverted
    details.append(
        (
            "value_out_of_range",
            inverted,
            lambda ix: names.get("min_temp", "min_temp") + "=" + _quoted(c, "min_temp", ix)
            + " is greater than " + names.get("max_temp", "max_temp") + "="
            + _quoted(c, "max_temp", ix),
        )
    )  # fmt: skip
    for col in _AMOUNTS:
        bad = values[col] < 0
        out_of_range |= bad
        details.append(("value_out_of_range", bad, _value_text(c, col, " is negative", names)))
    return values, unparseable, out_of_range, details


def _check_rows(
    raw: pd.DataFrame, today: datetime.date, fmt: WeatherFormat
) -> tuple[dict[str, pd.Series], list[_Detail], pd.DataFrame]:
    """Run the row checks; return masks per reason, detail makers and parsed values."""
    idx = raw.index
    needed = (
        "date_time", "year", "month", "day", *_NUMERIC,
        "max_temp_flag", "min_temp_flag", "mean_temp_flag", "station_id", "station_name",
    )  # fmt: skip
    c = {col: _clean(raw[col]).set_axis(idx) for col in needed}
    dates = _check_dates(c, idx, today, fmt)
    station = c["station_id"].fillna("")
    duplicate, dup_detail = _check_duplicates(raw, station, dates)
    values, unparseable, out_of_range, value_details = _check_values(c, idx, fmt)
    details = [*_date_details(c, dates, today, fmt), dup_detail, *value_details]
    masks = {
        "date_unparseable": dates.not_a_date | dates.disagree,
        "date_missing": dates.missing,
        "date_future": dates.future,
        "duplicate": duplicate,
        "value_unparseable": unparseable,
        "value_out_of_range": out_of_range,
    }
    parsed = pd.DataFrame(
        {
            "station_id": station.astype("str"),
            "station_name": c["station_name"],
            "date": dates.date,
            **{_CURATED_VALUE[k]: v for k, v in values.items()},
            "max_temp_flag": c["max_temp_flag"],
            "min_temp_flag": c["min_temp_flag"],
            "mean_temp_flag": c["mean_temp_flag"],
        },
        index=idx,
    )
    return masks, details, parsed


def _quarantine(
    raw: pd.DataFrame,
    source_id: str,
    masks: dict[str, pd.Series],
    details: list[_Detail],
    bad: np.ndarray,
) -> pd.DataFrame:
    """Quarantine rows of the failing rows (messages are built for those rows only)."""
    qidx = raw.index[bad]
    n_bad = len(qidx)
    reason = np.select(
        [masks[r].to_numpy()[bad] for r in REASONS], list(REASONS), default=""
    ).astype(object)
    reasons = _accumulate([(masks[r].to_numpy()[bad], r) for r in REASONS], n_bad, ";")
    detail_parts: list[tuple[np.ndarray, pd.Series | str]] = []
    for code in REASONS:
        for rcode, mask, make in details:
            sub = mask.to_numpy()[bad]
            if rcode == code and sub.any():
                detail_parts.append((sub, make(qidx[sub])))
    quarantine = pd.DataFrame(
        {
            "source_id": pd.Series(source_id, index=range(n_bad), dtype="str"),
            "source_file": raw.loc[qidx, "source_file"].astype("str").to_numpy(),
            "source_row": raw.loc[qidx, "source_row"].astype(np.int64).to_numpy(),
            "reason": pd.Series(reason, dtype="str"),
            "reasons": pd.Series(reasons, dtype="str"),
            "detail": pd.Series(_accumulate(detail_parts, n_bad, "; "), dtype="str"),
            "raw_record": pd.Series(_raw_json(raw.loc[qidx]), index=range(n_bad), dtype="str"),
        }
    )
    quarantine = quarantine.sort_values(["source_file", "source_row"], kind="stable")
    return quarantine.reset_index(drop=True)[list(QUARANTINE_COLUMNS)]


def _daily(
    raw: pd.DataFrame, parsed: pd.DataFrame, bad: np.ndarray, source_id: str
) -> pd.DataFrame:
    """The curated daily rows of the rows that passed every check."""
    ok = parsed.loc[~bad]
    date = ok["date"].astype("datetime64[s]")
    daily = pd.DataFrame(
        {
            "station_id": ok["station_id"].astype("str"),
            "station_name": ok["station_name"].astype("str"),
            "date": date,
            "year": date.dt.year.astype(np.int32),
            "month": date.dt.month.astype(np.int32),
            "day": date.dt.day.astype(np.int32),
            **{col: ok[col].astype(np.float64) for col in _CURATED_VALUE.values()},
            "max_temp_flag": ok["max_temp_flag"].astype("str"),
            "min_temp_flag": ok["min_temp_flag"].astype("str"),
            "mean_temp_flag": ok["mean_temp_flag"].astype("str"),
            "source_id": pd.Series(source_id, index=ok.index, dtype="str"),
            "source_file": raw.loc[~bad, "source_file"].astype("str"),
            "source_row": raw.loc[~bad, "source_row"].astype(np.int64),
        }
    )[list(DAILY_COLUMNS)]
    return daily.sort_values(["station_id", "date"], kind="stable").reset_index(drop=True)


def _warnings(
    rows_in: int,
    daily: pd.DataFrame,
    monthly: pd.DataFrame,
    partial: pd.DataFrame,
    quarantine: pd.DataFrame,
    coverage_threshold: float,
) -> list[str]:
    """Notes on empty output, coverage gaps, partial winters and quarantine counts."""
    warnings: list[str] = []
    if rows_in and daily.empty:
        warnings.append(f"no daily rows accepted out of {rows_in}")
    warnings.extend(_coverage_warnings(monthly, coverage_threshold))
    if not partial.empty:
        for station, grp in partial.groupby("station_id", sort=True):
            years = ", ".join(str(w) for w in grp["winter"].tolist())
            warnings.append(
                f"station {station}: winters {years} are only partly inside the data span "
                "(days_in_season counts only the days inside it)"
            )
    if len(quarantine):
        counts = quarantine["reason"].value_counts()
        by_reason = ", ".join(f"{r}={int(counts[r])}" for r in REASONS if r in counts.index)
        warnings.append(f"quarantined {len(quarantine)} of {rows_in} rows: {by_reason}")
    return warnings


def transform_weather(
    raw: pd.DataFrame,
    source_id: str,
    *,
    today: datetime.date,
    coverage_threshold: float = 0.9,
    fmt: WeatherFormat | None = None,
) -> WeatherResult:
    """Check raw daily weather rows and derive the curated daily, monthly and winter tables.

    Parameters
    ----------
    raw
        Frame from :func:`read_eccc_daily` (columns :data:`RAW_COLUMNS`).
    source_id
        Id of the source, copied to the curated and quarantine rows.
    today
        Rows dated after this day are quarantined as ``date_future``.
    coverage_threshold
        Minimum share of days with max and min temperature for ``coverage_ok``.
    fmt
        Column names, date parsing and unit conversions of the raw frame (default: ECCC's).

    Returns
    -------
    WeatherResult
        Daily rows that passed every check, monthly and winter (Nov-Mar) indices, the
        quarantined rows with reasons, the input row count and warnings.

    Raises
    ------
    ValueError
        If ``raw`` lacks columns or ``coverage_threshold`` is not in 0..1.
    ReconciliationError
        If rows in != accepted + quarantined (a bug, never expected).
    """
    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"raw weather frame lacks columns {missing}; use read_eccc_daily()")
    if not 0.0 <= coverage_threshold <= 1.0:
        raise ValueError(f"coverage_threshold must be within 0..1, got {coverage_threshold}")
    raw = raw.reset_index(drop=True)
    rows_in = len(raw)

    masks, details, parsed = _check_rows(raw, today, fmt or WeatherFormat())
    failed = pd.DataFrame(masks)[list(REASONS)]
    bad = failed.any(axis=1).to_numpy()
    quarantine = _quarantine(raw, source_id, masks, details, bad)
    daily = _daily(raw, parsed, bad, source_id)
    if rows_in != len(daily) + len(quarantine):
        raise ReconciliationError(
            f"weather source {source_id!r}: rows in {rows_in} != accepted {len(daily)} "
            f"+ quarantined {len(quarantine)}"
        )

    monthly = _monthly(daily, coverage_threshold)
    winters, partial = _winters(daily, coverage_threshold)
    warnings = _warnings(rows_in, daily, monthly, partial, quarantine, coverage_threshold)
    return WeatherResult(
        daily=daily,
        monthly=monthly,
        winters=winters,
        quarantine=quarantine,
        rows_in=rows_in,
        warnings=warnings,
    )
