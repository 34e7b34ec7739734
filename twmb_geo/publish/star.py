"""The Power BI star schema: dimensions and facts built from the DuckDB store.

Every table has a contract under ``schemas/star/``. Conventions:

* surrogate keys are ``<dim>_key`` int64, ``1..n`` in the stable (mergesort) order of the
  dimension's natural key; every dimension except ``dim_date`` also has the member
  ``-1`` (unknown: the row has such a place but it is not known, e.g. a break not linked
  to a pipe) and ``-2`` (not applicable: e.g. the pipe of an H3-cell row), so fact keys are
  never null and the two are never confused;
* conformed places: a unit fact row (``fact_unit_year``, ``fact_risk_score``,
  ``fact_hotspot``) carries the key of its own unit and of every unit it lies in (the
  registry's ``located_in``: a pipe's street segment, H3 cell and neighbourhood; a cell's
  neighbourhood by largest area share), so a slicer on any spatial dimension filters every
  fact; ``fact_break`` carries the units its break is linked to;
* ``dim_year`` (``year_key`` = the year) relates to every fact with a year: the break
  year, the panel year, the LISA year, the scored target year, the simulated year and the
  target year of a validation fold;
* map columns are WGS84: ``centroid_lat``/``centroid_lon`` and ``wkt`` (EPSG:4326,
  transformed from the store's WKB in the analysis CRS); H3 indexes are hex strings;
* ``dim_date`` spans whole calendar years of the break dates; ``winter_season`` labels
  November..March as e.g. ``"2015-16"`` and is ``"none"`` for April..October.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import shapely

from ..contracts import conform, load_schema, validate_frame
from ..core.crs import WGS84, analysis_crs
from ..core.units import UNIT_TYPES
from ..errors import ContractError
from ..store.blocks import key_blocks, read_block
from ..store.duckdb_store import TABLES, Store
from .tables import (
    CHUNK_ROWS,
    DIMENSION_ROWS,
    SPOOL_ROWS,
    StarTable,
    chunks_of,
    column_of,
    frame_of,
    spool_table,
)

log = logging.getLogger(__name__)

__all__ = [
    "DIMENSIONS",
    "FACTS",
    "KEY_DIMENSIONS",
    "NOT_APPLICABLE_KEY",
    "SPECIAL_CODES",
    "STAR_TABLES",
    "UNKNOWN_KEY",
    "build_star",
    "check_keys",
    "spool_star",
]

#: dimension tables, in build order
DIMENSIONS: tuple[str, ...] = (
    "dim_date",
    "dim_year",
    "dim_h3_cell",
    "dim_pipe",
    "dim_street_segment",
    "dim_neighbourhood",
    "dim_model",
)
#: fact tables
FACTS: tuple[str, ...] = (
    "fact_break",
    "fact_unit_year",
    "fact_risk_score",
    "fact_hotspot",
    "fact_cv_metric",
    "fact_simulation",
)
#: every star table, dimensions first
STAR_TABLES: tuple[str, ...] = DIMENSIONS + FACTS

#: fact key column -> the dimension it points into (the column has the same name there)
KEY_DIMENSIONS: dict[str, str] = {
    "date_key": "dim_date",
    "year_key": "dim_year",
    "cell_key": "dim_h3_cell",
    "pipe_key": "dim_pipe",
    "street_key": "dim_street_segment",
    "neighbourhood_key": "dim_neighbourhood",
    "model_key": "dim_model",
}

_MONTHS = list(calendar.month_name[1:])
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_STATISTICS = ("expected", "mean", "p10", "p50", "p90", "p95")
_UNKNOWN = "unknown"
#: Power BI's longest text value (characters): longer WKT is simplified to fit
MAX_WKT_CHARS = 32_766
#: simplification tolerances tried in turn (metres, analysis CRS)
WKT_TOLERANCES_M: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)
_NOT_APPLICABLE = "not applicable"
#: the key of the "unknown" member of every dimension but dim_date
UNKNOWN_KEY = -1
#: the key of the "not applicable" member of every dimension but dim_date
NOT_APPLICABLE_KEY = -2
#: the natural-key codes (``h3_index``, ``neighbourhood_code``, ...) of those two members
SPECIAL_CODES = (_UNKNOWN, _NOT_APPLICABLE)


# -- helpers ------------------------------------------------------------------------------
def _read(
    store: Store,
    name: str,
    columns: Sequence[str] | None = None,
    where: str = "",
    params: list | None = None,
) -> pd.DataFrame:
    """Read a store table (or some of its columns, or the rows ``where`` selects); an empty
    frame with the contract's columns when it is absent."""
    if store.has_table(name):
        return store.read(name, where, params, columns=columns)
    cols = columns or load_schema(TABLES[name]).columns
    return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})


@cache
def _transformer(crs: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(crs, WGS84, always_xy=True)


def _wgs84_wkt(geoms: np.ndarray) -> np.ndarray:
    tr = _transformer(analysis_crs())
    geoms = shapely.transform(geoms, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1])))
    return np.asarray(shapely.to_wkt(geoms, rounding_precision=6, trim=True), dtype=object)


