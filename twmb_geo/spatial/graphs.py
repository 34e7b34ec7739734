"""Spatial weights between analysis units, as row-standardised ``libpysal.graph.Graph``.

Every builder returns a :class:`UnitGraph`: the graph indexed by the unit ids in ascending
order, with islands (units without neighbours) kept as libpysal isolates (a self-loop of
weight 0) and listed in ``islands``. All builders are vectorised (KD-tree, STRtree,
``scipy.sparse`` products); none is O(n^2).

Weights are binary (or inverse distance for :func:`distance_band`) and then
row-standardised: each unit's weights sum to 1, islands' to 0.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import shapely
from libpysal.graph import Graph
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..errors import ConfigError, InputDataError
from .hexgrid import _as_cells, _listed

__all__ = [
    "UnitGraph",
    "contiguity",
    "distance_band",
    "graph_edges",
    "h3_kring",
    "knn",
    "line_network",
    "shared_nodes",
]

log = logging.getLogger(__name__)

_DIST_DECIMALS = 9  # knn: distances equal to the nanometre are ties, broken by id


# --------------------------------------------------------------------------- UnitGraph


@dataclass(eq=False)
class UnitGraph:
    """Row-standardised spatial weights between units.

    Attributes
    ----------
    kind : str
        Builder name (``"h3_kring"``, ``"knn"``, ...).
    graph : libpysal.graph.Graph
        Transformation ``"R"``; islands are self-loops of weight 0.
    ids : numpy.ndarray
        Unit ids, ascending; the order of :attr:`sparse` rows and of :meth:`lag` output.
    islands : numpy.ndarray
        Ids of units without neighbours (ascending).
    params : dict
        Builder parameters, for the run manifest.
    """

    kind: str
    graph: Graph
    ids: np.ndarray
    islands: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    _w: sparse.csr_array | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        """Number of units."""
        return int(self.ids.size)

    @property
    def sparse(self) -> sparse.csr_array:
        """Row-standardised weights as an ``n x n`` CSR array (rows/cols in ``ids`` order)."""
        if self._w is None:
            adj = self.graph.adjacency
            pos = pd.Index(self.ids)
            r = pos.get_indexer(adj.index.get_level_values(0))
            c = pos.get_indexer(adj.index.get_level_values(1))
            w = sparse.csr_array((adj.to_numpy(float), (r, c)), shape=(self.n, self.n))
            w.eliminate_zeros()
            self._w = w
        return self._w

    def summary(self) -> dict[str, Any]:
        """Counts for reports.

        ``n_edges`` counts directed non-zero links (a symmetric pair counts twice, as in
        libpysal); ``n_components`` counts weakly connected components (islands included).
        """
        w = self.sparse
        card = np.diff(w.indptr)
        pattern = w.astype(bool)
        return {
            "kind": self.kind,
            "n": self.n,
            "n_edges": int(w.nnz),
            "mean_neighbours": float(card.mean()) if self.n else 0.0,
            "min_neighbours": int(card.min()) if self.n else 0,
            "max_neighbours": int(card.max()) if self.n else 0,
            "n_islands": int(self.islands.size),
            "n_components": int(connected_components(w, directed=True, connection="weak")[0])
            if self.n
            else 0,
            "symmetric": bool((pattern != pattern.T).nnz == 0),
        }

    def ring(self, order: int) -> sparse.csr_array:
        """Binary matrix of units at graph distance exactly ``order`` (along links)."""
        order = _positive_int(order, "lag order")
        a = self.sparse.astype(bool).astype(np.int8)
        eye = sparse.eye_array(self.n, dtype=np.int8, format="csr")
        step = (a + eye).astype(bool).astype(np.int8)
        prev = eye
        reach = step
        for _ in range(order - 1):
            prev = reach
            reach = (reach @ step).astype(bool).astype(np.int8)
        out = sparse.csr_array(reach.astype(np.int16) - prev.astype(np.int16))
        out.eliminate_zeros()
        return out.astype(float)

    def lag(self, values: Any, order: int = 1) -> np.ndarray:
        """Spatial lag of ``values``.

        Parameters
        ----------
        values : pandas.Series indexed by unit id, or array aligned with :attr:`ids`
            Shape ``(n,)`` or ``(n, p)``. NaN propagates to the units that see it.
        order : int
            1: ``W @ y`` with the graph's weights. ``k >= 2``: the mean over the units at
            graph distance exactly ``k`` (the k-th ring only; nearer units are excluded),
            equal weights.

        Returns
        -------
        numpy.ndarray
            Aligned with :attr:`ids`; NaN for units with no neighbour at that distance
            (islands always), never a division by zero.
        """
        order = _positive_int(order, "lag order")
        y = self._align(values)
        if order == 1:
            w = self.sparse
        else:
            ring = self.ring(order)
            cnt = np.diff(ring.indptr).astype(float)
            scale = np.divide(1.0, cnt, out=np.zeros_like(cnt), where=cnt > 0)
            w = sparse.csr_array(sparse.diags_array(scale) @ ring)
        out = np.asarray(w @ y, dtype=float)
        empty = np.diff(w.indptr) == 0
        out[empty] = np.nan
        return out

    def _align(self, values: Any) -> np.ndarray:
        if isinstance(values, pd.Series | pd.DataFrame):
            missing = pd.Index(self.ids).difference(values.index)
            if missing.size:
                raise InputDataError(
                    f"values have no entry for {missing.size} unit id(s)", _listed(missing.tolist())
                )
            values = values.loc[self.ids].to_numpy(dtype=float)
        y = np.asarray(values, dtype=float)
        if y.shape[:1] != (self.n,):
            raise InputDataError(f"values have shape {y.shape}; expected ({self.n}, ...)")
        return y


def graph_edges(g: UnitGraph, *, include_islands: bool = False) -> pd.DataFrame:
    """Edge list for storing: ``focal``, ``neighbor``, ``weight`` sorted by focal, neighbor.

    With ``include_islands`` islands appear as libpysal does (a self-loop of weight 0).
    """
    w = g.sparse
    focal = np.repeat(np.arange(g.n), np.diff(w.indptr))
    nb = w.indices
    wt = w.data
    if include_islands and g.islands.size:
        isl = np.flatnonzero(np.diff(w.indptr) == 0)
        focal = np.concatenate([focal, isl])
        nb = np.concatenate([nb, isl])
        wt = np.concatenate([wt, np.zeros(isl.size)])
        o = np.lexsort((nb, focal))
        focal, nb, wt = focal[o], nb[o], wt[o]
    return pd.DataFrame({"focal": g.ids[focal], "neighbor": g.ids[nb], "weight": wt})


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
    is_wkb = np.fromiter((isinstance(v, bytes | bytearray) for v in g), bool, count=g.size)
    if is_wkb.any():
        g = g.copy()
        g[is_wkb] = shapely.from_wkb(g[is_wkb])
    g = g[order]
    tid = shapely.get_type_id(g)
    bad = np.flatnonzero(~np.isin(tid, (-1, *types)) | (~shapely.is_geometry(g) & (g != None)))  # noqa: E711
    if bad.size:
        raise InputDataError(
            f"{bad.size} geometry(ies) are not {what}",
            _listed(
                [f"unit {ids[i]!r}: {getattr(g[i], 'geom_type', type(g[i]).__name__)}" for i in bad]
            ),
        )
    return g


def _build(
    kind: str,
    ids: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    weights: np.ndarray | None = None,
    params: dict[str, Any] | None = None,
) -> UnitGraph:
    """UnitGraph from (row, col[, weight]) positions into sorted ``ids``.

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
    rowsum = np.asarray(w.sum(axis=1)).ravel()
    w.data /= np.repeat(rowsum, card)
    isl = np.flatnonzero(card == 0)
    if isl.size:
        log.warning(
            "%s graph: %d of %d unit(s) have no neighbours (islands); kept as isolates with "
            "zero weights",
            kind,
            isl.size,
            n,
        )
    focal = np.concatenate([np.repeat(np.arange(n), card), isl])
    nb = np.concatenate([w.indices, isl])
    wt = np.concatenate([w.data, np.zeros(isl.size)])
    o = np.argsort(focal, kind="stable")  # rows already sorted by neighbour; one isolate row
    index = pd.Index(ids)
    mi = pd.MultiIndex(
        levels=[index, index],
        codes=[focal[o], nb[o]],
        names=["focal", "neighbor"],
        verify_integrity=False,
    )
    graph = Graph(pd.Series(wt[o], index=mi, name="weight"), transformation="R", is_sorted=True)
    return UnitGraph(kind, graph, ids, ids[isl], dict(params or {}), w)


