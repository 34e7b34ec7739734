"""Tests for the CKAN fetcher against a local CKAN-shaped HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from twmb_geo.errors import ConfigError, FetchError
from twmb_geo.io.ckan import (
    STATE_FILENAME,
    TORONTO_PACKAGES,
    CkanResource,
    FetchReport,
    PackageSpec,
    UrlPolicy,
    fetch_packages,
    fetch_toronto,
    safe_filename,
    select_resources,
    token_allowed,
)

REPO = Path(__file__).resolve().parents[1]
FAST: dict[str, Any] = {"timeout": 5.0, "retries": 2, "backoff": 0.01}
LAST_MODIFIED = "2024-01-15T12:00:00.000000"


@cache
def real_bytes(name: str) -> bytes:
    """Bytes of a bundled Toronto file (``data/toronto`` in a clone, else the shared copy)."""
    for candidate in (
        REPO / "data" / "toronto" / name,
        REPO.parent / "shared" / "data" / "toronto" / name,
    ):
        if candidate.is_file():
            return candidate.read_bytes()
    raise FileNotFoundError(f"bundled test file {name} not found under {REPO}")


def generated(label: str, size: int) -> bytes:
    """Deterministic pseudo-random bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


# --------------------------------------------------------------------------- fake CKAN


@dataclass
class FakeCkan:
    """State of the fake portal; behaviours are consumed per request path or slug."""

    packages: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    file_plan: dict[str, list[str]] = field(default_factory=dict)
    file_always: dict[str, str] = field(default_factory=dict)
    api_plan: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    auth: list[tuple[str, str | None]] = field(default_factory=list)
    redirects: dict[str, tuple[int, str]] = field(default_factory=dict)
    unsized: dict[str, str] = field(default_factory=dict)
    expected: dict[str, bytes] = field(default_factory=dict)
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)
    _ids: int = 0

    # -- setup helpers
    def add(
        self,
        slug: str,
        name: str,
        filename: str,
        body: bytes,
        fmt: str,
        *,
        expected: bool = False,
        path: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Add a resource (and its body) to package ``slug``; returns its mutable JSON."""
        self._ids += 1
        rid = f"{slug}-{self._ids:04d}"
        path = path or f"/dataset/{slug}/resource/{rid}/download/{filename}"
        resource: dict[str, Any] = {
            "id": rid,
            "name": name,
            "url": self.base_url + path,
            "format": fmt,
            "size": len(body),
            "last_modified": LAST_MODIFIED,
            "hash": "",
            "datastore_active": False,
            **extra,
        }
        package = self.packages.setdefault(
            slug, {"id": f"pkg-{slug}", "name": slug, "resources": []}
        )
        package["resources"].append(resource)
        self.files[path] = body
        if expected:
            self.expected[f"{slug}/{filename}"] = body
        return resource

    def resource(self, slug: str, name: str) -> dict[str, Any]:
        """The JSON of the resource called ``name`` in ``slug``."""
        return next(r for r in self.packages[slug]["resources"] if r["name"] == name)

    def path_of(self, slug: str, name: str) -> str:
        """Server path of a resource."""
        url: str = self.resource(slug, name)["url"]
        return url[len(self.base_url) :]

    def file_requests(self) -> list[str]:
        """Paths of non-API requests so far."""
        with self.lock:
            return [p for p, _ in self.requests if not p.startswith("/api/")]

    def api_requests(self, slug: str) -> int:
        """Number of package_show requests for ``slug``."""
        with self.lock:
            return sum(1 for p, _ in self.requests if p.startswith("/api/") and f"id={slug}" in p)

    # -- serving
    def _next(self, plan: dict[str, list[str]], key: str) -> str:
        with self.lock:
            queue = plan.get(key)
            if queue:
                return queue.pop(0)
        return self.file_always.get(key, "ok") if plan is self.file_plan else "ok"

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.requests.append((h.path, h.headers.get("User-Agent", "")))
            self.auth.append((h.path, h.headers.get("Authorization")))
        split = urlsplit(h.path)
        if h.path in self.redirects:
            code, location = self.redirects[h.path]
            h.send_response(code)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if split.path == "/api/3/action/package_show":
            slug = parse_qs(split.query).get("id", [""])[0]
            behaviour = self._next(self.api_plan, slug)
            if behaviour == "500":
                self._send(h, 500, b"Internal Server Error", "text/plain")
            elif behaviour == "fail":
                payload = {"success": False, "error": {"__type": "Validation Error"}}
                self._send(h, 200, json.dumps(payload).encode())
            elif slug not in self.packages:
                payload = {
                    "success": False,
                    "error": {"message": "Not found", "__type": "Not Found Error"},
                }
                self._send(h, 404, json.dumps(payload).encode())
            else:
                with self.lock:
                    payload = {"success": True, "result": self.packages[slug]}
                    data = json.dumps(payload).encode()
                self._send(h, 200, data)
            return
        body = self.files.get(h.path)
        if body is None:
            self._send(h, 404, b"not found", "text/plain")
            return
        behaviour = self._next(self.file_plan, h.path)
        if behaviour == "500":
            self._send(h, 500, b"boom", "text/plain")
        elif behaviour == "429":
            self._send(h, 429, b"slow down", "text/plain")
        elif behaviour == "404":
            self._send(h, 404, b"gone", "text/plain")
        elif behaviour == "truncate":
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Content-Length", str(len(body) + 100))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.close_connection = True
        elif self.unsized.get(h.path) == "chunked":
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for start in range(0, len(body), 65536):
                piece = body[start : start + 65536]
                h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            h.wfile.write(b"0\r\n\r\n")
            h.close_connection = True
        elif self.unsized.get(h.path) == "close":
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.end_headers()
            h.wfile.write(body)
            h.close_connection = True
        elif behaviour == "sleep":
            self.release.wait(10)
            self._send(h, 200, body, "application/octet-stream")
        else:
            self._send(h, 200, body, "application/octet-stream")

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str = "application/json"
    ) -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins every handler thread
    block_on_close = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hung up (timeouts are part of the tests)."""


def _handler_for(fake: FakeCkan) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                fake.handle(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def populate(fake: FakeCkan) -> None:
    """The four Toronto packages, in both the plain and the named-copy shapes."""
    slug = "watermain-breaks"
    fake.add(
        slug,
        "watermain-breaks-1990-to-2016-wgs84.zip",
        "watermain-breaks-1990-to-2016-wgs84.zip",
        real_bytes("watermain_breaks_1990_2016_wgs84.zip"),
        "ZIP",
        expected=True,
    )
    xlsx = real_bytes("watermain_breaks_1990_2016_mtm_nad27.xlsx")
    fake.add(
        slug,
        "watermain-breaks-1990-to-2016-excel.xlsx",
        "watermain-breaks-1990-to-2016-excel.xlsx",
        xlsx,
        "XLSX",
        expected=True,
        hash="sha256:" + hashlib.sha256(xlsx).hexdigest(),
    )
    csv = b"BREAK_DATE,BREAK_YEAR,XCOORD,YCOORD\n" + generated("csv", 3000)
    fake.add(
        slug,
        "watermain-breaks-2017-to-2023.csv",
        "watermain-breaks-2017-to-2023.csv",
        csv,
        "CSV",
        expected=True,
        hash=hashlib.md5(csv).hexdigest(),
        size=str(len(csv)),
    )
    geojson = b'{"type":"FeatureCollection","features":[]}'
    fake.add(
        slug,
        "Watermain Breaks",
        "watermain-breaks.geojson",
        geojson,
        "GeoJSON",
        expected=True,
        hash=hashlib.sha256(geojson).hexdigest(),
        size=None,
    )
    fake.add(slug, "watermain-breaks-readme.xls", "readme.xls", b"readme", "XLS")
    fake.add(slug, "Data dictionary", "dictionary.pdf", b"%PDF-1.4", "PDF")

    slug = "watermains"
    for kind in ("Distribution", "Transmission"):
        stem = f"{kind.lower()}-watermain"
        fake.add(
            slug,
            f"{kind} Watermain",
            "",
            generated(f"{kind}-dump", 500),
            "SHP",
            path=f"/datastore/dump/{stem}-id",
            datastore_active=True,
        )
        fake.add(slug, f"{kind} Watermain - 4326.csv", f"{stem}-4326.csv", b"a,b\n", "CSV")
        fake.add(
            slug,
            f"{kind} Watermain - 2952.geojson",
            f"{stem}-2952.geojson",
            b'{"crs":2952}',
            "GeoJSON",
        )
        fake.add(
            slug,
            f"{kind} Watermain - 4326.geojson",
            f"{stem}-4326.geojson",
            generated(f"{kind}-geojson", 20_000),
            "GeoJSON",
            expected=True,
        )
        fake.add(slug, f"{kind} Watermain - 4326.zip", f"{stem}-4326.zip", b"PK", "SHP")
        fake.add(slug, f"{kind} Watermain - 4326.gpkg", f"{stem}-4326.gpkg", b"SQLite", "GPKG")
    fake.add(slug, "Watermains Readme", "watermains-readme.xlsx", b"readme", "XLSX")

    slug = "toronto-centreline-tcl"
    for name, stem, wanted in (
        ("Centreline - Version 2", "centreline-version-2", True),
        ("Centreline Intersection - Version 2", "centreline-intersection-version-2", False),
    ):
        fake.add(slug, f"{name} - 4326.csv", f"{stem}-4326.csv", b"x,y\n", "CSV")
        fake.add(
            slug,
            f"{name} - 4326.geojson",
            f"{stem}-4326.geojson",
            generated(stem, 12_345),
            "GeoJSON",
            expected=wanted,
        )
        fake.add(slug, f"{name} - 2952.geojson", f"{stem}-2952.geojson", b"{}", "GeoJSON")

    slug = "neighbourhoods"
    for name, stem in (
        ("Neighbourhoods", "neighbourhoods"),
        ("Neighbourhoods - historical 140", "neighbourhoods-historical-140"),
    ):
        fake.add(slug, f"{name} - 2952.zip", f"{stem}-2952.zip", b"PK", "SHP")
        fake.add(
            slug,
            f"{name} - 4326.geojson",
            f"{stem}-4326.geojson",
            generated(stem, 4_000),
            "GeoJSON",
            expected=True,
        )
        fake.add(slug, f"{name} - 4326.csv", f"{stem}-4326.csv", b"x\n", "CSV")


@contextlib.contextmanager
def serving(fake: FakeCkan, host: str = "127.0.0.1") -> Iterator[FakeCkan]:
    """Serve ``fake`` on 127.0.0.1 (a free port), its URLs naming ``host``."""
    server = _Server(("127.0.0.1", 0), _handler_for(fake))
    fake.base_url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive()


@pytest.fixture
def ckan() -> Iterator[FakeCkan]:
    with serving(FakeCkan()) as fake:
        populate(fake)
        yield fake


@pytest.fixture
def other_host() -> Iterator[FakeCkan]:
    """A second server standing for another host: its URLs say ``localhost``."""
    with serving(FakeCkan(), "localhost") as fake:
        yield fake


@pytest.fixture
def other_port() -> Iterator[FakeCkan]:
    """A second server on the catalogue's host (127.0.0.1) but another port: another origin."""
    with serving(FakeCkan()) as fake:
        yield fake


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".twmb-part-")]


