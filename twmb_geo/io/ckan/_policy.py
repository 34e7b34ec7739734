"""What the CKAN client may connect to: schemes, hosts, redirects, size and the token.

One :class:`UrlPolicy` per fetch decides, for every URL the client is about to open (the
catalogue, each resource, each redirect target):

- the scheme is ``https``, or ``http`` to a loopback host (``localhost``, 127.0.0.0/8,
  ``::1``); nothing else (``ftp://``, ``file://``) is ever opened;
- the URL is on the catalogue's origin (scheme, host and port of the base URL) or on an
  allow-listed host;
- the token goes in an ``Authorization`` header only to the catalogue's origin, and only
  over https or to loopback; it is an "unredirected" header, so urllib never copies it to
  a redirected request, and the redirect handler adds it back only when the new URL
  qualifies on its own.

A refusal raises :class:`UrlRefused`, which is not an ``OSError``: it is never retried.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import IO, Any, Final
from urllib.parse import urljoin, urlsplit
from urllib.request import (
    HTTPDefaultErrorHandler,
    HTTPErrorProcessor,
    HTTPHandler,
    HTTPRedirectHandler,
    HTTPSHandler,
    OpenerDirector,
    ProxyHandler,
    Request,
    UnknownHandler,
)

from twmb_geo.errors import ConfigError
from twmb_geo.io.ckan._http import _request

DEFAULT_MAX_BYTES: Final[int] = 2 * 1024**3
"""Default cap on the size of one downloaded file (2 GiB)."""

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


class UrlRefused(Exception):
    """A URL or a redirect that the :class:`UrlPolicy` forbids; never retried."""


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ``::1``).

    Parameters
    ----------
    host : str or None
        Host name or IP address, as given by ``urlsplit(url).hostname``.

    Returns
    -------
    bool
        ``True`` for ``localhost`` and loopback literals only; names that merely start
        with them (``localhost.example.org``, ``127.0.0.1.example.org``) are not.
    """
    if not host:
        return False
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def url_origin(url: str) -> Origin | None:
    """``(scheme, host, port)`` of an http(s) URL, the port defaulted; else ``None``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def token_allowed(url: str) -> bool:
    """Whether a credential may be sent to ``url`` at all: https, or http to loopback.

    Parameters
    ----------
    url : str
        The URL about to be requested.

    Returns
    -------
    bool
        ``True`` for ``https://`` URLs and for ``http://`` URLs whose host is loopback
        (:func:`is_loopback`); ``False`` for plain http to any other host and for every
        other scheme.
    """
    origin = url_origin(url)
    if origin is None:
        return False
    return origin[0] == "https" or is_loopback(origin[1])


def _parse_allowed(entries: Iterable[str]) -> frozenset[tuple[str, int | None]]:
    """Allow-list entries (``host``, ``host:port`` or a URL) as ``(host, port or None)``."""
    out: set[tuple[str, int | None]] = set()
    for raw in entries:
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(f"allowed host must be a non-empty host name, got {raw!r}")
        text = raw.strip()
        try:
            parts = urlsplit(text if "://" in text else f"//{text}")
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"allowed host {raw!r} is not a host or host:port ({exc})") from exc
        host = (parts.hostname or "").rstrip(".")
        if not host or parts.path.strip("/") or parts.query or parts.username:
            raise ConfigError(
                f"allowed host {raw!r} is not a host name, host:port or scheme://host[:port]"
            )
        out.add((host, port))
    return frozenset(out)


class _PolicyRedirectHandler(HTTPRedirectHandler):
    """Follows a redirect only where the policy allows it; moves the token explicitly."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy

    def _refuse_unless_allowed(self, old: str, new: str, fp: IO[bytes] | None) -> None:
        try:
            self.policy.check(new)
        except UrlRefused as exc:
            if fp is not None:
                fp.close()
            raise UrlRefused(f"redirect from {old} to {new} refused: {exc}") from None

    def http_error_302(self, req: Request, fp: IO[bytes], code: int, msg: str, headers: Any) -> Any:
        """Check the ``Location`` before urllib looks at it (it would follow ``ftp://``)."""
        location = headers.get("location") or headers.get("uri")
        if location:
            self._refuse_unless_allowed(req.full_url, urljoin(req.full_url, location), fp)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(
        self, req: Request, fp: IO[bytes], code: int, msg: str, headers: Any, newurl: str
    ) -> Request | None:
        """The redirected request, once the policy accepts ``newurl`` (else :class:`UrlRefused`)."""
        self._refuse_unless_allowed(req.full_url, newurl, fp)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            new.remove_header("Authorization")
            self.policy.authorise(new)
        return new


