"""What every publish target shares: the prepared star, the target protocol and its result.

A target is built from :class:`TargetOptions` by a factory registered in
:mod:`twmb_geo.publish.targets`; :func:`twmb_geo.publish.stage.publish` checks every
requested target first (:meth:`PublishTarget.check`, before the star is built), then writes
the same :class:`PreparedStar` to each (:meth:`PublishTarget.write`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from ..contracts import TableSchema
from ..core.background import background_process, run_in
from ..core.compute import jobs_plan, parallel_map
from ..core.types import Progress
from ..errors import InputDataError
from .row_files import RowFile
from .sql import safe_identifier, star_schema
from .star import STAR_TABLES
from .tables import SpooledTable, StarTable, chunks_of
from .values import RowDigests, frame_columns, frame_rows

__all__ = [
    "PreparedStar",
    "PublishTarget",
    "StarRows",
    "TargetOptions",
    "TargetResult",
    "prepare_star",
    "publish_id_for",
]


#: rows converted to canonical values at a time when a table is iterated (checksums)
ROW_BATCH = 100_000


#: a spooled table of at least this many rows has its rows made ahead in a background
#: process when a target asks (:meth:`StarRows.batches`: ``ahead``)
AHEAD_ROWS = 1_000_000
#: row groups made ahead of the one being consumed (each a Parquet row group of rows: about
#: 40 MB of Python values for 123,000 rows of the unit-year fact)
AHEAD_GROUPS = 2


#: spooled tables of fewer rows than this in all are hashed in this process: new worker
#: processes import the package first (about 2 s; the bundled city's 329,000 spooled rows
#: take 2.0 s here, 3.8 s in two new workers)
PARALLEL_CHECKSUM_ROWS = 500_000


def _row_group_rows(
    table: SpooledTable, group: int, rows: int, tag: tuple[Any, ...]
) -> list[list[tuple[Any, ...]]]:
    """Row group ``group`` of ``table`` as batches of at most ``rows`` canonical rows
    (a task of the background process)."""
    frame = table.row_group(group)
    return [
        frame_rows(frame.iloc[start : start + rows], table.schema, tag)
        for start in range(0, len(frame), rows)
    ]


def _rows_ahead(
    table: SpooledTable, rows: int, tag: tuple[Any, ...]
) -> Iterator[list[tuple[Any, ...]]]:
    """:meth:`StarRows.batches` of a spooled table, made :data:`AHEAD_GROUPS` row groups
    ahead in a background process."""
    groups = iter(range(table.row_groups))
    with background_process() as executor:
        pending: deque[Future[list[list[tuple[Any, ...]]]]] = deque(
            run_in(executor, _row_group_rows, table, g, rows, tag)
            for g in islice(groups, AHEAD_GROUPS)
        )
        while pending:
            done = pending.popleft().result()
            if (g := next(groups, None)) is not None:
                pending.append(run_in(executor, _row_group_rows, table, g, rows, tag))
            for batch in done:
                if batch:
                    yield batch
            del done


class StarRows:
    """A star table's canonical rows, made a batch at a time (:meth:`batches`) when a target
    asks for them, so a table of tens of millions of rows is never held as Python tuples."""

    def __init__(self, table: StarTable, schema: TableSchema) -> None:
        self._table = table
        self._schema = schema

    def __len__(self) -> int:
        return len(self._table)

    def batches(
        self, rows: int = ROW_BATCH, *, tag: Sequence[Any] = (), ahead: bool = False
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The rows in table order, at most ``rows`` at a time (nothing for an empty table),
        each ending with the values of ``tag``.

        ``ahead``: a spooled table of at least :data:`AHEAD_ROWS` rows has its rows made in
        a background process, a row group or two ahead of the one the caller is consuming,
        so a consumer that holds this process (a Turso load: pyturso keeps the GIL while it
        writes) does not also make the rows. The same rows in the same order; batches do
        not cross a row group.
        """
        table = self._table
        if ahead and isinstance(table, SpooledTable) and len(table) >= AHEAD_ROWS:
            yield from _rows_ahead(table, rows, tuple(tag))
            return
        for chunk in chunks_of(table, rows):
            if len(chunk):
                yield frame_rows(chunk, self._schema, tag)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for batch in self.batches():
            yield from batch


