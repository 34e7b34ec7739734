"""The DAX measures of the kit and their check against the star contracts."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...contracts import TableSchema
from ...core.vocab import DEFAULT_TIERS
from ...errors import ContractError
from .common import contract_field, quoted

__all__ = ["Measure", "check_measures", "kit_measures", "measure_references"]

# DAX references: 'table'[column] or table[column], and bare [measure]
_COLUMN_REF = re.compile(r"(?:'((?:[^']|'')+)'|\b([A-Za-z_][A-Za-z0-9_]*))\[([^\]]+)\]")
_MEASURE_REF = re.compile(r"(?<![\w'\]])\[([^\]]+)\]")


_CURRENT = "fact_risk_score[is_current] = TRUE()"


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


def kit_measures(tiers: Sequence[tuple[str, float]] = DEFAULT_TIERS) -> tuple[Measure, ...]:
    """The DAX measures of the kit.

    ``tiers`` are the risk tiers ``(name, minimum percentile)`` from the riskiest (default
    :data:`~twmb_geo.core.vocab.DEFAULT_TIERS`); the "high" ones are the two riskiest.
    """
    high = _high_tiers(tiers)
    tier_set = "{" + ", ".join(quoted(t) for t in high) + "}"
    tier_words = " or ".join(high)
    return (
        *_break_measures(),
        *_risk_measures(),
        *_length_share_measures(tier_set, tier_words),
        *_hotspot_measures(),
    )


def _break_measures() -> tuple[Measure, ...]:
    """Break counts, trend and rate."""
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
            "counted twice; blank without pipe data. Slice it with dim_year and any spatial "
            "dimension (every unit-year row carries the keys of the places it lies in).",
            "Breaks",
            literals=(
                ("fact_unit_year", "unit_type", "pipe"),
                ("fact_unit_year", "unit_type", "cell"),
            ),
        ),
    )


def _risk_measures() -> tuple[Measure, ...]:
    """Risk of the current scoring run, for one unit type at a time."""
    current = _CURRENT
    return (
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
    )


def _length_share_measures(tier_set: str, tier_words: str) -> tuple[Measure, ...]:
    """The share of the scored network length in the high tiers."""
    current = _CURRENT
    return (
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
    )


def _hotspot_measures() -> tuple[Measure, ...]:
    """LISA hot spots."""
    return (
        Measure(
            "Hot-Spot Cells",
            "CALCULATE(\n"
            "    DISTINCTCOUNT(fact_hotspot[cell_key]),\n"
            '    fact_hotspot[unit_type] = "cell",\n'
            '    fact_hotspot[cluster] = "hot spot",\n'
            "    fact_hotspot[cell_key] > 0\n"
            ")",
            "#,0",
            "Number of distinct H3 cells in a significant high-high LISA cluster ('hot spot') "
            "in fact_hotspot; slice dim_year to one year and filter fact_hotspot[variable] to one "
            "variable.",
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


def check_measures(measures: Sequence[Measure], schemas: Mapping[str, TableSchema]) -> None:
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
            f = contract_field(schemas.get(table), column)
            if f is not None and f.enum is not None and value not in f.enum:
                problems.append(
                    f"measure {m.name!r} compares {table}[{column}] with {value!r}, which "
                    f"star/{table} does not allow (one of {list(f.enum)})"
                )
    if problems:
        raise ContractError(
            "the Power BI measures do not match the star contracts; update "
            "twmb_geo/publish/powerbi/measures.py or the contracts",
            problems,
        )
