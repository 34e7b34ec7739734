"""The DuckDB store: idempotent runs, atomic per-source writes, and the run manifest."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest
from conftest import CURATED, TODAY

import twmb_geo as tw
from twmb_geo.errors import StoreError
from twmb_geo.store.duckdb_store import Store


def _snapshot(path) -> dict[str, pd.DataFrame]:
    with tw.open_store(path, read_only=True) as s:
        return {t: s.read(t) for t in CURATED}


def test_running_twice_gives_identical_tables(bundled_run, bundled_cfg) -> None:
    """Ingesting the same inputs again into the same store changes no curated table."""
    first = _snapshot(bundled_cfg.store_path)
    again = tw.ingest_sources(bundled_cfg, command="run")
    second = _snapshot(bundled_cfg.store_path)
    for t in CURATED:
        assert len(first[t]) > 0, t
        pd.testing.assert_frame_equal(first[t], second[t], obj=t)
    with tw.open_store(bundled_cfg.store_path, read_only=True) as s:
        runs = s.read("runs")
    # every command is recorded (other tests' failing commands on the shared store too);
    # the bundled run and this ingest both ended ok
    assert len(runs) >= 2 and runs["run_id"].is_unique
    status = dict(zip(runs["run_id"], runs["status"], strict=True))
    assert status[bundled_run["run_id"]] == "ok" and status[again.run_id] == "ok"


def test_identical_tables_in_a_fresh_store(bundled_run, bundled_cfg, tmp_path) -> None:
    """Same inputs, new store: byte-identical curated tables (determinism, not just idempotence).

    The ingest of the real files; the determinism of the features, models, publish, maps and
    report is checked on a synthetic city by tests/test_faults.py (two clean runs compared
    table by table)."""
    other = replace(bundled_cfg, out=tmp_path / "again", store=None)
    tw.run(other, with_features=False, with_publish=False, with_report=False)
    a, b = _snapshot(bundled_cfg.store_path), _snapshot(other.store_path)
    for t in CURATED:
        pd.testing.assert_frame_equal(a[t], b[t], obj=t)


def test_manifest_records_inputs_steps_versions_and_crs(bundled_run, bundled_cfg) -> None:
    m = json.loads((bundled_cfg.out_dir / "manifest.json").read_text())
    assert m["status"] == "ok" and m["run_id"] >= bundled_run["run_id"]
    files = {i["file"].rsplit("/", 1)[-1]: i for i in m["inputs"]}
    assert len(files["watermain_breaks_1990_2016_wgs84.zip"]["sha256"]) == 64
    assert len([f for f in files if f.startswith("eng-daily")]) == 28
    steps = {s["step"] for s in m["steps"]}
    assert {"transform:breaks", "store:breaks", "hash:breaks"} <= steps
    assert {"python", "twmb_geo", "duckdb", "pyproj", "proj", "shapely"} <= set(m["versions"])
    ballpark = [c for c in m["crs"] if c.get("ballpark")]
    assert ballpark and ballpark[0]["pair"] == "mtm_nad27"
    assert any("ballpark" in w for w in m["warnings"])
    src = {s["source_id"]: s for s in m["sources"]}
    assert (
        src["breaks"]["rows_in"]
        == src["breaks"]["accepted"] + src["breaks"]["quarantined"]
        == 35_465
    )
    with tw.open_store(bundled_cfg.store_path, read_only=True) as s:
        ri = s.read("run_inputs", "run_id = ?", [m["run_id"]])
    assert set(ri["source_id"]) == {"breaks", "neighbourhoods", "weather"}
    assert json.loads(ri[ri["source_id"] == "breaks"]["quarantined_by_reason"].iloc[0]) == {
        "duplicate": 18,
        "year_mismatch": 8,
    }


def test_failed_source_leaves_the_store_as_it_was(bundled_run, bundled_cfg, monkeypatch) -> None:
    before = _snapshot(bundled_cfg.store_path)
    original = Store._insert

    def failing(self, name, df):
        if name == "quarantine":  # fail after the breaks rows were deleted and re-inserted
            raise StoreError("simulated disk failure")
        return original(self, name, df)

    monkeypatch.setattr(Store, "_insert", failing)
    with pytest.raises(StoreError, match="simulated"):
        tw.ingest_sources(bundled_cfg, ["breaks"])
    monkeypatch.undo()
    after = _snapshot(bundled_cfg.store_path)
    for t in CURATED:
        pd.testing.assert_frame_equal(before[t], after[t], obj=t)
    with tw.open_store(bundled_cfg.store_path, read_only=True) as s:
        last = s.read("runs").iloc[-1]
    assert last["status"] == "failed" and "simulated" in json.loads(last["manifest"])["error"]


def test_read_only_store_must_exist(tmp_path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        tw.open_store(tmp_path / "nope.duckdb", read_only=True)


def test_unknown_table_is_refused(tmp_path) -> None:
    with tw.open_store(tmp_path / "s.duckdb") as s, pytest.raises(StoreError, match="no contract"):
        s.ensure_table("not_a_table")


def test_pinned_today_is_used(bundled_cfg) -> None:
    assert bundled_cfg.run_date == TODAY


def test_pipes_and_streets_go_through_the_store(tmp_path) -> None:
    """City-format Watermains and Centreline fixtures ingest beside the bundled neighbourhoods."""
    from conftest import NEIGHBOURHOODS_ZIP, REPO

    from twmb_geo.config import Config, SourceConfig
    from twmb_geo.contracts import validate_frame

    fx = REPO / "tests" / "fixtures"
    cfg = Config(
        out=tmp_path / "assets",
        today=TODAY,
        sources=(
            SourceConfig("neighbourhoods", "toronto_neighbourhoods_140", str(NEIGHBOURHOODS_ZIP)),
            SourceConfig(
                "distribution",
                "toronto_watermains_distribution_geojson",
                str(fx / "toronto_watermains" / "distribution-watermain-4326.geojson"),
            ),
            SourceConfig(
                "transmission",
                "toronto_watermains_transmission_csv",
                str(fx / "toronto_watermains" / "transmission-watermain-2952.csv"),
            ),
            SourceConfig(
                "centreline",
                "toronto_centreline_geojson",
                str(fx / "toronto_centreline" / "centreline-version-2-4326.geojson"),
            ),
        ),
    )
    report = tw.ingest_sources(cfg)
    by = {s.source_id: s for s in report.sources}
    for s in by.values():
        assert s.rows_in == s.accepted + s.quarantined
    with tw.open_store(cfg.store_path, read_only=True) as store:
        pipes = store.read("pipes")
        streets = store.read("street_segments")
        validate_frame(pipes, "curated/pipes")
        validate_frame(streets, "curated/street_segments")
    assert set(pipes["source_id"]) == {"distribution", "transmission"}
    assert len(pipes) == by["distribution"].accepted + by["transmission"].accepted
    assert len(streets) == by["centreline"].accepted > 0
    # re-ingesting one source replaces only its rows
    tw.ingest_sources(cfg, ["transmission"])
    with tw.open_store(cfg.store_path, read_only=True) as store:
        pd.testing.assert_frame_equal(store.read("pipes"), pipes)


def test_a_table_read_in_place_from_parquet(bundled_run, bundled_cfg, tmp_path) -> None:
    """``attach_parquet``: the panel as a view over Parquet files (as the workers write
    them) reads back exactly what the table holds, with the contract's column types; the
    files are named relative to the store's folder, so the folder can move; writing to the
    name (``ensure_table``/``clear``) or attaching no files makes it a table again."""
    import shutil

    from twmb_geo.features.partitioned import write_panel_part

    with Store(bundled_cfg.store_path, read_only=True) as src:
        rows = src.read("panel", "unit_type = 'neighbourhood' OR unit_type = 'cell'")
        types = src.query("DESCRIBE panel")[["column_name", "column_type"]]
    assert len(rows) > 1000
    folder = tmp_path / "proj"
    half = len(rows) // 2
    files = [
        write_panel_part(rows.iloc[:half], str(folder / "parts" / "a.parquet")).path,
        write_panel_part(rows.iloc[half:], str(folder / "parts" / "b.parquet")).path,
    ]
    with Store(folder / "twmb.duckdb") as store, store.transaction():
        assert store.attach_parquet("panel", files) == len(rows)
    shutil.move(folder, tmp_path / "moved")
    with Store(tmp_path / "moved" / "twmb.duckdb") as store:
        assert store.is_view("panel") and "'parts/a.parquet'" in store.view_sql("panel")
        pd.testing.assert_frame_equal(store.read("panel"), rows)
        pd.testing.assert_frame_equal(
            store.query("DESCRIBE panel")[["column_name", "column_type"]], types
        )
        store.clear("panel")
        assert not store.is_view("panel") and store.count("panel") == 0
        store.attach_parquet("panel", [str(tmp_path / "moved" / "parts" / "a.parquet")])
        assert store.is_view("panel") and store.count("panel") == half
        assert store.attach_parquet("panel", []) == 0 and not store.is_view("panel")


def test_duckdb_connections_print_no_progress_bar(tmp_path, monkeypatch) -> None:
    """DuckDB printed its progress bar to stdout during the long queries of ``twmb publish``
    at 500,000 pipes (five bars before the JSON of ``--json``). Whatever turns the bar on,
    the store's connections (read-write and read-only) and the DuckDB star target's turn it
    off: here every connection starts with it on, as there."""
    import duckdb

    from twmb_geo.publish import duckdb_target
    from twmb_geo.publish.base import prepare_star
    from twmb_geo.publish.star import build_star
    from twmb_geo.publish.turso import SCHEMA_VERSION
    from twmb_geo.store import duckdb_store

    real = duckdb.connect
    opened: list[duckdb.DuckDBPyConnection] = []
    seen: list[bool] = []

    def bar_on(con: duckdb.DuckDBPyConnection) -> bool:
        return bool(con.execute("SELECT current_setting('enable_progress_bar')").fetchall()[0][0])

    def connect_with_bar(*args, **kwargs):
        con = real(*args, **kwargs)
        con.execute("SET enable_progress_bar = true")
        opened.append(con)
        return con

    class Watched:
        """A connection whose setting is read when the target closes it."""

        def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
            self._con = con

        def __getattr__(self, name: str):
            return getattr(self._con, name)

        def close(self) -> None:
            seen.append(bar_on(self._con))
            self._con.close()

    monkeypatch.setattr(duckdb_store.duckdb, "connect", connect_with_bar)
    with Store(tmp_path / "s.duckdb") as store:
        assert bar_on(store.con) is False
    with Store(tmp_path / "s.duckdb", read_only=True) as store:
        assert bar_on(store.con) is False
        star = build_star(store)
    assert len(opened) == 2
    prepared = prepare_star(star)
    monkeypatch.setattr(
        duckdb_target.duckdb, "connect", lambda *a, **k: Watched(connect_with_bar(*a, **k))
    )
    duckdb_target.write_star_duckdb(
        star,
        tmp_path / "star.duckdb",
        publish_id=prepared.publish_id,
        schema_version=SCHEMA_VERSION,
        checksums=prepared.checksums,
    )
    duckdb_target.check_star_duckdb(tmp_path / "star.duckdb", SCHEMA_VERSION)
    assert seen == [False, False]  # the write's connection and the check's


def test_a_connection_refusing_quiet_is_closed_and_the_publish_says_why(
    tmp_path, monkeypatch
) -> None:
    """If DuckDB refuses to turn its progress bar off, the connection is closed (not left
    holding the file) and the DuckDB target reports the file it could not open."""
    import duckdb

    from twmb_geo.errors import PublishError
    from twmb_geo.publish import duckdb_target
    from twmb_geo.publish.star import STAR_TABLES
    from twmb_geo.store import duckdb_store

    closed: list[bool] = []

    class Refusing:
        def execute(self, sql: str, *args):
            raise duckdb.InvalidInputException(f"cannot run {sql!r}")

        def close(self) -> None:
            closed.append(True)

    with pytest.raises(duckdb.InvalidInputException):
        duckdb_store.quiet(Refusing())  # type: ignore[arg-type]
    assert closed == [True]
    monkeypatch.setattr(duckdb_target.duckdb, "connect", lambda *a, **k: Refusing())
    with pytest.raises(PublishError, match=r"cannot open the DuckDB file .*star\.duckdb"):
        duckdb_target.write_star_duckdb(
            {t: pd.DataFrame() for t in STAR_TABLES},
            tmp_path / "star.duckdb",
            publish_id="p",
            schema_version=1,
            checksums={},
        )
    assert closed == [True, True]
    assert not (tmp_path / "star.duckdb").exists()
