"""Map layers: every unit type and the breaks as GeoDataFrames in WGS84, with results attached.

:func:`map_layers` reads the store and returns the layers every map output uses (file
exports, static PNG maps, the interactive HTML map, the report); :func:`iter_layer_blocks`
gives the same layers as blocks of units read with their own results only, for cities of
any size:

* ``cells``, ``pipes``, ``streets``, ``neighbourhoods`` (those present in the store): the unit
  geometry with its labels, breaks (all years and the latest year), the current risk score
  (risk, probability, expected breaks, rank, percentile, tier, drivers, model version), the
  LISA class of the latest year and the hot-spot persistence class;
* ``breaks``: one point per curated break with its date, material and linked units.

Columns are fixed per layer (:data:`LAYER_COLUMNS`), rows sorted by ``unit_id`` (breaks by
``break_id``), so the same store gives identical layers. Units without a score keep null
score columns and tier ``"unscored"``; row counts equal the store's unit tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from ..core.crs import WGS84, analysis_crs
from ..core.units import UNIT_TYPES
from ..core.vocab import DEFAULT_MATERIALS, NOT_COMPUTED, UNSCORED, normalise_material_code
from ..store.blocks import KeyBlock, key_blocks, read_block
from ..store.duckdb_store import Store

__all__ = [
    "LAYERS",
    "LAYER_COLUMNS",
    "LAYER_TYPES",
    "UNIT_LAYERS",
    "iter_layer_blocks",
    "iter_map_layers",
    "map_layers",
    "typed_layer",
]

#: the store's projected CRS (NAD83(CSRS) / MTM zone 10, metres)
#: unit type -> (layer name, store table), from the unit-type registry
UNIT_LAYERS: dict[str, tuple[str, str]] = {
    name: (spec.layer, spec.layer_table) for name, spec in UNIT_TYPES.items()
}
#: every layer, in drawing order (areas first, points last)
LAYERS: tuple[str, ...] = ("neighbourhoods", "cells", "streets", "pipes", "breaks")

_RESULTS = [
    "breaks_total",
    "breaks_last_year",
    "last_year",
    "risk_score",
    "probability",
    "expected_breaks",
    "rank",
    "percentile",
    "tier",
    "drivers",
    "model_version",
    "score_year",
    "lisa_cluster",
    "lisa_year",
    "hotspot_class",
    "years_hot",
]
_UNIT = ["unit_type", "unit_id", "label", "neighbourhood_code", "neighbourhood_name"]
#: layer -> its columns (``geometry`` last)
LAYER_COLUMNS: dict[str, list[str]] = {
    "cells": [*_UNIT, "area_km2", "pipe_km", *_RESULTS, "geometry"],
    "pipes": [
        *_UNIT,
        *("asset_id", "material", "material_desc", "diameter_mm", "install_year", "status"),
        *("length_m", *_RESULTS, "geometry"),
    ],
    "streets": [*_UNIT, "name", "feature_class", "length_m", *_RESULTS, "geometry"],
    "neighbourhoods": [*_UNIT, "area_km2", *_RESULTS, "geometry"],
    "breaks": [
        *("break_id", "date", "year", "month", "material", "material_desc", "diameter_mm"),
        *("cell", "pipe", "street", "neighbourhood_code", "neighbourhood_name", "geometry"),
    ],
}


_STR, _I32, _I64, _F64, _DATE = "string", "int32", "int64", "float64", "date"
_UNIT_TYPES = dict.fromkeys(_UNIT, _STR)
_RESULT_TYPES = {
    "breaks_total": _I64,
    "breaks_last_year": _I64,
    "last_year": _I32,
    "risk_score": _F64,
    "probability": _F64,
    "expected_breaks": _F64,
    "rank": _I64,
    "percentile": _F64,
    "tier": _STR,
    "drivers": _STR,
    "model_version": _STR,
    "score_year": _I32,
    "lisa_cluster": _STR,
    "lisa_year": _I32,
    "hotspot_class": _STR,
    "years_hot": _I64,
}
#: layer -> column -> its type in every exported file (GeoPackage, GeoParquet, GeoJSON),
#: the same for every city and run whatever the values (an all-null column keeps its type)
LAYER_TYPES: dict[str, dict[str, str]] = {
    "cells": {**_UNIT_TYPES, "area_km2": _F64, "pipe_km": _F64, **_RESULT_TYPES},
    "pipes": {
        **_UNIT_TYPES,
        **dict.fromkeys(("asset_id", "material", "material_desc"), _STR),
        **{"diameter_mm": _F64, "install_year": _I32, "status": _STR, "length_m": _F64},
        **_RESULT_TYPES,
    },
    "streets": {
        **_UNIT_TYPES,
        **{"name": _STR, "feature_class": _STR, "length_m": _F64},
        **_RESULT_TYPES,
    },
    "neighbourhoods": {**_UNIT_TYPES, "area_km2": _F64, **_RESULT_TYPES},
    "breaks": {
        **{"break_id": _STR, "date": _DATE, "year": _I32, "month": _I32},
        **{"material": _STR, "material_desc": _STR, "diameter_mm": _F64},
        **dict.fromkeys(
            ("cell", "pipe", "street", "neighbourhood_code", "neighbourhood_name"), _STR
        ),
    },
}
#: the result columns that are text
_RESULT_TEXT = [col for col, kind in _RESULT_TYPES.items() if kind == _STR]
#: the dtype text read from the store has with this pandas (``str``; object before pandas 3)
_TEXT = pd.Series(["text"]).dtype
_ARROW = {
    _STR: pa.string(),
    _I32: pa.int32(),
    _I64: pa.int64(),
    _F64: pa.float64(),
    _DATE: pa.date32(),
}


def typed_layer(name: str, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``gdf`` with every column of :data:`LAYER_TYPES` ``[name]`` as its declared Arrow type
    (what the exports write); other layers and columns unchanged."""
    types = LAYER_TYPES.get(name)
    if types is None:
        return gdf
    out = gdf.copy()
    for col, kind in types.items():
        if col not in out.columns:
            continue
        values = out[col]
        if kind == _DATE:
            stamps = pd.to_datetime(values, errors="coerce").astype("datetime64[ms]")
            arr = pa.array(stamps, type=pa.timestamp("ms"), from_pandas=True).cast(pa.date32())
        elif kind == _STR:
            arr = pa.array(values.astype("string"), type=pa.string(), from_pandas=True)
        else:
            numbers = pd.to_numeric(values, errors="coerce")
            arr = pa.array(numbers, from_pandas=True).cast(_ARROW[kind])
        out[col] = pd.Series(pd.arrays.ArrowExtensionArray(arr), index=out.index)
    return out


