"""Assets: watermain and centreline line layers -> curated ``pipes`` / ``street_segments``.

Both kinds are line layers read through a profile (the City's GeoJSON copies in EPSG:4326,
its CSV copies in EPSG:2952 with the geometry as GeoJSON text, or another city's file).
Every row is checked with vectorised shapely/pandas operations; a failing row goes to
quarantine with a reason code (the first failing check, in the order of ``_PRIORITY``),
a fixable one is repaired and flagged.

Geometry (shared by both kinds):

* null or empty geometry -> ``geometry_missing``;
* geometry text a CSV reader could not parse, a geometry that is not a line (point,
  polygon), a line with zero length (all vertices coincide) or coordinates that cannot be
  transformed to EPSG:2952 -> ``geometry_invalid``;
* invalid but repairable lines (e.g. a MultiLineString with a degenerate part) are
  repaired with :func:`shapely.make_valid`, keeping the line parts -> flag
  ``geometry_repaired``; lines that cross themselves are valid OGC lines and are kept with
  the flag ``self_intersecting``; more than one part -> kept as a MultiLineString with the
  flag ``multipart``;
* a line entirely outside ``ctx.service_area`` -> ``outside_service_area``. Without a
  service area the area of use of EPSG:2952 (southern Ontario, 81-78 W) is the reference,
  so a record located in another province still fails.

Ids: a missing id -> ``id_missing``; the same id again -> ``id_duplicate`` for every later
row (the detail says whether it is an identical copy, same id and geometry, or a
conflicting record). Only rows that pass every other check take part, so a broken first
copy does not push out a good second one.

Pipes: numbers that do not parse -> ``value_unparseable`` (type, diameter, construction
year, measured length, install date); diameter <= 0 or > 3000 mm, years before 1800 or
after today's year, dates after today, negative measured length, type outside 0/1/2 ->
``value_out_of_range``. Material 'None'/empty/UNK -> null material with the flag
``material_missing``; an unknown code -> null material, flag ``material_unrecognised``
(``material_raw`` keeps the published code). Measured length differing from the geometry
length by more than 20 % and more than 5 m -> flag ``length_mismatch``. Install dates use
the profile's ``date_format`` (``epoch_ms``, a strftime pattern, or ``auto``: numbers and
long digit strings are epoch milliseconds, other text ISO 8601).

Streets: ``is_street`` comes from FEATURE_CODE_DESC (:data:`STREET_CLASSES` /
:data:`NON_STREET_CLASSES`); an unknown class falls back on the Toronto feature code
(2011xx-2018xx are road classes) and is flagged ``feature_class_unrecognised``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import shapely

from ..contracts import conform, validate_frame
from ..core.crs import (
    TARGET_CRS,
    WGS84,
    TransformInfo,
    area_of_use_bounds,
    transform_geometries,
    transform_xy,
)
from ..core.vocab import LINED_MATERIALS, MATERIALS, MISSING_MATERIAL_CODES
from ..errors import InputDataError
from ..io.profiles import Profile
from ..io.readers import RawChunk
from ._common import (
    IngestContext,
    IngestResult,
    RowChecks,
    build_quarantine,
    empty_quarantine,
    finish_result,
)
from .dates import parse_dates

__all__ = [
    "NON_STREET_CLASSES",
    "STREET_CLASSES",
    "WATERMAIN_TYPES",
    "parse_install_dates",
    "transform_pipes",
    "transform_streets",
]

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

#: FEATURE_CODE_DESC values (case-insensitive) of road classes: ``is_street`` is True.
STREET_CLASSES = frozenset(
    {
        "expressway",
        "expressway ramp",
        "major arterial",
        "major arterial ramp",
        "minor arterial",
        "minor arterial ramp",
        "collector",
        "collector ramp",
        "local",
        "laneway",
        "access road",
        "busway",
        "other",
        "other ramp",
        "pending",
    }
)
#: FEATURE_CODE_DESC values of non-street features: ``is_street`` is False.
NON_STREET_CLASSES = frozenset(
    {
        "major railway",
        "minor railway",
        "railway",
        "river",
        "creek/tributary",
        "trail",
        "walkway",
        "hydro line",
        "major shoreline",
        "minor shoreline (land locked)",
        "geostatistical line",
        "ferry route",
    }
)
#: Toronto feature codes of road classes (201100 Expressway ... 201803 Access Road).
_STREET_CODES = (201100, 201900)

_PRIORITY = (
    "id_missing",
    "geometry_missing",
    "geometry_invalid",
    "outside_service_area",
    "value_unparseable",
    "value_out_of_range",
    "id_duplicate",
)
_LINE_TYPES = (1, 5)  # shapely type ids of LineString, MultiLineString
_GEOM_NAMES = np.array(
    [
        "Point",
        "LineString",
        "LinearRing",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
        "GeometryCollection",
    ],
    dtype=object,
)
_EPOCH_TEXT = re.compile(r"[+-]?\d{9,}(\.\d*)?")


# ----------------------------------------------------------------------------- helpers


def _to_text(v: Any) -> str | None:
    """Trimmed text of a raw value; integral floats lose their '.0' (ids read as floats)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float | np.floating):
        if not math.isfinite(v):
            return None
        if float(v).is_integer():
            return str(int(v))
    t = str(v).strip()
    return t or None


