"""I/O failures end with a documented exit code and a plain message (issue 15, case 5 and the
publish/log parts of case 10).

Each failure is real, in a child ``twmb`` process: a full disk is the file size limit
(``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored so writes fail with ``EFBIG``); a read-only
output folder is a read-only bind mount in a user namespace (``unshare -rm``: ``EROFS``)
or an immutable folder (``chattr +i``: ``EPERM`` even for root, who ignores permission
bits); an output folder that is a file is just that. Each test names the case and what
``main`` did before.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import turso
from cli_helpers import error_text, flat, ok_json, show, twmb
from conftest import REPO
from turso_server import KillingProxy, current_publish

import twmb_geo as tw
from twmb_geo.errors import PublishError
from twmb_geo.publish.base import prepare_star
from twmb_geo.publish.duckdb_target import write_star_duckdb
from twmb_geo.publish.star import build_star
from twmb_geo.publish.turso import SCHEMA_VERSION, TursoTarget, connect, publish_tables
from twmb_geo.publish.turso.migrations import MIGRATIONS
from twmb_geo.store.duckdb_store import Store
from twmb_geo.synth import make_city, write_city

#: ``twmb`` of this checkout (the venv's script may belong to another one)
TWMB = [sys.executable, "-m", "twmb_geo.cli"]


# -- helpers -------------------------------------------------------------------------------
def _limit(nbytes: int) -> Callable[[], None]:
    """A child that may not grow any file past ``nbytes``: a nearly full disk (EFBIG)."""

    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return pre


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env.pop("TWMB_CONFIG", None)
    return {**env, "PYTHONPATH": str(REPO), "COLUMNS": "400", "OMP_NUM_THREADS": "1", **extra}


def _run(
    args: list[object], *, prefix: list[str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    argv = [*(prefix or []), *TWMB, *map(str, args)]
    kw.setdefault("env", _env())
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)


def _error(res: subprocess.CompletedProcess[str], code: int) -> str:
    """The one-line error of a clean failure with exit ``code``."""
    text = res.stderr + res.stdout
    assert res.returncode == code, f"exit {res.returncode}\n{text}"
    assert "Traceback" not in text and "unexpected error" not in text, text
    assert "error:" in res.stderr, text
    return flat(res.stderr[res.stderr.index("error:") :])


def _staging_left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".staging" in p.name or ".tmp-" in p.name)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tw.Config:
    """A small synthetic city (breaks and neighbourhoods only), ingested once into ``out``."""
    root = tmp_path_factory.mktemp("hardening_io")
    paths = write_city(make_city(n_pipes=300, seed=7), root / "city")
    cfg = tw.load_config(paths["config"], out=root / "out")
    keep = {"breaks", "neighbourhoods"}
    cfg = replace(
        cfg, h3_resolution=7, sources=tuple(replace(s, enabled=s.id in keep) for s in cfg.sources)
    )
    written = tw.write_config(cfg, Path(paths["config"]).with_name("io.toml"), overwrite=True)
    cfg = tw.load_config(written, out=root / "out")
    tw.ingest_sources(cfg)
    return cfg


@pytest.fixture
def out(city: tw.Config, tmp_path: Path) -> Path:
    """A copy of the ingested output folder, for one test to break."""
    dest = tmp_path / "out"
    shutil.copytree(city.out_dir, dest)
    (dest / ".twmb.lock").unlink(missing_ok=True)
    return dest


def _cfg(city: tw.Config, out: Path) -> tw.Config:
    return tw.load_config(city.path, out=out)


def _breaks(store: Path) -> int:
    with Store(store, read_only=True) as s:
        return s.count("breaks")


@pytest.fixture(scope="module")
def empty_star(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """The star schema of an empty store: a small publish, different from the city's."""
    with Store(tmp_path_factory.mktemp("empty") / "e.duckdb") as store:
        return build_star(store)


# -- case 5a: disk full during ingest ------------------------------------------------------
def test_disk_full_during_ingest_is_a_store_error_and_the_store_is_unchanged(
    city: tw.Config, out: Path
) -> None:
    """Before: exit 1, "unexpected error: TransactionException: ... File too large"."""
    before = _breaks(out / "twmb.duckdb")
    res = _run(["-q", "--config", city.path, "--out", out, "ingest"], preexec_fn=_limit(200_000))
    msg = _error(res, 5)
    assert "ingest failed" in msg and "disk full" in msg, msg
    assert str(out / "twmb.duckdb") in msg, msg  # the file (the store or its WAL)
    assert _breaks(out / "twmb.duckdb") == before  # the failed source left the store as it was
    doc = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert doc["status"] == "failed" and "disk full" in doc["error"]


