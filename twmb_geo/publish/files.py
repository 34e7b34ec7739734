"""Publish the star schema as a folder of Parquet and/or CSV files (Power BI "Folder" source)
and TopoJSON of its polygon dimensions (Power BI's Shape Map, :mod:`.topojson`).

CSV copies are spreadsheet-safe (:func:`spreadsheet_safe`): a text cell that Excel or
LibreOffice would run as a formula is prefixed with a single quote. Parquet keeps the
true values. A spooled table's CSV is written by DuckDB from the spool (:func:`csv_sql`),
the same bytes as pandas writes (tested).

The folder is written next to its final place and swapped in with renames, so a reader
sees either the previous complete set or the new one, never a mix; a publish that fails
(disk full, read-only: a :class:`~twmb_geo.errors.PublishError` naming the file and the
cause) removes its staging folder, one that is killed leaves it to the next publish to
clear; either way the previous folder is untouched. The same store gives byte-identical
files.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..contracts import TableSchema
from ..core.compute import available_cores
from ..core.files import dead_siblings, exchange, remove_dead_leftovers, sibling
from ..core.ioerrors import NOT_A_FOLDER, describe, io_cause
from ..errors import InputDataError, PublishError
from ..store.duckdb_store import arrow_schema, quiet, sql_text
from .base import PreparedStar, TargetResult, star_schema
from .star import STAR_TABLES
from .tables import SpooledTable, StarTable, chunks_of, frame_of
from .topojson import SHAPE_MAPS, star_topojson

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "FolderTarget", "check_formats", "spreadsheet_safe", "write_star_folder"]

FORMATS = ("parquet", "csv")

#: First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
FORMULA_START = "=+-@\t\r"
_FORMULA_START = re.compile("[" + re.escape(FORMULA_START) + "]")
#: A plain decimal number (``-5``, ``+1.5``, ``-1e3``; ASCII digits, as a spreadsheet
#: reads them): left alone, a spreadsheet reads it as the same number and runs nothing.
_NUMBER_PATTERN = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUMBER = re.compile(_NUMBER_PATTERN)


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Neutralise text cells a spreadsheet would run as a formula (CSV injection).

    A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
    gets a leading single quote (``'=HYPERLINK(...)`` is shown as text, not run), as the
    OWASP guidance on CSV injection recommends. Left unchanged: numeric columns (``-5``
    stays ``-5``), missing values, non-text cells, and text that is a plain decimal
    number (``"-12.5"``, ``"+3"``, ``"-1e3"``), which a spreadsheet reads as that number.

    Parameters
    ----------
    df : pandas.DataFrame
        A table about to be written as CSV; it is not modified.

    Returns
    -------
    pandas.DataFrame
        ``df`` itself when no cell needs escaping, otherwise a copy with the escaped
        text columns replaced. Vectorised: one pass of pandas string operations per
        text column.
    """
    changed: dict[str, pd.Series] = {}
    for col in df.columns:
        s = df[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(object)
        if not (pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)):
            continue
        try:  # object columns of dates, bytes, ... have no .str
            starts = s.str.match(_FORMULA_START, na=False).astype(bool)
        except AttributeError:
            continue
        if not starts.any():
            continue
        risky = starts & ~s.str.fullmatch(_NUMBER, na=False).astype(bool)
        if risky.any():
            changed[col] = s.mask(risky, "'" + s.where(risky, ""))
    if not changed:
        return df
    out = df.copy()
    for col, values in changed.items():
        out[col] = values
    return out


def _parquet_schema(table: StarTable, name: str) -> pa.Schema:
    """The Arrow schema pandas infers for the table (a spooled table: for its first chunk),
    a column that is null there typed by the contract of star table ``name``."""
    first = next(table.chunks()) if isinstance(table, SpooledTable) else table
    schema = pa.Schema.from_pandas(first, preserve_index=False)
    contract = arrow_schema(star_schema(name))
    for i, f in enumerate(schema):
        if pa.types.is_null(f.type):
            schema = schema.set(i, f.with_type(contract.field(f.name).type))
    return schema


def _csv_text(chunk: pd.DataFrame, header: bool) -> str:
    """CSV rows of a chunk (spreadsheet-safe, CRLF, dates as YYYY-MM-DD).

    CRLF rows (RFC 4180): the csv module quotes a field holding any character of the
    line terminator, so a CR inside a cell cannot start a new row (a bare CR in an
    unquoted cell would, and the text after it could be a formula).
    """
    return str(
        spreadsheet_safe(chunk).to_csv(
            index=False, header=header, lineterminator="\r\n", date_format="%Y-%m-%d"
        )
    )


def _identifier(name: str) -> str:
    """A double-quoted column name (any name: ``publish.sql.quote`` refuses SQL keywords)."""
    return '"' + name.replace('"', '""') + '"'


