"""End to end on a generated city: `twmb run --example synthetic` with pipes and streets."""

from __future__ import annotations

import json

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
