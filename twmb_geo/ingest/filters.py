"""Profile row filters (``[[where]]``): keep the rows every condition holds for.

Rows a filter drops are *excluded*, not quarantined: they are valid records the analysis
does not want (e.g. service-line breaks, another utility's mains). They are counted per
condition (its :attr:`~twmb_geo.io.profiles.RowFilter.label`, the first failing one per
row) so that rows in = accepted + quarantined + excluded.

Matching: ``equals`` / ``in`` / ``not_in`` compare numbers numerically when the profile
value is a number, else the trimmed text exactly (case-sensitive); ``min`` / ``max`` are
inclusive bounds, numeric for numbers and dates for ISO dates (a ``max`` day without a time
includes that whole day). A null (or, for a range, unparseable) value fails every condition
except ``not_in``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputDataError
from ..io.profiles import Profile, RowFilter
from ..io.readers import RawChunk

__all__ = ["filter_chunks", "filter_frame", "where_mask"]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _text(s: pd.Series) -> pd.Series:
    t = s.astype(object).where(s.notna(), None)
    return t.map(lambda v: None if v is None else str(v).strip())


def _numbers(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(_text(s), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _dates(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        d = pd.to_datetime(s)
    else:
        d = pd.to_datetime(_text(s), errors="coerce", format="ISO8601", utc=True)
    if getattr(d.dt, "tz", None) is not None:
        d = d.dt.tz_convert(None)
    return d


def _as_ts(v: Any) -> pd.Timestamp:
    return pd.Timestamp(v.isoformat() if isinstance(v, dt.date) else str(v))


def _in(s: pd.Series, values: Iterable[Any]) -> np.ndarray:
    """Whether each value equals one of ``values`` (numbers numerically, text exactly)."""
    values = list(values)
    out = np.zeros(len(s), dtype=bool)
    nums = [float(v) for v in values if _is_number(v)]
    texts = [str(v).strip() for v in values if not _is_number(v)]
    if nums:
        out |= np.isin(_numbers(s), nums)
    if texts:
        out |= _text(s).isin(texts).to_numpy(dtype=bool)
    return out


def _holds(s: pd.Series, rule: RowFilter) -> np.ndarray:
    """Mask of rows for which ``rule`` holds."""
    present = s.notna().to_numpy(dtype=bool) & (_text(s) != "").to_numpy(dtype=bool)
    if rule.op == "not_null":
        return present
    if rule.op == "equals":
        return present & _in(s, [rule.value])
    if rule.op == "in":
        return present & _in(s, rule.value)
    if rule.op == "not_in":
        return ~(present & _in(s, rule.value))
    lo, hi = rule.value
    ok = present.copy()
    numeric = all(_is_number(b) for b in (lo, hi) if b is not None)
    if numeric:
        x = _numbers(s)
        with np.errstate(invalid="ignore"):
            ok &= np.isfinite(x)
            if lo is not None:
                ok &= x >= float(lo)
            if hi is not None:
                ok &= x <= float(hi)
        return ok
    d = _dates(s)
    ok &= d.notna().to_numpy(dtype=bool)
    if lo is not None:
        ok &= (d >= _as_ts(lo)).to_numpy(dtype=bool)
    if hi is not None:
        ok &= _until(d, hi)
    return ok


def _until(d: pd.Series, hi: Any) -> np.ndarray:
    """``d <= hi``; a day without a time (``2019-12-31``) includes the whole day."""
    day_only = (isinstance(hi, dt.date) and not isinstance(hi, dt.datetime)) or (
        isinstance(hi, str) and len(hi.strip()) == 10
    )
    if day_only:
        return (d < _as_ts(hi) + pd.Timedelta(days=1)).to_numpy(dtype=bool)
    return (d <= _as_ts(hi)).to_numpy(dtype=bool)


def where_mask(
    frame: pd.DataFrame, rules: Iterable[RowFilter], path: Path | str, profile_id: str
) -> tuple[np.ndarray, dict[str, int]]:
    """Rows to keep and excluded-row counts per rule (each row under its first failing rule).

    Raises
    ------
    InputDataError
        If a rule names a column the file does not have (every such column is listed).
    """
    rules = list(rules)
    missing = sorted({r.column for r in rules if r.column not in frame.columns})
    if missing:
        cols = [c for c in frame.columns if c not in ("source_file", "source_row")]
        raise InputDataError(
            f"profile {profile_id!r}: [[where]] names columns the file {path} does not have",
            [f"{path}: no column {c!r} (columns: {', '.join(map(str, cols))})" for c in missing],
        )
    keep = np.ones(len(frame), dtype=bool)
    counts: dict[str, int] = {}
    for rule in rules:
        fail = keep & ~_holds(frame[rule.column], rule)
        n = int(fail.sum())
        if n:
            counts[rule.label] = counts.get(rule.label, 0) + n
        keep &= ~fail
    return keep, counts


def _add(total: dict[str, int], counts: dict[str, int]) -> None:
    for k, v in counts.items():
        total[k] = total.get(k, 0) + v


def filter_chunks(
    chunks: Iterable[RawChunk], profile: Profile, excluded: dict[str, int]
) -> Iterator[RawChunk]:
    """Apply the profile's ``[[where]]`` to raw chunks; excluded counts add to ``excluded``."""
    for chunk in chunks:
        if not profile.where:
            yield chunk
            continue
        keep, counts = where_mask(chunk.frame, profile.where, chunk.path, profile.id)
        _add(excluded, counts)
        if keep.all():
            yield chunk
            continue
        geom = None if chunk.geometry is None else chunk.geometry[keep]
        yield replace(chunk, frame=chunk.frame.loc[keep].reset_index(drop=True), geometry=geom)


def filter_frame(
    frame: pd.DataFrame, profile: Profile, path: Path | str, excluded: dict[str, int]
) -> pd.DataFrame:
    """Apply the profile's ``[[where]]`` to one raw frame (e.g. weather read as a whole)."""
    if not profile.where:
        return frame
    keep, counts = where_mask(frame, profile.where, path, profile.id)
    _add(excluded, counts)
    return frame.loc[keep].reset_index(drop=True)
