"""End to end on a generated city: `twmb run --example synthetic` with pipes and streets."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import ok_json, twmb

import twmb_geo as tw
from twmb_geo.contracts import validate_frame
from twmb_geo.store.duckdb_store import TABLES


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[dict, object]:
    out = tmp_path_factory.mktemp("synthetic")
    doc = ok_json(
        twmb(
            "-q",
            "--out",
            out,
            "run",
            "--example",
            "synthetic",
            "--pipes",
            "1500",
            "--seed",
            "3",
            "--no-model",
            "--no-publish",
            "--no-report",
            "--json",
        )
    )
    return doc, out


def test_every_piece_is_computed(synthetic) -> None:
    doc, out = synthetic
    f = doc["features"]
    assert set(f["units"]) == {"pipe", "street", "cell", "neighbourhood"}
    src = {s["source_id"]: s for s in doc["sources"]}
    for s in src.values():
        assert s["rows_in"] == s["accepted"] + s["quarantined"]
    assert f["units"]["pipe"] == src["pipes"]["accepted"] + src["pipes_abandoned"]["accepted"]
    with tw.open_store(out / "twmb.duckdb", read_only=True) as store:
        for t in (
            "unit_pipe",
            "unit_street",
            "unit_cell",
            "break_links",
            "pipe_cells",
            "pipe_streets",
            "panel",
            "graph_summary",
            "graph_edges",
            "moran_global",
            "lisa",
            "hotspot_persistence",
        ):
            df = store.read(t)
            assert len(df), t
            validate_frame(df, TABLES[t])
        panel = store.query("SELECT unit_type, count(*) AS n FROM panel GROUP BY 1")
        links = store.read("break_links")
        graphs = store.read("graph_summary")
    assert set(panel["unit_type"]) == {"pipe", "street", "cell", "neighbourhood"}
    # every break has one link row per unit type, matched or with a reason
    n_breaks = src["breaks"]["accepted"]
    assert (links.groupby("unit_type").size() == n_breaks).all()
    assert links.loc[links["status"] == "unmatched", "reason"].notna().all()
    assert set(graphs["unit_type"]) == {"pipe", "street", "cell", "neighbourhood"}


def test_match_accuracy_is_reported_against_the_truth(synthetic) -> None:
    doc, out = synthetic
    m = doc["match_accuracy"]
    assert m["breaks"] == doc["synthetic_city"]["breaks"]
    assert m["correct"] <= m["linked"] <= m["ingested"] <= m["breaks"]
    assert m["accuracy"] >= 0.9  # 3 m GPS noise; ambiguity near intersections is the rest
    summary = json.loads((out / "summary.json").read_text())
    assert summary["match_accuracy"] == m


def test_pipe_panel_uses_service_lives(synthetic) -> None:
    _, out = synthetic
    with tw.open_store(out / "twmb.duckdb", read_only=True) as store:
        units = store.read("unit_pipe")
        panel = store.read("panel", "unit_type = 'pipe'")
    life = units.set_index("unit_id")[["install_year", "removal_year"]]
    p = panel.join(life, on="unit_id")
    assert (p["install_year"].isna() | (p["year"] >= p["install_year"])).all()
    assert (p["removal_year"].isna() | (p["year"] < p["removal_year"])).all()
    assert (p["exposure_km"] > 0).all()
    assert pd.api.types.is_float_dtype(p["age_mean"])


@pytest.fixture(scope="module")
def synthetic_model(synthetic) -> tuple[dict, dict, object]:
    """Train, score and simulate on the synthetic store (cheap model settings)."""
    from dataclasses import replace

    from conftest import FAST_MODEL

    _, out = synthetic
    cfg = tw.load_config(out / "synthetic-city" / "twmb.toml", out=out)
    cfg = replace(cfg, model=FAST_MODEL)
    trained = tw.train_models(cfg)
    tw.score_units(cfg)
    sims = tw.simulate_breaks(cfg, horizon=5, n_sims=100, replace_km=10.0, unit_types=["pipe"])
    return trained, sims, cfg


def test_pipe_street_and_cell_models_are_trained(synthetic_model) -> None:
    trained, _, cfg = synthetic_model
    by_type = {m["unit_type"]: m for m in trained.models}
    assert set(by_type) == {"pipe", "street", "cell"}
    card = json.loads((Path(by_type["pipe"]["path"]) / "card.json").read_text())
    assert card["weight"] == "length_km"  # capture by share of pipe length
    assert {"past_breaks_5y", "age", "material_decade", "empirical_bayes"} <= set(
        card["validation"]["forward"]["models"]
    )
    assert {"diameter_mm", "age_mean"} <= set(card["features"])
    with tw.open_store(cfg.store_path, read_only=True) as store:
        rs = store.read("risk_scores", "unit_type = 'pipe' AND is_current")
        n_pipes = store.query(
            "SELECT count(DISTINCT unit_id) AS n FROM panel WHERE unit_type = 'pipe' "
            "AND year = (SELECT max(year) FROM panel) AND exposure_km > 0"
        )["n"].iloc[0]
    assert len(rs) == n_pipes and rs["length_km"].gt(0).all()
    top = rs[rs["tier"] == "very_high"]["length_km"].sum() / rs["length_km"].sum()
    assert top == pytest.approx(0.01, abs=0.01)  # tiers by share of length


def test_pipe_scores_agree_with_the_true_hazard(synthetic_model, synthetic) -> None:
    from scipy.stats import spearmanr

    _, out = synthetic
    _, _, cfg = synthetic_model
    hazard = pd.read_parquet(out / "synthetic-city" / "truth" / "pipe_hazard.parquet")
    with tw.open_store(cfg.store_path, read_only=True) as store:
        rs = store.read("risk_scores", "unit_type = 'pipe' AND is_current")
        units = store.read("unit_pipe")[["unit_id", "asset_id"]]
    year = int(rs["feature_year"].iloc[0])
    h = hazard[hazard["year"] == year].astype({"asset_id": str})  # the latest simulated year
    df = rs.merge(units, on="unit_id").merge(h, on="asset_id")
    assert len(df) > 0.9 * len(rs)
    rho = spearmanr(df["expected_breaks"] / df["length_km"], df["rate"]).statistic
    assert rho > 0.3, rho


def test_renewal_by_km_on_pipes(synthetic_model) -> None:
    _, sims, _ = synthetic_model
    ren = sims.simulations[0]["renewal"]
    assert 0 < ren["km_replaced"] <= 10.0
    assert 0 < ren["expected_breaks_avoided"] < ren["expected_breaks_baseline"]
    assert ren["breaks_avoided_per_km"] > 0


def test_star_on_a_turso_server(synthetic_model, turso_server) -> None:
    """The synthetic city's star schema (pipes, streets, models) on a Turso server (HTTP):
    every table read back with the publish's row counts and checksums."""
    from turso_server import read_current

    from twmb_geo.publish.star import STAR_TABLES
    from twmb_geo.publish.values import table_checksum

    _, _, cfg = synthetic_model
    res = tw.publish_star(cfg, targets=["turso"], turso_url=turso_server.url)
    assert [t["target"] for t in res.targets] == ["turso"]
    assert res.rows["dim_pipe"] > 1000 and res.rows["dim_street_segment"] > 1000
    assert res.rows["fact_risk_score"] > 0 and res.rows["dim_model"] == 5  # 3 + 2 special
    for t in STAR_TABLES:
        got = read_current(turso_server.url, t)
        assert len(got) == res.rows[t] and table_checksum(got) == res.checksums[t], t


