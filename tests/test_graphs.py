"""Spatial weights: builders, islands, row-standardisation, lags against hand computation."""

from __future__ import annotations

import logging

import geopandas as gpd
import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import pytest
import shapely
from conftest import NEIGHBOURHOODS_ZIP
from hypothesis import given, settings
from hypothesis import strategies as st
from libpysal.graph import Graph
from scipy import sparse

import twmb_geo as tw
from twmb_geo.errors import ConfigError, InputDataError
from twmb_geo.spatial import graphs as gr

CENTRE = h3i.latlng_to_cell(43.7, -79.4, 9)


def _neighbours(g: Graph, uid) -> list:
    e = gr.graph_edges(g)
    return e.loc[e["focal"] == uid, "neighbor"].tolist()


def _ids(g: Graph) -> np.ndarray:
    return np.asarray(g.unique_ids)


def _islands(g: Graph) -> list:
    return g.isolates.tolist()


def _assert_row_standardised(g: Graph) -> None:
    sums = np.asarray(g.sparse.sum(axis=1)).ravel()
    island = np.isin(_ids(g), g.isolates)
    np.testing.assert_allclose(sums[~island], 1.0)
    assert (sums[island] == 0).all()
    assert g.transformation == "R"
    assert sorted(_islands(g)) == _islands(g)
    assert _ids(g).tolist() == sorted(_ids(g).tolist())
    # no self-loops other than the zero-weight isolate convention
    adj = g.adjacency
    self_loop = adj.index.get_level_values(0) == adj.index.get_level_values(1)
    assert (adj[self_loop] == 0).all()


# --------------------------------------------------------------------------- h3


def test_h3_kring_patch():
    patch = np.asarray(h3i.grid_disk(CENTRE, 3), dtype=np.uint64)
    rng = np.random.default_rng(0)
    g1 = gr.h3_kring(rng.permutation(patch), k=1)
    g2 = gr.h3_kring(patch, k=2)
    assert _ids(g1).dtype == np.uint64 and _ids(g1).tolist() == sorted(patch.tolist())
    assert len(_neighbours(g1, CENTRE)) == 6 and len(_neighbours(g2, CENTRE)) == 18
    assert set(_neighbours(g1, CENTRE)) == set(h3i.grid_ring(CENTRE, 1))
    corner = h3i.grid_ring(CENTRE, 3)[0]
    assert len(_neighbours(g1, corner)) == 3  # outside the patch does not count
    _assert_row_standardised(g1)
    _assert_row_standardised(g2)
    s = gr.graph_summary(g1)
    assert s == {
        "n": 37,
        "n_edges": 180,
        "mean_neighbours": pytest.approx(180 / 37),
        "min_neighbours": 3,
        "max_neighbours": 6,
        "n_islands": 0,
        "n_components": 1,
        "symmetric": True,
    }
    # libpysal's own H3 builder agrees on the neighbour sets
    ref = Graph.build_h3(pd.Index(h3i.int_to_str(int(c)) for c in _ids(g1)), weight="binary")
    assert gr.relabel(g1, ref.unique_ids).transform("b").equals(ref.transform("b"))
    y = np.arange(37.0)
    np.testing.assert_allclose(gr.lag(g1, y), g1.lag(y))
    # hex strings at the edge are accepted, ids stay integers
    gs = gr.h3_kring([h3i.int_to_str(int(c)) for c in patch])
    assert gr.graph_edges(gs).equals(gr.graph_edges(g1))


def test_h3_kring_islands_are_kept_and_reported(caplog):
    far = h3i.latlng_to_cell(44.2, -78.9, 9)
    cells = np.array([*h3i.grid_disk(CENTRE, 1), far], dtype=np.uint64)
    with caplog.at_level(logging.WARNING, logger="twmb_geo.spatial.graphs"):
        g = gr.h3_kring(cells)
    assert "1 of 8 unit(s) have no neighbours" in caplog.text
    assert _islands(g) == [far]
    assert gr.graph_summary(g)["n_islands"] == 1 and gr.graph_summary(g)["n_components"] == 2
    _assert_row_standardised(g)
    adj = g.adjacency
    assert adj.loc[(far, far)] == 0.0  # libpysal isolate convention
    lag = pd.Series(gr.lag(g, np.ones(8)), index=_ids(g))
    assert np.isnan(lag[far]) and np.allclose(lag.drop(far), 1.0)
    edges = gr.graph_edges(g)
    assert far not in set(edges["focal"]) and len(edges) == 6 + 6 * 3
    with_isl = gr.graph_edges(g, include_islands=True)
    assert len(with_isl) == len(edges) + 1
    assert with_isl[["focal", "neighbor"]].equals(
        with_isl[["focal", "neighbor"]].sort_values(["focal", "neighbor"]).reset_index(drop=True)
    )


