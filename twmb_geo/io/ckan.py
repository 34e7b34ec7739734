"""Download open-data resources from a CKAN portal (City of Toronto by default).

The fetcher asks CKAN's ``package_show`` action for each configured package, picks the
resources named by a data-driven :class:`PackageSpec`, and streams each one to a
temporary file next to its destination while hashing it. A download only replaces the
final file (atomically, with ``fsync``) once its byte count and any checksum published by
CKAN have been verified. Transient failures (connection errors, timeouts, HTTP 429 and
5xx, truncated or corrupt bodies) are retried with deterministic exponential backoff.
Files whose CKAN fingerprint and on-disk SHA-256 are unchanged since the last run are
skipped, using a small state file in the destination folder.

Only the standard library is used, so the fetcher works before any heavy dependency is
importable.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import http.client
import json
import logging
import os
import re
import secrets
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any, Final, Literal, TypeVar
from urllib.error import HTTPError, URLError
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit
from urllib.request import Request, urlopen

from twmb_geo._version import __version__
from twmb_geo.errors import ConfigError, FetchError

__all__ = [
    "CHUNK_SIZE",
    "STATE_FILENAME",
    "TORONTO_CKAN_URL",
    "TORONTO_PACKAGES",
    "USER_AGENT",
    "CkanResource",
    "FetchReport",
    "FetchStatus",
    "FetchedFile",
    "PackageSpec",
    "ProgressCallback",
    "fetch_packages",
    "fetch_toronto",
    "safe_filename",
    "select_resources",
]

log = logging.getLogger(__name__)

TORONTO_CKAN_URL: Final[str] = "https://ckan0.cf.opendata.inter.prod-toronto.ca"
"""Base URL of the City of Toronto Open Data CKAN instance."""

USER_AGENT: Final[str] = f"twmb-geo/{__version__}"
STATE_FILENAME: Final[str] = ".twmb-fetch-state.json"
CHUNK_SIZE: Final[int] = 1024 * 1024

FetchStatus = Literal["downloaded", "unchanged", "failed"]
ProgressCallback = Callable[[str, int, int | None], None]

_STATE_VERSION: Final = 1
_TMP_PREFIX: Final = ".twmb-part-"
_MAX_RETRY_AFTER: Final = 60.0
_MAX_JSON_BYTES: Final = 64 * 1024 * 1024
_MAX_FILENAME: Final = 150
_COPY_NAME: Final = re.compile(r"^(?P<base>.+) - (?P<epsg>\d{4,5})\.(?P<ext>[A-Za-z0-9]+)$")
_UNSAFE_CHARS: Final = re.compile(r"[^A-Za-z0-9._-]+")
_HEX: Final = re.compile(r"[0-9a-f]+")
_HASH_LENGTHS: Final = {"md5": 32, "sha1": 40, "sha256": 64}
_FORMAT_EXTENSIONS: Final = {"shp": "zip", "esri shapefile": "zip", "excel": "xlsx"}
_WINDOWS_RESERVED: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)

_T = TypeVar("_T")


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class PackageSpec:
    """Which resources of one CKAN package to download.

    Parameters
    ----------
    slug : str
        CKAN package name, as passed to ``package_show?id=``; also the sub-folder of the
        destination that receives the package's files.
    resources : tuple of str
        Case-insensitive shell-style patterns (``fnmatch``) matched against a resource's
        name and its base name (the name without a ``" - <EPSG>.<ext>"`` copy suffix).
        Every pattern must select at least one resource, otherwise a failed entry is
        reported.
    exclude : tuple of str
        Patterns of resources never taken (read-me files, documentation).
    formats : tuple of str
        Accepted formats, most preferred first, matched case-insensitively against the
        CKAN ``format``, the URL extension and the copy-suffix extension. Empty accepts
        every format.
    epsg : tuple of int
        Preferred coordinate reference systems of named copies, most preferred first.
    one_per_name : bool
        If true keep only the best resource per base name (format rank first, then EPSG
        rank, then catalogue order); if false keep every matching resource.
    """

    slug: str
    resources: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    epsg: tuple[int, ...] = ()
    one_per_name: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.slug, str) or not self.slug.strip():
            raise ConfigError(f"PackageSpec.slug must be a non-empty string, got {self.slug!r}")
        for name in ("resources", "exclude", "formats"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ConfigError(
                    f"PackageSpec({self.slug!r}).{name} must be a sequence of strings, "
                    f"got {value!r}"
                )
            object.__setattr__(self, name, tuple(value))
        if not self.resources:
            raise ConfigError(f"PackageSpec({self.slug!r}).resources must not be empty")
        object.__setattr__(self, "formats", tuple(f.strip().lower() for f in self.formats))
        if not all(isinstance(e, int) and not isinstance(e, bool) for e in self.epsg):
            raise ConfigError(f"PackageSpec({self.slug!r}).epsg must be integers: {self.epsg!r}")
        object.__setattr__(self, "epsg", tuple(self.epsg))


_DATA_FORMATS: Final = ("zip", "xlsx", "xls", "csv", "geojson", "json", "gpkg", "shp")
_GEO_FORMATS: Final = ("geojson", "gpkg", "shp", "zip", "json", "csv")
_DOC_PATTERNS: Final = (
    "*readme*",
    "*read me*",
    "*documentation*",
    "*data dictionary*",
    "*metadata*",
)

TORONTO_PACKAGES: Final[dict[str, PackageSpec]] = {
    "watermain-breaks": PackageSpec(
        slug="watermain-breaks",
        resources=("*",),
        exclude=_DOC_PATTERNS,
        formats=_DATA_FORMATS,
        epsg=(4326, 2952),
        one_per_name=False,
    ),
    "watermains": PackageSpec(
        slug="watermains",
        resources=("Distribution Watermain", "Transmission Watermain"),
        exclude=_DOC_PATTERNS,
        formats=_GEO_FORMATS,
        epsg=(4326, 2952),
        one_per_name=True,
    ),
    "toronto-centreline-tcl": PackageSpec(
        slug="toronto-centreline-tcl",
        resources=("Centreline - Version 2",),
        exclude=_DOC_PATTERNS,
        formats=_GEO_FORMATS,
        epsg=(4326, 2952),
        one_per_name=True,
    ),
    "neighbourhoods": PackageSpec(
        slug="neighbourhoods",
        resources=("Neighbourhoods", "Neighbourhoods - historical 140"),
        exclude=_DOC_PATTERNS,
        formats=_GEO_FORMATS,
        epsg=(4326, 2952),
        one_per_name=True,
    ),
}
"""Default Toronto packages and what to take from each."""


@dataclass(frozen=True)
class CkanResource:
    """One resource of a ``package_show`` result, normalised.

    Parameters
    ----------
    id, name, url : str
        CKAN resource id, display name and absolute download URL.
    format : str
        CKAN ``format``, lower case (may be empty).
    size : int or None
        Declared size in bytes; ``None`` when absent, not a number or not positive.
    last_modified : str or None
        ``last_modified`` (or ``metadata_modified`` when that is empty).
    hash : str
        CKAN ``hash`` field, often empty.
    datastore_active : bool
        Whether the resource is backed by the CKAN datastore.
    base_name : str
        Name without a ``" - <EPSG>.<ext>"`` copy suffix.
    epsg : int or None
        EPSG code of a named copy, else ``None``.
    copy_ext : str or None
        Extension from the copy suffix, lower case, else ``None``.
    """

    id: str
    name: str
    url: str
    format: str
    size: int | None
    last_modified: str | None
    hash: str
    datastore_active: bool
    base_name: str
    epsg: int | None
    copy_ext: str | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], base_url: str) -> CkanResource:
        """Build from one element of ``result.resources``; relative URLs resolve on ``base_url``."""
        name = str(raw.get("name") or raw.get("id") or "").strip()
        url = str(raw.get("url") or "").strip()
        if url:
            url = _quote_url(urljoin(base_url.rstrip("/") + "/", url))
        match = _COPY_NAME.match(name)
        return cls(
            id=str(raw.get("id") or ""),
            name=name,
            url=url,
            format=str(raw.get("format") or "").strip().lower(),
            size=_positive_int(raw.get("size")),
            last_modified=(
                str(raw.get("last_modified") or raw.get("metadata_modified") or "") or None
            ),
            hash=str(raw.get("hash") or "").strip(),
            datastore_active=bool(raw.get("datastore_active")),
            base_name=match["base"].strip() if match else name,
            epsg=int(match["epsg"]) if match else None,
            copy_ext=match["ext"].lower() if match else None,
        )

    @property
    def formats(self) -> frozenset[str]:
        """Every format token the resource answers to (CKAN format, extensions)."""
        tokens = {self.format, self.copy_ext or ""}
        tail = unquote(urlsplit(self.url).path).rsplit("/", 1)[-1]
        if "." in tail:
            tokens.add(tail.rsplit(".", 1)[-1].lower())
        tokens.discard("")
        return frozenset(tokens)

    def fingerprint(self) -> dict[str, Any]:
        """The catalogue fields that identify this version of the resource."""
        return {
            "url": self.url,
            "size": self.size,
            "last_modified": self.last_modified,
            "hash": self.hash,
        }


def _matches(patterns: Iterable[str], res: CkanResource) -> str | None:
    names = (res.name.casefold(), res.base_name.casefold())
    for pattern in patterns:
        folded = pattern.casefold()
        if any(fnmatch.fnmatchcase(n, folded) for n in names):
            return pattern
    return None


def _format_rank(spec: PackageSpec, res: CkanResource) -> int | None:
    if not spec.formats:
        return 0
    ranks = [spec.formats.index(f) for f in res.formats if f in spec.formats]
    return min(ranks) if ranks else None


def select_resources(
    spec: PackageSpec, resources: Sequence[CkanResource]
) -> tuple[list[CkanResource], list[str]]:
    """Apply a :class:`PackageSpec` to a package's resources.

    Parameters
    ----------
    spec : PackageSpec
        Selection rule.
    resources : sequence of CkanResource
        Resources in catalogue order.

    Returns
    -------
    selected : list of CkanResource
        Chosen resources in catalogue order, without duplicates.
    unmatched : list of str
        Patterns of ``spec.resources`` that selected nothing.
    """
    candidates: list[tuple[int, str, CkanResource]] = []
    hit: set[str] = set()
    for res in resources:
        pattern = _matches(spec.resources, res)
        if pattern is None or _matches(spec.exclude, res) is not None:
            continue
        if _format_rank(spec, res) is None:
            log.debug("%s: skipping %r (format %s not wanted)", spec.slug, res.name, res.formats)
            continue
        candidates.append((len(candidates), pattern, res))
        hit.add(pattern)
    unmatched = [p for p in spec.resources if p not in hit]
    if not spec.one_per_name:
        return [res for _, _, res in candidates], unmatched

    best: dict[str, tuple[tuple[int, int, int], CkanResource]] = {}
    for order, _, res in candidates:
        epsg_rank = spec.epsg.index(res.epsg) if res.epsg in spec.epsg else len(spec.epsg)
        key = (_format_rank(spec, res) or 0, epsg_rank, order)
        group = res.base_name.casefold()
        if group not in best or key < best[group][0]:
            best[group] = (key, res)
    chosen = sorted(best.values(), key=lambda item: item[0][2])
    return [res for _, res in chosen], unmatched


# --------------------------------------------------------------------------- file names


def safe_filename(raw: str, fallback: str = "resource") -> str:
    """Reduce ``raw`` to a single, harmless file name.

    Only the last path component survives (``/`` and ``\\`` both count as separators,
    after percent-decoding), characters outside ``[A-Za-z0-9._-]`` become ``_``, leading
    dots and dashes are stripped (no hidden files, no ``..``), Windows device names are
    prefixed, and the length is capped. An empty result becomes ``fallback``.
    """
    tail = unquote(raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_CHARS.sub("_", tail).lstrip(".-_").rstrip(". ")
    if len(name) > _MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: _MAX_FILENAME - len(ext) - 1] + "." + ext
        else:
            name = name[:_MAX_FILENAME]
    if not name or name in {".", ".."}:
        name = _UNSAFE_CHARS.sub("_", fallback).lstrip(".-_") or "resource"
    if name.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        name = "_" + name
    return name


def _target_filename(res: CkanResource) -> str:
    tail = unquote(urlsplit(res.url).path).replace("\\", "/").rsplit("/", 1)[-1]
    fallback = f"resource-{res.id}" if res.id else "resource"
    name = safe_filename(tail, fallback)
    if "." not in name:  # e.g. /datastore/dump/<id>: name it after the resource instead
        fmt = res.copy_ext or res.format
        ext = _FORMAT_EXTENSIONS.get(fmt, fmt)
        stem = safe_filename(res.name, fallback) if res.name else name
        if ext and _UNSAFE_CHARS.search(ext) is None:
            name = f"{stem}.{ext}"
    return name


def _assign_filenames(selected: Sequence[CkanResource]) -> list[tuple[CkanResource, str]]:
    used: set[str] = set()
    out: list[tuple[CkanResource, str]] = []
    for res in selected:
        name = _target_filename(res)
        if name.casefold() in used:
            stem, dot, ext = name.rpartition(".")
            if not dot:
                stem, ext = name, ""
            suffix = safe_filename(res.id[:8]) if res.id else str(len(out))
            name = f"{stem}-{suffix}{dot}{ext}"
            n = 2
            while name.casefold() in used:
                name = f"{stem}-{suffix}-{n}{dot}{ext}"
                n += 1
        used.add(name.casefold())
        out.append((res, name))
    return out


# --------------------------------------------------------------------------- reports


@dataclass
class FetchedFile:
    """Outcome for one resource.

    Parameters
    ----------
    package : str
        Package key (normally the CKAN slug).
    resource_name : str
        CKAN resource name (or the unmatched pattern for a missing resource).
    url : str
        Download URL.
    path : Path
        Final location (for a failure: where the file would have gone).
    status : {"downloaded", "unchanged", "failed"}
        What happened.
    bytes : int
        Size of the file on disk (0 for a failure).
    sha256 : str or None
        Hex SHA-256 of the file on disk, ``None`` for a failure.
    attempts : int
        HTTP attempts made (0 when skipped as unchanged).
    error : str or None
        Why it failed, naming package, resource, URL and the last cause.
    """

    package: str
    resource_name: str
    url: str
    path: Path
    status: FetchStatus
    bytes: int = 0
    sha256: str | None = None
    attempts: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "package": self.package,
            "resource_name": self.resource_name,
            "url": self.url,
            "path": str(self.path),
            "status": self.status,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "attempts": self.attempts,
            "error": self.error,
        }


@dataclass
class FetchReport:
    """Outcome of :func:`fetch_packages`: one :class:`FetchedFile` per resource."""

    files: list[FetchedFile] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return all(f.status != "failed" for f in self.files)

    @property
    def failed(self) -> list[FetchedFile]:
        """The failed entries."""
        return [f for f in self.files if f.status == "failed"]

    def counts(self) -> dict[str, int]:
        """Number of files per status."""
        out = {"downloaded": 0, "unchanged": 0, "failed": 0}
        for f in self.files:
            out[f.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "ok": self.ok,
            "counts": self.counts(),
            "files": [f.to_dict() for f in self.files],
        }


# --------------------------------------------------------------------------- HTTP plumbing


class _AttemptError(Exception):
    """One attempt failed; ``retryable`` says whether another try may help."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class _GaveUp(Exception):
    """No (more) retries: carries the last cause and the number of attempts."""

    def __init__(self, cause: _AttemptError, attempts: int):
        super().__init__(str(cause))
        self.cause = cause
        self.attempts = attempts


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number > 0 else None


