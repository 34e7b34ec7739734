"""Assemble a synthetic city: streets, pipes, breaks, the true hazard and the soil field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..core.crs import TORONTO_CRS, using_crs
from .fields import GridField
from .hazard import Simulation, simulate_breaks
from .params import MATERIAL_CODES, SynthParams
from .pipes import LINED, PipeSet, build_pipes
from .reference import load_reference, winter_index
from .streets import CLASSES, EXPRESSWAY, StreetNet, build_streets, city_fields, plan_layout

__all__ = ["SynthCity", "make_city"]

CRS = TORONTO_CRS
CENTRELINE_ID_BASE = 1_000_000
NODE_ID_BASE = 13_000_000
ASSET_ID_BASE = 100_000
NAME_ID_BASE = 10_000


@dataclass
class SynthCity:
    """A generated city and its truth.

    Attributes
    ----------
    streets
        Centreline segments (EPSG:2952): ``centreline_id``, ``linear_name_full``,
        ``linear_name``, ``linear_name_type``, ``linear_name_dir``, ``linear_name_id``,
        ``feature_code``, ``feature_code_desc``, ``is_street``, ``has_main``,
        ``from_node``, ``to_node``, ``ward``, ``length_m``, geometry (LineString).
    pipes
        Every pipe record (EPSG:2952), active first, then abandoned: ``asset_id``,
        ``status`` (active/abandoned), ``material`` (true), ``material_published``,
        ``diameter_mm``, ``install_year`` (true), ``construction_year_published``
        (nullable), ``removal_year`` (nullable), ``replaced_by`` (asset id), ``lined``,
        ``pressure_zone`` (1-7), ``street_id`` (centreline id), ``ward``, ``soil``,
        ``length_m``, ``location_desc``, geometry (LineString).
    breaks
        One row per simulated break in the order of the published file: ``row`` (1-based
        row = ``_id`` of the breaks CSV), ``break_date``, ``year``, ``month``, ``x``, ``y``
        (EPSG:2952, as reported), ``asset_id`` (true pipe), ``distance_m`` (reported point
        to the true pipe), ``offset_m`` (reported point to the true break location),
        ``along_m`` (true location along the pipe), ``true_x``, ``true_y`` (the true
        location), ``outlier`` (drawn with the outlier noise).
    hazard
        True rate of every pipe-year in service: ``asset_id`` (categorical), ``year``,
        ``rate`` (expected breaks that year), ``prior_breaks`` (breaks on the pipe in the
        previous ``repeat_window`` years).
    soil
        The soil-corrosivity field (standard normal, EPSG:2952 grid).
    params
        The parameters that made the city.
    meta
        Calibration constant ``c``, the winter table, layout figures.
    """

    streets: gpd.GeoDataFrame
    pipes: gpd.GeoDataFrame
    breaks: pd.DataFrame
    hazard: pd.DataFrame
    soil: GridField
    params: SynthParams
    meta: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        """Headline figures: pipes, km, streets, breaks per year, material shares."""
        active = self.pipes[self.pipes["status"] == "active"]
        per_year = self.breaks.groupby("year").size().reindex(list(self.params.years), fill_value=0)
        shares = active["material_published"].value_counts(normalize=True)
        return {
            "active_pipes": len(active),
            "abandoned_pipes": int((self.pipes["status"] == "abandoned").sum()),
            "active_km": round(float(active["length_m"].sum()) / 1000.0, 1),
            "street_segments": len(self.streets),
            "street_segments_is_street": int(self.streets["is_street"].sum()),
            "breaks": len(self.breaks),
            "breaks_per_year_mean": round(float(per_year.mean()), 1),
            "breaks_per_year_min": int(per_year.min()),
            "breaks_per_year_max": int(per_year.max()),
            "material_shares_pct": {k: round(100 * float(v), 2) for k, v in shares.items()},
            "calibration_c": self.meta.get("c"),
        }


def _node_ids(geom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intersection ids of the start and end of every segment (equal coordinates = one node)."""
    n = len(geom)
    a = shapely.get_coordinates(shapely.get_point(geom, 0))
    b = shapely.get_coordinates(shapely.get_point(geom, -1))
    _, inv = np.unique(np.vstack([a, b]), axis=0, return_inverse=True)
    inv = inv.ravel()
    return NODE_ID_BASE + inv[:n], NODE_ID_BASE + inv[n:]


