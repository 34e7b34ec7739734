"""Breaks: raw break records -> the curated ``breaks`` table plus quarantine.

Each record may state its location several ways (WGS84 columns, the file geometry, NAD27
MTM columns). Every pair is checked; the first good one in the profile's preference order
is used, the others only raise flags. Rows no pair can locate, rows with bad dates,
duplicates and year mismatches go to quarantine with a reason code.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from ..contracts import conform, validate_frame
from ..core.crs import TARGET_CRS, WGS84, TransformInfo, area_of_use_bounds, crs_label, transform_xy
from ..errors import InputDataError
from ..io.profiles import CoordinatePair, Profile
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

__all__ = ["transform_breaks"]

log = logging.getLogger(__name__)

_OK, _MISSING, _INVALID, _SWAPPED, _OUTSIDE = 0, 1, 2, 3, 4
_PRIORITY = (
    "date_missing",
    "date_unparseable",
    "date_out_of_range",
    "date_future",
    "duplicate",
    "coords_missing",
    "coords_invalid",
    "swapped_xy",
    "outside_service_area",
    "value_unparseable",
    "year_mismatch",
)
_STATUS_NAME = {
    _MISSING: "missing",
    _INVALID: "invalid",
    _SWAPPED: "swapped_xy",
    _OUTSIDE: "outside",
}


@dataclass
class _PairResult:
    pair: CoordinatePair
    raw_x: np.ndarray
    raw_y: np.ndarray
    x: np.ndarray  # EPSG:2952
    y: np.ndarray
    status: np.ndarray
    info: TransformInfo | None
    swap_x: np.ndarray  # EPSG:2952 position of the swapped-back pair
    swap_y: np.ndarray
    swap_inside: np.ndarray


def _numeric(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float array and a mask of non-null values that are not numbers."""
    num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = values.notna().to_numpy() & np.isnan(num)
    return num, bad


def _in_box(x: np.ndarray, y: np.ndarray, bounds: tuple[float, float, float, float]) -> np.ndarray:
    minx, miny, maxx, maxy = bounds
    with np.errstate(invalid="ignore"):
        return (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)


def _located(
    area: shapely.Geometry | None, x: np.ndarray, y: np.ndarray, raw: tuple, aou: tuple | None
) -> np.ndarray:
    """Finite target coordinates inside the service area, or (without one) raw values inside the CRS area of use."""
    ok = np.isfinite(x) & np.isfinite(y)
    out = np.zeros(len(x), dtype=bool)
    if area is not None:
        out[ok] = shapely.contains_xy(area, x[ok], y[ok])
        return out
    return ok & _in_box(raw[0], raw[1], aou)


def _reference_bounds(area: shapely.Geometry | None, crs: str) -> tuple[float, float, float, float]:
    """The service area's bounding box expressed in ``crs`` (or the CRS area of use)."""
    if area is None:
        b = area_of_use_bounds(crs)
        return b if b is not None else (-np.inf, -np.inf, np.inf, np.inf)
    minx, miny, maxx, maxy = area.bounds
    xs = np.array([minx, maxx, minx, maxx])
    ys = np.array([miny, miny, maxy, maxy])
    bx, by, _ = transform_xy(xs, ys, TARGET_CRS, crs)
    return float(bx.min()), float(by.min()), float(bx.max()), float(by.max())


