"""The run report: one self-contained HTML file and its Markdown twin, from the store and model cards.

:func:`write_report` reads the store (read-only) and the model registry's cards and writes
``report.html`` (CSS inline, every figure embedded as a base64 PNG, no external reference:
it works offline and can be mailed as one file) and ``report.md`` (GitHub-renderable, the
figures as PNG files under ``figures/`` linked relatively).

Sections (:data:`SECTIONS`): data summary, breaks by year, month and neighbourhood, maps,
hot spots, one model card per unit type, the 50 riskiest units, the Monte Carlo bands and
the renewal scenario. A section whose data is absent (a run without the model, say) shows
a one-line note instead. Each section is built once as neutral blocks (paragraphs,
tables, figures, notes) and rendered to both formats, so the two always agree.

The same store gives byte-identical files: every query is ordered, the PNGs carry no
metadata, and the only times shown are those the store recorded.
"""

from __future__ import annotations

import base64
import calendar
import html
import io
import json
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .._version import __version__
from ..config import Config
from ..core.files import atomic_write
from ..core.vocab import HOTSPOT_ORDER, MATERIALS
from ..errors import InputDataError
from ..store.duckdb_store import Store
from ..store.summary import summarize

__all__ = ["SECTIONS", "write_report"]

#: section titles, in report order (each is an ``<h2>`` / ``##`` heading)
SECTIONS: tuple[str, ...] = (
    "Data summary",
    "Breaks by year, month and neighbourhood",
    "Maps",
    "Hot spots",
    "Model cards",
    "The 50 riskiest units",
    "Monte Carlo bands and renewal scenario",
)

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies
_OI = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
#: line styles for the model and the baselines (shape as well as colour tells them apart)
_SERIES_STYLE: tuple[tuple[str, Any], ...] = (
    (_OI["orange"], "--"),
    (_OI["green"], "-."),
    (_OI["purple"], ":"),
    (_OI["vermillion"], (0, (5, 2, 1, 2))),
    (_OI["sky"], (0, (1, 1))),
)
_UNIT_ORDER = ("pipe", "street", "cell", "neighbourhood")
_UNIT_PLURAL = {
    "pipe": "pipes",
    "street": "street segments",
    "cell": "H3 cells",
    "neighbourhood": "neighbourhoods",
}
_UNIT_STYLE = {
    "pipe": (_OI["orange"], "s"),
    "street": (_OI["green"], "^"),
    "cell": (_OI["blue"], "o"),
    "neighbourhood": (_OI["purple"], "D"),
}
_SCHEME_ORDER = ("forward", "spatial", "spatiotemporal", "random")
_MAP_ORDER = ("risk_cells", "tier_pipes", "tier_streets", "hotspots", "break_density")
_MAP_CAPTIONS = {
    "risk_cells": "Expected breaks next year per H3 cell (current risk scores)",
    "tier_pipes": "Risk tier of every pipe (current risk scores)",
    "tier_streets": "Risk tier of every street segment (current risk scores)",
    "hotspots": "Hot-spot persistence class of breaks per unit",
    "break_density": "Density of recorded breaks",
}
_MONTHS = tuple(calendar.month_name[1:])
_TOP_UNITS = 50
_DPI = 110
_RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "svg.hashsalt": "twmb",
}


# -- blocks: what a section says, independent of the output format ----------------------------
@dataclass(frozen=True)
class _Code:
    """Inline code (ids, versions, paths)."""

    text: str


@dataclass(frozen=True)
class _Strong:
    """Inline emphasis."""

    text: str


_Inline = str | _Code | _Strong


@dataclass(frozen=True)
class _Para:
    """A paragraph of inline parts; ``note`` marks the one-line 'data absent' notes."""

    parts: tuple[_Inline, ...]
    note: bool = False


@dataclass(frozen=True)
class _Heading:
    """A sub-heading inside a section (level 3 or 4)."""

    text: str
    level: int = 3


@dataclass(frozen=True)
class _Bullets:
    """A bulleted list; each item is a tuple of inline parts."""

    items: tuple[tuple[_Inline, ...], ...]


@dataclass(frozen=True)
class _Table:
    """A table of text cells; ``align`` is one ``l``/``r`` per column, ``strong`` row indexes."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str
    strong: frozenset[int] = frozenset()
    caption: str = ""


@dataclass(frozen=True)
class _Figure:
    """A PNG figure: ``name`` is its file name under ``figures/``."""

    name: str
    png: bytes
    caption: str


@dataclass(frozen=True)
class _Link:
    """A paragraph holding one link to a local file (relative to the report folder)."""

    before: str
    text: str
    href: str


_Block = _Para | _Heading | _Bullets | _Table | _Figure | _Link


@dataclass
class _Section:
    """One ``<h2>`` section of the report."""

    title: str
    blocks: list[_Block] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        """The heading's anchor, as GitHub derives it for plain titles."""
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


def _p(*parts: _Inline) -> _Para:
    """A paragraph of inline parts."""
    return _Para(tuple(parts))


def _note(text: str) -> _Para:
    """The one-line note a section shows when its data is absent."""
    return _Para((text,), note=True)


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    align: str,
    *,
    strong: Iterable[int] = (),
    caption: str = "",
) -> _Table:
    """A table block from any sequences (cells are already formatted text)."""
    return _Table(tuple(header), tuple(tuple(r) for r in rows), align, frozenset(strong), caption)


# -- number formatting ------------------------------------------------------------------------
def _missing(v: Any) -> bool:
    """Whether a value is null, NA or not finite (shown as '–')."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float | np.floating) and not math.isfinite(float(v))


def _int(v: Any) -> str:
    """An integer with thousands separators."""
    return "–" if _missing(v) else f"{int(v):,}"


def _num(v: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals and thousands separators."""
    return "–" if _missing(v) else f"{float(v):,.{digits}f}"


def _signed(v: Any, digits: int = 3) -> str:
    """A difference with its sign (optimism: positive means random CV looks better)."""
    return "–" if _missing(v) else f"{float(v):+.{digits}f}"


def _pct(v: Any, digits: int = 1) -> str:
    """A share (0–1) as a percentage."""
    return "–" if _missing(v) else f"{100 * float(v):.{digits}f} %"


def _mean_sd(m: Mapping[str, Any] | None) -> str:
    """A card metric ``{mean, std}`` as 'mean ± sd'."""
    if not m:
        return "–"
    return f"{_num(m.get('mean'))} ± {_num(m.get('std'))}"


def _time(ts: Any) -> str:
    """A store timestamp (naive UTC) as text; '–' when unrecorded."""
    if _missing(ts):
        return "–"
    return f"{pd.Timestamp(ts):%Y-%m-%d %H:%M:%S} UTC"


def _unit_key(unit_type: str) -> tuple[int, str]:
    """Sort key: pipes, streets, cells, neighbourhoods, then any other unit type."""
    order = _UNIT_ORDER.index(unit_type) if unit_type in _UNIT_ORDER else len(_UNIT_ORDER)
    return order, unit_type