def _streets_frame(net: StreetNet, has_main: np.ndarray) -> gpd.GeoDataFrame:
    ref = load_reference()
    n = len(net.geometry)
    from_node, to_node = _node_ids(net.geometry)
    names = pd.Series(net.name, dtype=object)
    uniq = pd.Series(names.dropna().unique()).sort_values(kind="stable").to_numpy()
    name_id = pd.Series(NAME_ID_BASE + np.arange(len(uniq)), index=uniq)
    lid = names.map(name_id).astype("Int64")
    desc = np.array([c[0] for c in CLASSES], dtype=object)[net.cls]
    code = np.array([c[1] for c in CLASSES], dtype=np.int64)[net.cls]
    return gpd.GeoDataFrame(
        {
            "centreline_id": CENTRELINE_ID_BASE + 1 + np.arange(n, dtype=np.int64),
            "linear_name_full": pd.array(net.name, dtype="string"),
            "linear_name": pd.array(net.name_base, dtype="string"),
            "linear_name_type": pd.array(net.name_type, dtype="string"),
            "linear_name_dir": pd.array(net.name_dir, dtype="string"),
            "linear_name_id": lid.to_numpy(),
            "feature_code": code,
            "feature_code_desc": pd.array(desc, dtype="string"),
            "is_street": net.cls <= EXPRESSWAY,
            "has_main": has_main,
            "from_node": from_node.astype(np.int64),
            "to_node": to_node.astype(np.int64),
            "ward": pd.array(np.array(ref.ward_codes, dtype=object)[net.ward], dtype="string"),
            "length_m": net.length,
        },
        geometry=gpd.GeoSeries(net.geometry, crs=CRS),
    )


