"""The fault suite (issue 15, "Proof"): ``twmb run`` killed (SIGKILL) inside each stage and at
stage boundaries, then run again on the same folder, ends with the store, the star (Parquet
folder, DuckDB file, Turso file), the maps and the report of a clean run, and with the killed
runs recorded as interrupted.

How: two clean runs (the reference in-process, a second by the command line); then, on one
fresh output folder, a chain of ``twmb run`` processes each SIGKILLed at its freeze point
(:data:`KILLS`; ``fault_child.py`` stops the run at an exact place of the code, so the kill
lands at the same place every time, with no timing; the processes are forked from a server
that imported the modules once, :data:`FORK`). Each killed run is also the re-run of
the one killed before it: when it is killed, every stage it finished must already equal the
reference, and its manifest must name the run killed before it. A last run goes to the end
and everything is compared. A chain instead of a kill and a whole re-run per point keeps the
module to about eight runs' worth of work.

The comparison (:func:`snapshot`) checksums every curated, feature and model table of the
store and every star table, read with DuckDB (or the Turso driver) in a stable order; the map
files and report figures by their bytes; the GeoPackage, the report and the model cards as
text with run ids, timestamps and the output folder masked. Columns that legitimately differ
between two runs of the same inputs are left out (:data:`STORE_VOLATILE`,
:data:`STAR_VOLATILE`), and tables that keep a history of runs are compared on their current
rows (:data:`HISTORY`). Two clean runs in two folders compare equal, and a one-row change is
seen (the tests below check both, so an equality here means something).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import duckdb
import fault_child
import pytest
from conftest import FAST_MODEL, REPO

import twmb_geo as tw
from twmb_geo.core.crs import using_crs
from twmb_geo.store.duckdb_store import contract_of
from twmb_geo.synth import make_city, write_city

pytestmark = pytest.mark.slow

#: The killed runs are forked by multiprocessing's forkserver, which imports the command line
#: and the stages' modules once: each run then starts at once instead of after about 5 s of
#: imports in a new interpreter. What runs is ``fault_child.main``, as the script runs it, in
#: its own process killed by SIGKILL; the clean run and the last run of the chain are new
#: interpreters (``python -m twmb_geo.cli``).
FORK = multiprocessing.get_context("forkserver")
FORK.set_forkserver_preload(
    [
        "fault_child",
        "twmb_geo.cli",
        "twmb_geo.api",
        "twmb_geo.features.build",
        "twmb_geo.model.stage",
        "twmb_geo.model.registry",
        "twmb_geo.publish.stage",
        "twmb_geo.maps.stage",
    ]
)

#: Columns that differ between two clean runs of the same inputs in two folders (found by
#: comparing two such runs column by column), left out of the checksums:
STORE_VOLATILE: dict[str, tuple[str, ...]] = {
    # the training run, the ingest its data came from, when it trained, the model folder
    "models": ("run_id", "data_run_id", "created_at", "path"),
    # the scoring run and when it scored
    "risk_scores": ("run_id", "scored_at"),
    # the simulation run
    "simulation_city": ("run_id",),
    "simulation_unit": ("run_id",),
    "renewal": ("run_id",),
}
STAR_VOLATILE: dict[str, tuple[str, ...]] = {
    "dim_model": ("created_at",),  # when the model was trained
    "fact_risk_score": ("run_id",),  # the scoring run
    "fact_simulation": ("run_id",),  # the simulation run
}
#: Tables that keep every scoring / simulation run (``is_current`` marks the latest set): a
#: re-run adds a current set and keeps the earlier ones as history, the killed runs' too, as
#: after any earlier run. Compared on their current rows.
HISTORY = "is_current"
# Not compared: the store's run records (``runs``, ``run_inputs``: a row per run by design;
# ``runs`` is checked on its own below) and CRS record; the publish records (the star
# folder's manifest.json, DuckDB's ``twmb_publish``, Turso's ``twmb_current`` and
# ``twmb_publish_run``: the publish id is a digest of the tables, run ids included; the three
# targets are checked to hold the same publish below); the CSV copies of the tables with
# volatile columns (their Parquet copies are compared); summary.json and manifest.json.

#: Run ids (``20261203T221930Z-6fed7d6b``), timestamps and the output folder, masked in text.
RUN_ID = re.compile(r"\b\d{8}T\d{6}Z-[0-9a-f]{8}\b")
STAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}| UTC)?"
)
#: What a report says about the folder's earlier runs (a re-run's folder has more of them, and
#: the report repeats the manifest's warning about the interrupted one), left out of the
#: comparison; the last test checks the report names the interruption.
RERUN_NOTES = (
    re.compile(r"(?:<p>)?The store records \d+ ingest runs;[^<\n]*(?:</p>)?\n(?:\n(?=\S))?"),
    re.compile(r"(?:<li>|- )the previous command on this folder [^<\n]*(?:</li>|\n)"),
)
#: Which stage writes what (a killed run's finished stages are compared when it is killed).
STAGE_OF_MODEL_TABLE = {
    "models": "train",
    "cv_metrics": "train",
    "feature_importance": "train",
    "risk_scores": "score",
    "simulation_city": "simulate",
    "simulation_unit": "simulate",
    "renewal": "simulate",
}


# --------------------------------------------------------------------------- checksums
def _sql_checksum(con: duckdb.DuckDBPyConnection, source: str, drop: tuple[str, ...]) -> str:
    """Row count and digest of ``source``'s rows (all columns but ``drop``), order-free."""
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    keep = [c for c in cols if c not in drop]
    assert keep, source
    where = f' WHERE "{HISTORY}"' if HISTORY in cols else ""
    row = ", ".join(f'"{c}" := "{c}"' for c in keep)
    n, digest = con.execute(
        f"SELECT count(*), coalesce(md5(string_agg(h, ',' ORDER BY h)), '') FROM "
        f"(SELECT md5(CAST(struct_pack({row}) AS VARCHAR)) AS h FROM {source}{where})"
    ).fetchall()[0]
    return f"{n}:{digest}"