_TEXT = np.frompyfunc(_to_text, 1, 1)


def _text(s: pd.Series) -> np.ndarray:
    """Object array of trimmed strings (None for blanks)."""
    out = _TEXT(s.to_numpy(dtype=object))
    return np.asarray(out, dtype=object)


def _numeric(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float array (NaN for blanks) and a mask of non-blank values that are not finite numbers."""
    num = pd.to_numeric(s.astype("string").str.strip(), errors="coerce")
    arr = np.array(num.to_numpy(dtype=float, na_value=np.nan))  # a writable copy
    bad = s.notna().to_numpy() & ~np.isfinite(arr)
    arr[bad] = np.nan
    return arr, bad


def _whole(num: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Extend ``bad`` with numbers that are not whole (a year of 1955.5)."""
    with np.errstate(invalid="ignore"):
        frac = ~np.isnan(num) & (num != np.floor(num))
    return bad | frac


def _raw(f: pd.DataFrame, profile: Profile, key: str) -> tuple[pd.Series, str]:
    """The raw column mapped to canonical field ``key`` (all None when absent) and its name."""
    name = profile.columns.get(key)
    if name and name in f:
        return f[name], name
    return pd.Series([None] * len(f), dtype=object), name or key


def _described(
    mask: np.ndarray, name: str, raw: pd.Series, message: str | np.ndarray
) -> np.ndarray:
    """Detail "<column>='<value>' <message>" for the rows in ``mask`` ('' elsewhere)."""
    out = np.full(len(mask), "", dtype=object)
    idx = np.flatnonzero(mask)
    if idx.size:
        vals = raw.to_numpy(dtype=object)[idx]
        msgs = (
            [message] * idx.size
            if isinstance(message, str)
            else np.asarray(message, dtype=object)[idx]
        )
        out[idx] = [f"{name}='{str(v)[:80]}' {m}" for v, m in zip(vals, msgs, strict=True)]
    return out


class _Problems:
    """Collect value problems per reason code so each code is added to RowChecks once."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.items: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}

    def add(
        self, code: str, mask: np.ndarray, name: str, raw: pd.Series, message: str | np.ndarray
    ) -> None:
        """Record ``code`` for the rows in ``mask``: column ``name`` holds ``raw`` values."""
        m = np.asarray(mask, dtype=bool)
        if m.any():
            self.items.setdefault(code, []).append((m, _described(m, name, raw, message)))

    def flush(self, checks: RowChecks) -> None:
        """Add one check per reason code, joining the details of a row's problems."""
        for code, items in self.items.items():
            mask = np.zeros(self.n, dtype=bool)
            text = np.full(self.n, "", dtype=object)
            for m, d in items:
                both = m & mask
                text = np.where(both, text + "; " + d, np.where(m, d, text))
                mask |= m
            checks.add(code, mask, text)


def _flag_text(flags: list[tuple[str, np.ndarray]], n: int) -> np.ndarray:
    out = np.full(n, "", dtype=object)
    for name, m in flags:
        out = np.where(m, np.where(out == "", name, out + ";" + name), out)
    return out


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


@cache
def _crs_area() -> shapely.Geometry:
    """The area of use of the target CRS as a box in its own coordinates."""
    bounds = area_of_use_bounds(TARGET_CRS)
    box = shapely.box(*bounds) if bounds else shapely.box(-1e9, -1e9, 1e9, 1e9)
    shapely.prepare(box)
    return box


def _line_parts(g: shapely.Geometry | None) -> shapely.Geometry | None:
    """The non-degenerate line parts of a repaired geometry as a MultiLineString (or None)."""
    if g is None:
        return None
    parts = shapely.get_parts(shapely.get_parts(g))
    lines = []
    for p in parts:
        tid = shapely.get_type_id(p)
        if tid == 2:  # LinearRing
            p = shapely.LineString(p.coords)
            tid = 1
        if tid == 1 and p.length > 0:
            lines.append(p)
    return shapely.MultiLineString(lines) if lines else None


# ------------------------------------------------------------------------------ geometry


@dataclass
class _Lines:
    geometry: np.ndarray  # EPSG:2952 MultiLineStrings; None where the row failed
    length: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    flags: list[tuple[str, np.ndarray]]
    info: TransformInfo | None


def _check_lines(
    chunk: RawChunk, profile: Profile, ctx: IngestContext, checks: RowChecks
) -> _Lines:
    """Geometry checks, repairs, reprojection to EPSG:2952 and the mid-line point."""
    f = chunk.frame
    n = len(f)
    if chunk.geometry is None:
        hint = " (set geometry_column for a CSV)" if profile.format == "csv" else ""
        raise InputDataError(f"{chunk.path}: profile {profile.id!r} reads no line geometry{hint}")
    if chunk.crs is None:
        raise InputDataError(
            f"{chunk.path}: profile {profile.id!r} declares no CRS for the geometry; "
            "add crs = 'EPSG:....' to the profile"
        )
    raw = np.asarray(chunk.geometry, dtype=object)
    null = shapely.is_missing(raw)
    missing = null | shapely.is_empty(raw)
    gcol = profile.geometry_column
    unreadable = np.zeros(n, dtype=bool)
    if gcol and gcol in f:
        unreadable = null & f[gcol].notna().to_numpy()
        checks.add(
            "geometry_invalid",
            unreadable,
            _described(unreadable, gcol, f[gcol], f"is not valid {profile.geometry_encoding}"),
        )
    checks.add(
        "geometry_missing", missing & ~unreadable, f"{gcol} is empty" if gcol else "no geometry"
    )
    tid = shapely.get_type_id(raw)
    present = ~missing
    linear = present & np.isin(tid, _LINE_TYPES)
    other = present & ~linear
    flat = raw.copy()
    flat[linear] = shapely.force_2d(raw[linear])
    valid = np.zeros(n, dtype=bool)
    valid[linear] = shapely.is_valid(flat[linear])
    # invalid lines and collections/rings are repaired when line parts of length > 0 survive
    fix = (linear & ~valid) | (other & np.isin(tid, (2, 7)))
    repaired = np.zeros(n, dtype=bool)
    if fix.any():
        why = shapely.is_valid_reason(flat[fix])
        fixed = np.array(
            [_line_parts(g) for g in shapely.make_valid(shapely.force_2d(raw[fix]))], dtype=object
        )
        ok = ~shapely.is_missing(fixed)
        flat[np.flatnonzero(fix)[ok]] = fixed[ok]
        repaired[np.flatnonzero(fix)[ok]] = True
        dead = np.zeros(n, dtype=bool)
        dead[np.flatnonzero(fix)[~ok]] = True
        detail = np.full(n, "", dtype=object)
        why = np.asarray(why, dtype=object)
        detail[fix] = np.where(
            linear[fix],
            "line has zero length or too few points (" + why + ")",
            "geometry is a "
            + _GEOM_NAMES[np.clip(tid[fix], 0, 7)]
            + " without a line part of length > 0",
        )
        checks.add("geometry_invalid", dead, detail)
    not_line = other & ~repaired & ~fix
    names = np.where(tid >= 0, _GEOM_NAMES[np.clip(tid, 0, 7)], "?")
    checks.add(
        "geometry_invalid", not_line, "geometry is a " + names.astype(object) + ", not a line"
    )
    cand = (linear & valid) | repaired

    geometry = np.full(n, None, dtype=object)
    length = np.full(n, np.nan)
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    multipart = np.zeros(n, dtype=bool)
    self_x = np.zeros(n, dtype=bool)
    info: TransformInfo | None = None
    idx = np.flatnonzero(cand)
    if idx.size:
        moved, info = transform_geometries(flat[idx], chunk.crs)
        parts, part_of = shapely.get_parts(moved, return_index=True)
        multi = shapely.multilinestrings(parts, indices=part_of)
        coords, coord_of = shapely.get_coordinates(multi, return_index=True)
        nonfinite = np.bincount(coord_of[~np.isfinite(coords).all(axis=1)], minlength=idx.size) > 0
        lengths = np.where(nonfinite, np.nan, shapely.length(multi))
        zero = ~nonfinite & ~(lengths > 0)
        bad_tr = np.zeros(n, dtype=bool)
        bad_tr[idx[nonfinite]] = True
        checks.add("geometry_invalid", bad_tr, f"coordinates cannot be transformed to {TARGET_CRS}")
        zero_len = np.zeros(n, dtype=bool)
        zero_len[idx[zero]] = True
        checks.add("geometry_invalid", zero_len, f"line has zero length in {TARGET_CRS}")
        good = ~nonfinite & ~zero
        area = ctx.service_area if ctx.service_area is not None else _crs_area()
        where = (
            "the service area"
            if ctx.service_area is not None
            else f"the area of use of {TARGET_CRS}"
        )
        inside = np.zeros(idx.size, dtype=bool)
        inside[good] = shapely.intersects(area, multi[good])
        outside = np.zeros(n, dtype=bool)
        outside[idx[good & ~inside]] = True
        if outside.any():
            mid = shapely.line_interpolate_point(multi[good & ~inside], 0.5, normalized=True)
            ox, oy, _ = transform_xy(shapely.get_x(mid), shapely.get_y(mid), TARGET_CRS, WGS84)
            detail = np.full(n, "", dtype=object)
            detail[outside] = [
                f"line lies entirely outside {where} (midpoint lon {x:.4f}, lat {y:.4f})"
                for x, y in zip(ox, oy, strict=True)
            ]
            checks.add("outside_service_area", outside, detail)
        ok = good & inside
        sel = idx[ok]
        geometry[sel] = multi[ok]
        length[sel] = lengths[ok]
        mid = shapely.line_interpolate_point(multi[ok], 0.5, normalized=True)
        lon[sel], lat[sel], _ = transform_xy(
            shapely.get_x(mid), shapely.get_y(mid), TARGET_CRS, WGS84
        )
        multipart[sel] = shapely.get_num_geometries(multi[ok]) > 1
        self_x[sel] = ~shapely.is_simple(multi[ok])
    flags = [
        ("multipart", multipart),
        ("geometry_repaired", repaired & ~np.isnan(length)),
        ("self_intersecting", self_x),
    ]
    if info is not None and info.ballpark:
        flags.append(("crs_ballpark", ~np.isnan(length)))
    return _Lines(geometry, length, lon, lat, flags, info)


# ---------------------------------------------------------------------------- duplicates


def _duplicates(
    ids: np.ndarray,
    geoms: np.ndarray,
    eligible: np.ndarray,
    rows: np.ndarray,
    id_col: str,
    seen: dict[str, tuple[int, shapely.Geometry]],
) -> tuple[np.ndarray, np.ndarray]:
    """Mask and detail of rows whose id was already accepted (earlier in this or a past chunk).

    ``seen`` (id -> first source row and geometry) is updated with this chunk's first rows.
    """
    n = len(ids)
    cand = eligible & pd.notna(ids)
    key = pd.Series(np.where(cand, ids, None), dtype=object)
    within = cand & key.duplicated(keep="first").to_numpy()
    prior = cand & key.isin(list(seen)).to_numpy() if seen else np.zeros(n, dtype=bool)
    dup = within | prior
    first = np.flatnonzero(cand & ~dup)
    firsts = dict(
        zip(ids[first], zip(rows[first].tolist(), geoms[first], strict=True), strict=True)
    )
    detail = np.full(n, "", dtype=object)
    for i in np.flatnonzero(dup):  # duplicates are rare: describe each one
        k = ids[i]
        row0, g0 = seen[k] if k in seen else firsts[k]
        same = bool(shapely.equals_exact(g0, geoms[i], tolerance=1e-3))
        what = (
            "an identical record (same id and geometry)"
            if same
            else "the same id with a different geometry"
        )
        detail[i] = f"{id_col}={k!r} is {what} as row {row0}; the first row is kept"
    seen.update(firsts)
    return dup, detail


# ---------------------------------------------------------------------------- attributes

_Attributes = Callable[
    [pd.DataFrame, Profile, IngestContext, _Problems, np.ndarray],
    tuple[dict[str, Any], list[tuple[str, np.ndarray]]],
]


def _pipe_attributes(
    f: pd.DataFrame, profile: Profile, ctx: IngestContext, probs: _Problems, length: np.ndarray
) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    this_year = ctx.today.year

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
    dia_missing = np.isnan(dia) & ~bad

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

    raw, name = _raw(f, profile, "measured_length_m")
    measured, bad = _numeric(raw)
    probs.add("value_unparseable", bad, name, raw, "is not a number")
    probs.add("value_out_of_range", measured < 0, name, raw, "is negative")

    raw, _ = _raw(f, profile, "material")
    material_raw = _text(raw)
    code = pd.Series(material_raw, dtype=object).map(str.upper, na_action="ignore")
    mat_missing = (code.isna() | code.isin(MISSING_MATERIAL_CODES)).to_numpy()
    known = code.isin(list(MATERIALS)).to_numpy()
    material = np.where(known, code.to_numpy(dtype=object), None)
    material_desc = np.array([MATERIALS.get(m) if m else None for m in material], dtype=object)

    date_year = dates.dt.year.to_numpy(dtype=float, na_value=np.nan)
    has_cyear = ~np.isnan(cyear)
    install_year = np.where(has_cyear, cyear, date_year)
    year_source = np.where(
        has_cyear, "construction_year", np.where(np.isnan(date_year), None, "install_date")
    ).astype(object)
    year_source[pd.isna(year_source)] = None

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
        "material": material,
        "material_raw": material_raw,
        "material_desc": material_desc,
        "lined": np.isin(material.astype(str), list(LINED_MATERIALS)),
        "diameter_mm": dia,
        "install_date": dates.to_numpy(),
        "install_year": install_year,
        "install_year_source": year_source,
        "measured_length_m": measured,
        "location_desc": _text(_raw(f, profile, "location_desc")[0]),
        "removal_year": ryear,
        "status": np.where(np.isnan(ryear), "active", "abandoned").astype(object),
    }
    flags = [
        ("material_missing", mat_missing),
        ("material_unrecognised", ~mat_missing & ~known),
        ("diameter_missing", dia_missing),
        ("install_year_missing", np.isnan(install_year)),
        ("length_mismatch", mismatch),
    ]
    return cols, flags