def test_h3_kring_bad_input():
    with pytest.raises(InputDataError, match="one resolution"):
        gr.h3_kring([CENTRE, h3i.cell_to_parent(CENTRE, 8)])
    with pytest.raises(InputDataError, match="duplicate"):
        gr.h3_kring([CENTRE, CENTRE])
    with pytest.raises(InputDataError, match="invalid H3"):
        gr.h3_kring([CENTRE, 0])
    with pytest.raises(ConfigError, match="k must be"):
        gr.h3_kring([CENTRE], k=0)


# --------------------------------------------------------------------------- knn


def test_knn_is_directed_unless_asked():
    ids = np.array(["c", "a", "b"], dtype=object)
    x = np.array([3.0, 0.0, 1.0])
    g = gr.knn(ids, x, np.zeros(3), k=1)
    assert _ids(g).tolist() == ["a", "b", "c"]
    edges = gr.graph_edges(g)
    assert list(zip(edges["focal"], edges["neighbor"], strict=True)) == [
        ("a", "b"),
        ("b", "a"),
        ("c", "b"),
    ]
    assert not gr.graph_summary(g)["symmetric"]
    s = gr.knn(ids, x, np.zeros(3), k=1, symmetric=True)
    assert gr.graph_summary(s)["symmetric"] and sorted(_neighbours(s, "b")) == ["a", "c"]
    _assert_row_standardised(s)
    assert s.sparse[1].toarray().ravel().tolist() == [0.5, 0.0, 0.5]


def test_knn_ties_broken_by_id_and_order_independent():
    gx, gy = np.meshgrid(np.arange(20.0), np.arange(20.0))
    x, y = gx.ravel() * 7.3 + 1e5, gy.ravel() * 7.3 + 4.8e6
    ids = np.arange(400) * 10
    g = gr.knn(ids, x, y, k=6)
    assert gr.graph_summary(g)["min_neighbours"] == gr.graph_summary(g)["max_neighbours"] == 6
    # interior point id 2100 (row 10, col 10): 4 at 7.3 m, then the two smallest ids of
    # the four diagonals at 10.3 m (1890, 1910; not 2290, 2310)
    nb = _neighbours(g, 2100)
    assert nb == [1890, 1900, 1910, 2090, 2110, 2300]
    perm = np.random.default_rng(1).permutation(400)
    g2 = gr.knn(ids[perm], x[perm], y[perm], k=6)
    assert gr.graph_edges(g2).equals(gr.graph_edges(g))
    _assert_row_standardised(g)


def test_knn_small_and_coincident(caplog):
    with caplog.at_level(logging.WARNING):
        g = gr.knn([1, 2, 3], [0.0, 0.0, 5.0], [0.0, 0.0, 0.0], k=8)
    assert "capped at 2" in caplog.text
    assert gr.graph_summary(g)["n_edges"] == 6
    g1 = gr.knn([1, 2, 3], [0.0, 0.0, 5.0], [0.0, 0.0, 0.0], k=1)
    assert _neighbours(g1, 1) == [2] and _neighbours(g1, 2) == [1]  # coincident at 0 m
    single = gr.knn(["only"], [0.0], [0.0])
    assert _islands(single) == ["only"]


def test_knn_matches_brute_force():
    rng = np.random.default_rng(7)
    xy = rng.random((300, 2)) * 1000
    g = gr.knn(np.arange(300), xy[:, 0], xy[:, 1], k=5)
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    expect = np.sort(np.argsort(d, axis=1, kind="stable")[:, :5], axis=1)
    w = g.sparse
    got = np.vstack([w.indices[w.indptr[i] : w.indptr[i + 1]] for i in range(300)])
    assert (got == expect).all()


# --------------------------------------------------------------------------- distance band


