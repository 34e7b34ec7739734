"""The feature stage on the real Toronto breaks: cells, neighbourhoods, panel, Moran, LISA."""

from __future__ import annotations

import numpy as np

import twmb_geo as tw
from twmb_geo.contracts import validate_frame
from twmb_geo.store.duckdb_store import TABLES


def test_toronto_cells_and_neighbourhoods(bundled_run, bundled_cfg) -> None:
    f = bundled_run["features"]
    assert f["years"] == [1990, 2016] or tuple(f["years"]) == (1990, 2016)
    assert f["units"] == {"cell": 6024, "neighbourhood": 140}
    assert f["matching"]["cell"] == {"matched": 35_439}
    assert f["matching"]["neighbourhood"] == {"matched": 35_439}
    with tw.open_store(bundled_cfg.store_path, read_only=True) as s:
        for t in (
            "unit_cell",
            "unit_neighbourhood",
            "break_links",
            "panel",
            "graph_summary",
            "graph_edges",
            "moran_global",
            "lisa",
            "hotspot_persistence",
        ):
            validate_frame(s.read(t), TABLES[t])
        panel = s.query(
            "SELECT unit_type, count(*) AS n, sum(breaks) AS b FROM panel GROUP BY 1 ORDER BY 1"
        )
        lisa = s.query(
            "SELECT count(DISTINCT year) AS years, count(DISTINCT unit_id) AS cells FROM lisa"
        )
        moran = s.read("moran_global")
        cover = s.read("unit_cell")
    rows = dict(zip(panel["unit_type"], panel["n"], strict=True))
    assert rows == {"cell": 6024 * 27, "neighbourhood": 140 * 27}
    assert dict(zip(panel["unit_type"], panel["b"], strict=True)) == {
        "cell": 35_439,
        "neighbourhood": 35_439,
    }
    assert int(lisa["years"].iloc[0]) == 27 and int(lisa["cells"].iloc[0]) == 6024
    # breaks cluster: Moran's I is positive and significant in every year
    m = moran[moran["variable"] == "breaks"]
    assert len(m) == 27 and (m["moran_i"] > 0.05).all() and (m["p_sim"] <= 0.05).all()
    # the cover includes edge cells whose centre is outside the city (5,749 have their centre inside)
    assert (cover["resolution"] == 9).all() and cover["unit_id"].is_unique
    import h3

    true_km2 = np.array([h3.cell_area(c, unit="km^2") for c in cover["unit_id"].head(50)])
    assert np.allclose(
        cover["area_km2"].head(50), true_km2, rtol=5e-3
    )  # planar MTM area ~ true area (scale < 0.5 %)