def _street_attributes(
    f: pd.DataFrame, profile: Profile, ctx: IngestContext, probs: _Problems, length: np.ndarray
) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    n = len(f)
    raw, name = _raw(f, profile, "feature_code")
    code, bad = _numeric(raw)
    bad = _whole(code, bad)
    probs.add("value_unparseable", bad, name, raw, "is not a feature code")
    probs.add("value_out_of_range", np.abs(code) >= 2**31, name, raw, "is too large")
    desc = _text(_raw(f, profile, "feature_code_desc")[0])
    norm = pd.Series(desc, dtype=object).map(str.casefold, na_action="ignore")
    street = norm.isin(list(STREET_CLASSES)).to_numpy()
    non_street = norm.isin(list(NON_STREET_CLASSES)).to_numpy()
    unknown = ~street & ~non_street
    with np.errstate(invalid="ignore"):
        by_code = (code >= _STREET_CODES[0]) & (code < _STREET_CODES[1])
    if "feature_code_desc" not in profile.columns and "feature_code" not in profile.columns:
        # a plain street file: nothing says otherwise
        is_street = np.ones(n, dtype=bool)
        unknown = np.zeros(n, dtype=bool)
    else:
        is_street = np.where(unknown, by_code, street)
    cols: dict[str, Any] = {
        "linear_name_full": _text(_raw(f, profile, "linear_name_full")[0]),
        "feature_code": np.where(bad | (np.abs(code) >= 2**31), np.nan, code),
        "feature_code_desc": desc,
        "is_street": is_street.astype(bool),
        "from_node": _text(_raw(f, profile, "from_node")[0]),
        "to_node": _text(_raw(f, profile, "to_node")[0]),
        "jurisdiction": _text(_raw(f, profile, "jurisdiction")[0]),
        "status": _text(_raw(f, profile, "status")[0]),
    }
    return cols, [("feature_class_unrecognised", unknown)]


