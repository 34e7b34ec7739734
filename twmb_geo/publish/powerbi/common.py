"""Names, types and contract checks shared by every part of the Power BI kit."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from ...contracts import Field, TableSchema
from ...errors import ContractError
from .. import sql as _sql
from ..star import FACTS, KEY_DIMENSIONS, STAR_TABLES

__all__ = [
    "DEFINITION",
    "MEASURES_TABLE",
    "MODEL_NAME",
    "M_TYPES",
    "PAGE_SIZE",
    "REPORT",
    "SEMANTIC_MODEL",
    "SOURCES",
    "TMDL_TYPES",
    "contract_field",
    "json_lines",
    "kit_schemas",
    "quoted",
    "relationships",
]

#: rows per HTTP request when Power Query pages through a Turso table
PAGE_SIZE = 50_000
#: name of the PBIP project, its semantic model and report folders
MODEL_NAME = "TWMB"
#: the table that holds the DAX measures
MEASURES_TABLE = "_Measures"
#: data sources the semantic model's partitions can read
SOURCES = ("turso", "parquet")

#: contract type -> Power Query (M) type
M_TYPES: dict[str, str] = {
    "string": "type text",
    "int32": "Int64.Type",
    "int64": "Int64.Type",
    "float64": "type number",
    "bool": "type logical",
    "date": "type date",
    "timestamp": "type datetime",
}
#: contract type -> TMDL column dataType (matches :data:`M_TYPES`)
TMDL_TYPES: dict[str, str] = {
    "string": "string",
    "int32": "int64",
    "int64": "int64",
    "float64": "double",
    "bool": "boolean",
    "date": "dateTime",
    "timestamp": "dateTime",
}

SEMANTIC_MODEL = f"{MODEL_NAME}.SemanticModel"
REPORT = f"{MODEL_NAME}.Report"
DEFINITION = f"{SEMANTIC_MODEL}/definition"
TAG_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/twmb/twmb_geo/powerbi")
SCHEMA_URL = "https://developer.microsoft.com/json-schemas/fabric"
TURSO_URL_PLACEHOLDER = "https://<db>.turso.io"
STAR_FOLDER_PLACEHOLDER = "C:\\twmb\\out\\star"

# columns whose default aggregation is a sum; every other numeric column is a key, code,
# year, coordinate, ratio or statistic and is not summarised
SUMMABLE = frozenset(
    {"breaks", "exposure_km", "expected_breaks", "length_m", "area_km2", "n_train", "n_test"}
)
LATITUDE = frozenset({"lat", "centroid_lat"})
LONGITUDE = frozenset({"lon", "centroid_lon"})
# label column -> the column it sorts by (applied when both are in the same table)
SORT_BY = {
    "month_name": "month",
    "month_short": "month",
    "quarter_label": "quarter",
    "day_name": "day_of_week",
    "statistic": "statistic_order",
    "year_label": "year_key",
}
PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quoted(value: str) -> str:
    """A double-quoted text literal of M or DAX (embedded double quotes doubled)."""
    return '"' + value.replace('"', '""') + '"'


def json_lines(doc: Mapping[str, Any]) -> list[str]:
    """A JSON document as the lines of a generated file (indented, UTF-8 text kept)."""
    return json.dumps(doc, indent=2, ensure_ascii=False).split("\n")


def contract_field(schema: TableSchema | None, column: str) -> Field | None:
    if schema is None:
        return None
    return next((f for f in schema.fields if f.name == column), None)


# -- contracts ----------------------------------------------------------------------------
def kit_schemas() -> dict[str, TableSchema]:
    """Every star contract, checked for what the kit relies on."""
    schemas = {t: _sql.star_schema(t) for t in STAR_TABLES}
    problems: list[str] = []
    for t, sch in schemas.items():
        for f in sch.fields:
            _sql.safe_identifier(f.name, what=f"column of star/{t}")
            if f.type not in M_TYPES:
                problems.append(
                    f"star/{t}.{f.name}: type {f.type!r} has no Power BI type "
                    f"(use one of {sorted(M_TYPES)})"
                )
    for key, dim in KEY_DIMENSIONS.items():
        key_field = contract_field(schemas[dim], key)
        if key_field is None:
            problems.append(f"star/{dim} has no key column {key!r} for its relationships")
        elif key_field.type not in ("int32", "int64"):
            problems.append(f"star/{dim}.{key} must be an integer key, not {key_field.type!r}")
    date = contract_field(schemas["dim_date"], "date")
    if date is None or date.type != "date":
        problems.append("star/dim_date needs a 'date' column of type date (the date table)")
    if problems:
        raise ContractError("the star contracts cannot be turned into a Power BI model", problems)
    return schemas


def relationships(schemas: Mapping[str, TableSchema]) -> list[tuple[str, str, str, str]]:
    """``(fact, column, dimension, column)`` for every fact key column in KEY_DIMENSIONS."""
    return [
        (fact, col, KEY_DIMENSIONS[col], col)
        for fact in FACTS
        for col in schemas[fact].columns
        if col in KEY_DIMENSIONS
    ]