def _cross_names(streets: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For each segment, the name of another street at its start and at its end (or None)."""
    n = len(streets)
    node = np.concatenate([streets["from_node"].to_numpy(), streets["to_node"].to_numpy()])
    names = streets["linear_name_full"].astype(object).where(streets["is_street"], None)
    nm = np.concatenate([names.to_numpy(dtype=object)] * 2)
    key = pd.Series(nm).fillna("").to_numpy(dtype=object)
    df = pd.DataFrame({"node": node, "name": key})
    named = df[df["name"] != ""]
    lo = named.groupby("node")["name"].min()
    hi = named.groupby("node")["name"].max()
    lo_n = pd.Series(node).map(lo).to_numpy(dtype=object)
    hi_n = pd.Series(node).map(hi).to_numpy(dtype=object)
    other = pd.Series(np.where(hi_n != key, hi_n, np.where(lo_n != key, lo_n, None)))
    other = other.where(other.notna() & (other != ""), None).to_numpy(dtype=object)
    return other[:n], other[n:]


def _pipes_frame(
    pipes: PipeSet, streets: gpd.GeoDataFrame, ref_codes: tuple[str, ...]
) -> gpd.GeoDataFrame:
    n = len(pipes.geometry)
    asset = (ASSET_ID_BASE + 1 + np.arange(n)).astype(str).astype(object)
    mats = np.array(MATERIAL_CODES, dtype=object)[pipes.material]
    removal = pd.array(
        np.where(np.isnan(pipes.removal_year), 0, pipes.removal_year).astype(np.int64),
        dtype="Int64",
    )
    removal[np.isnan(pipes.removal_year)] = pd.NA
    cy = pd.array(pipes.install_year.astype(np.int64), dtype="Int64")
    cy[~pipes.year_published] = pd.NA
    replaced_by = np.where(pipes.replaced_by >= 0, asset[np.maximum(pipes.replaced_by, 0)], None)
    st = streets.iloc[pipes.street]
    start_name, end_name = _cross_names(streets)
    sname = (
        st["linear_name_full"].astype(object).fillna("UNNAMED").str.upper().to_numpy(dtype=object)
    )
    a = pd.Series(start_name[pipes.street], dtype=object).fillna("DEAD END").str.upper()
    b = pd.Series(end_name[pipes.street], dtype=object).fillna("DEAD END").str.upper()
    loc = sname + ": " + a.to_numpy(dtype=object) + " - " + b.to_numpy(dtype=object)
    return gpd.GeoDataFrame(
        {
            "asset_id": pd.array(asset, dtype="string"),
            "status": pd.array(np.where(pipes.active, "active", "abandoned"), dtype="string"),
            "material": pd.array(mats, dtype="string"),
            "material_published": pd.array(pipes.material_published, dtype="string"),
            "diameter_mm": pipes.diameter.astype(np.int32),
            "install_year": pipes.install_year.astype(np.int32),
            "construction_year_published": cy,
            "removal_year": removal,
            "replaced_by": pd.array(replaced_by, dtype="string"),
            "lined": np.isin(mats, list(LINED)),
            "pressure_zone": pipes.pressure_zone.astype(np.int8),
            "street_id": st["centreline_id"].to_numpy(),
            "ward": pd.array(np.array(ref_codes, dtype=object)[pipes.ward], dtype="string"),
            "soil": pipes.soil,
            "length_m": pipes.length,
            "location_desc": pd.array(loc, dtype="string"),
        },
        geometry=gpd.GeoSeries(pipes.geometry, crs=CRS),
    )


def _breaks_frame(sim: Simulation, asset: np.ndarray) -> pd.DataFrame:
    order = np.lexsort((sim.along_m, sim.pipe, sim.day, sim.month, sim.year))
    date = pd.to_datetime(
        pd.DataFrame({"year": sim.year, "month": sim.month, "day": sim.day}).iloc[order]
    ).to_numpy()
    n = len(order)
    return pd.DataFrame(
        {
            "row": np.arange(1, n + 1, dtype=np.int64),
            "break_date": date.astype("datetime64[s]"),
            "year": sim.year[order].astype(np.int32),
            "month": sim.month[order].astype(np.int32),
            "x": sim.x[order],
            "y": sim.y[order],
            "asset_id": pd.array(asset[sim.pipe[order]], dtype="string"),
            "distance_m": sim.distance_m[order],
            "offset_m": sim.offset_m[order],
            "along_m": sim.along_m[order],
            "true_x": sim.true_x[order],
            "true_y": sim.true_y[order],
            "outlier": sim.outlier[order],
        }
    )


def make_city(params: SynthParams | None = None, **overrides: Any) -> SynthCity:
    """Generate a synthetic city.

    Parameters
    ----------
    params
        The parameters (default :class:`SynthParams`).
    **overrides
        Fields of :class:`SynthParams` to change, e.g. ``make_city(n_pipes=2000, seed=7)``.

    Returns
    -------
    SynthCity
        Streets, pipes (active and abandoned), breaks, the true hazard and the soil field,
        all in EPSG:2952. The same parameters always give the same city.
    """
    params = dataclasses.replace(params or SynthParams(), **overrides)
    with using_crs(CRS):  # the synthetic city lies in the bundled city's CRS
        return _make_city(params)


def _make_city(params: SynthParams) -> SynthCity:
    ref = load_reference()
    layout = plan_layout(params)
    fields = city_fields(params.seed, params.soil_length_scale_m)
    net = build_streets(params, layout, fields)
    pipes = build_pipes(params, layout, net, fields)
    winter = winter_index(params)
    sim = simulate_breaks(params, pipes, winter)
    has_main = np.zeros(len(net.geometry), dtype=bool)
    has_main[pipes.street[pipes.active]] = True
    streets = _streets_frame(net, has_main)
    pipes_df = _pipes_frame(pipes, streets, ref.ward_codes)
    asset = pipes_df["asset_id"].to_numpy(dtype=object)
    breaks = _breaks_frame(sim, asset)
    by_pipe = np.argsort(sim.hazard_pipe, kind="stable")  # panel order: pipe, then year
    hazard = pd.DataFrame(
        {
            "asset_id": pd.Categorical.from_codes(
                sim.hazard_pipe[by_pipe], categories=pd.Index(asset, dtype="string")
            ),
            "year": sim.hazard_year[by_pipe],
            "rate": sim.hazard_rate[by_pipe],
            "prior_breaks": sim.hazard_prior[by_pipe],
        }
    )
    del by_pipe
    meta = {
        "c": sim.c,
        "winter": {str(y): {"fdd": f, "z": z, "source": s} for y, (f, z, s) in sim.winter.items()},
        "region_km2": layout.region.area / 1e6,
        "length_scale": layout.f,
        "piece_factor": layout.piece_factor,
    }
    return SynthCity(
        streets=streets,
        pipes=pipes_df,
        breaks=breaks,
        hazard=hazard,
        soil=fields["soil"],
        params=params,
        meta=meta,
    )
