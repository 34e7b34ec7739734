"""The analysis CRS: chosen from an extent anywhere, checked, scoped, stored."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyproj import CRS, Transformer

from twmb_geo.config import Config
from twmb_geo.core.crs import (
    AnalysisCRSError,
    analysis_crs,
    check_analysis_crs,
    choose_crs,
    current_crs,
    lonlat_bounds,
    source_datum,
    transform_xy,
    using_crs,
    utm_epsg,
)
from twmb_geo.errors import ConfigError, InputDataError
from twmb_geo.store.duckdb_store import Store
from twmb_geo.store.project import project_crs, resolve_analysis_crs


@pytest.mark.parametrize(
    ("bounds", "crs"),
    [
        ((-79.64, 43.58, -79.11, 43.86), "EPSG:32617"),  # Ontario
        ((-114.32, 50.84, -113.86, 51.21), "EPSG:32611"),  # Alberta
        ((-97.94, 30.10, -97.56, 30.52), "EPSG:32614"),  # Texas
        ((152.9, -27.6, 153.2, -27.3), "EPSG:32756"),  # Queensland, south
        ((-0.25, 51.4, 0.15, 51.6), "EPSG:32630"),  # astride Greenwich, centre west of it
        ((18.3, -34.2, 18.7, -33.8), "EPSG:32734"),  # Cape Town
        ((-58.6, -34.75, -58.3, -34.5), "EPSG:32721"),  # Buenos Aires
    ],
)
def test_utm_zone_of_a_city(bounds, crs) -> None:
    choice = choose_crs(bounds)
    assert choice.crs == crs
    assert "UTM" in choice.name


@pytest.mark.parametrize(
    ("bounds", "crss", "crs"),
    [
        ((-97.9, 30.1, -97.5, 30.5), ["EPSG:2277", "EPSG:4326"], "EPSG:26914"),  # NAD83 ftUS
        ((-79.6, 43.6, -79.1, 43.8), ["EPSG:2952"], "EPSG:2958"),  # NAD83(CSRS)
        ((10.0, 50.0, 10.5, 50.5), ["EPSG:25832"], "EPSG:25832"),  # ETRS89
        ((-79.6, 43.6, -79.1, 43.8), ["EPSG:4326", "EPSG:2019"], "EPSG:32617"),  # NAD27: no
        ((-79.6, 43.6, -79.1, 43.8), ["EPSG:2952", "EPSG:26917"], "EPSG:32617"),  # two datums
    ],
)
def test_utm_zone_on_the_sources_datum(bounds, crss, crs) -> None:
    assert choose_crs(bounds, source_datum(crss)).crs == crs


def test_wide_extent_gets_an_equal_area_crs_centred_on_it() -> None:
    choice = choose_crs((-120.0, 45.0, -100.0, 55.0))  # wider than one zone
    c = CRS.from_user_input(choice.crs)
    assert c.is_projected and "Lambert" in choice.name
    assert check_analysis_crs(choice.crs)  # usable as an analysis CRS (metres)
    x, y = Transformer.from_crs("EPSG:4326", c, always_xy=True).transform(-110.0, 50.0)
    assert abs(x) < 1 and abs(y) < 1e5  # centred


def test_antimeridian_extent() -> None:
    choice = choose_crs((179.5, -17.0, -179.5, -16.0))  # Fiji, across 180
    assert choice.crs in ("EPSG:32701", "EPSG:32760")


@given(st.floats(-179.99, 179.99), st.floats(-80, 84))
def test_utm_zone_contains_the_point(lon: float, lat: float) -> None:
    code = utm_epsg(lon, lat)
    zone = code % 100
    assert (code // 100 == 326) == (lat >= 0)
    west = -180 + 6 * (zone - 1)
    assert west - 1e-9 <= lon < west + 6 + 1e-9  # (a zone edge may round either way)


def test_check_refuses_geographic_and_feet() -> None:
    with pytest.raises(AnalysisCRSError, match="not projected"):
        check_analysis_crs("EPSG:4326")
    with pytest.raises(AnalysisCRSError, match="metres"):
        check_analysis_crs("EPSG:2277")  # Texas Central, US survey feet
    with pytest.raises(AnalysisCRSError, match="unknown CRS"):
        check_analysis_crs("EPSG:999999")
    assert check_analysis_crs("epsg:32611") == "EPSG:32611"


@pytest.mark.other_crs
def test_scope_nests_and_unset_raises() -> None:
    assert current_crs() is None
    with pytest.raises(AnalysisCRSError, match="no analysis CRS"):
        analysis_crs()
    with using_crs("EPSG:32611"):
        with using_crs("EPSG:7856"):
            assert analysis_crs() == "EPSG:7856"
        assert analysis_crs() == "EPSG:32611"
        x, _y, _ = transform_xy(np.array([-117.0]), np.array([51.0]), "EPSG:4326")
        assert x[0] == pytest.approx(500_000)  # on the zone 11 central meridian
    assert current_crs() is None


def test_feet_inputs_become_metres() -> None:
    # two points 1,000 US survey feet apart in Texas Central are 304.8 m apart in UTM 14N
    x0, y0 = 3_110_000.0, 10_070_000.0
    x, y, _ = transform_xy(
        np.array([x0, x0 + 1000.0]), np.array([y0, y0]), "EPSG:2277", "EPSG:32614"
    )
    assert np.hypot(np.diff(x), np.diff(y))[0] == pytest.approx(304.8, rel=2e-3)


def test_extent_ignores_stray_points() -> None:
    lon = np.r_[np.full(50, -79.4) + np.linspace(0, 0.2, 50), 0.0, 120.0]
    lat = np.r_[np.full(50, 43.7) + np.linspace(0, 0.1, 50), 0.0, -30.0]
    w, s, e, n = lonlat_bounds(lon, lat, "EPSG:4326")
    assert (w, s) == pytest.approx((-79.4, 43.7)) and (e, n) == pytest.approx((-79.2, 43.8))


def test_store_keeps_its_crs(tmp_path) -> None:
    cfg = Config(out=tmp_path, crs="EPSG:32611")
    with Store(cfg.store_path) as store:
        row = resolve_analysis_crs(store, cfg)
        assert (row["crs"], row["method"]) == ("EPSG:32611", "config")
    assert project_crs(cfg) == "EPSG:32611"
    other = Config(out=tmp_path, crs="EPSG:32612")
    with Store(other.store_path) as store, pytest.raises(ConfigError, match="built in"):
        resolve_analysis_crs(store, other)
    with pytest.raises(InputDataError, match="no analysis CRS"):
        project_crs(Config(out=tmp_path / "empty"))
