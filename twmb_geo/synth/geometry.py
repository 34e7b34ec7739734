"""Vectorised line helpers for the synthetic city (no Python loop over lines or pieces).

Lines are handled as *ragged coordinate arrays*: ``coords`` (N x 2 float) holds every vertex
of every line one after another and ``offsets`` (n + 1 ints) says where each line starts,
so line ``j`` is ``coords[offsets[j]:offsets[j + 1]]``. The public functions take and
return shapely arrays and are what the tests exercise:

* :func:`substrings` cuts pieces ``[start_m, end_m]`` out of lines (e.g. pipes out of
  street segments): cutting a line into consecutive pieces preserves its length and every
  piece lies on the line;
* :func:`points_along` returns the points at given distances along lines.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import shapely

__all__ = ["points_along", "ragged", "ragged_cumlen", "ragged_substrings", "substrings"]


def ragged(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ragged form of a shapely LineString array: ``(coords, offsets)``.

    Parameters
    ----------
    lines
        LineStrings (2D; z is dropped).

    Returns
    -------
    coords, offsets
        Vertices of all lines in order and the start index of each line (plus the end).
    """
    lines = np.asarray(lines, dtype=object)
    coords, index = shapely.get_coordinates(lines, return_index=True)
    counts = np.bincount(index, minlength=len(lines))
    offsets = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return coords, offsets


def ragged_cumlen(coords: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Distance of every vertex from the start of its line (0 at each line's first vertex)."""
    n = len(coords)
    step = np.zeros(n)
    if n > 1:
        step[1:] = np.hypot(np.diff(coords[:, 0]), np.diff(coords[:, 1]))
    starts = offsets[:-1][np.diff(offsets) > 0]
    step[starts] = 0.0
    cum = np.cumsum(step)
    counts = np.diff(offsets)
    return cum - np.repeat(cum[np.minimum(offsets[:-1], max(n - 1, 0))], counts)


def _locate(
    coords: np.ndarray,
    cum: np.ndarray,
    key: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    dist: np.ndarray,
    base: np.ndarray,
    side: Literal["left", "right"],
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first vertex past ``dist`` (``side`` as in searchsorted) and the point there."""
    idx = np.searchsorted(key, dist + base, side=side)
    idx = np.clip(idx, first + 1, last)
    a = idx - 1
    seg = cum[idx] - cum[a]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(seg > 0, (dist - cum[a]) / seg, 0.0)
    t = np.clip(t, 0.0, 1.0)
    p = coords[a] + t[:, None] * (coords[idx] - coords[a])
    # exact vertices at the ends of a segment (so pieces share bit-identical end points)
    p = np.where((t <= 0.0)[:, None], coords[a], p)
    p = np.where((t >= 1.0)[:, None], coords[idx], p)
    return idx, p


def _keys(cum: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A strictly increasing key over all vertices (cum + per-line base) and the line lengths."""
    counts = np.diff(offsets)
    ends = np.maximum(offsets[1:] - 1, offsets[:-1])
    length = np.where(counts > 0, cum[np.minimum(ends, len(cum) - 1)], 0.0)
    base = np.zeros(len(counts))
    if len(counts) > 1:
        base[1:] = np.cumsum(length + 1.0)[:-1]
    return cum + np.repeat(base, counts), base, length


def ragged_substrings(
    coords: np.ndarray,
    offsets: np.ndarray,
    line: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    cum: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pieces ``[start, end]`` (metres from the line start) of ragged lines, in ragged form.

    Every piece has its start point, the line's vertices strictly between ``start`` and
    ``end``, and its end point. Distances are clipped to the line; a piece with
    ``end <= start`` gets two equal points. Lines must have no repeated vertices.
    """
    line = np.asarray(line, dtype=np.int64)
    if cum is None:
        cum = ragged_cumlen(coords, offsets)
    key, base, length = _keys(cum, offsets)
    first = offsets[:-1][line]
    last = offsets[1:][line] - 1
    lb = base[line]
    a = np.clip(np.asarray(start, dtype=float), 0.0, length[line])
    b = np.clip(np.asarray(end, dtype=float), a, length[line])
    lo, pa = _locate(coords, cum, key, first, last, a, lb, "right")
    hi, pb = _locate(coords, cum, key, first, last, b, lb, "left")
    inner = np.maximum(hi - lo, 0)
    counts = inner + 2
    out_off = np.zeros(len(line) + 1, dtype=np.int64)
    np.cumsum(counts, out=out_off[1:])
    out = np.empty((int(out_off[-1]), 2))
    out[out_off[:-1]] = pa
    out[out_off[1:] - 1] = pb
    tot = int(inner.sum())
    if tot:
        rep = np.repeat(np.arange(len(line)), inner)
        k = np.arange(tot) - np.repeat(np.cumsum(inner) - inner, inner)
        out[out_off[:-1][rep] + 1 + k] = coords[lo[rep] + k]
    return out, out_off


def _as_lines(coords: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    counts = np.diff(offsets)
    return shapely.linestrings(coords, indices=np.repeat(np.arange(len(counts)), counts))


def substrings(
    lines: np.ndarray, line_index: np.ndarray, start_m: np.ndarray, end_m: np.ndarray
) -> np.ndarray:
    """Cut pieces out of lines, vectorised.

    Parameters
    ----------
    lines
        Shapely LineStrings (no repeated consecutive vertices).
    line_index
        For every piece, the index of the line it is cut from.
    start_m, end_m
        Distances along that line (metres from its first vertex) where the piece starts and
        ends; clipped to ``[0, length]``.

    Returns
    -------
    numpy.ndarray
        One LineString per piece. Consecutive pieces ``[d0, d1], [d1, d2], ...`` share
        bit-identical end points, their lengths add up to the line length and every vertex
        lies on the line.
    """
    coords, offsets = ragged(lines)
    out, off = ragged_substrings(coords, offsets, np.asarray(line_index), start_m, end_m)
    return _as_lines(out, off)


def points_along(
    lines: np.ndarray, line_index: np.ndarray, dist_m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Points at distances ``dist_m`` along ``lines[line_index]`` (clipped to the line).

    Returns
    -------
    x, y
        Coordinate arrays, one point per entry of ``line_index``.
    """
    coords, offsets = ragged(lines)
    cum = ragged_cumlen(coords, offsets)
    key, base, length = _keys(cum, offsets)
    line_index = np.asarray(line_index, dtype=np.int64)
    d = np.clip(np.asarray(dist_m, dtype=float), 0.0, length[line_index])
    _, p = _locate(
        coords,
        cum,
        key,
        offsets[:-1][line_index],
        offsets[1:][line_index] - 1,
        d,
        base[line_index],
        "right",
    )
    return p[:, 0], p[:, 1]
