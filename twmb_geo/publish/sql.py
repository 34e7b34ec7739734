"""SQL for the star schema in SQLite-dialect databases (Turso / libSQL): DDL, reader queries.

Every star table lives in the database with one extra column, ``publish_id``: the publish
that wrote the row. The table ``twmb_current`` holds one row, the ``publish_id`` readers must
see; a publish writes its rows first and switches that pointer last, so a reader that filters
on it (:func:`reader_sql`, which the Power Query scripts send as is) only ever sees complete
publishes. Identifiers come from the contracts and are checked (:func:`safe_identifier`);
values are always bound as parameters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..contracts import TableSchema, load_schema
from ..errors import InputDataError

__all__ = [
    "CURRENT_SQL",
    "CURRENT_TABLE",
    "PUBLISH_COLUMN",
    "ROW_COLUMN",
    "RUNS_TABLE",
    "SCHEMA_TABLE",
    "quote",
    "reader_sql",
    "safe_identifier",
    "star_schema",
]

#: the column every published star row carries: the publish that wrote it
PUBLISH_COLUMN = "publish_id"
#: one-row pointer to the publish readers see
CURRENT_TABLE = "twmb_current"
#: one row per publish (status loading | complete | superseded)
RUNS_TABLE = "twmb_publish_run"
#: applied schema migrations
SCHEMA_TABLE = "twmb_schema_version"

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# words SQLite reserves that a contract could plausibly use as a name
_RESERVED = frozenset(
    [
        "abort",
        "action",
        "add",
        "after",
        "all",
        "alter",
        "analyze",
        "and",
        "as",
        "asc",
        "attach",
        "autoincrement",
        "before",
        "begin",
        "between",
        "by",
        "cascade",
        "case",
        "cast",
        "check",
        "collate",
        "column",
        "commit",
        "conflict",
        "constraint",
        "create",
        "cross",
        "current",
        "current_date",
        "current_time",
        "current_timestamp",
        "database",
        "default",
        "deferrable",
        "deferred",
        "delete",
        "desc",
        "detach",
        "distinct",
        "drop",
        "each",
        "else",
        "end",
        "escape",
        "except",
        "exclusive",
        "exists",
        "explain",
        "fail",
        "for",
        "foreign",
        "from",
        "full",
        "glob",
        "group",
        "having",
        "if",
        "ignore",
        "immediate",
        "in",
        "index",
        "indexed",
        "initially",
        "inner",
        "insert",
        "instead",
        "intersect",
        "into",
        "is",
        "isnull",
        "join",
        "key",
        "left",
        "like",
        "limit",
        "match",
        "natural",
        "no",
        "not",
        "notnull",
        "null",
        "of",
        "offset",
        "on",
        "or",
        "order",
        "outer",
        "plan",
        "pragma",
        "primary",
        "query",
        "raise",
        "recursive",
        "references",
        "regexp",
        "reindex",
        "release",
        "rename",
        "replace",
        "restrict",
        "right",
        "rollback",
        "row",
        "rows",
        "savepoint",
        "select",
        "set",
        "table",
        "temp",
        "temporary",
        "then",
        "to",
        "transaction",
        "trigger",
        "union",
        "unique",
        "update",
        "using",
        "vacuum",
        "values",
        "view",
        "virtual",
        "when",
        "where",
        "window",
        "with",
        "without",
    ]
)


def safe_identifier(name: str, *, what: str = "identifier") -> str:
    """Return ``name`` if it is a safe SQL identifier, else raise :class:`InputDataError`.

    Safe means lower-case snake_case (``[a-z_][a-z0-9_]*``, at most 63 characters) and not an
    SQL keyword; names are still quoted in every statement.
    """
    if not isinstance(name, str) or not _IDENT.match(name) or name in _RESERVED:
        raise InputDataError(
            f"{what} {name!r} is not a safe SQL identifier: use lower-case snake_case "
            "(letters, digits, underscores; not starting with a digit; not an SQL keyword)"
        )
    return name


def quote(name: str) -> str:
    """Double-quote a checked identifier."""
    return '"' + safe_identifier(name) + '"'


def star_schema(table: str) -> TableSchema:
    """The contract of a star table (``schemas/star/<table>.json``)."""
    return load_schema(f"star/{safe_identifier(table, what='table name')}")


#: the query a paging reader sends first: the publish to read (bind it to every page)
CURRENT_SQL = f'SELECT "{PUBLISH_COLUMN}" FROM "{CURRENT_TABLE}" WHERE "id" = 1'
#: suffix of the view holding a star table's rows of the current publish
CURRENT_VIEW_SUFFIX = "_current"


def current_view_statements(table: str) -> list[str]:
    """(Re)define ``<table>_current``: the contract's columns of the current publish only.

    What a SQL user queries instead of filtering on ``publish_id`` by hand; the view reads
    the pointer, so it moves with every publish switch.
    """
    schema = star_schema(table)
    view = quote(f"{schema.name}{CURRENT_VIEW_SUFFIX}")
    cols = ", ".join(quote(c) for c in schema.columns)
    return [
        f"DROP VIEW IF EXISTS {view}",
        f"CREATE VIEW {view} AS SELECT {cols} FROM {quote(schema.name)} "
        f"WHERE {quote(PUBLISH_COLUMN)} = ({CURRENT_SQL})",
    ]


#: the column a paged reader's rows start with: the row's SQLite ``rowid``, the key of the
#: next page (rows are inserted in the contract's ``sort_by`` order, so rowid order is it)
ROW_COLUMN = "rowid"


def reader_sql(table: str, *, paged: bool = False, columns: Sequence[str] | None = None) -> str:
    """The query a reader (Power Query, tests) sends for the current rows of a star table.

    Columns in contract order, rows in the contract's ``sort_by`` order. Unpaged, the query
    filters on the current publish itself and sorts on the contract's columns. Paged, it is
    a keyset page: it takes three bound parameters, ``publish_id, after, limit``
    (``WHERE publish_id = ? AND rowid > ? ORDER BY rowid LIMIT ?``) and its rows start with
    :data:`ROW_COLUMN`; the next page binds the last row's rowid as ``after`` (``0`` for the
    first). A publish inserts every table in its ``sort_by`` order, so rowid order is the
    contract's order. Each page is a seek on the table's rowid, whatever its position (an
    ``OFFSET`` page walked every earlier row: quadratic in the table). A paging reader first
    reads the publish id with :data:`CURRENT_SQL` and binds it to every page, so all pages
    come from one publish even when a new one is switched in mid-refresh (the previous
    publish is kept until the one after).
    """
    schema = star_schema(table)
    cols = ", ".join(quote(c) for c in (list(columns) if columns is not None else schema.columns))
    if paged:
        return (
            f"SELECT {ROW_COLUMN}, {cols} FROM {quote(schema.name)} "
            f"WHERE {quote(PUBLISH_COLUMN)} = ? AND {ROW_COLUMN} > ? "
            f"ORDER BY {ROW_COLUMN} LIMIT ?"
        )
    order = ", ".join(
        quote(c) for c in (schema.sort_by or schema.primary_key or schema.columns[:1])
    )
    return (
        f"SELECT {cols} FROM {quote(schema.name)} "
        f"WHERE {quote(PUBLISH_COLUMN)} = ({CURRENT_SQL}) ORDER BY {order}"
    )
