"""The synthetic street centreline network, laid out on Toronto's real footprint.

Layout (all lengths scale with ``f``, 1 at Toronto's density):

* an arterial grid rotated like Toronto's street grid (16.7 degrees), about 1 km apart,
  alternating major and minor arterials, its nodes jittered so arterials kink;
* each arterial cell (a *superblock*) gets its own grid of local streets in bilinear
  coordinates: block sizes from the pseudo-ward's mean pipe length (short side about
  0.8 x, long side about 2.6 x), laneways mid-block in old wards, one collector per
  direction, curved streets and cul-de-sacs in post-war ("organic") superblocks;
* open land (parks, ravines, yards) from a smooth random field: its threshold per ward is
  solved so the street length carrying pipes matches the ward's km; park streets become
  trails or disappear;
* rivers, creeks, railways, a hydro corridor and expressways cross the city; local
  streets do not cross them (arterials do, on bridges); they carry no pipes.

Local streets end on arterials with T-junctions (arterial segments are split there;
junctions from both sides closer than 12 m are merged into one crossing); segments run
from intersection to intersection: straight-through nodes with no side street are merged
away. Everything is vectorised over superblocks, lines and edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import shapely

from .fields import GridField, hash_uniform, smooth_field
from .geometry import ragged_cumlen, ragged_substrings
from .params import DEFAULT_N_PIPES, SynthParams
from .reference import Reference, load_reference

__all__ = ["CLASSES", "Layout", "StreetNet", "build_streets", "plan_layout"]

#: street/feature classes: (FEATURE_CODE_DESC, FEATURE_CODE, carries pipes)
CLASSES: tuple[tuple[str, int, bool], ...] = (
    ("Major Arterial", 201200, True),
    ("Minor Arterial", 201300, True),
    ("Collector", 201400, True),
    ("Local", 201500, True),
    ("Laneway", 201700, False),
    ("Expressway", 201100, False),
    ("Trail", 204001, False),
    ("Walkway", 204002, False),
    ("River", 203001, False),
    ("Creek/Tributary", 203002, False),
    ("Major Railway", 202001, False),
    ("Hydro Line", 205001, False),
)
MAJOR, MINOR, COLLECTOR, LOCAL, LANEWAY, EXPRESSWAY, TRAIL, WALKWAY = range(8)
RIVER, CREEK, RAILWAY, HYDRO = range(8, 12)
CARRIES = np.array([c[2] for c in CLASSES])

GRID_ANGLE_DEG = 16.7  # Toronto's street grid is turned about 16.7 degrees from true north
ARTERIAL_SPACING_M = 1000.0
SNAP_M = 12.0  # T-junctions closer than this on an arterial become one crossing
FIELD_CELL_M = 100.0
MAX_DENSITY = 16.0  # beyond 16 x Toronto's pipe count, pipes get shorter, not streets
NO_MAIN_SHARE = 0.03  # carrying-class streets that nevertheless have no main

# hash tags (independent draws)
_T_NODE_U, _T_NODE_V, _T_SB, _T_LINE, _T_EDGE, _T_CUL, _T_CURVE, _T_NAME = range(101, 109)
_T_TRAIL, _T_FEAT, _T_NOMAIN = 109, 110, 111


@dataclass(frozen=True)
class Frame:
    """The rotated frame of the street grid (u along the grid's east, v along its north)."""

    ox: float
    oy: float
    c: float
    s: float

    def to_world(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid-frame coordinates -> EPSG:2952."""
        return self.ox + u * self.c - v * self.s, self.oy + u * self.s + v * self.c

    def to_frame(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """EPSG:2952 -> grid-frame coordinates."""
        dx, dy = np.asarray(x) - self.ox, np.asarray(y) - self.oy
        return dx * self.c + dy * self.s, -dx * self.s + dy * self.c


@dataclass(frozen=True)
class Layout:
    """Where the city goes and at which density.

    Attributes
    ----------
    region
        Polygon (EPSG:2952) the streets are built in: the service area, or a window of it.
    f
        Length scale of the street pattern (1 at Toronto's density, smaller = denser).
    piece_factor
        Extra split of each street into pipes beyond the density cap (1 normally).
    ward_target_km
        Pipe km to build per pseudo-ward inside the region.
    ward_length_m
        Target mean pipe length per pseudo-ward (metres, already scaled).
    """

    region: shapely.Geometry
    f: float
    piece_factor: float
    ward_target_km: np.ndarray
    ward_length_m: np.ndarray
    ward_density: np.ndarray
    frame: Frame
    grid_bounds: tuple[float, float, float, float]


@dataclass
class StreetNet:
    """The generated centreline segments (EPSG:2952), in a deterministic order."""

    geometry: np.ndarray  # LineStrings
    cls: np.ndarray  # int8 index into CLASSES
    name: np.ndarray  # object: full name, or None
    name_base: np.ndarray  # object: name part (e.g. 'Birch') or None
    name_type: np.ndarray  # object: type part (St, Ave ...) or None
    name_dir: np.ndarray  # object: direction (E/W) or None
    ward: np.ndarray  # int16 pseudo-ward index
    carries: np.ndarray  # bool: has a watermain
    length: np.ndarray


# --------------------------------------------------------------------------- fields


@cache
def _grid_bounds() -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = load_reference().area.bounds
    m = 3000.0
    snap = FIELD_CELL_M
    return (
        float(np.floor((x0 - m) / snap) * snap),
        float(np.floor((y0 - m) / snap) * snap),
        float(np.ceil((x1 + m) / snap) * snap),
        float(np.ceil((y1 + m) / snap) * snap),
    )


@cache
def ward_grid() -> GridField:
    """Pseudo-ward index on the field grid (cells outside every ward take the nearest)."""
    from scipy import ndimage

    ref = load_reference()
    x0, y0, x1, y1 = _grid_bounds()
    nx = int(round((x1 - x0) / FIELD_CELL_M))
    ny = int(round((y1 - y0) / FIELD_CELL_M))
    xs = x0 + (np.arange(nx) + 0.5) * FIELD_CELL_M
    ys = y0 + (np.arange(ny) + 0.5) * FIELD_CELL_M
    gx, gy = np.meshgrid(xs, ys)
    idx = np.full(gx.shape, -1, dtype=np.int32)
    for i, poly in enumerate(ref.ward_polygons):
        shapely.prepare(poly)
        idx[(idx < 0) & shapely.contains_xy(poly, gx, gy)] = i
    missing = idx < 0
    if missing.any():
        _, (ri, ci) = ndimage.distance_transform_edt(missing, return_indices=True)
        idx = idx[ri, ci]
    return GridField(idx.astype(np.float64), x0, y0, FIELD_CELL_M, "ward")


def ward_at(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pseudo-ward index at points (nearest cell, no interpolation)."""
    g = ward_grid()
    ny, nx = g.values.shape
    ci = np.clip(((np.asarray(x) - g.x0) // g.cell).astype(np.int64), 0, nx - 1)
    ri = np.clip(((np.asarray(y) - g.y0) // g.cell).astype(np.int64), 0, ny - 1)
    return g.values[ri, ci].astype(np.int16)


def city_fields(seed: int, soil_length_scale_m: float) -> dict[str, GridField]:
    """The seeded smooth fields: soil corrosivity, development age, open land."""
    b = _grid_bounds()
    return {
        "soil": smooth_field(seed, 11, b, FIELD_CELL_M, soil_length_scale_m, "soil_corrosivity"),
        "age": smooth_field(seed, 12, b, FIELD_CELL_M, 600.0, "development_age"),
        "park": smooth_field(seed, 13, b, FIELD_CELL_M, 350.0, "open_land"),
    }


# --------------------------------------------------------------------------- layout


def _frame() -> Frame:
    x0, y0, x1, y1 = load_reference().area.bounds
    a = np.deg2rad(GRID_ANGLE_DEG)
    return Frame(
        round((x0 + x1) / 2, -2), round((y0 + y1) / 2, -2), float(np.cos(a)), float(np.sin(a))
    )


def _ward_defaults(ref: Reference) -> tuple[np.ndarray, np.ndarray]:
    """Per-ward pipe count and km at the default size (the City's ward figures, rescaled)."""
    n = ref.ward_segments / ref.ward_segments.sum() * DEFAULT_N_PIPES
    km = ref.ward_km / ref.ward_km.sum() * ref.total_km * DEFAULT_N_PIPES / ref.total_segments
    return n, km


def plan_layout(params: SynthParams) -> Layout:
    """Choose the region and density for ``params.n_pipes`` (window, full city or denser)."""
    from pyproj import Transformer

    ref = load_reference()
    n_def, km_def = _ward_defaults(ref)
    length_def = km_def * 1000.0 / n_def
    frame = _frame()
    s = params.scale
    if s >= 1.0:
        dens = min(s, MAX_DENSITY)
        f = 1.0 / np.sqrt(dens)
        return Layout(
            region=ref.area,
            f=float(f),
            piece_factor=float(s / dens),
            ward_target_km=km_def * np.sqrt(dens),
            ward_length_m=length_def * f / (s / dens),
            ward_density=km_def * np.sqrt(dens) * 1000.0 / (ref.ward_area_km2 * 1e6),
            frame=frame,
            grid_bounds=_grid_bounds(),
        )
    tr = Transformer.from_crs("EPSG:4326", "EPSG:2952", always_xy=True)
    cx, cy = tr.transform(*params.window_centre_lonlat)
    centre = shapely.Point(cx, cy)
    wards = ref.ward_polygons
    warea = shapely.area(wards)

    def expected(r: float) -> tuple[float, np.ndarray]:
        win = shapely.intersection(ref.area, centre.buffer(r, quad_segs=32))
        share = shapely.area(shapely.intersection(wards, win)) / warea
        return float((n_def * share).sum()), share

    lo, hi = 100.0, 60_000.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected(mid)[0] < params.n_pipes else (lo, mid)
    r = (lo + hi) / 2
    _, share = expected(r)
    region = shapely.intersection(ref.area, centre.buffer(r, quad_segs=32))
    return Layout(
        region=region,
        f=1.0,
        piece_factor=1.0,
        ward_target_km=km_def * share,
        ward_length_m=length_def,
        ward_density=km_def * 1000.0 / (ref.ward_area_km2 * 1e6),
        frame=frame,
        grid_bounds=_grid_bounds(),
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


def _inside(region: shapely.Geometry, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return shapely.contains_xy(region, x, y)


# --------------------------------------------------------------------------- features


def _curve(
    t: np.ndarray,
    base: float,
    amps: tuple[float, ...],
    waves: tuple[float, ...],
    phases: np.ndarray,
) -> np.ndarray:
    out = np.full_like(t, base)
    for a, w, p in zip(amps, waves, phases, strict=True):
        out = out + a * np.sin(2 * np.pi * t / w + p)
    return out


def _features(
    seed: int, frame: Frame, region: shapely.Geometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rivers, creeks, railways, a hydro line and expressways (full length, then clipped).

    Returns the clipped line parts, their class and their name.
    """
    ref = load_reference()
    ex, ey = shapely.get_coordinates(ref.area).T
    u, v = frame.to_frame(ex, ey)
    umin, umax, vmin, vmax = u.min(), u.max(), v.min(), v.max()
    width, height = umax - umin, vmax - vmin
    rnd = hash_uniform(seed, _T_FEAT, np.arange(64))
    ph = rnd * 2 * np.pi
    lines: list[tuple[np.ndarray, np.ndarray, int, str]] = []
    step = 30.0
    tv = np.arange(vmin - 500, vmax + 500, step)
    tu = np.arange(umin - 500, umax + 500, step)
    river_names = ("Humber River", "Don River", "Highland River")
    for i, pos in enumerate((0.20, 0.52, 0.84)):
        uu = _curve(
            tv,
            umin + pos * width,
            (380.0, 110.0, 40.0),
            (5200.0, 1400.0, 420.0),
            ph[3 * i : 3 * i + 3],
        )
        lines.append((uu, tv, RIVER, river_names[i]))
        # two creeks branch off each river, heading upstream to either side
        for j, side in enumerate((-1.0, 1.0)):
            k = 2 * i + j
            v0 = vmin + (0.3 + 0.4 * rnd[20 + k]) * height
            u0 = float(np.interp(v0, tv, uu))
            length = (0.15 + 0.15 * rnd[30 + k]) * height
            tc = np.arange(0.0, length, step)
            wig = _curve(tc, 0.0, (120.0, 35.0), (2600.0, 700.0), ph[40 + 2 * k : 42 + 2 * k])
            cu = u0 + side * tc * 0.8 + wig - wig[0]
            cv = v0 + tc * 0.6
            lines.append(
                (
                    cu,
                    cv,
                    CREEK,
                    f"{('Black', 'Mimico', 'Taylor', 'Wilket', 'Etobicoke', 'Petticoat')[k]} Creek",
                )
            )
    for i, pos in enumerate((0.30, 0.58)):
        vv = _curve(
            tu, vmin + pos * height + (tu - umin) * 0.03, (150.0,), (14000.0,), ph[10 + i : 11 + i]
        )
        lines.append((tu, vv, RAILWAY, "None"))
    lines.append((tu, vmin + 0.74 * height + (tu - umin) * 0.015, HYDRO, "None"))
    vv = _curve(tu, vmin + 0.86 * height, (120.0,), (16000.0,), ph[12:13])
    lines.append((tu, vv, EXPRESSWAY, "Northern Expy"))
    vv = _curve(tu, vmin + 0.06 * height + (tu - umin) * 0.02, (80.0,), (9000.0,), ph[13:14])
    lines.append((tu, vv, EXPRESSWAY, "Lakeshore Expy"))
    uu = _curve(tv, umin + 0.47 * width, (160.0,), (11000.0,), ph[14:15])
    lines.append((uu, tv, EXPRESSWAY, "Valley Pkwy"))
    geoms, classes, names = [], [], []
    for lu, lv, c, nm in lines:
        x, y = frame.to_world(lu, lv)
        geoms.append(shapely.LineString(np.column_stack([x, y])))
        classes.append(c)
        names.append(nm)
    g = shapely.intersection(np.array(geoms, dtype=object), region)
    parts, idx = shapely.get_parts(g, return_index=True)
    lin = shapely.get_type_id(parts) == 1
    parts, idx = parts[lin], idx[lin]
    keep = shapely.length(parts) > 20.0
    parts, idx = parts[keep], idx[keep]
    return parts, np.array(classes, dtype=np.int8)[idx], np.array(names, dtype=object)[idx]


_BARRIER_WIDTH = {RIVER: 90.0, CREEK: 45.0, RAILWAY: 12.0, HYDRO: 20.0, EXPRESSWAY: 25.0}


# --------------------------------------------------------------------------- names

_BASE_NAMES = np.array(
    ["Alder", "Ash", "Aspen", "Beech", "Birch", "Cedar", "Cherry", "Chestnut", "Elm", "Fir", "Hawthorn", "Hazel", "Hemlock", "Hickory", "Juniper", "Larch", "Linden", "Maple", "Oak", "Pine", "Poplar", "Spruce", "Sumac", "Tamarack", "Walnut", "Willow", "Yew", "Cardinal", "Finch", "Heron", "Kestrel", "Lark", "Oriole", "Robin", "Sparrow", "Swallow", "Thrush", "Warbler", "Wren", "Abbott", "Ainsley", "Baldwin", "Barrington", "Beaumont", "Bellamy", "Blythe", "Brantwood", "Calloway", "Carrick", "Chalmers", "Colborne", "Coulter", "Danbury", "Delmont", "Dunmore", "Eastbourne", "Ellery", "Elmridge", "Fairholme", "Fenwick", "Glenholme", "Gorsefield", "Greyabbey", "Halford", "Harcourt", "Heathdale", "Hollinger", "Inverness", "Kendal", "Kingsmere", "Lambeth", "Langford", "Lauder", "Linwood", "Lockwood", "Maitland", "Marlowe", "Melrose", "Millbrook", "Montclair", "Morland", "Newbury", "Northcote", "Oakmount", "Orchard", "Oxbow", "Pembroke", "Pinecrest", "Quentin", "Ravenscroft", "Redwood", "Ridgeway", "Rosslyn", "Rowntree", "Seaton", "Sheldrake", "Somerset", "Springhurst", "Stanmore", "Sutherland", "Thornbury", "Torrance", "Tweedsmuir", "Underhill", "Valleyview", "Wadsworth", "Westbrook", "Whitehall", "Wickham", "Windermere", "Woodlawn", "Yarmouth", "Ashdale", "Bramble", "Clover", "Dahlia", "Fernbank", "Heather", "Iris", "Jasmine", "Laurel", "Lilac", "Marigold", "Primrose", "Thistle", "Violet", "Bluebell", "Foxglove", "Goldenrod", "Hollyhock", "Larkspur", "Meadowsweet", "Yarrow"],
    dtype=object,
)
_TYPES_LOCAL = np.array(
    ["St", "Ave", "Rd", "Dr", "Cres", "Crt", "Gdns", "Pl", "Way", "Blvd"], dtype=object
)
_TYPES_LOCAL_W = np.array([0.28, 0.28, 0.08, 0.12, 0.08, 0.05, 0.04, 0.03, 0.02, 0.02])
_TYPES_ART = np.array(["Ave", "Rd", "St", "Blvd"], dtype=object)


def _pick(u: np.ndarray, values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    if weights is None:
        return values[np.minimum((u * len(values)).astype(np.int64), len(values) - 1)]
    cdf = np.cumsum(weights) / np.sum(weights)
    return values[np.minimum(np.searchsorted(cdf, u, side="right"), len(values) - 1)]


# --------------------------------------------------------------------------- network


def _calibrate_park(
    ward: np.ndarray,
    length: np.ndarray,
    m: np.ndarray,
    need: np.ndarray,
) -> np.ndarray:
    """Per ward, the open-land threshold tau keeping ``need`` metres of edges with m >= tau."""
    n_w = len(need)
    tau = np.full(n_w, -np.inf)
    if len(m) == 0:
        return tau
    order = np.lexsort((-m, ward))  # per ward, descending m
    w_s, m_s, l_s = ward[order], m[order], length[order]
    csum = np.cumsum(l_s)
    starts = np.searchsorted(w_s, np.arange(n_w), side="left")
    ends = np.searchsorted(w_s, np.arange(n_w), side="right")
    base = np.where(starts > 0, csum[np.maximum(starts - 1, 0)], 0.0)
    has = ends > starts
    # the first edge (descending m) at which the cumulative length reaches the need
    goal = base + np.maximum(need, 0.0)
    pos = np.searchsorted(csum, goal, side="left")
    pos = np.clip(pos, starts, np.maximum(ends - 1, starts))
    tau[has] = m_s[pos[has]]
    full = has & (goal >= csum[np.maximum(ends - 1, 0)])
    tau[full] = -np.inf
    return tau


def build_streets(params: SynthParams, layout: Layout, fields: dict[str, GridField]) -> StreetNet:
    """Generate the centreline network of ``layout`` (see the module docstring)."""
    ref = load_reference()
    seed = params.seed
    fr = layout.frame
    f = layout.f
    region = layout.region
    shapely.prepare(region)
    spacing = ARTERIAL_SPACING_M * f

    # ---- arterial lattice nodes over the region (grid frame)
    rx, ry = shapely.get_coordinates(shapely.get_exterior_ring(shapely.get_parts(region))).T
    ru, rv = fr.to_frame(rx, ry)
    i0, i1 = int(np.floor(ru.min() / spacing)) - 1, int(np.ceil(ru.max() / spacing)) + 1
    j0, j1 = int(np.floor(rv.min() / spacing)) - 1, int(np.ceil(rv.max() / spacing)) + 1
    ii, jj = np.meshgrid(np.arange(i0, i1 + 1), np.arange(j0, j1 + 1))
    jit = 0.08 * spacing
    nu = ii * spacing + (hash_uniform(seed, _T_NODE_U, ii, jj) - 0.5) * 2 * jit
    nv = jj * spacing + (hash_uniform(seed, _T_NODE_V, ii, jj) - 0.5) * 2 * jit
    nx_, ny_ = fr.to_world(nu, nv)
    nI = i1 - i0 + 1

    # ---- superblocks intersecting the region
    sj, si = np.meshgrid(np.arange(j1 - j0), np.arange(i1 - i0), indexing="ij")
    sj, si = sj.ravel(), si.ravel()
    c00 = np.column_stack([nx_[sj, si], ny_[sj, si]])
    c10 = np.column_stack([nx_[sj, si + 1], ny_[sj, si + 1]])
    c01 = np.column_stack([nx_[sj + 1, si], ny_[sj + 1, si]])
    c11 = np.column_stack([nx_[sj + 1, si + 1], ny_[sj + 1, si + 1]])
    ring = np.stack([c00, c10, c11, c01, c00], axis=1)
    polys = shapely.polygons(ring)
    keep = shapely.intersects(region, polys)
    sj, si, c00, c10, c01, c11 = sj[keep], si[keep], c00[keep], c10[keep], c01[keep], c11[keep]
    gi, gj = si + i0, sj + j0  # global superblock indices (stable keys for hashing)
    nb = len(sj)
    cen = (c00 + c10 + c01 + c11) / 4
    sb_ward = ward_at(cen[:, 0], cen[:, 1])
    median = ref.ward_median_year[sb_ward]
    h_sb = hash_uniform(seed, _T_SB, gi, gj, np.arange(4)[:, None])
    organic = h_sb[0] < np.clip((median - 1935.0) / 45.0, 0.0, 0.85)
    laneways = ~organic & (h_sb[1] < np.clip((1950.0 - median) / 30.0, 0.0, 0.7))
    long_u = h_sb[2] < 0.5
    lw = layout.ward_length_m[sb_ward] * layout.piece_factor
    # wards whose km cannot fit in the area at these block sizes get smaller blocks
    dens_need = layout.ward_density[sb_ward]  # carrying m per m2 of the ward
    dens_grid = (1 / 0.7 + 1 / 1.6) / lw + 2 / spacing
    shrink = np.clip(0.65 * dens_grid / np.maximum(dens_need, 1e-12), 0.5, 1.0)
    g_short = 0.7 * lw * shrink * (0.9 + 0.2 * h_sb[3])
    g_long = 1.6 * lw * shrink * (0.9 + 0.2 * h_sb[3])
    width = 0.5 * (np.hypot(*(c10 - c00).T) + np.hypot(*(c11 - c01).T))
    height = 0.5 * (np.hypot(*(c01 - c00).T) + np.hypot(*(c11 - c10).T))
    gap_u = np.where(long_u, g_long, g_short)
    gap_v = np.where(long_u, g_short, g_long)
    n_u = np.maximum(1, np.round(width / gap_u)).astype(np.int64)
    n_v = np.maximum(1, np.round(height / gap_v)).astype(np.int64)
    lane_u = laneways & ~long_u  # u-lines (u = const) are house streets: laneways between
    lane_v = laneways & long_u
    n_u = np.where(lane_u, 2 * n_u, n_u)
    n_v = np.where(lane_v, 2 * n_v, n_v)

    # ---- line positions and classes (ragged per superblock)
    def lines(
        n: np.ndarray, lane: np.ndarray, axis: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sb, k = _ragged_arange(n + 1)
        nn = n[sb]
        h = hash_uniform(seed, _T_LINE, gi[sb], gj[sb], axis, k)
        inner = (k > 0) & (k < nn)
        jitter = np.where(inner & ~lane[sb], (h - 0.5) * 0.3, 0.0)
        pos = (k + jitter) / nn
        pos = np.where(k == nn, 1.0, pos)
        cls = np.full(len(k), LOCAL, dtype=np.int8)
        cls[lane[sb] & (k % 2 == 1)] = LANEWAY
        kc = nn // 2
        kc = np.where(lane[sb], kc - kc % 2, kc)
        cls[(k == kc) & (nn >= 4) & inner] = COLLECTOR
        return pos, cls, sb

    upos, ucls, _ = lines(n_u, lane_u, 0)
    vpos, vcls, _ = lines(n_v, lane_v, 1)
    uoff = _offsets(n_u + 1)
    voff = _offsets(n_v + 1)

    # ---- nodes
    node_sb, loc = _ragged_arange((n_u + 1) * (n_v + 1))
    nk = loc % (n_u[node_sb] + 1)
    nl = loc // (n_u[node_sb] + 1)
    noff = _offsets((n_u + 1) * (n_v + 1))
    uu = upos[uoff[node_sb] + nk][:, None]
    vv = vpos[voff[node_sb] + nl][:, None]
    pts = (
        (1 - uu) * (1 - vv) * c00[node_sb]
        + uu * (1 - vv) * c10[node_sb]
        + (1 - uu) * vv * c01[node_sb]
        + uu * vv * c11[node_sb]
    )
    # boundary nodes lie exactly on the straight arterial side
    left, right = nk == 0, nk == n_u[node_sb]
    bottom, top = nl == 0, nl == n_v[node_sb]
    vb = vv[:, 0]
    ub = uu[:, 0]
    pts[left] = ((1 - vb) * c00[node_sb].T + vb * c01[node_sb].T).T[left]
    pts[right] = ((1 - vb) * c10[node_sb].T + vb * c11[node_sb].T).T[right]
    pts[bottom] = ((1 - ub) * c00[node_sb].T + ub * c10[node_sb].T).T[bottom]
    pts[top] = ((1 - ub) * c01[node_sb].T + ub * c11[node_sb].T).T[top]
    inside = _inside(region, pts[:, 0], pts[:, 1])
    park_val = fields["park"].at(pts[:, 0], pts[:, 1])

    # ---- edges: U (along u, on v-lines 1..n_v-1) and V (along v, on u-lines 1..n_u-1)
    ue_sb, ue = _ragged_arange(n_u * (n_v - 1))
    ue_k = ue % n_u[ue_sb]
    ue_l = ue // n_u[ue_sb] + 1
    ue_a = noff[ue_sb] + ue_l * (n_u[ue_sb] + 1) + ue_k
    ue_b = ue_a + 1
    ue_cls = vcls[voff[ue_sb] + ue_l]
    ve_sb, ve = _ragged_arange((n_u - 1) * n_v)
    ve_k = ve // n_v[ve_sb] + 1
    ve_l = ve % n_v[ve_sb]
    ve_a = noff[ve_sb] + ve_l * (n_u[ve_sb] + 1) + ve_k
    ve_b = ve_a + (n_u[ve_sb] + 1)
    ve_cls = ucls[uoff[ve_sb] + ve_k]
    uoffe = _offsets(n_u * (n_v - 1))
    voffe = _offsets((n_u - 1) * n_v)

    e_sb = np.concatenate([ue_sb, ve_sb])
    e_a = np.concatenate([ue_a, ve_a])
    e_b = np.concatenate([ue_b, ve_b])
    e_cls = np.concatenate([ue_cls, ve_cls])
    e_axis = np.concatenate([np.zeros(len(ue_sb), np.int8), np.ones(len(ve_sb), np.int8)])
    e_line = np.concatenate([ue_l, ve_k])
    e_pos = np.concatenate([ue_k, ve_l])
    n_ue = len(ue_sb)
    # curved streets: a mid vertex offset sideways (organic superblocks, not laneways)
    h_line = hash_uniform(seed, _T_CURVE, gi[e_sb], gj[e_sb], e_axis, e_line)
    amp = np.where(organic[e_sb] & (e_cls != LANEWAY), 0.04 + 0.10 * h_line, 0.0)
    bend = amp * np.sin(h_line * 40.0 + 0.6 * e_pos)
    has_mid = np.abs(bend) > 0.01

    def mids(p: np.ndarray) -> np.ndarray:
        a, b = p[e_a], p[e_b]
        d = b - a
        nrm = np.column_stack([-d[:, 1], d[:, 0]])
        return (a + b) / 2 + bend[:, None] * nrm

    mid = mids(pts)
    ok = inside[e_a] & inside[e_b] & np.where(has_mid, _inside(region, mid[:, 0], mid[:, 1]), True)
    # cul-de-sacs in organic superblocks
    h_e = hash_uniform(seed, _T_CUL, gi[e_sb], gj[e_sb], e_axis, e_line, e_pos)
    ok &= ~(organic[e_sb] & (e_cls == LOCAL) & (h_e < 0.12))

    # ---- features and barriers: local streets do not cross rivers, railways, expressways
    feat_geom, feat_cls, feat_name = _features(seed, fr, region)
    # ---- features split into centreline pieces of 200-400 m
    if len(feat_geom):
        fc, fo = _ragged(feat_geom)
        cum = ragged_cumlen(fc, fo)
        flen = shapely.length(feat_geom)
        npieces = np.maximum(1, np.round(flen / (220.0 * f))).astype(np.int64)
        fl, fk = _ragged_arange(npieces)
        hj = hash_uniform(seed, _T_FEAT, 1000 + fl, fk)
        cut = lambda q: np.where(
            q == 0,
            0.0,
            np.where(q >= npieces[fl], flen[fl], (q + (hj - 0.5) * 0.4) / npieces[fl] * flen[fl]),
        )
        a = cut(fk)
        hj_next = hash_uniform(seed, _T_FEAT, 1000 + fl, fk + 1)
        b = np.where(
            fk + 1 >= npieces[fl],
            flen[fl],
            (fk + 1 + (hj_next - 0.5) * 0.4) / npieces[fl] * flen[fl],
        )
        pc, po = ragged_substrings(fc, fo, fl, a, b, cum)
        fgeom = shapely.linestrings(pc, indices=np.repeat(np.arange(len(fl)), np.diff(po)))
        fcls = feat_cls[fl]
        fname = feat_name[fl]
    else:
        fgeom = np.array([], dtype=object)
        fcls = np.array([], dtype=np.int8)
        fname = np.array([], dtype=object)

    if len(fgeom):
        cand = np.flatnonzero(ok)
        segs = shapely.linestrings(np.stack([pts[e_a[cand]], pts[e_b[cand]]], axis=1))
        seg_tree = shapely.STRtree(segs)
        for c, w in _BARRIER_WIDTH.items():
            pieces = fgeom[fcls == c]
            if len(pieces):
                hit = seg_tree.query(pieces, predicate="dwithin", distance=w * f)[1]
                ok[cand[np.unique(hit)]] = False

    # ---- arterial sides (before the open-land fit, which needs their length per ward)
    # H side (I, J): node[J, I] -> node[J, I+1]; V side (I, J): node[J, I] -> node[J+1, I]
    nJ = j1 - j0 + 1
    h_id = lambda i, j: j * nI + i  # noqa: E731
    v_id = lambda i, j: nJ * nI + j * nI + i  # noqa: E731
    side_ids = np.unique(
        np.concatenate([h_id(si, sj), h_id(si, sj + 1), v_id(si, sj), v_id(si + 1, sj)])
    )
    is_v = side_ids >= nJ * nI
    rem = side_ids - np.where(is_v, nJ * nI, 0)
    s_j, s_i = rem // nI, rem % nI
    s_ax = np.column_stack([nx_[s_j, s_i], ny_[s_j, s_i]])
    s_bx = np.column_stack(
        [
            np.where(
                is_v, nx_[np.minimum(s_j + 1, nJ - 1), s_i], nx_[s_j, np.minimum(s_i + 1, nI - 1)]
            ),
            np.where(
                is_v, ny_[np.minimum(s_j + 1, nJ - 1), s_i], ny_[s_j, np.minimum(s_i + 1, nI - 1)]
            ),
        ]
    )
    s_len = np.hypot(*(s_bx - s_ax).T)
    s_mid = (s_ax + s_bx) / 2
    s_in = _inside(region, s_mid[:, 0], s_mid[:, 1])
    s_ward = ward_at(s_mid[:, 0], s_mid[:, 1])
    n_w = len(ref.ward_codes)
    art_len = np.bincount(s_ward[s_in], weights=s_len[s_in], minlength=n_w)

    # ---- open land: per-ward threshold so carrying length matches the ward's km
    e_len = np.hypot(*(pts[e_b] - pts[e_a]).T) * np.sqrt(1 + 4 * bend**2)
    emid = (pts[e_a] + pts[e_b]) / 2
    e_ward = ward_at(emid[:, 0], emid[:, 1])
    m = np.maximum(park_val[e_a], park_val[e_b])
    carry = ok & np.isin(e_cls, (LOCAL, COLLECTOR))
    need = layout.ward_target_km * 1000.0 / (1 - NO_MAIN_SHARE) - art_len * (1 - NO_MAIN_SHARE)
    tau = _calibrate_park(e_ward[carry], e_len[carry], m[carry], need)
    park = m < tau[e_ward]
    h_tr = hash_uniform(seed, _T_TRAIL, gi[e_sb], gj[e_sb], e_axis, e_line)
    trail = ok & park & (e_cls != LANEWAY) & (h_tr < 0.30)
    e_cls = np.where(trail, np.where(h_tr < 0.22, TRAIL, WALKWAY), e_cls).astype(np.int8)
    ok &= ~park | trail

    # ---- T-junctions on arterial sides, merged when closer than SNAP_M
    ku = ok[:n_ue]
    kv = ok[n_ue:]
    tj_node, tj_side = [], []
    m0 = ku & (ue_k == 0)
    tj_node.append(ue_a[m0])
    tj_side.append(v_id(si[ue_sb[m0]], sj[ue_sb[m0]]))
    m1 = ku & (ue_k == n_u[ue_sb] - 1)
    tj_node.append(ue_b[m1])
    tj_side.append(v_id(si[ue_sb[m1]] + 1, sj[ue_sb[m1]]))
    m2 = kv & (ve_l == 0)
    tj_node.append(ve_a[m2])
    tj_side.append(h_id(si[ve_sb[m2]], sj[ve_sb[m2]]))
    m3 = kv & (ve_l == n_v[ve_sb] - 1)
    tj_node.append(ve_b[m3])
    tj_side.append(h_id(si[ve_sb[m3]], sj[ve_sb[m3]] + 1))
    tjn = np.concatenate(tj_node)
    tjs = np.concatenate(tj_side)
    sidx = np.searchsorted(side_ids, tjs)
    t = np.hypot(*(pts[tjn] - s_ax[sidx]).T)
    order = np.lexsort((t, sidx))
    tjn, sidx, t = tjn[order], sidx[order], t[order]
    new = np.ones(len(t), dtype=bool)
    new[1:] = (sidx[1:] != sidx[:-1]) | (t[1:] - t[:-1] > SNAP_M * f)
    rep = np.maximum.accumulate(np.where(new, np.arange(len(t)), 0))
    pts[tjn] = pts[tjn[rep]]
    tjn, sidx, t = tjn[new], sidx[new], t[new]
    # drop junctions too close to a corner (they would leave a sliver of arterial)
    far = (t > SNAP_M * f) & (t < s_len[sidx] - SNAP_M * f)
    tjn, sidx, t = tjn[far], sidx[far], t[far]

    mid = mids(pts)

    # ---- chains of local edges (merge straight-through nodes without side streets)
    # sentinel last element: index len(...) means "no such edge"
    keptU = np.append(ok[:n_ue], False)
    keptV = np.append(ok[n_ue:], False)
    clsU = np.append(e_cls[:n_ue], -1)
    clsV = np.append(e_cls[n_ue:], -1)
    noU, noV = n_ue, len(ve_sb)

    def uidx(sb: np.ndarray, k: np.ndarray, l: np.ndarray) -> np.ndarray:
        return uoffe[sb] + (l - 1) * n_u[sb] + k

    def vidx(sb: np.ndarray, k: np.ndarray, l: np.ndarray) -> np.ndarray:
        return voffe[sb] + (k - 1) * n_v[sb] + l

    # U edge (k, l) starts a chain unless node (k, l) is a plain continuation
    k, l, sb = ue_k, ue_l, ue_sb
    interior = k > 0
    kk = np.maximum(k, 1)
    prev = uidx(sb, kk - 1, l)
    cont = (
        interior
        & ~np.isin(clsU[:-1], (TRAIL, WALKWAY, LANEWAY))
        & keptU[np.where(interior, prev, noU)]
        & (clsU[np.where(interior, prev, noU)] == clsU[:-1])
        & ~keptV[np.where(interior, vidx(sb, kk, l - 1), noV)]
        & ~keptV[np.where(interior, vidx(sb, kk, l), noV)]
    )
    startU = keptU[:-1] & ~cont
    k, l, sb = ve_k, ve_l, ve_sb
    interior = l > 0
    ll = np.maximum(l, 1)
    prev = vidx(sb, k, ll - 1)
    cont = (
        interior
        & ~np.isin(clsV[:-1], (TRAIL, WALKWAY, LANEWAY))
        & keptV[np.where(interior, prev, noV)]
        & (clsV[np.where(interior, prev, noV)] == clsV[:-1])
        & ~keptU[np.where(interior, uidx(sb, k - 1, ll), noU)]
        & ~keptU[np.where(interior, uidx(sb, k, ll), noU)]
    )
    startV = keptV[:-1] & ~cont
    start = np.concatenate([startU, startV])

    sel = np.flatnonzero(ok)
    st = start[sel]
    chain = np.cumsum(st) - 1
    n_chain = int(st.sum())
    is_last = np.ones(len(sel), dtype=bool)
    is_last[:-1] = st[1:]
    hm = has_mid[sel]
    cnt = 1 + hm.astype(np.int64) + is_last.astype(np.int64)
    pos = _offsets(cnt)[:-1]
    coords = np.empty((int(cnt.sum()), 2))
    coords[pos] = pts[e_a[sel]]
    coords[(pos + 1)[hm]] = mid[sel][hm]
    coords[(pos + 1 + hm)[is_last]] = pts[e_b[sel]][is_last]
    ccount = np.bincount(chain, weights=cnt, minlength=n_chain).astype(np.int64)
    local_geom = shapely.linestrings(coords, indices=np.repeat(np.arange(n_chain), ccount))
    first_e = sel[st]
    loc_cls = e_cls[first_e]
    # names: one per (superblock, axis, line); trails share the line's name
    h_nm = hash_uniform(
        seed,
        _T_NAME,
        gi[e_sb[first_e]],
        gj[e_sb[first_e]],
        e_axis[first_e],
        e_line[first_e],
        np.arange(2)[:, None],
    )
    loc_base = _pick(h_nm[0], _BASE_NAMES)
    loc_type = _pick(h_nm[1], _TYPES_LOCAL, _TYPES_LOCAL_W)

    # ---- arterial pieces between corners and T-junctions
    n_s = len(side_ids)
    p_side = np.concatenate([np.arange(n_s), sidx, np.arange(n_s)])
    p_t = np.concatenate([np.full(n_s, -1.0), t, s_len + 1.0])
    p_xy = np.concatenate([s_ax, pts[tjn], s_bx])
    order = np.lexsort((p_t, p_side))
    p_side, p_xy = p_side[order], p_xy[order]
    same = p_side[1:] == p_side[:-1]
    a_xy, b_xy, a_side = p_xy[:-1][same], p_xy[1:][same], p_side[:-1][same]
    a_mid = (a_xy + b_xy) / 2
    a_ok = (
        _inside(region, a_xy[:, 0], a_xy[:, 1])
        & _inside(region, b_xy[:, 0], b_xy[:, 1])
        & _inside(region, a_mid[:, 0], a_mid[:, 1])
        & (np.hypot(*(b_xy - a_xy).T) > 0.5)
    )
    a_xy, b_xy, a_side = a_xy[a_ok], b_xy[a_ok], a_side[a_ok]
    art_geom = shapely.linestrings(np.stack([a_xy, b_xy], axis=1))
    av = is_v[a_side]
    line_key = np.where(av, s_i[a_side] + i0, s_j[a_side] + j0)  # column for V, row for H
    h_art = hash_uniform(seed, _T_NAME, line_key, av.astype(np.int64), 7, np.arange(3)[:, None])
    phase = int(hash_uniform(seed, _T_NAME, 99)[()] < 0.5)
    art_cls = np.where((line_key + phase) % 2 == 0, MAJOR, MINOR).astype(np.int8)
    art_base = _pick(h_art[0], _BASE_NAMES)
    art_type = _pick(h_art[1], _TYPES_ART)
    au, _ = fr.to_frame(a_mid[a_ok][:, 0], a_mid[a_ok][:, 1])
    art_dir = np.where(av, None, np.where(au < 0, "W", "E")).astype(object)

    # ---- assemble
    geom = np.concatenate([art_geom, local_geom, fgeom])
    cls = np.concatenate([art_cls, loc_cls, fcls]).astype(np.int8)
    base = np.concatenate([art_base, loc_base, np.full(len(fgeom), None, dtype=object)])
    ntype = np.concatenate([art_type, loc_type, np.full(len(fgeom), None, dtype=object)])
    ndir = np.concatenate([art_dir, np.full(len(local_geom) + len(fgeom), None, dtype=object)])
    full = np.array(
        [
            None if b is None else (f"{b} {t}" + (f" {d}" if d else ""))
            for b, t, d in zip(base, ntype, ndir, strict=True)
        ],
        dtype=object,
    )
    is_feat = np.arange(len(geom)) >= len(art_geom) + len(local_geom)
    full[is_feat] = np.where(fname == "None", None, fname)
    full[cls == LANEWAY] = None
    ntype[cls == LANEWAY] = None
    length = shapely.length(geom)
    c = shapely.get_coordinates(shapely.line_interpolate_point(geom, 0.5, normalized=True))
    ward = ward_at(c[:, 0], c[:, 1])
    carries = CARRIES[cls].copy()
    h_nm2 = hash_uniform(
        seed, _T_NOMAIN, np.round(c[:, 0]).astype(np.int64), np.round(c[:, 1]).astype(np.int64)
    )
    carries &= h_nm2 >= NO_MAIN_SHARE
    return StreetNet(
        geometry=geom,
        cls=cls,
        name=full,
        name_base=np.where(pd_isna(full), None, np.where(pd_isna(base), full, base)).astype(object),
        name_type=ntype,
        name_dir=ndir,
        ward=ward,
        carries=carries,
        length=length,
    )


def pd_isna(a: np.ndarray) -> np.ndarray:
    """Element-wise ``is None`` of an object array."""
    return np.array([v is None for v in a], dtype=bool)


def _ragged(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from .geometry import ragged

    return ragged(lines)
