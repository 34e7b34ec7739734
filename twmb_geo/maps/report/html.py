"""The HTML rendering of the report: one self-contained page (CSS inline, figures embedded)."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence

from ..._version import __version__
from .document import Block, Bullets, Code, Figure, Heading, Inline, Para, Section, Strong, Table

__all__ = ["html_document"]

_CSS = """
:root { --fg: #1b1b1b; --muted: #555; --line: #d0d7de; --band: #f6f8fa; --accent: #0072B2; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 1.25rem 4rem; }
h1 { font-size: 1.9rem; margin: 0 0 .25rem; }
h2 { font-size: 1.45rem; margin: 2.5rem 0 .75rem; padding-bottom: .3rem;
  border-bottom: 2px solid var(--accent); }
h3 { font-size: 1.2rem; margin: 1.8rem 0 .5rem; }
h4 { font-size: 1.05rem; margin: 1.3rem 0 .4rem; }
p.meta { color: var(--muted); margin-top: 0; }
p.note { color: var(--muted); font-style: italic; border-left: 4px solid var(--line);
  padding: .2rem .75rem; }
nav ul { columns: 2; padding-left: 1.2rem; }
a { color: var(--accent); }
code { font: .9em/1.3 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: var(--band); padding: .05rem .25rem; border-radius: 3px; }
.scroll { overflow-x: auto; margin: .5rem 0 1rem; }
table { border-collapse: collapse; font-size: .9rem; }
caption { caption-side: top; text-align: left; color: var(--muted); padding-bottom: .3rem; }
th, td { border: 1px solid var(--line); padding: .3rem .55rem; vertical-align: top; }
th { background: var(--band); text-align: left; }
tbody tr:nth-child(even) { background: #fbfcfd; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.strong td { font-weight: 600; }
figure { margin: 1rem 0 1.5rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: .9rem; }
footer { margin-top: 3rem; color: var(--muted); font-size: .85rem; }
"""


def _esc(text: str) -> str:
    """Data text escaped for HTML (text and attribute values)."""
    return html.escape(str(text), quote=True)


def _html_inline(parts: Iterable[Inline]) -> str:
    """Inline parts as HTML."""
    out = []
    for part in parts:
        if isinstance(part, Code):
            out.append(f"<code>{_esc(part.text)}</code>")
        elif isinstance(part, Strong):
            out.append(f"<strong>{_esc(part.text)}</strong>")
        else:
            out.append(_esc(part))
    return "".join(out)


def _html_table(t: Table) -> str:
    """A table as HTML (numeric columns right-aligned, scrolls when wide)."""

    def cls(i: int) -> str:
        return ' class="num"' if t.align[i] == "r" else ""

    head = "".join(f"<th{cls(i)}>{_esc(h)}</th>" for i, h in enumerate(t.header))
    body = []
    for n, row in enumerate(t.rows):
        tr = '<tr class="strong">' if n in t.strong else "<tr>"
        cells = "".join(f"<td{cls(i)}>{_esc(c)}</td>" for i, c in enumerate(row))
        body.append(f"{tr}{cells}</tr>")
    caption = f"<caption>{_esc(t.caption)}</caption>" if t.caption else ""
    return (
        f'<div class="scroll"><table>{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>\n{chr(10).join(body)}\n</tbody></table></div>"
    )


def _html_block(block: Block) -> str:
    """One block as HTML; figures embedded as base64 PNG."""
    if isinstance(block, Para):
        cls = ' class="note"' if block.note else ""
        return f"<p{cls}>{_html_inline(block.parts)}</p>"
    if isinstance(block, Heading):
        return f"<h{block.level}>{_esc(block.text)}</h{block.level}>"
    if isinstance(block, Bullets):
        items = "".join(f"<li>{_html_inline(i)}</li>" for i in block.items)
        return f"<ul>{items}</ul>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(block.caption)}">'
            f"<figcaption>{_esc(block.caption)}</figcaption></figure>"
        )
    return f'<p>{_esc(block.before)}<a href="{_esc(block.href)}">{_esc(block.text)}</a></p>'


def html_document(title: str, meta: Sequence[Inline], sections: Sequence[Section]) -> str:
    """The whole self-contained HTML page (CSS inline, no external reference)."""
    toc = "".join(f'<li><a href="#{s.anchor}">{_esc(s.title)}</a></li>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="meta">{_html_inline(meta)}</p>',
        f'<nav aria-label="Contents"><ul>{toc}</ul></nav>',
    ]
    for sec in sections:
        parts.append(f'<section id="{sec.anchor}">')
        parts.append(f"<h2>{_esc(sec.title)}</h2>")
        parts += [_html_block(b) for b in sec.blocks]
        parts.append("</section>")
    parts += [
        f"<footer>Generated by twmb_geo {_esc(__version__)}; every figure is embedded, "
        "the file needs no network.</footer>",
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"
