"""Static PNG maps of risk, hot spots and break density, for reports and print (A4 landscape).

:func:`render_maps` draws, from the layers of :func:`twmb_geo.maps.layers.map_layers`:

* ``risk_cells.png`` - H3 cells by risk tier, neighbourhood outlines for context;
* ``tier_pipes.png`` / ``tier_streets.png`` - water mains / street segments coloured by risk
  tier, higher tiers thicker and on top, unscored lines in light grey (only when the city
  has those layers and they carry scores);
* ``hotspots.png`` - H3 cells by hot-spot persistence class (LISA over the years);
* ``break_density.png`` - breaks per km² in regular hexagons, with a colour bar.

Maps are drawn in the store's projected CRS (EPSG:2952, metres), so the scale bar is true,
with matplotlib's Agg renderer and no basemap (works offline). Every map has a title, a
legend or colour bar, a km scale bar, a north arrow and a source line; palettes are
colour-blind safe (viridis for sequential data and tiers, Okabe-Ito for hot-spot classes,
no red/green pairs). Figures are A4 landscape at 150 dpi (:data:`PAGE_PX` pixels) and the
PNG bytes are deterministic: the same layers give identical files.

A map whose data is missing (no scores, no hot-spot classes, no breaks) is skipped, with
the reason logged, and any file of that name left by an earlier render is removed so the
folder always reflects the layers given.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import matplotlib as mpl
import matplotlib.style
import numpy as np
import pandas as pd
import shapely
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PatchCollection, PathCollection
from matplotlib.colors import LogNorm, to_rgba_array
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..core.files import atomic_path
from ..core.vocab import NOT_COMPUTED, UNSCORED
from .exports import orient_rfc7946
from .layers import STORE_CRS

__all__ = ["DPI", "MAP_NAMES", "PAGE_PX", "render_maps"]

log = logging.getLogger(__name__)

#: every map, in drawing order; the file is ``<name>.png``
MAP_NAMES: Final[tuple[str, ...]] = (
    "risk_cells",
    "tier_pipes",
    "tier_streets",
    "hotspots",
    "break_density",
)
#: resolution of the PNG files
DPI: Final[int] = 150
#: PNG size in pixels (width, height): A4 landscape (297 x 210 mm) at :data:`DPI`
PAGE_PX: Final[tuple[int, int]] = (1754, 1240)
_FIGSIZE: Final[tuple[float, float]] = (PAGE_PX[0] / DPI, PAGE_PX[1] / DPI)
_DEFAULT_SOURCE = (
    "Contains information licensed under the Open Government Licence – Toronto. twmb_geo."
)
_CRS_NOTE = "Projection: NAD83(CSRS) / MTM zone 10 (EPSG:2952)"
#: fixed rc settings so output does not depend on the user's matplotlibrc
_RC: Final[dict[str, Any]] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 10,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "path.simplify": True,
}
# map frame and side panel, in figure fractions
_MAP_BOX: Final[tuple[float, float, float, float]] = (0.015, 0.075, 0.735, 0.83)
_PANEL_X: Final[float] = 0.765
_PANEL_TOP: Final[float] = 0.90

#: risk tiers (as in the default config), highest first, viridis-derived colours
_TIER_COLOURS: Final[dict[str, str]] = {
    "very_high": "#440154",
    "high": "#3b528b",
    "elevated": "#21918c",
    "low": "#dcec9a",
}
_LOW_LINE = "#b5de2b"
_UNSCORED = UNSCORED
_UNSCORED_COLOUR = "#cccccc"
#: line width (points) of tiers, highest first; unscored lines are thinnest
_TIER_WIDTHS: Final[tuple[float, ...]] = (2.4, 1.6, 1.0, 0.6)
_UNSCORED_WIDTH = 0.4
#: hot-spot persistence classes (precedence order): Okabe-Ito colours for hot and cold spots,
#: muted tints for the rest so hot spots stand out
_HOTSPOT_COLOURS: Final[dict[str, str]] = {
    "persistent hot spot": "#D55E00",
    "emerging hot spot": "#E69F00",
    "intermittent hot spot": "#CC79A7",
    "transient hot spot": "#F0E442",
    "persistent cold spot": "#0072B2",
    "other significant": "#c6e3f6",
    "never significant": "#e6e6e6",
    "not assessed": "#f7f7f7",
    NOT_COMPUTED: "#bdbdbd",
}
_OUTLINE = "#404040"
#: candidate widths (m) of the hexagons of the density map
_HEX_WIDTHS: Final[tuple[float, ...]] = (25, 50, 100, 200, 250, 500, 1000, 2000, 5000)


# --------------------------------------------------------------------------- geometry


def _ring_paths(geoms: np.ndarray) -> tuple[list[MplPath], np.ndarray]:
    """One compound path per (multi)polygon, holes included; and the row of each path.

    Vectorised with shapely 2: rings and coordinates are pulled out in one go and split
    per feature; rings are oriented first (exterior CCW, holes CW) so holes stay empty
    under any fill rule.
    """
    polys, pidx = shapely.get_parts(orient_rfc7946(geoms), return_index=True)
    rings, ridx = shapely.get_rings(polys, return_index=True)
    coords, cidx = shapely.get_coordinates(rings, return_index=True)
    if not len(coords):
        return [], np.empty(0, dtype=np.int64)
    codes = np.full(len(coords), MplPath.LINETO, dtype=MplPath.code_type)
    starts = np.r_[0, np.flatnonzero(np.diff(cidx)) + 1]
    codes[starts] = MplPath.MOVETO
    codes[np.r_[starts[1:] - 1, len(coords) - 1]] = MplPath.CLOSEPOLY
    owner = pidx[ridx[cidx]]
    cuts = np.flatnonzero(np.diff(owner)) + 1
    paths = [
        MplPath(v, c, readonly=True)
        for v, c in zip(np.split(coords, cuts), np.split(codes, cuts), strict=True)
    ]
    return paths, owner[np.r_[0, cuts]]


def _line_parts(geoms: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Vertex arrays of every (multi)linestring part, and the row each part belongs to."""
    parts, pidx = shapely.get_parts(geoms, return_index=True)
    coords, cidx = shapely.get_coordinates(parts, return_index=True)
    if not len(coords):
        return [], np.empty(0, dtype=np.int64)
    cuts = np.flatnonzero(np.diff(cidx)) + 1
    return np.split(coords, cuts), pidx[cidx[np.r_[0, cuts]]]


