"""Date parsing for source columns: whatever the file holds -> day-resolution timestamps."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

__all__ = ["parse_dates"]

_EXCEL_EPOCH = pd.Timestamp("1899-12-30")


def parse_dates(
    values: pd.Series, date_format: str = "auto"
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse a raw date column.

    Parameters
    ----------
    values
        Raw values: timestamps, ``datetime``/``date`` objects, text or numbers.
    date_format
        ``"auto"`` (timestamps as is, text as ISO 8601 then other common forms, numbers as
        epoch milliseconds), ``"epoch_ms"``, ``"epoch_s"``, ``"excel"`` (serial days) or a
        ``strftime`` pattern such as ``"%d/%m/%Y"``.

    Returns
    -------
    dates, missing, unparseable
        Dates normalised to midnight (NaT where not parsed), a mask of empty values and a
        mask of non-empty values that could not be parsed.
    """
    s = values.reset_index(drop=True).astype(object)
    n = len(s)
    missing = s.isna().to_numpy()
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    is_dt = s.map(lambda v: isinstance(v, dt.date | pd.Timestamp | np.datetime64)).to_numpy(
        dtype=bool
    )
    if is_dt.any():
        out[is_dt] = _to_days(pd.to_datetime(s[is_dt], errors="coerce"))
    rest = ~is_dt & ~missing
    if rest.any():
        raw = s[rest].reset_index(drop=True)
        if date_format in ("epoch_ms", "epoch_s", "excel"):
            num = pd.to_numeric(raw, errors="coerce")
            if date_format == "excel":
                conv = _EXCEL_EPOCH + pd.to_timedelta(num, unit="D")
            else:
                unit = "ms" if date_format == "epoch_ms" else "s"
                conv = pd.to_datetime(num, unit=unit, errors="coerce")
            days = _to_days(conv)
        elif date_format == "auto":
            text = raw.astype(str).str.strip()
            days = _to_days(pd.to_datetime(text, errors="coerce", format="ISO8601"))
            num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            numeric = ~np.isnan(num) & np.isnat(days)
            if numeric.any():
                days[numeric] = _to_days(
                    pd.to_datetime(pd.Series(num[numeric]), unit="ms", errors="coerce")
                )
            left = np.isnat(days) & ~numeric
            if left.any():
                days[left] = _to_days(pd.to_datetime(text[left], errors="coerce", format="mixed"))
        else:
            days = _to_days(
                pd.to_datetime(raw.astype(str).str.strip(), errors="coerce", format=date_format)
            )
        out[rest] = days
    bad = ~missing & np.isnat(out)
    return pd.Series(out, dtype="datetime64[s]"), missing, bad


def _to_days(conv: pd.Series | pd.Index) -> np.ndarray:
    """Timestamps of any unit/timezone -> numpy ``datetime64[s]`` at midnight (NaT kept)."""
    ser = pd.Series(conv)
    if not pd.api.types.is_datetime64_any_dtype(ser.dtype):
        ser = pd.to_datetime(ser, errors="coerce")
    if getattr(ser.dt, "tz", None) is not None:
        ser = ser.dt.tz_localize(None)
    return np.array(ser.dt.floor("D").to_numpy(dtype="datetime64[s]"), copy=True)
