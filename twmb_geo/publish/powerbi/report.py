"""The starter report (PBIR): four pages of visuals bound to the semantic model.

Pages are declared as data (:class:`Page` of :class:`Visual` of :class:`FieldRef`) and turned
into the PBIR JSON files of the report folder; :func:`check_report` checks every field,
filter value and position against the star contracts and the measures before anything is
written, so a renamed column fails the generation, not the report in Desktop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...contracts import TableSchema
from ...errors import ContractError
from ..star import SPECIAL_CODES
from .common import (
    MEASURES_TABLE,
    REPORT,
    SCHEMA_URL,
    SEMANTIC_MODEL,
    contract_field,
    json_lines,
)
from .measures import Measure

__all__ = [
    "PAGE_HEIGHT",
    "PAGE_WIDTH",
    "FieldRef",
    "Page",
    "Visual",
    "check_report",
    "report_files",
    "starter_pages",
]

PAGE_WIDTH = 1280
PAGE_HEIGHT = 720
#: PBIR names of visuals are at most 50 characters (visualContainer schema)
MAX_NAME = 50
_BASE = f"{SCHEMA_URL}/item/report"
_VISUAL_SCHEMA = f"{_BASE}/definition/visualContainer/1.0.0/schema.json"
#: aggregation name -> semantic-query function code
_AGGREGATIONS = {"Sum": 0, "Average": 1, "Min": 3, "Max": 4}


@dataclass(frozen=True)
class FieldRef:
    """A column, a measure of ``_Measures`` or an aggregated column of the model."""

    table: str
    name: str
    aggregation: str | None = None

    @property
    def is_measure(self) -> bool:
        return self.table == MEASURES_TABLE

    def expression(self, source: str | None = None) -> dict[str, Any]:
        """The semantic-query expression; ``source`` refers to a filter's ``From`` alias."""
        ref = {"Source": source} if source else {"Entity": self.table}
        kind = "Measure" if self.is_measure else "Column"
        expr: dict[str, Any] = {kind: {"Expression": {"SourceRef": ref}, "Property": self.name}}
        if self.aggregation:
            expr = {
                "Aggregation": {"Expression": expr, "Function": _AGGREGATIONS[self.aggregation]}
            }
        return expr

    @property
    def query_ref(self) -> str:
        ref = f"{self.table}.{self.name}"
        return f"{self.aggregation}({ref})" if self.aggregation else ref

    def projection(self) -> dict[str, Any]:
        native = f"{self.aggregation} of {self.name}" if self.aggregation else self.name
        return {"field": self.expression(), "queryRef": self.query_ref, "nativeQueryRef": native}


def column(table: str, name: str) -> FieldRef:
    return FieldRef(table, name)


def measure(name: str) -> FieldRef:
    return FieldRef(MEASURES_TABLE, name)


def total(table: str, name: str, how: str = "Sum") -> FieldRef:
    return FieldRef(table, name, how)


@dataclass(frozen=True)
class Filter:
    """A visual-level filter: ``field`` in ``values`` (texts, booleans or integers), or not
    in them when ``exclude``."""

    field: FieldRef
    values: tuple[str | bool | int, ...]
    exclude: bool = False


@dataclass(frozen=True)
class Visual:
    """One visual container: its type, place, field wells, filters and title."""

    name: str
    visual_type: str
    x: int
    y: int
    width: int
    height: int
    roles: Mapping[str, tuple[FieldRef, ...]]
    title: str = ""
    filters: tuple[Filter, ...] = ()
    sort: tuple[tuple[FieldRef, str], ...] = ()
    objects: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    name: str
    display_name: str
    visuals: tuple[Visual, ...]


# -- the pages ----------------------------------------------------------------------------
_CURRENT = Filter(column("fact_risk_score", "is_current"), (True,))
_CELLS = Filter(column("fact_risk_score", "unit_type"), ("cell",))
#: map points only for real cells (the special members have no coordinates)
_REAL_CELLS = Filter(column("dim_h3_cell", "h3_index"), SPECIAL_CODES, exclude=True)


