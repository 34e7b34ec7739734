"""The report's reads of the store: the context every section reads, and ordered queries.

Every query has an ``ORDER BY`` that makes its rows unique in order, so the same store
gives the same report bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...config import Config
from ...core.units import UNIT_TYPES
from ...store.duckdb_store import Store

__all__ = [
    "ReportContext",
    "break_span",
    "breaks_per_month",
    "hotspot_counts",
    "latest_inputs",
    "latest_run",
    "model_paths",
    "model_versions",
    "moran_by_year",
    "neighbourhood_names",
    "quarantined",
    "renewal",
    "runs",
    "score_tiers",
    "scored_unit_types",
    "simulation_city",
    "top_units",
    "unit_rows",
]

#: unit type -> the columns of its units that describe them in the riskiest-units tables
_LABEL_COLUMNS: dict[str, str] = {
    "pipe": "unit_id, asset_id, material, material_desc, diameter_mm, neighbourhood",
    "street": "unit_id, name, neighbourhood",
    "cell": "unit_id, pipe_km, neighbourhood",
    "neighbourhood": "area_code AS unit_id, area_code AS neighbourhood",
}


@dataclass
class ReportContext:
    """What the sections read: the config, the open store and the map outputs."""

    cfg: Config
    store: Store
    folder: Path
    map_images: Mapping[str, Path]
    html_map: Path | None
    tables: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.tables = frozenset(self.store.table_names())

    def has(self, *names: str) -> bool:
        """Whether every table exists and holds rows."""
        return all(n in self.tables and self.store.count(n) > 0 for n in names)

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """An ordered query's result."""
        return self.store.query(sql, params)


def runs(ctx: ReportContext) -> pd.DataFrame:
    """Every ingest run, oldest first."""
    return ctx.query(
        "SELECT run_id, command, status, started_at, finished_at, package_version, manifest "
        "FROM runs ORDER BY started_at, run_id"
    )


def latest_run(ctx: ReportContext) -> pd.Series:
    """The latest ingest run's id and times."""
    return ctx.query(
        "SELECT run_id, finished_at, started_at FROM runs ORDER BY started_at DESC, "
        "run_id DESC LIMIT 1"
    ).iloc[0]


def latest_inputs(ctx: ReportContext) -> pd.DataFrame:
    """``run_inputs`` rows of the latest run that read each source (ordered)."""
    df = ctx.query(
        "SELECT i.*, r.started_at FROM run_inputs i LEFT JOIN runs r USING (run_id) "
        "ORDER BY i.source_id, r.started_at, i.run_id, i.file"
    )
    last = df.groupby("source_id", sort=True)["run_id"].transform("last")
    return df[df["run_id"] == last].reset_index(drop=True)


def quarantined(ctx: ReportContext) -> pd.DataFrame:
    """Source, reason and detail of every quarantined row."""
    return ctx.query(
        "SELECT source_id, reason, detail FROM quarantine "
        "ORDER BY source_id, reason, source_file, source_row, detail"
    )


def break_span(ctx: ReportContext) -> pd.DataFrame:
    """The first and last break date (columns ``d0``, ``d1``)."""
    return ctx.query("SELECT min(break_date) AS d0, max(break_date) AS d1 FROM breaks")


def breaks_per_month(ctx: ReportContext) -> pd.DataFrame:
    """Breaks per calendar month (``month``, ``n``)."""
    return ctx.query("SELECT month, count(*) AS n FROM breaks GROUP BY month ORDER BY month")


def hotspot_counts(ctx: ReportContext) -> pd.DataFrame:
    """Units per hot-spot persistence class of breaks and unit type."""
    return ctx.query(
        'SELECT unit_type, "class" AS cls, count(*) AS n FROM hotspot_persistence '
        "WHERE variable = 'breaks' GROUP BY ALL ORDER BY ALL"
    )


