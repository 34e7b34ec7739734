"""Shared steps of the line-layer ingests (pipes, streets).

Raw value parsing, per-row problem collection, geometry checks with repair and
reprojection, and duplicate ids across chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from ..core.crs import (
    WGS84,
    TransformInfo,
    analysis_crs,
    area_of_use_bounds,
    transform_geometries,
    transform_xy,
)
from ..core.geometry import GEOMETRY_TYPE_NAMES
from ..errors import InputDataError
from ..io.profiles import Profile
from ..io.readers import RawChunk
from ._common import IngestContext, RowChecks

_LINE_TYPES = (1, 5)  # shapely type ids of LineString, MultiLineString
_GEOM_NAMES = np.array(GEOMETRY_TYPE_NAMES, dtype=object)


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


@cache
def _crs_area(crs: str) -> shapely.Geometry:
    """The area of use of ``crs`` as a box in its own coordinates."""
    bounds = area_of_use_bounds(crs)
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


@dataclass
class _Lines:
    geometry: np.ndarray  # the analysis CRS MultiLineStrings; None where the row failed
    length: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    flags: list[tuple[str, np.ndarray]]
    info: TransformInfo | None


def _geometry_of(chunk: RawChunk, profile: Profile) -> tuple[np.ndarray, CRS]:
    """The chunk's raw geometry and its CRS; a profile that reads none, or without a CRS, is an error."""
    if chunk.geometry is None:
        hint = " (set geometry_column for a CSV)" if profile.format == "csv" else ""
        raise InputDataError(f"{chunk.path}: profile {profile.id!r} reads no line geometry{hint}")
    if chunk.crs is None:
        raise InputDataError(
            f"{chunk.path}: profile {profile.id!r} declares no CRS for the geometry; "
            "add crs = 'EPSG:....' to the profile"
        )
    return np.asarray(chunk.geometry, dtype=object), chunk.crs


def _check_missing(
    raw: np.ndarray, f: pd.DataFrame, profile: Profile, checks: RowChecks
) -> np.ndarray:
    """Checks of null, empty and unreadable geometry; returns the missing mask."""
    null = shapely.is_missing(raw)
    missing = null | shapely.is_empty(raw)
    gcol = profile.geometry_column
    unreadable = np.zeros(len(f), dtype=bool)
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
    return missing