def _slicers(page: str) -> tuple[Visual, ...]:
    """The neighbourhood and year slicers at the top of every page."""
    return (
        Visual(
            f"{page}_slicer_neighbourhood",
            "slicer",
            16,
            8,
            300,
            56,
            {"Values": (column("dim_neighbourhood", "neighbourhood_name"),)},
            objects={"data": {"mode": "'Dropdown'"}},
        ),
        Visual(
            f"{page}_slicer_year",
            "slicer",
            332,
            8,
            220,
            56,
            {"Values": (column("dim_year", "year_label"),)},
            objects={"data": {"mode": "'Dropdown'"}},
        ),
    )


def _card(name: str, x: int, what: FieldRef, title: str) -> Visual:
    return Visual(name, "card", x, 8, 170, 56, {"Values": (what,)}, title=title)


def _map_page() -> Page:
    # Azure Maps roles: Category is the location (one point per cell), Y/X its latitude
    # and longitude (so nothing is geocoded), Series the legend
    cell_point = {
        "Category": (column("dim_h3_cell", "h3_index"),),
        "Y": (column("dim_h3_cell", "centroid_lat"),),
        "X": (column("dim_h3_cell", "centroid_lon"),),
    }
    return Page(
        "risk_map",
        "Risk map",
        (
            *_slicers("map"),
            _card("map_card_breaks", 568, measure("Total Breaks"), "Breaks"),
            _card(
                "map_card_expected", 748, measure("Expected Breaks Next Year"), "Expected next year"
            ),
            _card("map_card_risk", 928, measure("Average Risk"), "Average risk"),
            _card(
                "map_card_high",
                1098,
                measure("Share of Length in High Tier"),
                "Length in high tiers",
            ),
            Visual(
                "map_risk_cells",
                "azureMap",
                16,
                76,
                616,
                628,
                {
                    **cell_point,
                    "Series": (column("fact_risk_score", "tier"),),
                    "Size": (total("fact_risk_score", "expected_breaks"),),
                    "Tooltips": (total("fact_risk_score", "probability", "Max"),),
                },
                title="Risk by H3 cell (current scores; colour = tier, size = expected breaks)",
                filters=(_CURRENT, _CELLS, _REAL_CELLS),
            ),
            Visual(
                "map_breaks_cells",
                "azureMap",
                648,
                76,
                616,
                628,
                {**cell_point, "Size": (measure("Total Breaks"),)},
                title="Recorded breaks by H3 cell (selected years)",
                filters=(_REAL_CELLS,),
            ),
        ),
    )


def _trend_page() -> Page:
    year = column("dim_year", "year")
    return Page(
        "trend",
        "Trend",
        (
            *_slicers("trend"),
            _card("trend_card_breaks", 568, measure("Total Breaks"), "Breaks"),
            _card("trend_card_rolling", 748, measure("Rolling 12-Month Breaks"), "Last 12 months"),
            _card(
                "trend_card_yoy", 928, measure("Breaks YoY Change (%)"), "Change on a year earlier"
            ),
            _card(
                "trend_card_rate", 1098, measure("Breaks per 100 km per Year"), "Per 100 km a year"
            ),
            Visual(
                "trend_breaks_by_year",
                "lineChart",
                16,
                76,
                760,
                310,
                {"Category": (year,), "Y": (measure("Total Breaks"),)},
                title="Breaks by year",
            ),
            Visual(
                "trend_breaks_by_month",
                "clusteredColumnChart",
                792,
                76,
                472,
                310,
                {"Category": (column("dim_date", "month_short"),), "Y": (measure("Total Breaks"),)},
                title="Breaks by month of the year (seasonality)",
            ),
            Visual(
                "trend_outlook_band",
                "lineChart",
                16,
                398,
                1248,
                306,
                {
                    "Category": (year,),
                    "Series": (column("fact_simulation", "statistic"),),
                    "Y": (total("fact_simulation", "cumulative_breaks"),),
                },
                title="Outlook: cumulative breaks from the target year (Monte Carlo p10, p50, p90; H3 cells)",
                filters=(
                    Filter(column("fact_simulation", "is_current"), (True,)),
                    Filter(column("fact_simulation", "scenario"), ("baseline",)),
                    Filter(column("fact_simulation", "unit_type"), ("cell",)),
                    Filter(column("fact_simulation", "statistic"), ("p10", "p50", "p90")),
                ),
            ),
        ),
    )


