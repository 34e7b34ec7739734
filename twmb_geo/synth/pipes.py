"""Pipes laid under the synthetic streets, with calibrated attributes and replaced predecessors.

1. Every street segment that carries a main is cut into ``max(1, round(L / l_w))`` pipes
   (``l_w`` the pseudo-ward's mean pipe length); pieces are then added to the longest pipes
   or whole segments left without a main until exactly ``n_pipes`` active pipes exist.
   Pipes never cross an intersection.
2. Construction year: per pseudo-ward decade distribution fitted to the City's decade mix
   and ward median years (:func:`~.reference.fit_decades`), assigned through a Gaussian
   copula of a smooth "development age" field (correlation 0.85) ranked within each ward,
   so neighbouring pipes share an era.
3. A pipe at least 30 years younger than the development era of its location (the field
   alone) replaced an original main: an *abandoned* record with the same geometry, built
   in that era, removed the year the replacement went in.
4. Material from ``P(material | era)``, diameter from ``P(diameter | material)`` (both IPF
   fits to the City's mix); within a material the larger diameters go to the higher road
   classes. Cement-lined materials are ``lined``.
5. Published defects: a share of records have no construction year, or the material
   ``UNK`` or ``"None"``; the true values stay in the truth tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from scipy.special import ndtr

from .fields import GridField
from .geometry import ragged, ragged_cumlen, ragged_substrings
from .params import MATERIAL_CODES, SynthParams
from .reference import (
    DIAMETERS,
    diameter_given_material,
    era_of,
    fit_decades,
    load_reference,
    material_given_era,
    year_weights,
)
from .streets import COLLECTOR, LOCAL, MAJOR, MINOR, Layout, StreetNet, ward_at

__all__ = ["LINED", "PipeSet", "build_pipes"]

LINED = frozenset({"CICL", "DICL", "SPCL"})
AGE_CORRELATION = 0.70
SOIL_REPLACEMENT = 0.25
REPLACEMENT_GAP = 25
PRESSURE_BAND_M = 2500.0


@dataclass
class PipeSet:
    """All pipe records (active first, then abandoned), EPSG:2952."""

    geometry: np.ndarray
    street: np.ndarray  # index into the street arrays
    active: np.ndarray  # bool
    material: np.ndarray  # index into MATERIAL_CODES
    diameter: np.ndarray  # mm
    install_year: np.ndarray  # int
    removal_year: np.ndarray  # float, NaN for active
    replaced_by: np.ndarray  # index of the replacing pipe, -1 if none
    ward: np.ndarray
    pressure_zone: np.ndarray
    soil: np.ndarray
    length: np.ndarray
    year_published: np.ndarray  # bool: construction year published
    material_published: np.ndarray  # object: published code


def _pieces_per_segment(
    length: np.ndarray, target: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Pieces per carrying segment, adding up to exactly ``n``.

    ``max(1, round(L / (s * target)))`` with the scalar ``s`` solved so the total is close
    to ``n``; the rest is settled by splitting the longest pipes once more or, when there
    are more carrying segments than ``n``, by leaving random streets without a main.
    """
    lo, hi = 0.05, 50.0
    for _ in range(50):
        mid = np.sqrt(lo * hi)
        tot = int(np.maximum(1, np.round(length / (mid * target))).sum())
        lo, hi = (mid, hi) if tot > n else (lo, mid)
    k = np.maximum(1, np.round(length / (hi * target))).astype(np.int64)
    excess = int(k.sum()) - n
    if excess > 0:  # some streets get no main (random ones)
        order = rng.permutation(len(k))
        ck = np.cumsum(k[order])
        drop = ck <= excess
        k[order[drop]] = 0
        rest = excess - (int(ck[drop][-1]) if drop.any() else 0)
        if rest > 0:
            j = order[int(drop.sum())]
            k[j] -= rest
    while int(k.sum()) < n:  # split the longest pipes further
        short = n - int(k.sum())
        per = np.where(k > 0, length / np.maximum(k, 1), 0.0)
        top = np.argsort(-per, kind="stable")[: min(short, len(k))]
        k[top] += 1
    return k