def _wkt(wkb: pd.Series, what: str = "geometries") -> dict[str, np.ndarray]:
    """WKB (analysis CRS) -> ``wkt`` in WGS84 (lon lat, 6 decimals) and ``wkt_tolerance_m``.

    A WKT longer than :data:`MAX_WKT_CHARS` (Power BI's longest text) is simplified
    (topology-preserving, in metres of the analysis CRS) with the smallest tolerance of
    :data:`WKT_TOLERANCES_M` that makes it fit; the tolerance is recorded (0: exact).
    None/NaN where the blob is null.
    """
    n = len(wkb)
    out = np.full(n, None, dtype=object)
    tol = np.full(n, np.nan)
    mask = wkb.notna().to_numpy()
    if not mask.any():
        return {"wkt": out, "wkt_tolerance_m": tol}
    idx = np.flatnonzero(mask)
    geoms = shapely.from_wkb(wkb.to_numpy()[mask])
    text = _wgs84_wkt(geoms)
    used = np.zeros(len(geoms))
    long = np.char.str_len(text.astype(str)) > MAX_WKT_CHARS
    for t in WKT_TOLERANCES_M:
        if not long.any():
            break
        todo = np.flatnonzero(long)
        fitted = _wgs84_wkt(shapely.simplify(geoms[todo], t, preserve_topology=True))
        fits = np.char.str_len(fitted.astype(str)) <= MAX_WKT_CHARS
        text[todo[fits]], used[todo[fits]] = fitted[fits], t
        long[todo[fits]] = False
    if long.any():
        log.warning(
            "%d %s stay longer than %d characters even simplified by %g m: their WKT is left "
            "out (null); draw them from the TopoJSON or the map files",
            int(long.sum()),
            what,
            MAX_WKT_CHARS,
            WKT_TOLERANCES_M[-1],
        )
        text[long], used[long] = None, np.nan
    if (used > 0).any():
        log.info(
            "%d %s simplified (up to %g m) to fit Power BI's %d-character text limit",
            int((used > 0).sum()),
            what,
            float(np.nanmax(used)),
            MAX_WKT_CHARS,
        )
    out[idx], tol[idx] = text, used
    return {"wkt": out, "wkt_tolerance_m": tol}


def _with_keys(
    df: pd.DataFrame,
    natural: str,
    key: str,
    unknown: Mapping[str, object],
    not_applicable: Mapping[str, object],
) -> pd.DataFrame:
    """Sort by the natural key (stable), number rows 1..n and prepend the members -2 (not
    applicable) and -1 (unknown) with their labels."""
    df = df.sort_values(natural, kind="mergesort").reset_index(drop=True)
    df.insert(0, key, np.arange(1, len(df) + 1, dtype=np.int64))
    special = pd.DataFrame({c: [not_applicable.get(c), unknown.get(c)] for c in df.columns}).astype(
        object
    )
    special[key] = np.array([NOT_APPLICABLE_KEY, UNKNOWN_KEY], dtype=np.int64)
    if df.empty:
        return special
    return pd.concat([special, df.astype(object)], ignore_index=True)


def _key_map(dim: pd.DataFrame, natural: str, key: str) -> pd.Series:
    """Natural key -> surrogate key, without the special members."""
    real = dim[dim[key].astype(np.int64) > 0]
    return pd.Series(real[key].to_numpy(dtype=np.int64), index=real[natural].to_numpy())


def _map_keys(ids: pd.Series, mapping: pd.Series) -> np.ndarray:
    """Surrogate keys of ``ids``; unknown (-1) where the id is null or not in the dimension."""
    return ids.map(mapping).fillna(UNKNOWN_KEY).to_numpy(dtype=np.int64)


def _year_keys(years: pd.Series) -> np.ndarray:
    """``dim_year`` keys of a year column; not applicable (-2) where it is null."""
    y = pd.to_numeric(years, errors="coerce")
    return y.fillna(NOT_APPLICABLE_KEY).to_numpy(dtype=np.int64)


