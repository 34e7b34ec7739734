"""Reading Environment and Climate Change Canada (ECCC) daily climate CSV files.

:func:`read_eccc_daily` reads one or more ECCC daily CSV files, in either the classic
"eng-daily" layout (a metadata preamble, then the table) or the newer bulk layout (no
preamble, station columns first), saved as UTF-8 (with or without BOM), cp1252 or
latin-1. It returns every data row as raw strings under canonical column names, with the
file name and the 1-based line number of each row.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputDataError

__all__ = [
    "DISPLAY_NAMES",
    "RAW_COLUMNS",
    "RAW_VALUE_COLUMNS",
    "REQUIRED_COLUMNS",
    "read_eccc_daily",
]

#: Canonical raw value columns, in output order.
RAW_VALUE_COLUMNS: tuple[str, ...] = (
    "date_time", "year", "month", "day", "data_quality",
    "max_temp", "max_temp_flag", "min_temp", "min_temp_flag", "mean_temp", "mean_temp_flag",
    "total_rain", "total_rain_flag", "total_snow", "total_snow_flag",
    "total_precip", "total_precip_flag", "snow_on_ground", "snow_on_ground_flag",
)  # fmt: skip
#: Every column of the frame returned by :func:`read_eccc_daily`.
RAW_COLUMNS: tuple[str, ...] = (
    *RAW_VALUE_COLUMNS, "station_id", "station_name", "source_file", "source_row",
)  # fmt: skip

#: ECCC header text of each canonical column (used in messages).
DISPLAY_NAMES: dict[str, str] = {
    "date_time": "Date/Time",
    "year": "Year",
    "month": "Month",
    "day": "Day",
    "data_quality": "Data Quality",
    "max_temp": "Max Temp (°C)",
    "max_temp_flag": "Max Temp Flag",
    "min_temp": "Min Temp (°C)",
    "min_temp_flag": "Min Temp Flag",
    "mean_temp": "Mean Temp (°C)",
    "mean_temp_flag": "Mean Temp Flag",
    "total_rain": "Total Rain (mm)",
    "total_rain_flag": "Total Rain Flag",
    "total_snow": "Total Snow (cm)",
    "total_snow_flag": "Total Snow Flag",
    "total_precip": "Total Precip (mm)",
    "total_precip_flag": "Total Precip Flag",
    "snow_on_ground": "Snow on Grnd (cm)",
    "snow_on_ground_flag": "Snow on Grnd Flag",
    "station_id": "Climate ID",
    "station_name": "Station Name",
}
#: Columns a file must have; data quality and flag columns are optional (blank if absent).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "date_time", "year", "month", "day", "max_temp", "min_temp", "mean_temp",
    "total_rain", "total_snow", "total_precip", "snow_on_ground",
)  # fmt: skip


_MAX_LISTED = 10


def _header_key(text: str) -> str:
    """Normalise a header cell: ASCII letters/digits only, so any degree-sign encoding
    (``°``, ``Â°``, ``º``, ``?``, U+FFFD) and punctuation compare equal."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


_COLUMN_KEYS: dict[str, str] = {_header_key(disp): canon for canon, disp in DISPLAY_NAMES.items()}
_COLUMN_KEYS[_header_key("Climate Identifier")] = "station_id"
_PREAMBLE_KEYS = {
    _header_key("Climate Identifier"): "station_id",
    _header_key("Climate ID"): "station_id",
    _header_key("Station Name"): "station_name",
}
_DATE_KEY = _header_key("Date/Time")


def _decode(data: bytes) -> str:
    """Decode file bytes: UTF-8 (BOM optional), UTF-16 with BOM, else cp1252, else latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _line_list(lines: Sequence[int], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    more = len(lines) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def _load_lines(path: Path) -> tuple[list[str] | None, list[str]]:
    """The file's lines, or ``None`` and why the file cannot be read."""
    if not path.exists():
        return None, ["file does not exist"]
    if not path.is_file():
        return None, ["is not a file"]
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, [f"cannot be read: {exc}"]
    text = _decode(data).lstrip("\ufeff")
    if not text.strip():
        return None, ["file is empty"]
    return re.split(r"\r\n|\r|\n", text), []


def _find_header(lines: list[str]) -> int | None:
    """Index of the first line with a ``Date/Time`` cell."""
    return next(
        (
            i
            for i, line in enumerate(lines)
            if "date" in line.lower()
            and _DATE_KEY in {_header_key(c) for c in next(csv.reader([line]), [])}
        ),
        None,
    )


def _read_header(
    lines: list[str], header_idx: int
) -> tuple[dict[str, str], list[str], dict[str, int], list[str]]:
    """Preamble values, header cells, canonical column positions and header problems."""
    preamble: dict[str, str] = {}
    for row in csv.reader(lines[:header_idx]):
        if len(row) >= 2 and _header_key(row[0]) in _PREAMBLE_KEYS:
            preamble.setdefault(_PREAMBLE_KEYS[_header_key(row[0])], row[1].strip())

    header = next(csv.reader([lines[header_idx]]))
    positions: dict[str, int] = {}
    for pos, name in enumerate(header):
        canon = _COLUMN_KEYS.get(_header_key(name))
        if canon is not None:
            positions.setdefault(canon, pos)

    problems: list[str] = []
    missing = [DISPLAY_NAMES[c] for c in REQUIRED_COLUMNS if c not in positions]
    if missing:
        problems.append(
            f"missing required columns: {', '.join(missing)} (header on line {header_idx + 1})"
        )
    if "station_id" not in positions and not preamble.get("station_id"):
        problems.append(
            "no station identifier: neither a 'Climate Identifier' preamble line "
            "nor a 'Climate ID' column"
        )
    return preamble, header, positions, problems


