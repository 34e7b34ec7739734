"""The model stage on real Toronto cells: train, registry and card, score, simulate, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import error_text, ok_json, twmb
from conftest import FAST_MODEL, MODEL_TABLES

import twmb_geo as tw
from twmb_geo.config import Config, write_config
from twmb_geo.contracts import validate_frame
from twmb_geo.store.duckdb_store import TABLES


@pytest.fixture
def copy_cfg(bundled_run: dict, bundled_cfg: Config, tmp_path: Path) -> Config:
    """A private copy of the bundled run's output folder (tests here write to it)."""
    out = tmp_path / "out"
    shutil.copytree(bundled_cfg.out_dir, out)
    return replace(bundled_cfg, out=out, store=None)


@pytest.fixture
def config_file(copy_cfg: Config, tmp_path: Path) -> Path:
    """A TOML config for the CLI with the cheap test model settings."""
    return write_config(copy_cfg, tmp_path / "twmb.toml")


def test_run_trains_scores_and_simulates_toronto_cells(
    bundled_run: dict, bundled_cfg: Config
) -> None:
    m = bundled_run["model"]
    assert [x["unit_type"] for x in m["models"]] == ["cell"]
    head = m["models"][0]
    for k in ("forward_capture_5pct", "spatial_capture_5pct", "random_capture_5pct"):
        assert 0.05 < head[k] < 0.6, (k, head[k])
    assert head["best_baseline"] in ("past_breaks_5y", "empirical_bayes", "smoothed_5y")
    assert head["random_cv_optimism_5pct"] == pytest.approx(
        head["random_capture_5pct"] - head["forward_capture_5pct"]
    )
    assert head["champion_family"] in ("model", "baseline", "blend")
    assert head["statement"].startswith(("The published ranking", "No learned ranking"))
    sc = m["scores"][0]
    assert sc["units"] == 6024 and sc["feature_year"] == 2016 and sc["target_year"] == 2017
    assert sum(t["units"] for t in sc["tiers"].values()) == 6024
    with tw.open_store(bundled_cfg.store_path, read_only=True) as store:
        frames = {t: store.read(t) for t in MODEL_TABLES}
    for t, df in frames.items():
        assert len(df), t
        validate_frame(df, TABLES[t])
    rs = frames["risk_scores"]
    assert rs["is_current"].all() and rs["unit_id"].is_unique
    assert sorted(rs["rank"]) == list(range(1, 6025))
    assert rs.sort_values("rank")["risk_score"].is_monotonic_decreasing
    # the default tiers hold ~1 / 4 / 15 / 80 % of the cells
    shares = rs["tier"].value_counts(normalize=True)
    assert shares["very_high"] == pytest.approx(0.01, abs=0.002)
    assert shares["low"] == pytest.approx(0.80, abs=0.01)
    assert rs["drivers"].str.len().gt(0).all()
    cv = frames["cv_metrics"]
    assert set(cv["scheme"]) == {"forward", "spatial", "spatiotemporal", "random"}
    assert {"champion", "boost", "past_breaks_5y", "empirical_bayes"} <= set(cv["model"])
    fw = cv[(cv["scheme"] == "forward") & (cv["metric"] == "capture_5pct")]
    assert sorted(fw["test_year"].unique()) == [2013, 2014, 2015]
    sim = frames["simulation_city"]
    base = sim[sim["scenario"] == "baseline"].sort_values("horizon")
    assert list(base["horizon"]) == list(range(1, 11))
    assert (base["p10"] <= base["p50"]).all() and (base["p50"] <= base["p90"]).all()
    assert base["expected"].iloc[0] == pytest.approx(rs["expected_breaks"].sum(), rel=1e-6)
    ren = frames["renewal"].iloc[0]
    assert ren["replace_km"] is None or np.isnan(ren["replace_km"])  # cells: no length
    assert ren["units_replaced"] == FAST_MODEL.renewal_units
    assert 0 < ren["expected_breaks_avoided"] <= ren["expected_breaks_baseline"]