def _mask(text: str, out: Path) -> str:
    text = text.replace(str(out.resolve()), "<out>").replace(str(out), "<out>")
    for note in RERUN_NOTES:
        text = note.sub("", text)
    return STAMP.sub("<time>", RUN_ID.sub("<run>", text))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _store_part(out: Path, stages: Collection[str] | None) -> dict[str, tuple[str, str]]:
    path = out / "twmb.duckdb"
    if not path.exists():
        return {}
    parts = {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        for t in tables:
            group = contract_of(t).split("/")[0]
            if group not in ("curated", "features", "model"):
                continue
            stage = {"curated": "ingest", "features": "features"}.get(group)
            stage = stage or STAGE_OF_MODEL_TABLE[t]
            if stages is not None and stage not in stages:
                continue
            digest = _sql_checksum(con, f'"{t}"', STORE_VOLATILE.get(t, ()))
            parts[f"store/{t}"] = (stage, digest)
    finally:
        con.close()
    return parts


def _star_part(out: Path, stages: Collection[str] | None) -> dict[str, tuple[str, str]]:
    parts: dict[str, tuple[str, str]] = {}
    if stages is not None and "publish" not in stages:
        return parts
    con = duckdb.connect()
    try:
        for f in sorted((out / "star" / "parquet").glob("*.parquet")):
            src = f"read_parquet('{f}')"
            parts[f"star/parquet/{f.stem}"] = (
                "publish",
                _sql_checksum(con, src, STAR_VOLATILE.get(f.stem, ())),
            )
        if (out / "star.duckdb").exists():
            con.execute(f"ATTACH '{out / 'star.duckdb'}' AS star (READ_ONLY)")
            tables = [
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_catalog = 'star' ORDER BY 1"
                ).fetchall()
            ]
            for t in tables:
                if t != "twmb_publish":
                    src = f'star."{t}"'
                    parts[f"star.duckdb/{t}"] = (
                        "publish",
                        _sql_checksum(con, src, STAR_VOLATILE.get(t, ())),
                    )
    finally:
        con.close()
    for sub in ("topojson", "csv"):
        for f in sorted((out / "star" / sub).glob("*")):
            if sub == "csv" and f.stem in STAR_VOLATILE:
                continue  # their volatile columns are in the text; the Parquet copy is compared
            parts[f"star/{sub}/{f.name}"] = ("publish", _sha(f.read_bytes()))
    turso = out / "turso" / "twmb_star.db"
    if turso.exists():
        for t, digest in _turso_tables(turso).items():
            parts[f"turso/{t}"] = ("publish", digest)
    return parts