def _entry(report: FetchReport, name: str) -> Any:
    return next(f for f in report.files if f.resource_name == name)


CENTRELINE = "Centreline - Version 2 - 4326.geojson"
TCL = "toronto-centreline-tcl"


# --------------------------------------------------------------------------- happy path


def test_happy_path_downloads_every_package(ckan: FakeCkan, tmp_path: Path) -> None:
    report = fetch_packages(tmp_path, base_url=ckan.base_url, **FAST)

    assert report.ok, report.to_dict()
    assert {f.status for f in report.files} == {"downloaded"}
    on_disk = {
        p.relative_to(tmp_path).as_posix(): p.read_bytes()
        for p in tmp_path.rglob("*")
        if p.is_file() and p.name != STATE_FILENAME
    }
    assert on_disk == ckan.expected
    for f in report.files:
        body = f.path.read_bytes()
        assert f.sha256 == hashlib.sha256(body).hexdigest()
        assert f.bytes == len(body)
        assert f.attempts == 1
        assert f.error is None
        assert f.path.parent.parent == tmp_path
    # only the selected files were requested, each once, with our User-Agent
    expected_paths = sorted(
        ckan.resource(slug, f.resource_name)["url"][len(ckan.base_url) :]
        for f in report.files
        for slug in [f.package]
    )
    assert sorted(ckan.file_requests()) == expected_paths
    assert all(ua.startswith("twmb-geo") for _, ua in ckan.requests)
    assert {f.package for f in report.files} == set(TORONTO_PACKAGES)
    assert _temp_files(tmp_path) == []
    state = json.loads((tmp_path / STATE_FILENAME).read_text())
    assert set(state["files"]) == set(ckan.expected)
    json.dumps(report.to_dict())  # serialisable
    assert report.to_dict()["counts"] == {"downloaded": 9, "unchanged": 0, "failed": 0}


