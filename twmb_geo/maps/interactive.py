"""The interactive HTML map: one self-contained, offline file with a small canvas renderer.

:func:`write_html_map` writes the map layers (:func:`~twmb_geo.maps.layers.map_layers`) to one
HTML file that needs no network: the renderer (``_html/map.js``) and its style
(``_html/map.css``) are inlined, and so are the data. The data are projected to Web Mercator
(EPSG:3857) here, simplified with a tolerance of one grid step (``resolution`` metres, less
than a pixel at the closest zoom), quantised to integers on that grid and delta-encoded per ring
or line; properties are stored as columns (repeated strings as a category list plus codes).

The page draws, in order: neighbourhoods, H3 cells (filled by risk tier), streets and pipes
(lines by risk tier), hot spots (cells by hot-spot persistence class; off by default) and the
breaks as dots. Breaks of the last ``break_years`` data years are shown by default; a selector
shows the last year, 10 years or all years. An optional OpenStreetMap basemap (off by default)
is the only thing that can reach the network, and only when switched on while online; a
Content-Security-Policy in the page blocks every other request.

A layer with more than ``max_features`` features (``[maps] html_max_features``) is cut to
that many, so the page stays small enough for a browser to open (a 2,000,000-pipe city would
otherwise embed about a gigabyte): units keep the highest-risk ones (``rank``, then
``unit_id``; unscored units last) and breaks the latest whole data years that fit (at least
the last year). The layer list says so (``100,000 of 2,491,652, highest risk``); every feature
stays in the file exports.

After its first draw the page sets ``data-status="ready"``, ``data-drawn`` (features drawn)
and ``data-errors`` (script errors caught) on ``<body>``, for headless checks.

The same layers give a byte-identical file: no timestamps, fixed column order, and numbers
rounded to fixed significant digits before they are written.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike, NDArray

from ..core.files import atomic_write
from ..core.vocab import HOTSPOT_ORDER, TIER_ORDER, UNSCORED

__all__ = [
    "EARTH_RADIUS",
    "HTML_MAX_FEATURES",
    "OSM_TILE_URL",
    "HtmlSubset",
    "dequantise",
    "from_web_mercator",
    "html_map",
    "html_subset",
    "quantise",
    "to_web_mercator",
    "write_html_map",
]

#: the Web Mercator sphere radius (EPSG:3857), metres
EARTH_RADIUS = 6378137.0
#: latitude limit of Web Mercator (the square world), degrees
MAX_LATITUDE = 85.0511287798066
#: the optional online basemap; the page requests it only when the user switches it on
OSM_TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
DEFAULT_TITLE = "Water main breaks"
DEFAULT_SOURCE = ""

#: kind of value per column: text, category, float (4 significant digits), int
_UNIT_COLUMNS: dict[str, str] = {
    "label": "text",
    "neighbourhood_name": "text",
    "tier": "category",
    "risk_score": "float",
    "probability": "float",
    "expected_breaks": "float",
    "rank": "int",
    "percentile": "float",
    "breaks_total": "int",
    "breaks_last_year": "int",
    "score_year": "int",
    "hotspot_class": "category",
    "years_hot": "int",
    "lisa_cluster": "category",
    "drivers": "text",
}
_COLUMNS: dict[str, dict[str, str]] = {
    "neighbourhoods": _UNIT_COLUMNS,
    "cells": _UNIT_COLUMNS,
    "streets": {**_UNIT_COLUMNS, "feature_class": "category"},
    "pipes": {
        **_UNIT_COLUMNS,
        "material_desc": "category",
        "diameter_mm": "float",
        "install_year": "int",
        "status": "category",
    },
    "breaks": {
        "break_id": "text",
        "date": "text",
        "year": "int",
        "material_desc": "category",
        "diameter_mm": "float",
        "neighbourhood_name": "category",
    },
}
#: how each layer is drawn
_KIND = {
    "neighbourhoods": "polygon",
    "cells": "polygon",
    "streets": "line",
    "pipes": "line",
    "breaks": "point",
}
_HTML_DIR = "_html"
#: most features per layer in the page by default (``[maps] html_max_features``)
HTML_MAX_FEATURES = 100_000
#: what a cut layer keeps, as the layer list says it
_SUBSET = {"breaks": "latest years"}
_HIGHEST_RISK = "highest risk"


# -- projection and quantisation ---------------------------------------------------------------


def to_web_mercator(
    lon: ArrayLike, lat: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Longitude/latitude (degrees) to Web Mercator x/y (metres); latitudes clipped to ±85.05°."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.clip(np.asarray(lat, dtype=np.float64), -MAX_LATITUDE, MAX_LATITUDE)
    x = EARTH_RADIUS * np.radians(lon)
    y = EARTH_RADIUS * np.log(np.tan(np.pi / 4.0 + np.radians(lat) / 2.0))
    return x, y


def from_web_mercator(
    x: ArrayLike, y: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Web Mercator x/y (metres) to longitude/latitude (degrees)."""
    lon = np.degrees(np.asarray(x, dtype=np.float64) / EARTH_RADIUS)
    lat = np.degrees(2.0 * np.arctan(np.exp(np.asarray(y, dtype=np.float64) / EARTH_RADIUS)))
    return lon, lat - 90.0


