"""Organise curated tables into units (pipe, street segment, H3 cell, neighbourhood) and links.

One unit abstraction: every unit table has a stable key (``unit_id``), a geometry (optional
for pipes), a representative point (``x``/``y`` in the analysis CRS, ``centroid_lon``/``lat``), its
neighbourhood and H3 cell, and an exposure (length or area). Breaks are linked to every unit
type; unmatched breaks keep a link row with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import shapely

from ..config import Config
from ..core.units import UNIT_TYPES
from ..core.vocab import MATERIAL_GROUPS
from ..errors import ConfigError, InputDataError
from . import hexgrid
from .partitioned import (
    DEFAULT_TARGET_ROWS,
    PartitionReport,
    as_one_frame,
    link_breaks_to_pipes_partitioned,
    link_breaks_to_streets_partitioned,
    map_blocks,
    pipes_to_streets_partitioned,
)
from .snapping import (
    id_positions,
    link_breaks_to_cells,
    link_breaks_to_pipes,
    link_breaks_to_polygons,
    link_breaks_to_streets,
    pipes_to_streets,
)
from .unit_tables import (
    cell_units,
    from_wkb,
    locate_points,
    neighbourhood_units,
    pipe_units,
    street_units,
    unlocated_pipes_warning,
)

__all__ = [
    "MATERIAL_GROUPS",
    "UNIT_BUILDERS",
    "BuildContext",
    "Organised",
    "SpatialSettings",
    "UnitBuilderSpec",
    "organise",
    "register_unit_builder",
]

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpatialSettings:
    """Parameters of the spatial organisation (from the project config)."""

    h3_resolution: int = 9
    parent_resolution: int = 7
    pipe_tolerance_m: float = 25.0
    street_tolerance_m: float = 50.0
    street_half_width_m: float = 15.0

    def __post_init__(self) -> None:
        problems = []
        for name in ("h3_resolution", "parent_resolution"):
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or not 0 <= v <= 15:
                problems.append(f"{name} must be an integer 0..15 (H3 resolutions), got {v!r}")
        if not problems and self.parent_resolution > self.h3_resolution:
            problems.append(
                f"parent_resolution ({self.parent_resolution}) must not be finer than h3_resolution ({self.h3_resolution})"
            )
        for name in ("pipe_tolerance_m", "street_tolerance_m", "street_half_width_m"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)!r}")
        if problems:
            raise ConfigError("invalid spatial settings", problems)

    @classmethod
    def from_config(cls, cfg: Config) -> SpatialSettings:
        """The settings of a project (``h3_resolution`` and ``[features]``)."""
        fc = cfg.features
        return cls(
            h3_resolution=cfg.h3_resolution,
            parent_resolution=fc.parent_resolution,
            pipe_tolerance_m=fc.pipe_tolerance_m,
            street_tolerance_m=fc.street_tolerance_m,
            street_half_width_m=fc.street_half_width_m,
        )


@dataclass
class Organised:
    """Units, break links and pipe apportionments produced by :func:`organise`."""

    units: dict[str, pd.DataFrame]
    links: pd.DataFrame
    pipe_cells: pd.DataFrame
    pipe_streets: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    #: what the partitioned break matching did (empty when it ran in this process)
    partitions: PartitionReport = field(default_factory=PartitionReport)
    #: seconds of each unit type's building (``build pipe``, ...) and linking (``link pipe``)
    timings: dict[str, float] = field(default_factory=dict)

    def apportion(self, unit_type: str) -> pd.DataFrame | None:
        """Pipe length per unit of ``unit_type``: ``pipe_id``, ``unit``, ``length_m`` (None without pipes)."""
        pu = self.units.get("pipe")
        if pu is None:
            return None
        if unit_type == "cell":
            return self.pipe_cells.rename(columns={"cell": "unit"})
        if unit_type == "street":
            ps = self.pipe_streets.dropna(subset=["segment_id"])
            return ps.rename(columns={"segment_id": "unit", "overlap_m": "length_m"})[
                ["pipe_id", "unit", "length_m"]
            ]
        if unit_type == "neighbourhood":
            df = pu[["unit_id", "neighbourhood", "length_m"]].dropna(subset=["neighbourhood"])
            return df.rename(columns={"unit_id": "pipe_id", "neighbourhood": "unit"})
        raise ValueError(f"no pipe apportionment for unit type {unit_type!r}")

    def match_summary(self) -> dict[str, dict[str, int]]:
        """Per unit type: matched and unmatched break counts by reason."""
        out: dict[str, dict[str, int]] = {}
        for ut, g in self.links.groupby("unit_type", sort=True):
            d = {"matched": int((g["status"] == "matched").sum())}
            for reason, n in g["reason"].value_counts().sort_index().items():
                d[f"unmatched_{reason}"] = int(n)
            out[str(ut)] = d
        return out


@dataclass
class BuildContext:
    """What unit builders and break linkers read, and what they leave for the next builders.

    Builders run in the registry's order (:data:`twmb_geo.core.units.UNIT_TYPES`); a builder
    may read the units built before it (cells read the pipes' apportionment).
    """

    breaks: pd.DataFrame
    neighbourhoods: pd.DataFrame | None
    service_area: shapely.Geometry | None
    pipes: pd.DataFrame | None
    streets: pd.DataFrame | None
    settings: SpatialSettings
    nb_ids: np.ndarray
    nb_geoms: np.ndarray
    units: dict[str, pd.DataFrame] = field(default_factory=dict)
    pipe_cells: pd.DataFrame = field(default_factory=lambda: _empty_pipe_cells())
    pipe_streets: pd.DataFrame = field(default_factory=lambda: _empty_pipe_streets())
    grid: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.uint64))
    warnings: list[str] = field(default_factory=list)
    #: a Dask client: break-to-pipe matching runs partition by partition on its cluster
    client: Client | None = None
    partition_rows: int = DEFAULT_TARGET_ROWS
    partitions: PartitionReport = field(default_factory=PartitionReport)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def res(self) -> int:
        """The H3 resolution of the cell units."""
        return self.settings.h3_resolution


#: builds one unit table (None when the project has no such units)
UnitBuilder = Callable[[BuildContext], pd.DataFrame | None]
#: links the breaks (``break_id``, ``x``, ``y``, ``year``, ``lon``, ``lat``, ...) to the units
BreakLinker = Callable[[BuildContext, pd.DataFrame], pd.DataFrame | None]


@dataclass(frozen=True)
class UnitBuilderSpec:
    """How the units of one type are built from the curated tables and how breaks link to them."""

    build: UnitBuilder
    link: BreakLinker


#: unit type name -> builder and linker; every registered unit type needs one
UNIT_BUILDERS: dict[str, UnitBuilderSpec] = {}


def register_unit_builder(name: str, build: UnitBuilder, link: BreakLinker) -> None:
    """Register how units of the registered unit type ``name`` are built and linked."""
    if name not in UNIT_TYPES:
        raise ValueError(f"register the unit type {name!r} first (twmb_geo.core.units)")
    if name in UNIT_BUILDERS:
        raise ValueError(f"unit type {name!r} already has a builder")
    UNIT_BUILDERS[name] = UnitBuilderSpec(build, link)


def _empty_pipe_cells() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pipe_id": pd.Series(dtype=object),
            "cell": pd.Series(dtype=object),
            "length_m": pd.Series(dtype=float),
        }
    )


def _empty_pipe_streets() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pipe_id": pd.Series(dtype=object),
            "segment_id": pd.Series(dtype=object),
            "overlap_m": pd.Series(dtype=float),
            "overlap_share": pd.Series(dtype=float),
            "method": pd.Series(dtype=object),
        }
    )


def _check_unique_ids(
    breaks: pd.DataFrame,
    neighbourhoods: pd.DataFrame | None,
    pipes: pd.DataFrame | None,
    streets: pd.DataFrame | None,
) -> None:
    problems = []
    for name, df, key in (
        ("pipes", pipes, "pipe_id"),
        ("street segments", streets, "segment_id"),
        ("neighbourhoods", neighbourhoods, "area_code"),
        ("breaks", breaks, "break_id"),
    ):
        if df is None or key not in df:
            continue
        dup = df[key][df[key].duplicated()].astype(str).unique()
        if dup.size:
            problems.append(f"{name}: {dup.size} duplicate {key} values, e.g. {', '.join(dup[:5])}")
    if problems:
        raise InputDataError(
            "unit ids must be unique; fix the sources (or their profiles' id fields)", problems
        )


def organise(
    breaks: pd.DataFrame,
    neighbourhoods: pd.DataFrame | None,
    service_area: shapely.Geometry | None,
    *,
    pipes: pd.DataFrame | None = None,
    streets: pd.DataFrame | None = None,
    settings: SpatialSettings | None = None,
    client: Client | None = None,
    partition_rows: int = DEFAULT_TARGET_ROWS,
) -> Organised:
    """Build the unit tables and break links from curated tables (as read from the store).

    Every registered unit type is built by its builder, in the registry's order, then the
    breaks are linked to each.

    Parameters
    ----------
    breaks, neighbourhoods
        Curated ``breaks`` and ``neighbourhoods`` tables (WKB geometry, the analysis CRS); without
        neighbourhoods (None or empty) there are no neighbourhood units.
    service_area
        The unbuffered service-area boundary (the analysis CRS): every H3 cell touching it is a unit;
        None: no cell units.
    pipes, streets
        Curated ``pipes`` and ``street_segments`` tables, when the project has them. Pipes
        without geometry are kept as units; location-based work skips them with a warning.
    settings
        Resolutions and matching tolerances.
    client, partition_rows
        A Dask client: the pipe and street units are built in blocks of
        ``partition_rows`` rows, the breaks matched to the pipes and to the street
        segments, and the pipes apportioned to the streets, partition by partition on its
        cluster (:mod:`~twmb_geo.spatial.partitioned`; the same units and links), with at
        most ``partition_rows`` breaks (pipes) per partition. None: in this process, as
        one block.

    Returns
    -------
    Organised
        Units per type, break links, pipe apportionments and warnings.
    """
    _check_unique_ids(breaks, neighbourhoods, pipes, streets)
    nb = neighbourhoods if neighbourhoods is not None and len(neighbourhoods) else None
    ctx = BuildContext(
        breaks=breaks,
        neighbourhoods=nb,
        service_area=service_area,
        pipes=pipes,
        streets=streets,
        settings=settings or SpatialSettings(),
        nb_ids=np.array([], dtype=object)
        if nb is None
        else nb["area_code"].astype(str).to_numpy(dtype=object),
        nb_geoms=np.array([], dtype=object) if nb is None else from_wkb(nb["geometry"]),
        client=client,
        partition_rows=partition_rows,
    )
    missing = [name for name in UNIT_TYPES if name not in UNIT_BUILDERS]
    if missing:
        raise ConfigError(f"unit types without a builder: {', '.join(missing)}")
    for name in UNIT_TYPES:
        t0 = time.perf_counter()
        table = UNIT_BUILDERS[name].build(ctx)
        ctx.timings[f"build {name}"] = round(time.perf_counter() - t0, 3)
        if table is not None:
            ctx.units[name] = table
    links = _link_breaks(ctx)
    return Organised(
        units=ctx.units,
        links=links,
        pipe_cells=ctx.pipe_cells,
        pipe_streets=ctx.pipe_streets,
        warnings=ctx.warnings,
        partitions=ctx.partitions,
        timings=ctx.timings,
    )


def _units_of(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Unit tables of blocks as the one table of the whole layer (ordered by unit id)."""
    if len(parts) == 1:
        return parts[0]
    return as_one_frame(parts).sort_values("unit_id", kind="stable").reset_index(drop=True)


def _pipe_block(
    pipes: pd.DataFrame, nb_ids: np.ndarray, nb_geoms: np.ndarray, res: int
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The pipe units of a block of pipes and the length of each located one in each H3
    cell (None when none has geometry)."""
    pu = pipe_units(pipes, nb_ids, nb_geoms, res, [])  # the layer's warning is made once
    located = pu["geometry"].notna().to_numpy()
    if not located.any():
        return pu, None
    g = shapely.from_wkb(pu.loc[located, "geometry"].to_numpy(dtype=object))
    pc = hexgrid.lines_to_cells(g, res, ids=pu.loc[located, "unit_id"].to_numpy(dtype=object))
    cells = pd.DataFrame(
        {
            "pipe_id": pc["line"].to_numpy(dtype=object),
            "cell": hexgrid.cell_str(pc["cell"].to_numpy(dtype=np.uint64)),
            "length_m": pc["length_m"].to_numpy(dtype=float),
        }
    )
    return pu, cells


def _build_pipes(ctx: BuildContext) -> pd.DataFrame | None:
    if ctx.pipes is None or not len(ctx.pipes):
        return None
    # row by row (no halo): blocks of partition_rows pipes on the cluster, if any
    parts = map_blocks(
        _pipe_block,
        ctx.pipes,
        (ctx.nb_ids, ctx.nb_geoms, ctx.res),
        rows=ctx.partition_rows,
        client=ctx.client,
    )
    pu = _units_of([p[0] for p in parts])
    cells = [p[1] for p in parts if p[1] is not None]
    del parts
    located = pu["geometry"].notna().to_numpy()
    if not located.all():
        ctx.warnings.append(unlocated_pipes_warning(int((~located).sum())))
    _locate_by_ids(ctx, pu)
    if cells:
        ctx.pipe_cells = (
            as_one_frame(cells)
            .sort_values(["pipe_id", "cell"], kind="stable")
            .reset_index(drop=True)
        )
    by_id = ~located & pu["cell"].notna().to_numpy()
    if by_id.any():  # a pipe located through its ids: its whole length in its cell
        extra = pd.DataFrame(
            {
                "pipe_id": pu.loc[by_id, "unit_id"].to_numpy(dtype=object),
                "cell": pu.loc[by_id, "cell"].to_numpy(dtype=object),
                "length_m": pu.loc[by_id, "length_m"].to_numpy(dtype=float),
            }
        )
        ctx.pipe_cells = (
            pd.concat([ctx.pipe_cells, extra], ignore_index=True)
            .sort_values(["pipe_id", "cell"], kind="stable")
            .reset_index(drop=True)
        )
    return pu


def _locate_by_ids(ctx: BuildContext, pu: pd.DataFrame) -> None:
    """Locate pipes without geometry through their ids (in place).

    The representative point of such a pipe is the mid-point of the street segment its
    ``street_segment_id`` names (``location_method`` ``segment_id``; the pipe runs under that
    segment), else the median point of the breaks that carry its asset id (``breaks``);
    its cell and neighbourhood follow from the point. A pipe with neither keeps no location
    and is still a pipe unit (attributes and history).
    """
    unloc = pu["geometry"].isna().to_numpy()
    method = np.full(len(pu), "geometry", dtype=object)
    method[unloc] = None
    pu["location_method"] = method
    if not unloc.any():
        return
    assert ctx.pipes is not None, "pipe units come from pipes"
    x = pu["x"].to_numpy(dtype=float).copy()
    y = pu["y"].to_numpy(dtype=float).copy()
    seg = pu["segment_id"].to_numpy(dtype=object).copy()
    if "street_segment_id" in ctx.pipes and ctx.streets is not None and len(ctx.streets):
        sid = pd.Series(
            ctx.pipes["street_segment_id"].to_numpy(dtype=object),
            index=ctx.pipes["pipe_id"].astype(str).to_numpy(dtype=object),
        )
        own = sid.reindex(pu["unit_id"].to_numpy(dtype=object)).to_numpy(dtype=object)
        j = id_positions(
            pd.Series(own, dtype=object), ctx.streets["segment_id"].to_numpy(dtype=object)
        )
        hit = unloc & (j >= 0)
        if hit.any():
            g = from_wkb(ctx.streets["geometry"].iloc[j[hit]])
            mid = shapely.line_interpolate_point(g, 0.5, normalized=True)
            x[hit], y[hit] = shapely.get_x(mid), shapely.get_y(mid)
            seg[hit] = ctx.streets["segment_id"].astype(str).to_numpy(dtype=object)[j[hit]]
            method[hit] = "segment_id"
        unknown = unloc & (j < 0) & pd.notna(own)
        if unknown.any():
            ctx.warnings.append(
                f"{int(unknown.sum())} pipes without geometry name a street segment id that is not "
                f"in the street layer (e.g. {', '.join(map(str, own[unknown][:3]))}): located "
                "through their breaks instead, when they have any"
            )
    rest = unloc & pd.isna(method)
    if rest.any() and "asset_id" in ctx.breaks and len(ctx.breaks):
        keys = pu["asset_id"].to_numpy(dtype=object).copy()
        keys[~rest] = None
        k = id_positions(ctx.breaks["asset_id"], keys)
        ok = k >= 0
        if ok.any():
            med = (
                pd.DataFrame(
                    {
                        "k": k[ok],
                        "x": ctx.breaks["x"].to_numpy(dtype=float)[ok],
                        "y": ctx.breaks["y"].to_numpy(dtype=float)[ok],
                    }
                )
                .groupby("k", sort=True)
                .median()
            )
            rows = med.index.to_numpy(dtype=np.int64)
            x[rows], y[rows] = med["x"].to_numpy(), med["y"].to_numpy()
            method[rows] = "breaks"
    moved = unloc & pd.notna(method)
    if moved.any():
        where = locate_points(x[moved], y[moved], ctx.nb_ids, ctx.nb_geoms, ctx.res)
        pu.loc[moved, "x"], pu.loc[moved, "y"] = x[moved], y[moved]
        for c, v in where.items():
            pu.loc[moved, c] = v
    pu["segment_id"] = seg
    pu["location_method"] = method
    by = pd.Series(method[unloc]).value_counts()
    ctx.warnings.append(
        f"pipes without geometry: {int(by.get('segment_id', 0))} located through their street "
        f"segment id, {int(by.get('breaks', 0))} through the breaks carrying their asset id, "
        f"{int(unloc.sum() - by.sum())} without location (no cell, street or neighbourhood; "
        "still pipe units); none has spatial neighbours"
    )


def _build_streets(ctx: BuildContext) -> pd.DataFrame | None:
    if ctx.streets is None or not len(ctx.streets):
        return None
    su = _units_of(
        map_blocks(
            street_units,
            ctx.streets,
            (ctx.nb_ids, ctx.nb_geoms, ctx.res),
            rows=ctx.partition_rows,
            client=ctx.client,
        )
    )
    pu = ctx.units.get("pipe")
    if pu is not None and (
        pu["geometry"].notna().any() or (pu["location_method"] == "segment_id").any()
    ):
        _apportion_pipes_to_streets(ctx, pu, su)
    return su


def _apportion_pipes_to_streets(ctx: BuildContext, pu: pd.DataFrame, su: pd.DataFrame) -> None:
    """The street segment each pipe runs under and the pipe km per segment (in place).

    A located pipe runs under the segment whose corridor holds most of it (method
    ``overlap``); a pipe without geometry under the segment its id names (``segment_id``).
    """
    half_width = ctx.settings.street_half_width_m
    by_id = (pu["location_method"] == "segment_id").to_numpy()
    id_seg = pu["segment_id"].to_numpy(dtype=object).copy()
    streets = pd.DataFrame(
        {"segment_id": su["unit_id"], "is_street": su["is_street"], "geometry": su["geometry"]}
    )
    if ctx.client is None:
        ps = pipes_to_streets(
            pd.DataFrame({"pipe_id": pu["unit_id"], "geometry": pu["geometry"]}),
            streets,
            half_width_m=half_width,
        )
    else:
        ps = pipes_to_streets_partitioned(
            pd.DataFrame(
                {"pipe_id": pu["unit_id"], "geometry": pu["geometry"], "x": pu["x"], "y": pu["y"]}
            ),
            streets,
            half_width_m=half_width,
            target_rows=ctx.partition_rows,
            client=ctx.client,
            report=ctx.partitions,
        )
    del streets
    ps["method"] = ps["segment_id"].notna().map({True: "overlap", False: None}).astype(object)
    if by_id.any():
        ps.loc[by_id, "segment_id"] = id_seg[by_id]
        ps.loc[by_id, "overlap_m"] = pu.loc[by_id, "length_m"].to_numpy(dtype=float)
        ps.loc[by_id, "overlap_share"] = 1.0
        ps.loc[by_id, "method"] = "segment_id"
    ctx.pipe_streets = ps.sort_values("pipe_id", kind="stable").reset_index(drop=True)
    pu["segment_id"] = pd.Series(ps["segment_id"].to_numpy(dtype=object), index=pu.index)
    km = pd.Series(pu["length_m"].to_numpy(), index=pu.index).groupby(pu["segment_id"]).sum()
    su["pipe_km"] = km.reindex(su["unit_id"].to_numpy()).fillna(0.0).to_numpy() / 1000.0
    nostreet = int((pu["segment_id"].isna() & pu["geometry"].notna()).sum())
    if nostreet > 0:
        ctx.warnings.append(f"{nostreet} pipes run under no street segment within {half_width:g} m")


def _build_cells(ctx: BuildContext) -> pd.DataFrame | None:
    if ctx.service_area is None:
        return None
    ctx.grid = hexgrid.grid_cover(ctx.service_area, ctx.res)
    return cell_units(
        ctx.grid,
        ctx.res,
        ctx.settings.parent_resolution,
        ctx.nb_ids,
        ctx.nb_geoms,
        ctx.units.get("pipe"),
        ctx.pipe_cells,
        ctx.units.get("street"),
    )


def _build_neighbourhoods(ctx: BuildContext) -> pd.DataFrame | None:
    if ctx.neighbourhoods is None:
        return None
    return neighbourhood_units(ctx.neighbourhoods, ctx.units.get("pipe"), ctx.units.get("street"))


def _link_pipes(ctx: BuildContext, b: pd.DataFrame) -> pd.DataFrame | None:
    pu = ctx.units.get("pipe")
    if pu is None:
        return None
    p = pd.DataFrame(
        {
            "pipe_id": pu["unit_id"],
            "asset_id": pu["asset_id"],
            "geometry": shapely.from_wkb(pu["geometry"].to_numpy(dtype=object)),
            "install_year": pu["install_year"],
            "removal_year": pu["removal_year"],
            "material": pu["material"],
            "diameter_mm": pu["diameter_mm"],
        }
    )
    links = _links(
        ctx, link_breaks_to_pipes, link_breaks_to_pipes_partitioned, b, p,
        ctx.settings.pipe_tolerance_m,
    )  # fmt: skip
    _warn_unknown_ids(ctx, b, links, "asset_id", "an asset id", "pipe inventory")
    return links


def _links(
    ctx: BuildContext,
    whole: Callable[..., pd.DataFrame],
    partitioned: Callable[..., pd.DataFrame],
    breaks: pd.DataFrame,
    targets: pd.DataFrame,
    tolerance_m: float,
) -> pd.DataFrame:
    """The links of ``breaks`` to ``targets``: the whole-city function in this process, or
    its partitioned twin on the context's cluster (the same rows)."""
    if ctx.client is None:
        return whole(breaks, targets, tolerance_m=tolerance_m)
    return partitioned(
        breaks,
        targets,
        tolerance_m=tolerance_m,
        target_rows=ctx.partition_rows,
        client=ctx.client,
        report=ctx.partitions,
    )


def _link_streets(ctx: BuildContext, b: pd.DataFrame) -> pd.DataFrame | None:
    su = ctx.units.get("street")
    if su is None:
        return None
    s = pd.DataFrame(
        {
            "segment_id": su["unit_id"],
            "is_street": su["is_street"],
            "geometry": shapely.from_wkb(su["geometry"].to_numpy(dtype=object)),
        }
    )
    links = _links(
        ctx, link_breaks_to_streets, link_breaks_to_streets_partitioned, b, s,
        ctx.settings.street_tolerance_m,
    )  # fmt: skip
    _warn_unknown_ids(ctx, b, links, "street_segment_id", "a street segment id", "street layer")
    return links


def _warn_unknown_ids(
    ctx: BuildContext, b: pd.DataFrame, links: pd.DataFrame, col: str, what: str, where: str
) -> None:
    """Warn about breaks whose id names no unit: they fell back to spatial matching."""
    if col not in b:
        return
    ids = b[col].astype(object)
    has = (ids.notna() & (ids.astype(str).str.strip() != "")).to_numpy()
    by_id = links["method"].isin(["asset_id", "segment_id"]).to_numpy()
    unknown = has & ~by_id
    if unknown.any():
        spatial = int((unknown & (links["status"] == "matched").to_numpy()).sum())
        eg = ", ".join(map(str, pd.unique(ids[unknown])[:3]))
        ctx.warnings.append(
            f"{int(unknown.sum())} breaks carry {what} not in the {where} (e.g. {eg}): "
            f"{spatial} matched spatially instead, {int(unknown.sum()) - spatial} unmatched"
        )


def _link_cells(ctx: BuildContext, b: pd.DataFrame) -> pd.DataFrame | None:
    if "cell" not in ctx.units:
        return None
    cells = hexgrid.points_to_cells(
        b["lon"].to_numpy(dtype=float), b["lat"].to_numpy(dtype=float), ctx.res
    )
    return link_breaks_to_cells(b, cells, set(ctx.grid.tolist()))


def _link_neighbourhoods(ctx: BuildContext, b: pd.DataFrame) -> pd.DataFrame | None:
    if "neighbourhood" not in ctx.units:
        return None
    return link_breaks_to_polygons(b, ctx.nb_ids, ctx.nb_geoms, "neighbourhood")


def _link_breaks(ctx: BuildContext) -> pd.DataFrame:
    """Links of every break to every unit type, ordered by break then registry order."""
    b = ctx.breaks[["break_id", "x", "y", "year", "lon", "lat"]].copy()
    for c in ("asset_id", "street_segment_id", "material", "diameter_mm"):
        if c in ctx.breaks:
            b[c] = ctx.breaks[c].to_numpy()
    parts = []
    for name in UNIT_TYPES:
        t0 = time.perf_counter()
        parts.append(UNIT_BUILDERS[name].link(ctx, b))
        ctx.timings[f"link {name}"] = round(time.perf_counter() - t0, 3)
    links = pd.concat([p for p in parts if p is not None], ignore_index=True)
    order = {u: i for i, u in enumerate(UNIT_TYPES)}
    links["_o"] = links["unit_type"].map(order)
    return (
        links.sort_values(["break_id", "_o"], kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )


register_unit_builder("pipe", _build_pipes, _link_pipes)
register_unit_builder("street", _build_streets, _link_streets)
register_unit_builder("cell", _build_cells, _link_cells)
register_unit_builder("neighbourhood", _build_neighbourhoods, _link_neighbourhoods)
