"""The feature stage (``twmb features``): organise units, build graphs, panels, lags and ESDA.

Reads curated tables from the store and writes the feature tables back, all in one
transaction, so the stage can be re-run alone and a failure leaves the previous features.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely
from libpysal.graph import Graph

from ..config import Config, FeatureConfig, GraphConfig
from ..contracts import conform, conform_chunks, load_schema
from ..core.cluster import open_client
from ..core.types import Progress
from ..core.units import UNIT_TYPES
from ..errors import InputDataError, StoreError
from ..spatial import graphs as gb
from ..spatial import hexgrid
from ..spatial import partitioned_graphs as pgb
from ..spatial.units import Organised, SpatialSettings, organise
from ..store.duckdb_store import Store
from ..store.project import in_project_crs
from . import esda
from .coverage import last_year_coverage
from .panel import PANEL_UNIT_COLUMNS, PanelSettings, build_panel, panel_chunks
from .partitioned import (
    build_panel_partitioned,
    is_local_folder,
    new_panel_folder,
    read_panel_parts,
    remove_panel_folders,
    write_panel_part,
)

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "FeatureReport",
    "GraphSet",
    "GraphTasks",
    "build_features",
    "build_graphs",
    "graph_builders",
    "run_esda",
]

log = logging.getLogger(__name__)


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
    #: the partitioned work on a cluster (empty: in this process): scheduler and, for the
    #: break matching, resolution, partitions, largest (breaks), pipes_in_largest_task,
    #: halo_pipes; ``street_links`` and ``pipe_streets``: resolution, partitions, largest
    #: (breaks, pipes), rows_in_largest_task, halo_rows; ``panel``: per unit type
    #: resolution, partitions, largest (home units), largest_task, halo_units; ``graphs``:
    #: the same per unit type and graph built on the cluster
    partitions: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


GraphSet = dict[str, dict[str, Graph]]

#: the unit type whose panel rate every other unit reads as its neighbourhood rate
AREA_UNIT_TYPE = "neighbourhood"
#: the unit type Moran's I, LISA and hot-spot persistence are computed on
ESDA_UNIT_TYPE = "cell"


def _call(kind: str, **params: Any) -> str:
    return f"{kind}({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})"


def _dist_label(fc: FeatureConfig) -> str:
    if fc.distance_graph == "band":
        return _call("distance_band", threshold_m=float(fc.distance_band_m), weights="binary")
    return _call("knn", k=fc.distance_knn, symmetric=False)


@dataclass
class GraphTasks:
    """The graphs that read geometry (the pipes' line network) built partition by
    partition (at most ``target_rows`` units each) as tasks on ``client``'s cluster;
    ``report`` is filled per unit type and graph with what the partitioning did."""

    client: Client
    target_rows: int
    report: dict[str, dict[str, Any]] = field(default_factory=dict)

    def note(self, unit_type: str, name: str) -> dict[str, Any]:
        """The report of one graph, to be filled by its builder."""
        return self.report.setdefault(unit_type, {}).setdefault(name, {})


def _dist(fc: FeatureConfig, ids: np.ndarray, x: np.ndarray, y: np.ndarray) -> Graph:
    if fc.distance_graph == "band":
        return gb.distance_band(ids, x, y, fc.distance_band_m)
    return gb.knn(ids, x, y, k=fc.distance_knn)


def _cell_graphs(
    units: pd.DataFrame, gc: GraphConfig, fc: FeatureConfig, tasks: GraphTasks | None = None
) -> dict[str, Graph]:
    kring = gb.h3_kring(units["h3_index"].to_numpy().astype(np.uint64), k=gc.cell_order)
    ids = units["unit_id"].to_numpy()
    return {
        "adj": gb.relabel(kring, hexgrid.cell_str(np.asarray(kring.unique_ids, dtype=np.uint64))),
        "dist": gb.knn(ids, units["x"].to_numpy(), units["y"].to_numpy(), k=gc.cell_knn),
    }


def _neighbourhood_graphs(
    units: pd.DataFrame, gc: GraphConfig, fc: FeatureConfig, tasks: GraphTasks | None = None
) -> dict[str, Graph]:
    ids = units["unit_id"].to_numpy()
    return {
        "adj": gb.contiguity(
            ids,
            shapely.from_wkb(units["geometry"].to_numpy(dtype=object)),
            tol_m=gc.neighbourhood_gap_m,
        ),
        "dist": gb.knn(ids, units["x"].to_numpy(), units["y"].to_numpy(), k=gc.neighbourhood_knn),
    }


def _street_graphs(
    units: pd.DataFrame, gc: GraphConfig, fc: FeatureConfig, tasks: GraphTasks | None = None
) -> dict[str, Graph]:
    ids = units["unit_id"].to_numpy()
    return {
        "adj": gb.shared_nodes(ids, units["from_node"].to_numpy(), units["to_node"].to_numpy()),
        "dist": _dist(fc, ids, units["x"].to_numpy(), units["y"].to_numpy()),
    }


def _pipe_graphs(
    units: pd.DataFrame, gc: GraphConfig, fc: FeatureConfig, tasks: GraphTasks | None = None
) -> dict[str, Graph] | None:
    loc = units["geometry"].notna().to_numpy()
    if loc.sum() < 2:
        return None
    ids = units.loc[loc, "unit_id"].to_numpy()
    x, y = units.loc[loc, "x"].to_numpy(), units.loc[loc, "y"].to_numpy()
    geoms = units.loc[loc, "geometry"].to_numpy(dtype=object)
    if tasks is not None:
        adj = pgb.line_network_partitioned(
            ids,
            geoms,
            x,
            y,
            gc.pipe_end_tolerance_m,
            t_junctions=gc.pipe_t_junctions,
            client=tasks.client,
            target_rows=tasks.target_rows,
            report=tasks.note("pipe", "adj"),
        )
    else:
        adj = gb.line_network(
            ids,
            shapely.from_wkb(geoms),
            tol_m=gc.pipe_end_tolerance_m,
            t_junctions=gc.pipe_t_junctions,
        )
    return {"adj": adj, "dist": _dist(fc, ids, x, y)}


@dataclass(frozen=True)
class GraphRecipe:
    """The "adj" and "dist" graphs of one unit type: how they are built and described."""

    build: Callable[
        [pd.DataFrame, GraphConfig, FeatureConfig, GraphTasks | None], dict[str, Graph] | None
    ]
    describe: Callable[[GraphConfig, FeatureConfig], dict[str, str]]


#: unit type -> its graphs (a unit type without a recipe has no graphs and no spatial lags)
GRAPH_RECIPES: dict[str, GraphRecipe] = {
    "pipe": GraphRecipe(
        _pipe_graphs,
        lambda gc, fc: {
            "adj": _call(
                "line_network", tol_m=gc.pipe_end_tolerance_m, t_junctions=gc.pipe_t_junctions
            ),
            "dist": _dist_label(fc),
        },
    ),
    "street": GraphRecipe(
        _street_graphs, lambda gc, fc: {"adj": _call("shared_nodes"), "dist": _dist_label(fc)}
    ),
    "cell": GraphRecipe(
        _cell_graphs,
        lambda gc, fc: {
            "adj": _call("h3_kring", k=gc.cell_order),
            "dist": _call("knn", k=gc.cell_knn, symmetric=False),
        },
    ),
    "neighbourhood": GraphRecipe(
        _neighbourhood_graphs,
        lambda gc, fc: {
            "adj": _call("contiguity", tol_m=gc.neighbourhood_gap_m, rule="queen"),
            "dist": _call("knn", k=gc.neighbourhood_knn, symmetric=False),
        },
    ),
}


def graph_builders(graphs: GraphConfig, features: FeatureConfig) -> dict[str, dict[str, str]]:
    """The builder, with its parameters, of the "adj" and "dist" graph of every unit type."""
    return {ut: recipe.describe(graphs, features) for ut, recipe in GRAPH_RECIPES.items()}


def build_graphs(
    org: Organised,
    graphs: GraphConfig | None = None,
    features: FeatureConfig | None = None,
    *,
    tasks: GraphTasks | None = None,
) -> GraphSet:
    """The adjacency ("adj") and distance ("dist") graph of every unit type present.

    Every graph is a row-standardised ``libpysal.graph.Graph`` indexed by the units'
    ``unit_id`` (H3 cells as hex strings), built by the unit type's :data:`GRAPH_RECIPES`
    entry. The settings come from ``graphs`` (:class:`~twmb_geo.config.GraphConfig`) and,
    for the distance graph of pipes and streets, ``features``: KNN
    (``distance_graph="knn"``, ``distance_knn`` neighbours: bounded size at any network
    density) or a distance band of ``distance_band_m`` (``"band"``: every unit within the
    radius; grows with density). With ``tasks``, the pipes' line network is built
    partition by partition on its cluster (:mod:`~twmb_geo.spatial.partitioned_graphs`):
    the same graph.
    """
    gc = graphs or GraphConfig()
    fc = features or FeatureConfig()
    out: GraphSet = {}
    for ut in UNIT_TYPES:
        recipe = GRAPH_RECIPES.get(ut)
        if recipe is None or ut not in org.units:
            continue
        built = recipe.build(org.units[ut], gc, fc, tasks)
        if built is not None:
            out[ut] = built
    return out


def run_esda(
    panel: pd.DataFrame,
    graph: Graph,
    unit_type: str,
    *,
    permutations: int,
    seed: int,
    block_units: int | None = None,
    client: Client | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Global Moran per year (breaks and rate), LISA per unit-year on breaks, persistence.

    ``graph`` is indexed by the panel's ``unit_id`` values (islands as isolates). Its
    weights reach esda as original weights, which esda row-standardises itself
    (``transformation="r"``); both tests are two-sided. With a client, the permutations
    run as tasks on its cluster (LISA's in blocks of at most ``block_units`` units), with
    the same results.
    """
    p = panel[["unit_id", "year", "breaks"]].copy()
    exposure = panel["exposure_km"].to_numpy(dtype=float)
    area = panel["area_km2"].to_numpy(dtype=float)
    has_exposure = np.isfinite(exposure).any()
    size = exposure if has_exposure else area
    p["rate"] = np.divide(
        p["breaks"].to_numpy(dtype=float), size, out=np.zeros(len(p)), where=np.nan_to_num(size) > 0
    )
    weights = Graph(gb.adjacency_of(graph), transformation="O", is_sorted=True)
    glob = esda.global_moran_by_year(
        p,
        weights,
        value_cols=("breaks", "rate"),
        permutations=permutations,
        seed=seed,
        alternative="two-sided",
        client=client,
    )
    lisa = esda.local_moran_by_year(
        p,
        weights,
        value_col="breaks",
        permutations=permutations,
        seed=seed,
        alternative="two-sided",
        block_units=block_units,
        client=client,
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


def _graph_summary(unit_type: str, name: str, g: Graph, builder: str) -> dict[str, Any]:
    s = gb.graph_summary(g)
    return {
        "unit_type": unit_type,
        "graph": name,
        "builder": builder,
        "n": s["n"],
        "n_edges": s["n_edges"],
        "mean_neighbours": s["mean_neighbours"],
        "min_neighbours": s["min_neighbours"],
        "max_neighbours": s["max_neighbours"],
        "n_islands": s["n_islands"],
        "n_components": s["n_components"],
        "islands": ";".join(str(i) for i in g.isolates[:50]),
    }


def _study_years(cfg: Config, breaks: pd.DataFrame) -> tuple[int, int, list[str]]:
    """First and last study year, and notes on a partial last year.

    Without ``study_end``, the last year of the record ends the study unless it is a
    partial year (see :mod:`.coverage`); then the year before does, unless
    ``[features] partial_year = "keep"``.
    """
    if breaks.empty:
        raise InputDataError("the store has no accepted breaks; ingest a breaks source first")
    fc = cfg.features
    y0 = fc.study_start or int(breaks["year"].min())
    y1 = fc.study_end or int(breaks["year"].max())
    notes: list[str] = []
    if fc.study_end is None:
        cov = last_year_coverage(
            breaks["break_date"],
            min_coverage=fc.partial_year_min_coverage,
            break_ratio=fc.partial_year_break_ratio,
        )
        if cov is not None and cov.partial and cov.year == y1:
            keep = fc.partial_year == "keep" or y1 - 1 < y0
            notes.append(cov.note(kept=keep))
            if not keep:
                y1 -= 1
    return int(y0), int(y1), notes


def _service_area(cfg: Config, sa_df: pd.DataFrame) -> Any:
    """The unbuffered service-area polygon the config asks for (None: none)."""
    if cfg.service_area == "none" or sa_df.empty:
        return None
    boundary = cfg.boundary_source()
    if cfg.service_area == "auto" and boundary:
        row = sa_df[sa_df["source_id"] == boundary]
    else:
        row = sa_df[sa_df["method"] != "boundary"]
    if row.empty:
        return None
    return shapely.from_wkb(row["geometry"].iloc[0])


def _read_inputs(
    cfg: Config,
) -> tuple[pd.DataFrame, pd.DataFrame | None, Any, pd.DataFrame | None, pd.DataFrame | None]:
    """Breaks, neighbourhoods, the service-area polygon, pipes and streets from the store.

    Neighbourhoods and the service area are None when the store has none.
    """
    with Store(cfg.store_path) as store:
        if not store.has_table("breaks") or not store.count("breaks"):
            raise InputDataError(
                f"the store {cfg.store_path} has no breaks; run `twmb ingest` first"
            )

        def table(name: str) -> pd.DataFrame | None:
            return store.read(name) if store.has_table(name) and store.count(name) else None

        breaks = store.read("breaks")
        nb = table("neighbourhoods")
        sa_df = table("service_area")
        area = _service_area(cfg, sa_df) if sa_df is not None else None
        boundary = cfg.boundary_source()
        if area is None and cfg.service_area == "auto" and boundary:
            raise InputDataError(
                f"the store {cfg.store_path} has no service area of source {boundary!r}; "
                "run `twmb ingest` first"
            )
        pipes = table("pipes")
        streets = table("street_segments")
    if pipes is not None:
        pipes = pipes.assign(geometry=pipes["geometry"])
    return breaks, nb, area, pipes, streets


@dataclass
class _PanelPartitions:
    """Where and how the panel runs partition by partition (on a cluster): the run's own
    panel folder under ``folder`` (:func:`new_panel_folder`)."""

    client: Client
    folder: str
    target_rows: int
    report: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_folder: str = ""

    def __post_init__(self) -> None:
        self.run_folder = new_panel_folder(self.folder)

    @property
    def in_place(self) -> bool:
        """Whether the store reads the panel files where the workers wrote them (a local
        folder; DuckDB here cannot read object-store URLs, so their rows are copied)."""
        return is_local_folder(self.folder)


_ESDA_COLUMNS = ["unit_id", "year", "breaks", "exposure_km", "area_km2"]


def _write_panels(
    store: Store,
    org: Organised,
    graphs: GraphSet,
    breaks: pd.DataFrame,
    b_in: pd.DataFrame,
    ps: PanelSettings,
    partitioned: _PanelPartitions | None = None,
) -> tuple[pd.DataFrame | None, int]:
    """Build and store every unit type's panel; return the cell columns ESDA needs and rows.

    With ``partitioned``, every unit type but the (few) neighbourhoods is built partition by
    partition on the cluster and written as Parquet by the workers; the store's ``panel``
    is then a view over those files and the neighbourhoods' (read in place: the rows are
    not copied), or, for a partition store at a URL, the rows are streamed into the store.
    """
    files: list[str] = []
    pu = org.units.get("pipe")
    apportion = {ut: org.apportion(ut) for ut in org.units if ut != "pipe"}
    store.clear("panel")
    nbhd = None
    nbhd_rate = None
    n_panel = 0
    if AREA_UNIT_TYPE in org.units:
        nbhd = build_panel(
            AREA_UNIT_TYPE,
            org.units[AREA_UNIT_TYPE],
            org.links[org.links["unit_type"] == AREA_UNIT_TYPE],
            breaks,
            ps,
            graphs=graphs.get(AREA_UNIT_TYPE),
            pipes=pu,
            pipe_units_of=apportion[AREA_UNIT_TYPE],
        )
        nbhd_rate = nbhd[["unit_id", "year", "nbhd_rate_last5"]]
        n_panel = len(nbhd)
    cell_panel = None
    for ut in (u for u in UNIT_TYPES if u != AREA_UNIT_TYPE):
        if ut not in org.units:
            continue
        args = (
            ut,
            org.units[ut],
            org.links[org.links["unit_type"] == ut],
            b_in if UNIT_TYPES[ut].linear else breaks,
            ps,
        )
        kw: dict[str, Any] = {
            "graphs": graphs.get(ut),
            "pipes": pu,
            "pipe_units_of": apportion.get(ut),
            "nbhd_rate": nbhd_rate,
        }
        if partitioned is not None:
            rep: dict[str, Any] = {}
            parts = build_panel_partitioned(
                *args,
                partitioned.run_folder,
                client=partitioned.client,
                target_rows=partitioned.target_rows,
                report=rep,
                **kw,
            )
            partitioned.report[ut] = rep
            if partitioned.in_place:
                files += [p.path for p in parts]
                n_panel += sum(p.rows for p in parts)
            else:
                n_panel += store.insert_arrow("panel", read_panel_parts(parts))
            if ut == ESDA_UNIT_TYPE:
                cell_panel = _in_unit_order(
                    pd.concat(
                        [b.to_pandas() for b in read_panel_parts(parts, _ESDA_COLUMNS)],
                        ignore_index=True,
                    ),
                    org.units[ut],
                )
            continue
        # streamed: one unit type's matrices and a chunk of rows in memory at a time
        cell_parts: list[pd.DataFrame] = []
        keep = cell_parts if ut == ESDA_UNIT_TYPE else None
        n_panel += store.insert_frames("panel", _kept(panel_chunks(*args, **kw), keep))
        if ut == ESDA_UNIT_TYPE:
            cell_panel = pd.concat(cell_parts, ignore_index=True)
    if nbhd is not None and partitioned is not None and partitioned.in_place:
        path = f"{partitioned.run_folder}/{AREA_UNIT_TYPE}/part-00000.parquet"
        files.append(write_panel_part(nbhd, path).path)
    elif nbhd is not None:
        store.insert("panel", nbhd)
    if files:
        seen = store.attach_parquet("panel", files)
        if seen != n_panel:  # the files are the panel now: they must hold every row written
            raise StoreError(f"the panel files ({files[0]} ...) hold {seen} rows, not {n_panel}")
    return cell_panel, n_panel


def _kept(
    chunks: Iterable[pd.DataFrame], keep: list[pd.DataFrame] | None
) -> Iterator[pd.DataFrame]:
    """The chunks, as they come; the columns ESDA needs of each also go to ``keep``."""
    for chunk in chunks:
        if keep is not None:
            keep.append(chunk[_ESDA_COLUMNS])
        yield chunk


def _in_unit_order(panel: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """Panel rows in the order the whole-city build emits them: units, then years."""
    pos = pd.Index(units["unit_id"].astype(str)).get_indexer(panel["unit_id"].astype(str))
    order = np.lexsort((panel["year"].to_numpy(), pos))
    return panel.iloc[order].reset_index(drop=True)


def _island_warnings(graphs: GraphSet, builders: dict[str, dict[str, str]]) -> list[str]:
    out = []
    for ut, gs in graphs.items():
        for name, g in gs.items():
            n_isl = len(g.isolates)
            if n_isl:
                kind = builders[ut][name].split("(")[0]
                out.append(
                    f"{ut} graph {name!r} ({kind}): {n_isl} islands (units without "
                    "neighbours); their lags are null"
                )
    return out


@in_project_crs
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
    settings = SpatialSettings.from_config(cfg)
    breaks, nb, area, pipes, streets = _read_inputs(cfg)
    tick("read", 0)
    y0, y1, coverage_notes = _study_years(cfg, breaks)
    # the cluster (if any) lives from the matching to the end of the ESDA, inside the
    # store's transaction that outlives it
    with ExitStack() as cluster:
        client = cluster.enter_context(open_client(cfg.compute.cluster))
        org = organise(
            breaks,
            nb,
            area,
            pipes=pipes,
            streets=streets,
            settings=settings,
            client=client,
            partition_rows=cfg.compute.partition_rows,
        )
        absent = {"pipes": pipes is None, "streets": streets is None}
        # the units carry what the later steps read: the curated layers are let go (at
        # 2,000,000 pipes, gigabytes held through the graphs and the panel)
        del pipes, streets
        for step, part, what in (
            ("break matching", org.partitions, "breaks"),
            ("street links", org.partitions.get("street_links"), "breaks"),
            ("pipe to street apportionment", org.partitions.get("pipe_streets"), "pipes"),
        ):
            if part and "partitions" in part:
                log.info(
                    "%s on %s: %d partitions (H3 resolution %d, at most %d %s each)",
                    step,
                    cfg.compute.scheduler,
                    part["partitions"],
                    part["resolution"],
                    part["largest"],
                    what,
                )
        warnings = [*coverage_notes, *org.warnings]
        if absent["pipes"]:
            warnings.append(
                "no pipes in the store: pipe units, pipe exposure and break-to-pipe matching are skipped"
            )
        if absent["streets"]:
            warnings.append("no street segments in the store: street units are skipped")
        if nb is None:
            warnings.append(
                "no neighbourhood layer: neighbourhood units and the neighbourhood rate are skipped"
            )
        if area is None:
            warnings.append("no service area: H3 cell units and the cell ESDA are skipped")
        tick("organise", 1)
        timings.update({f"organise: {k}": v for k, v in org.timings.items()})
        matching = org.match_summary()
        n_units = {k: len(v) for k, v in org.units.items()}
        # One transaction for every feature table. The organisation's tables are written
        # first, a block at a time; the later steps then hold only the columns and links
        # they read, and each panel is written as soon as it is built and then freed.
        with Store(cfg.store_path) as store:
            with store.transaction():
                counts: dict[str, int] = {}
                for name, frames in _organised_tables(org):
                    store.clear(name)
                    counts[name] = store.insert_frames(name, frames)
                tick("store units", 2)
                builders = graph_builders(cfg.graphs, fc)
                graph_tasks = (
                    None if client is None else GraphTasks(client, cfg.compute.partition_rows)
                )
                graphs = build_graphs(org, cfg.graphs, fc, tasks=graph_tasks)
                warnings.extend(_island_warnings(graphs, builders))
                org = _panel_inputs(org)
                tick("graphs", 2)
                ps = PanelSettings(
                    start_year=y0,
                    end_year=y1,
                    decay_tau=fc.decay_tau,
                    near_radius_m=fc.near_radius_m,
                )
                b_in = breaks[(breaks["year"] >= y0) & (breaks["year"] <= y1)]
                partitioned = (
                    None
                    if client is None
                    else _PanelPartitions(
                        client,
                        cfg.compute.partition_folder(cfg.out_dir),
                        cfg.compute.partition_rows,
                    )
                )
                cell_panel, n_panel = _write_panels(
                    store, org, graphs, breaks, b_in, ps, partitioned
                )
                tick("panel", 3)
                if cell_panel is not None and ESDA_UNIT_TYPE in graphs:
                    glob, lisa, pers = run_esda(
                        cell_panel,
                        graphs[ESDA_UNIT_TYPE]["adj"],
                        ESDA_UNIT_TYPE,
                        permutations=fc.esda_permutations,
                        seed=fc.seed,
                        block_units=cfg.compute.partition_rows,
                        client=client,
                    )
                else:
                    glob, lisa, pers = (
                        conform(
                            pd.DataFrame(columns=load_schema(f"features/{t}").columns),
                            f"features/{t}",
                        )
                        for t in ("moran_global", "lisa", "hotspot_persistence")
                    )
                cluster.close()  # the workers are done
                tick("esda", 4)
                for name, frames in _derived_tables(graphs, builders, glob, lisa, pers):
                    store.clear(name)  # each table made, written and freed in turn
                    counts[name] = store.insert_frames(name, frames)
                counts["panel"] = n_panel
            folder = cfg.compute.partition_folder(cfg.out_dir)
            if partitioned is not None or is_local_folder(folder):
                # panel files the store does not read (now): an earlier run's, or those
                # of a run that did not commit
                remove_panel_folders(folder, store.view_sql("panel"))
    tick("store", 5)
    hot = pers["class"].value_counts()
    report = FeatureReport(
        years=(y0, y1),
        tables=counts,
        units=n_units,
        matching=matching,
        graphs=[
            _graph_summary(ut, n, g, builders[ut][n])
            for ut, gs in graphs.items()
            for n, g in gs.items()
        ],
        moran=glob[glob["variable"] == "breaks"][["year", "moran_i", "p_sim"]].to_dict("records"),
        hotspots={str(k): int(v) for k, v in sorted(hot.items())},
        timings=timings,
        peak_rss_mb=peak,
        warnings=warnings,
        partitions=(
            {
                "scheduler": cfg.compute.scheduler,
                **org.partitions,
                "panel": partitioned.report if partitioned else {},
                "graphs": graph_tasks.report if graph_tasks else {},
            }
            if org.partitions
            else {}
        ),
    )
    for w in warnings:
        log.warning("%s", w)
    return report


#: rows per block when the organisation's tables are conformed and written
STORE_BLOCK_ROWS = 200_000


def _organised_tables(org: Organised) -> Iterator[tuple[str, Iterable[pd.DataFrame]]]:
    """The unit tables, break links and pipe apportionments, each as its name and its
    blocks, conformed as the store writes them (a conformed copy of a 2,000,000-pipe unit
    table would be a gigabyte held on top of the city)."""
    for ut, spec in UNIT_TYPES.items():
        unit = org.units.get(ut)
        if unit is None:  # absent (no such layer): an empty table, not a stale one
            unit = pd.DataFrame(columns=load_schema(f"features/{spec.table}").columns)
        yield spec.table, conform_chunks(unit, f"features/{spec.table}", STORE_BLOCK_ROWS)
    for name, frame in (
        ("break_links", org.links),
        ("pipe_cells", org.pipe_cells),
        ("pipe_streets", org.pipe_streets),
    ):
        yield name, conform_chunks(frame, f"features/{name}", STORE_BLOCK_ROWS)


def _panel_inputs(org: Organised) -> Organised:
    """The organisation cut to what the panel reads, once its tables are stored: the unit
    columns of :data:`~.panel.PANEL_UNIT_COLUMNS` and the matched links (the attributes and
    the unmatched links are a third of the units and links held through the panel)."""
    units = {
        ut: u[[c for c in u.columns if c in PANEL_UNIT_COLUMNS]].copy()
        for ut, u in org.units.items()
    }
    links = org.links.loc[org.links["status"] == "matched", _PANEL_LINK_COLUMNS]
    return replace(org, units=units, links=links.reset_index(drop=True))


_PANEL_LINK_COLUMNS = ["break_id", "unit_type", "unit_id", "status"]


def _derived_tables(
    graphs: GraphSet,
    builders: dict[str, dict[str, str]],
    glob: pd.DataFrame,
    lisa: pd.DataFrame,
    pers: pd.DataFrame,
) -> Iterator[tuple[str, Iterable[pd.DataFrame]]]:
    """The graph summaries and edges and the ESDA tables, as their names and frames, made
    lazily: the store writes one before the next is made, the edges one graph at a time."""
    summaries = [
        _graph_summary(ut, name, g, builders[ut][name])
        for ut, gs in graphs.items()
        for name, g in gs.items()
    ]
    yield "graph_summary", [conform(pd.DataFrame(summaries), "features/graph_summary")]
    yield "graph_edges", _graph_edges(graphs)
    yield "moran_global", [glob]
    yield "lisa", [lisa]
    yield "hotspot_persistence", [pers]


def _graph_edges(graphs: GraphSet) -> Iterator[pd.DataFrame]:
    """The stored graphs' edges, a slice of a graph at a time (one empty frame when there
    are none)."""
    made = False
    for ut, gs in graphs.items():
        for name, g in gs.items():
            if UNIT_TYPES[ut].linear and name == "dist":
                continue  # KNN of centroids: cheap to rebuild, millions of rows to store
            for e in gb.graph_edge_chunks(g):
                e.insert(0, "unit_type", ut)
                e.insert(1, "graph", name)
                made = True
                yield conform(e, "features/graph_edges")
    if not made:
        edges = load_schema("features/graph_edges")
        yield conform(pd.DataFrame(columns=edges.columns), edges)
