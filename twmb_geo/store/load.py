"""Load sources into the store: ingest every source, reconcile it, record the run.

Each source is read with its profile, validated into curated tables plus quarantine, and
written to the store in one transaction. The run manifest (``<out>/manifest.json`` and the
``runs``/``run_inputs`` tables) records inputs with their sha256, timings, CRS
transformations and warnings.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from ..config import Config, SourceConfig
from ..core.compute import available_memory, jobs_plan, parallel_map, release_workers
from ..core.crs import current_crs, using_crs
from ..core.types import Progress
from ..errors import InputDataError
from ..ingest._common import IngestContext, IngestResult
from ..ingest.neighbourhoods import service_area_table
from ..ingest.service_area import DERIVED_SOURCE_ID, derived_service_area
from ..ingest.sources import TRANSFORMS, transform_source
from ..io.profiles import Profile
from ..io.readers import sha256_file
from . import runlog
from .duckdb_store import Store
from .manifest import RunManifest
from .project import resolve_analysis_crs

__all__ = ["IngestReport", "SourceReport", "ingest_sources"]

log = logging.getLogger(__name__)

_KIND_ORDER = {"neighbourhoods": 0, "weather_daily": 1, "pipes": 2, "streets": 3, "breaks": 4}

#: sources (after the neighbourhoods, which define the service area the others are checked
#: against) of this many bytes in all are transformed in worker processes, the largest first
#: (a smaller ingest is done sooner than the workers start)
PARALLEL_BYTES = 64 * 2**20
#: ... when the memory available is this many times their bytes: measured 4.9 (500,000
#: pipes) and 4.6 (2,000,000) times with the workers, about 3 times one at a time
PARALLEL_MEMORY_FACTOR = 6


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
    #: rows dropped by the profile's ``[[where]]`` row filters (rows in = accepted +
    #: quarantined + excluded), and per condition
    excluded: int = 0
    excluded_by_rule: dict[str, int] = field(default_factory=dict)
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
    status: str = "ok"

    @property
    def ok(self) -> bool:
        """True when the ingest finished."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "run_id": self.run_id,
            "store": str(self.store),
            "status": self.status,
            "sources": [s.to_dict() for s in self.sources],
            "warnings": self.manifest.warnings,
        }


def _plain(v: Any) -> Any:
    """A store value as plain JSON (NaN -> None)."""
    if isinstance(v, float | np.floating):
        return float(v) if np.isfinite(v) else None
    return v


def _load_service_area(store: Store, source_id: str | None) -> shapely.Geometry | None:
    if not source_id or not store.has_table("service_area"):
        return None
    df = store.read("service_area", "source_id = ?", [source_id])
    if df.empty:
        return None
    area = shapely.from_wkb(bytes(df["geometry_buffered"].iloc[0]))
    shapely.prepare(area)
    return area


def ingest_sources(
    cfg: Config,
    source_ids: Sequence[str] | None = None,
    *,
    progress: Progress | None = None,
    command: str = "ingest",
) -> IngestReport:
    """Ingest the config's sources (or ``source_ids``) into the store.

    Neighbourhood sources go first so the service area exists for the other checks. Each
    source is one transaction. Runs as the command (or, inside ``run``, the stage) ``command``
    (:func:`twmb_geo.store.runlog.command`: the folder's lock, ``manifest.json`` as it goes,
    the ``runs`` row). Raises the first :class:`~twmb_geo.errors.TwmbError` after recording
    the failed run.
    """
    wanted = (
        [s for s in cfg.sources if s.enabled]
        if not source_ids
        else [cfg.source(i) for i in source_ids]
    )
    wanted.sort(key=lambda s: _KIND_ORDER.get(cfg.profile(s).kind, 9))
    reports: list[SourceReport] = []
    with (
        runlog.command(cfg.out_dir, cfg.store_path, command, cfg.to_toml()) as manifest,
        Store(cfg.store_path) as store,
    ):
        try:
            with manifest.step("analysis_crs"):
                crs_row = resolve_analysis_crs(store, cfg)
            manifest.analysis_crs = {k: _plain(v) for k, v in crs_row.items()}
            crs = str(crs_row["crs"])
            with using_crs(crs):
                # the neighbourhoods first: the others' contexts read the service area
                first = [s for s in wanted if cfg.profile(s).kind == "neighbourhoods"]
                rest = [s for s in wanted if s not in first]
                for group in (first, rest):
                    for rep in _ingest_group(store, cfg, group, manifest, crs):
                        reports.append(rep)
                        if progress:
                            progress(f"ingest {rep.source_id}", len(reports), len(wanted))
                _derive_service_area(store, cfg, manifest)
            if progress:
                progress("ingest done", len(wanted), len(wanted))
        except BaseException:
            try:  # what was ingested before the failure; never hide the failure itself
                _record_run(store, manifest, reports)
            except Exception as exc:  # noqa: BLE001
                log.warning("could not record the inputs of run %s: %s", manifest.run_id, exc)
            raise
        _record_run(store, manifest, reports)
    return IngestReport(manifest.run_id, cfg.store_path, reports, manifest)


