"""The feature stage (``twmb features``): organise units, build graphs, panels, lags and ESDA.

Reads curated tables from the store and writes the feature tables back, all in one
transaction, so the stage can be re-run alone and a failure leaves the previous features.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely

from ..config import Config
from ..contracts import conform
from ..errors import InputDataError
from ..spatial import graphs as gb
from ..spatial import hexgrid
from ..spatial.graphs import UnitGraph, graph_edges
from ..spatial.units import Organised, SpatialSettings, organise
from ..store.duckdb_store import Store
from . import esda
from .panel import PanelSettings, build_panel

__all__ = ["FeatureReport", "build_features", "build_graphs", "run_esda"]

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


@dataclass
class FeatureReport:
    """What the feature stage produced."""

    years: tuple[int, int]
    tables: dict[str, int]
    units: dict[str, int]
    matching: dict[str, dict[str, int]]
    graphs: list[dict[str, Any]]
    moran: list[dict[str, Any]]
    hotspots: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def build_graphs(
    org: Organised, distance_band_m: float, *, distance_graph: str = "knn", k: int = 8
) -> dict[str, dict[str, UnitGraph]]:
    """The adjacency ("adj") and distance ("dist") graph of every unit type present.

    The distance graph of pipes and streets is KNN (``distance_graph="knn"``, ``k``
    neighbours: bounded size at any network density) or a distance band of
    ``distance_band_m`` (``"band"``: every unit within the radius; grows with density).
    """
    out: dict[str, dict[str, UnitGraph]] = {}

    def dist(ids: np.ndarray, x: np.ndarray, y: np.ndarray) -> UnitGraph:
        if distance_graph == "band":
            return gb.distance_band(ids, x, y, distance_band_m)
        return gb.knn(ids, x, y, k=k)

    cells = org.units["cell"]
    out["cell"] = {
        "adj": gb.h3_kring(cells["h3_index"].to_numpy().astype(np.uint64), k=1),
        "dist": gb.knn(
            cells["unit_id"].to_numpy(), cells["x"].to_numpy(), cells["y"].to_numpy(), k=8
        ),
    }
    nb = org.units["neighbourhood"]
    out["neighbourhood"] = {
        "adj": gb.contiguity(
            nb["unit_id"].to_numpy(),
            shapely.from_wkb(nb["geometry"].to_numpy(dtype=object)),
            tol_m=1.0,
        ),
        "dist": gb.knn(nb["unit_id"].to_numpy(), nb["x"].to_numpy(), nb["y"].to_numpy(), k=5),
    }
    if "street" in org.units:
        st = org.units["street"]
        out["street"] = {
            "adj": gb.shared_nodes(
                st["unit_id"].to_numpy(), st["from_node"].to_numpy(), st["to_node"].to_numpy()
            ),
            "dist": dist(st["unit_id"].to_numpy(), st["x"].to_numpy(), st["y"].to_numpy()),
        }
    if "pipe" in org.units:
        pu = org.units["pipe"]
        loc = pu["geometry"].notna().to_numpy()
        if loc.sum() >= 2:
            ids = pu.loc[loc, "unit_id"].to_numpy()
            out["pipe"] = {
                "adj": gb.line_network(
                    ids, shapely.from_wkb(pu.loc[loc, "geometry"].to_numpy(dtype=object))
                ),
                "dist": dist(ids, pu.loc[loc, "x"].to_numpy(), pu.loc[loc, "y"].to_numpy()),
            }
    return out


def _esda_graph(g: UnitGraph):
    """The libpysal Graph with string ids (H3 cells as hex strings)."""
    from libpysal.graph import Graph

    e = graph_edges(g, include_islands=True)
    ids = np.asarray(g.ids)
    if ids.dtype == np.uint64:
        e["focal"] = hexgrid.cell_str(e["focal"].to_numpy(dtype=np.uint64))
        e["neighbor"] = hexgrid.cell_str(e["neighbor"].to_numpy(dtype=np.uint64))
    return Graph.from_arrays(
        e["focal"].astype(str).to_numpy(),
        e["neighbor"].astype(str).to_numpy(),
        e["weight"].to_numpy(),
    )


def run_esda(
    panel: pd.DataFrame, g: UnitGraph, unit_type: str, *, permutations: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Global Moran per year (breaks and rate), LISA per unit-year on breaks, persistence."""
    p = panel[["unit_id", "year", "breaks"]].copy()
    exposure = panel["exposure_km"].to_numpy(dtype=float)
    area = panel["area_km2"].to_numpy(dtype=float)
    has_exposure = np.isfinite(exposure).any()
    size = exposure if has_exposure else area
    p["rate"] = np.divide(
        p["breaks"].to_numpy(dtype=float), size, out=np.zeros(len(p)), where=np.nan_to_num(size) > 0
    )
    graph = _esda_graph(g)
    glob = esda.global_moran_by_year(
        p, graph, value_cols=("breaks", "rate"), permutations=permutations, seed=seed
    )
    lisa = esda.local_moran_by_year(
        p, graph, value_col="breaks", permutations=permutations, seed=seed
    )
    pers = esda.hotspot_persistence(lisa)
    glob.insert(0, "unit_type", unit_type)
    lisa.insert(0, "unit_type", unit_type)
    lisa.insert(3, "variable", "breaks")
    pers.insert(0, "unit_type", unit_type)
    pers.insert(2, "variable", "breaks")
    return (
        conform(glob, "features/moran_global"),
        conform(lisa, "features/lisa"),
        conform(pers, "features/hotspot_persistence"),
    )


