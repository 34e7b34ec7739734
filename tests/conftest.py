"""Shared fixtures: paths to the bundled data and one ingest of it per test session."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import shapely

import twmb_geo as tw
from twmb_geo.config import Config, ModelConfig
from twmb_geo.core.crs import TORONTO_CRS, using_crs

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "toronto"
BREAKS_ZIP = DATA / "watermain_breaks_1990_2016_wgs84.zip"
BREAKS_XLSX = DATA / "watermain_breaks_1990_2016_mtm_nad27.xlsx"
NEIGHBOURHOODS_ZIP = DATA / "neighbourhood_planning_areas_utm6.zip"
TODAY = dt.date(2026, 11, 25)
CURATED = (
    "breaks",
    "quarantine",
    "neighbourhoods",
    "service_area",
    "weather_daily",
    "weather_monthly",
    "weather_winters",
)


#: the store tables the model stage writes
MODEL_TABLES = (
    "models",
    "cv_metrics",
    "feature_importance",
    "risk_scores",
    "simulation_city",
    "simulation_unit",
    "renewal",
)

#: a cheap model stage for tests: every scheme, fewer folds and boosting iterations
FAST_MODEL = ModelConfig(
    forward_years=3,
    candidates=("boost", "glm"),
    selection_years=2,
    selection_breaks=0,
    spatiotemporal_years=1,
    spatial_folds=3,
    random_folds=3,
    max_iter=30,
    importance_repeats=1,
    importance_max_rows=3000,
    n_sims=200,
    n_jobs=1,
)


#: Seconds each slow test file took (``pytest -n 2 --durations=0``, December 2026, fixtures
#: included). Files run slowest first so the two workers finish together (longest job first);
#: the Makefile turns off xdist's own order (by number of tests) with --no-loadscope-reorder.
FILE_SECONDS = {
    "test_turso.py": 138, "test_partitioned.py": 94, "test_faults.py": 74,
    "test_synthetic_run.py": 63, "test_any_city.py": 53, "test_map_files.py": 50,
    "test_hardening_io.py": 45, "test_fuzz_inputs.py": 42, "test_cli.py": 41,
    "test_model_stage.py": 38, "test_star.py": 38, "test_publish_background.py": 26,
    "test_run_beside.py": 26, "test_partitioned_streets.py": 25, "test_bad_input.py": 21,
    "test_api.py": 19, "test_store.py": 17, "test_examples.py": 17, "test_model_scoring.py": 16,
    "test_ingest_parallel.py": 15, "test_synth.py": 15, "test_model_training.py": 14,
    "test_no_boundary_city.py": 12, "test_breaks.py": 11, "test_runlog.py": 10,
    "test_html_map.py": 10, "test_compute.py": 10, "test_weather.py": 8, "test_id_links.py": 8,
    "test_model_artefacts.py": 8,
}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slowest files first (stable: the order inside a file is kept)."""
    items.sort(key=lambda item: -FILE_SECONDS.get(item.path.name, 0))


@pytest.fixture(scope="session", autouse=True)
def _analysis_crs():
    """Unit tests call spatial functions directly, in the bundled city's CRS (MTM zone 10)."""
    with using_crs(TORONTO_CRS):
        yield


@pytest.fixture(autouse=True)
def _other_crs(request: pytest.FixtureRequest):
    """Tests marked ``other_crs`` run with no analysis CRS in force: only the pipeline's own."""
    if request.node.get_closest_marker("other_crs"):
        with using_crs(None):
            yield
    else:
        yield


@pytest.fixture(scope="session")
def bundled_cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The default config writing to a session temp folder, with a pinned date."""
    out = tmp_path_factory.mktemp("bundled")
    cfg = tw.default_config(out)
    return replace(
        cfg,
        today=TODAY,
        features=replace(cfg.features, esda_permutations=99),
        model=FAST_MODEL,
    )


@pytest.fixture(scope="session")
def bundled_run(
    bundled_cfg: Config, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict:
    """One full run on the bundled data (shared by read-only tests); maps and report are
    tested on their own (and end to end by test_cli's run).

    Under xdist the run is made once per test session: the first worker to need it runs
    it in a folder the workers share (the others wait on a lock), and each worker copies
    that folder to its own, where its tests may write. The paths in the copy's
    ``summary.json`` and ``manifest.json`` name the copy.
    """
    if not hasattr(request.config, "workerinput"):  # not an xdist worker
        return tw.run(bundled_cfg, with_report=False).summary

    root = tmp_path_factory.getbasetemp().parent  # the session's folder, above each worker's
    shared = root / "bundled-shared"
    with (root / "bundled-shared.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done").exists():
            shutil.rmtree(shared, ignore_errors=True)  # a worker that failed half-way
            tw.run(replace(bundled_cfg, out=shared / "out", store=None), with_report=False)
            (shared / "done").touch()
    out = bundled_cfg.out_dir
    shutil.copytree(shared / "out", out, dirs_exist_ok=True)
    for name in ("summary.json", "manifest.json"):
        doc = out / name
        doc.write_text(doc.read_text("utf-8").replace(str(shared / "out"), str(out)), "utf-8")
    return json.loads((out / "summary.json").read_text("utf-8"))


@pytest.fixture(scope="session")
def service_area() -> shapely.Geometry:
    """The Toronto service area (neighbourhoods dissolved, 250 m buffer), EPSG:2952."""
    from twmb_geo.ingest.neighbourhoods import service_area_table

    res = tw.read_source(NEIGHBOURHOODS_ZIP, "toronto_neighbourhoods_140", today=TODAY)
    sa = service_area_table(res.tables["neighbourhoods"], "neighbourhoods", 250.0)
    area = shapely.from_wkb(sa["geometry_buffered"].iloc[0])
    shapely.prepare(area)
    return area


@pytest.fixture
def turso_server(tmp_path: Path):
    """A real local Turso server (``turso --sync-server``) on a fresh database file."""
    from turso_server import TursoServer

    with TursoServer(tmp_path / "server.db") as srv:
        yield srv


def small_cells_city(root: Path, *, n_pipes: int, seed: int, **model: object) -> Config:
    """A synthetic city with breaks and neighbourhoods only, H3 resolution 7 and a fast
    forward-validated cell model (``model`` overrides FAST_MODEL's settings)."""
    from twmb_geo.synth import make_city, write_city

    paths = write_city(make_city(n_pipes=n_pipes, seed=seed), root / "city")
    cfg = tw.load_config(paths["config"], out=root / "out")
    keep = {"breaks", "neighbourhoods"}
    settings: dict[str, object] = {
        "unit_types": ("cell",),
        "schemes": ("forward",),
        "forward_years": 2,
        **model,
    }
    return replace(
        cfg,
        h3_resolution=7,
        sources=tuple(replace(s, enabled=s.id in keep) for s in cfg.sources),
        features=replace(cfg.features, esda_permutations=9),
        model=replace(FAST_MODEL, **settings),  # type: ignore[arg-type]
    )