def _turso_tables(path: Path) -> dict[str, str]:
    """Each star table of the Turso file's current publish (its ``<table>_current`` view)."""
    import turso

    con = turso.connect(str(path))
    try:
        views = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'view' ORDER BY name"
            ).fetchall()
        ]
        out = {}
        for v in views:
            cur = con.execute(f'SELECT * FROM "{v}"')
            table = v.removesuffix("_current")
            names = [d[0] for d in cur.description or ()]
            drop = set(STAR_VOLATILE.get(table, ()))
            keep = [i for i, c in enumerate(names) if c not in drop]
            flag = names.index(HISTORY) if HISTORY in names else None
            rows = sorted(
                repr(tuple(r[i] for i in keep)) for r in cur.fetchall() if flag is None or r[flag]
            )
            out[table] = f"{len(rows)}:{_sha(repr(([names[i] for i in keep], rows)).encode())}"
        return out
    finally:
        con.close()


def _gpkg_text(path: Path, out: Path) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _mask("\n".join(con.iterdump()), out)  # last_change stamps masked
    finally:
        con.close()


def _files_part(out: Path, stages: Collection[str] | None) -> dict[str, tuple[str, str]]:
    parts = {}
    text = (".md", ".json", ".html")
    for folder, stage in (("maps", "maps"), ("report", "report"), ("models", "train")):
        if stages is not None and stage not in stages:
            continue
        for f in sorted((out / folder).rglob("*")):
            if not f.is_file():
                continue
            rel = f.relative_to(out).as_posix()
            if f.suffix == ".gpkg":
                digest = _sha(_gpkg_text(f, out).encode())
            elif f.suffix in text and folder != "maps":
                digest = _sha(_mask(f.read_text(encoding="utf-8"), out).encode())
            else:
                digest = _sha(f.read_bytes())
            parts[rel] = (stage, digest)
    return parts


def listing(out: Path) -> list[str]:
    """Every file and folder under ``out`` (a leftover of a killed run shows here)."""
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))


def snapshot(out: Path, stages: Collection[str] | None = None) -> dict[str, tuple[str, str]]:
    """``name -> (stage that writes it, checksum)`` for everything compared (what ``stages``
    write only, when given; the listing of every file with the whole)."""
    parts = {**_store_part(out, stages), **_star_part(out, stages), **_files_part(out, stages)}
    if stages is None:
        parts["listing"] = ("run", _sha("\n".join(listing(out)).encode()))
    return parts


def differences(got: dict, want: dict, stages: set[str] | None = None) -> list[str]:
    """The parts that differ (of ``stages`` only, when given)."""
    names = sorted({k for k, v in {**want, **got}.items() if stages is None or v[0] in stages})
    return [n for n in names if got.get(n) != want.get(n)]


# --------------------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tw.Config:
    """The small synthetic city of test_runlog, with one model family (a run takes seconds)."""
    root = tmp_path_factory.mktemp("faults")
    paths = write_city(make_city(n_pipes=300, seed=7), root / "city")
    cfg = tw.load_config(paths["config"], out=root / "out")
    keep = {"breaks", "neighbourhoods"}
    model = replace(
        FAST_MODEL,
        unit_types=("cell",),
        schemes=("forward",),
        forward_years=2,
        candidates=("boost",),
        max_iter=10,
    )
    cfg = replace(
        cfg,
        h3_resolution=7,
        sources=tuple(replace(s, enabled=s.id in keep) for s in cfg.sources),
        features=replace(cfg.features, esda_permutations=9),
        model=model,
    )
    written = tw.write_config(cfg, Path(paths["config"]).with_name("faults.toml"), overwrite=True)
    return tw.load_config(written, out=root / "out")


