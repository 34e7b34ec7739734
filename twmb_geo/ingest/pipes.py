"""Watermain attributes: type, diameter, years, install date, measured length, material."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..core.vocab import LINED_MATERIALS, MATERIALS, MISSING_MATERIAL_CODES
from ..io.profiles import Profile
from ._common import IngestContext
from ._lines import _numeric, _Problems, _raw, _text, _whole
from .dates import parse_dates

__all__ = ["WATERMAIN_TYPES", "parse_install_dates"]

#: Watermain Type code -> meaning, from the codebook (the City publishes no definitions).
WATERMAIN_TYPES: dict[int, str] = {
    0: "Distribution",
    1: "Transmission (class 1)",
    2: "Transmission (class 2)",
}
MAX_DIAMETER_MM = 5000.0  # the City lists mains up to 4500 mm
MIN_YEAR = 1800
LENGTH_MISMATCH_REL = 0.20
LENGTH_MISMATCH_M = 5.0
FOOT_M = 0.3048  # international foot

_EPOCH_TEXT = re.compile(r"[+-]?\d{9,}(\.\d*)?")


def parse_install_dates(
    values: pd.Series, date_format: str
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse install dates with a profile ``date_format``; see :func:`~.dates.parse_dates`.

    ``"auto"`` here means: numbers (and digit strings of 9 or more digits, as in a CSV
    copy) are epoch milliseconds; other values go through ``parse_dates(..., "auto")``
    (timestamps as they are, text as ISO 8601, then other common forms).
    """
    if date_format != "auto":
        return parse_dates(values, date_format)
    s = values.reset_index(drop=True).astype(object)
    is_num = s.map(
        lambda v: isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
    ).to_numpy(dtype=bool)
    txt = s.where(s.notna() & ~is_num).astype("string").str.strip()
    is_num = is_num | txt.str.fullmatch(_EPOCH_TEXT.pattern).fillna(False).to_numpy(dtype=bool)
    dates = pd.Series(pd.NaT, index=s.index, dtype="datetime64[s]")
    missing = s.isna().to_numpy()
    bad = np.zeros(len(s), dtype=bool)
    for mask, fmt in ((is_num, "epoch_ms"), (~is_num & ~missing, "auto")):
        if mask.any():
            d, _, b = parse_dates(s[mask], fmt)
            dates[mask] = d.to_numpy()
            bad[mask] = b
    return dates, missing, bad


