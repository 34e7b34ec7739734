"""The publish-target registry: name -> factory building a :class:`~.base.PublishTarget`.

The order of :data:`TARGETS` is the order targets are checked and written in. Adding a
target is one module implementing the protocol and one :func:`register_target` call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from ..errors import InputDataError
from .base import PublishTarget, TargetOptions
from .duckdb_target import DuckDBTarget
from .files import FolderTarget
from .turso import TursoPublishTarget, TursoTarget

__all__ = ["LOCAL_TARGETS", "TARGETS", "TargetFactory", "make_target", "register_target"]

TargetFactory = Callable[[TargetOptions], PublishTarget]

#: every target, in the order they are checked and written
TARGETS: dict[str, TargetFactory] = {}
#: the targets that need no server (what ``twmb run`` publishes to)
LOCAL_TARGETS = ("folder", "duckdb", "turso-file")


def register_target(name: str, factory: TargetFactory) -> TargetFactory:
    """Add a target under ``name`` (a name can be registered once)."""
    if name in TARGETS:
        raise ValueError(f"publish target {name!r} is already registered")
    TARGETS[name] = factory
    return factory


def make_target(name: str, options: TargetOptions) -> PublishTarget:
    """Build the target ``name``; :class:`InputDataError` lists the known ones."""
    if name not in TARGETS:
        raise InputDataError(f"publish targets must be among {list(TARGETS)}, got {[name]}")
    return TARGETS[name](options)


def _folder(o: TargetOptions) -> PublishTarget:
    return FolderTarget(o.folder or o.out_dir / "star", o.formats, o.schema_version, o.threads)


def _duckdb(o: TargetOptions) -> PublishTarget:
    return DuckDBTarget(
        o.duckdb_path or o.out_dir / "star.duckdb", o.schema_version, source=o.source
    )


def _turso_file(o: TargetOptions) -> PublishTarget:
    spec = TursoTarget(mode="file", path=o.turso_file or o.out_dir / "turso" / "twmb_star.db")
    return TursoPublishTarget("turso-file", spec, source=o.source, progress=o.progress)


def _turso_remote(o: TargetOptions) -> PublishTarget:
    if not o.turso_url:
        raise InputDataError("the turso target needs --turso-url (libsql://... or https://...)")
    digest = hashlib.sha256(o.turso_url.encode()).hexdigest()[:12]
    spec = TursoTarget(
        mode=o.turso_mode,
        url=o.turso_url,
        token=o.token,
        replica=o.out_dir / "turso" / f"replica-{digest}.db",
    )
    return TursoPublishTarget("turso", spec, source=o.source, progress=o.progress)


register_target("folder", _folder)
register_target("duckdb", _duckdb)
register_target("turso-file", _turso_file)
register_target("turso", _turso_remote)
