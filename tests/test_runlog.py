"""Run lock and run manifest: one command per output folder, every stage recorded as it goes,
failures and kills recorded (issue 15, cases 3 and 6)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import error_text, flat, show, twmb
from conftest import small_cells_city

import twmb_geo as tw
from twmb_geo.core.lock import LOCK_NAME, FolderLockedError, holder, run_lock
from twmb_geo.store.duckdb_store import Store
from twmb_geo.store.runlog import active_manifest, command

TWMB = str(Path(sys.executable).with_name("twmb"))


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def _runs(store_path: Path) -> list[tuple]:
    with Store(store_path) as s:
        return list(
            s.query("SELECT run_id, command, status FROM runs ORDER BY started_at").itertuples(
                index=False, name=None
            )
        )


_HOLDER = """
import sys, time
from twmb_geo.core.lock import run_lock
with run_lock(sys.argv[1], "run"):
    print("locked", flush=True)
    time.sleep(60)
"""


def _hold_in_child(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


# --------------------------------------------------------------------------- the lock
def test_second_process_is_refused_and_a_dead_holder_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proc = _hold_in_child(tmp_path)
    try:
        with pytest.raises(FolderLockedError) as info, run_lock(tmp_path, "features"):
            pass
        msg = str(info.value)
        assert f"PID {proc.pid}" in msg and "`twmb run`" in msg and "started" in msg
        assert info.value.exit_code == 5
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the system released the dead process's lock; its record is taken over with a warning
    with run_lock(tmp_path, "features") as rec:
        assert rec["took_over"]["pid"] == proc.pid
        assert holder(tmp_path)["pid"] == os.getpid()  # type: ignore[index]
    assert "took over the lock" in caplog.text
    assert (tmp_path / LOCK_NAME).read_text(encoding="utf-8") == ""  # released cleanly
    with run_lock(tmp_path, "features") as rec:
        assert "took_over" not in rec


def test_nested_commands_share_the_lock(tmp_path: Path) -> None:
    with run_lock(tmp_path, "run"):
        with run_lock(tmp_path, "ingest"):
            assert holder(tmp_path)["command"] == "run"  # type: ignore[index]
        assert holder(tmp_path)["command"] == "run"  # type: ignore[index]
    assert holder(tmp_path) is None


# --------------------------------------------------------------------------- the manifest
def test_stages_are_recorded_as_they_go_and_failures_with_their_error(tmp_path: Path) -> None:
    out, store = tmp_path / "out", tmp_path / "out" / "twmb.duckdb"
    out.mkdir()
    Store(store).close()
    seen: list[dict] = []
    with pytest.raises(RuntimeError, match="boom"), command(out, store, "run", as_stage=False):
        with command(out, store, "ingest"):
            seen.append(_manifest(out))
        with command(out, store, "features"):
            seen.append(_manifest(out))
            raise RuntimeError("boom")
    assert [s["status"] for s in seen[0]["stages"]] == ["running"]
    assert [(s["stage"], s["status"]) for s in seen[1]["stages"]] == [
        ("ingest", "ok"),
        ("features", "running"),
    ]
    doc = _manifest(out)
    assert doc["status"] == "failed" and doc["error"] == "RuntimeError: boom"
    assert doc["finished_at"] is not None
    assert [(s["stage"], s["status"], s["error"]) for s in doc["stages"]] == [
        ("ingest", "ok", None),
        ("features", "failed", "RuntimeError: boom"),
    ]
    assert _runs(store) == [(doc["run_id"], "run", "failed")]
    assert active_manifest() is None and holder(out) is None


def test_ctrl_c_is_recorded_as_interrupted(tmp_path: Path) -> None:
    out, store = tmp_path, tmp_path / "twmb.duckdb"
    with pytest.raises(KeyboardInterrupt), command(out, store, "train"):
        raise KeyboardInterrupt
    doc = _manifest(out)
    assert doc["status"] == "interrupted"
    assert doc["stages"][0]["status"] == "interrupted"


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tw.Config:
    root = tmp_path_factory.mktemp("runlog")
    cfg = small_cells_city(root, n_pipes=300, seed=7)
    assert cfg.path is not None
    written = tw.write_config(cfg, cfg.path.with_name("runlog.toml"), overwrite=True)
    return tw.load_config(written, out=root / "out")


def test_run_failing_in_a_later_stage_says_so(
    city: tw.Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before: the manifest and the runs row said "ok" with the end of ingest as the end."""
    out = tmp_path / "out"

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("feature stage exploded")

    monkeypatch.setattr("twmb_geo.api._build_features", boom)
    r = twmb("--config", city.path, "--out", out, "run", "--no-publish", "--no-report")
    assert r.exit_code == 1, show(r)
    doc = _manifest(out)
    assert doc["command"] == "run" and doc["status"] == "failed"
    assert "feature stage exploded" in doc["error"]
    assert [(s["stage"], s["status"]) for s in doc["stages"]] == [
        ("ingest", "ok"),
        ("features", "failed"),
    ]
    assert doc["sources"] and doc["inputs"]  # the ingest's details are in the run's manifest
    assert _runs(out / "twmb.duckdb") == [(doc["run_id"], "run", "failed")]