@dataclass(frozen=True)
class PreparedStar:
    """Star tables as checked, canonical rows with their checksums and publish id.

    Built once per publish (:func:`prepare_star`) and shared by every target; the rows are
    made a slice at a time (:class:`StarRows`).
    """

    rows: dict[str, StarRows]
    columns: dict[str, list[str]]
    checksums: dict[str, str]
    publish_id: str
    #: the spooled tables' rows as SQLite files, one per row group in table order
    #: (:mod:`~twmb_geo.publish.row_files`), when :func:`prepare_star` was asked for them
    row_files: dict[str, list[Path]] = field(default_factory=dict)


def publish_id_for(checksums: Mapping[str, str]) -> str:
    """The content digest naming a publish: same tables, same id."""
    h = hashlib.sha256(json.dumps(dict(sorted(checksums.items()))).encode())
    return f"star-{h.hexdigest()[:16]}"


def _row_group_digests(table: SpooledTable, group: int, rows_to: Path | None) -> RowDigests:
    """The checksum of one row group of a spooled table (a task of a worker process); its
    canonical rows also written to the row file ``rows_to`` when given."""
    frame = table.row_group(group)
    digests = RowDigests()
    out = None if rows_to is None else RowFile(rows_to, len(table.schema.fields), table.schema.name)
    with out or contextlib.nullcontext():
        for start in range(0, len(frame), ROW_BATCH):
            columns = frame_columns(frame.iloc[start : start + ROW_BATCH], table.schema)
            digests.add_columns(columns)
            if out is not None:
                out.add(columns)
    return digests


def _row_file(folder: Path, table: str, group: int) -> Path:
    return folder / f"{table}.{group:06d}.sqlite"


def _spooled_checksums(
    tables: Mapping[str, SpooledTable], threads: int | None, row_files: Mapping[str, list[Path]]
) -> dict[str, RowDigests]:
    """The checksums of spooled tables, their row groups hashed in worker processes (the
    checksum is a sum over rows, so the pieces add up to the table's in any order); in this
    process when they hold fewer than :data:`PARALLEL_CHECKSUM_ROWS` rows in all. Each row
    group's rows are also written to its file in ``row_files``, when a table has them."""
    pieces = [(t, g) for t in tables for g in range(tables[t].row_groups)]
    jobs = ((tables[t], g, row_files[t][g] if t in row_files else None) for t, g in pieces)
    out = {t: RowDigests() for t in tables}
    if sum(len(v) for v in tables.values()) < PARALLEL_CHECKSUM_ROWS:
        threads = 1
    done = parallel_map(_row_group_digests, jobs, jobs_plan(threads, len(pieces)))
    for (t, _), digests in zip(pieces, done, strict=True):
        out[t].merge(digests)
    return out


def prepare_star(
    tables: Mapping[str, StarTable],
    *,
    threads: int | None = None,
    row_files: Path | None = None,
) -> PreparedStar:
    """Check every star table against its contract (safe identifiers, column order) and turn
    it into canonical rows; :class:`InputDataError` names the table or column at fault.

    The checksums of spooled tables (the unit-year fact: tens of millions of rows) are made
    a row group at a time in ``threads`` worker processes (None: one per core available,
    :func:`~twmb_geo.core.compute.thread_plan`); the other tables' in this process. With
    ``row_files`` (an existing folder) the same workers write each row group's rows to a
    SQLite file there (:attr:`PreparedStar.row_files`, :mod:`~twmb_geo.publish.row_files`).
    """
    missing = [t for t in STAR_TABLES if t not in tables]
    if missing:
        raise InputDataError(f"star tables missing from the publish: {missing}")
    rows: dict[str, StarRows] = {}
    columns: dict[str, list[str]] = {}
    for t in STAR_TABLES:
        schema = star_schema(t)
        cols = [safe_identifier(c, what=f"column of {t}") for c in tables[t].columns]
        if cols != schema.columns:
            raise InputDataError(
                f"star table {t} has columns {cols}, its contract {schema.columns}: "
                "build it with twmb_geo.publish.build_star"
            )
        rows[t] = StarRows(tables[t], schema)
        columns[t] = cols
    spooled = {t: v for t in STAR_TABLES if isinstance(v := tables[t], SpooledTable)}
    files = (
        {}
        if row_files is None
        else {
            t: [_row_file(row_files, t, g) for g in range(v.row_groups)] for t, v in spooled.items()
        }
    )
    digests = _spooled_checksums(spooled, threads, files)
    for t in STAR_TABLES:
        if t not in digests:
            digests[t] = RowDigests()  # canonical columns made a chunk at a time, never rows
            for chunk in chunks_of(tables[t], ROW_BATCH):
                digests[t].add_columns(frame_columns(chunk, star_schema(t)))
    checksums = {t: digests[t].hexdigest() for t in STAR_TABLES}
    return PreparedStar(rows, columns, checksums, publish_id_for(checksums), files)


