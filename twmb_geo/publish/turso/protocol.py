"""The publishing protocol on a Turso session: numbered migrations, then the pointer switch.

See :mod:`twmb_geo.publish.turso` for how it keeps every publish atomic and idempotent.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any

from ...core.types import Progress
from ...errors import PublishError, SchemaVersionError
from ..base import PreparedStar, prepare_star
from ..sql import (
    CURRENT_TABLE,
    PUBLISH_COLUMN,
    RUNS_TABLE,
    SCHEMA_TABLE,
    current_view_statements,
    quote,
)
from ..star import STAR_TABLES
from ..tables import StarTable
from .http_session import Stmt
from .migrations import MIGRATIONS, SCHEMA_VERSION, Migration
from .session import Session

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "check_version",
    "migrate",
    "publish_tables",
]

log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _schema_version(session: Session) -> int:
    exists = session.query(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", [SCHEMA_TABLE]
    )[0][0]
    if not exists:
        return 0
    got = session.query(f'SELECT max("version") FROM {quote(SCHEMA_TABLE)}')[0][0]
    return int(got or 0)


def check_version(session: Session) -> int:
    """The database's star schema version; :class:`SchemaVersionError` if newer than this code.

    Also a cheap first request: an unreachable server or a refused token fails here,
    before any work is done.
    """
    version = _schema_version(session)
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{session.label} holds star schema version {version}; this twmb_geo writes "
            f"version {SCHEMA_VERSION}: upgrade twmb_geo (pip install -U twmb_geo) before "
            "publishing to it"
        )
    return version


def migrate(session: Session) -> int:
    """Apply pending migrations (idempotently); refuse a database newer than this code."""
    version = check_version(session)
    for m in MIGRATIONS:
        if m.version <= version:
            continue
        stmts: list[Stmt] = [(s, []) for s in m.statements()]
        stmts.append(
            (
                f"INSERT INTO {quote(SCHEMA_TABLE)} "
                '("version", "description", "applied_at") VALUES (?, ?, ?)',
                [m.version, m.description, _now()],
            )
        )
        session.transaction(stmts)
        log.info("migrated %s to star schema version %d", session.label, m.version)
        if m.notice and version > 0:  # a database that readers already read
            log.warning(
                "%s is now at star schema version %d: %s", session.label, m.version, m.notice
            )
    return max(version, SCHEMA_VERSION)


_UNFINISHED = ("loading", "complete")


def _delete_publish(pid: str) -> list[Stmt]:
    stmts: list[Stmt] = [
        (f"DELETE FROM {quote(t)} WHERE {quote(PUBLISH_COLUMN)} = ?", [pid]) for t in STAR_TABLES
    ]
    stmts.append(
        (
            f'UPDATE {quote(RUNS_TABLE)} SET "status" = ? WHERE {quote(PUBLISH_COLUMN)} = ?',
            ["removed", pid],
        )
    )
    return stmts


def _counts(session: Session, pid: str) -> dict[str, int]:
    parts = " UNION ALL ".join(
        f"SELECT ?, count(*) FROM {quote(t)} WHERE {quote(PUBLISH_COLUMN)} = ?" for t in STAR_TABLES
    )
    params: list[Any] = []
    for t in STAR_TABLES:
        params += [t, pid]
    return {str(name): int(n) for name, n in session.query(parts, params)}


def _views() -> list[str]:
    """The ``<table>_current`` views of every star table (for SQL users; module doc)."""
    return [sql for t in STAR_TABLES for sql in current_view_statements(t)]


#: rows tagged and handed to the session at a time (memory bounded by the batch, not the
#: table; the HTTP session sends each batch in chunks of ``chunk_rows``)
LOAD_BATCH_ROWS = 50_000


def publish_tables(
    session: Session,
    tables: Mapping[str, StarTable],
    *,
    prepared: PreparedStar | None = None,
    source: str = "",
    keep_previous: int = 1,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Publish every star table through ``session`` with the pointer protocol (module doc).

    ``prepared`` is :func:`prepare_star` of ``tables`` when the caller has it already.
    Returns the publish id, whether anything changed (``changed``; ``resumed`` when the only
    change was the push of an earlier, interrupted publish of this content), rows and
    checksums per table, and the schema version. Raises :class:`PublishError` (the previous
    publish stays readable).
    """
    star = prepared or prepare_star(tables)
    pid = star.publish_id
    counts = {t: len(star.rows[t]) for t in STAR_TABLES}
    version = migrate(session)
    result = {
        "publish_id": pid,
        "target": session.label,
        "schema_version": version,
        "rows": counts,
        "checksums": star.checksums,
    }
    current = session.query(f"SELECT {quote(PUBLISH_COLUMN)} FROM {quote(CURRENT_TABLE)}")
    current_id = current[0][0] if current else None
    if current_id == pid and _counts(session, pid) == counts:
        # a sync replica may hold this publish with its push interrupted: the push resumes
        # here and the server changes (from the publish it held before)
        resumed = session.unpushed()
        previous = session.target_current() if resumed else current_id
        session.finish()
        session.define_views(_views())
        session.complete()
        return {**result, "changed": resumed, "resumed": resumed, "previous": previous}
    _start(session, star, current_id, counts, source)
    _load(session, star, counts, progress)
    _switch(session, pid, keep_previous)
    session.finish()
    session.define_views(_views())
    session.complete()
    if progress:
        total = sum(counts.values())
        progress("published", total, total)
    return {**result, "changed": True, "resumed": False, "previous": current_id}