def test_second_command_refused_then_killed_run_recorded_as_interrupted(
    city: tw.Config, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [TWMB, "-q", "--config", city.path, "--out", out, "run", "--no-publish", "--no-report"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        stage = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                stages = _manifest(out)["stages"]
            except (OSError, ValueError, KeyError):
                stages = []
            stage = stages[-1]["stage"] if stages and stages[-1]["status"] == "running" else None
            if stage in ("features", "train"):
                break
            time.sleep(0.05)
        assert stage in ("features", "train"), f"run never reached features (exit {proc.poll()})"
        r = twmb("--config", city.path, "--out", out, "features")
        msg = error_text(r, 5)
        assert f"in use by `twmb run` (PID {proc.pid}" in msg, msg
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed = _manifest(out)
    assert killed["status"] == "running" and killed["stages"][-1]["status"] == "running"
    r = twmb("--config", city.path, "--out", out, "features")
    assert r.exit_code == 0, show(r)
    doc = _manifest(out)
    assert doc["status"] == "ok" and doc["command"] == "features"
    assert doc["interrupted"]["run_id"] == killed["run_id"]
    assert doc["interrupted"]["stage"] == killed["stages"][-1]["stage"]
    assert any("was interrupted" in w for w in doc["warnings"]), doc["warnings"]
    assert "interrupted" in flat(r.stderr)
    runs = dict((rid, (cmd, st)) for rid, cmd, st in _runs(out / "twmb.duckdb"))
    assert runs[killed["run_id"]] == ("run", "interrupted")
    assert runs[doc["run_id"]] == ("features", "ok")


def test_publish_staging_is_unique_per_process_and_dead_leftovers_go(tmp_path: Path) -> None:
    from twmb_geo.publish.files import _remove_dead_leftovers

    folder = tmp_path / "star"
    dead = tmp_path / ".star.staging-999999999-0a0b0c0d"
    live = tmp_path / f".star.staging-{os.getpid()}-0a0b0c0d"
    legacy = tmp_path / ".star.staging"  # the name before staging was per process
    other = tmp_path / ".starry.staging-1-x"  # another folder's
    for p in (dead, live, legacy, other):
        (p / "parquet").mkdir(parents=True)
    _remove_dead_leftovers(folder)
    assert not dead.exists() and not legacy.exists()
    assert live.exists() and other.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # gone (and not reused this soon)


def test_a_killed_writers_temporary_files_go_with_the_next_write(tmp_path: Path) -> None:
    """Issue 15 fault suite: a run killed while writing the GeoPackage left its temporary
    file in maps/ for good (the next write only removed its own)."""
    from twmb_geo.core.files import atomic_path, atomic_write

    dead, live = _dead_pid(), os.getpid()
    target = tmp_path / "twmb_layers.gpkg"
    leftovers = [tmp_path / f".twmb_layers.{dead}.tmp.gpkg", tmp_path / f".report.md.{dead}.ab12"]
    kept = [
        tmp_path / f".twmb_layers.{os.getppid()}.tmp.gpkg",  # a live writer's
        tmp_path / f".other.{dead}.tmp.gpkg",  # another file's
    ]
    for p in leftovers + kept:
        p.write_bytes(b"half")
    with atomic_path(target) as tmp:
        assert tmp.name == f".twmb_layers.{live}.tmp.gpkg"
        tmp.write_bytes(b"whole")
    atomic_write(tmp_path / "report.md", b"text")
    assert target.read_bytes() == b"whole" and (tmp_path / "report.md").read_bytes() == b"text"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["twmb_layers.gpkg", "report.md", *(p.name for p in kept)]
    )


def test_a_run_killed_before_it_had_a_runs_row_is_recorded(tmp_path: Path) -> None:
    """Issue 15 fault suite: the first run on a new folder, killed in its ingest before the
    store had a ``runs`` table, was never recorded; one killed between two stages is named
    with the stage it finished."""
    out, store = tmp_path, tmp_path / "twmb.duckdb"
    killed = {
        "run_id": "20260101T000000Z-0badc0de",
        "command": "run",
        "status": "running",
        "started_at": "2026-01-01T00:00:00+00:00",
        "versions": {"twmb_geo": tw.__version__},
        "stages": [{"stage": "ingest", "status": "ok"}, {"stage": "features", "status": "ok"}],
    }
    (out / "manifest.json").write_text(json.dumps(killed), encoding="utf-8")
    with Store(store) as s:  # a store without a runs table
        s.con.execute("CREATE TABLE other (x INTEGER)")
    with command(out, store, "features"):
        pass
    doc = _manifest(out)
    assert doc["interrupted"]["stage"] is None and doc["interrupted"]["after"] == "features"
    assert "was interrupted after stage 'features'" in doc["warnings"][0]
    assert _runs(store) == [
        (killed["run_id"], "run", "interrupted"),
        (doc["run_id"], "features", "ok"),
    ]