def _fill(ax: Axes, gdf: gpd.GeoDataFrame, colours: Sequence[str] | np.ndarray) -> None:
    """Polygons filled with one colour per row (seamless: edges in the face colour)."""
    paths, owner = _ring_paths(gdf.geometry.to_numpy())
    rgba = to_rgba_array(np.asarray(colours, dtype=object))[owner]
    ax.add_collection(
        PathCollection(paths, facecolors=rgba, edgecolors=rgba, linewidths=0.2, zorder=1),
        autolim=False,
    )


def _outlines(
    ax: Axes, gdf: gpd.GeoDataFrame | None, width: float = 0.5, colour: str = _OUTLINE
) -> Line2D | None:
    """Neighbourhood boundaries as thin lines on top of areas; the legend handle, if drawn."""
    if gdf is None or gdf.empty:
        return None
    segs, _ = _line_parts(shapely.boundary(gdf.geometry.to_numpy()))
    ax.add_collection(
        LineCollection(segs, colors=colour, linewidths=width, alpha=0.7, zorder=5),
        autolim=False,
    )
    return Line2D([], [], color=colour, lw=width * 1.5, label="Neighbourhood boundary")


# --------------------------------------------------------------------------- furniture


def _nice_length(target: float) -> float:
    """The largest 1-2-5 x 10^k length not above ``target`` (metres)."""
    exp = 10 ** math.floor(math.log10(target))
    return max(s * exp for s in (1, 2, 5) if s * exp <= target)