def _code_label(code: object) -> str | None:
    entry = DEFAULT_MATERIALS.get(normalise_material_code(code) or "")
    return entry.label if entry is not None and entry.label else str(code)


def _material_desc(material: pd.Series) -> pd.Series:
    """A break's material code -> the built-in label (the code itself when not listed)."""
    return material.map(lambda c: _code_label(c) if c else None)


def _read(store: Store, name: str) -> pd.DataFrame | None:
    return store.read(name) if store.has_table(name) else None


def _geoms(df: pd.DataFrame) -> gpd.GeoSeries:
    geom = shapely.from_wkb(df["geometry"].to_numpy())
    return gpd.GeoSeries(geom, index=df.index, crs=analysis_crs()).to_crs(WGS84)


def _break_counts(
    store: Store, unit_type: str, block: KeyBlock, last_year: int | None
) -> pd.DataFrame:
    """Breaks per unit of the block: all years and the latest data year."""
    cols = ["unit_type", "unit_id", "breaks_total", "breaks_last_year"]
    if last_year is None or not store.has_table("break_links"):
        return pd.DataFrame(columns=cols)
    cond, args = block.where("unit_id")
    return store.query(
        "SELECT l.unit_type, l.unit_id, count(*) AS breaks_total, "
        "CAST(sum(CASE WHEN b.year = ? THEN 1 ELSE 0 END) AS BIGINT) AS breaks_last_year "
        "FROM (SELECT * FROM break_links WHERE status = 'matched' AND unit_type = ? AND "
        f"{cond}) l LEFT JOIN breaks b ON b.break_id = l.break_id "
        "GROUP BY l.unit_type, l.unit_id ORDER BY l.unit_id",
        [last_year, unit_type, *args],
    )


