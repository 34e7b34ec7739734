"""Model data, cross-validation, leakage guard and the ``[model]`` config section."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import pytest
from conftest import FAST_MODEL
from distributed import Client

from twmb_geo.config import ModelConfig, default_config, load_config, write_config
from twmb_geo.core.cluster import ClusterSpec, open_client
from twmb_geo.core.compute import ThreadPlan
from twmb_geo.errors import ConfigError, InputDataError
from twmb_geo.model.champion import ChampionModel
from twmb_geo.model.reporting import headline, summarise_cv
from twmb_geo.model.training import (
    ModelData,
    _score_drop,
    cross_validate,
    fit_final,
    model_data,
    model_estimators,
    permutation_importance,
)

CHEAP = FAST_MODEL


def _cells(n: int) -> list[str]:
    centre = h3i.latlng_to_cell(43.7, -79.4, 9)
    ring = sorted(h3i.grid_disk(centre, 20))[:n]
    return [h3i.int_to_str(c) for c in ring]


def _panel(n_units: int = 400, years: int = 10, seed: int = 0) -> pd.DataFrame:
    """Cells whose break rate is a fixed per-cell level: history predicts the future."""
    rng = np.random.default_rng(seed)
    cells = _cells(n_units)
    level = rng.gamma(0.6, 0.4, n_units)
    counts = rng.poisson(level[:, None], (n_units, years + 1)).astype(float)
    rows = []
    for i, c in enumerate(cells):
        for t in range(years):
            past = counts[i, : t + 1]
            rows.append(
                {
                    "unit_type": "cell",
                    "unit_id": c,
                    "year": 2000 + t,
                    "history_years": t + 1,
                    "breaks": past[-1],
                    "breaks_last5": past[-5:].sum(),
                    "breaks_to_date": past.sum(),
                    "decayed": float((past * 0.7 ** np.arange(t, -1, -1)).sum()),
                    "exposure_km": np.nan,
                    "age_mean": np.nan,
                    "target_count": counts[i, t + 1] if t < years - 1 else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _units(panel: pd.DataFrame) -> pd.DataFrame:
    ids = panel["unit_id"].unique()
    u = pd.DataFrame({"unit_id": ids})
    for c in (
        "pipe_km",
        "street_km",
        "mean_install_year",
        *(f"pipe_km_{g}" for g in ("ci", "di", "pvc", "ac", "steel", "concrete")),
    ):
        u[c] = np.nan
    return u


@pytest.fixture(scope="module")
def md() -> ModelData:
    p = _panel()
    return model_data(p, _units(p), "cell", h3_resolution=9)


def test_model_data_picks_features_and_baselines(md: ModelData) -> None:
    assert {"breaks_last5", "decayed", "breaks_to_date"} <= set(md.features)
    assert "exposure_km" not in md.features  # all null
    assert "year" not in md.features and "target_count" not in md.features
    assert set(md.baselines) == {"past_breaks_5y", "empirical_bayes"}  # no ages for cells
    assert any("age baseline" in n for n in md.notes)
    assert md.weight_col is None
    assert md.latest_year == 2009 and len(md.latest) == 400
    assert md.labelled["target_count"].notna().all()


def test_cross_validation_covers_every_scheme_and_model(md: ModelData) -> None:
    cv = cross_validate(md, CHEAP, h3_resolution=9)
    m = cv.metrics
    assert set(m["scheme"]) == {"forward", "spatial", "spatiotemporal", "random"}
    baselines = {"past_breaks_5y", "empirical_bayes", "smoothed_5y"} & set(md.baselines)
    assert set(m["model"]) == {"champion", *CHEAP.candidates, *md.baselines}
    # the other schemes validate the champion beside the baselines only
    assert set(m.loc[m["scheme"] != "forward", "model"]) == {"champion", *md.baselines}
    assert {"past_breaks_5y", "empirical_bayes"} <= baselines
    fw = m[
        (m["scheme"] == "forward") & (m["model"] == "champion") & (m["metric"] == "capture_5pct")
    ]
    assert sorted(fw["test_year"]) == [2006, 2007, 2008]  # the last 3 labelled years
    # time-aware: spatial and random folds are scored on the forward test years only
    lab = md.labelled
    in_era = int(lab["year"].isin([2006, 2007, 2008]).sum())
    for scheme in ("spatial", "random"):
        rows = m[(m["scheme"] == scheme) & (m["model"] == "champion") & (m["metric"] == "n")]
        assert rows["value"].sum() == in_era, scheme
    # nested: each outer year's champion was chosen on earlier fold years only
    for year, choice in cv.selection.outer.items():
        assert choice.inner_years and max(choice.inner_years) < year
    # forward training rows are strictly earlier years
    assert (fw.sort_values("test_year")["n_train"].diff().dropna() > 0).all()
    summary = summarise_cv(m)
    h = headline(summary, list(md.baselines))
    assert h["forward_capture_5pct"] > 0.1  # history predicts the fixed levels
    assert h["best_baseline"] in md.baselines
    assert cv.warnings == []  # an honest model raises no leakage warning
    assert len(cv.forward_totals) == 3
    assert set(cv.importance["metric"]) <= {"roc_auc", "capture_5pct"}
    assert cv.importance.groupby("metric")["rank"].min().eq(1).all()


def test_folds_in_worker_processes_give_the_same_validation(md: ModelData) -> None:
    one = cross_validate(md, CHEAP, h3_resolution=9)
    two = cross_validate(md, replace(CHEAP, n_jobs=2), h3_resolution=9)
    pd.testing.assert_frame_equal(one.metrics, two.metrics)
    pd.testing.assert_frame_equal(one.importance, two.importance)
    assert one.selection.outer == two.selection.outer
    assert one.champion == two.champion


def _held_after_release(client: Client, timeout: float = 15.0) -> dict[str, int]:
    """How many keys each worker holds once the release has reached them: the scheduler
    tells workers to free a cancelled key over its own stream, so ``client.run`` can
    arrive first; wait (bounded) for every worker to have dropped it."""
    deadline = time.monotonic() + timeout
    while True:
        held: dict[str, int] = client.run(lambda dask_worker: len(dask_worker.data))
        if set(held.values()) == {0} or time.monotonic() > deadline:
            return held
        time.sleep(0.1)


def test_folds_on_a_cluster_give_the_same_validation(md: ModelData) -> None:
    """The folds as tasks on a Dask LocalCluster of two workers (the labelled rows sent to
    each once): the same metrics, importance, forward predictions, champion and final model
    as in this process; the rows are released from the workers afterwards."""
    mc = replace(CHEAP, n_jobs=1)
    here = cross_validate(md, mc, h3_resolution=9, threads=1)
    with open_client(ClusterSpec("local", workers=2, worker_memory="2GiB")) as client:
        there = cross_validate(md, mc, h3_resolution=9, threads=1, client=client, final=True)
        held = _held_after_release(client)
    assert set(held.values()) == {0}
    pd.testing.assert_frame_equal(there.metrics, here.metrics)
    pd.testing.assert_frame_equal(there.importance, here.importance)
    pd.testing.assert_frame_equal(there.forward_predictions, here.forward_predictions)
    assert there.selection.outer == here.selection.outer
    assert there.champion == here.champion
    assert here.final is None and there.final is not None
    # the final fit made on a worker beside the folds is the one fitted here
    a, b = fit_final(md, mc, here, threads=1), fit_final(md, mc, there, threads=1)
    assert b is there.final
    np.testing.assert_array_equal(a.expected_breaks(md.latest), b.expected_breaks(md.latest))
    np.testing.assert_array_equal(a.link(md.latest), b.link(md.latest))


def test_same_model_with_one_thread_and_with_two(md: ModelData) -> None:
    """``[compute] threads`` 1 (the folds in this process, one thread) and 2 (two fold
    workers of one thread each) validate, choose and fit the same model."""
    mc = replace(CHEAP, n_jobs=2)
    one = cross_validate(md, mc, h3_resolution=9, threads=1)
    two = cross_validate(md, mc, h3_resolution=9, threads=2, final=True)
    assert one.plan == ThreadPlan(threads=1, n_jobs=1, per_process=1)
    assert two.plan == ThreadPlan(threads=2, n_jobs=2, per_process=1)
    pd.testing.assert_frame_equal(one.metrics, two.metrics)
    pd.testing.assert_frame_equal(one.importance, two.importance)
    pd.testing.assert_frame_equal(one.forward_predictions, two.forward_predictions)
    assert one.champion == two.champion
    a, b = fit_final(md, mc, one, threads=1), fit_final(md, mc, two, threads=2)
    np.testing.assert_array_equal(a.expected_breaks(md.latest), b.expected_breaks(md.latest))


def test_permutation_importance_scores_the_stacked_repeats_as_one_at_a_time(
    md: ModelData,
) -> None:
    """A feature's repeats scored in one call of stacked rows: the same drops as a copy of
    the test rows permuted and scored per repeat (the same draws of ``rng``)."""
    lab = md.labelled
    learned = [n for n, e in model_estimators(md, CHEAP).items() if n not in md.baselines]
    member = model_estimators(md, CHEAP)[learned[0]]
    model = ChampionModel(members=[(learned[0], member)]).fit(lab, lab["target_count"])
    test = lab.iloc[::3].reset_index(drop=True)
    got = permutation_importance(model, test, md, 3, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    y, base = test["target_count"].to_numpy(dtype=float), model.risk_score(test)
    want = []
    for feat in model.feature_names_in_:
        for r in range(3):
            B = test.copy()
            B[feat] = test[feat].to_numpy()[rng.permutation(len(test))]
            for metric, drop in _score_drop(y, None, base, model.risk_score(B)).items():
                want.append({"feature": str(feat), "metric": metric, "repeat": r, "drop": drop})
    assert len(model.feature_names_in_) > 3
    pd.testing.assert_frame_equal(got, pd.DataFrame(want))
    assert permutation_importance(model, test, md, 0, np.random.default_rng(7)).empty


def test_leaky_feature_trips_the_guard() -> None:
    p = _panel(seed=1)
    p["decayed"] = p["target_count"].fillna(0) * 10 + p["breaks"]  # the future, leaked
    md = model_data(p, _units(p), "cell", h3_resolution=9)
    cv = cross_validate(
        md,
        ModelConfig(schemes=("forward",), forward_years=2, max_iter=20, importance_repeats=0),
        h3_resolution=9,
    )
    assert cv.warnings, "a leaked target must warn"
    assert all(w.startswith("forward: possible leakage") for w in cv.warnings)
    assert any("ROC AUC" in w for w in cv.warnings)


def test_too_few_years_is_a_clear_error() -> None:
    p = _panel(years=3)
    md = model_data(p, _units(p), "cell", h3_resolution=9)
    with pytest.raises(InputDataError, match="at least 4 labelled years"):
        cross_validate(md, CHEAP, h3_resolution=9)


def test_fit_final_uses_every_labelled_row(md: ModelData) -> None:
    cv = cross_validate(md, replace(CHEAP, schemes=("forward",)), h3_resolution=9)
    m = fit_final(md, CHEAP, cv)
    assert m.name == cv.champion.name
    assert set(m.feature_names_in_) <= set(md.rows.columns)
    p = m.break_probability(md.latest)
    assert ((p >= 0) & (p <= 1)).all()
    e = m.expected_breaks(md.latest)
    # calibrated out of time: next year's city total is near the recent years' totals
    recent = md.labelled.groupby("year")["target_count"].sum().tail(3).mean()
    assert 0.5 * recent < e.sum() < 2.0 * recent


def test_model_config_round_trips_through_toml(tmp_path: Path) -> None:
    from dataclasses import replace

    cfg = default_config(tmp_path / "out")
    mc = ModelConfig(
        kind="hgb", tiers=(("top", 90.0), ("rest", 0.0)), unit_horizons=(1, 3), horizon=3
    )
    path = write_config(replace(cfg, model=mc), tmp_path / "twmb.toml")
    assert load_config(path).model == mc


def test_bad_model_section_lists_every_problem(tmp_path: Path) -> None:
    cfg = default_config(tmp_path / "out")
    path = write_config(cfg, tmp_path / "twmb.toml")
    text = path.read_text().replace('kind = "poisson"', 'kind = "xgboost"')
    text = text.replace("spatial_folds = 5", "spatial_folds = 1")
    text = text.replace("horizon = 10", "horizon = 80")
    text = text.replace("n_jobs = 2", "n_jobs = 0")
    text = text.replace("[model]", "[model]\nbogus = 1")
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value) + " ".join(exc.value.problems)
    for needle in (
        "kind must be one of",
        "spatial_folds must be an integer >= 2",
        "horizon must be at most 50",
        "n_jobs must be an integer >= 1, or -1 for one per core",
        "unknown keys ['bogus']",
    ):
        assert needle in msg, needle
