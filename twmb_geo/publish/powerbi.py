"""The Power BI kit: Power Query (M) scripts and a PBIP semantic model (TMDL) for the star schema.

Everything is generated from the star contracts (``schemas/star/*.json``) alone, so the kit
needs no store and cannot drift from what ``twmb publish`` writes:

* ``powerquery/turso/<table>.pq`` pages through a table of the Turso (libSQL) database over
  HTTP (``POST <TursoUrl>/v2/pipeline``) with exactly the query of
  :func:`twmb_geo.publish.sql.reader_sql` (``paged=True``) and applies the contract's column
  types; the shared request, paging and value decoding live in
  ``powerquery/turso/TursoTable.pq``, which first reads the current publish id
  (:data:`~twmb_geo.publish.sql.CURRENT_SQL`) and binds it to every page;
* ``powerquery/parquet/<table>.pq`` reads ``<StarFolder>\\parquet\\<table>.parquet`` instead;
* ``powerquery/parameters.pq`` declares the parameters ``TursoUrl``, ``TursoToken`` (sensitive:
  the files only ever hold an empty placeholder) and ``StarFolder``;
* ``TWMB.SemanticModel/`` is the semantic model in TMDL: one table per star table (contract
  columns, types and descriptions), many-to-one single-direction relationships from every fact
  key column to its dimension (:data:`~twmb_geo.publish.star.KEY_DIMENSIONS`), ``dim_date``
  marked as the date table and the DAX measures of :data:`MEASURES` in a ``_Measures`` table;
* ``TWMB.pbip`` and a blank ``TWMB.Report/`` (PBIR) so Power BI Desktop opens the project.

The output is deterministic: the same contracts give byte-identical files (stable order, ``\\n``
line endings, lineage tags derived from names). The report skeleton is only written when
missing, so pages built in Power BI Desktop survive a regeneration.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import DEFAULT_TIERS
from ..contracts import Field, TableSchema
from ..errors import ContractError, InputDataError
from . import sql as _sql
from .star import FACTS, KEY_DIMENSIONS, STAR_TABLES

__all__ = [
    "MEASURES_TABLE",
    "MODEL_NAME",
    "M_TYPES",
    "PAGE_SIZE",
    "SOURCES",
    "TMDL_TYPES",
    "Measure",
    "kit_measures",
    "measure_references",
    "write_powerbi_kit",
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

_SM = f"{MODEL_NAME}.SemanticModel"
_REPORT = f"{MODEL_NAME}.Report"
_DEF = f"{_SM}/definition"
_PAGE = "overview"
_TAG_NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/twmb/twmb_geo/powerbi")
_SCHEMA_URL = "https://developer.microsoft.com/json-schemas/fabric"
_TURSO_URL_PLACEHOLDER = "https://<db>.turso.io"
_STAR_FOLDER_PLACEHOLDER = "C:\\twmb\\out\\star"

# columns whose default aggregation is a sum; every other numeric column is a key, code,
# year, coordinate, ratio or statistic and is not summarised
_SUMMABLE = frozenset(
    {"breaks", "exposure_km", "expected_breaks", "length_m", "area_km2", "n_train", "n_test"}
)
_LATITUDE = frozenset({"lat", "centroid_lat"})
_LONGITUDE = frozenset({"lon", "centroid_lon"})
# label column -> the column it sorts by (applied when both are in the same table)
_SORT_BY = {
    "month_name": "month",
    "month_short": "month",
    "quarter_label": "quarter",
    "day_name": "day_of_week",
    "statistic": "statistic_order",
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# DAX references: 'table'[column] or table[column], and bare [measure]
_COLUMN_REF = re.compile(r"(?:'((?:[^']|'')+)'|\b([A-Za-z_][A-Za-z0-9_]*))\[([^\]]+)\]")
_MEASURE_REF = re.compile(r"(?<![\w'\]])\[([^\]]+)\]")


# -- measures -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Measure:
    """A DAX measure of the kit.

    ``literals`` lists ``(table, column, value)`` text values the expression compares with;
    they are checked against the contract's ``enum`` when the column has one.
    """

    name: str
    expression: str
    format_string: str
    description: str
    folder: str
    hidden: bool = False
    literals: tuple[tuple[str, str, str], ...] = ()


def _high_tiers(tiers: Sequence[tuple[str, float]]) -> tuple[str, ...]:
    """The "high" tiers: the two riskiest, never the last (catch-all) tier unless it is alone."""
    names = [str(n) for n, _ in tiers]
    return tuple(names[: max(1, min(2, len(names) - 1))])


def _text(value: str) -> str:
    """A double-quoted text literal of M or DAX (embedded double quotes doubled)."""
    return '"' + value.replace('"', '""') + '"'


def kit_measures(tiers: Sequence[tuple[str, float]] = DEFAULT_TIERS) -> tuple[Measure, ...]:
    """The DAX measures of the kit.

    ``tiers`` are the risk tiers ``(name, minimum percentile)`` from the riskiest (default
    :data:`~twmb_geo.config.DEFAULT_TIERS`); the "high" ones are the two riskiest.
    """
    high = _high_tiers(tiers)
    tier_set = "{" + ", ".join(_text(t) for t in high) + "}"
    tier_words = " or ".join(high)
    current = "fact_risk_score[is_current] = TRUE()"
    return (
        Measure(
            "Total Breaks",
            "SUM(fact_break[breaks])",
            "#,0",
            "Number of recorded water-main breaks (fact_break, one row per break). Filter it "
            "with dim_date, dim_h3_cell, dim_neighbourhood, dim_pipe or dim_street_segment.",
            "Breaks",
        ),
        Measure(
            "Rolling 12-Month Breaks",
            "CALCULATE(\n"
            "    [Total Breaks],\n"
            "    DATESINPERIOD(dim_date[date], MAX(dim_date[date]), -12, MONTH)\n"
            ")",
            "#,0",
            "Breaks in the 12 months up to the last date in the current dim_date filter "
            "(e.g. the month on a trend-line axis).",
            "Breaks",
        ),
        Measure(
            "Breaks YoY Change (%)",
            "VAR _current = [Total Breaks]\n"
            "VAR _previous = CALCULATE([Total Breaks], SAMEPERIODLASTYEAR(dim_date[date]))\n"
            "RETURN\n"
            "    DIVIDE(_current - _previous, _previous)",
            "0.0%",
            "Change in breaks against the same period one year earlier (dim_date); blank "
            "when the earlier period has no breaks (e.g. the first year).",
            "Breaks",
        ),
        Measure(
            "Breaks per 100 km per Year",
            "VAR _unit =\n"
            "    IF(\n"
            '        CALCULATE(SUM(fact_unit_year[exposure_km]), fact_unit_year[unit_type] = "pipe") > 0,\n'
            '        "pipe",\n'
            '        "cell"\n'
            "    )\n"
            "VAR _breaks = CALCULATE(SUM(fact_unit_year[breaks]), fact_unit_year[unit_type] = _unit)\n"
            "VAR _km_years = CALCULATE(SUM(fact_unit_year[exposure_km]), fact_unit_year[unit_type] = _unit)\n"
            "RETURN\n"
            "    DIVIDE(_breaks, _km_years) * 100",
            "#,0.0",
            "Break rate: breaks / in-service pipe km-years * 100 (fact_unit_year; exposure_km "
            "is per unit and year, so its sum over years is km-years). Uses the pipe rows when "
            "the filter context has pipe exposure, else the H3 cell rows, so units are never "
            "counted twice; blank without pipe data. Slice by fact_unit_year[year] (the fact "
            "has a year, not a date key).",
            "Breaks",
            literals=(
                ("fact_unit_year", "unit_type", "pipe"),
                ("fact_unit_year", "unit_type", "cell"),
            ),
        ),
        Measure(
            "Scored Unit Type",
            "VAR _selected = SELECTEDVALUE(fact_risk_score[unit_type])\n"
            "VAR _pipes =\n"
            "    CALCULATE(\n"
            "        COUNTROWS(fact_risk_score),\n"
            '        fact_risk_score[unit_type] = "pipe",\n'
            f"        {current}\n"
            "    )\n"
            "RETURN\n"
            '    IF(NOT ISBLANK(_selected), _selected, IF(_pipes > 0, "pipe", "cell"))',
            "",
            "Helper: the unit type the risk measures use. The one in the filter context when "
            "there is exactly one, else pipes when current pipe scores exist, else H3 cells.",
            "Risk",
            hidden=True,
            literals=(
                ("fact_risk_score", "unit_type", "pipe"),
                ("fact_risk_score", "unit_type", "cell"),
            ),
        ),
        Measure(
            "Average Risk",
            "VAR _unit = [Scored Unit Type]\n"
            "RETURN\n"
            "    CALCULATE(\n"
            "        AVERAGE(fact_risk_score[probability]),\n"
            f"        {current},\n"
            "        fact_risk_score[unit_type] = _unit\n"
            "    )",
            "0.0%",
            "Mean probability of at least one break in the target year over the units of the "
            "current scoring run (fact_risk_score, is_current), for one unit type (see Scored "
            "Unit Type).",
            "Risk",
        ),
        Measure(
            "Expected Breaks Next Year",
            "VAR _unit = [Scored Unit Type]\n"
            "RETURN\n"
            "    CALCULATE(\n"
            "        SUM(fact_risk_score[expected_breaks]),\n"
            f"        {current},\n"
            "        fact_risk_score[unit_type] = _unit\n"
            "    )",
            "#,0.0",
            "Sum of the model's expected breaks in the target year over the units of the "
            "current scoring run, for one unit type (summing pipes and cells would count the "
            "same breaks twice).",
            "Risk",
        ),
        Measure(
            "Share of Length in High Tier",
            "VAR _unit = [Scored Unit Type]\n"
            "VAR _rows =\n"
            "    CALCULATETABLE(\n"
            "        fact_risk_score,\n"
            f"        {current},\n"
            "        fact_risk_score[unit_type] = _unit\n"
            "    )\n"
            f"VAR _high = FILTER(_rows, fact_risk_score[tier] IN {tier_set})\n"
            "VAR _length =\n"
            "    IF(\n"
            '        _unit = "street",\n'
            "        SUMX(_rows, RELATED(dim_street_segment[length_m])),\n"
            "        SUMX(_rows, RELATED(dim_pipe[length_m]))\n"
            "    )\n"
            "VAR _high_length =\n"
            "    IF(\n"
            '        _unit = "street",\n'
            "        SUMX(_high, RELATED(dim_street_segment[length_m])),\n"
            "        SUMX(_high, RELATED(dim_pipe[length_m]))\n"
            "    )\n"
            "RETURN\n"
            "    DIVIDE(_high_length, _length)",
            "0.0%",
            f"Share of the scored network length (dim_pipe or dim_street_segment length_m) in "
            f"the {tier_words} risk tier of the current scoring run; blank for unit types "
            "without a length (H3 cells, neighbourhoods).",
            "Risk",
            literals=(("fact_risk_score", "unit_type", "street"),),
        ),
        Measure(
            "Hot-Spot Cells",
            "CALCULATE(\n"
            "    DISTINCTCOUNT(fact_hotspot[cell_key]),\n"
            '    fact_hotspot[unit_type] = "cell",\n'
            '    fact_hotspot[cluster] = "hot spot",\n'
            "    fact_hotspot[cell_key] <> 0\n"
            ")",
            "#,0",
            "Number of distinct H3 cells in a significant high-high LISA cluster ('hot spot') "
            "in fact_hotspot; filter fact_hotspot[year] and [variable] to one year and variable.",
            "Hot spots",
            literals=(
                ("fact_hotspot", "unit_type", "cell"),
                ("fact_hotspot", "cluster", "hot spot"),
            ),
        ),
    )


def measure_references(expression: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The ``(table, column)`` and ``[measure]`` references of a DAX expression.

    String literals are ignored; ``'table'[column]`` and ``table[column]`` are column
    references, a bare ``[name]`` is a measure reference.
    """
    code = re.sub(r'"(?:[^"]|"")*"', '""', expression)
    columns = [((q.replace("''", "'") if q else t), c) for q, t, c in _COLUMN_REF.findall(code)]
    measures = _MEASURE_REF.findall(_COLUMN_REF.sub("", code))
    return columns, measures


