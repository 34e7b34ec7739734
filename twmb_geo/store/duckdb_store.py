"""The local analytical store: one DuckDB file holding curated, quarantine and run tables.

Tables are created from their contracts; geometry is WKB (DuckDB extensions cannot be
downloaded here). Writing a source's rows is one transaction, so a failure leaves the store
as it was; re-writing the same source replaces its rows, so runs are idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import duckdb
import pandas as pd
import pyarrow as pa

from ..contracts import TableSchema, duckdb_type, load_schema, validate_frame
from ..core.ioerrors import describe
from ..core.units import UNIT_TYPES
from ..errors import StoreError

__all__ = ["Store", "arrow_schema", "arrow_table", "contract_of", "open_store", "quiet", "sql_text"]

log = logging.getLogger(__name__)

_ARROW = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "wkb": pa.binary(),
    "any": pa.string(),
}

_INSERT_CHUNK = 250_000

#: contract reference of every table the store knows
TABLES: dict[str, str] = {
    "breaks": "curated/breaks",
    "neighbourhoods": "curated/neighbourhoods",
    "service_area": "curated/service_area",
    "quarantine": "curated/quarantine",
    "weather_daily": "curated/weather_daily",
    "weather_monthly": "curated/weather_monthly",
    "weather_winters": "curated/weather_winters",
    "pipes": "curated/pipes",
    "street_segments": "curated/street_segments",
    **{spec.table: f"features/{spec.table}" for spec in UNIT_TYPES.values()},
    "break_links": "features/break_links",
    "pipe_cells": "features/pipe_cells",
    "pipe_streets": "features/pipe_streets",
    "graph_summary": "features/graph_summary",
    "graph_edges": "features/graph_edges",
    "panel": "features/panel",
    "moran_global": "features/moran_global",
    "lisa": "features/lisa",
    "hotspot_persistence": "features/hotspot_persistence",
    "models": "model/models",
    "cv_metrics": "model/cv_metrics",
    "feature_importance": "model/feature_importance",
    "risk_scores": "model/risk_scores",
    "simulation_city": "model/simulation_city",
    "simulation_unit": "model/simulation_unit",
    "renewal": "model/renewal",
    "runs": "store/runs",
    "run_inputs": "store/run_inputs",
    "project_crs": "store/project_crs",
}


def contract_of(table: str) -> str:
    """The contract of a store table: :data:`TABLES`, then the unit tables of the registry.

    Unit types registered after this module was imported have their table here too.
    """
    if table in TABLES:
        return TABLES[table]
    if any(spec.table == table for spec in UNIT_TYPES.values()):
        return f"features/{table}"
    known = sorted({*TABLES, *(spec.table for spec in UNIT_TYPES.values())})
    raise StoreError(f"table {table!r} has no contract; known tables: {known}")


def arrow_table(df: pd.DataFrame, schema: TableSchema) -> pa.Table:
    """A frame as an Arrow table with the contract's column types (dates as date32)."""
    arrays = []
    for f in schema.fields:
        s = df[f.name]
        if f.type == "date":
            arrays.append(pa.array(pd.to_datetime(s).dt.date, type=pa.date32(), from_pandas=True))
        elif f.type == "wkb":
            arrays.append(pa.array([None if v is None else bytes(v) for v in s], type=pa.binary()))
        else:
            arrays.append(pa.array(s, type=_ARROW[f.type], from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=arrow_schema(schema))


def arrow_schema(schema: TableSchema) -> pa.Schema:
    """The Arrow schema :func:`arrow_table` gives a contract's tables."""
    return pa.schema([pa.field(f.name, _ARROW[f.type], nullable=f.nullable) for f in schema.fields])


def frame_batches(frames: Iterable[pd.DataFrame], schema: TableSchema) -> Iterator[pa.RecordBatch]:
    """Frames as Arrow batches with the contract's types (:func:`arrow_table`), converted as
    they are read: a chunk at a time, never the whole table."""
    for df in frames:
        yield from arrow_table(df, schema).to_batches()


def stream_insert(
    con: duckdb.DuckDBPyConnection, table: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
) -> None:
    """Append a stream of batches to ``table`` with one ``INSERT``: inside a transaction
    DuckDB then writes the rows out as they come (many small INSERTs there would keep every
    row in memory until the commit)."""
    con.register("_incoming", pa.RecordBatchReader.from_batches(schema, iter(batches)))
    try:
        con.execute(f'INSERT INTO "{table}" SELECT * FROM _incoming')
    finally:
        con.unregister("_incoming")


def quiet(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """``con`` without DuckDB's progress bar, which it prints to stdout during any query
    longer than two seconds (the star's unit-year fact at 500,000 pipes): there it would
    break ``--json`` output and the summary. Progress is the CLI's to show, on stderr.

    A connection that refuses the setting is closed before the error is raised."""
    try:
        con.execute("SET enable_progress_bar = false")
    except BaseException:
        con.close()
        raise
    return con


def sql_text(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


class Store:
    """A DuckDB file with contract-shaped tables.

    Parameters
    ----------
    path
        The database file; its folder is created if needed.
    read_only
        Open without write access (several readers may share the file).
    """

    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise StoreError(
                f"store {self.path} does not exist; run `twmb ingest` or `twmb run` first"
            )
        try:
            self.con = quiet(
                duckdb.connect(
                    str(self.path),
                    read_only=read_only,
                    config={"memory_limit": "1GB", "threads": 2},
                )
            )
        except duckdb.Error as exc:
            raise StoreError(
                f"cannot open store {self.path}: {describe(exc, self.path) or exc}"
            ) from None
        self.read_only = read_only
        # views over Parquet (attach_parquet) name files under the store's folder relative
        # to it, so a store moved with its folder still finds them
        self.con.execute(f"SET file_search_path = {sql_text(str(self.path.parent.resolve()))}")

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self.con.close()

    # -- schema ---------------------------------------------------------------------------
    def table_names(self) -> list[str]:
        """Tables present in the store, sorted."""
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
        ).fetchall()
        return [r[0] for r in rows]

    def has_table(self, name: str) -> bool:
        """Whether ``name`` exists."""
        return name in self.table_names()

    def _schema(self, name: str) -> TableSchema:
        return load_schema(contract_of(name))

    def is_view(self, name: str) -> bool:
        """Whether ``name`` is a view over Parquet files (:meth:`attach_parquet`)."""
        return bool(
            self.con.execute(
                "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND schema_name = 'main'",
                [name],
            ).fetchall()[0][0]
        )

    def view_sql(self, name: str) -> str:
        """The SQL of view ``name`` ("" when ``name`` is not a view)."""
        rows = self.con.execute(
            "SELECT sql FROM duckdb_views() WHERE view_name = ? AND schema_name = 'main'", [name]
        ).fetchall()
        return str(rows[0][0]) if rows else ""

    def attach_parquet(self, name: str, files: Sequence[str]) -> int:
        """Make ``name`` a view over Parquet files in its contract's Arrow schema (as
        :func:`arrow_table` writes them), read in place instead of copied; returns its rows.

        The view casts every column to the contract's type, so readers see what the table
        would hold. The files must stay where they are while the view exists (no files: an
        empty table instead). No transaction of its own: inside :meth:`transaction` the
        view replaces the table or the earlier view atomically.
        """
        sch = self._schema(name)
        if not files:
            self.clear(name)
            return 0
        self._drop(name)
        cols = ", ".join(
            f'CAST("{f.name}" AS {duckdb_type(f.type)}) AS "{f.name}"' for f in sch.fields
        )
        listing = ", ".join(sql_text(self._relative(f)) for f in files)
        self.con.execute(f'CREATE VIEW "{name}" AS SELECT {cols} FROM read_parquet([{listing}])')
        return self.count(name)

    def _relative(self, file: str) -> str:
        """``file`` relative to the store's folder when it lies under it, else absolute."""
        path = Path(file).resolve()
        try:
            return path.relative_to(self.path.parent.resolve()).as_posix()
        except ValueError:
            return str(path)

    def _drop(self, name: str) -> None:
        kind = "VIEW" if self.is_view(name) else "TABLE"
        self.con.execute(f'DROP {kind} IF EXISTS "{name}"')

    def ensure_table(self, name: str) -> TableSchema:
        """Create ``name`` from its contract if missing; rebuild it if its columns drifted.

        A view (:meth:`attach_parquet`) is replaced by an empty table: it cannot be written.
        """
        sch = self._schema(name)
        if self.is_view(name):
            self._drop(name)
        if self.has_table(name):
            cols = [
                r[0]
                for r in self.con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                    [name],
                ).fetchall()
            ]
            if cols == sch.columns:
                return sch
            log.warning(
                "table %s does not match contract %s v%s; rebuilding it",
                name,
                contract_of(name),
                sch.version,
            )
            self.con.execute(f'DROP TABLE "{name}"')
        self.con.execute(sch.ddl(name))
        return sch

    # -- writes ---------------------------------------------------------------------------
    def _insert(self, name: str, df: pd.DataFrame) -> None:
        sch = self.ensure_table(name)
        validate_frame(df, sch)
        if df.empty:
            return
        chunks = (df.iloc[i : i + _INSERT_CHUNK] for i in range(0, len(df), _INSERT_CHUNK))
        stream_insert(self.con, name, arrow_schema(sch), frame_batches(chunks, sch))

    def insert_frames(self, name: str, frames: Iterable[pd.DataFrame]) -> int:
        """Validate and append frames as they come (a generator of chunks: memory bounded by
        a chunk, not the table), with one streaming ``INSERT``; no transaction of its own.
        Returns the rows appended."""
        sch = self.ensure_table(name)
        rows = 0

        def validated() -> Iterator[pd.DataFrame]:
            nonlocal rows
            for df in frames:
                validate_frame(df, sch)
                rows += len(df)
                yield df

        stream_insert(self.con, name, arrow_schema(sch), frame_batches(validated(), sch))
        return rows

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """All writes inside commit together or not at all."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self
        except BaseException:
            self._rollback()
            raise
        try:
            self.con.execute("COMMIT")
        except BaseException:  # disk full: the commit failed, nothing of it is in the store
            self._rollback()
            raise

    def _rollback(self) -> None:
        """Roll back whatever is open; a failure to (nothing open after a failed commit)
        must not replace the error that made the write fail."""
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error as exc:
            log.debug("rollback on %s: %s", self.path, exc)

    def replace_source(
        self, source_id: str, tables: Mapping[str, pd.DataFrame], quarantine: pd.DataFrame
    ) -> None:
        """Replace every row of ``source_id`` in ``tables`` and the quarantine, atomically."""
        for name in [*tables, "quarantine"]:
            self.ensure_table(name)
        with self.transaction():
            for name, df in tables.items():
                self.con.execute(f'DELETE FROM "{name}" WHERE source_id = ?', [source_id])
                self._insert(name, df)
            self.con.execute('DELETE FROM "quarantine" WHERE source_id = ?', [source_id])
            self._insert("quarantine", quarantine)

    def clear(self, name: str) -> None:
        """Delete every row of ``name`` (creating it from its contract if missing).

        Use inside :meth:`transaction` to replace a table with :meth:`insert` calls.
        """
        self.ensure_table(name)
        self.con.execute(f'DELETE FROM "{name}"')

    def delete(self, name: str, where: str, params: list | None = None) -> None:
        """Delete rows matching ``where`` (creating the table if missing).

        No transaction of its own: use inside :meth:`transaction` with :meth:`insert`.
        """
        self.ensure_table(name)
        self.con.execute(f'DELETE FROM "{name}" WHERE {where}', params or [])

    def execute(self, sql: str, params: list | None = None) -> None:
        """Run a write statement (e.g. an UPDATE of a flag) with bound parameters."""
        self.con.execute(sql, params or [])

    def insert(self, name: str, df: pd.DataFrame) -> None:
        """Validate ``df`` against the table's contract and append it (no transaction of its own)."""
        self._insert(name, df)

    def insert_arrow(self, name: str, batches: Iterable[pa.RecordBatch]) -> int:
        """Append Arrow batches already in the contract's columns and types (as
        :func:`arrow_table` makes them: partitions written by workers), streamed with one
        ``INSERT`` (memory bounded by a batch); no transaction of its own. Returns the rows
        appended."""
        sch = self.ensure_table(name)
        want = arrow_schema(sch)
        rows = 0
        problem: list[str] = []

        def checked() -> Iterator[pa.RecordBatch]:
            nonlocal rows
            for batch in batches:
                if not batch.schema.remove_metadata().equals(want, check_metadata=False):
                    problem.append(
                        f"rows for {name!r} do not have its contract's columns and types: "
                        f"{batch.schema.names} ({[str(t) for t in batch.schema.types]})"
                    )
                    return
                rows += batch.num_rows
                yield batch

        try:
            stream_insert(self.con, name, want, checked())
        except duckdb.Error as exc:
            raise StoreError(problem[0] if problem else f"appending to {name!r}: {exc}") from exc
        if problem:
            raise StoreError(problem[0])
        return rows

    def replace_rows(
        self, name: str, df: pd.DataFrame, where: str = "", params: list | None = None
    ) -> None:
        """Delete rows matching ``where`` (all rows if empty) and insert ``df``, atomically."""
        self.ensure_table(name)
        with self.transaction():
            self.con.execute(
                f'DELETE FROM "{name}"' + (f" WHERE {where}" if where else ""), params or []
            )
            self._insert(name, df)

    def append(self, name: str, df: pd.DataFrame) -> None:
        """Append rows (run records)."""
        self.ensure_table(name)
        with self.transaction():
            self._insert(name, df)

    # -- reads ----------------------------------------------------------------------------
    def read(
        self,
        name: str,
        where: str = "",
        params: list | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Read a table (or only some of its ``columns``) in its contract's stable order."""
        if not self.has_table(name):
            raise StoreError(f"store {self.path} has no table {name!r}; ingest its source first")
        sch = self._schema(name)
        unknown = sorted(set(columns or ()) - set(sch.columns))
        if unknown:
            raise StoreError(f"table {name!r} has no columns {unknown}")
        order = ", ".join(f'"{c}"' for c in (sch.sort_by or sch.primary_key or sch.columns[:1]))
        picked = "*" if columns is None else ", ".join(f'"{c}"' for c in columns)
        sql = (
            f'SELECT {picked} FROM "{name}"'
            + (f" WHERE {where}" if where else "")
            + f" ORDER BY {order}"
        )
        df = self.con.execute(sql, params or []).df()
        for f in sch.fields:
            if f.type == "wkb" and f.name in df:
                df[f.name] = (
                    df[f.name]
                    .astype(object)
                    .map(lambda v: None if v is None or v is pd.NA or v != v else bytes(v))
                )
        return df

    @contextmanager
    def registered(self, name: str, df: pd.DataFrame) -> Iterator[None]:
        """``df`` readable as the table ``name`` by the reads of the block (e.g. a sample of
        unit ids to read the rows of: ``unit_id IN (SELECT unit_id FROM name)``)."""
        self.con.register(name, df)
        try:
            yield
        finally:
            self.con.unregister(name)

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """Run a read query and return a frame."""
        return self.con.execute(sql, params or []).df()

    def query_chunks(
        self, sql: str, params: list | None = None, *, rows: int = _INSERT_CHUNK
    ) -> Iterator[pd.DataFrame]:
        """Run a read query and yield its result ``rows`` rows at a time, in its order (a
        result larger than memory is streamed, never held whole)."""
        relation = self.con.sql(sql, params=params or None)
        for batch in relation.to_arrow_reader(rows) if relation is not None else ():
            yield batch.to_pandas()

    def count(self, name: str) -> int:
        """Row count of a table (0 when absent)."""
        if not self.has_table(name):
            return 0
        return int(self.con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0])


def open_store(path: Path | str, *, read_only: bool = False) -> Store:
    """Open (or create) the DuckDB store at ``path``."""
    return Store(path, read_only=read_only)