def _type_and_diameter(
    f: pd.DataFrame, profile: Profile, probs: _Problems
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Watermain type code, diameter and the missing-diameter mask."""
    raw, name = _raw(f, profile, "watermain_type")
    wtype, bad = _numeric(raw)
    bad = _whole(wtype, bad)
    probs.add("value_unparseable", bad, name, raw, "is not a type code")
    probs.add(
        "value_out_of_range",
        ~np.isnan(wtype) & ~np.isin(wtype, list(WATERMAIN_TYPES)),
        name,
        raw,
        "is not one of 0, 1, 2",
    )

    raw, name = _raw(f, profile, "diameter_mm")
    dia, bad = _numeric(raw)
    probs.add("value_unparseable", bad, name, raw, "is not a number")
    probs.add(
        "value_out_of_range",
        ~np.isnan(dia) & ((dia <= 0) | (dia > MAX_DIAMETER_MM)),
        name,
        raw,
        f"is not in (0, {MAX_DIAMETER_MM:g}] mm",
    )
    return wtype, dia, np.isnan(dia) & ~bad


def _install(
    f: pd.DataFrame, profile: Profile, ctx: IngestContext, probs: _Problems
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Install date, install year (construction year, else the date's year) and its source."""
    this_year = ctx.today.year
    raw, name = _raw(f, profile, "construction_year")
    cyear, bad = _numeric(raw)
    bad = _whole(cyear, bad)
    probs.add("value_unparseable", bad, name, raw, "is not a year")
    probs.add(
        "value_out_of_range",
        ~np.isnan(cyear) & ((cyear < MIN_YEAR) | (cyear > this_year)),
        name,
        raw,
        f"is not in {MIN_YEAR}-{this_year}",
    )

    raw, name = _raw(f, profile, "install_date")
    dates, _, bad = parse_install_dates(raw, profile.date_format)
    probs.add(
        "value_unparseable", bad, name, raw, f"is not a date (date_format {profile.date_format!r})"
    )
    early = (dates < pd.Timestamp(f"{MIN_YEAR}-01-01")).to_numpy(dtype=bool)
    late = (dates > pd.Timestamp(ctx.today)).to_numpy(dtype=bool)
    shown = dates.dt.strftime("%Y-%m-%d").fillna("").to_numpy(dtype=object)
    probs.add(
        "value_out_of_range",
        early | late,
        name,
        raw,
        "is " + shown + f", not between {MIN_YEAR}-01-01 and today ({ctx.today})",
    )
    date_year = dates.dt.year.to_numpy(dtype=float, na_value=np.nan)
    has_cyear = ~np.isnan(cyear)
    install_year = np.where(has_cyear, cyear, date_year)
    year_source = np.full(len(install_year), None, dtype=object)
    year_source[~np.isnan(date_year)] = "install_date"
    year_source[has_cyear] = "construction_year"
    return dates, install_year, year_source


def _material(f: pd.DataFrame, profile: Profile) -> dict[str, np.ndarray]:
    """Material code, published code, description and the missing/known masks."""
    raw, _ = _raw(f, profile, "material")
    material_raw = _text(raw)
    code = pd.Series(material_raw, dtype=object).map(str.upper, na_action="ignore")
    known = code.isin(list(MATERIALS)).to_numpy()
    material = np.full(len(code), None, dtype=object)
    material[known] = code.to_numpy(dtype=object)[known]
    return {
        "material": material,
        "material_raw": material_raw,
        "material_desc": np.array(
            [MATERIALS.get(m) if m else None for m in material], dtype=object
        ),
        "missing": (code.isna() | code.isin(MISSING_MATERIAL_CODES)).to_numpy(),
        "known": known,
    }


def _removal_year(
    f: pd.DataFrame,
    profile: Profile,
    ctx: IngestContext,
    probs: _Problems,
    install_year: np.ndarray,
) -> np.ndarray:
    """Removal year, checked against today and the install year."""
    this_year = ctx.today.year
    raw, name = _raw(f, profile, "removal_year")
    ryear, bad = _numeric(raw)
    bad = _whole(ryear, bad)
    probs.add("value_unparseable", bad, name, raw, "is not a year")
    with np.errstate(invalid="ignore"):
        probs.add(
            "value_out_of_range",
            ~np.isnan(ryear) & ((ryear > this_year) | (ryear < install_year)),
            name,
            raw,
            f"is after {this_year} or before the install year",
        )
    return ryear


def _pipe_attributes(
    f: pd.DataFrame, profile: Profile, ctx: IngestContext, probs: _Problems, length: np.ndarray
) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """Curated watermain columns and quality flags; value problems go to ``probs``."""
    wtype, dia, dia_missing = _type_and_diameter(f, profile, probs)
    dates, install_year, year_source = _install(f, profile, ctx, probs)
    raw, name = _raw(f, profile, "measured_length_m")
    measured, bad = _numeric(raw)
    if getattr(profile, "length_unit", "m") == "ft":
        measured = measured * FOOT_M
    probs.add("value_unparseable", bad, name, raw, "is not a number")
    probs.add("value_out_of_range", measured < 0, name, raw, "is negative")
    mat = _material(f, profile)
    ryear = _removal_year(f, profile, ctx, probs, install_year)

    with np.errstate(invalid="ignore"):
        diff = np.abs(measured - length)
        mismatch = (diff > LENGTH_MISMATCH_REL * length) & (diff > LENGTH_MISMATCH_M)
    wt = np.where(np.isin(wtype, list(WATERMAIN_TYPES)), wtype, np.nan)
    cols: dict[str, Any] = {
        "asset_id": _text(_raw(f, profile, "asset_id")[0]),
        "watermain_type": wt,
        "watermain_type_desc": np.array(
            [WATERMAIN_TYPES.get(int(t)) if not np.isnan(t) else None for t in wt], dtype=object
        ),
        "material": mat["material"],
        "material_raw": mat["material_raw"],
        "material_desc": mat["material_desc"],
        "lined": np.isin(mat["material"].astype(str), list(LINED_MATERIALS)),
        "diameter_mm": dia,
        "install_date": dates.to_numpy(),
        "install_year": install_year,
        "install_year_source": year_source,
        "measured_length_m": measured,
        "location_desc": _text(_raw(f, profile, "location_desc")[0]),
        "street_segment_id": _text(_raw(f, profile, "street_segment_id")[0]),
        "removal_year": ryear,
        "status": np.where(np.isnan(ryear), "active", "abandoned").astype(object),
    }
    flags = [
        ("material_missing", mat["missing"]),
        ("material_unrecognised", ~mat["missing"] & ~mat["known"]),
        ("diameter_missing", dia_missing),
        ("install_year_missing", np.isnan(install_year)),
        ("length_mismatch", mismatch),
    ]
    return cols, flags
