"""The panel partition by partition, in this process or on a Dask cluster.

:func:`build_panel_partitioned` gives the rows of :func:`~twmb_geo.features.panel.build_panel`
on the whole city while no task holds more than one partition's units and their halo:

* **Home.** Every unit has one home partition: the H3 cell, at the partition resolution,
  of its representative point (``x``, ``y``); units without one form one extra partition.
* **Halo.** A task also gets the units the spatial features of its home units read: their
  neighbours in the "dist" graph and every unit within two links in the "adj" graph (the
  order-2 lags), with the graphs restricted to those units and their weights as built, so
  a home unit's row of every graph, its ring at distance two and its local density are
  those of the whole city. The task builds the panel of all its units and keeps the home
  units' rows.
* **Breaks and pipes.** The task gets the breaks linked to its units and, for linear
  units, the breaks within the near-break radius of their bounding box; for exposure, the
  pipes apportioned to its units (pipe units carry their own).

Each task writes its rows to one Parquet file under a folder or an fsspec URL
(``s3://``, ``gs://``, ``abfs://``: workers on other machines write there), so neither the
task's result nor the city's panel travels through this process;
:func:`read_panel_parts` streams them back in bounded batches.
"""

from __future__ import annotations

import os
import posixpath
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from libpysal.graph import Graph
from scipy import sparse

from ..contracts import load_schema, validate_frame
from ..core.cluster import map_partitions
from ..core.units import UNIT_TYPES
from ..errors import ConfigError
from ..spatial import graphs as gb
from ..spatial.partition import home_members, partition_points
from ..store.duckdb_store import arrow_schema, arrow_table
from .panel import PanelSettings, panel_chunks

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "PanelPart",
    "build_panel_partitioned",
    "is_local_folder",
    "new_panel_folder",
    "panel_halo",
    "read_panel_parts",
    "remove_panel_folders",
    "write_panel_part",
]

#: panel rows per Parquet row group and per batch read back
BATCH_ROWS = 200_000

_PIPE_COLUMNS = ["unit_id", "length_m", "install_year", "removal_year"]


@dataclass(frozen=True)
class PanelPart:
    """One partition's panel rows, written: ``path`` (a file or URL), ``rows``, and the
    units whose rows they are (``home_units``) and that the task read (``task_units``)."""

    path: str
    rows: int
    home_units: int
    task_units: int


class _Reach:
    """A graph's links as positions in the unit table, for cheap halo queries."""

    def __init__(self, graph: Graph, index: pd.Index) -> None:
        at = index.get_indexer(pd.Index(np.asarray(graph.unique_ids).astype(str)))
        self.n = len(index)
        w = sparse.csr_array(graph.sparse)
        w.eliminate_zeros()
        # rows and columns re-indexed to unit positions (graph units absent from the table
        # dropped): then a halo step is a row slice
        keep = at >= 0
        w = w[keep][:, keep]
        to_unit = sparse.csr_array(
            (np.ones(int(keep.sum())), (at[keep], np.arange(int(keep.sum())))),
            shape=(self.n, int(keep.sum())),
        )
        self.w = sparse.csr_array(to_unit @ w @ to_unit.T)

    def step(self, mask: np.ndarray) -> np.ndarray:
        """Units with a link from a unit in ``mask``."""
        out = np.zeros(self.n, dtype=bool)
        out[self.w[np.flatnonzero(mask)].indices] = True
        return out


def _reaches(graphs: dict[str, Graph] | None, ids: np.ndarray) -> dict[str, _Reach]:
    index = pd.Index(np.asarray(ids).astype(str))
    return {name: _Reach(g, index) for name, g in (graphs or {}).items()}


def panel_halo(graphs: dict[str, Graph] | None, ids: np.ndarray, home: np.ndarray) -> np.ndarray:
    """Positions (ascending) of the units whose values the panel rows of the units at
    ``home`` (positions in ``ids``) read: themselves, their "dist" neighbours and the units
    within two links in the "adj" graph."""
    return _halo(_reaches(graphs, ids), len(ids), home)


def _halo(reach: dict[str, _Reach], n: int, home: np.ndarray) -> np.ndarray:
    need = np.zeros(n, dtype=bool)
    need[home] = True
    out = need.copy()
    if "dist" in reach:
        out |= reach["dist"].step(need)
    if "adj" in reach:
        ring1 = need | reach["adj"].step(need)
        out |= ring1 | reach["adj"].step(ring1)
    return np.flatnonzero(out)


