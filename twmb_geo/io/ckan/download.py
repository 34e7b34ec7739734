"""Verified, atomic download of one CKAN resource and the fetch state file."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Final

from twmb_geo.io.ckan._http import (
    _NETWORK_ERRORS,
    CHUNK_SIZE,
    _AttemptError,
    _classify,
    _content_length,
)
from twmb_geo.io.ckan._policy import UrlPolicy, UrlRefused
from twmb_geo.io.ckan.catalogue import CkanResource

log = logging.getLogger(__name__)

STATE_FILENAME: Final[str] = ".twmb-fetch-state.json"

ProgressCallback = Callable[[str, int, int | None], None]

_STATE_VERSION: Final = 1
_TMP_PREFIX: Final = ".twmb-part-"
_HEX: Final = re.compile(r"[0-9a-f]+")
_HASH_LENGTHS: Final = {"md5": 32, "sha1": 40, "sha256": 64}


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


def _over_cap(got: str, max_bytes: int) -> _AttemptError:
    return _AttemptError(
        f"{got}, more than the download size cap of {max_bytes:,} bytes; raise the cap "
        f"(--max-bytes, max_bytes=) if the file is expected to be this large",
        retryable=False,
    )


def _stream_body(
    resp: IO[bytes],
    fh: IO[bytes],
    *,
    label: str,
    total: int | None,
    timeout: float,
    extra: Any,
    progress: ProgressCallback | None,
    max_bytes: int,
) -> tuple[int, str]:
    """Copy ``resp`` into ``fh``, hashing it; stop once more than ``max_bytes`` arrived."""
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
        if done + len(chunk) > max_bytes:
            raise _over_cap(f"the body grew past {max_bytes:,} bytes", max_bytes)
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
    policy: UrlPolicy,
    label: str,
    timeout: float,
    progress: ProgressCallback | None,
) -> tuple[int, str]:
    """One download attempt into ``tmp``; returns ``(bytes, sha256)`` once verified.

    The URL and every redirect are checked by ``policy``; more than ``policy.max_bytes``
    (declared by ``Content-Length`` or received) stops the attempt, not retried.
    """
    expected_hash = _parse_ckan_hash(res.hash)
    extra = None
    if expected_hash is not None and expected_hash[0] != "sha256":
        extra = hashlib.new(expected_hash[0], usedforsecurity=False)
    try:
        resp_cm = policy.open(res.url, "*/*", timeout)
    except UrlRefused as exc:
        raise _AttemptError(str(exc), retryable=False) from exc
    except _NETWORK_ERRORS as exc:
        raise _classify(exc, timeout) from exc
    try:
        with resp_cm as resp, tmp.open("wb") as fh:
            length = _content_length(resp.headers)
            if length is not None and length > policy.max_bytes:
                raise _over_cap(
                    f"the server declares {length:,} bytes (Content-Length)", policy.max_bytes
                )
            done, sha256 = _stream_body(
                resp,
                fh,
                label=label,
                total=length if length is not None else res.size,
                timeout=timeout,
                extra=extra,
                progress=progress,
                max_bytes=policy.max_bytes,
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
