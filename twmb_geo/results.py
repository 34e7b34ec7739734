"""Typed results of the public API's verbs.

Each verb of :mod:`twmb_geo.api` returns one of these frozen dataclasses; ``to_dict()`` gives
the JSON form the CLI prints with ``--json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "MapsResult",
    "PowerBIKitResult",
    "PublishResult",
    "ReportResult",
    "RunResult",
    "ScoreResult",
    "SimulationResult",
    "TrainResult",
]


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _Result:
    """``to_dict`` for the dataclasses below (fields in order, paths as text)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class TrainResult(_Result):
    """One validated, fitted and registered model per unit type."""

    run_id: str
    models: list[dict[str, Any]]


@dataclass(frozen=True)
class ScoreResult(_Result):
    """Current risk scores written to ``risk_scores``, per unit type."""

    run_id: str
    scores: list[dict[str, Any]]


@dataclass(frozen=True)
class SimulationResult(_Result):
    """Monte Carlo outlooks and renewal scenarios, per unit type."""

    run_id: str
    simulations: list[dict[str, Any]]


@dataclass(frozen=True)
class PublishResult(_Result):
    """The star schema published to every target (one publish id for all)."""

    publish_id: str
    schema_version: int
    rows: dict[str, int]
    checksums: dict[str, str]
    targets: list[dict[str, Any]]


@dataclass(frozen=True)
class MapsResult(_Result):
    """Map files: exports per format, static PNG maps, the HTML map."""

    folder: Path
    rows: dict[str, int]
    exports: dict[str, Any] = field(default_factory=dict)
    png: dict[str, str] = field(default_factory=dict)
    html: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportResult(_Result):
    """The run report: HTML, Markdown, figure names and section titles."""

    html: Path
    markdown: Path
    figures: list[str]
    sections: list[str]


@dataclass(frozen=True)
class PowerBIKitResult(_Result):
    """The Power BI kit written for the star schema."""

    folder: Path
    source: str
    files: list[str]
    tables: int
    relationships: int
    measures: int
    report: str = "written"


@dataclass(frozen=True)
class RunResult(_Result):
    """The main job's summary (also written to ``<out>/summary.json``)."""

    summary: dict[str, Any]
    summary_path: Path

    def to_dict(self) -> dict[str, Any]:
        """The summary with its path, JSON-ready."""
        return {**_plain(self.summary), "summary_path": str(self.summary_path)}
