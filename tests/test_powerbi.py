"""Tests of the Power BI kit (``twmb powerbi``, twmb_geo.publish.powerbi).

The kit is generated from the star contracts alone, so these tests need no store or model.
They parse the generated files (Power Query M, TMDL, JSON) and compare them with the
contracts, ``reader_sql`` and ``KEY_DIMENSIONS`` independently of the generator's own tables.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import error_text, ok_json, show, twmb

import twmb_geo as tw
import twmb_geo.publish.sql as sqlmod
from twmb_geo.contracts import TableSchema, load_schema
from twmb_geo.errors import ContractError, InputDataError
from twmb_geo.publish.powerbi import write_powerbi_kit
from twmb_geo.publish.sql import CURRENT_SQL, reader_sql
from twmb_geo.publish.star import DIMENSIONS, FACTS, KEY_DIMENSIONS, STAR_TABLES

# written out here, not imported: the tests check the generator's mapping
M_TYPE = {
    "string": "type text",
    "int32": "Int64.Type",
    "int64": "Int64.Type",
    "float64": "type number",
    "bool": "type logical",
    "date": "type date",
    "timestamp": "type datetime",
}
TMDL_TYPE = {
    "string": "string",
    "int32": "int64",
    "int64": "int64",
    "float64": "double",
    "bool": "boolean",
    "date": "dateTime",
    "timestamp": "dateTime",
}
MEASURES = (
    "Total Breaks",
    "Breaks per 100 km per Year",
    "Rolling 12-Month Breaks",
    "Breaks YoY Change (%)",
    "Average Risk",
    "Expected Breaks Next Year",
    "Share of Length in High Tier",
    "Hot-Spot Cells",
)
SM = "TWMB.SemanticModel/definition"


# --------------------------------------------------------------------------- parsing helpers
def contract(table: str) -> TableSchema:
    return load_schema(f"star/{table}")


def read(folder: Path, rel: str) -> str:
    return (folder / rel).read_text(encoding="utf-8")


def m_sql(text: str) -> str:
    """The SQL of a Turso query file: its one ``    Sql = "...",`` line, un-doubled."""
    lines = [ln for ln in text.split("\n") if ln.startswith('    Sql = "')]
    assert len(lines) == 1, lines
    m = re.fullmatch(r'    Sql = "((?:[^"]|"")*)",', lines[0])
    assert m, f"Sql line is not one M text literal: {lines[0]}"
    return m.group(1).replace('""', '"')


def m_column_types(text: str) -> list[tuple[str, str]]:
    """The ``ColumnTypes = {...}`` pairs of an M query, in order."""
    lines = text.split("\n")
    start = lines.index("    ColumnTypes = {")
    end = lines.index("    },", start)
    pairs = []
    for ln in lines[start + 1 : end]:
        m = re.fullmatch(r'        \{"([a-z0-9_]+)", ([A-Za-z0-9. ]+)\},?', ln)
        assert m, f"unexpected ColumnTypes line {ln!r}"
        pairs.append((m.group(1), m.group(2)))
    return pairs


def tmdl_objects(text: str, kind: str, level: int = 1) -> dict[str, dict[str, object]]:
    """Objects ``kind`` (column, measure, relationship...) at ``level`` tabs: name -> info.

    ``info`` holds the object's ``key: value`` properties, its bare flags (``isKey``), its
    ``///`` description and, for ``name =`` objects, the expression lines.
    """
    tabs = "\t" * level
    out: dict[str, dict[str, object]] = {}
    lines = text.split("\n")
    head = re.compile(rf"^{tabs}{kind} ('(?:[^']|'')+'|[A-Za-z0-9_]+)( =.*)?$")
    for i, ln in enumerate(lines):
        m = head.match(ln)
        if not m:
            continue
        name = m.group(1)
        if name.startswith("'"):
            name = name[1:-1].replace("''", "'")
        info: dict[str, object] = {"props": {}, "flags": set(), "expression": [], "doc": ""}
        j = i - 1
        if j >= 0 and lines[j].lstrip("\t").startswith("///"):
            info["doc"] = lines[j].lstrip("\t")[3:].strip()
        for body in lines[i + 1 :]:
            if body.startswith(tabs + "\t\t"):
                info["expression"].append(body.strip())  # type: ignore[union-attr]
            elif body.startswith(tabs + "\t") and not body.startswith(tabs + "\t\t"):
                prop = body[len(tabs) + 1 :]
                if prop.startswith("annotation "):
                    continue
                if ": " in prop:
                    key, value = prop.split(": ", 1)
                    info["props"][key] = value  # type: ignore[index]
                else:
                    info["flags"].add(prop)  # type: ignore[union-attr]
            elif body.strip() == "":
                continue
            else:
                break
        out[name] = info
    return out


def dax_references(expression: str) -> tuple[set[tuple[str, str]], set[str]]:
    """``(table, column)`` and bare ``[measure]`` references of a DAX expression."""
    code = re.sub(r'"(?:[^"]|"")*"', '""', expression)
    col = re.compile(r"(?:'([^']+)'|([A-Za-z_][A-Za-z0-9_]*))\[([^\]]+)\]")
    columns = {(q or t, c) for q, t, c in col.findall(code)}
    measures = set(re.findall(r"(?<![\w'\]])\[([^\]]+)\]", col.sub("", code)))
    return columns, measures


def m_balanced(text: str) -> str | None:
    """None when ()[]{} balance in M code outside strings and // comments, else a message."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for n, line in enumerate(text.split("\n"), 1):
        code = re.sub(r'"(?:[^"]|"")*"', '""', line)
        assert code.count('"') % 2 == 0, f"line {n}: unterminated M text: {line}"
        code = code.split("//", 1)[0]
        for ch in code:
            if ch in "([{":
                stack.append(ch)
            elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
                return f"line {n}: unmatched {ch!r}: {line}"
    return f"unclosed {stack}" if stack else None


