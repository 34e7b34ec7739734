"""Static PNG maps of risk, hot spots and break density, for reports and print (A4 landscape).

:func:`render_maps` draws, from the layers of :func:`twmb_geo.maps.layers.map_layers`:

* ``risk_cells.png`` - H3 cells by risk tier, neighbourhood outlines for context;
* ``tier_pipes.png`` / ``tier_streets.png`` - water mains / street segments coloured by risk
  tier, higher tiers thicker and on top, unscored lines in light grey (only when the city
  has those layers and they carry scores);
* ``hotspots.png`` - H3 cells by hot-spot persistence class (LISA over the years);
* ``break_density.png`` - breaks per km² in regular hexagons, with a colour bar.

Maps are drawn in the project's analysis CRS (projected, metres), so the scale bar is true,
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
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import matplotlib as mpl
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..core.vocab import DEFAULT_TIERS, HOTSPOT_ORDER, NOT_COMPUTED, UNSCORED
from ._draw import (
    DPI,
    PAGE_PX,
    PANEL_X,
    extent,
    fill,
    legend,
    outlines,
    page,
    save,
    scale_bar,
)
from .views import MAP_COLUMNS, LineView, MapViews, PointView, map_view

__all__ = ["DPI", "MAP_COLUMNS", "MAP_NAMES", "PAGE_PX", "MapViews", "map_view", "render_maps"]

log = logging.getLogger(__name__)

#: every map, in drawing order; the file is ``<name>.png``
MAP_NAMES: Final[tuple[str, ...]] = (
    "risk_cells",
    "tier_pipes",
    "tier_streets",
    "hotspots",
    "break_density",
)
#: the credit that ends every map's source line
_CREDIT = "twmb_geo."
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

#: the default risk tiers, highest first, viridis-derived colours
_TIER_COLOURS: Final[dict[str, str]] = dict(
    zip(
        (name for name, _ in DEFAULT_TIERS),
        ("#440154", "#3b528b", "#21918c", "#dcec9a"),
        strict=True,
    )
)
#: the lowest default tier, drawn stronger as a line than as an area
_LOW_TIER = DEFAULT_TIERS[-1][0]
_LOW_LINE = "#b5de2b"
_UNSCORED = UNSCORED
_UNSCORED_COLOUR = "#cccccc"
#: line width (points) of tiers, highest first; unscored lines are thinnest
_TIER_WIDTHS: Final[tuple[float, ...]] = (2.4, 1.6, 1.0, 0.6)
_UNSCORED_WIDTH = 0.4
#: hot-spot persistence classes (precedence order): Okabe-Ito colours for hot and cold spots,
#: muted tints for the rest so hot spots stand out
_HOTSPOT_COLOURS: Final[dict[str, str]] = dict(
    zip(
        HOTSPOT_ORDER,
        (
            *("#D55E00", "#E69F00", "#CC79A7", "#F0E442", "#0072B2"),
            *("#c6e3f6", "#e6e6e6", "#f7f7f7", "#bdbdbd"),
        ),
        strict=True,
    )
)
#: candidate widths (m) of the hexagons of the density map
_HEX_WIDTHS: Final[tuple[float, ...]] = (25, 50, 100, 200, 250, 500, 1000, 2000, 5000)


# --------------------------------------------------------------------------- classes


def _year(values: pd.Series | None) -> int | None:
    """The latest year in a column, or None."""
    if values is None:
        return None
    v = pd.to_numeric(values, errors="coerce").max()
    return None if pd.isna(v) else int(v)


def _pretty(name: str) -> str:
    return str(name).replace("_", " ")


def _title(place: str, what: str) -> str:
    """``"<place> — <what>"``, or ``what`` capitalised without a place."""
    return f"{place} — {what}" if place else what[:1].upper() + what[1:]


def _tier_order(gdf: pd.DataFrame) -> list[str]:
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
        if lines and _LOW_TIER in out:
            out[_LOW_TIER] = _LOW_LINE
        return out
    cmap = mpl.colormaps["viridis"]
    steps = np.linspace(0.0, 0.9, max(len(order), 2))
    return {t: mpl.colors.to_hex(cmap(float(s))) for t, s in zip(order, steps, strict=False)}


def _has_scores(gdf: pd.DataFrame | None) -> bool:
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
    fig, ax = page(
        _title(place, f"predicted break risk{f' {year}' if year else ''} (H3 cells)"),
        subtitle,
        source,
        extent(cells.total_bounds, nbhd),
    )
    fill(ax, cells, tier.map(colours).fillna(_UNSCORED_COLOUR).to_numpy())
    outline = outlines(ax, nbhd)
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
    legend(fig, handles, "Risk tier")
    scale_bar(ax)
    return fig


class _SpooledLines(LineCollection):
    """One tier's lines, drawn a block of parts at a time from a :class:`LineView`: only
    one block's paths exist at once, and the pixels are those of one collection of all."""

    def __init__(self, lines: LineView, tier: str, **style: Any) -> None:
        super().__init__([], **style)
        self._lines, self._tier = lines, tier

    def draw(self, renderer: Any) -> None:
        for segs in self._lines.parts(self._tier):
            self.set_segments(segs)
            super().draw(renderer)
        self.set_segments([])


