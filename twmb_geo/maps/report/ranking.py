"""The riskiest-units section: units per risk tier and the top of every scored unit type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from ...core.units import UNIT_TYPES
from . import queries
from ._format import fmt_int, fmt_num, missing, plural, unit_key
from .document import SECTIONS, Block, Code, Heading, Section, Table, note, para, table
from .queries import ReportContext

__all__ = ["riskiest_section"]

_TOP_UNITS = 50


def riskiest_section(ctx: ReportContext) -> Section:
    """Units per tier and the 50 riskiest units of every scored unit type."""
    sec = Section(SECTIONS[5])
    if not ctx.has("risk_scores"):
        sec.blocks.append(note("No risk scores in the store (the model stage did not run)."))
        return sec
    types = queries.scored_unit_types(ctx)
    if types.empty:
        sec.blocks.append(note("No current risk scores in the store."))
        return sec
    sec.blocks += _tier_blocks(ctx)
    names = queries.neighbourhood_names(ctx)
    for t in sorted(types.itertuples(), key=lambda t: unit_key(t.unit_type)):
        sec.blocks.append(Heading(f"Riskiest {plural(t.unit_type)}"))
        sec.blocks.append(
            para(
                f"Scores for {t.ty} (features of {t.fy}) by model ",
                Code(str(t.v)),
                f"; rank 1 is the riskiest of {t.n:,}. Drivers: the three features that raise "
                "the unit's risk most above a typical unit (change of log expected breaks).",
            )
        )
        sec.blocks.append(_top_table(ctx, t.unit_type, names))
    return sec


def _tier_blocks(ctx: ReportContext) -> list[Block]:
    """Units per risk tier (highest tier first) and unit type."""
    tiers = queries.score_tiers(ctx)
    counts = tiers.pivot(index="tier", columns="unit_type", values="n").fillna(0).astype(int)
    start = tiers.groupby("tier")["p"].min()
    order = sorted(counts.index, key=lambda k: (-start[k], k))
    units = sorted(counts.columns, key=unit_key)
    rows = [(t, *(fmt_int(counts.at[t, u]) for u in units)) for t in order]
    return [
        Heading("Units per risk tier"),
        table(("tier", *(plural(u) for u in units)), rows, "l" + "r" * len(units)),
    ]


def _top_table(ctx: ReportContext, unit_type: str, names: Mapping[str, str]) -> Table:
    """The riskiest units of one type with their description, neighbourhood and drivers."""
    top = queries.top_units(ctx, unit_type, _TOP_UNITS)
    top["unit_id"] = top["unit_id"].astype(str)
    top = top.merge(_unit_labels(ctx, unit_type), on="unit_id", how="left")
    spec = UNIT_TYPES.get(unit_type)
    with_km = spec is not None and spec.linear
    # a description every unit shares (cells without pipe data) says nothing: left out
    with_desc = top["description"].nunique(dropna=False) > 1
    # without a neighbourhood layer the column would be empty: left out
    with_nbhd = bool(top["neighbourhood"].map(lambda v: not missing(v)).any()) and bool(names)
    rows = []
    for r in top.itertuples():
        code = None if missing(r.neighbourhood) else str(r.neighbourhood)
        desc = "–" if missing(r.description) else str(r.description)
        rows.append(
            (
                fmt_int(r.rank),
                str(r.unit_id),
                *((desc,) if with_desc else ()),
                *((f"{names.get(code, code)} ({code})" if code else "–",) if with_nbhd else ()),
                *((fmt_num(r.length_km, 3),) if with_km else ()),
                fmt_num(r.expected_breaks),
                fmt_num(r.probability),
                str(r.tier),
                "–" if missing(r.drivers) else str(r.drivers),
            )
        )
    header = ("rank", "unit", *(("description",) if with_desc else ()))
    header += (*(("neighbourhood",) if with_nbhd else ()), *(("km",) if with_km else ()))
    header += ("expected breaks", "P(any break)", "tier", "drivers")
    align = "rl" + ("l" if with_desc else "") + ("l" if with_nbhd else "")
    align += ("r" if with_km else "") + "rrll"
    return table(header, rows, align)


def _pipe_label(r: Any) -> str:
    """'<asset> <diameter> mm <material>' for one pipe row."""
    md = getattr(r, "material_desc", None)
    desc = None if missing(md) else str(md)
    size = "" if missing(r.diameter_mm) else f"{float(r.diameter_mm):.0f} mm "
    asset = "" if missing(r.asset_id) or str(r.asset_id) == str(r.unit_id) else f"{r.asset_id} "
    return f"{asset}{size}{desc or 'unknown material'}".strip()


def _street_descriptions(df: pd.DataFrame, label: str) -> pd.Series:
    """A street segment is described by its name."""
    return df["name"].fillna("Unnamed")


def _pipe_descriptions(df: pd.DataFrame, label: str) -> pd.Series:
    """A pipe is described by its asset id, diameter and material."""
    return pd.Series([_pipe_label(r) for r in df.itertuples()], index=df.index, dtype=object)


def _cell_descriptions(df: pd.DataFrame, label: str) -> pd.Series:
    """A cell is described by the length of pipe in it."""
    km = df["pipe_km"].map(lambda v: "" if missing(v) or v <= 0 else f", {v:.2f} km of pipe")
    return label + km


#: unit type -> how its units are described (from :func:`queries.unit_rows` and its label)
_DESCRIBERS: dict[str, Callable[[pd.DataFrame, str], pd.Series | str]] = {
    "pipe": _pipe_descriptions,
    "street": _street_descriptions,
    "cell": _cell_descriptions,
    "neighbourhood": lambda df, label: label,
}


def _unit_labels(ctx: ReportContext, unit_type: str) -> pd.DataFrame:
    """unit_id -> description and neighbourhood code of every unit of one type."""
    cols = ["unit_id", "description", "neighbourhood"]
    df = queries.unit_rows(ctx, unit_type)
    if df is None:
        return pd.DataFrame(columns=cols)
    df["description"] = _DESCRIBERS[unit_type](df, UNIT_TYPES[unit_type].label)
    return df[cols].astype({"unit_id": str})