# -- charts -----------------------------------------------------------------------------------
def _render(draw: Callable[[Figure], None], size: tuple[float, float] = (7.0, 3.4)) -> bytes:
    """Draw on a fresh Agg figure and return PNG bytes without metadata (stable bytes)."""
    with mpl.rc_context(_RC):
        fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def _years_chart(per_year: pd.Series) -> bytes:
    """Bars of breaks per year with the mean as a line."""

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ax.bar(per_year.index, per_year.to_numpy(), color=_OI["blue"], width=0.8, label="breaks")
        mean = float(per_year.mean())
        ax.axhline(mean, color=_OI["vermillion"], ls="--", lw=1.2, label=f"mean {mean:,.0f}")
        ax.set_xlabel("year")
        ax.set_ylabel("breaks")
        ax.set_title("Recorded breaks per year")
        ax.legend(loc="upper left", frameon=False)

    return _render(draw)


def _months_chart(per_month: pd.Series, n_years: int) -> bytes:
    """Mean breaks per calendar month, winter months in another colour."""

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        values = per_month.to_numpy() / max(n_years, 1)
        winter = [m in (12, 1, 2, 3) for m in per_month.index]
        colours = [_OI["blue"] if w else _OI["orange"] for w in winter]
        ax.bar(range(12), values, color=colours)
        ax.set_xticks(range(12), [m[:3] for m in _MONTHS])
        ax.set_ylabel("mean breaks per year")
        ax.set_title("Seasonality: breaks per calendar month (blue: December–March)")

    return _render(draw)


def _moran_chart(moran: pd.DataFrame) -> bytes:
    """Global Moran's I per year and unit type; hollow markers are not significant."""

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        for unit_type in sorted(moran["unit_type"].unique(), key=_unit_key):
            part = moran[moran["unit_type"] == unit_type]
            colour, marker = _UNIT_STYLE.get(unit_type, (_OI["black"], "o"))
            label = _UNIT_PLURAL.get(unit_type, unit_type)
            ax.plot(part["year"], part["moran_i"], color=colour, lw=1.4, label=label)
            sig = part["p_sim"].fillna(1.0) < 0.05
            ax.scatter(part["year"][sig], part["moran_i"][sig], color=colour, marker=marker, s=22)
            ax.scatter(
                part["year"][~sig],
                part["moran_i"][~sig],
                facecolors="white",
                edgecolors=colour,
                marker=marker,
                s=22,
            )
        ax.axhline(0.0, color=_OI["black"], lw=0.8)
        ax.set_xlabel("year")
        ax.set_ylabel("Moran's I of breaks")
        ax.set_title("Global spatial autocorrelation (filled: permutation p < 0.05)")
        ax.legend(frameon=False)

    return _render(draw)


def _capture_chart(card: Mapping[str, Any]) -> bytes:
    """Pooled forward capture curves of the model and every baseline vs random order."""
    fwd = card["forward"]
    fracs = np.asarray(fwd["fracs"], dtype=float) * 100
    share = "length" if card.get("weight") == "length_km" else "units"

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ax.plot(fracs, fracs / 100, color="#999999", lw=1, label="random order")
        curves = fwd["capture_curves"]
        names = ["model", *sorted(n for n in curves if n != "model")]
        for i, name in enumerate(names):
            if name == "model":
                colour, style, width = _OI["blue"], "-", 2.2
            else:
                colour, style = _SERIES_STYLE[(i - 1) % len(_SERIES_STYLE)]
                width = 1.5
            ax.plot(fracs, curves[name], color=colour, ls=style, lw=width, label=name)
        for x in (5, 10):
            ax.axvline(x, color=_OI["black"], lw=0.6, ls=":")
        ax.set_xlim(0, min(100.0, float(fracs.max())))
        ax.set_ylim(0, 1)
        ax.set_xlabel(f"share of {share} inspected, riskiest first (%)")
        ax.set_ylabel("share of next-year breaks captured")
        ax.set_title("Capture curves, forward validation (pooled test years)")
        ax.legend(frameon=False, loc="lower right")

    return _render(draw, (7.0, 3.8))


def _calibration_chart(card: Mapping[str, Any]) -> bytes:
    """Predicted probability vs observed share per calibration bin."""
    cal = pd.DataFrame(card["forward"]["calibration"])

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        top = float(max(cal["mean_prob"].max(), cal["obs_rate"].max(), 0.01)) * 1.05
        ax.plot([0, top], [0, top], color="#999999", lw=1, label="perfect calibration")
        sizes = 12 + 60 * np.sqrt(cal["n"] / max(float(cal["n"].max()), 1.0))
        ax.plot(cal["mean_prob"], cal["obs_rate"], color=_OI["blue"], lw=1.2)
        ax.scatter(cal["mean_prob"], cal["obs_rate"], s=sizes, color=_OI["blue"], label="bins")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel("predicted P(any break)")
        ax.set_ylabel("observed share with a break")
        ax.set_title("Calibration, forward validation (larger marker: more units)")
        ax.legend(frameon=False, loc="upper left")

    return _render(draw, (5.6, 4.2))


def _importance_chart(imp: pd.DataFrame, metrics: Sequence[str]) -> bytes:
    """Horizontal bars of permutation importance (top 12), one panel per metric."""

    def draw(fig: Figure) -> None:
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
        for ax, metric in zip(axes, metrics, strict=True):
            part = imp[imp["metric"] == metric].sort_values(["rank", "feature"]).head(12)
            part = part.iloc[::-1]
            y = np.arange(len(part))
            ax.barh(
                y,
                part["importance_mean"],
                xerr=part["importance_std"].fillna(0.0),
                color=_OI["blue"],
                ecolor=_OI["black"],
                capsize=2,
            )
            ax.set_yticks(y, list(part["feature"]))
            ax.axvline(0.0, color=_OI["black"], lw=0.8)
            ax.set_xlabel(f"drop in {metric} when shuffled")
            ax.set_title(metric)
        fig.suptitle("Permutation importance on held-out spatial folds (mean ± sd)")

    return _render(draw, (4.2 * len(metrics) + 1.0, 4.2))


def _simulation_chart(city: pd.DataFrame, unit_type: str) -> bytes:
    """Fan chart of cumulative breaks by horizon, without and with renewal."""
    base = city[city["scenario"] == "baseline"].sort_values("horizon")
    renew = city[city["scenario"] == "renewal"].sort_values("horizon")

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        h = base["horizon"].to_numpy()
        ax.fill_between(h, base["p10"], base["p90"], color=_OI["sky"], alpha=0.35, lw=0)
        ax.plot(h, base["p50"], color=_OI["blue"], lw=2, label="no renewal: P50 (band P10–P90)")
        ax.plot(h, base["p95"], color=_OI["blue"], lw=1, ls=":", label="no renewal: P95")
        ax.plot(h, base["expected"], color=_OI["black"], lw=1, ls="--", label="expected")
        if not renew.empty:
            hr = renew["horizon"].to_numpy()
            ax.fill_between(
                hr, renew["p10"], renew["p90"], color=_OI["orange"], alpha=0.25, lw=0, hatch="//"
            )
            ax.plot(hr, renew["p50"], color=_OI["vermillion"], lw=2, ls="-.", label="renewal: P50")
        ax.set_xlabel("years ahead")
        ax.set_ylabel("cumulative breaks")
        ax.set_title(f"Simulated city-wide breaks ({_UNIT_PLURAL.get(unit_type, unit_type)})")
        ax.legend(frameon=False, loc="upper left")

    return _render(draw)


