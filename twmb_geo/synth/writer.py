"""Write a synthetic city in the City of Toronto's published formats, plus the truth.

Published-format files (read by the built-in profiles):

* ``centreline_4326.geojson`` - Toronto Centreline (TCL) v2 GeoJSON (``toronto_centreline_geojson``);
* ``distribution_watermain_4326.geojson`` - active pipes as "Distribution Watermain"
  (``toronto_watermains_distribution_geojson``);
* ``abandoned_watermain_4326.geojson`` - replaced pipes, same columns plus
  ``Watermain Removal Year`` (``synthetic_watermains_abandoned_geojson``);
* with ``formats`` containing ``"csv"``, the CKAN CSV copies in EPSG:2952 with GeoJSON text
  geometry (``*_2952.csv``, profiles ``..._csv``);
* ``watermain_breaks.csv`` - breaks as the shapefile's attribute table (``toronto_breaks_csv``).

Truth (never part of the published files): ``truth/break_truth.csv``,
``truth/pipe_hazard.parquet``, ``truth/pipes.parquet``, ``truth/soil_field.parquet`` and
``truth/params.json``; and ``twmb.toml``, a project config ingesting it all.

Output is byte-identical for the same city: fixed column order, sorted rows, rounded
coordinates (1e-7 degree in GeoJSON, 1 mm in EPSG:2952), stable float formatting.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from .._paths import data_dir
from ..config import Config, SourceConfig, write_config
from ..core.crs import TORONTO_CRS, TORONTO_NAD27_CRS, WGS84, transform_geometries, transform_xy
from .city import SynthCity
from .streets import join_names

__all__ = ["FILES", "write_city"]

FILES = {
    "streets": "centreline_4326.geojson",
    "pipes": "distribution_watermain_4326.geojson",
    "pipes_abandoned": "abandoned_watermain_4326.geojson",
    "streets_csv": "centreline_2952.csv",
    "pipes_csv": "distribution_watermain_2952.csv",
    "pipes_abandoned_csv": "abandoned_watermain_2952.csv",
    "breaks": "watermain_breaks.csv",
    "break_truth": "truth/break_truth.csv",
    "pipe_hazard": "truth/pipe_hazard.parquet",
    "pipes_truth": "truth/pipes.parquet",
    "soil": "truth/soil_field.parquet",
    "params": "truth/params.json",
    "config": "twmb.toml",
}
_GEOJSON_OPTIONS = {"RFC7946": "YES", "WRITE_NAME": "NO", "SIGNIFICANT_FIGURES": "15"}
_LEGAL = {
    "St": "Street", "Ave": "Avenue", "Rd": "Road", "Dr": "Drive", "Cres": "Crescent",
    "Crt": "Court", "Gdns": "Gardens", "Pl": "Place", "Way": "Way", "Blvd": "Boulevard",
}  # fmt: skip
_DIRS = {"E": "East", "W": "West"}


def _text(values: pd.Series | np.ndarray) -> np.ndarray:
    """Text the City's way: missing values are the string 'None'."""
    s = pd.Series(np.asarray(values, dtype=object)).astype(object)
    return s.where(s.notna(), "None").astype(str).to_numpy(dtype=object)


def _none_where(mask: np.ndarray, value: str) -> np.ndarray:
    """``value`` for every row as an object array, None where ``mask`` is set."""
    out = np.full(len(mask), value, dtype=object)
    out[mask] = None
    return out


def _ints(values: np.ndarray, mask: np.ndarray | None = None) -> pd.arrays.IntegerArray:
    arr = pd.array(np.asarray(values, dtype=np.int64), dtype="Int64")
    if mask is not None:
        arr[np.asarray(mask, dtype=bool)] = pd.NA
    return arr