def patch_contract(
    monkeypatch: pytest.MonkeyPatch, table: str, change: Callable[[TableSchema], TableSchema]
) -> None:
    """Make ``star/<table>`` load as ``change(contract)`` for the kit and reader_sql."""
    original = sqlmod.load_schema

    def fake(ref: str) -> TableSchema:
        sch = original(ref)
        return change(sch) if ref == f"star/{table}" else sch

    monkeypatch.setattr(sqlmod, "load_schema", fake)


def rename(sch: TableSchema, old: str, new: str) -> TableSchema:
    fields = tuple(dataclasses.replace(f, name=new) if f.name == old else f for f in sch.fields)
    return dataclasses.replace(sch, fields=fields)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("powerbi") / "kit"
    return folder, write_powerbi_kit(folder)


# --------------------------------------------------------------------------- files
def test_every_star_table_has_turso_and_parquet_queries(kit: tuple[Path, dict]) -> None:
    folder, res = kit
    for t in STAR_TABLES:
        assert (folder / "powerquery" / "turso" / f"{t}.pq").is_file(), t
        assert (folder / "powerquery" / "parquet" / f"{t}.pq").is_file(), t
        assert (folder / SM / "tables" / f"{t}.tmdl").is_file(), t
    for rel in (
        "README.md",
        "TWMB.pbip",
        "powerquery/parameters.pq",
        "powerquery/turso/TursoTable.pq",
        "TWMB.SemanticModel/definition.pbism",
        f"{SM}/database.tmdl",
        f"{SM}/model.tmdl",
        f"{SM}/relationships.tmdl",
        f"{SM}/expressions.tmdl",
        f"{SM}/tables/_Measures.tmdl",
        "TWMB.Report/definition.pbir",
    ):
        assert (folder / rel).is_file(), rel
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert res["files"] == on_disk
    assert res["folder"] == str(folder)
    assert res["tables"] == len(STAR_TABLES) == 13
    assert res["source"] == "turso"


@pytest.mark.parametrize("table", STAR_TABLES)
def test_turso_query_sends_exactly_the_reader_sql(kit: tuple[Path, dict], table: str) -> None:
    folder, _ = kit
    text = read(folder, f"powerquery/turso/{table}.pq")
    assert m_sql(text) == reader_sql(table, paged=True)
    assert "Source = TursoTable(Sql, ColumnTypes)" in text
    # the model's partition sends the same query
    partition = read(folder, f"{SM}/tables/{table}.tmdl")
    assert m_sql("\n".join(ln.lstrip("\t") for ln in partition.split("\n"))) == reader_sql(
        table, paged=True
    )


