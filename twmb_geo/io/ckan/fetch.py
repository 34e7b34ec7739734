"""Fetch orchestration: resolve packages, download their resources, report."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from twmb_geo.errors import ConfigError, FetchError
from twmb_geo.io.ckan._http import _GaveUp, _with_retries
from twmb_geo.io.ckan._policy import DEFAULT_MAX_BYTES, UrlPolicy, UrlRefused
from twmb_geo.io.ckan.catalogue import (
    CkanResource,
    PackageSpec,
    _assign_filenames,
    _package_show,
    safe_filename,
    select_resources,
)
from twmb_geo.io.ckan.download import (
    ProgressCallback,
    _download_once,
    _fsync_dir,
    _load_state,
    _reserve_temp,
    _save_state,
    _unchanged,
)
from twmb_geo.io.ckan.toronto import TORONTO_CKAN_URL, TORONTO_PACKAGES

log = logging.getLogger(__name__)

FetchStatus = Literal["downloaded", "unchanged", "failed"]


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


@dataclass(frozen=True)
class _Options:
    timeout: float
    retries: int
    backoff: float
    progress: ProgressCallback | None
    policy: UrlPolicy


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

    try:
        opts.policy.check(res.url)
    except UrlRefused as exc:
        return failed(str(exc), 0)
    if res.size is not None and res.size > opts.policy.max_bytes:
        return failed(
            f"CKAN declares {res.size:,} bytes, more than the download size cap of "
            f"{opts.policy.max_bytes:,} bytes; raise the cap (--max-bytes, max_bytes=) if "
            f"the file is expected to be this large",
            0,
        )

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
                res,
                tmp,
                policy=opts.policy,
                label=label,
                timeout=opts.timeout,
                progress=opts.progress,
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


def _check_arguments(
    packages: Sequence[str] | None,
    specs: Mapping[str, PackageSpec],
    timeout: float,
    retries: int,
    backoff: float,
) -> list[str]:
    """Validate the arguments of :func:`fetch_packages`; returns the package keys."""
    if not (timeout > 0):
        raise ConfigError(f"timeout must be positive, got {timeout!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be a non-negative integer, got {retries!r}")
    if not (backoff >= 0):
        raise ConfigError(f"backoff must be >= 0, got {backoff!r}")
    keys = list(specs) if packages is None else list(dict.fromkeys(packages))
    unknown = [k for k in keys if k not in specs]
    if unknown:
        raise ConfigError(
            f"unknown package(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(specs)) or '(none)'}"
        )
    return keys


def _resolve(
    keys: Sequence[str],
    base_url: str,
    specs: Mapping[str, PackageSpec],
    *,
    policy: UrlPolicy,
    timeout: float,
    retries: int,
    backoff: float,
) -> list[tuple[str, PackageSpec, list[CkanResource]]]:
    """Read every package's catalogue entry, so a portal problem aborts before any download."""
    plans: list[tuple[str, PackageSpec, list[CkanResource]]] = []
    for key in keys:
        spec = specs[key]
        result = _package_show(
            base_url,
            spec.slug,
            policy=policy,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )
        resources = [
            CkanResource.from_json(r, base_url) for r in result["resources"] if isinstance(r, dict)
        ]
        plans.append((key, spec, resources))
    return plans


def _unmatched(
    key: str,
    spec: PackageSpec,
    pattern: str,
    resources: Sequence[CkanResource],
    pkg_dir: Path,
) -> FetchedFile:
    """The failed entry for a resource pattern that selected nothing."""
    available = ", ".join(repr(r.name) for r in resources) or "none"
    message = (
        f"package {key!r}: no resource matches {pattern!r} with an accepted format "
        f"{list(spec.formats) or 'any'} (available: {available})"
    )
    log.error("%s", message)
    return FetchedFile(key, pattern, "", pkg_dir, "failed", attempts=0, error=message)


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
    allow_hosts: Iterable[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    token: str | None = None,
) -> FetchReport:
    """Download the selected resources of CKAN packages into ``dest/<slug>/``.

    Only https URLs are opened (http only to a loopback host: ``localhost``, 127.0.0.0/8,
    ``::1``), only on the catalogue's origin (scheme, host and port of ``base_url``) or an
    allow-listed host, and redirects are followed under the same rules: a resource or a
    redirect elsewhere fails that file, naming both URLs.

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
    allow_hosts : iterable of str
        Hosts besides the catalogue's that resources and redirects may point to:
        ``host`` (any port), ``host:port`` or ``https://host[:port]``.
    max_bytes : int
        Largest accepted file, in bytes (default 2 GiB): checked against the CKAN size
        and ``Content-Length`` before downloading and while streaming; a larger file
        fails (not retried) and its partial copy is removed.
    token : str, optional
        CKAN API token, sent as the ``Authorization`` header only to the catalogue's
        origin over https (or to loopback), never to another host or on a redirect to
        another host.

    Returns
    -------
    FetchReport
        One entry per selected resource; per-file failures do not raise.

    Raises
    ------
    ConfigError
        Unknown package key or invalid argument (including a base URL that is not https,
        or http to loopback).
    FetchError
        ``package_show`` failed after retries, answered ``success: false``, does not
        know the slug or was redirected where the rules above refuse, or ``dest`` cannot
        be created.
    """
    keys = _check_arguments(packages, specs, timeout, retries, backoff)
    policy = UrlPolicy(base_url, allow_hosts=allow_hosts, max_bytes=max_bytes, token=token)
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create download folder {dest}: {exc}") from exc

    plans = _resolve(
        keys, base_url, specs, policy=policy, timeout=timeout, retries=retries, backoff=backoff
    )
    opts = _Options(
        timeout=timeout, retries=retries, backoff=backoff, progress=progress, policy=policy
    )
    state = _load_state(dest)
    report = FetchReport()
    for key, spec, resources in plans:
        pkg_dir = dest / safe_filename(spec.slug, fallback=safe_filename(key))
        selected, unmatched = select_resources(spec, resources)
        for pattern in unmatched:
            report.files.append(_unmatched(key, spec, pattern, resources, pkg_dir))
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
    allow_hosts: Iterable[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    token: str | None = None,
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
        allow_hosts=allow_hosts,
        max_bytes=max_bytes,
        token=token,
    )
