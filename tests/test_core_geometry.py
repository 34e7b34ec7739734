"""The shared geometry helpers of ``twmb_geo.core.geometry``."""

from __future__ import annotations

import numpy as np
import shapely
from hypothesis import given
from hypothesis import strategies as st

from twmb_geo.core.geometry import GEOMETRY_TYPE_NAMES, union_bounds

coord = st.floats(-1e7, 1e7, allow_nan=False, allow_infinity=False)
box = st.tuples(coord, coord, coord, coord).map(
    lambda v: (min(v[0], v[2]), min(v[1], v[3]), max(v[0], v[2]), max(v[1], v[3]))
)


@given(box, box)
def test_union_bounds_is_the_bounds_of_both_boxes(a, b) -> None:
    got = union_bounds(a, b)
    want = shapely.total_bounds([shapely.box(*a), shapely.box(*b)])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(union_bounds(b, a), got)


def test_union_bounds_with_an_empty_start_is_the_other_box() -> None:
    """The exporter starts from an inverted infinite box, grown by each block."""
    empty = np.array([np.inf, np.inf, -np.inf, -np.inf])
    np.testing.assert_array_equal(union_bounds(empty, (1, 2, 3, 4)), [1, 2, 3, 4])


def test_geometry_type_names_follow_shapely_type_ids() -> None:
    samples = [
        shapely.Point(0, 0),
        shapely.LineString([(0, 0), (1, 1)]),
        shapely.LinearRing([(0, 0), (1, 0), (1, 1)]),
        shapely.box(0, 0, 1, 1),
        shapely.MultiPoint([(0, 0)]),
        shapely.MultiLineString([[(0, 0), (1, 1)]]),
        shapely.MultiPolygon([shapely.box(0, 0, 1, 1)]),
        shapely.GeometryCollection([shapely.Point(0, 0)]),
    ]
    for g in samples:
        assert GEOMETRY_TYPE_NAMES[shapely.get_type_id(g)] == g.geom_type