def _csv_value(name: str, type_name: str) -> str:
    """SQL of one column's CSV text as :func:`_csv_text` writes it (DuckDB writes NULL as an
    empty field, and numbers as Python's shortest repr, as pandas does)."""
    col = _identifier(name)
    if type_name == "bool":
        return f"CASE WHEN {col} THEN 'True' WHEN NOT {col} THEN 'False' END"
    if type_name in ("date", "timestamp"):
        return f"strftime({col}, '%Y-%m-%d')"
    if type_name == "float64":
        return f"CASE WHEN isnan({col}) THEN NULL ELSE {col} END"
    if type_name == "string":
        # spreadsheet_safe; an empty text is an empty field (DuckDB would quote it to tell
        # it from NULL; pandas does not)
        starts = sql_text("^[" + re.escape(FORMULA_START) + "]")
        number = sql_text(_NUMBER_PATTERN)
        apostrophe = sql_text("'")
        return (
            f"CASE WHEN regexp_matches({col}, {starts}) AND NOT regexp_full_match({col}, "
            f"{number}) THEN {apostrophe} || {col} ELSE NULLIF({col}, '') END"
        )
    return col


def csv_sql(schema: TableSchema, parquet: Path | str, csv: Path | str) -> str:
    """DuckDB's ``COPY`` of a star table's Parquet file to CSV with the bytes
    :func:`_csv_text` writes for it: spreadsheet-safe text, CRLF rows, dates as
    YYYY-MM-DD, booleans as ``True`` / ``False``, missing values as empty fields."""
    values = ", ".join(
        f"{_csv_value(f.name, f.type)} AS {_identifier(f.name)}" for f in schema.fields
    )
    source = sql_text(str(parquet))
    return (
        f"COPY (SELECT {values} FROM read_parquet({source})) TO {sql_text(str(csv))} "
        "(FORMAT csv, HEADER, DELIMITER ',', QUOTE '\"', ESCAPE '\"', NEW_LINE '\r\n', "
        "COMMENT '')"
    )


def _spooled_csv(table: SpooledTable, path: Path, threads: int | None) -> None:
    """A spooled table's CSV, written by DuckDB from its spool (:func:`csv_sql`) on
    ``threads`` threads (None: every core), in the table's order."""
    con = quiet(duckdb.connect())
    try:
        con.execute(f"SET threads = {max(1, threads or available_cores())}")
        con.execute("SET preserve_insertion_order = true")
        con.execute(csv_sql(table.schema, table.path, path))
    except duckdb.Error as exc:
        if io_cause(exc) is None:
            raise
        # DuckDB's I/O errors are not OSErrors; the folder's error reads the cause from
        # the words ("Could not write file ...: File too large")
        raise OSError(str(exc)) from exc
    finally:
        con.close()


def _write_one(
    table: StarTable, name: str, path: Path, fmt: str, threads: int | None = None
) -> None:
    """One table in one format, written a chunk at a time (a spooled table is never read
    whole; a Parquet row group per chunk). The CSV of a spooled table is written by DuckDB
    on ``threads`` threads (None: one per core): the same bytes as pandas makes."""
    if fmt == "parquet":
        schema = _parquet_schema(table, name)
        with pq.ParquetWriter(path, schema, compression="zstd") as writer:
            for chunk in chunks_of(table):
                writer.write_table(pa.Table.from_pandas(chunk, schema=schema, preserve_index=False))
        return
    if isinstance(table, SpooledTable) and len(table):
        _spooled_csv(table, path, threads)
        return
    with path.open("w", encoding="utf-8", newline="") as f:
        for i, chunk in enumerate(chunks_of(table)):
            f.write(_csv_text(chunk, i == 0))