def test_selection_prefers_geojson_4326_copies(ckan: FakeCkan, tmp_path: Path) -> None:
    report = fetch_packages(tmp_path, ["watermains"], base_url=ckan.base_url, **FAST)
    assert [f.resource_name for f in report.files] == [
        "Distribution Watermain - 4326.geojson",
        "Transmission Watermain - 4326.geojson",
    ]


def test_second_run_skips_unchanged(ckan: FakeCkan, tmp_path: Path) -> None:
    first = fetch_packages(tmp_path, base_url=ckan.base_url, **FAST)
    assert first.ok
    before = len(ckan.file_requests())

    second = fetch_packages(tmp_path, base_url=ckan.base_url, **FAST)

    assert second.ok
    assert {f.status for f in second.files} == {"unchanged"}
    assert len(ckan.file_requests()) == before  # no file GETs at all
    for a, b in zip(first.files, second.files, strict=True):
        assert (a.path, a.sha256, a.bytes) == (b.path, b.sha256, b.bytes)
        assert b.attempts == 0


def test_changed_last_modified_redownloads(ckan: FakeCkan, tmp_path: Path) -> None:
    assert fetch_packages(tmp_path, [TCL, "neighbourhoods"], base_url=ckan.base_url, **FAST).ok
    ckan.resource(TCL, CENTRELINE)["last_modified"] = "2025-02-01T00:00:00"
    before = len(ckan.file_requests())

    report = fetch_packages(tmp_path, [TCL, "neighbourhoods"], base_url=ckan.base_url, **FAST)

    assert _entry(report, CENTRELINE).status == "downloaded"
    assert [f.status for f in report.files if f.resource_name != CENTRELINE] == [
        "unchanged",
        "unchanged",
    ]
    assert ckan.file_requests()[before:] == [ckan.path_of(TCL, CENTRELINE)]


def test_file_changed_on_disk_redownloads(ckan: FakeCkan, tmp_path: Path) -> None:
    first = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)
    target = first.files[0].path
    target.write_bytes(b"tampered")

    report = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)

    assert report.files[0].status == "downloaded"
    assert target.read_bytes() == ckan.expected[f"{TCL}/centreline-version-2-4326.geojson"]


def test_corrupt_state_file_is_ignored(ckan: FakeCkan, tmp_path: Path) -> None:
    (tmp_path / STATE_FILENAME).write_text("{not json")
    report = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)
    assert report.ok
    assert report.files[0].status == "downloaded"
    assert json.loads((tmp_path / STATE_FILENAME).read_text())["version"] == 1


