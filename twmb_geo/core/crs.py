"""The analysis CRS of a project, and coordinate transformations into it.

Every project computes in one projected CRS in metres, its *analysis CRS*: set in the
config (``[project] crs``) or chosen from the data (:func:`choose_crs`: the UTM zone of the
sources' extent, or a Lambert azimuthal equal-area projection centred on an extent that spans
several zones). The store records it; each stage runs inside :func:`using_crs` so every
function that needs it reads :func:`analysis_crs`.

Transformations: pick the best one PROJ can run here and say how good it is.

NAD27 sources (EPSG:2019, EPSG:26717) need a datum-shift grid that is not available
offline, so PROJ silently falls back to a "ballpark" transformation (about 15-20 m off in
Toronto). We detect that, warn, and record it so the run manifest tells the truth.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from pyproj.transformer import TransformerGroup

log = logging.getLogger(__name__)

_WARNED: set[tuple[str, str]] = set()
WGS84 = "EPSG:4326"
#: the analysis CRS of the bundled Toronto project and of the synthetic city (MTM zone 10)
TORONTO_CRS = "EPSG:2952"
#: NAD27 / MTM zone 10, the CRS of the City of Toronto's older exports
TORONTO_NAD27_CRS = "EPSG:2019"
#: widest extent (degrees of longitude) given one UTM zone; wider extents get an equal-area CRS
MAX_UTM_WIDTH_DEG = 12.0
#: points farther than this (degrees) from a source's median position are strays for its extent
STRAY_DEG = 5.0

_ANALYSIS_CRS: ContextVar[str | None] = ContextVar("twmb_analysis_crs", default=None)


class AnalysisCRSError(RuntimeError):
    """No analysis CRS is set, or a CRS cannot be one (not projected, not in metres)."""


def analysis_crs() -> str:
    """The analysis CRS in force (set by :func:`using_crs`); raises when none is set."""
    crs = _ANALYSIS_CRS.get()
    if crs is None:
        raise AnalysisCRSError(
            "no analysis CRS is set: run inside `twmb_geo.core.crs.using_crs(crs)` "
            "(the pipeline stages set it from the store)"
        )
    return crs


def current_crs() -> str | None:
    """The analysis CRS in force, or None when none is set."""
    return _ANALYSIS_CRS.get()


@contextmanager
def using_crs(crs: str | CRS | None) -> Iterator[str | None]:
    """Run a block with ``crs`` as the analysis CRS (checked: projected, in metres).

    ``None`` runs the block with no analysis CRS in force.
    """
    label = check_analysis_crs(crs) if crs is not None else None
    token = _ANALYSIS_CRS.set(label)
    try:
        yield label
    finally:
        _ANALYSIS_CRS.reset(token)


def check_analysis_crs(crs: str | CRS) -> str:
    """The label of ``crs`` when it can be an analysis CRS: projected with metre axes."""
    try:
        c = CRS.from_user_input(crs)
    except Exception as exc:  # noqa: BLE001 - pyproj raises several types for bad input
        raise AnalysisCRSError(f"unknown CRS {crs!r}: {exc}") from None
    if not c.is_projected:
        raise AnalysisCRSError(
            f"{crs_label(c)} ({c.name}) is not projected: the analysis CRS must be a projected "
            "CRS in metres (a UTM zone, for example); leave [project] crs unset to choose one"
        )
    units = {(a.unit_name or "").lower() for a in c.axis_info}
    if not units or not units <= {"metre", "meter"}:
        raise AnalysisCRSError(
            f"{crs_label(c)} ({c.name}) has axes in {sorted(units)}: the analysis CRS must be in "
            "metres (inputs in feet are converted; choose a metric CRS for the analysis)"
        )
    return crs_label(c) if c.to_epsg() else c.to_wkt()


@dataclass(frozen=True)
class CRSChoice:
    """The analysis CRS chosen for an extent, and why."""

    crs: str
    name: str
    reason: str


def source_datum(crss: list[str]) -> str | None:
    """The one geodetic datum of the sources' CRSs worth keeping, if they agree on one.

    WGS 84 (lon/lat files: GeoJSON is WGS 84 by definition, whatever the data's realisation)
    and NAD27 (its grids are missing, so its shift is a ballpark anyway) do not count.
    """
    names = set()
    for c in crss:
        try:
            g = CRS.from_user_input(c).geodetic_crs
        except Exception:  # noqa: BLE001 - any unusable CRS simply does not vote
            continue
        if g is not None and g.name != "WGS 84" and not g.name.startswith("NAD27"):
            names.add(g.name)
    return names.pop() if len(names) == 1 else None


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone holding (lon, lat): 326zz north, 327zz south."""
    zone = min(max(math.floor((lon + 180.0) / 6.0) + 1, 1), 60)
    return (32600 if lat >= 0 else 32700) + zone


def _datum_utm(datum: str, zone_code: int, bounds: tuple[float, float, float, float]) -> int | None:
    """EPSG code of ``<datum> / UTM zone NNx`` (easting, northing) when PROJ knows one."""
    w, s, e, n = bounds
    name = f"{datum} / UTM zone {zone_code % 100}{'N' if zone_code < 32700 else 'S'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        infos = query_utm_crs_info(
            datum_name=datum,
            area_of_interest=AreaOfInterest(max(w, -180), max(s, -90), min(e, 180), min(n, 90)),
        )
    codes = [int(i.code) for i in infos if i.name == name and i.auth_name == "EPSG"]
    return codes[0] if codes else None


