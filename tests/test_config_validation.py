"""Config and profile validation (issue 15): every problem of a file listed, exit code 2.

Each bad value of ``twmb.toml`` or of a profile file is rejected when the config is read
(``twmb --config ... profiles`` reads nothing else) with one error naming the file, the key
path and what is expected; several problems of one file come in one error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import error_text, twmb
from jsonschema import Draft202012Validator

import twmb_geo as tw
from twmb_geo.core.validation import is_integer, is_number
from twmb_geo.errors import ConfigError
from twmb_geo.io.profiles import _KEYS, KINDS, builtin_profiles, parse_profile, profile_schema

FIXTURES = Path(__file__).parent / "fixtures"

PROFILE = """\
[[profile]]
id = "p_breaks"
kind = "breaks"
format = "csv"
description = "breaks export"
columns = { break_date = "DATE" }
coordinates = [{ name = "wgs84", x = "LON", y = "LAT", crs = "EPSG:4326" }]
"""
SOURCE = """\
[[sources]]
id = "breaks"
profile = "p_breaks"
path = "b.csv"
"""
FILES = '[profiles]\nfiles = ["profiles.toml"]\n\n'


def _project(folder: Path, config: str, profiles: str = PROFILE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profiles.toml").write_text(profiles, encoding="utf-8")
    path = folder / "twmb.toml"
    path.write_text(config, encoding="utf-8")
    return path


def _with(key_line: str) -> str:
    """The base profile with one more top-level key line."""
    return PROFILE + key_line + "\n"


#: (case, twmb.toml, profiles.toml, file at fault, expected parts of the message)
CASES = [
    (
        "sources-string",
        'sources = "abc"\n',
        PROFILE,
        "twmb.toml",
        ["sources must be an array of tables ([[sources]]), got 'abc'"],
    ),
    (
        "project-number",
        "project = 5\n" + FILES + SOURCE,
        PROFILE,
        "twmb.toml",
        ["[project] must be a table, got 5"],
    ),
    (
        "profile-file-list-of-strings",
        FILES + SOURCE,
        'profile = ["a", "b"]\n',
        "profiles.toml",
        [
            "[[profile]] #1 must be a table of profile keys, got 'a'",
            "[[profile]] #2 must be a table of profile keys, got 'b'",
        ],
    ),
    (
        "profile-file-profile-string",
        FILES + SOURCE,
        'profile = "abc"\n',
        "profiles.toml",
        ["'profile' must be a non-empty array of tables ([[profile]] entries"],
    ),
    (
        "columns-string",
        FILES + SOURCE,
        PROFILE.replace('columns = { break_date = "DATE" }', 'columns = "x"'),
        "profiles.toml",
        ["[[profile]] #1 (p_breaks): [columns] must be a table of field = column name", "'x'"],
    ),
    (
        "min-date-not-a-date",
        FILES + SOURCE,
        _with('checks = { min_date = "not-a-date" }'),
        "profiles.toml",
        ["[[profile]] #1 (p_breaks): [checks] min_date must be a date (YYYY-MM-DD"],
    ),
    (
        "chunk-size-zero",
        FILES + SOURCE,
        _with("chunk_size = 0"),
        "profiles.toml",
        ["[[profile]] #1 (p_breaks): 'chunk_size' must be an integer >= 1", "got 0"],
    ),
    (
        "chunk-size-bool",
        FILES + SOURCE,
        _with("chunk_size = true"),
        "profiles.toml",
        ["[[profile]] #1 (p_breaks): 'chunk_size' must be an integer >= 1", "got True"],
    ),
    (
        "date-format-bad-directive",
        FILES + SOURCE,
        _with('date_format = "%Q"'),
        "profiles.toml",
        ["[[profile]] #1 (p_breaks): 'date_format' '%Q' has invalid strftime directives ['%Q']"],
    ),
    (
        "enabled-string",
        FILES + SOURCE + 'enabled = "false"\n',
        PROFILE,
        "twmb.toml",
        ["[[sources]] #1 (breaks) enabled must be true or false, got 'false'"],
    ),
    (
        "files-string",
        '[profiles]\nfiles = "profiles.toml"\n\n' + SOURCE,
        PROFILE,
        "twmb.toml",
        ["[profiles] files must be a list of paths, got 'profiles.toml'"],
    ),
    (
        "esda-permutations-bool",
        "[features]\nesda_permutations = true\n\n" + FILES + SOURCE,
        PROFILE,
        "twmb.toml",
        ["[features] esda_permutations must be an integer >= 1, got True"],
    ),
    (
        "tiers-error-keeps-other-model-problems",
        "[model]\nforward_years = 0\ntiers = { high = 150, low = 20 }\n\n" + FILES + SOURCE,
        PROFILE,
        "twmb.toml",
        [
            "[model] forward_years must be an integer >= 1, got 0",
            "[model] tiers percentiles must be numbers in 0..100",
            "[model] tiers need one tier starting at 0",
        ],
    ),
]


@pytest.mark.parametrize(
    ("config", "profiles", "culprit", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_each_problem_exits_2_naming_file_and_key(
    tmp_path: Path, config: str, profiles: str, culprit: str, expected: list[str]
) -> None:
    path = _project(tmp_path / "p", config, profiles)
    msg = error_text(twmb("--config", path, "profiles"), 2)
    assert f"config file {path} is invalid" in msg, msg
    assert str(tmp_path / "p" / culprit) in msg, msg
    for part in expected:
        assert part in msg, (part, msg)


BAD_CONFIG = (
    "[features]\nesda_permutations = true\n\n"
    "[model]\nhorizon = 0\ntiers = { high = 150, low = 20 }\n\n"
    '[profiles]\nfiles = ["profiles.toml"]\n\n'
    + SOURCE
    + 'enabled = "false"\n\n[[sources]]\nid = "other"\nprofile = "p_other"\npath = "o.csv"\n'
)
BAD_PROFILES = (
    PROFILE.replace('columns = { break_date = "DATE" }', 'columns = "x"')
    + 'chunk_size = 0\ndate_format = "%Q"\ncheck = 1\nchecks = { min_date = "not-a-date" }\n\n'
    '[[profile]]\nid = "p_other"\nkind = "breaks"\nformat = "csv"\n'
    "columns = { break_date = 5 }\nnull_values = [1]\n"
    'coordinates = [{ name = "ll", x = "X", y = "Y", crs = "EPSG:4326", z = "Z" }]\n'
)
ALL_PROBLEMS = (
    "[features] esda_permutations must be an integer >= 1, got True",
    "[model] horizon must be an integer >= 1, got 0",
    "[model] tiers percentiles must be numbers in 0..100",
    "[model] tiers need one tier starting at 0",
    "[[sources]] #1 (breaks) enabled must be true or false, got 'false'",
    "[[profile]] #1 (p_breaks): [columns] must be a table of field = column name",
    "[[profile]] #1 (p_breaks): 'chunk_size' must be an integer >= 1 (CSV rows per chunk), got 0",
    "[[profile]] #1 (p_breaks): 'date_format' '%Q' has invalid strftime directives ['%Q']",
    "[[profile]] #1 (p_breaks): unknown keys ['check']",
    "[[profile]] #1 (p_breaks): [checks] min_date must be a date (YYYY-MM-DD",
    "[[profile]] #2 (p_other): [columns] break_date must be a column name of the file",
    "[[profile]] #2 (p_other): 'null_values' must be a list of strings",
    "[[profile]] #2 (p_other): [[coordinates]] #1 has unknown keys ['z']",
)


def test_every_problem_of_the_config_and_its_profiles_is_listed(tmp_path: Path) -> None:
    path = _project(tmp_path / "p", BAD_CONFIG, BAD_PROFILES)
    r = twmb("--config", path, "profiles")
    msg = error_text(r, 2)
    assert r.stderr.count("error:") == 1, r.stderr
    assert str(path) in msg and str(tmp_path / "p" / "profiles.toml") in msg, msg
    for problem in ALL_PROBLEMS:
        assert msg.count(problem) == 1, (problem, msg)
    doc = json.loads(twmb("--config", path, "profiles", "--json").stdout)
    assert doc["ok"] is False and doc["exit_code"] == 2
    for problem in ALL_PROBLEMS:
        assert problem in doc["error"], (problem, doc["error"])
    with pytest.raises(ConfigError) as exc:
        tw.load_config(path)
    assert exc.value.exit_code == 2
    assert len(exc.value.problems) == 6  # five of twmb.toml, one for the profile file


def test_unknown_profile_of_a_source_is_named_with_the_source(tmp_path: Path) -> None:
    path = _project(tmp_path / "p", FILES + SOURCE.replace("p_breaks", "p_nope"))
    msg = error_text(twmb("--config", path, "profiles"), 2)
    assert "[[sources]] #1 (breaks) profile: unknown source profile 'p_nope'" in msg, msg


def test_profile_file_problems(tmp_path: Path) -> None:
    twice = PROFILE + "\n" + PROFILE
    extra = 'colour = "blue"\n[materials]\nCI = "cast_iron"\n\n' + PROFILE
    shared = 'materials = "CI"\n\n' + PROFILE
    empty = "profile = []\n"
    for text, problem in (
        (twice, "[[profile]] #2 (p_breaks): the id is used by an earlier profile of the file"),
        (extra, "keys ['colour'] are outside every [[profile]] entry"),
        (shared, "[materials] (shared by every [[profile]] of the file) must be a table"),
        (empty, "'profile' must be a non-empty array of tables"),
    ):
        path = tmp_path / "profiles.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as exc:
            tw.load_profile_file(path)
        assert exc.value.message == f"profile file {path} is invalid"
        assert any(problem in p for p in exc.value.problems), exc.value.problems


def test_single_profile_file_names_the_profile(tmp_path: Path) -> None:
    path = tmp_path / "one.toml"
    path.write_text(PROFILE.replace("[[profile]]\n", "") + "chunk_size = -5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        tw.load_profile_file(path)
    assert exc.value.problems == [
        "profile 'p_breaks': 'chunk_size' must be an integer >= 1 (CSV rows per chunk), got -5"
    ]


def _doc(**extra: object) -> dict[str, object]:
    return {
        "id": "p",
        "kind": "breaks",
        "format": "csv",
        "columns": {"break_date": "DATE"},
        "coordinates": [{"name": "wgs84", "x": "LON", "y": "LAT", "crs": "EPSG:4326"}],
        **extra,
    }


@pytest.mark.parametrize(
    "fmt", ["auto", "epoch_ms", "year", "%d/%m/%Y", "%Y-%m-%dT%H:%M:%S%z", "%d %b %Y %%", "%j/%y"]
)
def test_valid_date_formats_pass(fmt: str) -> None:
    assert parse_profile(_doc(date_format=fmt)).date_format == fmt


@pytest.mark.parametrize(
    ("fmt", "needle"),
    [
        ("%Q", "invalid strftime directives ['%Q']"),
        ("%-d/%m/%Y", "invalid strftime directives ['%-']"),
        ("%Y%", "invalid strftime directives ['%']"),
        ("100%%", "'date_format' must be one of"),
        ("dd/mm/yyyy", "'date_format' must be one of"),
        ("", "'date_format' must be one of"),
    ],
)
def test_bad_date_formats_are_named(fmt: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_profile(_doc(date_format=fmt))
    assert any(needle in p for p in exc.value.problems), exc.value.problems


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"chunk_size": 2.5}, "'chunk_size' must be an integer >= 1"),
        ({"sheet": True}, "'sheet' must be a sheet name or a sheet number from 0, got True"),
        ({"sheet": -1}, "'sheet' must be a sheet name or a sheet number from 0, got -1"),
        ({"encoding": "klingon-8"}, "'encoding' 'klingon-8' is not a known text encoding"),
        ({"geometry_encoding": "kml"}, "'geometry_encoding' must be one of ['geojson', 'wkt']"),
        ({"checks": {"conflict_tolerance_m": -1}}, "[checks] conflict_tolerance_m must be"),
        ({"checks": {"duplicate_distance_m": True}}, "[checks] duplicate_distance_m must be"),
        ({"checks": {"duplicate_key": "break_date"}}, "[checks] duplicate_key must be a list"),
        ({"checks": "strict"}, "[checks] must be a table, got 'strict'"),
        ({"coordinates": [{"x": "X", "y": "Y", "crs": 4326}]}, "[[coordinates]] #1 crs must be"),
        ({"coordinates": "LON,LAT"}, "'coordinates' must be an array of tables"),
        ({"id": "  "}, "'id' must be a non-empty string"),
    ],
)
def test_bad_profile_values_are_named(extra: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_profile(_doc(**extra))
    assert any(needle in p for p in exc.value.problems), exc.value.problems


def test_a_type_error_is_reported_once() -> None:
    """A value of the wrong type is the schema's problem; the rules after it stay quiet."""
    with pytest.raises(ConfigError) as exc:
        parse_profile(_doc(columns="x", coordinates=5, checks={"duplicate_key": "break_date"}))
    assert len(exc.value.problems) == 3, exc.value.problems


def test_booleans_are_not_numbers() -> None:
    assert is_integer(None, 3) and not is_integer(None, True) and not is_integer(None, 3.0)
    assert is_number(None, 2.5) and not is_number(None, False)
    assert not is_number(None, float("inf")) and not is_number(None, float("nan"))


def test_profile_schema_is_draft_2020_12_and_covers_every_key() -> None:
    schema = profile_schema()
    Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) == _KEYS
    assert schema["properties"]["kind"]["enum"] == sorted(KINDS)
    schema["properties"].clear()  # a copy: the next call is whole again
    assert profile_schema()["properties"]


def test_existing_configs_and_profiles_still_load(tmp_path: Path) -> None:
    assert len(builtin_profiles()) >= 10
    assert tw.load_config(None).sources
    written = tw.write_config(tw.default_config(tmp_path / "out"), tmp_path / "twmb.toml")
    assert tw.load_config(written).sources == tw.default_config().sources
    configs = [*sorted((FIXTURES / "cities").glob("*/twmb.toml"))]
    configs.append(FIXTURES / "springfield" / "springfield.toml")
    assert len(configs) == 5
    for path in configs:
        cfg = tw.load_config(path)
        assert cfg.sources and all(cfg.profile(s) for s in cfg.sources), path