# --------------------------------------------------------------------------- retries


def test_http_500_twice_then_success(ckan: FakeCkan, tmp_path: Path) -> None:
    path = ckan.path_of(TCL, CENTRELINE)
    ckan.file_plan[path] = ["500", "500"]

    report = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)

    entry = report.files[0]
    assert report.ok
    assert entry.status == "downloaded"
    assert entry.attempts == 3
    assert entry.path.read_bytes() == ckan.files[path]


def test_http_429_is_retried(ckan: FakeCkan, tmp_path: Path) -> None:
    ckan.file_plan[ckan.path_of(TCL, CENTRELINE)] = ["429"]
    report = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)
    assert report.files[0].status == "downloaded"
    assert report.files[0].attempts == 2


def test_http_404_is_not_retried(ckan: FakeCkan, tmp_path: Path) -> None:
    path = ckan.path_of(TCL, CENTRELINE)
    ckan.file_always[path] = "404"
    report = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)
    entry = report.files[0]
    assert entry.status == "failed"
    assert entry.attempts == 1
    assert "HTTP 404" in (entry.error or "")
    assert ckan.file_requests().count(path) == 1


def test_persistent_500_fails_and_keeps_previous_file(ckan: FakeCkan, tmp_path: Path) -> None:
    good = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST).files[0]
    good_bytes = good.path.read_bytes()
    resource = ckan.resource(TCL, CENTRELINE)
    resource["last_modified"] = "2025-03-01T00:00:00"
    ckan.file_always[ckan.path_of(TCL, CENTRELINE)] = "500"

    report = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)

    entry = report.files[0]
    assert not report.ok
    assert report.failed == [entry]
    assert entry.status == "failed"
    assert entry.attempts == FAST["retries"] + 1
    assert entry.sha256 is None
    error = entry.error or ""
    for needle in (TCL, CENTRELINE, resource["url"], "HTTP 500"):
        assert needle in error
    assert entry.path == good.path
    assert good.path.read_bytes() == good_bytes
    assert _temp_files(tmp_path) == []


def test_truncated_body_is_retried_then_fails(ckan: FakeCkan, tmp_path: Path) -> None:
    path = ckan.path_of(TCL, CENTRELINE)
    ckan.file_always[path] = "truncate"

    report = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)

    entry = report.files[0]
    assert entry.status == "failed"
    assert entry.attempts == 3
    assert "truncated" in (entry.error or "")
    assert not entry.path.exists()
    assert _temp_files(tmp_path) == []
    assert ckan.file_requests().count(path) == 3


def test_truncated_once_then_success(ckan: FakeCkan, tmp_path: Path) -> None:
    path = ckan.path_of(TCL, CENTRELINE)
    ckan.file_plan[path] = ["truncate"]
    report = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)
    assert report.files[0].status == "downloaded"
    assert report.files[0].attempts == 2
    assert report.files[0].path.read_bytes() == ckan.files[path]


def test_ckan_size_mismatch_fails(ckan: FakeCkan, tmp_path: Path) -> None:
    resource = ckan.resource(TCL, CENTRELINE)
    resource["size"] = resource["size"] + 1

    report = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)

    entry = report.files[0]
    assert entry.status == "failed"
    assert entry.attempts == 3
    assert "size mismatch" in (entry.error or "")
    assert not entry.path.exists()
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize(
    ("declared", "algo"),
    [("sha256:" + "0" * 64, "sha256"), ("0" * 32, "md5"), ("md5:" + "f" * 32, "md5")],
)
def test_hash_mismatch_fails(ckan: FakeCkan, tmp_path: Path, declared: str, algo: str) -> None:
    ckan.resource(TCL, CENTRELINE)["hash"] = declared

    report = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)

    entry = report.files[0]
    assert entry.status == "failed"
    assert entry.attempts == 3
    assert f"{algo} mismatch" in (entry.error or "")
    assert not entry.path.exists()
    assert _temp_files(tmp_path) == []


def test_matching_hash_passes(ckan: FakeCkan, tmp_path: Path) -> None:
    path = ckan.path_of(TCL, CENTRELINE)
    ckan.resource(TCL, CENTRELINE)["hash"] = "MD5:" + hashlib.md5(ckan.files[path]).hexdigest()
    report = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)
    assert report.files[0].status == "downloaded"


def test_timeout_is_retried_then_fails_quickly(ckan: FakeCkan, tmp_path: Path) -> None:
    path = ckan.path_of(TCL, CENTRELINE)
    ckan.file_always[path] = "sleep"

    start = time.monotonic()
    report = fetch_packages(
        tmp_path, [TCL], base_url=ckan.base_url, timeout=0.2, retries=2, backoff=0.01
    )
    elapsed = time.monotonic() - start

    entry = report.files[0]
    assert entry.status == "failed"
    assert entry.attempts == 3
    assert "timed out" in (entry.error or "")
    assert elapsed < 5.0
    assert not entry.path.exists()
    assert _temp_files(tmp_path) == []


def test_other_files_continue_after_a_failure(ckan: FakeCkan, tmp_path: Path) -> None:
    ckan.file_always[ckan.path_of(TCL, CENTRELINE)] = "500"
    report = fetch_packages(tmp_path, [TCL, "neighbourhoods"], base_url=ckan.base_url, **FAST)
    assert [f.status for f in report.files] == ["failed", "downloaded", "downloaded"]
    assert not report.ok