# -- the context every section reads ----------------------------------------------------------
@dataclass
class _Ctx:
    """What the sections read: the config, the open store and the map outputs."""

    cfg: Config
    store: Store
    folder: Path
    map_images: Mapping[str, Path]
    html_map: Path | None
    tables: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.tables = frozenset(self.store.table_names())

    def has(self, *names: str) -> bool:
        """Whether every table exists and holds rows."""
        return all(n in self.tables and self.store.count(n) > 0 for n in names)

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """An ordered query's result."""
        return self.store.query(sql, params)


# -- section: data summary --------------------------------------------------------------------
def _data_section(ctx: _Ctx) -> _Section:
    """Runs, rows per source, quarantine reasons and input files from the manifest tables."""
    sec = _Section(SECTIONS[0])
    if not ctx.has("runs"):
        sec.blocks.append(_note("No ingest run is recorded in the store (no runs table)."))
        return sec
    runs = ctx.query(
        "SELECT run_id, command, status, started_at, finished_at, package_version, manifest "
        "FROM runs ORDER BY started_at, run_id"
    )
    sec.blocks += _run_blocks(runs)
    sec.blocks += _source_blocks(ctx)
    sec.blocks += _quarantine_blocks(ctx)
    sec.blocks += _input_blocks(ctx)
    return sec


def _run_blocks(runs: pd.DataFrame) -> list[_Block]:
    """The latest ingest run and its recorded warnings."""
    last = runs.iloc[-1]
    text = (
        f" (command {last['command']}, status {last['status']}), started "
        f"{_time(last['started_at'])}, finished {_time(last['finished_at'])}, "
        f"twmb_geo {last['package_version']}."
    )
    blocks: list[_Block] = [_p("Latest ingest run ", _Code(str(last["run_id"])), text)]
    if len(runs) > 1:
        blocks.append(
            _p(
                f"The store records {len(runs):,} ingest runs; each source's figures below "
                "come from the latest run that read it."
            )
        )
    try:
        warnings = json.loads(last["manifest"] or "{}").get("warnings", [])
    except (TypeError, ValueError):
        warnings = []
    if warnings:
        blocks.append(_Heading("Ingest warnings"))
        blocks.append(_Bullets(tuple((str(w),) for w in warnings)))
    return blocks


def _latest_inputs(ctx: _Ctx) -> pd.DataFrame:
    """``run_inputs`` rows of the latest run that read each source (ordered)."""
    df = ctx.query(
        "SELECT i.*, r.started_at FROM run_inputs i LEFT JOIN runs r USING (run_id) "
        "ORDER BY i.source_id, r.started_at, i.run_id, i.file"
    )
    last = df.groupby("source_id", sort=True)["run_id"].transform("last")
    return df[df["run_id"] == last].reset_index(drop=True)


def _source_blocks(ctx: _Ctx) -> list[_Block]:
    """Rows in / accepted / quarantined per source."""
    if not ctx.has("run_inputs"):
        return [_note("No per-source input record in the store (no run_inputs table).")]
    df = _latest_inputs(ctx)
    rows = []
    for source_id, part in df.groupby("source_id", sort=True):
        r = part.iloc[0]
        share = r["quarantined"] / r["rows_in"] if r["rows_in"] else float("nan")
        rows.append(
            (
                str(source_id),
                str(r["profile"]),
                _int(len(part)),
                _int(r["rows_in"]),
                _int(r["accepted"]),
                _int(r["quarantined"]),
                _pct(share, 2),
            )
        )
    return [
        _Heading("Rows per source"),
        _table(
            ("source", "profile", "files", "rows in", "accepted", "quarantined", "quarantined %"),
            rows,
            "llrrrrr",
        ),
    ]


def _quarantine_blocks(ctx: _Ctx) -> list[_Block]:
    """Quarantined rows per source and reason code, with an example detail."""
    blocks: list[_Block] = [_Heading("Quarantine by reason code")]
    if "quarantine" not in ctx.tables:
        return [*blocks, _note("No quarantine table in the store.")]
    q = ctx.query(
        "SELECT source_id, reason, detail FROM quarantine "
        "ORDER BY source_id, reason, source_file, source_row, detail"
    )
    if q.empty:
        return [*blocks, _p("No row was quarantined.")]
    groups = q.groupby(["source_id", "reason"], sort=True)
    summary = groups.agg(rows=("reason", "size"), example=("detail", "first")).reset_index()
    summary = summary.sort_values(
        ["source_id", "rows", "reason"], ascending=[True, False, True], kind="mergesort"
    )
    rows = [
        (str(r.source_id), str(r.reason), _int(r.rows), _shorten(r.example, 110))
        for r in summary.itertuples()
    ]
    blocks.append(
        _p(
            f"{len(q):,} rows were set aside with a reason code (the store's quarantine table "
            "keeps each raw record); the example is the first such row."
        )
    )
    blocks.append(_table(("source", "reason", "rows", "example"), rows, "llrl"))
    return blocks


