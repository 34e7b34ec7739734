"""The publish stage: build the star schema once, write it to every requested target.

Targets come from the registry of :mod:`.targets` (``folder``, ``duckdb``, ``turso-file``,
``turso``), each behind the :class:`~.base.PublishTarget` protocol. Every target gets the
same tables and the same ``publish_id`` (a digest of their content), so a reader can tell
which targets hold the same publish.

A large star (:data:`BACKGROUND_ROWS` rows or more) written to portable targets (the
folder, DuckDB) and to others (Turso) is written to the portable ones in a background
process while this process writes the rest: pyturso holds the GIL while it inserts, so
only a second interpreter overlaps with it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import Config
from ..core.background import background_process, run_in
from ..core.files import remove_dead_leftovers, sibling
from ..core.types import Progress
from ..errors import ContractError, InputDataError, PublishError, StoreError
from ..store.duckdb_store import Store
from ..store.project import in_project_crs
from .base import PreparedStar, PublishTarget, TargetOptions, prepare_star
from .files import FORMATS
from .star import STAR_TABLES, check_keys, spool_star
from .tables import StarTable
from .targets import LOCAL_TARGETS, TARGETS, make_target
from .turso import SCHEMA_VERSION

__all__ = ["LOCAL_TARGETS", "TARGETS", "TOKEN_ENV", "default_paths", "is_large", "publish"]

#: environment variable holding the remote Turso token (never a CLI option: shells log those)
TOKEN_ENV = "TURSO_AUTH_TOKEN"

#: stars of this many rows or more write their portable targets in a background process
#: (a smaller star is written sooner than a second interpreter starts)
BACKGROUND_ROWS = 2_000_000


def is_large(cfg: Config) -> bool:
    """Whether a star published from the store has :data:`BACKGROUND_ROWS` rows or more
    (its unit-year fact, one row per panel row, counted): published to the local targets,
    the Turso file then keeps this process writing long after the folder and DuckDB are
    written in the background, and other work can use the core they leave idle."""
    with Store(cfg.store_path, read_only=True) as store:
        return store.has_table("panel") and store.count("panel") >= BACKGROUND_ROWS


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
    stay written, each one atomically. Targets written in the background (module doc)
    run to their end whatever happens here; the first error in target order is raised.
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
            row_files = any(t.reads_row_files for t in chosen)
            tables, star = _build(cfg, spool, row_files)
            written = _write(chosen, tables, star)
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


def _write(
    chosen: Sequence[PublishTarget], tables: Mapping[str, StarTable], star: PreparedStar
) -> list[dict[str, Any]]:
    """Write ``star`` to every target, in order; the portable ones in a background process
    beside the others when the star is large (module doc). Results in target order."""
    away = [t for t in chosen if t.portable]
    rows = sum(len(tables[t]) for t in STAR_TABLES)
    if rows < BACKGROUND_ROWS or not away or len(away) == len(chosen):
        return [t.write(tables, star).to_dict() for t in chosen]
    here = [t for t in chosen if not t.portable]
    done: dict[str, dict[str, Any]] = {}
    errors: dict[str, BaseException] = {}
    with background_process() as executor:
        future = run_in(executor, _write_away, away, tables, star)
        for target in here:
            try:
                done[target.name] = target.write(tables, star).to_dict()
            except Exception as exc:  # noqa: BLE001  (raised below, after the background)
                errors[target.name] = exc
                break  # fail fast, as in sequence: later targets are not written
        try:
            done.update(future.result())
        except BrokenProcessPool as exc:
            errors[away[0].name] = PublishError(
                f"the process writing {[t.name for t in away]} died ({exc}); those targets "
                "keep their previous publish"
            )
        except Exception as exc:  # noqa: BLE001
            errors[getattr(exc, "target", away[0].name)] = exc
    for target in chosen:
        if target.name in errors:
            raise errors[target.name]
    return [done[t.name] for t in chosen]


def _write_away(
    targets: Sequence[PublishTarget], tables: Mapping[str, StarTable], star: PreparedStar
) -> dict[str, dict[str, Any]]:
    """Write ``star`` to ``targets`` in order (in the background process); the first
    failure stops and is raised, tagged with its target's name (``exc.target``)."""
    out: dict[str, dict[str, Any]] = {}
    for target in targets:
        try:
            out[target.name] = target.write(tables, star).to_dict()
        except Exception as exc:
            exc.target = target.name  # type: ignore[attr-defined]
            raise
    return out


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


def _build(
    cfg: Config, spool: Path, row_files: bool
) -> tuple[Mapping[str, StarTable], PreparedStar]:
    """The star tables from the store (the largest spooled to ``spool``), their keys
    checked, and their prepared rows (with ``row_files``, the spooled tables' rows also
    written to SQLite files in ``spool``)."""
    with Store(cfg.store_path, read_only=True) as store:
        tables = spool_star(store, spool)
    problems = check_keys(tables)
    if problems:
        raise ContractError("star schema keys do not resolve; nothing published", problems)
    folder = None
    if row_files:
        folder = spool / "rows"
        folder.mkdir()
    return tables, prepare_star(tables, threads=cfg.compute.threads, row_files=folder)