def test_turso_function_pages_with_the_current_publish(kit: tuple[Path, dict]) -> None:
    folder, _ = kit
    text = read(folder, "powerquery/turso/TursoTable.pq")
    current = CURRENT_SQL.replace('"', '""')
    assert f'    CurrentSql = "{current}",' in text.split("\n")
    for needle in (
        "(Sql as text, ColumnTypes as list) as table =>",
        "PageSize = 50000,",
        'RelativePath = "v2/pipeline"',
        '#"Content-Type" = "application/json"',
        'Authorization = "Bearer " & TursoToken',
        "Content = Json.FromValue(Body)",
        "List.Generate(",
        'First[#"type"] = "error"',
        'First[#"error"][message]',
        '[#"type" = "text", value = PublishId]',
        '[#"type" = "integer", value = After]',
        '[#"type" = "integer", value = Text.From(PageSize)]',
        # keyset pages: the first after rowid 0, each next after the last row's rowid
        '() => Fetch("0"),',
        "Fetch(LastRowId(Page))",
        "LastRowId = (Page as record) as text => List.Last(Page[rows]){0}[value],",
        # the rowid column is checked and dropped before the rows become the table
        'if Received <> {"rowid"} & Expected then',
        "List.Transform(List.Skip(row, 1), ToValue)",
    ):
        assert needle in text, needle
    assert "Offset" not in text and "OFFSET" not in text
    assert '"close"' not in text  # the local Turso server does not support it
    # three bound parameters in the reader SQL: publish_id, after, limit
    sql = reader_sql("fact_break", paged=True)
    assert sql.count("?") == 3 and sql.startswith("SELECT rowid, ")
    assert sql.endswith('WHERE "publish_id" = ? AND rowid > ? ORDER BY rowid LIMIT ?')


def test_m_code_is_balanced(kit: tuple[Path, dict]) -> None:
    folder, _ = kit
    for p in sorted((folder / "powerquery").rglob("*.pq")):
        assert m_balanced(p.read_text(encoding="utf-8")) is None, p


@pytest.mark.parametrize("table", STAR_TABLES)
def test_column_types_follow_the_contract(kit: tuple[Path, dict], table: str) -> None:
    folder, _ = kit
    sch = contract(table)
    expected = [(f.name, M_TYPE[f.type]) for f in sch.fields]
    assert m_column_types(read(folder, f"powerquery/turso/{table}.pq")) == expected
    parquet = read(folder, f"powerquery/parquet/{table}.pq")
    assert m_column_types(parquet) == expected
    assert f'\\parquet\\{table}.parquet"' in parquet
    assert "Parquet.Document(File.Contents(" in parquet

    tmdl = read(folder, f"{SM}/tables/{table}.tmdl")
    assert tmdl.startswith(f"/// {sch.description}\ntable {table}\n")
    columns = tmdl_objects(tmdl, "column")
    assert list(columns) == sch.columns
    for f in sch.fields:
        info = columns[f.name]
        props = info["props"]
        assert props["dataType"] == TMDL_TYPE[f.type], f.name
        assert props["sourceColumn"] == f.name
        assert info["doc"] == " ".join(f.description.split())
        if f.name.endswith("_key") or f.type == "string":
            assert props["summarizeBy"] == "none", f.name
        if f.name in KEY_DIMENSIONS:  # keys relate tables, people slice on the labels
            assert "isHidden" in info["flags"], f.name
        elif table in DIMENSIONS:
            assert "isHidden" not in info["flags"], f.name
    assert f"\tpartition {table} = m\n\t\tmode: import\n\t\tsource =\n" in tmdl


