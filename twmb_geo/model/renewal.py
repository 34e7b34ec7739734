"""The "replace the riskiest km" renewal scenario, simulated with common random numbers.

See the *Renewal* section of :mod:`twmb_geo.model.simulate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..core.cluster import map_partitions
from ._arrays import rank_order
from ._simcore import (
    _RENEWAL_QUANTILES,
    _check_block_units,
    _check_rate_bound,
    _check_rates,
    _check_sim_params,
    _draw_units,
    _growth,
    _is_int,
    _is_real,
    _quantile_name,
    _raise,
    _rates,
    _summary,
    _task_slices,
    _vector,
)

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["renewal_scenario"]


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


def _check_budget(
    replace_km: Any, replace_units: Any, length_km: Any, n: int | None, problems: list[str]
) -> None:
    """Record the problems of the renewal budget (exactly one of km and units)."""
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


def _thinned(
    mu: NDArray[np.float64],
    selected: NDArray[np.bool_],
    residual: float,
    kw: dict[str, Any],
    block_units: int,
    client: Client | None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Cumulative baseline and avoided city breaks, shape ``(n_sims, horizon)``.

    The baseline is exactly what ``simulate`` draws with the same seed; the renewed
    network thins the replaced units' baseline counts (common random numbers). Tasks of
    whole random-stream blocks, as in ``simulate``, so the result does not depend on them.
    """
    seed, n_sims, horizon = kw["seed"], kw["n_sims"], kw["horizon"]
    rates = _rates(mu, seed, n_sims, horizon, kw["year_cv"], kw["annual_growth"])
    none = np.empty(0, dtype=np.intp)  # no unit summaries: the city and the thinning only
    parts = map_partitions(
        _draw_units,
        (
            (mu[at], first, rates, seed, none, (), (selected[at], residual))
            for at, first in _task_slices(mu.size, block_units)
        ),
        client,
    )
    baseline = np.zeros((n_sims, horizon), dtype=np.int64)
    avoided = np.zeros((n_sims, horizon), dtype=np.int64)
    for b, _, _, a in parts:
        baseline += b
        avoided += a
    np.cumsum(baseline, axis=1, out=baseline)
    np.cumsum(avoided, axis=1, out=avoided)
    return baseline, avoided


def _simulated_fields(baseline: NDArray[np.int64], avoided: NDArray[np.int64]) -> dict[str, Any]:
    """Simulated mean and quantiles over the horizon of avoided, baseline and after breaks."""
    out: dict[str, Any] = {}
    qnames = [_quantile_name(q) for q in _RENEWAL_QUANTILES]
    for name, values in (
        ("avoided", avoided[:, -1]),
        ("baseline", baseline[:, -1]),
        ("after", baseline[:, -1] - avoided[:, -1]),
    ):
        mean, qs = _summary(values, _RENEWAL_QUANTILES)
        out[f"{name}_mean"] = float(mean)
        out.update({f"{name}_{k}": float(v) for k, v in zip(qnames, qs, strict=True)})
    return out


def _check_inputs(
    expected: ArrayLike,
    score: ArrayLike,
    length_km: ArrayLike | None,
    replace_km: Any,
    replace_units: Any,
    residual: Any,
    sim: dict[str, Any],
    block_units: Any,
    problems: list[str],
) -> tuple[NDArray[np.float64] | None, NDArray[np.float64] | None, NDArray[np.float64] | None]:
    """Expected breaks, scores and lengths as arrays; their problems added to ``problems``."""
    mu = _check_rates(expected, "expected", problems)
    sc = _vector(score, "score", problems)
    length: NDArray[np.float64] | None = None
    if length_km is not None:
        length = _check_rates(length_km, "length_km", problems)
    n = mu.size if mu is not None else None
    for name, arr in (("score", sc), ("length_km", length)):
        if n is not None and arr is not None and arr.size != n:
            problems.append(f"{name} has length {arr.size}, expected has {n}")
    _check_budget(replace_km, replace_units, length_km, n, problems)
    if not _is_real(residual) or not 0.0 <= float(residual) <= 1.0:
        problems.append(f"residual must be a number in [0, 1], got {residual!r}")
    _check_sim_params(problems, **sim)
    _check_block_units(block_units, problems)
    _check_rate_bound(mu, sim["annual_growth"], sim["horizon"], problems)
    return mu, sc, length


def _sim_kwargs(raw: dict[str, Any]) -> dict[str, Any]:
    """The checked simulation settings as plain ints and floats."""
    return {k: float(v) if k in ("year_cv", "annual_growth") else int(v) for k, v in raw.items()}


def _selection(
    score: NDArray[np.float64],
    length: NDArray[np.float64] | None,
    replace_km: Any,
    replace_units: Any,
) -> NDArray[np.bool_]:
    """The units the programme replaces (see :func:`renewal_scenario`)."""
    return _select(
        rank_order(score),
        length,
        None if replace_km is None else float(replace_km),
        None if replace_units is None else int(replace_units),
    )


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
    block_units: int = 50_000,
    client: Client | None = None,
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
    horizon, n_sims, seed, year_cv, annual_growth, block_units, client
        As in :func:`simulate` (the same draws: the baseline is the one it simulates).

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
    raw: dict[str, Any] = {"horizon": horizon, "n_sims": n_sims, "seed": seed}
    raw |= {"year_cv": year_cv, "annual_growth": annual_growth}
    problems: list[str] = []
    mu, sc, length = _check_inputs(
        expected, score, length_km, replace_km, replace_units, residual, raw, block_units, problems
    )
    _raise(problems, "renewal_scenario")
    assert mu is not None and sc is not None
    kw = _sim_kwargs(raw)
    selected = _selection(sc, length, replace_km, replace_units)
    baseline, avoided = _thinned(mu, selected, float(residual), kw, int(block_units), client)
    return _renewal_summary(mu, selected, length, float(residual), kw, avoided, baseline), selected


def _renewal_summary(
    mu: NDArray[np.float64],
    selected: NDArray[np.bool_],
    length: NDArray[np.float64] | None,
    residual: float,
    kw: dict[str, Any],
    avoided: NDArray[np.int64],
    baseline: NDArray[np.int64],
) -> dict[str, Any]:
    """The JSON-ready summary of :func:`renewal_scenario`."""
    horizon, n_sims = kw["horizon"], kw["n_sims"]
    cum_growth = np.cumsum(_growth(kw["annual_growth"], horizon))
    base_total = float(mu.sum())
    avoided_expected = float(mu[selected].sum()) * (1.0 - residual) * cum_growth
    by_mean = avoided.sum(axis=0, dtype=np.int64) / n_sims
    sim = _simulated_fields(baseline, avoided)
    km: float | None = float(length[selected].sum()) if length is not None else None
    total_km = float(length.sum()) if length is not None else 0.0
    avoided_total = float(avoided_expected[-1])
    return {
        "units_replaced": int(selected.sum()),
        "km_replaced": km,
        "share_of_length": (km / total_km) if km is not None and total_km > 0 else None,
        "share_of_units": float(selected.sum()) / mu.size if mu.size else 0.0,
        "horizon": horizon,
        "n_sims": n_sims,
        "seed": kw["seed"],
        "residual": residual,
        "expected_breaks_baseline": base_total * float(cum_growth[-1]),
        "expected_breaks_after": max(base_total * float(cum_growth[-1]) - avoided_total, 0.0),
        "expected_breaks_avoided": avoided_total,
        **sim,
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
