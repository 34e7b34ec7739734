"""Star-table values as plain Python rows for SQL targets, and a checksum readers can recompute.

SQLite-dialect targets (Turso) have no date, timestamp or boolean type: dates travel as
``YYYY-MM-DD`` text, timestamps as ``YYYY-MM-DDTHH:MM:SS[.ffffff]`` text, booleans as 0/1,
missing values as NULL (never NaN), and floats with 15 significant digits: ``turso.sync``
sends REAL values as 15-digit text, and a 15-digit value survives that unchanged, so every
transport delivers the same bits. :func:`table_checksum` hashes those canonical values,
so a table read back from any target (Turso over HTTP, DuckDB, Parquet) can be compared
with what was published without comparing frames dtype by dtype.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..contracts import TableSchema
from ..errors import ContractError

__all__ = ["RowDigests", "column_values", "frame_columns", "frame_rows", "table_checksum"]


def _is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def column_values(s: pd.Series, type_name: str) -> list[Any]:
    """One column as canonical Python values (int, float, str or None) for its contract type."""
    if type_name in ("int32", "int64", "bool"):
        if s.dtype.kind in "iub" and not s.hasnans:
            return s.to_numpy(dtype=np.int64).tolist()
        return [None if _is_missing(v) else int(v) for v in s.tolist()]
    if type_name == "float64":
        arr = pd.to_numeric(s, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
        return _canonical_floats(arr)
    if type_name == "date":
        d = pd.to_datetime(s)
        return [None if _is_missing(v) else v.strftime("%Y-%m-%d") for v in d.tolist()]
    if type_name == "timestamp":
        d = pd.to_datetime(s)
        return [None if _is_missing(v) else v.isoformat() for v in d.tolist()]
    return [None if _is_missing(v) else str(v) for v in s.tolist()]


def _canonical_list(values: list[float]) -> list[float | None]:
    # + 0.0 turns -0.0 into 0.0: SQLite stores an integral REAL as an integer, losing the sign
    return [None if math.isnan(v) else float(f"{v:.15g}") + 0.0 for v in values]


#: columns shorter than this are converted value by value (no table of distinct values)
_DISTINCT_MIN_ROWS = 1024


def _canonical_floats(arr: NDArray[np.float64]) -> list[float | None]:
    """Canonical values of a float column (15 significant digits, NaN as None, no -0.0);
    a column of few distinct values (a unit's length repeated over its years) converts
    each distinct value once."""
    if len(arr) < _DISTINCT_MIN_ROWS:
        return _canonical_list(arr.tolist())
    distinct, where = np.unique(arr, return_inverse=True)  # -0.0 joins 0.0: both give 0.0
    if len(distinct) > len(arr) // 2:
        return _canonical_list(arr.tolist())
    table = np.array(_canonical_list(distinct.tolist()), dtype=object)
    return table[where.reshape(-1)].tolist()


def frame_columns(df: pd.DataFrame, schema: TableSchema) -> list[list[Any]]:
    """The columns of ``df`` in contract order as lists of canonical values.

    Infinite floats have no place in a published table (JSON and Power BI cannot carry them):
    they raise a :class:`ContractError` naming the column.
    """
    bad = [
        f.name
        for f in schema.fields
        if f.type == "float64"
        and np.isinf(pd.to_numeric(df[f.name]).to_numpy(float, na_value=np.nan)).any()
    ]
    if bad:
        raise ContractError(f"star table {schema.name} has infinite values in {bad}")
    return [column_values(df[f.name], f.type) for f in schema.fields]


def frame_rows(
    df: pd.DataFrame, schema: TableSchema, tag: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """Rows of ``df`` in contract column order as tuples of canonical values
    (:func:`frame_columns`), each ending with the values of ``tag`` (a publish id, say:
    added as the rows are made, not by copying every row)."""
    cols = frame_columns(df, schema)
    if not cols:
        return []
    n = len(df)
    return list(zip(*cols, *(repeat(v, n) for v in tag), strict=True))


def _token(v: Any) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        text = format(v, ".12g")
        return text if any(c in text for c in ".en") else text + ".0"  # 1.0 is not 1
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


_ESCAPED = ("\\", "\t", "\n")


def _float_token(v: float) -> str:
    text = format(v, ".12g")  # nan and inf keep their "n"
    return text if "." in text or "e" in text or "n" in text else text + ".0"  # 1.0 is not 1


def _column_tokens(values: Sequence[Any]) -> Sequence[str]:
    """:func:`_token` of every value of a column, with fast paths for a column of one type
    (a star column is ints, floats or text, with or without nulls)."""
    kinds = set(map(type, values))
    if kinds <= {int}:
        return list(map(str, values))
    if kinds <= {float, type(None)}:
        return ["\\N" if v is None else _float_token(v) for v in values]
    if kinds <= {str}:
        text = "".join(values)
        if not any(c in text for c in _ESCAPED):
            return values
    return [_token(v) for v in values]


class RowDigests:
    """An order-independent checksum of canonical rows, fed a batch at a time.

    Each row's canonical text (its values' tokens, tab-separated) is hashed with sha256;
    the 32 bytes of a digest are read as four little-endian 64-bit words, and the checksum
    is the sha256 of the row count and the four sums of those words over every row, each
    modulo 2**64 (a multiset hash: the same rows in any order, in any batches, give the
    same checksum, and a changed, added or lost row changes it). Memory is constant: a
    table of any size is checksummed on its way to a target without its digests being
    kept (sorting them, as before, held three copies: 7 GB for 77 million rows).
    """

    def __init__(self) -> None:
        self._rows = 0
        self._sums = np.zeros(4, dtype=np.uint64)

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        """Hash these rows into the checksum."""
        batch = rows if isinstance(rows, list) else list(rows)
        if batch:
            self.add_columns([[r[i] for r in batch] for i in range(len(batch[0]))])

    def add_columns(self, columns: Sequence[Sequence[Any]]) -> None:
        """Hash the rows these equal-length columns of canonical values make (the same
        checksum as :meth:`add` of the rows, without making them)."""
        if not columns or not len(columns[0]):
            return
        texts = map("\t".join, zip(*map(_column_tokens, columns), strict=True))
        sha = hashlib.sha256
        blob = b"".join([sha(t.encode("utf-8")).digest() for t in texts])
        words = np.frombuffer(blob, dtype="<u8").reshape(-1, 4)
        self._sums += words.sum(axis=0, dtype=np.uint64)  # wraps: modulo 2**64
        self._rows += len(words)

    def merge(self, other: RowDigests) -> None:
        """Add the rows ``other`` has hashed (made in another process, say): the checksum
        is then that of both sets of rows."""
        self._sums += other._sums
        self._rows += other._rows

    def hexdigest(self) -> str:
        """The checksum of every row added so far."""
        head = np.array([self._rows], dtype="<u8").tobytes()
        return hashlib.sha256(head + self._sums.astype("<u8").tobytes()).hexdigest()


def table_checksum(rows: Iterable[Sequence[Any]]) -> str:
    """sha256 over canonical rows, independent of row order (:class:`RowDigests`).

    Floats are compared to 12 significant digits: SQLite's text-to-float conversion on the
    ``turso.sync`` path can land 1 ULP away for tiny values (``2.22044604925031e-16`` came
    back as ``2.2204460492503099e-16``). Integral floats and ints hash differently (``1.0``
    vs ``1``), so a column that changes type on its way through a target changes the checksum.
    """
    acc = RowDigests()
    acc.add(rows)
    return acc.hexdigest()
