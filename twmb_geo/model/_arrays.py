"""Array and input helpers shared by the model modules (private).

``as_1d`` and ``rank_order`` define the conventions every metric and ranking uses; the
rest turns the inputs of the estimators (pandas frames of panel rows or plain arrays)
and their targets into float arrays with clear :class:`ValueError` messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.utils.validation import column_or_1d

__all__ = [
    "as_1d",
    "count_target",
    "frame_numeric",
    "is_frame",
    "label_target",
    "missing_columns_error",
    "rank_order",
]


def as_1d(x: ArrayLike, name: str) -> NDArray[np.float64]:
    """``x`` as a one-dimensional float array (``ValueError`` if not numeric or not 1-D)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def rank_order(score: NDArray[np.float64]) -> NDArray[np.intp]:
    """Indices ranking ``score`` descending, NaN last, ties in input order (stable)."""
    isnan = np.isnan(score)
    # lexsort is stable; the last key is the primary one.
    return np.lexsort((np.where(isnan, 0.0, -score), isnan))


def is_frame(X: Any) -> bool:
    """True for a :class:`pandas.DataFrame` with string column names (read by name)."""
    return isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns)


def missing_columns_error(who: str, missing: Sequence[str]) -> ValueError:
    """The error of a frame lacking columns the estimator reads by name."""
    return ValueError(
        "The feature names should match those that were passed during fit.\n"
        "Feature names seen at fit time, yet now missing:\n"
        + "".join(f"- {c}\n" for c in missing)
        + f"({who} reads its columns by name)"
    )


def signed_log1p(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """``sign(a) * log1p(|a|)``: a log scale for counts and rates that keeps 0 and the sign."""
    return np.sign(a) * np.log1p(np.abs(a))


def nan_medians(A: NDArray[np.float64]) -> NDArray[np.float64]:
    """Median of every column of ``A`` ignoring NaN; 0 for a column with no value."""
    empty = np.isnan(A).all(axis=0)
    with np.errstate(all="ignore"):
        med = np.nanmedian(np.where(empty, 0.0, A), axis=0)
    return np.where(empty | ~np.isfinite(med), 0.0, med)


def frame_numeric(
    X: pd.DataFrame, cols: Sequence[str], rows: NDArray[np.intp] | None = None
) -> NDArray[np.float64]:
    """Columns ``cols`` of ``X`` (only the positions ``rows`` when given) as a float matrix;
    non-numbers become NaN."""
    n = len(X) if rows is None else len(rows)
    out = np.empty((n, len(cols)), dtype=np.float64)
    for j, c in enumerate(cols):
        col = X[c] if rows is None else X[c].iloc[rows]
        out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _check_y_present(y: Any, who: str) -> None:
    if y is None:
        raise ValueError(f"{who} requires y to be passed, but the target y is None")


def count_target(y: Any, who: str) -> NDArray[np.float64]:
    """Break counts as floats: NaN marks an unknown target; infinity or < 0 raise."""
    _check_y_present(y, who)
    if isinstance(y, pd.Series):
        try:
            arr = pd.to_numeric(y, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"y must hold numeric break counts: {exc}") from exc
    else:
        col = column_or_1d(y, warn=True)
        try:
            arr = np.asarray(col, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"y must hold numeric break counts: {exc}") from exc
    if np.isinf(arr).any():
        raise ValueError("Input y contains infinity; use NaN for unknown targets")
    if np.any(arr[~np.isnan(arr)] < 0):
        raise ValueError("y must be non-negative")
    return arr


def label_target(y: Any, who: str) -> tuple[NDArray[Any], NDArray[np.bool_]]:
    """Class labels and the mask of rows whose label is known (not null)."""
    _check_y_present(y, who)
    arr: NDArray[Any]
    if isinstance(y, pd.Series) and pd.api.types.is_numeric_dtype(y.dtype):
        arr = y.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        arr = column_or_1d(y, warn=True)
    return arr, ~np.asarray(pd.isna(arr), dtype=bool)
