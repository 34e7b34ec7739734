"""A spooled star table's canonical rows as SQLite files, for a Turso file to copy whole.

A Turso file is written with SQLite's library (:mod:`~twmb_geo.publish.turso.session`).
Binding tens of millions of rows from Python there means making every row as a tuple of
canonical values, in a background process, pickled to the writer: the unit-year fact of
a 500,000-pipe city took about 85 CPU-seconds to make and 30 s to bind that way. The
checksum workers make the same canonical values already (:func:`~.values.frame_columns`),
so, when a target asks (:attr:`~.base.PublishTarget.reads_row_files`), they also write each
row group's rows to a small SQLite file of their own; the Turso file then copies each file
with one ``INSERT ... SELECT`` (SQLite to SQLite: no Python value per row).

The file's table has columns without a declared type, so a value keeps the storage class
it was bound with (integer, real, text or NULL) until the target's columns receive it, as
they would receive the same value bound directly: the same rows, the same values, in the
same order (rowid order).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ..core.ioerrors import describe, probe_write_error, sqlite_write_failed
from ..errors import PublishError
from .sql import quote

__all__ = ["ROWS_TABLE", "RowFile", "copy_rows_sql"]

#: the table of a row file
ROWS_TABLE = "rows"


def _columns(n: int) -> list[str]:
    return [f"c{i}" for i in range(n)]


class RowFile:
    """A new SQLite file at ``path`` taking the rows of ``n_columns`` columns, batch by
    batch (:meth:`add`), in order; written without a journal (it is a scratch file: a
    failed publish discards it)."""

    def __init__(self, path: Path, n_columns: int, what: str) -> None:
        self.path = Path(path)
        self.what = what
        self._n = n_columns
        self._conn: sqlite3.Connection | None = None
        self._insert = f"INSERT INTO {ROWS_TABLE} VALUES (" + ", ".join("?" * n_columns) + ")"

    def __enter__(self) -> RowFile:
        try:
            self.path.unlink(missing_ok=True)
            conn = sqlite3.connect(str(self.path))
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute(f"CREATE TABLE {ROWS_TABLE} ({', '.join(_columns(self._n))})")
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc) from exc
        self._conn = conn
        return self

    def _error(self, exc: BaseException) -> PublishError:
        why = describe(exc, at=self.path)
        if why is None and sqlite_write_failed(exc):
            system = probe_write_error(self.path)
            why = None if system is None else describe(system, at=self.path)
        why = why or f"cannot write {self.path}: {exc}"
        return PublishError(f"{why} (the rows of {self.what}); nothing was published")

    def add(self, columns: Sequence[Sequence[Any]]) -> None:
        """Append the rows these equal-length columns of canonical values make."""
        if self._conn is None:
            raise RuntimeError("RowFile.add outside its with block")
        if not columns or not len(columns[0]):
            return
        try:
            self._conn.executemany(self._insert, zip(*columns, strict=True))
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc) from exc

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if kind is None:
                conn.commit()
        except sqlite3.Error as err:
            raise self._error(err) from err
        finally:
            conn.close()
            if kind is not None:
                self.path.unlink(missing_ok=True)


def copy_rows_sql(table: str, columns: Sequence[str], n_tags: int) -> str:
    """The ``INSERT ... SELECT`` copying an attached row file (schema ``src``) into
    ``table``'s ``columns``: the file's columns in rowid order, then the last ``n_tags``
    columns bound as parameters (a publish id)."""
    cols = ", ".join(quote(c) for c in columns)
    values = ", ".join([*_columns(len(columns) - n_tags), *["?"] * n_tags])
    return (
        f"INSERT INTO {quote(table)} ({cols}) SELECT {values} FROM src.{ROWS_TABLE} ORDER BY rowid"
    )