@dataclass
class _Job:
    """One source to ingest: its files (hashed), profile and context, and what is
    recorded in the manifest when it is stored (so that the manifest reads as one source
    after another whichever finished first)."""

    source: SourceConfig
    profile: Profile
    files: list[Path]
    ctx: IngestContext
    hashed: float
    notes: list[str]

    @property
    def size(self) -> int:
        """Bytes of its files."""
        return sum(f.stat().st_size for f in self.files)


def _prepare(store: Store, cfg: Config, src: SourceConfig, manifest: RunManifest) -> _Job:
    """The source's files, checked and hashed into the manifest, and its context."""
    profile = cfg.profile(src)
    files = src.files(cfg.root)
    if not files:
        raise InputDataError(f"source {src.id!r}: no files match {src.path}")
    for f in files:
        if not f.exists():
            raise InputDataError(f"source {src.id!r}: {f}: file not found")
    t0 = time.perf_counter()
    manifest.inputs.extend(
        {
            "source_id": src.id,
            "profile": profile.id,
            "file": str(f),
            "sha256": sha256_file(f),
            "bytes": f.stat().st_size,
        }
        for f in files
    )
    hashed = time.perf_counter() - t0
    notes: list[str] = []
    ctx = _context(store, cfg, src, profile.kind, notes)
    return _Job(src, profile, files, ctx, hashed, notes)


def _context(
    store: Store, cfg: Config, src: SourceConfig, kind: str, notes: list[str]
) -> IngestContext:
    """The day, the service area (for every kind but the one that defines it) and settings;
    a missing service area is noted in ``notes``."""
    boundary = cfg.boundary_source()
    sa = None if kind == "neighbourhoods" else _load_service_area(store, boundary)
    if sa is None and kind in ("breaks", "pipes", "streets"):
        why = (
            f"no service area in the store (source {boundary!r})"
            if boundary
            else "no boundary source ([project] service_area_source)"
        )
        notes.append(
            f"source {src.id!r}: {why}; the outside-area check falls back to the CRS area of use"
        )
    return IngestContext(
        today=cfg.run_date,
        service_area=sa,
        weather_coverage_threshold=cfg.weather_coverage_threshold,
        street_node_tolerance_m=cfg.graphs.street_node_tolerance_m,
    )


def _geometries(store: Store, table: str) -> np.ndarray:
    if not store.has_table(table) or not store.count(table):
        return np.zeros(0, dtype=object)
    wkb = store.query(f'SELECT geometry FROM "{table}" WHERE geometry IS NOT NULL')["geometry"]
    return shapely.from_wkb(np.array([bytes(b) for b in wkb], dtype=object))


