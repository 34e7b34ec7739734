"""The pipes' line network built partition by partition (issue 16).

The partitioned builder must give the whole-city builder's graph bit for bit (the same ids,
the same neighbours, the same weights) at every partition resolution: fine ones put most
pipes near a partition edge, and long pipes reach across many partitions.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

import twmb_geo.spatial.partitioned_graphs as pg
from twmb_geo.errors import InputDataError
from twmb_geo.spatial import graphs as gb
from twmb_geo.spatial.partitioned_graphs import line_network_partitioned

X0, Y0 = 315_000.0, 4_840_000.0  # central Toronto, MTM zone 10 (the tests' analysis CRS)


def assert_same_graph(got, want) -> None:
    np.testing.assert_array_equal(np.asarray(got.unique_ids), np.asarray(want.unique_ids))
    a, b = got.sparse.tocsr(), want.sparse.tocsr()
    a.sort_indices()
    b.sort_indices()
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.data.tobytes() == b.data.tobytes()
    assert got.transformation == want.transformation


def town_lines(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pipes on a street grid (ends shared, ends a little apart, T-junctions, crossings),
    a few kilometres long, multi-part, without geometry; ids and points as the pipe units
    carry them (a point on the line)."""
    rng = np.random.default_rng(seed)
    start = np.round(rng.uniform(0, 6_000, size=(n, 2)) / 50) * 50
    step = rng.choice([-50.0, 50.0], size=(n, 1)) * (rng.random((n, 2)) < 0.5)
    step[(step == 0).all(axis=1), 0] = 50.0
    end = start + step * rng.integers(1, 4, size=(n, 1))
    end += rng.normal(0, 0.4, size=(n, 2)) * (rng.random((n, 1)) < 0.3)  # ends not quite met
    lines = shapely.linestrings(np.stack([start, end], axis=1) + np.array([X0, Y0]))
    lines[:5] = shapely.linestrings(
        [[[X0 + 100 * i, Y0], [X0 + 100 * i + 4_000, Y0 + 3_000]] for i in range(5)]
    )  # long
    lines[5:8] = [
        shapely.multilinestrings([lines[j], shapely.affinity.translate(lines[j], 300, 0)])
        for j in range(5, 8)
    ]
    lines[8:10] = None
    pts = shapely.line_interpolate_point(lines, 0.5, normalized=True)
    x, y = shapely.get_x(pts), shapely.get_y(pts)
    ids = rng.permutation(np.arange(n)).astype(str)
    return ids, lines, x, y


@pytest.mark.parametrize("resolution", [6, 8, 9, 10])
@pytest.mark.parametrize(("tol", "tj"), [(1.0, True), (0.0, True), (2.5, False)])
def test_partitioned_line_network_is_the_whole_city_graph(resolution, tol, tj) -> None:
    ids, lines, x, y = town_lines(2_000, seed=5)
    x[10:13] = np.nan  # pipes without a point: a partition of their own
    report: dict = {}
    wkb = shapely.to_wkb(lines)
    got = line_network_partitioned(
        ids, wkb, x, y, tol, t_junctions=tj, resolution=resolution, report=report
    )
    assert_same_graph(got, gb.line_network(ids, lines, tol, t_junctions=tj))
    assert report["partitions"] > 1 and report["halo_units"] > 0
    assert report["largest_task"] < len(ids)


def test_lines_that_are_not_lines_are_all_listed() -> None:
    ids, lines, x, y = town_lines(300, seed=2)
    lines = lines.copy()
    lines[[20, 250]] = [shapely.Point(X0, Y0), shapely.box(X0, Y0, X0 + 1, Y0 + 1)]
    with pytest.raises(InputDataError) as want:
        gb.line_network(ids, lines)
    old, pg._BLOCK = pg._BLOCK, 100  # the two in different blocks
    try:
        with pytest.raises(InputDataError) as got:
            line_network_partitioned(ids, lines, x, y, resolution=8)
    finally:
        pg._BLOCK = old
    assert str(got.value) == str(want.value)
    assert "2 geometry(ies) are not lines" in str(got.value)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 200),
    tol=st.sampled_from([0.0, 0.5, 3.0]),
    tj=st.booleans(),
    resolution=st.integers(8, 12),
)
def test_line_network_of_random_lines(seed, n, tol, tj, resolution) -> None:
    """Lines of any length on a 1 m grid (shared ends, ends within the tolerance,
    T-junctions), partitioned by their first point."""
    rng = np.random.default_rng(seed)
    a = np.round(rng.uniform(0, 400, size=(n, 2)))
    b = a + np.round(rng.normal(0, 60, size=(n, 2)))
    lines = shapely.linestrings(np.stack([a, b], axis=1) + np.array([X0, Y0]))
    ids = rng.permutation(n)
    x, y = X0 + a[:, 0], Y0 + a[:, 1]
    got = line_network_partitioned(ids, lines, x, y, tol, t_junctions=tj, resolution=resolution)
    assert_same_graph(got, gb.line_network(ids, lines, tol, t_junctions=tj))