def quantise(values: ArrayLike, origin: float, resolution: float) -> NDArray[np.int64]:
    """Coordinates to integer steps of ``resolution`` from ``origin`` (error <= resolution / 2)."""
    if not resolution > 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    return np.rint((np.asarray(values, dtype=np.float64) - origin) / resolution).astype(np.int64)


def dequantise(steps: ArrayLike, origin: float, resolution: float) -> NDArray[np.float64]:
    """Integer steps back to coordinates (the inverse of :func:`quantise` up to its error)."""
    return origin + np.asarray(steps, dtype=np.float64) * resolution


# -- geometry encoding -------------------------------------------------------------------------


def _mercator_geoms(gdf: gpd.GeoDataFrame) -> NDArray[np.object_]:
    """The layer's geometries in Web Mercator (None for missing ones)."""
    geoms = gdf.geometry.to_crs("EPSG:4326").to_numpy() if gdf.crs else gdf.geometry.to_numpy()
    return shapely.transform(geoms, lambda xy: np.column_stack(to_web_mercator(xy[:, 0], xy[:, 1])))


def _steps(
    coords: NDArray[np.float64], origin: tuple[float, float], res: float
) -> NDArray[np.int64]:
    """Quantised (n, 2) coordinates without consecutive repeats."""
    q = np.column_stack(
        [quantise(coords[:, 0], origin[0], res), quantise(coords[:, 1], origin[1], res)]
    )
    if len(q) > 1:
        keep = np.ones(len(q), dtype=bool)
        keep[1:] = np.any(q[1:] != q[:-1], axis=1)
        q = q[keep]
    return q


def _delta(q: NDArray[np.int64]) -> list[int]:
    """Flat ``[x0, y0, dx1, dy1, ...]``: the first vertex absolute, then differences."""
    d = q.copy()
    d[1:] -= q[:-1]
    return d.ravel().tolist()


def _encode_shape(geom: Any, kind: str, origin: tuple[float, float], res: float) -> list[list[int]]:
    """One feature as delta-encoded parts: rings (polygons, closing vertex dropped) or lines."""
    if geom is None or geom.is_empty:
        return []
    parts: list[list[int]] = []
    for part in shapely.get_parts(geom):
        if kind == "polygon":
            rings = [part.exterior, *part.interiors] if part.geom_type == "Polygon" else []
            for ring in rings:
                q = _steps(np.asarray(ring.coords)[:-1], origin, res)
                if len(q) > 1 and (q[0] == q[-1]).all():
                    q = q[:-1]
                if len(q) >= 3:  # smaller rings vanish on the grid
                    parts.append(_delta(q))
        elif part.geom_type == "LineString":
            q = _steps(np.asarray(part.coords), origin, res)
            if len(q) == 1:  # a line shorter than the grid step: keep it as a dot
                q = np.vstack([q, q])
            if len(q):
                parts.append(_delta(q))
    return parts


def _encode_geometry(
    geoms: NDArray[np.object_], kind: str, origin: tuple[float, float], res: float
) -> Any:
    """A layer's geometry: per-feature parts, or for points two columns of grid steps."""
    if kind == "point":
        first = shapely.get_geometry(geoms, 0)  # a point itself, or a multipoint's first
        first[shapely.is_empty(first)] = None
        steps = [
            np.rint((shapely.get_x(first) - origin[0]) / res),
            np.rint((shapely.get_y(first) - origin[1]) / res),
        ]
        xs, ys = ([None if np.isnan(v) else int(v) for v in s] for s in steps)
        return {"x": xs, "y": ys}
    simple = shapely.simplify(geoms, res, preserve_topology=True)
    return [_encode_shape(g, kind, origin, res) for g in simple]


