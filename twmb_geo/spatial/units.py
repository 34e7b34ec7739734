"""Organise curated tables into units (pipe, street segment, H3 cell, neighbourhood) and links.

One unit abstraction: every unit table has a stable key (``unit_id``), a geometry (optional
for pipes), a representative point (``x``/``y`` in EPSG:2952, ``centroid_lon``/``lat``), its
neighbourhood and H3 cell, and an exposure (length or area). Breaks are linked to every unit
type; unmatched breaks keep a link row with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from ..core.crs import TARGET_CRS, WGS84, transform_xy
from ..errors import ConfigError, InputDataError
from . import hexgrid
from .snapping import (
    link_breaks_to_cells,
    link_breaks_to_pipes,
    link_breaks_to_polygons,
    link_breaks_to_streets,
    pipes_to_streets,
)

__all__ = ["UNIT_TYPES", "Organised", "SpatialSettings", "organise"]

log = logging.getLogger(__name__)

UNIT_TYPES = ("pipe", "street", "cell", "neighbourhood")
MATERIAL_GROUPS = {
    "ci": ("CI", "CICL"),
    "di": ("DIP", "DICL"),
    "pvc": ("PVC", "PVCO", "PE", "HDPE"),
    "ac": ("AC",),
    "steel": ("SP", "SPCL"),
    "concrete": ("CPP", "PCPP", "CONC", "CONP", "CP"),
}


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


@dataclass
class Organised:
    """Units, break links and pipe apportionments produced by :func:`organise`."""

    units: dict[str, pd.DataFrame]
    links: pd.DataFrame
    pipe_cells: pd.DataFrame
    pipe_streets: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

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


def _from_wkb(col: pd.Series) -> np.ndarray:
    return shapely.from_wkb(col.to_numpy(dtype=object))


def _lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lon, lat, _ = transform_xy(x, y, TARGET_CRS, WGS84)
    return lon, lat


def _assign_polygons(
    x: np.ndarray, y: np.ndarray, ids: np.ndarray, polys: np.ndarray
) -> np.ndarray:
    """The polygon id containing each point (lowest id on shared edges; None outside)."""
    out = np.full(len(x), None, dtype=object)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any() or len(polys) == 0:
        return out
    pts = shapely.points(x[ok], y[ok])
    tree = shapely.STRtree(polys)
    pi, pj = tree.query(pts, predicate="intersects")
    cand = pd.DataFrame({"p": pi, "id": np.asarray(ids, dtype=object)[pj].astype(str)})
    best = cand.sort_values(["p", "id"], kind="stable").drop_duplicates("p")
    idx = np.flatnonzero(ok)[best["p"].to_numpy()]
    out[idx] = best["id"].to_numpy(dtype=object)
    return out


def _cell_of(x: np.ndarray, y: np.ndarray, res: int) -> np.ndarray:
    lon, lat = _lonlat(x, y)
    cells = hexgrid.points_to_cells(lon, lat, res)
    out = np.full(len(x), None, dtype=object)
    ok = cells != 0
    out[ok] = hexgrid.cell_str(cells[ok])
    return out


def _neighbourhood_units(
    nb: pd.DataFrame, pipes: pd.DataFrame | None, streets: pd.DataFrame | None
) -> pd.DataFrame:
    geoms = _from_wkb(nb["geometry"])
    rep = shapely.point_on_surface(geoms)
    x, y = shapely.get_x(rep), shapely.get_y(rep)
    df = pd.DataFrame(
        {
            "unit_id": nb["area_code"].astype(str).to_numpy(dtype=object),
            "name": nb["area_name"].to_numpy(dtype=object),
            "area_km2": nb["area_km2"].to_numpy(dtype=float),
            "x": x,
            "y": y,
            "centroid_lon": nb["centroid_lon"].to_numpy(dtype=float),
            "centroid_lat": nb["centroid_lat"].to_numpy(dtype=float),
            "geometry": nb["geometry"].to_numpy(dtype=object),
        }
    )
    df["pipe_km"] = (
        _sum_by(pipes, "neighbourhood", "length_m", df["unit_id"]) / 1000.0
        if pipes is not None
        else np.nan
    )
    df["street_km"] = (
        _sum_by(streets, "neighbourhood", "length_m", df["unit_id"]) / 1000.0
        if streets is not None
        else np.nan
    )
    return df.sort_values("unit_id", kind="stable").reset_index(drop=True)


def _sum_by(df: pd.DataFrame, key: str, value: str, ids: pd.Series) -> np.ndarray:
    s = df.groupby(key)[value].sum()
    return s.reindex(ids.to_numpy()).fillna(0.0).to_numpy(dtype=float)


def organise(
    breaks: pd.DataFrame,
    neighbourhoods: pd.DataFrame,
    service_area: shapely.Geometry,
    *,
    pipes: pd.DataFrame | None = None,
    streets: pd.DataFrame | None = None,
    settings: SpatialSettings | None = None,
) -> Organised:
    """Build the unit tables and break links from curated tables (as read from the store).

    Parameters
    ----------
    breaks, neighbourhoods
        Curated ``breaks`` and ``neighbourhoods`` tables (WKB geometry, EPSG:2952).
    service_area
        The unbuffered service-area boundary (EPSG:2952): every H3 cell touching it is a unit.
    pipes, streets
        Curated ``pipes`` and ``street_segments`` tables, when the project has them. Pipes
        without geometry are kept as units; location-based work skips them with a warning.
    """
    st = settings or SpatialSettings()
    warnings: list[str] = []
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
    res = st.h3_resolution
    nb_geoms = _from_wkb(neighbourhoods["geometry"])
    nb_ids = neighbourhoods["area_code"].astype(str).to_numpy(dtype=object)
    units: dict[str, pd.DataFrame] = {}
    pipe_cells = pd.DataFrame(
        {
            "pipe_id": pd.Series(dtype=object),
            "cell": pd.Series(dtype=object),
            "length_m": pd.Series(dtype=float),
        }
    )
    pipe_streets = pd.DataFrame(
        {
            "pipe_id": pd.Series(dtype=object),
            "segment_id": pd.Series(dtype=object),
            "overlap_m": pd.Series(dtype=float),
            "overlap_share": pd.Series(dtype=float),
        }
    )

    # -- pipes --------------------------------------------------------------------------
    pu = None
    if pipes is not None and len(pipes):
        pu = _pipe_units(pipes, nb_ids, nb_geoms, res, warnings)
        located = pu["geometry"].notna().to_numpy()
        if located.any():
            g = shapely.from_wkb(pu.loc[located, "geometry"].to_numpy(dtype=object))
            pc = hexgrid.lines_to_cells(
                g, res, ids=pu.loc[located, "unit_id"].to_numpy(dtype=object)
            )
            pipe_cells = (
                pd.DataFrame(
                    {
                        "pipe_id": pc["line"].to_numpy(dtype=object),
                        "cell": hexgrid.cell_str(pc["cell"].to_numpy(dtype=np.uint64)),
                        "length_m": pc["length_m"].to_numpy(dtype=float),
                    }
                )
                .sort_values(["pipe_id", "cell"], kind="stable")
                .reset_index(drop=True)
            )

    # -- streets ------------------------------------------------------------------------
    su = None
    if streets is not None and len(streets):
        su = _street_units(streets, nb_ids, nb_geoms, res)
        if pu is not None and pu["geometry"].notna().any():
            ps = pipes_to_streets(
                pd.DataFrame(
                    {
                        "pipe_id": pu["unit_id"],
                        "geometry": shapely.from_wkb(pu["geometry"].to_numpy(dtype=object)),
                    }
                ),
                pd.DataFrame(
                    {
                        "segment_id": su["unit_id"],
                        "is_street": su["is_street"],
                        "geometry": shapely.from_wkb(su["geometry"].to_numpy(dtype=object)),
                    }
                ),
                half_width_m=st.street_half_width_m,
            )
            pipe_streets = ps.sort_values("pipe_id", kind="stable").reset_index(drop=True)
            pu["segment_id"] = pd.Series(ps["segment_id"].to_numpy(dtype=object), index=pu.index)
            km = (
                pd.Series(pu["length_m"].to_numpy(), index=pu.index).groupby(pu["segment_id"]).sum()
            )
            su["pipe_km"] = km.reindex(su["unit_id"].to_numpy()).fillna(0.0).to_numpy() / 1000.0
            nostreet = int(pu["segment_id"].isna().sum() - (~pu["geometry"].notna()).sum())
            if nostreet > 0:
                warnings.append(
                    f"{nostreet} pipes run under no street segment within {st.street_half_width_m:g} m"
                )
        units["street"] = su
    if pu is not None:
        units["pipe"] = pu

    # -- cells --------------------------------------------------------------------------
    grid = hexgrid.grid_cover(service_area, res)
    units["cell"] = _cell_units(
        grid, res, st.parent_resolution, nb_ids, nb_geoms, pu, pipe_cells, su
    )

    # -- neighbourhoods -----------------------------------------------------------------
    units["neighbourhood"] = _neighbourhood_units(
        neighbourhoods,
        pu,
        su,
    )

    # -- break links --------------------------------------------------------------------
    links = _link_breaks(breaks, units, grid, res, st, nb_ids, nb_geoms)
    return Organised(
        units=units,
        links=links,
        pipe_cells=pipe_cells,
        pipe_streets=pipe_streets,
        warnings=warnings,
    )


def _pipe_units(
    pipes: pd.DataFrame, nb_ids: np.ndarray, nb_geoms: np.ndarray, res: int, warnings: list[str]
) -> pd.DataFrame:
    geoms = pipes["geometry"].map(lambda v: None if v is None else bytes(v)).to_numpy(dtype=object)
    g = shapely.from_wkb(geoms)
    located = ~(shapely.is_missing(g) | shapely.is_empty(g))
    x = np.full(len(g), np.nan)
    y = np.full(len(g), np.nan)
    if located.any():
        mid = shapely.line_interpolate_point(g[located], 0.5, normalized=True)
        x[located], y[located] = shapely.get_x(mid), shapely.get_y(mid)
    lon, lat = _lonlat(x, y)
    if not located.all():
        warnings.append(
            f"{int((~located).sum())} pipes have no geometry: they are pipe units without location; "
            "skipped for: H3 cells, street segments, neighbourhoods, spatial graphs and lags, break-to-pipe spatial matching"
        )
    length = pipes["length_m"].to_numpy(dtype=float, na_value=np.nan)
    if "measured_length_m" in pipes:
        length = np.where(
            np.isnan(length),
            pipes["measured_length_m"].to_numpy(dtype=float, na_value=np.nan),
            length,
        )
    df = pd.DataFrame(
        {
            "unit_id": pipes["pipe_id"].astype(str).to_numpy(dtype=object),
            "asset_id": pipes["asset_id"].to_numpy(dtype=object)
            if "asset_id" in pipes
            else pipes["pipe_id"].to_numpy(dtype=object),
            "material": pipes["material"].to_numpy(dtype=object),
            "diameter_mm": pipes["diameter_mm"].to_numpy(dtype=float, na_value=np.nan),
            "install_year": pipes["install_year"].to_numpy(dtype=float, na_value=np.nan),
            "removal_year": pipes["removal_year"].to_numpy(dtype=float, na_value=np.nan),
            "lined": pipes["lined"].to_numpy(dtype=bool) if "lined" in pipes else False,
            "length_m": length,
            "x": x,
            "y": y,
            "centroid_lon": lon,
            "centroid_lat": lat,
            "neighbourhood": _assign_polygons(x, y, nb_ids, nb_geoms),
            "cell": _cell_of(x, y, res),
            "segment_id": np.full(len(g), None, dtype=object),
            "geometry": np.where(located, geoms, None),
        }
    )
    return df.sort_values("unit_id", kind="stable").reset_index(drop=True)


def _street_units(
    streets: pd.DataFrame, nb_ids: np.ndarray, nb_geoms: np.ndarray, res: int
) -> pd.DataFrame:
    g = _from_wkb(streets["geometry"])
    mid = shapely.line_interpolate_point(g, 0.5, normalized=True)
    x, y = shapely.get_x(mid), shapely.get_y(mid)
    lon, lat = _lonlat(x, y)
    df = pd.DataFrame(
        {
            "unit_id": streets["segment_id"].astype(str).to_numpy(dtype=object),
            "name": streets["linear_name_full"].to_numpy(dtype=object),
            "feature_code_desc": streets["feature_code_desc"].to_numpy(dtype=object),
            "is_street": streets["is_street"].to_numpy(dtype=bool),
            "from_node": streets["from_node"].to_numpy(dtype=object),
            "to_node": streets["to_node"].to_numpy(dtype=object),
            "length_m": streets["length_m"].to_numpy(dtype=float),
            "x": x,
            "y": y,
            "centroid_lon": lon,
            "centroid_lat": lat,
            "neighbourhood": _assign_polygons(x, y, nb_ids, nb_geoms),
            "cell": _cell_of(x, y, res),
            "pipe_km": np.nan,
            "geometry": streets["geometry"].to_numpy(dtype=object),
        }
    )
    return df.sort_values("unit_id", kind="stable").reset_index(drop=True)


def _cell_units(
    grid: np.ndarray,
    res: int,
    parent_res: int,
    nb_ids: np.ndarray,
    nb_geoms: np.ndarray,
    pu: pd.DataFrame | None,
    pipe_cells: pd.DataFrame,
    su: pd.DataFrame | None,
) -> pd.DataFrame:
    polys = hexgrid.cell_polygons(grid)
    lon, lat = hexgrid.cell_centroids(grid)
    x, y, _ = transform_xy(lon, lat, WGS84, TARGET_CRS)
    ids = hexgrid.cell_str(grid)
    df = pd.DataFrame(
        {
            "unit_id": ids,
            "h3_index": grid.astype(np.int64),
            "resolution": np.int32(res),
            "parent_cell": hexgrid.cell_str(hexgrid.cell_parents(grid, parent_res)),
            "area_km2": shapely.area(polys) / 1e6,
            "x": x,
            "y": y,
            "centroid_lon": lon,
            "centroid_lat": lat,
            "neighbourhood": _assign_polygons(x, y, nb_ids, nb_geoms),
            "geometry": shapely.to_wkb(polys),
        }
    )
    if pu is not None and len(pipe_cells):
        pc = pipe_cells.merge(
            pu[["unit_id", "material", "install_year"]],
            left_on="pipe_id",
            right_on="unit_id",
            how="left",
        )
        by = pc.groupby("cell")["length_m"]
        df["pipe_km"] = by.sum().reindex(ids).fillna(0.0).to_numpy() / 1000.0
        df["n_pipes"] = (
            pc.groupby("cell")["pipe_id"].nunique().reindex(ids).fillna(0).to_numpy(dtype=np.int32)
        )
        mat = pc["material"].astype(object)
        for group, codes in MATERIAL_GROUPS.items():
            km = pc["length_m"].where(mat.isin(codes), 0.0).groupby(pc["cell"]).sum()
            df[f"pipe_km_{group}"] = km.reindex(ids).fillna(0.0).to_numpy() / 1000.0
        yr = pc["install_year"].astype(float)
        w = pc["length_m"].where(yr.notna(), 0.0)
        num = (yr.fillna(0.0) * w).groupby(pc["cell"]).sum()
        den = w.groupby(pc["cell"]).sum()
        mean_year = (num / den.where(den > 0)).reindex(ids)
        df["mean_install_year"] = mean_year.to_numpy(dtype=float)
    else:
        df["pipe_km"] = np.nan
        df["n_pipes"] = 0
        for group in MATERIAL_GROUPS:
            df[f"pipe_km_{group}"] = np.nan
        df["mean_install_year"] = np.nan
    if su is not None:
        km = su.groupby("cell")["length_m"].sum() / 1000.0
        df["street_km"] = km.reindex(ids).fillna(0.0).to_numpy()
    else:
        df["street_km"] = np.nan
    return df.sort_values("unit_id", kind="stable").reset_index(drop=True)


def _link_breaks(
    breaks: pd.DataFrame,
    units: dict[str, pd.DataFrame],
    grid: np.ndarray,
    res: int,
    st: SpatialSettings,
    nb_ids: np.ndarray,
    nb_geoms: np.ndarray,
) -> pd.DataFrame:
    b = breaks[["break_id", "x", "y", "year", "lon", "lat"]].copy()
    for c in ("asset_id", "material", "diameter_mm"):
        if c in breaks:
            b[c] = breaks[c].to_numpy()
    parts = []
    if "pipe" in units:
        pu = units["pipe"]
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
        parts.append(link_breaks_to_pipes(b, p, tolerance_m=st.pipe_tolerance_m))
    if "street" in units:
        su = units["street"]
        s = pd.DataFrame(
            {
                "segment_id": su["unit_id"],
                "is_street": su["is_street"],
                "geometry": shapely.from_wkb(su["geometry"].to_numpy(dtype=object)),
            }
        )
        parts.append(link_breaks_to_streets(b, s, tolerance_m=st.street_tolerance_m))
    cells = hexgrid.points_to_cells(
        b["lon"].to_numpy(dtype=float), b["lat"].to_numpy(dtype=float), res
    )
    parts.append(link_breaks_to_cells(b, cells, set(grid.tolist())))
    parts.append(link_breaks_to_polygons(b, nb_ids, nb_geoms, "neighbourhood"))
    links = pd.concat(parts, ignore_index=True)
    order = {u: i for i, u in enumerate(UNIT_TYPES)}
    links["_o"] = links["unit_type"].map(order)
    links = (
        links.sort_values(["break_id", "_o"], kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )
    return links