def _task(
    unit_type: str,
    units: pd.DataFrame,
    emit: np.ndarray,
    links: pd.DataFrame,
    breaks: pd.DataFrame,
    settings: PanelSettings,
    graphs: dict[str, Graph] | None,
    pipes: pd.DataFrame | None,
    pipe_units_of: pd.DataFrame | None,
    nbhd_rate: pd.DataFrame | None,
    path: str,
) -> PanelPart:
    schema = load_schema("features/panel")
    fs, target = fsspec.core.url_to_fs(path)
    fs.makedirs(posixpath.dirname(target), exist_ok=True)
    rows = 0
    chunks = panel_chunks(
        unit_type,
        units.reset_index(drop=True),
        links,
        breaks,
        settings,
        graphs=graphs,
        pipes=units.reset_index(drop=True) if unit_type == "pipe" else pipes,
        pipe_units_of=pipe_units_of,
        nbhd_rate=nbhd_rate,
        emit=emit,
    )
    with fs.open(target, "wb") as f, pq.ParquetWriter(f, arrow_schema(schema)) as writer:
        for chunk in chunks:
            writer.write_table(arrow_table(chunk, schema), row_group_size=BATCH_ROWS)
            rows += len(chunk)
    return PanelPart(path, rows, int(emit.sum()), len(units))


