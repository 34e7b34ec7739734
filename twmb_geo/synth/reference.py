"""The real Toronto figures the synthetic city is calibrated to, and the fits that use them.

* the City's published watermain aggregates (``data/toronto/watermains_summary.json`` and
  ``watermains_codebook.csv``): material, diameter and construction-decade mix, km and
  segments per ward with each ward's median construction year;
* the real footprint: the bundled 140 neighbourhoods, dissolved into the service area, and
  *pseudo-wards* (each neighbourhood joined to the nearest of 25 approximate ward centres,
  because ward polygons are not bundled);
* the real winters: freezing degree-days per winter (Nov-Mar) from the bundled weather.

The fits are small iterative proportional fitting (IPF) problems on tables of a few dozen
cells: material given era, diameter given material, and construction decade given ward.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from functools import cache

import numpy as np
import shapely
from pyproj import Transformer

from .._paths import data_dir
from ..core.crs import TORONTO_CRS, WGS84
from ..ingest.neighbourhoods import service_area_table
from ..ingest.sources import read_source
from ..ingest.weather import read_eccc_daily, transform_weather
from .params import MATERIAL_CODES, SynthParams

__all__ = [
    "DIAMETERS",
    "ERA_EDGES",
    "Reference",
    "fit_decades",
    "load_reference",
    "winter_index",
]

#: approximate centres (lon, lat) of Toronto's 25 wards (2018 boundaries); neighbourhoods
#: are joined to the nearest one to form pseudo-wards
WARD_CENTRES: dict[str, tuple[float, float]] = {
    "01": (-79.590, 43.735), "02": (-79.545, 43.665), "03": (-79.520, 43.615),
    "04": (-79.460, 43.648), "05": (-79.500, 43.690), "06": (-79.470, 43.745),
    "07": (-79.530, 43.755), "08": (-79.430, 43.715), "09": (-79.440, 43.665),
    "10": (-79.395, 43.640), "11": (-79.395, 43.670), "12": (-79.410, 43.695),
    "13": (-79.370, 43.660), "14": (-79.340, 43.675), "15": (-79.375, 43.720),
    "16": (-79.330, 43.735), "17": (-79.360, 43.780), "18": (-79.410, 43.775),
    "19": (-79.310, 43.690), "20": (-79.260, 43.710), "21": (-79.270, 43.760),
    "22": (-79.290, 43.790), "23": (-79.240, 43.810), "24": (-79.200, 43.760),
    "25": (-79.170, 43.800),
}  # fmt: skip

#: construction eras of the material table: [..1955), [1955, 1965), ... [2005, ..)
ERA_EDGES: tuple[int, ...] = (1955, 1965, 1975, 1985, 1995, 2005)

#: share of a decade's pipes in its first five years (default 0.5); the City's lead-era
#: count (construction before 1955) puts only 35.5 % of the 1950s before 1955
_DECADE_FIRST_HALF = {1950: 0.355}

#: plausibility of material by era after 1955 (rows: ERA_EDGES eras), before the IPF fit
_MATERIAL_PRIOR: dict[str, tuple[float, ...]] = {
    #        55-64 65-74 75-84 85-94 95-04  05+
    "CI":   (8.0, 5.0, 0.5, 0.1, 0.02, 0.02),
    "CICL": (0.2, 0.1, 0.0, 0.0, 0.0, 0.0),
    "DIP":  (0.3, 3.0, 4.0, 1.5, 0.8, 0.5),
    "DICL": (0.0, 0.1, 0.5, 1.0, 1.5, 2.0),
    "PVC":  (0.0, 0.3, 4.0, 8.0, 8.0, 8.0),
    "PVCO": (0.0, 0.0, 0.0, 0.1, 0.3, 0.5),
    "AC":   (1.5, 0.8, 0.2, 0.0, 0.0, 0.0),
    "SP":   (0.4, 0.4, 0.3, 0.3, 0.3, 0.3),
    "SPCL": (0.1, 0.1, 0.1, 0.1, 0.1, 0.1),
    "CPP":  (0.2, 0.2, 0.1, 0.1, 0.05, 0.05),
    "PCPP": (0.02, 0.02, 0.0, 0.0, 0.0, 0.0),
    "CONC": (0.02, 0.02, 0.0, 0.0, 0.0, 0.0),
    "CONP": (0.05, 0.03, 0.0, 0.0, 0.0, 0.0),
    "COP":  (0.2, 0.2, 0.1, 0.05, 0.05, 0.05),
    "PE":   (0.0, 0.02, 0.1, 0.1, 0.1, 0.1),
    "HDPE": (0.0, 0.0, 0.05, 0.05, 0.1, 0.1),
}  # fmt: skip

#: diameter range (mm) each material is plausible in, and a weight below 400 mm
_DIAMETER_RANGE: dict[str, tuple[int, int, float]] = {
    "CI": (75, 1200, 1.0), "CICL": (100, 1200, 1.0), "DIP": (100, 1200, 1.0),
    "DICL": (100, 1200, 1.0), "PVC": (50, 400, 1.0), "PVCO": (100, 400, 1.0),
    "AC": (100, 600, 1.0), "SP": (50, 3000, 0.2), "SPCL": (300, 3000, 0.3),
    "CPP": (300, 2400, 0.3), "PCPP": (600, 3000, 1.0), "CONC": (300, 2400, 0.5),
    "CONP": (300, 2400, 0.5), "COP": (25, 150, 1.0), "PE": (25, 300, 1.0),
    "HDPE": (50, 600, 1.0),
}  # fmt: skip

#: neighbourhoods whose nearest ward centre is not their ward
_WARD_OVERRIDES = {
    "South Riverdale": "14",
    "Kensington-Chinatown": "11",
    "Palmerston-Little Italy": "11",
}

#: the diameters (mm) the City's inventory uses
DIAMETERS: tuple[int, ...] = (
    25, 50, 75, 100, 150, 200, 250, 300, 350, 400, 450, 500, 560, 600, 750, 900, 1050,
    1200, 1350, 1500, 1650, 1800, 2000, 2100, 2200, 2250, 2400, 3000,
)  # fmt: skip


@dataclass(frozen=True)
class Reference:
    """The calibration targets and the real footprint (EPSG:2952)."""

    material_share: dict[str, float]  # published codes incl. UNK and None
    diameter_share: dict[int, float]
    decade_count: dict[int, int]
    lead_era_materials: dict[str, int]
    ward_codes: tuple[str, ...]
    ward_names: tuple[str, ...]
    ward_km: np.ndarray
    ward_segments: np.ndarray
    ward_median_year: np.ndarray
    ward_lead_era_pct: np.ndarray
    total_km: float
    total_segments: int
    area: shapely.Geometry  # dissolved neighbourhoods (service area without buffer)
    ward_polygons: np.ndarray  # pseudo-ward polygons, aligned with ward_codes
    ward_area_km2: np.ndarray


def _ipf(prior: np.ndarray, rows: np.ndarray, cols: np.ndarray, iters: int = 500) -> np.ndarray:
    """Iterative proportional fitting of ``prior`` to row and column totals."""
    m = prior.astype(float).copy()
    cols = cols * (rows.sum() / cols.sum())
    for _ in range(iters):
        r = m.sum(axis=1)
        m *= np.divide(rows, r, out=np.zeros_like(r), where=r > 0)[:, None]
        c = m.sum(axis=0)
        m *= np.divide(cols, c, out=np.zeros_like(c), where=c > 0)[None, :]
    return m


def year_weights(snapshot_year: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decades, years and the within-decade weight of each year (rows sum to 1).

    Returns
    -------
    decades
        ``(D,)`` decade start years 1870..2020.
    years
        ``(D, 10)`` candidate years (``decade + 0..9``).
    weights
        ``(D, 10)`` probability of each year within its decade; years after
        ``snapshot_year`` get 0.
    """
    decades = np.arange(1870, 2030, 10)
    years = decades[:, None] + np.arange(10)[None, :]
    w = np.ones(years.shape)
    for d, first in _DECADE_FIRST_HALF.items():
        i = int(np.flatnonzero(decades == d)[0])
        w[i, :5] = first / 5
        w[i, 5:] = (1 - first) / 5
    w[years > snapshot_year] = 0.0
    tot = w.sum(axis=1, keepdims=True)
    w = np.divide(w, tot, out=np.zeros_like(w), where=tot > 0)
    return decades, years, w