def _graph_summary(unit_type: str, name: str, g: UnitGraph) -> dict[str, Any]:
    s = g.summary()
    isl = [
        str(i)
        for i in (
            hexgrid.cell_str(g.islands) if np.asarray(g.islands).dtype == np.uint64 else g.islands
        )
    ]
    return {
        "unit_type": unit_type,
        "graph": name,
        "builder": f"{g.kind}({', '.join(f'{k}={v}' for k, v in sorted(g.params.items()))})",
        "n": s["n"],
        "n_edges": s["n_edges"],
        "mean_neighbours": s["mean_neighbours"],
        "min_neighbours": s["min_neighbours"],
        "max_neighbours": s["max_neighbours"],
        "n_islands": s["n_islands"],
        "n_components": s["n_components"],
        "islands": ";".join(isl[:50]),
    }


def _study_years(cfg: Config, breaks: pd.DataFrame) -> tuple[int, int]:
    if breaks.empty:
        raise InputDataError("the store has no accepted breaks; ingest a breaks source first")
    y0 = cfg.features.study_start or int(breaks["year"].min())
    y1 = cfg.features.study_end or int(breaks["year"].max())
    return int(y0), int(y1)


def build_features(cfg: Config, *, progress: Progress | None = None) -> FeatureReport:
    """Run the feature stage on the store of ``cfg`` and write its tables."""
    timings: dict[str, float] = {}
    peak: dict[str, float] = {}
    t0 = time.perf_counter()

    def tick(name: str, i: int, total: int = 6) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[name] = round(now - t0, 3)
        peak[name] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        t0 = now
        if progress:
            progress(f"features: {name}", i, total)

    fc = cfg.features
    settings = SpatialSettings(
        h3_resolution=cfg.h3_resolution,
        parent_resolution=fc.parent_resolution,
        pipe_tolerance_m=fc.pipe_tolerance_m,
        street_tolerance_m=fc.street_tolerance_m,
        street_half_width_m=fc.street_half_width_m,
    )
    with Store(cfg.store_path) as store:
        for t in ("breaks", "neighbourhoods", "service_area"):
            if not store.has_table(t) or not store.count(t):
                raise InputDataError(
                    f"the store {cfg.store_path} has no {t}; run `twmb ingest` first"
                )
        breaks = store.read("breaks")
        nb = store.read("neighbourhoods")
        sa_df = store.read("service_area")
        sa_row = (
            sa_df[sa_df["source_id"] == cfg.service_area_source]
            if cfg.service_area_source
            else sa_df
        )
        area = shapely.from_wkb((sa_row if len(sa_row) else sa_df)["geometry"].iloc[0])
        pipes = store.read("pipes") if store.has_table("pipes") and store.count("pipes") else None
        streets = (
            store.read("street_segments")
            if store.has_table("street_segments") and store.count("street_segments")
            else None
        )
    if pipes is not None:
        pipes = pipes.assign(geometry=pipes["geometry"])
    tick("read", 0)
    y0, y1 = _study_years(cfg, breaks)
    org = organise(breaks, nb, area, pipes=pipes, streets=streets, settings=settings)
    warnings = list(org.warnings)
    if pipes is None:
        warnings.append(
            "no pipes in the store: pipe units, pipe exposure and break-to-pipe matching are skipped"
        )
    if streets is None:
        warnings.append("no street segments in the store: street units are skipped")
    tick("organise", 1)
    graphs = build_graphs(
        org, fc.distance_band_m, distance_graph=fc.distance_graph, k=fc.distance_knn
    )
    for ut, gs in graphs.items():
        for name, g in gs.items():
            if g.islands.size:
                warnings.append(
                    f"{ut} graph {name!r} ({g.kind}): {g.islands.size} islands (units without neighbours); their lags are null"
                )
    tick("graphs", 2)
    ps = PanelSettings(
        start_year=y0, end_year=y1, decay_tau=fc.decay_tau, near_radius_m=fc.near_radius_m
    )
    pu = org.units.get("pipe")
    apportion = {ut: org.apportion(ut) for ut in ("cell", "street", "neighbourhood")}
    b_in = breaks[(breaks["year"] >= y0) & (breaks["year"] <= y1)]
    counts: dict[str, int] = {}
    # One transaction for every feature table; each panel is written as soon as it is built
    # and then freed, so memory holds one unit type's panel at a time.
    with Store(cfg.store_path) as store, store.transaction():
        store.clear("panel")
        nbhd = build_panel(
            "neighbourhood",
            org.units["neighbourhood"],
            org.links[org.links["unit_type"] == "neighbourhood"],
            breaks,
            ps,
            graphs=graphs.get("neighbourhood"),
            pipes=pu,
            pipe_units_of=apportion["neighbourhood"],
        )
        nbhd_rate = nbhd[["unit_id", "year", "nbhd_rate_last5"]]
        cell_panel = None
        n_panel = len(nbhd)
        for ut in ("cell", "street", "pipe"):
            if ut not in org.units:
                continue
            cell_parts: list[pd.DataFrame] = []

            def sink(
                chunk: pd.DataFrame, ut: str = ut, keep: list[pd.DataFrame] = cell_parts
            ) -> None:
                nonlocal n_panel
                n_panel += len(chunk)
                store.insert("panel", chunk)
                if ut == "cell":
                    keep.append(chunk[["unit_id", "year", "breaks", "exposure_km", "area_km2"]])

            build_panel(
                ut,
                org.units[ut],
                org.links[org.links["unit_type"] == ut],
                b_in if ut in ("pipe", "street") else breaks,
                ps,
                graphs=graphs.get(ut),
                pipes=pu,
                pipe_units_of=apportion.get(ut),
                nbhd_rate=nbhd_rate,
                sink=sink,
            )
            if ut == "cell":
                cell_panel = pd.concat(cell_parts, ignore_index=True)
        store.insert("panel", nbhd)
        del nbhd
        tick("panel", 3)
        glob, lisa, pers = run_esda(
            cell_panel,
            graphs["cell"]["adj"],
            "cell",
            permutations=fc.esda_permutations,
            seed=fc.seed,
        )
        tick("esda", 4)
        tables = _feature_tables(org, graphs, glob, lisa, pers)
        counts = {k: len(v) for k, v in tables.items()}
        counts["panel"] = n_panel
        for name, df in tables.items():
            store.clear(name)
            store.insert(name, df)
    tick("store", 5)
    hot = pers["class"].value_counts()
    report = FeatureReport(
        years=(y0, y1),
        tables=counts,
        units={k: len(v) for k, v in org.units.items()},
        matching=org.match_summary(),
        graphs=[_graph_summary(ut, n, g) for ut, gs in graphs.items() for n, g in gs.items()],
        moran=glob[glob["variable"] == "breaks"][["year", "moran_i", "p_sim"]].to_dict("records"),
        hotspots={str(k): int(v) for k, v in sorted(hot.items())},
        timings=timings,
        peak_rss_mb=peak,
        warnings=warnings,
    )
    for w in warnings:
        log.warning("%s", w)
    return report