def _scale_bar(ax: Axes) -> None:
    """A true-length scale bar (km, or m when short) and a north arrow, lower right.

    Drawn in axes fractions from the final x-limits in metres (the map is in EPSG:2952,
    scale factor 0.9999), on a white box so it stays legible over data. Grid north of MTM
    zone 10 is within a fraction of a degree of true north over Toronto.
    """
    ax.apply_aspect()
    x0, x1 = ax.get_xlim()
    length = _nice_length(0.2 * (x1 - x0))
    frac = length / (x1 - x0)
    right, bottom, bar_h = 0.955, 0.04, 0.014
    left = right - frac
    n_seg = 4
    ax.add_collection(
        PatchCollection(
            [
                Rectangle((left + i * frac / n_seg, bottom), frac / n_seg, bar_h)
                for i in range(n_seg)
            ],
            facecolors=["black", "white"] * (n_seg // 2),
            edgecolors="black",
            linewidths=0.8,
            transform=ax.transAxes,
            zorder=21,
        ),
        autolim=False,
    )
    km = length >= 1000
    for i, share in enumerate((0.0, 0.5, 1.0)):
        value = length * share / (1000 if km else 1)
        label = f"{value:g}" + ((" km" if km else " m") if i == 2 else "")
        ax.text(left + frac * share, bottom + bar_h + 0.008, label, transform=ax.transAxes,
                ha="center", va="bottom", fontsize=8, zorder=22)  # fmt: skip
    mid = (left + right) / 2
    tail, head = bottom + bar_h + 0.06, bottom + bar_h + 0.12
    ax.annotate(
        "",
        xy=(mid, head),
        xytext=(mid, tail),
        xycoords="axes fraction",
        arrowprops={"arrowstyle": "-|>,head_width=0.4,head_length=0.8", "lw": 1.6, "color": "k"},
        zorder=22,
    )
    ax.text(mid, head + 0.004, "N", transform=ax.transAxes, ha="center", va="bottom",
            fontsize=12, fontweight="bold", zorder=22)  # fmt: skip
    ax.add_patch(
        Rectangle(
            (left - 0.025, bottom - 0.015),
            frac + 0.05,
            head + 0.05 - bottom + 0.015,
            transform=ax.transAxes,
            facecolor="white",
            edgecolor="#999999",
            alpha=0.85,
            linewidth=0.5,
            zorder=20,
        )
    )


def _legend(fig: Figure, handles: Sequence[Any], title: str) -> None:
    """The legend in the side panel, top."""
    fig.legend(
        handles=list(handles),
        title=title,
        loc="upper left",
        bbox_to_anchor=(_PANEL_X, _PANEL_TOP),
        frameon=False,
        alignment="left",
        handlelength=2.2,
        borderaxespad=0.0,
    )


def _page(title: str, subtitle: str, source: str, bounds: np.ndarray) -> tuple[Figure, Axes]:
    """An A4 landscape figure with title, subtitle, source line and the map frame."""
    fig = Figure(figsize=_FIGSIZE, dpi=DPI)
    fig.text(0.015, 0.955, title, fontsize=16, fontweight="bold", va="center")
    fig.text(0.015, 0.922, subtitle, fontsize=10, color="#333333", va="center")
    fig.text(0.015, 0.03, f"{source}\n{_CRS_NOTE}", fontsize=8, color="#444444", va="center")
    ax = fig.add_axes(_MAP_BOX)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#999999")
        spine.set_linewidth(0.6)
    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    pad = 0.03 * max(xmax - xmin, ymax - ymin, 100.0)
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    w, h = xmax - xmin + 2 * pad, ymax - ymin + 2 * pad
    # grow one side so the data box has the frame's aspect: equal scale, nothing cut
    frame = (_MAP_BOX[3] * _FIGSIZE[1]) / (_MAP_BOX[2] * _FIGSIZE[0])
    w, h = max(w, h / frame), max(h, w * frame)
    ax.set_xlim(cx - w / 2, cx + w / 2)
    ax.set_ylim(cy - h / 2, cy + h / 2)
    ax.set_aspect("equal", adjustable="box")
    return fig, ax


def _extent(data: gpd.GeoDataFrame, context: gpd.GeoDataFrame | None) -> np.ndarray:
    """Map bounds: the data's, widened to the context layer when the data covers most of it.

    A city-wide layer is shown with the whole city (e.g. breaks with every neighbourhood);
    a small study area (a synthetic pipe network) is shown on its own.
    """
    bounds = data.total_bounds
    if context is None or context.empty:
        return bounds
    ctx = context.total_bounds
    area = (bounds[2] - bounds[0]) * (bounds[3] - bounds[1])
    ctx_area = (ctx[2] - ctx[0]) * (ctx[3] - ctx[1])
    if ctx_area > 2.0 * area:
        return bounds
    return np.r_[np.minimum(bounds[:2], ctx[:2]), np.maximum(bounds[2:], ctx[2:])]


def _save(fig: Figure, path: Path) -> Path:
    """PNG with fixed metadata (no software version), written via a temporary name."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return path


# --------------------------------------------------------------------------- classes


def _year(values: pd.Series | None) -> int | None:
    """The latest year in a column, or None."""
    if values is None:
        return None
    v = pd.to_numeric(values, errors="coerce").max()
    return None if pd.isna(v) else int(v)


def _pretty(name: str) -> str:
    return str(name).replace("_", " ")


def _tier_order(gdf: gpd.GeoDataFrame) -> list[str]:
    """Scored tiers, highest first: the default tiers in config order, else by percentile."""
    scored = gdf[gdf["tier"].notna() & (gdf["tier"] != _UNSCORED)]
    tiers = scored["tier"].astype(str)
    present = set(tiers)
    if present <= set(_TIER_COLOURS):
        return [t for t in _TIER_COLOURS if t in present]
    pct = (
        pd.to_numeric(scored["percentile"], errors="coerce")
        if "percentile" in scored
        else pd.Series(np.nan, index=scored.index)
    )
    median = pct.groupby(tiers).median().fillna(-1.0)
    return sorted(present, key=lambda t: (-float(median.get(t, -1.0)), t))


def _tier_colours(order: Sequence[str], lines: bool = False) -> dict[str, str]:
    """Colours of the tiers: the fixed palette for the default tiers, viridis otherwise.

    Lines get a stronger colour for the lowest tier than areas: a pale fill reads well,
    a pale thin line on white disappears.
    """
    if all(t in _TIER_COLOURS for t in order):
        out = {t: _TIER_COLOURS[t] for t in order}
        if lines and "low" in out:
            out["low"] = _LOW_LINE
        return out
    cmap = mpl.colormaps["viridis"]
    steps = np.linspace(0.0, 0.9, max(len(order), 2))
    return {t: mpl.colors.to_hex(cmap(float(s))) for t, s in zip(order, steps, strict=False)}


def _has_scores(gdf: gpd.GeoDataFrame | None) -> bool:
    """Whether any row of the layer has a risk tier."""
    if gdf is None or gdf.empty or "tier" not in gdf:
        return False
    return bool((gdf["tier"].notna() & (gdf["tier"] != _UNSCORED)).any())


def _has_hotspots(gdf: gpd.GeoDataFrame | None) -> bool:
    """Whether any row of the layer has a computed hot-spot persistence class."""
    if gdf is None or gdf.empty or "hotspot_class" not in gdf:
        return False
    cls = gdf["hotspot_class"]
    return bool((cls.notna() & (cls != NOT_COMPUTED)).any())


def _count_label(name: str, n: int, unit: str) -> str:
    """Legend label with the feature count, e.g. ``"very high (1 pipe)"``."""
    return f"{_pretty(name)} ({n:,} {unit if n != 1 else unit.removesuffix('s')})"


# --------------------------------------------------------------------------- maps


def _risk_cells(
    cells: gpd.GeoDataFrame, nbhd: gpd.GeoDataFrame | None, place: str, source: str
) -> Figure:
    order = _tier_order(cells)
    colours = _tier_colours(order)
    tier = cells["tier"].fillna(_UNSCORED).astype(str)
    year = _year(cells.get("score_year"))
    versions = sorted(set(cells.get("model_version", pd.Series()).dropna().astype(str)))
    scored = int((tier != _UNSCORED).sum())
    subtitle = f"{scored:,} of {len(cells):,} cells scored; tiers by risk percentile"
    if versions:
        subtitle += f"; model {', '.join(versions)}"
    fig, ax = _page(
        f"{place} — predicted break risk{f' {year}' if year else ''} (H3 cells)",
        subtitle,
        source,
        _extent(cells, nbhd),
    )
    _fill(ax, cells, tier.map(colours).fillna(_UNSCORED_COLOUR).to_numpy())
    outline = _outlines(ax, nbhd)
    counts = tier.value_counts()
    handles: list[Any] = [
        Patch(facecolor=colours[t], label=_count_label(t, int(counts[t]), "cells")) for t in order
    ]
    if _UNSCORED in counts:
        handles.append(
            Patch(
                facecolor=_UNSCORED_COLOUR,
                label=_count_label(_UNSCORED, int(counts[_UNSCORED]), "cells"),
            )
        )
    handles += [outline] if outline else []
    _legend(fig, handles, "Risk tier")
    _scale_bar(ax)
    return fig


def _tier_lines(
    lines: gpd.GeoDataFrame,
    nbhd: gpd.GeoDataFrame | None,
    what: str,
    unit: str,
    place: str,
    source: str,
) -> Figure:
    order = _tier_order(lines)
    colours = _tier_colours(order, lines=True)
    tier = lines["tier"].fillna(_UNSCORED).astype(str)
    year = _year(lines.get("score_year"))
    km = float(lines["length_m"].sum()) / 1000 if "length_m" in lines else float("nan")
    scored = int((tier != _UNSCORED).sum())
    subtitle = f"{scored:,} of {len(lines):,} {unit} scored"
    subtitle += f" ({km:,.0f} km)" if np.isfinite(km) else ""
    subtitle += "; higher tiers drawn thicker and on top"
    fig, ax = _page(
        f"{place} — predicted break risk{f' {year}' if year else ''} ({what})",
        subtitle,
        source,
        _extent(lines, nbhd),
    )
    outline = _outlines(ax, nbhd, width=1.0, colour="#9a9a9a")
    widths = dict(zip(order, _TIER_WIDTHS[: len(order)], strict=False))
    widths.update({t: _TIER_WIDTHS[-1] for t in order if t not in widths})
    styles = [(_UNSCORED, _UNSCORED_COLOUR, _UNSCORED_WIDTH)]
    styles += [(t, colours[t], widths[t]) for t in reversed(order)]
    segs, owner = _line_parts(lines.geometry.to_numpy())
    part_tier = tier.to_numpy()[owner]
    counts = tier.value_counts()
    handles: list[Any] = []
    for z, (name, colour, width) in enumerate(styles):
        keep = np.flatnonzero(part_tier == name)
        if not len(keep):
            continue
        ax.add_collection(
            LineCollection(
                [segs[i] for i in keep],
                colors=colour,
                linewidths=width,
                capstyle="round",
                zorder=10 + z,
            ),
            autolim=False,
        )
        label = _count_label(name, int(counts.get(name, 0)), unit)
        handles.append(Line2D([], [], color=colour, lw=max(width, 1.0), label=label))
    handles.reverse()
    handles += [outline] if outline else []
    _legend(fig, handles, "Risk tier")
    _scale_bar(ax)
    return fig


def _hotspots(
    cells: gpd.GeoDataFrame, nbhd: gpd.GeoDataFrame | None, place: str, source: str
) -> Figure:
    cls = cells["hotspot_class"].fillna(NOT_COMPUTED).astype(str)
    extra = sorted(set(cls) - set(_HOTSPOT_COLOURS))
    colours = dict(_HOTSPOT_COLOURS)
    cmap = mpl.colormaps["cividis"]
    for i, name in enumerate(extra):
        colours[name] = mpl.colors.to_hex(cmap(0.2 + 0.6 * i / max(len(extra) - 1, 1)))
    year = _year(cells.get("lisa_year"))
    fig, ax = _page(
        f"{place} — break hot-spot persistence{f' to {year}' if year else ''} (H3 cells)",
        "Local Moran's I (LISA) of yearly break counts; class by how often a cell was a "
        "significant high-high cluster",
        source,
        _extent(cells, nbhd),
    )
    _fill(ax, cells, cls.map(colours).to_numpy())
    outline = _outlines(ax, nbhd)
    counts = cls.value_counts()
    handles: list[Any] = [
        Patch(
            facecolor=colours[c],
            edgecolor="#999999",
            linewidth=0.5,
            label=_count_label(c, int(counts[c]), "cells"),
        )
        for c in [*_HOTSPOT_COLOURS, *extra]
        if c in counts
    ]
    handles += [outline] if outline else []
    _legend(fig, handles, "Hot-spot persistence")
    _scale_bar(ax)
    return fig


def _hex_width(span: float, n_points: int) -> float:
    """A round hexagon width (m) for ``n_points`` breaks spread over ``span`` metres.

    About sqrt(n)/2 hexagons across, between 15 and 90: fine enough to show structure,
    coarse enough that a typical hexagon holds several breaks (35,000 Toronto breaks over
    43 km give 500 m hexagons).
    """
    target = span / min(max(math.sqrt(max(n_points, 1)) / 2.0, 15.0), 90.0)
    return min(_HEX_WIDTHS, key=lambda w: abs(math.log(w / max(target, 1e-9))))


def _break_density(
    breaks: gpd.GeoDataFrame, nbhd: gpd.GeoDataFrame | None, place: str, source: str
) -> Figure:
    xy = shapely.get_coordinates(breaks.geometry.to_numpy())
    years = pd.to_numeric(breaks["year"], errors="coerce") if "year" in breaks else None
    first = None if years is None or years.isna().all() else int(years.min())
    last = _year(years)
    span = f" {first}–{last}" if first is not None and first != last else ""
    span = f" {last}" if first is not None and first == last else span
    xmin, ymin = xy.min(axis=0)
    xmax, ymax = xy.max(axis=0)
    width = _hex_width(max(xmax - xmin, ymax - ymin), len(xy))
    height = math.sqrt(3.0) * width  # row pitch x 2 for a regular pointy-top hexagon
    nx = max(math.ceil((xmax - xmin) / width), 1)
    ny = max(math.ceil((ymax - ymin) / height), 1)
    area_km2 = math.sqrt(3.0) / 2.0 * width**2 / 1e6
    fig, ax = _page(
        f"{place} — water-main break density{span}",
        f"{len(xy):,} breaks counted in hexagons {width:g} m wide ({area_km2:.3g} km²); "
        "empty hexagons blank",
        source,
        _extent(breaks, nbhd),
    )
    hexes = ax.hexbin(
        xy[:, 0],
        xy[:, 1],
        gridsize=(nx, ny),
        extent=(xmin, xmin + nx * width, ymin, ymin + ny * height),
        mincnt=1,
        cmap="viridis",
        linewidths=0.2,
        edgecolors="face",
        zorder=1,
    )
    density = np.asarray(hexes.get_array(), dtype=float) / area_km2
    hexes.set_array(density)
    lo, hi = float(density.min()), float(density.max())
    hexes.set_norm(LogNorm(vmin=lo, vmax=max(hi, lo * 10)))
    outline = _outlines(ax, nbhd, width=0.35)
    if outline:
        _legend(fig, [outline], "")
    cax = fig.add_axes((_PANEL_X + 0.015, 0.2, 0.022, 0.58))
    bar = fig.colorbar(hexes, cax=cax)
    bar.set_label(f"Breaks per km²{span} (log scale)", fontsize=10)
    bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    bar.ax.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    )
    bar.ax.yaxis.set_minor_formatter(NullFormatter())
    bar.ax.tick_params(labelsize=9)
    _scale_bar(ax)
    return fig


# --------------------------------------------------------------------------- entry point


def _projected(gdf: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    """A layer in the projected CRS without empty geometries, or None if nothing is left."""
    if gdf is None or gdf.empty:
        return None
    out = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)]
    if out.empty:
        return None
    return out.to_crs(STORE_CRS) if out.crs is not None else out.set_crs(STORE_CRS)


def render_maps(
    layers: Mapping[str, gpd.GeoDataFrame],
    folder: Path | str,
    *,
    place: str = "Toronto",
    source: str = _DEFAULT_SOURCE,
) -> dict[str, Path]:
    """Draw the static maps of the layers as PNG files in ``folder``.

    Parameters
    ----------
    layers
        Layer name -> GeoDataFrame, as from :func:`~twmb_geo.maps.layers.map_layers`
        (any CRS; a layer without CRS is taken to be in EPSG:2952).
    folder
        Output folder (created if missing); files are ``<map name>.png``.
    place
        Place name that starts every title.
    source
        Source and licence line printed at the bottom of every map.

    Returns
    -------
    dict
        Map name (see :data:`MAP_NAMES`) -> PNG path, for the maps drawn; a map whose
        data is missing is left out (the reason is logged at INFO level).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    nbhd = _projected(layers.get("neighbourhoods"))
    cells = _projected(layers.get("cells"))
    breaks = _projected(layers.get("breaks"))
    plans: dict[str, tuple[str | None, Any]] = {}
    if not _has_scores(cells):
        plans["risk_cells"] = ("no cell has a risk score (run the model stage)", None)
    else:
        plans["risk_cells"] = (None, lambda: _risk_cells(cells, nbhd, place, source))
    for name, layer, what, unit in (
        ("tier_pipes", "pipes", "water mains", "pipes"),
        ("tier_streets", "streets", "street segments", "streets"),
    ):
        lines = _projected(layers.get(layer))
        if lines is None:
            plans[name] = (f"the city has no {layer} layer", None)
        elif not _has_scores(lines):
            plans[name] = (f"no {unit[:-1]} has a risk score (run the model stage)", None)
        else:
            plans[name] = (
                None,
                lambda lines=lines, what=what, unit=unit: _tier_lines(
                    lines, nbhd, what, unit, place, source
                ),
            )
    if not _has_hotspots(cells):
        plans["hotspots"] = ("no hot-spot persistence classes for cells", None)
    else:
        plans["hotspots"] = (None, lambda: _hotspots(cells, nbhd, place, source))
    if breaks is None:
        plans["break_density"] = ("no break points", None)
    else:
        plans["break_density"] = (None, lambda: _break_density(breaks, nbhd, place, source))

    written: dict[str, Path] = {}
    with mpl.style.context("default"), mpl.rc_context(_RC):
        for name in MAP_NAMES:
            reason, draw = plans[name]
            path = folder / f"{name}.png"
            if draw is None:
                log.info("map %s skipped: %s", name, reason)
                if path.exists():
                    path.unlink()
                    log.info("removed stale %s", path)
                continue
            written[name] = _save(draw(), path)
    return written