def _shorten(v: Any, n: int) -> str:
    """One line of at most ``n`` characters."""
    text = "" if _missing(v) else " ".join(str(v).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _input_blocks(ctx: _Ctx) -> list[_Block]:
    """Every input file of the latest run per source, with its hash."""
    if not ctx.has("run_inputs"):
        return []
    df = _latest_inputs(ctx)
    several = df["run_id"].nunique() > 1
    rows = [
        (
            str(r.source_id),
            Path(str(r.file)).name,
            _int(r.bytes),
            str(r.sha256)[:16] + "…",
            *((str(r.run_id),) if several else ()),
        )
        for r in df.itertuples()
    ]
    header = ("source", "file", "bytes", "sha256", *(("run",) if several else ()))
    return [
        _Heading("Input files"),
        _p("Every file read, with the start of its sha256 (the full hash is in the store)."),
        _table(header, rows, "llrl" + ("l" if several else "")),
    ]


# -- section: breaks by year, month and neighbourhood -----------------------------------------
def _breaks_section(ctx: _Ctx) -> _Section:
    """Breaks per year and month and the top neighbourhoods (as ``summarize``)."""
    sec = _Section(SECTIONS[1])
    if not ctx.has("breaks"):
        sec.blocks.append(_note("No curated breaks in the store."))
        return sec
    summ = summarize(ctx.store, top=10)
    years = pd.Series(summ["breaks_per_year"], dtype="int64").sort_index()
    years = years.reindex(range(int(years.index.min()), int(years.index.max()) + 1), fill_value=0)
    span = ctx.query("SELECT min(break_date) AS d0, max(break_date) AS d1 FROM breaks")
    total = int(summ["breaks_total"])
    sec.blocks.append(
        _p(
            f"{total:,} curated breaks dated {span['d0'].iloc[0]:%Y-%m-%d} to "
            f"{span['d1'].iloc[0]:%Y-%m-%d}: on average {years.mean():,.0f} a year, most in "
            f"{years.idxmax()} ({years.max():,}), fewest in {years.idxmin()} ({years.min():,})."
        )
    )
    sec.blocks.append(
        _Figure("breaks_by_year.png", _years_chart(years), "Recorded breaks per year")
    )
    sec.blocks += _month_blocks(ctx, len(years))
    sec.blocks += _neighbourhood_blocks(summ)
    return sec


def _month_blocks(ctx: _Ctx, n_years: int) -> list[_Block]:
    """Seasonality: breaks per calendar month."""
    m = ctx.query("SELECT month, count(*) AS n FROM breaks GROUP BY month ORDER BY month")
    per_month = pd.Series(m["n"].to_numpy(), index=m["month"].astype(int)).reindex(
        range(1, 13), fill_value=0
    )
    total = max(int(per_month.sum()), 1)
    hi, lo = int(per_month.idxmax()), int(per_month.idxmin())
    return [
        _Heading("Seasonality"),
        _p(
            f"Most breaks fall in {_MONTHS[hi - 1]} ({_pct(per_month[hi] / total)} of all), "
            f"fewest in {_MONTHS[lo - 1]} ({_pct(per_month[lo] / total)})."
        ),
        _Figure(
            "breaks_by_month.png",
            _months_chart(per_month, n_years),
            "Mean breaks per calendar month",
        ),
    ]


def _neighbourhood_blocks(summ: Mapping[str, Any]) -> list[_Block]:
    """The top 10 neighbourhoods by breaks per year (``summarize``'s list)."""
    blocks: list[_Block] = [_Heading("Top 10 neighbourhoods by breaks per year")]
    top = summ.get("top_neighbourhoods")
    if not top:
        return [*blocks, _note("No neighbourhood boundaries in the store.")]
    rows = [
        (
            str(i),
            str(r["area_name"]),
            str(r["area_code"]),
            _int(r["breaks"]),
            _num(r["breaks_per_year"], 1),
            _num(r["breaks_per_km2_per_year"], 2),
        )
        for i, r in enumerate(top, start=1)
    ]
    return [
        *blocks,
        _table(
            ("rank", "neighbourhood", "code", "breaks", "per year", "per km² per year"),
            rows,
            "rllrrr",
        ),
    ]


# -- section: maps ----------------------------------------------------------------------------
def _map_key(name: str) -> tuple[int, str]:
    """Sort key: the known static maps in a fixed order, then others by name."""
    return (_MAP_ORDER.index(name) if name in _MAP_ORDER else len(_MAP_ORDER)), name


def _relative_href(target: Path, folder: Path) -> str:
    """A link from the report folder to ``target``, URL-quoted, with forward slashes."""
    try:
        rel = os.path.relpath(Path(target).resolve(), Path(folder).resolve())
    except ValueError:  # another drive (Windows): the absolute path is all there is
        rel = str(Path(target).resolve())
    return urllib.parse.quote(Path(rel).as_posix(), safe="/:")


def _maps_section(ctx: _Ctx) -> _Section:
    """The static maps embedded, and a link to the interactive map."""
    sec = _Section(SECTIONS[2])
    if ctx.html_map is not None:
        sec.blocks.append(
            _Link(
                "Pan, zoom and click every unit in the interactive map: ",
                ctx.html_map.name,
                _relative_href(ctx.html_map, ctx.folder),
            )
        )
    if not ctx.map_images:
        sec.blocks.append(_note("No static map was rendered for this report."))
        return sec
    for name in sorted(ctx.map_images, key=_map_key):
        path = Path(ctx.map_images[name])
        caption = _MAP_CAPTIONS.get(name, name.replace("_", " ").capitalize())
        if not path.is_file():
            sec.blocks.append(_note(f"Map {name}: image {path.name} is missing."))
            continue
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", name)
        sec.blocks.append(_Figure(f"map_{stem}.png", path.read_bytes(), caption))
    return sec


# -- section: hot spots -----------------------------------------------------------------------
def _hotspot_section(ctx: _Ctx) -> _Section:
    """Hot-spot persistence classes and Moran's I by year."""
    sec = _Section(SECTIONS[3])
    sec.blocks += _persistence_blocks(ctx)
    sec.blocks += _moran_blocks(ctx)
    return sec


def _persistence_blocks(ctx: _Ctx) -> list[_Block]:
    """Units per hot-spot persistence class and unit type."""
    blocks: list[_Block] = [_Heading("Hot-spot persistence classes")]
    if not ctx.has("hotspot_persistence"):
        return [*blocks, _note("No hot-spot persistence in the store (features not built).")]
    hp = ctx.query(
        'SELECT unit_type, "class" AS cls, count(*) AS n FROM hotspot_persistence '
        "WHERE variable = 'breaks' GROUP BY ALL ORDER BY ALL"
    )
    if hp.empty:
        return [*blocks, _note("No hot-spot persistence of breaks in the store.")]
    table = hp.pivot(index="cls", columns="unit_type", values="n").fillna(0).astype(int)
    units = sorted(table.columns, key=_unit_key)
    order = [c for c in HOTSPOT_ORDER if c in table.index]
    order += sorted(c for c in table.index if c not in HOTSPOT_ORDER)
    rows = [(cls, *(_int(table.at[cls, u]) for u in units)) for cls in order]
    rows.append(("total", *(_int(table[u].sum()) for u in units)))
    blocks.append(
        _p(
            "Units classed by how often they were a significant local Moran (LISA) hot spot "
            "of breaks over the years (persistent, emerging, intermittent or transient)."
        )
    )
    blocks.append(
        _table(
            ("class", *(_UNIT_PLURAL.get(u, u) for u in units)),
            rows,
            "l" + "r" * len(units),
            strong=[len(rows) - 1],
        )
    )
    return blocks


def _moran_blocks(ctx: _Ctx) -> list[_Block]:
    """Global Moran's I of breaks per year (chart) and the latest value."""
    blocks: list[_Block] = [_Heading("Moran's I by year")]
    if not ctx.has("moran_global"):
        return [*blocks, _note("No global Moran's I in the store (features not built).")]
    moran = ctx.query(
        "SELECT unit_type, year, moran_i, p_sim, permutations FROM moran_global "
        "WHERE variable = 'breaks' AND moran_i IS NOT NULL ORDER BY unit_type, year"
    )
    if moran.empty:
        return [*blocks, _note("No global Moran's I of breaks in the store.")]
    latest = []
    for unit_type in sorted(moran["unit_type"].unique(), key=_unit_key):
        r = moran[moran["unit_type"] == unit_type].iloc[-1]
        latest.append(
            f"{_UNIT_PLURAL.get(unit_type, unit_type)} {r['moran_i']:.3f} in {r['year']} "
            f"(p = {_num(r['p_sim'])}, {_int(r['permutations'])} permutations)"
        )
    blocks.append(_p("Global Moran's I of breaks in the latest year: " + "; ".join(latest) + "."))
    blocks.append(_Figure("moran_by_year.png", _moran_chart(moran), "Global Moran's I by year"))
    return blocks


# -- section: model cards ---------------------------------------------------------------------
def _current_versions(ctx: _Ctx) -> dict[str, str]:
    """unit type -> model version: the one behind the current scores, else the newest."""
    out: dict[str, str] = {}
    if ctx.has("models"):
        models = ctx.query(
            "SELECT unit_type, model_version FROM models ORDER BY created_at, model_version"
        )
        out.update(zip(models["unit_type"], models["model_version"], strict=True))
    if ctx.has("risk_scores"):
        cur = ctx.query(
            "SELECT DISTINCT unit_type, model_version FROM risk_scores WHERE is_current "
            "ORDER BY unit_type, model_version"
        )
        out.update(zip(cur["unit_type"], cur["model_version"], strict=True))
    return {u: out[u] for u in sorted(out, key=_unit_key)}


def _load_card(ctx: _Ctx, version: str) -> dict[str, Any] | None:
    """The card from ``<out>/models``, else from the folder the ``models`` row names."""
    from ..model.registry import load_card  # lazy: it imports scikit-learn (about 1.4 s)

    roots = [ctx.cfg.out_dir / "models"]
    if ctx.has("models"):
        rows = ctx.query("SELECT path FROM models WHERE model_version = ?", [version])
        roots += [Path(p).parent for p in rows["path"].dropna()]
    for root in roots:
        try:
            return load_card(root, version)
        except (InputDataError, OSError, ValueError):
            continue
    return None


def _models_section(ctx: _Ctx) -> _Section:
    """The card of the current model of every unit type."""
    sec = _Section(SECTIONS[4])
    versions = _current_versions(ctx)
    if not versions:
        sec.blocks.append(_note("No model was trained in this run (no models table)."))
        return sec
    sec.blocks.append(
        _p(
            "One model per unit type. Capture = share of next-year breaks in the riskiest "
            "5 % / 10 % of the network; every ranking is scored on the same folds. Trust the "
            "forward and spatial schemes: random K-fold ignores space and time and is shown "
            "only to measure how much that overstates skill."
        )
    )
    for unit_type, version in versions.items():
        sec.blocks.append(_Heading(f"{unit_type.capitalize()} model {version}"))
        card = _load_card(ctx, version)
        if card is None:
            sec.blocks.append(_note(f"The card of {version} is not in the model registry."))
            continue
        sec.blocks += _card_blocks(card)
    return sec


def _card_blocks(card: Mapping[str, Any]) -> list[_Block]:
    """One card: validation, optimism, curves, calibration, importance, guard, limits."""
    version = str(card.get("model_version", "model"))
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", str(card.get("unit_type", version)))
    blocks: list[_Block] = [_card_intro(card)]
    blocks += _validation_blocks(card)
    blocks += _optimism_blocks(card)
    fwd = card.get("forward") or {}
    if fwd.get("capture_curves") and fwd.get("fracs"):
        blocks.append(_Heading("Capture curves against the baselines", 4))
        blocks.append(
            _Figure(f"capture_{stem}.png", _capture_chart(card), f"Capture curves, {version}")
        )
    if fwd.get("calibration"):
        blocks.append(_Heading("Calibration", 4))
        blocks.append(
            _Figure(f"calibration_{stem}.png", _calibration_chart(card), f"Calibration, {version}")
        )
    blocks += _importance_blocks(card, stem)
    blocks += _guard_blocks(card)
    return blocks


def _card_intro(card: Mapping[str, Any]) -> _Para:
    """What the model is, its training window and what it scores."""
    tw = card.get("training_window") or {}
    fy, ty = tw.get("feature_years") or ["?", "?"], tw.get("target_years") or ["?", "?"]
    sc = card.get("scoring") or {}
    share = "length" if card.get("weight") == "length_km" else "units"
    return _p(
        f"Kind {card.get('kind', '?')} (scikit-learn {card.get('sklearn_version', '?')}), "
        f"trained {card.get('created_at', '?')} in run ",
        _Code(str(card.get("run_id", "?"))),
        f"; feature years {fy[0]}–{fy[1]}, targets {ty[0]}–{ty[1]}; "
        f"{_int(tw.get('rows'))} unit-years, {_int(tw.get('units'))} units, "
        f"{_int(tw.get('breaks'))} breaks. Scores the year {sc.get('target_year', '?')} "
        f"(features of {sc.get('feature_year', '?')}). Capture is measured on the share "
        f"of {share}.",
    )


def _validation_blocks(card: Mapping[str, Any]) -> list[_Block]:
    """Every scheme's metrics for the model and the baselines side by side."""
    validation = card.get("validation") or {}
    if not validation:
        return [_note("The card holds no validation results.")]
    schemes = [s for s in _SCHEME_ORDER if s in validation]
    schemes += sorted(s for s in validation if s not in _SCHEME_ORDER)
    rows: list[tuple[str, ...]] = []
    strong: list[int] = []
    metrics = ("capture_5pct", "capture_10pct", "roc_auc", "pr_auc")
    for scheme in schemes:
        block = validation[scheme]
        models = block.get("models", {})
        for name in ["model", *sorted(n for n in models if n != "model")]:
            if name not in models:
                continue
            if name == "model":
                strong.append(len(rows))
            rows.append(
                (
                    scheme,
                    name,
                    _int(block.get("folds")),
                    *(_mean_sd(models[name].get(m)) for m in metrics),
                )
            )
    return [
        _Heading("Validation schemes side by side", 4),
        _table(
            ("scheme", "ranking", "folds", "capture @5 %", "capture @10 %", "ROC AUC", "PR AUC"),
            rows,
            "llrrrrr",
            strong=strong,
            caption="Mean ± standard deviation over folds; the model's rows in bold.",
        ),
    ]


def _optimism_blocks(card: Mapping[str, Any]) -> list[_Block]:
    """How much random K-fold overstates skill against the honest schemes."""
    opt = card.get("random_cv_optimism") or {}
    if not opt:
        return [_note("No random-CV optimism in the card (random or comparison scheme absent).")]
    rows = [
        (
            metric,
            _signed(row.get("random_minus_spatial")),
            _signed(row.get("random_minus_forward")),
        )
        for metric, row in opt.items()
    ]
    return [
        _Heading("Random-CV optimism", 4),
        _p(
            "How much random K-fold overstates the model's skill: positive values mean "
            "random K-fold looks better than the honest scheme."
        ),
        _table(("metric", "random − spatial", "random − forward"), rows, "lrr"),
    ]


def _importance_blocks(card: Mapping[str, Any], stem: str) -> list[_Block]:
    """Permutation importance chart (capture at 5 % and ROC AUC)."""
    imp = pd.DataFrame(card.get("importance") or [])
    blocks: list[_Block] = [_Heading("Permutation importance", 4)]
    if imp.empty:
        return [
            *blocks,
            _note("No permutation importance in the card (measured on held-out spatial folds)."),
        ]
    metrics = [m for m in ("capture_5pct", "roc_auc") if m in set(imp["metric"])]
    metrics = metrics or sorted(imp["metric"].unique())[:2]
    png = _importance_chart(imp, metrics)
    return [*blocks, _Figure(f"importance_{stem}.png", png, "Permutation importance")]


def _guard_blocks(card: Mapping[str, Any]) -> list[_Block]:
    """Leakage warnings, skipped schemes, year-to-year variation, limitations."""
    blocks: list[_Block] = [_Heading("Leakage guard", 4)]
    warns = [str(w) for w in card.get("leakage_warnings") or []]
    if warns:
        blocks.append(_Bullets(tuple((_Strong("WARNING: "), w) for w in warns)))
    else:
        blocks.append(
            _p(
                "No warning: no honest scheme shows a ROC AUC above 0.95 or a capture more "
                "than twice the best baseline's."
            )
        )
    skipped = [str(s) for s in card.get("skipped_schemes") or []]
    if skipped:
        blocks.append(_Bullets(tuple(("Skipped: ", s) for s in skipped)))
    year_cv = (card.get("forward") or {}).get("year_cv")
    if not _missing(year_cv):
        blocks.append(
            _p(
                "City-wide totals vary from year to year beyond Poisson noise by a "
                f"coefficient of variation of {float(year_cv):.2f} (carried into the "
                "simulation bands)."
            )
        )
    limits = [str(t) for t in card.get("limitations") or []]
    blocks.append(_Heading("Limitations", 4))
    blocks.append(_Bullets(tuple((t,) for t in limits)) if limits else _note("None stated."))
    notes = [str(n) for n in card.get("feature_notes") or []]
    if notes:
        blocks.append(_Heading("Features left out", 4))
        blocks.append(_Bullets(tuple((n,) for n in notes)))
    return blocks


# -- section: the riskiest units --------------------------------------------------------------
def _names(ctx: _Ctx) -> dict[str, str]:
    """Neighbourhood code -> name."""
    if not ctx.has("neighbourhoods"):
        return {}
    nb = ctx.query("SELECT area_code, area_name FROM neighbourhoods ORDER BY area_code")
    return dict(zip(nb["area_code"], nb["area_name"], strict=True))


def _pipe_label(r: Any) -> str:
    """'<asset> <diameter> mm <material>' for one pipe row."""
    material = None if _missing(r.material) else str(r.material)
    desc = MATERIALS.get(material, material) if material else None
    size = "" if _missing(r.diameter_mm) else f"{float(r.diameter_mm):.0f} mm "
    asset = "" if _missing(r.asset_id) or str(r.asset_id) == str(r.unit_id) else f"{r.asset_id} "
    return f"{asset}{size}{desc or 'unknown material'}".strip()


def _unit_labels(ctx: _Ctx, unit_type: str) -> pd.DataFrame:
    """unit_id -> description and neighbourhood code of every unit of one type."""
    cols = ["unit_id", "description", "neighbourhood"]
    if unit_type == "pipe" and ctx.has("unit_pipe"):
        df = ctx.query(
            "SELECT unit_id, asset_id, material, diameter_mm, neighbourhood FROM unit_pipe"
        )
        df["description"] = [_pipe_label(r) for r in df.itertuples()]
    elif unit_type == "street" and ctx.has("unit_street"):
        df = ctx.query("SELECT unit_id, name, neighbourhood FROM unit_street")
        df["description"] = df["name"].fillna("Unnamed")
    elif unit_type == "cell" and ctx.has("unit_cell"):
        df = ctx.query("SELECT unit_id, pipe_km, neighbourhood FROM unit_cell")
        km = df["pipe_km"].map(lambda v: "" if _missing(v) or v <= 0 else f", {v:.2f} km of pipe")
        df["description"] = "H3 cell" + km
    elif unit_type == "neighbourhood" and ctx.has("neighbourhoods"):
        df = ctx.query(
            "SELECT area_code AS unit_id, area_code AS neighbourhood FROM neighbourhoods"
        )
        df["description"] = "neighbourhood"
    else:
        return pd.DataFrame(columns=cols)
    return df[cols].astype({"unit_id": str})


def _riskiest_section(ctx: _Ctx) -> _Section:
    """Units per tier and the 50 riskiest units of every scored unit type."""
    sec = _Section(SECTIONS[5])
    if not ctx.has("risk_scores"):
        sec.blocks.append(_note("No risk scores in the store (the model stage did not run)."))
        return sec
    types = ctx.query(
        "SELECT unit_type, count(*) AS n, min(model_version) AS v, "
        "min(target_year) AS ty, min(feature_year) AS fy FROM risk_scores "
        "WHERE is_current GROUP BY unit_type ORDER BY unit_type"
    )
    if types.empty:
        sec.blocks.append(_note("No current risk scores in the store."))
        return sec
    sec.blocks += _tier_blocks(ctx)
    names = _names(ctx)
    for t in sorted(types.itertuples(), key=lambda t: _unit_key(t.unit_type)):
        sec.blocks.append(_Heading(f"Riskiest {_UNIT_PLURAL.get(t.unit_type, t.unit_type)}"))
        sec.blocks.append(
            _p(
                f"Scores for {t.ty} (features of {t.fy}) by model ",
                _Code(str(t.v)),
                f"; rank 1 is the riskiest of {t.n:,}. Drivers: the three features that raise "
                "the unit's risk most above a typical unit (change of log expected breaks).",
            )
        )
        sec.blocks.append(_top_table(ctx, t.unit_type, names))
    return sec


def _tier_blocks(ctx: _Ctx) -> list[_Block]:
    """Units per risk tier (highest tier first) and unit type."""
    tiers = ctx.query(
        "SELECT unit_type, tier, count(*) AS n, min(percentile) AS p FROM risk_scores "
        "WHERE is_current GROUP BY ALL ORDER BY ALL"
    )
    table = tiers.pivot(index="tier", columns="unit_type", values="n").fillna(0).astype(int)
    start = tiers.groupby("tier")["p"].min()
    order = sorted(table.index, key=lambda k: (-start[k], k))
    units = sorted(table.columns, key=_unit_key)
    rows = [(t, *(_int(table.at[t, u]) for u in units)) for t in order]
    return [
        _Heading("Units per risk tier"),
        _table(("tier", *(_UNIT_PLURAL.get(u, u) for u in units)), rows, "l" + "r" * len(units)),
    ]


def _top_table(ctx: _Ctx, unit_type: str, names: Mapping[str, str]) -> _Table:
    """The riskiest units of one type with their description, neighbourhood and drivers."""
    top = ctx.query(
        "SELECT rank, unit_id, expected_breaks, probability, percentile, tier, drivers, "
        "length_km FROM risk_scores WHERE is_current AND unit_type = ? "
        "ORDER BY rank, unit_id LIMIT ?",
        [unit_type, _TOP_UNITS],
    )
    top["unit_id"] = top["unit_id"].astype(str)
    top = top.merge(_unit_labels(ctx, unit_type), on="unit_id", how="left")
    with_km = unit_type in ("pipe", "street")
    # a description every unit shares (cells without pipe data) says nothing: left out
    with_desc = top["description"].nunique(dropna=False) > 1
    rows = []
    for r in top.itertuples():
        code = None if _missing(r.neighbourhood) else str(r.neighbourhood)
        desc = "–" if _missing(r.description) else str(r.description)
        rows.append(
            (
                _int(r.rank),
                str(r.unit_id),
                *((desc,) if with_desc else ()),
                f"{names.get(code, code)} ({code})" if code else "–",
                *((_num(r.length_km, 3),) if with_km else ()),
                _num(r.expected_breaks),
                _num(r.probability),
                str(r.tier),
                "–" if _missing(r.drivers) else str(r.drivers),
            )
        )
    header = ("rank", "unit", *(("description",) if with_desc else ()), "neighbourhood")
    header += (*(("km",) if with_km else ()), "expected breaks", "P(any break)", "tier", "drivers")
    align = "rl" + ("l" if with_desc else "") + "l" + ("r" if with_km else "") + "rrll"
    return _table(header, rows, align)


# -- section: Monte Carlo bands and renewal ---------------------------------------------------
def _simulation_section(ctx: _Ctx) -> _Section:
    """Monte Carlo bands per unit type and the renewal scenario."""
    sec = _Section(SECTIONS[6])
    if not ctx.has("simulation_city"):
        sec.blocks.append(
            _note("No Monte Carlo simulation in the store (the model stage did not run).")
        )
    else:
        sec.blocks += _band_blocks(ctx)
    sec.blocks += _renewal_blocks(ctx)
    return sec


def _band_blocks(ctx: _Ctx) -> list[_Block]:
    """Fan chart and table of cumulative breaks by horizon per unit type."""
    city = ctx.query(
        "SELECT unit_type, scenario, horizon, expected, mean, p10, p50, p90, p95, n_sims, seed, "
        "model_version FROM simulation_city WHERE is_current ORDER BY unit_type, scenario, horizon"
    )
    if city.empty:
        return [_note("No current Monte Carlo simulation in the store.")]
    blocks: list[_Block] = []
    for unit_type in sorted(city["unit_type"].unique(), key=_unit_key):
        part = city[city["unit_type"] == unit_type]
        base = part[part["scenario"] == "baseline"]
        first = part.iloc[0]
        blocks.append(_Heading(f"Cumulative breaks, {_UNIT_PLURAL.get(unit_type, unit_type)}"))
        blocks.append(
            _p(
                f"{_int(first['n_sims'])} simulations (seed {_int(first['seed'])}) of model ",
                _Code(str(first["model_version"])),
                "; a city-wide year factor carries the year-to-year swings of the forward "
                "validation into the bands.",
            )
        )
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", unit_type)
        blocks.append(
            _Figure(
                f"simulation_{stem}.png",
                _simulation_chart(part, unit_type),
                f"Simulated cumulative breaks, {_UNIT_PLURAL.get(unit_type, unit_type)}",
            )
        )
        rows = [
            (
                _int(r.horizon),
                _num(r.expected, 1),
                _num(r.mean, 1),
                *(_num(v, 0) for v in (r.p10, r.p50, r.p90, r.p95)),
            )
            for r in base.itertuples()
        ]
        blocks.append(
            _table(
                ("years ahead", "expected", "mean", "P10", "P50", "P90", "P95"),
                rows,
                "rrrrrrr",
                caption="Cumulative breaks without renewal.",
            )
        )
    return blocks


def _renewal_blocks(ctx: _Ctx) -> list[_Block]:
    """Breaks avoided by replacing the riskiest units, with the simulated band."""
    blocks: list[_Block] = [_Heading("Renewal scenario")]
    if not ctx.has("renewal"):
        return [*blocks, _note("No renewal scenario in the store (the model stage did not run).")]
    ren = ctx.query("SELECT * FROM renewal WHERE is_current ORDER BY unit_type, model_version")
    if ren.empty:
        return [*blocks, _note("No current renewal scenario in the store.")]
    rows = []
    for r in sorted(ren.itertuples(), key=lambda r: _unit_key(r.unit_type)):
        replaced = f"{_int(r.units_replaced)} units"
        if not _missing(r.km_replaced):
            replaced = f"{_num(r.km_replaced, 1)} km ({replaced})"
        rows.append(
            (
                _UNIT_PLURAL.get(r.unit_type, r.unit_type),
                _int(r.horizon),
                replaced,
                _pct(r.share_replaced, 2),
                _pct(r.residual, 0),
                _num(r.expected_breaks_baseline, 1),
                _num(r.expected_breaks_after, 1),
                _num(r.expected_breaks_avoided, 1),
                f"{_num(r.avoided_p10, 0)}–{_num(r.avoided_p90, 0)}",
                _num(r.breaks_avoided_per_km, 2),
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
        _p(
            "Replace the riskiest units now; replaced units keep the residual share of their "
            "risk. Breaks over the horizon, expected values; the avoided band is simulated "
            "with common random numbers."
        ),
        _table(header, rows, "lrlrrrrrrr"),
    ]


# -- rendering --------------------------------------------------------------------------------
_CSS = """
:root { --fg: #1b1b1b; --muted: #555; --line: #d0d7de; --band: #f6f8fa; --accent: #0072B2; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 1.25rem 4rem; }
h1 { font-size: 1.9rem; margin: 0 0 .25rem; }
h2 { font-size: 1.45rem; margin: 2.5rem 0 .75rem; padding-bottom: .3rem;
  border-bottom: 2px solid var(--accent); }
h3 { font-size: 1.2rem; margin: 1.8rem 0 .5rem; }
h4 { font-size: 1.05rem; margin: 1.3rem 0 .4rem; }
p.meta { color: var(--muted); margin-top: 0; }
p.note { color: var(--muted); font-style: italic; border-left: 4px solid var(--line);
  padding: .2rem .75rem; }
nav ul { columns: 2; padding-left: 1.2rem; }
a { color: var(--accent); }
code { font: .9em/1.3 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: var(--band); padding: .05rem .25rem; border-radius: 3px; }
.scroll { overflow-x: auto; margin: .5rem 0 1rem; }
table { border-collapse: collapse; font-size: .9rem; }
caption { caption-side: top; text-align: left; color: var(--muted); padding-bottom: .3rem; }
th, td { border: 1px solid var(--line); padding: .3rem .55rem; vertical-align: top; }
th { background: var(--band); text-align: left; }
tbody tr:nth-child(even) { background: #fbfcfd; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.strong td { font-weight: 600; }
figure { margin: 1rem 0 1.5rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: .9rem; }
footer { margin-top: 3rem; color: var(--muted); font-size: .85rem; }
"""


def _esc(text: str) -> str:
    """Data text escaped for HTML (text and attribute values)."""
    return html.escape(str(text), quote=True)


def _html_inline(parts: Iterable[_Inline]) -> str:
    """Inline parts as HTML."""
    out = []
    for part in parts:
        if isinstance(part, _Code):
            out.append(f"<code>{_esc(part.text)}</code>")
        elif isinstance(part, _Strong):
            out.append(f"<strong>{_esc(part.text)}</strong>")
        else:
            out.append(_esc(part))
    return "".join(out)


def _html_table(t: _Table) -> str:
    """A table as HTML (numeric columns right-aligned, scrolls when wide)."""

    def cls(i: int) -> str:
        return ' class="num"' if t.align[i] == "r" else ""

    head = "".join(f"<th{cls(i)}>{_esc(h)}</th>" for i, h in enumerate(t.header))
    body = []
    for n, row in enumerate(t.rows):
        tr = '<tr class="strong">' if n in t.strong else "<tr>"
        cells = "".join(f"<td{cls(i)}>{_esc(c)}</td>" for i, c in enumerate(row))
        body.append(f"{tr}{cells}</tr>")
    caption = f"<caption>{_esc(t.caption)}</caption>" if t.caption else ""
    return (
        f'<div class="scroll"><table>{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>\n{chr(10).join(body)}\n</tbody></table></div>"
    )


def _html_block(block: _Block) -> str:
    """One block as HTML; figures embedded as base64 PNG."""
    if isinstance(block, _Para):
        cls = ' class="note"' if block.note else ""
        return f"<p{cls}>{_html_inline(block.parts)}</p>"
    if isinstance(block, _Heading):
        return f"<h{block.level}>{_esc(block.text)}</h{block.level}>"
    if isinstance(block, _Bullets):
        items = "".join(f"<li>{_html_inline(i)}</li>" for i in block.items)
        return f"<ul>{items}</ul>"
    if isinstance(block, _Table):
        return _html_table(block)
    if isinstance(block, _Figure):
        data = base64.b64encode(block.png).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(block.caption)}">'
            f"<figcaption>{_esc(block.caption)}</figcaption></figure>"
        )
    return f'<p>{_esc(block.before)}<a href="{_esc(block.href)}">{_esc(block.text)}</a></p>'


