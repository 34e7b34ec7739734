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

import csv
import datetime
import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputDataError, ReconciliationError

__all__ = [
    "DISPLAY_NAMES",
    "RAW_COLUMNS",
    "REASONS",
    "WeatherResult",
    "read_eccc_daily",
    "transform_weather",
]

#: Canonical raw value columns, in output order.
RAW_VALUE_COLUMNS: tuple[str, ...] = (
    "date_time", "year", "month", "day", "data_quality",
    "max_temp", "max_temp_flag", "min_temp", "min_temp_flag", "mean_temp", "mean_temp_flag",
    "total_rain", "total_rain_flag", "total_snow", "total_snow_flag",
    "total_precip", "total_precip_flag", "snow_on_ground", "snow_on_ground_flag",
)  # fmt: skip
#: Every column of the frame returned by :func:`read_eccc_daily`.
RAW_COLUMNS: tuple[str, ...] = (
    *RAW_VALUE_COLUMNS, "station_id", "station_name", "source_file", "source_row",
)  # fmt: skip

#: ECCC header text of each canonical column (used in messages).
DISPLAY_NAMES: dict[str, str] = {
    "date_time": "Date/Time",
    "year": "Year",
    "month": "Month",
    "day": "Day",
    "data_quality": "Data Quality",
    "max_temp": "Max Temp (°C)",
    "max_temp_flag": "Max Temp Flag",
    "min_temp": "Min Temp (°C)",
    "min_temp_flag": "Min Temp Flag",
    "mean_temp": "Mean Temp (°C)",
    "mean_temp_flag": "Mean Temp Flag",
    "total_rain": "Total Rain (mm)",
    "total_rain_flag": "Total Rain Flag",
    "total_snow": "Total Snow (cm)",
    "total_snow_flag": "Total Snow Flag",
    "total_precip": "Total Precip (mm)",
    "total_precip_flag": "Total Precip Flag",
    "snow_on_ground": "Snow on Grnd (cm)",
    "snow_on_ground_flag": "Snow on Grnd Flag",
    "station_id": "Climate ID",
    "station_name": "Station Name",
}
#: Columns a file must have; data quality and flag columns are optional (blank if absent).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "date_time", "year", "month", "day", "max_temp", "min_temp", "mean_temp",
    "total_rain", "total_snow", "total_precip", "snow_on_ground",
)  # fmt: skip

#: Row-check reason codes, in priority order (``reason`` is the first that fails).
REASONS: tuple[str, ...] = (
    "date_unparseable", "date_missing", "date_future", "duplicate",
    "value_unparseable", "value_out_of_range",
)  # fmt: skip

TEMP_MIN_C = -60.0
TEMP_MAX_C = 50.0
MIN_MAX_TOLERANCE_C = 0.05
#: Sums are rounded to this many decimals: exact for ECCC's 0.1 resolution, and free of
#: float summation noise, so they equal a plain decimal sum.
SUM_DECIMALS = 3
WINTER_MONTHS = (11, 12, 1, 2, 3)

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
MONTHLY_COLUMNS: tuple[str, ...] = (
    "station_id", "year", "month", "days_in_month", "days_observed", "days_with_temp",
    "temp_coverage", "coverage_ok", "freezing_degree_days", "freeze_thaw_cycles",
    "days_below_minus10", "min_temp_c", "mean_temp_c", "total_precip_mm", "total_rain_mm",
    "total_snow_cm", "precip_coverage",
)  # fmt: skip
WINTER_COLUMNS: tuple[str, ...] = (
    "station_id", "winter", "days_in_season", "days_with_temp", "temp_coverage", "coverage_ok",
    "freezing_degree_days", "freeze_thaw_cycles", "days_below_minus10", "min_temp_c",
    "total_snow_cm", "total_precip_mm",
)  # fmt: skip
QUARANTINE_COLUMNS: tuple[str, ...] = (
    "source_id", "source_file", "source_row", "reason", "reasons", "detail", "raw_record",
)  # fmt: skip

_MAX_LISTED = 10


# --------------------------------------------------------------------------- reading


