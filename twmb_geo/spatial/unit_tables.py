"""The unit tables: pipes, street segments, H3 cells and neighbourhoods from curated tables.

Every unit table has a stable key (``unit_id``), a representative point (``x``/``y`` in the
analysis CRS, ``centroid_lon``/``lat``), its neighbourhood and H3 cell, and an exposure
(length or area); :mod:`twmb_geo.spatial.units` registers these builders.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from ..core.crs import WGS84, analysis_crs, transform_xy
from ..core.vocab import MATERIAL_GROUPS
from . import hexgrid

__all__ = [
    "cell_units",
    "from_wkb",
    "locate_points",
    "neighbourhood_units",
    "pipe_units",
    "street_units",
    "unlocated_pipes_warning",
]


def from_wkb(col: pd.Series) -> np.ndarray:
    return shapely.from_wkb(col.to_numpy(dtype=object))


def _lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lon, lat, _ = transform_xy(x, y, analysis_crs(), WGS84)
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


def _largest_overlap(polys: np.ndarray, ids: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """The id of the area polygon covering the largest share of each polygon (lowest id on
    an exact tie; None where none overlaps)."""
    out = np.full(len(polys), None, dtype=object)
    if len(polys) == 0 or len(areas) == 0:
        return out
    pi, aj = shapely.STRtree(areas).query(polys, predicate="intersects")
    if len(pi) == 0:
        return out
    cand = pd.DataFrame(
        {
            "p": pi,
            "id": np.asarray(ids, dtype=object)[aj].astype(str),
            "a": shapely.area(shapely.intersection(polys[pi], areas[aj])),
        }
    )
    cand = cand[cand["a"] > 0]
    best = cand.sort_values(
        ["p", "a", "id"], ascending=[True, False, True], kind="stable"
    ).drop_duplicates("p")
    out[best["p"].to_numpy()] = best["id"].to_numpy(dtype=object)
    return out


def _cell_of(x: np.ndarray, y: np.ndarray, res: int) -> np.ndarray:
    lon, lat = _lonlat(x, y)
    cells = hexgrid.points_to_cells(lon, lat, res)
    out = np.full(len(x), None, dtype=object)
    ok = cells != 0
    out[ok] = hexgrid.cell_str(cells[ok])
    return out


def locate_points(
    x: np.ndarray, y: np.ndarray, nb_ids: np.ndarray, nb_geoms: np.ndarray, res: int
) -> dict[str, np.ndarray]:
    """WGS84 position, neighbourhood and H3 cell of points in the analysis CRS (None/NaN where not finite)."""
    lon, lat = _lonlat(x, y)
    return {
        "centroid_lon": lon,
        "centroid_lat": lat,
        "neighbourhood": _assign_polygons(x, y, nb_ids, nb_geoms),
        "cell": _cell_of(x, y, res),
    }


def neighbourhood_units(
    nb: pd.DataFrame, pipes: pd.DataFrame | None, streets: pd.DataFrame | None
) -> pd.DataFrame:
    geoms = from_wkb(nb["geometry"])
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


def unlocated_pipes_warning(n: int) -> str:
    """What a project is told about its ``n`` pipes without geometry."""
    return (
        f"{n} pipes have no geometry: they are pipe units without location; "
        "skipped for: H3 cells, street segments, neighbourhoods, spatial graphs and lags, "
        "break-to-pipe spatial matching"
    )


def pipe_units(
    pipes: pd.DataFrame, nb_ids: np.ndarray, nb_geoms: np.ndarray, res: int, warnings: list[str]
) -> pd.DataFrame:
    geoms = (
        pipes["geometry"]
        .astype(object)
        .map(lambda v: None if v is None or v is pd.NA else bytes(v))
        .to_numpy(dtype=object)
    )
    g = shapely.from_wkb(geoms)
    located = ~(shapely.is_missing(g) | shapely.is_empty(g))
    x = np.full(len(g), np.nan)
    y = np.full(len(g), np.nan)
    if located.any():
        mid = shapely.line_interpolate_point(g[located], 0.5, normalized=True)
        x[located], y[located] = shapely.get_x(mid), shapely.get_y(mid)
    lon, lat = _lonlat(x, y)
    if not located.all():
        warnings.append(unlocated_pipes_warning(int((~located).sum())))
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
            "material_class": pipes["material_class"].to_numpy(dtype=object),
            "material_desc": pipes["material_desc"].to_numpy(dtype=object),
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


def street_units(
    streets: pd.DataFrame, nb_ids: np.ndarray, nb_geoms: np.ndarray, res: int
) -> pd.DataFrame:
    g = from_wkb(streets["geometry"])
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


def cell_units(
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
    x, y, _ = transform_xy(lon, lat, WGS84, analysis_crs())
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
            "neighbourhood": _largest_overlap(polys, nb_ids, nb_geoms),
            "geometry": shapely.to_wkb(polys),
        }
    )
    if pu is not None and len(pipe_cells):
        pc = pipe_cells.merge(
            pu[["unit_id", "material_class", "install_year"]],
            left_on="pipe_id",
            right_on="unit_id",
            how="left",
        )
        by = pc.groupby("cell")["length_m"]
        df["pipe_km"] = by.sum().reindex(ids).fillna(0.0).to_numpy() / 1000.0
        df["n_pipes"] = (
            pc.groupby("cell")["pipe_id"].nunique().reindex(ids).fillna(0).to_numpy(dtype=np.int32)
        )
        mat = pc["material_class"].astype(object)
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
