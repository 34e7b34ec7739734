"""Publish the star schema to Turso (libSQL): a local database file, or a remote database.

Three ways to reach a database, one publishing protocol:

* ``file``: a local Turso database file (no server). A publish writes a copy of the file
  (a new database for the first) with SQLite's own library, about 7 times pyturso's insert
  rate, and renames it into place when it is whole: the file in place is never written, so
  a failed publish leaves it as it was and no empty database is ever left.
* ``sync``: a remote database through ``turso.sync``: the publish is written to a local
  replica in one transaction, then pushed; a push is atomic on the server and a push that
  dies is resumed by the next publish (which reports it as a change, ``resumed``).
* ``http``: a remote database through the HTTP API Power BI reads from
  (``POST /v2/pipeline``); rows go in chunks of ``chunk_rows`` bound as one JSON parameter
  each (``json_each``), every chunk a transactional batch. About 5x faster than ``sync``.

The protocol (:func:`~.protocol.publish_tables`) makes every target atomic and idempotent for readers:
star rows carry a ``publish_id`` (a digest of the published content); they are written and
counted first, and the one-row pointer table ``twmb_current`` is switched last. Readers filter
on the pointer (:func:`twmb_geo.publish.sql.reader_sql`), so they see the previous complete
publish until the switch, whatever dies in between; the next publish deletes the leftovers of
an interrupted one and writes it again. Publishing the same content again changes nothing.
The previous publish is kept until the next one, so a paging reader mid-refresh can finish.

Schema migrations are numbered (:data:`MIGRATIONS`), idempotent and recorded in
``twmb_schema_version``; a database whose version is newer than this code is refused.
The auth token is only ever sent in the ``Authorization`` header: it is never printed,
logged or put in an error message.

Modules: :mod:`.http_session` (the HTTP API and URL helpers), :mod:`.session` (local and
``turso.sync`` sessions, :func:`connect`), :mod:`.protocol` (migrations and the pointer
protocol) and :mod:`.target` (the ``turso-file`` and ``turso`` publish targets).
"""

from __future__ import annotations

from ..base import PreparedStar, prepare_star, publish_id_for
from .http_session import remote_label
from .protocol import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
    check_version,
    migrate,
    publish_tables,
)
from .session import MODES, Session, TursoTarget, connect
from .target import TursoPublishTarget

__all__ = [
    "MIGRATIONS",
    "MODES",
    "SCHEMA_VERSION",
    "Migration",
    "PreparedStar",
    "Session",
    "TursoPublishTarget",
    "TursoTarget",
    "check_version",
    "connect",
    "migrate",
    "prepare_star",
    "publish_id_for",
    "publish_tables",
    "remote_label",
]