def _places(units: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Per unit type, by ``unit_id``: the id of every unit it lies in (``located_in``)."""
    out = {}
    for name, spec in UNIT_TYPES.items():
        df = units[name]
        cols = {other: col for other, col in spec.located_in if col in df.columns}
        places = pd.DataFrame(
            {"unit_id": df["unit_id"].astype(str), **{o: df[c] for o, c in cols.items()}}
        )
        out[name] = places.drop_duplicates("unit_id").set_index("unit_id")
    return out


def _unit_key_maps(dims: Mapping[str, pd.DataFrame]) -> dict[str, pd.Series]:
    """Per unit type whose dimension is in ``dims``: natural key -> surrogate key."""
    return {
        n: _key_map(dims[s.star_dimension], s.star_natural_key, s.star_key)
        for n, s in UNIT_TYPES.items()
        if s.star_dimension in dims
    }


def _unit_type_of(dimension: str) -> str:
    """The unit type whose star dimension is ``dimension``."""
    return next(n for n, s in UNIT_TYPES.items() if s.star_dimension == dimension)


def _noting_keys(
    dimension: str, chunks: Iterator[pd.DataFrame], keys: list[pd.Series]
) -> Iterator[pd.DataFrame]:
    """The chunks of a unit dimension, as they come; each chunk's natural key -> surrogate
    key map goes to ``keys``."""
    spec = UNIT_TYPES[_unit_type_of(dimension)]
    for chunk in chunks:
        keys.append(_key_map(chunk, spec.star_natural_key, spec.star_key))
        yield chunk


def _unit_keys(
    df: pd.DataFrame, maps: Mapping[str, pd.Series], places: Mapping[str, pd.DataFrame]
) -> pd.DataFrame:
    """Add the unit key columns of every type from ``unit_type``/``unit_id``: the row's own
    unit, the units it lies in (unknown when not known), not applicable for the rest."""
    df = df.copy()
    kind = df["unit_type"].to_numpy()
    ids = df["unit_id"].astype(str)
    keys = {
        s.star_key: np.full(len(df), NOT_APPLICABLE_KEY, dtype=np.int64)
        for s in UNIT_TYPES.values()
    }
    for name, spec in UNIT_TYPES.items():
        rows = kind == name
        if not rows.any():
            continue
        keys[spec.star_key][rows] = _map_keys(ids[rows], maps[name])
        where = places[name]
        for other, _ in spec.located_in:
            other_key = UNIT_TYPES[other].star_key
            if other in where.columns:
                inside = ids[rows].map(where[other])
                keys[other_key][rows] = _map_keys(inside, maps[other])
            else:
                keys[other_key][rows] = UNKNOWN_KEY
    for k, v in keys.items():
        df[k] = v
    return df


def _model_keys(df: pd.DataFrame, dims: Mapping[str, pd.DataFrame]) -> np.ndarray:
    return _map_keys(df["model_version"], _key_map(dims["dim_model"], "model_version", "model_key"))


def _finish(name: str, df: pd.DataFrame, *, sort: bool = True) -> pd.DataFrame:
    """Conform to ``star/<name>``, sort by the contract's ``sort_by`` (stable; ``sort=False``
    for rows already in that order) and validate."""
    sch = load_schema(f"star/{name}")
    out = conform(df, sch)
    if sort and sch.sort_by and len(out):
        out = out.sort_values(list(sch.sort_by), kind="mergesort").reset_index(drop=True)
    validate_frame(out, sch)
    return out


# -- dimensions ---------------------------------------------------------------------------
def _labels(code: str, *cols: str) -> dict[str, object]:
    """Labels of a special member: codes lower-case, names capitalised."""
    return {
        c: code if c.endswith(("_code", "_id", "index", "decade", "status")) else code.capitalize()
        for c in cols
    }


_PLACE_LABELS = ("neighbourhood_code", "h3_index")


def _keyed(
    df: pd.DataFrame, natural: str, key: str, *labelled: str, **fixed: tuple[object, object]
) -> pd.DataFrame:
    """:func:`_with_keys` with the special members labelled on the natural key and
    ``labelled`` columns; ``fixed`` gives a column's (unknown, not applicable) values."""
    cols = (natural, *labelled)
    return _with_keys(
        df,
        natural,
        key,
        {**_labels(_UNKNOWN, *cols), **{c: v[0] for c, v in fixed.items()}},
        {**_labels(_NOT_APPLICABLE, *cols), **{c: v[1] for c, v in fixed.items()}},
    )


