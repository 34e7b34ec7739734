"""Watermain attributes: type, diameter, years, install date, measured length, material."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..core.vocab import MATERIAL_CLASSES, UNKNOWN_MATERIAL, normalise_material_code
from ..io.profiles import DIAMETER_UNITS, LENGTH_UNITS, Profile
from ._common import IngestContext
from ._lines import _numeric, _Problems, _raw, _text, _whole
from .dates import parse_dates, read_dates

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


def parse_install_dates(
    values: pd.Series, date_format: str, order: str = "auto", locale: str | None = None
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse install dates with a profile ``date_format``; see :func:`~.dates.read_dates`.

    ``"auto"`` reads numbers (and digit strings) as a year when whole and 1800-2100 (a
    year-only column), as ``yyyymmdd`` when whole and 18000101-21001231, else as epoch
    milliseconds when at least 1e11 in size (smaller ones are not parsed); timestamps as they are; text as ISO 8601, then numeric dates in one
    day/month ``order``. Values only the other order makes valid count as not parsed.
    """
    return parse_dates(values, date_format, order, locale)


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
    dia = dia * DIAMETER_UNITS[profile.diameter_unit]
    probs.add("value_unparseable", bad, name, raw, "is not a number")
    probs.add(
        "value_out_of_range",
        ~np.isnan(dia) & ((dia <= 0) | (dia > MAX_DIAMETER_MM)),
        name,
        raw,
        f"is not in (0, {MAX_DIAMETER_MM:g}] mm (diameter_unit {profile.diameter_unit!r})",
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
    parsed = read_dates(raw, profile.date_format, profile.date_order, profile.locale)
    dates = parsed.dates
    probs.add(
        "value_unparseable",
        parsed.unparseable,
        name,
        raw,
        f"is not a date (date_format {profile.date_format!r})",
    )
    probs.add(
        "date_order_conflict",
        parsed.conflict,
        name,
        raw,
        parsed.decision.conflict_text if parsed.decision else "",
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
    """Material code, class, published code, description, lining and the masks.

    The published code is matched (trimmed, upper case, single spaces) against the
    profile's :attr:`~twmb_geo.io.profiles.Profile.material_map`. ``material`` is the
    normalised code when it maps to a class other than ``unknown``, else null;
    ``material_class`` is the canonical class (``unknown`` when missing or unmapped).
    """
    raw, _ = _raw(f, profile, "material")
    material_raw = _text(raw)
    book = profile.material_map
    code = np.array([normalise_material_code(v) for v in material_raw], dtype=object)
    entries = [book.get(c) if c else None for c in code]
    known = np.array([e is not None for e in entries], dtype=bool)
    cls = np.array(
        [e.material_class if e is not None else UNKNOWN_MATERIAL for e in entries], dtype=object
    )
    missing = np.asarray(pd.isna(code) | (code == "") | (known & (cls == UNKNOWN_MATERIAL)))
    named = known & ~missing
    material = np.full(len(code), None, dtype=object)
    material[named] = code[named]
    desc = np.array(
        [
            ((e.label or None) if e.label is not None else MATERIAL_CLASSES[e.material_class])
            if e is not None and n
            else None
            for e, n in zip(entries, named, strict=True)
        ],
        dtype=object,
    )
    return {
        "material": material,
        "material_raw": material_raw,
        "material_class": cls,
        "material_desc": desc,
        "lined": np.array([bool(e is not None and e.lined) for e in entries], dtype=bool),
        "missing": missing,
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
    measured = measured * LENGTH_UNITS[profile.length_unit]
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
        "material_class": mat["material_class"],
        "material_desc": mat["material_desc"],
        "lined": mat["lined"],
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
