"""CKAN catalogue: package specs, resources, resource selection and ``package_show``."""

from __future__ import annotations

import contextlib
import fnmatch
import http.client
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.error import HTTPError
from urllib.parse import unquote, urlencode, urljoin, urlsplit

from twmb_geo.errors import ConfigError, FetchError
from twmb_geo.io.ckan._http import (
    _NETWORK_ERRORS,
    _AttemptError,
    _classify,
    _content_length,
    _GaveUp,
    _positive_int,
    _quote_url,
    _with_retries,
)
from twmb_geo.io.ckan._policy import UrlPolicy, UrlRefused

log = logging.getLogger(__name__)

_MAX_JSON_BYTES: Final = 64 * 1024 * 1024
_MAX_FILENAME: Final = 150
_COPY_NAME: Final = re.compile(r"^(?P<base>.+) - (?P<epsg>\d{4,5})\.(?P<ext>[A-Za-z0-9]+)$")
_UNSAFE_CHARS: Final = re.compile(r"[^A-Za-z0-9._-]+")
_FORMAT_EXTENSIONS: Final = {"shp": "zip", "esri shapefile": "zip", "excel": "xlsx"}
_WINDOWS_RESERVED: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)


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


def _package_show_once(url: str, policy: UrlPolicy, timeout: float) -> dict[str, Any]:
    try:
        with policy.open(url, "application/json", timeout) as resp:
            expected = _content_length(resp.headers)
            body = resp.read(_MAX_JSON_BYTES + 1)
    except UrlRefused as exc:
        raise _AttemptError(str(exc), retryable=False) from exc
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
    base_url: str,
    slug: str,
    *,
    policy: UrlPolicy,
    timeout: float,
    retries: int,
    backoff: float,
) -> dict[str, Any]:
    url = f"{base_url.rstrip('/')}/api/3/action/package_show?{urlencode({'id': slug})}"
    log.info("package_show %s", url)
    try:
        result, _ = _with_retries(
            lambda: _package_show_once(url, policy, timeout),
            what=f"package_show {slug}",
            retries=retries,
            backoff=backoff,
        )
    except _GaveUp as exc:
        if isinstance(exc.cause.__cause__, UrlRefused):
            raise FetchError(
                f"CKAN package_show for package {slug!r} at {url} refused: {exc.cause}"
            ) from exc
        raise FetchError(
            f"CKAN package_show failed for package {slug!r} at {url} after "
            f"{exc.attempts} attempt(s): {exc.cause}. Check the package slug and the "
            f"portal URL (--base-url), or retry later."
        ) from exc
    return result
