"""Points within a distance of geometries (``spatial/nearby.py``) against GEOS's ``dwithin``."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from twmb_geo.features.panel import near_counts
from twmb_geo.spatial.nearby import point_segment_distance, points_within

# a small integer lattice: points at exactly the distance from a vertex or a segment are
# common, so the inclusive comparison is tested where rounding could tell them apart
_xy = st.tuples(st.integers(0, 12), st.integers(0, 12)).map(lambda p: (float(p[0]), float(p[1])))
_line = st.lists(_xy, min_size=2, max_size=5).map(shapely.LineString)
_multi = st.lists(_line, min_size=1, max_size=3).map(shapely.MultiLineString)
_polygon = st.tuples(_xy, st.integers(1, 4)).map(
    lambda c: shapely.box(c[0][0], c[0][1], c[0][0] + c[1], c[0][1] + c[1])
)
_geom = st.one_of(
    _line,
    _line,
    _multi,
    _polygon,
    st.sampled_from([None, shapely.LineString(), shapely.Point(3.0, 3.0)]),
)
_point = st.one_of(_xy, _xy, _xy, st.just((float("nan"), 1.0)))


def _geos_pairs(geoms: list, xs: np.ndarray, ys: np.ndarray, d: float) -> set[tuple[int, int]]:
    finite = np.flatnonzero(np.isfinite(xs) & np.isfinite(ys))
    tree = shapely.STRtree(shapely.points(xs[finite], ys[finite]))
    gi, pj = tree.query(np.array(geoms, dtype=object), predicate="dwithin", distance=d)
    return set(zip(gi.tolist(), finite[pj].tolist(), strict=True))


@settings(max_examples=300, deadline=None)
@given(
    geoms=st.lists(_geom, min_size=0, max_size=12),
    points=st.lists(_point, min_size=0, max_size=25),
    d=st.sampled_from([0.0, 1.0, 2.0, 2.5, 3.0, 5.0]),
)
def test_pairs_are_geos_dwithin(geoms: list, points: list, d: float) -> None:
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    gi, pj = points_within(np.array(geoms, dtype=object), xs, ys, d)
    got = list(zip(gi.tolist(), pj.tolist(), strict=True))
    assert len(got) == len(set(got)), "a pair twice"
    assert set(got) == _geos_pairs(geoms, xs, ys, d)
    again = points_within(np.array(geoms, dtype=object), xs, ys, d)
    assert np.array_equal(again[0], gi) and np.array_equal(again[1], pj)


def test_many_segments_and_blocks() -> None:
    """Long polylines cut into more segments than one block, in a random cloud of points."""
    rng = np.random.default_rng(7)
    walks = np.cumsum(rng.normal(0.0, 20.0, size=(60, 150, 2)), axis=1) + 500.0
    lines = shapely.linestrings(walks)
    xs, ys = rng.uniform(-500.0, 1500.0, size=(2, 4000))
    gi, pj = points_within(lines, xs, ys, 30.0)
    assert len(gi) > 4_000 and np.bincount(gi).max() > 100
    assert set(zip(gi.tolist(), pj.tolist(), strict=True)) == _geos_pairs(list(lines), xs, ys, 30.0)


def test_point_segment_distance_is_geos_distance() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 9, size=(2, 500, 2)).astype(float)
    px, py = rng.integers(0, 9, size=(2, 500)).astype(float) + rng.choice([0.0, 0.5], (2, 500))
    got = point_segment_distance(px, py, a, b)
    want = shapely.distance(shapely.points(px, py), shapely.linestrings(np.stack([a, b], axis=1)))
    assert np.array_equal(got, want)


def test_no_pairs_and_bad_distance() -> None:
    line = np.array([shapely.LineString([(0, 0), (1, 0)])], dtype=object)
    for gi, pj in (
        points_within(line, np.array([]), np.array([]), 1.0),
        points_within(np.array([], dtype=object), np.array([0.0]), np.array([0.0]), 1.0),
        points_within(line, np.array([np.nan]), np.array([0.0]), 1.0),
    ):
        assert gi.size == 0 and pj.size == 0
    with pytest.raises(ValueError, match="distance"):
        points_within(line, np.array([0.0]), np.array([0.0]), -1.0)


def test_near_counts_per_year() -> None:
    lines = np.array(
        [shapely.LineString([(0, 0), (10, 0)]), None, shapely.LineString([(0, 50), (0, 60)])],
        dtype=object,
    )
    bx = np.array([5.0, 5.0, 12.0, 0.0, 0.0, 100.0])
    by = np.array([3.0, 3.0, 0.0, 45.0, 4.0, 100.0])
    year = np.array([2001, 2001, 2002, 2002, 1999, 2001])
    got = near_counts(lines, bx, by, year, np.array([2000, 2001, 2002]), 5.0)
    assert got.tolist() == [[0.0, 2.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