def _brute_band(xy: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    adj = d <= thr
    np.fill_diagonal(adj, False)
    near_edge = np.abs(d - thr) <= 1e-9 * max(thr, 1.0)
    return adj, near_edge, d


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    thr=st.floats(1.0, 250.0),
    dup=st.booleans(),
    inverse=st.booleans(),
)
def test_distance_band_equals_brute_force(seed, thr, dup, inverse):
    rng = np.random.default_rng(seed)
    xy = rng.random((300, 2)) * 1000 + np.array([3e5, 4.83e6])
    if dup:
        xy[:10] = xy[10:20]  # coincident points are neighbours (d = 0 <= thr)
    ids = rng.permutation(300) + 1000
    g = gr.distance_band(ids, xy[:, 0], xy[:, 1], thr, weights="inverse" if inverse else "binary")
    order = np.argsort(ids)
    adj, edge, d = _brute_band(xy[order], thr)
    got = g.sparse.toarray()
    assert ((got > 0) == adj)[~edge].all()
    expect = np.where(adj, 1.0 / np.maximum(d, 1.0) if inverse else 1.0, 0.0)
    rs = expect.sum(axis=1, keepdims=True)
    expect = np.divide(expect, rs, out=np.zeros_like(expect), where=rs > 0)
    if not edge.any():
        np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-15)
        assert _islands(g) == np.sort(ids)[adj.sum(axis=1) == 0].tolist()
    _assert_row_standardised(g)
    assert gr.graph_summary(g)["symmetric"]


def test_distance_band_bad_parameters():
    for thr in (0, -5, np.nan, np.inf):
        with pytest.raises(ConfigError, match="threshold"):
            gr.distance_band([1, 2], [0.0, 1.0], [0.0, 0.0], thr)
    with pytest.raises(ConfigError, match="weights"):
        gr.distance_band([1, 2], [0.0, 1.0], [0.0, 0.0], 5, weights="gaussian")
    with pytest.raises(InputDataError) as exc:
        gr.distance_band(["a", "b", "c"], [0.0, np.nan, 1.0], [0.0, 0.0, np.inf], 5)
    assert "2 unit(s)" in str(exc.value) and "b" in str(exc.value) and "c" in str(exc.value)
    with pytest.raises(InputDataError, match="duplicate"):
        gr.distance_band(["a", "a"], [0.0, 1.0], [0.0, 0.0], 5)
    with pytest.raises(InputDataError, match="missing"):
        gr.distance_band(["a", None], [0.0, 1.0], [0.0, 0.0], 5)


# --------------------------------------------------------------------------- networks


def test_shared_nodes_tiny_street_network():
    #   1 --A-- 2 --B-- 3 --C-- 4        6 --E-- 7
    #           |
    #           D
    #           5
    ids = ["E", "B", "A", "D", "C"]
    frm = ["n6", "n2", "n1", "n2", "n3"]
    to = ["n7", "n3", "n2", "n5", "n4"]
    g = gr.shared_nodes(ids, frm, to)
    assert _ids(g).tolist() == ["A", "B", "C", "D", "E"]
    assert _neighbours(g, "A") == ["B", "D"]
    assert _neighbours(g, "B") == ["A", "C", "D"]
    assert _neighbours(g, "C") == ["B"]
    assert _islands(g) == ["E"]
    _assert_row_standardised(g)
    assert g.sparse[1].toarray().ravel().tolist() == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3, 0])
    with pytest.raises(InputDataError, match="without a from/to node") as exc:
        gr.shared_nodes(["x", "y"], ["n1", None], ["n2", "n3"])
    assert "y" in str(exc.value)