def _quote_url(url: str) -> str:
    """Percent-encode characters (spaces, non-ASCII) that ``urllib`` refuses to send."""
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def _retry_after(exc: HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers is not None else None
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _MAX_RETRY_AFTER)
    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
        when = parsedate_to_datetime(value)
        return min(max(0.0, (when - datetime.now(UTC)).total_seconds()), _MAX_RETRY_AFTER)
    return None


def _classify(exc: BaseException, timeout: float) -> _AttemptError:
    """Map a network exception to a retryable or final attempt error."""
    if isinstance(exc, HTTPError):
        with contextlib.suppress(Exception):
            exc.close()  # release the connection held by the error response
        reason = f"HTTP {exc.code} {exc.reason}".rstrip()
        retryable = exc.code == 429 or exc.code >= 500
        return _AttemptError(reason, retryable=retryable, retry_after=_retry_after(exc))
    if isinstance(exc, URLError):
        cause = exc.reason
        if isinstance(cause, TimeoutError):
            return _AttemptError(f"timed out after {timeout:g} s", retryable=True)
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _AttemptError(f"TLS certificate rejected: {cause}", retryable=False)
        return _AttemptError(f"connection failed: {cause}", retryable=True)
    if isinstance(exc, TimeoutError):
        return _AttemptError(f"timed out after {timeout:g} s", retryable=True)
    if isinstance(exc, http.client.IncompleteRead):
        return _AttemptError(
            f"connection closed early ({len(exc.partial)} bytes of the chunk read)",
            retryable=True,
        )
    if isinstance(exc, http.client.HTTPException | OSError):
        return _AttemptError(f"{type(exc).__name__}: {exc}", retryable=True)
    return _AttemptError(f"{type(exc).__name__}: {exc}", retryable=False)