def _check_measures(measures: Sequence[Measure], schemas: Mapping[str, TableSchema]) -> None:
    """Every column a measure reads exists, every compared text is allowed by the contract."""
    names = {m.name for m in measures}
    problems: list[str] = []
    for m in measures:
        columns, refs = measure_references(m.expression)
        for table, column in columns:
            if table not in schemas:
                problems.append(f"measure {m.name!r} reads table {table!r}: not a star table")
            elif column not in schemas[table].columns:
                problems.append(
                    f"measure {m.name!r} reads {table}[{column}]: no such column in "
                    f"star/{table} {schemas[table].version}"
                )
        problems += [
            f"measure {m.name!r} uses unknown measure [{r}]" for r in refs if r not in names
        ]
        for table, column, value in m.literals:
            f = _field(schemas.get(table), column)
            if f is not None and f.enum is not None and value not in f.enum:
                problems.append(
                    f"measure {m.name!r} compares {table}[{column}] with {value!r}, which "
                    f"star/{table} does not allow (one of {list(f.enum)})"
                )
    if problems:
        raise ContractError(
            "the Power BI measures do not match the star contracts; update "
            "twmb_geo/publish/powerbi.py or the contracts",
            problems,
        )


def _field(schema: TableSchema | None, column: str) -> Field | None:
    if schema is None:
        return None
    return next((f for f in schema.fields if f.name == column), None)


