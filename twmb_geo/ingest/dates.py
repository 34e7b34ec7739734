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
    missing = s.isna().to_numpy()
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[s]")
    is_dt = s.map(lambda v: isinstance(v, dt.date | pd.Timestamp | np.datetime64)).to_numpy(
        dtype=bool
    )
    if is_dt.any():
        conv = pd.to_datetime(s[is_dt], errors="coerce", utc=False)
        if getattr(conv.dt, "tz", None) is not None:
            conv = conv.dt.tz_localize(None)
        out[is_dt] = conv.astype("datetime64[s]")
    rest = ~is_dt & ~missing
    if rest.any():
        raw = s[rest]
        if date_format in ("epoch_ms", "epoch_s", "excel"):
            num = pd.to_numeric(raw, errors="coerce")
            if date_format == "excel":
                conv = _EXCEL_EPOCH + pd.to_timedelta(num, unit="D")
            else:
                conv = pd.to_datetime(
                    num, unit="ms" if date_format == "epoch_ms" else "s", errors="coerce"
                )
        elif date_format == "auto":
            text = raw.astype(str).str.strip()
            num = pd.to_numeric(text, errors="coerce")
            conv = pd.to_datetime(text, errors="coerce", format="ISO8601")
            numeric = num.notna() & conv.isna()
            if numeric.any():
                conv[numeric] = pd.to_datetime(num[numeric], unit="ms", errors="coerce")
            left = conv.isna() & ~numeric
            if left.any():
                conv[left] = pd.to_datetime(text[left], errors="coerce", format="mixed")
        else:
            conv = pd.to_datetime(raw.astype(str).str.strip(), errors="coerce", format=date_format)
        out[rest] = pd.to_datetime(conv).astype("datetime64[s]")
    out = out.dt.normalize()
    bad = ~missing & out.isna().to_numpy()
    return out, missing, bad
