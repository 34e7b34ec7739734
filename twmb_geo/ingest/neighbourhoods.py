"""Neighbourhoods: polygons -> the curated ``neighbourhoods`` table and the service area."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from ..contracts import conform, validate_frame
from ..core.crs import (
    WGS84,
    analysis_crs,
    area_of_use_bounds,
    crs_label,
    transform_geometries,
    transform_xy,
)
from ..errors import InputDataError
from ..io.profiles import Profile
from ..io.readers import RawChunk
from ._common import IngestContext, IngestResult, RowChecks, build_quarantine, empty_quarantine

__all__ = ["service_area_table", "transform_neighbourhoods"]

_POLYGONAL = (3, 6)  # shapely type ids of Polygon, MultiPolygon


def _check_chunk(
    chunk: RawChunk, profile: Profile, seen: set[str]
) -> tuple[RowChecks, pd.Series, pd.Series, np.ndarray, np.ndarray]:
    """Row checks of one chunk; returns checks, codes, names, repaired geometry and its mask."""
    f = chunk.frame
    code_col, name_col = profile.columns["area_code"], profile.columns["area_name"]
    geoms = np.asarray(chunk.geometry, dtype=object)
    checks = RowChecks(len(f))
    codes = f[code_col].map(lambda v: None if v is None else str(v).strip())
    names = f[name_col].map(lambda v: None if v is None else str(v).strip())
    checks.add("id_missing", codes.isna() | names.isna(), f"{code_col} or {name_col} is empty")
    dup = codes.duplicated() | codes.isin(seen)
    checks.add(
        "id_duplicate",
        codes.notna() & dup,
        f"{code_col}=" + codes.astype(str) + " appears more than once",
    )
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    checks.add("geometry_missing", missing, "no geometry")
    poly = np.isin(shapely.get_type_id(geoms), _POLYGONAL)
    checks.add("geometry_invalid", ~missing & ~poly, "geometry is not a polygon")
    xy, which = shapely.get_coordinates(geoms, return_index=True)
    nonfinite = np.zeros(len(geoms), dtype=bool)
    nonfinite[which[~np.isfinite(xy).all(axis=1)]] = True
    checks.add(
        "geometry_invalid", ~missing & poly & nonfinite, "polygon has non-finite coordinates"
    )
    poly &= ~nonfinite  # GEOS cannot test or repair them
    seen.update(c for c in codes.dropna())
    invalid = ~missing & poly & ~shapely.is_valid(geoms)
    fixed = geoms.copy()
    if invalid.any():
        fixed[invalid] = [_polygonal(g) for g in shapely.make_valid(geoms[invalid])]
    _check_projected(fixed, ~missing & poly, chunk, checks)
    return checks, codes, names, fixed, invalid


def _check_projected(
    geoms: np.ndarray, cand: np.ndarray, chunk: RawChunk, checks: RowChecks
) -> None:
    """``geometry_invalid`` for polygons whose coordinates do not project to a finite, non-zero
    area in the analysis CRS; ``outside_service_area`` for polygons entirely outside its area
    of use (a polygon given in the wrong CRS or with swapped axes)."""
    assert chunk.crs is not None
    idx = np.flatnonzero(cand & ~shapely.is_missing(geoms))
    if not idx.size:
        return
    projected, _ = transform_geometries(geoms[idx], chunk.crs)
    xy, which = shapely.get_coordinates(projected, return_index=True)
    nonfinite = np.bincount(which[~np.isfinite(xy).all(axis=1)], minlength=idx.size)
    ok = nonfinite == 0
    with np.errstate(invalid="ignore"):
        area = np.where(ok, shapely.area(projected), 0.0)
    bad = np.zeros(len(geoms), dtype=bool)
    bad[idx] = ~ok | ~(area > 0)
    checks.add(
        "geometry_invalid",
        bad,
        f"coordinates do not make a polygon of non-zero area in {analysis_crs()}",
    )
    bounds = area_of_use_bounds(analysis_crs())
    if bounds is None:
        return
    box = shapely.box(*bounds)
    away = np.zeros(len(geoms), dtype=bool)
    good = ~bad[idx]
    away[idx[good]] = ~shapely.intersects(box, projected[good])
    checks.add(
        "outside_service_area",
        away,
        f"polygon lies entirely outside the area of use of {analysis_crs()}",
    )


def _accepted(
    chunk: RawChunk,
    keep: np.ndarray,
    codes: pd.Series,
    names: pd.Series,
    fixed: np.ndarray,
    invalid: np.ndarray,
    source_id: str,
    crs_records: list[dict],
    warnings: list[str],
) -> pd.DataFrame:
    """The kept rows of a chunk in the analysis CRS; appends the chunk's CRS record and warnings."""
    f = chunk.frame
    crs = chunk.crs
    assert crs is not None, "chunks without a CRS are rejected before this point"
    projected, info = transform_geometries(fixed[keep], crs)
    crs_records.append({"source_id": source_id, "pair": "geometry", **info.to_dict()})
    if info.ballpark or (info.accuracy_m or 0) > 1:
        warnings.append(
            f"source {source_id!r}: {crs_label(crs)} -> {analysis_crs()} uses {info.description!r} "
            f"(accuracy {info.accuracy_m if info.accuracy_m is not None else 'unknown'} m; "
            f"missing datum grids: {', '.join(info.missing_grids) or 'none'})"
        )
    projected = shapely.force_2d(projected)
    multi = np.array(
        [shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g for g in projected],
        dtype=object,
    )
    rep = shapely.point_on_surface(multi)
    lon, lat, _ = transform_xy(shapely.get_x(rep), shapely.get_y(rep), analysis_crs(), WGS84)
    flags = np.where(invalid[keep], "geometry_repaired", "")
    if info.ballpark:
        flags = np.where(flags == "", "crs_ballpark", flags + ";crs_ballpark")
    area_names = names[keep].str.replace(r"\s*\(\d+\)\s*$", "", regex=True)
    return pd.DataFrame(
        {
            "area_code": codes[keep].to_numpy(),
            "area_name": area_names.to_numpy(),
            "area_km2": shapely.area(multi) / 1e6,
            "centroid_lon": lon,
            "centroid_lat": lat,
            "coord_accuracy_m": np.nan if info.accuracy_m is None else info.accuracy_m,
            "flags": flags,
            "source_id": source_id,
            "source_file": f["source_file"][keep].to_numpy(),
            "source_row": f["source_row"][keep].to_numpy(),
            "geometry": shapely.to_wkb(multi),
        }
    )