def test_relationships_are_exactly_the_fact_key_columns(kit: tuple[Path, dict]) -> None:
    folder, res = kit
    rels = tmdl_objects(read(folder, f"{SM}/relationships.tmdl"), "relationship", level=0)
    found = set()
    for info in rels.values():
        props = info["props"]
        assert props["fromCardinality"] == "many"
        assert props["toCardinality"] == "one"
        assert props["crossFilteringBehavior"] == "oneDirection"
        found.add((props["fromColumn"], props["toColumn"]))
    expected = {
        (f"{fact}.{col}", f"{KEY_DIMENSIONS[col]}.{col}")
        for fact in FACTS
        for col in contract(fact).columns
        if col in KEY_DIMENSIONS
    }
    assert found == expected
    assert len(rels) == len(expected) == res["relationships"]
    # facts by year (no date_key) are not related to the calendar
    for fact in ("fact_unit_year", "fact_hotspot", "fact_simulation"):
        assert "date_key" not in contract(fact).columns
        assert not any(f.startswith(f"{fact}.") and t.startswith("dim_date.") for f, t in found)
    assert ("fact_break.date_key", "dim_date.date_key") in found
    # every key column is in its dimension, with the same name
    for source, target in found:
        dim, col = target.split(".")
        assert col in contract(dim).columns
        assert source.endswith(f".{col}")


def test_measures_only_reference_existing_columns(kit: tuple[Path, dict]) -> None:
    folder, res = kit
    measures = tmdl_objects(read(folder, f"{SM}/tables/_Measures.tmdl"), "measure")
    assert set(MEASURES) <= set(measures)
    assert res["measures"] == len(measures)
    for name, info in measures.items():
        expression = "\n".join(info["expression"])  # type: ignore[arg-type]
        assert expression, name
        assert info["doc"], f"{name} has no description"
        hidden = "isHidden" in info["flags"]
        if not hidden:
            assert info["props"].get("formatString"), f"{name} has no formatString"
        columns, refs = dax_references(expression)
        for table, column in columns:
            assert table in STAR_TABLES, f"{name} reads unknown table {table}"
            assert column in contract(table).columns, f"{name} reads {table}[{column}]"
        assert refs <= set(measures), f"{name} uses unknown measures {refs - set(measures)}"
    # the values the measures compare with are allowed by the contracts
    assert "hot spot" in contract("fact_hotspot").field("cluster").enum
    assert {"pipe", "cell", "street"} <= set(contract("fact_risk_score").field("unit_type").enum)
    high = "\n".join(measures["Share of Length in High Tier"]["expression"])  # type: ignore[arg-type]
    assert '{"very_high", "high"}' in high


def test_dax_reference_parser_finds_what_it_should() -> None:
    cols, refs = dax_references(
        "CALCULATE([Total Breaks], 'dim_date'[date] = \"x[y]\", fact_break[breaks] > 0)"
    )
    assert cols == {("dim_date", "date"), ("fact_break", "breaks")}
    assert refs == {"Total Breaks"}


def test_dim_date_is_the_date_table(kit: tuple[Path, dict]) -> None:
    folder, _ = kit
    tmdl = read(folder, f"{SM}/tables/dim_date.tmdl")
    assert "\n\tdataCategory: Time\n" in tmdl
    date = tmdl_objects(tmdl, "column")["date"]
    assert "isKey" in date["flags"]
    assert date["props"]["dataType"] == "dateTime"
    keys = [
        p.name
        for p in (folder / SM / "tables").glob("*.tmdl")
        if "\t\tisKey\n" in p.read_text(encoding="utf-8")
    ]
    assert keys == ["dim_date.tmdl"]
    assert tmdl_objects(tmdl, "column")["month_name"]["props"]["sortByColumn"] == "month"


def test_parameters_and_token_placeholder(kit: tuple[Path, dict]) -> None:
    folder, _ = kit
    expressions = read(folder, f"{SM}/expressions.tmdl")
    params = read(folder, "powerquery/parameters.pq")
    for name in ("TursoUrl", "TursoToken", "StarFolder"):
        assert f"expression {name} = " in expressions
        assert f"shared {name} = " in params
    assert 'expression TursoToken = "" meta [IsParameterQuery = true' in expressions
    assert 'shared TursoToken = "" meta [IsParameterQuery = true' in params
    assert "expression TursoTable =\n" in expressions
    assert "sensitive" in params and "sensitive" in expressions


