"""Large inputs are transformed in worker processes, the largest first, and stored in the
config's order: the same store, reports and manifest as one source after another; a failing
source stores those before it and raises its own error, as in sequence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import psutil
import pytest

import twmb_geo as tw
from twmb_geo.errors import InputDataError
from twmb_geo.store import load
from twmb_geo.synth import make_city, write_city


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ingest")
    return Path(write_city(make_city(n_pipes=400, seed=5), root / "city")["config"])


def _ingest(config: Path, out: Path) -> tw.IngestReport:
    return tw.ingest_sources(tw.load_config(config, out=out))


def _tables(store_path: Path) -> dict[str, pd.DataFrame]:
    with tw.open_store(store_path, read_only=True) as store:
        skip = {"runs", "run_inputs"}  # a run id and times: differ between any two runs
        return {t: store.read(t) for t in store.table_names() if t not in skip}


def _report(rep: tw.IngestReport) -> list[dict]:
    return [s.to_dict() for s in rep.sources]


def _steps(out: Path) -> list[str]:
    doc = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return [s["step"] for s in doc["steps"]]


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every ingest transformed in worker processes; the sources each pool got, recorded."""
    monkeypatch.setattr(load, "PARALLEL_BYTES", 0)
    seen: list[list[str]] = []
    real = load._transformed

    def watched(jobs, threads, crs):  # type: ignore[no-untyped-def]
        seen.append([job.source.id for job in jobs])
        return real(jobs, threads, crs)

    monkeypatch.setattr(load, "_transformed", watched)
    return seen


def test_pooled_ingest_equals_one_source_after_another(
    city: Path, tmp_path: Path, pooled: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(load, "PARALLEL_BYTES", 10**15)
    seq = _ingest(city, tmp_path / "seq")
    assert pooled == []
    monkeypatch.setattr(load, "PARALLEL_BYTES", 0)
    par = _ingest(city, tmp_path / "par")
    assert pooled and "neighbourhoods" not in pooled[0] and len(pooled[0]) >= 3
    assert _report(par) == _report(seq)
    assert par.manifest.warnings == seq.manifest.warnings
    assert _steps(tmp_path / "par") == _steps(tmp_path / "seq")
    want, got = _tables(seq.store), _tables(par.store)
    assert want.keys() == got.keys()
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], obj=name)
    # the transform workers are stopped, not left idle holding their memory
    assert [c for c in psutil.Process().children(recursive=True) if _loky(c)] == []


def _loky(proc: psutil.Process) -> bool:
    try:
        return any("popen_loky" in part for part in proc.cmdline())  # a worker
    except psutil.Error:  # gone meanwhile
        return False


def test_too_little_memory_transforms_one_at_a_time(
    city: Path, tmp_path: Path, pooled: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Less memory available than PARALLEL_MEMORY_FACTOR times the inputs: no workers."""
    cfg = tw.load_config(city, out=tmp_path / "out")
    rest = [s for s in cfg.sources if s.enabled and cfg.profile(s).kind != "neighbourhoods"]
    size = sum(f.stat().st_size for s in rest for f in s.files(cfg.root))
    monkeypatch.setattr(load, "available_memory", lambda: load.PARALLEL_MEMORY_FACTOR * size)
    assert load._pooled(cfg, rest)
    monkeypatch.setattr(load, "available_memory", lambda: load.PARALLEL_MEMORY_FACTOR * size - 1)
    assert not load._pooled(cfg, rest)
    monkeypatch.setattr(load, "available_memory", lambda: None)  # unknown: as before
    assert load._pooled(cfg, rest)


def test_largest_sources_are_transformed_first() -> None:
    sizes = {"weather": 10, "pipes": 300, "streets": 900, "breaks": 40}
    assert load._largest_first(list(sizes.values())) == [2, 1, 3, 0]
    assert load._largest_first([5, 5, 1]) == [0, 1, 2]  # ties keep their order


def test_a_failing_source_stores_those_before_it(
    city: Path, tmp_path: Path, pooled: list[list[str]]
) -> None:
    """The breaks file (the last source) has no usable column: its own error is raised
    (naming the file), and every source before it is in the store, as in sequence."""
    root = tmp_path / "city"
    shutil.copytree(city.parent, root)
    cfg = tw.load_config(root / city.name, out=tmp_path / "out")
    breaks = cfg.source("breaks").files(cfg.root)[0]
    breaks.write_text("nothing,useful\n1,2\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=breaks.name):
        tw.ingest_sources(cfg)
    assert pooled
    with tw.open_store(cfg.store_path, read_only=True) as store:
        assert store.count("pipes") > 0 and store.count("street_segments") > 0
        assert not store.has_table("breaks") or store.count("breaks") == 0


def test_a_missing_file_stores_the_sources_before_it(
    city: Path, tmp_path: Path, pooled: list[list[str]]
) -> None:
    root = tmp_path / "city"
    shutil.copytree(city.parent, root)
    cfg = tw.load_config(root / city.name, out=tmp_path / "out")
    breaks = cfg.source("breaks").files(cfg.root)[0]
    breaks.unlink()
    with pytest.raises(InputDataError, match="breaks"):
        tw.ingest_sources(cfg)
    with tw.open_store(cfg.store_path, read_only=True) as store:
        assert store.count("pipes") > 0 and store.count("street_segments") > 0
