"""Turso's HTTP API (``POST /v2/pipeline``): the same requests Power Query sends.

Also the URL helpers every remote session uses, and :class:`Scrubber`, which keeps one
session's token out of every message it raises.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...errors import InputDataError, PublishError
from ..sql import CURRENT_SQL, quote

__all__ = ["HttpSession", "Scrubber", "Stmt", "http_url", "remote_label"]

Stmt = tuple[str, Sequence[Any]]


class Scrubber:
    """Replaces the secrets of one session (its token) with ``***`` in a text."""

    def __init__(self, *secrets: str | None) -> None:
        self._secrets = tuple(s for s in secrets if s)

    def __call__(self, text: str) -> str:
        """``text`` without the secrets."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return f"Scrubber({len(self._secrets)} secret(s))"


def remote_label(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what messages show (no credentials, path or query)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def http_url(url: str) -> str:
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


class HttpSession:
    """Turso's HTTP API (``POST /v2/pipeline``), the same requests Power Query sends."""

    def __init__(
        self, url: str, token: str | None, *, timeout: float = 60.0, chunk_rows: int = 5000
    ) -> None:
        self.url = http_url(url)
        self.label = remote_label(self.url)
        self._token = token
        self.scrub = Scrubber(token)
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
            detail = self.scrub(str(exc))
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
            text = self.scrub(payload[:300].decode("utf-8", "replace"))
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
        return PublishError(f"Turso at {self.label}: {self.scrub(message)} (in: {sql[:120]})")

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

    def copy_rows(
        self, table: str, columns: Sequence[str], row_file: Path, tag: Sequence[Any]
    ) -> int | None:
        """A server cannot read a local row file: None (the rows are sent as rows)."""
        return None

    def unpushed(self) -> bool:
        """Nothing waits to be sent: every batch went to the server when it was written."""
        return False

    def target_current(self) -> str | None:
        """The publish the server's pointer names (None without one)."""
        try:
            rows = self.query(CURRENT_SQL)
        except PublishError:  # no pointer table yet
            return None
        return str(rows[0][0]) if rows else None

    def finish(self) -> None:
        return None

    def define_views(self, stmts: Sequence[str]) -> None:
        """Run view DDL in one transactional batch."""
        self.transaction([(sql, []) for sql in stmts])

    def complete(self) -> None:
        """Nothing to move: the server's pointer switch made the publish visible."""
        return None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __repr__(self) -> str:
        return f"HttpSession({self.label!r})"
