"""Publishing the star schema to Turso: a local file, and a real Turso server on loopback.

The server is the Turso CLI (npm package ``turso``, installed by ``make test``) run as
``turso --sync-server``; tables are read back over ``POST /v2/pipeline`` with the very SQL
the generated Power Query scripts send, and compared with the DuckDB target.
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import turso
from cli_helpers import error_text, ok_json, twmb
from turso_server import (
    KillingProxy,
    TursoServer,
    current_publish,
    free_port,
    m_sql,
    pipeline,
    query,
    read_current,
    star_with_fact,
)

import twmb_geo as tw
from twmb_geo.errors import InputDataError, PublishError, SchemaVersionError
from twmb_geo.publish.sql import reader_sql, safe_identifier, star_schema
from twmb_geo.publish.star import STAR_TABLES, build_star
from twmb_geo.publish.turso import (
    SCHEMA_VERSION,
    TursoTarget,
    connect,
    migrate,
    publish_tables,
)
from twmb_geo.publish.values import frame_rows, table_checksum
from twmb_geo.store.duckdb_store import Store

TWMB = str(Path(sys.executable).with_name("twmb"))
ROOT = Path(__file__).resolve().parents[1]
HTTP = ("--turso-mode", "http", "--turso-url")
TO_TURSO = ("--to", "turso", "--turso-url")


# -- helpers -------------------------------------------------------------------------------
def duck_rows(path: Path, table: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        df = con.execute(f'SELECT * FROM "{table}"').df()
    finally:
        con.close()
    return frame_rows(df, star_schema(table))


def duck_count(path: Path, table: str) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return int(con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0])
    finally:
        con.close()


def sort_key(table: str) -> Callable[[tuple], tuple]:
    """A row's place in the contract's ``sort_by`` order as SQLite sorts it (NULL first;
    UTF-8 byte order is code point order), over rows in contract column order."""
    schema = star_schema(table)
    at = [schema.columns.index(c) for c in schema.sort_by or schema.primary_key]
    assert at, table
    return lambda row: tuple((row[i] is not None, row[i]) for i in at)


def file_rows(path: Path, table: str) -> list[tuple]:
    conn = turso.connect(str(path))
    try:
        return [tuple(r) for r in conn.execute(reader_sql(table)).fetchall()]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def empty_star(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """The star schema of an empty store: unknown rows only (a small, different publish)."""
    with Store(tmp_path_factory.mktemp("empty") / "e.duckdb") as store:
        return build_star(store)


def _variant(star: dict[str, pd.DataFrame], label: str) -> dict[str, pd.DataFrame]:
    out = dict(star)
    dim = star["dim_neighbourhood"].copy()
    dim["neighbourhood_name"] = label
    out["dim_neighbourhood"] = dim
    return out


def _publish(target: TursoTarget, tables: dict[str, pd.DataFrame]) -> dict:
    session = connect(target)
    try:
        return publish_tables(session, tables)
    finally:
        session.close()


def _publish_file(path: Path, tables: dict[str, pd.DataFrame]) -> dict:
    return _publish(TursoTarget(mode="file", path=path), tables)


def _publish_http(url: str, tables: dict[str, pd.DataFrame]) -> dict:
    return _publish(TursoTarget(mode="http", url=url), tables)


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([TWMB, *map(str, args)], capture_output=True, text=True, **kw)


# -- the bundled Toronto run ---------------------------------------------------------------
def test_run_publishes_the_star_to_a_local_turso_file(bundled_run, bundled_cfg, tmp_path) -> None:
    pub = bundled_run["publish"]
    assert pub["rows"]["fact_break"] == 35_439
    for where in pub["targets"].values():
        assert Path(where).exists()
    # other tests add to the shared store: compare targets written together from it now
    res = tw.publish_star(
        bundled_cfg,
        targets=["duckdb", "turso-file"],
        duckdb_path=tmp_path / "s.duckdb",
        turso_file=tmp_path / "s.db",
    )
    for t in STAR_TABLES:
        got, want = file_rows(tmp_path / "s.db", t), duck_rows(tmp_path / "s.duckdb", t)
        assert len(got) == len(want) == res.rows[t], t
        assert table_checksum(got) == table_checksum(want) == res.checksums[t], t
    # an ordinary SQLite reader (ODBC) can open the file, and sees the same current publish
    with sqlite3.connect(tmp_path / "s.db") as con:
        (pid,) = con.execute('SELECT "publish_id" FROM "twmb_current"').fetchone()
        assert pid == res.publish_id
        n = con.execute(reader_sql("fact_break").replace("SELECT ", "SELECT count(*), ", 1))
        assert n.fetchone()[0] == 35_439
        # the example queries of docs/star-schema.md run as pasted
        doc = (ROOT / "docs" / "star-schema.md").read_text(encoding="utf-8")
        block = doc[doc.index("```sql") + 6 :]
        queries = [q for q in block[: block.index("```")].split(";") if q.strip()]
        results = [con.execute(q).fetchall() for q in queries]
        per_year = dict(results[0])
        assert sum(per_year.values()) == 35_439 and per_year[2016] == 882
        assert len(results[1]) == 20 and results[1][0][1] > 0  # neighbourhoods with breaks
        assert results[2] == []  # no pipes in the bundled data
        assert {r[3] for r in results[3]} >= {"champion", "past_breaks_5y"}


def test_a_published_turso_file_is_served_by_turso_and_republished_in_its_place(
    bundled_cfg, empty_star, tmp_path
) -> None:
    """The Turso file (written by SQLite's library, then moved into place) is a database
    the Turso server serves: Power Query's keyset pages read every table back with the
    publish's checksums, before and after a republish to the same file."""
    kit = tw.write_powerbi_kit(bundled_cfg, folder=tmp_path / "kit").folder
    path = tmp_path / "served.db"
    first = star_with_fact(20_000)
    res = _publish_file(path, first)
    with TursoServer(path) as server:
        assert current_publish(server.url) == res["publish_id"]
        for t in STAR_TABLES:
            got = read_current(server.url, t, sql=m_sql(kit, t), page=7_919)
            assert len(got) == len(first[t]) and table_checksum(got) == res["checksums"][t], t
    again = _publish_file(path, _variant(empty_star, "again"))
    assert again["previous"] == res["publish_id"]
    # the copy moved into place, without the WAL the server left beside the earlier file
    assert sorted(p.name for p in tmp_path.glob("*served*")) == ["served.db"]
    with TursoServer(path) as server:
        assert current_publish(server.url) == again["publish_id"]
        for t in STAR_TABLES:
            got = read_current(server.url, t, sql=m_sql(kit, t), page=997)
            assert table_checksum(got) == again["checksums"][t], t
        kept = query(
            server.url,
            'SELECT count(*) FROM "fact_unit_year" WHERE "publish_id" = ?',
            [res["publish_id"]],
        )
        assert kept == [(len(first["fact_unit_year"]),)]  # the previous publish, for readers


def test_bundled_star_on_a_turso_server_equals_duckdb(
    bundled_run, bundled_cfg, turso_server, tmp_path
) -> None:
    kit = tw.write_powerbi_kit(bundled_cfg, folder=tmp_path / "kit").folder
    duck = tmp_path / "star.duckdb"
    res = tw.publish_star(
        bundled_cfg, targets=["duckdb", "turso"], duckdb_path=duck, turso_url=turso_server.url
    )
    target = res.targets[1]
    assert target["changed"] and target["previous"] is None
    assert current_publish(turso_server.url) == res.publish_id
    for t in STAR_TABLES:
        got = read_current(turso_server.url, t, sql=m_sql(kit, t), page=7_919)  # as Power Query
        assert len(got) == duck_count(duck, t) == res.rows[t], t
        assert table_checksum(got) == res.checksums[t], t
        # keyset pages in rowid order are in the contract's sort order
        assert got == sorted(got, key=sort_key(t)), t
        # the columns TursoTable checks: the rowid, then the contract's
        (first,) = pipeline(turso_server.url, [(m_sql(kit, t), [res.publish_id, 0, 1])])
        assert [c["name"] for c in first["cols"]] == ["rowid", *star_schema(t).columns], t
    star = star_schema("fact_break")
    ordered = duck_rows(duck, "fact_break")
    ordered.sort(key=lambda r: r[star.columns.index("break_key")])
    assert read_current(turso_server.url, "fact_break", page=10_000) == ordered  # row for row

    # the same content again, through turso.sync this time: nothing changes, no duplicates
    again = tw.publish_star(
        bundled_cfg, targets=["turso"], turso_url=turso_server.url, turso_mode="sync"
    )
    assert again.targets[0]["changed"] is False
    assert query(turso_server.url, 'SELECT count(*) FROM "fact_break"') == [(35_439,)]
    assert query(turso_server.url, 'SELECT "status" FROM "twmb_publish_run"') == [("complete",)]


# -- publishing semantics ------------------------------------------------------------------
def test_republish_replaces_keeps_one_previous_and_never_duplicates(empty_star, tmp_path) -> None:
    path = tmp_path / "star.db"
    a, b = _variant(empty_star, "A"), _variant(empty_star, "B")
    ra = _publish_file(path, a)
    assert ra["changed"] and ra["previous"] is None
    assert _publish_file(path, a)["changed"] is False  # idempotent
    rb = _publish_file(path, b)
    assert rb["previous"] == ra["publish_id"] != rb["publish_id"]
    ra2 = _publish_file(path, a)  # back to A: the kept copy of A is rewritten, not duplicated
    assert ra2["publish_id"] == ra["publish_id"] and ra2["previous"] == rb["publish_id"]
    conn = turso.connect(str(path))
    try:
        for t in STAR_TABLES:
            n = dict(
                conn.execute(f'SELECT "publish_id", count(*) FROM "{t}" GROUP BY 1').fetchall()
            )
            want = {ra["publish_id"]: len(a[t]), rb["publish_id"]: len(b[t])}
            assert n == {k: v for k, v in want.items() if v}, t
        names = conn.execute(reader_sql("dim_neighbourhood")).fetchall()
        assert {r[2] for r in names} == {"A"}
        status = dict(
            conn.execute('SELECT "publish_id", "status" FROM "twmb_publish_run"').fetchall()
        )
        assert status == {ra["publish_id"]: "complete", rb["publish_id"]: "superseded"}
        # a third publish drops the oldest; the file is replaced whole, so a connection
        # opened before it still reads the file it opened
        rc = _publish_file(path, _variant(empty_star, "C"))
        ids = {r[0] for r in conn.execute('SELECT DISTINCT "publish_id" FROM "dim_model"')}
        assert ids == {rb["publish_id"], ra["publish_id"]}
        assert {r[2] for r in conn.execute(reader_sql("dim_neighbourhood"))} == {"A"}
    finally:
        conn.close()
    conn = turso.connect(str(path))
    try:
        ids = {r[0] for r in conn.execute('SELECT DISTINCT "publish_id" FROM "dim_model"')}
        assert ids == {rc["publish_id"], ra["publish_id"]}
        assert {r[2] for r in conn.execute(reader_sql("dim_neighbourhood"))} == {"C"}
    finally:
        conn.close()


def test_migrations_are_versioned_and_idempotent(tmp_path) -> None:
    session = connect(TursoTarget(mode="file", path=tmp_path / "m.db"))
    try:
        assert migrate(session) == SCHEMA_VERSION
        assert migrate(session) == SCHEMA_VERSION
        rows = session.query('SELECT "version" FROM "twmb_schema_version"')
        assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
        session.finish()
    finally:
        session.close()


def _small_star(empty_star: dict[str, pd.DataFrame], n: int, label: str) -> dict:
    """The empty star with ``n`` breaks in 2016 (a plain count tells the publishes apart)."""
    out = _variant(empty_star, label)
    fb = empty_star["fact_break"]
    rows = {c: [] for c in fb.columns}
    for i in range(n):
        for c, v in {
            "break_key": i + 1,
            "break_id": f"{label}{i}",
            "date_key": 20160115,
            "year_key": 2016,
            "year": 2016,
            "lat": 43.7,
            "lon": -79.4,
            "breaks": 1,
        }.items():
            rows[c].append(v)
        for c in ("cell_key", "pipe_key", "street_key", "neighbourhood_key"):
            rows[c].append(-1)
    out["fact_break"] = pd.DataFrame(rows)[list(fb.columns)].astype(fb.dtypes.to_dict())
    year = empty_star["dim_year"]
    extra = pd.DataFrame(
        {"year_key": [2016], "year": [2016], "year_label": ["2016"], "decade": ["2010s"]}
    )
    out["dim_year"] = pd.concat([year, extra], ignore_index=True).astype(year.dtypes.to_dict())
    return out


#: what a SQL user pastes: breaks of 2016 through the year dimension, current data only
_PLAIN_SQL = (
    'SELECT count(*) FROM "fact_break_current" b JOIN "dim_year_current" y '
    'ON b."year_key" = y."year_key" WHERE y."year" = 2016'
)


@pytest.mark.parametrize("mode", ["http", "sync"])
def test_plain_sql_on_the_current_views_after_two_publishes(
    empty_star, turso_server, tmp_path, mode
) -> None:
    """A SQL user's join counts the current publish once, whatever was published before."""
    target = TursoTarget(mode=mode, url=turso_server.url, replica=tmp_path / "replica.db")
    first = _publish(target, _small_star(empty_star, 5, "A"))
    second = _publish(target, _small_star(empty_star, 3, "B"))
    assert second["previous"] == first["publish_id"]
    # both publishes are stored (the previous one is kept for readers mid-refresh) ...
    assert query(turso_server.url, 'SELECT count(*) FROM "fact_break"') == [(8,)]
    # ... but the views hold the current one only, for every star table
    assert query(turso_server.url, _PLAIN_SQL) == [(3,)]
    for t in STAR_TABLES:
        cols = ", ".join(f'"{c}"' for c in star_schema(t).columns)
        got = query(turso_server.url, f'SELECT {cols} FROM "{t}_current"')
        assert sorted(got, key=repr) == sorted(read_current(turso_server.url, t), key=repr), t
        # keyset pages of two rows read the current publish in the contract's order, past
        # the previous publish's rows (this mode inserted both)
        assert read_current(turso_server.url, t, page=2) == query(
            turso_server.url, reader_sql(t)
        ), t
    _publish(target, _small_star(empty_star, 5, "A"))  # back to A: the views follow
    assert query(turso_server.url, _PLAIN_SQL) == [(5,)]
    assert read_current(turso_server.url, "fact_break", page=2) == query(
        turso_server.url, reader_sql("fact_break")
    )


def _columns(session, table: str) -> list[str]:
    return [r[1] for r in session.query(f'PRAGMA table_info("{table}")')]


def test_migrated_tables_match_the_contracts(tmp_path, caplog) -> None:
    """The frozen migration SQL gives every star table exactly its contract's columns (a
    contract change without a new migration fails here) and no index: paged reads seek on
    rowid, and an index would only slow every insert."""
    session = connect(TursoTarget(mode="file", path=tmp_path / "m.db"))
    try:
        with caplog.at_level(logging.WARNING):
            migrate(session)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # a new database
        for t in STAR_TABLES:
            want = [*star_schema(t).columns, "publish_id"]
            assert sorted(_columns(session, t)) == sorted(want), t
            assert session.query(f'PRAGMA index_list("{t}")') == [], t
        session.finish()
    finally:
        session.close()


def test_a_version_1_database_is_upgraded_and_keeps_its_publishes(tmp_path, caplog) -> None:
    from twmb_geo.publish.turso.migrations import MIGRATIONS

    path = tmp_path / "v1.db"
    conn = turso.connect(str(path))
    for stmt in MIGRATIONS[0].statements():
        conn.execute(stmt)
    conn.execute(
        'INSERT INTO "twmb_schema_version" VALUES (1, ?, ?)', ["v1", "2026-01-01T00:00:00Z"]
    )
    conn.execute(
        'INSERT INTO "fact_cv_metric" ("model_key", "scheme", "model", "fold", "test_year", '
        '"n_train", "n_test", "metric", "value", "publish_id") '
        "VALUES (1, 'forward', 'm', 0, 2015, 10, 5, 'capture_5pct', 0.2, 'star-old')"
    )
    conn.commit()
    conn.close()
    session = connect(TursoTarget(mode="file", path=path))
    try:
        with caplog.at_level(logging.WARNING, logger="twmb_geo.publish.turso.protocol"):
            assert migrate(session) == SCHEMA_VERSION
        # its readers are told to regenerate the Power BI kit (keyset pages from version 3)
        (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert "star schema version 3" in warning and "run `twmb powerbi` again" in warning
        for t in STAR_TABLES:
            assert sorted(_columns(session, t)) == sorted([*star_schema(t).columns, "publish_id"])
        old = session.query('SELECT "publish_id", "value", "year_key" FROM "fact_cv_metric"')
        assert old == [("star-old", 0.2, -2)]  # the earlier publish stays readable
        # ... by a keyset page too, and no index of an earlier step is left to maintain
        (row,) = session.query(reader_sql("fact_cv_metric", paged=True), ["star-old", 0, 10])
        assert row == (1, 1, -2, "forward", "m", 0, 2015, 10, 5, "capture_5pct", 0.2)
        assert all(session.query(f'PRAGMA index_list("{t}")') == [] for t in STAR_TABLES)
        session.finish()
    finally:
        session.close()


def test_publisher_killed_mid_publish_leaves_the_previous_publish(
    bundled_run, bundled_cfg, empty_star, turso_server
) -> None:
    url = turso_server.url
    prev = _publish_http(url, empty_star)
    proc = subprocess.Popen(
        [TWMB, "-q", "--out", str(bundled_cfg.out_dir), "publish", "--to", "turso", *HTTP, url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            n = query(
                url,
                'SELECT count(*) FROM "dim_h3_cell" WHERE "publish_id" <> ?',
                [prev["publish_id"]],
            )
            if n[0][0] > 0:
                break
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, "the publish finished before it could be killed"
    # readers still see the previous complete publish, whole
    assert current_publish(url) == prev["publish_id"]
    for t in STAR_TABLES:
        assert table_checksum(read_current(url, t)) == prev["checksums"][t], t
    loading = query(
        url, 'SELECT "publish_id" FROM "twmb_publish_run" WHERE "status" = ?', ["loading"]
    )
    assert len(loading) == 1
    new_id = loading[0][0]
    # the next publish redoes it: complete, and no leftovers of the dead attempt
    res = tw.publish_star(bundled_cfg, targets=["turso"], turso_url=url, turso_mode="http")
    assert res.targets[0]["previous"] == prev["publish_id"]
    assert current_publish(url) == new_id
    for t in ("dim_h3_cell", "fact_unit_year", "fact_hotspot"):
        counts = dict(query(url, f'SELECT "publish_id", count(*) FROM "{t}" GROUP BY 1'))
        want = {new_id: res.rows[t], prev["publish_id"]: len(empty_star[t])}
        assert counts == {k: v for k, v in want.items() if v}, t


def test_server_killed_mid_push_keeps_the_previous_publish_and_the_push_resumes(
    empty_star, turso_server, tmp_path
) -> None:
    proxy = KillingProxy(turso_server)
    try:
        replica = tmp_path / "replica.db"

        def publish(tables: dict[str, pd.DataFrame]) -> dict:
            return _publish(TursoTarget(mode="sync", url=proxy.url, replica=replica), tables)

        prev = publish(empty_star)
        assert current_publish(turso_server.url) == prev["publish_id"]
        star = star_with_fact(60_000)
        proxy.arm(2_000_000)  # the server dies 2 MB into the push
        with pytest.raises(PublishError, match=r"pushing to .* failed"):
            publish(star)
        assert proxy.killed
        turso_server.start()  # the same file on the same port
        assert current_publish(turso_server.url) == prev["publish_id"]
        for t in STAR_TABLES:
            assert table_checksum(read_current(turso_server.url, t)) == prev["checksums"][t], t
        proxy.arm(float("inf"))
        res = publish(star)  # resumes the push
        assert current_publish(turso_server.url) == res["publish_id"]
        for t in STAR_TABLES:
            got = read_current(turso_server.url, t)
            assert len(got) == len(star[t]) and table_checksum(got) == res["checksums"][t], t
    finally:
        proxy.close()


# -- bad input and faults ------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["http", "sync"])
def test_unreachable_url_is_a_clear_error(bundled_run, bundled_cfg, mode) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    res = twmb("-q", "--out", bundled_cfg.out_dir, "publish", "--turso-mode", mode, *TO_TURSO, url)
    assert "cannot" in (text := error_text(res, 7)) and url in text


@pytest.fixture
def refusing_server() -> Iterator[str]:
    """A loopback HTTP server answering 401 to everything, like Turso with a wrong token."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b"Unauthorized")

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()


@pytest.mark.parametrize("mode", ["http", "sync"])
def test_wrong_token_is_refused_and_never_echoed(
    bundled_run, bundled_cfg, refusing_server, mode, monkeypatch
) -> None:
    secret = "tok-SECRET-3f9a7c1e"
    monkeypatch.setenv("TURSO_AUTH_TOKEN", secret)
    args = ["publish", "--turso-mode", mode, *TO_TURSO, refusing_server]
    for extra in ([], ["--json"]):
        res = twmb("--out", bundled_cfg.out_dir, *args, *extra)
        assert res.exit_code == 7
        assert "refused the token" in res.stdout + res.stderr
        assert secret not in res.stdout + res.stderr
    # a real process with debug logging on stderr
    res = _run(["--out", bundled_cfg.out_dir, "--verbose", *args])
    assert res.returncode == 7 and "refused the token" in res.stderr
    assert secret not in res.stderr + res.stdout


@pytest.mark.parametrize("name", ["fact_break", "a_1", "_x", "value", "date"])
def test_safe_identifiers_pass(name) -> None:
    assert safe_identifier(name) == name


@pytest.mark.parametrize(
    "name", ['x"; DROP TABLE dim_date; --', "Name", "1abc", "select", "a b", "", "é", "x" * 64]
)
def test_unsafe_identifiers_are_rejected(name) -> None:
    with pytest.raises(InputDataError, match="not a safe SQL identifier"):
        safe_identifier(name)


def test_an_unsafe_column_is_rejected_and_values_are_bound(empty_star, tmp_path) -> None:
    bad = dict(empty_star)
    bad["dim_model"] = empty_star["dim_model"].rename(columns={"kind": 'kind"; DROP TABLE x; --'})
    with pytest.raises(InputDataError, match="not a safe SQL identifier"):
        _publish_file(tmp_path / "bad.db", bad)
    with sqlite3.connect(tmp_path / "bad.db") as con:  # checked before anything is written
        assert con.execute("SELECT count(*) FROM sqlite_schema").fetchone() == (0,)
    evil = 'Robert\'); DROP TABLE "fact_break"; --'
    res = _publish_file(tmp_path / "ok.db", _variant(empty_star, evil))
    names = {r[2] for r in file_rows(tmp_path / "ok.db", "dim_neighbourhood")}
    assert names == {evil} and file_rows(tmp_path / "ok.db", "fact_break") == []
    assert res["rows"]["fact_break"] == 0


def test_a_newer_schema_version_is_refused(bundled_run, bundled_cfg, empty_star, tmp_path) -> None:
    path = tmp_path / "newer.db"
    _publish_file(path, empty_star)
    conn = turso.connect(str(path))
    conn.execute(
        "INSERT INTO \"twmb_schema_version\" VALUES (?, 'from the future', '2030-01-01')",
        (SCHEMA_VERSION + 1,),
    )
    conn.commit()
    conn.close()
    with pytest.raises(SchemaVersionError, match="upgrade twmb_geo"):
        _publish_file(path, _variant(empty_star, "new"))
    res = twmb(
        "-q", "--out", bundled_cfg.out_dir, "publish", "--to", "turso-file", "--turso-file", path
    )
    assert "upgrade twmb_geo" in error_text(res, 7)
    duck = tmp_path / "newer.duckdb"
    ok_json(
        twmb(
            "-q",
            "--out",
            bundled_cfg.out_dir,
            "publish",
            "--to",
            "duckdb",
            "--duckdb-file",
            duck,
            "--json",
        )
    )
    con = duckdb.connect(str(duck))
    con.execute('UPDATE "twmb_publish" SET "schema_version" = ?', [SCHEMA_VERSION + 1])
    con.close()
    res = twmb(
        "-q", "--out", bundled_cfg.out_dir, "publish", "--to", "duckdb", "--duckdb-file", duck
    )
    assert "upgrade twmb_geo" in error_text(res, 7)


def _publish_under_file_limit(cfg, path: Path, room: int) -> subprocess.CompletedProcess:
    """``twmb publish --to turso-file`` in a child that may not grow any file past the
    Turso file's size plus ``room`` bytes: a nearly full disk."""
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + room, size + room))

    return _run(
        ["-q", "--out", cfg.out_dir, "publish", "--to", "turso-file", "--turso-file", path],
        preexec_fn=limit,
    )


def _unchanged(path: Path, prev: dict, empty_star) -> None:
    for t in STAR_TABLES:
        assert table_checksum(file_rows(path, t)) == prev["checksums"][t], t
    assert _publish_file(path, empty_star)["changed"] is False


def test_disk_full_on_the_local_file_keeps_the_previous_publish(
    bundled_run, bundled_cfg, empty_star, tmp_path
) -> None:
    path = tmp_path / "full.db"
    prev = _publish_file(path, empty_star)
    # room for the largest row file (14 MB), not for the new database (33 MB)
    res = _publish_under_file_limit(bundled_cfg, path, 20_000_000)
    assert res.returncode == 7, res.stderr
    assert "disk full" in res.stderr and str(path) in res.stderr and "Traceback" not in res.stderr
    _unchanged(path, prev, empty_star)


def test_disk_full_in_the_row_files_keeps_the_previous_publish(
    bundled_run, bundled_cfg, empty_star, tmp_path
) -> None:
    """The spooled tables' row files (written beside their checksums) fail first: the
    message names the row file and the system's cause, and nothing is published."""
    path = tmp_path / "full.db"
    prev = _publish_file(path, empty_star)
    res = _publish_under_file_limit(bundled_cfg, path, 4_000_000)
    assert res.returncode == 7, res.stderr
    err = res.stderr
    assert "disk full" in err and "nothing was published" in err and "Traceback" not in err
    assert re.search(r"\.star\.spool-[^ ]*/rows/fact_\w+\.\d{6}\.sqlite", err), err
    assert re.search(r"\(the rows of fact_\w+\)", err), err
    _unchanged(path, prev, empty_star)
    assert not list(Path(bundled_cfg.out_dir).glob(".star.spool-*")), "spool folder left behind"


def test_remote_target_needs_a_url(bundled_run, bundled_cfg) -> None:
    res = twmb("-q", "--out", bundled_cfg.out_dir, "publish", "--to", "turso")
    assert "--turso-url" in error_text(res, 3)
    res = twmb("-q", "--out", bundled_cfg.out_dir, "publish", "--turso-url", "ftp://x.example")
    assert "not valid" in error_text(res, 3)


def test_infinite_values_are_refused_before_writing(empty_star, tmp_path) -> None:
    from twmb_geo.errors import ContractError

    bad = dict(empty_star)
    dim = empty_star["dim_neighbourhood"].copy()
    dim["area_km2"] = float("inf")
    bad["dim_neighbourhood"] = dim
    with pytest.raises(
        ContractError, match=r"dim_neighbourhood has infinite values in \['area_km2'\]"
    ):
        _publish_file(tmp_path / "inf.db", bad)


def test_tables_are_loaded_in_bounded_batches(empty_star, tmp_path, monkeypatch) -> None:
    """Rows reach the session a bounded batch at a time (memory bounded by the batch, not
    the table), and the publish holds every row once."""
    from twmb_geo.publish.turso import protocol

    monkeypatch.setattr(protocol, "LOAD_BATCH_ROWS", 1)
    tables = _variant(empty_star, "batched")
    session = connect(TursoTarget(mode="file", path=tmp_path / "b.db"))
    sizes: dict[str, list[int]] = {}
    real = session.insert

    def spy(table, columns, rows):
        sizes.setdefault(table, []).append(len(rows))
        return real(table, columns, rows)

    monkeypatch.setattr(session, "insert", spy)
    try:
        res = publish_tables(session, tables)
    finally:
        session.close()
    assert max(max(v) for v in sizes.values()) == 1
    big = [t for t in STAR_TABLES if len(tables[t]) > 1]
    assert big and all(len(sizes[t]) > 1 for t in big), sizes
    for t in STAR_TABLES:
        assert sum(sizes.get(t, [])) == len(tables[t]) == res["rows"][t], t
        assert len(file_rows(tmp_path / "b.db", t)) == len(tables[t]), t


def _spooled_fact(tmp_path: Path, tables: dict[str, pd.DataFrame], groups: list[int]):
    """``tables`` with its unit-year fact spooled to Parquet in row groups of ``groups`` rows."""
    from twmb_geo.publish.tables import spool_table

    fact = tables["fact_unit_year"]
    assert sum(groups) == len(fact)
    ends = np.cumsum([0, *groups])
    chunks = (fact.iloc[a:b] for a, b in pairwise(ends))
    schema = star_schema("fact_unit_year")
    spooled = spool_table(tmp_path / "fact.parquet", schema, chunks)
    return {**tables, "fact_unit_year": spooled}


def test_rows_made_ahead_in_a_background_process_are_the_rows_made_here(
    tmp_path, monkeypatch
) -> None:
    """A large spooled table's rows are made row groups ahead in a background process (the
    Turso load): the same rows, tagged, in the same order, in batches that do not cross a
    row group; a consumer that stops early stops the process; a bad value found there is
    the same contract error."""
    from twmb_geo.errors import ContractError
    from twmb_geo.publish import base
    from twmb_geo.publish.tables import frame_of

    star = star_with_fact(1_000)
    star["fact_unit_year"].loc[[3, 500], "exposure_km"] = np.nan  # nulls cross the process
    groups = [1, 7, 0, 300, 692]
    spooled = _spooled_fact(tmp_path, star, groups)["fact_unit_year"]
    schema = star_schema("fact_unit_year")
    rows = base.StarRows(spooled, schema)
    entered: list[int] = []
    real = base.background_process

    def counted():
        entered.append(1)
        return real()

    monkeypatch.setattr(base, "background_process", counted)
    monkeypatch.setattr(base, "AHEAD_ROWS", 1_001)  # one row short: made here
    here = list(rows.batches(50, tag=("p-1",), ahead=True))
    assert entered == []
    monkeypatch.setattr(base, "AHEAD_ROWS", 1_000)
    ahead = list(rows.batches(50, tag=("p-1",), ahead=True))
    assert entered == [1]
    want = frame_rows(frame_of(spooled), schema, ("p-1",))
    assert want[3][len(schema.columns) - 2] is None and want[0][-1] == "p-1"
    assert [r for b in ahead for r in b] == want == [r for b in here for r in b]
    sizes = [len(b) for b in ahead]
    assert sizes == [1, 7, *[50] * 6, *[50] * 13, 42], sizes  # 300 = 6 x 50; 692 = 13 x 50 + 42

    first = rows.batches(50, ahead=True)
    assert next(first) == frame_rows(frame_of(spooled).iloc[:1], schema)
    first.close()  # stops the background process (would hang here if it did not)

    bad = star["fact_unit_year"].copy()
    bad.loc[900, "rate_per_100km"] = np.inf
    (tmp_path / "bad").mkdir()
    worse = _spooled_fact(tmp_path / "bad", {**star, "fact_unit_year": bad}, groups)
    with pytest.raises(ContractError, match=r"fact_unit_year has infinite values"):
        list(base.StarRows(worse["fact_unit_year"], schema).batches(50, ahead=True))


def test_a_spooled_fact_made_ahead_loads_the_same_turso_file(tmp_path, monkeypatch) -> None:
    """The Turso load of a spooled fact whose rows are made in a background process writes
    the same rows as one made in this process, every row once."""
    from twmb_geo.publish import base

    star = star_with_fact(2_000)
    tables = _spooled_fact(tmp_path, star, [2, 998, 0, 1_000])
    got = {}
    for at in (1, 10**9):
        monkeypatch.setattr(base, "AHEAD_ROWS", at)
        path = tmp_path / f"ahead-{at}.db"
        res = _publish_file(path, tables)
        assert res["rows"]["fact_unit_year"] == 2_000
        got[at] = {t: file_rows(path, t) for t in STAR_TABLES}
        assert table_checksum(got[at]["fact_unit_year"]) == res["checksums"]["fact_unit_year"]
    assert got[1] == got[10**9]
    assert len(set(got[1]["fact_unit_year"])) == 2_000


def test_a_load_committed_in_steps_and_stopped_keeps_the_previous_publish(
    empty_star, tmp_path, monkeypatch
) -> None:
    """A local load commits every ``COMMIT_ROWS`` rows (SQLite's WAL is folded into the file
    only after a commit); stopped half-way after several commits, the file in place is not
    touched (the load went to a copy, which is removed), and the next publish of the same
    content completes."""
    from twmb_geo.publish.turso import protocol
    from twmb_geo.publish.turso import session as sessions

    monkeypatch.setattr(protocol, "LOAD_BATCH_ROWS", 1)
    monkeypatch.setattr(sessions, "COMMIT_ROWS", 2)
    path = tmp_path / "steps.db"
    prev = _publish_file(path, empty_star)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    tables = _variant(empty_star, "stepped")
    session = connect(TursoTarget(mode="file", path=path))
    real, calls = session.insert, []
    statements: list[str] = []
    session.conn.set_trace_callback(statements.append)

    def stop_after_some(table, columns, rows):
        calls.append(table)
        if len(calls) == 9:
            raise OSError("the publisher stops here")
        return real(table, columns, rows)

    monkeypatch.setattr(session, "insert", stop_after_some)
    try:
        with pytest.raises(OSError, match="stops here"):
            publish_tables(session, tables)
    finally:
        session.close()
    # the half load was committed in steps before it stopped
    assert statements.count("COMMIT") >= 4
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["steps.db"]
    for t in STAR_TABLES:
        assert table_checksum(file_rows(path, t)) == prev["checksums"][t], t
    res = _publish_file(path, tables)
    assert res["changed"] is True and res["previous"] == prev["publish_id"]
    conn = turso.connect(str(path))
    try:
        for t in STAR_TABLES:
            assert table_checksum(file_rows(path, t)) == res["checksums"][t], t
            n = conn.execute(
                f'SELECT count(*) FROM "{t}" WHERE "publish_id" = ?', (res["publish_id"],)
            ).fetchall()[0][0]
            assert n == len(tables[t]), t  # the half load's rows are gone, none twice
    finally:
        conn.close()


@pytest.mark.parametrize("columns", [1, 3, 12, 40])
@pytest.mark.parametrize("n", [0, 1, 99, 257])
def test_local_inserts_of_many_rows_per_statement_keep_every_row_in_order(
    tmp_path, columns, n
) -> None:
    """A local session inserts several rows per statement (at most 999 values each) and the
    rest one at a time; the table holds every row, in order, with its values and types."""
    from twmb_geo.publish.turso import session as sessions

    k = sessions.rows_per_statement(columns)
    assert 1 <= k <= sessions.ROWS_PER_STATEMENT and k * columns <= max(999, columns)
    names = [f"c{i}" for i in range(columns)]
    kinds = [(i % 4) for i in range(columns)]  # integer, real, text, null-heavy real
    values = {0: lambda r: r * 7 - 3, 1: lambda r: r / 3.0, 2: lambda r: f"t{r}'\"x"}
    rows = [
        tuple(
            (None if r % 5 == 0 else r * 0.25) if kind == 3 else values[kind](r) for kind in kinds
        )
        for r in range(n)
    ]
    path = tmp_path / "many.db"
    conn = turso.connect(str(path))
    try:
        cols = ", ".join(f'"{c}"' for c in names)
        conn.execute(f'CREATE TABLE "t" ({cols})')
        sessions._insert_many(conn, "t", names, rows)
        conn.commit()
        got = [tuple(r) for r in conn.execute(f'SELECT {cols} FROM "t" ORDER BY rowid').fetchall()]
    finally:
        conn.close()
    assert got == rows