# -- contracts ----------------------------------------------------------------------------
def _schemas() -> dict[str, TableSchema]:
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
        f = _field(schemas[dim], key)
        if f is None:
            problems.append(f"star/{dim} has no key column {key!r} for its relationships")
        elif f.type not in ("int32", "int64"):
            problems.append(f"star/{dim}.{key} must be an integer key, not {f.type!r}")
    date = _field(schemas["dim_date"], "date")
    if date is None or date.type != "date":
        problems.append("star/dim_date needs a 'date' column of type date (the date table)")
    if problems:
        raise ContractError("the star contracts cannot be turned into a Power BI model", problems)
    return schemas


def _relationships(schemas: Mapping[str, TableSchema]) -> list[tuple[str, str, str, str]]:
    """``(fact, column, dimension, column)`` for every fact key column in KEY_DIMENSIONS."""
    return [
        (fact, col, KEY_DIMENSIONS[col], col)
        for fact in FACTS
        for col in schemas[fact].columns
        if col in KEY_DIMENSIONS
    ]


# -- Power Query (M) ----------------------------------------------------------------------
def _m_types(schema: TableSchema) -> list[str]:
    """The ``ColumnTypes = {...},`` step: one ``{"column", type}`` pair per contract column."""
    pairs = [f"        {{{_text(f.name)}, {M_TYPES[f.type]}}}," for f in schema.fields]
    pairs[-1] = pairs[-1].rstrip(",")
    return ["    ColumnTypes = {", *pairs, "    },"]