# --------------------------------------------------------------------------- package_show


def test_package_show_500_then_success(ckan: FakeCkan, tmp_path: Path) -> None:
    ckan.api_plan[TCL] = ["500"]
    report = fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)
    assert report.ok
    assert ckan.api_requests(TCL) == 2


def test_package_show_persistent_500_raises(ckan: FakeCkan, tmp_path: Path) -> None:
    ckan.api_plan[TCL] = ["500"] * 10
    with pytest.raises(FetchError, match="HTTP 500") as info:
        fetch_packages(tmp_path, [TCL], base_url=ckan.base_url, **FAST)
    assert TCL in str(info.value)
    assert info.value.exit_code == 6
    assert ckan.api_requests(TCL) == 3
    assert ckan.file_requests() == []


def test_package_show_success_false_raises(ckan: FakeCkan, tmp_path: Path) -> None:
    ckan.api_plan["neighbourhoods"] = ["fail"]
    with pytest.raises(FetchError, match="neighbourhoods") as info:
        fetch_packages(tmp_path, [TCL, "neighbourhoods"], base_url=ckan.base_url, **FAST)
    assert "success=false" in str(info.value)
    assert ckan.api_requests("neighbourhoods") == 1  # not retried
    assert ckan.file_requests() == []  # catalogue is resolved before downloading


def test_unknown_slug_on_portal_raises(ckan: FakeCkan, tmp_path: Path) -> None:
    specs = {"gone": PackageSpec(slug="no-such-package")}
    with pytest.raises(FetchError, match="no-such-package") as info:
        fetch_packages(tmp_path, base_url=ckan.base_url, specs=specs, **FAST)
    assert "Not Found" in str(info.value)
    assert ckan.api_requests("no-such-package") == 1


def test_unknown_package_key_raises_config_error(ckan: FakeCkan, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bogus"):
        fetch_packages(tmp_path, ["watermains", "bogus"], base_url=ckan.base_url, **FAST)
    assert ckan.requests == []


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"retries": -1}, {"backoff": -1.0}, {"base_url": "ftp://example.org"}],
)
def test_bad_arguments_raise_config_error(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        fetch_packages(tmp_path, **kwargs)


def test_missing_resource_is_reported(ckan: FakeCkan, tmp_path: Path) -> None:
    package = ckan.packages["watermains"]
    package["resources"] = [
        r for r in package["resources"] if not r["name"].startswith("Transmission")
    ]
    report = fetch_packages(tmp_path, ["watermains"], base_url=ckan.base_url, **FAST)
    assert not report.ok
    missing = _entry(report, "Transmission Watermain")
    assert missing.status == "failed"
    assert "no resource matches" in (missing.error or "")
    assert _entry(report, "Distribution Watermain - 4326.geojson").status == "downloaded"


# --------------------------------------------------------------------------- safety


@pytest.mark.parametrize(
    "tail",
    ["../../evil.zip", "..%2F..%2Fevil.zip", "..%5C..%5Cevil.zip", "%2e%2e/%2e%2e/evil.zip"],
)
def test_path_traversal_is_sanitised(ckan: FakeCkan, tmp_path: Path, tail: str) -> None:
    dest = tmp_path / "dest"
    body = generated("evil", 100)
    ckan.add("evil-pkg", "Evil", "", body, "ZIP", path=f"/files/{tail}")
    specs = {"evil": PackageSpec(slug="evil-pkg")}

    report = fetch_packages(dest, base_url=ckan.base_url, specs=specs, **FAST)

    entry = report.files[0]
    assert entry.status == "downloaded", entry.error
    assert entry.path == dest / "evil-pkg" / "evil.zip"
    assert entry.path.read_bytes() == body
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and dest not in p.parents]
    assert outside == []


def test_non_http_url_is_refused(ckan: FakeCkan, tmp_path: Path) -> None:
    secret = {"id": "r1", "name": "Secrets", "url": "file:///etc/passwd", "format": "CSV"}
    ckan.packages["local"] = {"id": "p", "name": "local", "resources": [secret]}
    report = fetch_packages(
        tmp_path, base_url=ckan.base_url, specs={"local": PackageSpec(slug="local")}, **FAST
    )
    entry = report.files[0]
    assert entry.status == "failed"
    assert "unsupported URL scheme" in (entry.error or "")
    assert not entry.path.exists()


def test_custom_portal_spec_and_datastore_dump_name(ckan: FakeCkan, tmp_path: Path) -> None:
    """Another city: a spec picks the CSV dump; an extension-less URL is named after it."""
    ckan.add("roads", "Road Segments", "", b"id,geom\n1,x\n", "CSV", path="/datastore/dump/abc")
    ckan.add("roads", "Road Segments", "", b"{}", "JSON", path="/datastore/dump/abc.json")
    spec = PackageSpec(slug="roads", resources=("road*",), formats=("csv",), one_per_name=True)

    report = fetch_toronto(tmp_path, base_url=ckan.base_url, specs={"city-roads": spec}, **FAST)

    entry = report.files[0]
    assert (entry.package, entry.status) == ("city-roads", "downloaded")
    assert entry.path == tmp_path / "roads" / "Road_Segments.csv"


