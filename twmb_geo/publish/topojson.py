"""TopoJSON of the star's polygon dimensions, for Power BI's Shape Map visual.

Shape Map draws custom regions from a TopoJSON file (Format > Map settings > Custom map)
and matches them to a report field through one of each shape's properties. The files hold
the neighbourhoods and the H3 cells with their dimension key, code and name as properties,
shared borders as shared arcs (the ``topojson`` package), quantised to 1e6 steps of the
bounding box (about 5 cm across a city). Built from the dimensions' WGS84 WKT, so a
polygon simplified to fit Power BI's text limit is simplified here too (its
``wkt_tolerance_m`` says by how much).
"""

from __future__ import annotations

from collections.abc import Mapping

import geopandas as gpd
import pandas as pd
import shapely
import topojson

from ..core.crs import WGS84

__all__ = ["QUANTIZATION", "SHAPE_MAPS", "star_topojson"]

#: star dimension -> (TopoJSON object and file name, the properties each shape carries)
SHAPE_MAPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dim_neighbourhood": (
        "neighbourhoods",
        ("neighbourhood_key", "neighbourhood_code", "neighbourhood_name", "neighbourhood_label"),
    ),
    "dim_h3_cell": ("h3_cells", ("cell_key", "h3_index", "neighbourhood_code")),
}
#: quantisation of the arcs (steps across the bounding box)
QUANTIZATION = 1_000_000


def _properties(df: pd.DataFrame, cols: tuple[str, ...]) -> pd.DataFrame:
    """Plain JSON values: integers as int, text as str."""
    out = {}
    for c in cols:
        s = df[c]
        out[c] = s.astype("int64") if c.endswith("_key") else s.astype(str)
    return pd.DataFrame(out).astype(object)


def star_topojson(tables: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    """``<name>.topojson`` -> TopoJSON text for every polygon dimension with shapes.

    The special members (keys -1, -2) and rows without WKT are left out.
    """
    out: dict[str, str] = {}
    for dim, (name, cols) in SHAPE_MAPS.items():
        df = tables[dim]
        key = cols[0]
        df = df[(df[key].astype("int64") > 0) & df["wkt"].notna()].reset_index(drop=True)
        if df.empty:
            continue
        gdf = gpd.GeoDataFrame(
            _properties(df, cols),
            geometry=shapely.from_wkt(df["wkt"].to_numpy(dtype=object)),
            crs=WGS84,
        )
        topo = topojson.Topology(gdf, object_name=name, prequantize=QUANTIZATION)
        text = topo.to_json()  # a str when no file is given
        if not isinstance(text, str):
            raise TypeError(f"topojson returned {type(text).__name__} for {name}, not text")
        out[f"{name}.topojson"] = text
    return out
