"""The map and report stage: layers from the store once, then every map output and the report.

Outputs under ``<out>/maps/`` (file exports, ``png/*.png``, ``twmb_map.html``) and
``<out>/report/`` (``report.html``, ``report.md``, ``figures/``); file names are stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import geopandas as gpd

from ..config import Config
from ..core.types import Progress
from ..errors import InputDataError
from ..store.duckdb_store import Store
from ..store.project import in_project_crs
from .exports import EXPORT_FORMATS, LayerExporter
from .interactive import html_subset, write_html_map
from .layers import LAYERS, iter_map_layers
from .report import write_report
from .static import map_view, render_maps

__all__ = ["EXPORT_FORMATS", "make_maps", "make_report"]


@in_project_crs
def make_maps(
    cfg: Config,
    *,
    folder: Path | str | None = None,
    formats: Sequence[str] = EXPORT_FORMATS,
    png: bool = True,
    html: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Map layers from the store, exported as files, static PNG maps and the HTML map.

    Titles name ``cfg.city_name``; every map carries ``cfg.credit_line()`` (licence and
    attribution). Layers are built and exported one at a time; of each, the static maps keep
    the columns they draw (:func:`~.static.map_view`) and the HTML map the features it
    embeds (``[maps] html_max_features``, :func:`~.interactive.html_subset`), so the stage
    holds one whole layer at a time, whatever the size of the city.
    """
    folder = Path(folder) if folder else cfg.out_dir / "maps"
    limit = cfg.maps.html_max_features
    steps = [*LAYERS, *(["png"] if png else []), *(["html"] if html else [])]
    rows: dict[str, int] = {}
    views: dict[str, gpd.GeoDataFrame] = {}
    shown: dict[str, gpd.GeoDataFrame] = {}
    with Store(cfg.store_path, read_only=True) as store:
        layers = iter_map_layers(store)
        item = next(layers, None)
        if item is None:
            raise InputDataError(
                f"the store {cfg.store_path} has no map layers: run `twmb run` (or ingest and "
                "`twmb features`) first"
            )
        exporter = LayerExporter(folder, formats) if formats else None
        with exporter or nullcontext():
            while item is not None:
                name, layer = item
                item = None
                if progress:
                    progress(f"maps: {name}", steps.index(name), len(steps))
                rows[name] = len(layer)
                if exporter is not None:
                    exporter.write(name, layer)
                if png:
                    views[name] = map_view(layer)
                if html:
                    shown[name] = html_subset(name, layer, limit)
                del layer  # before the next layer is built
                item = next(layers, None)
    result: dict[str, Any] = {
        "folder": str(folder),
        "rows": rows,
        "exports": exporter.result if exporter is not None else {},
    }
    place, credit = cfg.city_name, cfg.credit_line()
    if png:
        if progress:
            progress("maps: png", steps.index("png"), len(steps))
        pngs = render_maps(views, folder / "png", place=place, source=credit)
        result["png"] = {k: str(p) for k, p in pngs.items()}
    if html:
        if progress:
            progress("maps: html", steps.index("html"), len(steps))
        result["html"] = write_html_map(
            shown,
            folder / "twmb_map.html",
            title=f"{place} water main breaks",
            source=credit,
            max_features=limit,
            totals=rows,
        )
    return result


@in_project_crs
def make_report(
    cfg: Config,
    *,
    folder: Path | str | None = None,
    maps: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run report (HTML and Markdown), embedding the static maps of ``maps`` when given."""
    images = {k: Path(v) for k, v in (maps or {}).get("png", {}).items()}
    html = (maps or {}).get("html", {}).get("path")
    return write_report(
        cfg,
        Path(folder) if folder else None,
        map_images=images or None,
        html_map=Path(html) if html else None,
    )
