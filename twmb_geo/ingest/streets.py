"""Centreline attributes: road class (``is_street``), feature code, nodes, jurisdiction.

Segments without a from/to node id (most cities' centrelines, OpenStreetMap) get nodes
derived from their end points: see :func:`derive_nodes`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..io.profiles import Profile
from ._common import IngestContext
from ._lines import _numeric, _Problems, _raw, _text, _whole

__all__ = ["DERIVED_NODE_PREFIX", "NON_STREET_CLASSES", "STREET_CLASSES", "derive_nodes"]

#: prefix of a derived node id (lengthened with ``_`` until no source id starts with it)
DERIVED_NODE_PREFIX = "n"

#: FEATURE_CODE_DESC values (case-insensitive) of road classes: ``is_street`` is True.
STREET_CLASSES = frozenset(
    {
        "expressway",
        "expressway ramp",
        "major arterial",
        "major arterial ramp",
        "minor arterial",
        "minor arterial ramp",
        "collector",
        "collector ramp",
        "local",
        "laneway",
        "access road",
        "busway",
        "other",
        "other ramp",
        "pending",
    }
)
#: FEATURE_CODE_DESC values of non-street features: ``is_street`` is False.
NON_STREET_CLASSES = frozenset(
    {
        "major railway",
        "minor railway",
        "railway",
        "river",
        "creek/tributary",
        "trail",
        "walkway",
        "hydro line",
        "major shoreline",
        "minor shoreline (land locked)",
        "geostatistical line",
        "ferry route",
    }
)
#: feature codes of road classes in the bundled centreline (201100 Expressway ... 201803 Access Road).
_STREET_CODES = (201100, 201900)


def _street_attributes(
    f: pd.DataFrame, profile: Profile, ctx: IngestContext, probs: _Problems, length: np.ndarray
) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    n = len(f)
    raw, name = _raw(f, profile, "feature_code")
    code, bad = _numeric(raw)
    bad = _whole(code, bad)
    probs.add("value_unparseable", bad, name, raw, "is not a feature code")
    probs.add("value_out_of_range", np.abs(code) >= 2**31, name, raw, "is too large")
    desc = _text(_raw(f, profile, "feature_code_desc")[0])
    norm = pd.Series(desc, dtype=object).map(str.casefold, na_action="ignore")
    street = norm.isin(list(STREET_CLASSES)).to_numpy()
    non_street = norm.isin(list(NON_STREET_CLASSES)).to_numpy()
    unknown = ~street & ~non_street
    with np.errstate(invalid="ignore"):
        by_code = (code >= _STREET_CODES[0]) & (code < _STREET_CODES[1])
    if "feature_code_desc" not in profile.columns and "feature_code" not in profile.columns:
        # a plain street file: nothing says otherwise
        is_street = np.ones(n, dtype=bool)
        unknown = np.zeros(n, dtype=bool)
    else:
        is_street = np.where(unknown, by_code, street)
    cols: dict[str, Any] = {
        "linear_name_full": _text(_raw(f, profile, "linear_name_full")[0]),
        "feature_code": np.where(bad | (np.abs(code) >= 2**31), np.nan, code),
        "feature_code_desc": desc,
        "is_street": is_street.astype(bool),
        "from_node": _text(_raw(f, profile, "from_node")[0]),
        "to_node": _text(_raw(f, profile, "to_node")[0]),
        "jurisdiction": _text(_raw(f, profile, "jurisdiction")[0]),
        "status": _text(_raw(f, profile, "status")[0]),
    }
    return cols, [("feature_class_unrecognised", unknown)]


def _segment_ends(geoms: np.ndarray) -> np.ndarray:
    """Start of the first part and end of the last part of each line: ``(2n, 2)``, starts first."""
    n = len(geoms)
    parts, of = shapely.get_parts(geoms, return_index=True)
    first = np.full(n, -1, dtype=np.int64)
    last = np.full(n, -1, dtype=np.int64)
    pos = np.arange(of.size)
    first[of[::-1]] = pos[::-1]  # the first part of each line wins
    last[of] = pos  # the last part wins
    start = shapely.get_coordinates(shapely.get_point(parts[first], 0))
    end = shapely.get_coordinates(shapely.get_point(parts[last], -1))
    return np.concatenate([start, end])


def _clusters(xy: np.ndarray, tol_m: float) -> np.ndarray:
    """Cluster label of each point: points within ``tol_m`` (transitively) share a label."""
    uniq, inv = np.unique(xy, axis=0, return_inverse=True)
    inv = inv.ravel()
    m = uniq.shape[0]
    if tol_m <= 0 or m < 2:
        return inv
    pairs = cKDTree(uniq).query_pairs(float(tol_m), output_type="ndarray")
    adj = sparse.coo_array((np.ones(pairs.shape[0]), (pairs[:, 0], pairs[:, 1])), shape=(m, m))
    _, labels = connected_components(adj, directed=False)
    return labels[inv]


def _derived_prefix(source_ids: np.ndarray) -> str:
    """``DERIVED_NODE_PREFIX`` + ``_`` as often as needed so no source id starts with it."""
    prefix = DERIVED_NODE_PREFIX
    ids = pd.Series(source_ids, dtype=object).astype(str)
    while ids.str.startswith(prefix).any():
        prefix += "_"
    return prefix


def derive_nodes(
    from_node: np.ndarray, to_node: np.ndarray, geometry: np.ndarray, tol_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Fill missing from/to node ids from the segments' end points.

    End points within ``tol_m`` metres of each other (transitively: a KD-tree
    ``query_pairs`` and connected components) are one node. A missing id takes the
    source id of its node when the node has one (the most frequent, then the smallest);
    otherwise the node gets a derived id ``<prefix><k>``, ``k`` numbering the derived nodes
    in the order of their mean coordinate (x, then y), the prefix chosen so that no
    source id starts with it. Source ids are never changed.

    Parameters
    ----------
    from_node, to_node : object arrays
        Source node ids (None where missing).
    geometry : array of (Multi)LineStrings
        The segments in a metric CRS (the analysis CRS).
    tol_m : float
        Snapping tolerance in metres (>= 0; 0 joins identical points only).

    Returns
    -------
    from_node, to_node, node_source, counts
        Filled ids, ``"source"``/``"derived"``/``"mixed"`` per segment (which ends were
        derived), and counts: ``ends_derived``, ``ends_joined`` (a missing end that took a
        source id) and ``nodes_new`` (derived node ids).
    """
    f = np.asarray(from_node, dtype=object).copy()
    t = np.asarray(to_node, dtype=object).copy()
    n = f.size
    ids = np.concatenate([f, t])
    miss = pd.isna(ids)
    counts = {"ends_derived": int(miss.sum()), "ends_joined": 0, "nodes_new": 0}
    node_source = np.full(n, "source", dtype=object)
    if not miss.any():
        return f, t, node_source, counts
    xy = _segment_ends(np.asarray(geometry, dtype=object))
    label = _clusters(xy, tol_m)
    # source id of each cluster: most frequent, then smallest
    have = pd.DataFrame({"c": label[~miss], "id": ids[~miss].astype(str)})
    best = (
        have.groupby(["c", "id"], sort=True).size().rename("k").reset_index()
        .sort_values(["c", "k", "id"], ascending=[True, False, True], kind="stable")
        .drop_duplicates("c")
        .set_index("c")["id"]
    )  # fmt: skip
    fill = pd.Series(label[miss]).map(best).to_numpy(dtype=object)
    joined = pd.notna(fill)
    counts["ends_joined"] = int(joined.sum())
    new_c = np.unique(label[miss][~joined])
    if new_c.size:
        k = label.max() + 1
        cx = np.bincount(label, weights=xy[:, 0], minlength=k) / np.bincount(label, minlength=k)
        cy = np.bincount(label, weights=xy[:, 1], minlength=k) / np.bincount(label, minlength=k)
        order = np.lexsort((np.round(cy[new_c], 3), np.round(cx[new_c], 3)))
        prefix = _derived_prefix(ids[~miss])
        name = np.empty(k, dtype=object)
        name[new_c[order]] = [f"{prefix}{i + 1}" for i in range(new_c.size)]
        fill[~joined] = name[label[miss][~joined]]
        counts["nodes_new"] = int(new_c.size)
    ids[miss] = fill
    f, t = ids[:n], ids[n:]
    df, dt_ = miss[:n], miss[n:]
    node_source[df & dt_] = "derived"
    node_source[df ^ dt_] = "mixed"
    return f, t, node_source, counts