def test_project_json_files_point_at_each_other(kit: tuple[Path, dict]) -> None:
    folder, _ = kit
    pbip = json.loads(read(folder, "TWMB.pbip"))
    report = folder / pbip["artifacts"][0]["report"]["path"]
    pbir = json.loads(read(report, "definition.pbir"))
    model = (report / pbir["datasetReference"]["byPath"]["path"]).resolve()
    assert model == (folder / "TWMB.SemanticModel").resolve()
    pbism = json.loads(read(model, "definition.pbism"))
    assert float(pbism["version"]) >= 4.0  # TMDL needs 4.0+
    for p in report.rglob("*.json"):
        assert "$schema" in json.loads(p.read_text(encoding="utf-8")), p


def test_tmdl_layout(kit: tuple[Path, dict]) -> None:
    folder, _ = kit
    for p in (folder / SM).rglob("*.tmdl"):
        for n, line in enumerate(p.read_text(encoding="utf-8").split("\n"), 1):
            assert not line.startswith(" "), f"{p.name}:{n} indented with spaces"
            assert line == line.rstrip(), f"{p.name}:{n} trailing whitespace"
    model = read(folder, f"{SM}/model.tmdl")
    refs = re.findall(r"^ref table (\S+)$", model, flags=re.M)
    assert refs == [*STAR_TABLES, "_Measures"]


def test_kit_is_deterministic(tmp_path: Path, kit: tuple[Path, dict]) -> None:
    folder, res = kit
    before = {rel: (folder / rel).read_bytes() for rel in res["files"]}
    again = write_powerbi_kit(folder)
    assert again == {**res, "report": "kept"}
    assert {rel: (folder / rel).read_bytes() for rel in again["files"]} == before
    other = write_powerbi_kit(tmp_path / "other")
    assert {rel: (tmp_path / "other" / rel).read_bytes() for rel in other["files"]} == before
    for rel, data in before.items():
        assert b"\r" not in data, rel
        assert data.endswith(b"\n"), rel


def test_regeneration_keeps_the_report_and_drops_stale_tables(tmp_path: Path) -> None:
    folder = tmp_path / "kit"
    write_powerbi_kit(folder)
    page = folder / "TWMB.Report/definition/pages/risk_map/page.json"
    page.write_text('{"edited": true}\n', encoding="utf-8")
    stale = [folder / "powerquery/turso/old_table.pq", folder / SM / "tables/old_table.tmdl"]
    for p in stale:
        p.write_text("stale\n", encoding="utf-8")
    res = write_powerbi_kit(folder)
    assert page.read_text(encoding="utf-8") == '{"edited": true}\n'
    assert not any(p.exists() for p in stale)
    assert "powerquery/turso/old_table.pq" not in res["files"]


def test_parquet_source_model(tmp_path: Path) -> None:
    res = write_powerbi_kit(tmp_path / "kit", source="parquet", star_folder="D:\\data\\star")
    assert res["source"] == "parquet"
    folder = tmp_path / "kit"
    for t in STAR_TABLES:
        tmdl = read(folder, f"{SM}/tables/{t}.tmdl")
        assert f'\\parquet\\{t}.parquet",' in tmdl
        assert "TursoTable" not in tmdl
    expressions = read(folder, f"{SM}/expressions.tmdl")
    assert "TursoTable" not in expressions
    assert 'expression StarFolder = "D:\\data\\star" meta' in expressions
    with pytest.raises(InputDataError, match="source must be one of"):
        write_powerbi_kit(tmp_path / "bad", source="excel")


# --------------------------------------------------------------------------- broken contracts
def test_renamed_contract_column_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch_contract(monkeypatch, "fact_break", lambda s: rename(s, "breaks", "break_count"))
    with pytest.raises(ContractError) as exc:
        write_powerbi_kit(tmp_path / "kit")
    msg = str(exc.value)
    assert "'Total Breaks' reads fact_break[breaks]" in msg
    assert "star/fact_break" in msg
    assert not (tmp_path / "kit").exists()  # nothing written


def test_unsafe_contract_column_name_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch_contract(monkeypatch, "dim_pipe", lambda s: rename(s, "material", 'material"; DROP'))
    with pytest.raises(
        InputDataError, match=r"column of star/dim_pipe .*not a safe SQL identifier"
    ):
        write_powerbi_kit(tmp_path / "kit")


