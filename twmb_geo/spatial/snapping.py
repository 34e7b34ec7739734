"""Link breaks to the units they belong to: pipes, street segments, H3 cells, neighbourhoods.

Every break gets one link row per unit type, matched or not: an unmatched break keeps its
row with the reason, so nothing is dropped. Matching is vectorised with shapely's STRtree.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import shapely

from .hexgrid import cell_str

__all__ = [
    "LINK_COLUMNS",
    "id_positions",
    "link_breaks_to_cells",
    "link_breaks_to_pipes",
    "link_breaks_to_polygons",
    "link_breaks_to_streets",
    "pipes_to_streets",
]

log = logging.getLogger(__name__)

LINK_COLUMNS = [
    "break_id",
    "unit_type",
    "unit_id",
    "method",
    "distance_m",
    "candidates",
    "status",
    "reason",
]


def _links(break_ids: np.ndarray, unit_type: str) -> pd.DataFrame:
    n = len(break_ids)
    return pd.DataFrame(
        {
            "break_id": break_ids,
            "unit_type": unit_type,
            "unit_id": np.full(n, None, dtype=object),
            "method": np.full(n, None, dtype=object),
            "distance_m": np.full(n, np.nan),
            "candidates": np.zeros(n, dtype=np.int32),
            "status": np.full(n, "unmatched", dtype=object),
            "reason": np.full(n, None, dtype=object),
        }
    )


def _norm_text(a: np.ndarray | pd.Series | None, n: int) -> np.ndarray:
    if a is None:
        return np.full(n, None, dtype=object)
    s = pd.Series(a, dtype=object).map(
        lambda v: None if v is None or v != v else str(v).strip().upper()
    )
    return s.to_numpy(dtype=object)


def id_positions(values: pd.Series | None, keys: np.ndarray) -> np.ndarray:
    """Position in ``keys`` of each id in ``values`` (-1 when absent or unknown).

    Ids compare as trimmed text; the first of duplicated keys wins.
    """
    if values is None:
        return np.zeros(0, dtype=np.int64)
    k = pd.Series(keys, dtype=object).map(lambda v: None if v is None or v != v else str(v).strip())
    index = pd.Series(np.arange(len(k)), index=k.to_numpy(dtype=object))
    index = index[index.index.notna() & ~index.index.duplicated()]
    ids = pd.Series(values, dtype=object).map(
        lambda v: None if v is None or v != v else (str(v).strip() or None)
    )
    j = ids.map(index).to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(j), -1, j).astype(np.int64)


def _has_id(values: pd.Series | None, n: int) -> np.ndarray:
    """Rows whose id is present (not null, not blank)."""
    if values is None:
        return np.zeros(n, dtype=bool)
    s = pd.Series(values, dtype=object)
    return (s.notna() & (s.astype(str).str.strip() != "")).to_numpy(dtype=bool)


def _id_distance(pts_x: np.ndarray, pts_y: np.ndarray, geoms: np.ndarray) -> np.ndarray:
    """Distance from each point to its id-linked geometry (NaN where the unit has none)."""
    g = np.asarray(geoms, dtype=object)
    ok = ~(shapely.is_missing(g) | shapely.is_empty(g)) & np.isfinite(pts_x) & np.isfinite(pts_y)
    d = np.full(len(g), np.nan)
    if ok.any():
        d[ok] = shapely.distance(shapely.points(pts_x[ok], pts_y[ok]), g[ok])
    return d


def link_breaks_to_pipes(
    breaks: pd.DataFrame,
    pipes: pd.DataFrame,
    *,
    tolerance_m: float = 25.0,
    tie_m: float = 1.0,
    any_located: bool | None = None,
) -> pd.DataFrame:
    """Match each break to one pipe.

    Parameters
    ----------
    breaks
        ``break_id``, ``x``, ``y`` (the analysis CRS), ``year``; optional ``asset_id``,
        ``material``, ``diameter_mm`` (used when the record carries them).
    pipes
        ``pipe_id``, ``geometry`` (shapely, the analysis CRS, may be None), ``install_year``,
        ``removal_year`` (NaN when in service); optional ``asset_id``, ``material``,
        ``diameter_mm``.
    tolerance_m
        Largest break-to-pipe distance for a spatial match.
    tie_m
        Candidates within ``tie_m`` of the nearest count as tied; ties go to the pipe whose
        material/diameter agree with the break record, then the nearest, then the lowest id.
    any_located
        Whether any pipe of the whole inventory has geometry (default: any of ``pipes``);
        given by a caller that passes one spatial partition's pipes, so the reasons are
        those of the whole city.

    Returns
    -------
    One row per break (``LINK_COLUMNS``). Methods: ``asset_id`` (the record names a known
    asset: the id link wins over location; ``distance_m`` is the distance to that pipe when
    it has geometry), ``nearest`` (spatial, within ``tolerance_m``). A break whose asset id is
    not in the inventory falls back to spatial matching. Reasons when unmatched:
    ``no_pipe_in_tolerance``, ``no_pipe_in_service`` (pipes are near but none was in service
    in the break's year), ``pipes_without_geometry``, ``asset_id_unknown`` (the break's
    asset id is not in the inventory and no pipe has geometry to fall back on).
    """
    out = _links(breaks["break_id"].to_numpy(dtype=object), "pipe")
    n = len(breaks)
    if n == 0:
        return out
    year = breaks["year"].to_numpy(dtype=float)
    inst = pipes["install_year"].to_numpy(dtype=float, na_value=np.nan)
    rem = pipes["removal_year"].to_numpy(dtype=float, na_value=np.nan)
    pid = pipes["pipe_id"].to_numpy(dtype=object)
    done = np.zeros(n, dtype=bool)

    geoms = pipes["geometry"].to_numpy(dtype=object)
    with_id = _has_id(breaks.get("asset_id"), n)
    if with_id.any():
        key = pipes["asset_id"] if "asset_id" in pipes else pipes["pipe_id"]
        j = id_positions(breaks["asset_id"], key.to_numpy(dtype=object))
        done |= _mark_id_links(out, breaks, j, pid, geoms, "asset_id")

    has_geom = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    todo = np.flatnonzero(~done)
    if not (has_geom.any() if any_located is None else any_located):
        out.loc[todo, "reason"] = np.where(
            with_id[todo], "asset_id_unknown", "pipes_without_geometry"
        )
        return out
    if not has_geom.any():  # located pipes exist, none near this partition
        out.loc[todo, "reason"] = "no_pipe_in_tolerance"
        return out
    located = np.flatnonzero(has_geom)
    tree = shapely.STRtree(geoms[located])
    bx, by = breaks["x"].to_numpy(dtype=float), breaks["y"].to_numpy(dtype=float)
    todo = todo[np.isfinite(bx[todo]) & np.isfinite(by[todo])]  # no location: no spatial match
    pts = shapely.points(bx[todo], by[todo])
    bi, pj = tree.query(pts, predicate="dwithin", distance=tolerance_m)
    pj = located[pj]
    cand = pd.DataFrame({"b": todo[bi], "p": pj})
    cand["d"] = shapely.distance(pts[bi], geoms[pj])
    cand["alive"] = (inst[pj] <= year[todo[bi]]) | np.isnan(inst[pj])
    cand["alive"] &= np.isnan(rem[pj]) | (year[todo[bi]] < rem[pj])
    near_any = np.zeros(n, dtype=bool)
    near_any[cand["b"].to_numpy()] = True
    cand = cand[cand["alive"]]
    counts = cand.groupby("b").size()
    out.loc[counts.index.to_numpy(), "candidates"] = counts.to_numpy(dtype=np.int32)
    if len(cand):
        cand["dmin"] = cand.groupby("b")["d"].transform("min")
        cand = cand[cand["d"] <= cand["dmin"] + tie_m].copy()
        agree = np.zeros(len(cand), dtype=np.int8)
        if "material" in breaks and "material" in pipes:
            bm = _norm_text(breaks["material"].to_numpy(dtype=object), n)[cand["b"].to_numpy()]
            pm = _norm_text(pipes["material"].to_numpy(dtype=object), len(pipes))[
                cand["p"].to_numpy()
            ]
            agree += ((bm == pm) & pd.notna(bm)).astype(np.int8)
        if "diameter_mm" in breaks and "diameter_mm" in pipes:
            bd = breaks["diameter_mm"].to_numpy(dtype=float, na_value=np.nan)[cand["b"].to_numpy()]
            pdm = pipes["diameter_mm"].to_numpy(dtype=float, na_value=np.nan)[cand["p"].to_numpy()]
            agree += (np.abs(bd - pdm) < 1).astype(np.int8)
        cand["agree"] = agree
        cand["pid"] = pid[cand["p"].to_numpy()].astype(str)
        best = cand.sort_values(
            ["b", "agree", "d", "pid"], ascending=[True, False, True, True], kind="stable"
        )
        best = best.drop_duplicates("b")
        b = best["b"].to_numpy()
        out.loc[b, "unit_id"] = pid[best["p"].to_numpy()]
        out.loc[b, "method"] = "nearest"
        out.loc[b, "distance_m"] = best["d"].to_numpy()
        out.loc[b, "status"] = "matched"
    unmatched = (out["status"] == "unmatched").to_numpy()
    out.loc[unmatched & near_any, "reason"] = "no_pipe_in_service"
    out.loc[unmatched & ~near_any, "reason"] = "no_pipe_in_tolerance"
    return out


def _mark_id_links(
    out: pd.DataFrame,
    breaks: pd.DataFrame,
    j: np.ndarray,
    unit_ids: np.ndarray,
    geoms: np.ndarray,
    method: str,
) -> np.ndarray:
    """Record the id links ``j`` (position in ``unit_ids``, -1 for none); the mask of linked breaks."""
    hit = j >= 0
    jj = j[hit]
    out.loc[hit, "unit_id"] = unit_ids[jj]
    out.loc[hit, "method"] = method
    out.loc[hit, "status"] = "matched"
    out.loc[hit, "candidates"] = 1
    out.loc[hit, "distance_m"] = _id_distance(
        breaks["x"].to_numpy(dtype=float)[hit], breaks["y"].to_numpy(dtype=float)[hit], geoms[jj]
    )
    return hit


def link_breaks_to_streets(
    breaks: pd.DataFrame,
    streets: pd.DataFrame,
    *,
    tolerance_m: float = 50.0,
    any_streets: bool | None = None,
) -> pd.DataFrame:
    """The street segment of each break: by its segment id, else the nearest in tolerance.

    A break carrying a ``street_segment_id`` that names a segment links to it (method
    ``segment_id``, any street class; ``distance_m`` to it); an unknown or missing id falls
    back to the nearest ``is_street`` segment within ``tolerance_m`` (method ``nearest``).
    ``any_streets``: whether the whole layer has a located ``is_street`` segment (default:
    any of ``streets``), given by a caller that passes one spatial partition's segments, so
    that the reason of an unmatched break (``no_streets`` or ``no_street_in_tolerance``) is
    the whole city's.
    """
    out = _links(breaks["break_id"].to_numpy(dtype=object), "street")
    if len(breaks) == 0:
        return out
    todo = np.ones(len(breaks), dtype=bool)
    if _has_id(breaks.get("street_segment_id"), len(breaks)).any():
        j = id_positions(breaks["street_segment_id"], streets["segment_id"].to_numpy(dtype=object))
        hit = _mark_id_links(
            out,
            breaks,
            j,
            streets["segment_id"].to_numpy(dtype=object),
            streets["geometry"].to_numpy(dtype=object),
            "segment_id",
        )
        todo = ~hit
        if not todo.any():
            return out
    rest = np.flatnonzero(todo)
    spatial = _nearest_street(
        breaks.iloc[rest].reset_index(drop=True), streets, tolerance_m, any_streets
    )
    for c in LINK_COLUMNS[2:]:
        out.loc[rest, c] = spatial[c].to_numpy()
    return out


def _nearest_street(
    breaks: pd.DataFrame, streets: pd.DataFrame, tolerance_m: float, any_streets: bool | None
) -> pd.DataFrame:
    """Nearest street segment (``is_street`` only) within ``tolerance_m`` of each break."""
    out = _links(breaks["break_id"].to_numpy(dtype=object), "street")
    s = streets[streets["is_street"].astype(bool)] if "is_street" in streets else streets
    geoms = s["geometry"].to_numpy(dtype=object)
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    geoms, sid = geoms[ok], s["segment_id"].to_numpy(dtype=object)[ok]
    if len(geoms) == 0:
        out["reason"] = "no_streets" if not any_streets else "no_street_in_tolerance"
        return out
    tree = shapely.STRtree(geoms)
    bx, by = breaks["x"].to_numpy(dtype=float), breaks["y"].to_numpy(dtype=float)
    at = np.flatnonzero(np.isfinite(bx) & np.isfinite(by))  # no location: no spatial match
    pts = np.full(len(breaks), None, dtype=object)
    pts[at] = shapely.points(bx[at], by[at])
    qi, sj = tree.query_nearest(
        pts[at], max_distance=tolerance_m, return_distance=False, all_matches=True
    )
    bi = at[qi]
    cand = pd.DataFrame({"b": bi, "s": sj})
    cand["d"] = shapely.distance(pts[bi], geoms[sj])
    cand["sid"] = sid[sj].astype(str)
    best = cand.sort_values(["b", "d", "sid"], kind="stable").drop_duplicates("b")
    b = best["b"].to_numpy()
    out.loc[b, "unit_id"] = sid[best["s"].to_numpy()]
    out.loc[b, "method"] = "nearest"
    out.loc[b, "distance_m"] = best["d"].to_numpy()
    out.loc[b, "candidates"] = cand.groupby("b").size().reindex(b).to_numpy(dtype=np.int32)
    out.loc[b, "status"] = "matched"
    out.loc[out["status"] == "unmatched", "reason"] = "no_street_in_tolerance"
    return out


def link_breaks_to_cells(
    breaks: pd.DataFrame, cells: np.ndarray, grid: set[int] | None = None
) -> pd.DataFrame:
    """The H3 cell of each break (``cells`` from :func:`hexgrid.points_to_cells`)."""
    out = _links(breaks["break_id"].to_numpy(dtype=object), "cell")
    cells = np.asarray(cells, dtype=np.uint64)
    ok = cells != 0
    if grid is not None:
        ok &= np.isin(cells, np.fromiter(grid, dtype=np.uint64, count=len(grid)))
    out.loc[ok, "unit_id"] = cell_str(cells[ok])
    out.loc[ok, "method"] = "point_in_cell"
    out.loc[ok, "status"] = "matched"
    out.loc[ok, "candidates"] = 1
    out.loc[~ok, "reason"] = "outside_grid"
    return out


def link_breaks_to_polygons(
    breaks: pd.DataFrame, ids: np.ndarray, polygons: np.ndarray, unit_type: str = "neighbourhood"
) -> pd.DataFrame:
    """The polygon containing each break; on a shared edge, the lowest id; else the nearest within 500 m."""
    out = _links(breaks["break_id"].to_numpy(dtype=object), unit_type)
    if len(breaks) == 0:
        return out
    pts = shapely.points(breaks["x"].to_numpy(dtype=float), breaks["y"].to_numpy(dtype=float))
    tree = shapely.STRtree(polygons)
    bi, pj = tree.query(pts, predicate="intersects")
    cand = pd.DataFrame({"b": bi, "id": np.asarray(ids, dtype=object)[pj].astype(str)})
    best = cand.sort_values(["b", "id"], kind="stable").drop_duplicates("b")
    b = best["b"].to_numpy()
    out.loc[b, "unit_id"] = best["id"].to_numpy(dtype=object)
    out.loc[b, "method"] = "point_in_polygon"
    out.loc[b, "distance_m"] = 0.0
    out.loc[b, "candidates"] = cand.groupby("b").size().reindex(b).to_numpy(dtype=np.int32)
    out.loc[b, "status"] = "matched"
    rest = np.flatnonzero((out["status"] == "unmatched").to_numpy())
    if rest.size:
        idx, dist = tree.query_nearest(
            pts[rest], max_distance=500.0, return_distance=True, all_matches=False
        )
        bi2, pj2 = idx
        if len(bi2):
            b2 = rest[bi2]
            out.loc[b2, "unit_id"] = np.asarray(ids, dtype=object)[pj2]
            out.loc[b2, "method"] = "nearest_polygon"
            out.loc[b2, "distance_m"] = dist
            out.loc[b2, "candidates"] = 1
            out.loc[b2, "status"] = "matched"
    out.loc[out["status"] == "unmatched", "reason"] = "outside_polygons"
    return out


PIPE_BLOCK = 20_000


def _geometries(values: np.ndarray) -> np.ndarray:
    """Shapely geometries from a column of geometries or WKB (None stays None)."""
    first = next((v for v in values if v is not None and v is not pd.NA), None)
    if isinstance(first, bytes | bytearray | memoryview):
        return shapely.from_wkb(values)
    return values


def pipes_to_streets(
    pipes: pd.DataFrame,
    streets: pd.DataFrame,
    *,
    half_width_m: float = 15.0,
    block: int = PIPE_BLOCK,
) -> pd.DataFrame:
    """The street segment each pipe runs under: the largest overlap with the street corridor.

    Parameters
    ----------
    pipes, streets
        ``pipe_id`` / ``segment_id`` (and optionally ``is_street``: only streets are
        candidates) with ``geometry`` as shapely geometries or WKB.
    half_width_m
        Half the corridor's width: a segment is a candidate when the pipe comes within it.
    block
        Pipes worked at a time. The corridors (a buffer per candidate pair) and their
        intersections exist for one block only, so the memory is bounded by the block,
        not the city; the result does not depend on it.

    Returns
    -------
    pandas.DataFrame
        ``pipe_id``, ``segment_id`` (None when no street is within ``half_width_m``; the
        lowest id on an exact tie), ``overlap_m`` (length of the pipe inside the
        corridor), ``overlap_share``; one row per pipe, in the input's order.
    """
    if block < 1:
        raise ValueError(f"block must be at least 1 pipe, got {block}")
    n = len(pipes)
    seg = np.full(n, None, dtype=object)
    overlap_m = np.zeros(n)
    share = np.zeros(n)
    s = streets[streets["is_street"].astype(bool)] if "is_street" in streets else streets
    if n and len(s):
        sgeom = _geometries(s["geometry"].to_numpy(dtype=object))
        sid = s["segment_id"].to_numpy(dtype=object).astype(str)
        sid_rank = np.argsort(np.argsort(sid, kind="stable"), kind="stable")
        tree = shapely.STRtree(sgeom)
        values = pipes["geometry"].to_numpy(dtype=object)
        for lo in range(0, n, block):
            pgeom = _geometries(values[lo : lo + block])
            ok = ~(shapely.is_missing(pgeom) | shapely.is_empty(pgeom))
            pi, sj = tree.query(pgeom, predicate="dwithin", distance=half_width_m)
            pi, sj = pi[ok[pi]], sj[ok[pi]]
            if not len(pi):
                continue
            near, at = np.unique(sj, return_inverse=True)  # a street's corridor made once
            corridors = shapely.buffer(sgeom[near], half_width_m, cap_style="flat")
            o = shapely.length(shapely.intersection(pgeom[pi], corridors[at]))
            del corridors
            order = np.lexsort((sid_rank[sj], -o, pi))
            first = np.ones(len(order), dtype=bool)
            first[1:] = pi[order][1:] != pi[order][:-1]
            best = order[first]
            best = best[o[best] > 0]
            p = pi[best]
            seg[lo + p] = sid[sj[best]]
            overlap_m[lo + p] = o[best]
            length = shapely.length(pgeom[p])
            share[lo + p] = np.where(length > 0, o[best] / np.maximum(length, 1e-9), 0.0)
    return pd.DataFrame(
        {
            "pipe_id": pipes["pipe_id"].to_numpy(dtype=object),
            "segment_id": seg,
            "overlap_m": overlap_m,
            "overlap_share": share,
        }
    )
