"""The starter report of the Power BI kit: pages, visuals, fields and Microsoft's PBIR schemas."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from tests.pbir_validation import ENV, schema_folder, validate_kit
from twmb_geo.errors import ContractError
from twmb_geo.publish.powerbi import write_powerbi_kit
from twmb_geo.publish.powerbi.common import kit_schemas
from twmb_geo.publish.powerbi.measures import kit_measures
from twmb_geo.publish.powerbi.report import (
    PAGE_HEIGHT,
    PAGE_WIDTH,
    Filter,
    Visual,
    check_report,
    column,
    measure,
    starter_pages,
)

REPORT = "TWMB.Report/definition"
TABLES = "TWMB.SemanticModel/definition/tables"


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pbi") / "kit"
    write_powerbi_kit(folder, city="Testville")
    return folder


def _model_fields(folder: Path) -> dict[str, dict[str, bool]]:
    """``{table: {column or measure: hidden}}`` read back from the written TMDL."""
    fields: dict[str, dict[str, bool]] = {}
    for p in sorted((folder / TABLES).glob("*.tmdl")):
        text = p.read_text(encoding="utf-8")
        table: dict[str, bool] = {}
        for m in re.finditer(
            r"^\t(column|measure) ('[^']+'|\S+)(.*?)(?=^\t\S|\Z)", text, re.M | re.S
        ):
            table[m.group(2).strip("'")] = "\n\t\tisHidden" in m.group(3)
        fields[p.stem] = table
    return fields


def _field_refs(node: object) -> list[tuple[str, str]]:
    """Every ``(entity, property)`` a PBIR query expression refers to by entity."""
    out: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for kind in ("Column", "Measure"):
            ref = node.get(kind)
            if isinstance(ref, dict) and "Entity" in ref["Expression"]["SourceRef"]:
                out.append((ref["Expression"]["SourceRef"]["Entity"], ref["Property"]))
        for value in node.values():
            out += _field_refs(value)
    elif isinstance(node, list):
        for value in node:
            out += _field_refs(value)
    return out


def test_four_pages_in_order_with_slicers(kit: Path) -> None:
    pages = json.loads((kit / REPORT / "pages/pages.json").read_text(encoding="utf-8"))
    assert pages["pageOrder"] == ["risk_map", "trend", "ranking", "model"]
    assert pages["activePageName"] == "risk_map"
    folders = sorted(p.name for p in (kit / REPORT / "pages").iterdir() if p.is_dir())
    assert folders == sorted(pages["pageOrder"])
    for name in pages["pageOrder"]:
        page = json.loads((kit / REPORT / f"pages/{name}/page.json").read_text(encoding="utf-8"))
        assert page["name"] == name
        visuals = [
            json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((kit / REPORT / f"pages/{name}/visuals").glob("*/visual.json"))
        ]
        slicers = [
            (ref["queryRef"])
            for v in visuals
            if v["visual"]["visualType"] == "slicer"
            for ref in v["visual"]["query"]["queryState"]["Values"]["projections"]
        ]
        assert "dim_neighbourhood.neighbourhood_name" in slicers, name
        assert "dim_year.year_label" in slicers, name
        types = {v["visual"]["visualType"] for v in visuals}
        expected = {
            "risk_map": "azureMap",
            "trend": "lineChart",
            "ranking": "tableEx",
            "model": "clusteredBarChart",
        }
        assert expected[name] in types
        assert page["width"] == PAGE_WIDTH and page["height"] == PAGE_HEIGHT
        for v in visuals:
            pos = v["position"]
            assert pos["x"] >= 0 and pos["x"] + pos["width"] <= PAGE_WIDTH, v["name"]
            assert pos["y"] >= 0 and pos["y"] + pos["height"] <= PAGE_HEIGHT, v["name"]
    first = json.loads((kit / REPORT / "pages/risk_map/page.json").read_text(encoding="utf-8"))
    assert first["displayName"] == "Testville — risk map"


def test_every_visual_field_is_a_visible_column_or_measure_of_the_model(kit: Path) -> None:
    fields = _model_fields(kit)
    assert "Total Breaks" in fields["_Measures"] and fields["dim_year"]["year_key"] is True
    seen = set()
    for p in sorted((kit / REPORT / "pages").rglob("visual.json")):
        doc = json.loads(p.read_text(encoding="utf-8"))
        assert doc["name"] == p.parent.name and len(doc["name"]) <= 50
        for entity, prop in _field_refs(doc):
            assert prop in fields.get(entity, {}), f"{p.parent.name}: {entity}[{prop}]"
            assert not fields[entity][prop], f"{p.parent.name}: {entity}[{prop}] is hidden"
            seen.add((entity, prop))
    # the pages use the facts and dimensions the issue asks for
    for ref in [
        ("fact_risk_score", "tier"),
        ("fact_simulation", "cumulative_breaks"),
        ("fact_cv_metric", "value"),
        ("dim_date", "month_short"),
        ("fact_risk_score", "drivers"),
        ("_Measures", "Total Breaks"),
    ]:
        assert ref in seen, ref


def test_filters_are_named_uniquely_and_select_contract_values(kit: Path) -> None:
    names = []
    for p in sorted((kit / REPORT / "pages").rglob("visual.json")):
        for f in (
            json.loads(p.read_text(encoding="utf-8")).get("filterConfig", {}).get("filters", [])
        ):
            names.append(f["name"])
            cond = f["filter"]["Where"][0]["Condition"]
            cond = cond["Not"]["Expression"]["In"] if "Not" in cond else cond["In"]
            values = [v[0]["Literal"]["Value"] for v in cond["Values"]]
            assert values and all(re.fullmatch(r"'[^']*'|true|false|-?\d+L", v) for v in values)
    assert len(names) == len(set(names)) and names
    risk_map = json.loads(
        (kit / REPORT / "pages/risk_map/visuals/map_breaks_cells/visual.json").read_text(
            encoding="utf-8"
        )
    )
    (only,) = risk_map["filterConfig"]["filters"]
    excluded = only["filter"]["Where"][0]["Condition"]["Not"]["Expression"]["In"]["Values"]
    assert excluded == [
        [{"Literal": {"Value": "'unknown'"}}],
        [{"Literal": {"Value": "'not applicable'"}}],
    ]
    ranking = json.loads(
        (kit / REPORT / "pages/ranking/visuals/ranking_top_units/visual.json").read_text(
            encoding="utf-8"
        )
    )
    sort = ranking["visual"]["query"]["sortDefinition"]["sort"]
    assert sort[0]["direction"] == "Ascending"
    assert sort[0]["field"]["Column"]["Property"] == "rank"


def test_check_report_lists_every_problem() -> None:
    schemas, measures = kit_schemas(), kit_measures()
    check_report(starter_pages(), schemas, measures)  # the shipped report is consistent
    page = starter_pages()[0]
    broken_visuals = (
        replace(page.visuals[0], roles={"Values": (column("dim_year", "no_such_column"),)}),
        replace(page.visuals[1], x=PAGE_WIDTH - 10),
        Visual("bad_measure", "card", 0, 700, 10, 10, {"Values": (measure("Nope"),)}),
        Visual(
            "bad_filter",
            "card",
            20,
            700,
            10,
            10,
            {"Values": (measure("Total Breaks"),)},
            filters=(Filter(column("fact_risk_score", "unit_type"), ("pipes",)),),
        ),
        Visual("x" * 51, "card", 40, 700, 10, 10, {"Values": (measure("Total Breaks"),)}),
        Visual("overlap", "card", 16, 8, 10, 10, {"Values": (measure("Total Breaks"),)}),
    )
    broken = replace(page, visuals=broken_visuals)
    with pytest.raises(ContractError) as info:
        check_report([broken], schemas, measures)
    text = str(info.value) + "\n".join(info.value.problems)
    assert "dim_year[no_such_column]" in text
    assert "outside the 1280x720 page" in text
    assert "unknown measure [Nope]" in text
    assert "'pipes' does not fit fact_risk_score.unit_type" in text
    assert "longer than 50" in text
    assert "overlap" in text


def test_existing_report_is_kept_unless_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "kit"
    assert write_powerbi_kit(folder)["report"] == "written"
    page = folder / REPORT / "pages/risk_map/page.json"
    page.write_text('{"edited": true}\n', encoding="utf-8")
    (folder / REPORT / "pages/mine").mkdir()
    assert write_powerbi_kit(folder)["report"] == "kept"
    assert page.read_text(encoding="utf-8") == '{"edited": true}\n'
    assert write_powerbi_kit(folder, replace_report=True)["report"] == "written"
    assert json.loads(page.read_text(encoding="utf-8"))["name"] == "risk_map"
    assert not (folder / REPORT / "pages/mine").exists()


@pytest.mark.skipif(
    schema_folder() is None,
    reason=f"set {ENV} to a copy of github.com/microsoft/json-schemas to validate the PBIR files",
)
def test_kit_validates_against_microsofts_json_schemas(kit: Path) -> None:
    folder = schema_folder()
    assert folder is not None
    n, problems = validate_kit(kit, folder)
    assert not problems, "\n".join(problems[:40])
    assert n == sum(1 for p in kit.rglob("*") if p.suffix in (".json", ".pbir", ".pbism", ".pbip"))


def test_schema_validation_catches_a_broken_visual(kit: Path, tmp_path: Path) -> None:
    """The validator itself: a visual without the required position fails, on a stub schema."""
    schemas = tmp_path / "schemas"
    url = "https://developer.microsoft.com/json-schemas/fabric/item/report/definition/visualContainer/1.0.0/schema.json"
    target = schemas / url.split("json-schemas/")[1]
    target.parent.mkdir(parents=True)
    target.write_text(
        json.dumps(
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "required": ["position"],
            }
        ),
        encoding="utf-8",
    )
    one = tmp_path / "one"
    src = next((kit / REPORT / "pages").rglob("visual.json"))
    doc = json.loads(src.read_text(encoding="utf-8"))
    (one / "a").mkdir(parents=True)
    (one / "a/visual.json").write_text(json.dumps(doc), encoding="utf-8")
    del doc["position"]
    (one / "b").mkdir()
    (one / "b/visual.json").write_text(json.dumps(doc), encoding="utf-8")
    (one / "c.json").write_text(
        '{"$schema": "https://developer.microsoft.com/json-schemas/x.json"}'
    )
    n, problems = validate_kit(one, schemas)
    assert n == 2
    assert any(
        p.startswith("b/visual.json") and "'position' is a required property" in p for p in problems
    )
    assert any(p.startswith("c.json") and "not found" in p for p in problems)
    assert not any(p.startswith("a/") for p in problems)