def _ranking_page() -> Page:
    rank = column("fact_risk_score", "rank")
    return Page(
        "ranking",
        "Ranking",
        (
            *_slicers("ranking"),
            Visual(
                "ranking_slicer_unit_type",
                "slicer",
                568,
                8,
                220,
                56,
                {"Values": (column("fact_risk_score", "unit_type"),)},
                objects={"data": {"mode": "'Dropdown'"}},
            ),
            _card(
                "ranking_card_expected",
                804,
                measure("Expected Breaks Next Year"),
                "Expected next year",
            ),
            _card(
                "ranking_card_high",
                990,
                measure("Share of Length in High Tier"),
                "Length in high tiers",
            ),
            Visual(
                "ranking_top_units",
                "tableEx",
                16,
                76,
                1248,
                628,
                {
                    "Values": (
                        rank,
                        column("fact_risk_score", "unit_type"),
                        column("dim_h3_cell", "h3_index"),
                        column("dim_pipe", "unit_id"),
                        column("dim_street_segment", "name"),
                        column("dim_neighbourhood", "neighbourhood_name"),
                        column("fact_risk_score", "tier"),
                        total("fact_risk_score", "probability", "Max"),
                        total("fact_risk_score", "expected_breaks"),
                        column("fact_risk_score", "drivers"),
                    )
                },
                title="Riskiest units of the current scores, with the drivers of each score",
                filters=(_CURRENT,),
                sort=((rank, "Ascending"),),
            ),
        ),
    )


def _model_page() -> Page:
    capture = Filter(column("fact_cv_metric", "metric"), ("capture_5pct",))
    return Page(
        "model",
        "Model",
        (
            *_slicers("model"),
            Visual(
                "model_capture_by_candidate",
                "clusteredBarChart",
                16,
                76,
                616,
                400,
                {
                    "Category": (column("fact_cv_metric", "model"),),
                    "Series": (column("fact_cv_metric", "scheme"),),
                    "Y": (total("fact_cv_metric", "value", "Average"),),
                },
                title="Share of next-year breaks in the top 5 % (mean over folds): champion vs baselines",
                filters=(capture,),
            ),
            Visual(
                "model_capture_by_year",
                "lineChart",
                648,
                76,
                616,
                400,
                {
                    "Category": (column("dim_year", "year"),),
                    "Series": (column("fact_cv_metric", "model"),),
                    "Y": (total("fact_cv_metric", "value", "Average"),),
                },
                title="Forward validation by year predicted: capture at 5 %",
                filters=(capture, Filter(column("fact_cv_metric", "scheme"), ("forward",))),
            ),
            Visual(
                "model_registry",
                "tableEx",
                16,
                488,
                1248,
                216,
                {
                    "Values": tuple(
                        column("dim_model", c)
                        for c in (
                            "model_version",
                            "unit_type",
                            "kind",
                            "train_end",
                            "forward_capture_5pct",
                            "best_baseline",
                            "best_baseline_capture_5pct",
                            "spatial_capture_5pct",
                            "forward_roc_auc",
                        )
                    )
                },
                title="Published models: forward skill against the best baseline",
            ),
        ),
    )


