"""The numbered schema steps of a Turso star database (frozen: never edit an applied one).

Each step is the literal SQL it ran when it was released, so a database migrated by an
older version ends up exactly like a new one. A contract change that alters the Turso
tables adds a step here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..sql import CURRENT_TABLE, PUBLISH_COLUMN, RUNS_TABLE, SCHEMA_TABLE, quote

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration"]


@dataclass(frozen=True)
class Migration:
    """One numbered, idempotent schema step; ``notice`` is what the user of a database made
    before it must do (logged as a warning when the step upgrades such a database)."""

    version: int
    description: str
    statements: Callable[[], list[str]]
    notice: str = ""


#: star schema 1.0: the 12 star tables with a publish_id index each
_STAR_1_0: tuple[str, ...] = (
    'CREATE TABLE IF NOT EXISTS "dim_date" ("date_key" INTEGER NOT NULL, "date" TEXT NOT NULL, "year" INTEGER NOT NULL, "month" INTEGER NOT NULL, "month_name" TEXT NOT NULL, "month_short" TEXT NOT NULL, "quarter" INTEGER NOT NULL, "quarter_label" TEXT NOT NULL, "year_month" TEXT NOT NULL, "day_of_month" INTEGER NOT NULL, "day_of_year" INTEGER NOT NULL, "day_of_week" INTEGER NOT NULL, "day_name" TEXT NOT NULL, "is_weekend" INTEGER NOT NULL, "winter_season" TEXT NOT NULL, "is_winter" INTEGER NOT NULL, "publish_id" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "ix_dim_date_publish_id" ON "dim_date" ("publish_id")',
    'CREATE TABLE IF NOT EXISTS "dim_h3_cell" ("cell_key" INTEGER NOT NULL, "h3_index" TEXT NOT NULL, "resolution" INTEGER, "parent_cell" TEXT, "area_km2" REAL, "centroid_lat" REAL, "centroid_lon" REAL, "wkt" TEXT, "neighbourhood_code" TEXT NOT NULL, "neighbourhood_name" TEXT NOT NULL, "publish_id" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "ix_dim_h3_cell_publish_id" ON "dim_h3_cell" ("publish_id")',
    'CREATE TABLE IF NOT EXISTS "dim_pipe" ("pipe_key" INTEGER NOT NULL, "unit_id" TEXT NOT NULL, "asset_id" TEXT, "material" TEXT NOT NULL, "material_desc" TEXT NOT NULL, "diameter_mm" REAL, "install_year" INTEGER, "install_decade" TEXT NOT NULL, "removal_year" INTEGER, "status" TEXT NOT NULL, "lined" INTEGER, "length_m" REAL, "neighbourhood_code" TEXT NOT NULL, "h3_index" TEXT NOT NULL, "centroid_lat" REAL, "centroid_lon" REAL, "wkt" TEXT, "publish_id" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "ix_dim_pipe_publish_id" ON "dim_pipe" ("publish_id")',
    'CREATE TABLE IF NOT EXISTS "dim_street_segment" ("street_key" INTEGER NOT NULL, "unit_id" TEXT NOT NULL, "name" TEXT NOT NULL, "feature_class" TEXT NOT NULL, "is_street" INTEGER, "length_m" REAL, "neighbourhood_code" TEXT NOT NULL, "h3_index" TEXT NOT NULL, "centroid_lat" REAL, "centroid_lon" REAL, "wkt" TEXT, "publish_id" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "ix_dim_street_segment_publish_id" ON "dim_street_segment" ("publish_id")',
    'CREATE TABLE IF NOT EXISTS "dim_neighbourhood" ("neighbourhood_key" INTEGER NOT NULL, "neighbourhood_code" TEXT NOT NULL, "neighbourhood_name" TEXT NOT NULL, "neighbourhood_label" TEXT NOT NULL, "area_km2" REAL, "centroid_lat" REAL, "centroid_lon" REAL, "wkt" TEXT, "publish_id" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "ix_dim_neighbourhood_publish_id" ON "dim_neighbourhood" ("publish_id")',
    'CREATE TABLE IF NOT EXISTS "dim_model" ("model_key" INTEGER NOT NULL, "model_version" TEXT NOT NULL, "unit_type" TEXT NOT NULL, "kind" TEXT NOT NULL, "created_at" TEXT, "train_start" INTEGER, "train_end" INTEGER, "forward_capture_5pct" REAL, "forward_capture_10pct" REAL, "forward_roc_auc" REAL, "spatial_capture_5pct" REAL, "random_capture_5pct" REAL, "best_baseline" TEXT, "best_baseline_capture_5pct" REAL, "publish_id" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "ix_dim_model_publish_id" ON "dim_model" ("publish_id")',
    'CREATE TABLE IF NOT EXISTS "fact_break" ("break_key" INTEGER NOT NULL, "break_id" TEXT NOT NULL, "date_key" INTEGER NOT NULL, "cell_key" INTEGER NOT NULL, "pipe_key" INTEGER NOT NULL, "street_key" INTEGER NOT NULL, "neighbourhood_key" INTEGER NOT NULL, "year" INTEGER NOT NULL, "lat" REAL NOT NULL, "lon" REAL NOT NULL, "breaks" INTEGER NOT NULL, "publish_id" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "ix_fact_break_publish_id" ON "fact_break" ("publish_id")',
    'CREATE TABLE IF NOT EXISTS "fact_unit_year" ("unit_type" TEXT NOT NULL, "cell_key" INTEGER NOT NULL, "pipe_key" INTEGER NOT NULL, "street_key" INTEGER NOT NULL, "neighbourhood_key" INTEGER NOT NULL, "year" INTEGER NOT NULL, "breaks" INTEGER NOT NULL, "exposure_km" REAL, "rate_per_100km" REAL, "publish_id" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "ix_fact_unit_year_publish_id" ON "fact_unit_year" ("publish_id")',
    'CREATE TABLE IF NOT EXISTS "fact_risk_score" ("model_key" INTEGER NOT NULL, "run_id" TEXT NOT NULL, "unit_type" TEXT NOT NULL, "cell_key" INTEGER NOT NULL, "pipe_key" INTEGER NOT NULL, "street_key" INTEGER NOT NULL, "neighbourhood_key" INTEGER NOT NULL, "feature_year" INTEGER NOT NULL, "target_year" INTEGER NOT NULL, "probability" REAL NOT NULL, "expected_breaks" REAL NOT NULL, "p90" REAL, "tier" TEXT NOT NULL, "rank" INTEGER NOT NULL, "percentile" REAL NOT NULL, "drivers" TEXT NOT NULL, "is_current" INTEGER NOT NULL, "publish_id" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "ix_fact_risk_score_publish_id" ON "fact_risk_score" ("publish_id")',
    'CREATE TABLE IF NOT EXISTS "fact_hotspot" ("unit_type" TEXT NOT NULL, "cell_key" INTEGER NOT NULL, "pipe_key" INTEGER NOT NULL, "street_key" INTEGER NOT NULL, "neighbourhood_key" INTEGER NOT NULL, "year" INTEGER NOT NULL, "variable" TEXT NOT NULL, "value" REAL, "local_i" REAL, "p_sim" REAL, "q_value" REAL, "significant" INTEGER NOT NULL, "cluster" TEXT NOT NULL, "publish_id" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "ix_fact_hotspot_publish_id" ON "fact_hotspot" ("publish_id")',
    'CREATE TABLE IF NOT EXISTS "fact_cv_metric" ("model_key" INTEGER NOT NULL, "scheme" TEXT NOT NULL, "model" TEXT NOT NULL, "fold" INTEGER NOT NULL, "test_year" INTEGER, "n_train" INTEGER NOT NULL, "n_test" INTEGER NOT NULL, "metric" TEXT NOT NULL, "value" REAL, "publish_id" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "ix_fact_cv_metric_publish_id" ON "fact_cv_metric" ("publish_id")',
    'CREATE TABLE IF NOT EXISTS "fact_simulation" ("model_key" INTEGER NOT NULL, "run_id" TEXT NOT NULL, "unit_type" TEXT NOT NULL, "scenario" TEXT NOT NULL, "horizon" INTEGER NOT NULL, "statistic" TEXT NOT NULL, "statistic_order" INTEGER NOT NULL, "cumulative_breaks" REAL, "is_current" INTEGER NOT NULL, "publish_id" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "ix_fact_simulation_publish_id" ON "fact_simulation" ("publish_id")',
)

#: star schema 2.0: dim_year, year_key on every fact, wkt_tolerance_m on the map dimensions,
#: (publish_id, sort order) indexes
_STAR_2_0: tuple[str, ...] = (
    'CREATE TABLE IF NOT EXISTS "dim_year" ("year_key" INTEGER NOT NULL, "year" INTEGER, "year_label" TEXT NOT NULL, "decade" TEXT NOT NULL, "publish_id" TEXT NOT NULL)',
    'ALTER TABLE "dim_h3_cell" ADD COLUMN "wkt_tolerance_m" REAL',
    'ALTER TABLE "dim_pipe" ADD COLUMN "wkt_tolerance_m" REAL',
    'ALTER TABLE "dim_street_segment" ADD COLUMN "wkt_tolerance_m" REAL',
    'ALTER TABLE "dim_neighbourhood" ADD COLUMN "wkt_tolerance_m" REAL',
    'ALTER TABLE "fact_break" ADD COLUMN "year_key" INTEGER NOT NULL DEFAULT -2',
    'ALTER TABLE "fact_unit_year" ADD COLUMN "year_key" INTEGER NOT NULL DEFAULT -2',
    'ALTER TABLE "fact_risk_score" ADD COLUMN "year_key" INTEGER NOT NULL DEFAULT -2',
    'ALTER TABLE "fact_hotspot" ADD COLUMN "year_key" INTEGER NOT NULL DEFAULT -2',
    'ALTER TABLE "fact_cv_metric" ADD COLUMN "year_key" INTEGER NOT NULL DEFAULT -2',
    'ALTER TABLE "fact_simulation" ADD COLUMN "year_key" INTEGER NOT NULL DEFAULT -2',
    'DROP INDEX IF EXISTS "ix_dim_date_publish_id"',
    'CREATE INDEX IF NOT EXISTS "ix_dim_date_page" ON "dim_date" ("publish_id", "date_key")',
    'DROP INDEX IF EXISTS "ix_dim_year_publish_id"',
    'CREATE INDEX IF NOT EXISTS "ix_dim_year_page" ON "dim_year" ("publish_id", "year_key")',
    'DROP INDEX IF EXISTS "ix_dim_h3_cell_publish_id"',
    'CREATE INDEX IF NOT EXISTS "ix_dim_h3_cell_page" ON "dim_h3_cell" ("publish_id", "cell_key")',
    'DROP INDEX IF EXISTS "ix_dim_pipe_publish_id"',
    'CREATE INDEX IF NOT EXISTS "ix_dim_pipe_page" ON "dim_pipe" ("publish_id", "pipe_key")',
    'DROP INDEX IF EXISTS "ix_dim_street_segment_publish_id"',
    'CREATE INDEX IF NOT EXISTS "ix_dim_street_segment_page" ON "dim_street_segment" ("publish_id", "street_key")',
    'DROP INDEX IF EXISTS "ix_dim_neighbourhood_publish_id"',
    'CREATE INDEX IF NOT EXISTS "ix_dim_neighbourhood_page" ON "dim_neighbourhood" ("publish_id", "neighbourhood_key")',
    'DROP INDEX IF EXISTS "ix_dim_model_publish_id"',
    'CREATE INDEX IF NOT EXISTS "ix_dim_model_page" ON "dim_model" ("publish_id", "model_key")',
    'DROP INDEX IF EXISTS "ix_fact_break_publish_id"',
    'CREATE INDEX IF NOT EXISTS "ix_fact_break_page" ON "fact_break" ("publish_id", "break_key")',
    'DROP INDEX IF EXISTS "ix_fact_unit_year_publish_id"',
    'CREATE INDEX IF NOT EXISTS "ix_fact_unit_year_page" ON "fact_unit_year" ("publish_id", "unit_type", "cell_key", "pipe_key", "street_key", "neighbourhood_key", "year")',
    'DROP INDEX IF EXISTS "ix_fact_risk_score_publish_id"',
    'CREATE INDEX IF NOT EXISTS "ix_fact_risk_score_page" ON "fact_risk_score" ("publish_id", "unit_type", "run_id", "rank")',
    'DROP INDEX IF EXISTS "ix_fact_hotspot_publish_id"',
    'CREATE INDEX IF NOT EXISTS "ix_fact_hotspot_page" ON "fact_hotspot" ("publish_id", "unit_type", "variable", "year", "cell_key", "pipe_key", "street_key", "neighbourhood_key")',
    'DROP INDEX IF EXISTS "ix_fact_cv_metric_publish_id"',
    'CREATE INDEX IF NOT EXISTS "ix_fact_cv_metric_page" ON "fact_cv_metric" ("publish_id", "model_key", "scheme", "model", "fold", "metric")',
    'DROP INDEX IF EXISTS "ix_fact_simulation_publish_id"',
    'CREATE INDEX IF NOT EXISTS "ix_fact_simulation_page" ON "fact_simulation" ("publish_id", "unit_type", "run_id", "scenario", "horizon", "statistic_order")',
)


#: step 3 (star contracts unchanged): paged reads are keyset pages on rowid, so the
#: (publish_id, sort order) indexes go (every insert maintained them)
_KEYSET_PAGES: tuple[str, ...] = (
    'DROP INDEX IF EXISTS "ix_dim_date_page"',
    'DROP INDEX IF EXISTS "ix_dim_year_page"',
    'DROP INDEX IF EXISTS "ix_dim_h3_cell_page"',
    'DROP INDEX IF EXISTS "ix_dim_pipe_page"',
    'DROP INDEX IF EXISTS "ix_dim_street_segment_page"',
    'DROP INDEX IF EXISTS "ix_dim_neighbourhood_page"',
    'DROP INDEX IF EXISTS "ix_dim_model_page"',
    'DROP INDEX IF EXISTS "ix_fact_break_page"',
    'DROP INDEX IF EXISTS "ix_fact_unit_year_page"',
    'DROP INDEX IF EXISTS "ix_fact_risk_score_page"',
    'DROP INDEX IF EXISTS "ix_fact_hotspot_page"',
    'DROP INDEX IF EXISTS "ix_fact_cv_metric_page"',
    'DROP INDEX IF EXISTS "ix_fact_simulation_page"',
)


def _v1() -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {quote(SCHEMA_TABLE)} ("
        '"version" INTEGER PRIMARY KEY, "description" TEXT NOT NULL, "applied_at" TEXT NOT NULL)',
        f"CREATE TABLE IF NOT EXISTS {quote(RUNS_TABLE)} ("
        f'{quote(PUBLISH_COLUMN)} TEXT PRIMARY KEY, "status" TEXT NOT NULL, '
        '"started_at" TEXT NOT NULL, "finished_at" TEXT, "source" TEXT, '
        '"row_counts" TEXT NOT NULL, "checksums" TEXT NOT NULL)',
        f"CREATE TABLE IF NOT EXISTS {quote(CURRENT_TABLE)} ("
        '"id" INTEGER PRIMARY KEY CHECK ("id" = 1), '
        f'{quote(PUBLISH_COLUMN)} TEXT NOT NULL, "published_at" TEXT NOT NULL)',
        *_STAR_1_0,
    ]


#: every schema step, in order; a new contract version adds one (never edit an applied one)
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "star schema 1.0: 12 star tables, publish pointer, publish log", _v1),
    Migration(
        2,
        "star schema 2.0: dim_year, year_key on every fact, conformed keys (-1 unknown, "
        "-2 not applicable), simplified WKT with its tolerance, (publish_id, sort order) "
        "indexes for paged reads",
        lambda: list(_STAR_2_0),
    ),
    Migration(
        3,
        "keyset pages: paged reads seek on rowid (rows are inserted in the contract's "
        "order); the (publish_id, sort order) indexes are dropped",
        lambda: list(_KEYSET_PAGES),
        notice="Power BI kits generated before this version page with OFFSET, which now sorts "
        "the whole table for every page: run `twmb powerbi` again and replace the TursoTable "
        "function and the table queries in your report",
    ),
)
#: the newest schema version this code writes
SCHEMA_VERSION = MIGRATIONS[-1].version