def _check_pair(pair: CoordinatePair, chunk: RawChunk, ctx: IngestContext) -> _PairResult:
    n = len(chunk.frame)
    if pair.geometry:
        geoms = chunk.geometry if chunk.geometry is not None else np.full(n, None, dtype=object)
        is_point = shapely.get_type_id(geoms) == 0
        empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        rx = np.where(is_point & ~empty, shapely.get_x(geoms), np.nan)
        ry = np.where(is_point & ~empty, shapely.get_y(geoms), np.nan)
        bad_num = ~empty & ~is_point
        crs = crs_label(chunk.crs) if chunk.crs is not None else pair.crs or WGS84
    else:
        rx, bad_x = (
            _numeric(chunk.frame[pair.x])
            if pair.x in chunk.frame
            else (np.full(n, np.nan), np.zeros(n, bool))
        )
        ry, bad_y = (
            _numeric(chunk.frame[pair.y])
            if pair.y in chunk.frame
            else (np.full(n, np.nan), np.zeros(n, bool))
        )
        bad_num = bad_x | bad_y
        crs = crs_label(pair.crs)
    missing = (np.isnan(rx) & np.isnan(ry) & ~bad_num) | ((rx == 0) & (ry == 0))
    invalid = ~missing & (bad_num | ~np.isfinite(rx) | ~np.isfinite(ry) | (rx == ry))
    tx, ty, info = transform_xy(
        np.where(invalid | missing, np.nan, rx), np.where(invalid | missing, np.nan, ry), crs
    )
    area = ctx.service_area
    aou = _reference_bounds(None, crs) if area is None else None
    inside = _located(area, tx, ty, (rx, ry), aou)
    sx, sy, _ = transform_xy(ry, rx, crs)
    swap_inside = (
        ~missing & np.isfinite(rx) & np.isfinite(ry) & _located(area, sx, sy, (ry, rx), aou)
    )
    # A coordinate in the other axis' range (an easting that looks like a northing, or the
    # reverse) is a swapped pair even when swapping back does not land inside the area.
    rminx, rminy, rmaxx, rmaxy = aou if aou is not None else _reference_bounds(area, crs)
    pad_x, pad_y = 0.1 * (rmaxx - rminx), 0.1 * (rmaxy - rminy)
    x_like_y = (
        (rx >= rminy - pad_y)
        & (rx <= rmaxy + pad_y)
        & ~((rx >= rminx - pad_x) & (rx <= rmaxx + pad_x))
    )
    y_like_x = (
        (ry >= rminx - pad_x)
        & (ry <= rmaxx + pad_x)
        & ~((ry >= rminy - pad_y) & (ry <= rmaxy + pad_y))
    )
    status = np.full(n, _OK, dtype=np.int8)
    status[~inside] = _OUTSIDE
    status[~inside & (swap_inside | x_like_y | y_like_x)] = _SWAPPED
    status[invalid] = _INVALID
    status[missing] = _MISSING
    return _PairResult(pair, rx, ry, tx, ty, status, info, sx, sy, swap_inside)


class _Flags:
    """Semicolon-joined quality flags per row, built with vectorised masks."""

    def __init__(self, n: int) -> None:
        self.text = np.full(n, "", dtype=object)

    def add(self, name: str, mask: np.ndarray) -> None:
        m = np.asarray(mask, dtype=bool)
        if m.any():
            cur = self.text[m]
            self.text[m] = np.where(cur == "", name, cur + ";" + name)