def _paged_sql(table: str) -> str:
    """The paged reader query; it must bind ``publish_id, limit, offset`` as TursoTable does."""
    sql = _sql.reader_sql(table, paged=True)
    if sql.count("?") != 3 or not sql.endswith(" LIMIT ? OFFSET ?"):
        raise ContractError(
            f"reader_sql({table!r}, paged=True) does not bind (publish_id, limit, offset), "
            "which the TursoTable Power Query function sends; update twmb_geo/publish/powerbi.py",
            [sql],
        )
    return sql


def _turso_query(schema: TableSchema) -> list[str]:
    """The M query of one table read from Turso (through the TursoTable function)."""
    return [
        "let",
        f"    Sql = {_text(_paged_sql(schema.name))},",
        *_m_types(schema),
        "    Source = TursoTable(Sql, ColumnTypes)",
        "in",
        "    Source",
    ]


def _parquet_query(schema: TableSchema) -> list[str]:
    """The M query of one table read from the Parquet folder of ``twmb publish``."""
    file = f"\\parquet\\{schema.name}.parquet"
    columns = ", ".join(_text(c) for c in schema.columns)
    return [
        "let",
        f'    FilePath = Text.TrimEnd(StarFolder, {{"\\", "/"}}) & {_text(file)},',
        *_m_types(schema),
        "    Source = Parquet.Document(File.Contents(FilePath)),",
        f"    Columns = Table.SelectColumns(Source, {{{columns}}}),",
        "    Typed = Table.TransformColumnTypes(Columns, ColumnTypes)",
        "in",
        "    Typed",
    ]


