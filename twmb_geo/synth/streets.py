"""The synthetic street centreline network, laid out on Toronto's real footprint.

Layout (all lengths scale with ``f``, 1 at Toronto's density):

* an arterial grid turned like Toronto's street grid (16.7 degrees), about 1 km apart,
  alternating major and minor arterials; its nodes are jittered so arterials kink;
* each arterial cell (a *superblock*) gets its own grid of local streets in bilinear
  coordinates: block sides from the pseudo-ward's mean pipe length ``l`` (about 0.85 l
  and 2 l), laneways mid-block in old wards, one collector per direction, curved streets
  and cul-de-sacs (with a footpath left now and then) in post-war ("organic") superblocks;
* open land (parks, ravines, yards) from a smooth random field whose threshold is solved
  per ward so that the street length carrying mains matches the ward's km; streets on
  open land become trails or walkways, or disappear;
* rivers, creeks, railways, a hydro corridor and expressways cross the city; local
  streets do not cross them (arterials do, on bridges); they carry no pipes.

Local streets end on arterials with T-junctions: arterial segments are split there, and
junctions from both sides closer than 12 m become one crossing. A segment runs from one
intersection to the next: a node where the only side streets are laneways, trails or
walkways is passed through (no water-main junction there). Everything is vectorised over
superblocks, lines and edges; random draws are counter-based hashes of lattice indices,
so a window city is exactly that window of the full city.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from .fields import GridField, hash_uniform
from .params import SynthParams
from .reference import load_reference
from .street_lattice import (
    _arterials,
    _Blocks,
    _blocks,
    _calibrate_open_land,
    _chains,
    _features,
    _Grid,
    _grid,
    _inside,
    _junctions,
    _mid_vertices,
    _pick,
    _Sides,
    _sides,
    join_names,
)
from .street_plan import (
    _BARRIER_WIDTH,
    _BASE_NAMES,
    _N_SIMPLE,
    _SUFFIXES,
    _SUFFIXES_W,
    _T_CUL,
    _T_CURVE,
    _T_NAME,
    _T_NOMAIN,
    _T_TRAIL,
    _TYPES_LOCAL,
    _TYPES_LOCAL_W,
    CARRIES,
    CLASSES,
    COLLECTOR,
    CUL_DE_SAC_SHARE,
    FOOTPATH_SHARE,
    LANEWAY,
    LOCAL,
    NO_MAIN_SHARE,
    PATH_SHARE,
    SNAP_M,
    TRAIL,
    TRAIL_SHARE,
    WALKWAY,
    Frame,
    Layout,
    StreetNet,
    city_fields,
    plan_layout,
    ward_at,
)
from .street_plan import EXPRESSWAY as EXPRESSWAY
from .street_plan import MAJOR as MAJOR
from .street_plan import MINOR as MINOR

__all__ = [
    "CLASSES",
    "Frame",
    "Layout",
    "StreetNet",
    "build_streets",
    "city_fields",
    "join_names",
    "plan_layout",
    "ward_at",
]


# --------------------------------------------------------------------------- network


def _local_edges(
    seed: int, blk: _Blocks, grid: _Grid, region: shapely.Geometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Classes, kept mask, sideways bend and mid-vertex mask of the local edges.

    Curved streets in organic superblocks get a mid vertex offset sideways; cul-de-sacs
    there are dropped, some leaving a footpath.
    """
    gi, gj = blk.gi[grid.sb], blk.gj[grid.sb]
    cls = grid.cls.copy()
    h_line = hash_uniform(seed, _T_CURVE, gi, gj, grid.axis, grid.line)
    amp = np.where(blk.organic[grid.sb] & (cls != LANEWAY), 0.04 + 0.10 * h_line, 0.0)
    bend = amp * np.sin(h_line * 40.0 + 0.6 * grid.pos)
    has_mid = np.abs(bend) > 0.01
    inside = _inside(region, grid.pts)
    mid = _mid_vertices(grid, bend)
    ok = inside[grid.a] & inside[grid.b] & np.where(has_mid, _inside(region, mid), True)
    h_e = hash_uniform(seed, _T_CUL, gi, gj, grid.axis, grid.line, grid.pos)
    cul = blk.organic[grid.sb] & (cls == LOCAL) & (h_e < CUL_DE_SAC_SHARE)
    cls[cul & (h_e < FOOTPATH_SHARE)] = WALKWAY
    ok &= ~(cul & (h_e >= FOOTPATH_SHARE))
    return cls, ok, bend, has_mid