def starter_pages() -> tuple[Page, ...]:
    """The map, trend, ranking and model pages of the starter report."""
    return (_map_page(), _trend_page(), _ranking_page(), _model_page())


# -- checking -----------------------------------------------------------------------------
def _field_problems(
    where: str, ref: FieldRef, schemas: Mapping[str, TableSchema], measures: set[str]
) -> list[str]:
    if ref.is_measure:
        return [] if ref.name in measures else [f"{where}: unknown measure [{ref.name}]"]
    if ref.table not in schemas:
        return [f"{where}: {ref.table!r} is not a star table"]
    f = contract_field(schemas[ref.table], ref.name)
    if f is None:
        return [f"{where}: no column {ref.table}[{ref.name}] in star/{ref.table}"]
    if ref.aggregation and f.type not in ("int32", "int64", "float64"):
        return [f"{where}: {ref.aggregation} of {ref.table}[{ref.name}] ({f.type}) is not numeric"]
    return []


def _filter_problems(where: str, flt: Filter, schemas: Mapping[str, TableSchema]) -> list[str]:
    f = contract_field(schemas.get(flt.field.table), flt.field.name)
    if f is None or not flt.values:
        return [] if flt.values else [f"{where}: filter on {flt.field.query_ref} has no values"]
    problems = []
    for v in flt.values:
        ok = {
            "bool": isinstance(v, bool),
            "string": isinstance(v, str) and (f.enum is None or v in f.enum),
        }.get(f.type, isinstance(v, int) and not isinstance(v, bool))
        if not ok:
            problems.append(
                f"{where}: filter value {v!r} does not fit {flt.field.query_ref} "
                f"({f.type}{', one of ' + str(list(f.enum)) if f.enum else ''})"
            )
    return problems


def check_report(
    pages: Sequence[Page], schemas: Mapping[str, TableSchema], measures: Sequence[Measure]
) -> None:
    """Every field and filter of the report exists in the model and every visual fits its page.

    Raises
    ------
    ContractError
        Listing every problem: unknown tables, columns or measures, aggregations of
        non-numeric columns, filter values the contract does not allow, visuals outside the
        page or overlapping, names that are duplicated or longer than PBIR allows.
    """
    names = {m.name for m in measures}
    problems: list[str] = []
    if len({p.name for p in pages}) != len(pages):
        problems.append("page names are not unique")
    for page in pages:
        seen: set[str] = set()
        for v in page.visuals:
            where = f"page {page.name!r}, visual {v.name!r}"
            if v.name in seen or len(v.name) > MAX_NAME:
                problems.append(f"{where}: name is duplicated or longer than {MAX_NAME} characters")
            seen.add(v.name)
            if v.x < 0 or v.y < 0 or v.x + v.width > PAGE_WIDTH or v.y + v.height > PAGE_HEIGHT:
                problems.append(f"{where}: outside the {PAGE_WIDTH}x{PAGE_HEIGHT} page")
            for role, refs in v.roles.items():
                if not refs:
                    problems.append(f"{where}: role {role!r} has no field")
                for ref in refs:
                    problems += _field_problems(f"{where}, {role}", ref, schemas, names)
            for flt in v.filters:
                problems += _field_problems(f"{where}, filter", flt.field, schemas, names)
                problems += _filter_problems(where, flt, schemas)
        boxes = [(v.name, v.x, v.y, v.x + v.width, v.y + v.height) for v in page.visuals]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]:
                    problems.append(f"page {page.name!r}: visuals {a[0]!r} and {b[0]!r} overlap")
    if problems:
        raise ContractError(
            "the starter report does not match the semantic model; update "
            "twmb_geo/publish/powerbi/report.py",
            problems,
        )


# -- PBIR JSON ----------------------------------------------------------------------------
def _literal(value: str | bool | int) -> dict[str, Any]:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = f"{value}L"
    else:
        text = "'" + value.replace("'", "''") + "'"
    return {"Literal": {"Value": text}}