# --------------------------------------------------------------------------- builders


def h3_kring(cells: Any, k: int = 1) -> UnitGraph:
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
    return _build("h3_kring", ids, rows[found], pos[found], params={"k": k})


def knn(ids: Any, x: Any, y: Any, k: int = 8, *, symmetric: bool = False) -> UnitGraph:
    """The ``k`` nearest units of each unit (cKDTree).

    Parameters
    ----------
    ids : array-like
        Unique unit ids.
    x, y : array-like
        Coordinates in metres (EPSG:2952), aligned with ``ids``.
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
    params = {"k": k, "symmetric": symmetric}
    if n < 2:
        return _build("knn", sid, np.zeros(0), np.zeros(0), params=params)
    k_eff = min(k, n - 1)
    if k_eff < k:
        log.warning("knn: only %d units, so k=%d is capped at %d", n, k, k_eff)
    tree = cKDTree(xy)
    kq = min(n, k_eff + 2)
    _, j = tree.query(xy, k=kq)
    rows = np.arange(n)
    d = np.round(np.hypot(*(xy[j] - xy[:, None, :]).transpose(2, 0, 1)), _DIST_DECIMALS)
    d_raw_max = d.max(axis=1)
    d = np.where(j == rows[:, None], np.inf, d)  # self sorts last
    o = np.lexsort((j, d), axis=-1)
    j, d = np.take_along_axis(j, o, 1), np.take_along_axis(d, o, 1)
    # ties at the k-th distance may continue beyond the kq returned points
    tie = (d[:, k_eff - 1] >= d_raw_max) & (kq < n)
    out_r = [np.repeat(rows[~tie], k_eff)]
    out_c = [j[~tie, :k_eff].ravel()]
    if tie.any():
        t = np.flatnonzero(tie)
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
    return _build("knn", sid, r, c, params=params)


def distance_band(
    ids: Any,
    x: Any,
    y: Any,
    threshold_m: float,
    *,
    weights: Literal["binary", "inverse"] = "binary",
    power: float = 1.0,
    min_distance_m: float = 1.0,
) -> UnitGraph:
    """Units within ``threshold_m`` of each other (distance <= threshold, cKDTree pairs).

    Parameters
    ----------
    ids, x, y : array-like
        Unique unit ids and their EPSG:2952 coordinates.
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
    params = {"threshold_m": float(threshold_m), "weights": weights}
    if weights == "inverse":
        params |= {"power": power, "min_distance_m": min_distance_m}
    return _build("distance_band", sid, np.r_[i, j], np.r_[j, i], w, params)


