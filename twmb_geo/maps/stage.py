"""The map and report stage: layers from the store once, then every map output and the report.

Outputs under ``<out>/maps/`` (file exports, ``png/*.png``, ``twmb_map.html``) and
``<out>/report/`` (``report.html``, ``report.md``, ``figures/``); file names are stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import Config
from ..core.types import Progress
from ..errors import InputDataError
from ..store.duckdb_store import Store
from ..store.project import in_project_crs
from .exports import EXPORT_FORMATS, export_layers
from .interactive import write_html_map
from .layers import map_layers
from .report import write_report
from .static import render_maps

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
    attribution).
    """
    folder = Path(folder) if folder else cfg.out_dir / "maps"
    with Store(cfg.store_path, read_only=True) as store:
        layers = map_layers(store)
    if not layers:
        raise InputDataError(
            f"the store {cfg.store_path} has no map layers: run `twmb run` (or ingest and "
            "`twmb features`) first"
        )
    steps = ["export", *(["png"] if png else []), *(["html"] if html else [])]
    place, credit = cfg.city_name, cfg.credit_line()
    result: dict[str, Any] = {"folder": str(folder), "rows": {k: len(v) for k, v in layers.items()}}
    for i, step in enumerate(steps):
        if progress:
            progress(f"maps: {step}", i, len(steps))
        if step == "export":
            result["exports"] = export_layers(layers, folder, formats) if formats else {}
        elif step == "png":
            pngs = render_maps(layers, folder / "png", place=place, source=credit)
            result["png"] = {k: str(p) for k, p in pngs.items()}
        else:
            result["html"] = write_html_map(
                layers,
                folder / "twmb_map.html",
                title=f"{place} water main breaks",
                source=credit,
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
