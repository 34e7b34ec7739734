"""Download open-data resources from a CKAN portal (City of Toronto by default).

The fetcher asks CKAN's ``package_show`` action for each configured package, picks the
resources named by a data-driven :class:`PackageSpec`, and streams each one to a
temporary file next to its destination while hashing it. A download only replaces the
final file (atomically, with ``fsync``) once its byte count and any checksum published by
CKAN have been verified. Transient failures (connection errors, timeouts, HTTP 429 and
5xx, truncated or corrupt bodies) are retried with deterministic exponential backoff.
Files whose CKAN fingerprint and on-disk SHA-256 are unchanged since the last run are
skipped, using a small state file in the destination folder.

Every URL, redirect and download size passes a :class:`UrlPolicy`: https only (http to
loopback), the catalogue's own origin or allow-listed hosts, a size cap per file, and the
optional API token only to the catalogue over https.

Only the standard library is used, so the fetcher works before any heavy dependency is
importable.
"""

from twmb_geo.io.ckan._http import CHUNK_SIZE, USER_AGENT
from twmb_geo.io.ckan._policy import DEFAULT_MAX_BYTES, UrlPolicy, is_loopback, token_allowed
from twmb_geo.io.ckan.catalogue import (
    CkanResource,
    PackageSpec,
    safe_filename,
    select_resources,
)
from twmb_geo.io.ckan.download import STATE_FILENAME, ProgressCallback
from twmb_geo.io.ckan.fetch import (
    FetchedFile,
    FetchReport,
    FetchStatus,
    fetch_packages,
    fetch_toronto,
)
from twmb_geo.io.ckan.toronto import TORONTO_CKAN_URL, TORONTO_PACKAGES

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_MAX_BYTES",
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
    "UrlPolicy",
    "fetch_packages",
    "fetch_toronto",
    "is_loopback",
    "safe_filename",
    "select_resources",
    "token_allowed",
]
