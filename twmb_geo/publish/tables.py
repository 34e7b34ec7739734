"""Star tables as the targets read them: a frame, or a Parquet spool read a chunk at a time.

A fact with a row per unit and year (``fact_unit_year``: 30 million rows at 500,000 pipes)
does not fit in memory next to the rest of a large city's publish. The publish stage
writes such a table to a spool file as it is built (:func:`spool_table`) and every
target reads it back a chunk at a time (:func:`chunks_of`), so the publish holds one
chunk of it, not the table. Small tables stay frames; the same functions read both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TypeAlias

import pandas as pd
import pyarrow.parquet as pq

from ..contracts import TableSchema, conform
from ..store.duckdb_store import arrow_schema, arrow_table

__all__ = [
    "CHUNK_ROWS",
    "DIMENSION_ROWS",
    "SPOOL_ROWS",
    "SpooledTable",
    "StarTable",
    "chunks_of",
    "column_of",
    "frame_of",
    "spool_table",
]

#: rows of a star table a target reads (and converts) at a time
CHUNK_ROWS = 500_000
#: units of a dimension with a row per line unit (``dim_pipe``, ``dim_street_segment``: a
#: WKT shape each) made at a time
DIMENSION_ROWS = 100_000
#: the publish spools a star table of this many rows or more to a file; smaller ones stay
#: frames (a dozen tables of under 100,000 rows are little next to one chunk)
SPOOL_ROWS = 100_000


class SpooledTable:
    """A star table in a Parquet file, conformed to its contract a chunk at a time.

    Parameters
    ----------
    path
        The Parquet file (written by :func:`spool_table`, contract column types).
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

    def column(self, name: str) -> pd.Series:
        """One column, whole, as its contract types it (the other columns are not read)."""
        one = replace(self.schema, fields=(self.schema.field(name),))
        if self._rows == 0:
            return conform(pd.DataFrame({name: []}), one)[name]
        frame = pq.read_table(self.path, columns=[name]).to_pandas(date_as_object=False)
        return conform(frame, one)[name]

    @cached_property
    def row_groups(self) -> int:
        """The file's Parquet row groups (each a chunk as written: :meth:`row_group`); read
        once, the spool being complete when the table is made."""
        if self._rows == 0:
            return 0
        with pq.ParquetFile(self.path) as f:
            return int(f.num_row_groups)

    def row_group(self, i: int) -> pd.DataFrame:
        """Row group ``i``, conformed (the row groups in order are the table in order):
        a piece another process can read by itself from the path."""
        with pq.ParquetFile(self.path) as f:
            frame = f.read_row_group(i).to_pandas(date_as_object=False)
        return conform(frame, self.schema)

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


def column_of(table: StarTable, name: str) -> pd.Series:
    """One column of a star table, whole (of a spooled table, only that column is read)."""
    if isinstance(table, SpooledTable):
        return table.column(name)
    return table[name]


def frame_of(table: StarTable) -> pd.DataFrame:
    """A star table as one frame (a spooled table read whole: for small tables and tests)."""
    if isinstance(table, SpooledTable):
        return pd.concat(list(table.chunks()), ignore_index=True)
    return table


def spool_table(
    path: Path, schema: TableSchema, chunks: Iterable[pd.DataFrame], *, min_rows: int = 0
) -> StarTable:
    """Write a star table's chunks (conformed, in the table's order) to the Parquet file
    ``path`` as they come; the spooled table.

    A table of fewer than ``min_rows`` rows is handed back as one conformed frame and no
    file is written (the chunks are held until ``min_rows`` is reached, then written).
    """
    held: list[pd.DataFrame] = []
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        for df in chunks:
            rows += len(df)
            if writer is None:
                held.append(df)
                if rows < max(min_rows, 1):
                    continue
                writer = pq.ParquetWriter(path, arrow_schema(schema))
                for frame in held:
                    if len(frame):
                        writer.write_table(arrow_table(frame, schema))
                held = []
            elif len(df):
                writer.write_table(arrow_table(df, schema))
        if writer is None and min_rows <= 0:  # no rows, but a file was asked for
            writer = pq.ParquetWriter(path, arrow_schema(schema))
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        return SpooledTable(Path(path), schema, rows)
    if not held:
        held = [pd.DataFrame(columns=schema.columns)]
    return conform(pd.concat(held, ignore_index=True), schema)
