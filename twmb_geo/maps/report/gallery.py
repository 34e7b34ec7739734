"""The Maps section: the static maps embedded, and a link to the interactive map."""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

from .document import SECTIONS, Figure, Link, Section, note
from .queries import ReportContext

__all__ = ["maps_section"]

_MAP_ORDER = ("risk_cells", "tier_pipes", "tier_streets", "hotspots", "break_density")
_MAP_CAPTIONS = {
    "risk_cells": "Expected breaks next year per H3 cell (current risk scores)",
    "tier_pipes": "Risk tier of every pipe (current risk scores)",
    "tier_streets": "Risk tier of every street segment (current risk scores)",
    "hotspots": "Hot-spot persistence class of breaks per unit",
    "break_density": "Density of recorded breaks",
}


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


def maps_section(ctx: ReportContext) -> Section:
    """The static maps embedded, and a link to the interactive map."""
    sec = Section(SECTIONS[2])
    if ctx.html_map is not None:
        sec.blocks.append(
            Link(
                "Pan, zoom and click every unit in the interactive map: ",
                ctx.html_map.name,
                _relative_href(ctx.html_map, ctx.folder),
            )
        )
    if not ctx.map_images:
        sec.blocks.append(note("No static map was rendered for this report."))
        return sec
    for name in sorted(ctx.map_images, key=_map_key):
        path = Path(ctx.map_images[name])
        caption = _MAP_CAPTIONS.get(name, name.replace("_", " ").capitalize())
        if not path.is_file():
            sec.blocks.append(note(f"Map {name}: image {path.name} is missing."))
            continue
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", name)
        sec.blocks.append(Figure(f"map_{stem}.png", path.read_bytes(), caption))
    return sec
