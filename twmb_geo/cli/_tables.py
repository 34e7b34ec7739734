"""Human-readable tables of command results (stdout), shared by the stage commands and ``run``."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from ..core.units import unit_type_names
from ._common import consoles, pct

__all__ = [
    "print_features",
    "print_models",
    "print_scores",
    "print_simulations",
    "print_sources",
    "print_summary",
]

_NUMERIC_SOURCE_COLUMNS = ("rows in", "accepted", "quarantined", "excluded")


def print_sources(sources: list[dict[str, Any]], store: str) -> None:
    """Rows in, accepted, quarantined and excluded per source, and the store path.

    "by reason" lists quarantine reasons, then the ``where:`` row-filter conditions.
    """
    t = Table(title="Sources", title_justify="left")
    for col in ("source", "kind", *_NUMERIC_SOURCE_COLUMNS, "by reason"):
        t.add_column(col, justify="right" if col in _NUMERIC_SOURCE_COLUMNS else "left")
    for s in sources:
        by = {**s["quarantined_by_reason"], **s.get("excluded_by_rule", {})}
        reasons = ", ".join(f"{k} {v}" for k, v in by.items()) or "-"
        t.add_row(
            s["source_id"],
            s["kind"],
            f"{s['rows_in']:,}",
            f"{s['accepted']:,}",
            f"{s['quarantined']:,}",
            f"{s.get('excluded', 0):,}",
            reasons,
        )
    consoles.out.print(t)
    consoles.out.print(f"store: {store}")


def _print_breaks_per_year(s: dict[str, Any]) -> None:
    """Accepted breaks per year, in two column pairs."""
    t = Table(title=f"Breaks per year ({s['breaks_total']:,} accepted)", title_justify="left")
    years = list(s["breaks_per_year"].items())
    half = (len(years) + 1) // 2
    for _ in range(2):
        t.add_column("year")
        t.add_column("breaks", justify="right")
    for i in range(half):
        row = [str(years[i][0]), f"{years[i][1]:,}"]
        row += (
            [str(years[i + half][0]), f"{years[i + half][1]:,}"]
            if i + half < len(years)
            else ["", ""]
        )
        t.add_row(*row)
    consoles.out.print(t)


def _print_top_neighbourhoods(rows: list[dict[str, Any]]) -> None:
    """Neighbourhoods with the most breaks per year."""
    t = Table(title="Top neighbourhoods by breaks per year", title_justify="left")
    for col in ("code", "neighbourhood", "breaks/yr", "breaks/km²/yr"):
        t.add_column(col, justify="left" if col in ("code", "neighbourhood") else "right")
    for r in rows:
        t.add_row(
            r["area_code"],
            r["area_name"],
            f"{r['breaks_per_year']:.1f}",
            f"{r['breaks_per_km2_per_year']:.2f}",
        )
    consoles.out.print(t)


def print_summary(s: dict[str, Any]) -> None:
    """The summary of ``twmb run``: sources, breaks, features, models, outputs."""
    out, err = consoles.out, consoles.err
    print_sources(s["sources"], s["store"])
    if "breaks_per_year" in s:
        _print_breaks_per_year(s)
    if s.get("top_neighbourhoods"):
        _print_top_neighbourhoods(s["top_neighbourhoods"])
    if s.get("features"):
        print_features(s["features"])
    if s.get("model"):
        print_models(s["model"]["models"])
        print_scores(s["model"]["scores"])
        print_simulations(s["model"]["simulations"])
    if s.get("publish"):
        pub = s["publish"]
        out.print(f"published {pub['publish_id']}: " + ", ".join(pub["targets"].values()))
    if s.get("report"):
        out.print(f"maps: {s['maps']['folder']}")
        out.print(f"report: {s['report']['html']}")
    if s.get("warnings"):
        err.print(f"[yellow]{len(s['warnings'])} warnings[/] (see manifest.json)", markup=True)
    out.print(f"summary: {s['summary_path']}")


def _print_units(f: dict[str, Any]) -> None:
    """Units and matched or unmatched breaks per unit type."""
    t = Table(
        title=f"Units and break links ({f['years'][0]}-{f['years'][1]})", title_justify="left"
    )
    for col in ("unit type", "units", "breaks matched", "unmatched (reason)"):
        t.add_column(col, justify="right" if col in ("units", "breaks matched") else "left")
    for ut in unit_type_names():
        if ut not in f["units"]:
            continue
        m = f["matching"].get(ut, {})
        un = (
            ", ".join(
                f"{k.removeprefix('unmatched_')} {v:,}" for k, v in m.items() if k != "matched"
            )
            or "-"
        )
        t.add_row(ut, f"{f['units'][ut]:,}", f"{m.get('matched', 0):,}", un)
    consoles.out.print(t)


def _print_graphs(graphs: list[dict[str, Any]]) -> None:
    """Neighbours, islands and components of every spatial graph."""
    g = Table(title="Spatial graphs", title_justify="left")
    for col in ("unit type", "graph", "builder", "mean nbrs", "islands", "components"):
        g.add_column(col)
    for r in graphs:
        g.add_row(
            r["unit_type"],
            r["graph"],
            r["builder"],
            f"{r['mean_neighbours']:.1f}",
            str(r["n_islands"]),
            str(r["n_components"]),
        )
    consoles.out.print(g)


def print_features(f: dict[str, Any]) -> None:
    """The feature stage: units, break links, graphs, Moran's I and hot spots."""
    out = consoles.out
    _print_units(f)
    _print_graphs(f["graphs"])
    if f.get("moran"):
        ms = f["moran"]
        out.print(
            "Global Moran's I of yearly cell break counts: "
            + f"{min(m['moran_i'] for m in ms):.3f}..{max(m['moran_i'] for m in ms):.3f} "
            + f"(p_sim <= {max(m['p_sim'] for m in ms):.3f} in every year)"
        )
    if f.get("hotspots"):
        out.print(
            "Hot-spot persistence (cells): "
            + ", ".join(f"{k} {v:,}" for k, v in f["hotspots"].items())
        )


