"""Street lattice: superblocks, local grids, chains, junctions, arterials and features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from .fields import hash_uniform
from .geometry import ragged, ragged_cumlen, ragged_substrings
from .reference import load_reference
from .street_plan import (
    _BASE_NAMES,
    _T_FEAT,
    _T_LINE,
    _T_NAME,
    _T_NODE_U,
    _T_NODE_V,
    _T_SB,
    _TYPES_ART,
    ARTERIAL_SPACING_M,
    COLLECTOR,
    CREEK,
    EXPRESSWAY,
    FEATURE_PIECE_M,
    HYDRO,
    LANEWAY,
    LOCAL,
    LONG_BLOCK,
    MAJOR,
    MINOR,
    RAILWAY,
    RIVER,
    SHORT_BLOCK,
    TRAIL,
    WALKWAY,
    Frame,
    Layout,
    ward_at,
)

# --------------------------------------------------------------------------- helpers


def _ragged_arange(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of ``counts`` items: (group of each item, index within its group)."""
    counts = np.asarray(counts, dtype=np.int64)
    group = np.repeat(np.arange(len(counts)), counts)
    start = np.cumsum(counts) - counts
    return group, np.arange(int(counts.sum())) - start[group]


def _offsets(counts: np.ndarray) -> np.ndarray:
    off = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=off[1:])
    return off


def _inside(region: shapely.Geometry, xy: np.ndarray) -> np.ndarray:
    return shapely.contains_xy(region, xy[:, 0], xy[:, 1])


