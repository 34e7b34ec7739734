"""The publish stage: build the star schema once, write it to every requested target.

Targets come from the registry of :mod:`.targets` (``folder``, ``duckdb``, ``turso-file``,
``turso``), each behind the :class:`~.base.PublishTarget` protocol. Every target gets the
same tables and the same ``publish_id`` (a digest of their content), so a reader can tell
which targets hold the same publish.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import Config
from ..core.files import remove_dead_leftovers, sibling
from ..core.types import Progress
from ..errors import ContractError, InputDataError, StoreError
from ..store.duckdb_store import Store
from ..store.project import in_project_crs
from .base import PreparedStar, TargetOptions, prepare_star
from .files import FORMATS
from .star import STAR_TABLES, check_keys, spool_star
from .tables import StarTable
from .targets import LOCAL_TARGETS, TARGETS, make_target
from .turso import SCHEMA_VERSION

__all__ = ["LOCAL_TARGETS", "TARGETS", "TOKEN_ENV", "default_paths", "publish"]

#: environment variable holding the remote Turso token (never a CLI option: shells log those)
TOKEN_ENV = "TURSO_AUTH_TOKEN"


def default_paths(cfg: Config) -> dict[str, Path]:
    """Where each local target goes by default, under the output folder."""
    return {
        "folder": cfg.out_dir / "star",
        "duckdb": cfg.out_dir / "star.duckdb",
        "turso-file": cfg.out_dir / "turso" / "twmb_star.db",
    }


@in_project_crs
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
    if turso_mode not in ("sync", "http"):
        raise InputDataError(f"--turso-mode must be sync or http, got {turso_mode!r}")
    options = TargetOptions(
        out_dir=cfg.out_dir,
        source=str(cfg.store_path),
        schema_version=SCHEMA_VERSION,
        folder=Path(folder) if folder else None,
        formats=tuple(formats),
        duckdb_path=Path(duckdb_path) if duckdb_path else None,
        turso_file=Path(turso_file) if turso_file else None,
        turso_url=turso_url,
        turso_mode=turso_mode,
        token=token if token is not None else os.environ.get(TOKEN_ENV) or None,
        progress=progress,
        threads=cfg.compute.threads,
    )
    chosen = [make_target(name, options) for name in TARGETS if name in targets]
    try:
        for target in chosen:  # fail fast, before the star is built
            target.check()
        with _spool_folder(cfg) as spool:
            tables, star = _build(cfg, spool)
            written = [target.write(tables, star).to_dict() for target in chosen]
    finally:
        for target in chosen:
            target.close()
    return {
        "publish_id": star.publish_id,
        "schema_version": SCHEMA_VERSION,
        "rows": {t: len(tables[t]) for t in STAR_TABLES},
        "checksums": star.checksums,
        "targets": written,
    }


@contextmanager
def _spool_folder(cfg: Config) -> Iterator[Path]:
    """A temporary folder beside the star folder (``<out>/.star.spool-<pid>-<random>``) for
    the tables spooled to disk while they are published; removed afterwards, and a killed
    publish's folder by the next publish."""
    anchor = cfg.out_dir / "star"
    folder = sibling(anchor, "spool")
    try:
        remove_dead_leftovers(anchor, ["spool"])
        folder.mkdir(parents=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create a temporary folder in the output folder {cfg.out_dir}: {exc}"
        ) from exc
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _build(cfg: Config, spool: Path) -> tuple[Mapping[str, StarTable], PreparedStar]:
    """The star tables from the store (the largest spooled to ``spool``), their keys
    checked, and their prepared rows."""
    with Store(cfg.store_path, read_only=True) as store:
        tables = spool_star(store, spool)
    problems = check_keys(tables)
    if problems:
        raise ContractError("star schema keys do not resolve; nothing published", problems)
    return tables, prepare_star(tables, threads=cfg.compute.threads)