def test_progress_callback_reports_bytes(ckan: FakeCkan, tmp_path: Path) -> None:
    calls: list[tuple[str, int, int | None]] = []
    report = fetch_packages(
        tmp_path,
        ["neighbourhoods"],
        base_url=ckan.base_url,
        progress=lambda label, done, total: calls.append((label, done, total)),
        **FAST,
    )
    for f in report.files:
        label = f"neighbourhoods/{f.path.name}"
        mine = [c for c in calls if c[0] == label]
        assert mine[0] == (label, 0, f.bytes)
        assert mine[-1] == (label, f.bytes, f.bytes)


# --------------------------------------------------------------------------- pure helpers


def _res(name: str, fmt: str, url: str) -> CkanResource:
    return CkanResource.from_json(
        {"id": name, "name": name, "format": fmt, "url": url}, "http://x.invalid"
    )


def test_select_resources_ranks_format_then_epsg() -> None:
    spec = TORONTO_PACKAGES["neighbourhoods"]
    resources = [
        _res("Neighbourhoods - 4326.csv", "CSV", "/n-4326.csv"),
        _res("Neighbourhoods - 2952.geojson", "GeoJSON", "/n-2952.geojson"),
        _res("Neighbourhoods - historical 140 - 2952.zip", "SHP", "/h-2952.zip"),
        _res("Neighbourhoods - historical 140 - 4326.zip", "SHP", "/h-4326.zip"),
        _res("Neighbourhoods - historical 140 - 4326.csv", "CSV", "/h-4326.csv"),
        _res("Neighbourhoods readme", "XLSX", "/readme.xlsx"),
    ]
    selected, unmatched = select_resources(spec, resources)
    assert [r.name for r in selected] == [
        "Neighbourhoods - 2952.geojson",
        "Neighbourhoods - historical 140 - 4326.zip",
    ]
    assert unmatched == []
    assert selected[0].epsg == 2952
    assert selected[0].base_name == "Neighbourhoods"


def test_select_resources_take_all_filters_docs_and_formats() -> None:
    spec = TORONTO_PACKAGES["watermain-breaks"]
    resources = [
        _res("breaks.zip", "ZIP", "/breaks.zip"),
        _res("watermain-breaks-readme.xls", "XLS", "/readme.xls"),
        _res("guide", "PDF", "/guide.pdf"),
        _res("breaks", "", "/breaks.geojson"),
    ]
    selected, unmatched = select_resources(spec, resources)
    assert [r.name for r in selected] == ["breaks.zip", "breaks"]
    assert unmatched == []
    assert select_resources(spec, [])[1] == ["*"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../evil.zip", "evil.zip"),
        ("..\\..\\evil.zip", "evil.zip"),
        ("a%2F..%2F..%2Fb.csv", "b.csv"),
        ("..", "resource"),
        (".hidden", "hidden"),
        ("con.txt", "_con.txt"),
        ("Centreline - Version 2.geojson", "Centreline_-_Version_2.geojson"),
        ("x" * 300 + ".geojson", "x" * 142 + ".geojson"),
    ],
)
def test_safe_filename(raw: str, expected: str) -> None:
    assert safe_filename(raw) == expected


def test_package_spec_validation() -> None:
    with pytest.raises(ConfigError):
        PackageSpec(slug="")
    with pytest.raises(ConfigError):
        PackageSpec(slug="x", resources=())
    with pytest.raises(ConfigError):
        PackageSpec(slug="x", resources="abc")  # type: ignore[arg-type]
    assert PackageSpec(slug="x", formats=("GeoJSON",)).formats == ("geojson",)


# --------------------------------------------------------------------------- URL policy

ONE = "one"
ONE_SPEC = {ONE: PackageSpec(slug=ONE)}
BODY = generated("policy", 300_000)


def _one(fake: FakeCkan, path: str = "/files/data.bin", body: bytes = BODY, **extra: Any) -> str:
    """Package ``one`` with a single resource served by ``fake`` at ``path``; returns its URL."""
    res = fake.add(ONE, "Data", "data.bin", body, "BIN", path=path, **extra)
    return str(res["url"])


def _fetch(fake: FakeCkan, dest: Path, **kwargs: Any) -> FetchReport:
    opts = {**FAST, "retries": 1, **kwargs}
    return fetch_packages(dest, base_url=fake.base_url, specs=ONE_SPEC, **opts)


def _refused(report: FetchReport) -> str:
    (entry,) = report.files
    assert entry.status == "failed", report.to_dict()
    assert not entry.path.exists()
    assert _temp_files(entry.path.parent.parent) == []
    return entry.error or ""


def test_cross_host_redirect_is_refused(
    ckan: FakeCkan, other_host: FakeCkan, tmp_path: Path
) -> None:
    url = _one(ckan)
    other_host.files["/elsewhere.bin"] = BODY
    target = f"{other_host.base_url}/elsewhere.bin"
    ckan.redirects["/files/data.bin"] = (302, target)

    error = _refused(_fetch(ckan, tmp_path))

    assert f"redirect from {url} to {target} refused" in error
    assert "--allow-host localhost" in error
    assert other_host.requests == []  # never connected
    assert ckan.file_requests() == ["/files/data.bin"]  # refused at once, not retried