def test_card_records_data_hashes_schemes_and_limits(
    bundled_run: dict, bundled_cfg: Config
) -> None:
    head = bundled_run["model"]["models"][0]
    folder = Path(head["path"])
    card = json.loads((folder / "card.json").read_text())
    with tw.open_store(bundled_cfg.store_path, read_only=True) as store:
        inputs = store.query("SELECT sha256 FROM run_inputs")
    assert {i["sha256"] for i in card["data"]["inputs"]} <= set(inputs["sha256"])
    assert card["data"]["inputs"], "data hashes missing"
    assert card["training_window"]["feature_years"] == [1990, 2015]
    assert card["training_window"]["target_years"] == [1991, 2016]
    assert set(card["validation"]) == {"forward", "spatial", "spatiotemporal", "random"}
    for block in card["validation"].values():
        m = block["models"]["champion"]["capture_5pct"]
        assert m["n_folds"] == block["folds"] and m["std"] >= 0
    assert {"random_minus_spatial", "random_minus_forward"} <= set(
        card["random_cv_optimism"]["capture_5pct"]
    )
    assert "past_breaks_5y" in card["lift"]["forward"]
    assert card["importance"] and {r["metric"] for r in card["importance"]} >= {"capture_5pct"}
    assert card["forward"]["capture_curves"]["champion"][0] == 0.0
    champ = card["champion"]
    assert champ["name"] == head["champion"] and champ["statement"]
    o = champ["outer"]
    assert o["years"] == sorted(int(y) for y in o["picks"])
    assert set(o["baselines"]) >= {"past_breaks_5y", "empirical_bayes"}
    assert 0 <= o["wins"] <= o["n_years"] == len(o["years"])
    assert card["forward"]["calibration"]
    assert len(card["limitations"]) >= 4
    md = (folder / "card.md").read_text()
    for section in (
        "# Model card",
        "Leakage guard",
        "Random-CV optimism",
        "Validation schemes",
        "Permutation importance",
        "## Data",
        "## Limitations",
    ):
        assert section in md, section
    artefact = (folder / "model.skops").read_bytes()
    assert card["artefact"]["sha256"] == hashlib.sha256(artefact).hexdigest()
    assert card["artefact"]["bytes"] == len(artefact) > 0
    assert not (folder / "model.joblib").exists()
    assert card["artefact"]["sha256"] in md


def test_card_records_the_threads(bundled_run: dict) -> None:
    folder = Path(bundled_run["model"]["models"][0]["path"])
    card = json.loads((folder / "card.json").read_text())
    cores = len(os.sched_getaffinity(0))  # [compute] threads left out: the cores available
    each = min(cores, int(os.environ.get("OMP_NUM_THREADS") or cores))  # ... capped by it
    assert card["compute"] == {
        "threads": cores,
        "n_jobs": 1,  # FAST_MODEL: the folds in this process
        "threads_per_process": each,
        "limited": True,
    }
    md = (folder / "card.md").read_text()
    assert f"{cores} threads: folds in the main process, {each} thread" in md


def _cheap(cfg: Config) -> Config:
    """One learned candidate validated forward only: a retraining in seconds."""
    return replace(cfg, model=replace(cfg.model, candidates=("glm",), schemes=("forward",)))


def test_retraining_the_same_data_gives_the_same_version(copy_cfg: Config) -> None:
    cfg = _cheap(copy_cfg)
    version = tw.train_models(cfg).models[0]["model_version"]
    with tw.open_store(cfg.store_path, read_only=True) as store:
        n_cv = store.count("cv_metrics")
        models = store.read("models")["model_version"].tolist()  # the bundled run's and this
    assert len(models) == 2 and version in models
    res = tw.train_models(cfg)
    assert res.models[0]["model_version"] == version
    with tw.open_store(cfg.store_path, read_only=True) as store:
        assert sorted(store.read("models")["model_version"]) == sorted(models)
        assert store.count("cv_metrics") == n_cv  # replaced, not appended


def test_large_unit_types_train_on_a_stratified_sample_and_score_every_unit(
    copy_cfg: Config,
) -> None:
    """More units than ``max_train_units``: training and validation read only a stratified
    sample of units (whole histories), the card says so, and scoring ranks every unit."""
    cfg = replace(
        copy_cfg, model=replace(copy_cfg.model, max_train_units=1500, schemes=("forward",))
    )
    res = tw.train_models(cfg)
    card = json.loads((Path(res.models[0]["path"]) / "card.json").read_text())
    window = card["training_window"]
    assert window["sample"]["units"] == 1500 and window["sample"]["of"] == 6024
    assert window["units"] == 1500  # cells: every sampled unit has labelled rows
    with tw.open_store(cfg.store_path, read_only=True) as store:
        broke = store.query(
            "SELECT unit_id, bool_or(breaks > 0) AS b FROM panel WHERE unit_type = 'cell' "
            "GROUP BY unit_id"
        )
    city_share = broke["b"].mean()
    assert window["breaks"] > 0 and 0.1 < city_share < 0.9
    assert any("stratified sample of 1,500 of 6,024 units" in x for x in card["limitations"])
    scored = tw.score_units(cfg).scores[0]
    assert scored["units"] == 6024 and scored["model_version"] == res.models[0]["model_version"]


