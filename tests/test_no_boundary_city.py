"""A city with breaks, pipes and streets but no neighbourhood layer and no street node ids.

A small generated city written in the City's formats, then stripped: no neighbourhoods
source, no ``service_area_source``, the centreline read through a profile without from/to
node columns. ``twmb run`` must go through (ingest, features, models, star, maps, report)
with the service area derived from the data and the neighbourhood unit simply absent.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import tomli_w
from cli_helpers import ok_json, twmb

import twmb_geo as tw
from twmb_geo.synth import make_city, write_city

STREETS_PROFILE = """\
[[profile]]
id = "plain_centreline"
kind = "streets"
format = "geojson"
description = "A centreline without intersection ids"
crs = "EPSG:4326"
columns = { centreline_id = "CENTRELINE_ID", linear_name_full = "LINEAR_NAME_FULL" }
"""


def _strip_city(folder: Path) -> Path:
    """Remove the neighbourhoods, the weather and the street node ids; cheap settings."""
    streets = folder / "centreline_4326.geojson"
    doc = json.loads(streets.read_text())
    for f in doc["features"]:
        for k in ("FROM_INTERSECTION_ID", "TO_INTERSECTION_ID"):
            f["properties"].pop(k, None)
    streets.write_text(json.dumps(doc))
    (folder / "profiles.toml").write_text(STREETS_PROFILE)
    cfg = tomllib.loads((folder / "twmb.toml").read_text())
    cfg["project"].pop("service_area_source", None)
    cfg["sources"] = [s for s in cfg["sources"] if s["id"] not in ("neighbourhoods", "weather")]
    for s in cfg["sources"]:
        if s["id"] == "streets":
            s["profile"] = "plain_centreline"
    cfg["profiles"] = {"files": ["profiles.toml"]}
    cfg["features"].update(esda_permutations=19, study_start=2006)
    cfg["model"].update(
        unit_types=["pipe", "street", "cell"],
        schemes=["forward"],
        forward_years=2,
        max_iter=15,
        calibrate=False,
        importance_repeats=1,
        importance_max_rows=500,
        n_sims=20,
        unit_horizons=[1, 5],
        horizon=5,
    )
    path = folder / "twmb.toml"
    path.write_text(tomli_w.dumps(cfg))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    folder = tmp_path_factory.mktemp("noboundary") / "city"
    write_city(make_city(n_pipes=100, seed=5), folder)
    config = _strip_city(folder)
    doc = ok_json(twmb("-q", "--config", config, "run", "--json"))
    return doc, folder / "out"


def test_run_reconciles_without_boundary_or_node_ids(run) -> None:
    doc, out = run
    src = {s["source_id"]: s for s in doc["sources"]}
    assert "neighbourhoods" not in src
    for s in src.values():
        assert s["rows_in"] == s["accepted"] + s["quarantined"]
    notes = doc["warnings"]
    assert any("segment ends had no from/to node id" in w for w in notes), notes
    assert any("service area derived from the data (h3" in w for w in notes), notes
    assert any(w.startswith("no neighbourhood layer") for w in notes), notes
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["service_area"]["method"] == "h3"


def test_store_holds_derived_nodes_and_the_derived_area(run) -> None:
    _, out = run
    with tw.open_store(out / "twmb.duckdb", read_only=True) as store:
        seg = store.read("street_segments")
        sa = store.read("service_area")
        units = set(store.query("SELECT DISTINCT unit_type FROM panel")["unit_type"])
        n_nb = store.count("unit_neighbourhood")
        graphs = store.read("graph_summary")
    assert seg["from_node"].notna().all() and seg["to_node"].notna().all()
    assert set(seg["node_source"]) == {"derived"}
    assert sa[["source_id", "method"]].values.tolist() == [["(derived)", "h3"]]
    assert units == {"pipe", "street", "cell"} and n_nb == 0
    street = graphs[(graphs["unit_type"] == "street") & (graphs["graph"] == "adj")]
    assert street["n_edges"].iloc[0] > 0  # the derived nodes connect the network


def test_outputs_exist(run) -> None:
    doc, out = run
    assert {m["unit_type"] for m in doc["model"]["models"]} == {"pipe", "street", "cell"}
    for t in ("dim_neighbourhood", "dim_street_segment", "fact_risk_score", "fact_break"):
        assert (out / "star" / "parquet" / f"{t}.parquet").is_file(), t
    assert (out / "maps" / "twmb_map.html").is_file()
    assert list((out / "maps" / "png").glob("*.png"))
    report = (out / "report" / "report.md").read_text()
    assert "No neighbourhood layer" in report
    assert "| neighbourhood |" not in report  # no empty neighbourhood column in the rankings