def _cut_barriers(
    grid: _Grid, ok: np.ndarray, fgeom: np.ndarray, fcls: np.ndarray, f: float
) -> None:
    """Drop local edges that would cross rivers, railways, expressways ... (in place)."""
    if not len(fgeom):
        return
    cand = np.flatnonzero(ok)
    tree = shapely.STRtree(
        shapely.linestrings(np.stack([grid.pts[grid.a[cand]], grid.pts[grid.b[cand]]], axis=1))
    )
    for c, w in _BARRIER_WIDTH.items():
        if (fcls == c).any():
            hit = tree.query(fgeom[fcls == c], predicate="dwithin", distance=w * f)[1]
            ok[cand[np.unique(hit)]] = False


def _open_land(
    seed: int,
    blk: _Blocks,
    grid: _Grid,
    sides: _Sides,
    cls: np.ndarray,
    ok: np.ndarray,
    bend: np.ndarray,
    layout: Layout,
    fields: dict[str, GridField],
) -> np.ndarray:
    """Open land with a per-ward threshold so that the length carrying mains meets the ward's km.

    Streets on open land become trails or walkways (``cls`` is updated in place) or
    disappear; returns the new kept mask.
    """
    region = layout.region
    gi, gj = blk.gi[grid.sb], blk.gj[grid.sb]
    s_mid = (sides.start + sides.end) / 2
    s_in = _inside(region, s_mid)
    n_w = len(load_reference().ward_codes)
    art_len = np.bincount(
        ward_at(s_mid[s_in, 0], s_mid[s_in, 1]), weights=sides.length[s_in], minlength=n_w
    )
    e_len = np.hypot(*(grid.pts[grid.b] - grid.pts[grid.a]).T) * np.sqrt(1 + 4 * bend**2)
    e_mid = (grid.pts[grid.a] + grid.pts[grid.b]) / 2
    e_ward = ward_at(e_mid[:, 0], e_mid[:, 1])
    park_val = fields["park"].at(grid.pts[:, 0], grid.pts[:, 1])
    m = np.maximum(park_val[grid.a], park_val[grid.b])
    carry = ok & np.isin(cls, (LOCAL, COLLECTOR))
    need = layout.ward_target_km * 1000.0 / (1 - NO_MAIN_SHARE) - art_len * (1 - NO_MAIN_SHARE)
    tau = _calibrate_open_land(e_ward[carry], e_len[carry], m[carry], need)
    park = m < tau[e_ward]
    h_tr = hash_uniform(seed, _T_TRAIL, gi, gj, grid.axis, grid.line)
    path = ok & park & (cls != LANEWAY) & (h_tr < PATH_SHARE)
    cls[path] = np.where(h_tr[path] < TRAIL_SHARE, TRAIL, WALKWAY)
    return ok & (~park | path)


