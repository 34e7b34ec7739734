"""The Data summary section: ingest runs, rows per source, quarantine and input files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import queries
from ._format import fmt_int, fmt_pct, fmt_time, shorten
from .document import SECTIONS, Block, Bullets, Code, Heading, Section, note, para, table
from .queries import ReportContext

__all__ = ["data_section"]


def data_section(ctx: ReportContext) -> Section:
    """Runs, rows per source, quarantine reasons and input files from the manifest tables."""
    sec = Section(SECTIONS[0])
    if not ctx.has("runs"):
        sec.blocks.append(note("No ingest run is recorded in the store (no runs table)."))
        return sec
    sec.blocks += _run_blocks(queries.runs(ctx))
    sec.blocks += _source_blocks(ctx)
    sec.blocks += _quarantine_blocks(ctx)
    sec.blocks += _input_blocks(ctx)
    return sec


def _run_blocks(runs: pd.DataFrame) -> list[Block]:
    """The latest ingest run and its recorded warnings."""
    last = runs.iloc[-1]
    text = (
        f" (command {last['command']}, status {last['status']}), started "
        f"{fmt_time(last['started_at'])}, finished {fmt_time(last['finished_at'])}, "
        f"twmb_geo {last['package_version']}."
    )
    blocks: list[Block] = [para("Latest ingest run ", Code(str(last["run_id"])), text)]
    if len(runs) > 1:
        blocks.append(
            para(
                f"The store records {len(runs):,} ingest runs; each source's figures below "
                "come from the latest run that read it."
            )
        )
    try:
        warnings = json.loads(last["manifest"] or "{}").get("warnings", [])
    except (TypeError, ValueError):
        warnings = []
    if warnings:
        blocks.append(Heading("Ingest warnings"))
        blocks.append(Bullets(tuple((str(w),) for w in warnings)))
    return blocks


def _source_blocks(ctx: ReportContext) -> list[Block]:
    """Rows in / accepted / quarantined per source."""
    if not ctx.has("run_inputs"):
        return [note("No per-source input record in the store (no run_inputs table).")]
    df = queries.latest_inputs(ctx)
    rows = []
    for source_id, part in df.groupby("source_id", sort=True):
        r = part.iloc[0]
        share = r["quarantined"] / r["rows_in"] if r["rows_in"] else float("nan")
        rows.append(
            (
                str(source_id),
                str(r["profile"]),
                fmt_int(len(part)),
                fmt_int(r["rows_in"]),
                fmt_int(r["accepted"]),
                fmt_int(r["quarantined"]),
                fmt_pct(share, 2),
            )
        )
    return [
        Heading("Rows per source"),
        table(
            ("source", "profile", "files", "rows in", "accepted", "quarantined", "quarantined %"),
            rows,
            "llrrrrr",
        ),
    ]


def _quarantine_blocks(ctx: ReportContext) -> list[Block]:
    """Quarantined rows per source and reason code, with an example detail."""
    blocks: list[Block] = [Heading("Quarantine by reason code")]
    if "quarantine" not in ctx.tables:
        return [*blocks, note("No quarantine table in the store.")]
    q = queries.quarantined(ctx)
    if q.empty:
        return [*blocks, para("No row was quarantined.")]
    groups = q.groupby(["source_id", "reason"], sort=True)
    summary = groups.agg(rows=("reason", "size"), example=("detail", "first")).reset_index()
    summary = summary.sort_values(
        ["source_id", "rows", "reason"], ascending=[True, False, True], kind="mergesort"
    )
    rows = [
        (str(r.source_id), str(r.reason), fmt_int(r.rows), shorten(r.example, 110))
        for r in summary.itertuples()
    ]
    blocks.append(
        para(
            f"{len(q):,} rows were set aside with a reason code (the store's quarantine table "
            "keeps each raw record); the example is the first such row."
        )
    )
    blocks.append(table(("source", "reason", "rows", "example"), rows, "llrl"))
    return blocks


def _input_blocks(ctx: ReportContext) -> list[Block]:
    """Every input file of the latest run per source, with its hash."""
    if not ctx.has("run_inputs"):
        return []
    df = queries.latest_inputs(ctx)
    several = df["run_id"].nunique() > 1
    rows = [
        (
            str(r.source_id),
            Path(str(r.file)).name,
            fmt_int(r.bytes),
            str(r.sha256)[:16] + "…",
            *((str(r.run_id),) if several else ()),
        )
        for r in df.itertuples()
    ]
    header = ("source", "file", "bytes", "sha256", *(("run",) if several else ()))
    return [
        Heading("Input files"),
        para("Every file read, with the start of its sha256 (the full hash is in the store)."),
        table(header, rows, "llrl" + ("l" if several else "")),
    ]
