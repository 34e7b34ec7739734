"""Any daily weather table (CSV or Excel) read through a ``weather_daily`` profile.

The profile's ``columns`` map the curated fields to the file's columns (only ``date`` is
required)::

    [[profile]]
    id = "noaa_ghcn_daily"
    kind = "weather_daily"
    format = "csv"
    temperature_unit = "F"      # "C" (default) or "F"
    precip_unit = "in"          # "mm" (default) or "in"; snow follows ("cm" or "in")
    [profile.columns]
    date = "DATE"
    station_id = "STATION"
    max_temp_c = "TMAX"
    min_temp_c = "TMIN"
    total_precip_mm = "PRCP"
    total_snow_cm = "SNOW"

:func:`read_weather_table` gives the same raw frame as
:func:`~twmb_geo.ingest.eccc.read_eccc_daily` (canonical columns, raw strings) and the
:class:`~twmb_geo.ingest.weather.WeatherFormat` (column names, date parsing, unit
conversions) that :func:`~twmb_geo.ingest.weather.transform_weather` needs, so both paths
share every check and give the same curated rows for the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputDataError
from ..io.profiles import Profile
from ..io.readers import Rejected, iter_raw, split_rejected
from .dates import read_dates
from .eccc import RAW_COLUMNS
from .weather import WeatherFormat

__all__ = ["FIELD_COLUMNS", "read_weather_table", "unit_scales"]

#: profile field -> canonical raw column of :data:`~twmb_geo.ingest.eccc.RAW_COLUMNS`
FIELD_COLUMNS: dict[str, str] = {
    "date": "date_time",
    "station_id": "station_id",
    "station_name": "station_name",
    "max_temp_c": "max_temp",
    "min_temp_c": "min_temp",
    "mean_temp_c": "mean_temp",
    "total_rain_mm": "total_rain",
    "total_snow_cm": "total_snow",
    "total_precip_mm": "total_precip",
    "snow_on_ground_cm": "snow_on_ground",
}
_TEMPERATURE = {"C": (0.0, 1.0), "F": (-32.0, 5.0 / 9.0)}
_PRECIP_MM = {"mm": 1.0, "in": 25.4}
_SNOW_CM = {"cm": 1.0, "mm": 0.1, "in": 2.54}
_MAX_LISTED = 10


def unit_scales(profile: Profile) -> dict[str, tuple[float, float]]:
    """Canonical value column -> ``(offset, factor)`` to °C, mm and cm (identity left out)."""
    scales: dict[str, tuple[float, float]] = {}
    temp = _TEMPERATURE[profile.temperature_unit]
    precip = _PRECIP_MM[profile.precip_unit]
    snow = _SNOW_CM[profile.snow_unit]
    for col, scale in (
        ("max_temp", temp),
        ("min_temp", temp),
        ("mean_temp", temp),
        ("total_rain", (0.0, precip)),
        ("total_precip", (0.0, precip)),
        ("total_snow", (0.0, snow)),
        ("snow_on_ground", (0.0, snow)),
    ):
        if scale != (0.0, 1.0):
            scales[col] = scale
    return scales


def _one_frame(
    files: Sequence[Path], profile: Profile, rejected: list[Rejected] | None
) -> pd.DataFrame:
    sink: list[Rejected] = [] if rejected is None else rejected
    frames = [
        chunk.frame for f in files for chunk in split_rejected(iter_raw(Path(f), profile), sink)
    ]
    if frames:
        return pd.concat(frames, ignore_index=True)
    # every row refused while reading: no rows, the profile's columns
    cols = dict.fromkeys([*profile.columns.values(), "source_file", "source_row"])
    return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})


def read_weather_table(
    files: Sequence[Path],
    profile: Profile,
    source_id: str,
    rejected: list[Rejected] | None = None,
) -> tuple[pd.DataFrame, WeatherFormat]:
    """Read the files of a generic ``weather_daily`` profile into the raw weather frame.

    Values stay raw strings (blank is null); unmapped value columns are null. Without a
    ``station_id`` column every row gets ``source_id`` as its station. Rows the reader
    refused are appended to ``rejected`` (dropped when it is ``None``).

    Raises
    ------
    InputDataError
        No files, a file the profile cannot read (missing columns, ...), or rows with a
        blank station id (listed by file and line).
    """
    if not files:
        raise InputDataError(f"weather profile {profile.id!r}: no files were given")
    raw = _one_frame(files, profile, rejected)
    n = len(raw)
    out = pd.DataFrame(index=pd.RangeIndex(n))
    names: dict[str, str] = {}
    for fld, col in FIELD_COLUMNS.items():
        src = profile.columns.get(fld)
        if src:
            values = raw[src].astype(object)
            out[col] = values.where(values.notna(), None).map(
                lambda v: None if v is None else str(v).strip() or None
            )
            names[col] = src
        else:
            out[col] = None
    for col in RAW_COLUMNS:
        if col not in out.columns:
            out[col] = None
    if "station_id" not in profile.columns:
        out["station_id"] = source_id
        names["station_id"] = "(source id)"
    blank = out["station_id"].isna().to_numpy()
    if blank.any():
        where = [
            f"{f} line {r}"
            for f, r in zip(raw["source_file"][blank], raw["source_row"][blank], strict=True)
        ]
        listed = ", ".join(where[:_MAX_LISTED]) + (" ..." if len(where) > _MAX_LISTED else "")
        raise InputDataError(
            f"weather profile {profile.id!r}: {int(blank.sum())} rows have a blank station id "
            f"(column {profile.columns['station_id']!r}): {listed}; fill it, or drop "
            "station_id from the profile's columns for a single-station file"
        )
    out["source_file"] = raw["source_file"].astype(str).to_numpy()
    out["source_row"] = raw["source_row"].astype(np.int64).to_numpy()
    for col in RAW_COLUMNS:
        if col != "source_row":
            out[col] = out[col].astype("str").where(out[col].notna())
    notes: list[str] = []

    def parse_date(values: pd.Series) -> pd.Series:
        # the whole column at once: one day/month order per source, as the profile says
        # (date_order, locale), else from the values, and said in a warning when guessed
        parsed = read_dates(values, profile.date_format, profile.date_order, profile.locale)
        note = parsed.decision.warning(source_id, profile.id) if parsed.decision else None
        if note:
            notes.append(note)
        return parsed.dates

    fmt = WeatherFormat(
        names=names,
        parse_date=parse_date,
        notes=notes,
        date_hint=(
            "a date" if profile.date_format == "auto" else f"date_format {profile.date_format!r}"
        ),
        scales=unit_scales(profile),
    )
    return out[list(RAW_COLUMNS)], fmt
