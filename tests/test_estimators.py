"""The break-risk estimators: scikit-learn conformance, panel frames, scorers, clone."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from twmb_geo.config import ModelConfig
from twmb_geo.model import baselines as B
from twmb_geo.model.estimators import (
    DEFAULT_FEATURES,
    DEFAULT_KIND,
    DEFAULT_LEARNING_RATE,
    DEFAULT_MAX_ITER,
    BreakCountRegressor,
    BreakRiskClassifier,
    make_estimator,
)
from twmb_geo.model.scorers import capture_scorer


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    # HistGradientBoosting's OpenMP threads slow down sharply on a busy machine;
    # one thread keeps this module's runtime predictable (results are identical).
    with threadpool_limits(limits=1):
        yield


FAST = {"max_iter": 10, "min_samples_leaf": 10, "max_leaf_nodes": 7}

_TWO_COLUMNS = "reads three named input columns; the check's data has only two features"
_THREE_COLUMN_FAILURES = {
    name: _TWO_COLUMNS
    for name in (
        "check_estimators_overwrite_params",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
    )
}
CHECKED = [
    BreakCountRegressor(max_iter=10, min_samples_leaf=5),
    BreakRiskClassifier(max_iter=10, min_samples_leaf=5),
    BreakRiskClassifier("logistic", calibrate=False),
    B.PastBreaksBaseline(),
    B.AgeBaseline(),
    B.MaterialDecadeBaseline(),
    B.EmpiricalBayesRateBaseline(),
]


def _expected_failures(est: object) -> dict[str, str]:
    if isinstance(est, B.MaterialDecadeBaseline | B.EmpiricalBayesRateBaseline):
        return dict(_THREE_COLUMN_FAILURES)
    return {}


@parametrize_with_checks(CHECKED, expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)


def _panel(n_units: int = 40, years: range = range(2000, 2010), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    risk = rng.gamma(1.0, 0.3, n_units)
    rows = []
    for u in range(n_units):
        hist: list[int] = []
        for t in years:
            b = int(rng.poisson(risk[u]))
            hist.append(b)
            last5 = float(sum(hist[-5:]))
            rows.append(
                {
                    "unit_type": "cell",
                    "unit_id": f"u{u:03d}",
                    "year": t,
                    "history_years": len(hist),
                    "area_km2": 0.11,
                    "exposure_km": np.nan,
                    "breaks": float(b),
                    "breaks_last3": float(sum(hist[-3:])),
                    "breaks_last5": last5,
                    "breaks_to_date": float(sum(hist)),
                    "decayed": float(
                        sum(x * np.exp(-(len(hist) - 1 - i) / 3) for i, x in enumerate(hist))
                    ),
                    "lag1_breaks_last5_adj": last5 * 0.5 + rng.normal(0, 0.2),
                }
            )
    p = pd.DataFrame(rows)
    nxt = p.groupby("unit_id")["breaks"].shift(-1)
    p["target_count"] = nxt
    p["target_any"] = (nxt > 0).astype(float).where(nxt.notna())
    return p


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return _panel()


def _binary(y: pd.Series) -> pd.Series:
    return (y > 0).astype(float).where(y.notna())


# --------------------------------------------------------------------------- kinds


def test_make_estimator_and_mixins() -> None:
    assert isinstance(make_estimator("poisson"), BreakCountRegressor)
    assert isinstance(make_estimator("lightgbm"), BreakCountRegressor)
    assert isinstance(make_estimator("hgb"), BreakRiskClassifier)
    assert isinstance(make_estimator("logistic", C=0.5), BreakRiskClassifier)
    assert is_regressor(BreakCountRegressor()) and not is_classifier(BreakCountRegressor())
    assert is_classifier(BreakRiskClassifier()) and not is_regressor(BreakRiskClassifier())
    assert not hasattr(BreakCountRegressor(), "predict_proba")
    with pytest.raises(ValueError, match="kind"):
        make_estimator("forest")
    with pytest.raises(ValueError, match="kind"):
        BreakCountRegressor(kind="hgb").fit(np.ones((4, 1)), [0, 1, 0, 2])


def test_defaults_equal_model_config() -> None:
    mc = ModelConfig()
    est = make_estimator(mc.kind)
    assert mc.kind == DEFAULT_KIND and isinstance(est, BreakCountRegressor)
    assert est.max_iter == mc.max_iter == DEFAULT_MAX_ITER
    assert est.learning_rate == mc.learning_rate == DEFAULT_LEARNING_RATE
    assert BreakRiskClassifier().max_iter == DEFAULT_MAX_ITER
    assert BreakRiskClassifier().learning_rate == DEFAULT_LEARNING_RATE
    assert est.calibrate == mc.calibrate and est.random_state == mc.seed
    fields = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    assert fields["max_iter"] == DEFAULT_MAX_ITER


@pytest.mark.parametrize("kind", ["hgb", "poisson", "logistic"])
@pytest.mark.parametrize("calibrate", [True, False])
def test_fit_predict(panel: pd.DataFrame, kind: str, calibrate: bool) -> None:
    tr, te = panel[panel.year <= 2007], panel[panel.year == 2008]
    y = tr["target_count"] if kind == "poisson" else tr["target_any"]
    m = make_estimator(kind, calibrate=calibrate, **FAST).fit(tr, y)
    s = m.risk_score(te)
    assert s.shape == (len(te),) and np.all(np.isfinite(s))
    p = m.break_probability(te)
    assert p.shape == (len(te),) and np.all((p >= 0) & (p <= 1))
    e = m.expected_breaks(te)
    assert np.all(e >= 0)
    if kind == "poisson":
        np.testing.assert_array_equal(m.predict(te), s)
    else:
        np.testing.assert_array_equal(m.predict_proba(te)[:, 1], p)
        assert set(m.predict(te)) <= {0.0, 1.0} and list(m.classes_) == [0.0, 1.0]
    # history carries signal: riskier units score higher on average
    assert np.corrcoef(s, te["breaks_last5"])[0, 1] > 0


def test_classifier_needs_binary_labels(panel: pd.DataFrame) -> None:
    m = BreakRiskClassifier(**FAST)
    with pytest.raises(ValueError, match="Only binary classification"):
        m.fit(panel, panel["target_count"].fillna(0) + (panel["breaks_last5"] > 3) * 2)
    labels = np.where(panel["target_any"] > 0, "break", "none")
    fitted = BreakRiskClassifier(**FAST).fit(panel, labels)
    assert list(fitted.classes_) == ["break", "none"]
    assert set(fitted.predict(panel)) <= {"break", "none"}


def test_default_features_exclude_targets_ids_year(panel: pd.DataFrame) -> None:
    m = BreakCountRegressor(calibrate=False, **FAST).fit(panel, panel["target_count"])
    used = set(m.feature_names_in_)
    assert used <= set(DEFAULT_FEATURES)
    assert not used & {"target_count", "target_any", "year", "unit_id", "unit_type"}
    assert "history_years" not in used
    assert "exposure_km" not in used  # all-null column dropped
    assert m.n_features_in_ == len(used)


@pytest.mark.parametrize("bad", ["target_count", "target_any", "year", "unit_id", "history_years"])
def test_forbidden_features_raise(panel: pd.DataFrame, bad: str) -> None:
    m = BreakRiskClassifier(features=["breaks_last5", bad], **FAST)
    with pytest.raises(ValueError, match="cannot be features"):
        m.fit(panel, panel["target_any"])


def test_input_errors(panel: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="nope"):
        BreakCountRegressor(features=["nope"]).fit(panel, panel["target_count"])
    with pytest.raises(ValueError, match="non-negative"):
        BreakCountRegressor(**FAST).fit(panel, -panel["target_count"])
    with pytest.raises(ValueError, match="features names DataFrame columns"):
        BreakCountRegressor(features=["a"]).fit(np.ones((5, 2)), np.ones(5))
    fitted = BreakCountRegressor(calibrate=False, **FAST).fit(panel, panel["target_count"])
    with pytest.raises(ValueError, match="breaks_last5"):
        fitted.predict(panel.drop(columns="breaks_last5"))


def test_arrays_and_frames_agree(panel: pd.DataFrame) -> None:
    lab = panel[panel["target_count"].notna()]
    m = BreakCountRegressor(calibrate=False, **FAST).fit(lab, lab["target_count"])
    A = lab[list(m.feature_names_in_)].to_numpy(dtype=float)
    a = BreakCountRegressor(calibrate=False, **FAST).fit(A, lab["target_count"].to_numpy())
    assert not hasattr(a, "feature_names_in_") and a.n_features_in_ == m.n_features_in_
    np.testing.assert_array_equal(a.predict(A), m.predict(lab))
    np.testing.assert_array_equal(m.risk_score_matrix(m.feature_matrix(lab)), m.predict(lab))


def test_clone_round_trip() -> None:
    m = BreakCountRegressor(features=["breaks_last5"], hgb_params={"max_depth": 3})
    c = clone(m)
    assert c.get_params() == m.get_params()
    assert c.get_params()["hgb_params"] == {"max_depth": 3}
    c.set_params(max_iter=7)
    assert c.max_iter == 7 and m.max_iter == DEFAULT_MAX_ITER
    assert not [k for k in vars(clone(BreakRiskClassifier())) if k.endswith("_")]


@pytest.mark.parametrize("kind", ["hgb", "poisson"])
def test_deterministic(panel: pd.DataFrame, kind: str) -> None:
    tr, te = panel[panel.year <= 2007], panel[panel.year == 2008]
    ycol = "target_count" if kind == "poisson" else "target_any"
    a = make_estimator(kind, **FAST).fit(tr, tr[ycol])
    b = clone(a).fit(tr, tr[ycol])
    np.testing.assert_array_equal(a.risk_score(te), b.risk_score(te))
    np.testing.assert_array_equal(a.break_probability(te), b.break_probability(te))


def test_null_targets_ignored_and_unfitted(panel: pd.DataFrame) -> None:
    m = BreakRiskClassifier(calibrate=False, **FAST)
    with pytest.raises(Exception, match="not fitted"):
        m.predict(panel)
    assert panel["target_any"].isna().any()
    m.fit(panel, panel["target_any"])
    assert np.all(np.isfinite(m.risk_score(panel)))


@pytest.mark.parametrize("kind", ["hgb", "poisson", "logistic"])
def test_feature_without_any_value_in_training_rows(panel: pd.DataFrame, kind: str) -> None:
    """A small training fold may lack a feature entirely: fit anyway, predict finite."""
    tr, te = panel[panel.year <= 2007].copy(), panel[panel.year == 2008].copy()
    tr["exposure_km"] = np.nan
    te["exposure_km"] = 1.0
    m = make_estimator(kind, features=["breaks_last5", "exposure_km"], max_iter=20)
    y = tr["target_count"] if kind == "poisson" else _binary(tr["target_count"])
    m.fit(tr, y)
    p = m.break_probability(te)
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()


def test_lightgbm_kind_explains_the_missing_package(panel: pd.DataFrame) -> None:
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install lightgbm"):
            make_estimator("lightgbm").fit(panel, panel["target_count"])
    else:  # pragma: no cover - only where lightgbm is installed
        m = make_estimator("lightgbm", max_iter=20).fit(panel, panel["target_count"])
        assert m.predicts_counts and np.isfinite(m.predict(panel)).all()


# --------------------------------------------------------------------------- model selection


def test_cross_val_score_default_scoring(panel: pd.DataFrame) -> None:
    lab = panel[panel["target_count"].notna()].reset_index(drop=True)
    cv = KFold(3, shuffle=True, random_state=0)
    r2 = cross_val_score(BreakCountRegressor(**FAST), lab, lab["target_count"], cv=cv)
    assert r2.shape == (3,) and np.isfinite(r2).all()
    acc = cross_val_score(BreakRiskClassifier(**FAST), lab, lab["target_any"], cv=cv)
    assert ((acc >= 0) & (acc <= 1)).all()
    auc = cross_val_score(
        BreakRiskClassifier(**FAST), lab, lab["target_any"], cv=cv, scoring="roc_auc"
    )
    assert np.isfinite(auc).all() and (auc > 0.5).all()


def test_capture_scorer_hand_made() -> None:
    """Two folds of four rows; the past-breaks ranking catches 2 of 3 and 1 of 2 breaks."""
    X = pd.DataFrame({"breaks_last5": [5, 4, 0, 1, 7, 0, 3, 2]})
    y = np.array([2, 0, 1, 0, 1, 1, 0, 0], dtype=float)
    scorer = capture_scorer(0.25, ties="first")
    got = cross_val_score(B.PastBreaksBaseline(), X, y, cv=KFold(2), scoring=scorer)
    # fold 1 tests rows 0-3: riskiest quarter = row 0 (2 of 3 breaks);
    # fold 2 tests rows 4-7: riskiest quarter = row 4 (1 of 2 breaks)
    np.testing.assert_allclose(got, [2 / 3, 1 / 2])
    w = X.assign(km=[4.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    weighted = capture_scorer(0.5, weight="km", ties="first")
    got_w = cross_val_score(B.PastBreaksBaseline(), w, y, cv=KFold(2), scoring=weighted)
    # fold 1: budget 3.5 of 7 km = 3.5 / 4 of row 0 -> 1.75 of 3 breaks;
    # fold 2: budget 2 of 4 km = rows 4 and 6 -> 1 of 2
    np.testing.assert_allclose(got_w, [1.75 / 3, 1 / 2])
    with pytest.raises(ValueError, match="frac"):
        capture_scorer(1.5)


def test_grid_search_with_capture_scorer(panel: pd.DataFrame) -> None:
    lab = panel[panel["target_count"].notna()].reset_index(drop=True)
    gs = GridSearchCV(
        BreakCountRegressor(calibrate=False, **FAST),
        {"max_iter": [2, 10], "learning_rate": [0.05, 0.2]},
        scoring=capture_scorer(0.1),
        cv=KFold(3, shuffle=True, random_state=0),
    ).fit(lab, lab["target_count"])
    scores = gs.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    assert np.isfinite(gs.best_score_) and gs.best_score_ == scores.max()
    auc = GridSearchCV(
        BreakRiskClassifier(calibrate=False, **FAST),
        {"max_iter": [2, 10]},
        scoring="roc_auc",
        cv=KFold(3, shuffle=True, random_state=0),
    ).fit(lab, lab["target_any"])
    assert np.isfinite(auc.cv_results_["mean_test_score"]).all()
