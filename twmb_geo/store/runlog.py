"""Tracking a command: the folder's run lock, the manifest written as each stage goes, the
``runs`` row.

Every command that writes to ``<out>`` runs inside :func:`command`: it takes the run lock
(:mod:`twmb_geo.core.lock`), starts a :class:`~twmb_geo.store.manifest.RunManifest` and saves
it to ``<out>/manifest.json`` atomically when the command starts, when each stage starts and
ends, and when the command ends: ``ok``, ``failed`` with the error (any exception, not only
the package's own) or ``interrupted`` (Ctrl-C). A command killed outright leaves its manifest
at ``running`` with the stage it was in; the next command on the folder records that run as
interrupted (manifest warning and its ``runs`` row). Commands called inside another (``run``
calling ``ingest``, ``features``, ...) become stages of the outer command's manifest.

An I/O failure inside a stage (disk full, read-only, a file where a folder should be) is
re-raised as the error of that stage, naming the file and the cause
(:func:`twmb_geo.core.ioerrors.io_error`: exit 7 in ``publish``, 5 elsewhere); saving the
manifest of a failed command never replaces the command's own error.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.ioerrors import describe, io_guard
from ..core.lock import run_lock
from .duckdb_store import Store
from .manifest import RunManifest

__all__ = ["MANIFEST_NAME", "active_manifest", "command", "detached", "record_run"]

MANIFEST_NAME = "manifest.json"
log = logging.getLogger(__name__)
_ACTIVE: ContextVar[RunManifest | None] = ContextVar("twmb_active_manifest", default=None)


def active_manifest() -> RunManifest | None:
    """The manifest of the command running in this context, if any."""
    return _ACTIVE.get()


def _ts(value: dt.datetime | None) -> Any:
    return pd.Timestamp(value).tz_convert(None) if value is not None else pd.NaT


def record_run(store: Store, manifest: RunManifest) -> None:
    """Write (or rewrite) the ``runs`` row of ``manifest``."""
    row = pd.DataFrame(
        [
            {
                "run_id": manifest.run_id,
                "command": manifest.command,
                "status": manifest.status,
                "started_at": _ts(manifest.started_at),
                "finished_at": _ts(manifest.finished_at),
                "package_version": manifest.to_dict()["versions"]["twmb_geo"],
                "manifest": manifest.to_json(),
            }
        ]
    )
    for c in ("started_at", "finished_at"):
        row[c] = row[c].astype("datetime64[us]")
    store.replace_rows("runs", row, "run_id = ?", [manifest.run_id])


def _previous_interrupted(out: Path) -> dict[str, Any] | None:
    """The manifest a killed command left at ``running`` (read before it is overwritten)."""
    try:
        doc = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("status") == "running" else None


def _mark_interrupted(store_path: Path, previous: dict[str, Any]) -> bool:
    """Record the killed run ``previous`` as interrupted in the ``runs`` table.

    Its ``running`` row is rewritten; a run killed before it had a row (the first command on
    a new folder, killed before the store had a ``runs`` table) gets one from its manifest.
    Returns False when there is no store yet (the caller tries again once there is one).
    """
    run_id = previous.get("run_id")
    if not run_id:
        return True
    if not store_path.exists():
        return False
    doc = {**previous, "status": "interrupted"}
    with Store(store_path) as store:
        old = store.read("runs", "run_id = ?", [run_id]) if store.has_table("runs") else None
        if old is not None and not old.empty:
            if old["status"].iloc[0] != "running":
                return True
            row = old
        else:
            started = pd.Timestamp(previous.get("started_at") or dt.datetime.now(dt.UTC))
            row = pd.DataFrame(
                [
                    {
                        "run_id": run_id,
                        "command": str(previous.get("command") or "?"),
                        "status": "interrupted",
                        "started_at": started.tz_convert(None) if started.tz else started,
                        "finished_at": pd.NaT,
                        "package_version": str(
                            (previous.get("versions") or {}).get("twmb_geo") or "?"
                        ),
                        "manifest": "",
                    }
                ]
            )
            for c in ("started_at", "finished_at"):
                row[c] = row[c].astype("datetime64[us]")
        row["status"] = "interrupted"
        row["manifest"] = json.dumps(doc, indent=2, default=str)
        store.replace_rows("runs", row, "run_id = ?", [run_id])
    return True


def _try_mark_interrupted(store_path: Path, previous: dict[str, Any] | None) -> bool:
    """:func:`_mark_interrupted`, logged instead of raised; True when nothing is left to do."""
    if previous is None:
        return True
    try:
        return _mark_interrupted(store_path, previous)
    except Exception as exc:  # noqa: BLE001  (best effort: never hide the command's outcome)
        log.warning("could not mark run %s as interrupted: %s", previous.get("run_id"), exc)
        return True


def _record_final(store_path: Path, manifest: RunManifest) -> None:
    """Best effort: the ``runs`` row as it stands (a store that cannot be opened is logged)."""
    if not store_path.exists():
        return
    try:
        with Store(store_path) as store:
            record_run(store, manifest)
    except Exception as exc:  # noqa: BLE001  (disk full, read-only: never hide the real error)
        log.warning(
            "could not record run %s in %s: %s",
            manifest.run_id,
            store_path,
            describe(exc, store_path) or exc,
        )


def _save_quietly(manifest: RunManifest) -> None:
    """Save the manifest of a failed command (:meth:`RunManifest.save` with ``quiet``)."""
    manifest.save(quiet=True)


@contextmanager
def command(
    out: Path,
    store_path: Path,
    name: str,
    config: dict[str, Any] | None = None,
    *,
    as_stage: bool = True,
) -> Iterator[RunManifest]:
    """Run the block as the command (or, inside another command, the stage) ``name``.

    Parameters
    ----------
    out
        The output folder (locked for the whole command; holds ``manifest.json``).
    store_path
        The DuckDB store that receives the ``runs`` row.
    name
        Command (or stage) name.
    config
        The config as a dict, recorded in the manifest of a top-level command.
    as_stage
        Record the command itself as a stage (False for ``run``, whose stages are the
        commands it calls).

    Yields
    ------
    RunManifest
        The manifest of the outermost command.
    """
    outer = _ACTIVE.get()
    out = Path(out)
    if outer is not None:
        with outer.stage(name), io_guard(name, out):
            yield outer
        return
    with io_guard(name, out, folder=out), run_lock(out, name) as lock:
        previous = _previous_interrupted(out)
        manifest = RunManifest(command=name, path=out / MANIFEST_NAME)
        manifest.config = config or {}
        if previous is not None or lock.get("took_over"):
            what = previous or {}
            stages = what.get("stages", [])
            stage = next(
                (s["stage"] for s in reversed(stages) if s.get("status") == "running"), None
            )
            # killed between two stages: the last one it finished
            after = next((s["stage"] for s in reversed(stages) if s.get("status") == "ok"), None)
            manifest.interrupted = {
                "run_id": what.get("run_id"),
                "command": what.get("command") or lock.get("took_over", {}).get("command"),
                "stage": stage,
                "after": None if stage else after,
                "started_at": what.get("started_at"),
            }
            where = (
                f" in stage {stage!r}"
                if stage
                else (f" after stage {after!r}, before the next one" if after else "")
            )
            manifest.warnings.append(
                f"the previous command on this folder (`twmb {manifest.interrupted['command']}`, "
                f"run {manifest.interrupted['run_id']}) was interrupted{where}; its outputs "
                "from that point on were not finished and are replaced by this run"
            )
            log.warning("%s", manifest.warnings[-1])
        # a killed run on a folder without a store yet is recorded once this command made one
        pending = None if _try_mark_interrupted(store_path, previous) else previous
        manifest.save()
        _record_final(store_path, manifest)  # "running": a killed command leaves it so
        token = _ACTIVE.set(manifest)
        try:
            with manifest.stage(name) if as_stage else _nothing(), io_guard(name, out):
                yield manifest
        except KeyboardInterrupt:
            manifest.finish("interrupted", "interrupted by the user (Ctrl-C)")
            _save_quietly(manifest)
            _try_mark_interrupted(store_path, pending)
            _record_final(store_path, manifest)
            raise
        except BaseException as exc:
            manifest.finish("failed", f"{type(exc).__name__}: {exc}")
            _save_quietly(manifest)
            _try_mark_interrupted(store_path, pending)
            _record_final(store_path, manifest)
            raise
        finally:
            _ACTIVE.reset(token)
        manifest.finish("ok")
        manifest.save()
        _try_mark_interrupted(store_path, pending)
        _record_final(store_path, manifest)


@contextmanager
def detached(name: str) -> Iterator[RunManifest]:
    """Record the commands called in the block as stages of a manifest kept in memory.

    For a part of a command run in another process (the maps and the report beside the
    publish): no lock is taken (the command holds the folder's) and nothing is saved; the
    command takes the stages in with :meth:`RunManifest.merge`.
    """
    manifest = RunManifest(command=name)
    token = _ACTIVE.set(manifest)
    try:
        yield manifest
    finally:
        _ACTIVE.reset(token)


@contextmanager
def _nothing() -> Iterator[None]:
    yield
