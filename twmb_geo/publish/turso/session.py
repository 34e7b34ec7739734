"""Sessions on a Turso database: a local file, a ``turso.sync`` replica, or the HTTP API.

Every session knows its own token (through a :class:`~.http_session.Scrubber`) and keeps it
out of the messages it raises; nothing about a token outlives the session.

A local Turso file is a database in SQLite's file format (what Turso reads, serves with
``turso --sync-server`` and imports to its cloud). A publish writes a copy of it with
SQLite's own library (:mod:`sqlite3`, in WAL mode as Turso writes it) and moves the copy
into place when the publish is whole: about 7 times pyturso's insert rate (1,000,000
unit-year rows: 0.6 s against 4.2 s), and the file in place is never written, so a
connection that has it open (pyturso's too, which keeps its own view of a file it opened)
keeps reading the previous publish, whole, and a publish that fails leaves it untouched.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

import turso
import turso.sync

from ...core.files import remove_dead_leftovers, sibling
from ...core.ioerrors import describe, probe_write_error, sqlite_write_failed
from ...errors import InputDataError, PublishError
from ..row_files import copy_rows_sql
from ..sql import CURRENT_SQL, quote
from .http_session import HttpSession, Scrubber, Stmt, http_url, remote_label

__all__ = ["MODES", "LocalSession", "Session", "TursoTarget", "connect"]

log = logging.getLogger(__name__)

#: what pyturso and SQLite raise: their DB-API errors, I/O errors and errors from pyturso's
#: Rust core
_TURSO_ERRORS = (turso.Error, sqlite3.Error, OSError, RuntimeError, ValueError)

MODES = ("file", "sync", "http")

#: rows a local session inserts before it commits: pyturso (a sync replica) holds a
#: transaction's pages in memory until the commit (30.7 million rows in one transaction:
#: 10 GB), and SQLite's WAL grows with the transaction until a commit lets it be folded
#: into the file; readers keep seeing the previous publish through the pointer until the
#: switch whatever is committed
COMMIT_ROWS = 1_000_000

#: rows per INSERT statement of a local session: a multi-row VALUES list inserts about twice
#: the rows per second of one row per statement (pyturso and SQLite, measured at 50 rows and
#: over), in the same order, so the database is the same; at most :data:`MAX_PARAMETERS`
#: values each
ROWS_PER_STATEMENT = 100
MAX_PARAMETERS = 999


class Session(Protocol):
    """What the protocol needs from a database connection."""

    label: str

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def transaction(self, stmts: Sequence[Stmt]) -> None: ...

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None: ...

    def copy_rows(
        self, table: str, columns: Sequence[str], row_file: Path, tag: Sequence[Any]
    ) -> int | None: ...

    def unpushed(self) -> bool: ...

    def target_current(self) -> str | None: ...

    def finish(self) -> None: ...

    def define_views(self, stmts: Sequence[str]) -> None: ...

    def complete(self) -> None: ...

    def close(self) -> None: ...


def _insert_sql(table: str, columns: Sequence[str], rows: int = 1) -> str:
    """An INSERT of ``rows`` rows of ``columns`` (one VALUES tuple of placeholders each)."""
    cols = ", ".join(quote(c) for c in columns)
    one = "(" + ", ".join("?" for _ in columns) + ")"
    return f"INSERT INTO {quote(table)} ({cols}) VALUES " + ", ".join([one] * rows)


def rows_per_statement(columns: int) -> int:
    """Rows one INSERT of a local session carries for a table of ``columns`` columns."""
    return max(1, min(ROWS_PER_STATEMENT, MAX_PARAMETERS // max(columns, 1)))


def _insert_many(conn: Any, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
    """Insert ``rows`` in order, :func:`rows_per_statement` rows per statement (the rest
    one at a time)."""
    k = rows_per_statement(len(columns))
    full = len(rows) // k * k
    if full:
        flat = [tuple(chain.from_iterable(rows[i : i + k])) for i in range(0, full, k)]
        conn.executemany(_insert_sql(table, columns, k), flat)
    if full < len(rows):
        conn.executemany(_insert_sql(table, columns), rows[full:])


#: what SQLite and pyturso keep beside a database file: its WAL and SQLite's WAL index
_SIDE_FILES = ("-wal", "-shm")


def _side(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _discard(path: Path) -> None:
    """Remove a Turso database file, its WAL and its WAL index."""
    for p in (path, *(_side(path, s) for s in _SIDE_FILES)):
        p.unlink(missing_ok=True)


class LocalSession:
    """A connection to a local database: SQLite's on a copy of a Turso file, or pyturso's
    on a ``turso.sync`` replica. A publish's statements up to :meth:`finish` are committed
    every :data:`COMMIT_ROWS` inserted rows and at the finish. Until the pointer switches,
    readers see the previous publish; a load that stops half-way is cleared by the next
    publish (the protocol's ``loading`` record), as over HTTP, where every request commits.

    ``install``: the connection writes a temporary file (``work``: a copy of the database at
    ``install``, or a new one) that :meth:`complete` moves onto ``install`` once the
    publish is whole; until then the file at ``install`` is not touched (``previous``: it
    holds a publish), and :meth:`close` removes the temporary one.
    """

    def __init__(
        self,
        conn: Any,
        label: str,
        push: bool,
        scrub: Scrubber | None = None,
        remote: HttpSession | None = None,
        *,
        install: Path | None = None,
        work: Path | None = None,
        previous: bool = False,
    ) -> None:
        self.conn = conn
        self.label = label
        self._push = push
        self.scrub = scrub or Scrubber()
        self._remote = remote
        self._install = install
        self._work = work
        self._previous = previous
        self._closed = False
        self._uncommitted = 0

    def __repr__(self) -> str:
        return f"LocalSession({self.label!r})"

    def _wrap(self, exc: Exception, what: str) -> PublishError:
        text = self.scrub(str(exc))
        cause = describe(exc, at=None if self._push else self.label)
        if cause is None and self._work is not None and sqlite_write_failed(exc):
            wal = _side(self._work, "-wal")  # the file that grows: the WAL when there is one
            system = probe_write_error(wal if wal.exists() else self._work)
            cause = None if system is None else describe(system, at=self.label)
        state = (
            "nothing was published"
            if self._install is not None and not self._previous
            else "the previous publish is unchanged"
        )
        return PublishError(f"publish to {self.label} failed ({what}): {cause or text}; {state}")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in self.conn.execute(sql, tuple(params)).fetchall()]
        except Exception as exc:  # pyturso raises its own DB-API errors
            raise self._wrap(exc, "reading") from exc

    def transaction(self, stmts: Sequence[Stmt]) -> None:
        try:
            for sql, params in stmts:
                self.conn.execute(sql, tuple(params))
        except Exception as exc:
            raise self._wrap(exc, "writing") from exc

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        try:
            _insert_many(self.conn, table, columns, rows)
            self._uncommitted += len(rows)
            if self._uncommitted >= COMMIT_ROWS:
                self.conn.commit()
                self._uncommitted = 0
        except Exception as exc:
            raise self._wrap(exc, f"writing {table}") from exc

    def copy_rows(
        self, table: str, columns: Sequence[str], row_file: Path, tag: Sequence[Any]
    ) -> int | None:
        """Copy the rows of ``row_file`` (:mod:`~twmb_geo.publish.row_files`) into ``table``,
        each ending with the values of ``tag``: the rows copied, or None (nothing done)
        unless this session writes with SQLite's library (a local file), which reads the
        file itself."""
        if not isinstance(self.conn, sqlite3.Connection):
            return None
        try:
            self.conn.commit()  # SQLite attaches a database outside a transaction
            self.conn.execute("ATTACH DATABASE ? AS src", (str(row_file),))
            try:
                cur = self.conn.execute(copy_rows_sql(table, columns, len(tag)), tuple(tag))
                self.conn.commit()
            finally:
                self.conn.execute("DETACH DATABASE src")
            self._uncommitted = 0
        except Exception as exc:
            raise self._wrap(exc, f"writing {table}") from exc
        return int(cur.rowcount)

    def unpushed(self) -> bool:
        """Whether a sync replica holds changes the server has not received (a push that was
        interrupted); always False for a local file."""
        if not self._push:
            return False
        try:
            return int(self.conn.stats().cdc_operations) > 0
        except Exception as exc:  # noqa: BLE001  (stats are a nicety: assume nothing pending)
            log.debug("sync stats of %s: %s", self.label, self.scrub(str(exc)))
            return False

    def target_current(self) -> str | None:
        """The publish the target holds now: the server's (over HTTP) for a sync replica,
        else the file's; None when it holds none."""
        session: HttpSession | LocalSession = self._remote if self._remote is not None else self
        try:
            rows = session.query(CURRENT_SQL)
        except PublishError:  # no pointer table yet
            return None
        return str(rows[0][0]) if rows else None

    def finish(self) -> None:
        try:
            self.conn.commit()
        except Exception as exc:
            raise self._wrap(exc, "committing") from exc
        if self._push:
            try:
                self.conn.push()
            except Exception as exc:
                raise PublishError(
                    f"pushing to {self.label} failed: {self.scrub(str(exc))}; the server keeps "
                    "the previous publish and the next publish resumes the push"
                ) from exc

    def define_views(self, stmts: Sequence[str]) -> None:
        """Run view DDL after :meth:`finish`: here for a local file; on the server over HTTP
        for a sync replica (a push does not replicate ``CREATE VIEW``)."""
        if self._remote is not None:
            self._remote.define_views(stmts)
            return
        self.transaction([(sql, []) for sql in stmts])
        try:
            self.conn.commit()
        except Exception as exc:
            raise self._wrap(exc, "committing the views of") from exc

    def complete(self) -> None:
        """The publish is whole: move the temporary file into place.

        The WAL is folded into the file first (a checkpoint), so the one rename carries the
        whole database; a WAL (or WAL index) left beside the target by the earlier file is
        removed so it cannot be replayed onto this one.
        """
        if self._install is None or self._work is None:
            return
        work, target = self._work, self._install
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._close_conn()
            wal = _side(work, "-wal")
            if wal.exists() and wal.stat().st_size:
                raise PublishError(
                    f"publish to {self.label} failed: the new database could not be "
                    "checkpointed; nothing was published"
                )
            for suffix in _SIDE_FILES:
                _side(target, suffix).unlink(missing_ok=True)
            work.replace(target)
        except PublishError:
            raise
        except Exception as exc:
            raise self._wrap(exc, "moving the new database into place") from exc
        finally:
            _discard(work)
        self._install = None

    def _close_conn(self) -> None:
        if not self._closed:
            self._closed = True
            self.conn.close()

    def close(self) -> None:
        try:
            if not self._closed and self.conn.in_transaction:
                self.conn.rollback()
        except _TURSO_ERRORS as exc:  # the write already failed; closing drops the transaction
            log.debug("rollback on %s failed: %s", self.label, self.scrub(str(exc)))
        finally:
            try:
                self._close_conn()
            finally:
                if self._install is not None and self._work is not None:
                    _discard(self._work)  # an unfinished first publish leaves no file
                if self._remote is not None:
                    self._remote.close()


@dataclass(frozen=True)
class TursoTarget:
    """Where to publish: a local file (``mode="file"``) or a remote URL (``sync`` / ``http``)."""

    mode: str = "file"
    path: Path | None = None
    url: str | None = None
    token: str | None = field(default=None, repr=False)
    replica: Path | None = None
    chunk_rows: int = 5000

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputDataError(f"Turso mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.mode == "file" and self.path is None:
            raise InputDataError("a local Turso target needs a database file path")
        if self.mode != "file" and not self.url:
            raise InputDataError(f"Turso mode {self.mode!r} needs --turso-url")

    @property
    def label(self) -> str:
        """The target as messages show it (file path, or URL without credentials)."""
        return str(self.path) if self.mode == "file" else remote_label(http_url(self.url or ""))

    def __repr__(self) -> str:  # never show the token
        return f"TursoTarget(mode={self.mode!r}, target={self.label!r})"


def _open_file(path: Path) -> sqlite3.Connection:
    """SQLite's connection to the database file ``path`` (made when missing), in WAL mode."""
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def _holds_data(conn: sqlite3.Connection) -> bool:
    """Whether the database of ``conn`` holds any row.

    False for an empty database, or the leftover of a first publish that was killed before
    its commit (empty tables): those are replaced whole, like a first publish.
    """
    names = [
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    ]
    return any(
        conn.execute('SELECT 1 FROM "' + n.replace('"', '""') + '" LIMIT 1').fetchone() is not None
        for n in names
    )


def _copy_database(path: Path, work: Path) -> None:
    """Copy the database at ``path`` (with a WAL that holds frames) to ``work``."""
    shutil.copyfile(path, work)
    wal = _side(path, "-wal")
    if wal.exists() and wal.stat().st_size:  # commits not yet folded into the file
        shutil.copyfile(wal, _side(work, "-wal"))


def _connect_file(path: Path) -> Session:
    """A session on a copy of the Turso file ``path`` (a new database when there is no
    file, an empty one, or one without any row), moved into place by
    :meth:`LocalSession.complete`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_leftovers(path, ("tmp",))  # of a publish that was killed
    except OSError as exc:
        why = describe(exc, at=path) or str(exc)
        raise PublishError(f"cannot create the Turso database file {path}: {why}") from exc
    work = sibling(path, "tmp")
    previous = False
    try:
        if path.exists() and path.stat().st_size:
            _copy_database(path, work)
            conn = _open_file(work)
            previous = _holds_data(conn)
            if not previous:
                conn.close()
                _discard(work)
        if not previous:
            conn = _open_file(work)
    except Exception as exc:
        _discard(work)
        why = describe(exc, at=path) or str(exc)
        raise PublishError(f"cannot open the Turso database file {path}: {why}") from exc
    return LocalSession(conn, str(path), push=False, install=path, work=work, previous=previous)


def _connect_sync(target: TursoTarget) -> Session:
    url = http_url(target.url or "")
    label = remote_label(url)
    scrub = Scrubber(target.token)
    replica = target.replica or Path("turso-replica.db")
    replica.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = turso.sync.connect(str(replica), remote_url=url, auth_token=target.token)
        conn.pull()
    except _TURSO_ERRORS as exc:
        text = scrub(str(exc))
        if "401" in text or "403" in text or "unauthor" in text.lower():
            raise PublishError(
                f"Turso at {label} refused the token: set TURSO_AUTH_TOKEN to a valid token "
                "for this database (the token is not shown)"
            ) from None
        raise PublishError(
            f"cannot sync with Turso at {label} ({text}): check --turso-url and that the "
            "database is up; the previous publish is unchanged"
        ) from None
    remote = HttpSession(url, target.token, chunk_rows=target.chunk_rows)
    return LocalSession(conn, label, push=True, scrub=scrub, remote=remote)


def connect(target: TursoTarget) -> Session:
    """Open a session on ``target`` (raises :class:`PublishError` when it cannot)."""
    if target.mode == "http":
        return HttpSession(target.url or "", target.token, chunk_rows=target.chunk_rows)
    if target.mode == "file":
        return _connect_file(Path(target.path or ""))
    return _connect_sync(target)