def shared_nodes(ids: Any, from_node: Any, to_node: Any) -> UnitGraph:
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


def line_network(
    ids: Any, geoms_2952: Any, tol_m: float = 1.0, *, t_junctions: bool = True
) -> UnitGraph:
    """Pipe network: pipes are neighbours when an end of one is within ``tol_m`` of the other.

    Parameters
    ----------
    ids : array-like
        Unique pipe ids.
    geoms_2952 : array of (Multi)LineStrings or WKB, EPSG:2952
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
    if not np.isfinite(tol_m) or tol_m < 0:
        raise ConfigError(f"tol_m must be a finite number >= 0 m; got {tol_m!r}")
    sid, order = _sort_ids(ids)
    g = _geoms(geoms_2952, sid, order, (1, 2, 5), "lines")
    n = sid.size
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
        return _build("line_network", sid, np.zeros(0), np.zeros(0), params={"tol_m": tol_m})
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
    params = {"tol_m": float(tol_m), "t_junctions": t_junctions}
    return _build("line_network", sid, a.row, a.col, params=params)


def contiguity(ids: Any, polygons_2952: Any, *, tol_m: float = 0.0) -> UnitGraph:
    """Queen contiguity: polygons that share at least a point (STRtree ``intersects``).

    Parameters
    ----------
    ids : array-like
        Unique unit ids (e.g. neighbourhood codes).
    polygons_2952 : array of (Multi)Polygons or WKB, EPSG:2952
    tol_m : float
        If > 0, polygons within this distance are neighbours too (closes digitising gaps).
    """
    if not np.isfinite(tol_m) or tol_m < 0:
        raise ConfigError(f"tol_m must be a finite number >= 0 m; got {tol_m!r}")
    sid, order = _sort_ids(ids)
    g = _geoms(polygons_2952, sid, order, (3, 6), "polygons")
    tree = shapely.STRtree(g)
    if tol_m > 0:
        i, j = tree.query(g, predicate="dwithin", distance=float(tol_m))
    else:
        i, j = tree.query(g, predicate="intersects")
    return _build("contiguity", sid, i, j, params={"tol_m": float(tol_m), "rule": "queen"})