def _dim_year(facts: Mapping[str, StarTable]) -> pd.DataFrame:
    """One row per calendar year from the earliest to the latest ``year_key`` of any fact."""
    spans = []
    for fact in facts.values():
        for chunk in chunks_of(fact):
            keys = chunk["year_key"].to_numpy(dtype=np.int64)
            keys = keys[keys > 0]
            if len(keys):
                spans.append([keys.min(), keys.max()])
    years = np.asarray(spans, dtype=np.int64).ravel()
    span = (
        np.arange(int(years.min()), int(years.max()) + 1, dtype=np.int64)
        if len(years)
        else np.array([], dtype=np.int64)
    )
    df = pd.DataFrame(
        {
            "year": span,
            "year_label": span.astype(str),
            "decade": pd.Series((span // 10) * 10, dtype="int64").astype(str) + "s",
        }
    )
    df = df.astype({"year_label": object, "decade": object})
    out = _with_keys(
        df,
        "year",
        "year_key",
        {"year_label": "Unknown", "decade": _UNKNOWN},
        {"year_label": "Not applicable", "decade": _NOT_APPLICABLE},
    )
    real = out["year_key"].astype(np.int64) > 0
    if real.any():
        out.loc[real, "year_key"] = out.loc[real, "year"]
    return out


def _dim_date(breaks: pd.DataFrame) -> pd.DataFrame:
    """Daily calendar over the whole years spanned by the break dates."""
    if len(breaks):
        dates = pd.to_datetime(breaks["break_date"])
        days = pd.date_range(f"{dates.min().year}-01-01", f"{dates.max().year}-12-31", freq="D")
    else:
        days = pd.DatetimeIndex([], dtype="datetime64[ns]")
    y = days.year.to_numpy(dtype=np.int64)
    m = days.month.to_numpy(dtype=np.int64)
    d = days.day.to_numpy(dtype=np.int64)
    dow = days.day_of_week.to_numpy(dtype=np.int64) + 1
    winter = (m >= 11) | (m <= 3)
    start = pd.Series(np.where(m >= 11, y, y - 1))
    season = start.astype(str) + "-" + ((start + 1) % 100).astype(str).str.zfill(2)
    months = np.array(_MONTHS, dtype=object)
    q = (m - 1) // 3 + 1
    return pd.DataFrame(
        {
            "date_key": y * 10000 + m * 100 + d,
            "date": days,
            "year": y,
            "month": m,
            "month_name": months[m - 1] if len(m) else [],
            "month_short": [s[:3] for s in months[m - 1]] if len(m) else [],
            "quarter": q,
            "quarter_label": ["Q" + str(v) for v in q],
            "year_month": pd.Series(y).astype(str) + "-" + pd.Series(m).astype(str).str.zfill(2),
            "day_of_month": d,
            "day_of_year": days.day_of_year.to_numpy(dtype=np.int64),
            "day_of_week": dow,
            "day_name": np.array(_DAYS, dtype=object)[dow - 1] if len(dow) else [],
            "is_weekend": dow >= 6,
            "winter_season": np.where(winter, season.to_numpy(dtype=object), "none"),
            "is_winter": winter,
        }
    )


def _neighbourhood_names(nbhd: pd.DataFrame) -> pd.Series:
    return pd.Series(nbhd["area_name"].to_numpy(), index=nbhd["area_code"].to_numpy())


def _dim_h3_cell(cells: pd.DataFrame, nbhd: pd.DataFrame) -> pd.DataFrame:
    """H3 cells with WGS84 centroid and boundary and their neighbourhood."""
    code = cells["neighbourhood"]
    df = pd.DataFrame(
        {
            "h3_index": cells["unit_id"].astype(object),
            "resolution": cells["resolution"],
            "parent_cell": cells["parent_cell"],
            "area_km2": cells["area_km2"],
            "centroid_lat": cells["centroid_lat"],
            "centroid_lon": cells["centroid_lon"],
            **_wkt(cells["geometry"], "H3 cell polygons"),
            "neighbourhood_code": code.fillna(_UNKNOWN),
            "neighbourhood_name": code.map(_neighbourhood_names(nbhd))
            .astype(object)
            .fillna("Unknown"),
        }
    )
    return _keyed(df, "h3_index", "cell_key", "neighbourhood_code", "neighbourhood_name")


def _decade(year: pd.Series) -> pd.Series:
    y = pd.to_numeric(year, errors="coerce")
    label = ((y // 10) * 10).astype("Int64").astype(str) + "s"
    return label.where(y.notna(), _UNKNOWN).astype(object)


def _location(units: pd.DataFrame) -> dict[str, object]:
    """Neighbourhood, H3 cell, WGS84 centroid and WKT columns of a line-unit table."""
    return {
        "neighbourhood_code": units["neighbourhood"].fillna(_UNKNOWN),
        "h3_index": units["cell"].fillna(_UNKNOWN),
        "centroid_lat": units["centroid_lat"],
        "centroid_lon": units["centroid_lon"],
        **_wkt(units["geometry"], "unit lines"),
    }


def _pipe_rows(pipes: pd.DataFrame) -> pd.DataFrame:
    """Pipes with material meaning, install decade, status and WGS84 geometry (no keys)."""
    material = pipes["material"].astype(object).where(pipes["material"].notna(), "UNK")
    desc = pipes["material_desc"].astype(object)
    desc = desc.where(desc.notna(), material.where(material != "UNK", "Unknown"))
    removal = pd.to_numeric(pipes["removal_year"], errors="coerce")
    return pd.DataFrame(
        {
            "unit_id": pipes["unit_id"].astype(object),
            "asset_id": pipes["asset_id"],
            "material": material,
            "material_desc": desc.astype(object),
            "diameter_mm": pipes["diameter_mm"],
            "install_year": pd.to_numeric(pipes["install_year"], errors="coerce").astype("Int32"),
            "install_decade": _decade(pipes["install_year"]),
            "removal_year": removal.astype("Int32"),
            "status": np.where(removal.notna(), "abandoned", "active").astype(object),
            "lined": pipes["lined"],
            "length_m": pipes["length_m"],
            **_location(pipes),
        }
    )


def _street_rows(streets: pd.DataFrame) -> pd.DataFrame:
    """Street segments with class, WGS84 mid-point and geometry (no keys)."""
    return pd.DataFrame(
        {
            "unit_id": streets["unit_id"].astype(object),
            "name": streets["name"].fillna("Unnamed"),
            "feature_class": streets["feature_code_desc"].fillna("Unknown"),
            "is_street": streets["is_street"],
            "length_m": streets["length_m"],
            **_location(streets),
        }
    )


@dataclass(frozen=True)
class _LineDimension:
    """A dimension of line units (a row per pipe or street segment): its unit table, its
    rows and the labels of its special members."""

    table: str
    rows: Callable[[pd.DataFrame], pd.DataFrame]
    key: str
    labelled: tuple[str, ...]
    fixed: Mapping[str, tuple[object, object]] = field(default_factory=dict)

    def whole(self, units: pd.DataFrame) -> pd.DataFrame:
        """The dimension of ``units``: special members, then keys 1..n in ``unit_id`` order."""
        return _keyed(self.rows(units), "unit_id", self.key, *self.labelled, **self.fixed)


#: the dimensions with a row per line unit, built a block of units at a time
_LINE_DIMENSIONS: dict[str, _LineDimension] = {
    "dim_pipe": _LineDimension(
        "unit_pipe",
        _pipe_rows,
        "pipe_key",
        ("material_desc", "install_decade", "status", *_PLACE_LABELS),
        {"material": ("UNK", "N/A")},
    ),
    "dim_street_segment": _LineDimension(
        "unit_street", _street_rows, "street_key", ("name", "feature_class", *_PLACE_LABELS)
    ),
}


def _dim_pipe(pipes: pd.DataFrame) -> pd.DataFrame:
    """Pipes with material meaning, install decade, status and WGS84 geometry."""
    return _LINE_DIMENSIONS["dim_pipe"].whole(pipes)


def _dim_street_segment(streets: pd.DataFrame) -> pd.DataFrame:
    """Street segments with class, WGS84 mid-point and geometry."""
    return _LINE_DIMENSIONS["dim_street_segment"].whole(streets)


def _line_dimension_chunks(store: Store, name: str, rows: int) -> Iterator[pd.DataFrame]:
    """A line-unit dimension finished a block of at most ``rows`` units at a time: the
    special members first, then the units in ``unit_id`` order, keyed 1..n across blocks
    (the dimension :func:`_dim_pipe` or :func:`_dim_street_segment` makes whole)."""
    spec = _LINE_DIMENSIONS[name]
    yield _finish(name, spec.whole(_read(store, spec.table, where="false")))  # -2 and -1
    made = 0
    for block in key_blocks(store, spec.table, "unit_id", rows):
        # read in the unit table's contract order, which is unit_id
        df = spec.rows(read_block(store, spec.table, block, "unit_id")).reset_index(drop=True)
        df.insert(0, spec.key, np.arange(made + 1, made + len(df) + 1, dtype=np.int64))
        made += len(df)
        yield _finish(name, df.astype(object), sort=False)


def _dim_neighbourhood(nbhd: pd.DataFrame) -> pd.DataFrame:
    """Neighbourhood polygons with a slicer label and WGS84 geometry."""
    code = nbhd["area_code"].astype(object)
    name = nbhd["area_name"].astype(object)
    df = pd.DataFrame(
        {
            "neighbourhood_code": code,
            "neighbourhood_name": name,
            "neighbourhood_label": name + " (" + code + ")",
            "area_km2": nbhd["area_km2"],
            "centroid_lat": nbhd["centroid_lat"],
            "centroid_lon": nbhd["centroid_lon"],
            **_wkt(nbhd["geometry"], "neighbourhood polygons"),
        }
    )
    return _keyed(
        df, "neighbourhood_code", "neighbourhood_key", "neighbourhood_name", "neighbourhood_label"
    )


def _dim_model(models: pd.DataFrame) -> pd.DataFrame:
    """The model registry with its validation summary."""
    df = models[load_schema("star/dim_model").columns[1:]].copy()
    labels = ("model_version", "unit_type", "kind")
    return _with_keys(
        df,
        "model_version",
        "model_key",
        {c: _UNKNOWN for c in labels},
        {c: _NOT_APPLICABLE for c in labels},
    )


# -- facts --------------------------------------------------------------------------------
def _fact_break(
    breaks: pd.DataFrame, links: pd.DataFrame, maps: Mapping[str, pd.Series], first_key: int = 1
) -> pd.DataFrame:
    """One row per break with its date key and linked unit keys (-1, unknown, when unlinked),
    keyed from ``first_key`` in ``break_id`` order."""
    df = breaks.sort_values("break_id", kind="mergesort").reset_index(drop=True)
    dates = pd.to_datetime(df["break_date"])
    out = pd.DataFrame(
        {
            "break_key": np.arange(first_key, first_key + len(df), dtype=np.int64),
            "break_id": df["break_id"],
            "date_key": (
                dates.dt.year * 10000 + dates.dt.month * 100 + dates.dt.day
                if len(df)
                else pd.Series(dtype=np.int64)
            ),
            "year_key": _year_keys(df["year"]),
            "year": df["year"],
            "lat": df["lat"],
            "lon": df["lon"],
            "breaks": np.ones(len(df), dtype=np.int64),
        }
    )
    matched = links[links["status"] == "matched"]
    for spec in UNIT_TYPES.values():
        sub = matched[matched["unit_type"] == spec.name]
        unit_of = pd.Series(sub["unit_id"].to_numpy(), index=sub["break_id"].to_numpy())
        out[spec.star_key] = _map_keys(out["break_id"].map(unit_of), maps[spec.name])
    return out


_BREAK_COLUMNS = ["break_id", "break_date", "year", "lat", "lon"]
_LINK_COLUMNS = ["break_id", "unit_type", "unit_id", "status"]


def _fact_break_chunks(
    store: Store, maps: Mapping[str, pd.Series], rows: int
) -> Iterator[pd.DataFrame]:
    """``fact_break`` finished a block of at most ``rows`` breaks at a time (with their
    links), in ``break_id`` order and keyed 1..n across blocks: the fact
    :func:`_fact_break` makes of every break at once."""
    name = "fact_break"
    blocks = key_blocks(store, "breaks", "break_id", rows)
    if not blocks:
        breaks = _read(store, "breaks", _BREAK_COLUMNS, where="false")
        yield _finish(name, _fact_break(breaks, _read(store, "break_links", _LINK_COLUMNS), maps))
        return
    linked = store.has_table("break_links")
    made = 0
    for block in blocks:
        breaks = read_block(store, "breaks", block, "break_id", columns=_BREAK_COLUMNS)
        links = (
            read_block(
                store, "break_links", block, "break_id", "status = 'matched'", [], _LINK_COLUMNS
            )
            if linked
            else _read(store, "break_links", _LINK_COLUMNS)
        )
        yield _finish(name, _fact_break(breaks, links, maps, made + 1), sort=False)
        made += len(breaks)


_UNIT_YEAR_COLUMNS = ["unit_type", "unit_id", "year", "breaks", "exposure_km"]


def _unit_year_values(df: pd.DataFrame) -> pd.DataFrame:
    """Year key, whole breaks and rate per 100 km of panel rows that carry their unit keys."""
    df["year_key"] = _year_keys(df["year"])
    exposure = pd.to_numeric(df["exposure_km"], errors="coerce").to_numpy(dtype=float)
    breaks = pd.to_numeric(df["breaks"]).to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        df["rate_per_100km"] = np.where(exposure > 0, breaks / exposure * 100.0, np.nan)
    df["breaks"] = np.rint(breaks).astype(np.int64)
    return df


def _fact_unit_year(
    panel: pd.DataFrame, maps: Mapping[str, pd.Series], places: Mapping[str, pd.DataFrame]
) -> pd.DataFrame:
    """Breaks, exposure and rate per 100 km per unit and year of a panel frame."""
    return _unit_year_values(_unit_keys(panel[_UNIT_YEAR_COLUMNS], maps, places))


def _fact_unit_year_chunks(
    store: Store, maps: Mapping[str, pd.Series], places: Mapping[str, pd.DataFrame], rows: int
) -> Iterator[pd.DataFrame]:
    """Breaks, exposure and rate per 100 km per unit and year, finished ``rows`` rows at a
    time in the contract's order.

    The keys are worked out once per unit (its distinct ``unit_type``/``unit_id`` in the
    panel); DuckDB joins them to the panel's five columns and sorts (spilling to disk
    rather than holding the 30 million rows of a 500,000-pipe city). Rows are sorted by
    the whole primary key, so a duplicate key lies across a chunk boundary at worst: the
    last key of each chunk is checked against the next.
    """
    name = "fact_unit_year"
    sch = load_schema(f"star/{name}")
    total = store.count("panel")
    if total == 0:
        yield _finish(
            name, _fact_unit_year(_read(store, "panel", _UNIT_YEAR_COLUMNS), maps, places)
        )
        return
    units = store.query('SELECT DISTINCT "unit_type", "unit_id" FROM "panel" ORDER BY 1, 2')
    keyed = _unit_keys(units, maps, places)
    keys = [s.star_key for s in UNIT_TYPES.values()]
    own = {c: "p" for c in _UNIT_YEAR_COLUMNS} | {c: "k" for c in keys}
    picked = ", ".join(f'{own[c]}."{c}"' for c in [*_UNIT_YEAR_COLUMNS, *keys])
    order = ", ".join(f'{own[c]}."{c}"' for c in sch.sort_by)
    sql = (
        f'SELECT {picked} FROM "panel" AS p JOIN _unit_year_keys AS k '
        'ON p."unit_type" = k."unit_type" AND p."unit_id" = k."unit_id" '
        f"ORDER BY {order}"
    )
    pk = list(sch.primary_key)
    last: tuple[object, ...] | None = None
    made = 0
    with store.registered("_unit_year_keys", keyed):
        for chunk in store.query_chunks(sql, rows=rows):
            out = _finish(name, _unit_year_values(chunk), sort=False)
            if last is not None and tuple(out[pk].iloc[0]) == last:
                raise ContractError(
                    f"table {name!r} violates its contract: primary key {pk} not unique",
                    [f"e.g. {dict(zip(pk, last, strict=True))}"],
                )
            last = tuple(out[pk].iloc[-1])
            made += len(out)
            yield out
    if made != total:  # every panel row has a unit id, so every row joins its keys
        raise ContractError(f"{name}: {made} rows made from {total} panel rows")


def _fact_risk_score(
    scores: pd.DataFrame,
    sims: pd.DataFrame,
    dims: Mapping[str, pd.DataFrame],
    maps: Mapping[str, pd.Series],
    places: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """Risk scores with unit keys, model key and the horizon-1 simulated p90.

    The p90 comes from the simulation run with the scoring run's ``run_id`` when there is
    one, else from the latest simulation run (largest ``run_id``) of the same model version.
    """
    one = sims.loc[sims["horizon"] == 1, ["run_id", "model_version", "unit_type", "unit_id", "p90"]]
    sim_runs = one[["run_id", "model_version", "unit_type"]].drop_duplicates()
    latest = (
        sim_runs.sort_values("run_id", kind="mergesort")
        .drop_duplicates(["model_version", "unit_type"], keep="last")
        .rename(columns={"run_id": "sim_run_id"})
    )
    runs = scores[["run_id", "model_version", "unit_type"]].drop_duplicates()
    runs = runs.merge(latest, on=["model_version", "unit_type"], how="left")
    exact = runs.set_index(["run_id", "unit_type"]).index.isin(
        sim_runs.set_index(["run_id", "unit_type"]).index
    )
    runs.loc[exact, "sim_run_id"] = runs.loc[exact, "run_id"]
    df = scores.merge(runs, on=["run_id", "model_version", "unit_type"], how="left")
    p90 = one.rename(columns={"run_id": "sim_run_id"}).drop(columns="model_version")
    df = df.merge(p90, on=["sim_run_id", "unit_type", "unit_id"], how="left", validate="m:1")
    df = _unit_keys(df, maps, places)
    df["model_key"] = _model_keys(df, dims)
    df["year_key"] = _year_keys(df["target_year"])
    return df


def _fact_risk_score_chunks(
    store: Store,
    dims: Mapping[str, pd.DataFrame],
    maps: Mapping[str, pd.Series],
    places: Mapping[str, pd.DataFrame],
) -> Iterator[pd.DataFrame]:
    """:func:`_fact_risk_score` finished a unit type at a time, in the contract's order
    (``unit_type`` first): each type's scores and horizon-1 simulations are read alone, so
    the largest type, not every scored unit, is held (3.6 million at 2,000,000 pipes).
    Every step of the fact works within a unit type, so the rows are those of the whole."""
    name = "fact_risk_score"
    sql = 'SELECT DISTINCT "unit_type" FROM "risk_scores" ORDER BY 1'
    kinds = store.query(sql)["unit_type"].tolist() if store.has_table("risk_scores") else []
    if not kinds:
        scores, sims = _read(store, "risk_scores"), _read(store, "simulation_unit")
        yield _finish(name, _fact_risk_score(scores, sims, dims, maps, places))
        return
    for kind in kinds:
        scores = _read(store, "risk_scores", where='"unit_type" = ?', params=[kind])
        one_year = '"unit_type" = ? AND "horizon" = 1'
        sims = _read(store, "simulation_unit", where=one_year, params=[kind])
        yield _finish(name, _fact_risk_score(scores, sims, dims, maps, places))


def _fact_hotspot(
    lisa: pd.DataFrame, maps: Mapping[str, pd.Series], places: Mapping[str, pd.DataFrame]
) -> pd.DataFrame:
    """LISA classes per unit, year and variable."""
    df = _unit_keys(lisa, maps, places)
    df["year_key"] = _year_keys(df["year"])
    return df


def _fact_cv_metric(cv: pd.DataFrame, dims: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Validation metrics with the model key and the year of the breaks a fold predicts."""
    df = cv.copy()
    df["model_key"] = _model_keys(df, dims)
    df["year_key"] = _year_keys(pd.to_numeric(df["test_year"], errors="coerce") + 1)
    return df


def _first_target_years(scores: pd.DataFrame) -> pd.Series:
    """The target year of the latest scores of each (model version, unit type)."""
    if scores.empty:
        return pd.Series(dtype="float64")
    return scores.groupby(["model_version", "unit_type"])["target_year"].max()


def _fact_simulation(
    city: pd.DataFrame, scores: pd.DataFrame, dims: Mapping[str, pd.DataFrame]
) -> pd.DataFrame:
    """City simulation in long format: one row per statistic; the year of horizon ``h`` is
    the target year of the model's latest scores plus ``h - 1``."""
    ids = ["run_id", "model_version", "unit_type", "scenario", "horizon", "is_current"]
    df = city.melt(
        id_vars=ids,
        value_vars=list(_STATISTICS),
        var_name="statistic",
        value_name="cumulative_breaks",
    )
    df["statistic_order"] = df["statistic"].map({s: i + 1 for i, s in enumerate(_STATISTICS)})
    df["model_key"] = _model_keys(df, dims)
    first = _first_target_years(scores)
    start = pd.Series(
        first.reindex(pd.MultiIndex.from_frame(df[["model_version", "unit_type"]])).to_numpy(),
        index=df.index,
    )
    year = start + pd.to_numeric(df["horizon"]) - 1
    df["year_key"] = np.where(year.notna(), year.fillna(0), UNKNOWN_KEY).astype(np.int64)
    return df


# -- public -------------------------------------------------------------------------------
def _kept(name: str, frame: pd.DataFrame) -> StarTable:
    return frame


def _place_sources(store: Store) -> dict[str, pd.DataFrame]:
    """Per unit type, the columns of its units :func:`_places` reads (not the geometry)."""
    out = {}
    for name, spec in UNIT_TYPES.items():
        known = set(load_schema(TABLES[spec.table]).columns)
        cols = ["unit_id", *(c for _, c in spec.located_in if c in known)]
        out[name] = _read(store, spec.table, cols)
    return out


def _build(
    store: Store,
    collect: Callable[[str, Iterator[pd.DataFrame]], StarTable],
    chunk_rows: int = CHUNK_ROWS,
    keep: Callable[[str, pd.DataFrame], StarTable] = _kept,
) -> dict[str, StarTable]:
    """Every star table; ``collect`` turns the finished chunks of a fact built a chunk at a
    time (``fact_unit_year``, ``fact_risk_score``) into the table handed on, ``keep`` every
    other finished table.

    Each source table is read for the table that needs it and let go with it, and the
    dimensions go to ``keep`` once the unit keys are known, so what is held while a table is
    built is that table, its sources, the key maps and what ``keep`` holds. The dimensions
    with a row per pipe or street segment go to ``collect`` a block of
    :data:`~.tables.DIMENSION_ROWS` units at a time, so not even they are held whole.
    """
    get = partial(_read, store)

    builders: dict[str, Callable[[], pd.DataFrame] | None] = {
        "dim_date": lambda: _dim_date(_read(store, "breaks", ["break_date"])),
        "dim_h3_cell": lambda: _dim_h3_cell(get("unit_cell"), get("neighbourhoods")),
        "dim_pipe": None,
        "dim_street_segment": None,
        "dim_neighbourhood": lambda: _dim_neighbourhood(get("neighbourhoods")),
        "dim_model": lambda: _dim_model(get("models")),
    }
    out: dict[str, StarTable] = {}
    maps: dict[str, pd.Series] = {}
    models: dict[str, pd.DataFrame] = {}  # what the facts read of the dimensions
    for name, build in builders.items():
        if build is None:  # a row per line unit: a block of units at a time
            keys: list[pd.Series] = []
            chunks = _line_dimension_chunks(store, name, min(chunk_rows, DIMENSION_ROWS))
            out[name] = collect(name, _noting_keys(name, chunks, keys))
            maps[_unit_type_of(name)] = pd.concat(keys) if keys else pd.Series(dtype=np.int64)
            continue
        dim = _finish(name, build())
        maps.update(_unit_key_maps({name: dim}))
        if name == "dim_model":
            models[name] = dim
        out[name] = keep(name, dim)
        del dim  # a dimension is let go before the next one is built
    places = _places(_place_sources(store))
    # a row per break: a block of breaks at a time
    out["fact_break"] = collect(
        "fact_break", _fact_break_chunks(store, maps, min(chunk_rows, DIMENSION_ROWS))
    )
    facts: dict[str, Callable[[], pd.DataFrame]] = {
        "fact_hotspot": lambda: _fact_hotspot(get("lisa"), maps, places),
        "fact_cv_metric": lambda: _fact_cv_metric(get("cv_metrics"), models),
        "fact_simulation": lambda: _fact_simulation(
            get("simulation_city"),
            _read(store, "risk_scores", ["model_version", "unit_type", "target_year"]),
            models,
        ),
    }
    for name, build_fact in facts.items():
        out[name] = keep(name, _finish(name, build_fact()))
    # the facts with a row per unit come finished a unit type at a time
    out["fact_risk_score"] = collect(
        "fact_risk_score", _fact_risk_score_chunks(store, models, maps, places)
    )
    # the fact with a row per unit and year comes finished a chunk at a time
    out["fact_unit_year"] = collect(
        "fact_unit_year", _fact_unit_year_chunks(store, maps, places, chunk_rows)
    )
    # the year dimension spans the years the facts carry (year_key is the year itself)
    out["dim_year"] = keep("dim_year", _finish("dim_year", _dim_year({f: out[f] for f in FACTS})))
    return {name: out[name] for name in STAR_TABLES}


def build_star(store: Store) -> dict[str, pd.DataFrame]:
    """Build every star table from ``store``, each conformed and validated against its contract.

    Parameters
    ----------
    store
        An open store (read-only is enough).

    Returns
    -------
    dict
        Table name -> frame, in :data:`STAR_TABLES` order. A dimension without source rows
        holds only its special members (-2, -1); a fact without source rows is empty.

    See Also
    --------
    spool_star : the same tables with the largest fact in a file (cities of any size).
    """

    def concatenated(name: str, chunks: Iterator[pd.DataFrame]) -> pd.DataFrame:
        return conform(pd.concat(list(chunks), ignore_index=True), load_schema(f"star/{name}"))

    return {name: frame_of(t) for name, t in _build(store, concatenated).items()}


def spool_star(
    store: Store,
    folder: Path | str,
    *,
    chunk_rows: int = CHUNK_ROWS,
    spool_rows: int = SPOOL_ROWS,
) -> dict[str, StarTable]:
    """:func:`build_star`, with every table of ``spool_rows`` rows or more written to
    ``folder/<table>.parquet`` as soon as it is built and handed on as a
    :class:`~twmb_geo.publish.tables.SpooledTable` that targets read a chunk at a time
    (smaller tables stay frames); ``fact_unit_year`` (a row per unit and year) and
    ``fact_risk_score`` are written as they are built, ``chunk_rows`` rows or a unit type
    at a time.

    Memory is then bounded by the table being built and a chunk, not by the star (at
    2,000,000 pipes the dimensions with their shapes and the scores are gigabytes);
    ``folder`` must outlive the writes (the publish stage uses a temporary folder of the
    output).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def spooled(name: str, chunks: Iterator[pd.DataFrame]) -> StarTable:
        path = folder / f"{name}.parquet"
        return spool_table(path, load_schema(f"star/{name}"), chunks, min_rows=spool_rows)

    def kept(name: str, frame: pd.DataFrame) -> StarTable:
        return spooled(name, chunks_of(frame))

    return _build(store, spooled, chunk_rows, kept)


def check_keys(tables: Mapping[str, StarTable]) -> list[str]:
    """Referential integrity: every key of every fact exists in its dimension.

    Parameters
    ----------
    tables
        Star tables by name (from :func:`build_star` or :func:`spool_star`).

    Returns
    -------
    list of str
        One message per broken fact key column (empty when all resolve), plus duplicate or
        missing dimension keys.
    """
    problems: list[str] = []
    dim_keys: dict[str, pd.Series] = {}
    for dim_name in DIMENSIONS:
        if dim_name not in tables:
            continue
        key = next(k for k, d in KEY_DIMENSIONS.items() if d == dim_name)
        dim_keys[dim_name] = column_of(tables[dim_name], key)
        dup = dim_keys[dim_name].duplicated()
        if dup.any():
            problems.append(f"{dim_name}.{key}: {int(dup.sum())} duplicate keys")
    for fact in FACTS:
        if fact not in tables:
            continue
        cols = list(tables[fact].columns)
        for key, dim_name in KEY_DIMENSIONS.items():
            if key in cols and dim_name not in tables:
                problems.append(f"{fact}.{key}: dimension {dim_name} is missing")
        checked = [k for k in KEY_DIMENSIONS if k in cols and KEY_DIMENSIONS[k] in dim_keys]
        bad_rows = dict.fromkeys(checked, 0)
        examples: dict[str, list[object]] = {k: [] for k in checked}
        for chunk in chunks_of(tables[fact]):
            for key in checked:
                bad = ~chunk[key].isin(dim_keys[KEY_DIMENSIONS[key]])
                if bad.any():
                    bad_rows[key] += int(bad.sum())
                    seen = examples[key]
                    new = [
                        v for v in chunk.loc[bad, key].drop_duplicates().tolist() if v not in seen
                    ]
                    seen.extend(new[: 5 - len(seen)])
        problems.extend(
            f"{fact}.{key}: {n} rows without a {KEY_DIMENSIONS[key]} row, e.g. {examples[key]}"
            for key, n in bad_rows.items()
            if n
        )
    return problems