# -- case 5b: read-only output folder ------------------------------------------------------
def _ro_mount(folder: Path) -> list[str] | None:
    """``unshare`` prefix running a command with ``folder`` bind-mounted read-only, or None
    when user namespaces are not available here."""
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        return None
    script = (
        f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && exec "$@"'
    )
    return ["unshare", "-rm", "sh", "-c", script, "sh"]


@pytest.fixture(params=["read-only-mount", "immutable-folder"])
def read_only(request: pytest.FixtureRequest, out: Path) -> Iterator[list[str]]:
    """How to run a child on a read-only ``out``: a read-only bind mount (EROFS), or
    ``chattr +i`` on the folder (EPERM for root too); skipped where neither works."""
    if request.param == "read-only-mount":
        prefix = _ro_mount(out)
        if prefix is None:
            pytest.skip("no user namespaces here (unshare -rm)")
        yield prefix
        return
    if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        yield []
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)


@pytest.mark.parametrize("command", ["ingest", "publish"])
def test_read_only_output_folder_is_a_store_error(
    city: tw.Config, out: Path, read_only: list[str], command: str
) -> None:
    """Before: exit 1, "unexpected error: OSError: [Errno 30] Read-only file system"."""
    before = _breaks(out / "twmb.duckdb")
    res = _run(["-q", "--config", city.path, "--out", out, command], prefix=read_only)
    msg = _error(res, 5)
    assert "read-only" in msg and f"output folder {out}" in msg, msg
    assert str(out) in msg
    assert _breaks(out / "twmb.duckdb") == before


# -- case 5c: folder publish on a full disk ------------------------------------------------
def test_folder_publish_on_a_full_disk_leaves_no_staging_and_the_previous_folder(
    city: tw.Config, out: Path
) -> None:
    """Before: exit 1 ("unexpected error: OSError: ... File too large") and a
    ``.star.staging-*`` folder left behind."""
    tw.publish_star(_cfg(city, out), targets=["folder"])
    star = out / "star"
    previous = (star / "manifest.json").read_text(encoding="utf-8")
    files = sorted(p.relative_to(star) for p in star.rglob("*"))
    res = _run(
        ["-q", "--config", city.path, "--out", out, "publish", "--to", "folder"],
        preexec_fn=_limit(100_000),
    )
    msg = _error(res, 7)
    assert "disk full" in msg and f"star folder {star}" in msg, msg
    assert f"{star}/" in msg  # the file, as it is called in the folder
    assert _staging_left(out) == []
    assert (star / "manifest.json").read_text(encoding="utf-8") == previous
    assert sorted(p.relative_to(star) for p in star.rglob("*")) == files


# -- case 5d: the output folder is a file --------------------------------------------------
def test_output_folder_that_is_a_file_is_a_config_error(city: tw.Config, tmp_path: Path) -> None:
    """Before: exit 1, "unexpected error: NotADirectoryError" (--out below a file) or
    "FileExistsError" ([project] out naming a file)."""
    a_file = tmp_path / "results"
    a_file.write_text("not a folder\n", encoding="utf-8")
    msg = error_text(twmb("-q", "--config", city.path, "--out", a_file / "sub", "ingest"), 2)
    assert f"{a_file} is a file, not a folder" in msg, msg
    # a config beside the city's (its sources resolve the same) whose [project] out is a file
    path = tw.write_config(replace(city, out=a_file), city.root / "file-out.toml", overwrite=True)
    msg = error_text(twmb("-q", "--config", path, "ingest"), 2)
    assert f"output folder {a_file} is a file, not a folder" in msg, msg
    assert a_file.read_text(encoding="utf-8") == "not a folder\n"


# -- case 5e: the DuckDB target on a full disk ---------------------------------------------
def test_duckdb_publish_on_a_full_disk_says_disk_full_and_keeps_the_previous(
    city: tw.Config, out: Path, empty_star: dict[str, pd.DataFrame]
) -> None:
    """Before: exit 7 with "TransactionContext Error: cannot rollback - no transaction is
    active" (or "Current transaction is aborted"): the cause was lost; a first publish left
    an empty file."""
    path = out / "star.duckdb"
    prev = prepare_star(empty_star)
    write_star_duckdb(
        empty_star,
        path,
        publish_id=prev.publish_id,
        schema_version=SCHEMA_VERSION,
        checksums=prev.checksums,
    )
    args = ["-q", "--config", city.path, "--out", out, "publish", "--to", "duckdb"]
    msg = _error(_run(args, preexec_fn=_limit(300_000)), 7)
    assert "disk full" in msg and str(path) in msg, msg
    assert "transaction" not in msg.lower(), msg
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute('SELECT "publish_id" FROM "twmb_publish"').fetchall() == [
            (prev.publish_id,)
        ]
    finally:
        con.close()
    # a first publish on a full disk leaves no file at all
    first = out / "first.duckdb"
    msg = _error(_run([*args, "--duckdb-file", first], preexec_fn=_limit(300_000)), 7)
    assert "disk full" in msg and str(first) in msg and "nothing was published" in msg, msg
    assert not first.exists() and not list(out.glob(".first.duckdb*"))