def _feature_tables(
    org: Organised,
    graphs: dict[str, dict[str, UnitGraph]],
    glob: pd.DataFrame,
    lisa: pd.DataFrame,
    pers: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    tables: dict[str, pd.DataFrame] = {}
    for ut, name in (
        ("pipe", "unit_pipe"),
        ("street", "unit_street"),
        ("cell", "unit_cell"),
        ("neighbourhood", "unit_neighbourhood"),
    ):
        if ut in org.units:
            tables[name] = conform(org.units[ut], f"features/{name}")
    tables["break_links"] = conform(org.links, "features/break_links")
    tables["pipe_cells"] = conform(org.pipe_cells, "features/pipe_cells")
    tables["pipe_streets"] = conform(org.pipe_streets, "features/pipe_streets")
    summaries, edges = [], []
    for ut, gs in graphs.items():
        for name, g in gs.items():
            summaries.append(_graph_summary(ut, name, g))
            if ut in ("pipe", "street") and name == "dist":
                continue  # KNN of centroids: cheap to rebuild, millions of rows to store
            e = graph_edges(g)
            if np.asarray(g.ids).dtype == np.uint64:
                e["focal"] = hexgrid.cell_str(e["focal"].to_numpy(dtype=np.uint64))
                e["neighbor"] = hexgrid.cell_str(e["neighbor"].to_numpy(dtype=np.uint64))
            e.insert(0, "unit_type", ut)
            e.insert(1, "graph", name)
            edges.append(e)
    tables["graph_summary"] = conform(pd.DataFrame(summaries), "features/graph_summary")
    tables["graph_edges"] = conform(pd.concat(edges, ignore_index=True), "features/graph_edges")
    tables["moran_global"] = glob
    tables["lisa"] = lisa
    tables["hotspot_persistence"] = pers
    return tables
