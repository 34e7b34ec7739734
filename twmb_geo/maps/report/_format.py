"""Text of numbers, times and unit types as the report shows them ('–' for a missing value)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ...core.units import UNIT_TYPES

__all__ = [
    "fmt_int",
    "fmt_num",
    "fmt_pct",
    "fmt_signed",
    "fmt_time",
    "mean_sd",
    "missing",
    "plural",
    "shorten",
    "unit_key",
]


def missing(v: Any) -> bool:
    """Whether a value is null, NA or not finite (shown as '–')."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float | np.floating) and not math.isfinite(float(v))


def fmt_int(v: Any) -> str:
    """An integer with thousands separators."""
    return "–" if missing(v) else f"{int(v):,}"


def fmt_num(v: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals and thousands separators."""
    return "–" if missing(v) else f"{float(v):,.{digits}f}"


def fmt_signed(v: Any, digits: int = 3) -> str:
    """A difference with its sign (optimism: positive means random CV looks better)."""
    return "–" if missing(v) else f"{float(v):+.{digits}f}"


def fmt_pct(v: Any, digits: int = 1) -> str:
    """A share (0–1) as a percentage."""
    return "–" if missing(v) else f"{100 * float(v):.{digits}f} %"


def mean_sd(m: Mapping[str, Any] | None) -> str:
    """A card metric ``{mean, std}`` as 'mean ± sd'."""
    if not m:
        return "–"
    return f"{fmt_num(m.get('mean'))} ± {fmt_num(m.get('std'))}"


def fmt_time(ts: Any) -> str:
    """A store timestamp (naive UTC) as text; '–' when unrecorded."""
    if missing(ts):
        return "–"
    return f"{pd.Timestamp(ts):%Y-%m-%d %H:%M:%S} UTC"


def shorten(v: Any, n: int) -> str:
    """One line of at most ``n`` characters."""
    text = "" if missing(v) else " ".join(str(v).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def unit_key(unit_type: str) -> tuple[int, str]:
    """Sort key: the registry's unit types in canonical order, then any other unit type."""
    order = list(UNIT_TYPES)
    return (order.index(unit_type) if unit_type in order else len(order)), unit_type


def plural(unit_type: str) -> str:
    """The registry's plural of a unit type (``"H3 cells"``), else the name itself."""
    spec = UNIT_TYPES.get(unit_type)
    return spec.plural if spec is not None else unit_type
