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
swings between years (Toronto's yearly break count follows winter severity): every
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "BLOCK_SIZE",
    "DEFAULT_QUANTILES",
    "MAX_HORIZON",
    "MAX_RATE",
    "MIN_SIMS",
    "SimulationResult",
    "renewal_scenario",
    "simulate",
    "year_factor_cv",
]

DEFAULT_QUANTILES: Final[tuple[float, ...]] = (0.10, 0.50, 0.90, 0.95)
"""Quantiles reported by :func:`simulate` unless told otherwise (columns p10..p95)."""

BLOCK_SIZE: Final[int] = 1024
"""Units per random stream. Fixed, so results never depend on how work is chunked."""

MAX_HORIZON: Final[int] = 50
MIN_SIMS: Final[int] = 10
MAX_RATE: Final[float] = 1e9
"""Largest ``mu * growth factor`` accepted (breaks per unit-year); guards overflow."""

_RENEWAL_QUANTILES: Final[tuple[float, ...]] = (0.10, 0.50, 0.90)
_YEAR_TAG: Final[int] = 0x59454152  # "YEAR"
_UNIT_TAGS: Final[tuple[int, ...]] = (
    0x544F5441,  # "TOTA": total breaks of a (unit, simulation) pair
    0x59524152,  # "YRAR": year of each of those breaks
    0x5441494C,  # "TAIL": yearly counts of pairs with a large rate
)
_THIN_TAG: Final[int] = 0x5448494E  # "THIN"
_INVERSION_MAX_RATE: Final[float] = 10.0  # pairs above this use numpy's Poisson sampler
_INVERSION_STEPS: Final[int] = 6  # unrolled inversion steps before the shrinking loop
_MAX_CELL_RATE: Final[float] = 1e15  # numpy's Poisson sampler fails near 9.2e18
_WORK_CELLS: int = 1 << 22  # unit x sim x year cells per work chunk (bounds memory)


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


# --------------------------------------------------------------------------- validation


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def _is_real(x: Any) -> bool:
    return (
        isinstance(x, int | float | np.integer | np.floating)
        and not isinstance(x, bool | np.bool_)
        and math.isfinite(float(x))
    )


def _first(mask: NDArray[np.bool_]) -> str:
    return f"{int(mask.sum())} value(s), first at index {int(np.flatnonzero(mask)[0])}"