def _pick(u: np.ndarray, values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The value at quantile ``u`` (uniform choice, or by ``weights``)."""
    if weights is None:
        return values[np.minimum((u * len(values)).astype(np.int64), len(values) - 1)]
    cdf = np.cumsum(weights) / np.sum(weights)
    return values[np.minimum(np.searchsorted(cdf, u, side="right"), len(values) - 1)]


def join_names(*parts: np.ndarray) -> np.ndarray:
    """Name parts joined by spaces, skipping missing parts; None when the first is missing."""
    out = pd.Series(parts[0], dtype="string")
    for p in parts[1:]:
        s = pd.Series(p, dtype="string")
        out = out.where(s.isna(), out + " " + s)
    return np.array(out.astype(object).where(out.notna(), None), dtype=object)


# --------------------------------------------------------------------------- features


def _curve(
    t: np.ndarray, base: float, amps: tuple[float, ...], waves: tuple[float, ...], ph: np.ndarray
) -> np.ndarray:
    out = np.full_like(t, base)
    for a, w, p in zip(amps, waves, ph, strict=True):
        out = out + a * np.sin(2 * np.pi * t / w + p)
    return out


def _feature_lines(seed: int, frame: Frame) -> list[tuple[np.ndarray, np.ndarray, int, str | None]]:
    """The feature lines in frame coordinates on the full footprint: (u, v, class, name)."""
    u, v = frame.to_frame(*shapely.get_coordinates(load_reference().area).T)
    umin, umax, vmin, vmax = u.min(), u.max(), v.min(), v.max()
    width, height = umax - umin, vmax - vmin
    rnd = hash_uniform(seed, _T_FEAT, np.arange(64))
    ph = rnd * 2 * np.pi
    step = 30.0
    tv = np.arange(vmin - 500, vmax + 500, step)
    tu = np.arange(umin - 500, umax + 500, step)
    lines: list[tuple[np.ndarray, np.ndarray, int, str | None]] = []
    rivers = ("Humber River", "Don River", "Highland River")
    creeks = ("Black Creek", "Mimico Creek", "Taylor Creek", "Wilket Creek", "Etobicoke Creek", "Petticoat Creek")  # fmt: skip
    for i, pos in enumerate((0.20, 0.52, 0.84)):
        uu = _curve(
            tv,
            umin + pos * width,
            (380.0, 110.0, 40.0),
            (5200.0, 1400.0, 420.0),
            ph[3 * i : 3 * i + 3],
        )
        lines.append((uu, tv, RIVER, rivers[i]))
        for j, side in enumerate((-1.0, 1.0)):  # two creeks join each river
            k = 2 * i + j
            v0 = vmin + (0.3 + 0.4 * rnd[20 + k]) * height
            u0 = float(np.interp(v0, tv, uu))
            tc = np.arange(0.0, (0.15 + 0.15 * rnd[30 + k]) * height, step)
            wig = _curve(tc, 0.0, (120.0, 35.0), (2600.0, 700.0), ph[40 + 2 * k : 42 + 2 * k])
            lines.append((u0 + side * tc * 0.8 + wig - wig[0], v0 + tc * 0.6, CREEK, creeks[k]))
    for i, pos in enumerate((0.30, 0.58)):
        vv = _curve(
            tu, vmin + pos * height + (tu - umin) * 0.03, (150.0,), (14000.0,), ph[10 + i : 11 + i]
        )
        lines.append((tu, vv, RAILWAY, None))
    lines.append((tu, vmin + 0.74 * height + (tu - umin) * 0.015, HYDRO, None))
    lines.append(
        (
            tu,
            _curve(tu, vmin + 0.86 * height, (120.0,), (16000.0,), ph[12:13]),
            EXPRESSWAY,
            "Northern Expy",
        )
    )
    lines.append(
        (
            tu,
            _curve(tu, vmin + 0.06 * height + (tu - umin) * 0.02, (80.0,), (9000.0,), ph[13:14]),
            EXPRESSWAY,
            "Lakeshore Expy",
        )
    )
    lines.append(
        (
            _curve(tv, umin + 0.47 * width, (160.0,), (11000.0,), ph[14:15]),
            tv,
            EXPRESSWAY,
            "Valley Pkwy",
        )
    )
    return lines


def _feature_pieces(
    seed: int, parts: np.ndarray, cls: np.ndarray, names: np.ndarray, f: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut feature lines into pieces of about :data:`FEATURE_PIECE_M` (cut points jittered)."""
    # cut points jittered by +-20 % of a piece
    coords, offsets = ragged(parts)
    cum = ragged_cumlen(coords, offsets)
    flen = shapely.length(parts)
    npieces = np.maximum(1, np.round(flen / (FEATURE_PIECE_M * f))).astype(np.int64)
    line, k = _ragged_arange(npieces)

    def cut(q: np.ndarray) -> np.ndarray:
        h = hash_uniform(seed, _T_FEAT, 1000 + line, q)
        inner = (q + (h - 0.5) * 0.4) / npieces[line] * flen[line]
        return np.where(q == 0, 0.0, np.where(q >= npieces[line], flen[line], inner))

    pc, po = ragged_substrings(coords, offsets, line, cut(k), cut(k + 1), cum)
    pieces = shapely.linestrings(pc, indices=np.repeat(np.arange(len(line)), np.diff(po)))
    return pieces, cls[line], names[line]


def _features(
    seed: int, frame: Frame, region: shapely.Geometry, f: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rivers, creeks, railways, a hydro line and expressways, cut into centreline pieces.

    The lines are laid out on the full footprint (so a window sees the same ones), clipped
    to ``region`` and cut into pieces of about :data:`FEATURE_PIECE_M` metres.
    Returns the pieces, their class and their name (or ``None``).
    """
    lines = _feature_lines(seed, frame)
    geoms = np.array(
        [shapely.LineString(np.column_stack(frame.to_world(lu, lv))) for lu, lv, _, _ in lines],
        dtype=object,
    )
    parts, idx = shapely.get_parts(shapely.intersection(geoms, region), return_index=True)
    keep = (shapely.get_type_id(parts) == 1) & (shapely.length(parts) > 20.0)
    parts, idx = parts[keep], idx[keep]
    cls = np.array([c for _, _, c, _ in lines], dtype=np.int8)[idx]
    names = np.array([n for _, _, _, n in lines], dtype=object)[idx]
    if not len(parts):
        return parts, cls, names
    return _feature_pieces(seed, parts, cls, names, f)


# --------------------------------------------------------------------------- lattice


@dataclass
class _Blocks:
    """Arterial lattice nodes and the superblocks (arterial cells) in the region."""

    i0: int
    j0: int
    node_x: np.ndarray  # (nJ, nI)
    node_y: np.ndarray
    si: np.ndarray  # lattice cell index (0-based) of each superblock
    sj: np.ndarray
    corners: np.ndarray  # (B, 4, 2): c00, c10, c01, c11
    ward: np.ndarray
    organic: np.ndarray
    n_u: np.ndarray  # cells along u (local lines are k = 1 .. n_u - 1)
    n_v: np.ndarray
    lane_u: np.ndarray  # u = const lines alternate street / laneway
    lane_v: np.ndarray

    @property
    def gi(self) -> np.ndarray:
        """Global lattice column of each superblock (a stable hash key)."""
        return self.si + self.i0

    @property
    def gj(self) -> np.ndarray:
        """Global lattice row of each superblock."""
        return self.sj + self.j0


def _blocks(seed: int, layout: Layout) -> _Blocks:
    """The jittered arterial lattice over the region and the superblock parameters."""
    ref = load_reference()
    fr, region = layout.frame, layout.region
    spacing = ARTERIAL_SPACING_M * layout.f
    ring = shapely.get_exterior_ring(shapely.get_parts(region))
    ru, rv = fr.to_frame(*shapely.get_coordinates(ring).T)
    i0, i1 = int(np.floor(ru.min() / spacing)) - 1, int(np.ceil(ru.max() / spacing)) + 1
    j0, j1 = int(np.floor(rv.min() / spacing)) - 1, int(np.ceil(rv.max() / spacing)) + 1
    ii, jj = np.meshgrid(np.arange(i0, i1 + 1), np.arange(j0, j1 + 1))
    jit = 0.08 * spacing
    nu = ii * spacing + (hash_uniform(seed, _T_NODE_U, ii, jj) - 0.5) * 2 * jit
    nv = jj * spacing + (hash_uniform(seed, _T_NODE_V, ii, jj) - 0.5) * 2 * jit
    nx, ny = fr.to_world(nu, nv)
    sj, si = (a.ravel() for a in np.meshgrid(np.arange(j1 - j0), np.arange(i1 - i0), indexing="ij"))
    corners = np.stack(
        [
            np.column_stack([nx[sj, si], ny[sj, si]]),
            np.column_stack([nx[sj, si + 1], ny[sj, si + 1]]),
            np.column_stack([nx[sj + 1, si], ny[sj + 1, si]]),
            np.column_stack([nx[sj + 1, si + 1], ny[sj + 1, si + 1]]),
        ],
        axis=1,
    )
    polys = shapely.polygons(corners[:, [0, 1, 3, 2, 0]])
    keep = shapely.intersects(region, polys)
    si, sj, corners = si[keep], sj[keep], corners[keep]
    c00, c10, c01, c11 = corners.transpose(1, 0, 2)
    cen = corners.mean(axis=1)
    ward = ward_at(cen[:, 0], cen[:, 1])
    median = ref.ward_median_year[ward]
    h = hash_uniform(seed, _T_SB, si + i0, sj + j0, np.arange(4)[:, None])
    organic = h[0] < np.clip((median - 1935.0) / 45.0, 0.0, 0.85)
    laneways = ~organic & (h[1] < np.clip((1962.0 - median) / 25.0, 0.0, 0.9))
    long_u = h[2] < 0.5
    lw = layout.ward_length_m[ward] * layout.piece_factor
    # a ward whose km do not fit its area at these block sizes gets smaller blocks
    dens_grid = (1 / SHORT_BLOCK + 1 / LONG_BLOCK) / lw + 2 / spacing
    shrink = np.clip(0.65 * dens_grid / np.maximum(layout.ward_density[ward], 1e-12), 0.5, 1.0)
    g_short = SHORT_BLOCK * lw * shrink * (0.9 + 0.2 * h[3])
    g_long = LONG_BLOCK * lw * shrink * (0.9 + 0.2 * h[3])
    width = 0.5 * (np.hypot(*(c10 - c00).T) + np.hypot(*(c11 - c01).T))
    height = 0.5 * (np.hypot(*(c01 - c00).T) + np.hypot(*(c11 - c10).T))
    n_u = np.maximum(1, np.round(width / np.where(long_u, g_long, g_short))).astype(np.int64)
    n_v = np.maximum(1, np.round(height / np.where(long_u, g_short, g_long))).astype(np.int64)
    lane_u = laneways & ~long_u  # the close lines get a laneway between each pair
    lane_v = laneways & long_u
    return _Blocks(
        i0=i0,
        j0=j0,
        node_x=nx,
        node_y=ny,
        si=si,
        sj=sj,
        corners=corners,
        ward=ward,
        organic=organic,
        n_u=np.where(lane_u, 2 * n_u, n_u),
        n_v=np.where(lane_v, 2 * n_v, n_v),
        lane_u=lane_u,
        lane_v=lane_v,
    )


def _lines(seed: int, blk: _Blocks, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Position (0..1) and class of the lines of every superblock along one axis (ragged)."""
    n = blk.n_u if axis == 0 else blk.n_v
    lane = blk.lane_u if axis == 0 else blk.lane_v
    sb, k = _ragged_arange(n + 1)
    nn = n[sb]
    h = hash_uniform(seed, _T_LINE, blk.gi[sb], blk.gj[sb], axis, k)
    inner = (k > 0) & (k < nn)
    jitter = np.where(inner & ~lane[sb], (h - 0.5) * 0.3, 0.0)
    pos = np.where(k == nn, 1.0, (k + jitter) / nn)
    cls = np.full(len(k), LOCAL, dtype=np.int8)
    cls[lane[sb] & (k % 2 == 1)] = LANEWAY
    kc = nn // 2
    kc = np.where(lane[sb], kc - kc % 2, kc)
    cls[(k == kc) & (nn >= 4) & inner] = COLLECTOR
    return pos, cls


@dataclass
class _Grid:
    """Local street nodes and edges of all superblocks.

    Edges: first the U edges (along u on the lines v = v_l, l = 1 .. n_v - 1, node (k, l)
    to (k + 1, l)), then the V edges (along v on the lines u = u_k, k = 1 .. n_u - 1, node
    (k, l) to (k, l + 1)); each group is ordered by superblock, line, position.
    """

    pts: np.ndarray  # node coordinates (N, 2)
    sb: np.ndarray  # superblock of each edge
    a: np.ndarray  # start node
    b: np.ndarray  # end node
    cls: np.ndarray
    axis: np.ndarray  # 0 = U edge, 1 = V edge
    line: np.ndarray  # l for U edges, k for V edges
    pos: np.ndarray  # k for U edges, l for V edges
    n_ue: int
    uoff: np.ndarray  # first U edge of each superblock
    voff: np.ndarray  # first V edge of each superblock

    def u_index(self, blk: _Blocks, sb: np.ndarray, k: np.ndarray, ln: np.ndarray) -> np.ndarray:
        """Index of U edge (k, l) of superblock ``sb``."""
        return self.uoff[sb] + (ln - 1) * blk.n_u[sb] + k

    def v_index(self, blk: _Blocks, sb: np.ndarray, k: np.ndarray, ln: np.ndarray) -> np.ndarray:
        """Index (within the V edges) of V edge (k, l) of superblock ``sb``."""
        return self.voff[sb] + (k - 1) * blk.n_v[sb] + ln


def _grid(seed: int, blk: _Blocks) -> _Grid:
    """Nodes (bilinear in each superblock) and the edges of the local street grids."""
    n_u, n_v = blk.n_u, blk.n_v
    upos, ucls = _lines(seed, blk, 0)
    vpos, vcls = _lines(seed, blk, 1)
    uoff, voff = _offsets(n_u + 1), _offsets(n_v + 1)
    node_sb, loc = _ragged_arange((n_u + 1) * (n_v + 1))
    nk = loc % (n_u[node_sb] + 1)
    nl = loc // (n_u[node_sb] + 1)
    noff = _offsets((n_u + 1) * (n_v + 1))
    u = upos[uoff[node_sb] + nk][:, None]
    v = vpos[voff[node_sb] + nl][:, None]
    c00, c10, c01, c11 = (blk.corners[node_sb, i] for i in range(4))
    pts = (1 - u) * (1 - v) * c00 + u * (1 - v) * c10 + (1 - u) * v * c01 + u * v * c11
    # boundary nodes: exactly on the straight arterial side (same formula as its split points)
    for mask, p, q, t in (
        (nk == 0, c00, c01, v),
        (nk == n_u[node_sb], c10, c11, v),
        (nl == 0, c00, c10, u),
        (nl == n_v[node_sb], c01, c11, u),
    ):
        pts[mask] = ((1 - t) * p + t * q)[mask]

    ue_sb, ue = _ragged_arange(n_u * (n_v - 1))
    ue_k = ue % n_u[ue_sb]
    ue_l = ue // n_u[ue_sb] + 1
    ue_a = noff[ue_sb] + ue_l * (n_u[ue_sb] + 1) + ue_k
    ve_sb, ve = _ragged_arange((n_u - 1) * n_v)
    ve_k = ve // n_v[ve_sb] + 1
    ve_l = ve % n_v[ve_sb]
    ve_a = noff[ve_sb] + ve_l * (n_u[ve_sb] + 1) + ve_k
    return _Grid(
        pts=pts,
        sb=np.concatenate([ue_sb, ve_sb]),
        a=np.concatenate([ue_a, ve_a]),
        b=np.concatenate([ue_a + 1, ve_a + n_u[ve_sb] + 1]),
        cls=np.concatenate([vcls[voff[ue_sb] + ue_l], ucls[uoff[ve_sb] + ve_k]]),
        axis=np.concatenate([np.zeros(len(ue_sb), np.int8), np.ones(len(ve_sb), np.int8)]),
        line=np.concatenate([ue_l, ve_k]),
        pos=np.concatenate([ue_k, ve_l]),
        n_ue=len(ue_sb),
        uoff=_offsets(n_u * (n_v - 1)),
        voff=_offsets((n_u - 1) * n_v),
    )


def _mid_vertices(grid: _Grid, bend: np.ndarray) -> np.ndarray:
    """Mid vertex of each edge, offset sideways by ``bend`` times the edge length."""
    a, b = grid.pts[grid.a], grid.pts[grid.b]
    d = b - a
    return (a + b) / 2 + bend[:, None] * np.column_stack([-d[:, 1], d[:, 0]])


def _calibrate_open_land(
    ward: np.ndarray, length: np.ndarray, m: np.ndarray, need: np.ndarray
) -> np.ndarray:
    """Per ward, the threshold ``tau`` keeping ``need`` metres of edges with ``m >= tau``."""
    n_w = len(need)
    tau = np.full(n_w, -np.inf)
    if len(m) == 0:
        return tau
    order = np.lexsort((-m, ward))  # per ward, descending m
    w_s, m_s = ward[order], m[order]
    csum = np.cumsum(length[order])
    starts = np.searchsorted(w_s, np.arange(n_w), side="left")
    ends = np.searchsorted(w_s, np.arange(n_w), side="right")
    has = ends > starts
    base = np.where(starts > 0, csum[np.maximum(starts - 1, 0)], 0.0)
    goal = base + np.maximum(need, 0.0)
    pos = np.clip(np.searchsorted(csum, goal, side="left"), starts, np.maximum(ends - 1, starts))
    tau[has] = m_s[pos[has]]
    tau[has & (goal >= csum[np.maximum(ends - 1, 0)])] = -np.inf
    return tau


@dataclass
class _Sides:
    """The arterial lattice edges (sides of superblocks) touching the region."""

    ids: np.ndarray  # sorted global side ids
    is_v: np.ndarray
    i: np.ndarray  # lattice column (0-based) of the side's start node
    j: np.ndarray
    start: np.ndarray  # (S, 2)
    end: np.ndarray
    length: np.ndarray
    n_h: int  # ids below n_h are H sides
    n_i: int

    def h_id(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Id of the H side from node (i, j) to (i + 1, j)."""
        return j * self.n_i + i

    def v_id(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Id of the V side from node (i, j) to (i, j + 1)."""
        return self.n_h + j * self.n_i + i


def _sides(blk: _Blocks) -> _Sides:
    n_j, n_i = blk.node_x.shape
    n_h = n_j * n_i
    si, sj = blk.si, blk.sj
    ids = np.unique(
        np.concatenate(
            [sj * n_i + si, (sj + 1) * n_i + si, n_h + sj * n_i + si, n_h + sj * n_i + si + 1]
        )
    )
    is_v = ids >= n_h
    rem = ids - np.where(is_v, n_h, 0)
    j, i = rem // n_i, rem % n_i
    j2 = np.where(is_v, np.minimum(j + 1, n_j - 1), j)
    i2 = np.where(is_v, i, np.minimum(i + 1, n_i - 1))
    start = np.column_stack([blk.node_x[j, i], blk.node_y[j, i]])
    end = np.column_stack([blk.node_x[j2, i2], blk.node_y[j2, i2]])
    return _Sides(ids, is_v, i, j, start, end, np.hypot(*(end - start).T), n_h, n_i)


def _chains(
    grid: _Grid, blk: _Blocks, ok: np.ndarray, cls: np.ndarray, has_mid: np.ndarray, mid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Merge kept local edges into segments from intersection to intersection.

    A node continues a street when both its edges along the line are kept and of the same
    class and no street with mains leaves it sideways; laneways, trails and walkways are
    never merged. Returns the segment LineStrings and the first edge of each.
    """
    n_ue = grid.n_ue
    kept_u, kept_v = np.append(ok[:n_ue], False), np.append(ok[n_ue:], False)  # + sentinel
    cls_u, cls_v = np.append(cls[:n_ue], -1), np.append(cls[n_ue:], -1)
    no_u, no_v = n_ue, len(ok) - n_ue
    side_u = kept_u & np.isin(cls_u, (LOCAL, COLLECTOR))
    side_v = kept_v & np.isin(cls_v, (LOCAL, COLLECTOR))
    single = (TRAIL, WALKWAY, LANEWAY)

    sb, k, ln = grid.sb[:n_ue], grid.pos[:n_ue], grid.line[:n_ue]
    inner = k > 0
    kk = np.maximum(k, 1)
    prev = np.where(inner, grid.u_index(blk, sb, kk - 1, ln), no_u)
    cont_u = (
        inner
        & ~np.isin(cls_u[:-1], single)
        & kept_u[prev]
        & (cls_u[prev] == cls_u[:-1])
        & ~side_v[np.where(inner, grid.v_index(blk, sb, kk, ln - 1), no_v)]
        & ~side_v[np.where(inner, grid.v_index(blk, sb, kk, ln), no_v)]
    )
    sb, k, ln = grid.sb[n_ue:], grid.line[n_ue:], grid.pos[n_ue:]
    inner = ln > 0
    ll = np.maximum(ln, 1)
    prev = np.where(inner, grid.v_index(blk, sb, k, ll - 1), no_v)
    cont_v = (
        inner
        & ~np.isin(cls_v[:-1], single)
        & kept_v[prev]
        & (cls_v[prev] == cls_v[:-1])
        & ~side_u[np.where(inner, grid.u_index(blk, sb, k - 1, ll), no_u)]
        & ~side_u[np.where(inner, grid.u_index(blk, sb, k, ll), no_u)]
    )
    start = ok & ~np.concatenate([cont_u, cont_v])

    sel = np.flatnonzero(ok)
    st = start[sel]
    chain = np.cumsum(st) - 1
    n_chain = int(st.sum())
    last = np.ones(len(sel), dtype=bool)
    last[:-1] = st[1:]
    hm = has_mid[sel]
    cnt = 1 + hm.astype(np.int64) + last.astype(np.int64)
    pos = _offsets(cnt)[:-1]
    coords = np.empty((int(cnt.sum()), 2))
    coords[pos] = grid.pts[grid.a[sel]]
    coords[(pos + 1)[hm]] = mid[sel][hm]
    coords[(pos + 1 + hm)[last]] = grid.pts[grid.b[sel]][last]
    per_chain = np.bincount(chain, weights=cnt, minlength=n_chain).astype(np.int64)
    geom = shapely.linestrings(coords, indices=np.repeat(np.arange(n_chain), per_chain))
    return geom, sel[st]


def _junctions(
    grid: _Grid, blk: _Blocks, sides: _Sides, ok: np.ndarray, snap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T-junctions of the local streets ``ok`` on arterial sides; close ones are snapped together.

    Moves the snapped nodes in ``grid.pts`` and returns the junction nodes, their side
    (index into ``sides``) and distance from the side's start, sorted along each side.
    """
    n_ue = grid.n_ue
    sb_u, sb_v = grid.sb[:n_ue], grid.sb[n_ue:]
    k_u, l_v = grid.pos[:n_ue], grid.pos[n_ue:]
    ok_u, ok_v = ok[:n_ue], ok[n_ue:]
    si, sj = blk.si, blk.sj
    groups = (
        (ok_u & (k_u == 0), grid.a[:n_ue], sides.v_id(si[sb_u], sj[sb_u])),
        (ok_u & (k_u == blk.n_u[sb_u] - 1), grid.b[:n_ue], sides.v_id(si[sb_u] + 1, sj[sb_u])),
        (ok_v & (l_v == 0), grid.a[n_ue:], sides.h_id(si[sb_v], sj[sb_v])),
        (ok_v & (l_v == blk.n_v[sb_v] - 1), grid.b[n_ue:], sides.h_id(si[sb_v], sj[sb_v] + 1)),
    )
    node = np.concatenate([nodes[m] for m, nodes, _ in groups])
    side = np.searchsorted(sides.ids, np.concatenate([ids[m] for m, _, ids in groups]))
    t = np.hypot(*(grid.pts[node] - sides.start[side]).T)
    order = np.lexsort((t, side))
    node, side, t = node[order], side[order], t[order]
    new = np.ones(len(t), dtype=bool)
    new[1:] = (side[1:] != side[:-1]) | (t[1:] - t[:-1] > snap)
    rep = np.maximum.accumulate(np.where(new, np.arange(len(t)), 0))
    grid.pts[node] = grid.pts[node[rep]]
    node, side, t = node[new], side[new], t[new]
    far = (t > snap) & (t < sides.length[side] - snap)  # no sliver next to a corner
    return node[far], side[far], t[far]


def _arterials(
    seed: int,
    blk: _Blocks,
    sides: _Sides,
    pts: np.ndarray,
    node: np.ndarray,
    side: np.ndarray,
    t: np.ndarray,
    layout: Layout,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arterial segments between lattice corners and T-junctions, with class and name."""
    n_s = len(sides.ids)
    p_side = np.concatenate([np.arange(n_s), side, np.arange(n_s)])
    p_t = np.concatenate([np.full(n_s, -1.0), t, sides.length + 1.0])
    p_xy = np.concatenate([sides.start, pts[node], sides.end])
    order = np.lexsort((p_t, p_side))
    p_side, p_xy = p_side[order], p_xy[order]
    same = p_side[1:] == p_side[:-1]
    a, b, s = p_xy[:-1][same], p_xy[1:][same], p_side[:-1][same]
    mid = (a + b) / 2
    region = layout.region
    keep = (
        _inside(region, a)
        & _inside(region, b)
        & _inside(region, mid)
        & (np.hypot(*(b - a).T) > 0.5)
    )
    a, b, s, mid = a[keep], b[keep], s[keep], mid[keep]
    geom = shapely.linestrings(np.stack([a, b], axis=1))
    vert = sides.is_v[s]
    key = np.where(vert, sides.i[s] + blk.i0, sides.j[s] + blk.j0)  # lattice column / row
    h = hash_uniform(seed, _T_NAME, key, vert.astype(np.int64), 7, np.arange(2)[:, None])
    phase = int(hash_uniform(seed, _T_NAME, 99)[()] < 0.5)
    cls = np.where((key + phase) % 2 == 0, MAJOR, MINOR).astype(np.int8)
    u, _ = layout.frame.to_frame(mid[:, 0], mid[:, 1])
    direction = np.where(u < 0, "W", "E").astype(object)
    direction[vert] = None
    return geom, cls, _pick(h[0], _BASE_NAMES), _pick(h[1], _TYPES_ART), direction
