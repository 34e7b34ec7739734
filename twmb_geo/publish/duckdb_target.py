"""Publish the star schema to a DuckDB file (a local analytical copy for DuckDB-aware tools).

One transaction replaces every star table and the one-row ``twmb_publish`` record, so a
reader sees the previous publish or the new one, never a mix; the same content (same
``publish_id``) is not rewritten. The first publish goes to a temporary file renamed into
place when complete, so there is never an empty or half-written file to open. A file
written by a newer star schema is refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from ..core.files import remove_dead_leftovers, sibling
from ..core.ioerrors import describe
from ..errors import PublishError, SchemaVersionError
from ..store.duckdb_store import arrow_schema, frame_batches, quiet, stream_insert
from .base import PreparedStar, TargetResult
from .sql import quote, star_schema
from .star import STAR_TABLES
from .tables import StarTable, chunks_of

__all__ = ["DuckDBTarget", "check_star_duckdb", "write_star_duckdb"]

_META = "twmb_publish"


def _current(con: duckdb.DuckDBPyConnection) -> tuple[str, int] | None:
    if not con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [_META]
    ).fetchall()[0][0]:
        return None
    got = con.execute(f'SELECT "publish_id", "schema_version" FROM "{_META}"').fetchall()
    return (str(got[0][0]), int(got[0][1])) if got else None


def _check(current: tuple[str, int] | None, path: Path, schema_version: int) -> None:
    if current and current[1] > schema_version:
        raise SchemaVersionError(
            f"{path} holds star schema version {current[1]}; this twmb_geo writes version "
            f"{schema_version}: upgrade twmb_geo before publishing to it"
        )


def _why(exc: BaseException, path: Path) -> str:
    """The cause of a failure in plain words (disk full, read-only, ...), else its text."""
    return describe(exc, at=path) or str(exc)


def check_star_duckdb(path: Path | str, schema_version: int) -> None:
    """Refuse early a DuckDB star file written by a newer schema (nothing to check if absent)."""
    path = Path(path)
    if not path.exists():
        return
    try:
        con = quiet(duckdb.connect(str(path), read_only=True))
    except duckdb.Error as exc:
        raise PublishError(f"cannot open the DuckDB file {path}: {_why(exc, path)}") from exc
    try:
        _check(_current(con), path, schema_version)
    finally:
        con.close()


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back what is open; after a failed COMMIT nothing is, and that must not replace
    the error that made the write fail."""
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


def _replace(
    con: duckdb.DuckDBPyConnection,
    tables: Mapping[str, StarTable],
    publish_id: str,
    schema_version: int,
    checksums: Mapping[str, str],
    source: str,
) -> None:
    """Replace every star table and the publish record in one transaction."""
    rows = {t: len(tables[t]) for t in STAR_TABLES}
    con.execute("BEGIN TRANSACTION")
    try:
        for t in STAR_TABLES:
            schema = star_schema(t)
            con.execute(f"DROP TABLE IF EXISTS {quote(t)}")
            con.execute(schema.ddl(t))
            # a chunk at a time: a spooled table is never read whole
            stream_insert(con, t, arrow_schema(schema), frame_batches(chunks_of(tables[t]), schema))
        con.execute(
            f'CREATE OR REPLACE TABLE "{_META}" ("publish_id" VARCHAR NOT NULL, '
            '"schema_version" INTEGER NOT NULL, "published_at" TIMESTAMP NOT NULL, '
            '"source" VARCHAR, "row_counts" VARCHAR NOT NULL, "checksums" VARCHAR NOT NULL)'
        )
        con.execute(
            f'INSERT INTO "{_META}" VALUES (?, ?, ?, ?, ?, ?)',
            [
                publish_id,
                schema_version,
                dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
                source,
                json.dumps(rows),
                json.dumps(dict(checksums)),
            ],
        )
        con.execute("COMMIT")
    except BaseException:
        _rollback(con)
        raise


def _discard(path: Path) -> None:
    """Remove a DuckDB file and its WAL."""
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


def write_star_duckdb(
    tables: Mapping[str, StarTable],
    path: Path | str,
    *,
    publish_id: str,
    schema_version: int,
    checksums: Mapping[str, str],
    source: str = "",
) -> dict[str, Any]:
    """Replace the star tables in the DuckDB file ``path`` in one transaction.

    The first publish (no file yet) is written to a temporary file beside ``path`` and
    renamed onto it when complete: a publish that fails or is killed leaves no file, or the
    temporary one that the next publish removes. Failures raise :class:`PublishError`
    naming the file and the cause (disk full, read-only, ...).
    """
    path = Path(path)
    rows = {t: len(tables[t]) for t in STAR_TABLES}
    result: dict[str, Any] = {"target": str(path), "publish_id": publish_id, "rows": rows}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_leftovers(path, ("tmp",))
    except OSError as exc:
        raise PublishError(f"cannot create the DuckDB file {path}: {_why(exc, path)}") from exc
    fresh = not path.exists()
    work = sibling(path, "tmp") if fresh else path
    unchanged = "nothing was published" if fresh else "the previous publish is unchanged"
    try:
        try:
            con = quiet(duckdb.connect(str(work)))
        except duckdb.Error as exc:
            raise PublishError(f"cannot open the DuckDB file {path}: {_why(exc, path)}") from exc
        try:
            current = _current(con)
            _check(current, path, schema_version)
            result["previous"] = current[0] if current else None
            if current and current[0] == publish_id:
                return {**result, "changed": False}
            _replace(con, tables, publish_id, schema_version, checksums, source)
            if fresh:  # everything into the file itself before it is moved in
                con.execute("CHECKPOINT")
        finally:
            con.close()
        if fresh:
            _discard(path)  # a WAL left without its file must not be replayed on this one
            work.replace(path)
    except (duckdb.Error, OSError) as exc:
        raise PublishError(
            f"publish to the DuckDB file {path} failed: {_why(exc, path)}; {unchanged}"
        ) from exc
    finally:
        if fresh:
            _discard(work)
    return {**result, "changed": True}


class DuckDBTarget:
    """The ``duckdb`` publish target: one transaction replaces every star table."""

    name = "duckdb"
    portable = True
    reads_row_files = False

    def __init__(self, path: Path, schema_version: int, *, source: str = "") -> None:
        self.path = Path(path)
        self.schema_version = schema_version
        self.source = source

    def __repr__(self) -> str:
        return f"DuckDBTarget({str(self.path)!r})"

    def check(self) -> None:
        """Refuse a file written by a newer star schema."""
        check_star_duckdb(self.path, self.schema_version)

    def write(self, tables: Mapping[str, StarTable], prepared: PreparedStar) -> TargetResult:
        """Replace the star tables unless the file holds this publish already."""
        res = write_star_duckdb(
            tables,
            self.path,
            publish_id=prepared.publish_id,
            schema_version=self.schema_version,
            checksums=prepared.checksums,
            source=self.source,
        )
        return TargetResult(
            target=self.name,
            location=res["target"],
            publish_id=res["publish_id"],
            rows=res["rows"],
            schema_version=self.schema_version,
            changed=res["changed"],
            previous=res["previous"],
        )

    def close(self) -> None:
        """Nothing to release (every call opens and closes its connection)."""
