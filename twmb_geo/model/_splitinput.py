"""Input checks of the splitters (private): parameters, rows, ``y`` and ``groups``.

Every problem raises :class:`SplitInputError` or :class:`SplitParameterError`, both
:class:`ValueError` subclasses (and the package's ``InputDataError`` / ``ConfigError``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputDataError

__all__ = ["SplitInputError", "SplitParameterError"]


class SplitInputError(InputDataError, ValueError):
    """``X``, ``y`` or ``groups`` cannot be split as asked."""


class SplitParameterError(ConfigError, ValueError):
    """A splitter parameter is invalid."""


# --------------------------------------------------------------------------- validation


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise SplitParameterError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if int(value) < minimum:
        raise SplitParameterError(f"{name} must be >= {minimum}; got {int(value)}")
    return int(value)


def _check_seed(value: Any) -> int | None:
    if value is None:
        return None
    return _check_int(value, "random_state", 0)


def _check_col(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise SplitParameterError(f"{name} must be a column name (non-empty string); got {value!r}")
    return value


def _check_years(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    vals = [value] if isinstance(value, int | np.integer) else list(value)
    if not vals:
        raise SplitParameterError("test_years must be None or a non-empty list of integer years")
    bad = [v for v in vals if isinstance(v, bool) or not isinstance(v, int | np.integer)]
    if bad:
        raise SplitParameterError(f"test_years must be integer years; got {bad!r}")
    out = tuple(sorted({int(v) for v in vals}))
    if len(out) != len(vals):
        raise SplitParameterError(f"test_years has duplicates: {list(vals)!r}")
    return out


def _frame(X: Any, cols: list[str], who: str) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise SplitInputError(
            f"{who}.split needs X as a pandas DataFrame with column(s) {cols}, or groups; "
            f"got {type(X).__name__}"
        )
    missing = [c for c in cols if c not in X.columns]
    if missing:
        raise SplitInputError(
            f"{who}: X is missing column(s) {missing} (has {list(X.columns)[:20]})"
        )
    return X


def _n_rows(X: Any) -> int:
    try:
        return len(X)
    except TypeError:
        raise SplitInputError(f"X must be array-like with rows; got {type(X).__name__}") from None


def _source(X: Any, groups: Any, cols: list[str], who: str, one: str | None) -> pd.DataFrame:
    """The frame the columns ``cols`` are read from: ``groups`` if given, else ``X``.

    A 1-D ``groups`` provides the column ``one`` (the others must then be in ``X``).
    """
    if groups is None:
        return _frame(X, cols, who)
    n = _n_rows(X)
    if isinstance(groups, pd.DataFrame):
        g = _frame(groups, cols, f"{who} (groups)")
    else:
        if one is None:
            raise SplitInputError(f"{who}: groups must be a DataFrame with column(s) {cols}")
        arr = np.asarray(groups)
        if arr.ndim != 1:
            raise SplitInputError(f"{who}: groups must be one-dimensional; shape {arr.shape}")
        g = pd.DataFrame({one: arr})
        rest = [c for c in cols if c != one]
        if rest:
            src = _frame(X, rest, who)
            g = pd.concat([src[rest].reset_index(drop=True), g], axis=1)
        if isinstance(X, pd.DataFrame) and len(arr) == n:
            units = [c for c in ("unit_type", "unit_id") if c in X.columns and c != one]
            g = pd.concat([X[units].reset_index(drop=True), g], axis=1)
    if len(g) != n:
        raise SplitInputError(f"groups has {len(g)} values but X has {n} rows")
    return g.reset_index(drop=True)


def _y_array(y: Any, n: int) -> np.ndarray | None:
    if y is None:
        return None
    arr = np.asarray(y, dtype=float).ravel()
    if arr.size != n:
        raise SplitInputError(f"y has {arr.size} values but X has {n} rows")
    return arr


def _years(X: pd.DataFrame, col: str) -> np.ndarray:
    v = pd.to_numeric(X[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(v) | (v != np.round(v))
    if bad.any():
        raise SplitInputError(
            f"column {col!r} must hold integer years; {int(bad.sum())} row(s) do not "
            f"(first at position {int(np.flatnonzero(bad)[0])})"
        )
    return v.astype(np.int64)