def moran_by_year(ctx: ReportContext) -> pd.DataFrame:
    """Global Moran's I of breaks per unit type and year."""
    return ctx.query(
        "SELECT unit_type, year, moran_i, p_sim, permutations FROM moran_global "
        "WHERE variable = 'breaks' AND moran_i IS NOT NULL ORDER BY unit_type, year"
    )


def model_versions(ctx: ReportContext) -> dict[str, str]:
    """unit type -> model version: the one behind the current scores, else the newest."""
    out: dict[str, str] = {}
    if ctx.has("models"):
        models = ctx.query(
            "SELECT unit_type, model_version FROM models ORDER BY created_at, model_version"
        )
        out.update(zip(models["unit_type"], models["model_version"], strict=True))
    if ctx.has("risk_scores"):
        cur = ctx.query(
            "SELECT DISTINCT unit_type, model_version FROM risk_scores WHERE is_current "
            "ORDER BY unit_type, model_version"
        )
        out.update(zip(cur["unit_type"], cur["model_version"], strict=True))
    return out


def model_paths(ctx: ReportContext, version: str) -> list[str]:
    """The paths the ``models`` table records for a model version."""
    if not ctx.has("models"):
        return []
    rows = ctx.query("SELECT path FROM models WHERE model_version = ?", [version])
    return list(rows["path"].dropna())


def neighbourhood_names(ctx: ReportContext) -> dict[str, str]:
    """Neighbourhood code -> name."""
    if not ctx.has("neighbourhoods"):
        return {}
    nb = ctx.query("SELECT area_code, area_name FROM neighbourhoods ORDER BY area_code")
    return dict(zip(nb["area_code"], nb["area_name"], strict=True))


def scored_unit_types(ctx: ReportContext) -> pd.DataFrame:
    """Per unit type with current scores: count, model version, target and feature year."""
    return ctx.query(
        "SELECT unit_type, count(*) AS n, min(model_version) AS v, "
        "min(target_year) AS ty, min(feature_year) AS fy FROM risk_scores "
        "WHERE is_current GROUP BY unit_type ORDER BY unit_type"
    )


def score_tiers(ctx: ReportContext) -> pd.DataFrame:
    """Current units per unit type and tier, with the tier's lowest percentile."""
    return ctx.query(
        "SELECT unit_type, tier, count(*) AS n, min(percentile) AS p FROM risk_scores "
        "WHERE is_current GROUP BY ALL ORDER BY ALL"
    )


def top_units(ctx: ReportContext, unit_type: str, limit: int) -> pd.DataFrame:
    """The ``limit`` riskiest current units of one type, rank first."""
    return ctx.query(
        "SELECT rank, unit_id, expected_breaks, probability, percentile, tier, drivers, "
        "length_km FROM risk_scores WHERE is_current AND unit_type = ? "
        "ORDER BY rank, unit_id LIMIT ?",
        [unit_type, limit],
    )


def simulation_city(ctx: ReportContext) -> pd.DataFrame:
    """Current city-wide Monte Carlo bands per unit type, scenario and horizon."""
    return ctx.query(
        "SELECT unit_type, scenario, horizon, expected, mean, p10, p50, p90, p95, n_sims, seed, "
        "model_version FROM simulation_city WHERE is_current ORDER BY unit_type, scenario, horizon"
    )


def renewal(ctx: ReportContext) -> pd.DataFrame:
    """Current renewal scenarios."""
    return ctx.query("SELECT * FROM renewal WHERE is_current ORDER BY unit_type, model_version")


def unit_rows(ctx: ReportContext, unit_type: str) -> pd.DataFrame | None:
    """The describing columns of every unit of one type; None when unknown or absent."""
    spec = UNIT_TYPES.get(unit_type)
    if spec is None or unit_type not in _LABEL_COLUMNS or not ctx.has(spec.layer_table):
        return None
    return ctx.query(f"SELECT {_LABEL_COLUMNS[unit_type]} FROM {spec.layer_table}")
