"""The PBIP project file and the semantic model in TMDL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence

from ...contracts import Field, TableSchema
from ..star import FACTS, KEY_DIMENSIONS, STAR_TABLES
from .common import (
    DEFINITION,
    LATITUDE,
    LONGITUDE,
    MEASURES_TABLE,
    MODEL_NAME,
    PLAIN_NAME,
    REPORT,
    SCHEMA_URL,
    SEMANTIC_MODEL,
    SORT_BY,
    SUMMABLE,
    TAG_NAMESPACE,
    TMDL_TYPES,
    json_lines,
)
from .m_query import parameter_value, parameters, parquet_query, turso_function, turso_query
from .measures import Measure

__all__ = ["model_files"]


# -- TMDL ---------------------------------------------------------------------------------
def _tag(*parts: str) -> str:
    """A stable lineage tag: the same object gets the same GUID on every run."""
    return str(uuid.uuid5(TAG_NAMESPACE, "/".join(parts)))


def _tmdl_name(name: str) -> str:
    """A TMDL object name, single-quoted unless it is a plain identifier."""
    return name if PLAIN_NAME.match(name) else "'" + name.replace("'", "''") + "'"


def _doc(text: str, indent: str) -> list[str]:
    """A TMDL description (``///``) on one line."""
    return [f"{indent}/// {' '.join(text.split())}"] if text else []


def _format_string(f: Field) -> str | None:
    if f.type in ("int32", "int64"):
        return "#,0" if f.name in SUMMABLE else "0"
    if f.type == "float64":
        return "0.000000" if f.name in LATITUDE | LONGITUDE else "#,0.0###"
    if f.type == "date":
        return "yyyy-mm-dd"
    if f.type == "timestamp":
        return "yyyy-mm-dd hh:nn:ss"
    return None


def _column(table: str, f: Field, schema: TableSchema, *, is_fact: bool) -> list[str]:
    lines = [*_doc(f.description, "\t"), f"\tcolumn {_tmdl_name(f.name)}"]
    lines.append(f"\t\tdataType: {TMDL_TYPES[f.type]}")
    if table == "dim_date" and f.name == "date":
        lines.append("\t\tisKey")
    if f.name.endswith("_key") and (is_fact or f.name in KEY_DIMENSIONS):
        lines.append("\t\tisHidden")  # keys relate tables; people slice by the labels
    fmt = _format_string(f)
    if fmt:
        lines.append(f"\t\tformatString: {fmt}")
    lines.append(f"\t\tlineageTag: {_tag('column', table, f.name)}")
    if f.name in LATITUDE:
        lines.append("\t\tdataCategory: Latitude")
    elif f.name in LONGITUDE:
        lines.append("\t\tdataCategory: Longitude")
    summarize = "sum" if f.name in SUMMABLE else "none"
    lines.append(f"\t\tsummarizeBy: {summarize}")
    lines.append(f"\t\tsourceColumn: {f.name}")
    sort = SORT_BY.get(f.name)
    if sort and sort in schema.columns:
        lines.append(f"\t\tsortByColumn: {_tmdl_name(sort)}")
    lines += ["", "\t\tannotation SummarizationSetBy = Automatic", ""]
    if f.type == "date":
        lines += ["\t\tannotation UnderlyingDateTimeDataType = Date", ""]
    return lines


def _m_block(query: Sequence[str], indent: str) -> list[str]:
    """An M query as a TMDL expression: every line one indent level deeper."""
    return [indent + line if line else "" for line in query]


def _table_tmdl(schema: TableSchema, source: str) -> list[str]:
    t = schema.name
    is_fact = t in FACTS
    lines = [
        *_doc(schema.description, ""),
        f"table {_tmdl_name(t)}",
        f"\tlineageTag: {_tag('table', t)}",
    ]
    if t == "dim_date":
        lines.append("\tdataCategory: Time")
    lines.append("")
    for f in schema.fields:
        lines += _column(t, f, schema, is_fact=is_fact)
    query = turso_query(schema) if source == "turso" else parquet_query(schema)
    lines += [
        f"\tpartition {_tmdl_name(t)} = m",
        "\t\tmode: import",
        "\t\tsource =",
        *_m_block(query, "\t\t\t\t"),
        "",
        "\tannotation PBI_ResultType = Table",
    ]
    return lines


def _measures_tmdl(measures: Sequence[Measure]) -> list[str]:
    lines = [
        *_doc("The TWMB measures (DAX); see docs/powerbi.md.", ""),
        f"table {_tmdl_name(MEASURES_TABLE)}",
        f"\tlineageTag: {_tag('table', MEASURES_TABLE)}",
        "",
    ]
    for m in measures:
        lines += [*_doc(m.description, "\t"), f"\tmeasure {_tmdl_name(m.name)} ="]
        lines += ["\t\t\t" + line if line.strip() else "" for line in m.expression.split("\n")]
        if m.format_string:
            lines.append(f"\t\tformatString: {m.format_string}")
        if m.hidden:
            lines.append("\t\tisHidden")
        lines += [
            f"\t\tdisplayFolder: {m.folder}",
            f"\t\tlineageTag: {_tag('measure', m.name)}",
            "",
        ]
    lines += [
        "\tcolumn Value",
        "\t\tdataType: int64",
        "\t\tisHidden",
        "\t\tformatString: 0",
        f"\t\tlineageTag: {_tag('column', MEASURES_TABLE, 'Value')}",
        "\t\tsummarizeBy: none",
        "\t\tisNameInferred",
        "\t\tsourceColumn: [Value]",
        "",
        "\t\tannotation SummarizationSetBy = Automatic",
        "",
        f"\tpartition {_tmdl_name(MEASURES_TABLE)} = calculated",
        "\t\tmode: import",
        '\t\tsource = ROW("Value", 0)',
        "",
        "\tannotation PBI_ResultType = Table",
    ]
    return lines


def _expressions_tmdl(star_folder: str, source: str) -> list[str]:
    lines: list[str] = []
    for name, default, required, desc in parameters(star_folder):
        lines += [
            *_doc(desc, ""),
            f"expression {name} = {parameter_value(default, required)}",
            f"\tlineageTag: {_tag('expression', name)}",
            "",
            "\tannotation PBI_ResultType = Text",
            "",
        ]
    if source == "turso":
        lines += [
            *_doc(
                "TursoTable(Sql, ColumnTypes): pages through a star table of the Turso database "
                "(POST TursoUrl/v2/pipeline) and applies the contract's column types.",
                "",
            ),
            "expression TursoTable =",
            *_m_block(turso_function(), "\t\t"),
            f"\tlineageTag: {_tag('expression', 'TursoTable')}",
            "",
            "\tannotation PBI_ResultType = Function",
            "",
        ]
    return lines[:-1]


def _model_tmdl(source: str, description: str) -> list[str]:
    queries = ["TursoUrl", "TursoToken", "StarFolder"]
    if source == "turso":
        queries.append("TursoTable")
    queries += list(STAR_TABLES)
    return [
        *(_doc(description, "") if description else []),
        "model Model",
        "\tculture: en-US",
        "\tdefaultPowerBIDataSourceVersion: powerBI_V3",
        "\tsourceQueryCulture: en-US",
        "\tdataAccessOptions",
        "\t\tlegacyRedirects",
        "\t\treturnErrorValuesAsNull",
        "",
        "annotation __PBI_TimeIntelligenceEnabled = 0",
        "",
        f"annotation PBI_QueryOrder = {json.dumps(queries, separators=(',', ':'))}",
        "",
        *[f"ref table {_tmdl_name(t)}" for t in (*STAR_TABLES, MEASURES_TABLE)],
    ]


def _relationships_tmdl(rels: Sequence[tuple[str, str, str, str]]) -> list[str]:
    lines: list[str] = []
    for fact, col, dim, dim_col in rels:
        lines += [
            f"relationship {_tmdl_name(f'{fact}_{col}')}",
            "\tfromCardinality: many",
            "\ttoCardinality: one",
            "\tcrossFilteringBehavior: oneDirection",
            f"\tfromColumn: {_tmdl_name(fact)}.{_tmdl_name(col)}",
            f"\ttoColumn: {_tmdl_name(dim)}.{_tmdl_name(dim_col)}",
            "",
        ]
    return lines[:-1]


def model_files(
    schemas: Mapping[str, TableSchema],
    rels: Sequence[tuple[str, str, str, str]],
    measures: Sequence[Measure],
    *,
    source: str,
    star_folder: str,
    description: str = "",
) -> dict[str, list[str]]:
    """The semantic model's files; ``description`` is the model's (city, licence)."""
    files: dict[str, list[str]] = {
        f"{MODEL_NAME}.pbip": json_lines(
            {
                "$schema": f"{SCHEMA_URL}/pbip/pbipProperties/1.0.0/schema.json",
                "version": "1.0",
                "artifacts": [{"report": {"path": REPORT}}],
                "settings": {"enableAutoRecovery": True},
            }
        ),
        f"{SEMANTIC_MODEL}/definition.pbism": json_lines(
            {
                "$schema": f"{SCHEMA_URL}/item/semanticModel/definitionProperties/1.0.0/schema.json",
                "version": "4.0",
                "settings": {},
            }
        ),
        f"{DEFINITION}/database.tmdl": ["database", "\tcompatibilityLevel: 1567"],
        f"{DEFINITION}/model.tmdl": _model_tmdl(source, description),
        f"{DEFINITION}/expressions.tmdl": _expressions_tmdl(star_folder, source),
        f"{DEFINITION}/relationships.tmdl": _relationships_tmdl(rels),
        f"{DEFINITION}/tables/{MEASURES_TABLE}.tmdl": _measures_tmdl(measures),
    }
    for t, sch in schemas.items():
        files[f"{DEFINITION}/tables/{t}.tmdl"] = _table_tmdl(sch, source)
    return files
