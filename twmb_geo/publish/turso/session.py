"""Sessions on a Turso database: a local file, a ``turso.sync`` replica, or the HTTP API.

Every session knows its own token (through a :class:`~.http_session.Scrubber`) and keeps it
out of the messages it raises; nothing about a token outlives the session.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import turso
import turso.sync

from ...errors import InputDataError, PublishError
from ..sql import quote
from .http_session import HttpSession, Scrubber, Stmt, http_url, remote_label

__all__ = ["MODES", "LocalSession", "Session", "TursoTarget", "connect"]

log = logging.getLogger(__name__)

#: what pyturso raises: its DB-API errors, I/O errors and errors from its Rust core
_TURSO_ERRORS = (turso.Error, OSError, RuntimeError, ValueError)

MODES = ("file", "sync", "http")


class Session(Protocol):
    """What the protocol needs from a database connection."""

    label: str

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def transaction(self, stmts: Sequence[Stmt]) -> None: ...

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None: ...

    def finish(self) -> None: ...

    def define_views(self, stmts: Sequence[str]) -> None: ...

    def close(self) -> None: ...


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    cols = ", ".join(quote(c) for c in columns)
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {quote(table)} ({cols}) VALUES ({marks})"


class LocalSession:
    """A pyturso connection; everything up to :meth:`finish` is one transaction."""

    def __init__(
        self,
        conn: Any,
        label: str,
        push: bool,
        scrub: Scrubber | None = None,
        remote: HttpSession | None = None,
    ) -> None:
        self.conn = conn
        self.label = label
        self._push = push
        self.scrub = scrub or Scrubber()
        self._remote = remote

    def __repr__(self) -> str:
        return f"LocalSession({self.label!r})"

    def _wrap(self, exc: Exception, what: str) -> PublishError:
        text = self.scrub(str(exc))
        hint = ""
        low = f"{type(exc).__name__} {text}".lower()
        if any(k in low for k in ("full", "i/o", "ioerr", "toolarge", "no space")):
            hint = " (is the disk full?)"
        return PublishError(
            f"{what} {self.label} failed: {text}{hint}; the previous publish is unchanged"
        )

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
            self.conn.executemany(_insert_sql(table, columns), rows)
        except Exception as exc:
            raise self._wrap(exc, f"writing {table} to") from exc

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

    def close(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.rollback()
        except _TURSO_ERRORS as exc:  # the write already failed; closing drops the transaction
            log.debug("rollback on %s failed: %s", self.label, self.scrub(str(exc)))
        finally:
            self.conn.close()
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


def _connect_file(path: Path) -> Session:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return LocalSession(turso.connect(str(path)), str(path), push=False)
    except Exception as exc:
        raise PublishError(f"cannot open the Turso database file {path}: {exc}") from exc


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
