"""A real local Turso server for the tests, and a reader that talks to it like Power Query.

``make test`` installs the pinned npm package ``turso`` (the Turso CLI) under ``.tools/``;
:class:`TursoServer` runs ``turso --sync-server 127.0.0.1:<free port> <db>`` on loopback.
:func:`read_current` reads a star table exactly the way the generated Power Query does:
``POST /v2/pipeline`` with the current publish id first, then pages bound to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from conftest import REPO

from twmb_geo.publish.sql import CURRENT_SQL, reader_sql

TURSO_BIN = Path(
    os.environ.get("TWMB_TURSO_BIN", REPO / ".tools" / "node_modules" / ".bin" / "turso")
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TursoServer:
    """``turso --sync-server`` serving one database file on 127.0.0.1."""

    def __init__(self, db: Path, port: int | None = None) -> None:
        if not TURSO_BIN.exists():
            raise RuntimeError(
                f"the Turso CLI is not installed at {TURSO_BIN}: run `make test` "
                "(it installs the pinned npm package turso into .tools/)"
            )
        self.db = Path(db)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TursoServer:
        self.proc = subprocess.Popen(
            [str(TURSO_BIN), "--sync-server", f"127.0.0.1:{self.port}", str(self.db)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the npm launcher runs the server as its child
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"turso server exited with {self.proc.returncode}")
            try:
                pipeline(self.url, [("SELECT 1", [])])
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("turso server did not answer within 20 s")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL to its process group: launcher and server)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def __enter__(self) -> TursoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _arg(v: Any) -> dict[str, Any]:
    if v is None:
        return {"type": "null"}
    if isinstance(v, int):
        return {"type": "integer", "value": str(v)}
    if isinstance(v, float):
        return {"type": "float", "value": v}
    return {"type": "text", "value": str(v)}


def _value(v: dict[str, Any]) -> Any:
    if v["type"] == "null":
        return None
    if v["type"] == "integer":
        return int(v["value"])
    if v["type"] == "float":
        return float(v["value"])
    return v["value"]


def pipeline(url: str, stmts: list[tuple[str, list[Any]]], token: str | None = None) -> list[dict]:
    """One ``POST /v2/pipeline`` with execute requests; returns each result (raises on error)."""
    body = {
        "requests": [
            {
                "type": "execute",
                "stmt": {"sql": sql, **({"args": [_arg(a) for a in args]} if args else {})},
            }
            for sql, args in stmts
        ]
    }
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        url + "/v2/pipeline", data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        results = json.loads(resp.read())["results"]
    for r in results:
        if r["type"] != "ok":
            raise AssertionError(f"turso error: {r['error']['message']}")
    return [r["response"]["result"] for r in results]


def query(url: str, sql: str, args: list[Any] | None = None) -> list[tuple[Any, ...]]:
    (res,) = pipeline(url, [(sql, args or [])])
    return [tuple(_value(v) for v in row) for row in res["rows"]]


def current_publish(url: str) -> str | None:
    rows = query(url, CURRENT_SQL)
    return rows[0][0] if rows else None


def read_current(url: str, table: str, page: int = 50_000, sql: str | None = None) -> list[tuple]:
    """Every current row of a star table, paged and bound to one publish id (as Power Query):
    keyset pages, each binding the previous page's last rowid; the rowid is not returned."""
    pid = current_publish(url)
    sql = sql or reader_sql(table, paged=True)
    out: list[tuple] = []
    after = 0
    while True:
        rows = query(url, sql, [pid, after, page])
        out += [tuple(r[1:]) for r in rows]
        if len(rows) < page:
            return out
        after = rows[-1][0]


def star_with_fact(rows: int, seed: int = 42) -> dict[str, pd.DataFrame]:
    """An empty store's star schema with ``fact_unit_year`` grown to ``rows`` cell-years
    (a big publish without a big run; the publish tests and ``benchmarks/publish.py``)."""
    import tempfile

    from twmb_geo.publish.star import build_star
    from twmb_geo.store.duckdb_store import Store

    with tempfile.TemporaryDirectory() as d, Store(Path(d) / "e.duckdb") as store:
        star = build_star(store)
    rng = np.random.default_rng(seed)
    years = 27
    cells = -(-rows // years)
    breaks = rng.poisson(0.2, rows).astype(np.int64)
    exposure = np.round(rng.gamma(2.0, 0.6, rows), 4)
    star["fact_unit_year"] = pd.DataFrame(
        {
            "unit_type": "cell",
            "cell_key": np.repeat(np.arange(1, cells + 1, dtype=np.int64), years)[:rows],
            "pipe_key": np.full(rows, -2, np.int64),
            "street_key": np.full(rows, -2, np.int64),
            "neighbourhood_key": np.full(rows, -1, np.int64),
            "year_key": np.tile(np.arange(1990, 1990 + years, dtype=np.int64), cells)[:rows],
            "year": np.tile(np.arange(1990, 1990 + years, dtype=np.int32), cells)[:rows],
            "breaks": breaks,
            "exposure_km": exposure,
            "rate_per_100km": np.round(breaks / exposure * 100, 4),
        }
    )
    return star


def m_sql(kit: Path, table: str) -> str:
    """The SQL a generated Power Query script sends (its ``Sql = "..."`` line, M-unescaped)."""
    for line in (kit / "powerquery" / "turso" / f"{table}.pq").read_text().splitlines():
        if line.startswith('    Sql = "'):
            return line[len('    Sql = "') : -len('",')].replace('""', '"')
    raise AssertionError(f"no Sql line in the Power Query script of {table}")


class KillingProxy:
    """A loopback TCP proxy in front of a server that kills it mid-request.

    Once more than ``kill_after`` bytes have gone from clients to the server, the server
    process is killed and every connection dropped: a server dying half-way through a push.
    """

    def __init__(self, server: TursoServer, kill_after: float = float("inf")) -> None:
        import threading

        self.server = server
        self.kill_after = kill_after
        self.sent = 0
        self.killed = False
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.server.port))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upward: bool) -> None:
        try:
            while data := src.recv(65536):
                if upward:
                    with self._lock:
                        self.sent += len(data)
                        if self.sent > self.kill_after and not self.killed:
                            self.killed = True
                            self.server.kill()
                    if self.killed:
                        break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def arm(self, more_bytes: float) -> None:
        """Kill the server once ``more_bytes`` more bytes have gone to it (inf: never)."""
        with self._lock:
            self.kill_after = self.sent + more_bytes
            self.killed = False

    def close(self) -> None:
        self._sock.close()
