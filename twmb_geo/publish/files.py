"""Publish the star schema as a folder of Parquet and/or CSV files (Power BI "Folder" source)
and TopoJSON of its polygon dimensions (Power BI's Shape Map, :mod:`.topojson`).

CSV copies are spreadsheet-safe (:func:`spreadsheet_safe`): a text cell that Excel or
LibreOffice would run as a formula is prefixed with a single quote. Parquet keeps the
true values.

The folder is written next to its final place and swapped in with renames, so a reader
sees either the previous complete set or the new one, never a mix; a publish that dies
half-way leaves the previous folder untouched and its leftovers are cleared by the next
publish. The same store gives byte-identical files.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.files import pid_alive
from ..errors import InputDataError
from .base import PreparedStar, TargetResult
from .star import STAR_TABLES
from .topojson import star_topojson

__all__ = ["FORMATS", "FolderTarget", "check_formats", "spreadsheet_safe", "write_star_folder"]

FORMATS = ("parquet", "csv")

#: First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
FORMULA_START = "=+-@\t\r"
_FORMULA_START = re.compile("[" + re.escape(FORMULA_START) + "]")
#: A plain decimal number (``-5``, ``+1.5``, ``-1e3``): left alone, a spreadsheet reads it
#: as the same number and runs nothing.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Neutralise text cells a spreadsheet would run as a formula (CSV injection).

    A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
    gets a leading single quote (``'=HYPERLINK(...)`` is shown as text, not run), as the
    OWASP guidance on CSV injection recommends. Left unchanged: numeric columns (``-5``
    stays ``-5``), missing values, non-text cells, and text that is a plain decimal
    number (``"-12.5"``, ``"+3"``, ``"-1e3"``), which a spreadsheet reads as that number.

    Parameters
    ----------
    df : pandas.DataFrame
        A table about to be written as CSV; it is not modified.

    Returns
    -------
    pandas.DataFrame
        ``df`` itself when no cell needs escaping, otherwise a copy with the escaped
        text columns replaced. Vectorised: one pass of pandas string operations per
        text column.
    """
    changed: dict[str, pd.Series] = {}
    for col in df.columns:
        s = df[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(object)
        if not (pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)):
            continue
        try:  # object columns of dates, bytes, ... have no .str
            starts = s.str.match(_FORMULA_START, na=False).astype(bool)
        except AttributeError:
            continue
        if not starts.any():
            continue
        risky = starts & ~s.str.fullmatch(_NUMBER, na=False).astype(bool)
        if risky.any():
            changed[col] = s.mask(risky, "'" + s.where(risky, ""))
    if not changed:
        return df
    out = df.copy()
    for col, values in changed.items():
        out[col] = values
    return out


def _write_one(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        table = pa.Table.from_pandas(df, preserve_index=False)
        pq.write_table(table, path, compression="zstd")
    else:
        # CRLF rows (RFC 4180): the csv module quotes a field holding any character of the
        # line terminator, so a CR inside a cell cannot start a new row (a bare CR in an
        # unquoted cell would, and the text after it could be a formula).
        spreadsheet_safe(df).to_csv(
            path, index=False, lineterminator="\r\n", encoding="utf-8", date_format="%Y-%m-%d"
        )


def check_formats(formats: Sequence[str]) -> None:
    """Refuse an empty or unknown list of file formats (:class:`InputDataError`)."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputDataError(f"formats must be among {list(FORMATS)}, got {list(formats)}")


def _remove_dead_leftovers(folder: Path) -> None:
    """Remove the staging and old folders of publishes whose process is gone (a killed
    publish); those of a live process (another publish to the same folder) are left alone."""
    for p in sorted(folder.parent.glob(f".{folder.name}.*")):
        suffix = p.name[len(folder.name) + 2 :]
        kind, _, tag = suffix.partition("-")
        if kind not in ("staging", "old") or not p.is_dir():
            continue
        pid = tag.split("-")[0]
        if not tag or not pid.isdigit() or not pid_alive(int(pid)):
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
