"""Sessions on a Turso database: a local file, a ``turso.sync`` replica, or the HTTP API.

Every session knows its own token (through a :class:`~.http_session.Scrubber`) and keeps it
out of the messages it raises; nothing about a token outlives the session.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

import turso
import turso.sync

from ...core.files import remove_dead_leftovers, sibling
from ...core.ioerrors import describe
from ...errors import InputDataError, PublishError
from ..sql import CURRENT_SQL, quote
from .http_session import HttpSession, Scrubber, Stmt, http_url, remote_label

__all__ = ["MODES", "LocalSession", "Session", "TursoTarget", "connect"]

log = logging.getLogger(__name__)

#: what pyturso raises: its DB-API errors, I/O errors and errors from its Rust core
_TURSO_ERRORS = (turso.Error, OSError, RuntimeError, ValueError)

MODES = ("file", "sync", "http")

#: rows a local session inserts before it commits: pyturso holds a transaction's pages in
#: memory until the commit (30.7 million rows in one transaction: 10 GB), and readers keep
#: seeing the previous publish through the pointer until the switch whatever is committed
COMMIT_ROWS = 1_000_000

#: rows per INSERT statement of a local session: a multi-row VALUES list inserts about twice
#: the rows per second of one row per statement (pyturso, measured at 50 rows and over), in
#: the same order, so the database is the same; at most :data:`MAX_PARAMETERS` values each
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


def _discard(path: Path) -> None:
    """Remove a Turso database file and its WAL."""
    for p in (path, path.with_name(path.name + "-wal")):
        p.unlink(missing_ok=True)


class LocalSession:
    """A pyturso connection; a publish's statements up to :meth:`finish` are committed
    every :data:`COMMIT_ROWS` inserted rows and at the finish. Until the pointer switches,
    readers see the previous publish; a load that stops half-way is cleared by the next
    publish (the protocol's ``loading`` record), as over HTTP, where every request commits.

    ``install``: the connection writes a temporary file (``work``) that :meth:`complete`
    moves onto ``install`` once the publish is whole (the first publish to a file); until
    then there is no file at ``install`` to open, and :meth:`close` removes the temporary
    one.
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
    ) -> None:
        self.conn = conn
        self.label = label
        self._push = push
        self.scrub = scrub or Scrubber()
        self._remote = remote
        self._install = install
        self._work = work
        self._closed = False
        self._uncommitted = 0

    def __repr__(self) -> str:
        return f"LocalSession({self.label!r})"

    def _wrap(self, exc: Exception, what: str) -> PublishError:
        text = self.scrub(str(exc))
        cause = describe(exc, at=None if self._push else self.label)
        state = (
            "nothing was published"
            if self._install is not None
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
        """The publish is whole: move a first publish's temporary file into place.

        The WAL is folded into the file first (a checkpoint), so the one rename carries the
        whole database; a WAL left beside the target by an earlier file is removed so it
        cannot be replayed onto this one.
        """
        if self._install is None or self._work is None:
            return
        work, target = self._work, self._install
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._close_conn()
            wal = work.with_name(work.name + "-wal")
            if wal.exists() and wal.stat().st_size:
                raise PublishError(
                    f"publish to {self.label} failed: the new database could not be "
                    "checkpointed; nothing was published"
                )
            target.with_name(target.name + "-wal").unlink(missing_ok=True)
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


def _holds_data(path: Path) -> bool:
    """Whether the Turso file at ``path`` holds any row.

    False for no file, an empty one, or the leftover of a first publish that was killed
    before its commit (empty tables): those are replaced whole, like a first publish.
    """
    if not path.exists() or path.stat().st_size == 0:
        return False
    try:
        conn = turso.connect(str(path))
    except Exception:  # noqa: BLE001  (the real connect says why)
        return True
    try:
        names = [
            str(r[0])
            for r in conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        ]
        return any(
            conn.execute('SELECT 1 FROM "' + n.replace('"', '""') + '" LIMIT 1').fetchone()
            is not None
            for n in names
        )
    except Exception:  # noqa: BLE001  (unreadable: let the publish report it)
        return True
    finally:
        conn.close()


def _connect_file(path: Path) -> Session:
    """A session on the Turso file ``path``; a first publish (no file, or one without any
    row) writes a temporary file moved into place by :meth:`LocalSession.complete`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_leftovers(path, ("tmp",))  # of a first publish that was killed
    except OSError as exc:
        why = describe(exc, at=path) or str(exc)
        raise PublishError(f"cannot create the Turso database file {path}: {why}") from exc
    fresh = not _holds_data(path)
    work = sibling(path, "tmp") if fresh else path
    try:
        conn = turso.connect(str(work))
    except Exception as exc:
        if fresh:
            _discard(work)
        why = describe(exc, at=path) or str(exc)
        raise PublishError(f"cannot open the Turso database file {path}: {why}") from exc
    if fresh:
        return LocalSession(conn, str(path), push=False, install=path, work=work)
    return LocalSession(conn, str(path), push=False)


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
