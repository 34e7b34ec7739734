"""Publish the star schema to a DuckDB file (a local analytical copy for DuckDB-aware tools).

One transaction replaces every star table and the one-row ``twmb_publish`` record, so a
reader sees the previous publish or the new one, never a mix; the same content (same
``publish_id``) is not rewritten. A file written by a newer star schema is refused.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ..errors import PublishError, SchemaVersionError
from ..store.duckdb_store import arrow_table
from .base import PreparedStar, TargetResult
from .sql import quote, star_schema
from .star import STAR_TABLES

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


def check_star_duckdb(path: Path | str, schema_version: int) -> None:
    """Refuse early a DuckDB star file written by a newer schema (nothing to check if absent)."""
    path = Path(path)
    if not path.exists():
        return
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise PublishError(f"cannot open the DuckDB file {path}: {exc}") from exc
    try:
        _check(_current(con), path, schema_version)
    finally:
        con.close()


def _replace(
    con: duckdb.DuckDBPyConnection,
    tables: Mapping[str, pd.DataFrame],
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
            con.register("_incoming", arrow_table(tables[t], schema))
            try:
                con.execute(f"INSERT INTO {quote(t)} SELECT * FROM _incoming")
            finally:
                con.unregister("_incoming")
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
        con.execute("ROLLBACK")
        raise


def write_star_duckdb(
    tables: Mapping[str, pd.DataFrame],
    path: Path | str,
    *,
    publish_id: str,
    schema_version: int,
    checksums: Mapping[str, str],
    source: str = "",
) -> dict[str, Any]:
    """Replace the star tables in the DuckDB file ``path`` in one transaction."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = {t: len(tables[t]) for t in STAR_TABLES}
    result: dict[str, Any] = {"target": str(path), "publish_id": publish_id, "rows": rows}
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise PublishError(f"cannot open the DuckDB file {path}: {exc}") from exc
    try:
        current = _current(con)
        _check(current, path, schema_version)
        result["previous"] = current[0] if current else None
        if current and current[0] == publish_id:
            return {**result, "changed": False}
        _replace(con, tables, publish_id, schema_version, checksums, source)
    except duckdb.Error as exc:
        raise PublishError(f"writing the star schema to {path} failed: {exc}") from exc
    finally:
        con.close()
    return {**result, "changed": True}


class DuckDBTarget:
    """The ``duckdb`` publish target: one transaction replaces every star table."""

    name = "duckdb"

    def __init__(self, path: Path, schema_version: int, *, source: str = "") -> None:
        self.path = Path(path)
        self.schema_version = schema_version
        self.source = source

    def __repr__(self) -> str:
        return f"DuckDBTarget({str(self.path)!r})"

    def check(self) -> None:
        """Refuse a file written by a newer star schema."""
        check_star_duckdb(self.path, self.schema_version)

    def write(self, tables: Mapping[str, pd.DataFrame], prepared: PreparedStar) -> TargetResult:
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