def _clean_run(cfg: tw.Config, out: Path) -> Path:
    with using_crs(None):  # as the command line runs: no analysis CRS set beforehand
        tw.run(replace(cfg, out=out))
    return out


@pytest.fixture(scope="module")
def clean_runs(city: tw.Config, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two clean runs in two folders: the reference, in-process, and one by the command line
    in a subprocess, side by side (the machine has two cores)."""
    root = tmp_path_factory.mktemp("clean")
    second, log = root / "second", root / "second.log"
    with _child([sys.executable, "-m", "twmb_geo.cli", *_args(city, second)], log) as proc:
        first = _clean_run(city, root / "first")
        assert proc.wait(timeout=600) == 0, log.read_text()
    return first, second


@pytest.fixture(scope="module")
def reference(clean_runs: tuple[Path, Path]) -> tuple[Path, dict]:
    """The reference run's folder and snapshot."""
    return clean_runs[0], snapshot(clean_runs[0])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TWMB_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _args(cfg: tw.Config, out: Path) -> list[str]:
    return ["-q", "--config", str(cfg.path), "--out", str(out), "run"]


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


@contextmanager
def _child(argv: list[str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def kill_at(point: str, cfg: tw.Config, out: Path, work: Path) -> int:
    """Run ``twmb run`` on ``out`` until the freeze point ``point``, SIGKILL it; its PID."""
    mark, log = work / f"{point}.mark", work / f"{point}.log"
    argv = [point, str(mark), "--", *_args(cfg, out)]
    proc = FORK.Process(target=fault_child.forked, args=(argv, str(log), _env(), str(REPO)))
    proc.start()
    try:
        deadline = time.monotonic() + 300
        while not mark.exists():
            code = proc.exitcode
            assert code is None, f"run ended (exit {code}) before {point}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"run never reached {point}"
            time.sleep(0.02)
        pid, module = mark.read_text(encoding="utf-8").split()
        assert int(pid) == proc.pid
        assert Path(module).is_relative_to(REPO), f"the child ran {module}, not this worktree"
        proc.kill()  # SIGKILL
        proc.join()
        assert proc.exitcode == -signal.SIGKILL
    finally:
        if proc.exitcode is None:
            proc.kill()
            proc.join()
    assert proc.pid is not None
    return proc.pid


def full_run(cfg: tw.Config, out: Path, work: Path) -> None:
    """``twmb run`` on ``out`` to the end (the command line, no freeze point)."""
    log = work / "final.log"
    with _child([sys.executable, "-m", "twmb_geo.cli", *_args(cfg, out)], log) as proc:
        assert proc.wait(timeout=600) == 0, log.read_text()


def _runs(out: Path) -> dict[str, tuple[str, str]]:
    con = duckdb.connect(str(out / "twmb.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT run_id, command, status FROM runs").fetchall()
    finally:
        con.close()
    return {r[0]: (r[1], r[2]) for r in rows}


def _current_publishes(out: Path) -> set[str]:
    """The publish id each star target holds as current."""
    import turso

    folder = json.loads((out / "star" / "manifest.json").read_text(encoding="utf-8"))["run_id"]
    con = duckdb.connect(str(out / "star.duckdb"), read_only=True)
    try:
        ddb = con.execute("SELECT publish_id FROM twmb_publish").fetchall()[0][0]
    finally:
        con.close()
    t = turso.connect(str(out / "turso" / "twmb_star.db"))
    try:
        current = t.execute("SELECT publish_id FROM twmb_current").fetchall()[0][0]
        loading = t.execute(
            "SELECT publish_id FROM twmb_publish_run WHERE status = 'loading'"
        ).fetchall()
    finally:
        t.close()
    assert not loading, f"unfinished publishes left in the Turso file: {loading}"
    return {folder, ddb, current}


def _sql(path: Path, sql: str) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(sql)
    finally:
        con.close()


# --------------------------------------------------------------------------- the tests
def test_two_clean_runs_compare_equal(
    clean_runs: tuple[Path, Path], reference: tuple[Path, dict]
) -> None:
    _, ref = reference
    out = clean_runs[1]
    got = snapshot(out)
    assert not differences(got, ref)
    # everything a run writes is compared: each star table in its three targets, every map
    # layer, the report, each feature and model table
    names = set(ref)
    for t in ("fact_break", "fact_risk_score", "fact_simulation", "dim_model"):
        assert {f"star/parquet/{t}", f"star.duckdb/{t}", f"turso/{t}"} <= names
    assert {"store/breaks", "store/panel", "store/risk_scores", "store/models"} <= names
    assert {"report/report.md", "maps/geojson/cells.geojson", "maps/twmb_layers.gpkg"} <= names
    hidden = [p for p in listing(out) if any(s.startswith(".") for s in p.split("/"))]
    assert hidden == [".twmb.lock"]
    assert len(_current_publishes(out)) == 1


def test_the_comparison_sees_a_one_row_change(reference: tuple[Path, dict], tmp_path: Path) -> None:
    ref_out, ref = reference
    out = tmp_path / "out"
    shutil.copytree(ref_out, out)
    base = snapshot(out)  # the copy's texts name the reference's folder: compare to the copy
    assert not differences(
        base, ref, {"ingest", "features", "score", "simulate", "publish", "maps"}
    )
    # a row gone; an excluded column (the run id) changed alone is not a difference
    _sql(
        out / "twmb.duckdb",
        "DELETE FROM breaks WHERE break_id = (SELECT min(break_id) FROM breaks)",
    )
    _sql(out / "twmb.duckdb", "UPDATE risk_scores SET run_id = 'other'")
    assert differences(snapshot(out), base) == ["store/breaks"]
    # a value of a current row of a history table
    _sql(
        out / "twmb.duckdb",
        "UPDATE risk_scores SET expected_breaks = expected_breaks + 1e-9 WHERE rank = 1 AND is_current",
    )
    star = out / "star" / "parquet" / "fact_break.parquet"
    duckdb.execute(
        f"COPY (SELECT * FROM read_parquet('{star}') LIMIT (SELECT count(*) - 1 FROM "
        f"read_parquet('{star}'))) TO '{star}.new' (FORMAT parquet)"
    )
    Path(f"{star}.new").replace(star)
    md = out / "report" / "report.md"
    md.write_text(md.read_text(encoding="utf-8").replace("breaks", "braeks", 1), encoding="utf-8")
    (out / "maps" / ".leftover").write_text("x", encoding="utf-8")
    assert differences(snapshot(out), base) == [
        "listing",
        "maps/.leftover",
        "report/report.md",
        "star/parquet/fact_break",
        "store/breaks",
        "store/risk_scores",
    ]


#: The chain of kills, in order: (freeze point of ``fault_child.py``, the stage running when
#: killed; None: killed between two stages, after the one the point names). Each kill is in
#: the re-run of the one before; the publish kills come after a complete publish, so they
#: interrupt the replacement of a previous star.
KILLS: list[tuple[str, str | None]] = [
    ("ingest", "ingest"),  # the first run on the folder, the store half made
    ("features", "features"),
    ("train", "train"),
    ("after-score", None),
    ("after-publish", None),
    ("publish-turso", "publish"),
    ("maps", "maps"),
]


def test_killed_runs_rerun_to_the_clean_outputs(
    city: tw.Config, reference: tuple[Path, dict], tmp_path: Path
) -> None:
    _, ref = reference
    out, work = tmp_path / "out", tmp_path / "work"
    work.mkdir()
    killed: list[dict] = []
    published: set[str] = set()  # the publish the star targets hold after a whole publish
    for point, stage in KILLS:
        pid = kill_at(point, city, out, work)
        _check_left_behind(point, out, pid, published)
        if point == "after-publish":
            published = _current_publishes(out)
            assert len(published) == 1
        doc = _manifest(out)
        assert doc["status"] == "running", point
        last = doc["stages"][-1]
        after = None if stage else point.removeprefix("after-")
        assert (last["stage"], last["status"]) == ((stage, "running") if stage else (after, "ok"))
        if killed:  # this run is the re-run of the one killed before
            _check_interrupted(doc, killed[-1])
        else:
            assert doc["interrupted"] is None
        # every stage this run finished already gives the reference's outputs
        done = {s["stage"] for s in doc["stages"] if s["status"] == "ok"}
        assert not differences(snapshot(out, done), ref, done), (point, done)
        killed.append({"run_id": doc["run_id"], "stage": stage, "after": after})

    full_run(city, out, work)
    doc = _manifest(out)
    assert doc["status"] == "ok" and doc["error"] is None
    _check_interrupted(doc, killed[-1])
    assert not differences(snapshot(out), ref)
    # every killed run is recorded as interrupted (the first one too, killed before the store
    # had a runs table), the last run as ok
    want = {k["run_id"]: ("run", "interrupted") for k in killed}
    assert _runs(out) == {**want, doc["run_id"]: ("run", "ok")}
    # nothing of a killed run is left or current: no staging / old star folder, no temporary
    # file, and the three star targets hold one and the same publish
    hidden = [p for p in listing(out) if any(s.startswith(".") for s in p.split("/"))]
    assert hidden == [".twmb.lock"]
    assert len(_current_publishes(out)) == 1
    report = (out / "report" / "report.md").read_text(encoding="utf-8")
    assert f"run {killed[-1]['run_id']}) was interrupted in stage 'maps'" in report


def _count(out: Path, table: str, where: str = "true") -> int:
    con = duckdb.connect(str(out / "twmb.duckdb"), read_only=True)
    try:
        if not con.execute(
            f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{table}'"
        ).fetchall()[0][0]:
            return 0
        return int(con.execute(f'SELECT count(*) FROM "{table}" WHERE {where}').fetchall()[0][0])
    finally:
        con.close()


def _check_left_behind(point: str, out: Path, pid: int, published: set[str]) -> None:
    """The killed run left the half-done state its freeze point is meant to (so the suite
    keeps testing what it says if the code moves); ``published``: the publish before."""
    if point == "ingest":  # neighbourhoods in, breaks not
        assert _count(out, "neighbourhoods") > 0 and _count(out, "breaks") == 0
    elif point == "train":  # the model saved, not registered
        assert list((out / "models").glob("*/model.skops")) and _count(out, "models") == 0
    elif point == "after-score":  # current scores, no simulation yet
        assert _count(out, "risk_scores", "is_current") > 0 and _count(out, "simulation_city") == 0
    elif point == "publish-turso":  # the folder and DuckDB targets switched, Turso not yet
        folder = json.loads((out / "star" / "manifest.json").read_text(encoding="utf-8"))
        con = duckdb.connect(str(out / "star.duckdb"), read_only=True)
        try:
            ddb = con.execute("SELECT publish_id FROM twmb_publish").fetchall()[0][0]
        finally:
            con.close()
        assert folder["run_id"] == ddb and ddb not in published and published
    elif point == "maps":  # the GeoPackage half written
        assert (out / "maps" / f".twmb_layers.{pid}.tmp.gpkg").exists()


def _check_interrupted(doc: dict, before: dict) -> None:
    """``doc`` (a manifest) names the run killed ``before`` and where it was."""
    assert doc["run_id"] != before["run_id"]
    got = doc["interrupted"]
    assert (got["run_id"], got["command"], got["stage"], got["after"]) == (
        before["run_id"],
        "run",
        before["stage"],
        before["after"],
    )
    where = (
        f"in stage {before['stage']!r}" if before["stage"] else f"after stage {before['after']!r}"
    )
    assert any(f"{before['run_id']}) was interrupted {where}" in w for w in doc["warnings"])