# -- properties --------------------------------------------------------------------------------


def _float(v: Any) -> float | None:
    if v is None or pd.isna(v) or not math.isfinite(float(v)):
        return None
    f = float(f"{float(v):.4g}")
    return 0.0 if f == 0 else f


def _int(v: Any) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def _text(v: Any) -> str | None:
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def _category_order(values: list[str], column: str) -> list[str]:
    order = {"tier": TIER_ORDER, "hotspot_class": HOTSPOT_ORDER}.get(column, ())
    known = [v for v in order if v in values]
    rest = sorted(v for v in set(values) if v not in order and v != UNSCORED)
    return known + rest + ([UNSCORED] if UNSCORED in values else [])


def _encode_column(series: pd.Series, kind: str, column: str) -> Any:
    """A property column: a plain list, or ``{"cats": [...], "codes": [...]}`` for categories."""
    if kind == "float":
        return [_float(v) for v in series.to_numpy(dtype=object)]
    if kind == "int":
        return [_int(v) for v in series.to_numpy(dtype=object)]
    values = [_text(v) for v in series.to_numpy(dtype=object)]
    present = [v for v in values if v is not None]
    if kind == "text" and len(set(present)) > len(values) / 2:
        return values
    cats = _category_order(present, column)
    code = {c: i for i, c in enumerate(cats)}
    return {"cats": cats, "codes": [None if v is None else code[v] for v in values]}


def _properties(name: str, gdf: gpd.GeoDataFrame) -> dict[str, Any]:
    columns = _COLUMNS.get(name, _UNIT_COLUMNS)
    out: dict[str, Any] = {}
    for column, kind in columns.items():
        series = gdf[column] if column in gdf.columns else None
        if column == "material_desc" and "material" in gdf.columns:
            alt = gdf["material"]
            series = alt if series is None else series.where(series.notna(), alt)
        if series is not None:
            out[column] = _encode_column(series, kind, column)
    return out


# -- the features a page can hold --------------------------------------------------------------


def html_subset(name: str, gdf: gpd.GeoDataFrame, max_features: int) -> gpd.GeoDataFrame:
    """The features of layer ``name`` the HTML map embeds: all when at most ``max_features``.

    Otherwise breaks keep the latest whole data years whose breaks fit (at least the last
    year, whatever its count; breaks without a year go), other layers the ``max_features``
    highest-risk features (``rank`` ascending, then ``unit_id``; no rank last). Rows keep
    their order. :class:`HtmlSubset` gives the same from a layer's blocks.
    """
    subset = HtmlSubset(name, max_features)
    subset.add(gdf)
    return subset.result()


def _year(gdf: gpd.GeoDataFrame) -> pd.Series:
    return pd.to_numeric(gdf["year"], errors="coerce")


def _latest_years(counts: pd.Series, max_features: int) -> list[Any]:
    """The latest years whose breaks (``counts`` by year) fit, at least the last year."""
    per_year = counts.sort_index(ascending=False).cumsum()
    keep = per_year.index[(per_year <= max_features).to_numpy()]
    return list(keep if len(keep) else per_year.index[:1])


def _highest_risk(gdf: gpd.GeoDataFrame, max_features: int) -> gpd.GeoDataFrame:
    """The ``max_features`` highest-risk rows, in their order."""
    if len(gdf) <= max_features:
        return gdf
    rank = (
        pd.to_numeric(gdf["rank"], errors="coerce").astype("float64").to_numpy()
        if "rank" in gdf.columns
        else np.full(len(gdf), np.nan)
    )
    ids = gdf["unit_id"].astype(str).to_numpy() if "unit_id" in gdf.columns else np.arange(len(gdf))
    order = np.lexsort((ids, np.where(np.isnan(rank), np.inf, rank)))
    return gdf.iloc[np.sort(order[:max_features])]