def _html_document(title: str, meta: Sequence[_Inline], sections: Sequence[_Section]) -> str:
    """The whole self-contained HTML page (CSS inline, no external reference)."""
    toc = "".join(f'<li><a href="#{s.anchor}">{_esc(s.title)}</a></li>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="meta">{_html_inline(meta)}</p>',
        f'<nav aria-label="Contents"><ul>{toc}</ul></nav>',
    ]
    for sec in sections:
        parts.append(f'<section id="{sec.anchor}">')
        parts.append(f"<h2>{_esc(sec.title)}</h2>")
        parts += [_html_block(b) for b in sec.blocks]
        parts.append("</section>")
    parts += [
        f"<footer>Generated by twmb_geo {_esc(__version__)}; every figure is embedded, "
        "the file needs no network.</footer>",
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*\[\]|<])")


def _md_esc(text: str) -> str:
    """Plain text safe inside Markdown (and table cells): specials escaped, one line."""
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", str(text)))


def _md_code(text: str) -> str:
    """Inline code with enough backticks to hold any backtick in the text."""
    text = " ".join(str(text).split())
    ticks = max((len(m) for m in re.findall(r"`+", text)), default=0) + 1
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{'`' * ticks}{pad}{text}{pad}{'`' * ticks}"


def _md_inline(parts: Iterable[_Inline]) -> str:
    """Inline parts as Markdown."""
    out = []
    for part in parts:
        if isinstance(part, _Code):
            out.append(_md_code(part.text))
        elif isinstance(part, _Strong):
            out.append(f"**{_md_esc(part.text).strip()}** ")
        else:
            out.append(_md_esc(part))
    return "".join(out)


