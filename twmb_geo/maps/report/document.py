"""The report's document model: sections of neutral blocks, rendered to HTML and Markdown.

A section is built once as blocks (paragraphs, headings, bullets, tables, figures, links,
notes) and every renderer walks the same blocks, so the formats always agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "SECTIONS",
    "Block",
    "Bullets",
    "Code",
    "Figure",
    "Heading",
    "Inline",
    "Link",
    "Para",
    "Section",
    "Strong",
    "Table",
    "note",
    "para",
    "table",
]

#: section titles, in report order (each is an ``<h2>`` / ``##`` heading)
SECTIONS: tuple[str, ...] = (
    "Data summary",
    "Breaks by year, month and neighbourhood",
    "Maps",
    "Hot spots",
    "Model cards",
    "The 50 riskiest units",
    "Monte Carlo bands and renewal scenario",
)


@dataclass(frozen=True)
class Code:
    """Inline code (ids, versions, paths)."""

    text: str


@dataclass(frozen=True)
class Strong:
    """Inline emphasis."""

    text: str


Inline = str | Code | Strong


@dataclass(frozen=True)
class Para:
    """A paragraph of inline parts; ``note`` marks the one-line 'data absent' notes."""

    parts: tuple[Inline, ...]
    note: bool = False


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section (level 3 or 4)."""

    text: str
    level: int = 3


@dataclass(frozen=True)
class Bullets:
    """A bulleted list; each item is a tuple of inline parts."""

    items: tuple[tuple[Inline, ...], ...]


@dataclass(frozen=True)
class Table:
    """A table of text cells; ``align`` is one ``l``/``r`` per column, ``strong`` row indexes."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str
    strong: frozenset[int] = frozenset()
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """A PNG figure: ``name`` is its file name under ``figures/``."""

    name: str
    png: bytes
    caption: str


@dataclass(frozen=True)
class Link:
    """A paragraph holding one link to a local file (relative to the report folder)."""

    before: str
    text: str
    href: str


Block = Para | Heading | Bullets | Table | Figure | Link


@dataclass
class Section:
    """One ``<h2>`` section of the report."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        """The heading's anchor, as GitHub derives it for plain titles."""
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


def para(*parts: Inline) -> Para:
    """A paragraph of inline parts."""
    return Para(tuple(parts))


def note(text: str) -> Para:
    """The one-line note a section shows when its data is absent."""
    return Para((text,), note=True)


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    align: str,
    *,
    strong: Iterable[int] = (),
    caption: str = "",
) -> Table:
    """A table block from any sequences (cells are already formatted text)."""
    return Table(tuple(header), tuple(tuple(r) for r in rows), align, frozenset(strong), caption)