def test_line_network_hand_made_pipes():
    L = shapely.LineString
    pipes = {
        "P1": L([(0, 0), (10, 0)]),
        "P2": L([(10, 0.5), (20, 0)]),  # starts 0.5 m from P1's end
        "P3": L([(15, -5), (15, 0.2)]),  # ends on P2's interior (T-junction)
        "P4": L([(5, -5), (5, 5)]),  # crosses P1, no shared end
        "P5": L([(100, 0), (110, 0)]),
        "P6": shapely.MultiLineString([[(200, 0), (210, 0)], [(110, 0), (110, 10)]]),
        "P7": L([(300, 0), (310, 0)]),
    }
    ids = np.array(list(pipes), dtype=object)
    geoms = np.array(list(pipes.values()), dtype=object)
    g = gr.line_network(ids, geoms, tol_m=1.0)
    assert _neighbours(g, "P1") == ["P2"]
    assert _neighbours(g, "P2") == ["P1", "P3"]
    assert _neighbours(g, "P5") == ["P6"]
    assert _islands(g) == ["P4", "P7"]
    _assert_row_standardised(g)
    no_t = gr.line_network(ids, shapely.to_wkb(geoms), tol_m=1.0, t_junctions=False)
    assert _neighbours(no_t, "P2") == ["P1"] and "P3" in _islands(no_t)
    tight = gr.line_network(ids, geoms, tol_m=0.1)
    assert "P1" in _islands(tight)
    with pytest.raises(InputDataError, match="not lines"):
        gr.line_network(["a"], [shapely.Point(0, 0)])
    with pytest.raises(ConfigError, match="tol_m"):
        gr.line_network(ids, geoms, tol_m=-1)


def test_contiguity_queen_grid_and_toronto():
    boxes = [shapely.box(i, j, i + 1, j + 1) for j in range(3) for i in range(3)]
    boxes.append(shapely.box(10, 10, 11, 11))
    ids = [f"b{i}" for i in range(10)]
    g = gr.contiguity(ids, boxes)
    assert len(_neighbours(g, "b4")) == 8 and len(_neighbours(g, "b0")) == 3
    assert _islands(g) == ["b9"]
    near = gr.contiguity(ids, boxes, tol_m=10.0)
    assert len(near.isolates) == 0
    res = tw.read_source(NEIGHBOURHOODS_ZIP, "toronto_neighbourhoods_140")
    nb = res.tables["neighbourhoods"]
    g = gr.contiguity(nb["area_code"].to_numpy(), nb["geometry"].to_numpy())
    s = gr.graph_summary(g)
    assert s["n"] == 140 and s["n_islands"] == 0 and s["n_components"] == 1
    geo = gpd.GeoSeries(shapely.from_wkb(nb["geometry"]), index=nb["area_code"].to_numpy())
    ref = Graph.build_contiguity(geo, rook=False).transform("r")
    assert ref.equals(g)


# --------------------------------------------------------------------------- lags


@pytest.fixture()
def chain() -> Graph:
    """Street chain a-b-c-d-e plus island z."""
    return gr.shared_nodes(list("zedcba"), [9, 5, 4, 3, 2, 1], [10, 6, 5, 4, 3, 2])


def _ring_lag(g: Graph, y, order: int):
    return gr.lag(gr.higher_order(g, order).transform("r"), y)


def test_lag_order_1_and_2_by_hand(chain):
    assert _ids(chain).tolist() == list("abcdez")
    y = pd.Series({"a": 1.0, "b": 2.0, "c": 4.0, "d": 8.0, "e": 16.0, "z": 32.0})
    lag1 = gr.lag(chain, y)
    assert lag1.index.equals(y.index)  # aligned with the input
    np.testing.assert_allclose(lag1[:5], [2, (1 + 4) / 2, (2 + 8) / 2, (4 + 16) / 2, 8])
    assert np.isnan(lag1.iloc[5])
    lag2 = _ring_lag(chain, y, 2)  # ring 2 only: a->c, b->d, c->{a,e}, d->b, e->c
    np.testing.assert_allclose(lag2[:5], [4, 8, (1 + 16) / 2, 2, 4])
    assert np.isnan(lag2.iloc[5])
    lag4 = _ring_lag(chain, y.to_numpy(), 4)  # only a<->e are 4 apart
    np.testing.assert_allclose(lag4[[0, 4]], [16, 1])
    assert np.isnan(lag4[1:4]).all()
    two = _ring_lag(chain, np.column_stack([y.to_numpy(), 2 * y.to_numpy()]), 2)
    np.testing.assert_allclose(two[:5, 1], 2 * lag2[:5])
    # input order is kept; units outside the graph get NaN
    shuffled = gr.lag(chain, y.to_numpy()[::-1], ids=list("zedcba"))
    np.testing.assert_allclose(shuffled[::-1][:5], lag1[:5])
    extra = gr.lag(chain, np.r_[y.to_numpy(), 1.0], ids=[*"abcdez", "q"])
    assert np.isnan(extra[-1]) and np.allclose(extra[:5], lag1[:5])


