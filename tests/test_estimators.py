"""Tests of twmb_geo.model.estimators.BreakRiskModel on a small synthetic panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from twmb_geo.model.estimators import DEFAULT_FEATURES, BreakRiskModel

FAST = {"max_iter": 10, "min_samples_leaf": 10, "max_leaf_nodes": 7}


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


@pytest.mark.parametrize("kind", ["hgb", "poisson", "logistic"])
@pytest.mark.parametrize("calibrate", [True, False])
def test_fit_predict(panel: pd.DataFrame, kind: str, calibrate: bool) -> None:
    tr, te = panel[panel.year <= 2007], panel[panel.year == 2008]
    y = tr["target_count"] if kind == "poisson" else tr["target_any"]
    m = BreakRiskModel(kind, calibrate=calibrate, **FAST).fit(tr, y)
    s = m.predict(te)
    assert s.shape == (len(te),) and np.all(np.isfinite(s))
    p = m.predict_proba(te)
    assert p.shape == (len(te), 2)
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # history carries signal: riskier units score higher on average
    assert np.corrcoef(s, te["breaks_last5"])[0, 1] > 0


def test_default_features_exclude_targets_ids_year(panel: pd.DataFrame) -> None:
    m = BreakRiskModel("poisson", calibrate=False, **FAST).fit(panel, panel["target_count"])
    used = set(m.feature_names_in_)
    assert used <= set(DEFAULT_FEATURES)
    assert not used & {"target_count", "target_any", "year", "unit_id", "unit_type"}
    assert "history_years" not in used
    assert "exposure_km" not in used  # all-null column dropped
    assert m.n_features_in_ == len(used)


@pytest.mark.parametrize("bad", ["target_count", "target_any", "year", "unit_id", "history_years"])
def test_forbidden_features_raise(panel: pd.DataFrame, bad: str) -> None:
    m = BreakRiskModel("hgb", features=["breaks_last5", bad], **FAST)
    with pytest.raises(ValueError, match="cannot be features"):
        m.fit(panel, panel["target_any"])


def test_missing_feature_and_bad_kind(panel: pd.DataFrame) -> None:
    with pytest.raises(KeyError):
        BreakRiskModel(features=["nope"]).fit(panel, panel["target_any"])
    with pytest.raises(ValueError, match="kind"):
        BreakRiskModel("forest").fit(panel, panel["target_any"])
    with pytest.raises(TypeError):
        BreakRiskModel().fit(panel.to_numpy(), panel["target_any"])


def test_clone_and_params() -> None:
    m = BreakRiskModel("poisson", features=["breaks_last5"], hgb_params={"max_depth": 3})
    c = clone(m)
    assert c.get_params() == m.get_params()
    assert c.get_params()["hgb_params"] == {"max_depth": 3}
    c.set_params(kind="hgb", max_iter=7)
    assert c.kind == "hgb" and c.max_iter == 7 and m.kind == "poisson"


@pytest.mark.parametrize("kind", ["hgb", "poisson"])
def test_deterministic(panel: pd.DataFrame, kind: str) -> None:
    tr, te = panel[panel.year <= 2007], panel[panel.year == 2008]
    ycol = "target_count" if kind == "poisson" else "target_any"
    a = BreakRiskModel(kind, **FAST).fit(tr, tr[ycol])
    b = clone(a).fit(tr, tr[ycol])
    np.testing.assert_array_equal(a.predict(te), b.predict(te))
    np.testing.assert_array_equal(a.predict_proba(te), b.predict_proba(te))


def test_null_targets_ignored_and_unfitted(panel: pd.DataFrame) -> None:
    m = BreakRiskModel("hgb", calibrate=False, **FAST)
    with pytest.raises(Exception, match="not fitted"):
        m.predict(panel)
    # the last year has null targets; fitting on all rows must work
    assert panel["target_any"].isna().any()
    m.fit(panel, panel["target_any"])
    assert np.all(np.isfinite(m.predict(panel)))


@pytest.mark.parametrize("kind", ["hgb", "poisson", "logistic"])
def test_feature_without_any_value_in_training_rows(panel: pd.DataFrame, kind: str) -> None:
    """A small training fold may lack a feature entirely: fit anyway, predict finite."""
    tr, te = panel[panel.year <= 2007].copy(), panel[panel.year == 2008].copy()
    tr["exposure_km"] = np.nan
    te["exposure_km"] = 1.0
    m = BreakRiskModel(kind, features=["breaks_last5", "exposure_km"], max_iter=20)
    m.fit(tr, tr["target_count"])
    p = m.predict_proba(te)[:, 1]
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()


def test_lightgbm_kind_explains_the_missing_package(panel: pd.DataFrame) -> None:
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install lightgbm"):
            BreakRiskModel("lightgbm").fit(panel, panel["target_count"])
    else:  # pragma: no cover - only where lightgbm is installed
        m = BreakRiskModel("lightgbm", max_iter=20).fit(panel, panel["target_count"])
        assert m.predicts_counts and np.isfinite(m.predict(panel)).all()
