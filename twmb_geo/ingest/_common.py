"""Shared pieces of ingestion: the result object, quarantine rows and reconciliation."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import shapely

from ..errors import ReconciliationError
from ..io.readers import Rejected

QUARANTINE_COLUMNS = [
    "source_id",
    "source_file",
    "source_row",
    "reason",
    "reasons",
    "detail",
    "raw_record",
]


@dataclass
class IngestContext:
    """What a transform needs besides the rows: the day, the service area if known, settings."""

    today: date
    service_area: shapely.Geometry | None = None  # buffered boundary, analysis CRS
    weather_coverage_threshold: float = 0.9
    street_node_tolerance_m: float = 1.0  # end points this close are one derived street node
    #: rows dropped by the profile's ``[[where]]`` filters while reading (condition -> rows)
    excluded: dict[str, int] = field(default_factory=dict)
    #: rows the readers refused (``encoding_error``, ``extra_fields``, ``field_too_large``)
    rejected: list[Rejected] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.service_area is not None:
            shapely.prepare(self.service_area)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a prepared geometry arrives unprepared in a pooled worker: its point and line
        # tests against a detailed boundary then cost about 180 times more
        self.__dict__.update(state)
        self.__post_init__()


@dataclass
class IngestResult:
    """Curated tables and quarantine produced from one source, with its reconciliation."""

    source_id: str
    kind: str
    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    rows_in: int
    warnings: list[str] = field(default_factory=list)
    crs: list[dict[str, Any]] = field(default_factory=list)
    flags: dict[str, int] = field(default_factory=dict)
    analysis_crs: str | None = None
    #: rows dropped by the profile's ``[[where]]`` row filters, per condition
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def excluded_rows(self) -> int:
        """Rows excluded by profile row filters (all conditions)."""
        return sum(self.excluded.values())

    @property
    def accepted(self) -> int:
        """Rows accepted into the main curated table of the source."""
        main = next(iter(self.tables.values()))
        return len(main)

    @property
    def quarantined_by_reason(self) -> dict[str, int]:
        """Quarantined row counts per reason code, sorted by code."""
        if self.quarantine.empty:
            return {}
        counts = self.quarantine["reason"].value_counts()
        return {str(k): int(counts[k]) for k in sorted(counts.index)}

    def reconcile(self) -> None:
        """Fail loudly unless rows in = accepted + quarantined + excluded."""
        if self.rows_in != self.accepted + len(self.quarantine) + self.excluded_rows:
            raise ReconciliationError(
                f"source {self.source_id!r}: {self.rows_in} rows in but {self.accepted} accepted "
                f"+ {len(self.quarantine)} quarantined + {self.excluded_rows} excluded; "
                "rows were lost or duplicated"
            )


def finish_result(
    source_id: str,
    kind: str,
    tables: dict[str, pd.DataFrame],
    quarantine: pd.DataFrame,
    rows_in: int,
    warnings: list[str],
    crs: list[dict[str, Any]],
    flag_counts: dict[str, int],
) -> IngestResult:
    """Build the result, add a warning summarising quality flags, and reconcile it."""
    if flag_counts:
        warnings.append(
            f"source {source_id!r}: accepted rows carry quality flags: "
            + ", ".join(f"{k}={v}" for k, v in sorted(flag_counts.items()))
        )
    result = IngestResult(
        source_id,
        kind,
        tables,
        quarantine,
        rows_in,
        warnings,
        crs,
        dict(sorted(flag_counts.items())),
    )
    result.reconcile()
    return result


def _jsonable(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp | date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    return v


def raw_records(frame: pd.DataFrame, geometry: np.ndarray | None = None) -> list[str]:
    """The raw rows as compact JSON (sorted keys), geometry as WKT when present."""
    cols = [c for c in frame.columns if c not in ("source_file", "source_row")]
    records = frame[cols].to_dict("records")
    if geometry is not None:
        wkt = shapely.to_wkt(geometry, rounding_precision=-1, trim=True)
        for rec, g in zip(records, wkt, strict=True):
            rec["geometry"] = g
    return [
        json.dumps({k: _jsonable(v) for k, v in r.items()}, sort_keys=True, default=str)
        for r in records
    ]


def build_quarantine(
    source_id: str,
    frame: pd.DataFrame,
    reasons: list[list[str]],
    details: list[list[str]],
    geometry: np.ndarray | None = None,
) -> pd.DataFrame:
    """Quarantine rows for ``frame`` (already restricted to failing rows)."""
    if frame.empty:
        return empty_quarantine()
    return pd.DataFrame(
        {
            "source_id": source_id,
            "source_file": frame["source_file"].astype(object).to_numpy(),
            "source_row": frame["source_row"].to_numpy(dtype=np.int64),
            "reason": [r[0] for r in reasons],
            "reasons": [";".join(r) for r in reasons],
            "detail": ["; ".join(d) for d in details],
            "raw_record": raw_records(frame, geometry),
        }
    )


def rejected_quarantine(source_id: str, rejected: list[Rejected]) -> pd.DataFrame:
    """Quarantine rows for the rows readers refused (one reason each)."""
    parts = [
        build_quarantine(
            source_id, r.frame, [[c] for c in r.reason], [[d] for d in r.detail], r.geometry
        )
        for r in rejected
        if len(r)
    ]
    return pd.concat(parts, ignore_index=True) if parts else empty_quarantine()


def empty_quarantine() -> pd.DataFrame:
    """A quarantine frame with no rows and the contract's columns."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in QUARANTINE_COLUMNS}).astype(
        {"source_row": np.int64}
    )


class RowChecks:
    """Collect failing checks per row (vectorised masks in, ordered reason lists out).

    Checks are added in priority order; a row's first failing code is its ``reason``.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self._codes: list[tuple[str, np.ndarray, np.ndarray]] = []

    def add(
        self, code: str, mask: np.ndarray | pd.Series, detail: np.ndarray | pd.Series | str
    ) -> None:
        """Record ``code`` for the rows in ``mask``; ``detail`` is per row or one string."""
        m = np.asarray(mask, dtype=bool)
        if not m.any():
            return
        if isinstance(detail, str):
            d = np.full(self.n, detail, dtype=object)
        else:
            d = np.asarray(detail, dtype=object)
        self._codes.append((code, m, d))

    def order(self, priority: tuple[str, ...]) -> None:
        """Re-order the recorded checks so a row's ``reason`` follows ``priority``."""
        rank = {c: i for i, c in enumerate(priority)}
        self._codes.sort(key=lambda t: rank.get(t[0], len(rank)))

    @property
    def failed(self) -> np.ndarray:
        """Mask of rows with at least one failing check."""
        out = np.zeros(self.n, dtype=bool)
        for _, m, _ in self._codes:
            out |= m
        return out

    def lists(self) -> tuple[list[list[str]], list[list[str]]]:
        """Reason codes and details for the failing rows, in row order."""
        idx = np.flatnonzero(self.failed)
        pos = {int(i): k for k, i in enumerate(idx)}
        reasons: list[list[str]] = [[] for _ in idx]
        details: list[list[str]] = [[] for _ in idx]
        for code, m, d in self._codes:
            for i in np.flatnonzero(m):
                k = pos[int(i)]
                reasons[k].append(code)
                details[k].append(str(d[i]))
        return reasons, details