def _tier_lines(
    lines: LineView,
    nbhd: gpd.GeoDataFrame | None,
    what: str,
    unit: str,
    place: str,
    source: str,
) -> Figure:
    attrs = lines.attrs
    order = _tier_order(attrs)
    colours = _tier_colours(order, lines=True)
    tier = attrs["tier"].astype(str)
    year = _year(attrs.get("score_year"))
    km = float(attrs["length_m"].sum()) / 1000 if "length_m" in attrs else float("nan")
    scored = int((tier != _UNSCORED).sum())
    subtitle = f"{scored:,} of {len(attrs):,} {unit} scored"
    subtitle += f" ({km:,.0f} km)" if np.isfinite(km) else ""
    subtitle += "; higher tiers drawn thicker and on top"
    assert lines.bounds is not None  # a view with blocks has bounds
    fig, ax = page(
        _title(place, f"predicted break risk{f' {year}' if year else ''} ({what})"),
        subtitle,
        source,
        extent(lines.bounds, nbhd),
    )
    outline = outlines(ax, nbhd, width=1.0, colour="#9a9a9a")
    widths = dict(zip(order, _TIER_WIDTHS[: len(order)], strict=False))
    widths.update({t: _TIER_WIDTHS[-1] for t in order if t not in widths})
    styles = [(_UNSCORED, _UNSCORED_COLOUR, _UNSCORED_WIDTH)]
    styles += [(t, colours[t], widths[t]) for t in reversed(order)]
    counts = tier.value_counts()
    handles: list[Any] = []
    for z, (name, colour, width) in enumerate(styles):
        if not lines.part_count(name):
            continue
        ax.add_collection(
            _SpooledLines(
                lines, name, colors=colour, linewidths=width, capstyle="round", zorder=10 + z
            ),
            autolim=False,
        )
        label = _count_label(name, int(counts.get(name, 0)), unit)
        handles.append(Line2D([], [], color=colour, lw=max(width, 1.0), label=label))
    handles.reverse()
    handles += [outline] if outline else []
    legend(fig, handles, "Risk tier")
    scale_bar(ax)
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
    fig, ax = page(
        _title(place, f"break hot-spot persistence{f' to {year}' if year else ''} (H3 cells)"),
        "Local Moran's I (LISA) of yearly break counts; class by how often a cell was a "
        "significant high-high cluster",
        source,
        extent(cells.total_bounds, nbhd),
    )
    fill(ax, cells, cls.map(colours).to_numpy())
    outline = outlines(ax, nbhd)
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
    legend(fig, handles, "Hot-spot persistence")
    scale_bar(ax)
    return fig


def _hex_width(span: float, n_points: int) -> float:
    """A round hexagon width (m) for ``n_points`` breaks spread over ``span`` metres.

    About sqrt(n)/2 hexagons across, between 15 and 90: fine enough to show structure,
    coarse enough that a typical hexagon holds several breaks (35,000 breaks over
    43 km give 500 m hexagons).
    """
    target = span / min(max(math.sqrt(max(n_points, 1)) / 2.0, 15.0), 90.0)
    return min(_HEX_WIDTHS, key=lambda w: abs(math.log(w / max(target, 1e-9))))


