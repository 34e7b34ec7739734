"""Street network plan: classes, constants, pseudo-ward fields and the layout of a city."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import shapely

from ..core.crs import TORONTO_CRS, WGS84
from .fields import GridField, smooth_field
from .params import DEFAULT_N_PIPES, SynthParams
from .reference import Reference, load_reference

#: street/feature classes: (FEATURE_CODE_DESC, FEATURE_CODE, carries mains)
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
SHORT_BLOCK, LONG_BLOCK = 0.85, 1.7  # block sides relative to the ward's mean pipe length
SNAP_M = 12.0  # T-junctions closer than this on an arterial become one crossing
FIELD_CELL_M = 100.0
MAX_DENSITY = 16.0  # beyond 16 x Toronto's pipe count, pipes get shorter, not streets
NO_MAIN_SHARE = 0.03  # carrying-class streets that nevertheless have no main
CUL_DE_SAC_SHARE, FOOTPATH_SHARE = 0.12, 0.09  # of organic local edges
TRAIL_SHARE, PATH_SHARE = 0.55, 0.85  # open-land lines kept as trail / trail or walkway
FEATURE_PIECE_M = 120.0

# hash tags (independent draws)
_T_NODE_U, _T_NODE_V, _T_SB, _T_LINE, _T_EDGE, _T_CUL, _T_CURVE, _T_NAME = range(101, 109)
_T_TRAIL, _T_FEAT, _T_NOMAIN = 109, 110, 111

_BARRIER_WIDTH = {RIVER: 90.0, CREEK: 45.0, RAILWAY: 12.0, HYDRO: 20.0, EXPRESSWAY: 25.0}

_BASE_NAMES = np.array(
    (
        "Alder", "Ash", "Aspen", "Beech", "Birch", "Cedar", "Cherry", "Chestnut", "Elm", "Fir",
        "Hawthorn", "Hazel", "Hemlock", "Hickory", "Juniper", "Larch", "Linden", "Maple", "Oak",
        "Pine", "Poplar", "Spruce", "Sumac", "Tamarack", "Walnut", "Willow", "Yew", "Cardinal",
        "Finch", "Heron", "Kestrel", "Lark", "Oriole", "Robin", "Sparrow", "Swallow", "Thrush",
        "Warbler", "Wren", "Abbott", "Ainsley", "Baldwin", "Barrington", "Beaumont", "Bellamy",
        "Blythe", "Brantwood", "Calloway", "Carrick", "Chalmers", "Colborne", "Coulter", "Danbury",
        "Delmont", "Dunmore", "Eastbourne", "Ellery", "Elmridge", "Fairholme", "Fenwick",
        "Glenholme", "Gorsefield", "Greyabbey", "Halford", "Harcourt", "Heathdale", "Hollinger",
        "Inverness", "Kendal", "Kingsmere", "Lambeth", "Langford", "Lauder", "Linwood", "Lockwood",
        "Maitland", "Marlowe", "Melrose", "Millbrook", "Montclair", "Morland", "Newbury",
        "Northcote", "Oakmount", "Orchard", "Oxbow", "Pembroke", "Pinecrest", "Quentin",
        "Ravenscroft", "Redwood", "Ridgeway", "Rosslyn", "Rowntree", "Seaton", "Sheldrake",
        "Somerset", "Springhurst", "Stanmore", "Sutherland", "Thornbury", "Torrance", "Tweedsmuir",
        "Underhill", "Valleyview", "Wadsworth", "Westbrook", "Whitehall", "Wickham", "Windermere",
        "Woodlawn", "Yarmouth", "Ashdale", "Bramble", "Clover", "Dahlia", "Fernbank", "Heather",
        "Iris", "Jasmine", "Laurel", "Lilac", "Marigold", "Primrose", "Thistle", "Violet",
        "Bluebell", "Foxglove", "Goldenrod", "Hollyhock", "Larkspur", "Meadowsweet", "Yarrow",
    ),
    dtype=object,
)  # fmt: skip
_N_SIMPLE = 39  # the tree and bird names at the start of _BASE_NAMES
_SUFFIXES = np.array(
    ["", "wood", "view", "dale", "field", "brook", "crest", "glen", "ridge", "mount", "hurst"],
    dtype=object,
)
_SUFFIXES_W = np.array([4.0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
_TYPES_LOCAL = np.array(
    ["St", "Ave", "Rd", "Dr", "Cres", "Crt", "Gdns", "Pl", "Way", "Blvd"], dtype=object
)
_TYPES_LOCAL_W = np.array([0.28, 0.28, 0.08, 0.12, 0.08, 0.05, 0.04, 0.03, 0.02, 0.02])
_TYPES_ART = np.array(["Ave", "Rd", "St", "Blvd"], dtype=object)


@dataclass(frozen=True)
class Frame:
    """The turned frame of the street grid (u along the grid's east, v along its north)."""

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
        Polygon (EPSG:2952) the streets are built in: the service area or a window of it.
    f
        Length scale of the street pattern (1 at Toronto's density, smaller = denser).
    piece_factor
        How many more pipes per street than at Toronto's density (1 up to 16 x Toronto).
    ward_target_km
        Pipe km to build per pseudo-ward inside the region.
    ward_length_m
        Target mean pipe length per pseudo-ward (metres, scaled).
    ward_density
        Pipe metres per square metre of each pseudo-ward (scaled).
    """

    region: shapely.Geometry
    f: float
    piece_factor: float
    ward_target_km: np.ndarray
    ward_length_m: np.ndarray
    ward_density: np.ndarray
    frame: Frame


@dataclass
class StreetNet:
    """The generated centreline segments (EPSG:2952), in a deterministic order."""

    geometry: np.ndarray  # LineStrings
    cls: np.ndarray  # int8 index into CLASSES
    name: np.ndarray  # object: full name, or None
    name_base: np.ndarray  # object: name part ('Birch') or None
    name_type: np.ndarray  # object: type part ('St', 'Ave' ...) or None
    name_dir: np.ndarray  # object: direction ('E'/'W') or None
    ward: np.ndarray  # int16 pseudo-ward index
    carries: np.ndarray  # bool: a main may be laid under it
    length: np.ndarray


# --------------------------------------------------------------------------- fields


@cache
def _grid_bounds() -> tuple[float, float, float, float]:
    """Bounds of the field grid: the footprint plus 3 km, on 100 m multiples."""
    x0, y0, x1, y1 = load_reference().area.bounds
    m, c = 3000.0, FIELD_CELL_M
    return (
        float(np.floor((x0 - m) / c) * c),
        float(np.floor((y0 - m) / c) * c),
        float(np.ceil((x1 + m) / c) * c),
        float(np.ceil((y1 + m) / c) * c),
    )


@cache
def ward_grid() -> GridField:
    """Pseudo-ward index on the field grid (cells outside every ward take the nearest)."""
    from scipy import ndimage

    ref = load_reference()
    x0, y0, x1, y1 = _grid_bounds()
    nx = round((x1 - x0) / FIELD_CELL_M)
    ny = round((y1 - y0) / FIELD_CELL_M)
    gx, gy = np.meshgrid(
        x0 + (np.arange(nx) + 0.5) * FIELD_CELL_M, y0 + (np.arange(ny) + 0.5) * FIELD_CELL_M
    )
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
    """Pseudo-ward index at points (the grid cell's ward)."""
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
    """Choose the region and density for ``params.n_pipes``.

    At least the default size fills the whole service area (denser beyond it, up to
    :data:`MAX_DENSITY`); a smaller city is the service area cut by a disc around
    ``window_centre_lonlat`` whose radius makes the expected pipe count (from the
    pseudo-wards it covers) equal ``n_pipes``.
    """
    from pyproj import Transformer

    ref = load_reference()
    n_def, km_def = _ward_defaults(ref)
    length_def = km_def * 1000.0 / n_def
    area_m2 = ref.ward_area_km2 * 1e6
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
            ward_density=km_def * np.sqrt(dens) * 1000.0 / area_m2,
            frame=_frame(),
        )
    tr = Transformer.from_crs(WGS84, TORONTO_CRS, always_xy=True)
    centre = shapely.Point(*tr.transform(*params.window_centre_lonlat))
    wards = ref.ward_polygons
    warea = shapely.area(wards)

    def window(r: float) -> tuple[shapely.Geometry, np.ndarray]:
        win = shapely.intersection(ref.area, centre.buffer(r, quad_segs=32))
        return win, shapely.area(shapely.intersection(wards, win)) / warea

    lo, hi = 100.0, 60_000.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (n_def * window(mid)[1]).sum() < params.n_pipes else (lo, mid)
    region, share = window((lo + hi) / 2)
    return Layout(
        region=region,
        f=1.0,
        piece_factor=1.0,
        ward_target_km=km_def * share,
        ward_length_m=length_def,
        ward_density=km_def * 1000.0 / area_m2,
        frame=_frame(),
    )
