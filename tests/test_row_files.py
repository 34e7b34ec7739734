"""Row files: a spooled star table's canonical rows in SQLite files, copied into a Turso file
with ``INSERT ... SELECT`` instead of being bound row by row from Python."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twmb_geo.errors import PublishError
from twmb_geo.publish.base import PreparedStar, StarRows
from twmb_geo.publish.row_files import RowFile
from twmb_geo.publish.sql import star_schema
from twmb_geo.publish.turso import protocol
from twmb_geo.publish.turso.protocol import PUBLISH_COLUMN, migrate
from twmb_geo.publish.turso.session import LocalSession, TursoTarget, _insert_many, connect

TABLE = "fact_unit_year"
#: between them every contract type: text, integers, booleans, floats, dates, timestamps
TYPED_TABLES = ("dim_date", "dim_model", "fact_risk_score")

_FLOATS = st.floats(allow_nan=False, allow_infinity=False).map(
    lambda v: float(f"{v:.15g}") + 0.0  # canonical: values.py
)
#: canonical values of each contract type (text otherwise), NULL added where allowed
_VALUES = {
    "int32": st.integers(-(2**31), 2**31 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "bool": st.integers(0, 1),
    "float64": _FLOATS,
    "date": st.dates().map(lambda d: d.isoformat()),
    "timestamp": st.datetimes().map(lambda d: d.isoformat()),
}


def _value(field) -> st.SearchStrategy:
    values = _VALUES.get(field.type, st.text(max_size=12))
    return st.none() | values if field.nullable else values


def _rows(table: str, n_rows: int) -> st.SearchStrategy[list[tuple]]:
    row = st.tuples(*(_value(f) for f in star_schema(table).fields))
    return st.lists(row, min_size=n_rows, max_size=n_rows)


def _session(path: Path) -> LocalSession:
    session = connect(TursoTarget(mode="file", path=path))
    migrate(session)
    assert isinstance(session, LocalSession)
    return session


def _stored(session: LocalSession, table: str) -> list[tuple]:
    """Every row of ``table`` with each value's SQLite storage class, in rowid order."""
    cols = [*star_schema(table).columns, PUBLISH_COLUMN]
    exprs = ", ".join(f'"{c}", typeof("{c}")' for c in cols)
    return session.query(f'SELECT {exprs} FROM "{table}" ORDER BY rowid')


@pytest.mark.parametrize("table", TYPED_TABLES)
def test_copied_rows_are_the_bound_rows(table, tmp_path_factory) -> None:
    """Rows written to row files and copied equal the same rows bound directly: the same
    values, the same storage classes (an integral float stays REAL, an integer INTEGER,
    text TEXT, NULL NULL), in the same order, after rows already in the table."""
    cols = [*star_schema(table).columns, PUBLISH_COLUMN]
    tag = ("star-0123456789abcdef",)

    @settings(max_examples=12, deadline=None)
    @given(first=_rows(table, 7), second=_rows(table, 3))
    def check(first, second) -> None:
        tmp = tmp_path_factory.mktemp("rows")
        bound, copied = _session(tmp / "bound.db"), _session(tmp / "copied.db")
        try:
            for batch in (first, second):
                _insert_many(bound.conn, table, cols, [(*r, *tag) for r in batch])
            files = []
            for k, batch in enumerate((first, second)):
                with RowFile(tmp / f"part{k}.sqlite", len(cols) - 1, table) as out:
                    out.add([list(c) for c in zip(*batch, strict=True)])
                files.append(tmp / f"part{k}.sqlite")
            assert [copied.copy_rows(table, cols, f, tag) for f in files] == [7, 3]
            assert _stored(copied, table) == _stored(bound, table)
        finally:
            bound.close()
            copied.close()

    check()


def test_a_row_file_that_cannot_be_written_names_the_file_and_is_removed(tmp_path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be")
    match = r"blocked/t\.000000\.sqlite.*\(the rows of fact_x\)"
    with (
        pytest.raises(PublishError, match=match),
        RowFile(blocked / "t.000000.sqlite", 2, "fact_x"),
    ):
        pass
    path = tmp_path / "t.000001.sqlite"
    with pytest.raises(ValueError), RowFile(path, 2, "fact_x") as out:
        out.add([[1, 2], [3]])  # columns of unequal length: nothing half-written is kept
    assert not path.exists()
    with RowFile(path, 2, "fact_x") as out:
        out.add([[1, 2], ["a", None]])
    assert sqlite3.connect(path).execute("SELECT * FROM rows ORDER BY rowid").fetchall() == [
        (1, "a"),
        (2, None),
    ]


class _RowsOnly:
    """A session that cannot read row files (a server): it is sent the rows."""

    label = "server"

    def __init__(self) -> None:
        self.inserted: list[tuple] = []

    def copy_rows(self, table, columns, row_file, tag):
        return None

    def insert(self, table, columns, rows):
        self.inserted += rows

    def query(self, sql, params=()):
        return [(TABLE, len(self.inserted))]


def test_a_session_that_cannot_read_row_files_is_sent_the_rows(tmp_path, monkeypatch) -> None:
    import pandas as pd

    schema = star_schema(TABLE)
    frame = pd.DataFrame({c: pd.Series([None, None], dtype=object) for c in schema.columns})
    rows = StarRows(frame, schema)
    star = PreparedStar(
        {TABLE: rows}, {TABLE: schema.columns}, {}, "star-x", {TABLE: [tmp_path / "none"]}
    )
    monkeypatch.setattr(protocol, "STAR_TABLES", (TABLE,))
    monkeypatch.setattr(protocol, "_counts", lambda session, pid: {TABLE: len(session.inserted)})
    session = _RowsOnly()
    protocol._load(session, star, {TABLE: 2}, None)
    assert session.inserted == next(iter(rows.batches(tag=("star-x",))))
