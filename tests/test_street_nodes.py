"""Street nodes derived from segment end points; the service area derived from the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from twmb_geo.ingest.service_area import derived_service_area
from twmb_geo.ingest.streets import derive_nodes

X0, Y0 = 310_000.0, 4_835_000.0  # a point in the analysis CRS
TOL = 1.0


def _lines(*coords: list[tuple[float, float]]) -> np.ndarray:
    return np.array([shapely.MultiLineString([c]) for c in coords], dtype=object)


def _none(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)


@settings(max_examples=60, deadline=None)
@given(
    r=st.floats(0.0, TOL * 0.99),
    angle=st.floats(0.0, 2 * np.pi),
)
def test_end_points_within_tolerance_are_one_node(r: float, angle: float) -> None:
    dx, dy = r * np.cos(angle), r * np.sin(angle)
    g = _lines(
        [(X0 - 100, Y0), (X0, Y0)],
        [(X0 + dx, Y0 + dy), (X0 + 100, Y0 + 50)],
    )
    f, t, src, counts = derive_nodes(_none(2), _none(2), g, TOL)
    assert t[0] == f[1]
    assert len({f[0], t[0], t[1]}) == 3
    assert list(src) == ["derived", "derived"]
    assert counts == {"ends_derived": 4, "ends_joined": 0, "nodes_new": 3}


@settings(max_examples=60, deadline=None)
@given(
    r=st.floats(TOL * 1.01, 50.0),
    angle=st.floats(0.0, 2 * np.pi),
)
def test_end_points_beyond_tolerance_are_different_nodes(r: float, angle: float) -> None:
    dx, dy = r * np.cos(angle), r * np.sin(angle)
    g = _lines(
        [(X0 - 100, Y0 - 100), (X0, Y0)],
        [(X0 + dx, Y0 + dy), (X0 + 100, Y0 + 150)],
    )
    f, t, _, counts = derive_nodes(_none(2), _none(2), g, TOL)
    assert t[0] != f[1]
    assert counts["nodes_new"] == 4


def test_source_ids_are_kept_and_missing_ends_join_them() -> None:
    g = _lines(
        [(X0, Y0), (X0 + 100, Y0)],
        [(X0 + 100.3, Y0), (X0 + 200, Y0)],
        [(X0 + 200, Y0), (X0 + 300, Y0)],
    )
    f = np.array(["A", None, None], dtype=object)
    t = np.array(["B", None, "n1"], dtype=object)  # a source id that looks like a derived one
    f2, t2, src, counts = derive_nodes(f, t, g, TOL)
    assert (f2[0], t2[0], t2[2]) == ("A", "B", "n1")  # never changed
    assert f2[1] == "B"  # joined the source node it snaps to
    assert t2[1] == f2[2]  # a derived node shared by segments 1 and 2
    assert not str(f2[2]).startswith("n1") and str(f2[2]).startswith("n_")
    assert list(src) == ["source", "derived", "mixed"]
    assert counts == {"ends_derived": 3, "ends_joined": 1, "nodes_new": 1}


def test_derived_ids_are_deterministic_under_reordering() -> None:
    rng = np.random.default_rng(3)
    pts = rng.uniform(0, 1000, size=(40, 2)).round(0) + np.array([X0, Y0])
    a, b = rng.integers(0, 40, 60), rng.integers(0, 40, 60)
    keep = a != b
    g = _lines(*[[tuple(pts[i]), tuple(pts[j])] for i, j in zip(a[keep], b[keep], strict=True)])
    n = g.size
    f, t, _, _ = derive_nodes(_none(n), _none(n), g, TOL)
    perm = rng.permutation(n)
    fp, tp, _, _ = derive_nodes(_none(n), _none(n), g[perm], TOL)
    assert list(fp) == list(f[perm]) and list(tp) == list(t[perm])


def test_nothing_missing_changes_nothing() -> None:
    g = _lines([(X0, Y0), (X0 + 1, Y0)])
    f, t, src, counts = derive_nodes(
        np.array(["1"], dtype=object), np.array(["2"], dtype=object), g, TOL
    )
    assert (f[0], t[0], src[0], counts["ends_derived"]) == ("1", "2", "source", 0)


@pytest.mark.parametrize("method", ["h3", "hull"])
def test_derived_service_area_covers_the_data(method: str) -> None:
    lines = _lines([(X0, Y0), (X0 + 2000, Y0)], [(X0, Y0), (X0, Y0 + 1500)])
    pts = np.array([[X0 + 500, Y0 + 500]])
    df = derived_service_area([lines], pts, method, 9, 100.0)
    assert df[["source_id", "method"]].values.tolist() == [["(derived)", method]]
    area = shapely.from_wkb(df["geometry"].iloc[0])
    assert shapely.covers(area.buffer(1e-6), shapely.points(pts)).all()
    assert shapely.covers(area.buffer(1e-6), lines).all()
    buffered = shapely.from_wkb(df["geometry_buffered"].iloc[0])
    assert buffered.area > area.area and isinstance(df, pd.DataFrame)
