"""Slicer checks for the star schema: filter every fact on one member of a dimension, the
way a Power BI slicer does through the fact's key column, and compare the totals with the
same totals computed by SQL on the store (an independent path: joins on the unit tables
instead of the star's key mapping)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from twmb_geo.core.units import UNIT_TYPES
from twmb_geo.publish.star import NOT_APPLICABLE_KEY, UNKNOWN_KEY
from twmb_geo.store.duckdb_store import Store

#: unit fact -> (store table, measure column or None to count rows, extra SQL filter)
UNIT_FACTS: dict[str, tuple[str, str | None, str]] = {
    "fact_unit_year": ("panel", "breaks", ""),
    "fact_risk_score": ("risk_scores", "expected_breaks", ""),
    "fact_hotspot": ("lisa", None, ""),
}
#: the star column each measure is read from
STAR_MEASURE = {"breaks": "breaks", "expected_breaks": "expected_breaks"}


def _total(df: pd.DataFrame, measure: str | None) -> float:
    return float(len(df)) if measure is None else float(pd.to_numeric(df[measure]).sum())


def _store_total(store: Store, sql: str, params: list[object]) -> float:
    return float(store.query(sql, params).iloc[0, 0] or 0.0)


def unit_fact_expected(
    store: Store, fact: str, unit_type: str, dim_type: str, natural: str
) -> float | None:
    """A unit fact's total over the ``unit_type`` rows that lie in unit ``natural`` of
    ``dim_type`` (None: that dimension does not apply to ``unit_type``)."""
    table, measure, _ = UNIT_FACTS[fact]
    agg = "count(*)" if measure is None else f"sum(f.{measure})"
    spec = UNIT_TYPES[unit_type]
    if unit_type == dim_type:
        join, cond = "", "f.unit_id = ?"
    else:
        col = dict(spec.located_in).get(dim_type)
        if col is None:
            return None
        join, cond = f"JOIN {spec.table} u ON u.unit_id = f.unit_id", f"u.{col} = ?"
    current = " AND f.is_current" if table == "risk_scores" else ""
    sql = f"SELECT {agg} FROM {table} f {join} WHERE f.unit_type = ? AND {cond}{current}"
    return _store_total(store, sql, [unit_type, natural])


def break_expected(store: Store, dim_type: str, natural: str) -> float:
    """Breaks linked to unit ``natural`` of ``dim_type``."""
    return _store_total(
        store,
        "SELECT count(DISTINCT break_id) FROM break_links "
        "WHERE status = 'matched' AND unit_type = ? AND unit_id = ?",
        [dim_type, natural],
    )


def check_spatial_slicer(
    star: Mapping[str, pd.DataFrame], store: Store, dim_type: str, members: list[str]
) -> list[str]:
    """Problems (empty when none) of slicing every fact on each natural id in ``members``."""
    spec = UNIT_TYPES[dim_type]
    dim = star[spec.star_dimension]
    key_of = dict(zip(dim[spec.star_natural_key], dim[spec.star_key], strict=True))
    problems = []
    for natural in members:
        key = int(key_of[natural])
        fb = star["fact_break"]
        got = float(len(fb[fb[spec.star_key] == key]))
        want = break_expected(store, dim_type, natural)
        if got != want:
            problems.append(f"fact_break {dim_type}={natural}: {got} != {want}")
        for fact, (_, measure, _) in UNIT_FACTS.items():
            df = star[fact]
            if fact == "fact_risk_score":
                df = df[df["is_current"].astype(bool)]
            sliced = df[df[spec.star_key] == key]
            for unit_type in UNIT_TYPES:
                want_u = unit_fact_expected(store, fact, unit_type, dim_type, natural)
                rows = sliced[sliced["unit_type"] == unit_type]
                if want_u is None:  # not applicable: no row of this type may carry the member
                    if len(rows):
                        problems.append(f"{fact} {unit_type} rows in {dim_type}={natural}")
                    continue
                got_u = _total(rows, measure and STAR_MEASURE[measure])
                if abs(got_u - want_u) > 1e-6 * max(1.0, abs(want_u)):
                    problems.append(
                        f"{fact} {unit_type} in {dim_type}={natural}: {got_u} != {want_u}"
                    )
    return problems


def check_partition(star: Mapping[str, pd.DataFrame]) -> list[str]:
    """Every fact row carries exactly one member of each of its dimensions (never null, no
    key outside the dimension), and no unit fact row is "not applicable" for its own type."""
    problems = []
    for fact in ("fact_break", *UNIT_FACTS):
        df = star[fact]
        for spec in UNIT_TYPES.values():
            keys = df[spec.star_key]
            valid = set(star[spec.star_dimension][spec.star_key])
            if keys.isna().any() or not set(keys.unique()) <= valid:
                problems.append(f"{fact}.{spec.star_key}: null or dangling keys")
            if fact != "fact_break":
                own = df["unit_type"] == spec.name
                bad = own & keys.isin([UNKNOWN_KEY, NOT_APPLICABLE_KEY])
                if bad.any():
                    problems.append(f"{fact}: {int(bad.sum())} {spec.name} rows without own key")
        year = df["year_key"]
        if not set(year.unique()) <= set(star["dim_year"]["year_key"]):
            problems.append(f"{fact}.year_key: keys outside dim_year")
    return problems


def check_year_slicer(
    star: Mapping[str, pd.DataFrame], store: Store, years: list[int]
) -> list[str]:
    """Every fact with a year, sliced on each of ``years``, against the store."""
    problems = []

    def star_sum(fact: str, y: int, measure: str | None) -> float:
        df = star[fact]
        return _total(df[df["year_key"] == y], measure)

    for y in years:
        pairs = {
            "fact_break": (
                star_sum("fact_break", y, None),
                _store_total(store, "SELECT count(*) FROM breaks WHERE year = ?", [y]),
            ),
            "fact_unit_year": (
                star_sum("fact_unit_year", y, "breaks"),
                _store_total(store, "SELECT sum(breaks) FROM panel WHERE year = ?", [y]),
            ),
            "fact_hotspot": (
                star_sum("fact_hotspot", y, None),
                _store_total(store, "SELECT count(*) FROM lisa WHERE year = ?", [y]),
            ),
            "fact_risk_score": (
                star_sum("fact_risk_score", y, "expected_breaks"),
                _store_total(
                    store, "SELECT sum(expected_breaks) FROM risk_scores WHERE target_year = ?", [y]
                ),
            ),
            "fact_cv_metric": (
                star_sum("fact_cv_metric", y, None),
                _store_total(store, "SELECT count(*) FROM cv_metrics WHERE test_year + 1 = ?", [y]),
            ),
        }
        for fact, (got, want) in pairs.items():
            if abs(got - want) > 1e-6 * max(1.0, abs(want)):
                problems.append(f"{fact} year {y}: {got} != {want}")
    return problems