def test_rescoring_keeps_history_and_flags_the_current_run(copy_cfg: Config) -> None:
    first = tw.score_units(copy_cfg)
    with tw.open_store(copy_cfg.store_path, read_only=True) as store:
        rs = store.read("risk_scores")
    assert rs["run_id"].nunique() == 2
    cur = rs[rs["is_current"]]
    assert set(cur["run_id"]) == {first.run_id} and len(cur) == 6024
    old = rs[~rs["is_current"]].sort_values("unit_id").reset_index(drop=True)
    new = cur.sort_values("unit_id").reset_index(drop=True)
    pd.testing.assert_series_equal(old["risk_score"], new["risk_score"])  # deterministic


def test_simulation_is_seeded(copy_cfg: Config) -> None:
    a = tw.simulate_breaks(copy_cfg, horizon=3, n_sims=100, seed=7)
    b = tw.simulate_breaks(copy_cfg, horizon=3, n_sims=100, seed=7)
    assert a.simulations[0]["city"] == b.simulations[0]["city"]
    with tw.open_store(copy_cfg.store_path, read_only=True) as store:
        sim = store.read("simulation_city")
    assert sim.groupby("run_id")["is_current"].first().sum() == 1


def test_cli_train_score_simulate_models(copy_cfg: Config, tmp_path: Path) -> None:
    config_file = write_config(_cheap(copy_cfg), tmp_path / "cheap.toml")
    c = ["-q", "--config", config_file, "--out", copy_cfg.out_dir]
    doc = ok_json(twmb(*c, "train", "--json"))
    version = doc["models"][0]["model_version"]
    listed = ok_json(twmb(*c, "models", "list", "--json"))["models"]
    versions = [m["model_version"] for m in listed]  # the bundled run's model and this one
    assert len(versions) == len(set(versions)) == 2 and version in versions
    card = ok_json(twmb(*c, "models", "show", version, "--json"))["card"]
    assert card["model_version"] == version
    md = twmb(*c, "models", "show", version)
    assert md.exit_code == 0 and md.stdout.startswith(f"# Model card: {version}")
    sc = ok_json(twmb(*c, "score", "--top", "3", "--json"))["scores"][0]
    assert len(sc["top"]) == 3 and sc["top"][0]["rank"] == 1
    sim = ok_json(
        twmb(*c, "simulate", "--horizon", "4", "--sims", "50", "--replace-units", "25", "--json")
    )["simulations"][0]
    assert sim["horizon"] == 4 and len(sim["city"]) == 4
    assert sim["renewal"]["units_replaced"] == 25
    human = twmb(*c, "simulate", "--horizon", "2", "--sims", "20")
    assert human.exit_code == 0 and "breaks over the next 2 years" in human.stdout


def test_cli_model_errors_are_clean(config_file: Path, copy_cfg: Config, tmp_path: Path) -> None:
    c = ["-q", "--config", config_file, "--out", copy_cfg.out_dir]
    msg = error_text(twmb(*c, "models", "show", "cell-poisson-nope"), 3)
    assert "cell-poisson-nope" in msg and "twmb models list" in msg
    msg = error_text(twmb(*c, "simulate", "--replace-km", "10"), 3)
    assert "no length" in msg and "--replace-units" in msg
    msg = error_text(twmb(*c, "score", "--model", "nope"), 3)
    assert "nope" in msg
    empty = ["-q", "--out", tmp_path / "empty"]
    tw.ingest_sources(tw.default_config(tmp_path / "empty"), ["neighbourhoods"])
    msg = error_text(twmb(*empty, "train"), 5)
    assert "twmb features" in msg
    msg = error_text(twmb(*empty, "score"), 5)
    assert "panel" in msg