class HtmlSubset:
    """The features of one layer the HTML map embeds (:func:`html_subset`), from the
    layer's blocks in order: :meth:`add` each block, then :meth:`result`.

    Between blocks it holds at most ``max_features`` rows of a unit layer, and of breaks
    those of the years that can still be embedded (the latest years that fit, and the
    latest year seen), so a layer of any size is cut without being held whole.
    """

    def __init__(self, name: str, max_features: int) -> None:
        if max_features < 1:
            raise ValueError(f"max_features must be at least 1, got {max_features}")
        self.name = name
        self.max_features = max_features
        self.rows = 0
        self._parts: list[gpd.GeoDataFrame] = []
        self._counts = pd.Series(dtype="float64")

    def _by_year(self, gdf: gpd.GeoDataFrame) -> bool:
        return self.name == "breaks" and "year" in gdf.columns

    def add(self, gdf: gpd.GeoDataFrame) -> None:
        """The layer's next block (a block indexed from 0 is renumbered after the rows
        before it, as the blocks concatenated would be)."""
        if self.rows and isinstance(gdf.index, pd.RangeIndex) and gdf.index.start == 0:
            gdf = gdf.set_axis(pd.RangeIndex(self.rows, self.rows + len(gdf)))
        self.rows += len(gdf)
        self._parts.append(gdf)
        if self._by_year(gdf):
            counts = _year(gdf).value_counts()
            self._counts = self._counts.add(counts, fill_value=0) if len(self._counts) else counts
            if self.rows > self.max_features:
                # counts only grow: a year not among the latest that fit now never will be
                self._keep_years(_latest_years(self._counts, self.max_features))
        elif self.rows > self.max_features:
            self._parts = [_highest_risk(self._whole(), self.max_features)]

    def _keep_years(self, years: list[Any]) -> None:
        self._parts = [p[_year(p).isin(years).to_numpy()] for p in self._parts]

    def _whole(self) -> gpd.GeoDataFrame:
        if len(self._parts) == 1:
            return self._parts[0]
        return pd.concat(self._parts)

    def result(self) -> gpd.GeoDataFrame:
        """The features to embed, in the layer's order."""
        if not self._parts:
            raise ValueError(f"layer {self.name!r}: no block was added")
        return self._whole()  # cut as each block came


# -- the page ----------------------------------------------------------------------------------


def _asset(name: str) -> str:
    text = (
        resources.files("twmb_geo.maps")
        .joinpath(_HTML_DIR)
        .joinpath(name)
        .read_text(encoding="utf-8")
    )
    if "</script" in text.lower() or "</style" in text.lower():
        raise ValueError(f"{name} must not contain a closing script/style tag")
    return text