def test_missing_key_column_and_unknown_type_fail_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def change(sch: TableSchema) -> TableSchema:
        sch = rename(sch, "cell_key", "h3_key")
        fields = tuple(
            dataclasses.replace(f, type="wkb") if f.name == "wkt" else f for f in sch.fields
        )
        return dataclasses.replace(sch, fields=fields)

    patch_contract(monkeypatch, "dim_h3_cell", change)
    with pytest.raises(ContractError) as exc:
        write_powerbi_kit(tmp_path / "kit")
    assert "star/dim_h3_cell has no key column 'cell_key'" in str(exc.value)
    assert "star/dim_h3_cell.wkt: type 'wkb' has no Power BI type" in str(exc.value)


# --------------------------------------------------------------------------- CLI and API
def test_cli_powerbi_json(tmp_path: Path) -> None:
    doc = ok_json(twmb("--out", tmp_path, "powerbi", "--json"))
    assert doc["command"] == "powerbi"
    assert doc["folder"] == str(tmp_path / "powerbi")
    assert doc["tables"] == 13
    assert doc["relationships"] > 0 and doc["measures"] >= len(MEASURES)
    for rel in doc["files"]:
        assert (tmp_path / "powerbi" / rel).is_file(), rel
    star = str((tmp_path / "star").resolve()).replace('"', '""')
    expressions = read(tmp_path / "powerbi", f"{SM}/expressions.tmdl")
    assert f'expression StarFolder = "{star}" meta' in expressions


def test_cli_powerbi_human_folder_and_source(tmp_path: Path) -> None:
    r = twmb("--out", tmp_path, "powerbi", "--folder", tmp_path / "kit", "--source", "parquet")
    assert r.exit_code == 0, show(r)
    assert "Power BI kit in" in r.stdout and "13 tables" in r.stdout
    assert "Parquet.Document" in read(tmp_path / "kit", f"{SM}/tables/fact_break.tmdl")
    assert "starter report written" in r.stdout
    page = tmp_path / "kit/TWMB.Report/definition/pages/trend/page.json"
    page.write_text("{}\n", encoding="utf-8")
    r = twmb("--out", tmp_path, "powerbi", "--folder", tmp_path / "kit")
    assert "starter report kept" in r.stdout and page.read_text(encoding="utf-8") == "{}\n"
    r = twmb("--out", tmp_path, "powerbi", "--folder", tmp_path / "kit", "--replace-report")
    assert "starter report written" in r.stdout and '"trend"' in page.read_text(encoding="utf-8")
    r = twmb("powerbi", "--help")
    assert r.exit_code == 0 and "--source" in r.stdout and "--json" in r.stdout
    assert "  powerbi " in twmb("--help").stdout


def test_star_folder_is_kept_as_the_power_bi_machine_sees_it(tmp_path: Path) -> None:
    windows = "D:\\bi\\twmb\\star"
    r = twmb("--out", tmp_path, "powerbi", "--folder", tmp_path / "kit", "--star-folder", windows)
    assert r.exit_code == 0, show(r)
    params = read(tmp_path / "kit", "powerquery/parameters.pq")
    assert f'"{windows}"' in params and str(tmp_path) not in params
    assert f'"{windows}"' in read(tmp_path / "kit", f"{SM}/expressions.tmdl")
    r = twmb("--out", tmp_path, "powerbi", "--folder", tmp_path / "kit2")  # default: here
    assert r.exit_code == 0, show(r)
    assert str((tmp_path / "star").resolve()) in read(tmp_path / "kit2", "powerquery/parameters.pq")


def test_cli_broken_contract_exit_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    patch_contract(monkeypatch, "fact_hotspot", lambda s: rename(s, "cluster", "lisa_class"))
    msg = error_text(twmb("--out", tmp_path, "powerbi"), 4)
    assert "'Hot-Spot Cells' reads fact_hotspot[cluster]" in msg


def test_public_api(tmp_path: Path) -> None:
    cfg = tw.default_config(tmp_path)
    res = tw.write_powerbi_kit(cfg)
    assert res.folder == tmp_path / "powerbi"
    assert "write_powerbi_kit" in tw.__all__
