"""Duplicate break records, decided in metres in the analysis CRS.

Two rows are duplicates when they agree on the profile's exact key fields (normally the
break date), lie within a tolerance of each other (metres, analysis CRS) and their ids do
not tell them apart: two different non-null asset ids, or two different non-null record ids
(unless the profile says its record ids are row numbers), mean two breaks. Each row is
compared with every earlier row (source order, across chunks); it is a duplicate of the
earliest one it matches. Pairs are found with a KD-tree, never by comparing all rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

__all__ = ["Candidates", "DuplicateResult", "DuplicateState", "find_duplicates"]

_STATE_COLUMNS = ("h", "row", "px", "py", "cx", "cy", "rid", "aid")


@dataclass
class Candidates:
    """Rows of one chunk that take part in the check (all arrays of the same length).

    ``h`` hashes the exact key fields; ``px``/``py`` is the position compared with the
    tolerance, ``cx``/``cy`` the coordinates used for the record (the same unless the key
    names a coordinate pair); ``rid``/``aid`` are record and asset ids (``None`` = not
    given); ``i`` is the row's index in its chunk and ``row`` its source row.
    """

    h: np.ndarray
    row: np.ndarray
    px: np.ndarray
    py: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    rid: np.ndarray
    aid: np.ndarray
    i: np.ndarray

    def frame(self) -> pd.DataFrame:
        """The candidates as a frame (state columns plus ``i``)."""
        return pd.DataFrame({c: getattr(self, c) for c in (*_STATE_COLUMNS, "i")})


@dataclass
class DuplicateState:
    """Every earlier candidate row, carried from one chunk to the next."""

    seen: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            {
                "h": np.array([], dtype=np.uint64),
                "row": np.array([], dtype=np.int64),
                **{c: np.array([], dtype=float) for c in ("px", "py", "cx", "cy")},
                "rid": np.array([], dtype=object),
                "aid": np.array([], dtype=object),
            }
        )
    )


@dataclass
class DuplicateResult:
    """Per chunk row: duplicate?, kept row, distance, and key matches too far apart."""

    dup: np.ndarray
    kept_row: np.ndarray
    distance_m: np.ndarray
    used_distance_m: np.ndarray
    conflict: np.ndarray


def _differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Both ids given and different."""
    sa, sb = pd.Series(a, dtype=object), pd.Series(b, dtype=object)
    return (sa.notna() & sb.notna() & (sa != sb)).to_numpy()


def find_duplicates(
    state: DuplicateState,
    cand: Candidates,
    n: int,
    tolerance_m: float,
    *,
    record_ids_distinct: bool = True,
    max_used_distance_m: float | None = None,
) -> tuple[DuplicateState, DuplicateResult]:
    """Duplicates among ``cand`` (a chunk of ``n`` rows) and the earlier rows in ``state``.

    A pair matches when the exact keys agree, ``hypot(dpx, dpy) <= tolerance_m`` and no id
    tells the two apart. With ``max_used_distance_m``, a match whose used coordinates lie
    farther apart than that is not a duplicate; such rows are reported in ``conflict``.
    """
    dup = np.zeros(n, dtype=bool)
    conflict = np.zeros(n, dtype=bool)
    kept = np.full(n, -1, dtype=np.int64)
    dist = np.full(n, np.nan)
    used = np.full(n, np.nan)
    cur = cand.frame()
    prev = state.seen[state.seen["h"].isin(cur["h"])]
    both = pd.concat([prev.assign(i=-1), cur], ignore_index=True)  # earlier rows first
    new_state = DuplicateState(
        pd.concat([state.seen, cur[list(_STATE_COLUMNS)]], ignore_index=True)
        if len(cur)
        else state.seen
    )
    if len(both) < 2:
        return new_state, DuplicateResult(dup, kept, dist, used, conflict)
    # Rows with different keys are put a whole "step" apart on a third axis, so the tree
    # only pairs rows with the same key; the step is small so the axis keeps full precision.
    code = pd.factorize(both["h"])[0].astype(float)
    step = 2.0 * tolerance_m + 1.0
    px, py = both["px"].to_numpy(), both["py"].to_numpy()
    tree = cKDTree(np.column_stack([px, py, code * step]))
    pairs = tree.query_pairs(tolerance_m * (1 + 1e-9) + 1e-9, output_type="ndarray")
    if not len(pairs):
        return new_state, DuplicateResult(dup, kept, dist, used, conflict)
    a, b = pairs.min(axis=1), pairs.max(axis=1)  # a is the earlier row
    keep = (b >= len(prev)) & (code[a] == code[b])
    a, b = a[keep], b[keep]
    d = np.hypot(px[a] - px[b], py[a] - py[b])
    ok = d <= tolerance_m
    rid, aid = both["rid"].to_numpy(), both["aid"].to_numpy()
    ok &= ~_differ(aid[a], aid[b])
    if record_ids_distinct:
        ok &= ~_differ(rid[a], rid[b])
    a, b, d = a[ok], b[ok], d[ok]
    cx, cy = both["cx"].to_numpy(), both["cy"].to_numpy()
    du = np.hypot(cx[a] - cx[b], cy[a] - cy[b])
    near = np.ones(len(a), dtype=bool)
    if max_used_distance_m is not None:
        near = ~(du > max_used_distance_m)
    ib = both["i"].to_numpy()
    conflict[ib[b[~near]]] = True
    m = pd.DataFrame({"a": a[near], "b": b[near], "d": d[near], "du": du[near]})
    first = m.sort_values(["b", "a"], kind="stable").drop_duplicates("b")
    rows = ib[first["b"].to_numpy()]
    dup[rows] = True
    conflict[rows] = False
    kept[rows] = both["row"].to_numpy()[first["a"].to_numpy()]
    dist[rows] = first["d"].to_numpy()
    used[rows] = first["du"].to_numpy()
    return new_state, DuplicateResult(dup, kept, dist, used, conflict)
