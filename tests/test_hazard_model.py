"""The piecewise-exponential hazard GLM, exposure offsets and the fast fitting paths."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from sklearn.impute import SimpleImputer
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from twmb_geo.config import ModelConfig
from twmb_geo.model.baselines import _decade_classes
from twmb_geo.model.candidates import UnitFeatures, build_candidates
from twmb_geo.model.estimators import (
    MIN_EXPOSURE,
    BreakCountRegressor,
    _Booster,
    _MedianImputer,
    make_estimator,
)
from twmb_geo.model.hazard_design import AGE_EDGES, HazardDesign


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


@parametrize_with_checks(
    [
        BreakCountRegressor("pwe", calibrate=False),
        BreakCountRegressor("glm", calibrate=False),
        HazardDesign(),
        _MedianImputer(),
    ]
)
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)


# --------------------------------------------------------------------------- a known hazard

_GAMMA = {"mat_ci": 0.03, "mat_pvc": 0.005, "mat_di": 0.015}
_BASE = {"mat_ci": 0.4, "mat_pvc": 0.1, "mat_di": 0.2}


def _pipes(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Pipe-years with a proportional hazard: material baseline x material ageing x diameter
    x previous breaks, counts proportional to length; returns the rows and the true rate
    per km."""
    rng = np.random.default_rng(seed)
    mats = rng.choice(list(_GAMMA), size=n, p=[0.4, 0.35, 0.25])
    age = rng.uniform(1, 95, n)
    d = rng.choice([100.0, 150.0, 200.0, 300.0, 600.0], size=n)
    prev = rng.poisson(0.3, n).astype(float)
    length = rng.lognormal(-2.0, 0.8, n)
    base = np.array([_BASE[m] for m in mats])
    gamma = np.array([_GAMMA[m] for m in mats])
    rate = base * np.exp(gamma * (age - 50)) * (d / 150) ** -0.5 * (1 + 0.8 * np.minimum(prev, 3))
    y = rng.poisson(rate * length).astype(float)
    X = pd.DataFrame(
        {
            "age_mean": age,
            "diameter_mm": d,
            "breaks_last5": prev,
            "length_km": length,
            "exposure_km": length,
            **{m: (mats == m).astype(float) for m in _GAMMA},
        }
    )
    return X.assign(target_count=y), rate


FEATURES = ["age_mean", "diameter_mm", "breaks_last5", "exposure_km", *_GAMMA]


def test_pwe_recovers_a_proportional_hazard_per_km() -> None:
    train, _ = _pipes(30000, 0)
    test, true_rate = _pipes(5000, 1)
    pwe = make_estimator("pwe", features=FEATURES, calibrate=False, exposure="length_km")
    pwe.fit(train, train["target_count"])
    per_km = pwe.risk_score(test)
    np.testing.assert_allclose(pwe.predict(test), per_km * test["length_km"], rtol=1e-12)
    assert spearmanr(per_km, true_rate).statistic > 0.95
    # the same structure without the offset ranks per km clearly worse
    glm = make_estimator("glm", features=FEATURES, calibrate=False).fit(
        train, train["target_count"]
    )
    per_km_glm = glm.predict(test) / test["length_km"]
    assert spearmanr(per_km, true_rate).statistic > spearmanr(per_km_glm, true_rate).statistic
    # expected counts add up to the observed ones (a Poisson GLM with an intercept)
    assert pwe.predict(train).sum() == pytest.approx(train["target_count"].sum(), rel=0.02)


def test_exposure_is_an_offset() -> None:
    rng = np.random.default_rng(3)
    n = 20000
    x = rng.normal(size=n)
    length = rng.uniform(0.01, 2.0, n)
    y = rng.poisson(np.exp(-1 + 0.7 * x) * length).astype(float)
    X = pd.DataFrame({"x": x, "length_km": length})
    m = BreakCountRegressor("glm", features=["x"], calibrate=False, exposure="length_km")
    m.fit(X, y)
    twice = X.assign(length_km=2 * length)
    np.testing.assert_allclose(m.predict(twice), 2 * m.predict(X))
    np.testing.assert_allclose(m.risk_score(twice), m.risk_score(X))
    coef = m.model_[-1].coef_[0] / m.model_[-2].scale_[0]  # per unit of signed log1p(x)
    assert coef > 0.3
    # unknown or zero size: the smallest exposure, never NaN
    odd = X.iloc[:3].assign(length_km=[np.nan, 0.0, -1.0])
    np.testing.assert_allclose(m.predict(odd), m.risk_score(odd) * MIN_EXPOSURE)


