"""The ``turso-file`` and ``turso`` publish targets: a :class:`TursoTarget` behind the protocol."""

from __future__ import annotations

from collections.abc import Mapping

from ...core.types import Progress
from ...errors import PublishError
from ..base import PreparedStar, TargetResult
from ..tables import StarTable
from .protocol import check_version, publish_tables
from .session import Session, TursoTarget, connect

__all__ = ["TursoPublishTarget"]


class TursoPublishTarget:
    """A Turso database (local file or remote) as a publish target.

    :meth:`check` opens the session and reads the schema version (an unreachable server, a
    refused token or a newer schema fails there); :meth:`write` runs the pointer protocol on
    the same session. The session holds the token; nothing outlives :meth:`close`.
    """

    #: the session :meth:`check` opened is written through: this process only
    portable = False

    def __init__(
        self, name: str, spec: TursoTarget, *, source: str = "", progress: Progress | None = None
    ) -> None:
        self.name = name
        self.spec = spec
        self.source = source
        self.progress = progress
        #: a local file copies the spooled tables from row files (SQLite to SQLite)
        self.reads_row_files = spec.mode == "file"
        self._session: Session | None = None

    def __repr__(self) -> str:
        return f"TursoPublishTarget({self.name!r}, {self.spec!r})"

    def check(self) -> None:
        """Connect and refuse a database written by a newer star schema."""
        if self._session is None:
            self._session = connect(self.spec)
        check_version(self._session)

    def write(self, tables: Mapping[str, StarTable], prepared: PreparedStar) -> TargetResult:
        """Publish ``prepared`` with the pointer protocol."""
        if self._session is None:
            raise PublishError(f"{self.spec.label}: write() before check()")
        res = publish_tables(
            self._session, tables, prepared=prepared, source=self.source, progress=self.progress
        )
        return TargetResult(
            target=self.name,
            location=res["target"],
            publish_id=res["publish_id"],
            rows=res["rows"],
            schema_version=res["schema_version"],
            changed=res["changed"],
            previous=res["previous"],
            mode=self.spec.mode,
            extra={"resumed": True} if res.get("resumed") else {},
        )

    def close(self) -> None:
        """Close the session (rolling back anything unfinished)."""
        if self._session is not None:
            session, self._session = self._session, None
            session.close()
