"""Publish the star schema to Turso (libSQL): a local database file, or a remote database.

Three ways to reach a database, one publishing protocol:

* ``file``: a local Turso database file (embedded ``pyturso``; no server). The whole publish
  is one transaction.
* ``sync``: a remote database through ``turso.sync``: the publish is written to a local
  replica in one transaction, then pushed; a push is atomic on the server and a push that
  dies is resumed by the next publish.
* ``http``: a remote database through the HTTP API Power BI reads from
  (``POST /v2/pipeline``); rows go in chunks of ``chunk_rows`` bound as one JSON parameter
  each (``json_each``), every chunk a transactional batch. About 5x faster than ``sync``.

The protocol (:func:`publish_tables`) makes every target atomic and idempotent for readers:
star rows carry a ``publish_id`` (a digest of the published content); they are written and
counted first, and the one-row pointer table ``twmb_current`` is switched last. Readers filter
on the pointer (:func:`twmb_geo.publish.sql.reader_sql`), so they see the previous complete
publish until the switch, whatever dies in between; the next publish deletes the leftovers of
an interrupted one and writes it again. Publishing the same content again changes nothing.
The previous publish is kept until the next one, so a paging reader mid-refresh can finish.

Schema migrations are numbered (:data:`MIGRATIONS`), idempotent and recorded in
``twmb_schema_version``; a database whose version is newer than this code is refused.
The auth token is only ever sent in the ``Authorization`` header: it is never printed,
logged or put in an error message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
import logging
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import pandas as pd

from ..errors import InputDataError, PublishError, SchemaVersionError
from .sql import (
    CURRENT_TABLE,
    PUBLISH_COLUMN,
    RUNS_TABLE,
    SCHEMA_TABLE,
    quote,
    safe_identifier,
    star_schema,
    table_ddl,
)
from .star import STAR_TABLES
from .values import frame_rows, table_checksum

__all__ = [
    "MIGRATIONS",
    "MODES",
    "SCHEMA_VERSION",
    "Migration",
    "PreparedStar",
    "TursoTarget",
    "check_version",
    "connect",
    "prepare_star",
    "publish_id_for",
    "publish_tables",
    "remote_label",
]

log = logging.getLogger(__name__)

MODES = ("file", "sync", "http")
Stmt = tuple[str, Sequence[Any]]


@dataclass(frozen=True)
class Migration:
    """One numbered, idempotent schema step."""

    version: int
    description: str
    statements: Callable[[], list[str]]


def _v1() -> list[str]:
    stmts = [
        f"CREATE TABLE IF NOT EXISTS {quote(SCHEMA_TABLE)} ("
        '"version" INTEGER PRIMARY KEY, "description" TEXT NOT NULL, "applied_at" TEXT NOT NULL)',
        f"CREATE TABLE IF NOT EXISTS {quote(RUNS_TABLE)} ("
        f'{quote(PUBLISH_COLUMN)} TEXT PRIMARY KEY, "status" TEXT NOT NULL, '
        '"started_at" TEXT NOT NULL, "finished_at" TEXT, "source" TEXT, '
        '"row_counts" TEXT NOT NULL, "checksums" TEXT NOT NULL)',
        f"CREATE TABLE IF NOT EXISTS {quote(CURRENT_TABLE)} ("
        '"id" INTEGER PRIMARY KEY CHECK ("id" = 1), '
        f'{quote(PUBLISH_COLUMN)} TEXT NOT NULL, "published_at" TEXT NOT NULL)',
    ]
    for t in STAR_TABLES:
        stmts += table_ddl(star_schema(t))
    return stmts


#: every schema step, in order; a new contract version adds one (never edit an applied one)
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "star schema 1.0: 12 star tables, publish pointer, publish log", _v1),
)
#: the newest schema version this code writes
SCHEMA_VERSION = MIGRATIONS[-1].version


# -- sessions ------------------------------------------------------------------------------
class Session(Protocol):
    """What the protocol needs from a database connection."""

    label: str

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def transaction(self, stmts: Sequence[Stmt]) -> None: ...

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None: ...

    def finish(self) -> None: ...

    def close(self) -> None: ...


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    cols = ", ".join(quote(c) for c in columns)
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {quote(table)} ({cols}) VALUES ({marks})"


class _LocalSession:
    """A pyturso connection; everything up to :meth:`finish` is one transaction."""

    def __init__(self, conn: Any, label: str, push: bool) -> None:
        self.conn = conn
        self.label = label
        self._push = push

    def _wrap(self, exc: Exception, what: str) -> PublishError:
        text = _scrub(str(exc))
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
                    f"pushing to {self.label} failed: {_scrub(str(exc))}; the server keeps the "
                    "previous publish and the next publish resumes the push"
                ) from exc

    def close(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.rollback()
        except Exception as exc:  # the write already failed; closing drops the transaction
            log.debug("rollback on %s failed: %s", self.label, exc)
        finally:
            self.conn.close()


_SECRETS: set[str] = set()


def _scrub(text: str) -> str:
    for secret in _SECRETS:
        if secret:
            text = text.replace(secret, "***")
    return text


def remote_label(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what messages show (no credentials, path or query)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def _http_url(url: str) -> str:
    if url.startswith("libsql://"):
        url = "https://" + url[len("libsql://") :]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputDataError(
            f"Turso URL {remote_label(url)!r} is not valid: use libsql://<db>.turso.io, "
            "https://<host> or http://127.0.0.1:<port>"
        )
    if parts.username or parts.password:
        raise InputDataError(
            f"put the Turso token in TURSO_AUTH_TOKEN, not in the URL ({remote_label(url)})"
        )
    return url.rstrip("/")


def _value(v: Any) -> dict[str, Any]:
    if v is None:
        return {"type": "null"}
    if isinstance(v, bool | int):
        return {"type": "integer", "value": str(int(v))}
    if isinstance(v, float):
        return {"type": "float", "value": v}
    return {"type": "text", "value": str(v)}


def _decode(v: dict[str, Any]) -> Any:
    kind = v.get("type")
    if kind == "null":
        return None
    if kind == "integer":
        return int(v["value"])
    if kind == "float":
        return float(v["value"])
    return v.get("value")


class _HttpSession:
    """Turso's HTTP API (``POST /v2/pipeline``), the same requests Power Query sends."""

    def __init__(
        self, url: str, token: str | None, *, timeout: float = 60.0, chunk_rows: int = 5000
    ) -> None:
        self.url = _http_url(url)
        self.label = remote_label(self.url)
        self._token = token
        if token:
            _SECRETS.add(token)
        self.timeout = timeout
        self.chunk_rows = chunk_rows
        parts = urlsplit(self.url)
        self._path = (parts.path or "") + "/v2/pipeline"
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host,
                    self._port,
                    timeout=self.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout
                )
        return self._conn

    def post(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send one pipeline request; return its results or raise a clear :class:`PublishError`."""
        body = json.dumps({"requests": requests}, allow_nan=False).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            conn = self._connection()
            conn.request("POST", self._path, body=body, headers=headers)
            resp = conn.getresponse()
            status, payload = resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            reason = "timed out" if isinstance(exc, socket.timeout) else type(exc).__name__
            detail = _scrub(str(exc))
            raise PublishError(
                f"cannot reach Turso at {self.label} ({reason}: {detail}): check --turso-url "
                "and that the database is up; the previous publish is unchanged"
            ) from None
        if status in (401, 403):
            raise PublishError(
                f"Turso at {self.label} refused the token (HTTP {status}): set TURSO_AUTH_TOKEN "
                "to a valid token for this database (the token is not shown)"
            )
        if status != 200:
            text = _scrub(payload[:300].decode("utf-8", "replace"))
            raise PublishError(f"Turso at {self.label} answered HTTP {status}: {text}")
        try:
            results = json.loads(payload)["results"]
        except (ValueError, KeyError) as exc:
            raise PublishError(
                f"Turso at {self.label} sent a response that is not Hrana JSON"
            ) from exc
        return results

    @staticmethod
    def _stmt(sql: str, params: Sequence[Any]) -> dict[str, Any]:
        stmt: dict[str, Any] = {"sql": sql}
        if params:
            stmt["args"] = [_value(v) for v in params]
        return stmt

    def _fail(self, message: str, sql: str) -> PublishError:
        return PublishError(f"Turso at {self.label}: {_scrub(message)} (in: {sql[:120]})")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        (res,) = self.post([{"type": "execute", "stmt": self._stmt(sql, params)}])
        if res.get("type") != "ok":
            raise self._fail(res.get("error", {}).get("message", "error"), sql)
        rows = res["response"]["result"]["rows"]
        return [tuple(_decode(v) for v in row) for row in rows]

    def transaction(self, stmts: Sequence[Stmt]) -> None:
        """Run statements as one transactional batch: all or nothing."""
        steps: list[dict[str, Any]] = [{"stmt": {"sql": "BEGIN"}}]
        for sql, params in stmts:
            steps.append(
                {
                    "stmt": self._stmt(sql, params),
                    "condition": {"type": "ok", "step": len(steps) - 1},
                }
            )
        commit = len(steps)
        steps.append({"stmt": {"sql": "COMMIT"}, "condition": {"type": "ok", "step": commit - 1}})
        steps.append(
            {
                "stmt": {"sql": "ROLLBACK"},
                "condition": {"type": "not", "cond": {"type": "ok", "step": commit}},
            }
        )
        (res,) = self.post([{"type": "batch", "batch": {"steps": steps}}])
        if res.get("type") != "ok":
            raise self._fail(
                res.get("error", {}).get("message", "error"), stmts[0][0] if stmts else ""
            )
        errors = res["response"]["result"].get("step_errors") or []
        for i, err in enumerate(errors[1:commit], start=1):
            if err:
                raise self._fail(err.get("message", "error"), stmts[i - 1][0])
        if len(errors) > commit and errors[commit]:
            raise self._fail(errors[commit].get("message", "error"), "COMMIT")

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows in chunks, each chunk one bound JSON parameter read with ``json_each``."""
        select = ", ".join(f"value ->> {i}" for i in range(len(columns)))
        cols = ", ".join(quote(c) for c in columns)
        sql = f"INSERT INTO {quote(table)} ({cols}) SELECT {select} FROM json_each(?)"
        step = self.chunk_rows
        per_batch = 10
        for start in range(0, len(rows), step * per_batch):
            stmts = [
                (sql, [json.dumps(rows[i : i + step], allow_nan=False, separators=(",", ":"))])
                for i in range(start, min(len(rows), start + step * per_batch), step)
            ]
            self.transaction(stmts)

    def finish(self) -> None:
        return None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# -- connecting ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TursoTarget:
    """Where to publish: a local file (``mode="file"``) or a remote URL (``sync`` / ``http``)."""

    mode: str = "file"
    path: Path | None = None
    url: str | None = None
    token: str | None = None
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
        return str(self.path) if self.mode == "file" else remote_label(_http_url(self.url or ""))

    def __repr__(self) -> str:  # never show the token
        return f"TursoTarget(mode={self.mode!r}, target={self.label!r})"


def connect(target: TursoTarget) -> Session:
    """Open a session on ``target`` (raises :class:`PublishError` when it cannot)."""
    if target.mode == "http":
        return _HttpSession(target.url or "", target.token, chunk_rows=target.chunk_rows)
    import turso

    if target.mode == "file":
        path = Path(target.path or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return _LocalSession(turso.connect(str(path)), str(path), push=False)
        except Exception as exc:
            raise PublishError(f"cannot open the Turso database file {path}: {exc}") from exc
    import turso.sync

    url = _http_url(target.url or "")
    label = remote_label(url)
    if target.token:
        _SECRETS.add(target.token)
    replica = target.replica or Path("turso-replica.db")
    replica.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = turso.sync.connect(str(replica), remote_url=url, auth_token=target.token)
        conn.pull()
    except Exception as exc:
        text = _scrub(str(exc))
        if "401" in text or "403" in text or "unauthor" in text.lower():
            raise PublishError(
                f"Turso at {label} refused the token: set TURSO_AUTH_TOKEN to a valid token "
                "for this database (the token is not shown)"
            ) from None
        raise PublishError(
            f"cannot sync with Turso at {label} ({text}): check --turso-url and that the "
            "database is up; the previous publish is unchanged"
        ) from None
    return _LocalSession(conn, label, push=True)


# -- the protocol --------------------------------------------------------------------------
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
    return max(version, SCHEMA_VERSION)


def publish_id_for(checksums: Mapping[str, str]) -> str:
    """The content digest naming a publish: same tables, same id."""
    h = hashlib.sha256(json.dumps(dict(sorted(checksums.items()))).encode())
    return f"star-{h.hexdigest()[:16]}"


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


@dataclass(frozen=True)
class PreparedStar:
    """Star tables as checked, canonical rows with their checksums and publish id.

    Built once per publish (:func:`prepare_star`) and shared by every target.
    """

    rows: dict[str, list[tuple[Any, ...]]]
    columns: dict[str, list[str]]
    checksums: dict[str, str]
    publish_id: str


def prepare_star(tables: Mapping[str, pd.DataFrame]) -> PreparedStar:
    """Check every star table against its contract (safe identifiers, column order) and turn
    it into canonical rows; :class:`InputDataError` names the table or column at fault."""
    missing = [t for t in STAR_TABLES if t not in tables]
    if missing:
        raise InputDataError(f"star tables missing from the publish: {missing}")
    rows: dict[str, list[tuple[Any, ...]]] = {}
    columns: dict[str, list[str]] = {}
    for t in STAR_TABLES:
        schema = star_schema(t)
        cols = [safe_identifier(c, what=f"column of {t}") for c in tables[t].columns]
        if cols != schema.columns:
            raise InputDataError(
                f"star table {t} has columns {cols}, its contract {schema.columns}: "
                "build it with twmb_geo.publish.build_star"
            )
        rows[t] = frame_rows(tables[t], schema)
        columns[t] = cols
    checksums = {t: table_checksum(rows[t]) for t in STAR_TABLES}
    return PreparedStar(rows, columns, checksums, publish_id_for(checksums))


def publish_tables(
    session: Session,
    tables: Mapping[str, pd.DataFrame],
    *,
    prepared: PreparedStar | None = None,
    source: str = "",
    keep_previous: int = 1,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Publish every star table through ``session`` with the pointer protocol (module doc).

    ``prepared`` is :func:`prepare_star` of ``tables`` when the caller has it already.
    Returns the publish id, whether anything changed, rows and checksums per table, and the
    schema version. Raises :class:`PublishError` (the previous publish stays readable).
    """
    star = prepared or prepare_star(tables)
    rows, columns, checksums, pid = star.rows, star.columns, star.checksums, star.publish_id
    counts = {t: len(rows[t]) for t in STAR_TABLES}
    version = migrate(session)
    result = {
        "publish_id": pid,
        "target": session.label,
        "schema_version": version,
        "rows": counts,
        "checksums": checksums,
    }
    current = session.query(f"SELECT {quote(PUBLISH_COLUMN)} FROM {quote(CURRENT_TABLE)}")
    current_id = current[0][0] if current else None
    if current_id == pid and _counts(session, pid) == counts:
        session.finish()  # a sync replica may still hold an interrupted push: send it
        return {**result, "changed": False, "previous": current_id}

    runs = session.query(
        f'SELECT {quote(PUBLISH_COLUMN)}, "status", "started_at" FROM {quote(RUNS_TABLE)} '
        'ORDER BY "started_at", ' + quote(PUBLISH_COLUMN)
    )
    # interrupted publishes, and this one if it is kept from before (or current but damaged)
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
                [pid, "loading", _now(), source, json.dumps(counts), json.dumps(checksums)],
            ),
        ]
    )
    total = sum(counts.values())
    done = 0
    for t in STAR_TABLES:
        if progress:
            progress(f"publish {t}", done, total)
        tagged = [(*r, pid) for r in rows[t]]
        session.insert(t, [*columns[t], PUBLISH_COLUMN], tagged)
        done += len(tagged)
    got = _counts(session, pid)
    if got != counts:
        bad = [
            f"{t}: wrote {counts[t]}, found {got.get(t)}"
            for t in STAR_TABLES
            if got.get(t) != counts[t]
        ]
        raise PublishError(f"row counts on {session.label} do not match; not switched", bad)
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
        f'ORDER BY "finished_at" DESC, {quote(PUBLISH_COLUMN)}',
        ["superseded"],
    )
    for (old,) in superseded[keep_previous:]:
        session.transaction(_delete_publish(old))
    session.finish()
    if progress:
        progress("published", total, total)
    return {**result, "changed": True, "previous": current_id}