_TURSO_TEMPLATE = f"""\
(Sql as text, ColumnTypes as list) as table =>
let
    PageSize = {PAGE_SIZE},
    CurrentSql = @CURRENT_SQL@,
    Execute = (Statement as text, Args as list) as record =>
        let
            Body = [
                requests = {{
                    [
                        #"type" = "execute",
                        stmt = [sql = Statement, args = Args]
                    ]
                }}
            ],
            Response = Web.Contents(
                TursoUrl,
                [
                    RelativePath = "v2/pipeline",
                    Headers = [
                        #"Content-Type" = "application/json",
                        Authorization = "Bearer " & TursoToken
                    ],
                    Content = Json.FromValue(Body),
                    ManualStatusHandling = {{400, 401, 403, 404, 405, 500, 502, 503}}
                ]
            ),
            Status = Value.Metadata(Response)[Response.Status],
            Reply =
                if Status <> 200 then
                    error Error.Record(
                        "Turso request failed",
                        "HTTP " & Text.From(Status) & " from " & TursoUrl & "/v2/pipeline "
                            & "(check the TursoUrl and TursoToken parameters): "
                            & Text.FromBinary(Response),
                        [Status = Status]
                    )
                else
                    Json.Document(Response),
            First = Reply[results]{{0}},
            Result =
                if First[#"type"] = "error" then
                    error Error.Record(
                        "Turso query failed",
                        First[#"error"][message],
                        [Sql = Statement]
                    )
                else
                    First[response][result]
        in
            Result,
    Current = Execute(CurrentSql, {{}}),
    PublishId =
        if List.IsEmpty(Current[rows]) then
            error Error.Record(
                "Nothing published",
                "the Turso database has no current publish: run twmb publish to it first"
            )
        else
            Current[rows]{{0}}{{0}}[value],
    Fetch = (Offset as number) as record =>
        Execute(
            Sql,
            {{
                [#"type" = "text", value = PublishId],
                [#"type" = "integer", value = Text.From(PageSize)],
                [#"type" = "integer", value = Text.From(Offset)]
            }}
        ),
    Pages = List.Generate(
        () => [Offset = 0, Page = Fetch(0)],
        (state) => state[Page] <> null,
        (state) =>
            if List.Count(state[Page][rows]) < PageSize then
                [Offset = state[Offset] + PageSize, Page = null]
            else
                [Offset = state[Offset] + PageSize, Page = Fetch(state[Offset] + PageSize)],
        (state) => state[Page]
    ),
    Expected = List.Transform(ColumnTypes, (pair) => pair{{0}}),
    Received = List.Transform(Pages{{0}}[cols], (col) => col[name]),
    Checked =
        if Received <> Expected then
            error Error.Record(
                "Turso columns differ from the star contract",
                "received " & Text.Combine(Received, ", ") & "; expected "
                    & Text.Combine(Expected, ", ")
                    & " (publish again with this version of twmb_geo)"
            )
        else
            Pages,
    ToValue = (cell as record) as any =>
        let
            Kind = cell[#"type"]
        in
            if Kind = "null" then
                null
            else if Kind = "integer" then
                Int64.From(cell[value])
            else if Kind = "float" then
                Number.From(cell[value])
            else if Kind = "text" then
                cell[value]
            else
                error Error.Record("Unexpected Turso value type", Kind),
    Rows = List.Combine(
        List.Transform(
            Checked,
            (page) => List.Transform(page[rows], (row) => List.Transform(row, ToValue))
        )
    ),
    Raw = Table.FromRows(Rows, Expected),
    Convert = (t as type) as function =>
        if Type.Is(t, type date) then
            (x) => if x = null then null else Date.FromText(x, [Format = "yyyy-MM-dd", Culture = "en-US"])
        else if Type.Is(t, type datetime) then
            (x) =>
                if x = null then
                    null
                else
                    try DateTime.FromText(x, [Culture = "en-US"])
                    otherwise DateTimeZone.RemoveZone(DateTimeZone.FromText(x, [Culture = "en-US"]))
        else if Type.Is(t, type logical) then
            (x) => if x = null then null else x <> 0
        else
            (x) => x,
    Typed = Table.TransformColumns(
        Raw,
        List.Transform(ColumnTypes, (pair) => {{pair{{0}}, Convert(pair{{1}}), pair{{1}}}})
    )
in
    Typed"""


def _turso_function() -> list[str]:
    """The TursoTable function (M): reads the current publish id, then pages through ``Sql``."""
    return _TURSO_TEMPLATE.replace("@CURRENT_SQL@", _text(_sql.CURRENT_SQL)).split("\n")


def _parameters(star_folder: str) -> list[tuple[str, str, bool, str]]:
    """``(name, default, required, description)`` of the M parameters."""
    return [
        (
            "TursoUrl",
            _TURSO_URL_PLACEHOLDER,
            True,
            "Turso database URL (libSQL over HTTP), e.g. https://<db>-<org>.turso.io or "
            "http://127.0.0.1:8080 for a local server.",
        ),
        (
            "TursoToken",
            "",
            False,
            "Turso database token (sensitive): set it in Power BI, never in these files; the "
            "files only hold an empty placeholder.",
        ),
        (
            "StarFolder",
            star_folder,
            True,
            "Folder written by twmb publish (holds parquet\\ and csv\\), for the Parquet queries.",
        ),
    ]


def _parameter_value(default: str, required: bool) -> str:
    req = "true" if required else "false"
    return (
        f'{_text(default)} meta [IsParameterQuery = true, Type = "Text", '
        f"IsParameterQueryRequired = {req}]"
    )


