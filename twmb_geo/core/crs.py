"""Coordinate transformations: pick the best one PROJ can run here and say how good it is.

NAD27 sources (EPSG:2019, EPSG:26717) need a datum-shift grid that is not available
offline, so PROJ silently falls back to a "ballpark" transformation (about 15-20 m off in
Toronto). We detect that, warn, and record it so the run manifest tells the truth.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.transformer import TransformerGroup

log = logging.getLogger(__name__)

TARGET_CRS = "EPSG:2952"
_WARNED: set[tuple[str, str]] = set()
WGS84 = "EPSG:4326"


@dataclass(frozen=True)
class TransformInfo:
    """What the chosen transformation is and how accurate PROJ says it is."""

    source_crs: str
    target_crs: str
    description: str
    accuracy_m: float | None
    ballpark: bool
    missing_grids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for the run manifest."""
        d = asdict(self)
        d["missing_grids"] = list(self.missing_grids)
        return d


def crs_label(crs: CRS | str) -> str:
    """``EPSG:nnnn`` when the CRS has an EPSG code, else its name."""
    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.name


@cache
def _transformer(src: str, dst: str) -> Transformer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Transformer.from_crs(src, dst, always_xy=True)


@cache
def _describe(src: str, dst: str, x: float, y: float) -> TransformInfo:
    """Describe the operation PROJ uses at the point (x, y) given in ``src``."""
    if CRS.from_user_input(src) == CRS.from_user_input(dst):
        return TransformInfo(src, dst, "identity", 0.0, False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = Transformer.from_crs(src, dst, always_xy=True)
        tr.transform(x, y)
        op = tr.get_last_used_operation()
        group = TransformerGroup(src, dst, always_xy=True)
    desc = op.description or ""
    ballpark = "ballpark" in desc.lower()
    acc = op.accuracy if op.accuracy is not None and op.accuracy >= 0 else None
    missing: list[str] = []
    for unavailable in group.unavailable_operations:
        for g in getattr(unavailable, "grids", []):
            if not g.available and g.short_name not in missing:
                missing.append(g.short_name)
    info = TransformInfo(
        src, dst, desc, acc, ballpark, tuple(missing) if ballpark or acc is None or acc > 1 else ()
    )
    if ballpark and (src, dst) not in _WARNED:
        _WARNED.add((src, dst))
        log.info(
            "only a ballpark transformation from %s to %s is available here (missing grids: %s); "
            "it ignores the datum shift (NAD27 in Toronto: about 17 m)",
            src,
            dst,
            ", ".join(missing) or "unknown",
        )
    return info


def _sample_point(x: np.ndarray, y: np.ndarray, src: str) -> tuple[float, float]:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.any():
        return float(np.round(np.median(x[ok]), 0)), float(np.round(np.median(y[ok]), 0))
    aou = CRS.from_user_input(src).area_of_use
    lon, lat = ((aou.west + aou.east) / 2, (aou.south + aou.north) / 2) if aou else (-79.4, 43.7)
    return Transformer.from_crs("EPSG:4326", src, always_xy=True).transform(lon, lat)


def transform_xy(
    x: np.ndarray, y: np.ndarray, src: CRS | str, dst: CRS | str = TARGET_CRS
) -> tuple[np.ndarray, np.ndarray, TransformInfo]:
    """Transform coordinate arrays (x = easting/longitude) with the best available operation.

    The returned info describes the operation used at the median point of the data.
    """
    s, d = crs_label(src), crs_label(dst)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    info = _describe(s, d, *_sample_point(x, y, s))
    if info.description == "identity":
        return x.copy(), y.copy(), info
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tx, ty = _transformer(s, d).transform(x, y)
    tx, ty = np.asarray(tx, dtype=float), np.asarray(ty, dtype=float)
    bad = ~(np.isfinite(tx) & np.isfinite(ty))
    tx[bad] = np.nan  # PROJ reports failed points (and NaN input) as inf
    ty[bad] = np.nan
    return tx, ty, info


def transform_geometries(
    geoms: np.ndarray, src: CRS | str, dst: CRS | str = TARGET_CRS
) -> tuple[np.ndarray, TransformInfo]:
    """Transform a shapely geometry array, vectorised over all coordinates."""
    s, d = crs_label(src), crs_label(dst)
    geoms = np.asarray(geoms, dtype=object)
    coords = shapely.get_coordinates(geoms)
    info = _describe(s, d, *_sample_point(coords[:, 0], coords[:, 1], s))
    if info.description == "identity":
        return geoms, info
    tr = _transformer(s, d)

    def _fn(c: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tx, ty = tr.transform(c[:, 0], c[:, 1])
        return np.column_stack([tx, ty])

    return shapely.transform(geoms, _fn), info


def area_of_use_bounds(crs: CRS | str) -> tuple[float, float, float, float] | None:
    """The CRS's area of use in its own units (minx, miny, maxx, maxy), if declared."""
    c = CRS.from_user_input(crs)
    aou = c.area_of_use
    if aou is None:
        return None
    if c.is_geographic:
        return aou.west, aou.south, aou.east, aou.north
    tr = Transformer.from_crs("EPSG:4326", c, always_xy=True)
    return tr.transform_bounds(aou.west, aou.south, aou.east, aou.north)
