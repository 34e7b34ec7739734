"""Config validation: the settings the stages rely on are checked when the config is read."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import twmb_geo as tw
from twmb_geo.config import (
    CV_SCHEMES,
    FeatureConfig,
    GraphConfig,
    ModelConfig,
    config_schema,
)
from twmb_geo.core.model_kinds import MODEL_KINDS
from twmb_geo.core.units import UNIT_TYPES, unit_type_names


@pytest.mark.parametrize("bad", [0, -5, True])
def test_esda_permutations_must_be_a_positive_integer(tmp_path: Path, bad: object) -> None:
    cfg = tw.default_config(tmp_path / "out")
    path = tmp_path / "twmb.toml"
    tw.write_config(replace(cfg, features=replace(cfg.features, esda_permutations=bad)), path)
    with pytest.raises(tw.ConfigError) as err:
        tw.load_config(path)
    assert any("esda_permutations must be an integer >= 1" in p for p in err.value.problems)


def test_model_unit_types_come_from_the_registry(tmp_path: Path) -> None:
    cfg = tw.default_config(tmp_path / "out")
    assert cfg.model.unit_types == unit_type_names(modelled=True) == ("pipe", "street", "cell")
    path = tmp_path / "twmb.toml"
    tw.write_config(replace(cfg, model=replace(cfg.model, unit_types=("cell", "zone"))), path)
    with pytest.raises(tw.ConfigError) as err:
        tw.load_config(path)
    assert any(
        "'zone' is not a unit type (pipe, street, cell, neighbourhood)" in p
        for p in err.value.problems
    )


SOURCE = (
    '[[sources]]\nid = "neighbourhoods"\nprofile = "toronto_neighbourhoods_140"\npath = "n.zip"\n'
)


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "twmb.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(tw.ConfigError) as err:
        tw.load_config(path)
    assert "twmb.toml is invalid" in str(err.value)
    return list(err.value.problems)


def test_schema_is_draft_2020_12_with_enums_from_the_registries() -> None:
    schema = config_schema()
    Draft202012Validator.check_schema(schema)
    model = schema["properties"]["model"]["properties"]
    assert model["unit_types"]["items"]["enum"] == list(UNIT_TYPES)
    assert model["kind"]["enum"] == list(MODEL_KINDS)
    assert model["schemes"]["items"]["enum"] == list(CV_SCHEMES)
    assert set(model) == set(ModelConfig.__dataclass_fields__)
    assert set(schema["properties"]["features"]["properties"]) == set(
        FeatureConfig.__dataclass_fields__
    )
    assert set(schema["properties"]["graphs"]["properties"]) == set(
        GraphConfig.__dataclass_fields__
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('sources = "abc"\n', "sources must be an array of tables ([[sources]]), got 'abc'"),
        ("project = 5\n" + SOURCE, "[project] must be a table, got 5"),
        ("features = 3\n" + SOURCE, "[features] must be a table, got 3"),
        (
            '[profiles]\nfiles = "x"\n\n' + SOURCE,
            "[profiles] files must be a list of paths, got 'x'",
        ),
        (
            SOURCE + 'enabled = "false"\n',
            "[[sources]] #1 (neighbourhoods) enabled must be true or false, got 'false'",
        ),
        (
            SOURCE + 'columns = "x"\n',
            "[[sources]] #1 (neighbourhoods) has unknown keys ['columns']",
        ),
        (
            "[project]\nh3_resolution = true\n\n" + SOURCE,
            "h3_resolution must be an integer 0..15, got True",
        ),
        (
            "[features]\nesda_permutations = 9.0\n\n" + SOURCE,
            "esda_permutations must be an integer >= 1, got 9.0",
        ),
        (
            "[graphs]\nneighbourhood_gap_m = inf\n\n" + SOURCE,
            "neighbourhood_gap_m must be a number >= 0, got inf",
        ),
        ("[model]\nlearning_rate = nan\n\n" + SOURCE, "learning_rate must be in (0, 1], got nan"),
        (
            '[project]\ntoday = "2026-13-01"\n\n' + SOURCE,
            "today must be a date (YYYY-MM-DD), got '2026-13-01'",
        ),
        ("[extra]\n" + SOURCE, "unknown sections ['extra']; allowed: project, sources"),
        ("[project]\n", "no [[sources]] declared"),
        ("sources = []\n", "no [[sources]] declared"),
        ('[[sources]]\nid = "a"\nprofile = ""\n', "[[sources]] #1 is missing ['profile', 'path']"),
    ],
)
def test_schema_problems(tmp_path: Path, text: str, problem: str) -> None:
    problems = problems_of(tmp_path, text)
    assert any(problem in p for p in problems), problems


def test_every_problem_in_one_error(tmp_path: Path) -> None:
    text = (
        '[project]\nh3_resolution = 6\ncolour = "blue"\n\n'
        "[features]\nparent_resolution = 7\nstudy_start = 2010\nstudy_end = 2000\n\n"
        '[model]\nhorizon = 3\nkind = "magic"\nunit_types = ["cell", "zone"]\n'
        "tiers = { high = 50, low = 50 }\n\n" + SOURCE + "\n" + SOURCE
    )
    problems = problems_of(tmp_path, text)
    for expected in (
        "[project] has unknown keys ['colour']",
        "[features] parent_resolution (7) must not be finer than h3_resolution (6)",
        "[features] study_start 2010 is after study_end 2000",
        f"[model] kind must be one of {list(MODEL_KINDS)}, got 'magic'",
        "[model] unit_types: 'zone' is not a unit type (pipe, street, cell, neighbourhood)",
        "[model] tiers need one tier starting at 0 so every unit gets one",
        "[model] tiers percentiles must differ",
        "[model] unit_horizons must be integers in 1..horizon, got 5",
        "[[sources]] #2: source id 'neighbourhoods' is used twice",
    ):
        assert any(expected in p for p in problems), (expected, problems)
    assert len(problems) == len(set(problems))


def test_tiers_out_of_range_is_one_problem(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "[model.tiers]\nhigh = 150\nlow = -1\n\n" + SOURCE)
    assert problems == [
        "[model] tiers percentiles must be numbers in 0..100, got {'high': 150, 'low': -1}"
    ]


def test_round_trip_keeps_every_setting(tmp_path: Path) -> None:
    cfg = tw.default_config(tmp_path / "out")
    cfg = replace(
        cfg,
        today=dt.date(2026, 11, 25),
        features=replace(cfg.features, study_start=1995, esda_permutations=99),
        model=replace(cfg.model, kind="hgb", horizon=12, tiers=(("top", 90.0), ("rest", 0.0))),
        graphs=replace(cfg.graphs, pipe_t_junctions=False, cell_knn=4),
        sources=(*cfg.sources[:-1], replace(cfg.sources[-1], enabled=False)),
    )
    path = tw.write_config(cfg, tmp_path / "twmb.toml")
    loaded = tw.load_config(path)
    assert loaded.to_toml() == cfg.to_toml()
    assert loaded.today == dt.date(2026, 11, 25) and loaded.sources == cfg.sources
    assert isinstance(loaded.graphs.neighbourhood_gap_m, float)


def test_service_area_source_is_optional(tmp_path: Path) -> None:
    path = tmp_path / "twmb.toml"
    path.write_text(
        '[[sources]]\nid = "b"\nprofile = "toronto_breaks_csv"\npath = "b.csv"\n', encoding="utf-8"
    )
    cfg = tw.load_config(path)
    assert cfg.service_area_source is None and cfg.service_area == "auto"
    assert cfg.graphs.street_node_tolerance_m == 1.0
    assert tw.default_config().service_area_source == "neighbourhoods"  # Toronto keeps it
    path.write_text(SOURCE, encoding="utf-8")  # the only neighbourhoods source bounds the area
    assert tw.load_config(path).boundary_source() == "neighbourhoods"
    path.write_text('[project]\nservice_area = "hull"\n' + SOURCE, encoding="utf-8")
    assert tw.load_config(path).boundary_source() is None


def test_service_area_values(tmp_path: Path) -> None:
    bad = problems_of(tmp_path, '[project]\nservice_area = "convex"\n' + SOURCE)
    assert any("service_area must be one of 'auto', 'hull', 'h3', 'none'" in p for p in bad)
    both = problems_of(
        tmp_path,
        '[project]\nservice_area = "none"\nservice_area_source = "neighbourhoods"\n' + SOURCE,
    )
    assert any("service_area = 'none' but service_area_source" in p for p in both)
    neg = problems_of(tmp_path, "[graphs]\nstreet_node_tolerance_m = -1\n" + SOURCE)
    assert any("street_node_tolerance_m must be a number >= 0" in p for p in neg)