# -- case 10f: a sync re-publish that pushed data -------------------------------------------
def test_sync_republish_that_resumes_a_push_does_not_say_unchanged(
    city: tw.Config, out: Path, empty_star: dict[str, pd.DataFrame], turso_server
) -> None:
    """Before: the publish that completed an interrupted push printed "(unchanged)" and
    reported changed=false with previous = the publish it had just pushed."""
    old = TursoTarget(mode="http", url=turso_server.url)
    session = connect(old)
    try:
        before = publish_tables(session, empty_star)["publish_id"]
    finally:
        session.close()
    proxy = KillingProxy(turso_server)
    try:
        cfg = _cfg(city, out)
        proxy.arm(200_000)  # the server dies 200 kB into the push
        with pytest.raises(PublishError, match="pushing to"):
            tw.publish_star(cfg, targets=["turso"], turso_url=proxy.url, turso_mode="sync")
        turso_server.start()
        assert current_publish(turso_server.url) == before
        proxy.arm(float("inf"))
        args = ["--config", city.path, "--out", out, "publish", "--to", "turso"]
        r = twmb("-q", *args, "--turso-mode", "sync", "--turso-url", proxy.url, "--json")
        target = ok_json(r)["targets"][0]
        assert target["changed"] is True and target["resumed"] is True, target
        assert target["previous"] == before, target
        assert current_publish(turso_server.url) == target["publish_id"]
        # the next one is really unchanged, and says so
        r = twmb("-q", *args, "--turso-mode", "sync", "--turso-url", proxy.url)
        assert r.exit_code == 0, show(r)
        assert "(unchanged)" in flat(r.stdout), r.stdout
    finally:
        proxy.close()


def test_resumed_push_is_worded_as_a_push(capsys: pytest.CaptureFixture[str]) -> None:
    """The human summary of a resumed push (the line that said "(unchanged)")."""
    from twmb_geo.cli._common import consoles
    from twmb_geo.cli.outputs import _print_publish

    consoles.bind()  # onto the captured stdout
    _print_publish(
        {
            "publish_id": "star-x",
            "rows": {"fact_break": 1},
            "targets": [
                {"target": "turso", "location": "http://h", "changed": True, "resumed": True},
                {"target": "duckdb", "location": "/d", "changed": False},
                {"target": "folder", "location": "/f", "changed": True},
            ],
        }
    )
    text = flat(capsys.readouterr().out)
    assert "turso: http://h (pushed: the interrupted push of this publish was completed)" in text
    assert "duckdb: /d (unchanged)" in text and "folder: /f (written)" in text