def _pq_header(lines: Sequence[str]) -> list[str]:
    return [f"// {line}" if line else "//" for line in lines]


def _powerquery_files(schemas: Mapping[str, TableSchema], star_folder: str) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    params = _parameters(star_folder)
    files["powerquery/parameters.pq"] = [
        *_pq_header(
            [
                "Parameters of the TWMB Power Query scripts (a section document: in Power BI",
                "Desktop create each one with Home > Manage parameters > New parameter, type Text).",
                "TursoToken is sensitive: enter it in Power BI only, never store it in a file.",
                "Generated by `twmb powerbi`.",
            ]
        ),
        "section TWMB;",
        "",
        *[
            line
            for name, default, required, desc in params
            for line in (
                f"// {desc}",
                f"shared {name} = {_parameter_value(default, required)};",
                "",
            )
        ][:-1],
    ]
    files["powerquery/turso/TursoTable.pq"] = [
        *_pq_header(
            [
                "TursoTable(Sql, ColumnTypes): one star table read from Turso (libSQL) over HTTP.",
                "POSTs to TursoUrl/v2/pipeline with `Authorization: Bearer TursoToken`: first the",
                "current publish id (CurrentSql), then Sql page by page, binding (publish_id,",
                f"limit {PAGE_SIZE}, offset) so every page comes from the same publish. Fails",
                "with the server's message when a result has type error, turns typed values into",
                'M values and applies ColumnTypes ({"column", type} pairs): ISO-8601 text ->',
                "date/datetime, 0/1 -> logical. Create it as a blank query named TursoTable.",
                "Generated by `twmb powerbi`.",
            ]
        ),
        *_turso_function(),
    ]
    for t, sch in schemas.items():
        files[f"powerquery/turso/{t}.pq"] = [
            *_pq_header(
                [
                    f"{t} from Turso: contract star/{t} {sch.version}; paste into a blank query "
                    f"named {t}.",
                    "Needs the TursoTable function and the TursoUrl and TursoToken parameters.",
                    "Generated by `twmb powerbi` from the contract: edit the contract, not this file.",
                ]
            ),
            *_turso_query(sch),
        ]
        files[f"powerquery/parquet/{t}.pq"] = [
            *_pq_header(
                [
                    f"{t} from the Parquet folder of `twmb publish`: contract star/{t} "
                    f"{sch.version}.",
                    "Needs the StarFolder parameter. Generated by `twmb powerbi`.",
                ]
            ),
            *_parquet_query(sch),
        ]
    return files


# -- TMDL ---------------------------------------------------------------------------------
def _tag(*parts: str) -> str:
    """A stable lineage tag: the same object gets the same GUID on every run."""
    return str(uuid.uuid5(_TAG_NS, "/".join(parts)))


def _tmdl_name(name: str) -> str:
    """A TMDL object name, single-quoted unless it is a plain identifier."""
    return name if _NAME.match(name) else "'" + name.replace("'", "''") + "'"


def _doc(text: str, indent: str) -> list[str]:
    """A TMDL description (``///``) on one line."""
    return [f"{indent}/// {' '.join(text.split())}"] if text else []


def _format_string(f: Field) -> str | None:
    if f.type in ("int32", "int64"):
        return "#,0" if f.name in _SUMMABLE else "0"
    if f.type == "float64":
        return "0.000000" if f.name in _LATITUDE | _LONGITUDE else "#,0.0###"
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
    if is_fact and f.name.endswith("_key"):
        lines.append("\t\tisHidden")
    fmt = _format_string(f)
    if fmt:
        lines.append(f"\t\tformatString: {fmt}")
    lines.append(f"\t\tlineageTag: {_tag('column', table, f.name)}")
    if f.name in _LATITUDE:
        lines.append("\t\tdataCategory: Latitude")
    elif f.name in _LONGITUDE:
        lines.append("\t\tdataCategory: Longitude")
    summarize = "sum" if f.name in _SUMMABLE else "none"
    lines.append(f"\t\tsummarizeBy: {summarize}")
    lines.append(f"\t\tsourceColumn: {f.name}")
    sort = _SORT_BY.get(f.name)
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
    query = _turso_query(schema) if source == "turso" else _parquet_query(schema)
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
    for name, default, required, desc in _parameters(star_folder):
        lines += [
            *_doc(desc, ""),
            f"expression {name} = {_parameter_value(default, required)}",
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
            *_m_block(_turso_function(), "\t\t"),
            f"\tlineageTag: {_tag('expression', 'TursoTable')}",
            "",
            "\tannotation PBI_ResultType = Function",
            "",
        ]
    return lines[:-1]