def test_redirect_to_another_port_is_refused(
    ckan: FakeCkan, other_port: FakeCkan, tmp_path: Path
) -> None:
    _one(ckan)
    other_port.files["/x.bin"] = BODY
    ckan.redirects["/files/data.bin"] = (307, f"{other_port.base_url}/x.bin")

    assert "refused" in _refused(_fetch(ckan, tmp_path))
    assert other_port.requests == []


def test_allow_listed_host_is_followed(
    ckan: FakeCkan, other_host: FakeCkan, other_port: FakeCkan, tmp_path: Path
) -> None:
    _one(ckan)
    other_host.files["/elsewhere.bin"] = BODY
    ckan.redirects["/files/data.bin"] = (302, f"{other_host.base_url}/elsewhere.bin")

    report = _fetch(ckan, tmp_path, allow_hosts=["localhost"])
    assert report.ok, report.to_dict()
    assert report.files[0].path.read_bytes() == BODY
    assert other_host.file_requests() == ["/elsewhere.bin"]

    # host:port entries allow that port only
    port = urlsplit(other_port.base_url).port
    other_port.files["/x.bin"] = BODY
    ckan.redirects["/files/data.bin"] = (301, f"{other_port.base_url}/x.bin")
    assert _fetch(ckan, tmp_path / "b", allow_hosts=[f"127.0.0.1:{port}"]).ok
    assert not _fetch(ckan, tmp_path / "c", allow_hosts=[f"127.0.0.1:{port + 1}"]).ok


@pytest.mark.parametrize("scheme", ["ftp", "file"])
def test_redirect_to_non_http_scheme_is_refused(
    ckan: FakeCkan, tmp_path: Path, scheme: str
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.3)
        _one(ckan)
        if scheme == "ftp":
            target = f"ftp://127.0.0.1:{listener.getsockname()[1]}/data.bin"
        else:
            target = "file:///etc/passwd"
        ckan.redirects["/files/data.bin"] = (302, target)

        error = _refused(_fetch(ckan, tmp_path, timeout=1.0, retries=0))

        assert f"to {target} refused" in error and f"unsupported URL scheme {scheme!r}" in error
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected to the ftp port


@pytest.mark.parametrize("location", ["/moved/data.bin", "{base}/moved/data.bin"])
def test_same_host_redirect_is_followed(ckan: FakeCkan, tmp_path: Path, location: str) -> None:
    _one(ckan)
    ckan.files["/moved/data.bin"] = BODY
    ckan.redirects["/files/data.bin"] = (302, location.format(base=ckan.base_url))

    report = _fetch(ckan, tmp_path)

    assert report.ok, report.to_dict()
    assert report.files[0].path.read_bytes() == BODY
    assert ckan.file_requests() == ["/files/data.bin", "/moved/data.bin"]


def test_resource_on_another_host_needs_the_allow_list(
    ckan: FakeCkan, other_host: FakeCkan, tmp_path: Path
) -> None:
    other_host.files["/mirror/data.bin"] = BODY
    res = ckan.add(ONE, "Data", "data.bin", BODY, "BIN", path="/unused")
    res["url"] = f"{other_host.base_url}/mirror/data.bin"

    error = _refused(_fetch(ckan, tmp_path))
    assert res["url"] in error and "not on the catalogue's host" in error
    assert "--allow-host localhost" in error
    assert other_host.requests == []

    report = _fetch(ckan, tmp_path, allow_hosts=["LOCALHOST"])
    assert report.ok, report.to_dict()
    assert report.files[0].path.read_bytes() == BODY


def test_plain_http_to_a_non_loopback_host_is_refused(ckan: FakeCkan, tmp_path: Path) -> None:
    res = ckan.add(ONE, "Data", "data.bin", BODY, "BIN", path="/unused")
    res["url"] = "http://data.example.org/data.bin"

    report = _fetch(ckan, tmp_path, allow_hosts=["data.example.org"])
    error = _refused(report)
    assert "plain http://" in error and "https://" in error
    assert report.files[0].attempts == 0  # refused before connecting

    with pytest.raises(ConfigError, match="plain http://"):
        fetch_packages(tmp_path, base_url="http://ckan.example.org", **FAST)


def test_package_show_redirect_to_another_host_raises(
    ckan: FakeCkan, other_host: FakeCkan, tmp_path: Path
) -> None:
    _one(ckan)
    api = "/api/3/action/package_show?id=one"
    ckan.redirects[api] = (302, f"{other_host.base_url}{api}")

    with pytest.raises(FetchError, match=r"redirect from .*127\.0\.0\.1.* to .*localhost.*refused"):
        _fetch(ckan, tmp_path)
    assert other_host.requests == []
    assert ckan.api_requests(ONE) == 1


