"""Power Query (M): one query per star table for Turso and for Parquet, and the parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...contracts import TableSchema
from ...errors import ContractError
from .. import sql as _sql
from .common import M_TYPES, PAGE_SIZE, TURSO_URL_PLACEHOLDER, quoted

__all__ = [
    "parameter_value",
    "parameters",
    "parquet_query",
    "powerquery_files",
    "turso_function",
    "turso_query",
]


# -- Power Query (M) ----------------------------------------------------------------------
def _m_types(schema: TableSchema) -> list[str]:
    """The ``ColumnTypes = {...},`` step: one ``{"column", type}`` pair per contract column."""
    pairs = [f"        {{{quoted(f.name)}, {M_TYPES[f.type]}}}," for f in schema.fields]
    pairs[-1] = pairs[-1].rstrip(",")
    return ["    ColumnTypes = {", *pairs, "    },"]


def _paged_sql(table: str) -> str:
    """The paged reader query; it must bind ``publish_id, after, limit`` as TursoTable does
    and start its rows with the rowid TursoTable reads the next page's ``after`` from."""
    sql = _sql.reader_sql(table, paged=True)
    row, pid = _sql.ROW_COLUMN, _sql.quote(_sql.PUBLISH_COLUMN)
    tail = f" WHERE {pid} = ? AND {row} > ? ORDER BY {row} LIMIT ?"
    if sql.count("?") != 3 or not (sql.startswith(f"SELECT {row}, ") and sql.endswith(tail)):
        raise ContractError(
            f"reader_sql({table!r}, paged=True) is not the keyset page (publish_id, after, "
            "limit) the TursoTable Power Query function sends; update "
            "twmb_geo/publish/powerbi/m_query.py",
            [sql],
        )
    return sql


def turso_query(schema: TableSchema) -> list[str]:
    """The M query of one table read from Turso (through the TursoTable function)."""
    return [
        "let",
        f"    Sql = {quoted(_paged_sql(schema.name))},",
        *_m_types(schema),
        "    Source = TursoTable(Sql, ColumnTypes)",
        "in",
        "    Source",
    ]


def parquet_query(schema: TableSchema) -> list[str]:
    """The M query of one table read from the Parquet folder of ``twmb publish``."""
    file = f"\\parquet\\{schema.name}.parquet"
    columns = ", ".join(quoted(c) for c in schema.columns)
    return [
        "let",
        f'    FilePath = Text.TrimEnd(StarFolder, {{"\\", "/"}}) & {quoted(file)},',
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
    Fetch = (After as text) as record =>
        Execute(
            Sql,
            {{
                [#"type" = "text", value = PublishId],
                [#"type" = "integer", value = After],
                [#"type" = "integer", value = Text.From(PageSize)]
            }}
        ),
    LastRowId = (Page as record) as text => List.Last(Page[rows]){{0}}[value],
    Pages = List.Generate(
        () => Fetch("0"),
        (Page) => Page <> null,
        (Page) =>
            if List.Count(Page[rows]) < PageSize then
                null
            else
                Fetch(LastRowId(Page)),
        (Page) => Page
    ),
    Expected = List.Transform(ColumnTypes, (pair) => pair{{0}}),
    Received = List.Transform(Pages{{0}}[cols], (col) => col[name]),
    Checked =
        if Received <> {{"@ROW_COLUMN@"}} & Expected then
            error Error.Record(
                "Turso columns differ from the star contract",
                "received " & Text.Combine(List.Skip(Received, 1), ", ") & "; expected "
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
            (Page) => List.Transform(Page[rows], (row) => List.Transform(List.Skip(row, 1), ToValue))
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


def turso_function() -> list[str]:
    """The TursoTable function (M): reads the current publish id, then pages through ``Sql``."""
    text = _TURSO_TEMPLATE.replace("@CURRENT_SQL@", quoted(_sql.CURRENT_SQL))
    return text.replace("@ROW_COLUMN@", _sql.ROW_COLUMN).split("\n")


def parameters(star_folder: str) -> list[tuple[str, str, bool, str]]:
    """``(name, default, required, description)`` of the M parameters."""
    return [
        (
            "TursoUrl",
            TURSO_URL_PLACEHOLDER,
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


def parameter_value(default: str, required: bool) -> str:
    req = "true" if required else "false"
    return (
        f'{quoted(default)} meta [IsParameterQuery = true, Type = "Text", '
        f"IsParameterQueryRequired = {req}]"
    )


def _pq_header(lines: Sequence[str]) -> list[str]:
    return [f"// {line}" if line else "//" for line in lines]


def powerquery_files(schemas: Mapping[str, TableSchema], star_folder: str) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    params = parameters(star_folder)
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
                f"shared {name} = {parameter_value(default, required)};",
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
                f"after, limit {PAGE_SIZE}) so every page comes from the same publish; each page",
                f"starts after the last page's {_sql.ROW_COLUMN} (a seek, however deep). Fails",
                "with the server's message when a result has type error, turns typed values into",
                'M values and applies ColumnTypes ({"column", type} pairs): ISO-8601 text ->',
                "date/datetime, 0/1 -> logical. Create it as a blank query named TursoTable.",
                "Generated by `twmb powerbi`.",
            ]
        ),
        *turso_function(),
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
            *turso_query(sch),
        ]
        files[f"powerquery/parquet/{t}.pq"] = [
            *_pq_header(
                [
                    f"{t} from the Parquet folder of `twmb publish`: contract star/{t} "
                    f"{sch.version}.",
                    "Needs the StarFolder parameter. Generated by `twmb powerbi`.",
                ]
            ),
            *parquet_query(sch),
        ]
    return files
