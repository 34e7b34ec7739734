"""Validation and sampling engine of :mod:`twmb_geo.model.simulate` (private).

See :mod:`twmb_geo.model.simulate` for the model, the sampler and the random streams.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

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
        return self.rates.shape


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


def _check_block_units(block_units: Any, problems: list[str]) -> None:
    if not _is_int(block_units) or int(block_units) < 1:
        problems.append(f"block_units must be a positive integer, got {block_units!r}")


def _task_slices(n: int, block_units: int) -> Iterator[tuple[slice, int]]:
    """The units of each task (``block_units`` rounded down to whole random-stream blocks,
    at least one) and the stream block each starts at, so tasks draw what the whole does."""
    step = max(1, block_units // BLOCK_SIZE) * BLOCK_SIZE
    for lo in range(0, n, step):
        yield slice(lo, lo + step), lo // BLOCK_SIZE


def _iter_draws(
    mu: NDArray[np.float64], r: _Rates, seed: int, first_block: int = 0
) -> Iterator[_Draws]:
    """Yield the sparse draws of consecutive work chunks of units.

    Chunks never straddle a block of :data:`BLOCK_SIZE` units and hold at most
    ``_WORK_CELLS`` unit x simulation x year cells; units with ``mu = 0`` draw nothing.
    ``mu`` may be a slice of the units that starts at block ``first_block``: its draws
    are those of the same units in the whole (``lo``/``hi`` then count from the slice).
    """
    n = mu.size
    n_sims, horizon = r.shape
    step = max(1, _WORK_CELLS // (n_sims * horizon))
    for i, start in enumerate(range(0, n, BLOCK_SIZE)):
        block = first_block + i
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


class _Thinning:
    """Breaks a renewal programme avoids, from the baseline draws as they are made.

    Each break of a replaced unit survives with probability ``residual`` (binomial
    thinning from the block's ``[seed, _THIN_TAG, block]`` stream, consumed in draw
    order); ``avoided`` sums the others per (simulation, year). Fed every draw of a
    task in order, the result does not depend on which pass made the draws.
    """

    def __init__(
        self, selected: NDArray[np.bool_], residual: float, seed: int, shape: tuple[int, int]
    ) -> None:
        self.selected, self.residual, self.seed = selected, residual, seed
        self.avoided = np.zeros(shape, dtype=np.int64)
        self._block = -1
        self._rng: np.random.Generator | None = None

    def add(self, d: _Draws) -> None:
        n_sims = self.avoided.shape[0]
        rows = self.selected[d.lo + d.pair // n_sims]
        if self.residual == 1.0 or not rows.any():
            return
        if self._rng is None or d.block != self._block:
            self._block, self._rng = d.block, np.random.default_rng([self.seed, _THIN_TAG, d.block])
        base = d.yearly[rows]
        kept = self._rng.binomial(base, self.residual) if self.residual > 0 else 0
        self.avoided += _city_yearly(d.pair[rows], base - kept, n_sims)


def _draw_units(
    mu: NDArray[np.float64],
    first_block: int,
    rates: _Rates,
    seed: int,
    hidx: NDArray[np.intp],
    qs: tuple[float, ...],
    renewal: tuple[NDArray[np.bool_], float] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.int64] | None]:
    """One task of the simulation and of the renewal scenario: the units ``mu`` (a slice
    starting at block ``first_block``): the city's breaks per (simulation, year) from
    them, each unit's mean and quantiles per reported horizon (none for an empty
    ``hidx``) and, given the units a renewal programme replaces and their residual risk,
    the breaks it avoids per (simulation, year)."""
    n_sims, horizon = rates.shape
    n, nh = mu.size, hidx.size
    city = np.zeros((n_sims, horizon), dtype=np.int64)
    unit_mean = np.zeros((n, nh), dtype=np.float64)
    unit_q = np.zeros((len(qs), n, nh), dtype=np.float64)
    thin = _Thinning(*renewal, seed, rates.shape) if renewal is not None else None
    for d in _iter_draws(mu, rates, seed, first_block):
        city += d.city
        if nh:
            unit_mean[d.lo : d.hi], unit_q[:, d.lo : d.hi] = _unit_summary(d, n_sims, hidx, qs)
        if thin is not None:
            thin.add(d)
    return city, unit_mean, unit_q, thin.avoided if thin is not None else None


def _summary(
    cum: NDArray[np.integer], quantiles: Sequence[float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact mean and linear-interpolated quantiles of integer draws along axis 0."""
    mean = cum.sum(axis=0, dtype=np.int64) / cum.shape[0]
    if not len(quantiles):
        return mean, np.empty((0, *mean.shape))
    return mean, np.asarray(np.quantile(cum, quantiles, axis=0, method="linear"), np.float64)
