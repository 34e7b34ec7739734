"""Monte Carlo of future water main breaks, and a "replace the riskiest km" scenario.

A risk model gives each unit (pipe, street or cell) its expected number of breaks
next year, ``mu``. Planners need more than that point forecast: how many breaks the
city should budget for over the next 1..H years, how wide the range is, and how many
breaks a renewal programme would avoid. This module turns ``mu`` into those
distributions by simulation.

Model
-----
Unit ``u``'s breaks in future year ``h`` (``h = 1..H``) of simulation ``s`` are::

    N[u, s, h] ~ Poisson(mu_u * (1 + annual_growth) ** (h - 1) * F[s, h])

independently given the year factors ``F``. ``F[s, h]`` is one city-wide factor per
simulation and year, Gamma-distributed with mean 1 and coefficient of variation
``year_cv`` (``year_cv = 0`` means ``F = 1``). It stands for the weather-driven
swings between years (a city's yearly break count follows winter severity): every
unit is hit by the same hard winter, so city totals vary much more than a sum of
independent Poisson counts would. Given ``F`` the city total is Poisson, so its
variance is ``E + year_cv**2 * E**2`` for an expected total ``E``. ``annual_growth``
is a deterministic trend (ageing network) applied to every unit alike.

Results are *cumulative* breaks over horizons ``1..H``: the value reported for
horizon ``h`` is the number of breaks in years ``1..h``. ``expected`` columns are the
analytic means ``sum_u mu_u * sum_{h' <= h} (1 + annual_growth) ** (h' - 1)`` (the year
factor has mean 1), so they carry no simulation noise. Quantiles of the simulated
counts use ``np.quantile(..., method="linear")``: counts are integers, so a quantile
may fall between two integers (e.g. ``p50 = 2.5``), which keeps quantiles continuous
in ``n_sims`` and matches the usual definition.

Sampling
--------
Given ``F``, a unit's breaks over all ``H`` years of a simulation are
Poisson(``mu_u * R_s``) with ``R_s = sum_h rate[s, h]``, and each of those breaks
falls in year ``h`` with probability ``rate[s, h] / R_s`` -- the same joint law as
independent yearly Poisson counts. The sampler uses that: one uniform per (unit,
simulation) pair gives the total by inversion (exact up to floating point;
``u < 1 - lam <= exp(-lam)`` proves a zero without an ``exp``), and one uniform per
break picks its year. Pairs with a mean above 10 draw their yearly counts with
numpy's Poisson sampler instead. Most pairs have no break at all (expected breaks
per pipe are ~0.01-0.1 a year), so only pairs with breaks are stored, and per-unit
quantiles come from per-(unit, horizon) histograms of the small integer counts --
bit-identical to ``np.quantile`` on the dense draws. City totals are accumulated
per (simulation, year) across chunks. 50,000 units x 1,000 simulations x 10 years
takes a few seconds and a few hundred MB.

Random streams and reproducibility
----------------------------------
Everything is drawn from ``np.random.default_rng`` and is a pure function of the
inputs and ``seed``:

* the year factors come from one generator seeded ``[seed, _YEAR_TAG]``;
* units are cut into fixed blocks of :data:`BLOCK_SIZE` units (a module constant,
  not a parameter). Block ``b`` has its own generators seeded ``[seed, tag, b]``
  (pair totals, break years, large-rate pairs, renewal thinning). Each stream is
  consumed in input order of the units (then simulation, then break/year), and
  units with ``mu = 0`` draw nothing.

Because draws are consumed sequentially, the internal work chunks (sized to bound
memory) never change the result, and appending units after the others never changes
the draws of the earlier ones. The tags keep the streams apart: ``SeedSequence(42)``
and ``SeedSequence([42, 0])`` are the same stream, so bare ``[seed, b]`` keys would
collide with a plain ``seed``.

Renewal
-------
:func:`renewal_scenario` simulates the baseline and the renewed network with common
random numbers: the renewed counts of replaced units are a binomial thinning of
their baseline counts (each baseline break survives with probability ``residual``),
and untouched units keep their baseline counts. Thinning a Poisson(lam) count gives
exactly a Poisson(residual * lam) count, so the renewed network follows the model
above with ``mu_u * residual``, while avoided breaks are never negative in any
simulation and their spread reflects only the replaced units' randomness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from ..core.cluster import map_partitions
from ._simcore import (
    BLOCK_SIZE,
    DEFAULT_QUANTILES,
    MAX_HORIZON,
    MAX_RATE,
    MIN_SIMS,
    _check_block_units,
    _check_quantiles,
    _check_rate_bound,
    _check_rates,
    _check_sim_params,
    _draw_units,
    _first,
    _growth,
    _is_int,
    _quantile_name,
    _raise,
    _rates,
    _summary,
    _task_slices,
    _vector,
)
from .renewal import _check_inputs as _check_renewal
from .renewal import _renewal_summary, _selection, _sim_kwargs, renewal_scenario

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "BLOCK_SIZE",
    "DEFAULT_QUANTILES",
    "MAX_HORIZON",
    "MAX_RATE",
    "MIN_SIMS",
    "SimulationResult",
    "renewal_scenario",
    "simulate",
    "simulate_with_renewal",
    "year_factor_cv",
]


@dataclass(frozen=True)
class SimulationResult:
    """Simulated cumulative breaks, city-wide and per unit.

    Attributes
    ----------
    city : pandas.DataFrame
        One row per horizon ``1..H``: ``horizon`` (int32), ``mean`` and one column per
        quantile (``p10``, ``p50``, ...) of the simulated cumulative city-wide count,
        and ``expected``, the analytic mean.
    units : pandas.DataFrame
        One row per unit and reported horizon: ``unit_id`` (str), ``horizon`` (int32),
        ``mean`` and quantile columns of the unit's cumulative count; units in input
        order, then horizon ascending.
    n_sims, seed : int
        Number of simulations and the seed that reproduces them.
    params : dict
        ``year_cv``, ``annual_growth``, ``quantiles``, ``horizon``, ``unit_horizons``
        and ``quantile_method`` (JSON-ready).
    """

    city: pd.DataFrame
    units: pd.DataFrame
    n_sims: int
    seed: int
    params: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- simulate


def _check_ids(
    unit_ids: Sequence[str] | None, mu: NDArray[np.float64] | None, problems: list[str]
) -> list[str] | None:
    if unit_ids is None:
        return None
    ids = [str(i) for i in unit_ids]
    if mu is not None and len(ids) != mu.size:
        problems.append(f"unit_ids has length {len(ids)}, expected has {mu.size}")
    if len(set(ids)) != len(ids):
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].unique()[:5].tolist()
        problems.append(f"unit_ids has duplicates, e.g. {dup}")
    return ids


def _check_unit_horizons(unit_horizons: Any, horizon: Any, problems: list[str]) -> list[int]:
    if unit_horizons is None:
        return []
    try:
        raw = list(unit_horizons)
    except TypeError:
        raw = [unit_horizons]
    ok_h = _is_int(horizon) and 1 <= int(horizon) <= MAX_HORIZON
    top = int(horizon) if ok_h else MAX_HORIZON
    bad = [h for h in raw if not _is_int(h) or not 1 <= int(h) <= top]
    if bad:
        problems.append(f"unit_horizons must be integers in 1..{top}, got {bad}")
    elif len(set(raw)) != len(raw):
        problems.append(f"unit_horizons has duplicates: {raw}")
    else:
        return sorted(int(h) for h in raw)
    return []


def _draw_frames(
    mu: NDArray[np.float64],
    ids: list[str],
    hs: list[int],
    qs: tuple[float, ...],
    horizon: int,
    n_sims: int,
    seed: int,
    year_cv: float,
    annual_growth: float,
    block_units: int,
    client: Client | None,
    renewal: tuple[NDArray[np.bool_], float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[NDArray[np.int64], NDArray[np.int64]] | None]:
    """Draw every unit and summarise: the city frame, the unit frame and, with
    ``renewal`` (the replaced units, their residual risk), the cumulative baseline and
    avoided city breaks per (simulation, horizon) of :func:`renewal_scenario`."""
    n, nh = mu.size, len(hs)
    hidx = np.asarray(hs, dtype=np.intp) - 1
    rates = _rates(mu, seed, n_sims, horizon, year_cv, annual_growth)
    parts = map_partitions(
        _draw_units,
        (
            (mu[at], first, rates, seed, hidx, qs)
            + (() if renewal is None else ((renewal[0][at], renewal[1]),))
            for at, first in _task_slices(n, block_units)
        ),
        client,
    )
    city = np.zeros((n_sims, horizon), dtype=np.int64)
    avoided = np.zeros((n_sims, horizon), dtype=np.int64)
    for c, _, _, a in parts:
        city += c
        if a is not None:
            avoided += a
    unit_mean = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, nh))
    unit_q = np.concatenate([p[2] for p in parts], axis=1) if parts else np.zeros((len(qs), 0, nh))
    thinned = None
    if renewal is not None:
        thinned = (np.cumsum(city, axis=1), np.cumsum(avoided, axis=1))
    names = [_quantile_name(q) for q in qs]
    city_df = _city_frame(np.cumsum(city, axis=1), qs, float(mu.sum()), annual_growth)
    units = pd.DataFrame(
        {
            "unit_id": pd.Series(np.repeat(np.asarray(ids, dtype=object), nh), dtype=str),
            "horizon": np.tile(np.asarray(hs, dtype=np.int32), n),
            "mean": unit_mean.reshape(-1),
        }
    )
    for name, col in zip(names, unit_q, strict=True):
        units[name] = col.reshape(-1)
    return city_df, units, thinned


def _city_frame(
    cum: NDArray[np.int64], qs: tuple[float, ...], total: float, annual_growth: float
) -> pd.DataFrame:
    """The city frame of cumulative breaks per (simulation, horizon) ``cum``; ``total``:
    the expected breaks of every unit next year, for the analytic mean."""
    horizon = cum.shape[1]
    mean, q = _summary(cum, qs)
    city = pd.DataFrame({"horizon": np.arange(1, horizon + 1, dtype=np.int32), "mean": mean})
    for name, col in zip([_quantile_name(v) for v in qs], q, strict=True):
        city[name] = col
    city["expected"] = total * np.cumsum(_growth(annual_growth, horizon))
    return city


def simulate(
    expected: ArrayLike,
    *,
    unit_ids: Sequence[str] | None = None,
    horizon: int = 10,
    n_sims: int = 1000,
    seed: int = 42,
    year_cv: float = 0.0,
    annual_growth: float = 0.0,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    unit_horizons: Sequence[int] | None = None,
    block_units: int = 50_000,
    client: Client | None = None,
) -> SimulationResult:
    """Simulate cumulative future breaks from each unit's expected breaks next year.

    Parameters
    ----------
    expected : array-like of shape (n,)
        Expected breaks of each unit next year (``mu``); finite, >= 0.
    unit_ids : sequence of str, optional
        Unique unit identifiers (default ``"0"``, ``"1"``, ...).
    horizon : int
        Years to simulate, 1..50.
    n_sims : int
        Number of simulations, >= 10.
    seed : int
        Non-negative seed; same inputs and seed give identical frames.
    year_cv : float
        Coefficient of variation of the city-wide year factor (0 = none); estimate it
        with :func:`year_factor_cv`.
    annual_growth : float
        Yearly growth of every unit's rate (> -1), e.g. 0.02 for +2 % a year.
    quantiles : sequence of float
        Strictly increasing, in (0, 1); column ``p`` + percent (``0.025 -> p2_5``).
    unit_horizons : sequence of int, optional
        Horizons reported per unit (default all ``1..horizon``; empty: none, and no
        unit rows); the city frame always has every horizon.
    block_units : int
        Units simulated per task (rounded down to whole random-stream blocks of
        :data:`BLOCK_SIZE`, at least one): each unit's draws come from its block's
        streams, so the result does not depend on it; a task holds its units' summaries.
    client : distributed.Client, optional
        A Dask client: the tasks run on its cluster and the city totals are summed
        here (exact integers); None: in this process, one after another.

    Returns
    -------
    SimulationResult
        See the module docstring for the model and the random streams.

    Raises
    ------
    ValueError
        Listing every invalid argument.
    """
    problems: list[str] = []
    mu = _check_rates(expected, "expected", problems)
    _check_sim_params(
        problems,
        horizon=horizon,
        n_sims=n_sims,
        seed=seed,
        year_cv=year_cv,
        annual_growth=annual_growth,
    )
    _check_block_units(block_units, problems)
    qs = _check_quantiles(quantiles, problems)
    ids = _check_ids(unit_ids, mu, problems)
    hs = _check_unit_horizons(unit_horizons, horizon, problems)
    _check_rate_bound(mu, annual_growth, horizon, problems)
    _raise(problems, "simulate")
    assert mu is not None
    horizon, n_sims, seed = int(horizon), int(n_sims), int(seed)
    year_cv, annual_growth = float(year_cv), float(annual_growth)
    if unit_horizons is None:
        hs = list(range(1, horizon + 1))
    if ids is None:
        ids = [str(i) for i in range(mu.size)]

    city_df, units, _ = _draw_frames(
        mu, ids, hs, qs, horizon, n_sims, seed, year_cv, annual_growth, int(block_units), client
    )
    return _result(city_df, units, qs, hs, horizon, n_sims, seed, year_cv, annual_growth)


def _result(
    city: pd.DataFrame,
    units: pd.DataFrame,
    qs: tuple[float, ...],
    hs: list[int],
    horizon: int,
    n_sims: int,
    seed: int,
    year_cv: float,
    annual_growth: float,
) -> SimulationResult:
    params: dict[str, Any] = {
        "year_cv": year_cv,
        "annual_growth": annual_growth,
        "quantiles": list(qs),
        "horizon": horizon,
        "unit_horizons": hs,
        "quantile_method": "linear",
    }
    return SimulationResult(city=city, units=units, n_sims=n_sims, seed=seed, params=params)


def simulate_with_renewal(
    expected: ArrayLike,
    score: ArrayLike,
    *,
    unit_ids: Sequence[str] | None = None,
    length_km: ArrayLike | None = None,
    replace_km: float | None = None,
    replace_units: int | None = None,
    residual: float = 0.1,
    horizon: int = 10,
    n_sims: int = 1000,
    seed: int = 42,
    year_cv: float = 0.0,
    annual_growth: float = 0.0,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    unit_horizons: Sequence[int] | None = None,
    block_units: int = 50_000,
    client: Client | None = None,
) -> tuple[SimulationResult, pd.DataFrame, dict[str, Any], NDArray[np.bool_]]:
    """:func:`simulate` and :func:`renewal_scenario` from one pass over the draws.

    The renewal scenario thins the baseline that :func:`simulate` draws with the same
    seed, so both come from the same draws: made once here, their results are those of
    the two calls (tested), in about the time of one. The parameters are theirs.

    Returns
    -------
    tuple
        The :class:`SimulationResult`; the renewed network's city frame (the columns of
        ``SimulationResult.city``) from the thinned draws, so that in every simulation
        the baseline less the renewed network is the breaks avoided; then the renewal
        summary and the replaced units as :func:`renewal_scenario` returns them.

    Raises
    ------
    ValueError
        Listing every invalid argument of either.
    """
    raw: dict[str, Any] = {"horizon": horizon, "n_sims": n_sims, "seed": seed}
    raw |= {"year_cv": year_cv, "annual_growth": annual_growth}
    problems: list[str] = []
    mu, sc, length = _check_renewal(
        expected, score, length_km, replace_km, replace_units, residual, raw, block_units, problems
    )
    qs = _check_quantiles(quantiles, problems)
    ids = _check_ids(unit_ids, mu, problems)
    hs = _check_unit_horizons(unit_horizons, horizon, problems)
    _raise(problems, "simulate_with_renewal")
    assert mu is not None and sc is not None
    kw = _sim_kwargs(raw)
    hs = list(range(1, kw["horizon"] + 1)) if unit_horizons is None else hs
    ids = [str(i) for i in range(mu.size)] if ids is None else ids
    selected = _selection(sc, length, replace_km, replace_units)
    args = (kw["horizon"], kw["n_sims"], kw["seed"], kw["year_cv"], kw["annual_growth"])
    city_df, units, thinned = _draw_frames(
        mu, ids, hs, qs, *args, int(block_units), client, (selected, float(residual))
    )
    assert thinned is not None
    baseline, avoided = thinned
    summary = _renewal_summary(mu, selected, length, float(residual), kw, avoided, baseline)
    renewed = np.where(selected, mu * float(residual), mu)
    after = _city_frame(baseline - avoided, qs, float(renewed.sum()), kw["annual_growth"])
    return _result(city_df, units, qs, hs, *args), after, summary, selected


# --------------------------------------------------------------------------- year_cv


def year_factor_cv(observed: ArrayLike, expected: ArrayLike) -> float:
    """Estimate ``year_cv`` from a back-test of yearly city totals (method of moments).

    For each test year ``t`` the model predicted a city total ``E_t`` and ``O_t``
    breaks occurred. Under the simulation model ``O_t ~ Poisson(E_t * F_t)`` with
    ``F_t`` of mean ``m`` (1 for a well-calibrated level) and CV ``c``, the ratio
    ``r_t = O_t / E_t`` has ``E[r_t] = m`` and ``Var(r_t) = m / E_t + c**2 * m**2``.
    Hence::

        c**2 = max(var(r, ddof=1) - mean(r) * mean(1 / E), 0) / mean(r)**2

    The Poisson part is removed so that small networks, whose totals are noisy anyway,
    are not credited with weather swings. Dividing by ``mean(r)`` makes the estimate
    a CV around the observed level, so a miscalibrated level does not inflate it.

    Parameters
    ----------
    observed : array-like of shape (T,)
        Observed breaks per test year; finite, >= 0.
    expected : array-like of shape (T,)
        The model's expected total for the same years; finite, > 0.

    Returns
    -------
    float
        The estimated CV, >= 0; 0.0 with fewer than 3 years or no breaks at all.

    Raises
    ------
    ValueError
        On unequal lengths, non-finite or negative observed, non-positive expected.
    """
    problems: list[str] = []
    obs = _check_rates(observed, "observed", problems)
    exp_ = _vector(expected, "expected", problems)
    if exp_ is not None:
        bad = ~(np.isfinite(exp_) & (exp_ > 0))
        if bad.any():
            problems.append(f"expected must be finite and > 0; {_first(bad)}")
    if obs is not None and exp_ is not None and obs.size != exp_.size:
        problems.append(f"observed has length {obs.size}, expected has {exp_.size}")
    _raise(problems, "year_factor_cv")
    assert obs is not None and exp_ is not None
    if obs.size < 3:
        return 0.0
    ratio = obs / exp_
    level = float(ratio.mean())
    if level <= 0:
        return 0.0
    extra = float(ratio.var(ddof=1)) - level * float((1.0 / exp_).mean())
    return math.sqrt(max(extra, 0.0)) / level
