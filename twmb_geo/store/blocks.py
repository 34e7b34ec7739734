"""Blocks of a store table by ranges of a key: what lets a stage read a table of any size a
block at a time, in key order, without reading every key first.

DuckDB finds the bounds (every ``rows``-th key in order) and each block is read with a
range condition, so a block's rows come with the column types of a whole read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from .duckdb_store import Store

__all__ = ["KeyBlock", "key_blocks", "read_block"]


@dataclass(frozen=True)
class KeyBlock:
    """One block of a table: the rows whose key is in ``[low, high)`` (``high`` None: no
    upper bound; ``low`` None: the rows without a key, which sort last)."""

    low: object
    high: object

    def where(self, column: str) -> tuple[str, list[object]]:
        """The SQL condition on ``column`` and its parameters."""
        col = f'"{column}"'
        if self.low is None:
            return (f"{col} IS NULL", [])
        if self.high is None:
            return (f"{col} >= ?", [self.low])
        return (f"{col} >= ? AND {col} < ?", [self.low, self.high])


def key_blocks(store: Store, table: str, column: str, rows: int) -> list[KeyBlock]:
    """Blocks of ``table`` in ``column`` order, cut by DuckDB so the keys are never all read
    here: at most ``rows`` rows each when the keys are unique, the rows without a key last
    (none when the table is empty)."""
    if not store.has_table(table) or not store.count(table):
        return []
    col = f'"{column}"'
    cut = store.query(
        f"SELECT DISTINCT k FROM (SELECT {col} AS k, row_number() OVER (ORDER BY {col}) - 1 AS r "
        f'FROM "{table}" WHERE {col} IS NOT NULL) WHERE r % ? = 0 ORDER BY k',
        [rows],
    )["k"].tolist()
    highs: list[object] = [*cut[1:], None] if cut else []
    blocks = [KeyBlock(low, high) for low, high in zip(cut, highs, strict=True)]
    nulls = store.query(f'SELECT count(*) AS n FROM "{table}" WHERE {col} IS NULL')["n"].iloc[0]
    return [*blocks, KeyBlock(None, None)] if nulls else blocks


def read_block(
    store: Store,
    table: str,
    block: KeyBlock,
    column: str,
    where: str = "",
    params: list | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The rows of ``table`` in ``block`` (by ``column``) that also meet ``where`` (only
    ``columns``, if given), in the table's contract order."""
    cond, args = block.where(column)
    return store.read(
        table,
        where=" AND ".join(f"({w})" for w in (where, cond) if w),
        params=[*(params or []), *args],
        columns=columns,
    )
