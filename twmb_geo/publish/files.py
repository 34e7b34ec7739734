"""Publish the star schema as a folder of Parquet and/or CSV files (Power BI "Folder" source)
and TopoJSON of its polygon dimensions (Power BI's Shape Map, :mod:`.topojson`).

The folder is written next to its final place and swapped in with renames, so a reader
sees either the previous complete set or the new one, never a mix; a publish that dies
half-way leaves the previous folder untouched and its leftovers are cleared by the next
publish. The same store gives byte-identical files.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputDataError
from .base import PreparedStar, TargetResult
from .star import STAR_TABLES
from .topojson import star_topojson

__all__ = ["FORMATS", "FolderTarget", "check_formats", "write_star_folder"]

FORMATS = ("parquet", "csv")


def _write_one(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        table = pa.Table.from_pandas(df, preserve_index=False)
        pq.write_table(table, path, compression="zstd")
    else:
        df.to_csv(path, index=False, lineterminator="\n", encoding="utf-8", date_format="%Y-%m-%d")


def check_formats(formats: Sequence[str]) -> None:
    """Refuse an empty or unknown list of file formats (:class:`InputDataError`)."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputDataError(f"formats must be among {list(FORMATS)}, got {list(formats)}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_dead_leftovers(folder: Path) -> None:
    """Remove the staging and old folders of publishes whose process is gone (a killed
    publish); those of a live process (another publish to the same folder) are left alone."""
    for p in sorted(folder.parent.glob(f".{folder.name}.*")):
        suffix = p.name[len(folder.name) + 2 :]
        kind, _, tag = suffix.partition("-")
        if kind not in ("staging", "old") or not p.is_dir():
            continue
        pid = tag.split("-")[0]
        if not tag or not pid.isdigit() or not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def write_star_folder(
    tables: Mapping[str, pd.DataFrame],
    folder: Path | str,
    *,
    formats: Sequence[str] = FORMATS,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Write every star table to ``folder/<format>/<table>.<ext>``, the polygon dimensions
    to ``folder/topojson/<name>.topojson``, and swap the folder in atomically.

    Returns the folder, formats, rows per table and TopoJSON files (also written to
    ``manifest.json``).
    """
    check_formats(formats)
    missing = [t for t in STAR_TABLES if t not in tables]
    if missing:
        raise InputDataError(f"star tables missing from the publish: {missing}")
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_leftovers(folder)
    tag = f"{os.getpid()}-{secrets.token_hex(4)}"
    staging = folder.with_name(f".{folder.name}.staging-{tag}")
    old = folder.with_name(f".{folder.name}.old-{tag}")
    rows = {t: len(tables[t]) for t in STAR_TABLES}
    for fmt in formats:
        (staging / fmt).mkdir(parents=True)
        for t in STAR_TABLES:
            _write_one(tables[t], staging / fmt / f"{t}.{fmt}", fmt)
    shapes = star_topojson(tables)
    (staging / "topojson").mkdir(parents=True, exist_ok=True)
    for name, text in shapes.items():
        (staging / "topojson" / name).write_text(text, encoding="utf-8")
    manifest = {
        "run_id": run_id,
        "formats": list(formats),
        "rows": rows,
        "topojson": sorted(shapes),
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    if old.exists():
        shutil.rmtree(old)
    return {"folder": str(folder), **manifest}


class FolderTarget:
    """The ``folder`` publish target: Parquet and/or CSV files swapped in atomically."""

    name = "folder"

    def __init__(self, folder: Path, formats: Sequence[str], schema_version: int) -> None:
        self.folder = Path(folder)
        self.formats = tuple(formats)
        self.schema_version = schema_version

    def __repr__(self) -> str:
        return f"FolderTarget({str(self.folder)!r}, formats={list(self.formats)})"

    def check(self) -> None:
        """Refuse unknown formats before the star is built."""
        check_formats(self.formats)

    def write(self, tables: Mapping[str, pd.DataFrame], prepared: PreparedStar) -> TargetResult:
        """Write every table in every format; the folder is rewritten on every publish."""
        pid = prepared.publish_id
        res = write_star_folder(tables, self.folder, formats=self.formats, run_id=pid)
        return TargetResult(
            target=self.name,
            location=res["folder"],
            publish_id=pid,
            rows=res["rows"],
            schema_version=self.schema_version,
            extra={"run_id": res["run_id"], "formats": res["formats"], "topojson": res["topojson"]},
        )

    def close(self) -> None:
        """Nothing to release."""
