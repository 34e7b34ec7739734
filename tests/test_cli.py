"""End-to-end tests of the ``twmb`` command line (``twmb_geo.cli.main``) on the bundled data.

Most tests drive the CLI in-process with click's ``CliRunner``; one runs the installed
console script in a subprocess. Every command writes under ``tmp_path`` (``--out``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import CLI_ENV, flat, show, twmb
from click.testing import CliRunner, Result

import twmb_geo.cli as cli
from twmb_geo.store.duckdb_store import Store

REPO = Path(__file__).resolve().parents[1]
TWMB_SCRIPT = REPO / ".venv" / "bin" / "twmb"
DATA = REPO / "data" / "toronto"
BREAKS_ROWS = 35_465
BREAKS_DUPLICATES = 18
BREAKS_YEAR_MISMATCHES = 8
SWAPPED_ROW = 33_653  # XCOORD/YCOORD swapped in the City's file
BUILTIN_PROFILES = {
    "eccc_daily",
    "toronto_breaks_csv",
    "toronto_breaks_geojson",
    "toronto_breaks_shapefile",
    "toronto_breaks_xlsx",
    "toronto_neighbourhoods_140",
    "toronto_neighbourhoods_158",
}
COMMANDS = (
    "init",
    "ingest",
    "run",
    "fetch",
    "profiles",
    "train",
    "score",
    "simulate",
    "models",
    "publish",
    "powerbi",
    "map",
    "report",
)
# A stable, wide-enough terminal; TWMB_CONFIG from the caller's shell must not leak in.


# --------------------------------------------------------------------------- helpers


def one_json(r: Result) -> dict:
    """stdout must be exactly one JSON object."""
    doc = json.loads(r.stdout)
    assert isinstance(doc, dict), show(r)
    return doc


def assert_clean_failure(r: Result, code: int) -> None:
    """Exit ``code``, an ``error:`` line on stderr, no traceback anywhere."""
    assert r.exit_code == code, show(r)
    assert isinstance(r.exception, SystemExit), show(r)
    assert "error:" in r.stderr, show(r)
    assert "Traceback" not in r.stdout + r.stderr, show(r)


def closed_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch_args(out: Path) -> list[object]:
    base = f"http://127.0.0.1:{closed_port()}"
    return [
        "--out",
        out,
        "fetch",
        "toronto",
        "--base-url",
        base,
        "--retries",
        "0",
        "--timeout",
        "0.5",
    ]


# --------------------------------------------------------------------------- bundled run
@pytest.fixture(scope="module")
def bundled_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """``twmb --out OUT run`` on the bundled Toronto data (human output)."""
    out = tmp_path_factory.mktemp("bundled") / "out"
    r = twmb("--out", out, "run", "--no-model")
    assert r.exit_code == 0, show(r)
    return out, r


@pytest.fixture(scope="module")
def bundled_json(bundled_run: tuple[Path, Result]) -> tuple[Path, Result]:
    """``twmb --out OUT run --json`` again on the same folder (a re-run must be idempotent);
    the ingest only: the assertions are about sources, reconciliation and the summary."""
    out, _ = bundled_run
    r = twmb("--out", out, "run", "--no-features", "--no-publish", "--no-report", "--json")
    assert r.exit_code == 0, show(r)
    return out, r


def test_run_ends_with_a_publish_the_maps_and_the_report(bundled_run) -> None:
    out, r = bundled_run
    assert "published star-" in r.stdout
    assert f"report: {(out / 'report' / 'report.html').resolve()}" in flat(r.stdout)
    for path in (
        "star/parquet/fact_break.parquet",
        "star.duckdb",
        "turso/twmb_star.db",
        "maps/geojson/cells.geojson",
        "maps/twmb_layers.gpkg",
        "maps/png/break_density.png",
        "maps/twmb_map.html",
        "report/report.html",
        "report/report.md",
    ):
        assert (out / path).exists(), path


def test_help_lists_commands_and_exit_codes() -> None:
    r = twmb("--help")
    assert r.exit_code == 0, show(r)
    for cmd in COMMANDS:
        assert f"  {cmd} " in r.stdout, f"{cmd} missing from --help\n{r.stdout}"
    for option in ("--config", "--out", "--quiet", "--verbose", "--version"):
        assert option in r.stdout
    assert "Exit codes:" in r.stdout
    for code, words in [
        ("0", "success"),
        ("2", "usage or config"),
        ("3", "bad input data"),
        ("4", "contract or reconciliation"),
        ("5", "store"),
        ("6", "download"),
    ]:
        assert any(
            line.split()[:1] == [code] and words in line for line in r.stdout.splitlines()
        ), f"exit code {code} ({words}) not documented\n{r.stdout}"


@pytest.mark.parametrize(
    "command",
    [
        ["init"],
        ["ingest"],
        ["run"],
        ["fetch"],
        ["fetch", "toronto"],
        ["profiles"],
        ["train"],
        ["score"],
        ["simulate"],
        ["models", "list"],
        ["models", "show"],
        ["publish"],
    ],
    ids=lambda c: "-".join(c),
)
def test_command_help(command: list[str]) -> None:
    r = twmb(*command, "--help")
    assert r.exit_code == 0, show(r)
    assert r.stdout.startswith("Usage: "), show(r)
    assert r.stderr == ""
    if command != ["fetch"]:  # the fetch group only lists its subcommands
        assert "--json" in r.stdout
    if command == ["fetch"]:
        assert "toronto" in r.stdout
    if command == ["fetch", "toronto"]:
        for option in ("--base-url", "--retries", "--timeout", "--dest", "--package"):
            assert option in r.stdout


def test_the_cli_starts_without_the_layers() -> None:
    """``twmb --help`` (and a mistyped command, and shell completion) imports no layer: the
    commands reach the API through ``tw.<name>`` when they run, and an option's choices
    (publish targets, formats) are read with its command. Before, the CLI's modules imported
    the API and with it every layer (5.7-8.2 s on a busy day, against 0.27-0.40 s after)."""
    heavy = ["twmb_geo.api", "twmb_geo.config", "twmb_geo.features.build",
             "twmb_geo.maps.exports", "twmb_geo.publish.targets", "pandas", "numpy",
             "geopandas", "libpysal", "sklearn", "matplotlib", "duckdb", "dask"]  # fmt: skip
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom twmb_geo.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\nassert r.exit_code == 0, r.output\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
        "r = CliRunner().invoke(main, ['publish', '--help'])\n"
        "print('[folder|duckdb|turso-file|turso]' in r.output, '[sync|http]' in r.output)\n"
        "r = CliRunner().invoke(main, ['map', '--format', 'shp'])\n"
        "print(r.exit_code, 'geojson' in r.output, 'twmb_geo.maps.exports' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in {**os.environ, **CLI_ENV}.items() if v is not None},
    ).stdout.splitlines()
    assert out == ["[]", "True True", "2 True True"]


def test_version() -> None:
    r = twmb("--version")
    assert r.exit_code == 0, show(r)
    assert r.stdout.startswith("twmb, version ")


def test_run_human_output_and_files(bundled_run: tuple[Path, Result]) -> None:
    out, r = bundled_run
    text = r.stdout
    assert "Sources" in text
    breaks_line = next(ln for ln in text.splitlines() if ln.lstrip("│┃ ").startswith("breaks "))
    assert f"{BREAKS_ROWS:,}" in breaks_line
    assert f"duplicate {BREAKS_DUPLICATES}" in breaks_line
    accepted = BREAKS_ROWS - BREAKS_DUPLICATES - BREAKS_YEAR_MISMATCHES
    assert f"Breaks per year ({accepted:,} accepted)" in text
    for year in range(1990, 2017):
        assert f" {year} " in text, year
    assert "Top neighbourhoods" in text
    assert f"summary: {(out / 'summary.json').resolve()}" in flat(text)
    for name in ("summary.json", "manifest.json", "twmb.duckdb"):
        assert (out / name).is_file(), name
    # logs and progress go to stderr, never to stdout
    assert "INFO" in r.stderr
    assert "INFO" not in text and "WARNING" not in text


def test_run_json(bundled_json: tuple[Path, Result]) -> None:
    out, r = bundled_json
    doc = one_json(r)
    assert doc["ok"] is True
    assert doc["command"] == "run"
    by_id = {s["source_id"]: s for s in doc["sources"]}
    assert set(by_id) == {"neighbourhoods", "breaks", "weather"}
    b = by_id["breaks"]
    assert b["kind"] == "breaks"
    assert b["rows_in"] == BREAKS_ROWS
    assert b["rows_in"] == b["accepted"] + b["quarantined"]
    assert b["quarantined"] == sum(b["quarantined_by_reason"].values())
    assert b["quarantined_by_reason"]["duplicate"] == BREAKS_DUPLICATES
    assert b["quarantined_by_reason"]["year_mismatch"] == BREAKS_YEAR_MISMATCHES
    assert b["flags"]["mtm_nad27_swapped_xy"] == 1
    nb = by_id["neighbourhoods"]
    assert nb["rows_in"] == nb["accepted"] == 140
    per_year = {int(k): v for k, v in doc["breaks_per_year"].items()}
    assert sorted(per_year) == list(range(1990, 2017))
    assert sum(per_year.values()) == doc["breaks_total"] == b["accepted"]
    top = doc["top_neighbourhoods"]
    assert 1 <= len(top) <= 10
    assert {"area_code", "area_name", "breaks", "breaks_per_year"} <= set(top[0])
    rates = [t["breaks_per_year"] for t in top]
    assert rates == sorted(rates, reverse=True)
    # summary.json holds the same figures
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["run_id"] == doc["run_id"]
    assert summary["breaks_per_year"] == doc["breaks_per_year"]
    assert summary["top_neighbourhoods"] == top
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "ok"
    assert manifest["run_id"] == doc["run_id"]
    assert {i["source_id"] for i in manifest["inputs"]} == {"neighbourhoods", "breaks", "weather"}


def test_run_twice_is_idempotent_and_flags_the_swapped_record(
    bundled_json: tuple[Path, Result],
) -> None:
    out, r = bundled_json
    accepted = next(s for s in one_json(r)["sources"] if s["source_id"] == "breaks")["accepted"]
    with Store(out / "twmb.duckdb", read_only=True) as store:
        assert store.count("breaks") == accepted  # the second run replaced, not appended
        assert store.count("neighbourhoods") == 140
        runs = store.read("runs")
        assert list(runs["status"]) == ["ok", "ok"]
        row = store.query(
            "SELECT coord_source, flags FROM breaks WHERE source_row = ?", [SWAPPED_ROW]
        )
    assert len(row) == 1
    assert "mtm_nad27_swapped_xy" in row["flags"].iloc[0].split(";")
    assert row["coord_source"].iloc[0] == "wgs84"


def test_top_neighbourhood_is_in_human_and_json_output(
    bundled_run: tuple[Path, Result], bundled_json: tuple[Path, Result]
) -> None:
    top = one_json(bundled_json[1])["top_neighbourhoods"][0]
    assert top["area_name"] in bundled_run[1].stdout


def test_init_then_ingest_with_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = tmp_path / "project" / "twmb.toml"
    r = twmb("--out", out, "init", cfg, "--json")
    assert r.exit_code == 0, show(r)
    assert one_json(r) == {"ok": True, "command": "init", "config": str(cfg)}
    doc = tomllib.loads(cfg.read_text(encoding="utf-8"))
    assert {s["id"] for s in doc["sources"]} == {"neighbourhoods", "breaks", "weather"}
    assert doc["project"]["service_area_source"] == "neighbourhoods"

    r = twmb("--config", cfg, "--out", out, "ingest", "neighbourhoods", "--json")
    assert r.exit_code == 0, show(r)
    assert [s["source_id"] for s in one_json(r)["sources"]] == ["neighbourhoods"]

    # one source on its own, after the service area exists
    r = twmb("--config", cfg, "--out", out, "ingest", "breaks", "--json")
    assert r.exit_code == 0, show(r)
    doc = one_json(r)
    assert [s["source_id"] for s in doc["sources"]] == ["breaks"]
    b = doc["sources"][0]
    assert b["rows_in"] == BREAKS_ROWS == b["accepted"] + b["quarantined"]
    assert b["quarantined_by_reason"]["duplicate"] == BREAKS_DUPLICATES
    assert not [w for w in doc["warnings"] if "no service area" in w], doc["warnings"]
    assert Path(doc["manifest"]) == (out / "manifest.json").resolve()
    with Store(out / "twmb.duckdb", read_only=True) as store:
        assert store.count("neighbourhoods") == 140
        assert store.count("service_area") == 1
        assert store.count("breaks") == b["accepted"]
        assert not store.has_table("weather_daily")


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    cfg = tmp_path / "twmb.toml"
    cfg.write_text("# my own config\n", encoding="utf-8")
    r = twmb("--out", tmp_path / "out", "init", cfg)
    assert_clean_failure(r, 2)
    assert "already exists" in r.stderr and "--force" in r.stderr, show(r)
    assert cfg.read_text(encoding="utf-8") == "# my own config\n"

    r = twmb("--out", tmp_path / "out", "init", cfg, "--force")
    assert r.exit_code == 0, show(r)
    assert "sources" in tomllib.loads(cfg.read_text(encoding="utf-8"))


def test_profiles_json_lists_builtins(tmp_path: Path) -> None:
    r = twmb("--out", tmp_path / "out", "profiles", "--json")
    assert r.exit_code == 0, show(r)
    doc = one_json(r)
    assert doc["ok"] is True and doc["command"] == "profiles"
    by_id = {p["id"]: p for p in doc["profiles"]}
    assert set(by_id) >= BUILTIN_PROFILES
    assert by_id["toronto_breaks_csv"]["kind"] == "breaks"
    assert by_id["toronto_breaks_csv"]["format"] == "csv"
    assert by_id["toronto_neighbourhoods_140"]["kind"] == "neighbourhoods"
    assert [p["id"] for p in doc["profiles"]] == sorted(by_id)


def test_profiles_json_marks_builtins_as_built_in(tmp_path: Path) -> None:
    r = twmb("--out", tmp_path / "out", "profiles", "--json")
    assert r.exit_code == 0, show(r)
    origins = {p["id"]: p["origin"] for p in one_json(r)["profiles"]}
    assert {origins[p] for p in BUILTIN_PROFILES} == {"built-in"}


def test_profiles_human(tmp_path: Path) -> None:
    r = twmb("--out", tmp_path / "out", "profiles")
    assert r.exit_code == 0, show(r)
    for pid in BUILTIN_PROFILES:
        assert pid in r.stdout


def test_quiet_prints_no_info_logs(tmp_path: Path) -> None:
    r = twmb("--quiet", "--out", tmp_path / "out", "ingest", "neighbourhoods")
    assert r.exit_code == 0, show(r)
    assert "INFO" not in r.stderr, show(r)
    assert "neighbourhoods" in r.stdout  # the result table still goes to stdout


def test_quiet_and_verbose_is_a_usage_error(tmp_path: Path) -> None:
    r = twmb("--quiet", "--verbose", "--out", tmp_path / "out", "profiles")
    assert r.exit_code == 2, show(r)
    assert "cannot be used together" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "out").exists()


def test_missing_config_is_a_config_error(tmp_path: Path) -> None:
    r = twmb("--config", tmp_path / "nope.toml", "--out", tmp_path / "out", "run", "--json")
    assert_clean_failure(r, 2)
    assert "nope.toml" in r.stderr and "twmb init" in r.stderr
    doc = one_json(r)
    assert doc["ok"] is False and doc["exit_code"] == 2 and "nope.toml" in doc["error"]


def test_fetch_unreachable_portal_exit_6(tmp_path: Path) -> None:
    r = twmb(*fetch_args(tmp_path / "out"))
    assert_clean_failure(r, 6)
    assert r.stdout == ""
    msg = flat(r.stderr[r.stderr.index("error:") :])
    assert "127.0.0.1" in msg and "package_show" in msg and "--base-url" in msg, show(r)

    r = twmb(*fetch_args(tmp_path / "out"), "--json")
    assert_clean_failure(r, 6)
    doc = one_json(r)
    assert doc["ok"] is False
    assert doc["exit_code"] == 6
    assert doc["command"] == "fetch"
    assert "127.0.0.1" in doc["error"]
    assert "\n" not in doc["error"]


def test_error_message_is_one_line(tmp_path: Path) -> None:
    r = twmb(*fetch_args(tmp_path / "out"))
    assert r.exit_code == 6
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    assert errors[0] == len(lines) - 1, r.stderr  # nothing after the one-line message
    assert lines[-1].rstrip().endswith("retry later."), r.stderr


def test_console_script_subprocess(tmp_path: Path) -> None:
    """The installed ``twmb`` script: exit status, one JSON object on stdout, no traceback."""
    assert TWMB_SCRIPT.is_file(), f"{TWMB_SCRIPT} missing: install the package (make install)"
    env = {k: v for k, v in os.environ.items() if k != "TWMB_CONFIG"}
    proc = subprocess.run(
        [str(TWMB_SCRIPT), *map(str, fetch_args(tmp_path / "out")), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 6, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 6 and doc["command"] == "fetch"
    assert "error:" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- embedding bugs
@pytest.fixture
def plain_runner(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A CliRunner without :func:`twmb`'s process emulation (as a library user would use it)."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    monkeypatch.setattr(sys, "argv", ["python"])
    yield CliRunner(env=CLI_ENV)
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def test_clirunner_captures_output_without_emulation(
    plain_runner: CliRunner, tmp_path: Path
) -> None:
    r = plain_runner.invoke(cli.main, ["--out", str(tmp_path / "out"), "profiles"])
    assert r.exit_code == 0
    assert "toronto_breaks_csv" in r.stdout
    r = plain_runner.invoke(cli.main, ["--config", str(tmp_path / "nope.toml"), "profiles"])
    assert r.exit_code == 2
    assert "error:" in r.stderr and "nope.toml" in r.stderr


def test_clirunner_captures_output_json_failure_without_argv(
    plain_runner: CliRunner, tmp_path: Path
) -> None:
    r = plain_runner.invoke(
        cli.main, ["--config", str(tmp_path / "nope.toml"), "profiles", "--json"]
    )
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 2