def _scores(store: Store, unit_type: str, block: KeyBlock) -> pd.DataFrame:
    """The current scores of the block's units (the table keeps every earlier scoring run)."""
    cols = ["unit_type", "unit_id", "risk_score", "probability", "expected_breaks", "rank"]
    cols += ["percentile", "tier", "drivers", "model_version", "target_year"]
    if not store.has_table("risk_scores"):
        return pd.DataFrame(columns=[c.replace("target_year", "score_year") for c in cols])
    where = "is_current AND unit_type = ?"
    rs = read_block(store, "risk_scores", block, "unit_id", where, [unit_type])[cols]
    return rs.rename(columns={"target_year": "score_year"})


def _lisa(store: Store, unit_type: str, block: KeyBlock) -> pd.DataFrame:
    """The LISA class of the block's units in the unit type's latest year."""
    cols = ["unit_type", "unit_id", "lisa_cluster", "lisa_year"]
    if not store.has_table("lisa"):
        return pd.DataFrame(columns=cols)
    where = (
        "variable = 'breaks' AND unit_type = ? AND year = "
        "(SELECT max(year) FROM lisa WHERE variable = 'breaks' AND unit_type = ?)"
    )
    lisa = read_block(store, "lisa", block, "unit_id", where, [unit_type, unit_type])
    return lisa.rename(columns={"cluster": "lisa_cluster", "year": "lisa_year"})[cols]


def _persistence(store: Store, unit_type: str, block: KeyBlock) -> pd.DataFrame:
    """The hot-spot persistence class of the block's units."""
    cols = ["unit_type", "unit_id", "hotspot_class", "years_hot"]
    if not store.has_table("hotspot_persistence"):
        return pd.DataFrame(columns=cols)
    where = "variable = 'breaks' AND unit_type = ?"
    hp = read_block(store, "hotspot_persistence", block, "unit_id", where, [unit_type])
    return hp.rename(columns={"class": "hotspot_class"})[cols]


def _attach(
    base: pd.DataFrame, unit_type: str, results: list[pd.DataFrame], last_year: int | None
) -> pd.DataFrame:
    out = base
    for res in results:
        part = res[res["unit_type"] == unit_type].drop(columns="unit_type")
        out = out.merge(part, on="unit_id", how="left")
    out["breaks_total"] = out["breaks_total"].fillna(0).astype(np.int64)
    out["breaks_last_year"] = out["breaks_last_year"].fillna(0).astype(np.int64)
    out["last_year"] = pd.array([last_year] * len(out), dtype="Int32")
    for col, dtype in (("rank", "Int64"), ("score_year", "Int32"), ("lisa_year", "Int32")):
        out[col] = pd.array(out[col], dtype=dtype) if len(out) else out[col]
    out["years_hot"] = pd.array(out["years_hot"], dtype="Int64") if len(out) else out["years_hot"]
    out["tier"] = out["tier"].fillna(UNSCORED)
    out["lisa_cluster"] = out["lisa_cluster"].fillna(NOT_COMPUTED)
    out["hotspot_class"] = out["hotspot_class"].fillna(NOT_COMPUTED)
    # a block without results reads their text columns untyped: typed as the store's text
    for col in _RESULT_TEXT:
        if out[col].dtype == object:
            out[col] = out[col].astype(_TEXT)
    return out


def _cell_columns(df: pd.DataFrame, units: pd.DataFrame) -> None:
    """Label, area and pipe length of H3 cells."""
    df["label"] = "H3 " + df["unit_id"]
    df["area_km2"] = units["area_km2"]
    df["pipe_km"] = units["pipe_km"]


