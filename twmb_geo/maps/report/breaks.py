"""The sections on where and when breaks happen: by year, month and neighbourhood; hot spots."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ...core.vocab import HOTSPOT_ORDER
from ...store.summary import summarize
from . import queries
from ._format import fmt_int, fmt_num, fmt_pct, plural, unit_key
from .charts import MONTHS, months_chart, moran_chart, years_chart
from .document import SECTIONS, Block, Figure, Heading, Section, note, para, table
from .queries import ReportContext

__all__ = ["breaks_section", "hotspot_section"]


def breaks_section(ctx: ReportContext) -> Section:
    """Breaks per year and month and the top neighbourhoods (as ``summarize``)."""
    sec = Section(SECTIONS[1])
    if not ctx.has("breaks"):
        sec.blocks.append(note("No curated breaks in the store."))
        return sec
    summ = summarize(ctx.store, top=10)
    years = pd.Series(summ["breaks_per_year"], dtype="int64").sort_index()
    years = years.reindex(range(int(years.index.min()), int(years.index.max()) + 1), fill_value=0)
    span = queries.break_span(ctx)
    total = int(summ["breaks_total"])
    sec.blocks.append(
        para(
            f"{total:,} curated breaks dated {span['d0'].iloc[0]:%Y-%m-%d} to "
            f"{span['d1'].iloc[0]:%Y-%m-%d}: on average {years.mean():,.0f} a year, most in "
            f"{years.idxmax()} ({years.max():,}), fewest in {years.idxmin()} ({years.min():,})."
        )
    )
    sec.blocks.append(Figure("breaks_by_year.png", years_chart(years), "Recorded breaks per year"))
    sec.blocks += _month_blocks(ctx, len(years))
    sec.blocks += _neighbourhood_blocks(summ)
    return sec


def _month_blocks(ctx: ReportContext, n_years: int) -> list[Block]:
    """Seasonality: breaks per calendar month."""
    m = queries.breaks_per_month(ctx)
    per_month = pd.Series(m["n"].to_numpy(), index=m["month"].astype(int)).reindex(
        range(1, 13), fill_value=0
    )
    total = max(int(per_month.sum()), 1)
    hi, lo = int(per_month.idxmax()), int(per_month.idxmin())
    return [
        Heading("Seasonality"),
        para(
            f"Most breaks fall in {MONTHS[hi - 1]} ({fmt_pct(per_month[hi] / total)} of all), "
            f"fewest in {MONTHS[lo - 1]} ({fmt_pct(per_month[lo] / total)})."
        ),
        Figure(
            "breaks_by_month.png",
            months_chart(per_month, n_years),
            "Mean breaks per calendar month",
        ),
    ]


def _neighbourhood_blocks(summ: Mapping[str, Any]) -> list[Block]:
    """The top 10 neighbourhoods by breaks per year (``summarize``'s list)."""
    blocks: list[Block] = [Heading("Top 10 neighbourhoods by breaks per year")]
    top = summ.get("top_neighbourhoods")
    if not top:
        return [
            *blocks,
            note("No neighbourhood layer in this project: no neighbourhood breakdown."),
        ]
    rows = [
        (
            str(i),
            str(r["area_name"]),
            str(r["area_code"]),
            fmt_int(r["breaks"]),
            fmt_num(r["breaks_per_year"], 1),
            fmt_num(r["breaks_per_km2_per_year"], 2),
        )
        for i, r in enumerate(top, start=1)
    ]
    return [
        *blocks,
        table(
            ("rank", "neighbourhood", "code", "breaks", "per year", "per km² per year"),
            rows,
            "rllrrr",
        ),
    ]


def hotspot_section(ctx: ReportContext) -> Section:
    """Hot-spot persistence classes and Moran's I by year."""
    sec = Section(SECTIONS[3])
    sec.blocks += _persistence_blocks(ctx)
    sec.blocks += _moran_blocks(ctx)
    return sec


def _persistence_blocks(ctx: ReportContext) -> list[Block]:
    """Units per hot-spot persistence class and unit type."""
    blocks: list[Block] = [Heading("Hot-spot persistence classes")]
    if not ctx.has("hotspot_persistence"):
        return [*blocks, note("No hot-spot persistence in the store (features not built).")]
    hp = queries.hotspot_counts(ctx)
    if hp.empty:
        return [*blocks, note("No hot-spot persistence of breaks in the store.")]
    counts = hp.pivot(index="cls", columns="unit_type", values="n").fillna(0).astype(int)
    units = sorted(counts.columns, key=unit_key)
    order = [c for c in HOTSPOT_ORDER if c in counts.index]
    order += sorted(c for c in counts.index if c not in HOTSPOT_ORDER)
    rows = [(cls, *(fmt_int(counts.at[cls, u]) for u in units)) for cls in order]
    rows.append(("total", *(fmt_int(counts[u].sum()) for u in units)))
    blocks.append(
        para(
            "Units classed by how often they were a significant local Moran (LISA) hot spot "
            "of breaks over the years (persistent, emerging, intermittent or transient)."
        )
    )
    blocks.append(
        table(
            ("class", *(plural(u) for u in units)),
            rows,
            "l" + "r" * len(units),
            strong=[len(rows) - 1],
        )
    )
    return blocks


def _moran_blocks(ctx: ReportContext) -> list[Block]:
    """Global Moran's I of breaks per year (chart) and the latest value."""
    blocks: list[Block] = [Heading("Moran's I by year")]
    if not ctx.has("moran_global"):
        return [*blocks, note("No global Moran's I in the store (features not built).")]
    moran = queries.moran_by_year(ctx)
    if moran.empty:
        return [*blocks, note("No global Moran's I of breaks in the store.")]
    latest = []
    for unit_type in sorted(moran["unit_type"].unique(), key=unit_key):
        r = moran[moran["unit_type"] == unit_type].iloc[-1]
        latest.append(
            f"{plural(unit_type)} {r['moran_i']:.3f} in {r['year']} "
            f"(p = {fmt_num(r['p_sim'])}, {fmt_int(r['permutations'])} permutations)"
        )
    blocks.append(para("Global Moran's I of breaks in the latest year: " + "; ".join(latest) + "."))
    blocks.append(Figure("moran_by_year.png", moran_chart(moran), "Global Moran's I by year"))
    return blocks