class UrlPolicy:
    """Where one fetch may connect, how much it may download, and where its token goes.

    Parameters
    ----------
    catalogue : str
        CKAN base URL; its origin (scheme, host, port) is trusted.
    allow_hosts : iterable of str
        Further trusted hosts: ``host`` (any port), ``host:port`` or ``scheme://host[:port]``
        (the scheme is ignored: http is still for loopback only). Case-insensitive.
    max_bytes : int
        Largest accepted download, in bytes.
    token : str, optional
        CKAN API token, sent as the ``Authorization`` header to the catalogue's origin
        only, and only over https or to loopback.

    Raises
    ------
    ConfigError
        The catalogue URL is not https (or http to loopback), an allow-list entry is not a
        host, or ``max_bytes`` is not a positive integer.
    """

    def __init__(
        self,
        catalogue: str,
        *,
        allow_hosts: Iterable[str] = (),
        max_bytes: int = DEFAULT_MAX_BYTES,
        token: str | None = None,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ConfigError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        origin = url_origin(catalogue)
        if origin is None:
            raise ConfigError(
                f"base URL must start with https:// (http:// only for a loopback test "
                f"server), got {catalogue!r}"
            )
        if origin[0] == "http" and not is_loopback(origin[1]):
            raise ConfigError(
                f"base URL {catalogue!r} uses plain http:// to a non-loopback host; use "
                f"https:// (http:// is accepted for localhost / 127.0.0.1 / ::1 only)"
            )
        self.catalogue = catalogue
        self.origin: Origin = origin
        self.allowed = _parse_allowed(allow_hosts)
        self.max_bytes = max_bytes
        self._token = token or None
        self._opener = OpenerDirector()
        for handler in (
            ProxyHandler(),
            UnknownHandler(),
            HTTPHandler(),
            HTTPSHandler(),
            HTTPDefaultErrorHandler(),
            _PolicyRedirectHandler(self),
            HTTPErrorProcessor(),
        ):
            self._opener.add_handler(handler)

    def __repr__(self) -> str:
        hosts = sorted(h if p is None else f"{h}:{p}" for h, p in self.allowed)
        return (
            f"UrlPolicy({self.catalogue!r}, allow_hosts={hosts}, max_bytes={self.max_bytes}, "
            f"token={'set' if self._token else None})"
        )

    def _host_allowed(self, origin: Origin) -> bool:
        return origin == self.origin or any(
            origin[1] == host and (port is None or origin[2] == port) for host, port in self.allowed
        )

    def check(self, url: str) -> None:
        """Refuse ``url`` unless the client may open it.

        Parameters
        ----------
        url : str
            Absolute URL of a catalogue call, a resource or a redirect target.

        Raises
        ------
        UrlRefused
            Not http(s), plain http to a non-loopback host, or a host other than the
            catalogue's that is not allow-listed. The message says what to do.
        """
        scheme = urlsplit(url).scheme.lower()
        origin = url_origin(url)
        if origin is None:
            if scheme in _DEFAULT_PORTS:
                raise UrlRefused(f"{url} has no valid host")
            raise UrlRefused(
                f"unsupported URL scheme {scheme or '(none)'!r} in {url}: only https:// "
                f"(and http:// to loopback) is fetched"
            )
        if origin[0] == "http" and not is_loopback(origin[1]):
            raise UrlRefused(
                f"{url} uses plain http:// to a non-loopback host; only https:// is fetched"
            )
        if not self._host_allowed(origin):
            host = origin[1] if ":" not in origin[1] else f"[{origin[1]}]"
            raise UrlRefused(
                f"{url} is not on the catalogue's host {self._origin_text()}; if you trust "
                f"{host}, allow it with --allow-host {host} (allow_hosts=[{host!r}])"
            )

    def _origin_text(self) -> str:
        scheme, host, port = self.origin
        host = host if ":" not in host else f"[{host}]"
        return f"{scheme}://{host}:{port}"

    def sends_token(self, url: str) -> bool:
        """Whether the token goes with a request to ``url``.

        Only when a token is set, ``url`` is on the catalogue's origin (scheme, host and
        port) and :func:`token_allowed` (https, or http to loopback).
        """
        return self._token is not None and token_allowed(url) and url_origin(url) == self.origin

    def authorise(self, req: Request) -> None:
        """Add the token to ``req`` as an unredirected header when :meth:`sends_token`."""
        if self._token is not None and self.sends_token(req.full_url):
            req.add_unredirected_header("Authorization", self._token)

    def open(self, url: str, accept: str, timeout: float) -> Any:
        """Check ``url`` and open it with the policy's opener (redirects checked too).

        Raises
        ------
        UrlRefused
            ``url`` or a redirect target is refused.
        urllib.error.URLError, OSError, http.client.HTTPException
            As :func:`urllib.request.urlopen`.
        """
        self.check(url)
        req = _request(url, accept)
        self.authorise(req)
        return self._opener.open(req, timeout=timeout)