def test_star_slicers_on_a_city_with_pipes_and_streets(synthetic_model) -> None:
    """Conformed keys: pipe and street facts follow the cell, neighbourhood and street
    slicers too, and every unit type's totals match the store."""
    from star_slicing import check_partition, check_spatial_slicer, check_year_slicer

    from twmb_geo.core.crs import using_crs
    from twmb_geo.publish import build_star
    from twmb_geo.store.project import project_crs

    _, _, cfg = synthetic_model
    crs = project_crs(cfg)
    with tw.open_store(cfg.store_path, read_only=True) as s, using_crs(crs):
        star = build_star(s)
        assert check_partition(star) == []
        fb = star["fact_break"]
        members = {}
        for unit_type, dim, key, natural in (
            ("neighbourhood", "dim_neighbourhood", "neighbourhood_key", "neighbourhood_code"),
            ("cell", "dim_h3_cell", "cell_key", "h3_index"),
            ("street", "dim_street_segment", "street_key", "unit_id"),
            ("pipe", "dim_pipe", "pipe_key", "unit_id"),
        ):
            ids = star[dim].set_index(key)[natural]
            top = fb.loc[fb[key] > 0, key].value_counts().index[:3]
            members[unit_type] = [ids[k] for k in top]
            assert check_spatial_slicer(star, s, unit_type, members[unit_type]) == []
        years = sorted(set(star["fact_unit_year"]["year"]))
        assert check_year_slicer(star, s, [years[0], years[-1], years[-1] + 1]) == []
    fy = star["fact_unit_year"]
    pipes = fy[fy["unit_type"] == "pipe"]
    assert (pipes["cell_key"] > 0).mean() > 0.95  # pipes carry their cell and neighbourhood
    assert (pipes["neighbourhood_key"] > 0).mean() > 0.95
    assert (pipes["street_key"] > 0).mean() > 0.5  # and, where matched, their street
    streets = fy[fy["unit_type"] == "street"]
    assert (streets["pipe_key"] == -2).all() and (streets["cell_key"] > 0).mean() > 0.95
