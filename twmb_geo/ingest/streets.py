"""Centreline attributes: road class (``is_street``), feature code, nodes, jurisdiction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..io.profiles import Profile
from ._common import IngestContext
from ._lines import _numeric, _Problems, _raw, _text, _whole

__all__ = ["NON_STREET_CLASSES", "STREET_CLASSES"]

#: FEATURE_CODE_DESC values (case-insensitive) of road classes: ``is_street`` is True.
STREET_CLASSES = frozenset(
    {
        "expressway",
        "expressway ramp",
        "major arterial",
        "major arterial ramp",
        "minor arterial",
        "minor arterial ramp",
        "collector",
        "collector ramp",
        "local",
        "laneway",
        "access road",
        "busway",
        "other",
        "other ramp",
        "pending",
    }
)
#: FEATURE_CODE_DESC values of non-street features: ``is_street`` is False.
NON_STREET_CLASSES = frozenset(
    {
        "major railway",
        "minor railway",
        "railway",
        "river",
        "creek/tributary",
        "trail",
        "walkway",
        "hydro line",
        "major shoreline",
        "minor shoreline (land locked)",
        "geostatistical line",
        "ferry route",
    }
)
#: feature codes of road classes in the bundled centreline (201100 Expressway ... 201803 Access Road).
_STREET_CODES = (201100, 201900)


def _street_attributes(
    f: pd.DataFrame, profile: Profile, ctx: IngestContext, probs: _Problems, length: np.ndarray
) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    n = len(f)
    raw, name = _raw(f, profile, "feature_code")
    code, bad = _numeric(raw)
    bad = _whole(code, bad)
    probs.add("value_unparseable", bad, name, raw, "is not a feature code")
    probs.add("value_out_of_range", np.abs(code) >= 2**31, name, raw, "is too large")
    desc = _text(_raw(f, profile, "feature_code_desc")[0])
    norm = pd.Series(desc, dtype=object).map(str.casefold, na_action="ignore")
    street = norm.isin(list(STREET_CLASSES)).to_numpy()
    non_street = norm.isin(list(NON_STREET_CLASSES)).to_numpy()
    unknown = ~street & ~non_street
    with np.errstate(invalid="ignore"):
        by_code = (code >= _STREET_CODES[0]) & (code < _STREET_CODES[1])
    if "feature_code_desc" not in profile.columns and "feature_code" not in profile.columns:
        # a plain street file: nothing says otherwise
        is_street = np.ones(n, dtype=bool)
        unknown = np.zeros(n, dtype=bool)
    else:
        is_street = np.where(unknown, by_code, street)
    cols: dict[str, Any] = {
        "linear_name_full": _text(_raw(f, profile, "linear_name_full")[0]),
        "feature_code": np.where(bad | (np.abs(code) >= 2**31), np.nan, code),
        "feature_code_desc": desc,
        "is_street": is_street.astype(bool),
        "from_node": _text(_raw(f, profile, "from_node")[0]),
        "to_node": _text(_raw(f, profile, "to_node")[0]),
        "jurisdiction": _text(_raw(f, profile, "jurisdiction")[0]),
        "status": _text(_raw(f, profile, "status")[0]),
    }
    return cols, [("feature_class_unrecognised", unknown)]