@cache
def _summary() -> dict:
    return json.loads((data_dir() / "toronto" / "watermains_summary.json").read_text("utf-8"))


@cache
def _codebook() -> list[dict[str, str]]:
    with (data_dir() / "toronto" / "watermains_codebook.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@cache
def _footprint() -> tuple[shapely.Geometry, np.ndarray, np.ndarray, np.ndarray]:
    """The dissolved service area and the neighbourhood polygons with their centroids."""
    path = data_dir() / "toronto" / "neighbourhood_planning_areas_utm6.zip"
    res = read_source(
        path, "toronto_neighbourhoods_140", today=dt.date(2026, 1, 1), crs=TORONTO_CRS
    )
    nb = res.tables["neighbourhoods"].sort_values("area_code", kind="stable")
    polys = shapely.from_wkb(nb["geometry"].to_numpy())
    sa = service_area_table(nb, "neighbourhoods", 0.0)
    area = shapely.from_wkb(sa["geometry"].iloc[0])
    cent = shapely.get_coordinates(shapely.point_on_surface(polys))
    names = np.array([str(n).split(" (")[0] for n in nb["area_name"]], dtype=object)
    return area, polys, cent, names


@cache
def load_reference() -> Reference:
    """Load the City's aggregates and the bundled footprint (cached per process)."""
    s = _summary()
    cb = _codebook()
    material_share = {r["code"]: float(r["count"]) for r in cb if r["code_type"] == "material"}
    tot = sum(material_share.values())
    material_share = {k: v / tot for k, v in material_share.items()}
    diam = {int(r["code"]): float(r["count"]) for r in cb if r["code_type"] == "diameter_mm"}
    dtot = sum(diam.values())
    diameter_share = {k: v / dtot for k, v in sorted(diam.items())}
    decade_count = {int(d["decade"]): int(d["segments"]) for d in s["decades"]}
    lead = {d["code"]: int(d["count"]) for d in s["lead"]["lead_era_materials"]}
    wards = sorted(s["wards"], key=lambda w: w["ward"])
    codes = tuple(w["ward"] for w in wards)

    area, polys, cent, names = _footprint()
    tr = Transformer.from_crs(WGS84, TORONTO_CRS, always_xy=True)
    wx, wy = tr.transform(*np.array([WARD_CENTRES[c] for c in codes]).T)
    d2 = (cent[:, 0, None] - wx[None, :]) ** 2 + (cent[:, 1, None] - wy[None, :]) ** 2
    nearest = d2.argmin(axis=1)
    for name, code in _WARD_OVERRIDES.items():
        nearest[names == name] = codes.index(code)
    ward_polys = np.array(
        [shapely.union_all(shapely.buffer(polys[nearest == i], 0.5)) for i in range(len(codes))],
        dtype=object,
    )
    return Reference(
        material_share=material_share,
        diameter_share=diameter_share,
        decade_count=decade_count,
        lead_era_materials=lead,
        ward_codes=codes,
        ward_names=tuple(w["name"] for w in wards),
        ward_km=np.array([w["km"] for w in wards], dtype=float),
        ward_segments=np.array([w["segments"] for w in wards], dtype=float),
        ward_median_year=np.array([w["median_year"] for w in wards], dtype=float),
        ward_lead_era_pct=np.array([w["lead_era_pct"] for w in wards], dtype=float),
        total_km=float(s["meta"]["total_km"]),
        total_segments=int(s["meta"]["segments"]),
        area=area,
        ward_polygons=ward_polys,
        ward_area_km2=shapely.area(ward_polys) / 1e6,
    )


# --------------------------------------------------------------------------- fits


def era_of(year: np.ndarray) -> np.ndarray:
    """Era index (0 = before 1955 ... 6 = 2005 and later) of construction years."""
    return np.searchsorted(np.array(ERA_EDGES), np.asarray(year), side="right")


@cache
def material_given_era(snapshot_year: int) -> np.ndarray:
    """``P(material | era)``, shape ``(7, len(MATERIAL_CODES))``, fitted to the City's mix.

    The pre-1955 row is the City's lead-era material count; the later eras are an IPF fit
    of :data:`_MATERIAL_PRIOR` to the era totals (from the decade mix) and the remaining
    material totals. UNK and 'None' are left out: they are published defects, not materials.
    """
    ref = load_reference()
    decades, years, w = year_weights(snapshot_year)
    counts = np.array([ref.decade_count.get(int(d), 0) for d in decades], dtype=float)
    by_year = counts[:, None] * w
    era_tot = np.bincount(era_of(years).ravel(), weights=by_year.ravel(), minlength=7)
    mats = list(MATERIAL_CODES)
    known = sum(ref.material_share[m] for m in mats)
    mat_tot = np.array([ref.material_share[m] / known for m in mats]) * era_tot.sum()
    lead = np.array([float(ref.lead_era_materials.get(m, 0)) for m in mats])
    row0 = lead / lead.sum()
    first = row0 * era_tot[0]
    rest_cols = np.clip(mat_tot - first, 1e-9, None)
    prior = np.array([_MATERIAL_PRIOR[m] for m in mats], dtype=float).T
    fitted = _ipf(prior, era_tot[1:], rest_cols)
    fitted = np.where(fitted.sum(axis=1, keepdims=True) > 0, fitted, prior)  # empty eras
    return np.vstack([row0, fitted / fitted.sum(axis=1, keepdims=True)])


@cache
def diameter_given_material() -> np.ndarray:
    """``P(diameter | material)``, shape ``(len(MATERIAL_CODES), len(DIAMETERS))``."""
    ref = load_reference()
    mats = list(MATERIAL_CODES)
    known = sum(ref.material_share[m] for m in mats)
    rows = np.array([ref.material_share[m] / known for m in mats])
    cols = np.array([ref.diameter_share.get(d, 0.0) for d in DIAMETERS])
    dia = np.array(DIAMETERS)
    prior = np.zeros((len(mats), len(dia)))
    for i, m in enumerate(mats):
        lo, hi, small = _DIAMETER_RANGE[m]
        ok = (dia >= lo) & (dia <= hi)
        prior[i] = np.where(ok, np.where(dia < 400, small, 1.0), 0.0)
    fitted = _ipf(prior, rows, cols, iters=2000)
    return fitted / fitted.sum(axis=1, keepdims=True)


def _median_years(p: np.ndarray, decades: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Median year of decade distributions (rows of ``p``), uniform within a decade."""
    cdf = np.cumsum(p, axis=1)
    i = (cdf < 0.5).sum(axis=1)
    i = np.minimum(i, p.shape[1] - 1)
    before = np.where(i > 0, np.take_along_axis(cdf, (i - 1)[:, None], 1)[:, 0], 0.0)
    pi = np.take_along_axis(p, i[:, None], 1)[:, 0]
    frac = np.divide(0.5 - before, pi, out=np.full_like(pi, 0.5), where=pi > 0)
    return decades[i] + frac * widths[i]


def fit_decades(ward_counts: np.ndarray, snapshot_year: int, iters: int = 60) -> np.ndarray:
    """Construction-decade distribution per ward, ``(W, D)``, for the pipes actually built.

    ``p[w, d]`` is proportional to ``c[d] * exp(theta[w] * (d - 1950) / 50)``: ``theta``
    moves each ward's median construction year to the City's, ``c`` makes the whole city's
    decade mix equal the City's (the city-wide mix wins where the two conflict, e.g. in a
    small window holding few wards).
    """
    ref = load_reference()
    decades, _, _ = year_weights(snapshot_year)
    widths = np.clip(snapshot_year - decades + 1, 1, 10).astype(float)
    target = np.array([ref.decade_count.get(int(d), 0) for d in decades], dtype=float)
    target[decades > snapshot_year] = 0.0  # an earlier snapshot has no later decades
    target = target / target.sum()
    x = (decades + widths / 2 - 1950.0) / 50.0
    n = np.asarray(ward_counts, dtype=float)
    c = target.copy()
    theta = np.zeros(len(n))
    med = ref.ward_median_year
    for _ in range(iters):
        lo = np.full(len(n), -15.0)
        hi = np.full(len(n), 15.0)
        for _ in range(40):
            mid = (lo + hi) / 2
            p = c[None, :] * np.exp(mid[:, None] * x[None, :])
            p /= p.sum(axis=1, keepdims=True)
            up = _median_years(p, decades, widths) < med
            lo = np.where(up, mid, lo)
            hi = np.where(up, hi, mid)
        theta = (lo + hi) / 2
        # c * exp(theta * x) is unchanged by theta -= k, c *= exp(k * x): fix that gauge
        shift = float(np.average(theta, weights=n)) if n.sum() > 0 else 0.0
        theta = theta - shift
        c = c * np.exp(shift * x)
        c = c / c.sum()
        p = c[None, :] * np.exp(theta[:, None] * x[None, :])
        p /= p.sum(axis=1, keepdims=True)
        mix = (n[:, None] * p).sum(axis=0)
        mix /= mix.sum()
        c = c * np.divide(target, mix, out=np.ones_like(mix), where=mix > 0)
    p = c[None, :] * np.exp(theta[:, None] * x[None, :])
    p /= p.sum(axis=1, keepdims=True)
    # the exponential tilt cannot meet every ward median and the city mix at once: make the
    # city-wide mix exact (IPF on wards x decades) and let the ward medians give way
    if n.sum() > 0:
        table = _ipf(n[:, None] * p, n, target * n.sum(), iters=200)
        rows = table.sum(axis=1, keepdims=True)
        p = np.where(rows > 0, table / np.where(rows > 0, rows, 1.0), p)
    return p


@cache
def _bundled_winters() -> tuple[tuple[int, float, bool], ...]:
    """(winter, freezing degree-days, fully observed) from the bundled ECCC files."""

    files = sorted((data_dir() / "toronto" / "weather_daily_6158350").glob("eng-daily-*.csv"))
    raw = read_eccc_daily(files)
    w = transform_weather(raw, "weather", today=dt.date(2026, 1, 1)).winters
    full = w["days_in_season"].to_numpy() >= 150
    ok = w["coverage_ok"].to_numpy(dtype=bool) & full & w["freezing_degree_days"].notna().to_numpy()
    return tuple(
        (int(y), float(f) if o else float("nan"), bool(o))
        for y, f, o in zip(w["winter"], w["freezing_degree_days"], ok, strict=True)
    )


def winter_index(params: SynthParams) -> dict[int, tuple[float, float, str]]:
    """Winter severity per simulated year: ``year -> (fdd, z, source)``.

    The winter ending in year ``t`` (November ``t-1`` to March ``t``) applies to year
    ``t``. ``z`` is the freezing degree-days standardised over the observed winters.
    Years without a fully observed winter get ``z = 0`` (``winter_fill="mean"``, source
    ``"mean"``) or a seeded standard-normal draw (``"draw"``).
    """
    if params.winter_fdd is not None:
        obs = {int(y): float(f) for y, f in params.winter_fdd}
    else:
        obs = {y: f for y, f, ok in _bundled_winters() if ok}
    vals = np.array(list(obs.values()), dtype=float)
    mean = float(vals.mean()) if vals.size else 0.0
    sd = float(vals.std(ddof=1)) if vals.size > 1 else 1.0
    sd = sd if sd > 0 else 1.0
    rng = np.random.default_rng(np.random.SeedSequence([params.seed, 9101]))
    draws = rng.standard_normal(len(params.years))
    out: dict[int, tuple[float, float, str]] = {}
    for k, year in enumerate(params.years):
        if year in obs:
            out[year] = (obs[year], (obs[year] - mean) / sd, "observed")
        elif params.winter_fill == "draw":
            z = float(draws[k])
            out[year] = (mean + z * sd, z, "draw")
        else:
            out[year] = (mean, 0.0, "mean")
    return out
