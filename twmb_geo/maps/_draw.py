"""Drawing helpers of the static maps: geometry to matplotlib, the page and its furniture.

The page is A4 landscape at :data:`DPI` with a map frame in the store's projected CRS (true
scale), a side panel for the legend, a km scale bar, a north arrow and a source line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import shapely
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PatchCollection, PathCollection
from matplotlib.colors import to_rgba_array
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.path import Path as MplPath

from ..core.crs import analysis_crs, crs_name
from ..core.files import atomic_path
from ..core.geometry import union_bounds
from .exports import orient_rfc7946

__all__ = [
    "DPI",
    "PAGE_PX",
    "PANEL_X",
    "extent",
    "fill",
    "legend",
    "line_parts",
    "outlines",
    "page",
    "save",
    "scale_bar",
]

#: resolution of the PNG files
DPI: Final[int] = 150
#: PNG size in pixels (width, height): A4 landscape (297 x 210 mm) at :data:`DPI`
PAGE_PX: Final[tuple[int, int]] = (1754, 1240)
_FIGSIZE: Final[tuple[float, float]] = (PAGE_PX[0] / DPI, PAGE_PX[1] / DPI)
# map frame and side panel, in figure fractions
_MAP_BOX: Final[tuple[float, float, float, float]] = (0.015, 0.075, 0.735, 0.83)
#: left edge of the side panel (legend, colour bar), in figure fractions
PANEL_X: Final[float] = 0.765
_PANEL_TOP: Final[float] = 0.90
_OUTLINE = "#404040"


# --------------------------------------------------------------------------- geometry


def ring_paths(geoms: np.ndarray) -> tuple[list[MplPath], np.ndarray]:
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


def line_parts(geoms: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Vertex arrays of every (multi)linestring part, and the row each part belongs to."""
    parts, pidx = shapely.get_parts(geoms, return_index=True)
    coords, cidx = shapely.get_coordinates(parts, return_index=True)
    if not len(coords):
        return [], np.empty(0, dtype=np.int64)
    cuts = np.flatnonzero(np.diff(cidx)) + 1
    return np.split(coords, cuts), pidx[cidx[np.r_[0, cuts]]]


def fill(ax: Axes, gdf: gpd.GeoDataFrame, colours: Sequence[str] | np.ndarray) -> None:
    """Polygons filled with one colour per row (seamless: edges in the face colour)."""
    paths, owner = ring_paths(gdf.geometry.to_numpy())
    rgba = to_rgba_array(np.asarray(colours, dtype=object))[owner]
    ax.add_collection(
        PathCollection(paths, facecolors=rgba, edgecolors=rgba, linewidths=0.2, zorder=1),
        autolim=False,
    )


def outlines(
    ax: Axes, gdf: gpd.GeoDataFrame | None, width: float = 0.5, colour: str = _OUTLINE
) -> Line2D | None:
    """Neighbourhood boundaries as thin lines on top of areas; the legend handle, if drawn."""
    if gdf is None or gdf.empty:
        return None
    segs, _ = line_parts(shapely.boundary(gdf.geometry.to_numpy()))
    ax.add_collection(
        LineCollection(segs, colors=colour, linewidths=width, alpha=0.7, zorder=5),
        autolim=False,
    )
    return Line2D([], [], color=colour, lw=width * 1.5, label="Neighbourhood boundary")


# --------------------------------------------------------------------------- furniture


def nice_length(target: float) -> float:
    """The largest 1-2-5 x 10^k length not above ``target`` (metres)."""
    exp = 10 ** math.floor(math.log10(target))
    return max(s * exp for s in (1, 2, 5) if s * exp <= target)


def scale_bar(ax: Axes) -> None:
    """A true-length scale bar (km, or m when short) and a north arrow, lower right.

    Drawn in axes fractions from the final x-limits in metres (the map is in the analysis CRS,
    scale factor 0.9999), on a white box so it stays legible over data. Grid north of MTM
    zone 10 is within a fraction of a degree of true north near its central meridian.
    """
    ax.apply_aspect()
    x0, x1 = ax.get_xlim()
    length = nice_length(0.2 * (x1 - x0))
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


def legend(fig: Figure, handles: Sequence[Any], title: str) -> None:
    """The legend in the side panel, top."""
    fig.legend(
        handles=list(handles),
        title=title,
        loc="upper left",
        bbox_to_anchor=(PANEL_X, _PANEL_TOP),
        frameon=False,
        alignment="left",
        handlelength=2.2,
        borderaxespad=0.0,
    )


def page(title: str, subtitle: str, source: str, bounds: np.ndarray) -> tuple[Figure, Axes]:
    """An A4 landscape figure with title, subtitle, source line and the map frame."""
    fig = Figure(figsize=_FIGSIZE, dpi=DPI)
    fig.text(0.015, 0.955, title, fontsize=16, fontweight="bold", va="center")
    fig.text(0.015, 0.922, subtitle, fontsize=10, color="#333333", va="center")
    fig.text(
        0.015,
        0.03,
        f"{source}\nProjection: {crs_name(analysis_crs())}",
        fontsize=8,
        color="#444444",
        va="center",
    )
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


def extent(bounds: np.ndarray, context: gpd.GeoDataFrame | None) -> np.ndarray:
    """Map bounds: the data's ``bounds``, widened to the context layer when the data covers
    most of it.

    A city-wide layer is shown with the whole city (e.g. breaks with every neighbourhood);
    a small study area (a synthetic pipe network) is shown on its own.
    """
    if context is None or context.empty:
        return bounds
    ctx = context.total_bounds
    area = (bounds[2] - bounds[0]) * (bounds[3] - bounds[1])
    ctx_area = (ctx[2] - ctx[0]) * (ctx[3] - ctx[1])
    if ctx_area > 2.0 * area:
        return bounds
    return union_bounds(bounds, ctx)


def save(fig: Figure, path: Path) -> Path:
    """PNG with fixed metadata (no software version), written via a temporary name."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return path