def _filter_json(name: str, flt: Filter) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "In": {
            "Expressions": [flt.field.expression(source="t")],
            "Values": [[_literal(v)] for v in flt.values],
        }
    }
    if flt.exclude:
        condition = {"Not": {"Expression": condition}}
    return {
        "name": name,
        "field": flt.field.expression(),
        "type": "Categorical",
        "filter": {
            "Version": 2,
            "From": [{"Name": "t", "Entity": flt.field.table, "Type": 0}],
            "Where": [{"Condition": condition}],
        },
    }


def _properties(props: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"properties": {k: {"expr": {"Literal": {"Value": v}}} for k, v in props.items()}}]


def _visual_json(v: Visual, z: int) -> dict[str, Any]:
    query: dict[str, Any] = {
        "queryState": {
            role: {"projections": [r.projection() for r in refs]} for role, refs in v.roles.items()
        }
    }
    if v.sort:
        query["sortDefinition"] = {
            "sort": [{"field": r.expression(), "direction": d} for r, d in v.sort],
            "isDefaultSort": False,
        }
    visual: dict[str, Any] = {"visualType": v.visual_type, "query": query}
    if v.objects:
        visual["objects"] = {k: _properties(p) for k, p in v.objects.items()}
    if v.title:
        title = {"show": "true", "text": "'" + v.title.replace("'", "''") + "'"}
        visual["visualContainerObjects"] = {"title": _properties(title)}
    out: dict[str, Any] = {
        "$schema": _VISUAL_SCHEMA,
        "name": v.name,
        "position": {
            "x": v.x,
            "y": v.y,
            "z": z,
            "width": v.width,
            "height": v.height,
            "tabOrder": z,
        },
        "visual": visual,
    }
    if v.filters:
        out["filterConfig"] = {
            "filters": [_filter_json(f"{v.name}_f{i}", f) for i, f in enumerate(v.filters)]
        }
    return out


def report_files(city: str = "", pages: Sequence[Page] | None = None) -> dict[str, list[str]]:
    """The PBIR files of the starter report bound to the semantic model.

    The first page's display name carries the city (``"<city> — risk map"``).
    """
    pages = tuple(pages if pages is not None else starter_pages())
    definition = f"{REPORT}/definition"
    files: dict[str, list[str]] = {
        f"{REPORT}/definition.pbir": json_lines(
            {
                "$schema": f"{_BASE}/definitionProperties/2.0.0/schema.json",
                "version": "4.0",
                "datasetReference": {"byPath": {"path": f"../{SEMANTIC_MODEL}"}},
            }
        ),
        f"{definition}/version.json": json_lines(
            {"$schema": f"{_BASE}/definition/versionMetadata/1.0.0/schema.json", "version": "2.0.0"}
        ),
        f"{definition}/report.json": json_lines(
            {
                "$schema": f"{_BASE}/definition/report/1.0.0/schema.json",
                "themeCollection": {},
                "layoutOptimization": "None",
            }
        ),
        f"{definition}/pages/pages.json": json_lines(
            {
                "$schema": f"{_BASE}/definition/pagesMetadata/1.0.0/schema.json",
                "pageOrder": [p.name for p in pages],
                "activePageName": pages[0].name,
            }
        ),
    }
    for i, page in enumerate(pages):
        display = f"{city} — {page.display_name.lower()}" if city and i == 0 else page.display_name
        files[f"{definition}/pages/{page.name}/page.json"] = json_lines(
            {
                "$schema": f"{_BASE}/definition/page/1.0.0/schema.json",
                "name": page.name,
                "displayName": display,
                "displayOption": "FitToPage",
                "height": PAGE_HEIGHT,
                "width": PAGE_WIDTH,
            }
        )
        for z, v in enumerate(page.visuals):
            files[f"{definition}/pages/{page.name}/visuals/{v.name}/visual.json"] = json_lines(
                _visual_json(v, z)
            )
    return files