def _header_key(text: str) -> str:
    """Normalise a header cell: ASCII letters/digits only, so any degree-sign encoding
    (``°``, ``Â°``, ``º``, ``?``, U+FFFD) and punctuation compare equal."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


_COLUMN_KEYS: dict[str, str] = {_header_key(disp): canon for canon, disp in DISPLAY_NAMES.items()}
_COLUMN_KEYS[_header_key("Climate Identifier")] = "station_id"
_PREAMBLE_KEYS = {
    _header_key("Climate Identifier"): "station_id",
    _header_key("Climate ID"): "station_id",
    _header_key("Station Name"): "station_name",
}
_DATE_KEY = _header_key("Date/Time")


def _decode(data: bytes) -> str:
    """Decode file bytes: UTF-8 (BOM optional), UTF-16 with BOM, else cp1252, else latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _line_list(lines: Sequence[int], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    more = len(lines) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def _read_one(path: Path) -> tuple[pd.DataFrame | None, list[str]]:
    """Read one file; return (frame, []) or (None, problems)."""
    if not path.exists():
        return None, ["file does not exist"]
    if not path.is_file():
        return None, ["is not a file"]
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, [f"cannot be read: {exc}"]
    text = _decode(data).lstrip("\ufeff")
    if not text.strip():
        return None, ["file is empty"]
    lines = re.split(r"\r\n|\r|\n", text)

    header_idx = next(
        (
            i
            for i, line in enumerate(lines)
            if "date" in line.lower()
            and _DATE_KEY in {_header_key(c) for c in next(csv.reader([line]), [])}
        ),
        None,
    )
    if header_idx is None:
        return None, [
            "no header row with a 'Date/Time' column found; "
            "is this an ECCC daily climate CSV (eng-daily or bulk format)?"
        ]

    preamble: dict[str, str] = {}
    for row in csv.reader(lines[:header_idx]):
        if len(row) >= 2 and _header_key(row[0]) in _PREAMBLE_KEYS:
            preamble.setdefault(_PREAMBLE_KEYS[_header_key(row[0])], row[1].strip())

    header = next(csv.reader([lines[header_idx]]))
    positions: dict[str, int] = {}
    for pos, name in enumerate(header):
        canon = _COLUMN_KEYS.get(_header_key(name))
        if canon is not None:
            positions.setdefault(canon, pos)

    problems: list[str] = []
    missing = [DISPLAY_NAMES[c] for c in REQUIRED_COLUMNS if c not in positions]
    if missing:
        problems.append(
            f"missing required columns: {', '.join(missing)} (header on line {header_idx + 1})"
        )
    if "station_id" not in positions and not preamble.get("station_id"):
        problems.append(
            "no station identifier: neither a 'Climate Identifier' preamble line "
            "nor a 'Climate ID' column"
        )

    body = lines[header_idx + 1 :]
    rows = list(csv.reader(body))
    if len(rows) != len(body):
        odd = np.flatnonzero(pd.Series(body, dtype=object).str.count('"').to_numpy() % 2 == 1)
        problems.append(
            "a quoted field spans several lines, so rows cannot be matched to line numbers; "
            f"lines with an odd number of '\"': {_line_list((odd + header_idx + 2).tolist())}"
        )
        return None, problems
    keep = (pd.Series(body, dtype=object).str.strip(' \t,"') != "").to_numpy(dtype=bool)
    line_no = (np.arange(len(body), dtype=np.int64) + header_idx + 2)[keep]
    if not keep.any():
        problems.append(f"no data rows after the header on line {header_idx + 1}")
        return None, problems
    # transpose with padding (short rows get None), then back: one row per line
    cells = np.array(list(itertools.zip_longest(*rows)), dtype=object).T[keep]

    width = len(header)
    present = ~pd.isna(cells)
    n_fields = cells.shape[1] - present[:, ::-1].argmax(axis=1)
    short = line_no[n_fields < width]
    if short.size:
        problems.append(
            f"{short.size} rows have fewer than the header's {width} fields "
            f"(truncated?): lines {_line_list(short.tolist())}"
        )
    if cells.shape[1] > width:
        extra = cells[:, width:]
        filled = present[:, width:] & (np.char.strip(extra.astype(str)) != "")
        over = line_no[filled.any(axis=1)]
        if over.size:
            problems.append(
                f"{over.size} rows have more than the header's {width} fields: "
                f"lines {_line_list(over.tolist())}"
            )
    if problems:
        return None, problems

    cols = [c for c in (*RAW_VALUE_COLUMNS, "station_id", "station_name") if c in positions]
    values = cells[:, [positions[c] for c in cols]]
    values[values == ""] = None
    out = pd.DataFrame(values, columns=cols, dtype="str")
    for col in ("station_id", "station_name"):
        if col not in out.columns:
            out[col] = pd.Series(np.nan, index=out.index, dtype="str")
        if preamble.get(col):
            out[col] = out[col].fillna(preamble[col])
    out["station_id"] = out["station_id"].str.strip()
    no_station = line_no[out["station_id"].isna().to_numpy()]
    if no_station.size:
        listed = _line_list(no_station.tolist())
        return None, [f"{no_station.size} rows have a blank Climate ID: lines {listed}"]
    out["source_file"] = pd.Series(path.name, index=out.index, dtype="str")
    out["source_row"] = line_no
    return out, []


def read_eccc_daily(paths: Sequence[Path]) -> pd.DataFrame:
    """Read ECCC daily climate CSV files into one raw frame.

    Parameters
    ----------
    paths
        Files in either ECCC layout (classic "eng-daily" with a metadata preamble, or the
        bulk layout with ``Climate ID`` columns); UTF-8, UTF-8 with BOM, cp1252 or latin-1.

    Returns
    -------
    pandas.DataFrame
        Rows in file order then row order; columns :data:`RAW_COLUMNS`. Values are raw
        strings (blank is null); ``station_id``/``station_name`` come from the preamble or
        the row; ``source_file`` is the file name and ``source_row`` the 1-based line number.

    Raises
    ------
    InputDataError
        If any file is missing, empty, has no data rows, lacks required columns or has
        rows of the wrong width. Every problem of every file is listed.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputDataError("no ECCC daily weather files were given")
    frames: list[pd.DataFrame] = []
    failures: list[tuple[Path, list[str]]] = []
    for path in paths:
        frame, problems = _read_one(path)
        if problems:
            failures.append((path, problems))
        elif frame is not None:
            frames.append(frame)
    if failures:
        if len(failures) == 1:
            message = f"ECCC daily weather file {failures[0][0]} cannot be used"
        else:
            names = ", ".join(str(p) for p, _ in failures)
            message = f"{len(failures)} ECCC daily weather files cannot be used: {names}"
        raise InputDataError(message, [f"{p}: {msg}" for p, probs in failures for msg in probs])
    raw = pd.concat(frames, ignore_index=True)
    for col in RAW_COLUMNS[:-1]:
        if col not in raw.columns:
            raw[col] = pd.Series(np.nan, index=raw.index, dtype="str")
    raw["source_row"] = raw["source_row"].astype(np.int64)
    return raw[list(RAW_COLUMNS)]


# --------------------------------------------------------------------------- checking


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


def _check_rows(
    raw: pd.DataFrame, today: datetime.date
) -> tuple[dict[str, pd.Series], list[_Detail], pd.DataFrame]:
    """Run the row checks; return masks per reason, detail makers and parsed values."""
    idx = raw.index
    needed = (
        "date_time", "year", "month", "day", *_NUMERIC,
        "max_temp_flag", "min_temp_flag", "mean_temp_flag", "station_id", "station_name",
    )  # fmt: skip
    c = {col: _clean(raw[col]).set_axis(idx) for col in needed}

    def quoted(col: str, ix: pd.Index) -> pd.Series:
        return "'" + c[col].loc[ix].fillna("") + "'"

    # --- dates
    dt_text = c["date_time"]
    date = pd.to_datetime(dt_text, format="%Y-%m-%d", errors="coerce")
    date_missing = dt_text.isna()
    not_a_date = ~date_missing & date.isna()
    disagree = pd.Series(False, index=idx)
    for part in ("year", "month", "day"):
        same = pd.to_numeric(c[part], errors="coerce") == getattr(date.dt, part)
        disagree |= date.notna() & c[part].notna() & ~same.fillna(False).astype(bool)
    valid_date = date.notna() & ~disagree
    date_future = valid_date & (date > pd.Timestamp(today))

    # --- duplicates (station + date, first in input order wins)
    station = c["station_id"].fillna("")
    key = pd.DataFrame({"s": station, "d": date}).loc[valid_date]
    duplicate = pd.Series(False, index=idx)
    duplicate[key.index[key.duplicated(keep="first").to_numpy()]] = True

    def dup_text(ix: pd.Index) -> pd.Series:
        first = (
            key.assign(f=raw["source_file"], r=raw["source_row"].astype("str"))
            .groupby(["s", "d"], sort=False)[["f", "r"]]
            .transform("first")
            .loc[ix]
        )
        return (
            "station " + station.loc[ix] + " date " + dt_text.loc[ix]
            + " already seen in " + first["f"].astype("str") + " line " + first["r"]
        )  # fmt: skip

    details: list[_Detail] = [
        (
            "date_unparseable",
            not_a_date,
            lambda ix: "Date/Time=" + quoted("date_time", ix)
            + " is not a date (expected YYYY-MM-DD)",
        ),
        (
            "date_unparseable",
            disagree,
            lambda ix: "Date/Time=" + quoted("date_time", ix) + " disagrees with Year/Month/Day="
            + quoted("year", ix) + "/" + quoted("month", ix) + "/" + quoted("day", ix),
        ),
        ("date_missing", date_missing, lambda ix: "Date/Time is blank"),
        (
            "date_future",
            date_future,
            lambda ix: "Date/Time=" + quoted("date_time", ix) + f" is after today ({today})",
        ),
        ("duplicate", duplicate, dup_text),
    ]  # fmt: skip

    # --- values
    values: dict[str, pd.Series] = {}
    unparseable = pd.Series(False, index=idx)
    for col in _NUMERIC:
        num = pd.to_numeric(c[col], errors="coerce").astype(np.float64)
        bad = c[col].notna() & ~np.isfinite(num)
        values[col] = num.where(~bad)
        unparseable |= bad
        details.append(
            (
                "value_unparseable",
                bad,
                lambda ix, col=col: DISPLAY_NAMES[col] + "=" + quoted(col, ix)
                + " is not a number",
            )
        )  # fmt: skip
    out_of_range = pd.Series(False, index=idx)
    range_details: list[_Detail] = []
    for col in _TEMPS:
        bad = (values[col] < TEMP_MIN_C) | (values[col] > TEMP_MAX_C)
        out_of_range |= bad
        range_details.append(
            (
                "value_out_of_range",
                bad,
                lambda ix, col=col: DISPLAY_NAMES[col] + "=" + quoted(col, ix)
                + f" is outside {TEMP_MIN_C:g}..{TEMP_MAX_C:g} °C",
            )
        )  # fmt: skip
    inverted = values["min_temp"] > values["max_temp"] + MIN_MAX_TOLERANCE_C
    out_of_range |= inverted
    range_details.append(
        (
            "value_out_of_range",
            inverted,
            lambda ix: "Min Temp (°C)=" + quoted("min_temp", ix)
            + " is greater than Max Temp (°C)=" + quoted("max_temp", ix),
        )
    )  # fmt: skip
    for col in _AMOUNTS:
        bad = values[col] < 0
        out_of_range |= bad
        range_details.append(
            (
                "value_out_of_range",
                bad,
                lambda ix, col=col: DISPLAY_NAMES[col] + "=" + quoted(col, ix) + " is negative",
            )
        )
    details.extend(range_details)

    masks = {
        "date_unparseable": not_a_date | disagree,
        "date_missing": date_missing,
        "date_future": date_future,
        "duplicate": duplicate,
        "value_unparseable": unparseable,
        "value_out_of_range": out_of_range,
    }
    parsed = pd.DataFrame(
        {
            "station_id": station.astype("str"),
            "station_name": c["station_name"],
            "date": date,
            **{_CURATED_VALUE[k]: v for k, v in values.items()},
            "max_temp_flag": c["max_temp_flag"],
            "min_temp_flag": c["min_temp_flag"],
            "mean_temp_flag": c["mean_temp_flag"],
        },
        index=idx,
    )
    return masks, details, parsed


# --------------------------------------------------------------------------- indices


def _daily_terms(daily: pd.DataFrame) -> pd.DataFrame:
    """Per-day terms that the monthly and winter indices sum up."""
    tmax, tmin = daily["max_temp_c"], daily["min_temp_c"]
    tmean = daily["mean_temp_c"].fillna((tmax + tmin) / 2)
    has_temp = tmax.notna() & tmin.notna()
    return pd.DataFrame(
        {
            "station_id": daily["station_id"],
            "observed": 1,
            "has_temp": has_temp.astype(np.int64),
            "has_tmean": tmean.notna().astype(np.int64),
            "has_min": tmin.notna().astype(np.int64),
            "fdd": (-tmean).clip(lower=0.0),
            "ft": (has_temp & (tmax > 0) & (tmin < 0)).astype(np.int64),
            "below": (tmin < -10).astype(np.int64),
            "tmin": tmin,
            "tmean": tmean,
            "precip": daily["total_precip_mm"],
            "rain": daily["total_rain_mm"],
            "snow": daily["total_snow_cm"],
            "has_precip": daily["total_precip_mm"].notna().astype(np.int64),
        },
        index=daily.index,
    )


_COUNT_TERMS = {
    "observed": "days_observed",
    "has_temp": "days_with_temp",
    "has_tmean": "n_tmean",
    "has_min": "n_min",
    "ft": "freeze_thaw_cycles",
    "below": "days_below_minus10",
    "has_precip": "days_with_precip",
}
_SUM_TERMS = {
    "fdd": "freezing_degree_days",
    "precip": "total_precip_mm",
    "rain": "total_rain_mm",
    "snow": "total_snow_cm",
}
_AGG_COLUMNS = (*_COUNT_TERMS.values(), *_SUM_TERMS.values(), "min_temp_c", "mean_temp_c")


def _aggregate(terms: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sum/min/mean the daily terms per key; sums of no observation are NaN."""
    g = terms.groupby(keys, sort=True)
    agg = pd.concat(
        [
            g[list(_COUNT_TERMS)].sum().rename(columns=_COUNT_TERMS),
            g[list(_SUM_TERMS)].sum(min_count=1).rename(columns=_SUM_TERMS),
            g["tmin"].min().rename("min_temp_c"),
            g["tmean"].mean().rename("mean_temp_c"),
        ],
        axis=1,
    )
    return agg.reset_index()


def _finish_indices(frame: pd.DataFrame, days_col: str, threshold: float) -> pd.DataFrame:
    """Fill empty periods, apply the NaN rules and coverage on an aggregated grid."""
    for col in ("days_observed", "days_with_temp", "n_tmean", "n_min", "days_with_precip"):
        frame[col] = frame[col].fillna(0).astype(np.int32)
    days = frame[days_col].to_numpy(dtype=np.float64)
    frame["temp_coverage"] = frame["days_with_temp"] / days
    frame["coverage_ok"] = (frame["temp_coverage"] >= threshold).astype(bool)
    frame["precip_coverage"] = frame["days_with_precip"] / days
    no_temp = frame["days_with_temp"] == 0
    frame["freezing_degree_days"] = frame["freezing_degree_days"].where(frame["n_tmean"] > 0)
    frame["freeze_thaw_cycles"] = frame["freeze_thaw_cycles"].astype(np.float64).where(~no_temp)
    frame["days_below_minus10"] = (
        frame["days_below_minus10"].astype(np.float64).where(frame["n_min"] > 0)
    )
    for col in ("freezing_degree_days", "total_precip_mm", "total_rain_mm", "total_snow_cm"):
        frame[col] = frame[col].astype(np.float64).round(SUM_DECIMALS)
    for col in ("min_temp_c", "mean_temp_c"):
        frame[col] = frame[col].astype(np.float64)
    return frame


def _month_grid(daily: pd.DataFrame) -> pd.DataFrame:
    """Every (station, year, month) between each station's first and last accepted day."""
    mi = daily["year"].astype(np.int64) * 12 + daily["month"].astype(np.int64) - 1
    span = mi.groupby(daily["station_id"]).agg(["min", "max"])
    counts = (span["max"] - span["min"] + 1).to_numpy()
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    month_index = np.repeat(span["min"].to_numpy(), counts) + offsets
    grid = pd.DataFrame(
        {
            "station_id": pd.Series(np.repeat(span.index.to_numpy(), counts), dtype="str"),
            "year": (month_index // 12).astype(np.int32),
            "month": (month_index % 12 + 1).astype(np.int32),
        }
    )
    firsts = pd.to_datetime(pd.DataFrame({"year": grid["year"], "month": grid["month"], "day": 1}))
    grid["days_in_month"] = firsts.dt.days_in_month.astype(np.int32)
    return grid


def _winter_grid(daily: pd.DataFrame) -> pd.DataFrame:
    """Every winter season overlapping each station's span, with its days inside the span."""
    span = daily.groupby("station_id")["date"].agg(["min", "max"])
    lo, hi = span["min"], span["max"]
    w_min = np.where(lo.dt.month <= 3, lo.dt.year, lo.dt.year + 1)
    w_max = np.where(hi.dt.month >= 11, hi.dt.year + 1, hi.dt.year)
    counts = np.clip(w_max - w_min + 1, 0, None)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    winter = np.repeat(w_min, counts) + offsets
    grid = pd.DataFrame(
        {
            "station_id": pd.Series(np.repeat(span.index.to_numpy(), counts), dtype="str"),
            "winter": winter.astype(np.int32),
        }
    )
    season_start = pd.to_datetime(pd.DataFrame({"year": winter - 1, "month": 11, "day": 1}))
    season_end = pd.to_datetime(pd.DataFrame({"year": winter, "month": 3, "day": 31}))
    start = np.maximum(season_start.to_numpy(), np.repeat(lo.to_numpy(), counts))
    end = np.minimum(season_end.to_numpy(), np.repeat(hi.to_numpy(), counts))
    grid["days_in_season"] = ((end - start) // np.timedelta64(1, "D") + 1).astype(np.int32)
    grid["full_days"] = ((season_end - season_start).dt.days + 1).to_numpy()
    return grid


def _indices(
    daily: pd.DataFrame, grid: pd.DataFrame, keys: list[str], days_col: str, threshold: float
) -> pd.DataFrame:
    """Aggregate daily rows onto a period grid (periods without rows get counts of 0)."""
    if daily.empty:
        out = grid.assign(**{col: np.nan for col in _AGG_COLUMNS})
    else:
        terms = _daily_terms(daily)
        for key in keys[1:]:
            terms[key] = daily[key].to_numpy()
        agg = _aggregate(terms, keys)
        agg["station_id"] = agg["station_id"].astype("str")
        out = grid.merge(agg, on=keys, how="left")
    return _finish_indices(out, days_col, threshold)


def _monthly(daily: pd.DataFrame, threshold: float) -> pd.DataFrame:
    if daily.empty:
        return _empty_monthly()
    keys = ["station_id", "year", "month"]
    out = _indices(daily, _month_grid(daily), keys, "days_in_month", threshold)
    return out[list(MONTHLY_COLUMNS)].reset_index(drop=True)


def _winters(daily: pd.DataFrame, threshold: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Winter-season indices and the (station, winter) pairs only partly inside the span."""
    grid = _winter_grid(daily) if not daily.empty else pd.DataFrame()
    if grid.empty:
        return _empty_winters(), pd.DataFrame({"station_id": [], "winter": []})
    sub = daily.loc[daily["month"].isin(WINTER_MONTHS).to_numpy()]
    sub = sub.assign(
        winter=np.where(sub["month"] >= 11, sub["year"] + 1, sub["year"]).astype(np.int32)
    )
    out = _indices(sub, grid, ["station_id", "winter"], "days_in_season", threshold)
    partial = out.loc[out["days_in_season"] < out["full_days"], ["station_id", "winter"]]
    return out[list(WINTER_COLUMNS)].reset_index(drop=True), partial


def _empty_monthly() -> pd.DataFrame:
    return pd.DataFrame(
        {
            col: pd.Series(
                dtype="str" if col == "station_id"
                else bool if col == "coverage_ok"
                else np.int32 if col in ("year", "month", "days_in_month", "days_observed",
                                         "days_with_temp")
                else np.float64
            )
            for col in MONTHLY_COLUMNS
        }
    )  # fmt: skip


def _empty_winters() -> pd.DataFrame:
    return pd.DataFrame(
        {
            col: pd.Series(
                dtype="str" if col == "station_id"
                else bool if col == "coverage_ok"
                else np.int32 if col in ("winter", "days_in_season", "days_with_temp")
                else np.float64
            )
            for col in WINTER_COLUMNS
        }
    )  # fmt: skip


# --------------------------------------------------------------------------- warnings


def _coverage_warnings(monthly: pd.DataFrame, threshold: float) -> list[str]:
    low = monthly.loc[~monthly["coverage_ok"], ["station_id", "year", "month"]]
    out: list[str] = []
    if low.empty:
        return out
    mi = low["year"].astype(np.int64) * 12 + low["month"].astype(np.int64) - 1
    new_run = (mi.diff() != 1) | (low["station_id"] != low["station_id"].shift())
    run_id = new_run.cumsum()
    runs = (
        pd.DataFrame({"s": low["station_id"], "mi": mi, "run": run_id})
        .groupby("run")
        .agg(s=("s", "first"), a=("mi", "min"), b=("mi", "max"))
    )

    def label(m: int) -> str:
        return f"{m // 12:04d}-{m % 12 + 1:02d}"

    for station, grp in runs.groupby("s", sort=True):
        texts = [
            label(a) if a == b else f"{label(a)}..{label(b)}"
            for a, b in zip(grp["a"].tolist(), grp["b"].tolist(), strict=True)
        ]
        shown = ", ".join(texts[:_MAX_LISTED])
        if len(texts) > _MAX_LISTED:
            shown += f" and {len(texts) - _MAX_LISTED} more periods"
        n = int((low["station_id"] == station).sum())
        out.append(
            f"station {station}: temperature coverage < {threshold * 100:g} % in {shown} "
            f"({n} month{'s' if n != 1 else ''})"
        )
    return out


# --------------------------------------------------------------------------- transform


def transform_weather(
    raw: pd.DataFrame,
    source_id: str,
    *,
    today: datetime.date,
    coverage_threshold: float = 0.9,
) -> WeatherResult:
    """Check raw ECCC daily rows and derive the curated daily, monthly and winter tables.

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

    masks, details, parsed = _check_rows(raw, today)
    failed = pd.DataFrame(masks)[list(REASONS)]
    bad = failed.any(axis=1).to_numpy()

    # ----- quarantine (messages are built for the failing rows only)
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
    quarantine = quarantine.reset_index(drop=True)[list(QUARANTINE_COLUMNS)]

    # ----- daily
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
    daily = daily.sort_values(["station_id", "date"], kind="stable").reset_index(drop=True)

    if rows_in != len(daily) + len(quarantine):
        raise ReconciliationError(
            f"weather source {source_id!r}: rows in {rows_in} != accepted {len(daily)} "
            f"+ quarantined {len(quarantine)}"
        )

    monthly = _monthly(daily, coverage_threshold)
    winters, partial = _winters(daily, coverage_threshold)

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

    return WeatherResult(
        daily=daily,
        monthly=monthly,
        winters=winters,
        quarantine=quarantine,
        rows_in=rows_in,
        warnings=warnings,
    )