def print_models(models: list[dict[str, Any]]) -> None:
    """Validation capture of each model against the baselines, its warnings and card."""
    t = Table(title="Risk models (mean over validation folds)", title_justify="left")
    for col in (
        "unit type",
        "version",
        "forward @5%",
        "forward @10%",
        "spatial @5%",
        "random @5%",
        "best baseline @5%",
    ):
        t.add_column(col, justify="left" if col in ("unit type", "version") else "right")
    for m in models:
        base = m.get("best_baseline")
        t.add_row(
            m["unit_type"],
            m["model_version"],
            pct(m.get("forward_capture_5pct")),
            pct(m.get("forward_capture_10pct")),
            pct(m.get("spatial_capture_5pct")),
            pct(m.get("random_capture_5pct")),
            f"{pct(m.get('best_baseline_capture_5pct'))} ({base})" if base else "-",
        )
    consoles.out.print(t)
    for m in models:
        for w in m.get("warnings", []):
            consoles.err.print(f"[yellow]model check ({m['unit_type']}):[/] {w}", markup=True)
        if m.get("statement"):
            consoles.out.print(f"{m['unit_type']}: {m['statement']}")
        consoles.out.print(f"card: {m['card']}")


def print_scores(scores: list[dict[str, Any]]) -> None:
    """The riskiest units of each unit type."""
    for s in scores:
        t = Table(
            title=f"Riskiest {s['unit_type']} units for {s['target_year']} "
            f"(expected {s['expected_breaks']:,.0f} breaks in all {s['units']:,} units)",
            title_justify="left",
        )
        for col in ("rank", "unit", "expected", "P(break)", "tier", "drivers"):
            t.add_column(
                col, justify="right" if col in ("rank", "expected", "P(break)") else "left"
            )
        for r in s["top"]:
            t.add_row(
                str(r["rank"]),
                str(r["unit_id"]),
                f"{r['expected_breaks']:.2f}",
                f"{r['probability']:.2f}",
                r["tier"],
                r["drivers"],
            )
        consoles.out.print(t)


def print_simulations(sims: list[dict[str, Any]]) -> None:
    """The Monte Carlo outlook and the renewal scenario, one line per unit type."""
    for s in sims:
        b = s[f"breaks_over_{s['horizon']}_years"]
        r = s["renewal"]
        what = (
            f"{r['km_replaced']:.1f} km"
            if r.get("km_replaced") is not None
            else f"{r['units_replaced']} units"
        )
        consoles.out.print(
            f"{s['unit_type']}: breaks over the next {s['horizon']} years: expected "
            f"{b['expected']:,.0f} (P10 {b['p10']:,.0f}, P50 {b['p50']:,.0f}, P90 {b['p90']:,.0f}); "
            f"renewing the riskiest {what} avoids {r['expected_breaks_avoided']:,.0f} "
            f"(P10 {r['avoided_p10']:,.0f}, P90 {r['avoided_p90']:,.0f})"
        )