def choose_crs(bounds: tuple[float, float, float, float], datum: str | None = None) -> CRSChoice:
    """The analysis CRS for a lon/lat extent ``(west, south, east, north)``.

    An extent up to :data:`MAX_UTM_WIDTH_DEG` wide gets the UTM zone of its centre (north or
    south): on ``datum`` (the geodetic datum of the sources, e.g. ``"NAD83"``) when PROJ has
    that UTM zone, so no datum shift (and its metre-level uncertainty) is applied to the
    data, else on WGS 84. A wider extent gets a Lambert azimuthal equal-area projection
    centred on it (areas true, distances within about 1 % over a few hundred kilometres).
    Works in both hemispheres and either side of the Greenwich meridian; an extent crossing
    the antimeridian (west > east) is handled.
    """
    w, s, e, n = (float(v) for v in bounds)
    if not all(math.isfinite(v) for v in (w, s, e, n)) or s > n or abs(s) > 90 or abs(n) > 90:
        raise AnalysisCRSError(f"cannot choose a CRS for the extent {bounds!r}")
    width = e - w if e >= w else e + 360.0 - w
    lon = w + width / 2.0
    lon = lon - 360.0 if lon > 180 else lon
    lat = (s + n) / 2.0
    extent = f"lon {w:.3f}..{e:.3f}, lat {s:.3f}..{n:.3f}"
    if width <= MAX_UTM_WIDTH_DEG and max(abs(s), abs(n)) <= 84:
        code = utm_epsg(lon, lat)
        on_datum = _datum_utm(datum, code, (w, s, e, n)) if datum and datum != "WGS 84" else None
        code = on_datum or code
        c = CRS.from_epsg(code)
        why = f"UTM zone of the data's centre ({extent})"
        if on_datum:
            why += f" on the sources' datum {datum}"
        return CRSChoice(f"EPSG:{code}", c.name, why)
    proj = (
        f"+proj=laea +lat_0={lat:.4f} +lon_0={lon:.4f} +x_0=0 +y_0=0 "
        "+datum=WGS84 +units=m +no_defs +type=crs"
    )
    c = CRS.from_user_input(proj)
    return CRSChoice(
        c.to_wkt(),
        f"Lambert azimuthal equal-area centred on {lat:.2f}, {lon:.2f}",
        f"the data spans more than {MAX_UTM_WIDTH_DEG:g} degrees of longitude ({extent})",
    )


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
    """``EPSG:nnnn`` when the CRS has an EPSG code, else its WKT (round-trips through PROJ)."""
    return _label(crs if isinstance(crs, str) else crs.to_wkt())


@cache
def _label(crs: str) -> str:
    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.to_wkt()


def crs_name(crs: CRS | str) -> str:
    """A short human name: ``EPSG:nnnn (name)`` or the CRS name."""
    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg} ({c.name})" if epsg else c.name


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
    lon, lat = ((aou.west + aou.east) / 2, (aou.south + aou.north) / 2) if aou else (0.0, 0.0)
    return _transformer(WGS84, src).transform(lon, lat)


def transform_xy(
    x: np.ndarray, y: np.ndarray, src: CRS | str, dst: CRS | str | None = None
) -> tuple[np.ndarray, np.ndarray, TransformInfo]:
    """Transform coordinate arrays (x = easting/longitude) with the best available operation.

    ``dst`` defaults to the analysis CRS. The returned info describes the operation used at
    the median point of the data.
    """
    s, d = crs_label(src), crs_label(dst if dst is not None else analysis_crs())
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
    geoms: np.ndarray, src: CRS | str, dst: CRS | str | None = None
) -> tuple[np.ndarray, TransformInfo]:
    """Transform a shapely geometry array (to the analysis CRS by default), vectorised."""
    s, d = crs_label(src), crs_label(dst if dst is not None else analysis_crs())
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


@cache
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


def lonlat_bounds(
    x: np.ndarray, y: np.ndarray, src: CRS | str
) -> tuple[float, float, float, float] | None:
    """The lon/lat extent (west, south, east, north) of finite coordinates in ``src``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return None
    lon, lat, _ = transform_xy(x[ok], y[ok], src, WGS84)
    fin = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    if not fin.any():
        return None
    lon, lat = lon[fin], lat[fin]
    # stray points (0/0, swapped pairs, a wrong CRS) do not widen it: only points within
    # STRAY_DEG of the point nearest the median position count (a point of the data, so
    # never none: the median of two far-apart points is near neither)
    gap = np.abs(lon - np.median(lon)) + np.abs(lat - np.median(lat))
    c = int(np.argmin(gap))
    near = (np.abs(lon - lon[c]) <= STRAY_DEG) & (np.abs(lat - lat[c]) <= STRAY_DEG)
    lon, lat = lon[near], lat[near]
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def merge_bounds(
    boxes: list[tuple[float, float, float, float]],
) -> tuple[float, float, float, float] | None:
    """The union of lon/lat boxes (no antimeridian wrap)."""
    if not boxes:
        return None
    arr = np.asarray(boxes, dtype=float)
    return (
        float(arr[:, 0].min()),
        float(arr[:, 1].min()),
        float(arr[:, 2].max()),
        float(arr[:, 3].max()),
    )
