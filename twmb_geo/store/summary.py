"""Headline figures read from the store: reconciliation, breaks per year, top neighbourhoods,
weather coverage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import shapely

from .duckdb_store import Store

__all__ = ["summarize"]


def summarize(store: Store, *, top: int = 10) -> dict[str, Any]:
    """Headline figures from the store: breaks per year and the top neighbourhoods by rate."""
    out: dict[str, Any] = {}
    rec = _reconciliation(store)
    if rec:
        out["reconciliation"] = rec
    if store.has_table("breaks") and store.count("breaks"):
        per_year = store.query("SELECT year, count(*) AS n FROM breaks GROUP BY year ORDER BY year")
        out["breaks_per_year"] = {
            int(y): int(n) for y, n in zip(per_year["year"], per_year["n"], strict=True)
        }
        out["breaks_total"] = int(per_year["n"].sum())
        if store.has_table("neighbourhoods") and store.count("neighbourhoods"):
            out["top_neighbourhoods"] = _top_neighbourhoods(store, top, len(per_year))
    if store.has_table("weather_monthly") and store.count("weather_monthly"):
        w = store.query(
            "SELECT min(year) AS y0, max(year) AS y1, sum(CASE WHEN coverage_ok THEN 1 ELSE 0 END) AS ok, "
            "count(*) AS months FROM weather_monthly"
        )
        out["weather"] = {k: int(w[k].iloc[0]) for k in w.columns}
    return out


def _reconciliation(store: Store) -> dict[str, dict[str, int]]:
    """Per source, from its latest ingest: rows in = accepted + quarantined + excluded."""
    if not (store.has_table("run_inputs") and store.has_table("runs")):
        return {}
    df = store.query(
        "SELECT source_id, rows_in, accepted, quarantined, excluded FROM ("
        " SELECT i.*, row_number() OVER (PARTITION BY i.source_id"
        "  ORDER BY r.started_at DESC, i.run_id DESC, i.file) AS k"
        " FROM run_inputs i JOIN runs r USING (run_id)) WHERE k = 1 ORDER BY source_id"
    )
    cols = ("rows_in", "accepted", "quarantined", "excluded")
    return {str(r["source_id"]): {c: int(r[c]) for c in cols} for _, r in df.iterrows()}


def _top_neighbourhoods(store: Store, top: int, n_years: int) -> list[dict[str, Any]]:
    nb = store.read("neighbourhoods")
    br = store.query("SELECT x, y FROM breaks")
    polys = shapely.from_wkb(nb["geometry"].to_numpy())
    pts = shapely.points(br["x"].to_numpy(), br["y"].to_numpy())
    tree = shapely.STRtree(polys)
    pt_idx, poly_idx = tree.query(pts, predicate="intersects")
    # a point on a shared edge counts once, for the first polygon in code order
    first = pd.DataFrame({"p": pt_idx, "n": poly_idx}).drop_duplicates("p")
    counts = np.bincount(first["n"].to_numpy(), minlength=len(nb))
    df = pd.DataFrame(
        {
            "area_code": nb["area_code"],
            "area_name": nb["area_name"],
            "breaks": counts,
            "breaks_per_year": counts / max(n_years, 1),
            "area_km2": nb["area_km2"],
        }
    )
    df["breaks_per_km2_per_year"] = df["breaks_per_year"] / df["area_km2"]
    df = df.sort_values(
        ["breaks_per_year", "area_code"], ascending=[False, True], kind="stable"
    ).head(top)
    return [
        {
            "area_code": r.area_code,
            "area_name": r.area_name,
            "breaks": int(r.breaks),
            "breaks_per_year": round(float(r.breaks_per_year), 1),
            "breaks_per_km2_per_year": round(float(r.breaks_per_km2_per_year), 2),
        }
        for r in df.itertuples()
    ]