@dataclass(frozen=True)
class TargetOptions:
    """Everything a target factory may read: where each target goes and how.

    Parameters
    ----------
    out_dir
        The output folder (default locations live under it).
    source
        What the publish is built from (recorded by the targets that keep a log).
    schema_version
        The star schema version this code writes.
    folder, formats
        The ``folder`` target: its folder and file formats.
    duckdb_path
        The ``duckdb`` target's file.
    turso_file
        The ``turso-file`` target's database file.
    turso_url, turso_mode, token
        The remote ``turso`` target (the token is never shown in a repr).
    progress
        Progress callback of the targets that report rows as they go.
    threads
        Worker processes of the targets that convert large tables in pieces (None: one
        per core available; ``[compute] threads``).
    """

    out_dir: Path
    source: str
    schema_version: int
    folder: Path | None = None
    formats: Sequence[str] = ("parquet", "csv")
    duckdb_path: Path | None = None
    turso_file: Path | None = None
    turso_url: str | None = None
    turso_mode: str = "http"
    token: str | None = field(default=None, repr=False)
    progress: Progress | None = field(default=None, repr=False)
    threads: int | None = None


@dataclass(frozen=True)
class TargetResult:
    """What a target reports after a write.

    Parameters
    ----------
    target
        The registry name (``"folder"``, ``"duckdb"``, ...).
    location
        Where it went: a folder, a file path, or a URL without credentials.
    publish_id
        The content digest of the publish.
    rows
        Rows per star table.
    schema_version
        The star schema version written.
    changed
        False when the target already held this publish and nothing was written.
    previous
        The publish id the target held before, when it records one.
    mode
        How the target was reached (``file``, ``http``, ``sync``), when that varies.
    extra
        Target-specific keys (the folder's ``formats`` and ``run_id``).
    """

    target: str
    location: str
    publish_id: str
    rows: dict[str, int]
    schema_version: int
    changed: bool = True
    previous: str | None = None
    mode: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The plain dict ``publish()`` returns for this target."""
        out: dict[str, Any] = {
            "target": self.target,
            "location": self.location,
            "publish_id": self.publish_id,
            "schema_version": self.schema_version,
            **self.extra,
            "rows": self.rows,
            "changed": self.changed,
            "previous": self.previous,
        }
        if self.mode is not None:
            out["mode"] = self.mode
        return out


class PublishTarget(Protocol):
    """One place the star schema is published to."""

    #: the registry name
    name: str
    #: whether :meth:`write` may run in another process: the target holds settings only,
    #: nothing :meth:`check` opened (a connection, a token); such targets are written in a
    #: background process beside the others when the star is large
    portable: bool
    #: whether :meth:`write` copies the spooled tables from row files
    #: (:attr:`PreparedStar.row_files`) when the prepared star has them
    reads_row_files: bool

    def check(self) -> None:
        """Fail fast, before the star is built: unreachable, token refused, newer schema."""
        ...

    def write(self, tables: Mapping[str, StarTable], prepared: PreparedStar) -> TargetResult:
        """Write the prepared star atomically; raise :class:`~twmb_geo.errors.PublishError`."""
        ...

    def close(self) -> None:
        """Release connections (called whatever happened)."""
        ...
