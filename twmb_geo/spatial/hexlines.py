"""Lines to H3 cells: every cell a line crosses, with the exact length inside it.

Lengths are measured against the cell polygons of :func:`~twmb_geo.core.h3cells.cell_polygons`, so
per-cell lengths of a line add up to the line's length.
"""

from __future__ import annotations

import logging
from typing import Any

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import shapely

from ..core.crs import WGS84, analysis_crs, transform_xy
from ..core.h3cells import (
    _latlng_cells,
    _listed,
    _projected_vertices,
    cell_polygons,
    check_resolution,
    edge_length_m,
)
from ..errors import InputDataError

log = logging.getLogger(__name__)

_LINE_TYPES = (1, 2, 5)  # shapely type ids: LineString, LinearRing, MultiLineString
_SUBS_PER_CHUNK = 1_000_000  # densified sub-segments processed per vectorised chunk
_PAIRS_PER_CHUNK = 500_000  # (sub-segment, cell) pairs clipped at once


def _line_inputs(geoms: Any, ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate line geometries (shapely or WKB) and ids; list every problem."""
    g = np.asarray(geoms, dtype=object).ravel()
    is_wkb = np.fromiter((isinstance(v, bytes | bytearray) for v in g), bool, count=g.size)
    if is_wkb.any():
        g = g.copy()
        g[is_wkb] = shapely.from_wkb(g[is_wkb])
    not_geom = np.flatnonzero(~shapely.is_geometry(g) & (g != None))  # noqa: E711
    if not_geom.size:
        raise InputDataError(
            f"{len(not_geom)} value(s) are not geometries",
            _listed([f"index {i}" for i in not_geom]),
        )
    if ids is None:
        idv = np.arange(g.size)
    else:
        idv = np.asarray(ids).ravel()
        if idv.size != g.size:
            raise InputDataError(f"ids has {idv.size} values but there are {g.size} lines")
        dup = pd.Index(idv).duplicated()
        if dup.any():
            raise InputDataError(
                f"{int(dup.sum())} duplicate line id(s)", _listed(pd.unique(idv[dup]).tolist())
            )
    tid = shapely.get_type_id(g)
    wrong = np.flatnonzero((tid >= 0) & ~np.isin(tid, _LINE_TYPES))
    idl = idv.tolist()
    problems = [(i, f"line {idl[i]!r}: {g[i].geom_type} is not a line") for i in wrong]
    coords, cidx = shapely.get_coordinates(g, return_index=True)
    nonfin = np.unique(cidx[~np.isfinite(coords).all(axis=1)])
    problems += [(i, f"line {idl[i]!r}: non-finite coordinates") for i in nonfin]
    if problems:
        problems.sort()
        raise InputDataError(
            f"{len(problems)} bad line geometry(ies)", _listed([p for _, p in problems])
        )
    return g, idv


def _subsegments(
    parts: np.ndarray, part_line: np.ndarray, spacing: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split every segment of every part into pieces no longer than ``spacing``.

    Returns start points (n, 2), end points (n, 2) and the line index of each piece.
    """
    coords, cpart = shapely.get_coordinates(parts, return_index=True)
    same = cpart[1:] == cpart[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    seg_line = part_line[cpart[:-1][same]]
    seg_len = np.hypot(*(b - a).T)
    pos = seg_len > 0
    a, b, seg_line, seg_len = a[pos], b[pos], seg_line[pos], seg_len[pos]
    nsub = np.maximum(1, np.ceil(seg_len / spacing)).astype(np.int64)
    rep = np.repeat(np.arange(nsub.size), nsub)
    k = np.arange(rep.size) - np.repeat(np.cumsum(nsub) - nsub, nsub)
    n = nsub[rep]
    d = (b - a)[rep]
    p0 = a[rep] + d * (k / n)[:, None]
    last = k + 1 == n
    p1 = np.where(last[:, None], b[rep], a[rep] + d * ((k + 1) / n)[:, None])
    return p0, p1, seg_line[rep]


class _CellTable:
    """Projected vertices (padded, CCW), convexity and 1-disks of the cells seen so far."""

    def __init__(self) -> None:
        self.cells = np.zeros(0, dtype=np.uint64)
        self.verts = np.zeros((0, 6, 2))
        self.nvert = np.zeros(0, dtype=np.int64)
        self.convex = np.zeros(0, dtype=bool)
        self.disk = np.zeros((0, 7), dtype=np.uint64)

    def add(self, cells: np.ndarray, *, disks: bool = False) -> None:
        """Add cells (and their 1-disks if asked) not yet in the table."""
        new = np.setdiff1d(cells, self.cells)
        new = new[new != 0]
        if new.size:
            xy, counts = _projected_vertices(new, analysis_crs())
            m = max(int(counts.max()), self.verts.shape[1])
            start = np.cumsum(counts) - counts
            # pad each ring by repeating its first vertex (zero-length edges: no constraint)
            col = np.arange(m)[None, :]
            src = start[:, None] + np.where(col < counts[:, None], col, 0)
            v = xy[src]
            area2 = _ring_area2(v)
            v[area2 < 0] = _reverse_rings(v[area2 < 0], counts[area2 < 0])
            convex = _is_convex(v)
            old = self.verts
            if old.shape[1] < m:
                pad = np.repeat(old[:, :1, :], m - old.shape[1], axis=1)
                old = np.concatenate([old, pad], axis=1)
            cells_all = np.concatenate([self.cells, new])
            order = np.argsort(cells_all, kind="stable")
            self.cells = cells_all[order]
            self.verts = np.concatenate([old, v])[order]
            self.nvert = np.concatenate([self.nvert, counts])[order]
            self.convex = np.concatenate([self.convex, convex])[order]
            dk = np.zeros((new.size, 7), dtype=np.uint64)
            self.disk = np.concatenate([self.disk, dk])[order]
        if disks:
            idx = self.index(cells[cells != 0])
            need = idx[self.disk[idx, 0] == 0]
            if need.size:
                need = np.unique(need)
                rows = [h3i.grid_disk(int(c), 1) for c in self.cells[need].tolist()]
                dk = np.zeros((need.size, 7), dtype=np.uint64)
                for i, r in enumerate(rows):
                    dk[i, : len(r)] = np.sort(np.asarray(r, dtype=np.uint64))
                self.disk[need] = dk

    def index(self, cells: np.ndarray) -> np.ndarray:
        """Row of each cell (cells must be in the table)."""
        return np.searchsorted(self.cells, cells)


def _ring_area2(v: np.ndarray) -> np.ndarray:
    """Twice the signed area of padded rings (padding adds zero-area terms)."""
    x, y = v[..., 0] - v[:, :1, 0], v[..., 1] - v[:, :1, 1]
    return (x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1)


def _reverse_rings(v: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Reverse the vertex order of padded rings, keeping the padding at the end."""
    m = v.shape[1]
    col = np.arange(m)[None, :]
    src = np.where(col < counts[:, None], counts[:, None] - 1 - col, 0)
    return np.take_along_axis(v, src[..., None], axis=1)


def _is_convex(v: np.ndarray) -> np.ndarray:
    """CCW padded rings with no reflex vertex (relative tolerance 1e-9)."""
    e = np.roll(v, -1, axis=1) - v
    e2 = np.roll(e, -1, axis=1)
    cross = e[..., 0] * e2[..., 1] - e[..., 1] * e2[..., 0]
    scale = np.hypot(*np.moveaxis(e, -1, 0)) * np.hypot(*np.moveaxis(e2, -1, 0))
    return (cross >= -1e-9 * scale).all(axis=1)


def _clip_lengths(p0: np.ndarray, p1: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Length of each segment p0->p1 inside a convex CCW polygon (Cyrus-Beck, vectorised)."""
    d = p1 - p0
    rel = verts - p0[:, None, :]  # vertices relative to the segment start
    e = np.roll(rel, -1, axis=1) - rel
    nx, ny = -e[..., 1], e[..., 0]  # inward normals of CCW edges
    num = -(nx * rel[..., 0] + ny * rel[..., 1])  # n . (p0 - v)
    den = nx * d[:, None, 0] + ny * d[:, None, 1]  # n . d
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -num / den
    t_in = np.where(den > 0, t, -np.inf).max(axis=1).clip(0.0, None)
    t_out = np.where(den < 0, t, np.inf).min(axis=1).clip(None, 1.0)
    outside = ((den == 0) & (num < 0)).any(axis=1)
    frac = np.where(outside, 0.0, np.clip(t_out - t_in, 0.0, None))
    return frac * np.hypot(d[:, 0], d[:, 1])


def _pair_lengths(
    table: _CellTable, p0: np.ndarray, p1: np.ndarray, sub: np.ndarray, cell: np.ndarray
) -> np.ndarray:
    """Length of sub-segment ``sub`` inside ``cell`` for every pair (chunked)."""
    out = np.zeros(sub.size)
    row = table.index(cell)
    convex = table.convex[row]
    for s in range(0, sub.size, _PAIRS_PER_CHUNK):
        sl = slice(s, s + _PAIRS_PER_CHUNK)
        out[sl] = _clip_lengths(p0[sub[sl]], p1[sub[sl]], table.verts[row[sl]])
    nc = np.flatnonzero(~convex)
    if nc.size:  # (rare) slightly non-convex projected cells: exact GEOS intersection
        segs = shapely.linestrings(
            np.stack([p0[sub[nc]], p1[sub[nc]]], axis=1).reshape(-1, 2),
            indices=np.repeat(np.arange(nc.size), 2),
        )
        polys = shapely.polygons(table.verts[row[nc]])
        out[nc] = shapely.length(shapely.intersection(segs, polys))
    return out


def _candidates(
    table: _CellTable, a: np.ndarray, b: np.ndarray, *, full: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(piece, cell) candidate pairs: {A} if both ends are in A, else disk(A) | disk(B).

    With ``full`` every piece gets disk(A) | disk(B) (refinement rounds).
    """
    same = (a == b) & (not full)
    s_same = np.flatnonzero(same)
    s_diff = np.flatnonzero(~same)
    if s_diff.size:
        table.add(np.concatenate([a[s_diff], b[s_diff]]), disks=True)
        both = np.concatenate(
            [table.disk[table.index(a[s_diff])], table.disk[table.index(b[s_diff])]], 1
        )
        both.sort(axis=1)
        keep = both != 0
        keep[:, 1:] &= both[:, 1:] != both[:, :-1]
        subs = np.concatenate([s_same, np.repeat(s_diff, keep.sum(axis=1))])
        cells = np.concatenate([a[s_same], both[keep]])
    else:
        subs, cells = s_same, a[s_same]
    table.add(cells)
    return subs, cells


def _cells_xy(x: np.ndarray, y: np.ndarray, res: int) -> np.ndarray:
    lon, lat, _ = transform_xy(x, y, analysis_crs(), WGS84)
    return _latlng_cells(lat, lon, res)


def _lines_chunk(
    table: _CellTable, p0: np.ndarray, p1: np.ndarray, sline: np.ndarray, res: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(line, cell, length) rows for the sub-segments of a chunk of lines."""
    # the end of a piece is usually the start of the next: look each point up once
    cont = np.concatenate([(p1[:-1] == p0[1:]).all(axis=1), [False]])
    ca = _cells_xy(p0[:, 0], p0[:, 1], res)
    cb = np.empty_like(ca)
    cb[:-1][cont[:-1]] = ca[1:][cont[:-1]]
    brk = np.flatnonzero(~cont)
    cb[brk] = _cells_xy(p1[brk, 0], p1[brk, 1], res)
    out_line, out_cell, out_len = [], [], []
    idx = np.arange(p0.shape[0])
    for rnd in range(6):  # refinement rounds; the first is complete in practice
        subs, cells = _candidates(table, ca, cb, full=rnd > 0)
        lens = _pair_lengths(table, p0, p1, subs, cells)
        sublen = np.hypot(*(p1 - p0).T)
        got = np.bincount(subs, weights=lens, minlength=p0.shape[0])
        bad = np.abs(got - sublen) > 1e-9 * sublen + 1e-7
        ok_pair = ~bad[subs] & (lens > 0)
        out_line.append(sline[idx[subs[ok_pair]]])
        out_cell.append(cells[ok_pair])
        out_len.append(lens[ok_pair])
        if not bad.any():
            break
        # a piece crossed cells its end cells do not predict (too long for the adjacency
        # argument, or H3 and the straight-edged polygon disagree at coarse resolutions):
        # split it in 4 and clip against both end cells' disks
        b_idx = np.flatnonzero(bad)
        q0, q1 = p0[b_idx], p1[b_idx]
        k = np.tile(np.arange(4), b_idx.size)
        r = np.repeat(np.arange(b_idx.size), 4)
        p0 = q0[r] + (q1 - q0)[r] * (k / 4)[:, None]
        p1 = np.where((k == 3)[:, None], q1[r], q0[r] + (q1 - q0)[r] * ((k + 1) / 4)[:, None])
        idx = idx[b_idx][r]
        ca = _cells_xy(p0[:, 0], p0[:, 1], res)
        cb = _cells_xy(p1[:, 0], p1[:, 1], res)
    else:
        log.warning("lines_to_cells: %d pieces still not fully covered", int(bad.sum()))
    return np.concatenate(out_line), np.concatenate(out_cell), np.concatenate(out_len)


def _line_cell_pieces(
    g: np.ndarray, degenerate: np.ndarray, spacing: float, res: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(line position, cell, length) of every clipped piece, in chunks of bounded size."""
    table = _CellTable()
    good = np.flatnonzero(~degenerate)
    parts, part_pos = shapely.get_parts(g[good], return_index=True)
    part_line = good[part_pos]
    # chunk by estimated number of pieces to bound memory
    est = np.bincount(
        part_line,
        weights=shapely.length(parts) / spacing + shapely.get_num_points(parts),
        minlength=g.size,
    )
    chunk_of_line = (np.cumsum(est) // _SUBS_PER_CHUNK).astype(np.int64)
    chunk_of_part = chunk_of_line[part_line]
    cuts = np.flatnonzero(np.diff(chunk_of_part)) + 1
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for sel in np.split(np.arange(parts.size), cuts):
        if sel.size:
            p0, p1, sline = _subsegments(parts[sel], part_line[sel], spacing)
            if p0.shape[0]:
                rows.append(_lines_chunk(table, p0, p1, sline, res))
    line = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, np.int64)
    cell = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, np.uint64)
    lens = np.concatenate([r[2] for r in rows]) if rows else np.zeros(0)
    return line, cell, lens


def _aggregate(
    line: np.ndarray, cell: np.ndarray, lens: np.ndarray, idv: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum the pieces per (line, cell), ordered by line id rank then cell."""
    rank = np.empty(idv.size, dtype=np.int64)
    rank[np.argsort(idv, kind="stable")] = np.arange(idv.size)
    order = np.lexsort((cell, rank[line]))
    line, cell, lens = line[order], cell[order], lens[order]
    first = np.ones(line.size, dtype=bool)
    first[1:] = (line[1:] != line[:-1]) | (cell[1:] != cell[:-1])
    starts = np.flatnonzero(first)
    total = np.add.reduceat(lens, starts) if starts.size else np.zeros(0)
    return line[starts], cell[starts], total


def lines_to_cells(
    geoms: Any,
    res: int,
    *,
    ids: Any = None,
    pieces: bool = False,
    _spacing_factor: float = 0.45,
) -> pd.DataFrame:
    """Every H3 cell each line crosses, with the exact length of the line inside it.

    Parameters
    ----------
    geoms : array of shapely (Multi)LineStrings or WKB, the analysis CRS
    res : int
        H3 resolution 0..15.
    ids : array-like, optional
        Line ids (unique); default the position in ``geoms``.
    pieces : bool
        Add a ``geometry`` column: the part of the line inside the cell polygon.

    Returns
    -------
    pandas.DataFrame
        ``line``, ``cell`` (uint64), ``length_m``, sorted by line id then cell. Lengths of a
        line add up to its length. Empty, missing and zero-length lines get no rows; their
        ids are in ``df.attrs["degenerate"]`` (and logged).

    Notes
    -----
    Lines are split into pieces of at most 0.45 edge length; the cells of the piece ends
    are looked up with H3. A piece with both ends in one cell lies in it (cells are convex);
    otherwise it can only cross the two end cells and their common neighbours (crossing a
    third edge takes at least one edge length), so it is clipped against the two end
    cells' 1-disks. Each (piece, cell) pair is clipped exactly against the projected cell
    polygon (Cyrus-Beck, vectorised; GEOS for any non-convex cell). A piece whose clipped
    lengths do not add up to its length is split and redone against full disks, so the
    per-line sums hold by construction, not by assumption.
    """
    res = check_resolution(res)
    g, idv = _line_inputs(geoms, ids)
    length = np.nan_to_num(shapely.length(g), nan=0.0)
    degenerate = length <= 0
    if degenerate.any():
        log.warning(
            "lines_to_cells: %d of %d line(s) are missing, empty or zero-length; they get no "
            "rows (ids in df.attrs['degenerate'])",
            int(degenerate.sum()),
            g.size,
        )
    line, cell, lens = _line_cell_pieces(g, degenerate, _spacing_factor * edge_length_m(res), res)
    line, cell, total = _aggregate(line, cell, lens, idv)
    df = pd.DataFrame({"line": idv[line], "cell": cell.astype(np.uint64), "length_m": total})
    if pieces:
        df["geometry"] = shapely.intersection(g[line], cell_polygons(cell))
    df.attrs["degenerate"] = idv[degenerate].tolist()
    return df