def _vector(x: ArrayLike, name: str, problems: list[str]) -> NDArray[np.float64] | None:
    """``x`` as a 1-D float array, or ``None`` after recording why it is not one."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        problems.append(f"{name} must be numeric")
        return None
    if arr.ndim != 1:
        problems.append(f"{name} must be one-dimensional, got shape {arr.shape}")
        return None
    return arr


def _check_rates(x: ArrayLike, name: str, problems: list[str]) -> NDArray[np.float64] | None:
    """Finite, non-negative 1-D values (expected breaks, lengths).

    The array is returned even when it has bad values (so its length can still be
    checked); callers raise once every problem is recorded.
    """
    arr = _vector(x, name, problems)
    if arr is None:
        return None
    for what, bad in (
        ("NaN", np.isnan(arr)),
        ("infinite", np.isinf(arr)),
        ("negative", arr < 0),
    ):
        if bad.any():
            problems.append(f"{name} has {what} {_first(bad)}")
    return arr


def _check_sim_params(
    problems: list[str], *, horizon: Any, n_sims: Any, seed: Any, year_cv: Any, annual_growth: Any
) -> None:
    if not _is_int(horizon) or not 1 <= int(horizon) <= MAX_HORIZON:
        problems.append(f"horizon must be an integer in 1..{MAX_HORIZON}, got {horizon!r}")
    if not _is_int(n_sims) or int(n_sims) < MIN_SIMS:
        problems.append(f"n_sims must be an integer >= {MIN_SIMS}, got {n_sims!r}")
    if not _is_int(seed) or int(seed) < 0:
        problems.append(f"seed must be a non-negative integer, got {seed!r}")
    if not _is_real(year_cv) or float(year_cv) < 0:
        problems.append(f"year_cv must be a finite number >= 0, got {year_cv!r}")
    if not _is_real(annual_growth) or float(annual_growth) <= -1:
        problems.append(f"annual_growth must be a finite number > -1, got {annual_growth!r}")


def _growth(annual_growth: float, horizon: int) -> NDArray[np.float64]:
    """Growth factor ``(1 + g) ** (h - 1)`` for ``h = 1..horizon``."""
    return (1.0 + annual_growth) ** np.arange(horizon, dtype=np.float64)


def _check_rate_bound(
    mu: NDArray[np.float64] | None, annual_growth: Any, horizon: Any, problems: list[str]
) -> None:
    """Reject rates that would overflow the counts (only once everything else is valid)."""
    if mu is None or mu.size == 0 or problems:
        return
    with np.errstate(over="ignore"):
        top = float(mu.max()) * float(_growth(float(annual_growth), int(horizon)).max())
    if not top <= MAX_RATE:
        problems.append(
            f"expected x growth factor reaches {top:.3g} breaks per unit-year; "
            f"rates above {MAX_RATE:g} are not supported"
        )


def _raise(problems: list[str], what: str) -> None:
    if problems:
        raise ValueError(f"invalid {what} arguments:\n- " + "\n- ".join(problems))


def _quantile_name(q: float) -> str:
    """Column name of a quantile: ``0.1 -> "p10"``, ``0.025 -> "p2_5"``."""
    pct = round(float(q) * 100.0, 6)
    if pct == int(pct):
        return f"p{int(pct)}"
    return "p" + f"{pct:g}".replace(".", "_")


def _check_quantiles(quantiles: Any, problems: list[str]) -> tuple[float, ...]:
    try:
        qs = tuple(float(q) for q in quantiles)
    except (TypeError, ValueError):
        problems.append(f"quantiles must be a sequence of numbers, got {quantiles!r}")
        return ()
    bad = [q for q in qs if not 0.0 < q < 1.0]
    if bad:
        problems.append(f"quantiles must lie strictly between 0 and 1, got {bad}")
    if any(b <= a for a, b in pairwise(qs)):
        problems.append(f"quantiles must be strictly increasing, got {list(qs)}")
    names = [_quantile_name(q) for q in qs]
    if not bad and len(set(names)) != len(names):
        problems.append(f"quantiles give duplicate column names {names}")
    return qs


# --------------------------------------------------------------------------- engine


def _year_factors(seed: int, n_sims: int, horizon: int, year_cv: float) -> NDArray[np.float64]:
    """City-wide year factors ``F[s, h]``: Gamma with mean 1 and CV ``year_cv``."""
    if year_cv == 0:
        return np.ones((n_sims, horizon), dtype=np.float64)
    shape = 1.0 / year_cv**2
    rng = np.random.default_rng([seed, _YEAR_TAG])
    return rng.gamma(shape, 1.0 / shape, size=(n_sims, horizon))


@dataclass(frozen=True)
class _Rates:
    """Per-(simulation, year) multiplier of ``mu`` and what the sampler derives from it."""

    rates: NDArray[np.float64]  # (S, H): growth factor x year factor
    total: NDArray[np.float64]  # (S,): sum over years
    split: NDArray[np.float64]  # (H - 1, S): cumulative share of the total by year end
    shared_split: bool  # every simulation splits the same way (no year factor)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rates.shape  # type: ignore[return-value]


def _rates(
    mu: NDArray[np.float64], seed: int, n_sims: int, horizon: int, year_cv: float, growth: float
) -> _Rates:
    """Growth x year factors, checked against the largest rate the sampler handles."""
    rates = _growth(growth, horizon)[None, :] * _year_factors(seed, n_sims, horizon, year_cv)
    top = float(mu.max()) * float(rates.max()) * horizon if mu.size else 0.0
    if not top <= _MAX_CELL_RATE:
        raise ValueError(
            f"simulated rates reach {top:.3g} breaks per unit (limit {_MAX_CELL_RATE:g}); "
            "year_cv or annual_growth is implausibly large"
        )
    cum = np.cumsum(rates, axis=1)
    total = cum[:, -1].copy()
    split = np.zeros((horizon - 1, n_sims), dtype=np.float64)
    np.divide(cum[:, :-1].T, total[None, :], out=split, where=total[None, :] > 0)
    shared = bool(np.all(split == split[:, :1]))
    return _Rates(rates=rates, total=total, split=split, shared_split=shared)


def _inverse_poisson(u: NDArray[np.float64], lam: NDArray[np.float64]) -> NDArray[np.int64]:
    """Poisson(lam) counts by inversion: the smallest ``k`` with ``u < P(N <= k)``.

    ``u < 1 - lam <= exp(-lam)`` already proves a zero, so only the few cells with a
    chance of a break need ``exp`` and the search: ``_INVERSION_STEPS`` unrolled steps
    for all of them, then a shrinking loop for the rare larger counts. Meant for
    ``lam <= _INVERSION_MAX_RATE``.
    """
    out = np.zeros(u.shape, dtype=np.int64)
    idx = np.flatnonzero(u >= 1.0 - lam)
    uu, ll = u[idx], lam[idx]
    pk = np.exp(-ll)
    cdf = pk.copy()
    n = (uu >= cdf).astype(np.int64)  # N > 0
    for k in range(1, _INVERSION_STEPS):
        pk *= ll / k
        cdf += pk
        n += uu >= cdf  # cdf never decreases, so this counts the k with N > k
    out[idx] = n
    rest = n == _INVERSION_STEPS  # N >= _INVERSION_STEPS: keep searching
    idx, uu, ll, pk, cdf = idx[rest], uu[rest], ll[rest], pk[rest], cdf[rest]
    k = _INVERSION_STEPS - 1
    while idx.size:
        k += 1
        pk = pk * ll / k
        new = cdf + pk
        done = (uu < new) | (new == cdf)  # found, or cdf rounded to its limit below u
        out[idx[done]] = k
        keep = ~done
        idx, uu, ll, pk, cdf = idx[keep], uu[keep], ll[keep], pk[keep], new[keep]
    return out


@dataclass(frozen=True)
class _Draws:
    """Breaks of units ``lo..hi`` in sparse form: only (unit, simulation) pairs with breaks.

    ``pair`` holds ``(unit - lo) * S + sim``, sorted; ``yearly[i, h]`` is that pair's
    breaks in year ``h + 1``. Every pair not listed has no break at all. ``city`` is
    the total over these units per (simulation, year).
    """

    block: int
    lo: int
    hi: int
    pair: NDArray[np.intp]
    yearly: NDArray[np.int64]
    city: NDArray[np.int64]


def _draw(mu: NDArray[np.float64], r: _Rates, rngs: tuple[np.random.Generator, ...]) -> _Draws:
    """Simulate units with ``mu > 0`` (``block``/``lo``/``hi`` left to the caller).

    A unit's breaks over all years of a simulation are Poisson(``mu * total``), drawn
    by inversion of one uniform per (unit, simulation) from ``rngs[0]``; given that
    total, each break falls in year ``h`` with probability ``rates[s, h] / total[s]``
    (one uniform per break from ``rngs[1]``), which is exactly the independent yearly
    Poisson model. Pairs whose mean exceeds ``_INVERSION_MAX_RATE`` draw their yearly
    counts directly with numpy's Poisson sampler from ``rngs[2]``. Each stream is
    consumed in unit, simulation (and break) order, so consecutive pieces of a block
    drawn one after the other give the same result as the whole block at once.
    """
    rng_total, rng_year, rng_tail = rngs
    n_sims, horizon = r.shape
    lam = (mu[:, None] * r.total[None, :]).reshape(-1)
    u = rng_total.random(lam.size)
    big = lam > _INVERSION_MAX_RATE
    n_total = _inverse_poisson(u, np.where(big, 0.0, lam))
    pair = np.flatnonzero((n_total > 0) | big)
    small = np.flatnonzero(n_total)
    tail = np.flatnonzero(big)
    yearly = np.zeros((pair.size, horizon), dtype=np.int64)
    city = np.zeros((n_sims, horizon), dtype=np.int64)
    if small.size:
        per = n_total[small]
        row = np.repeat(np.searchsorted(pair, small), per)
        sim = np.repeat(small % n_sims, per)
        v = rng_year.random(row.size)
        if r.shared_split:
            year = np.searchsorted(r.split[:, 0], v, side="right")
        else:  # year = number of year ends whose cumulative share is <= v
            year = np.zeros(row.size, dtype=np.intp)
            for ends in r.split:
                year += v >= ends[sim]
        yearly += np.bincount(row * horizon + year, minlength=yearly.size).reshape(yearly.shape)
        city += np.bincount(sim * horizon + year, minlength=city.size).reshape(city.shape)
    if tail.size:
        cells = rng_tail.poisson(mu[tail // n_sims, None] * r.rates[tail % n_sims])
        yearly[np.searchsorted(pair, tail)] = cells
        np.add.at(city, tail % n_sims, cells)
    return _Draws(block=-1, lo=0, hi=mu.size, pair=pair.astype(np.intp), yearly=yearly, city=city)


def _iter_draws(mu: NDArray[np.float64], r: _Rates, seed: int) -> Iterator[_Draws]:
    """Yield the sparse draws of consecutive work chunks of units.

    Chunks never straddle a block of :data:`BLOCK_SIZE` units and hold at most
    ``_WORK_CELLS`` unit x simulation x year cells; units with ``mu = 0`` draw nothing.
    """
    n = mu.size
    n_sims, horizon = r.shape
    step = max(1, _WORK_CELLS // (n_sims * horizon))
    for block, start in enumerate(range(0, n, BLOCK_SIZE)):
        stop = min(start + BLOCK_SIZE, n)
        rngs = tuple(np.random.default_rng([seed, tag, block]) for tag in _UNIT_TAGS)
        for lo in range(start, stop, step):
            hi = min(lo + step, stop)
            m = mu[lo:hi]
            nz = np.flatnonzero(m > 0)
            d = _draw(m[nz], r, rngs)
            pair = d.pair if nz.size == m.size else nz[d.pair // n_sims] * n_sims + d.pair % n_sims
            yield _Draws(block=block, lo=lo, hi=hi, pair=pair, yearly=d.yearly, city=d.city)


def _lerp_order_stats(
    order_stat: Callable[[NDArray[np.intp]], NDArray[np.int64]], n: int, quantiles: Sequence[float]
) -> NDArray[np.float64]:
    """``np.quantile(..., method="linear")`` from a function returning order statistics.

    Mirrors numpy's virtual index ``(n - 1) * q`` and its two-sided lerp, so the
    result is bit-identical to ``np.quantile`` on the dense draws.
    """
    vi = (n - 1) * np.asarray(quantiles, dtype=np.float64)
    prev = np.floor(vi).astype(np.intp)
    nxt = np.minimum(prev + 1, n - 1)
    gamma = vi - prev
    need, inv = np.unique(np.concatenate((prev, nxt)), return_inverse=True)
    stats = order_stat(need)  # (..., len(need))
    out = []
    for i, t in enumerate(gamma):
        a = stats[..., inv[i]]
        b = stats[..., inv[len(gamma) + i]]
        diff = b - a
        val = a + diff * t
        if t >= 0.5:
            val = b - diff * (1 - t)
        out.append(np.asarray(val, dtype=np.float64))
    return np.stack(out) if out else np.empty((0,))


def _unit_summary(
    d: _Draws, n_sims: int, hidx: NDArray[np.intp], quantiles: Sequence[float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and quantiles over simulations of each unit's cumulative breaks.

    Returns arrays of shape ``(k, len(hidx))`` and ``(len(quantiles), k, len(hidx))``.
    Quantiles come from per-(unit, horizon) histograms of the (small, integer) counts,
    with pairs without breaks added as zeros; a dense ``np.quantile`` takes over when
    counts are so large that histograms would outgrow the draws.
    """
    k, nh = d.hi - d.lo, hidx.size
    cum = np.cumsum(d.yearly, axis=1)[:, hidx]
    unit = d.pair // n_sims
    sums = np.zeros((k, nh), dtype=np.int64)
    if unit.size:
        starts = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]])
        sums[unit[starts]] = np.add.reduceat(cum, starts, axis=0)
    mean = sums / n_sims
    if not len(quantiles):
        return mean, np.empty((0, k, nh))
    top = int(cum.max()) + 1 if cum.size else 1
    if top > n_sims:
        dense = np.zeros((k * n_sims, nh), dtype=np.int64)
        dense[d.pair] = cum
        q = np.quantile(dense.reshape(k, n_sims, nh), quantiles, axis=1, method="linear")
        return mean, np.asarray(q, dtype=np.float64)
    lanes = k * nh
    key = (unit[:, None] * nh + np.arange(nh)) * top + cum
    hist = np.bincount(key.reshape(-1), minlength=lanes * top).reshape(k, nh, top)
    hist[:, :, 0] += (n_sims - np.bincount(unit, minlength=k))[:, None]
    # cdf[lane, v] = simulations with at most v breaks; offsetting lane by lane makes
    # the flattened cdf increasing, so one searchsorted finds every order statistic.
    lane_off = np.arange(lanes, dtype=np.int64)[:, None]
    flat = (np.cumsum(hist, axis=2).reshape(lanes, top) + lane_off * (n_sims + 1)).reshape(-1)

    def order_stat(j: NDArray[np.intp]) -> NDArray[np.int64]:
        pos = np.searchsorted(flat, j[None, :] + lane_off * (n_sims + 1), side="right")
        return (pos - lane_off * top).reshape(k, nh, j.size)

    return mean, _lerp_order_stats(order_stat, n_sims, quantiles)


