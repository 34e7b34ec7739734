"""The publish stage: build the star schema once, write it to every requested target.

Targets: ``folder`` (Parquet/CSV, :mod:`.files`), ``duckdb`` (:mod:`.duckdb_target`),
``turso-file`` (a local Turso database file) and ``turso`` (a remote Turso database,
:mod:`.turso`). Every target gets the same tables and the same ``publish_id`` (a digest of
their content), so a reader can tell which targets hold the same publish.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import Config
from ..core.types import Progress
from ..errors import ContractError, InputDataError
from ..store.duckdb_store import Store
from .duckdb_target import check_star_duckdb, write_star_duckdb
from .files import FORMATS, write_star_folder
from .star import STAR_TABLES, build_star, check_keys
from .turso import (
    SCHEMA_VERSION,
    PreparedStar,
    Session,
    TursoTarget,
    check_version,
    connect,
    prepare_star,
    publish_tables,
)

__all__ = ["LOCAL_TARGETS", "TARGETS", "TOKEN_ENV", "publish"]

#: every target, in the order they are written
TARGETS = ("folder", "duckdb", "turso-file", "turso")
#: the targets that need no server (what ``twmb run`` publishes to)
LOCAL_TARGETS = ("folder", "duckdb", "turso-file")
#: environment variable holding the remote Turso token (never a CLI option: shells log those)
TOKEN_ENV = "TURSO_AUTH_TOKEN"




def default_paths(cfg: Config) -> dict[str, Path]:
    """Where each local target goes by default, under the output folder."""
    return {
        "folder": cfg.out_dir / "star",
        "duckdb": cfg.out_dir / "star.duckdb",
        "turso-file": cfg.out_dir / "turso" / "twmb_star.db",
    }


def _replica(cfg: Config, url: str) -> Path:
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return cfg.out_dir / "turso" / f"replica-{digest}.db"


def publish(
    cfg: Config,
    *,
    targets: Sequence[str] = LOCAL_TARGETS,
    folder: Path | str | None = None,
    formats: Sequence[str] = FORMATS,
    duckdb_path: Path | str | None = None,
    turso_file: Path | str | None = None,
    turso_url: str | None = None,
    turso_mode: str = "http",
    token: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build the star schema from the store, check its keys, write it to ``targets``.

    ``token`` defaults to the ``TURSO_AUTH_TOKEN`` environment variable (remote only).
    Raises :class:`ContractError` (nothing written) when a fact key does not resolve and
    :class:`~twmb_geo.errors.PublishError` when a target fails; targets already written
    stay written, each one atomically.
    """
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise InputDataError(f"publish targets must be among {list(TARGETS)}, got {list(targets)}")
    if "turso" in targets and not turso_url:
        raise InputDataError("the turso target needs --turso-url (libsql://... or https://...)")
    if turso_mode not in ("sync", "http"):
        raise InputDataError(f"--turso-mode must be sync or http, got {turso_mode!r}")
    paths = default_paths(cfg)
    specs: dict[str, TursoTarget] = {}
    if "turso-file" in targets:
        specs["turso-file"] = TursoTarget(mode="file", path=Path(turso_file or paths["turso-file"]))
    if "turso" in targets:
        specs["turso"] = TursoTarget(
            mode=turso_mode,
            url=turso_url,
            token=token if token is not None else os.environ.get(TOKEN_ENV) or None,
            replica=_replica(cfg, turso_url or ""),
        )
    duck = Path(duckdb_path) if duckdb_path else paths["duckdb"]
    sessions: dict[str, Session] = {}
    try:
        # fail fast, before the star is built: unreachable, token refused, newer schema
        for name, spec in specs.items():
            sessions[name] = connect(spec)
            check_version(sessions[name])
        if "duckdb" in targets:
            check_star_duckdb(duck, SCHEMA_VERSION)
        tables, star, written = _build_and_write(
            cfg, targets, sessions, folder or paths["folder"], formats, duck, progress
        )
    finally:
        for session in sessions.values():
            session.close()
    for w in written:
        if w["target"] in specs:
            w["mode"] = specs[w["target"]].mode
    return {
        "publish_id": star.publish_id,
        "schema_version": SCHEMA_VERSION,
        "rows": {t: len(tables[t]) for t in STAR_TABLES},
        "checksums": star.checksums,
        "targets": written,
    }


def _build_and_write(
    cfg: Config,
    targets: Sequence[str],
    sessions: dict[str, Session],
    folder: Path | str,
    formats: Sequence[str],
    duck: Path,
    progress: Progress | None,
) -> tuple[dict[str, Any], PreparedStar, list[dict[str, Any]]]:
    with Store(cfg.store_path, read_only=True) as store:
        tables = build_star(store)
    problems = check_keys(tables)
    if problems:
        raise ContractError("star schema keys do not resolve; nothing published", problems)
    star = prepare_star(tables)
    pid, checksums = star.publish_id, star.checksums
    source = str(cfg.store_path)
    written: list[dict[str, Any]] = []
    for target in (t for t in TARGETS if t in targets):
        if target == "folder":
            res = write_star_folder(tables, Path(folder), formats=formats, run_id=pid)
            res = {"location": res.pop("folder"), **res}
        elif target == "duckdb":
            res = write_star_duckdb(
                tables,
                duck,
                publish_id=pid,
                schema_version=SCHEMA_VERSION,
                checksums=checksums,
                source=source,
            )
            res = {"location": res.pop("target"), **res}
        else:
            session = sessions[target]
            res = publish_tables(session, tables, prepared=star, source=source, progress=progress)
            res = {"location": res.pop("target"), **res}
            res.pop("checksums", None)
        written.append({"target": target, **res})
    return tables, star, written