def test_size_cap_from_content_length(ckan: FakeCkan, tmp_path: Path) -> None:
    url = _one(ckan, size=None)
    final = tmp_path / ONE / "data.bin"
    final.parent.mkdir(parents=True)
    final.write_bytes(b"previous")

    report = _fetch(ckan, tmp_path, max_bytes=100_000)

    (entry,) = report.files
    assert entry.status == "failed" and entry.attempts == 1  # not retried
    assert url in (entry.error or "")
    assert "300,000 bytes (Content-Length)" in (entry.error or "")
    assert "cap of 100,000 bytes" in (entry.error or "")
    assert final.read_bytes() == b"previous"
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_size_cap_while_streaming(ckan: FakeCkan, tmp_path: Path, framing: str) -> None:
    body = generated("big", 3 * 1024 * 1024)
    url = _one(ckan, body=body, size=None)
    ckan.unsized["/files/data.bin"] = framing

    error = _refused(_fetch(ckan, tmp_path, max_bytes=1_500_000))
    assert url in error and "cap of 1,500,000 bytes" in error
    assert ckan.file_requests() == ["/files/data.bin"]

    report = _fetch(ckan, tmp_path, max_bytes=len(body))  # exactly the cap: accepted
    assert report.ok, report.to_dict()
    assert report.files[0].path.read_bytes() == body


def test_size_cap_from_the_catalogue(ckan: FakeCkan, tmp_path: Path) -> None:
    _one(ckan)  # CKAN declares 300,000 bytes
    error = _refused(_fetch(ckan, tmp_path, max_bytes=1000))
    assert "CKAN declares 300,000 bytes" in error and "cap of 1,000 bytes" in error
    assert ckan.file_requests() == []


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://data.example.org/x", True),
        ("http://data.example.org/x", False),
        ("http://127.0.0.1:8000/x", True),
        ("http://127.8.9.10/x", True),
        ("http://[::1]:8000/x", True),
        ("http://localhost/x", True),
        ("http://LOCALHOST./x", True),
        ("http://localhost.example.org/x", False),
        ("http://127.0.0.1.example.org/x", False),
        ("http://10.0.0.1/x", False),
        ("ftp://127.0.0.1/x", False),
        ("file:///etc/passwd", False),
    ],
)
def test_token_only_over_https_or_loopback(url: str, allowed: bool) -> None:
    assert token_allowed(url) is allowed


def test_token_goes_to_the_catalogue_origin_only() -> None:
    policy = UrlPolicy("https://ckan.example.org", allow_hosts=["files.example.org"], token="t")
    assert policy.sends_token("https://ckan.example.org/api/3/action/package_show?id=x")
    assert policy.sends_token("https://ckan.example.org:443/dataset/x.zip")
    assert not policy.sends_token("https://files.example.org/x.zip")  # allowed, but no token
    assert not policy.sends_token("http://ckan.example.org/x.zip")  # plain http
    assert not policy.sends_token("https://ckan.example.org:8443/x.zip")  # another origin
    assert not UrlPolicy("https://ckan.example.org").sends_token("https://ckan.example.org/")
    assert "token=set" in repr(policy) and "'t'" not in repr(policy)
    loopback = UrlPolicy("http://127.0.0.1:9", token="t")
    assert loopback.sends_token("http://127.0.0.1:9/x")


def test_token_not_forwarded_to_another_host(
    ckan: FakeCkan, other_host: FakeCkan, tmp_path: Path
) -> None:
    _one(ckan)
    ckan.files["/moved/data.bin"] = BODY
    ckan.redirects["/files/data.bin"] = (302, "/moved/data.bin")

    assert _fetch(ckan, tmp_path, token="s3cret").ok
    assert {path: token for path, token in ckan.auth} == {
        "/api/3/action/package_show?id=one": "s3cret",
        "/files/data.bin": "s3cret",
        "/moved/data.bin": "s3cret",  # same origin: kept
    }

    other_host.files["/elsewhere.bin"] = BODY
    ckan.redirects["/files/data.bin"] = (302, f"{other_host.base_url}/elsewhere.bin")
    report = _fetch(ckan, tmp_path / "b", token="s3cret", allow_hosts=["localhost"])
    assert report.ok, report.to_dict()
    assert other_host.auth == [("/elsewhere.bin", None)]


@pytest.mark.parametrize(
    "kwargs",
    [{"allow_hosts": ["host/path"]}, {"allow_hosts": [""]}, {"max_bytes": 0}],
)
def test_bad_policy_arguments_raise_config_error(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        fetch_packages(tmp_path, base_url="https://ckan.example.org", **kwargs)


def test_cli_size_cap_and_refused_redirect_exit_6(
    ckan: FakeCkan, other_host: FakeCkan, tmp_path: Path
) -> None:
    from cli_helpers import error_text, flat, show, twmb

    base = ["--out", tmp_path / "out", "fetch", "toronto", "--base-url", ckan.base_url]
    base += ["--retries", "0", "--package", "neighbourhoods"]
    r = twmb(*base, "--max-bytes", "1K")
    assert r.exit_code == 6, show(r)
    assert "Traceback" not in r.stdout + r.stderr
    assert "cap of 1,024 bytes" in flat(r.stderr)

    r = twmb(*base, "--max-bytes", "lots")
    assert r.exit_code == 2 and "positive size" in r.stderr, show(r)

    api = "/api/3/action/package_show?id=neighbourhoods"
    ckan.redirects[api] = (302, f"{other_host.base_url}{api}")
    msg = error_text(twmb(*base), 6)
    assert "refused" in msg and other_host.base_url in msg and "--allow-host" in msg
    r = twmb(*base, "--allow-host", "localhost", "--json")
    assert other_host.api_requests("neighbourhoods") == 1, show(r)
