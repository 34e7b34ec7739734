"""Tests for twmb_geo.model.baselines on a small synthetic panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from twmb_geo.model import baselines as B
from twmb_geo.model.metrics import capture_at


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    """200 pipes x 6 years; breaks depend on material, age and a latent unit rate."""
    rng = np.random.default_rng(7)
    n_units, years = 200, np.arange(2010, 2016)
    mat = rng.choice(["CI", "DI", "PVC"], n_units, p=[0.5, 0.3, 0.2])
    inst = rng.integers(1900, 2010, n_units).astype(float)
    inst[:5] = np.nan
    km = rng.uniform(0.05, 1.0, n_units)
    lam = km * np.where(mat == "CI", 0.8, 0.2) * rng.gamma(2.0, 0.5, n_units)
    rows = []
    for u in range(n_units):
        counts = rng.poisson(lam[u], len(years) + 1)
        for i, yr in enumerate(years):
            rows.append(
                {
                    "unit_type": "pipe",
                    "unit_id": f"p{u:03d}",
                    "year": int(yr),
                    "history_years": i + 1,
                    "exposure_km": km[u],
                    "age_mean": yr - inst[u],
                    "breaks_last5": float(counts[max(0, i - 4) : i + 1].sum()),
                    "breaks_to_date": float(counts[: i + 1].sum()),
                    "material": mat[u],
                    "install_year": inst[u],
                    "target_count": float(counts[i + 1]),
                    "target_any": float(counts[i + 1] > 0),
                }
            )
    return pd.DataFrame(rows)


ESTIMATORS = [
    B.PastBreaksBaseline(),
    B.AgeBaseline(),
    B.MaterialDecadeBaseline(),
    B.EmpiricalBayesRateBaseline(),
    B.EmpiricalBayesRateBaseline(output="expected"),
]


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: repr(e))
def test_fit_predict_probability(est, panel: pd.DataFrame) -> None:
    train, test = panel[panel.year < 2014], panel[panel.year >= 2014]
    with pytest.raises(NotFittedError):
        clone(est).predict(test)
    fitted = clone(est).fit(train, train["target_count"])
    s = fitted.predict(test)
    assert s.shape == (len(test),) and s.dtype == np.float64
    proba = fitted.break_probability(test)
    assert proba.shape == (len(test),)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_array_equal(fitted.risk_score(test), s)
    finite = np.isfinite(s)
    order = np.argsort(s[finite], kind="stable")
    assert np.all(np.diff(proba[finite][order]) >= -1e-12)  # monotone in the score
    # better than nothing on this panel (random capture ~ 0.2)
    cap = capture_at(test["target_count"], s, 0.2, weight=test["exposure_km"], ties="average")
    assert cap > 0.2 or isinstance(fitted, B.AgeBaseline)


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: repr(e))
def test_clone_and_get_params_round_trip(est) -> None:
    params = est.get_params()
    twin = type(est)(**params)
    assert twin.get_params() == params
    c = clone(est)
    assert c.get_params() == params and c is not est
    assert not [k for k in vars(c) if k.endswith("_")]  # no fitted state before fit


def test_null_targets_are_ignored_and_y_any_accepted(panel: pd.DataFrame) -> None:
    y = panel["target_any"].copy()
    y.iloc[::3] = np.nan
    est = B.PastBreaksBaseline(column="breaks_to_date").fit(panel, y)
    assert 0 < est.base_rate_ < 1
    np.testing.assert_array_equal(est.predict(panel), panel["breaks_to_date"].to_numpy())


def test_past_breaks_and_age_scores_are_columns() -> None:
    X = pd.DataFrame({"breaks_last5": [0, 2, 1], "age_mean": [10.0, np.nan, 80.0]})
    y = [0, 1, 1]
    np.testing.assert_array_equal(B.PastBreaksBaseline().fit(X, y).predict(X), [0, 2, 1])
    age = B.AgeBaseline().fit(X, y)
    s = age.predict(X)
    assert s[0] == 10 and np.isnan(s[1]) and s[2] == 80
    # NaN score -> observed share of NaN-score training rows
    assert age.break_probability(X)[1] == 1.0
    with pytest.raises(ValueError, match="nope"):
        B.AgeBaseline(column="nope").fit(X, y)


def test_material_decade_rates_hand_checked() -> None:
    X = pd.DataFrame(
        {
            "material": ["CI", "ci", "CI", "DI", None, "DI"],
            "install_year": [1951, 1959, 1960, 1975, 1975, np.nan],
            "exposure_km": [1.0, 3.0, 2.0, 4.0, 0.5, np.nan],
        }
    )
    y = np.array([1, 1, 0, 2, 1, 5], dtype=float)
    est = B.MaterialDecadeBaseline().fit(X, y)
    assert est.rates_ == pytest.approx(
        {"CI|1950": 2 / 4, "CI|1960": 0 / 2, "DI|1970": 2 / 4, "UNKNOWN|1970": 1 / 0.5}
    )
    assert est.global_rate_ == pytest.approx(5 / 10.5)  # row without exposure skipped
    new = pd.DataFrame(
        {
            "material": ["CI", "PVC", "DI"],
            "install_year": [1955, 1955, np.nan],
            "exposure_km": [2.0, 1.0, 1.0],
        }
    )
    np.testing.assert_allclose(est.predict(new), [0.5, 5 / 10.5, 5 / 10.5])
    expected = B.MaterialDecadeBaseline(output="expected").fit(X, y)
    np.testing.assert_allclose(expected.predict(new), [1.0, 5 / 10.5, 5 / 10.5])


def test_empirical_bayes_prior_and_null_exposure() -> None:
    X = pd.DataFrame(
        {
            "breaks_to_date": [0.0, 1.0, 2.0, 8.0, 3.0, 0.0],
            "exposure_km": [1.0, 0.5, 2.0, 1.0, np.nan, np.nan],
            "history_years": [5, 5, 5, 5, 5, 5],
        }
    )
    est = B.EmpiricalBayesRateBaseline().fit(X, np.zeros(6))
    pooled = est.alpha_km_ / est.beta_km_
    assert pooled == pytest.approx(11 / 22.5)  # method of moments keeps the pooled mean
    assert est.alpha_yr_ / est.beta_yr_ == pytest.approx(14 / 30)
    s = est.predict(X)
    raw = np.array([0 / 5, 1 / 2.5, 2 / 10, 8 / 5])
    # posterior lies between the raw and the pooled rate
    assert np.all((s[:4] - raw) * (s[:4] - pooled) <= 1e-12)
    # cells without exposure use years only: (alpha_yr + c) / (beta_yr + years)
    assert s[4] == pytest.approx((est.alpha_yr_ + 3) / (est.beta_yr_ + 5))


@pytest.fixture(scope="module")
def eb_fitted(panel: pd.DataFrame) -> B.EmpiricalBayesRateBaseline:
    return B.EmpiricalBayesRateBaseline().fit(panel, panel["target_count"])


@settings(max_examples=50, deadline=None)
@given(
    rate=st.floats(0.0, 20.0),
    small=st.floats(0.01, 1.0),
    factor=st.floats(1.5, 50.0),
)
def test_eb_shrinks_small_exposure_more(eb_fitted, rate, small, factor) -> None:
    """At the same raw rate, the unit with less exposure ends closer to the pooled rate."""
    pooled = eb_fitted.alpha_km_ / eb_fitted.beta_km_
    km = np.array([small, small * factor])
    X = pd.DataFrame({"breaks_to_date": rate * km * 5, "exposure_km": km, "history_years": [5, 5]})
    s = eb_fitted.predict(X)
    assert abs(s[0] - pooled) <= abs(s[1] - pooled) + 1e-12
    # and both lie between the raw rate and the pooled rate
    assert np.all((s - rate) * (s - pooled) <= 1e-12)


def test_arrays_by_position_and_missing_y() -> None:
    A = np.array([[0.0, 9.0], [2.0, 9.0], [1.0, 9.0]])
    fitted = B.PastBreaksBaseline().fit(A, [0, 1, 0])
    np.testing.assert_array_equal(fitted.predict(A), [0.0, 2.0, 1.0])
    assert fitted.n_features_in_ == 2 and not hasattr(fitted, "feature_names_in_")
    with pytest.raises(ValueError, match="reads 3 columns"):
        B.EmpiricalBayesRateBaseline().fit(A, [0, 1, 0])
    with pytest.raises(ValueError):
        B.PastBreaksBaseline().fit(pd.DataFrame({"breaks_last5": [1, 2]}), None)


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: repr(e))
def test_without_calibration_the_same_ranking_and_no_probability(est, panel: pd.DataFrame) -> None:
    """``calibrate=False`` (how validation folds fit them): the same scores, learned rates
    and priors; no isotonic map (a refit drops one an earlier fit made), and asking for a
    probability says why there is none."""
    train, test = panel[panel.year < 2014], panel[panel.year >= 2014]
    with_map = clone(est).fit(train, train["target_count"])
    ranking = clone(est).set_params(calibrate=False)
    with pytest.raises(NotFittedError):
        ranking.break_probability(test)
    assert ranking.fit(train, train["target_count"]) is ranking
    np.testing.assert_array_equal(ranking.predict(test), with_map.predict(test))
    learned = {k: v for k, v in vars(with_map).items() if k.endswith("_")}
    kept = {k: v for k, v in vars(ranking).items() if k.endswith("_")}
    assert set(learned) - set(kept) == {"calibrator_", "base_rate_", "nan_rate_"}
    for k, v in kept.items():
        np.testing.assert_array_equal(
            np.asarray(v, dtype=object), np.asarray(learned[k], dtype=object)
        )
    with pytest.raises(ValueError, match="calibrate=False"):
        ranking.break_probability(test)
    refit = clone(est).fit(train, train["target_count"])
    refit.set_params(calibrate=False).fit(train, train["target_count"])
    assert not hasattr(refit, "calibrator_")


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(st.integers(0, 40), max_size=200),
    st.integers(0, 300),
)
def test_dense_unique_is_numpys_unique(keys: list[int], extra: int) -> None:
    """Material-decade classes found from a table of the keys present give ``np.unique``'s
    classes and inverse, whatever the table size (the sort when it is large)."""
    key = np.asarray(keys, dtype=np.int64)
    for size in (41, 41 + extra, 10**6):
        got, inverse = B._dense_unique(key, size)
        want, want_inverse = np.unique(key, return_inverse=True)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(inverse, want_inverse)
        assert inverse.dtype == want_inverse.dtype
