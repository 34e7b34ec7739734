"""Champion selection: candidates, nested forward selection, the ChampionModel and its calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from twmb_geo.config import ModelConfig, load_config
from twmb_geo.core.model_kinds import MODEL_CANDIDATES
from twmb_geo.errors import ConfigError, InputDataError
from twmb_geo.model import candidates as cand_mod
from twmb_geo.model.baselines import PastBreaksBaseline
from twmb_geo.model.candidates import (
    CandidateSpec,
    UnitFeatures,
    build_candidates,
    register_candidate,
)
from twmb_geo.model.champion import ChampionModel, Ecdf, RateCalibrator
from twmb_geo.model.estimators import make_estimator
from twmb_geo.model.metrics import capture_at
from twmb_geo.model.selection import (
    FoldScores,
    choose,
    fold_years,
    inner_years,
    select,
    selection_score,
)


def _panel(n_units: int = 300, years: range = range(2000, 2012), seed: int = 0) -> pd.DataFrame:
    """Units with a fixed hidden rate; history columns from the simulated past."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.6, 0.3, n_units)
    counts = rng.poisson(rate[:, None] * np.ones(len(years)))
    rows = []
    for i in range(n_units):
        for j, y in enumerate(years):
            last5 = counts[i, max(0, j - 4) : j + 1].sum()
            rows.append(
                {
                    "unit_id": f"u{i}",
                    "year": y,
                    "breaks": counts[i, j],
                    "breaks_last5": last5,
                    "breaks_to_date": counts[i, : j + 1].sum(),
                    "noise": rng.normal(),
                    "length_km": 0.5 + (i % 7) * 0.3,
                    "target_count": counts[i, j + 1] if j + 1 < len(years) else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _fold(year: int, y: np.ndarray, **scores: np.ndarray) -> FoldScores:
    f = FoldScores(year, 100, pd.DataFrame({"breaks_to_date": np.zeros(len(y))}), y, None)
    for k, v in scores.items():
        f.score[k] = v
        f.pct[k] = Ecdf(v)(v)
    return f


def test_ecdf_is_mid_rank_and_ranks_nan_last() -> None:
    e = Ecdf([1.0, 2.0, 2.0, 3.0])
    assert e([0.0, 2.0, 5.0, np.nan]).tolist() == [0.0, 0.5, 1.0, 0.0]


def test_rate_calibrator_is_monotone_and_per_km_with_weights() -> None:
    s = np.array([0.1, 0.2, 0.3, 0.4, np.nan])
    y = np.array([0.0, 1.0, 1.0, 3.0, 2.0])
    w = np.array([1.0, 1.0, 2.0, 1.0, 4.0])
    cal = RateCalibrator().fit(s, y, w)
    r = cal.rate(np.array([0.05, 0.25, 0.35, 0.5, np.nan]))
    assert np.all(np.diff(r[:4]) >= 0)
    assert r[-1] == pytest.approx(0.5)  # NaN scores: observed rate of NaN rows, per km


def test_inner_years_look_back_until_enough_breaks() -> None:
    done = list(range(2000, 2015))
    many = dict.fromkeys(done, 5000.0)
    few = dict.fromkeys(done, 100.0)
    assert inner_years(2014, done, many, 3, 3000) == [2011, 2012, 2013]
    assert inner_years(2014, done, few, 3, 3000) == list(range(2004, 2014))  # capped at 10
    assert inner_years(2001, done, few, 3, 3000) == [2000]
    fit, outer = fold_years(list(range(1990, 2010)), 4, many, 3, 3000)
    assert outer == [2005, 2006, 2007, 2008, 2009][-4:]
    assert fit == list(range(2003, 2010))
    with pytest.raises(InputDataError, match="at least 4 labelled years"):
        fold_years([2000, 2001, 2002], 4, many, 3, 3000)


def test_choose_prefers_the_simpler_candidate_on_ties_and_the_better_one_otherwise() -> None:
    y = np.array([0, 0, 0, 1, 3, 0, 0, 2, 0, 0] * 4, dtype=float)
    good = y + np.linspace(0, 0.1, len(y))  # ranks the breaks first
    bad = -y
    folds = [_fold(2000 + k, y, base=good, model=good) for k in range(3)]
    ch = choose(folds, ["model"], ["base"], (0.5,))
    assert ch.pick.name == "base" and ch.pick.family == "baseline"  # a tie goes to the rule
    folds = [_fold(2000 + k, y, base=bad, model=good) for k in range(3)]
    ch = choose(folds, ["model"], ["base"], (0.5,))
    assert ch.pick.name == "model"
    assert ch.means["model"] > ch.means["base"]
    assert choose(folds, ["model"], ["base"], (0.5,), forced="base").pick.name == "base"
    with pytest.raises(InputDataError, match="not a candidate"):
        choose(folds, ["model"], ["base"], (0.5,), forced="nope")


def test_selection_scores_are_the_captures_and_kept_between_overlapping_folds() -> None:
    """The selection score (one ranking for both shares) equals the mean of the two
    captures worked out one at a time, weights and ties included; a cache shared by calls
    on overlapping folds (as the outer years' inner folds overlap) chooses the same and
    holds every (fold, candidate) once."""
    rng = np.random.default_rng(3)
    n = 400
    folds = []
    for k in range(6):
        y = rng.poisson(0.3, n).astype(float)
        w = rng.uniform(0.0, 2.0, n)
        scores = {
            "base": np.round(y + rng.normal(0, 1, n), 1),  # ties
            "model": y * 0.5 + rng.normal(0, 0.5, n),
            "noise": rng.normal(size=n),
        }
        f = _fold(2000 + k, y, **scores)
        f.w = w
        folds.append(f)
        for s in scores.values():
            want = 0.5 * (
                capture_at(y, s, 0.05, w, ties="average")
                + capture_at(y, s, 0.10, w, ties="average")
            )
            assert selection_score(f, s) == want
    cache: dict = {}
    for start in range(4):  # three folds at a time, sliding: each fold seen up to 3 times
        inner = folds[start : start + 3]
        cached = choose(inner, ["model", "noise"], ["base"], (0.5,), cache=cache)
        fresh = choose(inner, ["model", "noise"], ["base"], (0.5,))
        assert cached == fresh
    assert len(cache) == 6 * 5  # 6 folds x (1 baseline, 2 blends, 2 models)


def test_selection_is_nested_it_never_sees_the_outer_year() -> None:
    """A candidate that is perfect on the outer year only must not be chosen for it."""
    y = np.array([0, 1, 0, 2, 0, 0, 1, 0, 0, 3] * 5, dtype=float)
    oracle = y.copy()
    folds = []
    for yr in range(2000, 2008):
        steady = y + 0.01 * np.arange(len(y)) % 3
        folds.append(_fold(yr, y, steady=steady, lucky=oracle if yr == 2007 else -oracle))
    sel = select(
        folds,
        [2006, 2007],
        ["lucky"],
        ["steady"],
        min_years=3,
        min_breaks=0,
        blend_weights=(),
        density_col=None,
        fracs=(0.05, 0.1),
    )
    assert sel.outer[2007].pick.name == "steady"  # chosen on 2004..2006, where lucky is bad
    assert max(sel.outer[2007].inner_years) == 2006
    assert sel.final.pick.name == "steady"
    champ = pd.DataFrame(sel.metrics).query("model == 'champion' and metric == 'capture_5pct'")
    assert sorted(champ["test_year"]) == [2006, 2007]


def test_champion_blend_ranks_by_reference_percentiles_and_calibrates() -> None:
    p = _panel()
    lab = p[p["target_count"].notna()]
    y = lab["target_count"].to_numpy(float)
    champ = ChampionModel(
        "blend",
        [
            ("glm", make_estimator("glm", features=["breaks_last5", "noise"], calibrate=False)),
            ("past", PastBreaksBaseline("breaks_last5")),
        ],
        weights=(0.5, 0.5),
    ).fit(lab, y)
    latest = p[p["year"] == p["year"].max()]
    s = champ.risk_score(latest)
    assert ((s >= 0) & (s <= 1)).all()
    e = champ.expected_breaks(latest)
    # expected breaks follow the ranking (isotonic) and the total is near a year's breaks
    order = np.argsort(s, kind="stable")
    assert np.all(np.diff(e[order]) >= -1e-12)
    assert 0.7 * y.sum() / 11 < e.sum() < 1.3 * y.sum() / 11
    assert np.allclose(champ.break_probability(latest), 1 - np.exp(-e))
    assert set(champ.feature_names_in_) == {"breaks_last5", "noise"}
    assert len(champ.model_members) == 1
    _evaluate_is_the_four_predictions(champ, latest)
    # parameters are kept verbatim: clone gives an unfitted twin
    twin = clone(champ)
    assert twin.get_params()["weights"] == (0.5, 0.5) and not hasattr(twin, "members_")


def test_champion_density_ranks_models_per_km() -> None:
    p = _panel()
    lab = p[p["target_count"].notna()]
    y = lab["target_count"].to_numpy(float)
    model = make_estimator("glm", features=["breaks_last5", "length_km"], calibrate=False)
    champ = ChampionModel("glm", [("glm", model)], density_col="length_km").fit(lab, y)
    latest = p[p["year"] == p["year"].max()]
    member = champ.members_[0][1]
    per_km = member.expected_breaks(latest) / latest["length_km"].to_numpy()
    assert np.allclose(champ.risk_score(latest), per_km)
    e = champ.expected_breaks(latest)
    assert np.allclose(e / latest["length_km"].to_numpy(), champ.expected_rate(latest))
    _evaluate_is_the_four_predictions(champ, latest)


def _evaluate_is_the_four_predictions(champ: ChampionModel, X: pd.DataFrame) -> None:
    """One evaluation of the members gives what each prediction method gives."""
    got = champ.evaluate(X)
    for name, want in (
        ("risk_score", champ.risk_score(X)),
        ("expected_breaks", champ.expected_breaks(X)),
        ("probability", champ.break_probability(X)),
        ("link", champ.link(X)),
    ):
        np.testing.assert_array_equal(getattr(got, name), want)


def test_champion_needs_members_and_weights() -> None:
    p = _panel(n_units=20)
    lab = p[p["target_count"].notna()]
    with pytest.raises(ValueError, match="at least one member"):
        ChampionModel().fit(lab, lab["target_count"])
    with pytest.raises(ValueError, match="needs weights"):
        ChampionModel(
            "x", [("a", PastBreaksBaseline()), ("b", PastBreaksBaseline("breaks_to_date"))]
        ).fit(lab, lab["target_count"])


def test_a_new_candidate_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODEL_CANDIDATES, "glm_strong", "a strongly penalised GLM")
    monkeypatch.setattr(cand_mod, "CANDIDATES", dict(cand_mod.CANDIDATES))
    register_candidate(
        CandidateSpec(
            "glm_strong",
            lambda u, mc: make_estimator("glm", features=list(u.features), alpha=1.0),
        )
    )
    unit = UnitFeatures(("breaks_last5",))
    built = build_candidates(["glm_strong", "boost"], unit, ModelConfig())
    assert list(built) == ["glm_strong", "boost"]
    assert built["glm_strong"].get_params()["alpha"] == 1.0
    with pytest.raises(ValueError, match="unknown model candidate"):
        build_candidates(["nope"], unit, ModelConfig())
    with pytest.raises(ValueError, match="not registered"):
        register_candidate(CandidateSpec("unregistered", lambda u, mc: None))


def test_config_validates_the_selection_settings(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    src = '[[sources]]\nid = "neighbourhoods"\nprofile = "toronto_neighbourhoods_140"\npath = "n.zip"\n'
    bad.write_text(
        src + '[model]\ncandidates = ["boost", "forest"]\nselection_years = 0\n'
        'blend_weights = [0.5, 1.5]\nchampion = ""\n'
    )
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    text = str(exc.value) + " ".join(exc.value.problems)
    for what in ("candidates", "selection_years", "blend_weights", "champion"):
        assert f"[model] {what}" in text, what
    good = tmp_path / "good.toml"
    good.write_text(src + '[model]\ncandidates = ["glm"]\nblend_weights = []\n')
    cfg = load_config(good)
    assert cfg.model.candidates == ("glm",) and cfg.model.blend_weights == ()


def test_max_rows_keeps_every_break_and_stays_unbiased() -> None:
    from twmb_geo.model.estimators import BreakCountRegressor, _sample_rows

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 3))
    y = rng.poisson(np.exp(-3 + X[:, 0])).astype(float)
    keep, w = _sample_rows(y, 3000, 0)
    assert keep is not None and w is not None and len(keep) < 3500
    yt = y[keep]
    assert yt.sum() == y.sum()  # every row with a break kept
    assert (w * (yt == 0)).sum() == pytest.approx((y == 0).sum(), rel=0.1)
    assert _sample_rows(y, 50000, 0) == (None, None)  # small panels untouched
    full = BreakCountRegressor(max_iter=30, calibrate=False).fit(X, y).predict(X)
    sub = BreakCountRegressor(max_iter=30, calibrate=False, max_rows=3000).fit(X, y).predict(X)
    assert sub.sum() == pytest.approx(full.sum(), rel=0.15)
    assert np.corrcoef(full, sub)[0, 1] > 0.9