def _find_duplicates(
    seen: pd.DataFrame,
    h: np.ndarray,
    valid: np.ndarray,
    rows: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    profile: Profile,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose key was seen earlier (this chunk or before), in file order.

    ``seen`` maps key hash -> (row, x, y) of the first occurrence and is carried across
    chunks. Returns the updated ``seen``, duplicate and key-conflict masks and details.
    """
    n = len(h)
    dup = np.zeros(n, dtype=bool)
    conflict = np.zeros(n, dtype=bool)
    detail = np.full(n, "", dtype=object)
    kf = pd.DataFrame({"h": h, "row": rows, "x": x, "y": y, "i": np.arange(n)})[valid]
    first = ~kf["h"].duplicated() & ~kf["h"].isin(seen.index)
    seen = pd.concat([seen, kf.loc[first].set_index("h")[["row", "x", "y"]]])
    later = kf.loc[~first]
    if later.empty:
        return seen, dup, conflict, detail
    ref = seen.loc[later["h"].to_numpy()]
    dist = np.hypot(
        later["x"].to_numpy() - ref["x"].to_numpy(), later["y"].to_numpy() - ref["y"].to_numpy()
    )
    idx = later["i"].to_numpy()
    far = np.zeros(len(idx), dtype=bool)
    if profile.duplicate_max_distance_m is not None:
        far = dist > profile.duplicate_max_distance_m
    conflict[idx[far]] = True
    dup[idx[~far]] = True
    where = np.where(
        np.isfinite(dist),
        " ("
        + pd.Series(dist).round(0).map("{:.0f}".format).to_numpy(dtype=object)
        + " m from it by the coordinates used)",
        "",
    )
    text = (
        "same "
        + " + ".join(profile.duplicate_key)
        + " as row "
        + ref["row"].astype(str).to_numpy(dtype=object)
        + where
    )
    detail[idx] = text
    return seen, dup, conflict, detail


def _dedupe_keys(
    frame: pd.DataFrame, dates: pd.Series, profile: Profile, pairs: dict[str, _PairResult]
) -> pd.DataFrame | None:
    if not profile.duplicate_key:
        return None
    parts: dict[str, object] = {}
    for k in profile.duplicate_key:
        if k == "break_date":
            parts[k] = dates.to_numpy()
        elif k in pairs:
            parts[f"{k}_x"] = np.round(pairs[k].raw_x, 3)
            parts[f"{k}_y"] = np.round(pairs[k].raw_y, 3)
        else:
            parts[k] = frame[profile.columns[k]].astype(str).to_numpy()
    return pd.DataFrame(parts)


def _break_ids(dates: pd.Series, lon: np.ndarray, lat: np.ndarray) -> list[str]:
    base = pd.DataFrame(
        {
            "d": dates.dt.strftime("%Y-%m-%d").to_numpy(),
            "lon": np.round(lon, 6),
            "lat": np.round(lat, 6),
        }
    )
    occ = base.groupby(["d", "lon", "lat"], sort=False).cumcount().to_numpy()
    keys = [
        f"break|{d}|{lo:.6f}|{la:.6f}|{o}"
        for d, lo, la, o in zip(base["d"], base["lon"], base["lat"], occ, strict=True)
    ]
    return ["B" + hashlib.sha256(k.encode()).hexdigest()[:16] for k in keys]


def transform_breaks(
    chunks: Iterable[RawChunk], source_id: str, profile: Profile, ctx: IngestContext
) -> IngestResult:
    """Validate raw break chunks into the curated ``breaks`` table and quarantine rows."""
    accepted: list[pd.DataFrame] = []
    quarantined: list[pd.DataFrame] = []
    rows_in = 0
    seen = pd.DataFrame(
        {"row": np.array([], np.int64), "x": np.array([]), "y": np.array([])},
        index=pd.Index(np.array([], dtype=np.uint64), name="h"),
    )
    infos: dict[str, TransformInfo] = {}
    measured: dict[str, list[np.ndarray]] = {}
    flag_counts: dict[str, int] = {}
    today = pd.Timestamp(ctx.today)
    min_date = pd.Timestamp(profile.min_date)
    col = profile.columns
    for chunk in chunks:
        f = chunk.frame
        n = len(f)
        rows_in += n
        checks = RowChecks(n)
        dates, date_missing, date_bad = parse_dates(f[col["break_date"]], profile.date_format)
        checks.add("date_missing", date_missing, f"{col['break_date']} is empty")
        checks.add(
            "date_unparseable",
            date_bad,
            "'" + f[col["break_date"]].astype(str) + f"' in {col['break_date']} is not a date",
        )
        checks.add(
            "date_out_of_range",
            ~date_bad & ~date_missing & (dates < min_date),
            f"{col['break_date']} is before {profile.min_date}",
        )
        checks.add(
            "date_future",
            ~date_bad & ~date_missing & (dates > today),
            f"{col['break_date']} is after today ({ctx.today})",
        )

        pairs = {p.name: _check_pair(p, chunk, ctx) for p in profile.coordinates}
        for name, pr in pairs.items():
            if pr.info is not None:
                infos.setdefault(name, pr.info)
        status = np.stack([pr.status for pr in pairs.values()])  # pairs x rows
        ok = status == _OK
        chosen = np.where(ok.any(axis=0), ok.argmax(axis=0), -1)
        names = list(pairs)
        x = np.full(n, np.nan)
        y = np.full(n, np.nan)
        src = np.full(n, "", dtype=object)
        acc = np.full(n, np.nan)
        for k, name in enumerate(names):
            m = chosen == k
            x[m], y[m] = pairs[name].x[m], pairs[name].y[m]
            src[m] = name
            info = pairs[name].info
            acc[m] = np.nan if info is None or info.accuracy_m is None else info.accuracy_m
        flags = _Flags(n)
        # No good pair: repair a swapped pair by swapping it back when that lands inside.
        for k, name in enumerate(names):
            pr = pairs[name]
            m = (chosen == -1) & (pr.status == _SWAPPED) & pr.swap_inside
            if m.any():
                x[m], y[m], src[m] = pr.swap_x[m], pr.swap_y[m], name
                chosen[m] = k
                flags.add(f"{name}_swapped_xy_repaired", m)
        located = chosen >= 0
        for name, pr in pairs.items():
            for code, label in _STATUS_NAME.items():
                if code == _MISSING:
                    continue
                flags.add(f"{name}_{label}", located & (pr.status == code) & (src != name))
        # Conflicts between good pairs, and the measured error of ballpark pairs.
        for name, pr in pairs.items():
            both = located & (pr.status == _OK) & (src != name)
            if not both.any():
                continue
            d = np.hypot(pr.x - x, pr.y - y)
            if pr.info is not None and pr.info.ballpark:
                measured.setdefault(name, []).append(d[both])
            flags.add("coord_conflict", both & (d > profile.conflict_tolerance_m))
        st = status
        any_swapped = (st == _SWAPPED).any(axis=0)
        any_outside = (st == _OUTSIDE).any(axis=0)
        any_invalid = (st == _INVALID).any(axis=0)
        all_missing = (st == _MISSING).all(axis=0)
        checks.add(
            "coords_missing", ~located & all_missing, "no coordinates in " + ", ".join(names)
        )
        pair_desc = _pair_details(pairs, n, ~located)
        checks.add(
            "coords_invalid",
            ~located & ~all_missing & any_invalid & ~any_swapped & ~any_outside,
            pair_desc,
        )
        checks.add("swapped_xy", ~located & any_swapped, pair_desc)
        checks.add("outside_service_area", ~located & ~any_swapped & any_outside, pair_desc)

        keys = _dedupe_keys(f, dates, profile, pairs)
        if keys is not None:
            valid_key = keys.notna().all(axis=1).to_numpy() & ~(date_missing | date_bad)
            h = pd.util.hash_pandas_object(keys, index=False).to_numpy()
            seen, dup, conflict, detail = _find_duplicates(
                seen, h, valid_key, f["source_row"].to_numpy(), x, y, profile
            )
            flags.add("duplicate_key_conflict", conflict)
            checks.add("duplicate", dup, detail)

        year = None
        if "break_year" in col and col["break_year"] in f:
            year, year_bad = _numeric(f[col["break_year"]])
            checks.add(
                "value_unparseable",
                year_bad,
                "'" + f[col["break_year"]].astype(str) + f"' in {col['break_year']} is not a year",
            )
            mismatch = (
                ~year_bad
                & ~np.isnan(year)
                & ~date_bad
                & ~date_missing
                & (year != dates.dt.year.to_numpy(dtype=float, na_value=np.nan))
            )
            if profile.year_mismatch == "quarantine":
                checks.add(
                    "year_mismatch",
                    mismatch,
                    f"{col['break_year']}="
                    + pd.Series(year).map("{:.0f}".format)
                    + " but the date is "
                    + dates.dt.strftime("%Y-%m-%d").fillna(""),
                )
            else:
                flags.add("year_mismatch", mismatch)

        checks.order(_PRIORITY)
        bad = checks.failed
        if bad.any():
            reasons, details = checks.lists()
            quarantined.append(
                build_quarantine(
                    source_id,
                    f.loc[bad],
                    reasons,
                    details,
                    None if chunk.geometry is None else chunk.geometry[bad],
                )
            )
        keep = ~bad
        flag_txt = flags.text
        out = pd.DataFrame(
            {
                "break_date": dates[keep].to_numpy(),
                "x": x[keep],
                "y": y[keep],
                "coord_source": src[keep],
                "coord_accuracy_m": acc[keep],
                "material": f[col["material"]][keep].to_numpy()
                if "material" in col and col["material"] in f
                else None,
                "diameter_mm": _numeric(f[col["diameter_mm"]])[0][keep]
                if "diameter_mm" in col and col["diameter_mm"] in f
                else np.nan,
                "asset_id": f[col["asset_id"]][keep].astype(str).to_numpy()
                if "asset_id" in col and col["asset_id"] in f
                else None,
                "flags": flag_txt[keep],
                "source_id": source_id,
                "source_file": f["source_file"][keep].to_numpy(),
                "source_row": f["source_row"][keep].to_numpy(),
            }
        )
        accepted.append(out)
    if rows_in == 0:
        raise InputDataError(f"source {source_id!r}: no rows were read")
    df = pd.concat(accepted, ignore_index=True) if accepted else pd.DataFrame()
    lon, lat, _ = transform_xy(df["x"].to_numpy(), df["y"].to_numpy(), TARGET_CRS, WGS84)
    df["lon"], df["lat"] = lon, lat
    df["break_date"] = pd.to_datetime(df["break_date"])
    df["year"] = df["break_date"].dt.year.astype(np.int32)
    df["month"] = df["break_date"].dt.month.astype(np.int32)
    df["break_id"] = _break_ids(df["break_date"], lon, lat)
    df["geometry"] = (
        shapely.to_wkb(shapely.points(df["x"].to_numpy(), df["y"].to_numpy())) if len(df) else []
    )
    df = conform(df.sort_values(["source_file", "source_row"], kind="stable"), "curated/breaks")
    validate_frame(df, "curated/breaks")
    quarantine = pd.concat(quarantined, ignore_index=True) if quarantined else empty_quarantine()
    for fl in df["flags"]:
        for name in filter(None, fl.split(";")):
            flag_counts[name] = flag_counts.get(name, 0) + 1
    crs_records, warnings = _crs_report(source_id, infos, measured)
    return finish_result(
        source_id, "breaks", {"breaks": df}, quarantine, rows_in, warnings, crs_records, flag_counts
    )


def _pair_details(pairs: dict[str, _PairResult], n: int, rows: np.ndarray) -> np.ndarray:
    """Per-row text describing every pair's values and status (only for ``rows``)."""
    out = np.full(n, "", dtype=object)
    idx = np.flatnonzero(rows)
    if not idx.size:
        return out
    out[idx] = _pair_text({k: _subset(v, idx) for k, v in pairs.items()}, idx.size)
    return out


def _subset(pr: _PairResult, idx: np.ndarray) -> _PairResult:
    return _PairResult(
        pr.pair,
        pr.raw_x[idx],
        pr.raw_y[idx],
        pr.x[idx],
        pr.y[idx],
        pr.status[idx],
        pr.info,
        pr.swap_x[idx],
        pr.swap_y[idx],
        pr.swap_inside[idx],
    )


def _pair_text(pairs: dict[str, _PairResult], n: int) -> np.ndarray:
    out = np.full(n, "", dtype=object)
    for name, pr in pairs.items():
        label = np.array(
            ["ok", "missing", "invalid", "swapped X/Y", "outside the service area"], dtype=object
        )[pr.status]
        txt = (
            f"{name} ({pr.pair.x or 'geometry'}, {pr.pair.y or ''})=("
            + pd.Series(pr.raw_x).map("{:.6g}".format).to_numpy(dtype=object)
            + ", "
            + pd.Series(pr.raw_y).map("{:.6g}".format).to_numpy(dtype=object)
            + ") "
            + label
        )
        out = np.where(out == "", txt, out + "; " + txt)
    return out


def _crs_report(
    source_id: str, infos: dict[str, TransformInfo], measured: dict[str, list[np.ndarray]]
) -> tuple[list[dict], list[str]]:
    records: list[dict] = []
    warnings: list[str] = []
    for name, info in infos.items():
        rec = {"source_id": source_id, "pair": name, **info.to_dict()}
        if name in measured:
            d = np.concatenate(measured[name])
            if d.size:
                rec["measured_error_m"] = {
                    "n": int(d.size),
                    "median": round(float(np.median(d)), 2),
                    "p95": round(float(np.percentile(d, 95)), 2),
                }
        if info.ballpark:
            extra = ""
            if "measured_error_m" in rec:
                me = rec["measured_error_m"]
                extra = f"; measured against the record's better pair: median {me['median']} m, p95 {me['p95']} m over {me['n']} records"
            warnings.append(
                f"source {source_id!r}: coordinate pair {name!r} ({info.source_crs}) has only a ballpark "
                f"transformation to {info.target_crs} ({'missing datum grid ' + ', '.join(info.missing_grids) if info.missing_grids else 'no grid-based transformation is known'}){extra}; "
                "it is used only when no better pair is valid"
            )
        records.append(rec)
    return records, warnings
