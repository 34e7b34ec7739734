"""Large stars write their portable targets (folder, DuckDB) in a background process while
the Turso targets are written here: the same files and rows as one after another; a
failure or a dead background process is a clear error; a killed publish leaves no writer."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import turso

from twmb_geo.core.background import background_process, run_in
from twmb_geo.core.compute import jobs_plan, parallel_map
from twmb_geo.errors import PublishError
from twmb_geo.publish import stage
from twmb_geo.publish.base import PreparedStar, TargetResult, prepare_star
from twmb_geo.publish.duckdb_target import DuckDBTarget
from twmb_geo.publish.files import FolderTarget
from twmb_geo.publish.sql import reader_sql
from twmb_geo.publish.star import STAR_TABLES, build_star
from twmb_geo.publish.tables import StarTable
from twmb_geo.publish.turso import SCHEMA_VERSION, TursoPublishTarget, TursoTarget
from twmb_geo.publish.values import table_checksum
from twmb_geo.store.duckdb_store import Store


@pytest.fixture(scope="module")
def small_star(tmp_path_factory) -> tuple[dict[str, pd.DataFrame], PreparedStar]:
    """The star of an empty store (unknown rows only) and its prepared rows."""
    with Store(tmp_path_factory.mktemp("empty") / "e.duckdb") as store:
        tables = build_star(store)
    return tables, prepare_star(tables, threads=1)


def _targets(root: Path) -> list:
    folder = FolderTarget(root / "star", ("parquet", "csv"), SCHEMA_VERSION, threads=1)
    duck = DuckDBTarget(root / "star.duckdb", SCHEMA_VERSION, source="test")
    spec = TursoTarget(mode="file", path=root / "turso" / "star.db")
    chosen = [folder, duck, TursoPublishTarget("turso-file", spec, source="test")]
    for t in chosen:
        t.check()
    return chosen


def _write(chosen: list, star: tuple[dict[str, pd.DataFrame], PreparedStar]) -> list[dict]:
    try:
        return stage._write(chosen, *star)
    finally:
        for t in chosen:
            t.close()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.*"))}


def _turso_sums(path: Path) -> dict[str, str]:
    conn = turso.connect(str(path))
    try:
        return {t: table_checksum(conn.execute(reader_sql(t)).fetchall()) for t in STAR_TABLES}
    finally:
        conn.close()


def _duck_tables(path: Path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f'SELECT * FROM "{t}"').df() for t in STAR_TABLES}
    finally:
        con.close()


def test_background_targets_write_what_a_sequence_writes(small_star, tmp_path, monkeypatch):
    """Every target in order, and the portable ones in a background process: the same
    results (in target order), byte-identical folder files, the same DuckDB tables and the
    same Turso rows."""
    monkeypatch.setattr(stage, "BACKGROUND_ROWS", 10**12)
    one_by_one = _write(_targets(tmp_path / "seq"), small_star)
    monkeypatch.setattr(stage, "BACKGROUND_ROWS", 0)
    started = []
    real = stage.background_process

    def watched():
        started.append(True)
        return real()

    monkeypatch.setattr(stage, "background_process", watched)
    beside = _write(_targets(tmp_path / "bg"), small_star)
    assert started, "the portable targets were not written in the background"
    assert [r["target"] for r in beside] == ["folder", "duckdb", "turso-file"]
    for a, b in zip(one_by_one, beside, strict=True):
        a, b = dict(a), dict(b)
        assert str(a.pop("location")).replace("/seq/", "/bg/") == str(b.pop("location"))
        assert a == b
    assert _files(tmp_path / "seq" / "star") == _files(tmp_path / "bg" / "star")
    seq, bg = (
        _duck_tables(tmp_path / "seq" / "star.duckdb"),
        _duck_tables(tmp_path / "bg" / "star.duckdb"),
    )
    for t in STAR_TABLES:
        pd.testing.assert_frame_equal(seq[t], bg[t])
    sums = _turso_sums(tmp_path / "seq" / "turso" / "star.db")
    assert sums == _turso_sums(tmp_path / "bg" / "turso" / "star.db")


def test_a_background_failure_is_raised_and_the_others_are_written(
    small_star, tmp_path, monkeypatch
):
    """The folder cannot be written (its parent is a file): the folder's own error is
    raised, from the background process; the Turso file beside it is whole."""
    monkeypatch.setattr(stage, "BACKGROUND_ROWS", 0)
    (tmp_path / "blocked").write_text("a file where the folder's parent should be")
    chosen = _targets(tmp_path)
    chosen[0] = FolderTarget(tmp_path / "blocked" / "star", ("parquet",), SCHEMA_VERSION, 1)
    with pytest.raises(PublishError) as err:
        _write(chosen, small_star)
    assert "blocked" in str(err.value)
    assert _turso_sums(tmp_path / "turso" / "star.db") == small_star[1].checksums


class DyingTarget:
    """A portable target whose process dies while it writes."""

    name = "folder"
    portable = True
    reads_row_files = False

    def check(self) -> None:
        pass

    def write(self, tables: dict[str, StarTable], prepared: PreparedStar) -> TargetResult:
        os._exit(3)

    def close(self) -> None:
        pass


def test_a_dead_background_process_is_a_clear_error(small_star, tmp_path, monkeypatch):
    monkeypatch.setattr(stage, "BACKGROUND_ROWS", 0)
    chosen = _targets(tmp_path)
    chosen[0] = DyingTarget()
    with pytest.raises(PublishError, match=r"process writing \['folder', 'duckdb'\] died"):
        _write(chosen, small_star)


def _children() -> int:
    return len(multiprocessing.active_children())


def _squares(n: int) -> list[int]:
    plan = jobs_plan(2, n)  # two worker processes, whatever the cores
    return list(parallel_map(pow, [(i, 2) for i in range(n)], plan, window=n))


def test_the_background_process_leaves_a_core_here_and_no_workers_behind():
    """The background process runs on every core but one (this process's); worker pools
    a task started are stopped when it ends (else the process waits up to 300 s for them
    when it exits)."""
    here = sorted(os.sched_getaffinity(0))
    with background_process() as ex:
        there = run_in(ex, os.sched_getaffinity, 0).result()
        assert sorted(there) == (here[1:] if len(here) > 1 else here)
        assert run_in(ex, _squares, 6).result() == [i * i for i in range(6)]
        assert run_in(ex, _children).result() == 0


def test_the_background_process_exits_when_its_parent_is_killed(tmp_path):
    """A publish killed mid-write leaves no background writer: the process exits within a
    second of its parent's death instead of finishing its work. The parent's script is
    read from stdin (``python -``), whose path ``<stdin>`` a spawned process cannot load."""
    (tmp_path / "slow.py").write_text(
        textwrap.dedent(
            """
            import time
            from pathlib import Path

            def touch_later(path):
                time.sleep(2)
                Path(path).write_text("written after the parent died")
            """
        )
    )
    script = textwrap.dedent(
        f"""
        import os, sys, time
        sys.path.insert(0, {str(tmp_path)!r})
        from slow import touch_later
        from twmb_geo.core.background import background_process, run_in
        with background_process() as ex:
            print(run_in(ex, os.getpid).result(), flush=True)
            run_in(ex, touch_later, {str(tmp_path / "late.txt")!r})
            time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdin is not None and parent.stdout is not None
    parent.stdin.write(script)
    parent.stdin.close()
    child = int(parent.stdout.readline())
    assert child != parent.pid
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text()
    assert not (tmp_path / "late.txt").exists()