def _pipe_columns(df: pd.DataFrame, units: pd.DataFrame) -> None:
    """Asset, material, size, age, status, length and label of pipes."""
    material = units["material"].astype(object)
    df["asset_id"] = units["asset_id"]
    df["material"] = material
    df["material_desc"] = units["material_desc"].astype(object)
    df["diameter_mm"] = units["diameter_mm"]
    df["install_year"] = pd.to_numeric(units["install_year"]).astype("Int32")
    removed = pd.to_numeric(units["removal_year"]).notna()
    df["status"] = np.where(removed, "abandoned", "active")
    df["length_m"] = units["length_m"]
    size = df["diameter_mm"].map(lambda d: f"{d:.0f} mm " if pd.notna(d) else "")
    df["label"] = "Pipe " + df["asset_id"].fillna(df["unit_id"]) + " (" + size
    df["label"] = df["label"] + df["material_desc"].fillna("unknown material") + ")"


def _street_columns(df: pd.DataFrame, units: pd.DataFrame) -> None:
    """Name, feature class, length and label of street segments."""
    df["name"] = units["name"].fillna("Unnamed")
    df["feature_class"] = units["feature_code_desc"].fillna("Unknown")
    df["length_m"] = units["length_m"]
    df["label"] = df["name"] + " (" + df["unit_id"] + ")"


#: unit type -> the layer columns particular to it (added in place to the shared ones)
_UNIT_COLUMNS: dict[str, Callable[[pd.DataFrame, pd.DataFrame], None]] = {
    "cell": _cell_columns,
    "pipe": _pipe_columns,
    "street": _street_columns,
}


def _area_base(units: pd.DataFrame) -> pd.DataFrame:
    """The unit columns of the neighbourhoods, whose code is their id."""
    code = units["area_code"].astype(object)
    return pd.DataFrame(
        {
            "unit_id": code,
            "label": units["area_name"] + " (" + code + ")",
            "neighbourhood_code": code,
            "neighbourhood_name": units["area_name"],
            "area_km2": units["area_km2"],
        }
    )


def _unit_base(unit_type: str, units: pd.DataFrame, names: pd.Series) -> pd.DataFrame:
    """The unit columns of one layer before results are attached."""
    if UNIT_TYPES[unit_type].layer_table == "neighbourhoods":
        df = _area_base(units)
    else:
        code = units["neighbourhood"].astype(object)
        df = pd.DataFrame(
            {
                "unit_id": units["unit_id"].astype(object),
                "neighbourhood_code": code,
                "neighbourhood_name": code.map(names),
            }
        )
        _UNIT_COLUMNS[unit_type](df, units)
    df.insert(0, "unit_type", unit_type)
    df["geometry"] = _geoms(units).to_numpy()
    return df


def _breaks_layer(
    breaks: pd.DataFrame, links: pd.DataFrame | None, names: pd.Series
) -> pd.DataFrame:
    linked = {}
    if links is not None:
        ok = links[links["status"] == "matched"]
        for unit_type in UNIT_TYPES:
            part = ok[ok["unit_type"] == unit_type]
            linked[unit_type] = pd.Series(
                part["unit_id"].to_numpy(), index=part["break_id"].to_numpy()
            )
    ids = breaks["break_id"]
    material = breaks["material"].astype(object)
    code = ids.map(linked["neighbourhood"]) if "neighbourhood" in linked else None
    df = pd.DataFrame(
        {
            "break_id": ids.astype(object),
            "date": pd.to_datetime(breaks["break_date"]).dt.strftime("%Y-%m-%d"),
            "year": breaks["year"],
            "month": breaks["month"],
            "material": material,
            "material_desc": _material_desc(material),
            "diameter_mm": breaks["diameter_mm"],
            "cell": ids.map(linked["cell"]) if "cell" in linked else None,
            "pipe": ids.map(linked["pipe"]) if "pipe" in linked else None,
            "street": ids.map(linked["street"]) if "street" in linked else None,
            "neighbourhood_code": code,
            "neighbourhood_name": code.map(names) if code is not None else None,
        }
    )
    df["geometry"] = _geoms(breaks).to_numpy()
    return df.sort_values("break_id", kind="mergesort").reset_index(drop=True)


