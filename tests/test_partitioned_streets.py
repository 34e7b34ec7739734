"""Street links and the pipe-to-street apportionment per partition (issue 16).

Both must equal the whole-city functions exactly, at every partition resolution (fine ones
put most records near a partition edge, and pipes far longer than a partition), with exact
ties between segments, segments that are not streets, breaks naming segments by id (any
class, unknown ids), and pipes without geometry or without a point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from twmb_geo.spatial.partitioned import (
    PartitionReport,
    link_breaks_to_streets_partitioned,
    pipes_to_streets_partitioned,
)
from twmb_geo.spatial.snapping import link_breaks_to_streets, pipes_to_streets
from twmb_geo.synth.matching import matching_case, street_case

X0, Y0 = 315_000.0, 4_840_000.0  # central Toronto, MTM zone 10 (the tests' analysis CRS)


@pytest.fixture(scope="module")
def case():
    breaks, pipes = matching_case(3_000, 2_500, seed=11)
    return street_case(pipes, breaks, seed=4)


@pytest.fixture(scope="module")
def whole_links(case):
    breaks, _, streets = case
    return link_breaks_to_streets(breaks, streets, tolerance_m=50.0)


@pytest.fixture(scope="module")
def whole_apportionment(case):
    _, pipes, streets = case
    return pipes_to_streets(pipes[["pipe_id", "geometry"]], streets, half_width_m=15.0)


@pytest.mark.parametrize("resolution", [5, 7, 9])
def test_partitioned_street_links_equal_the_whole_city(case, whole_links, resolution) -> None:
    breaks, _, streets = case
    report = PartitionReport()
    got = link_breaks_to_streets_partitioned(
        breaks, streets, tolerance_m=50.0, resolution=resolution, report=report
    )
    pd.testing.assert_frame_equal(got, whole_links)
    rep = report["street_links"]
    assert rep["resolution"] == resolution
    if resolution >= 9:  # hundreds of partitions: the halos matter
        assert rep["partitions"] > 100 and rep["halo_rows"] > 500
    # the case has every kind of link and reason
    assert set(whole_links["method"].dropna()) == {"segment_id", "nearest"}
    assert "no_street_in_tolerance" in set(whole_links["reason"].dropna())
    assert (whole_links["candidates"] > 1).any()  # exact ties, decided by the lowest id


def test_street_links_of_breaks_without_coordinates_and_of_no_street_anywhere(case) -> None:
    breaks, _, streets = case
    b = breaks.head(400).copy()
    b.loc[b.index[:60], ["x", "y"]] = np.nan
    far = b.tail(3).assign(x=X0 + 30_000.0, street_segment_id=None)  # a partition of no street
    b = pd.concat([b, far.assign(break_id=far["break_id"] + "far")], ignore_index=True)
    want = link_breaks_to_streets(b, streets)
    pd.testing.assert_frame_equal(
        link_breaks_to_streets_partitioned(b, streets, resolution=9), want
    )
    assert want["method"].eq("segment_id").iloc[:60].any()  # their id links are kept
    assert want["reason"].iloc[-3:].eq("no_street_in_tolerance").all()
    none = streets.assign(is_street=False)  # segments, but no street: the whole city's reason
    want = link_breaks_to_streets(b, none)
    got = link_breaks_to_streets_partitioned(b, none, resolution=9)
    pd.testing.assert_frame_equal(got, want)
    assert "no_streets" in set(want["reason"].dropna())


@pytest.mark.parametrize("resolution", [5, 8, 10])
def test_partitioned_apportionment_equals_the_whole_city(
    case, whole_apportionment, resolution
) -> None:
    _, pipes, streets = case
    report = PartitionReport()
    got = pipes_to_streets_partitioned(
        pipes, streets, half_width_m=15.0, resolution=resolution, report=report
    )
    pd.testing.assert_frame_equal(got, whole_apportionment)
    rep = report["pipe_streets"]
    assert rep["resolution"] == resolution
    if resolution >= 8:
        assert rep["partitions"] > 50 and rep["halo_rows"] > 1_000
    assert whole_apportionment["segment_id"].notna().mean() > 0.8
    assert whole_apportionment["segment_id"].isna().any()  # pipes without geometry


def test_apportionment_of_pipes_without_a_point_and_of_wkb(case, whole_apportionment) -> None:
    """Pipes without a representative point form one more task, their streets found from
    their geometry; WKB geometries give the same rows as shapely ones."""
    _, pipes, streets = case
    p = pipes.copy()
    p.loc[p.index[::7], ["x", "y"]] = np.nan
    p["geometry"] = shapely.to_wkb(p["geometry"].to_numpy(dtype=object))
    s = streets.assign(geometry=shapely.to_wkb(streets["geometry"].to_numpy(dtype=object)))
    got = pipes_to_streets_partitioned(p, s, half_width_m=15.0, resolution=9)
    pd.testing.assert_frame_equal(got, whole_apportionment)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 100_000),
    resolution=st.integers(7, 11),
    half_width=st.floats(0.5, 60.0),
    spread=st.floats(200.0, 4_000.0),
)
def test_apportionment_per_partition_is_the_rule_on_the_whole_city(
    seed, resolution, half_width, spread
) -> None:
    """Property: random lines of any length, streets with repeated geometries and blocks
    of every size; the partitioned apportionment is the whole-city one."""
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 40)), int(rng.integers(1, 60))
    start = rng.uniform(-spread, spread, (n + m, 2)) + np.array([X0, Y0])
    length = rng.exponential(spread / 3, n + m)
    ang = rng.uniform(0, np.pi, n + m)
    end = start + np.stack([np.cos(ang), np.sin(ang)], 1) * length[:, None]
    lines = shapely.linestrings(np.stack([start, end], 1))
    sl = lines[n:].astype(object)
    dup = rng.random(m) < 0.2
    if dup.any():
        sl[dup] = sl[rng.integers(0, m, int(dup.sum()))]
    streets = pd.DataFrame(
        {
            "segment_id": [f"s{k}" for k in rng.permutation(m)],
            "is_street": rng.random(m) < 0.9,
            "geometry": sl,
        }
    )
    pg = lines[:n].astype(object)
    pg[rng.random(n) < 0.1] = None
    mid = shapely.line_interpolate_point(pg, 0.5, normalized=True)
    pipes = pd.DataFrame(
        {"pipe_id": [f"p{k}" for k in range(n)], "geometry": pg, "x": shapely.get_x(mid)}
    ).assign(y=shapely.get_y(mid))
    want = pipes_to_streets(pipes[["pipe_id", "geometry"]], streets, half_width_m=half_width)
    got = pipes_to_streets_partitioned(
        pipes, streets, half_width_m=half_width, resolution=resolution
    )
    pd.testing.assert_frame_equal(got, want)
