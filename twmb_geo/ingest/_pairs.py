"""Coordinate pairs of break records: parse, transform, check against the service area.

A pair is the two columns (or the file geometry) that give a record's location in one
CRS. Each pair gets a status per row (ok, missing, invalid, swapped X/Y, outside).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from ..core.crs import (
    WGS84,
    TransformInfo,
    analysis_crs,
    area_of_use_bounds,
    crs_label,
    transform_xy,
)
from ..io.profiles import CoordinatePair
from ..io.readers import RawChunk
from ._common import IngestContext

_OK, _MISSING, _INVALID, _SWAPPED, _OUTSIDE = 0, 1, 2, 3, 4

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
    x: np.ndarray  # the analysis CRS
    y: np.ndarray
    status: np.ndarray
    info: TransformInfo | None
    swap_x: np.ndarray  # the analysis CRS position of the swapped-back pair
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
    if aou is None:
        raise ValueError("the CRS area of use is needed when there is no service area")
    # inside the source CRS's area of use and, once projected, the analysis CRS's (a WGS 84
    # pair is valid anywhere on Earth, the analysis CRS only around the city)
    target = area_of_use_bounds(analysis_crs())
    return ok & _in_box(raw[0], raw[1], aou) & (_in_box(x, y, target) if target else True)


def _reference_bounds(area: shapely.Geometry | None, crs: str) -> tuple[float, float, float, float]:
    """The service area's bounding box expressed in ``crs`` (or the CRS area of use)."""
    if area is None:
        b = area_of_use_bounds(crs)
        return b if b is not None else (-np.inf, -np.inf, np.inf, np.inf)
    minx, miny, maxx, maxy = area.bounds
    xs = np.array([minx, maxx, minx, maxx])
    ys = np.array([miny, miny, maxy, maxy])
    bx, by, _ = transform_xy(xs, ys, analysis_crs(), crs)
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
        if pair.crs is None:
            raise ValueError(f"coordinate pair {pair.name!r} has columns but no 'crs'")
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
