"""The run report: one self-contained HTML file and its Markdown twin, from the store and model cards.

:func:`write_report` reads the store (read-only) and the model registry's cards and writes
``report.html`` (CSS inline, every figure embedded as a base64 PNG, no external reference:
it works offline and can be mailed as one file) and ``report.md`` (GitHub-renderable, the
figures as PNG files under ``figures/`` linked relatively).

Sections (:data:`SECTIONS`): data summary, breaks by year, month and neighbourhood, maps,
hot spots, one model card per unit type, the 50 riskiest units, the Monte Carlo bands and
the renewal scenario. A section whose data is absent (a run without the model, say) shows
a one-line note instead. Each section is built once as neutral blocks (paragraphs,
tables, figures, notes) and rendered to both formats, so the two always agree.

The same store gives byte-identical files: every query is ordered, the PNGs carry no
metadata, and the only times shown are those the store recorded.

Modules: :mod:`.document` (the block model and :data:`SECTIONS`), :mod:`.queries` (the
store reads), :mod:`.charts` (matplotlib figures), one module per group of sections
(:mod:`.data`, :mod:`.breaks`, :mod:`.gallery`, :mod:`.cards`, :mod:`.ranking`,
:mod:`.outlook`), the renderers :mod:`.html` and :mod:`.markdown`, and :mod:`.build`
(:func:`write_report`).
"""

from __future__ import annotations

from .build import write_report
from .document import SECTIONS

__all__ = ["SECTIONS", "write_report"]