# -------------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class _Spec:
    kind: str
    table: str
    id_field: str
    key: str
    attributes: _Attributes


_PIPES = _Spec("pipes", "pipes", "asset_id", "pipe_id", _pipe_attributes)
_STREETS = _Spec("streets", "street_segments", "centreline_id", "segment_id", _street_attributes)


def _transform_lines(
    chunks: Iterable[RawChunk], source_id: str, profile: Profile, ctx: IngestContext, spec: _Spec
) -> IngestResult:
    if profile.kind != spec.kind:
        raise InputDataError(
            f"profile {profile.id!r} is of kind {profile.kind!r}, not {spec.kind!r}"
        )
    schema = f"curated/{spec.table}"
    id_col = profile.columns[spec.id_field]
    frames: list[pd.DataFrame] = []
    quarantined: list[pd.DataFrame] = []
    rows_in = 0
    seen: dict[str, tuple[int, shapely.Geometry]] = {}
    infos: dict[str, TransformInfo] = {}
    flag_counts: dict[str, int] = {}
    for chunk in chunks:
        f = chunk.frame
        n = len(f)
        rows_in += n
        if n == 0:
            continue
        checks = RowChecks(n)
        ids = _text(f[id_col]) if id_col in f else np.full(n, None, dtype=object)
        checks.add("id_missing", pd.isna(ids), f"{id_col} is empty")
        lines = _check_lines(chunk, profile, ctx, checks)
        if lines.info is not None:
            infos.setdefault(lines.info.source_crs, lines.info)
        probs = _Problems(n)
        cols, attr_flags = spec.attributes(f, profile, ctx, probs, lines.length)
        probs.flush(checks)
        rows = f["source_row"].to_numpy(dtype=np.int64)
        dup, dup_detail = _duplicates(ids, lines.geometry, ~checks.failed, rows, id_col, seen)
        checks.add("id_duplicate", dup, dup_detail)
        checks.order(_PRIORITY)
        bad = checks.failed
        if bad.any():
            reasons, details = checks.lists()
            # a CSV keeps its geometry text in the frame: quarantine it as published
            raw_geom = (
                None
                if (profile.geometry_column and profile.geometry_column in f)
                else chunk.geometry
            )
            quarantined.append(
                build_quarantine(
                    source_id,
                    f.loc[bad],
                    reasons,
                    details,
                    None if raw_geom is None else raw_geom[bad],
                )
            )
        keep = ~bad
        flags = [*lines.flags, *attr_flags]
        for name, m in flags:
            c = int(np.count_nonzero(m & keep))
            if c:
                flag_counts[name] = flag_counts.get(name, 0) + c
        acc = np.nan
        if lines.info is not None and lines.info.accuracy_m is not None:
            acc = lines.info.accuracy_m
        out = {spec.key: ids[keep]}
        out.update({k: np.asarray(v)[keep] for k, v in cols.items()})
        out.update(
            {
                "length_m": lines.length[keep],
                "centroid_lon": lines.lon[keep],
                "centroid_lat": lines.lat[keep],
                "coord_accuracy_m": np.full(int(keep.sum()), acc, dtype=float),
                "flags": _flag_text(flags, n)[keep],
                "source_id": np.full(int(keep.sum()), source_id, dtype=object),
                "source_file": f["source_file"].to_numpy(dtype=object)[keep],
                "source_row": rows[keep],
                "geometry": shapely.to_wkb(lines.geometry[keep]),
            }
        )
        frames.append(pd.DataFrame(out))
    if rows_in == 0:
        raise InputDataError(f"source {source_id!r}: no rows were read (profile {profile.id!r})")
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values([spec.key, "source_file", "source_row"], kind="stable")
    df = conform(df, schema)
    validate_frame(df, schema)
    quarantine = pd.concat(quarantined, ignore_index=True) if quarantined else empty_quarantine()
    crs_records: list[dict[str, Any]] = []
    warnings: list[str] = []
    for info in infos.values():
        crs_records.append({"source_id": source_id, "pair": "geometry", **info.to_dict()})
        if info.ballpark or (info.accuracy_m or 0) > 1:
            warnings.append(
                f"source {source_id!r}: {info.source_crs} -> {info.target_crs} "
                f"uses {info.description!r} "
                f"(accuracy {info.accuracy_m if info.accuracy_m is not None else 'unknown'} m; "
                f"missing datum grids: {', '.join(info.missing_grids) or 'none'})"
            )
    if df.empty:
        warnings.append(f"source {source_id!r}: no {spec.table} row was accepted (see quarantine)")
    if len(quarantine):
        counts = quarantine["reason"].value_counts()
        warnings.append(
            f"source {source_id!r}: {len(quarantine)} of {rows_in} rows quarantined: "
            + ", ".join(f"{k}={int(counts[k])}" for k in sorted(counts.index))
        )
    return finish_result(
        source_id,
        spec.kind,
        {spec.table: df},
        quarantine,
        rows_in,
        warnings,
        crs_records,
        flag_counts,
    )


def transform_pipes(
    chunks: Iterable[RawChunk], source_id: str, profile: Profile, ctx: IngestContext
) -> IngestResult:
    """Validate raw watermain chunks into the curated ``pipes`` table and quarantine rows.

    ``profile`` is a ``pipes`` profile; its ``date_format`` parses the install date. The
    result's table is ``"pipes"``, sorted by ``pipe_id``, conformed to and validated
    against ``schemas/curated/pipes.json``; rows in = accepted + quarantined.
    """
    return _transform_lines(chunks, source_id, profile, ctx, _PIPES)


def transform_streets(
    chunks: Iterable[RawChunk], source_id: str, profile: Profile, ctx: IngestContext
) -> IngestResult:
    """Validate raw centreline chunks into the curated ``street_segments`` table and quarantine.

    ``profile`` is a ``streets`` profile. The table is sorted by ``segment_id``, conformed
    to and validated against ``schemas/curated/street_segments.json``.
    """
    return _transform_lines(chunks, source_id, profile, ctx, _STREETS)
