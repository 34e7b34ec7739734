"""H3 cell ids, resolutions, points to cells and cell geometry in the analysis CRS.

Cells are ``uint64`` inside the package (``h3.api.basic_int``); hex strings only at the
edges (:func:`cell_str`, :func:`cells_from_str`). The value ``0`` means "no cell".
A cell's polygon in the analysis CRS is the H3 boundary projected vertex by vertex with straight
edges between the projected vertices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import h3.api.basic_int as h3i
import numpy as np
import shapely

from ..errors import ConfigError, InputDataError
from .crs import WGS84, analysis_crs, crs_label, transform_xy

MAX_RES = 15
_LINE_TYPES = (1, 2, 5)  # shapely type ids: LineString, LinearRing, MultiLineString
_MAX_LISTED = 20  # problems listed in an error message (the count is always given)


def _listed(items: Sequence[Any]) -> list[str]:
    """At most ``_MAX_LISTED`` problems, plus a line saying how many were left out."""
    out = [str(x) for x in items[:_MAX_LISTED]]
    if len(items) > _MAX_LISTED:
        out.append(f"... and {len(items) - _MAX_LISTED} more")
    return out


def check_resolution(res: Any, name: str = "H3 resolution") -> int:
    """Validate an H3 resolution.

    Parameters
    ----------
    res : int
        Resolution; must be an integer (not bool, not float) in ``0..15``.
    name : str
        What to call it in the error message.

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        If ``res`` is not an integer in ``0..15``.
    """
    if isinstance(res, bool) or not isinstance(res, int | np.integer):
        raise ConfigError(f"{name} must be an integer in 0..{MAX_RES}; got {res!r}")
    if not 0 <= int(res) <= MAX_RES:
        raise ConfigError(f"{name} must be in 0..{MAX_RES}; got {int(res)}")
    return int(res)


def _as_cells(cells: Any, *, allow_zero: bool = True) -> np.ndarray:
    """Coerce ints or hex strings to a validated ``uint64`` array (0 kept as "no cell")."""
    arr = np.asarray(cells)
    if arr.dtype.kind in "US":
        return cells_from_str(arr)
    if arr.dtype.kind == "O":
        if any(isinstance(v, str) for v in arr.ravel().tolist()):
            return cells_from_str(arr)
        try:
            arr = arr.astype(np.int64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InputDataError(f"H3 cells must be integers or hex strings: {exc}") from exc
    if arr.dtype.kind == "f":
        raise InputDataError(f"H3 cells must be integers or hex strings; got dtype {arr.dtype}")
    if arr.dtype.kind == "i" and (arr < 0).any():
        bad = np.unique(arr[arr < 0]).tolist()
        raise InputDataError("invalid H3 cells (negative integers)", _listed(bad))
    out = arr.astype(np.uint64)
    uniq = np.unique(out)
    bad = [int(c) for c in uniq.tolist() if c != 0 and not h3i.is_valid_cell(c)]
    if not allow_zero and uniq.size and uniq[0] == 0:
        bad.insert(0, 0)
    if bad:
        raise InputDataError(f"{len(bad)} invalid H3 cell value(s)", _listed([hex(b) for b in bad]))
    return out


def cells_from_str(cells: Any) -> np.ndarray:
    """Hex strings to ``uint64`` cells (empty string or None -> 0).

    Raises
    ------
    InputDataError
        Listing every string that is not a valid H3 cell.
    """
    arr = np.asarray(cells, dtype=object).ravel()
    out = np.zeros(arr.size, dtype=np.uint64)
    bad: list[str] = []
    for i, s in enumerate(arr.tolist()):
        if s is None or s == "" or (isinstance(s, float) and np.isnan(s)):
            continue
        try:
            c = int(s) if isinstance(s, int | np.integer) else h3i.str_to_int(str(s))
        except (ValueError, TypeError):
            c = -1
        if c < 0 or not h3i.is_valid_cell(c):
            bad.append(repr(s))
        else:
            out[i] = c
    if bad:
        raise InputDataError(f"{len(bad)} invalid H3 cell string(s)", _listed(bad))
    return out.reshape(np.shape(cells))


def cell_str(cells: Any) -> np.ndarray:
    """``uint64`` cells to hex strings (object array of ``str``; 0 -> ``""``)."""
    c = _as_cells(cells)
    uniq, inv = np.unique(c, return_inverse=True)
    strs = np.array([h3i.int_to_str(int(u)) if u else "" for u in uniq.tolist()], dtype=object)
    return strs[inv].reshape(c.shape)


def cell_resolutions(cells: Any) -> np.ndarray:
    """Resolution of each cell (``int8``; -1 for 0 = no cell)."""
    c = _as_cells(cells)
    uniq, inv = np.unique(c, return_inverse=True)
    r = np.array([h3i.get_resolution(int(u)) if u else -1 for u in uniq.tolist()], np.int8)
    return r[inv].reshape(c.shape)


def edge_length_m(res: int) -> float:
    """Average H3 hexagon edge length at ``res`` in metres."""
    return float(h3i.average_hexagon_edge_length(check_resolution(res), unit="m"))


# --------------------------------------------------------------------------- points


def points_to_cells(lon: Any, lat: Any, res: int) -> np.ndarray:
    """Cell of each lon/lat (WGS84) point.

    Parameters
    ----------
    lon, lat : array-like
        Degrees; NaN in either gives cell 0 ("no cell").
    res : int
        H3 resolution 0..15.

    Returns
    -------
    numpy.ndarray of uint64, shape of the broadcast inputs.

    Raises
    ------
    InputDataError
        Listing positions with infinite values or latitudes outside -90..90.
    """
    res = check_resolution(res)
    lon_a, lat_a = np.broadcast_arrays(np.asarray(lon, float), np.asarray(lat, float))
    shape = lon_a.shape
    lon_a, lat_a = lon_a.ravel(), lat_a.ravel()
    nan = np.isnan(lon_a) | np.isnan(lat_a)
    bad = ~nan & (~np.isfinite(lon_a) | ~np.isfinite(lat_a) | (np.abs(lat_a) > 90))
    if bad.any():
        pos = np.flatnonzero(bad)
        raise InputDataError(
            f"{pos.size} point(s) with invalid lon/lat",
            _listed([f"position {i}: lon={lon_a[i]!r}, lat={lat_a[i]!r}" for i in pos]),
        )
    return _latlng_cells(lat_a, lon_a, res, ~nan).reshape(shape)


def _latlng_cells(lat: np.ndarray, lon: np.ndarray, res: int, ok: np.ndarray | None = None):
    """h3 has no vectorised ``latlng_to_cell``: one tight C call per point."""
    out = np.zeros(lat.shape[0], dtype=np.uint64)
    f = h3i.latlng_to_cell
    if ok is None:
        out[:] = [f(a, b, res) for a, b in zip(lat.tolist(), lon.tolist(), strict=True)]
    elif ok.any():
        out[ok] = [f(a, b, res) for a, b in zip(lat[ok].tolist(), lon[ok].tolist(), strict=True)]
    return out


# --------------------------------------------------------------------------- cell geometry


def _boundaries(uniq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat (lat, lng) boundary vertices of unique non-zero cells and the count per cell."""
    bnds = [h3i.cell_to_boundary(int(c)) for c in uniq.tolist()]
    counts = np.fromiter((len(b) for b in bnds), dtype=np.int64, count=len(bnds))
    flat = np.array([v for b in bnds for v in b], dtype=float).reshape(-1, 2)
    return flat[:, 0], flat[:, 1], counts