def _model_tmdl(source: str) -> list[str]:
    queries = ["TursoUrl", "TursoToken", "StarFolder"]
    if source == "turso":
        queries.append("TursoTable")
    queries += list(STAR_TABLES)
    return [
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


def _json(doc: Mapping[str, Any]) -> list[str]:
    return json.dumps(doc, indent=2).split("\n")


def _model_files(
    schemas: Mapping[str, TableSchema],
    rels: Sequence[tuple[str, str, str, str]],
    measures: Sequence[Measure],
    *,
    source: str,
    star_folder: str,
) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {
        f"{MODEL_NAME}.pbip": _json(
            {
                "$schema": f"{_SCHEMA_URL}/pbip/pbipProperties/1.0.0/schema.json",
                "version": "1.0",
                "artifacts": [{"report": {"path": _REPORT}}],
                "settings": {"enableAutoRecovery": True},
            }
        ),
        f"{_SM}/definition.pbism": _json(
            {
                "$schema": f"{_SCHEMA_URL}/item/semanticModel/definitionProperties/1.0.0/schema.json",
                "version": "4.0",
                "settings": {},
            }
        ),
        f"{_DEF}/database.tmdl": ["database", "\tcompatibilityLevel: 1567"],
        f"{_DEF}/model.tmdl": _model_tmdl(source),
        f"{_DEF}/expressions.tmdl": _expressions_tmdl(star_folder, source),
        f"{_DEF}/relationships.tmdl": _relationships_tmdl(rels),
        f"{_DEF}/tables/{MEASURES_TABLE}.tmdl": _measures_tmdl(measures),
    }
    for t, sch in schemas.items():
        files[f"{_DEF}/tables/{t}.tmdl"] = _table_tmdl(sch, source)
    return files


def _report_files() -> dict[str, list[str]]:
    """A blank PBIR report bound to the semantic model (written only when missing)."""
    base = f"{_SCHEMA_URL}/item/report"
    return {
        f"{_REPORT}/definition.pbir": _json(
            {
                "$schema": f"{base}/definitionProperties/2.0.0/schema.json",
                "version": "4.0",
                "datasetReference": {"byPath": {"path": f"../{_SM}"}},
            }
        ),
        f"{_REPORT}/definition/version.json": _json(
            {"$schema": f"{base}/definition/versionMetadata/1.0.0/schema.json", "version": "2.0.0"}
        ),
        f"{_REPORT}/definition/report.json": _json(
            {
                "$schema": f"{base}/definition/report/1.0.0/schema.json",
                "themeCollection": {},
                "layoutOptimization": "None",
            }
        ),
        f"{_REPORT}/definition/pages/pages.json": _json(
            {
                "$schema": f"{base}/definition/pagesMetadata/1.0.0/schema.json",
                "pageOrder": [_PAGE],
                "activePageName": _PAGE,
            }
        ),
        f"{_REPORT}/definition/pages/{_PAGE}/page.json": _json(
            {
                "$schema": f"{base}/definition/page/1.0.0/schema.json",
                "name": _PAGE,
                "displayName": "Overview",
                "displayOption": "FitToPage",
                "height": 720,
                "width": 1280,
            }
        ),
    }


def _readme(
    schemas: Mapping[str, TableSchema],
    rels: Sequence[tuple[str, str, str, str]],
    measures: Sequence[Measure],
    source: str,
) -> list[str]:
    other = "parquet" if source == "turso" else "turso"
    lines = [
        "# TWMB Power BI kit",
        "",
        "Generated by `twmb powerbi` from the star-schema contracts (`schemas/star/*.json`);",
        "regenerate it rather than editing these files. Step-by-step guide: `docs/powerbi.md`",
        "in the twmb_geo repository.",
        "",
        "| path | what |",
        "|---|---|",
        f"| `{MODEL_NAME}.pbip` | open this in Power BI Desktop (developer mode / Power BI project) |",
        f"| `{_SM}/` | semantic model in TMDL: {len(schemas)} tables, {len(rels)} relationships, "
        f"{len(measures)} measures in `{MEASURES_TABLE}`; partitions read from **{source}** |",
        f"| `{_SM}/definition/expressions.tmdl` | parameters `TursoUrl`, `TursoToken`, `StarFolder`"
        + (" and the `TursoTable` function |" if source == "turso" else " |"),
        f"| `{_REPORT}/` | a blank report bound to the model (kept when it already exists) |",
        "| `powerquery/parameters.pq` | the same parameters, for building a report by hand |",
        f"| `powerquery/turso/TursoTable.pq` | shared function: POST to `TursoUrl/v2/pipeline`, {PAGE_SIZE:,} rows per page, typed values |",
        "| `powerquery/turso/<table>.pq` | one query per table: the reader SQL and the contract's column types |",
        "| `powerquery/parquet/<table>.pq` | one query per table reading `StarFolder\\parquet\\<table>.parquet` |",
        "",
        "Set `TursoUrl` and `TursoToken` (Home > Transform data > Edit parameters) before the",
        "first refresh. The token is sensitive: the kit only holds an empty placeholder, but",
        "Desktop saves parameter values in the model, so do not commit `expressions.tmdl` after",
        "entering it (re-running `twmb powerbi` resets it).",
        f"For the other source run `twmb powerbi --source {other}`, or paste",
        f"`powerquery/{other}/<table>.pq` into the table's query (Advanced Editor).",
        "",
        "## Tables",
        "",
        "| table | contract | columns |",
        "|---|---|---|",
        *[f"| `{t}` | star/{t} {s.version} | {len(s.fields)} |" for t, s in schemas.items()],
        "",
        "## Relationships (many-to-one, single direction)",
        "",
        *[f"- `{f}[{c}]` -> `{d}[{dc}]`" for f, c, d, dc in rels],
        "",
        "## Measures",
        "",
        *[f"- **{m.name}**{' (hidden)' if m.hidden else ''}: {m.description}" for m in measures],
    ]
    return lines


# -- writing ------------------------------------------------------------------------------
def _write(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines).rstrip("\n") + "\n"
    path.write_text(text, encoding="utf-8", newline="\n")


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete generated files of tables that no longer exist (from an older kit)."""
    for sub, pattern in (
        ("powerquery/turso", "*.pq"),
        ("powerquery/parquet", "*.pq"),
        (f"{_DEF}/tables", "*.tmdl"),
    ):
        for p in sorted((folder / sub).glob(pattern)):
            if p.relative_to(folder).as_posix() not in keep:
                p.unlink()


def write_powerbi_kit(
    folder: Path | str,
    *,
    source: str = "turso",
    star_folder: str | None = None,
    tiers: Sequence[tuple[str, float]] = DEFAULT_TIERS,
) -> dict[str, Any]:
    """Write the Power BI kit for the star schema to ``folder``.

    Parameters
    ----------
    folder
        Target folder (created). Generated files are overwritten; the report skeleton is only
        written when missing.
    source
        Where the semantic model's partitions read from: ``"turso"`` (default) or
        ``"parquet"``. The Power Query scripts of both are always written.
    star_folder
        Default of the ``StarFolder`` parameter (the folder of ``twmb publish``).
    tiers
        Risk tiers ``(name, minimum percentile)`` from the riskiest, as in ``[model] tiers``;
        the two riskiest (never the catch-all last one) count as "high" in the "Share of
        Length in High Tier" measure (default: ``very_high`` and ``high``).

    Returns
    -------
    dict
        ``folder``, ``source``, ``files`` (relative paths, sorted), ``tables`` (star tables),
        ``relationships`` and ``measures`` (counts).

    Raises
    ------
    ContractError
        A contract column has no Power BI type, a key column is missing, or a measure reads a
        column the contracts do not have.
    InputDataError
        A contract column name is not a safe identifier, or ``source`` is unknown.
    """
    if source not in SOURCES:
        raise InputDataError(f"source must be one of {list(SOURCES)}, got {source!r}")
    schemas = _schemas()
    measures = kit_measures(tiers)
    _check_measures(measures, schemas)
    rels = _relationships(schemas)
    star = star_folder or _STAR_FOLDER_PLACEHOLDER
    files = {
        **_powerquery_files(schemas, star),
        **_model_files(schemas, rels, measures, source=source, star_folder=star),
        "README.md": _readme(schemas, rels, measures, source),
    }
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale(root, set(files))
    for rel in sorted(files):
        _write(root / rel, files[rel])
    report = _report_files()
    for rel in sorted(report):
        if not (root / rel).exists():
            _write(root / rel, report[rel])
    return {
        "folder": str(root),
        "source": source,
        "files": sorted([*files, *report]),
        "tables": len(schemas),
        "relationships": len(rels),
        "measures": len(measures),
    }