def _start(
    session: Session,
    star: PreparedStar,
    current_id: str | None,
    counts: Mapping[str, int],
    source: str,
) -> None:
    """Clear interrupted publishes (and this one if kept or damaged) and log this one as loading."""
    pid = star.publish_id
    runs = session.query(
        f'SELECT {quote(PUBLISH_COLUMN)}, "status", "started_at" FROM {quote(RUNS_TABLE)} '
        'ORDER BY "started_at", ' + quote(PUBLISH_COLUMN)
    )
    stale = [r[0] for r in runs if r[0] == pid or (r[0] != current_id and r[1] in _UNFINISHED)]
    for old in stale:
        session.transaction(_delete_publish(old))
    session.transaction(
        [
            (f"DELETE FROM {quote(RUNS_TABLE)} WHERE {quote(PUBLISH_COLUMN)} = ?", [pid]),
            (
                f"INSERT INTO {quote(RUNS_TABLE)} ({quote(PUBLISH_COLUMN)}, "
                '"status", "started_at", "finished_at", "source", "row_counts", "checksums") '
                "VALUES (?, ?, ?, NULL, ?, ?, ?)",
                [
                    pid,
                    "loading",
                    _now(),
                    source,
                    json.dumps(dict(counts)),
                    json.dumps(star.checksums),
                ],
            ),
        ]
    )


def _load(
    session: Session, star: PreparedStar, counts: Mapping[str, int], progress: Progress | None
) -> None:
    """Insert every table tagged with the publish id, then check the row counts."""
    pid = star.publish_id
    total = sum(counts.values())
    done = 0
    for t in STAR_TABLES:
        if progress:
            progress(f"publish {t}", done, total)
        rows = star.rows[t]
        columns = [*star.columns[t], PUBLISH_COLUMN]
        files = star.row_files.get(t, [])
        if files and (first := session.copy_rows(t, columns, files[0], (pid,))) is not None:
            done += first
            for f in files[1:]:
                if progress:
                    progress(f"publish {t}", done, total)
                done += session.copy_rows(t, columns, f, (pid,)) or 0
            continue
        for batch in rows.batches(LOAD_BATCH_ROWS, tag=(pid,), ahead=True):
            session.insert(t, columns, batch)
            done += len(batch)
            if progress and len(rows) > LOAD_BATCH_ROWS:
                progress(f"publish {t}", done, total)
    got = _counts(session, pid)
    if got != counts:
        bad = [
            f"{t}: wrote {counts[t]}, found {got.get(t)}"
            for t in STAR_TABLES
            if got.get(t) != counts[t]
        ]
        raise PublishError(f"row counts on {session.label} do not match; not switched", bad)


def _switch(session: Session, pid: str, keep_previous: int) -> None:
    """Mark the publish complete, point ``twmb_current`` at it and drop old superseded ones."""
    now = _now()
    session.transaction(
        [
            (
                f'UPDATE {quote(RUNS_TABLE)} SET "status" = ? WHERE "status" = ? '
                f"AND {quote(PUBLISH_COLUMN)} <> ?",
                ["superseded", "complete", pid],
            ),
            (
                f'UPDATE {quote(RUNS_TABLE)} SET "status" = ?, "finished_at" = ? '
                f"WHERE {quote(PUBLISH_COLUMN)} = ?",
                ["complete", now, pid],
            ),
            (f"DELETE FROM {quote(CURRENT_TABLE)}", []),
            (
                f"INSERT INTO {quote(CURRENT_TABLE)} "
                f'("id", {quote(PUBLISH_COLUMN)}, "published_at") VALUES (1, ?, ?)',
                [pid, now],
            ),
        ]
    )
    superseded = session.query(
        f'SELECT {quote(PUBLISH_COLUMN)} FROM {quote(RUNS_TABLE)} WHERE "status" = ? '
        # the latest first; publishes finished within the same second by the order they
        # were logged in (a re-published id is logged again, so it counts as the latest)
        'ORDER BY "finished_at" DESC, rowid DESC',
        ["superseded"],
    )
    for (old,) in superseded[keep_previous:]:
        session.transaction(_delete_publish(old))