def _city_yearly(
    pair: NDArray[np.intp], yearly: NDArray[np.int64], n_sims: int
) -> NDArray[np.int64]:
    """Breaks per (simulation, year) summed over (unit, simulation) pairs."""
    horizon = yearly.shape[1]
    key = ((pair % n_sims)[:, None] * horizon + np.arange(horizon)).reshape(-1)
    # float weights sum integers exactly below 2**53
    tot = np.bincount(key, weights=yearly.reshape(-1), minlength=n_sims * horizon)
    return np.rint(tot).astype(np.int64).reshape(n_sims, horizon)


def _summary(
    cum: NDArray[np.integer], quantiles: Sequence[float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact mean and linear-interpolated quantiles of integer draws along axis 0."""
    mean = cum.sum(axis=0, dtype=np.int64) / cum.shape[0]
    if not len(quantiles):
        return mean, np.empty((0, *mean.shape))
    return mean, np.asarray(np.quantile(cum, quantiles, axis=0, method="linear"), np.float64)


# --------------------------------------------------------------------------- simulate


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
        Horizons reported per unit (default all ``1..horizon``); the city frame
        always has every horizon.

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
    qs = _check_quantiles(quantiles, problems)
    ids: list[str] | None = None
    if unit_ids is not None:
        ids = [str(i) for i in unit_ids]
        if mu is not None and len(ids) != mu.size:
            problems.append(f"unit_ids has length {len(ids)}, expected has {mu.size}")
        if len(set(ids)) != len(ids):
            dup = pd.Series(ids)[pd.Series(ids).duplicated()].unique()[:5].tolist()
            problems.append(f"unit_ids has duplicates, e.g. {dup}")
    hs: list[int] = []
    if unit_horizons is not None:
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
            hs = sorted(int(h) for h in raw)
    _check_rate_bound(mu, annual_growth, horizon, problems)
    _raise(problems, "simulate")
    assert mu is not None
    horizon, n_sims, seed = int(horizon), int(n_sims), int(seed)
    year_cv, annual_growth = float(year_cv), float(annual_growth)
    if unit_horizons is None:
        hs = list(range(1, horizon + 1))
    if ids is None:
        ids = [str(i) for i in range(mu.size)]

    n, nh, nq = mu.size, len(hs), len(qs)
    hidx = np.asarray(hs, dtype=np.intp) - 1
    rates = _rates(mu, seed, n_sims, horizon, year_cv, annual_growth)
    city = np.zeros((n_sims, horizon), dtype=np.int64)
    unit_mean = np.zeros((n, nh), dtype=np.float64)
    unit_q = np.zeros((nq, n, nh), dtype=np.float64)
    for d in _iter_draws(mu, rates, seed):
        city += d.city
        if nh:
            unit_mean[d.lo : d.hi], unit_q[:, d.lo : d.hi] = _unit_summary(d, n_sims, hidx, qs)

    names = [_quantile_name(q) for q in qs]
    c_mean, c_q = _summary(np.cumsum(city, axis=1), qs)
    city_df = pd.DataFrame({"horizon": np.arange(1, horizon + 1, dtype=np.int32), "mean": c_mean})
    for name, col in zip(names, c_q, strict=True):
        city_df[name] = col
    city_df["expected"] = float(mu.sum()) * np.cumsum(_growth(annual_growth, horizon))

    units = pd.DataFrame(
        {
            "unit_id": pd.Series(np.repeat(np.asarray(ids, dtype=object), nh), dtype=str),
            "horizon": np.tile(np.asarray(hs, dtype=np.int32), n),
            "mean": unit_mean.reshape(-1),
        }
    )
    for name, col in zip(names, unit_q, strict=True):
        units[name] = col.reshape(-1)
    params: dict[str, Any] = {
        "year_cv": year_cv,
        "annual_growth": annual_growth,
        "quantiles": list(qs),
        "horizon": horizon,
        "unit_horizons": hs,
        "quantile_method": "linear",
    }
    return SimulationResult(city=city_df, units=units, n_sims=n_sims, seed=seed, params=params)


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


# --------------------------------------------------------------------------- renewal


def _rank_order(score: NDArray[np.float64]) -> NDArray[np.intp]:
    """Indices ranking ``score`` descending, NaN last, ties in input order (stable)."""
    isnan = np.isnan(score)
    return np.lexsort((np.where(isnan, 0.0, -score), isnan))


def _select(
    order: NDArray[np.intp],
    length: NDArray[np.float64] | None,
    replace_km: float | None,
    replace_units: int | None,
) -> NDArray[np.bool_]:
    """Mask of the riskiest prefix of ``order`` that fits the budget."""
    n = order.size
    mask = np.zeros(n, dtype=bool)
    if replace_units is not None:
        mask[order[:replace_units]] = True
        return mask
    assert length is not None and replace_km is not None
    cum = np.cumsum(length[order])
    tol = 1e-9 * max(1.0, replace_km)  # lengths like 0.1 + 0.2 must fit a 0.3 km budget
    fits = cum <= replace_km + tol
    # cum is non-decreasing, so the units that fit are a prefix of the ranking.
    mask[order[: int(fits.sum())]] = True
    return mask


def renewal_scenario(
    expected: ArrayLike,
    score: ArrayLike,
    *,
    length_km: ArrayLike | None = None,
    replace_km: float | None = None,
    replace_units: int | None = None,
    residual: float = 0.1,
    horizon: int = 10,
    n_sims: int = 1000,
    seed: int = 42,
    year_cv: float = 0.0,
    annual_growth: float = 0.0,
) -> tuple[dict[str, Any], NDArray[np.bool_]]:
    """Breaks avoided by replacing the riskiest ``replace_km`` km (or ``replace_units``).

    Units are ranked by ``score`` descending (stable: ties keep input order; NaN
    last) and the riskiest are taken while their cumulative length stays within
    ``replace_km`` (the first unit that would exceed it stops the selection), or the
    top ``replace_units`` units. A replaced unit's expected breaks become
    ``mu * residual`` (new pipe). Baseline and renewed network are simulated with
    common random numbers (binomial thinning, see the module docstring), so avoided
    breaks are never negative and have low noise.

    Parameters
    ----------
    expected : array-like of shape (n,)
        Expected breaks of each unit next year; finite, >= 0.
    score : array-like of shape (n,)
        Risk score used for ranking, higher = riskier; NaN allowed (ranks last).
    length_km : array-like of shape (n,), optional
        Unit lengths (finite, >= 0); required with ``replace_km``.
    replace_km, replace_units : float or int
        The budget; exactly one must be given.
    residual : float
        Risk of a renewed unit relative to the old one, in [0, 1].
    horizon, n_sims, seed, year_cv, annual_growth
        As in :func:`simulate`.

    Returns
    -------
    summary : dict
        JSON-ready: ``units_replaced``, ``km_replaced`` (None without lengths),
        ``share_of_length`` (None without lengths), ``share_of_units``, ``horizon``,
        ``n_sims``, ``seed``, ``residual``, analytic ``expected_breaks_baseline`` /
        ``_after`` / ``_avoided`` over the horizon, simulated ``avoided_mean`` and
        ``avoided_p10`` / ``_p50`` / ``_p90`` over the horizon,
        ``breaks_avoided_per_km`` (analytic, None without lengths or with 0 km) and
        ``by_horizon``: ``[{"horizon", "avoided_expected", "avoided_mean"}, ...]``
        (cumulative up to each horizon).
    selected : numpy.ndarray of bool, shape (n,)
        Which units are replaced.

    Raises
    ------
    ValueError
        Listing every invalid argument.
    """
    problems: list[str] = []
    mu = _check_rates(expected, "expected", problems)
    sc = _vector(score, "score", problems)
    length: NDArray[np.float64] | None = None
    if length_km is not None:
        length = _check_rates(length_km, "length_km", problems)
    n = mu.size if mu is not None else None
    for name, arr in (("score", sc), ("length_km", length)):
        if n is not None and arr is not None and arr.size != n:
            problems.append(f"{name} has length {arr.size}, expected has {n}")
    if (replace_km is None) == (replace_units is None):
        problems.append("give exactly one of replace_km and replace_units")
    if replace_km is not None:
        if not _is_real(replace_km) or float(replace_km) < 0:
            problems.append(f"replace_km must be a finite number >= 0, got {replace_km!r}")
        if length_km is None:
            problems.append("replace_km requires length_km")
    if replace_units is not None and (
        not _is_int(replace_units)
        or int(replace_units) < 0
        or (n is not None and int(replace_units) > n)
    ):
        top = f"in 0..{n}" if n is not None else ">= 0"
        problems.append(f"replace_units must be an integer {top}, got {replace_units!r}")
    if not _is_real(residual) or not 0.0 <= float(residual) <= 1.0:
        problems.append(f"residual must be a number in [0, 1], got {residual!r}")
    _check_sim_params(
        problems,
        horizon=horizon,
        n_sims=n_sims,
        seed=seed,
        year_cv=year_cv,
        annual_growth=annual_growth,
    )
    _check_rate_bound(mu, annual_growth, horizon, problems)
    _raise(problems, "renewal_scenario")
    assert mu is not None and sc is not None
    horizon, n_sims, seed = int(horizon), int(n_sims), int(seed)
    residual, year_cv, annual_growth = float(residual), float(year_cv), float(annual_growth)

    selected = _select(
        _rank_order(sc),
        length,
        None if replace_km is None else float(replace_km),
        None if replace_units is None else int(replace_units),
    )
    cum_growth = np.cumsum(_growth(annual_growth, horizon))
    base_total = float(mu.sum())
    avoided_rate = float(mu[selected].sum()) * (1.0 - residual)
    avoided_expected = avoided_rate * cum_growth

    # The baseline is exactly what simulate() draws with the same seed; the renewed
    # network thins the replaced units' baseline counts (common random numbers).
    rates = _rates(mu, seed, n_sims, horizon, year_cv, annual_growth)
    baseline = np.zeros((n_sims, horizon), dtype=np.int64)
    avoided = np.zeros((n_sims, horizon), dtype=np.int64)
    thin_block, rng_thin = -1, np.random.default_rng([seed, _THIN_TAG, 0])
    for d in _iter_draws(mu, rates, seed):
        baseline += d.city
        rows = selected[d.lo + d.pair // n_sims]
        if residual == 1.0 or not rows.any():
            continue
        if d.block != thin_block:
            thin_block, rng_thin = d.block, np.random.default_rng([seed, _THIN_TAG, d.block])
        base = d.yearly[rows]
        kept = rng_thin.binomial(base, residual) if residual > 0 else 0
        avoided += _city_yearly(d.pair[rows], base - kept, n_sims)
    np.cumsum(baseline, axis=1, out=baseline)
    np.cumsum(avoided, axis=1, out=avoided)
    a_mean, a_q = _summary(avoided[:, -1], _RENEWAL_QUANTILES)
    b_mean, b_q = _summary(baseline[:, -1], _RENEWAL_QUANTILES)
    r_mean, r_q = _summary(baseline[:, -1] - avoided[:, -1], _RENEWAL_QUANTILES)
    by_mean = avoided.sum(axis=0, dtype=np.int64) / n_sims
    qnames = [_quantile_name(q) for q in _RENEWAL_QUANTILES]

    km: float | None = float(length[selected].sum()) if length is not None else None
    total_km = float(length.sum()) if length is not None else 0.0
    avoided_total = float(avoided_expected[-1])
    summary: dict[str, Any] = {
        "units_replaced": int(selected.sum()),
        "km_replaced": km,
        "share_of_length": (km / total_km) if km is not None and total_km > 0 else None,
        "share_of_units": float(selected.sum()) / mu.size if mu.size else 0.0,
        "horizon": horizon,
        "n_sims": n_sims,
        "seed": seed,
        "residual": residual,
        "expected_breaks_baseline": base_total * float(cum_growth[-1]),
        "expected_breaks_after": max(base_total * float(cum_growth[-1]) - avoided_total, 0.0),
        "expected_breaks_avoided": avoided_total,
        "avoided_mean": float(a_mean),
        **{f"avoided_{k}": float(v) for k, v in zip(qnames, a_q, strict=True)},
        "baseline_mean": float(b_mean),
        **{f"baseline_{k}": float(v) for k, v in zip(qnames, b_q, strict=True)},
        "after_mean": float(r_mean),
        **{f"after_{k}": float(v) for k, v in zip(qnames, r_q, strict=True)},
        "breaks_avoided_per_km": (avoided_total / km) if km else None,
        "by_horizon": [
            {
                "horizon": h + 1,
                "avoided_expected": float(avoided_expected[h]),
                "avoided_mean": float(by_mean[h]),
            }
            for h in range(horizon)
        ],
    }
    return summary, selected