def _derive_service_area(store: Store, cfg: Config, manifest: RunManifest) -> None:
    """Without a boundary source, derive the service area from the store's geometry.

    ``[project] service_area``: ``auto`` derives the ``h3`` cover, ``hull``/``h3`` that
    method, ``none`` nothing (any derived row is removed). Recorded in the
    ``service_area`` table (``source_id`` ``(derived)``) and the manifest.
    """
    mode = cfg.service_area
    boundary = cfg.boundary_source()
    if boundary and mode == "auto":
        manifest.service_area = {"method": "boundary", "source_id": boundary}
        return
    if store.has_table("service_area"):
        store.delete("service_area", "source_id = ?", [DERIVED_SOURCE_ID])
    if mode == "none":
        manifest.service_area = {"method": "none"}
        manifest.warnings.append(
            "[project] service_area = 'none': no service area; H3 cell units are skipped"
        )
        return
    method = "h3" if mode == "auto" else mode
    with manifest.step("service_area"):
        lines = [_geometries(store, "pipes"), _geometries(store, "street_segments")]
        pts = (
            store.query("SELECT x, y FROM breaks").to_numpy(dtype=float)
            if store.has_table("breaks")
            else np.zeros((0, 2))
        )
        df = derived_service_area(lines, pts, method, cfg.h3_resolution, cfg.service_area_buffer_m)
        store.replace_rows("service_area", df, "source_id = ?", [DERIVED_SOURCE_ID])
    manifest.service_area = {
        "method": method,
        "source_id": DERIVED_SOURCE_ID,
        "area_km2": round(float(df["area_km2"].iloc[0]), 3),
        "buffer_m": cfg.service_area_buffer_m,
    }
    why = (
        "no boundary source ([project] service_area_source)"
        if mode == "auto"
        else f"[project] service_area = {mode!r}"
    )
    note = f"service area derived from the data ({method}, {df['area_km2'].iloc[0]:.1f} km2): {why}"
    manifest.warnings.append(note)
    log.warning("%s", note)


def _refuse_if_nothing_accepted(result: IngestResult, source_id: str, profile_id: str) -> None:
    if not result.rows_in or result.accepted:
        return
    examples = [
        f"{r.source_file} row {r.source_row}: {r.reason}: {r.detail}"
        for r in result.quarantine.head(3).itertuples()
    ]
    if result.excluded:
        raise InputDataError(
            f"source {source_id!r}: none of its {result.rows_in:,} rows was accepted: "
            f"{result.excluded_rows:,} excluded by the [[where]] row filters of profile "
            f"{profile_id!r} ({', '.join(f'{k} {v:,}' for k, v in result.excluded.items())}), "
            f"{len(result.quarantine):,} quarantined; nothing was written. Check the filters",
            examples,
        )
    raise InputDataError(
        f"source {source_id!r}: every one of its {result.rows_in:,} rows failed validation "
        f"({', '.join(f'{k} {v:,}' for k, v in result.quarantined_by_reason.items())}); "
        f"nothing was written. Check the profile {profile_id!r} (columns, date_format, CRS) against the file",
        examples,
    )


def _ingest_one(
    store: Store, cfg: Config, src: SourceConfig, manifest: RunManifest
) -> SourceReport:
    job = _prepare(store, cfg, src, manifest)
    return _store_one(store, cfg, job, _transform(*_args(job, current_crs())), manifest)


def _ingest_group(
    store: Store, cfg: Config, sources: Sequence[SourceConfig], manifest: RunManifest, crs: str
) -> Iterator[SourceReport]:
    """Ingest ``sources`` in order, each stored as it comes; when :func:`_pooled`,
    transformed in worker processes beforehand, the largest first. Either way a source that
    fails (its files or its rows) raises its error after the sources before it are stored,
    and the store and the manifest are the same."""
    if not _pooled(cfg, sources):
        for src in sources:
            yield _ingest_one(store, cfg, src, manifest)
        return
    jobs: list[_Job] = []
    failure: Exception | None = None
    for src in sources:
        try:
            jobs.append(_prepare(store, cfg, src, manifest))
        except Exception as exc:  # noqa: BLE001  (raised once the sources before it are in)
            failure = exc
            break
    done: dict[int, tuple[IngestResult | Exception, float]] = {}
    turn = 0
    for position, outcome in _transformed(jobs, cfg.compute.threads, crs):
        done[position] = outcome
        while turn in done:
            try:
                yield _store_one(store, cfg, jobs[turn], done.pop(turn), manifest)
            except BaseException:
                # as in sequence: the sources after a failure were not read
                later = {job.source.id for job in jobs[turn + 1 :]}
                manifest.inputs[:] = [i for i in manifest.inputs if i["source_id"] not in later]
                raise
            turn += 1
    if failure is not None:
        raise failure