def _sample(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Category index per row: ``p`` is (rows, K) or (K,), ``u`` uniform per row."""
    cdf = np.cumsum(p, axis=-1)
    if cdf.ndim == 1:
        return np.minimum(np.searchsorted(cdf / cdf[-1], u, side="right"), len(cdf) - 1)
    cdf = cdf / cdf[:, -1:]
    return np.minimum((u[:, None] >= cdf).sum(axis=1), cdf.shape[1] - 1)


def _within_group_rank(group: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each item by score within its group (0-based) and the group sizes."""
    order = np.lexsort((score, group))
    g = group[order]
    counts = np.bincount(group, minlength=int(group.max()) + 1 if len(group) else 0)
    start = np.cumsum(counts) - counts
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = np.arange(len(group)) - start[g]
    return rank, counts


def _years_from_u(
    p_ward: np.ndarray, ward: np.ndarray, u: np.ndarray, snapshot_year: int
) -> np.ndarray:
    """Quantile of each ward's decade distribution at ``u``, then a year in the decade."""
    _, years, w = year_weights(snapshot_year)
    cdf = np.cumsum(p_ward, axis=1)
    cdf /= cdf[:, -1:]
    d = np.minimum((u[:, None] >= cdf[ward]).sum(axis=1), cdf.shape[1] - 1)
    lo = np.where(d > 0, cdf[ward, np.maximum(d - 1, 0)], 0.0)
    width = cdf[ward, d] - lo
    frac = np.clip(np.divide(u - lo, width, out=np.zeros_like(u), where=width > 0), 0, 1 - 1e-12)
    wcdf = np.cumsum(w, axis=1)
    y = np.minimum((frac[:, None] >= wcdf[d]).sum(axis=1), 9)
    return years[d, y]


def _cut_streets(
    net: StreetNet, layout: Layout, n_pipes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the streets that carry mains into pipes; returns each pipe's street and geometry.

    Piece m of k starts at (m + j) / k of the street, j uniform in +-0.2 (0 for m = 0),
    and ends where piece m + 1 starts (1 for the last piece).
    """
    seg = np.flatnonzero(net.carries)
    seg_len = net.length[seg]
    k = _pieces_per_segment(seg_len, layout.ward_length_m[net.ward[seg]], n_pipes, rng)
    street = np.repeat(seg, k)
    grp = np.repeat(np.arange(len(seg)), k)
    m = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
    kk = k[grp]
    start_frac = np.where(m == 0, 0.0, (m + rng.uniform(-0.2, 0.2, len(grp))) / kk)
    end_frac = np.empty_like(start_frac)
    end_frac[:-1] = start_frac[1:]
    last = m == kk - 1
    end_frac[last] = 1.0
    L = net.length[street]
    coords, offsets = ragged(net.geometry)
    cum = ragged_cumlen(coords, offsets)
    pc, po = ragged_substrings(coords, offsets, street, start_frac * L, end_frac * L, cum)
    geom = shapely.linestrings(pc, indices=np.repeat(np.arange(len(street)), np.diff(po)))
    return street, geom


def _construction_years(
    params: SynthParams,
    ward: np.ndarray,
    soil: np.ndarray,
    zage: np.ndarray,
    n_wards: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Construction years (ward decade mix through a spatial copula) and predecessors.

    Returns the year, whether the pipe replaced an older one, and that one's year.
    """
    n_act = len(ward)
    p_ward = fit_decades(np.bincount(ward, minlength=n_wards), params.snapshot_year)
    # younger (replaced) pipes are a little more likely where the soil is corrosive
    rest = np.sqrt(1 - AGE_CORRELATION**2 - SOIL_REPLACEMENT**2)
    latent = AGE_CORRELATION * zage + SOIL_REPLACEMENT * soil + rest * rng.standard_normal(n_act)
    rank, counts = _within_group_rank(ward, latent)
    u = (rank + 0.5) / counts[ward]
    year = _years_from_u(p_ward, ward, u, params.snapshot_year)
    dev_year = _years_from_u(p_ward, ward, ndtr(zage), params.snapshot_year)
    replaced = (year - dev_year) >= REPLACEMENT_GAP
    pred_year = np.minimum(dev_year + rng.integers(-3, 6, n_act), year - 20)
    return year, replaced, pred_year


def _diameters(cls: np.ndarray, mat_a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Diameters given the material; larger ones to higher road classes, per material."""
    n_act = len(cls)
    dia_idx = _sample(diameter_given_material()[mat_a], rng.random(n_act))
    dia = np.array(DIAMETERS)[dia_idx]
    level = np.select([cls == MAJOR, cls == MINOR, cls == COLLECTOR, cls == LOCAL], [3, 2, 1, 0], 0)
    score = level + rng.normal(0.0, 0.7, n_act)
    order_p = np.lexsort((score, mat_a))
    order_d = np.lexsort((dia, mat_a))
    dia_sorted = np.empty_like(dia)
    dia_sorted[order_p] = dia[order_d]
    return dia_sorted


def _pressure_zones(layout: Layout, area: shapely.Geometry, mid: np.ndarray) -> np.ndarray:
    """Pressure districts: 2.5 km bands up from the lakeshore (grid frame)."""
    fr = layout.frame
    bx, by = shapely.get_coordinates(area).T
    bu, bv = fr.to_frame(bx, by)
    bins = np.floor(bu / 1000.0).astype(np.int64)
    b0 = bins.min()
    shore = np.full(bins.max() - b0 + 1, np.inf)
    np.minimum.at(shore, bins - b0, bv)
    shore = np.where(np.isfinite(shore), shore, bv.min())
    pu, pv = fr.to_frame(mid[:, 0], mid[:, 1])
    pb = np.clip(np.floor(pu / 1000.0).astype(np.int64) - b0, 0, len(shore) - 1)
    return np.clip(1 + np.floor((pv - shore[pb]) / PRESSURE_BAND_M), 1, 7).astype(np.int8)


def _published(
    params: SynthParams, all_mat: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Published defects: material codes with UNK/None, and whether the year is published."""
    n_all = len(all_mat)
    r = rng.random(n_all)
    codes = np.array(MATERIAL_CODES, dtype=object)
    pub = codes[all_mat].copy()
    pub[r < params.unknown_material_share] = "UNK"
    pub[
        (r >= params.unknown_material_share)
        & (r < params.unknown_material_share + params.none_material_share)
    ] = "None"
    return pub, rng.random(n_all) >= params.missing_year_share


def build_pipes(
    params: SynthParams, layout: Layout, net: StreetNet, fields: dict[str, GridField]
) -> PipeSet:
    """Lay ``params.n_pipes`` active pipes under ``net`` and derive their predecessors."""
    ref = load_reference()
    rng = np.random.default_rng(np.random.SeedSequence([params.seed, 21]))
    street, geom = _cut_streets(net, layout, params.n_pipes, rng)
    n_act = len(street)
    length = shapely.length(geom)
    mid = shapely.get_coordinates(shapely.line_interpolate_point(geom, 0.5, normalized=True))
    ward = ward_at(mid[:, 0], mid[:, 1]).astype(np.int64)
    soil = fields["soil"].at(mid[:, 0], mid[:, 1])
    zage = fields["age"].at(mid[:, 0], mid[:, 1])
    year, replaced, pred_year = _construction_years(
        params, ward, soil, zage, len(ref.ward_codes), rng
    )

    # predecessors (abandoned records): same street and geometry, older era
    src = np.flatnonzero(replaced)
    n_ab = len(src)
    all_year = np.concatenate([year, pred_year[src]])
    all_mat = _sample(
        material_given_era(params.snapshot_year)[era_of(all_year)], rng.random(n_act + n_ab)
    )
    dia = _diameters(net.cls[street], all_mat[:n_act], rng)
    zone = _pressure_zones(layout, ref.area, mid)
    pub, year_pub = _published(params, all_mat, rng)

    return PipeSet(
        geometry=np.concatenate([geom, geom[src]]),
        street=np.concatenate([street, street[src]]),
        active=np.concatenate([np.ones(n_act, bool), np.zeros(n_ab, bool)]),
        material=all_mat.astype(np.int8),
        diameter=np.concatenate([dia, dia[src]]).astype(np.int32),
        install_year=all_year.astype(np.int32),
        removal_year=np.concatenate([np.full(n_act, np.nan), year[src].astype(float)]),
        replaced_by=np.concatenate([np.full(n_act, -1), src]).astype(np.int64),
        ward=np.concatenate([ward, ward[src]]).astype(np.int16),
        pressure_zone=np.concatenate([zone, zone[src]]),
        soil=np.concatenate([soil, soil[src]]),
        length=np.concatenate([length, length[src]]),
        year_published=year_pub,
        material_published=pub,
    )