def _projected_vertices(uniq: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Projected boundary vertices (x, y flat) of unique cells, CCW, and counts per cell."""
    lat, lng, counts = _boundaries(uniq)
    if crs_label(crs) == WGS84:
        x, y = lng, lat
    else:
        x, y, _ = transform_xy(lng, lat, WGS84, crs)
    xy = np.column_stack([x, y])
    return xy, counts


def cell_polygons(cells: Any, crs: str | None = None) -> np.ndarray:
    """Cell polygons (straight edges between projected H3 vertices).

    Parameters
    ----------
    cells : array-like of uint64 (or hex strings)
    crs : str, optional
        Output CRS (default the analysis CRS); ``"EPSG:4326"`` gives lon/lat polygons (no
        antimeridian handling).

    Returns
    -------
    numpy.ndarray of shapely Polygons (None for cell 0), counter-clockwise.
    """
    c = _as_cells(cells)
    flat = c.ravel()
    uniq, inv = np.unique(flat, return_inverse=True)
    nz = uniq[uniq != 0]
    polys = np.full(uniq.size, None, dtype=object)
    if nz.size:
        xy, counts = _projected_vertices(nz, crs or analysis_crs())
        ring_idx = np.repeat(np.arange(nz.size), counts)
        rings = shapely.linearrings(xy, indices=ring_idx)
        polys[uniq != 0] = shapely.orient_polygons(shapely.polygons(rings), exterior_cw=False)
    return polys[inv].reshape(c.shape)


def cell_centroids(cells: Any) -> tuple[np.ndarray, np.ndarray]:
    """H3 cell centres as ``(lon, lat)`` arrays in degrees (NaN for cell 0)."""
    c = _as_cells(cells)
    uniq, inv = np.unique(c.ravel(), return_inverse=True)
    ll = np.array(
        [h3i.cell_to_latlng(int(u)) if u else (np.nan, np.nan) for u in uniq.tolist()],
        dtype=float,
    ).reshape(-1, 2)
    return ll[inv, 1].reshape(c.shape), ll[inv, 0].reshape(c.shape)


def cell_parents(cells: Any, parent_res: int) -> np.ndarray:
    """Parent of each cell at ``parent_res`` (0 stays 0).

    Raises
    ------
    ConfigError
        If ``parent_res`` is not in ``0..min(resolution of the cells)``.
    """
    parent_res = check_resolution(parent_res, "parent resolution")
    c = _as_cells(cells)
    uniq, inv = np.unique(c.ravel(), return_inverse=True)
    nz = uniq[uniq != 0]
    if nz.size:
        finest = min(h3i.get_resolution(int(u)) for u in nz.tolist())
        if parent_res > finest:
            raise ConfigError(
                f"parent resolution must be in 0..{finest} (the finest common resolution "
                f"of the cells); got {parent_res}"
            )
    par = np.array(
        [h3i.cell_to_parent(int(u), parent_res) if u else 0 for u in uniq.tolist()],
        dtype=np.uint64,
    )
    return par[inv].reshape(c.shape)