def test_higher_order_matches_libpysal(chain):
    g = gr.knn(np.arange(60), *np.random.default_rng(3).random((2, 60)) * 100, k=3)
    for graph in (chain, g):
        for k in (2, 3):
            ours = gr.higher_order(graph, k)
            ref = graph.higher_order(k)
            assert ours.transform("b").equals(ref.transform("b")), (graph, k)


def test_lag_on_directed_knn_and_errors(chain):
    g = gr.knn(["c", "a", "b"], [3.0, 0.0, 1.0], [0.0, 0.0, 0.0], k=1)
    np.testing.assert_allclose(gr.lag(g, np.array([10.0, 20.0, 30.0])), [20, 10, 20])
    lag2 = _ring_lag(g, np.array([10.0, 20.0, 30.0]), 2)  # c -> b -> a
    assert np.isnan(lag2[:2]).all() and lag2[2] == 10
    with pytest.raises(ConfigError, match="lag order"):
        gr.higher_order(chain, 0)
    with pytest.raises(InputDataError, match="shape"):
        gr.lag(chain, np.ones(5))
    with pytest.raises(InputDataError, match="no entry for 1"):
        gr.lag(chain, pd.Series(1.0, index=list("abcde")))


def test_graph_edges_round_trip(chain):
    e = gr.graph_edges(chain)
    assert list(e.columns) == ["focal", "neighbor", "weight"]
    assert e[["focal", "neighbor"]].equals(
        e[["focal", "neighbor"]].sort_values(["focal", "neighbor"]).reset_index(drop=True)
    )
    full = gr.graph_edges(chain, include_islands=True)
    back = Graph.from_arrays(*(full[c].to_numpy() for c in full.columns))
    assert back.equals(chain)


@pytest.mark.parametrize("islands", [False, True])
@pytest.mark.parametrize("rows", [1, 3, 7, 100])
def test_graph_edges_in_slices_are_the_same_rows(chain, islands, rows):
    """The store writes a city's edges a slice at a time: the slices, in turn, are the
    edge list row for row (islands dropped or kept the same way)."""
    whole = gr.graph_edges(chain, include_islands=islands)
    parts = list(gr.graph_edge_chunks(chain, rows=rows, include_islands=islands))
    assert all(len(p) <= rows for p in parts) and len(parts) == -(-len(whole) // rows)
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    empty = list(gr.graph_edge_chunks(gr.shared_nodes(["x"], [1], [2]), rows=rows))
    assert len(empty) == 1 and empty[0].empty
    with pytest.raises(ValueError, match="rows must be at least 1"):
        next(gr.graph_edge_chunks(chain, rows=0))


def test_reading_a_graph_leaves_no_copy_of_its_adjacency_on_it(chain) -> None:
    """libpysal's ``Graph.adjacency`` caches a copy on the graph; storing the edges or
    relabelling must not leave one (a city's pipe graph: hundreds of megabytes more)."""
    g = gr.shared_nodes(["a", "b", "c", "d"], [1, 2, 3, 9], [2, 3, 4, 8])
    before = g.adjacency.copy()
    g.__dict__.pop("adjacency", None)
    edges = gr.graph_edges(g, include_islands=True)
    relabelled = gr.relabel(g, ["w", "x", "y", "z"])
    assert "adjacency" not in g.__dict__
    assert gr.adjacency_of(g) is g._adjacency  # read in place
    pd.testing.assert_series_equal(gr.adjacency_of(g), before)
    assert edges["weight"].tolist() == before.tolist()
    assert relabelled.adjacency.tolist() == before.tolist()
    assert list(relabelled.unique_ids) == ["w", "x", "y", "z"]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    pairs=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=200),
    weighted=st.booleans(),
)
def test_graphs_are_laid_out_and_standardised_as_libpysal_does(n, pairs, weighted) -> None:
    """``_build`` lays the adjacency out straight from the CSR and row-standardises binary
    graphs itself (no second adjacency): the same graph, to the bit, as a Graph built from
    the sorted edge list and transformed by libpysal, islands included."""
    ids = np.array([f"u{i:02d}" for i in range(n)], dtype=object)
    r = np.array([a for a, b in pairs if a < n and b < n], dtype=np.int64)
    c = np.array([b for a, b in pairs if a < n and b < n], dtype=np.int64)
    w = np.linspace(0.5, 3.0, r.size) if weighted else None
    got = gr._build("test", ids, r, c, w)
    keep = r != c
    m = sparse.csr_array(
        (np.ones(int(keep.sum())) if w is None else w[keep], (r[keep], c[keep])), shape=(n, n)
    )
    m.sum_duplicates()
    if w is None:
        m.data[:] = 1.0
    m.eliminate_zeros()
    coo = m.tocoo()
    card = np.diff(m.indptr)
    isl = np.flatnonzero(card == 0)
    rows = np.concatenate([coo.row, isl])
    cols = np.concatenate([coo.col, isl])
    wt = np.concatenate([coo.data, np.zeros(isl.size)])
    o = np.lexsort((cols, rows))  # the canonical order: by focal, then neighbour
    ref = Graph.from_arrays(ids[rows[o]], ids[cols[o]], wt[o]).transform("r")
    assert got.transformation == "R"
    assert list(got.unique_ids) == list(ids)
    pd.testing.assert_series_equal(
        got.adjacency, ref.adjacency, check_exact=True, check_index_type=False
    )
    assert sorted(got.isolates) == sorted(ids[isl])