def _md_table(t: _Table) -> str:
    """A GitHub table (numeric columns right-aligned)."""

    def row(cells: Sequence[str], strong: bool) -> str:
        out = [_md_esc(c) for c in cells]
        if strong:
            out = [f"**{c}**" if c else c for c in out]
        return "| " + " | ".join(out) + " |"

    lines = [f"*{_md_esc(t.caption)}*", ""] if t.caption else []
    lines.append(row(t.header, False))
    lines.append("|" + "|".join("---:" if a == "r" else "---" for a in t.align) + "|")
    lines += [row(r, n in t.strong) for n, r in enumerate(t.rows)]
    return "\n".join(lines)


def _md_block(block: _Block) -> str:
    """One block as Markdown; figures linked under ``figures/``."""
    if isinstance(block, _Para):
        text = _md_inline(block.parts)
        if re.match(r"[>#+=-]|\d+[.)]", text):  # would start a quote, heading or list
            text = "\\" + text
        return f"> {text}" if block.note else text
    if isinstance(block, _Heading):
        return f"{'#' * block.level} {_md_esc(block.text)}"
    if isinstance(block, _Bullets):
        return "\n".join(f"- {_md_inline(i)}" for i in block.items)
    if isinstance(block, _Table):
        return _md_table(block)
    if isinstance(block, _Figure):
        return f"![{_md_esc(block.caption)}](figures/{block.name})"
    return f"{_md_esc(block.before)}[{_md_esc(block.text)}]({block.href})"