# -- case 10g: a killed first publish to a Turso file --------------------------------------
def test_killed_first_turso_file_publish_leaves_no_database_file(
    city: tw.Config, out: Path
) -> None:
    """Before: the killed first publish left ``twmb_star.db`` (empty, or the tables of the
    first migration without a row) where readers open it."""
    folder = out / "turso"
    db = folder / "twmb_star.db"
    proc = subprocess.Popen(
        [
            *TWMB,
            "-q",
            "--config",
            str(city.path),
            "--out",
            str(out),
            "publish",
            "--to",
            "turso-file",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    deadline = time.monotonic() + 120
    try:  # the session opens (check) seconds before the star is built and written
        while time.monotonic() < deadline and proc.poll() is None:
            if folder.exists() and any(folder.iterdir()):
                break
            time.sleep(0.002)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, "the publish finished before it could be killed"
    assert not db.exists(), sorted(p.name for p in folder.iterdir())
    # the next publish clears the dead one's temporary file and writes the database whole
    cfg = _cfg(city, out)
    res = tw.publish_star(cfg, targets=["turso-file"])
    assert res.targets[0]["changed"] is True
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith("-wal")) == [db.name]
    conn = turso.connect(str(db))
    try:
        assert conn.execute('SELECT "publish_id" FROM "twmb_current"').fetchall() == [
            (res.publish_id,)
        ]
    finally:
        conn.close()


@pytest.mark.parametrize("leftover", ["empty-file", "tables-without-rows"])
def test_a_leftover_empty_turso_file_is_replaced_whole(
    city: tw.Config, out: Path, leftover: str
) -> None:
    """What an older version's killed first publish left: the next publish replaces it by a
    complete database in one rename (never publishing into it in place)."""
    db = out / "turso" / "twmb_star.db"
    db.parent.mkdir(parents=True)
    if leftover == "empty-file":
        db.write_bytes(b"")
    else:
        conn = turso.connect(str(db))
        for stmt in MIGRATIONS[0].statements():
            conn.execute(stmt)
        conn.commit()
        conn.close()
    inode = db.stat().st_ino
    res = tw.publish_star(_cfg(city, out), targets=["turso-file"])
    assert res.targets[0]["changed"] is True and res.targets[0]["previous"] is None
    assert db.stat().st_ino != inode  # a new file, renamed into place
    conn = turso.connect(str(db))
    try:
        assert conn.execute('SELECT "publish_id" FROM "twmb_current"').fetchall() == [
            (res.publish_id,)
        ]
        got = conn.execute('SELECT count(*) FROM "fact_break"').fetchone()[0]
        assert got == res.rows["fact_break"]
    finally:
        conn.close()
    assert not list(db.parent.glob(".twmb_star.db.tmp-*"))


# -- case 10h: no escape codes in redirected logs ------------------------------------------
def test_logs_redirected_to_a_file_carry_no_escape_codes(city: tw.Config, out: Path) -> None:
    """Before: with FORCE_COLOR or TTY_COMPATIBLE set (CI systems set them), stderr
    redirected to a file held colour codes and progress-bar cursor moves."""
    log = out.parent / "twmb.log"
    with log.open("w", encoding="utf-8") as err:
        res = subprocess.run(
            [*TWMB, "--config", str(city.path), "--out", str(out), "ingest"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=_env(FORCE_COLOR="1", TTY_COMPATIBLE="1"),
            timeout=600,
        )
    text = log.read_text(encoding="utf-8")
    assert res.returncode == 0, text
    assert "INFO" in text  # the logs are there ...
    assert "\x1b[" not in text and "\x1b" not in text  # ... as plain text
    assert "\x1b" not in res.stdout


# -- known gaps closed: the folder swap and the HTML map --------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_exchange_swaps_two_folders_in_one_step(tmp_path: Path) -> None:
    from twmb_geo.core.files import exchange

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "f").write_text("b")
    assert exchange(tmp_path / "a", tmp_path / "b")  # Linux, glibc >= 2.28 here
    assert (tmp_path / "a" / "f").read_text() == "b"
    assert (tmp_path / "b" / "f").read_text() == "a"


def test_folder_publish_swaps_without_a_moment_with_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: ``star`` was renamed away, then the staging folder renamed in: a reader (or a
    kill) between the two saw no ``star`` folder."""
    import twmb_geo.publish.files as files

    with tw.open_store(tmp_path / "empty.duckdb") as s:
        tables = build_star(s)
    star = tmp_path / "star"
    files.write_star_folder(tables, star)
    seen: list[bool] = []
    real = files.exchange

    def watched(a: Path, b: Path) -> bool:
        ok = real(a, b)
        seen.append(star.is_dir())  # right after the swap
        return ok

    monkeypatch.setattr(files, "exchange", watched)
    files.write_star_folder(tables, star, run_id="second")
    assert seen == [True]
    assert json.loads((star / "manifest.json").read_text())["run_id"] == "second"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".star")] == []


def test_publish_killed_between_the_two_renames_is_restored(tmp_path: Path) -> None:
    """Before: where folders cannot be exchanged, a publish killed between its renames left
    no ``star`` folder, and the next publish deleted the previous one (as a dead leftover)
    before writing. Now the previous publish is put back first."""
    from twmb_geo.publish.files import _remove_dead_leftovers

    star = tmp_path / "star"
    pid = _dead_pid()
    old = tmp_path / f".star.old-{pid}-abcd1234"
    staging = tmp_path / f".star.staging-{pid}-abcd1234"
    old.mkdir()
    (old / "manifest.json").write_text('{"run_id": "previous"}')
    staging.mkdir()
    _remove_dead_leftovers(star)
    assert json.loads((star / "manifest.json").read_text())["run_id"] == "previous"
    assert not old.exists() and not staging.exists()


def test_html_map_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: ``path.write_bytes``: a kill mid-write left a truncated map page."""
    import twmb_geo.maps.interactive as interactive

    calls: list[Path] = []
    real = interactive.atomic_write

    def spy(path: Path, data: bytes, **kw: object) -> Path:
        calls.append(path)
        return real(path, data)

    monkeypatch.setattr(interactive, "atomic_write", spy)
    monkeypatch.setattr(interactive, "html_map", lambda layers, **kw: ("<html></html>", {}))
    interactive.write_html_map({}, tmp_path / "m.html")
    assert calls == [tmp_path / "m.html"]
    assert (tmp_path / "m.html").read_text() == "<html></html>"