def test_exposure_needs_a_named_column() -> None:
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    y = np.array([0.0, 1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="length_km"):
        BreakCountRegressor("glm", features=["x"], exposure="length_km").fit(X, y)
    with pytest.raises(ValueError, match="DataFrame"):
        BreakCountRegressor("glm", exposure="length_km").fit(X.to_numpy(), y)


def test_pwe_candidate_takes_the_units_exposure() -> None:
    unit = UnitFeatures(tuple(FEATURES), ("diameter_mm",), "length_km")
    built = build_candidates(["pwe", "glm"], unit, ModelConfig())
    assert built["pwe"].get_params()["exposure"] == "length_km"
    assert built["pwe"].get_params()["kind"] == "pwe"
    assert built["glm"].get_params()["exposure"] is None
    cells = build_candidates(["pwe"], UnitFeatures(("breaks_last5",)), ModelConfig())
    assert cells["pwe"].get_params()["exposure"] is None


# --------------------------------------------------------------------------- the design


def test_design_crosses_materials_with_age_bands() -> None:
    names = ["age_mean", "mat_ci", "mat_pvc", "diameter_mm", "breaks_last5", "lined", "other"]
    X = np.array(
        [
            [10.0, 1, 0, 150.0, 0.0, 0.0, 5.0],
            [80.0, 1, 0, np.nan, 3.0, 1.0, -2.0],
            [50.0, 0, 1, 300.0, 1.0, 0.0, np.nan],
            [np.nan, 0, 1, 100.0, 2.0, 1.0, 0.0],
        ]
    )
    d = HazardDesign(names).fit(X)
    Z = d.transform(X)
    n_bands = len(AGE_EDGES)
    # age: linear + bands + missing flag; per material: one-hot + x age + x bands;
    # diameter: log + missing flag; history: log1p + 3 levels; lined (0/1); other (log)
    assert Z.shape == (4, (2 + n_bands) + 2 * (2 + n_bands) + 2 + 4 + 1 + 1)
    ci_band = Z[:, 2 + n_bands + 2 : 2 + n_bands + 2 + n_bands]  # after age, CI, CI x age
    assert ci_band[0].sum() == 0  # aged 10: the first band is the reference
    assert ci_band[1].sum() == 1 and ci_band[2:].sum() == 0  # only CI rows get CI bands
    hist = Z[:, -6:-2]
    np.testing.assert_allclose(hist[1], [np.log1p(3), 1, 1, 1])
    np.testing.assert_allclose(hist[0], [0, 0, 0, 0])
    assert np.isfinite(Z).all()
    assert d.binary_.tolist() == [False, True, True, False, False, True, False]


def test_design_decides_binary_columns_once() -> None:
    names = ["flag"]
    d = HazardDesign(names).fit(np.array([[0.0], [1.0]]))
    np.testing.assert_allclose(d.transform(np.array([[0.0], [1.0], [3.0]])).ravel(), [0, 1, 3])
    d2 = HazardDesign(names).fit(np.array([[0.0], [3.0]]))
    np.testing.assert_allclose(d2.transform(np.array([[1.0]])).ravel(), [np.log1p(1.0)])


def test_design_checks_its_parameters() -> None:
    with pytest.raises(ValueError, match="2 names for 3 columns"):
        HazardDesign(["a", "b"]).fit(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="age_edges must increase"):
        HazardDesign(None, age_edges=(30.0, 10.0)).fit(np.zeros((2, 1)))


# --------------------------------------------------------------------------- fast paths


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 60),
    st.integers(1, 5),
    st.floats(0.0, 0.9),
    st.integers(0, 2**31 - 1),
)
def test_median_imputer_matches_simple_imputer(n: int, p: int, share: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, p))
    A[rng.random((n, p)) < share] = np.nan
    B = rng.normal(size=(7, p))
    B[rng.random((7, p)) < share] = np.nan
    ref = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
    np.testing.assert_allclose(_MedianImputer().fit(A).transform(B), ref.fit(A).transform(B))


def test_booster_bins_ignore_sample_weights() -> None:
    rng = np.random.default_rng(0)
    X = rng.exponential(size=(3000, 3))
    y = rng.poisson(np.exp(X[:, 0] - 1)).astype(float)
    w = np.where(y > 0, 1.0, 20.0)
    kw = {"loss": "poisson", "max_iter": 5, "random_state": 0, "early_stopping": False}
    weighted = _Booster(**kw).fit(X, y, sample_weight=w)
    plain = _Booster(**kw).fit(X, y)
    for a, b in zip(
        weighted._bin_mapper.bin_thresholds_, plain._bin_mapper.bin_thresholds_, strict=True
    ):
        np.testing.assert_array_equal(a, b)
    # the weights still reach the fit
    assert not np.allclose(weighted.predict(X), plain.predict(X))


def _decade_keys(X: pd.DataFrame) -> list[str]:
    pair, labels = _decade_classes(X, "material", "install_year")
    return labels[pair].tolist()


def test_decade_keys() -> None:
    X = pd.DataFrame(
        {
            "material": pd.array([" ci", "CI", None, "", "pvc", "Pvc "], dtype="string"),
            "install_year": [1955.0, np.nan, 1970.0, 2001.0, 1999.0, 1990.0],
        }
    )
    assert _decade_keys(X) == [
        "CI|1950",
        "CI|UNKNOWN",
        "UNKNOWN|1970",
        "UNKNOWN|2000",
        "PVC|1990",
        "PVC|1990",
    ]
    none = pd.DataFrame(
        {"material": pd.array([None, None], dtype="string"), "install_year": [np.nan] * 2}
    )
    assert _decade_keys(none) == ["UNKNOWN|UNKNOWN"] * 2