def _read_cells(
    lines: list[str], header_idx: int, width: int, problems: list[str]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Data cells (one row per non-blank line) and their line numbers; ``None`` on problems.

    Problems found are appended to ``problems``.
    """
    body = lines[header_idx + 1 :]
    rows = list(csv.reader(body))
    if len(rows) != len(body):
        odd = np.flatnonzero(pd.Series(body, dtype=object).str.count('"').to_numpy() % 2 == 1)
        problems.append(
            "a quoted field spans several lines, so rows cannot be matched to line numbers; "
            f"lines with an odd number of '\"': {_line_list((odd + header_idx + 2).tolist())}"
        )
        return None
    keep = (pd.Series(body, dtype=object).str.strip(' \t,"') != "").to_numpy(dtype=bool)
    line_no = (np.arange(len(body), dtype=np.int64) + header_idx + 2)[keep]
    if not keep.any():
        problems.append(f"no data rows after the header on line {header_idx + 1}")
        return None
    # transpose with padding (short rows get None), then back: one row per line
    cells = np.array(list(itertools.zip_longest(*rows)), dtype=object).T[keep]

    present = ~pd.isna(cells)
    n_fields = cells.shape[1] - present[:, ::-1].argmax(axis=1)
    short = line_no[n_fields < width]
    if short.size:
        problems.append(
            f"{short.size} rows have fewer than the header's {width} fields "
            f"(truncated?): lines {_line_list(short.tolist())}"
        )
    if cells.shape[1] > width:
        extra = cells[:, width:]
        filled = present[:, width:] & (np.char.strip(extra.astype(str)) != "")
        over = line_no[filled.any(axis=1)]
        if over.size:
            problems.append(
                f"{over.size} rows have more than the header's {width} fields: "
                f"lines {_line_list(over.tolist())}"
            )
    return None if problems else (cells, line_no)


def _cells_frame(
    path: Path,
    cells: np.ndarray,
    line_no: np.ndarray,
    positions: dict[str, int],
    preamble: dict[str, str],
) -> tuple[pd.DataFrame | None, list[str]]:
    """The raw frame of one file's cells, or ``None`` and the problem."""
    cols = [c for c in (*RAW_VALUE_COLUMNS, "station_id", "station_name") if c in positions]
    values = cells[:, [positions[c] for c in cols]]
    values[values == ""] = None
    out = pd.DataFrame(values, columns=cols, dtype="str")
    for col in ("station_id", "station_name"):
        if col not in out.columns:
            out[col] = pd.Series(np.nan, index=out.index, dtype="str")
        if preamble.get(col):
            out[col] = out[col].fillna(preamble[col])
    out["station_id"] = out["station_id"].str.strip()
    no_station = line_no[out["station_id"].isna().to_numpy()]
    if no_station.size:
        listed = _line_list(no_station.tolist())
        return None, [f"{no_station.size} rows have a blank Climate ID: lines {listed}"]
    out["source_file"] = pd.Series(path.name, index=out.index, dtype="str")
    out["source_row"] = line_no
    return out, []


def _read_one(path: Path) -> tuple[pd.DataFrame | None, list[str]]:
    """Read one file; return (frame, []) or (None, problems)."""
    lines, problems = _load_lines(path)
    if lines is None:
        return None, problems
    header_idx = _find_header(lines)
    if header_idx is None:
        return None, [
            "no header row with a 'Date/Time' column found; "
            "is this an ECCC daily climate CSV (eng-daily or bulk format)?"
        ]
    preamble, header, positions, problems = _read_header(lines, header_idx)
    read = _read_cells(lines, header_idx, len(header), problems)
    if read is None:
        return None, problems
    return _cells_frame(path, *read, positions, preamble)


def read_eccc_daily(paths: Sequence[Path]) -> pd.DataFrame:
    """Read ECCC daily climate CSV files into one raw frame.

    Parameters
    ----------
    paths
        Files in either ECCC layout (classic "eng-daily" with a metadata preamble, or the
        bulk layout with ``Climate ID`` columns); UTF-8, UTF-8 with BOM, cp1252 or latin-1.

    Returns
    -------
    pandas.DataFrame
        Rows in file order then row order; columns :data:`RAW_COLUMNS`. Values are raw
        strings (blank is null); ``station_id``/``station_name`` come from the preamble or
        the row; ``source_file`` is the file name and ``source_row`` the 1-based line number.

    Raises
    ------
    InputDataError
        If any file is missing, empty, has no data rows, lacks required columns or has
        rows of the wrong width. Every problem of every file is listed.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputDataError("no ECCC daily weather files were given")
    frames: list[pd.DataFrame] = []
    failures: list[tuple[Path, list[str]]] = []
    for path in paths:
        frame, problems = _read_one(path)
        if problems:
            failures.append((path, problems))
        elif frame is not None:
            frames.append(frame)
    if failures:
        if len(failures) == 1:
            message = f"ECCC daily weather file {failures[0][0]} cannot be used"
        else:
            names = ", ".join(str(p) for p, _ in failures)
            message = f"{len(failures)} ECCC daily weather files cannot be used: {names}"
        raise InputDataError(message, [f"{p}: {msg}" for p, probs in failures for msg in probs])
    raw = pd.concat(frames, ignore_index=True)
    for col in RAW_COLUMNS[:-1]:
        if col not in raw.columns:
            raw[col] = pd.Series(np.nan, index=raw.index, dtype="str")
    raw["source_row"] = raw["source_row"].astype(np.int64)
    return raw[list(RAW_COLUMNS)]
