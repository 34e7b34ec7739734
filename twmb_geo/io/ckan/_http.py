"""HTTP plumbing of the CKAN client: requests, error classification and retries."""

from __future__ import annotations

import contextlib
import http.client
import logging
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, TypeVar
from urllib.error import HTTPError, URLError
from urllib.parse import quote
from urllib.request import Request

from twmb_geo._version import __version__

log = logging.getLogger(__name__)

USER_AGENT: Final[str] = f"twmb-geo/{__version__}"
CHUNK_SIZE: Final[int] = 1024 * 1024

_MAX_RETRY_AFTER: Final = 60.0

_T = TypeVar("_T")


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
