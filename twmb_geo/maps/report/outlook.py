"""The outlook section: Monte Carlo bands of cumulative breaks and the renewal scenario."""

from __future__ import annotations

import re

from . import queries
from ._format import fmt_int, fmt_num, fmt_pct, missing, plural, unit_key
from .charts import simulation_chart
from .document import SECTIONS, Block, Code, Figure, Heading, Section, note, para, table
from .queries import ReportContext

__all__ = ["simulation_section"]


def simulation_section(ctx: ReportContext) -> Section:
    """Monte Carlo bands per unit type and the renewal scenario."""
    sec = Section(SECTIONS[6])
    if not ctx.has("simulation_city"):
        sec.blocks.append(
            note("No Monte Carlo simulation in the store (the model stage did not run).")
        )
    else:
        sec.blocks += _band_blocks(ctx)
    sec.blocks += _renewal_blocks(ctx)
    return sec


def _band_blocks(ctx: ReportContext) -> list[Block]:
    """Fan chart and table of cumulative breaks by horizon per unit type."""
    city = queries.simulation_city(ctx)
    if city.empty:
        return [note("No current Monte Carlo simulation in the store.")]
    blocks: list[Block] = []
    for unit_type in sorted(city["unit_type"].unique(), key=unit_key):
        part = city[city["unit_type"] == unit_type]
        base = part[part["scenario"] == "baseline"]
        first = part.iloc[0]
        blocks.append(Heading(f"Cumulative breaks, {plural(unit_type)}"))
        blocks.append(
            para(
                f"{fmt_int(first['n_sims'])} simulations (seed {fmt_int(first['seed'])}) of model ",
                Code(str(first["model_version"])),
                "; a city-wide year factor carries the year-to-year swings of the forward "
                "validation into the bands.",
            )
        )
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", unit_type)
        blocks.append(
            Figure(
                f"simulation_{stem}.png",
                simulation_chart(part, unit_type),
                f"Simulated cumulative breaks, {plural(unit_type)}",
            )
        )
        rows = [
            (
                fmt_int(r.horizon),
                fmt_num(r.expected, 1),
                fmt_num(r.mean, 1),
                *(fmt_num(v, 0) for v in (r.p10, r.p50, r.p90, r.p95)),
            )
            for r in base.itertuples()
        ]
        blocks.append(
            table(
                ("years ahead", "expected", "mean", "P10", "P50", "P90", "P95"),
                rows,
                "rrrrrrr",
                caption="Cumulative breaks without renewal.",
            )
        )
    return blocks


def _renewal_blocks(ctx: ReportContext) -> list[Block]:
    """Breaks avoided by replacing the riskiest units, with the simulated band."""
    blocks: list[Block] = [Heading("Renewal scenario")]
    if not ctx.has("renewal"):
        return [*blocks, note("No renewal scenario in the store (the model stage did not run).")]
    ren = queries.renewal(ctx)
    if ren.empty:
        return [*blocks, note("No current renewal scenario in the store.")]
    rows = []
    for r in sorted(ren.itertuples(), key=lambda r: unit_key(r.unit_type)):
        replaced = f"{fmt_int(r.units_replaced)} units"
        if not missing(r.km_replaced):
            replaced = f"{fmt_num(r.km_replaced, 1)} km ({replaced})"
        rows.append(
            (
                plural(r.unit_type),
                fmt_int(r.horizon),
                replaced,
                fmt_pct(r.share_replaced, 2),
                fmt_pct(r.residual, 0),
                fmt_num(r.expected_breaks_baseline, 1),
                fmt_num(r.expected_breaks_after, 1),
                fmt_num(r.expected_breaks_avoided, 1),
                f"{fmt_num(r.avoided_p10, 0)}–{fmt_num(r.avoided_p90, 0)}",
                fmt_num(r.breaks_avoided_per_km, 2),
            )
        )
    header = (
        "units",
        "years",
        "replaced (riskiest first)",
        "share of network",
        "risk kept",
        "breaks without",
        "breaks with",
        "avoided",
        "avoided P10–P90",
        "avoided per km",
    )
    return [
        *blocks,
        para(
            "Replace the riskiest units now; replaced units keep the residual share of their "
            "risk. Breaks over the horizon, expected values; the avoided band is simulated "
            "with common random numbers."
        ),
        table(header, rows, "lrlrrrrrrr"),
    ]