_NETWORK_ERRORS: Final = (OSError, http.client.HTTPException)


def _with_retries(
    operation: Callable[[], _T], *, what: str, retries: int, backoff: float
) -> tuple[_T, int]:
    """Run ``operation`` up to ``retries + 1`` times; returns its result and the attempts."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return operation(), attempt
        except _AttemptError as exc:
            if not exc.retryable or attempt > retries:
                raise _GaveUp(exc, attempt) from exc
            delay = backoff * 2 ** (attempt - 1)
            if exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            log.warning(
                "%s: attempt %d/%d failed (%s); retrying in %.2f s",
                what,
                attempt,
                retries + 1,
                exc,
                delay,
            )
            time.sleep(delay)


def _request(url: str, accept: str) -> Request:
    return Request(
        url,
        headers={"User-Agent": USER_AGENT, "Accept": accept, "Accept-Encoding": "identity"},
    )


def _content_length(headers: Any) -> int | None:
    if "chunked" in str(headers.get("Transfer-Encoding") or "").lower():
        return None
    value = headers.get("Content-Length")
    if value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number >= 0 else None


# --------------------------------------------------------------------------- package_show


def _ckan_error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            kind = error.get("__type") or "error"
            message = error.get("message") or json.dumps(error, sort_keys=True)[:200]
            return f"{kind}: {message}"
        if error:
            return str(error)[:200]
    return "success is false"


def _package_show_once(url: str, timeout: float) -> dict[str, Any]:
    try:
        with urlopen(_request(url, "application/json"), timeout=timeout) as resp:
            expected = _content_length(resp.headers)
            body = resp.read(_MAX_JSON_BYTES + 1)
    except HTTPError as exc:
        if 400 <= exc.code < 500 and exc.code != 429:
            # CKAN answers "not found"/"forbidden" with a JSON body explaining why.
            detail = f"HTTP {exc.code} {exc.reason}".rstrip()
            with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
                detail += f" ({_ckan_error_text(json.loads(exc.read(1_000_000)))})"
            raise _AttemptError(detail, retryable=False) from exc
        raise _classify(exc, timeout) from exc
    except _NETWORK_ERRORS as exc:
        raise _classify(exc, timeout) from exc
    if len(body) > _MAX_JSON_BYTES:
        raise _AttemptError(f"response larger than {_MAX_JSON_BYTES} bytes", retryable=False)
    if expected is not None and len(body) != expected:
        raise _AttemptError(
            f"truncated response: got {len(body)} of {expected} bytes", retryable=True
        )
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise _AttemptError(f"response is not JSON ({exc})", retryable=True) from exc
    if not isinstance(payload, dict) or payload.get("success") is not True:
        raise _AttemptError(
            f"CKAN returned success=false ({_ckan_error_text(payload)})", retryable=False
        )
    result = payload.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("resources"), list):
        raise _AttemptError("CKAN result has no 'resources' list", retryable=False)
    return result


def _package_show(
    base_url: str, slug: str, *, timeout: float, retries: int, backoff: float
) -> dict[str, Any]:
    url = f"{base_url.rstrip('/')}/api/3/action/package_show?{urlencode({'id': slug})}"
    log.info("package_show %s", url)
    try:
        result, _ = _with_retries(
            lambda: _package_show_once(url, timeout),
            what=f"package_show {slug}",
            retries=retries,
            backoff=backoff,
        )
    except _GaveUp as exc:
        raise FetchError(
            f"CKAN package_show failed for package {slug!r} at {url} after "
            f"{exc.attempts} attempt(s): {exc.cause}. Check the package slug and the "
            f"portal URL (--base-url), or retry later."
        ) from exc
    return result


# --------------------------------------------------------------------------- verification


def _parse_ckan_hash(value: str) -> tuple[str, str] | None:
    """Return ``(algorithm, hex digest)`` for a CKAN ``hash`` field, or ``None``."""
    text = value.strip().lower()
    if not text:
        return None
    algo, sep, digest = text.partition(":")
    if not sep:
        digest = algo
        algo = next((a for a, n in _HASH_LENGTHS.items() if n == len(digest)), "")
    algo = algo.replace("-", "")
    if (
        algo not in _HASH_LENGTHS
        or len(digest) != _HASH_LENGTHS[algo]
        or not _HEX.fullmatch(digest)
    ):
        log.warning("ignoring unrecognised CKAN hash %r", value)
        return None
    return algo, digest


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on directories
        log.debug("fsync(%s) failed: %s", path, exc)
    finally:
        os.close(fd)


def _reserve_temp(directory: Path, hint: str) -> Path:
    """Create an empty, exclusively-owned temporary file in ``directory``."""
    while True:
        path = directory / f"{_TMP_PREFIX}{hint[:60]}.{secrets.token_hex(6)}.tmp"
        try:
            with path.open("xb"):
                return path
        except FileExistsError:
            continue


def _stream_body(
    resp: IO[bytes],
    fh: IO[bytes],
    *,
    label: str,
    total: int | None,
    timeout: float,
    extra: Any,
    progress: ProgressCallback | None,
) -> tuple[int, str]:
    sha = hashlib.sha256()
    done = 0
    if progress is not None:
        progress(label, 0, total)
    while True:
        try:
            chunk = resp.read(CHUNK_SIZE)
        except _NETWORK_ERRORS as exc:
            raise _classify(exc, timeout) from exc
        if not chunk:
            break
        try:
            fh.write(chunk)
        except OSError as exc:
            raise _AttemptError(f"cannot write temporary file: {exc}", retryable=False) from exc
        sha.update(chunk)
        if extra is not None:
            extra.update(chunk)
        done += len(chunk)
        if progress is not None:
            progress(label, done, total)
    return done, sha.hexdigest()


def _download_once(
    res: CkanResource,
    tmp: Path,
    *,
    label: str,
    timeout: float,
    progress: ProgressCallback | None,
) -> tuple[int, str]:
    """One download attempt into ``tmp``; returns ``(bytes, sha256)`` once verified."""
    expected_hash = _parse_ckan_hash(res.hash)
    extra = None
    if expected_hash is not None and expected_hash[0] != "sha256":
        extra = hashlib.new(expected_hash[0], usedforsecurity=False)
    try:
        resp_cm = urlopen(_request(res.url, "*/*"), timeout=timeout)
    except _NETWORK_ERRORS as exc:
        raise _classify(exc, timeout) from exc
    try:
        with resp_cm as resp, tmp.open("wb") as fh:
            length = _content_length(resp.headers)
            done, sha256 = _stream_body(
                resp,
                fh,
                label=label,
                total=length if length is not None else res.size,
                timeout=timeout,
                extra=extra,
                progress=progress,
            )
            if length is not None and done != length:
                raise _AttemptError(
                    f"truncated download: got {done} of {length} bytes (Content-Length)",
                    retryable=True,
                )
            if res.size is not None and done != res.size:
                raise _AttemptError(
                    f"size mismatch: got {done} bytes, CKAN declares {res.size}",
                    retryable=True,
                )
            if expected_hash is not None:
                algo, want = expected_hash
                got = sha256 if extra is None else extra.hexdigest()
                if got != want:
                    raise _AttemptError(
                        f"{algo} mismatch: got {got}, CKAN declares {want}", retryable=True
                    )
            try:
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:
                raise _AttemptError(f"cannot flush temporary file: {exc}", retryable=False) from exc
    except _NETWORK_ERRORS as exc:  # opening the temp file, or closing the response
        if isinstance(exc, OSError) and exc.filename is not None:
            raise _AttemptError(f"local file error: {exc}", retryable=False) from exc
        raise _classify(exc, timeout) from exc
    return done, sha256


# --------------------------------------------------------------------------- state file


def _load_state(dest: Path) -> dict[str, dict[str, Any]]:
    path = dest / STATE_FILENAME
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable fetch state %s: %s", path, exc)
        return {}
    files = payload.get("files") if isinstance(payload, dict) else None
    if not isinstance(files, dict):
        log.warning("ignoring fetch state %s: unexpected layout", path)
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, dict)}


def _save_state(dest: Path, state: Mapping[str, Mapping[str, Any]]) -> None:
    path = dest / STATE_FILENAME
    tmp = _reserve_temp(dest, "state")
    try:
        payload = {"version": _STATE_VERSION, "files": dict(sorted(state.items()))}
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
        _fsync_dir(dest)
    except OSError as exc:
        log.warning("could not write fetch state %s: %s", path, exc)
    finally:
        tmp.unlink(missing_ok=True)


def _unchanged(
    res: CkanResource, final: Path, entry: Mapping[str, Any] | None
) -> tuple[int, str] | None:
    """Return ``(bytes, sha256)`` when ``final`` is a verified copy of this resource version."""
    if entry is None:
        return None
    fingerprint = res.fingerprint()
    if any(entry.get(k) != v for k, v in fingerprint.items()):
        return None
    if res.last_modified is None and res.size is None and not res.hash:
        return None  # the catalogue gives no way to tell a new version apart
    sha = entry.get("sha256")
    try:
        if not isinstance(sha, str) or not final.is_file():
            return None
        if entry.get("bytes") is not None and final.stat().st_size != entry.get("bytes"):
            return None
        if _sha256_file(final) != sha:
            log.info("%s changed on disk since it was fetched; downloading again", final)
            return None
        return final.stat().st_size, sha
    except OSError:
        return None


# --------------------------------------------------------------------------- orchestration


@dataclass(frozen=True)
class _Options:
    timeout: float
    retries: int
    backoff: float
    progress: ProgressCallback | None


def _fetch_one(
    package: str,
    res: CkanResource,
    filename: str,
    pkg_dir: Path,
    dest: Path,
    state: dict[str, dict[str, Any]],
    opts: _Options,
) -> FetchedFile:
    final = pkg_dir / filename
    key = f"{pkg_dir.name}/{filename}"
    label = key

    def failed(cause: str, attempts: int) -> FetchedFile:
        message = (
            f"package {package!r}, resource {res.name!r}: download of {res.url or '<no url>'} "
            f"failed after {attempts} attempt(s): {cause}"
        )
        log.error("%s", message)
        return FetchedFile(
            package, res.name, res.url, final, "failed", attempts=attempts, error=message
        )

    scheme = urlsplit(res.url).scheme.lower()
    if scheme not in {"http", "https"}:
        return failed(f"unsupported URL scheme {scheme or '(none)'!r}", 0)

    same = _unchanged(res, final, state.get(key))
    if same is not None:
        log.info("%s unchanged; skipping", key)
        return FetchedFile(package, res.name, res.url, final, "unchanged", same[0], same[1], 0)

    try:
        pkg_dir.mkdir(parents=True, exist_ok=True)
        tmp = _reserve_temp(pkg_dir, filename)
    except OSError as exc:
        return failed(f"cannot create a file in {pkg_dir}: {exc}", 0)
    try:
        log.info("downloading %s -> %s", res.url, final)
        (nbytes, sha256), attempts = _with_retries(
            lambda: _download_once(
                res, tmp, label=label, timeout=opts.timeout, progress=opts.progress
            ),
            what=f"{package}/{res.name}",
            retries=opts.retries,
            backoff=opts.backoff,
        )
        tmp.replace(final)
        _fsync_dir(pkg_dir)
    except _GaveUp as exc:
        return failed(str(exc.cause), exc.attempts)
    except OSError as exc:
        return failed(f"cannot move the verified download into place: {exc}", 1)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)

    state[key] = {
        **res.fingerprint(),
        "sha256": sha256,
        "bytes": nbytes,
        "package": package,
        "resource_id": res.id,
        "resource_name": res.name,
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _save_state(dest, state)
    log.info("downloaded %s (%d bytes, sha256 %s)", final, nbytes, sha256)
    return FetchedFile(package, res.name, res.url, final, "downloaded", nbytes, sha256, attempts)


def fetch_packages(
    dest: Path,
    packages: Sequence[str] | None = None,
    *,
    base_url: str = TORONTO_CKAN_URL,
    specs: Mapping[str, PackageSpec] = TORONTO_PACKAGES,
    timeout: float = 60.0,
    retries: int = 4,
    backoff: float = 1.0,
    progress: ProgressCallback | None = None,
) -> FetchReport:
    """Download the selected resources of CKAN packages into ``dest/<slug>/``.

    Parameters
    ----------
    dest : Path
        Destination folder (created if needed); holds the state file.
    packages : sequence of str, optional
        Keys of ``specs`` to fetch; all of them when ``None``.
    base_url : str
        CKAN portal root (``.../api/3/action`` is appended).
    specs : mapping of str to PackageSpec
        Selection rules per package key.
    timeout : float
        Socket timeout in seconds per connect/read.
    retries : int
        Extra attempts after the first for transient failures; delays are
        ``backoff * 2**n`` seconds (n = 0, 1, ...), or longer if the server sends
        ``Retry-After``.
    backoff : float
        Base delay in seconds.
    progress : callable, optional
        ``progress(label, done_bytes, total_bytes_or_None)`` called while streaming.

    Returns
    -------
    FetchReport
        One entry per selected resource; per-file failures do not raise.

    Raises
    ------
    ConfigError
        Unknown package key or invalid argument.
    FetchError
        ``package_show`` failed after retries, answered ``success: false`` or does not
        know the slug, or ``dest`` cannot be created.
    """
    if not (timeout > 0):
        raise ConfigError(f"timeout must be positive, got {timeout!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be a non-negative integer, got {retries!r}")
    if not (backoff >= 0):
        raise ConfigError(f"backoff must be >= 0, got {backoff!r}")
    if urlsplit(base_url).scheme.lower() not in {"http", "https"}:
        raise ConfigError(f"base URL must start with http:// or https://, got {base_url!r}")
    keys = list(specs) if packages is None else list(dict.fromkeys(packages))
    unknown = [k for k in keys if k not in specs]
    if unknown:
        raise ConfigError(
            f"unknown package(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(specs)) or '(none)'}"
        )

    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create download folder {dest}: {exc}") from exc

    # Resolve every catalogue entry first, so a portal problem aborts before any download.
    plans: list[tuple[str, PackageSpec, list[CkanResource]]] = []
    for key in keys:
        spec = specs[key]
        result = _package_show(
            base_url, spec.slug, timeout=timeout, retries=retries, backoff=backoff
        )
        resources = [
            CkanResource.from_json(r, base_url) for r in result["resources"] if isinstance(r, dict)
        ]
        plans.append((key, spec, resources))

    opts = _Options(timeout=timeout, retries=retries, backoff=backoff, progress=progress)
    state = _load_state(dest)
    report = FetchReport()
    for key, spec, resources in plans:
        pkg_dir = dest / safe_filename(spec.slug, fallback=safe_filename(key))
        selected, unmatched = select_resources(spec, resources)
        for pattern in unmatched:
            available = ", ".join(repr(r.name) for r in resources) or "none"
            message = (
                f"package {key!r}: no resource matches {pattern!r} with an accepted format "
                f"{list(spec.formats) or 'any'} (available: {available})"
            )
            log.error("%s", message)
            report.files.append(
                FetchedFile(key, pattern, "", pkg_dir, "failed", attempts=0, error=message)
            )
        for res, filename in _assign_filenames(selected):
            report.files.append(_fetch_one(key, res, filename, pkg_dir, dest, state, opts))
    counts = report.counts()
    log.info(
        "fetch finished: %d downloaded, %d unchanged, %d failed",
        counts["downloaded"],
        counts["unchanged"],
        counts["failed"],
    )
    return report


def fetch_toronto(
    dest: Path,
    packages: Sequence[str] | None = None,
    *,
    base_url: str = TORONTO_CKAN_URL,
    specs: Mapping[str, PackageSpec] = TORONTO_PACKAGES,
    timeout: float = 60.0,
    retries: int = 4,
    backoff: float = 1.0,
    progress: ProgressCallback | None = None,
) -> FetchReport:
    """Fetch the default City of Toronto packages; see :func:`fetch_packages`."""
    return fetch_packages(
        dest,
        packages,
        base_url=base_url,
        specs=specs,
        timeout=timeout,
        retries=retries,
        backoff=backoff,
        progress=progress,
    )
