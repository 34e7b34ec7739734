"""The report's charts: matplotlib figures rendered to PNG bytes without metadata.

Colours are Okabe-Ito (distinguishable with the common colour-vision deficiencies); series
differ by line style or marker as well as colour. Fonts and styles are fixed so the bytes
depend on the data only.
"""

from __future__ import annotations

import calendar
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ...core.units import UNIT_TYPES
from ._format import plural, unit_key

__all__ = [
    "MONTHS",
    "calibration_chart",
    "capture_chart",
    "importance_chart",
    "months_chart",
    "moran_chart",
    "simulation_chart",
    "years_chart",
]

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
#: (colour, marker) of the unit types, in the registry's order
_UNIT_STYLES: tuple[tuple[str, str], ...] = (
    (_OI["orange"], "s"),
    (_OI["green"], "^"),
    (_OI["blue"], "o"),
    (_OI["purple"], "D"),
)
#: month names, January first
MONTHS = tuple(calendar.month_name[1:])
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


def _unit_style(unit_type: str) -> tuple[str, str]:
    """(colour, marker) of a unit type: by its place in the registry, black dots beyond."""
    order = list(UNIT_TYPES)
    if unit_type in order and order.index(unit_type) < len(_UNIT_STYLES):
        return _UNIT_STYLES[order.index(unit_type)]
    return _OI["black"], "o"


def _render(draw: Callable[[Figure], None], size: tuple[float, float] = (7.0, 3.4)) -> bytes:
    """Draw on a fresh Agg figure and return PNG bytes without metadata (stable bytes)."""
    with mpl.style.context(_RC):
        fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def years_chart(per_year: pd.Series) -> bytes:
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


def months_chart(per_month: pd.Series, n_years: int) -> bytes:
    """Mean breaks per calendar month, winter months in another colour."""

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        values = per_month.to_numpy() / max(n_years, 1)
        winter = [m in (12, 1, 2, 3) for m in per_month.index]
        colours = [_OI["blue"] if w else _OI["orange"] for w in winter]
        ax.bar(range(12), values, color=colours)
        ax.set_xticks(range(12), [m[:3] for m in MONTHS])
        ax.set_ylabel("mean breaks per year")
        ax.set_title("Seasonality: breaks per calendar month (blue: December–March)")

    return _render(draw)


def moran_chart(moran: pd.DataFrame) -> bytes:
    """Global Moran's I per year and unit type; hollow markers are not significant."""

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        for unit_type in sorted(moran["unit_type"].unique(), key=unit_key):
            part = moran[moran["unit_type"] == unit_type]
            colour, marker = _unit_style(unit_type)
            label = plural(unit_type)
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


def capture_chart(card: Mapping[str, Any]) -> bytes:
    """Pooled forward capture curves of the model and every baseline vs random order."""
    fwd = card["forward"]
    fracs = np.asarray(fwd["fracs"], dtype=float) * 100
    share = "length" if card.get("weight") == "length_km" else "units"

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ax.plot(fracs, fracs / 100, color="#999999", lw=1, label="random order")
        curves = fwd["capture_curves"]
        names = ["champion", *sorted(n for n in curves if n != "champion")]
        for i, name in enumerate(names):
            if name == "champion":
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


def calibration_chart(card: Mapping[str, Any]) -> bytes:
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


def importance_chart(imp: pd.DataFrame, metrics: Sequence[str]) -> bytes:
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


def simulation_chart(city: pd.DataFrame, unit_type: str) -> bytes:
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
        ax.set_title(f"Simulated city-wide breaks ({plural(unit_type)})")
        ax.legend(frameon=False, loc="upper left")

    return _render(draw)