def _json_for_html(obj: Any) -> str:
    """Compact JSON safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&``."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _totals(
    layers: Mapping[str, gpd.GeoDataFrame], totals: Mapping[str, int] | None
) -> dict[str, int]:
    """Features per drawn layer before any cut: ``totals`` where given, else its length."""
    given = totals or {}
    return {n: max(int(given.get(n, len(g))), len(g)) for n, g in layers.items() if n in _KIND}


def _map_data(
    layers: Mapping[str, gpd.GeoDataFrame],
    break_years: int,
    resolution: float,
    max_features: int,
    totals: Mapping[str, int],
) -> tuple[dict[str, Any], dict[str, int]]:
    """The embedded data object and the feature count per layer."""
    names = [n for n in _KIND if n in layers]  # drawing order; other layers are ignored
    layers = {n: html_subset(n, layers[n], max_features) for n in names}
    merc = {n: _mercator_geoms(layers[n]) for n in names}
    bounds = [shapely.total_bounds(g) for g in merc.values() if len(g)]
    bounds = [b for b in bounds if np.isfinite(b).all()]
    if bounds:
        b = np.vstack(bounds)
        box = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
    else:  # nothing to show: a 20 km box around lon/lat 0, 0
        box = (-1e4, -1e4, 1e4, 1e4)
    origin = (
        math.floor(box[0] / resolution) * resolution,
        math.floor(box[1] / resolution) * resolution,
    )
    grid_box = [
        0,
        0,
        int(quantise(box[2], origin[0], resolution)),
        int(quantise(box[3], origin[1], resolution)),
    ]
    last_year = None
    if "breaks" in layers and "year" in layers["breaks"].columns and len(layers["breaks"]):
        year = pd.to_numeric(layers["breaks"]["year"], errors="coerce")
        last_year = _int(year.max())
    out_layers = []
    counts: dict[str, int] = {}
    for name in names:
        kind = _KIND[name]
        gdf = layers[name]
        counts[name] = len(gdf)
        total = totals[name]
        out_layers.append(
            {
                "name": name,
                "kind": kind,
                "n": len(gdf),
                "total": total,
                "subset": _SUBSET.get(name, _HIGHEST_RISK) if total > len(gdf) else None,
                "geom": _encode_geometry(merc[name], kind, origin, resolution),
                "props": _properties(name, gdf),
            }
        )
    data = {
        "version": 1,
        "res": resolution,
        "origin": [origin[0], origin[1]],
        "bbox": grid_box,
        "lastYear": last_year,
        "breakYears": break_years,
        "tiles": OSM_TILE_URL,
        "layers": out_layers,
    }
    return data, counts


_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src https://tile.openstreetmap.org; base-uri 'none'; form-action 'none'"
)


def html_map(
    layers: Mapping[str, gpd.GeoDataFrame],
    *,
    title: str = DEFAULT_TITLE,
    source: str = DEFAULT_SOURCE,
    break_years: int = 5,
    resolution: float = 1.0,
    max_features: int = HTML_MAX_FEATURES,
    totals: Mapping[str, int] | None = None,
) -> tuple[str, dict[str, int]]:
    """The HTML text of the map and the feature count per layer (see :func:`write_html_map`)."""
    if break_years < 1:
        raise ValueError(f"break_years must be at least 1, got {break_years}")
    every = _totals(layers, totals)
    data, counts = _map_data(layers, break_years, resolution, max_features, every)
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>",
            f"<style>\n{_asset('map.css')}</style>",
            "</head>",
            '<body data-status="loading" data-drawn="0" data-errors="0">',
            '<div id="map" class="map" aria-label="Map" role="application">',
            '<canvas id="map-canvas"></canvas>',
            '<canvas id="map-overlay"></canvas>',
            "</div>",
            '<div class="zoom">'
            '<button type="button" id="zoom-in" title="Zoom in" aria-label="Zoom in">+</button>'
            '<button type="button" id="zoom-out" title="Zoom out" aria-label="Zoom out">\u2212</button>'
            '<button type="button" id="zoom-fit" title="Fit to data" aria-label="Fit to data">\u2922</button>'
            "</div>",
            '<aside class="panel" id="panel">',
            f"<h1>{html.escape(title)}</h1>",
            '<div id="layers"></div>',
            '<div id="legend"></div>',
            "</aside>",
            '<div class="tooltip" id="tooltip" hidden></div>',
            '<div class="scale" id="scale"><div class="scale-bar" id="scale-bar"></div>'
            '<span id="scale-label"></span></div>',
            f'<div class="source" id="source">{html.escape(source)}'
            '<span id="osm-credit" hidden> · Basemap © OpenStreetMap contributors</span></div>',
            f'<script type="application/json" id="twmb-data">{_json_for_html(data)}</script>',
            f"<script>\n{_asset('map.js')}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )
    return page, counts


def write_html_map(
    layers: Mapping[str, gpd.GeoDataFrame],
    path: Path | str,
    *,
    title: str = DEFAULT_TITLE,
    source: str = DEFAULT_SOURCE,
    break_years: int = 5,
    resolution: float = 1.0,
    max_features: int = HTML_MAX_FEATURES,
    totals: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Write the layers as one self-contained, offline HTML map (see the module doc).

    Parameters
    ----------
    layers : mapping of str to GeoDataFrame
        The map layers (``neighbourhoods``, ``cells``, ``streets``, ``pipes``, ``breaks``),
        e.g. from :func:`~twmb_geo.maps.layers.map_layers`; other names are ignored.
    path : path
        The HTML file to write (parent folders are created).
    title, source : str
        The page title (e.g. ``"<city> water main breaks"``, ``[project] city``) and the
        licence/attribution line (:meth:`~twmb_geo.config.Config.credit_line`).
    break_years : int
        Breaks of this many latest data years are shown by default.
    resolution : float
        Grid step of the embedded coordinates, Web Mercator metres (also the simplification
        tolerance).
    max_features : int
        Most features embedded per layer (:func:`html_subset` chooses them).
    totals : mapping of str to int, optional
        Features per layer before any cut, when ``layers`` were already cut with
        :func:`html_subset` (the page then says "n of total"); default: the layers' lengths.

    Returns
    -------
    dict
        ``path``, ``bytes`` (file size), ``layers`` (features embedded per layer) and
        ``totals`` (features per layer before the cut).
    """
    page, counts = html_map(
        layers,
        title=title,
        source=source,
        break_years=break_years,
        resolution=resolution,
        max_features=max_features,
        totals=totals,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = page.encode("utf-8")
    atomic_write(path, raw)
    return {
        "path": str(path),
        "bytes": len(raw),
        "layers": counts,
        "totals": _totals(layers, totals),
    }
