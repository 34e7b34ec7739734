"""The pipeline: ingest sources into the store and summarise them (``twmb ingest`` / ``twmb run``).

Each source is read with its profile, validated into curated tables plus quarantine, and
written to the store in one transaction. The run manifest records inputs, timings, CRS
transformations and warnings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from .config import Config, SourceConfig
from .errors import InputDataError, TwmbError
from .ingest._common import IngestContext, IngestResult
from .ingest.neighbourhoods import service_area_table
from .io.profiles import Profile
from .io.readers import RawChunk, iter_raw, sha256_file
from .manifest import RunManifest
from .store.duckdb_store import Store

__all__ = [
    "IngestReport",
    "SourceReport",
    "evaluate_matching",
    "features",
    "ingest",
    "powerbi_kit",
    "publish_star",
    "read_source",
    "run",
    "score",
    "simulate",
    "summarize",
    "synthetic_example",
    "train",
]

log = logging.getLogger(__name__)

#: called as progress(description, completed, total)
Progress = Callable[[str, int, int], None]
_KIND_ORDER = {"neighbourhoods": 0, "weather_daily": 1, "pipes": 2, "streets": 3, "breaks": 4}


@dataclass
class SourceReport:
    """What happened to one source."""

    source_id: str
    profile: str
    kind: str
    files: list[str]
    rows_in: int
    accepted: int
    quarantined: int
    quarantined_by_reason: dict[str, int]
    flags: dict[str, int] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


@dataclass
class IngestReport:
    """The outcome of an ingest: per-source reconciliation and the run manifest."""

    run_id: str
    store: Path
    sources: list[SourceReport]
    manifest: RunManifest

    @property
    def ok(self) -> bool:
        """True when the run finished."""
        return self.manifest.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "run_id": self.run_id,
            "store": str(self.store),
            "status": self.manifest.status,
            "sources": [s.to_dict() for s in self.sources],
            "warnings": self.manifest.warnings,
        }


def _chunks(files: Sequence[Path], profile: Profile) -> Iterator[RawChunk]:
    for f in files:
        yield from iter_raw(f, profile)


def _transform(
    files: list[Path], source_id: str, profile: Profile, ctx: IngestContext, cfg: Config | None
) -> IngestResult:
    if profile.kind == "breaks":
        from .ingest.breaks import transform_breaks

        return transform_breaks(_chunks(files, profile), source_id, profile, ctx)
    if profile.kind == "neighbourhoods":
        from .ingest.neighbourhoods import transform_neighbourhoods

        return transform_neighbourhoods(_chunks(files, profile), source_id, profile, ctx)
    if profile.kind == "weather_daily":
        from .ingest.weather import read_eccc_daily, transform_weather

        raw = read_eccc_daily(files)
        threshold = cfg.weather_coverage_threshold if cfg else 0.9
        w = transform_weather(raw, source_id, today=ctx.today, coverage_threshold=threshold)
        from .contracts import conform

        monthly = conform(w.monthly.assign(source_id=source_id), "curated/weather_monthly")
        winters = conform(w.winters.assign(source_id=source_id), "curated/weather_winters")
        res = IngestResult(
            source_id,
            "weather_daily",
            {
                "weather_daily": conform(w.daily, "curated/weather_daily"),
                "weather_monthly": monthly,
                "weather_winters": winters,
            },
            w.quarantine,
            w.rows_in,
            list(w.warnings),
        )
        res.reconcile()
        return res
    if profile.kind in ("pipes", "streets"):
        from .ingest import assets

        fn = assets.transform_pipes if profile.kind == "pipes" else assets.transform_streets
        return fn(_chunks(files, profile), source_id, profile, ctx)
    raise InputDataError(f"profile {profile.id!r}: kind {profile.kind!r} cannot be ingested")


def read_source(
    path: Path | str | Sequence[Path | str],
    profile: Profile | str,
    *,
    source_id: str = "source",
    service_area: shapely.Geometry | None = None,
    today: Any = None,
) -> IngestResult:
    """Read and validate one source without a store: curated tables and quarantine in memory.

    Parameters
    ----------
    path
        A file, or several files of one source (e.g. yearly weather CSVs).
    profile
        A :class:`~twmb_geo.io.profiles.Profile` or the id of a built-in profile.
    service_area
        Buffered boundary in EPSG:2952 for the outside-area check (optional).
    """
    import datetime as dt

    from .io.profiles import get_profile

    prof = get_profile(profile) if isinstance(profile, str) else profile
    files = [Path(p) for p in ([path] if isinstance(path, str | Path) else path)]
    ctx = IngestContext(today=today or dt.date.today(), service_area=service_area)
    return _transform(files, source_id, prof, ctx, None)


def _load_service_area(store: Store, source_id: str | None) -> shapely.Geometry | None:
    if not source_id or not store.has_table("service_area"):
        return None
    df = store.read("service_area", "source_id = ?", [source_id])
    if df.empty:
        return None
    area = shapely.from_wkb(bytes(df["geometry_buffered"].iloc[0]))
    shapely.prepare(area)
    return area


def ingest(
    cfg: Config,
    source_ids: Sequence[str] | None = None,
    *,
    progress: Progress | None = None,
    command: str = "ingest",
) -> IngestReport:
    """Ingest the config's sources (or ``source_ids``) into the store.

    Neighbourhood sources go first so the service area exists for the other checks. Each
    source is one transaction. Raises the first :class:`~twmb_geo.errors.TwmbError` after
    recording the failed run.
    """
    wanted = (
        [s for s in cfg.sources if s.enabled]
        if not source_ids
        else [cfg.source(i) for i in source_ids]
    )
    wanted.sort(key=lambda s: _KIND_ORDER.get(cfg.profile(s).kind, 9))
    manifest = RunManifest(command=command)
    manifest.config = cfg.to_toml()
    reports: list[SourceReport] = []
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    with Store(cfg.store_path) as store:
        try:
            for i, src in enumerate(wanted):
                if progress:
                    progress(f"ingest {src.id}", i, len(wanted))
                reports.append(_ingest_one(store, cfg, src, manifest))
            if progress:
                progress("ingest done", len(wanted), len(wanted))
            manifest.finish("ok")
        except TwmbError as exc:
            manifest.finish("failed", str(exc))
            _record_run(store, manifest, reports)
            _write_manifest(cfg, manifest)
            raise
        _record_run(store, manifest, reports)
    _write_manifest(cfg, manifest)
    return IngestReport(manifest.run_id, cfg.store_path, reports, manifest)


def _ingest_one(
    store: Store, cfg: Config, src: SourceConfig, manifest: RunManifest
) -> SourceReport:
    profile = cfg.profile(src)
    files = src.files(cfg.root)
    if not files:
        raise InputDataError(f"source {src.id!r}: no files match {src.path}")
    for f in files:
        if not f.exists():
            raise InputDataError(f"source {src.id!r}: {f}: file not found")
    with manifest.step(f"hash:{src.id}"):
        inputs = [
            {
                "source_id": src.id,
                "profile": profile.id,
                "file": str(f),
                "sha256": sha256_file(f),
                "bytes": f.stat().st_size,
            }
            for f in files
        ]
    manifest.inputs.extend(inputs)
    sa = (
        None
        if profile.kind == "neighbourhoods"
        else _load_service_area(store, cfg.service_area_source)
    )
    if sa is None and profile.kind in ("breaks", "pipes", "streets"):
        manifest.warnings.append(
            f"source {src.id!r}: no service area in the store (source {cfg.service_area_source!r}); "
            "the outside-area check falls back to the CRS area of use"
        )
    ctx = IngestContext(today=cfg.run_date, service_area=sa)
    with manifest.step(f"transform:{src.id}"):
        result = _transform(files, src.id, profile, ctx, cfg)
    if result.rows_in and result.accepted == 0:
        q = result.quarantine
        examples = [
            f"{r.source_file} row {r.source_row}: {r.reason}: {r.detail}"
            for r in q.head(3).itertuples()
        ]
        raise InputDataError(
            f"source {src.id!r}: every one of its {result.rows_in:,} rows failed validation "
            f"({', '.join(f'{k} {v:,}' for k, v in result.quarantined_by_reason.items())}); "
            f"nothing was written. Check the profile {profile.id!r} (columns, date_format, CRS) against the file",
            examples,
        )
    with manifest.step(f"store:{src.id}"):
        store.replace_source(src.id, result.tables, result.quarantine)
        if profile.kind == "neighbourhoods" and src.id == cfg.service_area_source:
            sa_df = service_area_table(
                result.tables["neighbourhoods"], src.id, cfg.service_area_buffer_m
            )
            store.replace_rows("service_area", sa_df, "source_id = ?", [src.id])
    manifest.warnings.extend(result.warnings)
    for w in result.warnings:
        log.warning("%s", w)
    manifest.crs.extend(result.crs)
    rep = SourceReport(
        source_id=src.id,
        profile=profile.id,
        kind=profile.kind,
        files=[str(f) for f in files],
        rows_in=result.rows_in,
        accepted=result.accepted,
        quarantined=len(result.quarantine),
        quarantined_by_reason=result.quarantined_by_reason,
        flags=result.flags,
        tables={k: len(v) for k, v in result.tables.items()},
        warnings=result.warnings,
    )
    manifest.sources.append(rep.to_dict())
    log.info(
        "%s: %d rows in, %d accepted, %d quarantined",
        src.id,
        rep.rows_in,
        rep.accepted,
        rep.quarantined,
    )
    return rep


def _record_run(store: Store, manifest: RunManifest, reports: list[SourceReport]) -> None:
    runs = pd.DataFrame(
        [
            {
                "run_id": manifest.run_id,
                "command": manifest.command,
                "status": manifest.status,
                "started_at": pd.Timestamp(manifest.started_at).tz_convert(None),
                "finished_at": pd.Timestamp(manifest.finished_at).tz_convert(None)
                if manifest.finished_at
                else pd.NaT,
                "package_version": manifest.to_dict()["versions"]["twmb_geo"],
                "manifest": manifest.to_json(),
            }
        ]
    )
    runs["started_at"] = runs["started_at"].astype("datetime64[us]")
    runs["finished_at"] = runs["finished_at"].astype("datetime64[us]")
    store.append("runs", runs)
    by_source = {r.source_id: r for r in reports}
    rows = []
    for inp in manifest.inputs:
        r = by_source.get(inp["source_id"])
        if r is None:
            continue
        rows.append(
            {
                "run_id": manifest.run_id,
                "source_id": r.source_id,
                "profile": r.profile,
                "file": inp["file"],
                "sha256": inp["sha256"],
                "bytes": np.int64(inp["bytes"]),
                "rows_in": np.int64(r.rows_in),
                "accepted": np.int64(r.accepted),
                "quarantined": np.int64(r.quarantined),
                "quarantined_by_reason": json.dumps(r.quarantined_by_reason, sort_keys=True),
            }
        )
    if rows:
        store.append("run_inputs", pd.DataFrame(rows))


def _write_manifest(cfg: Config, manifest: RunManifest) -> None:
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    (cfg.out_dir / "manifest.json").write_text(manifest.to_json() + "\n", encoding="utf-8")


def summarize(store: Store, *, top: int = 10) -> dict[str, Any]:
    """Headline figures from the store: breaks per year and the top neighbourhoods by rate."""
    out: dict[str, Any] = {}
    if store.has_table("breaks") and store.count("breaks"):
        per_year = store.query("SELECT year, count(*) AS n FROM breaks GROUP BY year ORDER BY year")
        out["breaks_per_year"] = {
            int(y): int(n) for y, n in zip(per_year["year"], per_year["n"], strict=True)
        }
        out["breaks_total"] = int(per_year["n"].sum())
        if store.has_table("neighbourhoods") and store.count("neighbourhoods"):
            out["top_neighbourhoods"] = _top_neighbourhoods(store, top, len(per_year))
    if store.has_table("weather_monthly") and store.count("weather_monthly"):
        w = store.query(
            "SELECT min(year) AS y0, max(year) AS y1, sum(CASE WHEN coverage_ok THEN 1 ELSE 0 END) AS ok, "
            "count(*) AS months FROM weather_monthly"
        )
        out["weather"] = {k: int(w[k].iloc[0]) for k in w.columns}
    return out


def _top_neighbourhoods(store: Store, top: int, n_years: int) -> list[dict[str, Any]]:
    nb = store.read("neighbourhoods")
    br = store.query("SELECT x, y FROM breaks")
    polys = shapely.from_wkb(nb["geometry"].to_numpy())
    pts = shapely.points(br["x"].to_numpy(), br["y"].to_numpy())
    tree = shapely.STRtree(polys)
    pt_idx, poly_idx = tree.query(pts, predicate="intersects")
    # a point on a shared edge counts once, for the first polygon in code order
    first = pd.DataFrame({"p": pt_idx, "n": poly_idx}).drop_duplicates("p")
    counts = np.bincount(first["n"].to_numpy(), minlength=len(nb))
    df = pd.DataFrame(
        {
            "area_code": nb["area_code"],
            "area_name": nb["area_name"],
            "breaks": counts,
            "breaks_per_year": counts / max(n_years, 1),
            "area_km2": nb["area_km2"],
        }
    )
    df["breaks_per_km2_per_year"] = df["breaks_per_year"] / df["area_km2"]
    df = df.sort_values(
        ["breaks_per_year", "area_code"], ascending=[False, True], kind="stable"
    ).head(top)
    return [
        {
            "area_code": r.area_code,
            "area_name": r.area_name,
            "breaks": int(r.breaks),
            "breaks_per_year": round(float(r.breaks_per_year), 1),
            "breaks_per_km2_per_year": round(float(r.breaks_per_km2_per_year), 2),
        }
        for r in df.itertuples()
    ]


def features(cfg: Config, *, progress: Progress | None = None) -> dict[str, Any]:
    """The feature stage alone (units, links, graphs, panel, lags, ESDA) on the store."""
    from .features.build import build_features

    return build_features(cfg, progress=progress).to_dict()


def train(
    cfg: Config, *, unit_types: Sequence[str] | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """The model stage: cross-validate, fit and register one model per unit type."""
    from .model.stage import train_models

    return train_models(cfg, unit_types=unit_types, progress=progress)


def score(
    cfg: Config,
    *,
    unit_types: Sequence[str] | None = None,
    model_version: str | None = None,
    top: int = 10,
) -> dict[str, Any]:
    """Score the latest year of every unit (newest or given model) into ``risk_scores``."""
    from .model.stage import score_latest

    return score_latest(cfg, unit_types=unit_types, model_version=model_version, top=top)


def simulate(
    cfg: Config,
    *,
    unit_types: Sequence[str] | None = None,
    horizon: int | None = None,
    n_sims: int | None = None,
    replace_km: float | None = None,
    replace_units: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Monte Carlo of breaks over 1..horizon years and the renewal scenario (current scores)."""
    from .model.stage import run_simulation

    return run_simulation(
        cfg,
        unit_types=unit_types,
        horizon=horizon,
        n_sims=n_sims,
        replace_km=replace_km,
        replace_units=replace_units,
        seed=seed,
    )


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
) -> dict[str, Any]:
    """Build the Power BI star schema from the store and publish it to ``targets``.

    Targets: ``folder`` (Parquet/CSV), ``duckdb``, ``turso-file`` (local Turso database) and
    ``turso`` (remote, ``turso_url``; token from ``TURSO_AUTH_TOKEN``). Default: the local
    three, plus ``turso`` when a URL is given. Every fact key is checked first; a broken key
    fails the publish (nothing written) with a :class:`ContractError`. See
    :func:`twmb_geo.publish.stage.publish`.
    """
    from .publish.stage import LOCAL_TARGETS
    from .publish.stage import publish as do_publish

    if targets is None:
        targets = (*LOCAL_TARGETS, "turso") if turso_url else LOCAL_TARGETS
    return do_publish(
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


def make_maps(
    cfg: Config,
    *,
    folder: Path | str | None = None,
    formats: Sequence[str] = ("geojson", "gpkg", "geoparquet"),
    png: bool = True,
    html: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Map outputs from the store: GeoJSON/GeoPackage/GeoParquet, PNG maps, the HTML map.

    Default folder ``<out>/maps``. See :func:`twmb_geo.maps.stage.make_maps`.
    """
    from .maps.stage import make_maps as do_maps

    return do_maps(cfg, folder=folder, formats=formats, png=png, html=html, progress=progress)


def make_report(
    cfg: Config, *, folder: Path | str | None = None, maps: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The run report (``report.html`` self-contained, ``report.md``), default ``<out>/report``.

    ``maps`` is the result of :func:`make_maps` (its PNG maps are embedded); without it the
    maps are rendered first.
    """
    from .maps.stage import make_report as do_report

    if maps is None:
        maps = make_maps(cfg, formats=())
    return do_report(cfg, folder=folder, maps=maps)


def _model_summary(cfg: Config, progress: Progress | None) -> dict[str, Any]:
    try:
        trained = train(cfg, progress=progress)
    except InputDataError as exc:  # too little history to validate a model: say so, go on
        msg = f"model stage skipped: {exc}"
        log.warning(msg)
        return {"skipped": msg, "models": [], "scores": [], "simulations": []}
    if progress:
        progress("score", 0, 2)
    scored = score(cfg)
    if progress:
        progress("simulate", 1, 2)
    sims = simulate(cfg)
    return {
        "models": trained["models"],
        "scores": scored["scores"],
        "simulations": [{k: v for k, v in s.items() if k != "city"} for s in sims["simulations"]],
    }


def run(
    cfg: Config,
    *,
    progress: Progress | None = None,
    with_features: bool = True,
    with_model: bool = True,
    with_publish: bool = True,
    with_report: bool = True,
) -> dict[str, Any]:
    """The main job: ingest, features, models (train, score, simulate), publish, maps, report.

    Writes ``<out>/summary.json``; ``with_model`` and ``with_report`` need ``with_features``.
    The publish goes to the local targets (Parquet/CSV folder, DuckDB file, local Turso
    database file); maps go to ``<out>/maps/`` and the report to ``<out>/report/``.
    """
    report = ingest(cfg, progress=progress, command="run")
    feats = features(cfg, progress=progress) if with_features else None
    model = _model_summary(cfg, progress) if (with_features and with_model) else None
    published = publish_star(cfg, progress=progress) if with_publish else None
    maps = make_maps(cfg, progress=progress) if (with_features and with_report) else None
    rep = make_report(cfg, maps=maps) if maps is not None else None
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
            "publish_id": published["publish_id"],
            "rows": published["rows"],
            "targets": {t["target"]: t["location"] for t in published["targets"]},
        }
    if maps is not None and rep is not None:
        summary["maps"] = {k: maps[k] for k in ("folder", "png", "html") if k in maps}
        summary["report"] = {"html": str(rep["html"]), "markdown": str(rep["markdown"])}
    path = cfg.out_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    summary["summary_path"] = str(path)
    return summary


def evaluate_matching(store: Store, truth_csv: Path, source_id: str = "breaks") -> dict[str, Any]:
    """Break-to-pipe match accuracy against a synthetic city's truth (``truth/break_truth.csv``).

    The truth gives, per row of the published breaks CSV, the pipe that really broke.
    Accuracy = share of breaks linked to their true pipe, over all breaks of the source
    (unmatched and quarantined breaks count as misses), and over the linked ones.
    """
    truth = pd.read_csv(truth_csv, dtype={"asset_id": str})
    breaks = store.query("SELECT break_id, source_row FROM breaks WHERE source_id = ?", [source_id])
    links = store.query(
        "SELECT break_id, unit_id, status, reason FROM break_links WHERE unit_type = 'pipe'"
    )
    df = truth.merge(breaks, left_on="row", right_on="source_row", how="left").merge(
        links, on="break_id", how="left"
    )
    correct = (df["unit_id"].astype(str) == df["asset_id"].astype(str)) & (
        df["status"] == "matched"
    )
    linked = df["status"] == "matched"
    reasons = df.loc[~linked & df["break_id"].notna(), "reason"].value_counts()
    return {
        "breaks": len(df),
        "ingested": int(df["break_id"].notna().sum()),
        "linked": int(linked.sum()),
        "correct": int(correct.sum()),
        "accuracy": round(float(correct.mean()), 4) if len(df) else None,
        "accuracy_of_linked": round(float(correct[linked].mean()), 4) if linked.any() else None,
        "unmatched_by_reason": {str(k): int(v) for k, v in sorted(reasons.items())},
    }


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
) -> dict[str, Any]:
    """Generate a synthetic city under ``out/synthetic-city``, run the job on it, score matching."""
    from .config import load_config
    from .synth import make_city, write_city

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
    summary = run(
        cfg,
        progress=progress,
        with_features=with_features,
        with_model=with_model,
        with_publish=with_publish,
        with_report=with_report,
    )
    summary["synthetic_city"] = {"folder": str(folder), **city.figures()}
    if with_features:
        with Store(cfg.store_path) as store:
            summary["match_accuracy"] = evaluate_matching(store, paths["break_truth"])
        (cfg.out_dir / "summary.json").write_text(
            json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8"
        )
    return summary


def powerbi_kit(
    cfg: Config, *, folder: Path | str | None = None, source: str = "turso"
) -> dict[str, Any]:
    """Write the Power BI kit (Power Query scripts, PBIP/TMDL model) for the star schema.

    Generated from the star contracts alone (no store needed), into ``folder`` (default
    ``<out>/powerbi``). ``source`` picks what the model's tables read: ``"turso"`` (the
    Turso database over HTTP) or ``"parquet"`` (the folder of :func:`publish_star`, the
    default of the ``StarFolder`` parameter being ``<out>/star``). The risk tiers counted as
    "high" are the two riskiest of the config's ``[model] tiers``.
    """
    from .publish.powerbi import write_powerbi_kit

    return write_powerbi_kit(
        Path(folder) if folder else cfg.out_dir / "powerbi",
        source=source,
        star_folder=str((cfg.out_dir / "star").resolve()),
        tiers=cfg.model.tiers,
    )