def _md_document(title: str, meta: Sequence[_Inline], sections: Sequence[_Section]) -> str:
    """The whole Markdown report."""
    lines = [f"# {_md_esc(title)}", "", _md_inline(meta), "", "## Contents", ""]
    lines += [f"- [{_md_esc(s.title)}](#{s.anchor})" for s in sections]
    for sec in sections:
        lines += ["", f"## {_md_esc(sec.title)}"]
        for block in sec.blocks:
            lines += ["", _md_block(block)]
    lines += ["", f"*Generated by twmb_geo {_md_esc(__version__)}.*"]
    return "\n".join(lines) + "\n"


# -- writing ----------------------------------------------------------------------------------
def _figures(sections: Sequence[_Section]) -> list[_Figure]:
    """Every figure block, in report order (names must be unique)."""
    figs = [b for s in sections for b in s.blocks if isinstance(b, _Figure)]
    names = [f.name for f in figs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:  # pragma: no cover - names are built per unit type; a guard against regressions
        raise ValueError(f"duplicate report figure names: {dupes}")
    return figs


def _write_figures(folder: Path, figs: Sequence[_Figure]) -> None:
    """Write the PNGs the Markdown links and drop stale PNGs of an earlier report."""
    fig_dir = folder / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    keep = {f.name for f in figs}
    for old in sorted(fig_dir.glob("*.png")):
        if old.name not in keep:
            old.unlink()
    for f in figs:
        atomic_write(fig_dir / f.name, f.png)


def _meta(ctx: _Ctx) -> tuple[_Inline, ...]:
    """The line under the title: the store and the latest run with its recorded time."""
    parts: list[_Inline] = ["Store ", _Code(str(ctx.cfg.store_path))]
    if ctx.has("runs"):
        last = ctx.query(
            "SELECT run_id, finished_at, started_at FROM runs ORDER BY started_at DESC, "
            "run_id DESC LIMIT 1"
        ).iloc[0]
        when = last["finished_at"] if not _missing(last["finished_at"]) else last["started_at"]
        parts += ["; latest ingest run ", _Code(str(last["run_id"])), f" ({_time(when)})"]
    return (*parts, ".")


_BUILDERS: tuple[Callable[[_Ctx], _Section], ...] = (
    _data_section,
    _breaks_section,
    _maps_section,
    _hotspot_section,
    _models_section,
    _riskiest_section,
    _simulation_section,
)


def write_report(
    cfg: Config,
    folder: Path | str | None = None,
    *,
    map_images: Mapping[str, Path] | None = None,
    html_map: Path | None = None,
) -> dict[str, Any]:
    """Write ``report.html`` and ``report.md`` (figures under ``figures/``) from the store.

    ``folder`` defaults to ``<out>/report``. ``map_images`` (name -> PNG, as rendered by the
    static maps) are embedded in the Maps section; ``html_map`` is linked relatively.
    Returns ``{"html": path, "markdown": path, "figures": [file names], "sections": [titles]}``.
    """
    folder = Path(folder) if folder is not None else cfg.out_dir / "report"
    folder.mkdir(parents=True, exist_ok=True)
    with Store(cfg.store_path, read_only=True) as store:
        ctx = _Ctx(cfg, store, folder, dict(map_images or {}), html_map)
        sections = [build(ctx) for build in _BUILDERS]
        meta = _meta(ctx)
    name = cfg.name[:1].upper() + cfg.name[1:]  # "toronto" -> "Toronto", "GTA-west" kept
    title = f"Water-main break report: {name}"
    figs = _figures(sections)
    _write_figures(folder, figs)
    html_path, md_path = folder / "report.html", folder / "report.md"
    atomic_write(html_path, _html_document(title, meta, sections).encode("utf-8"))
    atomic_write(md_path, _md_document(title, meta, sections).encode("utf-8"))
    return {
        "html": html_path,
        "markdown": md_path,
        "figures": [f.name for f in figs],
        "sections": [s.title for s in sections],
    }