def _repair_lines(
    raw: np.ndarray, missing: np.ndarray, checks: RowChecks
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2D lines, repaired where possible; returns geometry, candidate and repaired masks."""
    n = len(raw)
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
    return flat, (linear & valid) | repaired, repaired


def _check_outside(
    multi: np.ndarray, good: np.ndarray, idx: np.ndarray, n: int, ctx: IngestContext,
    checks: RowChecks,
) -> np.ndarray:  # fmt: skip
    """Check that good lines touch the service area; returns the inside mask over ``idx``."""
    area = ctx.service_area if ctx.service_area is not None else _crs_area(analysis_crs())
    where = (
        "the service area"
        if ctx.service_area is not None
        else f"the area of use of {analysis_crs()}"
    )
    inside = np.zeros(idx.size, dtype=bool)
    inside[good] = shapely.intersects(area, multi[good])
    outside = np.zeros(n, dtype=bool)
    outside[idx[good & ~inside]] = True
    if outside.any():
        mid = shapely.line_interpolate_point(multi[good & ~inside], 0.5, normalized=True)
        ox, oy, _ = transform_xy(shapely.get_x(mid), shapely.get_y(mid), analysis_crs(), WGS84)
        detail = np.full(n, "", dtype=object)
        detail[outside] = [
            f"line lies entirely outside {where} (midpoint lon {x:.4f}, lat {y:.4f})"
            for x, y in zip(ox, oy, strict=True)
        ]
        checks.add("outside_service_area", outside, detail)
    return inside


def _project(
    flat: np.ndarray, cand: np.ndarray, crs: CRS, ctx: IngestContext, checks: RowChecks
) -> tuple[_Lines, np.ndarray, np.ndarray]:
    """Reproject candidate lines and keep those with a length inside the area.

    Returns the lines (without flags) and the multipart and self-intersecting masks.
    """
    n = len(flat)
    lines = _Lines(
        np.full(n, None, dtype=object), np.full(n, np.nan), np.full(n, np.nan),
        np.full(n, np.nan), [], None,
    )  # fmt: skip
    multipart = np.zeros(n, dtype=bool)
    self_x = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(cand)
    if not idx.size:
        return lines, multipart, self_x
    moved, lines.info = transform_geometries(flat[idx], crs)
    parts, part_of = shapely.get_parts(moved, return_index=True)
    multi = shapely.multilinestrings(parts, indices=part_of)
    coords, coord_of = shapely.get_coordinates(multi, return_index=True)
    nonfinite = np.bincount(coord_of[~np.isfinite(coords).all(axis=1)], minlength=idx.size) > 0
    lengths = np.where(nonfinite, np.nan, shapely.length(multi))
    zero = ~nonfinite & ~(lengths > 0)
    bad_tr = np.zeros(n, dtype=bool)
    bad_tr[idx[nonfinite]] = True
    checks.add("geometry_invalid", bad_tr, f"coordinates cannot be transformed to {analysis_crs()}")
    zero_len = np.zeros(n, dtype=bool)
    zero_len[idx[zero]] = True
    checks.add("geometry_invalid", zero_len, f"line has zero length in {analysis_crs()}")
    good = ~nonfinite & ~zero
    inside = _check_outside(multi, good, idx, n, ctx, checks)
    ok = good & inside
    sel = idx[ok]
    lines.geometry[sel] = multi[ok]
    lines.length[sel] = lengths[ok]
    mid = shapely.line_interpolate_point(multi[ok], 0.5, normalized=True)
    lines.lon[sel], lines.lat[sel], _ = transform_xy(
        shapely.get_x(mid), shapely.get_y(mid), analysis_crs(), WGS84
    )
    multipart[sel] = shapely.get_num_geometries(multi[ok]) > 1
    self_x[sel] = ~shapely.is_simple(multi[ok])
    return lines, multipart, self_x


def reads_no_geometry(profile: Profile) -> bool:
    """Whether a table profile (CSV or Excel) names no geometry: an attribute-only inventory."""
    return (
        profile.format in ("csv", "xlsx")
        and not profile.geometry_column
        and not any(p.geometry or (p.x and p.y) for p in profile.coordinates)
    )


def _no_lines(n: int) -> _Lines:
    """Lines of a chunk read without geometry: every row flagged ``no_geometry``."""
    return _Lines(
        np.full(n, None, dtype=object), np.full(n, np.nan), np.full(n, np.nan),
        np.full(n, np.nan), [("no_geometry", np.ones(n, dtype=bool))], None,
    )  # fmt: skip


def _check_lines(
    chunk: RawChunk, profile: Profile, ctx: IngestContext, checks: RowChecks
) -> _Lines:
    """Geometry checks, repairs, reprojection to the analysis CRS and the mid-line point."""
    raw, crs = _geometry_of(chunk, profile)
    missing = _check_missing(raw, chunk.frame, profile, checks)
    flat, cand, repaired = _repair_lines(raw, missing, checks)
    lines, multipart, self_x = _project(flat, cand, crs, ctx, checks)
    lines.flags = [
        ("multipart", multipart),
        ("geometry_repaired", repaired & ~np.isnan(lines.length)),
        ("self_intersecting", self_x),
    ]
    if lines.info is not None and lines.info.ballpark:
        lines.flags.append(("crs_ballpark", ~np.isnan(lines.length)))
    return lines


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
    masked = np.full(n, None, dtype=object)
    masked[cand] = ids[cand]
    key = pd.Series(masked, dtype=object)
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
        if g0 is None and geoms[i] is None:
            what = "the same id (records without geometry)"
        elif bool(shapely.equals_exact(g0, geoms[i], tolerance=1e-3)):
            what = "an identical record (same id and geometry)"
        else:
            what = "the same id with a different geometry"
        detail[i] = f"{id_col}={k!r} is {what} as row {row0}; the first row is kept"
    seen.update(firsts)
    return dup, detail


_Attributes = Callable[
    [pd.DataFrame, Profile, IngestContext, _Problems, np.ndarray],
    tuple[dict[str, Any], list[tuple[str, np.ndarray]]],
]
