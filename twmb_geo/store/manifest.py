"""The run manifest: what ran, on which inputs (sha256, rows), how long, with which warnings."""

from __future__ import annotations

import datetime as dt
import json
import logging
import platform
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pyogrio
import pyproj

from .._version import __version__
from ..core.files import atomic_write
from ..core.ioerrors import describe

__all__ = ["RunManifest", "library_versions", "new_run_id"]

log = logging.getLogger(__name__)

_LIBS = (
    "numpy",
    "pandas",
    "geopandas",
    "shapely",
    "pyproj",
    "pyogrio",
    "duckdb",
    "pyarrow",
    "click",
    "jsonschema",
)


def new_run_id(now: dt.datetime | None = None) -> str:
    """``YYYYmmddTHHMMSSZ-xxxxxxxx``: sortable by time, unique by the random suffix."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def library_versions() -> dict[str, str]:
    """Versions of Python, this package, the key libraries, PROJ and GDAL."""
    out = {"python": platform.python_version(), "twmb_geo": __version__}
    for lib in _LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    out["proj"] = pyproj.proj_version_str
    out["gdal"] = pyogrio.__gdal_version_string__
    return out


@dataclass
class RunManifest:
    """Collects what a run did; serialised to JSON in the store and next to the outputs."""

    command: str
    run_id: str = field(default_factory=new_run_id)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished_at: dt.datetime | None = None
    status: str = "running"
    config: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    crs: list[dict[str, Any]] = field(default_factory=list)
    analysis_crs: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    service_area: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    #: the command's stages: started, finished or failed (with the error), as they go
    stages: list[dict[str, Any]] = field(default_factory=list)
    #: the earlier command on the folder that was killed (found when this one started)
    interrupted: dict[str, Any] | None = None
    #: where :meth:`save` writes the manifest (None: kept in memory only)
    path: Path | None = None

    def save(self, *, quiet: bool = False) -> None:
        """Write the manifest to :attr:`path` atomically (no-op without a path).

        ``quiet``: a failure to write it is logged, not raised: the save after a failed
        stage must not replace the stage's own error (the full disk that made it fail).
        """
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, (self.to_json() + "\n").encode("utf-8"))
        except OSError as exc:
            if not quiet:
                raise
            log.warning("could not save %s: %s", self.path, describe(exc, self.path) or exc)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Record a stage: ``running`` when it starts, then ``ok`` or ``failed`` / ``interrupted``
        with the error; the manifest is saved at each change."""
        entry: dict[str, Any] = {
            "stage": name,
            "status": "running",
            "started_at": dt.datetime.now(dt.UTC).isoformat(),
            "finished_at": None,
            "seconds": None,
            "error": None,
        }
        self.stages.append(entry)
        self.save()
        t0 = time.perf_counter()
        status, error = "failed", None
        try:
            yield
            status = "ok"
        except KeyboardInterrupt:
            status, error = "interrupted", "interrupted by the user (Ctrl-C)"
            raise
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            entry.update(
                status=status,
                error=error,
                finished_at=dt.datetime.now(dt.UTC).isoformat(),
                seconds=round(time.perf_counter() - t0, 3),
            )
            self.save(quiet=status != "ok")

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step (recorded even when it fails)."""
        t0 = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.add_step(name, time.perf_counter() - t0, ok=ok)

    def add_step(self, name: str, seconds: float, *, ok: bool = True) -> None:
        """Record a step timed elsewhere (in a worker process)."""
        self.steps.append({"step": name, "seconds": round(seconds, 3), "ok": ok})

    def merge(self, other: RunManifest) -> None:
        """Take in the stages, steps and warnings ``other`` recorded (a part of this command
        run in another process, :func:`~twmb_geo.store.runlog.detached`) and save."""
        self.stages.extend(other.stages)
        self.steps.extend(other.steps)
        self.warnings.extend(w for w in other.warnings if w not in self.warnings)
        self.save()

    def finish(self, status: str, error: str | None = None) -> None:
        """Close the manifest."""
        self.status = status
        self.error = error
        self.finished_at = dt.datetime.now(dt.UTC)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "run_id": self.run_id,
            "command": self.command,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "versions": library_versions(),
            "config": self.config,
            "inputs": self.inputs,
            "sources": self.sources,
            "steps": self.steps,
            "analysis_crs": self.analysis_crs,
            "crs": self.crs,
            "warnings": self.warnings,
            "service_area": self.service_area,
            "stages": self.stages,
            "interrupted": self.interrupted,
            "error": self.error,
        }

    def to_json(self) -> str:
        """Pretty JSON."""
        return json.dumps(self.to_dict(), indent=2, default=str)
