"""Spatial weights between analysis units, as ``libpysal.graph.Graph``.

Every builder returns a row-standardised ``Graph`` (transformation ``"R"``) indexed by the
unit ids in ascending order. Islands (units without neighbours) follow libpysal: a
self-loop of weight 0, listed by ``Graph.isolates``. All builders are vectorised
(KD-tree, STRtree, ``scipy.sparse`` products) and assemble the graph from a sparse
adjacency; none is O(n^2).

Weights are binary (or inverse distance for :func:`distance_band`) before
``transform("r")``: each unit's weights sum to 1, islands' to 0.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import shapely
from libpysal.graph import Graph
from scipy import sparse
from scipy.spatial import cKDTree

from ..errors import ConfigError, InputDataError
from .hexgrid import _as_cells, _listed

__all__ = [
    "adjacency_of",
    "contiguity",
    "distance_band",
    "graph_edge_chunks",
    "graph_edges",
    "graph_summary",
    "h3_kring",
    "higher_order",
    "knn",
    "lag",
    "line_network",
    "relabel",
    "shared_nodes",
    "subgraph",
    "transformed",
]

log = logging.getLogger(__name__)

_DIST_DECIMALS = 9  # knn: distances equal to the nanometre are ties, broken by id
_KNN_BLOCK = 100_000  # knn: units queried at a time


# --------------------------------------------------------------------------- Graph helpers


def _from_csr(ids: np.ndarray, w: sparse.csr_array, transformation: str = "O") -> Graph:
    """Graph from an ``n x n`` CSR adjacency (sorted indices, no explicit zeros) over ``ids``.

    Rows without an entry become isolates (a self-loop of weight 0). The adjacency is laid
    out row by row straight from the CSR arrays (no sort, no reordering copies: for a
    city's pipe graph these temporaries were several times the graph itself).
    """
    n = ids.size
    card = np.diff(w.indptr)
    isl = card == 0
    counts = np.where(isl, 1, card)
    code = np.int32 if n < np.iinfo(np.int32).max else np.int64
    focal = np.repeat(np.arange(n, dtype=code), counts)
    isl_entry = isl[focal]
    nb = np.empty(focal.size, dtype=code)
    wt = np.zeros(focal.size)
    nb[~isl_entry] = w.indices
    wt[~isl_entry] = w.data
    nb[isl_entry] = np.flatnonzero(isl)
    del isl_entry
    index = pd.Index(ids)
    mi = pd.MultiIndex(
        levels=[index, index],
        codes=[focal, nb],
        names=["focal", "neighbor"],
        verify_integrity=False,
    )
    adjacency = pd.Series(wt, index=mi, name="weight")
    graph = Graph(adjacency, transformation=transformation, is_sorted=True)
    ids_of = index.rename("focal")
    links = np.diff(np.r_[0, np.cumsum(w.data != 0)][w.indptr])  # non-zero weights per row
    return _known(graph, ids_of, pd.Series(links.astype(np.int64), index=ids_of))


def _known(graph: Graph, unique_ids: pd.Index, cardinalities: pd.Series) -> Graph:
    """``graph`` with its ids and neighbour counts filled in from what built it.

    libpysal works both out from the adjacency's labels on first use (a unique of every
    link's focal id, a group-by over the links): for the graphs of a city's partitions
    that was a tenth of the feature stage's worker time. The values equal libpysal's
    (tested); they are put where its cached properties keep them.
    """
    vars(graph)["unique_ids"] = unique_ids
    vars(graph)["cardinalities"] = cardinalities.rename("cardinalities")
    return graph


def transformed(graph: Graph, how: str) -> Graph:
    """``graph.transform(how)``, keeping the ids and neighbour counts already known
    (a transformation changes the weights of the same links: neither changes)."""
    known = vars(graph)
    out = graph.transform(how)
    if "unique_ids" in known and "cardinalities" in known:
        return _known(out, known["unique_ids"], known["cardinalities"])
    return out


def adjacency_of(graph: Graph) -> pd.Series:
    """The graph's adjacency (``focal``, ``neighbor`` -> ``weight``), read in place.

    libpysal's ``Graph.adjacency`` is a cached *copy*: reading it once keeps a second
    adjacency on the graph for as long as the graph lives (hundreds of megabytes for a
    city's pipe graph). Callers must not modify what this returns.
    """
    adj = getattr(graph, "_adjacency", None)
    return adj if isinstance(adj, pd.Series) else graph.adjacency


def _pattern(graph: Graph) -> sparse.csr_array:
    """Binary CSR pattern of the graph's non-zero links (isolate self-loops dropped)."""
    w = sparse.csr_array(graph.sparse, copy=True)
    w.eliminate_zeros()
    w.data = np.ones(w.data.size, dtype=np.int8)
    return w


def higher_order(graph: Graph, k: int = 2) -> Graph:
    """Binary graph of the units at shortest-path distance exactly ``k`` along links.

    The same neighbour sets as ``graph.higher_order(k)`` (``shortest_path=True``,
    ``diagonal=False``, ``lower_order=False``), computed with sparse products instead of
    Python sets of index pairs, which keeps city-scale pipe networks in seconds.
    Units without a neighbour at that distance are isolates.
    """
    k = _positive_int(k, "lag order")
    a = _pattern(graph)
    n = graph.n
    eye = sparse.eye_array(n, dtype=np.int8, format="csr")
    step = (a + eye).astype(bool).astype(np.int8)
    prev = eye
    reach = step
    for _ in range(k - 1):
        prev = reach
        reach = (reach @ step).astype(bool).astype(np.int8)
    ring = sparse.csr_array(reach.astype(np.int16) - prev.astype(np.int16))
    ring.eliminate_zeros()
    ring.sort_indices()
    return _from_csr(np.asarray(graph.unique_ids), ring.astype(float), transformation="B")


def subgraph(graph: Graph, ids: Any) -> Graph:
    """The graph restricted to the units ``ids`` (those absent from ``graph`` ignored), in
    the graph's order, with the weights and transformation as they are.

    Weights are not standardised again: a unit all of whose neighbours are kept has the
    same row as in ``graph``; a unit that keeps none becomes an isolate.
    """
    pos = np.sort(graph.unique_ids.get_indexer(pd.Index(np.asarray(ids))))
    pos = pos[(pos >= 0) & np.r_[True, pos[1:] != pos[:-1]]]  # an id given twice: once
    w = sparse.csr_array(graph.sparse)[pos][:, pos]
    w.eliminate_zeros()
    w.sort_indices()
    return _from_csr(np.asarray(graph.unique_ids[pos]), w, graph.transformation)


def relabel(graph: Graph, labels: Any) -> Graph:
    """The same graph with ``labels`` (aligned with ``graph.unique_ids``) as ids.

    Positions, order and weights are kept (e.g. H3 cells from ``uint64`` to hex strings).
    """
    new = pd.Index(np.asarray(labels))
    if len(new) != graph.n or not new.is_unique:
        raise InputDataError(f"relabel needs {graph.n} unique labels; got {len(new)}")
    adj = adjacency_of(graph)
    pos = graph.unique_ids.get_indexer
    mi = pd.MultiIndex(
        levels=[new, new],
        codes=[pos(adj.index.get_level_values(0)), pos(adj.index.get_level_values(1))],
        names=["focal", "neighbor"],
        verify_integrity=False,
    )
    return Graph(
        pd.Series(adj.to_numpy(), index=mi, name="weight"),
        transformation=graph.transformation,
        is_sorted=True,
    )


def lag(graph: Graph, values: Any, ids: Any = None, *, empty: float = np.nan) -> Any:
    """Spatial lag ``W @ y`` (``Graph.lag``) aligned with the input.

    Parameters
    ----------
    graph : libpysal.graph.Graph
        Weights as they are applied (``transform`` first for a row-standardised lag).
    values : pandas.Series or DataFrame indexed by unit id, or array of shape (n,) or (n, p)
        NaN propagates to the units that see it.
    ids : array-like, optional
        Unit ids of the rows of an array ``values`` (default: ``graph.unique_ids``).
    empty : float, default NaN
        Value of units without neighbours (islands) and of units absent from the graph.

    Returns
    -------
    numpy.ndarray, pandas.Series or DataFrame
        Aligned with ``values`` (same index for pandas input).

    Raises
    ------
    InputDataError
        A graph unit without a value, or ``values`` not matching ``ids``.
    """
    frame = values if isinstance(values, pd.Series | pd.DataFrame) else None
    if frame is not None:
        at = pd.Index(frame.index)
        y = frame.to_numpy(dtype=float)
    else:
        y = np.asarray(values, dtype=float)
        at = graph.unique_ids if ids is None else pd.Index(np.asarray(ids))
    if y.shape[:1] != (len(at),):
        raise InputDataError(f"values have shape {y.shape}; expected ({len(at)}, ...)")
    uid = graph.unique_ids
    same = at.equals(uid)
    if not same:
        pos = at.get_indexer(uid)
        if (pos < 0).any():
            missing = uid[pos < 0]
            raise InputDataError(
                f"values have no entry for {missing.size} unit id(s)", _listed(missing.tolist())
            )
        y = y[pos]
    out = np.asarray(graph.lag(y), dtype=float)
    out[~np.asarray(graph.cardinalities > 0)] = empty
    if not same:
        back = uid.get_indexer(at)
        aligned = np.full((len(at), *out.shape[1:]), empty)
        aligned[back >= 0] = out[back[back >= 0]]
        out = aligned
    if isinstance(frame, pd.Series):
        return pd.Series(out, index=frame.index, name=frame.name)
    if isinstance(frame, pd.DataFrame):
        return pd.DataFrame(out, index=frame.index, columns=frame.columns)
    return out


def graph_edges(graph: Graph, *, include_islands: bool = False) -> pd.DataFrame:
    """Edge list for storing: ``focal``, ``neighbor``, ``weight`` in graph order.

    With ``include_islands`` islands appear as libpysal encodes them (a self-loop of
    weight 0).
    """
    return next(graph_edge_chunks(graph, rows=None, include_islands=include_islands))


def graph_edge_chunks(
    graph: Graph, *, rows: int | None = 500_000, include_islands: bool = False
) -> Iterator[pd.DataFrame]:
    """:func:`graph_edges` a slice of ``rows`` edges at a time (None: one frame), the same
    rows in the same order: a city's edges are millions of rows, and storing them should
    not need them all as Python objects at once. Always at least one (maybe empty) frame."""
    adj = adjacency_of(graph)
    mi = adj.index
    focal, nb = mi.codes
    pos = np.arange(len(adj))
    if not include_islands and len(graph.isolates):
        pos = pos[~np.isin(focal, mi.levels[0].get_indexer(graph.isolates))]
    step = max(len(pos), 1) if rows is None else rows
    if step < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    focal_ids, nb_ids = mi.levels[0].to_numpy(), mi.levels[1].to_numpy()
    weights = adj.to_numpy(dtype=float)
    for lo in range(0, max(len(pos), 1), step):
        p = pos[lo : lo + step]
        yield pd.DataFrame(
            {"focal": focal_ids[focal[p]], "neighbor": nb_ids[nb[p]], "weight": weights[p]}
        )


def graph_summary(graph: Graph) -> dict[str, Any]:
    """Counts for reports.

    ``n_edges`` counts directed non-zero links (a symmetric pair counts twice, as in
    libpysal); ``n_components`` counts weakly connected components (islands included).
    """
    n = graph.n
    card = graph.cardinalities.to_numpy()
    pattern = _pattern(graph)
    return {
        "n": int(n),
        "n_edges": int(pattern.nnz),
        "mean_neighbours": float(card.mean()) if n else 0.0,
        "min_neighbours": int(card.min()) if n else 0,
        "max_neighbours": int(card.max()) if n else 0,
        "n_islands": len(graph.isolates),
        "n_components": int(graph.n_components) if n else 0,
        "symmetric": bool((pattern != pattern.T).nnz == 0),
    }


# --------------------------------------------------------------------------- internals


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise ConfigError(f"{name} must be an integer >= 1; got {v!r}")
    return int(v)


def _sort_ids(ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated ids in ascending order, and the sorting permutation of the input."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise InputDataError(f"unit ids must be one-dimensional; got shape {arr.shape}")
    miss = np.flatnonzero(pd.isna(arr))
    if miss.size:
        raise InputDataError(
            f"{miss.size} missing unit id(s)", _listed([f"position {i}" for i in miss])
        )
    dup = pd.Index(arr).duplicated()
    if dup.any():
        raise InputDataError(
            f"{int(dup.sum())} duplicate unit id(s)", _listed(pd.unique(arr[dup]).tolist())
        )
    try:
        order = np.argsort(arr, kind="stable")
    except TypeError as exc:
        raise InputDataError(f"unit ids cannot be sorted (mixed types?): {exc}") from exc
    return arr[order], order


def _coords(x: Any, y: Any, ids: np.ndarray, order: np.ndarray) -> np.ndarray:
    """(n, 2) coordinates in sorted-id order; every non-finite one is listed."""
    xa, ya = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xa.size != order.size or ya.size != order.size:
        raise InputDataError(
            f"x and y need one value per unit ({order.size}); got {xa.size} and {ya.size}"
        )
    xy = np.column_stack([xa[order], ya[order]])
    bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
    if bad.size:
        raise InputDataError(
            f"{bad.size} unit(s) with non-finite coordinates", _listed(ids[bad].tolist())
        )
    return xy


def _geoms(values: Any, ids: np.ndarray, order: np.ndarray, types: tuple[int, ...], what: str):
    """Shapely geometries (or WKB) in sorted-id order; wrong types are listed."""
    g = np.asarray(values, dtype=object).ravel()
    if g.size != order.size:
        raise InputDataError(f"need one geometry per unit ({order.size}); got {g.size}")
    g = _decoded(g)[order]
    bad = geometry_type_problems(g, ids, types)
    if bad:
        raise geometry_type_error(bad, what)
    return g


def _decoded(g: np.ndarray) -> np.ndarray:
    """An object array of geometries with its WKB values decoded (a copy when any is)."""
    is_wkb = np.fromiter((isinstance(v, bytes | bytearray) for v in g), bool, count=g.size)
    if is_wkb.any():
        g = g.copy()
        g[is_wkb] = shapely.from_wkb(g[is_wkb])
    return g


def _check_tolerance(tol_m: float) -> None:
    if not np.isfinite(tol_m) or tol_m < 0:
        raise ConfigError(f"tol_m must be a finite number >= 0 m; got {tol_m!r}")


def geometry_type_problems(g: np.ndarray, ids: np.ndarray, types: tuple[int, ...]) -> list[str]:
    """The units of ``ids`` whose geometry in ``g`` (shapely, None for none) is not one of
    the shapely type ids ``types``, each with the type it has."""
    tid = shapely.get_type_id(g)
    bad = np.flatnonzero(~np.isin(tid, (-1, *types)) | (~shapely.is_geometry(g) & (g != None)))  # noqa: E711
    return [f"unit {ids[i]!r}: {getattr(g[i], 'geom_type', type(g[i]).__name__)}" for i in bad]


def geometry_type_error(problems: Sequence[str], what: str) -> InputDataError:
    """The error that lists every geometry of :func:`geometry_type_problems`."""
    return InputDataError(f"{len(problems)} geometry(ies) are not {what}", _listed(problems))


def _build(
    kind: str,
    ids: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    weights: np.ndarray | None = None,
) -> Graph:
    """Row-standardised Graph from (row, col[, weight]) positions into sorted ``ids``.

    Self-pairs are dropped. Without ``weights`` the graph is binary (duplicates collapse).
    """
    n = ids.size
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    keep = rows != cols
    data = np.ones(int(keep.sum())) if weights is None else np.asarray(weights, float)[keep]
    w = sparse.csr_array((data, (rows[keep], cols[keep])), shape=(n, n))
    w.sum_duplicates()
    w.sort_indices()
    if weights is None:
        w.data[:] = 1.0
    w.eliminate_zeros()
    card = np.diff(w.indptr)
    n_isl = int((card == 0).sum())
    if n_isl:
        log.warning(
            "%s graph: %d of %d unit(s) have no neighbours (islands); kept as isolates with "
            "zero weights",
            kind,
            n_isl,
            n,
        )
    if weights is None:
        # row-standardised as libpysal's transform("r") does it (1 / row sum, 0 for an
        # island), without its second adjacency: for ones the row sum is exact, so the
        # weights are the same to the bit
        w.data = 1.0 / np.repeat(card, card).astype(float)
        return _from_csr(ids, w, transformation="R")
    return transformed(_from_csr(ids, w), "r")


def line_network_pairs(
    g: np.ndarray, tol_m: float, *, t_junctions: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The linked pairs of :func:`line_network` as positions in ``g`` (validated lines;
    None for a pipe without geometry), both directions, self-pairs and repeats included."""
    n = len(g)
    parts, pline = shapely.get_parts(g, return_index=True)
    ok = ~shapely.is_empty(parts)
    parts, pline = parts[ok], pline[ok]
    ends = np.concatenate(
        [
            shapely.get_coordinates(shapely.get_point(parts, 0)),
            shapely.get_coordinates(shapely.get_point(parts, -1)),
        ]
    )
    end_line = np.tile(pline, 2)
    if not ends.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    nodes, node_of_end = np.unique(ends, axis=0, return_inverse=True)
    node_of_end = node_of_end.ravel()
    m = nodes.shape[0]
    b = sparse.csr_array((np.ones(end_line.size), (end_line, node_of_end)), shape=(n, m))
    near = cKDTree(nodes).query_pairs(float(tol_m), output_type="ndarray") if tol_m > 0 else None
    node_adj = sparse.eye_array(m, format="csr")
    if near is not None and near.size:
        p, q = near[:, 0], near[:, 1]
        node_adj = node_adj + sparse.csr_array(
            (np.ones(2 * p.size), (np.r_[p, q], np.r_[q, p])), shape=(m, m)
        )
    a = b @ node_adj @ b.T
    if t_junctions:
        tree = shapely.STRtree(parts)
        pts = shapely.points(nodes)
        if tol_m > 0:
            qi, qj = tree.query(pts, predicate="dwithin", distance=float(tol_m))
        else:
            qi, qj = tree.query(pts, predicate="intersects")
        c = sparse.csr_array((np.ones(qi.size), (qi, pline[qj])), shape=(m, n))
        touch = b @ c
        a = a + touch + touch.T
    a = a.tocoo()
    return a.row.astype(np.int64), a.col.astype(np.int64)


# --------------------------------------------------------------------------- builders


def h3_kring(cells: Any, k: int = 1) -> Graph:
    """Neighbours are the cells within ``k`` rings (grid distance <= k) that are also units.

    Parameters
    ----------
    cells : array-like of uint64 (or hex strings)
        Unit cells, one resolution, unique. Ids of the graph are the ``uint64`` cells.
    k : int
        Ring radius >= 1.
    """
    k = _positive_int(k, "k")
    c = _as_cells(cells, allow_zero=False).ravel()
    ids, _ = _sort_ids(c)
    res = np.array([h3i.get_resolution(int(x)) for x in ids.tolist()], dtype=np.int8)
    if ids.size and (res != res[0]).any():
        vals, cnt = np.unique(res, return_counts=True)
        raise InputDataError(
            "h3_kring needs cells of one resolution",
            [f"resolution {v}: {n} cell(s)" for v, n in zip(vals, cnt, strict=True)],
        )
    disks = [h3i.grid_disk(x, k) for x in ids.tolist()]  # h3 has no vectorised grid_disk
    counts = np.fromiter(map(len, disks), dtype=np.int64, count=len(disks))
    flat = np.fromiter(itertools.chain.from_iterable(disks), np.uint64, int(counts.sum()))
    rows = np.repeat(np.arange(ids.size), counts)
    pos = np.minimum(np.searchsorted(ids, flat), max(ids.size - 1, 0))
    found = ids[pos] == flat if ids.size else np.zeros(0, bool)
    return _build("h3_kring", ids, rows[found], pos[found])


def knn(ids: Any, x: Any, y: Any, k: int = 8, *, symmetric: bool = False) -> Graph:
    """The ``k`` nearest units of each unit (cKDTree).

    Parameters
    ----------
    ids : array-like
        Unique unit ids.
    x, y : array-like
        Coordinates in metres (the analysis CRS), aligned with ``ids``.
    k : int
        Neighbours per unit (capped at n - 1).
    symmetric : bool
        False (default): directed, ``j`` in knn(``i``) does not imply ``i`` in knn(``j``),
        every unit has exactly ``k`` neighbours. True: the union of both directions (some
        units then have more than ``k``).

    Notes
    -----
    Distances equal to the nanometre are ties, broken by the smaller id, so the result does
    not depend on the input order. Coincident points are neighbours at distance 0.
    """
    k = _positive_int(k, "k")
    sid, order = _sort_ids(ids)
    xy = _coords(x, y, sid, order)
    n = sid.size
    if n < 2:
        return _build("knn", sid, np.zeros(0), np.zeros(0))
    k_eff = min(k, n - 1)
    if k_eff < k:
        log.warning("knn: only %d units, so k=%d is capped at %d", n, k, k_eff)
    tree = cKDTree(xy)
    kq = min(n, k_eff + 2)
    out_r: list[np.ndarray] = []
    out_c: list[np.ndarray] = []
    ties: list[np.ndarray] = []
    d_raw_max = np.empty(n)
    # a block of rows at a time: the (rows x kq) temporaries of a whole city's query are
    # several times the graph
    for lo in range(0, n, _KNN_BLOCK):
        rows = np.arange(lo, min(lo + _KNN_BLOCK, n))
        _, j = tree.query(xy[rows], k=kq)
        d = np.round(np.hypot(*(xy[j] - xy[rows, None, :]).transpose(2, 0, 1)), _DIST_DECIMALS)
        d_raw_max[rows] = d.max(axis=1)
        d = np.where(j == rows[:, None], np.inf, d)  # self sorts last
        o = np.lexsort((j, d), axis=-1)
        j, d = np.take_along_axis(j, o, 1), np.take_along_axis(d, o, 1)
        # ties at the k-th distance may continue beyond the kq returned points
        tie = (d[:, k_eff - 1] >= d_raw_max[rows]) & (kq < n)
        out_r.append(np.repeat(rows[~tie], k_eff))
        out_c.append(j[~tie, :k_eff].ravel())
        ties.append(rows[tie])
    t = np.concatenate(ties)
    if t.size:
        balls = tree.query_ball_point(xy[t], r=d_raw_max[t] + 10.0**-_DIST_DECIMALS)
        cnt = np.fromiter(map(len, balls), np.int64, t.size)
        cj = np.fromiter(itertools.chain.from_iterable(balls), np.int64, int(cnt.sum()))
        cr = np.repeat(t, cnt)
        cd = np.round(np.hypot(*(xy[cj] - xy[cr]).T), _DIST_DECIMALS)
        ok = cj != cr
        cr, cj, cd = cr[ok], cj[ok], cd[ok]
        oo = np.lexsort((cj, cd, cr))
        cr, cj = cr[oo], cj[oo]
        start = np.searchsorted(cr, cr, side="left")
        first_k = np.arange(cr.size) - start < k_eff
        out_r.append(cr[first_k])
        out_c.append(cj[first_k])
    r, c = np.concatenate(out_r), np.concatenate(out_c)
    if symmetric:
        r, c = np.concatenate([r, c]), np.concatenate([c, r])
    return _build("knn", sid, r, c)


def distance_band(
    ids: Any,
    x: Any,
    y: Any,
    threshold_m: float,
    *,
    weights: Literal["binary", "inverse"] = "binary",
    power: float = 1.0,
    min_distance_m: float = 1.0,
) -> Graph:
    """Units within ``threshold_m`` of each other (distance <= threshold, cKDTree pairs).

    Parameters
    ----------
    ids, x, y : array-like
        Unique unit ids and their the analysis CRS coordinates.
    threshold_m : float
        Band radius in metres (> 0).
    weights : {"binary", "inverse"}
        Binary, or inverse distance ``1 / max(d, min_distance_m) ** power`` (coincident
        points would otherwise get infinite weight); row-standardised after.
    """
    if not np.isfinite(threshold_m) or threshold_m <= 0:
        raise ConfigError(
            f"distance band threshold must be a finite number > 0 m; got {threshold_m!r}"
        )
    if weights not in ("binary", "inverse"):
        raise ConfigError(f"weights must be 'binary' or 'inverse'; got {weights!r}")
    if weights == "inverse" and (not np.isfinite(min_distance_m) or min_distance_m <= 0):
        raise ConfigError(f"min_distance_m must be > 0; got {min_distance_m!r}")
    sid, order = _sort_ids(ids)
    xy = _coords(x, y, sid, order)
    pairs = cKDTree(xy).query_pairs(float(threshold_m), output_type="ndarray")
    i, j = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    w = None
    if weights == "inverse":
        dist = np.maximum(np.hypot(*(xy[i] - xy[j]).T), min_distance_m)
        w = np.tile(dist**-power, 2)
    return _build("distance_band", sid, np.r_[i, j], np.r_[j, i], w)


def shared_nodes(ids: Any, from_node: Any, to_node: Any) -> Graph:
    """Street network: segments are neighbours when they share an end node.

    Built as ``B @ B.T`` with ``B`` the sparse segment x node incidence matrix.

    Raises
    ------
    InputDataError
        Listing the segments with a missing node id.
    """
    sid, order = _sort_ids(ids)
    f = np.asarray(from_node, dtype=object).ravel()
    t = np.asarray(to_node, dtype=object).ravel()
    if f.size != order.size or t.size != order.size:
        raise InputDataError(
            f"from_node and to_node need one value per segment ({order.size}); "
            f"got {f.size} and {t.size}"
        )
    codes, uniq = pd.factorize(np.concatenate([f[order], t[order]]))
    n = sid.size
    miss = np.flatnonzero((codes[:n] < 0) | (codes[n:] < 0))
    if miss.size:
        raise InputDataError(
            f"{miss.size} segment(s) without a from/to node id", _listed(sid[miss].tolist())
        )
    b = sparse.csr_array(
        (np.ones(2 * n), (np.tile(np.arange(n), 2), codes)), shape=(n, max(uniq.size, 1))
    )
    a = (b @ b.T).tocoo()
    return _build("shared_nodes", sid, a.row, a.col)


def line_network(ids: Any, geoms: Any, tol_m: float = 1.0, *, t_junctions: bool = True) -> Graph:
    """Pipe network: pipes are neighbours when an end of one is within ``tol_m`` of the other.

    Parameters
    ----------
    ids : array-like
        Unique pipe ids.
    geoms : array of (Multi)LineStrings or WKB, the analysis CRS
    tol_m : float
        Snapping tolerance in metres (>= 0).
    t_junctions : bool
        Also link a pipe whose end touches another pipe's interior (a T-junction whose main
        was not split). Pipes that merely cross are never linked.

    Notes
    -----
    End points are deduplicated into nodes; nodes within ``tol_m`` are joined with a KD-tree
    (``query_pairs``), and pipes linked through ``B N B.T`` (``B``: pipe x node incidence,
    ``N``: node adjacency). T-junctions come from an STRtree ``dwithin`` query of the nodes
    against the pipes. Every part of a MultiLineString contributes its two ends.
    """
    _check_tolerance(tol_m)
    sid, order = _sort_ids(ids)
    g = _geoms(geoms, sid, order, (1, 2, 5), "lines")
    r, c = line_network_pairs(g, tol_m, t_junctions=t_junctions)
    return _build("line_network", sid, r, c)


def contiguity(ids: Any, polygons: Any, *, tol_m: float = 0.0) -> Graph:
    """Queen contiguity: polygons that share at least a point (STRtree ``intersects``).

    Parameters
    ----------
    ids : array-like
        Unique unit ids (e.g. neighbourhood codes).
    polygons : array of (Multi)Polygons or WKB, the analysis CRS
    tol_m : float
        If > 0, polygons within this distance are neighbours too (closes digitising gaps).
    """
    _check_tolerance(tol_m)
    sid, order = _sort_ids(ids)
    g = _geoms(polygons, sid, order, (3, 6), "polygons")
    tree = shapely.STRtree(g)
    if tol_m > 0:
        i, j = tree.query(g, predicate="dwithin", distance=float(tol_m))
    else:
        i, j = tree.query(g, predicate="intersects")
    return _build("contiguity", sid, i, j)