def _pooled(cfg: Config, sources: Sequence[SourceConfig]) -> bool:
    """Whether ``sources`` are transformed in worker processes: more than one, cores for
    it, :data:`PARALLEL_BYTES` of files and :data:`PARALLEL_MEMORY_FACTOR` times as much
    memory available, and only kinds defined in this package (a kind registered
    elsewhere may not exist in a worker process)."""
    if len(sources) < 2 or cfg.compute.effective_threads < 2:
        return False
    kinds = [TRANSFORMS.get(cfg.profile(s).kind) for s in sources]
    if any(fn is None or not fn.__module__.startswith("twmb_geo.") for fn in kinds):
        return False
    files = [f for s in sources for f in s.files(cfg.root)]
    size = sum(f.stat().st_size for f in files if f.is_file())
    if size < PARALLEL_BYTES:
        return False
    memory = available_memory()
    if memory is not None and memory < PARALLEL_MEMORY_FACTOR * size:
        log.info(
            "the sources are transformed one at a time: %.1f GB of inputs need about "
            "%.0f GB side by side, %.1f GB available",
            size / 2**30,
            PARALLEL_MEMORY_FACTOR * size / 2**30,
            memory / 2**30,
        )
        return False
    return True


def _args(job: _Job, crs: str | None) -> tuple[Any, ...]:
    return (job.files, job.source.id, job.profile, job.ctx, crs)


def _largest_first(sizes: Sequence[int]) -> list[int]:
    """Positions of ``sizes``, the largest first (ties in their order)."""
    return sorted(range(len(sizes)), key=lambda i: -sizes[i])


def _transformed(
    jobs: Sequence[_Job], threads: int | None, crs: str
) -> Iterator[tuple[int, tuple[IngestResult | Exception, float]]]:
    """Each job's transform in worker processes, the largest first: (its position, its
    outcome), as they finish in that order."""
    order = _largest_first([job.size for job in jobs])
    plan = jobs_plan(threads, len(jobs))
    try:
        outcomes = parallel_map(_transform, [_args(jobs[i], crs) for i in order], plan)
        yield from zip(order, outcomes, strict=True)
    finally:
        # idle, the workers would keep what the transforms held (3 GB at 500,000 pipes)
        # for 300 s, through the feature stage's peak
        release_workers()


def _transform(
    files: list[Path], source_id: str, profile: Profile, ctx: IngestContext, crs: str | None
) -> tuple[IngestResult | Exception, float]:
    """:func:`~twmb_geo.ingest.sources.transform_source` in the analysis CRS ``crs``, and
    its seconds; a failure is returned (raised by the caller in the sources' order)."""
    t0 = time.perf_counter()
    try:
        with using_crs(crs):
            result: IngestResult | Exception = transform_source(files, source_id, profile, ctx)
    except Exception as exc:  # noqa: BLE001
        result = exc
    return result, time.perf_counter() - t0


def _store_one(
    store: Store,
    cfg: Config,
    job: _Job,
    outcome: tuple[IngestResult | Exception, float],
    manifest: RunManifest,
) -> SourceReport:
    """Record the job's hash and transform, then store its result (one transaction) or
    raise its failure."""
    src, profile, files = job.source, job.profile, job.files
    result, seconds = outcome
    manifest.warnings.extend(job.notes)
    manifest.add_step(f"hash:{src.id}", job.hashed)
    manifest.add_step(f"transform:{src.id}", seconds, ok=not isinstance(result, Exception))
    if isinstance(result, Exception):
        raise result
    _refuse_if_nothing_accepted(result, src.id, profile.id)
    with manifest.step(f"store:{src.id}"):
        store.replace_source(src.id, result.tables, result.quarantine)
        if profile.kind == "neighbourhoods" and src.id == cfg.boundary_source():
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
        excluded=result.excluded_rows,
        excluded_by_rule=result.excluded,
        flags=result.flags,
        tables={k: len(v) for k, v in result.tables.items()},
        warnings=result.warnings,
    )
    manifest.sources.append(rep.to_dict())
    log.info(
        "%s: %d rows in, %d accepted, %d quarantined, %d excluded",
        src.id,
        rep.rows_in,
        rep.accepted,
        rep.quarantined,
        rep.excluded,
    )
    return rep


def _record_run(store: Store, manifest: RunManifest, reports: list[SourceReport]) -> None:
    """The ``runs`` row as it stands (the command rewrites it when it ends) and the inputs."""
    runlog.record_run(store, manifest)
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
                "excluded": np.int64(r.excluded),
                "excluded_by_rule": json.dumps(r.excluded_by_rule, sort_keys=True),
            }
        )
    if rows:
        store.append("run_inputs", pd.DataFrame(rows))