def _tcl_columns(streets: gpd.GeoDataFrame) -> pd.DataFrame:
    """The TCL v2 attribute table of the streets."""
    n = len(streets)
    is_street = streets["is_street"].to_numpy(dtype=bool)
    code = streets["feature_code"].to_numpy()
    addressed = is_street & np.isin(code, (201200, 201300, 201400, 201500))
    cid = streets["centreline_id"].to_numpy(dtype=np.int64)
    length = streets["length_m"].to_numpy()
    lo = 1 + 2 * ((cid * 7919) % 400)  # odd numbers on the left, even on the right
    hi = lo + 2 * np.maximum(1, (length // 18).astype(np.int64))
    no_addr = ~addressed
    name = streets["linear_name_full"].astype(object)
    ntype = streets["linear_name_type"].astype(object)
    ndir = streets["linear_name_dir"].astype(object)
    base = streets["linear_name"].astype(object)
    legal_type = ntype.replace(_LEGAL)
    legal_dir = ndir.map(_DIRS)
    legal = join_names(base, legal_type, legal_dir)
    legal[name.isna().to_numpy()] = None
    addr_l = np.where(no_addr, None, pd.Series(lo).astype(str) + "-" + pd.Series(hi).astype(str))
    addr_r = np.where(
        no_addr, None, pd.Series(lo + 1).astype(str) + "-" + pd.Series(hi + 1).astype(str)
    )
    ids = np.arange(1, n + 1, dtype=np.int64)
    return pd.DataFrame(
        {
            "_id": ids,
            "CENTRELINE_ID": cid,
            "LINEAR_NAME_ID": _ints(
                streets["linear_name_id"].fillna(0).to_numpy(),
                streets["linear_name_id"].isna().to_numpy(),
            ),
            "LINEAR_NAME_FULL": _text(name),
            "LINEAR_NAME_FULL_LEGAL": _text(legal),
            "ADDRESS_L": _text(addr_l),
            "ADDRESS_R": _text(addr_r),
            "PARITY_L": _text(_none_where(no_addr, "O")),
            "PARITY_R": _text(_none_where(no_addr, "E")),
            "LO_NUM_L": _ints(lo, no_addr),
            "HI_NUM_L": _ints(hi, no_addr),
            "LO_NUM_R": _ints(lo + 1, no_addr),
            "HI_NUM_R": _ints(hi + 1, no_addr),
            "BEGIN_ADDR_POINT_ID_L": _ints(np.zeros(n), np.ones(n, bool)),
            "END_ADDR_POINT_ID_L": _ints(np.zeros(n), np.ones(n, bool)),
            "BEGIN_ADDR_POINT_ID_R": _ints(np.zeros(n), np.ones(n, bool)),
            "END_ADDR_POINT_ID_R": _ints(np.zeros(n), np.ones(n, bool)),
            "BEGIN_ADDR_L": _ints(lo, no_addr),
            "END_ADDR_L": _ints(hi, no_addr),
            "BEGIN_ADDR_R": _ints(lo + 1, no_addr),
            "END_ADDR_R": _ints(hi + 1, no_addr),
            "LOW_NUM_ODD": _ints(lo, no_addr),
            "HIGH_NUM_ODD": _ints(hi, no_addr),
            "LOW_NUM_EVEN": _ints(lo + 1, no_addr),
            "HIGH_NUM_EVEN": _ints(hi + 1, no_addr),
            "LINEAR_NAME": _text(base),
            "LINEAR_NAME_TYPE": _text(ntype),
            "LINEAR_NAME_DIR": _text(ndir),
            "LINEAR_NAME_DESC": _text(np.full(n, None, dtype=object)),
            "LINEAR_NAME_LABEL": _text(name),
            "FROM_INTERSECTION_ID": streets["from_node"].to_numpy(dtype=np.int64),
            "TO_INTERSECTION_ID": streets["to_node"].to_numpy(dtype=np.int64),
            "ONEWAY_DIR_CODE": np.zeros(n, dtype=np.int32),
            "ONEWAY_DIR_CODE_DESC": np.full(n, "Not One-Way", dtype=object),
            "FEATURE_CODE": code.astype(np.int32),
            "FEATURE_CODE_DESC": _text(streets["feature_code_desc"]),
            "JURISDICTION": _text(_none_where(~is_street, "CITY OF TORONTO")),
            "CENTRELINE_STATUS": np.full(n, "Active", dtype=object),
            "OBJECTID": ids,
            "MI_PRINX": ids,
        }
    )


def _epoch_ms(years: np.ndarray) -> np.ndarray:
    """Epoch milliseconds (UTC) of 1 January of each year."""
    d = (np.asarray(years, dtype=np.int64) - 1970).astype("datetime64[Y]").astype("datetime64[ms]")
    return d.astype(np.int64)


def _watermain_columns(pipes: gpd.GeoDataFrame, removal: bool) -> pd.DataFrame:
    n = len(pipes)
    cy = pipes["construction_year_published"]
    missing = cy.isna().to_numpy()
    years = cy.fillna(1970).to_numpy(dtype=np.int64)
    cols = {
        "_id": np.arange(1, n + 1, dtype=np.int64),
        "Watermain Asset Identification": pipes["asset_id"].astype(str).to_numpy(dtype=object),
        "Watermain Type": np.zeros(n, dtype=np.int32),
        "Watermain Diameter": pipes["diameter_mm"].to_numpy(dtype=np.int32),
        "Watermain Material": _text(pipes["material_published"].astype(object)),
        "Watermain Install Date": _ints(_epoch_ms(years), missing),
        "Watermain Construction Year": _ints(years, missing),
        "Watermain Measured Length": np.round(pipes["length_m"].to_numpy(dtype=float), 2),
        "Watermain Location Description": _text(pipes["location_desc"].astype(object)),
    }
    if removal:
        cols["Watermain Removal Year"] = pipes["removal_year"].astype("Int64").to_numpy()
    return pd.DataFrame(cols)


def _multi(geoms: np.ndarray) -> np.ndarray:
    return shapely.multilinestrings(geoms, indices=np.arange(len(geoms)))


def _write_geojson(attrs: pd.DataFrame, geoms: np.ndarray, path: Path) -> None:
    g4326, _ = transform_geometries(_multi(np.asarray(geoms, dtype=object)), TORONTO_CRS, WGS84)
    gdf = gpd.GeoDataFrame(attrs, geometry=gpd.GeoSeries(g4326, crs=WGS84))
    path.unlink(missing_ok=True)
    pyogrio.write_dataframe(gdf, path, driver="GeoJSON", layer_options=_GEOJSON_OPTIONS)


def _write_csv_copy(attrs: pd.DataFrame, geoms: np.ndarray, path: Path) -> None:
    g = shapely.transform(_multi(np.asarray(geoms, dtype=object)), lambda c: np.round(c, 3))
    out = attrs.copy()
    out["geometry"] = shapely.to_geojson(g)
    out.to_csv(path, index=False, lineterminator="\n")


def _breaks_csv(city: SynthCity) -> pd.DataFrame:
    b = city.breaks
    x = b["x"].to_numpy(dtype=float)
    y = b["y"].to_numpy(dtype=float)
    lon, lat, _ = transform_xy(x, y, TORONTO_CRS, WGS84)
    ex, ey, _ = transform_xy(x, y, TORONTO_CRS, TORONTO_NAD27_CRS)
    return pd.DataFrame(
        {
            "_id": b["row"].to_numpy(dtype=np.int64),
            "BREAK_DATE": pd.to_datetime(b["break_date"])
            .dt.strftime("%Y-%m-%d")
            .to_numpy(dtype=object),
            "BREAK_YEAR": b["year"].to_numpy(dtype=np.int64),
            "XCOORD": np.round(ex, 3),
            "YCOORD": np.round(ey, 3),
            "POINT_X": np.round(lon, 7),
            "POINT_Y": np.round(lat, 7),
        }
    )


def _write_hazard(hazard: pd.DataFrame, path: Path) -> None:
    """The hazard panel as Parquet: rows by pipe then year, rate as float32, zstd.

    Row groups of 1M rows hold a few tens of thousands of pipes each, so the asset id stays
    dictionary-encoded (a few bytes a row) even for millions of pipes.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    codes = hazard["asset_id"].cat.codes.to_numpy()
    cats = hazard["asset_id"].cat.categories.to_numpy(dtype=object)
    step = 1_000_000
    schema = pa.schema(
        [
            ("asset_id", pa.dictionary(pa.int32(), pa.string())),
            ("year", pa.int16()),
            ("rate", pa.float32()),
            ("prior_breaks", pa.int8()),
        ]
    )
    with pq.ParquetWriter(path, schema, compression="zstd") as w:
        for lo in range(0, max(len(hazard), 1), step):
            sl = slice(lo, lo + step)
            c = codes[sl]
            used, local = np.unique(c, return_inverse=True)
            ids = pa.DictionaryArray.from_arrays(
                pa.array(local.astype(np.int32)), pa.array(cats[used], type=pa.string())
            )
            w.write_table(
                pa.table(
                    {
                        "asset_id": ids,
                        "year": pa.array(hazard["year"].to_numpy()[sl].astype(np.int16)),
                        "rate": pa.array(hazard["rate"].to_numpy()[sl].astype(np.float32)),
                        "prior_breaks": pa.array(
                            hazard["prior_breaks"].to_numpy()[sl].astype(np.int8)
                        ),
                    },
                    schema=schema,
                )
            )


def _config(city: SynthCity, geo: bool) -> Config:
    tor = data_dir() / "toronto"
    suffix = "" if geo else "_csv"
    prof = {
        "streets": "toronto_centreline_geojson" if geo else "toronto_centreline_csv",
        "pipes": "toronto_watermains_distribution_geojson"
        if geo
        else "toronto_watermains_distribution_csv",
        "pipes_abandoned": "synthetic_watermains_abandoned_geojson"
        if geo
        else "synthetic_watermains_abandoned_csv",
    }
    p = city.params
    return Config(
        name=f"synthetic-seed{p.seed}-n{p.n_pipes}",
        city="Synthetic city",
        crs=TORONTO_CRS,
        licence=(
            "Synthetic breaks, water mains and streets (twmb_geo generator); neighbourhoods: "
            "City of Toronto Open Data, Open Government Licence - Toronto; weather: Environment "
            "and Climate Change Canada, Open Government Licence - Canada"
        ),
        out=Path("out"),
        today=dt.date(p.snapshot_year + 1, 1, 1),
        service_area_source="neighbourhoods",
        sources=(
            SourceConfig(
                "neighbourhoods",
                "toronto_neighbourhoods_140",
                str(tor / "neighbourhood_planning_areas_utm6.zip"),
            ),
            SourceConfig(
                "weather", "eccc_daily", str(tor / "weather_daily_6158350" / "eng-daily-*.csv")
            ),
            SourceConfig("pipes", prof["pipes"], FILES["pipes" + suffix]),
            SourceConfig(
                "pipes_abandoned", prof["pipes_abandoned"], FILES["pipes_abandoned" + suffix]
            ),
            SourceConfig("streets", prof["streets"], FILES["streets" + suffix]),
            SourceConfig("breaks", "toronto_breaks_csv", FILES["breaks"]),
        ),
    )


def write_city(
    city: SynthCity, folder: Path | str, *, formats: Sequence[str] = ("geojson",)
) -> dict[str, Path]:
    """Write ``city`` to ``folder`` in the City's formats, with the truth and a project config.

    Parameters
    ----------
    city
        From :func:`~twmb_geo.synth.make_city`.
    folder
        Output folder (created; files of the same name are overwritten).
    formats
        ``"geojson"`` (EPSG:4326, the default) and/or ``"csv"`` (CKAN CSV copies in
        EPSG:2952) for streets and pipes. ``twmb.toml`` uses the GeoJSON files when written.

    Returns
    -------
    dict
        Path of every file written, by key (``streets``, ``pipes``, ``pipes_abandoned``,
        ``breaks``, ``break_truth``, ``pipe_hazard``, ``pipes_truth``, ``soil``, ``params``,
        ``config`` and the ``*_csv`` copies when asked).
    """
    bad = sorted(set(formats) - {"geojson", "csv"})
    if bad or not formats:
        raise ValueError(
            f"formats must be a non-empty subset of ('geojson', 'csv'), got {formats!r}"
        )
    folder = Path(folder)
    (folder / "truth").mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    streets = city.streets
    pipes = city.pipes
    active = pipes[pipes["status"] == "active"]
    abandoned = pipes[pipes["status"] == "abandoned"]
    tables = {
        "streets": (_tcl_columns(streets), streets.geometry.to_numpy()),
        "pipes": (_watermain_columns(active, False), active.geometry.to_numpy()),
        "pipes_abandoned": (_watermain_columns(abandoned, True), abandoned.geometry.to_numpy()),
    }
    for key, (attrs, geoms) in tables.items():
        if "geojson" in formats:
            out[key] = folder / FILES[key]
            _write_geojson(attrs, geoms, out[key])
        if "csv" in formats:
            out[key + "_csv"] = folder / FILES[key + "_csv"]
            _write_csv_copy(attrs, geoms, out[key + "_csv"])

    out["breaks"] = folder / FILES["breaks"]
    _breaks_csv(city).to_csv(out["breaks"], index=False, lineterminator="\n")
    b = city.breaks
    truth = pd.DataFrame(
        {
            "row": b["row"],
            "asset_id": b["asset_id"],
            "distance_m": b["distance_m"].round(3),
            "offset_m": b["offset_m"].round(3),
            "along_m": b["along_m"].round(3),
            "true_x": b["true_x"].round(3),
            "true_y": b["true_y"].round(3),
            "outlier": b["outlier"],
        }
    )
    out["break_truth"] = folder / FILES["break_truth"]
    truth.to_csv(out["break_truth"], index=False, lineterminator="\n")
    out["pipe_hazard"] = folder / FILES["pipe_hazard"]
    _write_hazard(city.hazard, out["pipe_hazard"])
    out["pipes_truth"] = folder / FILES["pipes_truth"]
    pd.DataFrame(pipes.drop(columns="geometry")).to_parquet(out["pipes_truth"], index=False)
    out["soil"] = folder / FILES["soil"]
    city.soil.to_frame().to_parquet(out["soil"], index=False)
    out["params"] = folder / FILES["params"]
    doc = {"params": city.params.to_dict(), "meta": city.meta, "figures": city.figures()}
    out["params"].write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    out["config"] = write_config(
        _config(city, "geojson" in formats), folder / FILES["config"], overwrite=True
    )
    return out