@pytest.mark.parametrize("block", [1, 7, 50])
def test_knn_in_blocks_of_units_is_the_whole_query(monkeypatch, block) -> None:
    """``knn`` queries a block of units at a time; on a grid full of exact ties (ties
    beyond the query's reach included) the graph is the one-block graph."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, 120).astype(float)  # many coincident points and equal distances
    y = rng.integers(0, 6, 120).astype(float)
    ids = np.array([f"p{i:03d}" for i in range(120)], dtype=object)
    whole = gr.knn(ids, x, y, k=4)
    monkeypatch.setattr(gr, "_KNN_BLOCK", block)
    got = gr.knn(ids, x, y, k=4)
    pd.testing.assert_series_equal(got.adjacency, whole.adjacency, check_exact=True)
    assert (got.cardinalities == 4).all()


def _as_libpysal_works_them_out(g: Graph) -> Graph:
    """The same graph, its ids and neighbour counts left for libpysal to work out."""
    return Graph(gr.adjacency_of(g).copy(), transformation=g.transformation, is_sorted=True)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 30),
    pairs=st.lists(st.tuples(st.integers(0, 29), st.integers(0, 29)), max_size=120),
    weighted=st.booleans(),
    keep=st.lists(st.integers(0, 29), max_size=30),
)
def test_known_ids_and_counts_are_libpysals(n, pairs, weighted, keep) -> None:
    """The ids and neighbour counts the graphs are built with equal what libpysal works out
    from their links, islands included, through subgraphs, second orders and transforms;
    and so do the lags, isolates and sparse matrices that use them."""
    ids = np.array([f"u{i:02d}" for i in range(n)], dtype=object)
    r = np.array([a for a, b in pairs if a < n and b < n], dtype=np.int64)
    c = np.array([b for a, b in pairs if a < n and b < n], dtype=np.int64)
    w = np.linspace(0.5, 3.0, r.size) if weighted else None
    base = gr._build("test", ids, r, c, w)
    part = gr.subgraph(base, ids[[k for k in keep if k < n]])
    graphs = [
        base,
        part,
        gr.higher_order(base, 2),
        gr.transformed(gr.higher_order(base, 2), "r"),
        gr.transformed(base, "b"),
        gr.transformed(part, "b"),
    ]
    y = np.arange(n, dtype=float) ** 1.5
    for g in graphs:
        assert {"unique_ids", "cardinalities"} <= set(vars(g))
        ref = _as_libpysal_works_them_out(g)
        pd.testing.assert_index_equal(g.unique_ids, ref.unique_ids, exact=True)
        pd.testing.assert_series_equal(g.cardinalities, ref.cardinalities, check_exact=True)
        pd.testing.assert_index_equal(g.isolates, ref.isolates, exact=True)
        assert g.n == ref.n
        at = np.asarray(g.unique_ids)
        vals = y[: len(at)]
        assert np.array_equal(gr.lag(g, vals, at), gr.lag(ref, vals, at), equal_nan=True)
    # a graph libpysal made itself is transformed as before
    plain = _as_libpysal_works_them_out(base)
    assert "unique_ids" not in vars(gr.transformed(plain, "r"))
