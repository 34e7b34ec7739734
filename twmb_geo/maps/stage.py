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
from .interactive import HtmlSubset, write_html_map
from .layers import LAYERS, iter_layer_blocks
from .report import write_report
from .static import render_maps
from .views import MapViews

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
    attribution). Layers are read from the store and exported a block of
    ``[compute] partition_rows`` features at a time (:func:`~.layers.iter_layer_blocks`,
    :meth:`~.exports.LayerExporter.layer`); of each block, the static maps keep what they
    draw (:class:`~.views.MapViews`: the lines' parts go to a scratch file and are drawn back
    a block at a time) and the HTML map the features it may embed (``[maps]
    html_max_features``, :class:`~.interactive.HtmlSubset`), so the stage holds one block
    and what the maps keep, whatever the size of the city.
    """
    folder = Path(folder) if folder else cfg.out_dir / "maps"
    limit = cfg.maps.html_max_features
    steps = [*LAYERS, *(["png"] if png else []), *(["html"] if html else [])]
    rows: dict[str, int] = {}
    shown: dict[str, gpd.GeoDataFrame] = {}
    with MapViews(folder) as views:
        with Store(cfg.store_path, read_only=True) as store:
            blocks = iter_layer_blocks(store, cfg.compute.partition_rows)
            item = next(blocks, None)
            if item is None:
                raise InputDataError(
                    f"the store {cfg.store_path} has no map layers: run `twmb run` (or ingest and "
                    "`twmb features`) first"
                )
            exporter = LayerExporter(folder, formats) if formats else None
            with exporter or nullcontext():
                while item is not None:
                    name = item[0]
                    if progress:
                        progress(f"maps: {name}", steps.index(name), len(steps))
                    subset = HtmlSubset(name, limit)
                    with exporter.layer(name) if exporter is not None else nullcontext() as out:
                        while item is not None and item[0] == name:
                            block = item[1]
                            item = None
                            if out is not None:
                                out.write(block)
                            if png:
                                views.add(name, block)
                            if html:
                                subset.add(block)
                            rows[name] = rows.get(name, 0) + len(block)
                            del block  # before the next block is read
                            item = next(blocks, None)
                    if html:
                        shown[name] = subset.result()
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
