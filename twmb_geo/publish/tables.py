"""Star tables as the targets read them: a frame, or a Parquet spool read a chunk at a time.

A fact with a row per unit and year (``fact_unit_year``: 30 million rows at 500,000 pipes)
does not fit in memory next to the rest of a large city's publish. The publish stage
writes such a table to a spool file as it is built (:class:`SpoolWriter`) and every
target reads it back a chunk at a time (:func:`chunks_of`), so the publish holds one
chunk of it, not the table. Small tables stay frames; the same functions read both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeAlias

import pandas as pd
import pyarrow.parquet as pq

from ..contracts import TableSchema, conform
from ..store.duckdb_store import arrow_schema, arrow_table

__all__ = ["CHUNK_ROWS", "SpoolWriter", "SpooledTable", "StarTable", "chunks_of", "frame_of"]

#: rows of a star table a target reads (and converts) at a time
CHUNK_ROWS = 500_000


class SpooledTable:
    """A star table in a Parquet file, conformed to its contract a chunk at a time.

    Parameters
    ----------
    path
        The Parquet file (written by :class:`SpoolWriter`, contract column types).
    schema
        The table's contract.
    rows
        Its row count.
    """

    def __init__(self, path: Path, schema: TableSchema, rows: int) -> None:
        self.path = Path(path)
        self.schema = schema
        self._rows = rows

    def __len__(self) -> int:
        return self._rows

    def __repr__(self) -> str:
        return f"SpooledTable({self.schema.name!r}, rows={self._rows}, path={str(self.path)!r})"

    @property
    def columns(self) -> list[str]:
        """The contract's columns, in order (as a frame's ``columns`` would be)."""
        return list(self.schema.columns)

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """The table in order, at most ``rows`` rows at a time, each conformed."""
        if self._rows == 0:
            yield conform(pd.DataFrame(columns=self.columns), self.schema)
            return
        with pq.ParquetFile(self.path) as f:
            for batch in f.iter_batches(batch_size=rows):
                yield conform(batch.to_pandas(date_as_object=False), self.schema)


#: a star table as the publish hands it to targets
StarTable: TypeAlias = pd.DataFrame | SpooledTable


def chunks_of(table: StarTable, rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """A star table ``rows`` rows at a time (one empty frame for an empty table)."""
    if isinstance(table, SpooledTable):
        yield from table.chunks(rows)
        return
    if table.empty:
        yield table
        return
    for start in range(0, len(table), rows):
        yield table.iloc[start : start + rows]


def frame_of(table: StarTable) -> pd.DataFrame:
    """A star table as one frame (a spooled table read whole: for small tables and tests)."""
    if isinstance(table, SpooledTable):
        return pd.concat(list(table.chunks()), ignore_index=True)
    return table


class SpoolWriter:
    """Write a star table's conformed chunks to a Parquet spool, then hand it over as a
    :class:`SpooledTable` (:meth:`close`)."""

    def __init__(self, path: Path, schema: TableSchema) -> None:
        self.path = Path(path)
        self.schema = schema
        self.rows = 0
        self._writer = pq.ParquetWriter(self.path, arrow_schema(schema))

    def add(self, df: pd.DataFrame) -> None:
        """Append a chunk (already conformed and in the table's order)."""
        if len(df):
            self._writer.write_table(arrow_table(df, self.schema))
            self.rows += len(df)

    def close(self) -> SpooledTable:
        """Finish the file; the spooled table."""
        self._writer.close()
        return SpooledTable(self.path, self.schema, self.rows)

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._writer.close()