def _codes(keys: Any, other: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer codes of two key columns in one code space (equal keys, equal codes; a null
    key a code of its own that nothing else shares) and the number of codes."""
    a, b = np.asarray(keys, dtype=object), np.asarray(other, dtype=object)
    codes, uniques = pd.factorize(np.concatenate([a, b]), use_na_sentinel=True)
    null = codes < 0
    codes[null] = len(uniques) + np.arange(int(null.sum()))
    return codes[: len(a)], codes[len(a) :], len(uniques) + int(null.sum())


def _present(codes: np.ndarray, n: int) -> np.ndarray:
    """A lookup table over ``n`` codes, true at ``codes``."""
    out = np.zeros(n, dtype=bool)
    out[codes] = True
    return out


def _task_breaks(
    unit_type: str, units: pd.DataFrame, linked: np.ndarray, breaks: pd.DataFrame, radius: float
) -> pd.DataFrame:
    """The breaks a task reads: those ``linked`` to its units (a mask over ``breaks``)
    and, for linear units, those near them (within ``radius`` of the units' bounding box)."""
    keep = linked
    if UNIT_TYPES[unit_type].linear and "geometry" in units and len(units):
        geoms = shapely.from_wkb(units["geometry"].to_numpy(dtype=object))
        ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
        if ok.any():
            x0, y0, x1, y1 = shapely.total_bounds(geoms[ok])
            bx = breaks["x"].to_numpy(dtype=float)
            by = breaks["y"].to_numpy(dtype=float)
            near = (bx >= x0 - radius) & (bx <= x1 + radius)
            near &= (by >= y0 - radius) & (by <= y1 + radius)
            keep = keep | near
    return breaks[keep]


def _clear(folder: str, sub: str) -> None:
    """Remove the files of an earlier run under ``folder/sub``; fail early, naming the
    setting, when the partition store cannot be opened (an unknown URL scheme, its fsspec
    driver not installed)."""
    try:
        fs, target = fsspec.core.url_to_fs(f"{folder.rstrip('/')}/{sub}")
    except (ImportError, ValueError) as exc:
        raise ConfigError(
            f"[compute] partition_store {folder!r} cannot be opened: {exc}. Use a folder "
            "every worker can reach, or install the fsspec driver of the URL's scheme "
            "(s3fs, gcsfs, adlfs) here and on the workers"
        ) from exc
    if fs.exists(target):
        fs.rm(target, recursive=True)


def build_panel_partitioned(
    unit_type: str,
    units: pd.DataFrame,
    links: pd.DataFrame,
    breaks: pd.DataFrame,
    settings: PanelSettings,
    folder: str,
    *,
    graphs: dict[str, Graph] | None = None,
    pipes: pd.DataFrame | None = None,
    pipe_units_of: pd.DataFrame | None = None,
    nbhd_rate: pd.DataFrame | None = None,
    target_rows: int = 50_000,
    resolution: int | None = None,
    client: Client | None = None,
    report: dict[str, Any] | None = None,
) -> list[PanelPart]:
    """:func:`~twmb_geo.features.panel.build_panel`, one partition per task, written as
    Parquet files under ``folder``.

    Parameters
    ----------
    unit_type, units, links, breaks, settings, graphs, pipes, pipe_units_of, nbhd_rate
        As for :func:`~twmb_geo.features.panel.build_panel` (``units`` with ``x``, ``y``
        in the analysis CRS).
    folder
        A folder or fsspec URL; the files are ``<folder>/<unit_type>/part-NNNNN.parquet``.
    target_rows, resolution
        Most home units per partition when the H3 resolution of the partitions is chosen
        from the data, or that resolution.
    client
        A Dask client to run the partitions on (default: in this process).
    report
        Filled with what the partitioning did: ``resolution``, ``partitions``,
        ``largest`` (home units), ``largest_task`` (units, with the halo) and
        ``halo_units`` (units sent twice or more, in all).

    Returns
    -------
    list of PanelPart
        In partition order; together the rows of the whole-city panel, each once.
    """
    _clear(folder, unit_type)
    units = units.reset_index(drop=True)
    ids = units["unit_id"].astype(str).to_numpy(dtype=object)
    res, homes = partition_points(
        units["x"].to_numpy(dtype=float),
        units["y"].to_numpy(dtype=float),
        target_rows=target_rows,
        resolution=resolution,
    )
    members = home_members(homes)
    groups = [members[c] for c in sorted(members)]
    unhomed = np.flatnonzero(homes == 0)
    if unhomed.size:
        groups.append(unhomed)
    if not groups:
        groups = [np.zeros(0, dtype=np.int64)]
    sent: list[int] = []

    def items() -> Iterator[tuple[Any, ...]]:
        # every table's keys as codes once, so a task's rows are array lookups, not a
        # string search of the whole city's tables per partition
        reach = _reaches(graphs, ids)
        unit_code, link_unit, units_n = _codes(ids, links["unit_id"].astype(str))
        link_break, break_code, breaks_n = _codes(links["break_id"], breaks["break_id"])
        apportioned = unit_type != "pipe" and pipe_units_of is not None and pipes is not None
        if apportioned:
            assert pipe_units_of is not None and pipes is not None
            code_of_unit, apportion_unit, apportion_n = _codes(
                ids, pipe_units_of["unit"].astype(str)
            )
            apportion_pipe, pipe_code, pipes_n = _codes(
                pipe_units_of["pipe_id"].astype(str), pipes["unit_id"].astype(str)
            )
        for k, home in enumerate(groups):
            task = _halo(reach, len(ids), home)
            sent.append(len(task))
            mine = pd.Index(ids[task])
            t_units = units.iloc[task]
            has_link = _present(unit_code[task], units_n)[link_unit]
            t_links = links[has_link]
            t_graphs = {n: gb.subgraph(g, mine) for n, g in (graphs or {}).items()}
            t_apportion = t_pipes = None
            if apportioned:
                assert pipe_units_of is not None and pipes is not None
                has_unit = _present(code_of_unit[task], apportion_n)[apportion_unit]
                t_apportion = pipe_units_of[has_unit]
                wanted = _present(apportion_pipe[has_unit], pipes_n)[pipe_code]
                wanted[:1] = True  # never empty: no pipes at all means no exposure
                t_pipes = pipes.loc[wanted, _PIPE_COLUMNS]
            linked = _present(link_break[has_link], breaks_n)[break_code]
            emit = np.isin(task, home)
            yield (
                unit_type,
                t_units,
                emit,
                t_links,
                _task_breaks(unit_type, t_units, linked, breaks, settings.near_radius_m),
                settings,
                t_graphs or None,
                t_pipes,
                t_apportion,
                nbhd_rate,
                f"{folder.rstrip('/')}/{unit_type}/part-{k:05d}.parquet",
            )

    parts = map_partitions(_task, items(), client)
    if report is not None:
        report.update(
            resolution=int(res),
            partitions=len(groups),
            largest=int(max(len(g) for g in groups)),
            largest_task=int(max(sent)),
            halo_units=int(sum(sent) - len(units)),
        )
    return parts


def read_panel_parts(
    parts: Sequence[PanelPart], columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The rows of written partitions, in batches of at most :data:`BATCH_ROWS` rows."""
    for part in parts:
        fs, target = fsspec.core.url_to_fs(part.path)
        with fs.open(target, "rb") as f:
            pf = pq.ParquetFile(f)
            yield from pf.iter_batches(
                batch_size=BATCH_ROWS, columns=None if columns is None else list(columns)
            )


def is_local_folder(folder: str) -> bool:
    """Whether a partition store is a folder of this machine (DuckDB here reads its files;
    it cannot read object-store URLs)."""
    return "://" not in folder


def new_panel_folder(folder: str) -> str:
    """A folder of its own for one feature run's panel files: ``<folder>/panel/v<id>``.

    The store may read an earlier run's files in place until this run commits, so a run
    never writes over them (:func:`remove_panel_folders` removes them afterwards).
    """
    return f"{folder.rstrip('/')}/panel/v{time.time_ns():x}-{os.getpid()}"


def write_panel_part(frame: pd.DataFrame, path: str) -> PanelPart:
    """Panel rows built in this process (the neighbourhoods) written like a task's part."""
    schema = load_schema("features/panel")
    validate_frame(frame, schema)
    fs, target = fsspec.core.url_to_fs(path)
    fs.makedirs(posixpath.dirname(target), exist_ok=True)
    with fs.open(target, "wb") as f:
        pq.write_table(arrow_table(frame, schema), f, row_group_size=BATCH_ROWS)
    return PanelPart(path, len(frame), frame["unit_id"].nunique(), frame["unit_id"].nunique())


def remove_panel_folders(folder: str, keep: str = "") -> list[str]:
    """Remove the panel folders under ``<folder>/panel`` that ``keep`` (the SQL of the
    store's panel view, "" for none) does not name: an earlier run's once the store no
    longer reads them, or a run that did not commit. Returns the folders removed."""
    fs, root = fsspec.core.url_to_fs(f"{folder.rstrip('/')}/panel")
    if not fs.exists(root):
        return []
    gone = []
    for entry in sorted(fs.ls(root, detail=False)):
        name = posixpath.basename(str(entry).rstrip("/"))
        if f"panel/{name}/" in keep:
            continue
        fs.rm(entry, recursive=True)
        gone.append(str(entry))
    return gone