def _local_names(
    seed: int, blk: _Blocks, grid: _Grid, first: np.ndarray, loc_cls: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Base names and street types of the local segments starting at edges ``first``."""
    gi, gj = blk.gi[grid.sb], blk.gj[grid.sb]
    h_nm = hash_uniform(
        seed,
        _T_NAME,
        gi[first],
        gj[first],
        grid.axis[first],
        grid.line[first],
        np.arange(3)[:, None],
    )
    loc_base = _pick(h_nm[0], _BASE_NAMES)
    # tree and bird names also come as compounds (Alderwood, Finchdale, ...)
    simple = np.isin(loc_base, _BASE_NAMES[:_N_SIMPLE])
    loc_base = np.where(simple, loc_base + _pick(h_nm[2], _SUFFIXES, _SUFFIXES_W), loc_base)
    loc_type = _pick(h_nm[1], _TYPES_LOCAL, _TYPES_LOCAL_W)
    loc_type[loc_cls == TRAIL] = "Trl"
    return loc_base, loc_type


def _assemble(
    seed: int,
    arterial: tuple[np.ndarray, ...],
    local: tuple[np.ndarray, ...],
    features: tuple[np.ndarray, ...],
) -> StreetNet:
    """Join arterials, local segments and features into one network."""
    art_geom, art_cls, art_base, art_type, art_dir = arterial
    local_geom, loc_cls, loc_base, loc_type = local
    fgeom, fcls, fname = features
    n_a, n_l, n_f = len(art_geom), len(local_geom), len(fgeom)
    geom = np.concatenate([art_geom, local_geom, fgeom])
    cls_all = np.concatenate([art_cls, loc_cls, fcls]).astype(np.int8)
    none_f = np.full(n_f, None, dtype=object)
    base = np.concatenate([art_base, loc_base, none_f])
    ntype = np.concatenate([art_type, loc_type, none_f])
    ndir = np.concatenate([art_dir, np.full(n_l + n_f, None, dtype=object)])
    unnamed = np.isin(cls_all, (LANEWAY, WALKWAY))
    base[unnamed] = None
    ntype[unnamed] = None
    full = join_names(base, ntype, ndir)
    full[n_a + n_l :] = fname
    base[n_a + n_l :] = fname
    name_base = base.copy()
    name_base[pd.isna(full)] = None
    length = shapely.length(geom)
    c = shapely.get_coordinates(shapely.line_interpolate_point(geom, 0.5, normalized=True))
    key = np.round(c).astype(np.int64)
    carries = CARRIES[cls_all] & (
        hash_uniform(seed, _T_NOMAIN, key[:, 0], key[:, 1]) >= NO_MAIN_SHARE
    )
    return StreetNet(
        geometry=geom,
        cls=cls_all,
        name=full,
        name_base=name_base,
        name_type=ntype,
        name_dir=ndir,
        ward=ward_at(c[:, 0], c[:, 1]),
        carries=carries,
        length=length,
    )


def build_streets(params: SynthParams, layout: Layout, fields: dict[str, GridField]) -> StreetNet:
    """Generate the centreline network of ``layout`` (see the module docstring)."""
    seed, f, region = params.seed, layout.f, layout.region
    shapely.prepare(region)
    blk = _blocks(seed, layout)
    grid = _grid(seed, blk)
    cls, ok, bend, has_mid = _local_edges(seed, blk, grid, region)
    fgeom, fcls, fname = _features(seed, layout.frame, region, f)
    _cut_barriers(grid, ok, fgeom, fcls, f)
    sides = _sides(blk)
    ok = _open_land(seed, blk, grid, sides, cls, ok, bend, layout, fields)

    # T-junctions on the arterials (moves snapped nodes), then the final geometry
    # only streets with mains split an arterial; laneways and paths end on it
    street = ok & np.isin(cls, (LOCAL, COLLECTOR))
    node, side, t = _junctions(grid, blk, sides, street, SNAP_M * f)
    mid = _mid_vertices(grid, bend)
    local_geom, first = _chains(grid, blk, ok, cls, has_mid, mid)
    loc_cls = cls[first]
    loc_base, loc_type = _local_names(seed, blk, grid, first, loc_cls)
    arterial = _arterials(seed, blk, sides, grid.pts, node, side, t, layout)
    return _assemble(
        seed, arterial, (local_geom, loc_cls, loc_base, loc_type), (fgeom, fcls, fname)
    )