def _break_density(
    breaks: PointView, nbhd: gpd.GeoDataFrame | None, place: str, source: str
) -> Figure:
    xy = breaks.xy
    years = breaks.years
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
    fig, ax = page(
        _title(place, f"water-main break density{span}"),
        f"{len(xy):,} breaks counted in hexagons {width:g} m wide ({area_km2:.3g} km²); "
        "empty hexagons blank",
        source,
        extent(breaks.bounds, nbhd),
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
    outline = outlines(ax, nbhd, width=0.35)
    if outline:
        legend(fig, [outline], "")
    cax = fig.add_axes((PANEL_X + 0.015, 0.2, 0.022, 0.58))
    bar = fig.colorbar(hexes, cax=cax)
    bar.set_label(f"Breaks per km²{span} (log scale)", fontsize=10)
    bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    bar.ax.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    )
    bar.ax.yaxis.set_minor_formatter(NullFormatter())
    bar.ax.tick_params(labelsize=9)
    scale_bar(ax)
    return fig


# --------------------------------------------------------------------------- entry point


_Plan = tuple[str | None, Callable[[], Figure] | None]


def _plans(views: MapViews, place: str, source: str) -> dict[str, _Plan]:
    """Map name -> (reason it is skipped, None) or (None, a function drawing it)."""
    nbhd = views.areas("neighbourhoods")
    cells = views.areas("cells")
    breaks = views.points()
    plans: dict[str, _Plan] = {}
    if cells is None or not _has_scores(cells):
        plans["risk_cells"] = ("no cell has a risk score (run the model stage)", None)
    else:
        plans["risk_cells"] = (None, partial(_risk_cells, cells, nbhd, place, source))
    for name, layer, what, unit in (
        ("tier_pipes", "pipes", "water mains", "pipes"),
        ("tier_streets", "streets", "street segments", "streets"),
    ):
        lines = views.lines(layer)
        if lines is None:
            plans[name] = (f"the city has no {layer} layer", None)
        elif not _has_scores(lines.attrs):
            plans[name] = (f"no {unit[:-1]} has a risk score (run the model stage)", None)
        else:
            plans[name] = (
                None,
                partial(_tier_lines, lines, nbhd, what, unit, place, source),
            )
    if cells is None or not _has_hotspots(cells):
        plans["hotspots"] = ("no hot-spot persistence classes for cells", None)
    else:
        plans["hotspots"] = (None, partial(_hotspots, cells, nbhd, place, source))
    if breaks is None:
        plans["break_density"] = ("no break points", None)
    else:
        plans["break_density"] = (None, partial(_break_density, breaks, nbhd, place, source))
    return plans


def render_maps(
    layers: Mapping[str, gpd.GeoDataFrame] | MapViews,
    folder: Path | str,
    *,
    place: str = "",
    source: str = "",
) -> dict[str, Path]:
    """Draw the static maps of the layers as PNG files in ``folder``.

    Parameters
    ----------
    layers
        Layer name -> GeoDataFrame, as from :func:`~twmb_geo.maps.layers.map_layers`
        (any CRS; a layer without CRS is taken to be in the analysis CRS), or the
        :class:`~twmb_geo.maps.views.MapViews` of layers added a block at a time.
    folder
        Output folder (created if missing); files are ``<map name>.png``.
    place
        Place name that starts every title (``[project] city``, see
        :attr:`~twmb_geo.config.Config.city_name`); none gives titles without it.
    source
        Licence and attribution line printed at the bottom of every map
        (:meth:`~twmb_geo.config.Config.credit_line`); ``twmb_geo.`` is appended.

    Returns
    -------
    dict
        Map name (see :data:`MAP_NAMES`) -> PNG path, for the maps drawn; a map whose
        data is missing is left out (the reason is logged at INFO level).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not isinstance(layers, MapViews):
        with MapViews.of(layers, scratch=folder) as views:
            return render_maps(views, folder, place=place, source=source)
    source = f"{source.strip()} {_CREDIT}".strip()
    plans = _plans(layers, place.strip(), source)
    written: dict[str, Path] = {}
    with mpl.style.context(["default", _RC]):
        for name in MAP_NAMES:
            reason, draw = plans[name]
            path = folder / f"{name}.png"
            if draw is None:
                log.info("map %s skipped: %s", name, reason)
                if path.exists():
                    path.unlink()
                    log.info("removed stale %s", path)
                continue
            written[name] = save(draw(), path)
    return written
