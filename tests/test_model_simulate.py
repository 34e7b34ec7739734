"""Tests of twmb_geo.model.simulate: Monte Carlo of future breaks and renewal scenarios."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from twmb_geo.core.cluster import ClusterSpec, open_client
from twmb_geo.model import _simcore as sm
from twmb_geo.model.simulate import (
    DEFAULT_QUANTILES,
    SimulationResult,
    renewal_scenario,
    simulate,
    simulate_with_renewal,
    year_factor_cv,
)


def _mu(n: int = 200, seed: int = 0, scale: float = 0.2) -> np.ndarray:
    return np.random.default_rng(seed).gamma(0.5, scale, n)


def _yearly_city(
    mu: np.ndarray,
    *,
    n_sims: int,
    horizon: int,
    seed: int,
    year_cv: float = 0.0,
    growth: float = 0.0,
) -> np.ndarray:
    """City breaks per (simulation, year) straight from the engine (not cumulative)."""
    rates = sm._rates(mu, seed, n_sims, horizon, year_cv, growth)
    return sum(d.city for d in sm._iter_draws(mu, rates, seed))


def _dense_yearly(
    mu: np.ndarray,
    *,
    n_sims: int,
    horizon: int,
    seed: int,
    year_cv: float = 0.0,
    growth: float = 0.0,
) -> np.ndarray:
    """Every unit's breaks per (unit, simulation, year) from the engine's sparse draws."""
    rates = sm._rates(mu, seed, n_sims, horizon, year_cv, growth)
    out = np.zeros((mu.size * n_sims, horizon), dtype=np.int64)
    for d in sm._iter_draws(mu, rates, seed):
        out[d.lo * n_sims + d.pair] = d.yearly
    return out.reshape(mu.size, n_sims, horizon)


# --------------------------------------------------------------------------- simulate: shape


def test_frames_shape_dtypes_and_order() -> None:
    mu = [0.1, 0.0, 2.0]
    res = simulate(mu, unit_ids=["b", "a", "c"], horizon=4, n_sims=50, seed=3)
    assert isinstance(res, SimulationResult)
    assert (res.n_sims, res.seed) == (50, 3)
    assert list(res.city.columns) == ["horizon", "mean", "p10", "p50", "p90", "p95", "expected"]
    assert list(res.units.columns) == ["unit_id", "horizon", "mean", "p10", "p50", "p90", "p95"]
    assert res.city["horizon"].tolist() == [1, 2, 3, 4]
    assert res.city["horizon"].dtype == np.int32 and res.units["horizon"].dtype == np.int32
    assert pd.api.types.is_string_dtype(res.units["unit_id"])
    assert res.units["unit_id"].tolist() == ["b"] * 4 + ["a"] * 4 + ["c"] * 4
    assert res.units["horizon"].tolist() == [1, 2, 3, 4] * 3
    for col in ("mean", "p10", "p50", "p90", "p95", "expected"):
        assert res.city[col].dtype == np.float64
    assert res.params == {
        "year_cv": 0.0,
        "annual_growth": 0.0,
        "quantiles": list(DEFAULT_QUANTILES),
        "horizon": 4,
        "unit_horizons": [1, 2, 3, 4],
        "quantile_method": "linear",
    }
    json.dumps(res.params)


def test_unit_horizons_custom_quantiles_and_default_ids() -> None:
    res = simulate(
        [0.3, 0.4], horizon=10, n_sims=40, quantiles=(0.025, 0.5, 0.975), unit_horizons=[10, 1, 5]
    )
    assert list(res.units.columns) == ["unit_id", "horizon", "mean", "p2_5", "p50", "p97_5"]
    assert list(res.city.columns) == ["horizon", "mean", "p2_5", "p50", "p97_5", "expected"]
    assert res.units["unit_id"].tolist() == ["0"] * 3 + ["1"] * 3
    assert res.units["horizon"].tolist() == [1, 5, 10] * 2
    assert len(res.city) == 10  # the city frame always has every horizon
    full = simulate([0.3, 0.4], horizon=10, n_sims=40, quantiles=(0.025, 0.5, 0.975))
    sub = full.units[full.units["horizon"].isin([1, 5, 10])].reset_index(drop=True)
    pd.testing.assert_frame_equal(res.units, sub)


def test_quantile_names() -> None:
    assert [sm._quantile_name(q) for q in (0.1, 0.5, 0.95, 0.025, 0.001, 0.999)] == [
        "p10",
        "p50",
        "p95",
        "p2_5",
        "p0_1",
        "p99_9",
    ]


def test_no_units_and_no_quantiles() -> None:
    res = simulate([], n_sims=20, horizon=3, year_cv=0.2)
    assert len(res.units) == 0 and res.city["mean"].eq(0).all() and res.city["p95"].eq(0).all()
    res = simulate([0.5], n_sims=20, horizon=2, quantiles=())
    assert list(res.city.columns) == ["horizon", "mean", "expected"]
    assert list(res.units.columns) == ["unit_id", "horizon", "mean"]


# --------------------------------------------------------------------------- determinism


def test_deterministic_and_seed_dependent() -> None:
    mu = _mu(300)
    kw = {"horizon": 5, "n_sims": 200, "year_cv": 0.3, "annual_growth": 0.02}
    a, b = simulate(mu, seed=11, **kw), simulate(mu, seed=11, **kw)
    assert a.city.equals(b.city) and a.units.equals(b.units)
    pd.testing.assert_frame_equal(a.units, b.units, check_exact=True)
    c = simulate(mu, seed=12, **kw)
    assert not a.city.equals(c.city) and not a.units.equals(c.units)


def test_work_chunking_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    # two random-stream blocks, a large-rate unit (numpy's sampler) and zero units
    mu = np.r_[_mu(sm.BLOCK_SIZE + 76, seed=4), 25.0, 0.0, 0.0, 3.0]
    kw = {"horizon": 3, "n_sims": 20, "year_cv": 0.4, "seed": 5}
    whole = simulate(mu, **kw)
    monkeypatch.setattr(sm, "_WORK_CELLS", 7 * 20 * 3)  # chunks of 7 units
    chunked = simulate(mu, **kw)
    assert whole.city.equals(chunked.city) and whole.units.equals(chunked.units)
    monkeypatch.setattr(sm, "_WORK_CELLS", 1)  # one unit at a time
    assert whole.units.equals(simulate(mu, **kw).units)


def test_tasks_of_units_do_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """The units simulated a task at a time (whole random-stream blocks each; the tasks'
    city totals summed): the same frames for any task size, with the work chunks inside a
    task smaller still; a size below one block is one block."""
    mu = np.r_[_mu(3 * sm.BLOCK_SIZE + 76, seed=4), 25.0, 0.0, 0.0, 3.0]
    kw = {"horizon": 3, "n_sims": 20, "year_cv": 0.4, "seed": 5}
    whole = simulate(mu, block_units=10**9, **kw)
    monkeypatch.setattr(sm, "_WORK_CELLS", 13 * 20 * 3)
    for size in (1, sm.BLOCK_SIZE, 2 * sm.BLOCK_SIZE + 5, 3 * sm.BLOCK_SIZE):
        part = simulate(mu, block_units=size, **kw)
        pd.testing.assert_frame_equal(part.city, whole.city, check_exact=True)
        pd.testing.assert_frame_equal(part.units, whole.units, check_exact=True)
    assert (whole.units["mean"] > 0).sum() > sm.BLOCK_SIZE  # draws in several blocks
    with pytest.raises(ValueError, match="block_units must be a positive integer"):
        simulate(mu, block_units=0, **kw)


def test_renewal_in_tasks_of_units_does_not_change_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The renewal's baseline and thinning a task of whole random-stream blocks at a time
    (replaced units in several blocks): the same summary for any task size; its baseline
    is the simulation's city, and a simulation without unit horizons has the same city
    and no unit rows."""
    mu = np.r_[_mu(3 * sm.BLOCK_SIZE + 76, seed=4), 25.0, 0.0, 3.0]
    score = np.random.default_rng(2).random(mu.size)
    kw = {"horizon": 3, "n_sims": 20, "year_cv": 0.4, "seed": 5, "residual": 0.3}
    whole, sel = renewal_scenario(mu, score, replace_units=900, block_units=10**9, **kw)
    assert len(np.unique(np.flatnonzero(sel) // sm.BLOCK_SIZE)) == 4
    assert whole["avoided_mean"] > 0
    monkeypatch.setattr(sm, "_WORK_CELLS", 13 * 20 * 3)
    for size in (1, 2 * sm.BLOCK_SIZE + 5):
        part, _ = renewal_scenario(mu, score, replace_units=900, block_units=size, **kw)
        assert part == whole
    sim = {k: v for k, v in kw.items() if k != "residual"}
    base = simulate(mu, **sim)
    assert whole["baseline_mean"] == base.city["mean"].iloc[-1]
    city_only = simulate(mu, unit_horizons=(), **sim)
    pd.testing.assert_frame_equal(city_only.city, base.city, check_exact=True)
    assert city_only.units.empty and list(city_only.units.columns) == list(base.units.columns)
    with pytest.raises(ValueError, match="block_units must be a positive integer"):
        renewal_scenario(mu, score, replace_units=9, block_units=0, **kw)


def test_simulation_on_a_cluster_equals_in_process() -> None:
    """Tasks of 1,024 units on a Dask LocalCluster of two workers: the same frames, and
    the same renewal scenario."""
    mu = np.r_[_mu(4 * sm.BLOCK_SIZE + 9, seed=8), 30.0]
    kw = {"horizon": 5, "n_sims": 50, "year_cv": 0.3, "annual_growth": 0.01, "seed": 3}
    score = np.random.default_rng(3).random(mu.size)
    here = simulate(mu, **kw)
    ren_here = renewal_scenario(mu, score, replace_units=2000, **kw)
    with open_client(ClusterSpec("local", workers=2, worker_memory="2GiB")) as client:
        there = simulate(mu, block_units=sm.BLOCK_SIZE, client=client, **kw)
        ren_there = renewal_scenario(
            mu, score, replace_units=2000, block_units=sm.BLOCK_SIZE, client=client, **kw
        )
    pd.testing.assert_frame_equal(there.city, here.city, check_exact=True)
    pd.testing.assert_frame_equal(there.units, here.units, check_exact=True)
    assert ren_there[0] == ren_here[0] and ren_here[0]["avoided_mean"] > 0
    np.testing.assert_array_equal(ren_there[1], ren_here[1])


def _both(mu: np.ndarray, score: np.ndarray, **kw: object) -> tuple:
    """:func:`simulate` and :func:`renewal_scenario`, called one after the other."""
    sim = {k: v for k, v in kw.items() if k not in ("length_km", "replace_km", "replace_units",
                                                  "residual")}  # fmt: skip
    ren = {k: v for k, v in kw.items() if k not in ("unit_ids", "unit_horizons", "quantiles")}
    return simulate(mu, **sim), *renewal_scenario(mu, score, **ren)


def _assert_same(one: tuple, two: tuple) -> None:
    """``one`` from :func:`simulate_with_renewal`, ``two`` from :func:`_both`."""
    pd.testing.assert_frame_equal(one[0].city, two[0].city, check_exact=True)
    pd.testing.assert_frame_equal(one[0].units, two[0].units, check_exact=True)
    assert (one[0].n_sims, one[0].seed, one[0].params) == (
        two[0].n_sims,
        two[0].seed,
        two[0].params,
    )
    assert json.dumps(one[2]) == json.dumps(two[1])
    np.testing.assert_array_equal(one[3], two[2])


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(0, 2 * sm.BLOCK_SIZE + 40),
    seed=st.integers(0, 2**31),
    residual=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    by_km=st.booleans(),
    budget=st.floats(0.0, 1.0),
    year_cv=st.sampled_from([0.0, 0.3]),
    horizons=st.sampled_from([None, (), (1, 3)]),
    block=st.sampled_from([1, sm.BLOCK_SIZE + 3, 10**9]),
)
def test_simulate_with_renewal_is_the_two_calls(
    n: int,
    seed: int,
    residual: float,
    by_km: bool,
    budget: float,
    year_cv: float,
    horizons: tuple | None,
    block: int,
) -> None:
    """One pass over the draws gives what the simulation and the renewal scenario give
    called one after the other, to the bit: frames, summary and replaced units, with
    rates large and small, whatever the tasks' size."""
    rng = np.random.default_rng(seed)
    mu = np.r_[_mu(n, seed=seed % 1000), 12.0, 0.0][: n + 2 if n else 0]
    score = rng.random(mu.size)
    score[rng.random(mu.size) < 0.1] = np.nan
    length = rng.uniform(0.01, 2.0, mu.size)
    kw: dict = {"horizon": 3, "n_sims": 20, "seed": seed % 97, "year_cv": year_cv}
    kw |= {"residual": residual, "unit_horizons": horizons, "block_units": block}
    if by_km:
        kw |= {"length_km": length, "replace_km": budget * float(length.sum())}
    else:
        kw["replace_units"] = int(budget * mu.size)
    one = simulate_with_renewal(mu, score, **kw)
    _assert_same(one, _both(mu, score, **kw))
    assert one[2]["baseline_mean"] == one[0].city["mean"].iloc[-1]
    # the renewed city is the thinned baseline: the summary's "after" at the horizon
    after = one[1]
    assert list(after.columns) == list(one[0].city.columns)
    last = after.iloc[-1]
    assert (last["mean"], last["p10"], last["p50"], last["p90"]) == (
        one[2]["after_mean"], one[2]["after_p10"], one[2]["after_p50"], one[2]["after_p90"]
    )  # fmt: skip
    assert (after["mean"] <= one[0].city["mean"]).all()


def test_simulate_with_renewal_on_a_cluster_and_its_errors() -> None:
    """On a LocalCluster of two workers, in tasks of one stream block: the same as the
    two calls in this process. Bad arguments of either are listed together."""
    mu = np.r_[_mu(3 * sm.BLOCK_SIZE + 9, seed=8), 30.0]
    score = np.random.default_rng(3).random(mu.size)
    kw = {"horizon": 4, "n_sims": 30, "year_cv": 0.3, "annual_growth": 0.01, "seed": 3}
    kw |= {"replace_units": 1500, "residual": 0.2, "unit_ids": [f"u{i}" for i in range(mu.size)]}
    here = _both(mu, score, **kw)
    assert here[1]["avoided_mean"] > 0
    with open_client(ClusterSpec("local", workers=2, worker_memory="2GiB")) as client:
        there = simulate_with_renewal(mu, score, block_units=sm.BLOCK_SIZE, client=client, **kw)
    _assert_same(there, here)
    np.testing.assert_allclose(  # means of integers: equal up to their rounding
        there[0].city["mean"] - there[1]["mean"],
        [h["avoided_mean"] for h in there[2]["by_horizon"]],
        rtol=1e-12,
    )
    with pytest.raises(ValueError) as err:
        simulate_with_renewal(
            [0.1, -0.2], [1.0], replace_units=3, quantiles=[0.5, 0.2], unit_ids=["a", "a"]
        )
    for part in ("expected has negative", "score has length 1", "replace_units must be",
                 "quantiles", "unit_ids has duplicates"):  # fmt: skip
        assert part in str(err.value), part


def test_renewed_city_follows_the_renewed_model() -> None:
    """The renewed city from thinned draws has the law of the renewed network simulated
    on its own: the same analytic mean to the bit, simulated means and quantiles within
    the simulation noise of each other."""
    mu = _mu(3000, seed=11, scale=0.3)
    score = np.random.default_rng(5).random(mu.size)
    kw = {"horizon": 5, "n_sims": 2000, "year_cv": 0.2, "annual_growth": 0.02, "seed": 9}
    _, after, summary, selected = simulate_with_renewal(
        mu, score, replace_units=600, residual=0.1, unit_horizons=(), **kw
    )
    alone = simulate(np.where(selected, mu * 0.1, mu), unit_horizons=(), **kw).city
    np.testing.assert_array_equal(after["expected"], alone["expected"])
    np.testing.assert_allclose(after["mean"], after["expected"], rtol=0.02)
    for col in ("mean", "p10", "p50", "p90"):
        np.testing.assert_allclose(after[col], alone[col], rtol=0.05, atol=2.0)
    assert summary["avoided_mean"] > 0


def test_appending_units_keeps_earlier_units() -> None:
    mu = _mu(150, seed=6)
    more = np.r_[mu, _mu(40, seed=7)]
    kw = {"horizon": 4, "n_sims": 100, "year_cv": 0.25, "seed": 9}
    a, b = simulate(mu, **kw), simulate(more, **kw)
    pd.testing.assert_frame_equal(a.units, b.units.iloc[: len(a.units)], check_exact=True)
    assert (b.city["mean"] >= a.city["mean"]).all()


def test_zero_units_do_not_shift_other_draws() -> None:
    mu = _mu(50, seed=8)
    with_zeros = np.insert(mu, [3, 10, 10, 49], 0.0)
    a = simulate(mu, n_sims=60, horizon=3, seed=1)
    b = simulate(with_zeros, n_sims=60, horizon=3, seed=1)
    sim_cols = ["horizon", "mean", "p10", "p50", "p90", "p95"]
    assert a.city[sim_cols].equals(b.city[sim_cols])
    np.testing.assert_allclose(a.city["expected"], b.city["expected"], rtol=1e-12)


# --------------------------------------------------------------------------- statistics


def test_zero_expected_gives_zeros() -> None:
    res = simulate(np.zeros(30), n_sims=50, horizon=5, year_cv=0.5, annual_growth=0.1)
    num = res.units.drop(columns=["unit_id", "horizon"])
    assert (num.to_numpy() == 0).all()
    assert (res.city.drop(columns="horizon").to_numpy() == 0).all()


def test_city_mean_matches_analytic_expected() -> None:
    mu = _mu(400, seed=1)
    cv, n_sims, horizon, growth = 0.3, 2000, 6, 0.03
    res = simulate(mu, n_sims=n_sims, horizon=horizon, year_cv=cv, annual_growth=growth, seed=2)
    e_year = mu.sum() * (1 + growth) ** np.arange(horizon)
    var_cum = np.cumsum(e_year + cv**2 * e_year**2)  # year factors independent across years
    se = np.sqrt(var_cum / n_sims)
    assert np.all(np.abs(res.city["mean"] - res.city["expected"]) < 3 * se)
    # per-unit means add up to the city mean exactly (same draws)
    unit_sum = res.units.groupby("horizon")["mean"].sum().to_numpy()
    np.testing.assert_allclose(unit_sum, res.city["mean"], rtol=1e-12)


def test_expected_column_with_growth_is_exact() -> None:
    mu = np.array([0.2, 0.5, 1.3])
    res = simulate(mu, n_sims=10, horizon=5, annual_growth=0.1)
    g = np.array([1.0, 1.1, 1.21, 1.331, 1.4641])
    np.testing.assert_allclose(res.city["expected"], 2.0 * np.cumsum(g), rtol=1e-12)
    # the yearly increments of the simulated mean grow by the same factor
    big = simulate([50.0], n_sims=4000, horizon=5, annual_growth=0.1, seed=3)
    yearly = np.diff(np.r_[0.0, big.city["mean"].to_numpy()])
    np.testing.assert_allclose(yearly, 50.0 * g, rtol=0.02)


def test_year_cv_zero_is_poisson() -> None:
    mu = _mu(500, seed=2, scale=0.4)  # ~100 breaks a year
    n_sims = 4000
    tot = _yearly_city(mu, n_sims=n_sims, horizon=3, seed=4)
    lam = mu.sum()
    se_ratio = math.sqrt(2 / n_sims)  # standard error of var/mean for a Poisson total
    for h in range(3):
        assert abs(tot[:, h].mean() / lam - 1) < 4 * math.sqrt(lam / n_sims) / lam
        assert abs(tot[:, h].var(ddof=1) / tot[:, h].mean() - 1) < 5 * se_ratio
    assert abs(np.corrcoef(tot[:, 0], tot[:, 2])[0, 1]) < 5 / math.sqrt(n_sims)
    # public quantiles of year 1 match Poisson quantiles
    res = simulate(mu, n_sims=n_sims, horizon=1, seed=4)
    for q in (0.1, 0.5, 0.9):
        assert abs(res.city[sm._quantile_name(q)].iloc[0] - stats.poisson.ppf(q, lam)) <= 3


def test_year_cv_adds_extra_variance_and_widens_range() -> None:
    mu = _mu(500, seed=3, scale=0.4)
    cv, n_sims = 0.25, 3000
    tot = _yearly_city(mu, n_sims=n_sims, horizon=2, seed=5, year_cv=cv)
    e = mu.sum()
    want = e + cv**2 * e**2
    assert abs(tot[:, 0].var(ddof=1) / want - 1) < 0.15
    flat = simulate(mu, n_sims=1000, horizon=5, seed=5)
    wide = simulate(mu, n_sims=1000, horizon=5, seed=5, year_cv=cv)
    assert (
        (wide.city["p90"] - wide.city["p10"]) > 1.5 * (flat.city["p90"] - flat.city["p10"])
    ).all()


def test_unit_counts_follow_independent_yearly_poisson() -> None:
    # small-rate units (inversion + year split) and a large-rate unit (numpy sampler)
    mu = np.array([0.05, 0.8, 4.0, 12.0])
    growth, n_sims = 0.2, 20000
    dense = _dense_yearly(mu, n_sims=n_sims, horizon=3, seed=6, growth=growth)
    lam = mu[:, None] * (1 + growth) ** np.arange(3)
    mean, var = dense.mean(axis=1), dense.var(axis=1, ddof=1)
    np.testing.assert_array_less(np.abs(mean - lam), 5 * np.sqrt(lam / n_sims))
    np.testing.assert_allclose(var / lam, 1.0, atol=5 * math.sqrt(2 / n_sims) + 0.01)
    p0 = (dense == 0).mean(axis=1)
    np.testing.assert_array_less(np.abs(p0 - np.exp(-lam)), 0.01)
    for u in range(mu.size):  # years independent given no year factor
        assert abs(np.corrcoef(dense[u, :, 0], dense[u, :, 2])[0, 1]) < 5 / math.sqrt(n_sims)


@pytest.mark.parametrize("lam", [1e-7, 0.03, 0.6, 2.5, 9.9])
def test_inverse_poisson_is_exact_inversion(lam: float) -> None:
    u = np.random.default_rng(1).random(100_000)
    got = sm._inverse_poisson(u, np.full(u.size, lam))
    k = np.arange(80)
    cdf = stats.poisson.cdf(k, lam)
    want = np.searchsorted(cdf, u, side="right")  # smallest k with u < cdf(k)
    # the recursion and scipy's cdf may disagree only for u within rounding of a cdf step
    near = np.min(np.abs(u[:, None] - cdf[None, :20]), axis=1) < 1e-12
    assert np.array_equal(got[~near], want[~near])


@pytest.mark.parametrize("mu", [[0.02, 0.3, 0.0, 1.5], [40.0, 0.1, 90.0]])
def test_unit_quantiles_equal_numpy_on_dense_draws(mu: list[float]) -> None:
    # the second case has counts above n_sims: the dense np.quantile path
    m = np.asarray(mu)
    n_sims, horizon, qs = 30, 4, (0.025, 0.1, 0.5, 0.9, 0.95)
    res = simulate(m, n_sims=n_sims, horizon=horizon, seed=8, year_cv=0.3, quantiles=qs)
    dense = np.cumsum(_dense_yearly(m, n_sims=n_sims, horizon=horizon, seed=8, year_cv=0.3), 2)
    want = np.quantile(dense, qs, axis=1, method="linear")
    for i, q in enumerate(qs):
        got = res.units[sm._quantile_name(q)].to_numpy().reshape(m.size, horizon)
        assert np.array_equal(got, want[i])
    assert np.array_equal(res.units["mean"].to_numpy().reshape(m.size, horizon), dense.mean(1))


@settings(max_examples=40, deadline=None)
@given(
    mu=st.lists(st.floats(0.0, 3.0, allow_nan=False), min_size=1, max_size=12),
    horizon=st.integers(1, 5),
    year_cv=st.sampled_from([0.0, 0.2, 1.0]),
    growth=st.floats(-0.5, 0.5),
    seed=st.integers(0, 2**32),
)
def test_quantiles_ordered_and_cumulative(
    mu: list[float], horizon: int, year_cv: float, growth: float, seed: int
) -> None:
    res = simulate(mu, horizon=horizon, n_sims=25, seed=seed, year_cv=year_cv, annual_growth=growth)
    for frame in (res.city, res.units):
        q = frame[["p10", "p50", "p90", "p95"]].to_numpy()
        assert (np.diff(q, axis=1) >= 0).all()
        assert (q >= 0).all() and (frame["mean"] >= 0).all()
    units = res.units.set_index(["unit_id", "horizon"])
    for col in ("mean", "p10", "p50", "p90", "p95"):  # cumulative counts never fall
        wide = units[col].unstack("horizon").to_numpy()
        assert (np.diff(wide, axis=1) >= -1e-12).all()
    assert (np.diff(res.city["mean"]) >= 0).all()
    zero = np.asarray(mu) == 0
    assert (res.units["mean"].to_numpy().reshape(len(mu), horizon)[zero] == 0).all()


@settings(max_examples=30, deadline=None)
@given(
    mu=st.lists(st.sampled_from([0.0, 0.01, 0.2, 1.0, 4.0, 30.0]), min_size=1, max_size=8),
    n_sims=st.sampled_from([10, 13, 64]),
    horizon=st.integers(1, 4),
    year_cv=st.sampled_from([0.0, 0.5]),
    seed=st.integers(0, 1000),
)
def test_unit_summary_matches_dense_numpy(
    mu: list[float], n_sims: int, horizon: int, year_cv: float, seed: int
) -> None:
    m = np.asarray(mu)
    qs = (0.05, 0.1, 0.5, 0.9, 0.95)
    res = simulate(m, n_sims=n_sims, horizon=horizon, seed=seed, year_cv=year_cv, quantiles=qs)
    dense = _dense_yearly(m, n_sims=n_sims, horizon=horizon, seed=seed, year_cv=year_cv)
    cum = np.cumsum(dense, axis=2)
    want = np.quantile(cum, qs, axis=1, method="linear")
    for i, q in enumerate(qs):
        got = res.units[sm._quantile_name(q)].to_numpy().reshape(m.size, horizon)
        assert np.array_equal(got, want[i])
    city = cum.sum(axis=0)
    assert np.array_equal(res.city["p50"], np.quantile(city, 0.5, axis=0))
    assert np.array_equal(res.city["mean"], city.mean(axis=0))


# --------------------------------------------------------------------------- validation


def test_validation_lists_every_problem() -> None:
    with pytest.raises(ValueError) as err:
        simulate(
            [0.1, -1.0, np.nan],
            unit_ids=["a", "a"],
            horizon=0,
            n_sims=5,
            seed=-1,
            year_cv=-0.1,
            annual_growth=-1.0,
            quantiles=(0.9, 0.1, 1.0),
        )
    msg = str(err.value)
    for part in (
        "expected has NaN",
        "expected has negative",
        "horizon must be",
        "n_sims must be",
        "seed must be",
        "year_cv must be",
        "annual_growth must be",
        "strictly between 0 and 1",
        "strictly increasing",
        "unit_ids has length 2",
        "unit_ids has duplicates",
    ):
        assert part in msg, part


@pytest.mark.parametrize(
    ("kwargs", "part"),
    [
        ({"expected": [[0.1, 0.2]]}, "one-dimensional"),
        ({"expected": ["x"]}, "numeric"),
        ({"expected": [np.inf]}, "infinite"),
        ({"horizon": 51}, "horizon"),
        ({"horizon": 2.0}, "horizon"),
        ({"n_sims": True}, "n_sims"),
        ({"year_cv": float("nan")}, "year_cv"),
        ({"quantiles": (0.5, 0.5)}, "strictly increasing"),
        ({"quantiles": (0.1000001, 0.1000002)}, "duplicate column names"),
        ({"unit_horizons": [0, 3]}, "unit_horizons"),
        ({"unit_horizons": [2, 2]}, "duplicates"),
        ({"expected": [1e10]}, "not supported"),
        ({"annual_growth": 5.0, "horizon": 50}, "not supported"),
    ],
)
def test_validation_single_problems(kwargs: dict, part: str) -> None:
    args = {"expected": [0.1, 0.2], "n_sims": 10, "horizon": 3} | kwargs
    with pytest.raises(ValueError, match=part):
        simulate(args.pop("expected"), **args)


# --------------------------------------------------------------------------- year_factor_cv


def test_year_factor_cv_recovers_known_cv() -> None:
    rng = np.random.default_rng(0)
    expected = rng.uniform(1500, 2500, 200)
    for cv in (0.2, 0.35):
        f = rng.gamma(1 / cv**2, cv**2, expected.size)
        observed = rng.poisson(expected * f)
        assert abs(year_factor_cv(observed, expected) / cv - 1) < 0.2  # sd of the estimate ~5%
    # a miscalibrated level is not mistaken for year-to-year swings
    f = rng.gamma(25, 1 / 25, expected.size)  # cv 0.2
    assert abs(year_factor_cv(rng.poisson(1.3 * expected * f), expected) / 0.2 - 1) < 0.2


def test_year_factor_cv_pure_poisson_and_short_series() -> None:
    rng = np.random.default_rng(1)
    expected = np.full(300, 50.0)
    assert year_factor_cv(rng.poisson(expected), expected) < 0.05
    assert year_factor_cv([10, 30], [20, 20]) == 0.0
    assert year_factor_cv([], []) == 0.0
    assert year_factor_cv([0, 0, 0], [5, 5, 5]) == 0.0
    # the estimate feeds simulate(): a plain float >= 0
    assert isinstance(year_factor_cv([900, 1500, 1200, 1700], [1300] * 4), float)


@pytest.mark.parametrize(
    ("observed", "expected", "part"),
    [
        ([1, 2, 3], [1, 2], "length"),
        ([1, 2, 3], [1, 0, 2], "> 0"),
        ([1, 2, 3], [1, -2, 2], "> 0"),
        ([1, np.nan, 3], [1, 2, 2], "NaN"),
        ([1, -2, 3], [1, 2, 2], "negative"),
    ],
)
def test_year_factor_cv_validation(observed: list, expected: list, part: str) -> None:
    with pytest.raises(ValueError, match=part):
        year_factor_cv(observed, expected)


# --------------------------------------------------------------------------- renewal


def _network(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mu = rng.gamma(0.5, 0.2, n)
    score = mu * rng.lognormal(0, 0.3, n)
    length = rng.gamma(2.0, 0.15, n)
    return mu, score, length


def test_renewal_summary_is_json_ready_and_consistent() -> None:
    mu, score, length = _network()
    summary, sel = renewal_scenario(
        mu, score, length_km=length, replace_km=5.0, horizon=5, n_sims=300, year_cv=0.2
    )
    json.dumps(summary)
    assert sel.dtype == bool and sel.shape == mu.shape
    assert summary["units_replaced"] == int(sel.sum()) > 0
    assert summary["km_replaced"] == pytest.approx(length[sel].sum())
    assert summary["km_replaced"] <= 5.0
    assert summary["share_of_length"] == pytest.approx(length[sel].sum() / length.sum())
    assert summary["share_of_units"] == pytest.approx(sel.mean())
    g = 5.0
    assert summary["expected_breaks_baseline"] == pytest.approx(mu.sum() * g)
    assert summary["expected_breaks_avoided"] == pytest.approx(mu[sel].sum() * 0.9 * g)
    assert summary["expected_breaks_after"] == pytest.approx((mu.sum() - 0.9 * mu[sel].sum()) * g)
    assert summary["breaks_avoided_per_km"] == pytest.approx(
        summary["expected_breaks_avoided"] / summary["km_replaced"]
    )
    assert summary["avoided_p10"] <= summary["avoided_p50"] <= summary["avoided_p90"]
    assert summary["avoided_p10"] >= 0
    by = summary["by_horizon"]
    assert [b["horizon"] for b in by] == [1, 2, 3, 4, 5]
    assert by[-1]["avoided_mean"] == summary["avoided_mean"]
    assert all(a["avoided_mean"] <= b["avoided_mean"] for a, b in itertools.pairwise(by))
    assert by[0]["avoided_expected"] == pytest.approx(mu[sel].sum() * 0.9)


def test_renewal_selects_riskiest_prefix_within_budget() -> None:
    mu, score, length = _network(seed=1)
    _, sel = renewal_scenario(mu, score, length_km=length, replace_km=8.0, n_sims=10)
    order = np.argsort(-score, kind="stable")
    n_sel = int(sel.sum())
    assert sel[order[:n_sel]].all() and not sel[order[n_sel:]].any()  # a prefix
    assert length[sel].sum() <= 8.0
    assert length[order[: n_sel + 1]].sum() > 8.0  # the next unit would exceed it


def test_renewal_ranking_ties_stable_nan_last() -> None:
    mu = np.ones(5)
    score = np.array([np.nan, 2.0, 1.0, 2.0, np.nan])
    length = np.ones(5)
    _, sel = renewal_scenario(mu, score, length_km=length, replace_km=3.0, n_sims=10)
    assert sel.tolist() == [False, True, True, True, False]
    _, sel = renewal_scenario(mu, score, replace_units=1, n_sims=10)
    assert sel.tolist() == [False, True, False, False, False]
    _, sel = renewal_scenario(mu, score, replace_units=4, n_sims=10)
    assert sel.tolist() == [True, True, True, True, False]
    # floating-point lengths that add up to the budget fit it
    _, sel = renewal_scenario(mu[:3], [3, 2, 1], length_km=[0.1, 0.2, 0.5], replace_km=0.3)
    assert sel.tolist() == [True, True, False]


def test_renewal_without_lengths() -> None:
    mu, score, _ = _network(seed=2)
    summary, sel = renewal_scenario(mu, score, replace_units=40, n_sims=50)
    assert sel.sum() == 40
    assert summary["km_replaced"] is None and summary["share_of_length"] is None
    assert summary["breaks_avoided_per_km"] is None
    assert summary["share_of_units"] == pytest.approx(0.1)
    json.dumps(summary)


def test_renewal_nothing_replaced_avoids_nothing() -> None:
    mu, score, length = _network(seed=3)
    for kw in ({"length_km": length, "replace_km": 0.0}, {"replace_units": 0}):
        summary, sel = renewal_scenario(mu, score, n_sims=50, year_cv=0.3, **kw)
        assert not sel.any()
        assert summary["expected_breaks_avoided"] == 0.0
        assert summary["avoided_mean"] == summary["avoided_p90"] == 0.0
        assert summary["expected_breaks_after"] == summary["expected_breaks_baseline"]
        assert all(b["avoided_mean"] == 0 for b in summary["by_horizon"])
    summary, _ = renewal_scenario(mu, score, replace_units=50, residual=1.0, n_sims=50)
    assert summary["expected_breaks_avoided"] == 0.0 and summary["avoided_p90"] == 0.0


def test_renewal_replace_everything_with_residual_zero() -> None:
    mu, score, length = _network(seed=4)
    summary, sel = renewal_scenario(
        mu, score, length_km=length, replace_km=length.sum() + 1, residual=0.0, n_sims=100
    )
    assert sel.all()
    assert summary["expected_breaks_after"] == 0.0
    assert summary["expected_breaks_avoided"] == pytest.approx(summary["expected_breaks_baseline"])
    for k in ("mean", "p10", "p50", "p90"):  # every simulated break is avoided
        assert summary[f"avoided_{k}"] == summary[f"baseline_{k}"]
        assert summary[f"after_{k}"] == 0.0


def test_renewal_baseline_is_simulate_with_same_seed() -> None:
    mu, score, _ = _network(seed=5)
    kw = {"horizon": 4, "n_sims": 200, "seed": 17, "year_cv": 0.3, "annual_growth": 0.01}
    summary, _ = renewal_scenario(mu, score, replace_units=30, **kw)
    city = simulate(mu, quantiles=(0.1, 0.5, 0.9), **kw).city.iloc[-1]
    for k in ("mean", "p10", "p50", "p90"):
        assert summary[f"baseline_{k}"] == city[k]


def test_renewal_common_random_numbers_reduce_noise() -> None:
    mu, score, _ = _network(n=600, seed=6)
    kw = {"horizon": 5, "n_sims": 1000, "year_cv": 0.3}
    summary, sel = renewal_scenario(mu, score, replace_units=30, seed=1, **kw)
    paired = summary["avoided_p90"] - summary["avoided_p10"]
    # the same comparison from two independent runs
    base = _yearly_city(mu, n_sims=1000, horizon=5, seed=2, year_cv=0.3).sum(axis=1)
    after_mu = np.where(sel, mu * 0.1, mu)
    after = _yearly_city(after_mu, n_sims=1000, horizon=5, seed=3, year_cv=0.3).sum(axis=1)
    diff = base - after
    independent = np.quantile(diff, 0.9) - np.quantile(diff, 0.1)
    assert paired < 0.5 * independent
    assert (diff < 0).any()  # independent runs can even show negative avoided breaks
    assert summary["avoided_p10"] > 0
    # the simulated mean agrees with the analytic one
    assert summary["avoided_mean"] == pytest.approx(summary["expected_breaks_avoided"], rel=0.1)


def test_renewal_deterministic() -> None:
    mu, score, length = _network(seed=7)
    kw = {"length_km": length, "replace_km": 6.0, "n_sims": 100, "year_cv": 0.2, "seed": 3}
    a, sa = renewal_scenario(mu, score, **kw)
    b, sb = renewal_scenario(mu, score, **kw)
    assert a == b and np.array_equal(sa, sb)


def test_renewal_validation_lists_every_problem() -> None:
    with pytest.raises(ValueError) as err:
        renewal_scenario(
            [0.1, -0.2],
            [1.0],
            replace_km=-1.0,
            replace_units=3,
            residual=1.5,
            horizon=0,
            n_sims=2,
        )
    msg = str(err.value)
    for part in (
        "expected has negative",
        "score has length 1",
        "exactly one of replace_km and replace_units",
        "replace_km must be",
        "replace_km requires length_km",
        "replace_units must be an integer in 0..2",
        "residual must be",
        "horizon must be",
        "n_sims must be",
    ):
        assert part in msg, part
    with pytest.raises(ValueError, match="exactly one"):
        renewal_scenario([0.1], [1.0])
    with pytest.raises(ValueError, match="length_km has NaN"):
        renewal_scenario([0.1], [1.0], length_km=[np.nan], replace_km=1.0)
    with pytest.raises(ValueError, match="length_km has length 2"):
        renewal_scenario([0.1], [1.0], length_km=[1.0, 2.0], replace_km=1.0)
