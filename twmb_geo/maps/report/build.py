"""Writing the report: every section built once, rendered to HTML and Markdown, figures saved."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...config import Config
from ...core.files import atomic_write
from ...store.duckdb_store import Store
from . import queries
from ._format import fmt_time, missing
from .breaks import breaks_section, hotspot_section
from .cards import models_section
from .data import data_section
from .document import Code, Figure, Inline, Section
from .gallery import maps_section
from .html import html_document
from .markdown import markdown_document
from .outlook import simulation_section
from .queries import ReportContext
from .ranking import riskiest_section

__all__ = ["write_report"]


def _figures(sections: Sequence[Section]) -> list[Figure]:
    """Every figure block, in report order (names must be unique)."""
    figs = [b for s in sections for b in s.blocks if isinstance(b, Figure)]
    names = [f.name for f in figs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:  # pragma: no cover - names are built per unit type; a guard against regressions
        raise ValueError(f"duplicate report figure names: {dupes}")
    return figs


def _write_figures(folder: Path, figs: Sequence[Figure]) -> None:
    """Write the PNGs the Markdown links and drop stale PNGs of an earlier report."""
    fig_dir = folder / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    keep = {f.name for f in figs}
    for old in sorted(fig_dir.glob("*.png")):
        if old.name not in keep:
            old.unlink()
    for f in figs:
        atomic_write(fig_dir / f.name, f.png)


def _meta(ctx: ReportContext) -> tuple[Inline, ...]:
    """The line under the title: the store and the latest run with its recorded time."""
    parts: list[Inline] = ["Store ", Code(str(ctx.cfg.store_path))]
    if ctx.has("runs"):
        last = queries.latest_run(ctx)
        when = last["finished_at"] if not missing(last["finished_at"]) else last["started_at"]
        parts += ["; latest ingest run ", Code(str(last["run_id"])), f" ({fmt_time(when)})"]
    return (*parts, ".")


_BUILDERS: tuple[Callable[[ReportContext], Section], ...] = (
    data_section,
    breaks_section,
    maps_section,
    hotspot_section,
    models_section,
    riskiest_section,
    simulation_section,
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
        ctx = ReportContext(cfg, store, folder, dict(map_images or {}), html_map)
        sections = [build(ctx) for build in _BUILDERS]
        meta = _meta(ctx)
    title = f"Water-main break report: {cfg.city_name}"
    credit = cfg.credit_line()
    if credit:
        meta = (*meta, f" Data: {credit}")
    figs = _figures(sections)
    _write_figures(folder, figs)
    html_path, md_path = folder / "report.html", folder / "report.md"
    atomic_write(html_path, html_document(title, meta, sections).encode("utf-8"))
    atomic_write(md_path, markdown_document(title, meta, sections).encode("utf-8"))
    return {
        "html": html_path,
        "markdown": md_path,
        "figures": [f.name for f in figs],
        "sections": [s.title for s in sections],
    }