def _geoframe(name: str, df: pd.DataFrame) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(df[LAYER_COLUMNS[name]], geometry="geometry", crs="EPSG:4326")


def _has_rows(store: Store, name: str) -> bool:
    return store.has_table(name) and store.count(name) > 0


def iter_layer_blocks(
    store: Store, block_rows: int | None = None
) -> Iterator[tuple[str, gpd.GeoDataFrame]]:
    """Every map layer present in the store, in :data:`LAYERS` order, as blocks of at most
    ``block_rows`` rows (None: a layer in one block).

    A layer's blocks come one after another, in its row order (``unit_id``; breaks
    ``break_id``), so concatenated they are the layer of :func:`map_layers`, whatever the
    block size. Each block reads only its own units and their results from the store, so a
    caller that writes a block and lets it go holds one block at a time, whatever the size
    of the city.
    """
    if block_rows is not None and block_rows < 1:
        raise ValueError(f"block_rows must be at least 1, got {block_rows}")
    rows = block_rows or np.iinfo(np.int64).max
    nbhd = _read(store, "neighbourhoods")
    names = (
        pd.Series(nbhd["area_name"].to_numpy(), index=nbhd["area_code"].to_numpy())
        if nbhd is not None
        else pd.Series(dtype=object)
    )
    last_year = None
    if _has_rows(store, "breaks"):
        found = store.query("SELECT max(year) AS y FROM breaks")["y"].iloc[0]
        last_year = None if pd.isna(found) else int(found)
    unit_types = {layer: unit_type for unit_type, (layer, _) in UNIT_LAYERS.items()}
    for name in LAYERS:
        if name == "breaks":
            links = _has_rows(store, "break_links")
            for block in key_blocks(store, "breaks", "break_id", rows):
                breaks = read_block(store, "breaks", block, "break_id")
                found = read_block(store, "break_links", block, "break_id") if links else None
                yield name, _geoframe(name, _breaks_layer(breaks, found, names))
        elif name in unit_types:
            unit_type = unit_types[name]
            table, key = UNIT_LAYERS[unit_type][1], _unit_key(unit_type)
            for block in key_blocks(store, table, key, rows):
                yield name, _unit_block(store, unit_type, block, names, last_year)


def iter_map_layers(store: Store) -> Iterator[tuple[str, gpd.GeoDataFrame]]:
    """Every map layer present in the store, one whole layer at a time, in :data:`LAYERS`
    order (:func:`iter_layer_blocks` with a layer in one block)."""
    return iter_layer_blocks(store)


def _unit_key(unit_type: str) -> str:
    """The column of the unit table that is the layer's ``unit_id``."""
    return "area_code" if UNIT_TYPES[unit_type].layer_table == "neighbourhoods" else "unit_id"


def _unit_block(
    store: Store, unit_type: str, block: KeyBlock, names: pd.Series, last_year: int | None
) -> gpd.GeoDataFrame:
    """One block of the layer of one unit type, its results attached."""
    layer, table = UNIT_LAYERS[unit_type]
    units = read_block(store, table, block, _unit_key(unit_type))
    results = [
        _break_counts(store, unit_type, block, last_year),
        _scores(store, unit_type, block),
        _lisa(store, unit_type, block),
        _persistence(store, unit_type, block),
    ]
    df = _attach(_unit_base(unit_type, units, names), unit_type, results, last_year)
    del units
    return _geoframe(layer, df.sort_values("unit_id", kind="mergesort").reset_index(drop=True))


def map_layers(store: Store) -> dict[str, gpd.GeoDataFrame]:
    """Every map layer present in the store, in WGS84 (EPSG:4326); see the module doc."""
    return dict(iter_map_layers(store))