def check_formats(formats: Sequence[str]) -> None:
    """Refuse an empty or unknown list of file formats (:class:`InputDataError`)."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputDataError(f"formats must be among {list(FORMATS)}, got {list(formats)}")


def _remove_dead_leftovers(folder: Path) -> None:
    """Remove the staging and old folders of publishes whose process is gone (a killed
    publish); those of a live process (another publish to the same folder) are left alone.

    A publish killed between its two renames (where the system cannot exchange folders
    atomically) left the folder missing and the previous publish under its old name: that
    one is put back first."""
    if not folder.exists():
        dead_old = [p for p in dead_siblings(folder, ("old",)) if p.is_dir()]
        if dead_old:
            dead_old[-1].rename(folder)
            log.warning("star folder %s restored from an interrupted publish", folder)
    remove_dead_leftovers(folder, ("staging", "old"))


def write_star_folder(
    tables: Mapping[str, StarTable],
    folder: Path | str,
    *,
    formats: Sequence[str] = FORMATS,
    run_id: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Write every star table to ``folder/<format>/<table>.<ext>``, the polygon dimensions
    to ``folder/topojson/<name>.topojson``, and swap the folder in atomically.

    The CSV of a spooled table is made in ``threads`` worker processes (None: one per core
    available; 1: this process), a row group each, and written in order.

    Returns the folder, formats, rows per table and TopoJSON files (also written to
    ``manifest.json``).
    """
    check_formats(formats)
    missing = [t for t in STAR_TABLES if t not in tables]
    if missing:
        raise InputDataError(f"star tables missing from the publish: {missing}")
    folder = Path(folder)
    with _io_failure(folder, folder.parent):
        folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists() and not folder.is_dir():
        raise PublishError(
            f"publishing the star folder {folder} failed: {folder} {NOT_A_FOLDER}; move "
            "it away or choose another --folder"
        )
    _remove_dead_leftovers(folder)
    staging = sibling(folder, "staging")
    old = staging.with_name(staging.name.replace(".staging-", ".old-", 1))
    rows = {t: len(tables[t]) for t in STAR_TABLES}
    try:
        manifest = _write_staging(tables, staging, folder, formats, rows, run_id, threads)
        with _io_failure(folder, folder):
            if folder.exists() and exchange(staging, folder):
                old = staging  # the previous publish, now under the staging name
            else:
                if folder.exists():
                    folder.rename(old)
                try:
                    staging.rename(folder)
                except BaseException:
                    if old.exists() and not folder.exists():
                        old.rename(folder)  # put the previous publish back
                    raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-written left behind
        raise
    shutil.rmtree(old, ignore_errors=True)
    return {"folder": str(folder), **manifest}


@contextmanager
def _io_failure(folder: Path, path: Path) -> Iterator[None]:
    """An I/O failure writing ``path`` as a :class:`PublishError` naming the star folder, the
    file (as it will be named in the folder) and the cause."""
    try:
        yield
    except OSError as exc:
        text = describe(exc, at=path)
        if text is None:
            raise
        raise PublishError(
            f"publishing the star folder {folder} failed: {text}; the previous publish in "
            "the folder is unchanged"
        ) from exc


def _write_staging(
    tables: Mapping[str, StarTable],
    staging: Path,
    folder: Path,
    formats: Sequence[str],
    rows: dict[str, int],
    run_id: str | None,
    threads: int | None,
) -> dict[str, Any]:
    """Every file of the publish in the staging folder; I/O failures name the file as it
    will be called in ``folder``."""
    for fmt in formats:
        with _io_failure(folder, folder / fmt):
            (staging / fmt).mkdir(parents=True)
        for t in STAR_TABLES:
            with _io_failure(folder, folder / fmt / f"{t}.{fmt}"):
                _write_one(tables[t], t, staging / fmt / f"{t}.{fmt}", fmt, threads)
    shapes = star_topojson({t: frame_of(tables[t]) for t in SHAPE_MAPS})
    with _io_failure(folder, folder / "topojson"):
        (staging / "topojson").mkdir(parents=True, exist_ok=True)
    for name, text in shapes.items():
        with _io_failure(folder, folder / "topojson" / name):
            (staging / "topojson" / name).write_text(text, encoding="utf-8")
    manifest = {
        "run_id": run_id,
        "formats": list(formats),
        "rows": rows,
        "topojson": sorted(shapes),
    }
    with _io_failure(folder, folder / "manifest.json"):
        (staging / "manifest.json").write_text(
            json.dumps(manifest, indent=2) + "\n", encoding="utf-8"
        )
    return manifest


class FolderTarget:
    """The ``folder`` publish target: Parquet and/or CSV files swapped in atomically."""

    name = "folder"
    portable = True
    reads_row_files = False

    def __init__(
        self,
        folder: Path,
        formats: Sequence[str],
        schema_version: int,
        threads: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.formats = tuple(formats)
        self.schema_version = schema_version
        self.threads = threads

    def __repr__(self) -> str:
        return f"FolderTarget({str(self.folder)!r}, formats={list(self.formats)})"

    def check(self) -> None:
        """Refuse unknown formats before the star is built."""
        check_formats(self.formats)

    def write(self, tables: Mapping[str, StarTable], prepared: PreparedStar) -> TargetResult:
        """Write every table in every format; the folder is rewritten on every publish."""
        pid = prepared.publish_id
        res = write_star_folder(
            tables, self.folder, formats=self.formats, run_id=pid, threads=self.threads
        )
        return TargetResult(
            target=self.name,
            location=res["folder"],
            publish_id=pid,
            rows=res["rows"],
            schema_version=self.schema_version,
            extra={"run_id": res["run_id"], "formats": res["formats"], "topojson": res["topojson"]},
        )

    def close(self) -> None:
        """Nothing to release."""