def transform_neighbourhoods(
    chunks: Iterable[RawChunk], source_id: str, profile: Profile, ctx: IngestContext
) -> IngestResult:
    """Validate neighbourhood polygons; repair invalid rings (flagged), quarantine the rest."""
    frames: list[pd.DataFrame] = []
    quarantined: list[pd.DataFrame] = []
    rows_in = 0
    crs_records: list[dict] = []
    warnings: list[str] = []
    seen: set[str] = set()
    paths: list[Path] = []
    for chunk in chunks:
        f = chunk.frame
        rows_in += len(f)
        paths.append(chunk.path)
        if chunk.geometry is None or chunk.crs is None:
            raise InputDataError(f"{chunk.path}: neighbourhoods need polygon geometry with a CRS")
        checks, codes, names, fixed, invalid = _check_chunk(chunk, profile, seen)
        bad = checks.failed
        if bad.any():
            reasons, details = checks.lists()
            geoms = np.asarray(chunk.geometry, dtype=object)
            quarantined.append(
                build_quarantine(source_id, f.loc[bad], reasons, details, geoms[bad])
            )
        frames.append(
            _accepted(chunk, ~bad, codes, names, fixed, invalid, source_id, crs_records, warnings)
        )
    if not frames:  # every row was refused while reading (the caller says which)
        raise InputDataError(f"source {source_id!r}: no neighbourhood row could be read")
    df = pd.concat(frames, ignore_index=True).sort_values("area_code", kind="stable")
    df = conform(df, "curated/neighbourhoods")
    validate_frame(df, "curated/neighbourhoods")
    quarantine = pd.concat(quarantined, ignore_index=True) if quarantined else empty_quarantine()
    result = IngestResult(
        source_id,
        "neighbourhoods",
        {"neighbourhoods": df},
        quarantine,
        rows_in,
        warnings,
        crs_records,
    )
    result.reconcile()
    if df.empty:
        where = ", ".join(dict.fromkeys(str(p) for p in paths)) or f"source {source_id!r}"
        counts = quarantine["reason"].value_counts(sort=False).sort_index()
        examples = quarantine.drop_duplicates("reason").sort_values("reason")
        raise InputDataError(
            f"{where}: every neighbourhood row is invalid ("
            + ", ".join(f"{k} {v:,}" for k, v in counts.items())
            + "); the source needs at least one valid polygon",
            [
                f"row {r}: {d}"
                for r, d in zip(examples["source_row"], examples["detail"], strict=True)
            ],
        )
    return result


def _polygonal(g: shapely.Geometry) -> shapely.Geometry:
    """Keep only the polygonal parts of a repaired geometry."""
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else g


def service_area_table(
    neighbourhoods: pd.DataFrame, source_id: str, buffer_m: float
) -> pd.DataFrame:
    """Dissolve neighbourhoods into the service-area boundary (plain and buffered)."""
    geoms = shapely.from_wkb(neighbourhoods["geometry"].to_numpy())
    area = shapely.union_all(shapely.buffer(geoms, 0.5)).buffer(
        -0.5
    )  # closes slivers between areas
    buffered = area.buffer(buffer_m)
    df = pd.DataFrame(
        {
            "source_id": [source_id],
            "method": ["boundary"],
            "buffer_m": [float(buffer_m)],
            "area_km2": [area.area / 1e6],
            "geometry": [shapely.to_wkb(area)],
            "geometry_buffered": [shapely.to_wkb(buffered)],
        }
    )
    df = conform(df, "curated/service_area")
    validate_frame(df, "curated/service_area")
    return df
