"""The known break hazard of the synthetic city and the year-by-year break simulation.

For pipe ``i`` in service in year ``t`` (installed <= t < removal)::

    lambda[i, t] = c * L_km * base[m] * exp(gamma[m] * (min(age, age_cap) - age_ref))
                     * (d / d_ref) ** -delta * exp(beta * kappa[m] * s_i) * W_t
                     * (1 + alpha * min(H[i, t], h_cap))

with ``age = t - install_year + 0.5``, ``s_i`` the soil corrosivity at the pipe's midpoint,
``W_t = exp(omega * z_t)`` the winter factor and ``H[i, t]`` the breaks on pipe ``i`` in
years ``t - k .. t - 1``. Breaks per pipe-year are Poisson(lambda), drawn for all pipes
in service at once, one year after the other (the repeat term needs the past).

``c`` (1 unless a target is set) solves ``A c + alpha B c^2 = T``: ``A`` is the expected
count without the repeat term, ``B`` its first-order repeat contribution
``sum_t lambda~_t * sum_{u in t-k..t-1} lambda~_u``, and ``T`` the target number of breaks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from .params import MATERIAL_CODES, SynthParams
from .pipes import PipeSet

__all__ = ["Simulation", "simulate_breaks", "static_hazard"]


@dataclass
class Simulation:
    """Simulated breaks (unsorted) and the true hazard of every pipe-year in service."""

    pipe: np.ndarray  # index into the pipe arrays
    year: np.ndarray
    month: np.ndarray
    day: np.ndarray
    x: np.ndarray
    y: np.ndarray
    along_m: np.ndarray
    true_x: np.ndarray
    true_y: np.ndarray
    offset_m: np.ndarray
    distance_m: np.ndarray
    outlier: np.ndarray
    hazard_pipe: np.ndarray
    hazard_year: np.ndarray
    hazard_rate: np.ndarray
    hazard_prior: np.ndarray
    c: float
    winter: dict[int, tuple[float, float, str]]


def static_hazard(params: SynthParams, pipes: PipeSet) -> tuple[np.ndarray, np.ndarray]:
    """Per pipe: the time-invariant factor (per year) and the ageing rate gamma."""
    mats = list(MATERIAL_CODES)
    base = np.array([params.table("base_rate")[m] for m in mats])[pipes.material]
    gamma = np.array([params.table("age_rate")[m] for m in mats])[pipes.material]
    kappa = np.array([params.table("soil_susceptibility")[m] for m in mats])[pipes.material]
    g = (pipes.diameter / params.diameter_ref_mm) ** (-params.diameter_exponent)
    static = pipes.length / 1000.0 * base * g * np.exp(params.soil_beta * kappa * pipes.soil)
    return static, gamma


def _year_rates(
    params: SynthParams,
    pipes: PipeSet,
    static: np.ndarray,
    gamma: np.ndarray,
    year: int,
    w: float,
) -> tuple[np.ndarray, np.ndarray]:
    """In-service pipe indices and their rate without ``c`` and the repeat term."""
    removal = np.where(np.isnan(pipes.removal_year), np.inf, pipes.removal_year)
    live = np.flatnonzero((pipes.install_year <= year) & (year < removal))
    age = year - pipes.install_year[live] + 0.5
    f = np.exp(gamma[live] * (np.minimum(age, params.age_cap) - params.age_ref))
    return live, static[live] * f * w


def _sim_years(params: SynthParams) -> range:
    """Simulated years: ``repeat_window`` spin-up years, then the study window."""
    return range(params.start_year - params.repeat_window, params.end_year + 1)


def _winter_factor(params: SynthParams, winter: dict, year: int) -> float:
    """``W_t = exp(winter_coef * z_t)``; spin-up years before the window use z = 0."""
    z = winter[year][1] if year in winter else 0.0
    return float(np.exp(params.winter_coef * z))


def _expected_total(
    params: SynthParams, n: int, c: float, parts: list[tuple[np.ndarray, np.ndarray]]
) -> float:
    """Expected breaks in the window for constant ``c`` (``E[H]`` replaces ``H``).

    ``parts`` holds, per simulated year, the pipes in service and their rate without ``c``
    and the repeat term; ``n`` is the number of pipes.
    """
    k = params.repeat_window
    ring = np.zeros((k, n))
    total = 0.0
    spin = len(parts) - len(params.years)
    for j, (live, lam) in enumerate(parts):
        h = ring.sum(axis=0)[live]
        e = c * lam * (1.0 + params.repeat_alpha * np.minimum(h, params.repeat_cap))
        if j >= spin:
            total += float(e.sum())
        slot = ring[j % k]
        slot[:] = 0.0
        slot[live] = e
    return total


def _calibration(params: SynthParams, pipes: PipeSet, winter: dict) -> float:
    """The constant ``c`` meeting the target count (1 without a target).

    The expectation of the linear repeat term is exact by linearity (mean-field recursion
    over the years); only the cap ``repeat_cap`` is applied to the expected count, so the
    realised mean is within a few per cent of the target.
    """
    if params.target_breaks_per_year is None:
        return 1.0
    static, gamma = static_hazard(params, pipes)
    years = _sim_years(params)
    parts = []
    for y in years:  # compact copies: int32 indices, float32 rates
        live, lam = _year_rates(params, pipes, static, gamma, y, _winter_factor(params, winter, y))
        parts.append((live.astype(np.int32), lam.astype(np.float32)))
    spin = len(years) - len(params.years)
    target = params.target_breaks_per_year * len(params.years) * params.scale
    base = sum(float(lam.sum()) for _, lam in parts[spin:])
    if base <= 0:
        return 1.0
    c = target / base
    for _ in range(12):
        got = _expected_total(params, len(static), c, parts)
        if got <= 0 or abs(got / target - 1) < 1e-4:
            break
        c *= target / got
    return float(c)


def simulate_breaks(
    params: SynthParams, pipes: PipeSet, winter: dict[int, tuple[float, float, str]]
) -> Simulation:
    """Simulate breaks year by year and place them near their pipe (see module docstring)."""
    rng = np.random.default_rng(np.random.SeedSequence([params.seed, 31]))
    c = _calibration(params, pipes, winter)
    static, gamma = static_hazard(params, pipes)
    n = len(static)
    k = params.repeat_window
    ring = np.zeros((k, n), dtype=np.int16)
    hz_pipe, hz_year, hz_rate, hz_prior = [], [], [], []
    br_pipe, br_year = [], []
    for j, year in enumerate(_sim_years(params)):
        live, lam = _year_rates(
            params, pipes, static, gamma, year, _winter_factor(params, winter, year)
        )
        h = ring.sum(axis=0, dtype=np.int32)[live]
        rate = c * lam * (1.0 + params.repeat_alpha * np.minimum(h, params.repeat_cap))
        counts = rng.poisson(rate)
        slot = ring[j % k]
        slot[:] = 0
        slot[live] = np.minimum(counts, np.iinfo(np.int16).max)
        if year < params.start_year:  # spin-up: only fills the break history
            continue
        hz_pipe.append(live.astype(np.int32))
        hz_year.append(np.full(len(live), year, dtype=np.int16))
        hz_rate.append(rate)
        hz_prior.append(np.minimum(h, 127).astype(np.int8))
        hit = counts > 0
        br_pipe.append(np.repeat(live[hit], counts[hit]))
        br_year.append(np.full(int(counts.sum()), year, dtype=np.int32))
    pipe = np.concatenate(br_pipe).astype(np.int64)
    years = np.concatenate(br_year)
    nb = len(pipe)
    # date: month by the month weights, day uniform within the month
    mw = np.asarray(params.month_weights, dtype=float)
    month = (
        np.minimum(np.searchsorted(np.cumsum(mw) / mw.sum(), rng.random(nb), side="right"), 11) + 1
    )
    first = pd.to_datetime(pd.DataFrame({"year": years, "month": month, "day": 1}))
    dim = first.dt.days_in_month.to_numpy()
    day = 1 + np.minimum((rng.random(nb) * dim).astype(np.int64), dim - 1)
    # location: uniform along the pipe, then GPS-like noise (a few larger outliers)
    along = rng.random(nb) * pipes.length[pipe]
    on = shapely.line_interpolate_point(pipes.geometry[pipe], along)
    px, py = shapely.get_coordinates(on).T
    outlier = rng.random(nb) < params.outlier_share
    sigma = np.where(outlier, params.outlier_sigma_m, params.gps_sigma_m)
    dx, dy = rng.standard_normal(nb) * sigma, rng.standard_normal(nb) * sigma
    x, y = px + dx, py + dy
    dist = shapely.distance(shapely.points(x, y), pipes.geometry[pipe])
    return Simulation(
        pipe=pipe,
        year=years,
        month=month.astype(np.int32),
        day=day.astype(np.int32),
        x=x,
        y=y,
        along_m=along,
        true_x=px,
        true_y=py,
        offset_m=np.hypot(dx, dy),
        distance_m=dist,
        outlier=outlier,
        hazard_pipe=np.concatenate(hz_pipe),
        hazard_year=np.concatenate(hz_year),
        hazard_rate=np.concatenate(hz_rate),
        hazard_prior=np.concatenate(hz_prior),
        c=c,
        winter=winter,
    )
