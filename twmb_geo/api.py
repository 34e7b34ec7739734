"""The public API: one verb per stage, each reading and writing the store, each returning a result.

Verbs are named so that they cannot collide with a subpackage (``build_features``, not
``features``). Each stage writes the files it owns (the store and ``manifest.json`` for the
ingest, ``<out>/models/`` for training, the star targets, the maps, the report,
``summary.json`` for :func:`run`) and returns a typed result (:mod:`twmb_geo.results`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar, cast

import pandas as pd

from .config import Config, load_config
from .core.background import background_process, run_in
from .core.files import atomic_write
from .core.types import Progress
from .errors import InputDataError, TwmbError
from .features.build import FeatureReport
from .features.build import build_features as _build_features
from .maps.stage import make_maps as _make_maps
from .maps.stage import make_report as _make_report
from .model.stage import list_models as _list_models
from .model.stage import run_simulation, score_latest
from .model.stage import train_models as _train_models
from .publish.powerbi import write_powerbi_kit as _write_powerbi_kit
from .publish.stage import LOCAL_TARGETS, is_large
from .publish.stage import publish as _publish
from .results import (
    MapsResult,
    PowerBIKitResult,
    PublishResult,
    ReportResult,
    RunResult,
    ScoreResult,
    SimulationResult,
    TrainResult,
)
from .store.duckdb_store import Store
from .store.load import ingest_sources
from .store.manifest import RunManifest
from .store.runlog import active_manifest, command, detached
from .store.summary import summarize
from .synth import make_city, write_city
from .synth.evaluation import evaluate_matching

__all__ = [
    "build_features",
    "ingest_sources",
    "list_models",
    "publish_star",
    "render_maps",
    "run",
    "score_units",
    "simulate_breaks",
    "summarize",
    "synthetic_example",
    "train_models",
    "write_powerbi_kit",
    "write_report",
]

log = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


def _tracked(stage: str) -> Callable[[_F], _F]:
    """Run a verb as the command ``stage`` (lock, manifest, ``runs`` row), or as a stage of
    the command already running (:func:`twmb_geo.store.runlog.command`)."""

    def wrap(fn: _F) -> _F:
        @functools.wraps(fn)
        def verb(cfg: Config, *args: Any, **kwargs: Any) -> Any:
            with command(cfg.out_dir, cfg.store_path, stage, cfg.to_toml()):
                return fn(cfg, *args, **kwargs)

        return cast(_F, verb)

    return wrap


@_tracked("features")
def build_features(cfg: Config, *, progress: Progress | None = None) -> FeatureReport:
    """Build units, break links, graphs, the unit-year panel, spatial lags and hot spots.

    Parameters
    ----------
    cfg
        The project config; the store must hold the ingested sources.
    progress
        Optional callback ``progress(description, completed, total)``.

    Returns
    -------
    FeatureReport
        Rows per table, graph summaries, Moran's I and warnings.

    Examples
    --------
    >>> import twmb_geo as tw
    >>> cfg = tw.default_config("out")  # doctest: +SKIP
    >>> tw.ingest_sources(cfg)  # doctest: +SKIP
    >>> tw.build_features(cfg).tables["panel"]  # doctest: +SKIP
    """
    return _build_features(cfg, progress=progress)


@_tracked("train")
def train_models(
    cfg: Config, *, unit_types: Sequence[str] | None = None, progress: Progress | None = None
) -> TrainResult:
    """Cross-validate, fit and register one risk model per unit type (``[model]`` settings).

    Cards go to ``<out>/models/<version>/``; the registry and CV metrics to the store.
    """
    res = _train_models(cfg, unit_types=unit_types, progress=progress)
    return TrainResult(run_id=res["run_id"], models=res["models"])


def list_models(cfg: Config) -> pd.DataFrame:
    """The model registry as a DataFrame (newest first within each unit type)."""
    return _list_models(cfg)


@_tracked("score")
def score_units(
    cfg: Config,
    *,
    unit_types: Sequence[str] | None = None,
    model_version: str | None = None,
    top: int = 10,
) -> ScoreResult:
    """Score the latest year of every unit (newest or given model) into ``risk_scores``."""
    res = score_latest(cfg, unit_types=unit_types, model_version=model_version, top=top)
    return ScoreResult(run_id=res["run_id"], scores=res["scores"])


@_tracked("simulate")
def simulate_breaks(
    cfg: Config,
    *,
    unit_types: Sequence[str] | None = None,
    horizon: int | None = None,
    n_sims: int | None = None,
    replace_km: float | None = None,
    replace_units: int | None = None,
    seed: int | None = None,
) -> SimulationResult:
    """Monte Carlo of breaks over 1..horizon years and the renewal scenario (current scores)."""
    res = run_simulation(
        cfg,
        unit_types=unit_types,
        horizon=horizon,
        n_sims=n_sims,
        replace_km=replace_km,
        replace_units=replace_units,
        seed=seed,
    )
    return SimulationResult(run_id=res["run_id"], simulations=res["simulations"])


@_tracked("publish")
def publish_star(
    cfg: Config,
    *,
    targets: Sequence[str] | None = None,
    folder: Path | str | None = None,
    formats: Sequence[str] = ("parquet", "csv"),
    duckdb_path: Path | str | None = None,
    turso_file: Path | str | None = None,
    turso_url: str | None = None,
    turso_mode: str = "http",
    token: str | None = None,
    progress: Progress | None = None,
) -> PublishResult:
    """Build the Power BI star schema from the store and publish it to ``targets``.

    Targets: ``folder`` (Parquet/CSV), ``duckdb``, ``turso-file`` (local Turso database) and
    ``turso`` (remote, ``turso_url``; token from ``TURSO_AUTH_TOKEN``). Default: the local
    three, plus ``turso`` when a URL is given. Every fact key is checked first; a broken key
    fails the publish (nothing written) with a :class:`~twmb_geo.errors.ContractError`.

    Examples
    --------
    >>> res = tw.publish_star(cfg, targets=["folder"])  # doctest: +SKIP
    >>> res.rows["fact_break"]  # doctest: +SKIP
    """
    if targets is None:
        targets = (*LOCAL_TARGETS, "turso") if turso_url else LOCAL_TARGETS
    res = _publish(
        cfg,
        targets=targets,
        folder=folder,
        formats=formats,
        duckdb_path=duckdb_path,
        turso_file=turso_file,
        turso_url=turso_url,
        turso_mode=turso_mode,
        token=token,
        progress=progress,
    )
    return PublishResult(
        publish_id=res["publish_id"],
        schema_version=res["schema_version"],
        rows=res["rows"],
        checksums=res["checksums"],
        targets=res["targets"],
    )


@_tracked("maps")
def render_maps(
    cfg: Config,
    *,
    folder: Path | str | None = None,
    formats: Sequence[str] = ("geojson", "gpkg", "geoparquet"),
    png: bool = True,
    html: bool = True,
    progress: Progress | None = None,
) -> MapsResult:
    """Map outputs from the store: GeoJSON/GeoPackage/GeoParquet, PNG maps, the HTML map.

    Default folder ``<out>/maps``.
    """
    res = _make_maps(cfg, folder=folder, formats=formats, png=png, html=html, progress=progress)
    return MapsResult(
        folder=Path(res["folder"]),
        rows=res["rows"],
        exports=res.get("exports", {}),
        png=res.get("png", {}),
        html=res.get("html", {}),
    )


@_tracked("report")
def write_report(
    cfg: Config, *, folder: Path | str | None = None, maps: MapsResult | None = None
) -> ReportResult:
    """The run report (``report.html`` self-contained, ``report.md``), default ``<out>/report``.

    ``maps`` is the result of :func:`render_maps` (its PNG maps are embedded); without it the
    PNG maps are rendered first.
    """
    if maps is None:
        maps = render_maps(cfg, formats=())
    res = _make_report(cfg, folder=folder, maps=maps.to_dict())
    return ReportResult(
        html=Path(res["html"]),
        markdown=Path(res["markdown"]),
        figures=list(res["figures"]),
        sections=list(res["sections"]),
    )


def write_powerbi_kit(
    cfg: Config,
    *,
    folder: Path | str | None = None,
    source: str = "turso",
    star_folder: str | None = None,
    replace_report: bool = False,
) -> PowerBIKitResult:
    """Write the Power BI kit (Power Query scripts, PBIP/TMDL model) for the star schema.

    Generated from the star contracts alone (no store needed), into ``folder`` (default
    ``<out>/powerbi``). ``source`` picks what the model's tables read: ``"turso"`` (the
    Turso database over HTTP) or ``"parquet"`` (the folder of :func:`publish_star`).
    ``star_folder`` is the default of the ``StarFolder`` parameter as the Power BI machine
    sees the publish folder (e.g. ``D:\\bi\\twmb\\star``), kept as given; without it, the
    absolute path of ``<out>/star`` on this machine. The risk tiers counted as "high" are
    the two riskiest of the config's ``[model] tiers``. The README, model description and
    first report page carry ``[project] city``, licence and attribution. The starter report
    (map, trend, ranking and model pages) is written when the folder has none;
    ``replace_report`` rewrites it over one edited in Desktop.
    """
    res = _write_powerbi_kit(
        Path(folder) if folder else cfg.out_dir / "powerbi",
        source=source,
        star_folder=star_folder or str((cfg.out_dir / "star").resolve()),
        tiers=cfg.model.tiers,
        city=cfg.city_name,
        credit=cfg.credit_line(),
        replace_report=replace_report,
    )
    return PowerBIKitResult(
        folder=Path(res["folder"]),
        source=res["source"],
        files=list(res["files"]),
        tables=res["tables"],
        relationships=res["relationships"],
        measures=res["measures"],
        report=res["report"],
    )


def _model_summary(cfg: Config, progress: Progress | None) -> dict[str, Any]:
    try:
        trained = train_models(cfg, progress=progress)
    except InputDataError as exc:  # too little history to validate a model: say so, go on
        msg = f"model stage skipped: {exc}"
        log.warning(msg)
        return {"skipped": msg, "models": [], "scores": [], "simulations": []}
    if progress:
        progress("score", 0, 2)
    scored = score_units(cfg)
    if progress:
        progress("simulate", 1, 2)
    sims = simulate_breaks(cfg)
    return {
        "models": trained.models,
        "scores": scored.scores,
        "simulations": [{k: v for k, v in s.items() if k != "city"} for s in sims.simulations],
    }


def _write_summary(cfg: Config, summary: dict[str, Any]) -> Path:
    path = cfg.out_dir / "summary.json"
    atomic_write(path, (json.dumps(summary, indent=2, default=str) + "\n").encode("utf-8"))
    return path


def run(
    cfg: Config,
    *,
    progress: Progress | None = None,
    with_features: bool = True,
    with_model: bool = True,
    with_publish: bool = True,
    with_report: bool = True,
) -> RunResult:
    """The main job: ingest, features, models (train, score, simulate), publish, maps, report.

    Writes ``<out>/summary.json``; ``with_model`` and ``with_report`` need ``with_features``.
    Holds the output folder's lock for the whole job (a second command on the folder is
    refused) and keeps ``<out>/manifest.json`` current: each stage (ingest, features, train,
    score, simulate, publish, maps, report) started, finished or failed with its error.
    The publish goes to the local targets (Parquet/CSV folder, DuckDB file, local Turso
    database file); maps go to ``<out>/maps/`` and the report to ``<out>/report/``.

    Examples
    --------
    >>> import twmb_geo as tw
    >>> res = tw.run(tw.default_config("out"))  # doctest: +SKIP
    >>> res.summary["breaks_total"]  # doctest: +SKIP
    """
    with command(cfg.out_dir, cfg.store_path, "run", cfg.to_toml(), as_stage=False):
        return _run(cfg, progress, with_features, with_model, with_publish, with_report)


def _run(
    cfg: Config,
    progress: Progress | None,
    with_features: bool,
    with_model: bool,
    with_publish: bool,
    with_report: bool,
) -> RunResult:
    report = ingest_sources(cfg, progress=progress)
    feats = build_features(cfg, progress=progress).to_dict() if with_features else None
    model = _model_summary(cfg, progress) if (with_features and with_model) else None
    with_maps = with_features and with_report
    published: PublishResult | None
    maps: MapsResult | None
    rep: ReportResult | None
    if with_publish and with_maps and cfg.compute.effective_threads > 1 and is_large(cfg):
        published, maps, rep = _publish_beside_maps(cfg, progress)
    else:
        published = publish_star(cfg, progress=progress) if with_publish else None
        maps = render_maps(cfg, progress=progress) if with_maps else None
        rep = write_report(cfg, maps=maps) if maps is not None else None
    with Store(cfg.store_path) as store:
        summary = {
            "run_id": report.run_id,
            "store": str(cfg.store_path),
            "sources": [s.to_dict() for s in report.sources],
            **summarize(store),
            "warnings": report.manifest.warnings
            + (feats["warnings"] if feats else [])
            + ([model["skipped"]] if model and model.get("skipped") else []),
        }
    if feats is not None:
        summary["features"] = {k: v for k, v in feats.items() if k != "warnings"}
    if model is not None:
        summary["model"] = model
    if published is not None:
        summary["publish"] = {
            "publish_id": published.publish_id,
            "rows": published.rows,
            "targets": {t["target"]: t["location"] for t in published.targets},
        }
    if maps is not None and rep is not None:
        summary["maps"] = {"folder": str(maps.folder), "png": maps.png, "html": maps.html}
        summary["report"] = {"html": str(rep.html), "markdown": str(rep.markdown)}
    return RunResult(summary=summary, summary_path=_write_summary(cfg, summary))


#: how much lower the priority of the maps and the report beside the publish is (``nice``;
#: see :func:`_maps_and_report`)
_BESIDE_NICE = 3


def _publish_beside_maps(
    cfg: Config, progress: Progress | None
) -> tuple[PublishResult, MapsResult, ReportResult]:
    """The publish here and, in a second process beside it, the maps and the report.

    For a large star (:func:`~twmb_geo.publish.stage.is_large`): the Turso file keeps this
    process writing for minutes while one core is left idle once the folder and DuckDB
    are written. Both read the store read-only, and the outputs are the same as one after
    the other. The manifest gets the stages in the same order (publish, maps, report),
    each with its own time; an error of the publish is raised first, and the maps and the
    report run to their end whatever happens here.
    """
    log.info("the maps and the report are made in a second process beside the publish")
    with background_process() as executor:
        future = run_in(executor, _maps_and_report, cfg)
        try:
            published = publish_star(cfg, progress=progress)
        finally:
            outcome = _merged(future)
    if isinstance(outcome, BaseException):
        raise outcome
    return published, *outcome


def _merged(
    future: Future[tuple[RunManifest, tuple[MapsResult, ReportResult] | Exception]],
) -> tuple[MapsResult, ReportResult] | Exception:
    """The background's maps and report, their stages merged into this command's manifest
    (a process that died is recorded as the maps stage failing)."""
    outer = active_manifest()
    try:
        part, outcome = future.result()
    except BrokenProcessPool as exc:
        outcome = TwmbError(
            f"the process making the maps and the report died ({exc}); run `twmb maps` and "
            "`twmb report` on the output folder to make them"
        )
        part = RunManifest(command="run")
        with contextlib.suppress(TwmbError), part.stage("maps"):
            raise outcome from exc
    if outer is not None:
        outer.merge(part)
    return outcome


def _maps_and_report(
    cfg: Config,
) -> tuple[RunManifest, tuple[MapsResult, ReportResult] | Exception]:
    """The maps and the report (in the background process), recorded as stages of a
    detached manifest; an error is returned with the stages that ran.

    The process runs at a slightly lower priority, so that the publish and the maps end
    at about the same time. Measured at 500,000 pipes (publish, maps and report): nice
    10 left the maps running alone for 60 s after the publish (323 s); at nice 0 the
    publish ended last, slowed by 21 s (271 s); nice 3 ended both together (266 s).
    """
    with contextlib.suppress(AttributeError, OSError):  # no nice() on this platform
        os.nice(_BESIDE_NICE)
    with detached("run") as part:
        try:
            maps = render_maps(cfg)
            return part, (maps, write_report(cfg, maps=maps))
        except Exception as exc:  # noqa: BLE001  (raised by the caller, after the publish)
            return part, exc


def synthetic_example(
    out: Path,
    *,
    n_pipes: int | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
    with_features: bool = True,
    with_model: bool = True,
    with_publish: bool = True,
    with_report: bool = True,
) -> RunResult:
    """Generate a synthetic city under ``out/synthetic-city``, run the job on it, score matching."""
    if progress:
        progress("synthetic city: generating", 0, 1)
    kwargs: dict[str, Any] = {}
    if n_pipes is not None:
        kwargs["n_pipes"] = n_pipes
    if seed is not None:
        kwargs["seed"] = seed
    city = make_city(**kwargs)
    folder = Path(out) / "synthetic-city"
    paths = write_city(city, folder)
    cfg = load_config(paths["config"], out=Path(out))
    result = run(
        cfg,
        progress=progress,
        with_features=with_features,
        with_model=with_model,
        with_publish=with_publish,
        with_report=with_report,
    )
    summary = {**result.summary, "synthetic_city": {"folder": str(folder), **city.figures()}}
    if with_features:
        with Store(cfg.store_path) as store:
            summary["match_accuracy"] = evaluate_matching(store, paths["break_truth"])
    return RunResult(summary=summary, summary_path=_write_summary(cfg, summary))
