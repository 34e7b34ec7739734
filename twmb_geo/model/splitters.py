"""Cross-validators for the unit-year panel: spatial blocks, forward in time, both, random.

All splitters follow scikit-learn's protocol (``split(X, y=None, groups=None)`` yields
``(train_idx, test_idx)`` integer arrays of row positions; ``get_n_splits``); they work
with :func:`sklearn.model_selection.cross_val_score` and ``GridSearchCV``. Every input
problem raises a :class:`ValueError` (:class:`SplitInputError` or
:class:`SplitParameterError`, also :class:`~twmb_geo.errors.InputDataError` /
:class:`~twmb_geo.errors.ConfigError`) naming what to fix.

The rows' cells and years come from ``groups`` when it is given, else from the columns
of ``X``:

* ``groups`` as a 1-D array-like of one value per row: the H3 cells for
  :class:`SpatialBlockKFold` and :class:`SpatioTemporalSplit` (whose years still come
  from ``X``), the years for :class:`ForwardSplit`, and units kept whole across folds
  for :class:`RandomKFold`;
* ``groups`` as a DataFrame: its ``cell_col`` / ``year_col`` columns;
* without ``groups``, ``X`` is a :class:`pandas.DataFrame` of panel rows
  (``schemas/features/panel.json``) carrying the columns each splitter needs:

* spatial splitters: ``cell_col`` (default ``"cell"``), the H3 cell of the unit at the
  unit resolution, as hex string or integer; all rows must share one resolution. For
  H3-cell units the unit id *is* the cell: pass ``cell_col="unit_id"``. For pipes and
  streets join the ``cell`` column of their unit table. When ``X`` has a ``unit_id``
  column (with ``unit_type`` if present) every unit must have a single cell, so all of a
  unit's rows (all its years) fall in the same block and fold.
* temporal splitters: ``year_col`` (default ``"year"``), integer year ``t``.

Target convention (panel): the row of year ``t`` holds features from data ``<= t`` and
targets (``target_any``, ``target_count``) for year ``t + 1``. "Test on ``T``" means the
rows with ``year == T`` (features up to ``T``, predicting ``T + 1``); training rows have
``year <= T - 1 - gap``, so their targets come from years ``<= T - gap``: no training
target comes from the test's target year ``T + 1`` (nor, with ``gap >= 1``, from ``T``).

Spatial blocks are the H3 parents (at ``parent_res``) of the unit cells. Blocks are
assigned to folds once per call (stratified on ``y > 0`` with
:class:`~sklearn.model_selection.StratifiedGroupKFold` when asked and possible, else
shuffled :class:`~sklearn.model_selection.GroupKFold`), seeded by ``random_state``. A
buffer then drops from each training set the rows whose cell lies within
``buffer_rings`` H3 rings (at the unit resolution) of a cell of the test rows, so
near-neighbours of test units do not leak spatially autocorrelated signal.

:class:`RandomKFold` ignores space and time; it overstates skill and is for comparison.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
from sklearn.model_selection import (
    BaseCrossValidator,
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
)
from sklearn.utils import check_random_state

from ..spatial.hexgrid import cell_parents, cells_from_str, check_resolution
from ._splitinput import (
    SplitInputError,
    SplitParameterError,
    _check_col,
    _check_int,
    _check_seed,
    _check_years,
    _n_rows,
    _source,
    _y_array,
    _years,
)

__all__ = [
    "ForwardSplit",
    "RandomKFold",
    "SpatialBlockKFold",
    "SpatioTemporalSplit",
    "SplitInputError",
    "SplitParameterError",
]

_Split = tuple[np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- spatial core


class _Cells:
    """Unit-resolution cells of the rows (unique + inverse) and their spatial blocks."""

    def __init__(self, X: pd.DataFrame, cell_col: str, parent_res: int) -> None:
        col = X[cell_col]
        if col.dtype.kind in "iu":  # integer cells
            uniq_int, inv = np.unique(col.to_numpy().astype(np.uint64), return_inverse=True)
            ucells = cells_from_str(uniq_int.astype(object))
        else:  # hex strings; missing -> "" -> 0
            uniq_raw, inv = _unique_strings(col)
            ucells = cells_from_str(uniq_raw.astype(object))
        missing = ucells == 0
        if missing.any():
            n = int(missing[inv].sum())
            raise SplitInputError(f"column {cell_col!r} has {n} row(s) without an H3 cell")
        res = {h3i.get_resolution(int(c)) for c in ucells.tolist()}
        if len(res) > 1:
            raise SplitInputError(
                f"column {cell_col!r} mixes H3 resolutions {sorted(res)}; the buffer needs "
                "one unit resolution"
            )
        self.res = res.pop() if res else 0
        if parent_res > self.res:
            raise SplitParameterError(
                f"parent_res must be <= the unit resolution {self.res} of column "
                f"{cell_col!r}; got {parent_res}"
            )
        self.ucells = ucells  # unique cells (uint64)
        self.inv = inv.astype(np.int64)  # row -> position in ucells
        # every unique cell has a row, so the blocks of the cells are those of the rows
        _, cell_block = np.unique(cell_parents(ucells, parent_res), return_inverse=True)
        self.block = cell_block[self.inv]  # row -> block id
        self.n_blocks = int(self.block.max()) + 1 if self.block.size else 0
        self._check_units(X, cell_col)

    def _check_units(self, X: pd.DataFrame, cell_col: str) -> None:
        if "unit_id" not in X.columns or cell_col == "unit_id":
            return
        keys = [c for c in ("unit_type", "unit_id") if c in X.columns]
        unit = np.zeros(len(X), dtype=np.int64)
        for k in keys:
            codes, uniq = pd.factorize(X[k], use_na_sentinel=False)
            unit = unit * len(uniq) + codes
        unit = pd.factorize(unit)[0]
        first = np.empty(int(unit.max()) + 1 if unit.size else 0, dtype=np.int64)
        first[unit] = self.inv  # the cell of one row of each unit (any: all must agree)
        if np.array_equal(first[unit], self.inv):
            return
        n_cells = (
            pd.DataFrame({"u": self.inv})
            .groupby([X[k].to_numpy() for k in keys], sort=False)["u"]
            .nunique()
        )
        bad = n_cells[n_cells > 1]
        if len(bad):
            raise SplitInputError(
                f"{len(bad)} unit(s) have more than one {cell_col!r} across years; a unit "
                "needs one cell so its rows stay in one fold",
                [str(k) for k in bad.index[:20]],
            )

    def buffered(self, test: np.ndarray, train: np.ndarray, rings: int) -> np.ndarray:
        """Mask of ``train`` rows within ``rings`` of a cell of the ``test`` rows."""
        if rings == 0 or not test.any() or not train.any():
            return np.zeros(train.size, dtype=bool)
        tcells = self.ucells[np.unique(self.inv[test])].tolist()
        disk = np.unique(
            np.fromiter((c for t in tcells for c in h3i.grid_disk(int(t), rings)), dtype=np.uint64)
        )
        near = np.isin(self.ucells, disk)
        return train & near[self.inv]


def _unique_strings(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` of a column as strings (missing -> ""),
    from a hash of the column and a sort of its distinct values only."""
    codes, uniq = pd.factorize(col, use_na_sentinel=True)
    strings = np.asarray(uniq, dtype=object).astype(str)
    if (codes < 0).any():
        strings = np.append(strings, "")
        codes = np.where(codes < 0, strings.size - 1, codes)
    sorted_strings, position = np.unique(strings, return_inverse=True)
    return sorted_strings, position[codes]


def _stratified_group_folds(
    pos: np.ndarray, group: np.ndarray, n_splits: int, seed: int | None
) -> np.ndarray:
    """The fold of each row under ``StratifiedGroupKFold(n_splits, shuffle=True,
    random_state=seed).split(X, pos, group)``, for ``group`` codes ``0..g-1`` and both
    classes in ``pos``: the same shuffle and greedy assignment of the groups, with the
    class counts per group and the rows of each fold found by arrays instead of a Python
    loop over the rows (seconds for millions of rows)."""
    sgkf = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
    rng = check_random_state(seed)
    cls = pos.astype(np.int64)
    y_cnt = np.bincount(cls, minlength=2)
    n_groups = int(group.max()) + 1
    per_group = np.bincount(group * 2 + cls, minlength=2 * n_groups).reshape(n_groups, 2)
    perm = np.arange(n_groups)
    rng.shuffle(perm)
    per_group = per_group[perm].astype(np.float64)
    inv_perm = np.empty_like(perm)
    inv_perm[perm] = np.arange(perm.size)
    per_fold = np.zeros((n_splits, 2))
    fold_of = np.empty(n_groups, dtype=np.int64)
    for g in np.argsort(-np.std(per_group, axis=1), kind="stable"):
        best = sgkf._find_best_fold(per_fold, y_cnt, per_group[g])
        per_fold[best] += per_group[g]
        fold_of[g] = best
    return fold_of[inv_perm[group]]


def _assign_folds(
    cells: _Cells, y: np.ndarray | None, n_splits: int, stratify: bool, seed: int | None
) -> np.ndarray:
    """Fold of each row (blocks kept whole), reproducible for a given seed."""
    if cells.n_blocks < n_splits:
        raise SplitInputError(
            f"only {cells.n_blocks} spatial block(s) for n_splits={n_splits}; use a finer "
            "parent_res or fewer folds"
        )
    n = cells.block.size
    fold = np.full(n, -1, dtype=np.int64)
    dummy = np.zeros((n, 1))
    if stratify and y is not None:
        pos = y > 0
        counts = np.bincount(pos.astype(np.int64), minlength=2)
        if counts.min() >= n_splits:
            fold = _stratified_group_folds(pos, cells.block, n_splits, seed)
            if np.bincount(fold[fold >= 0], minlength=n_splits).min() > 0:
                return fold
            fold[:] = -1  # an empty fold (rare): fall back to plain group folds
    gkf = GroupKFold(n_splits, shuffle=True, random_state=seed)
    for k, (_, te) in enumerate(gkf.split(dummy, groups=cells.block)):
        fold[te] = k
    return fold


class _SpatialMixin:
    """Shared parameters and per-call preparation of the spatial splitters."""

    n_splits: int
    parent_res: int
    cell_col: str
    buffer_rings: int
    stratify: bool
    random_state: int | None

    def _init_spatial(
        self,
        n_splits: int,
        parent_res: int,
        cell_col: str,
        buffer_rings: int,
        stratify: bool,
        random_state: int | None,
    ) -> None:
        self.n_splits = _check_int(n_splits, "n_splits", 2)
        self.parent_res = check_resolution(parent_res, "parent_res")
        self.cell_col = _check_col(cell_col, "cell_col")
        self.buffer_rings = _check_int(buffer_rings, "buffer_rings", 0)
        if not isinstance(stratify, bool | np.bool_):
            raise SplitParameterError(f"stratify must be True or False; got {stratify!r}")
        self.stratify = bool(stratify)
        self.random_state = _check_seed(random_state)

    def _folds(self, X: pd.DataFrame, y: np.ndarray | None) -> tuple[_Cells, np.ndarray]:
        cells = _Cells(X, self.cell_col, self.parent_res)
        return cells, _assign_folds(cells, y, self.n_splits, self.stratify, self.random_state)


def _report(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- splitters


class SpatialBlockKFold(_SpatialMixin, BaseCrossValidator):
    """K-fold over H3 parent blocks with a ring buffer around each test fold.

    Parameters
    ----------
    n_splits : int
        Number of folds (>= 2).
    parent_res : int
        H3 resolution of the blocks (parents of the unit cells); must not exceed the unit
        resolution. Res 6 (~36 km2) is a few km across, beyond most break clustering.
    cell_col : str
        Column of ``X`` with the unit's H3 cell (hex string or integer) at the unit
        resolution; ``"unit_id"`` for H3-cell units.
    buffer_rings : int
        Training rows whose cell is within this many H3 rings (unit resolution) of a test
        row's cell are dropped from that fold's training set; 0 disables the buffer.
    stratify : bool
        Balance the share of rows with ``y > 0`` across folds
        (``StratifiedGroupKFold``) when ``y`` is given and each class has at least
        ``n_splits`` rows; otherwise shuffled ``GroupKFold``.
    random_state : int or None
        Seed of the block-to-fold assignment (``None``: not reproducible). With
        stratification scikit-learn only uses it to break ties between blocks, so
        different seeds often give the same folds.

    Notes
    -----
    Every row is in exactly one test fold; blocks (hence units) are never split between
    train and test. Training sets are smaller than ``n - n_test`` by the buffer; see
    :meth:`split_report`.
    """

    def __init__(
        self,
        n_splits: int = 5,
        parent_res: int = 6,
        cell_col: str = "cell",
        buffer_rings: int = 1,
        stratify: bool = True,
        random_state: int | None = 42,
    ) -> None:
        self._init_spatial(n_splits, parent_res, cell_col, buffer_rings, stratify, random_state)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of folds."""
        return self.n_splits

    def _iter(
        self, X: Any, y: Any, groups: Any
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray, int]]:
        X = _source(X, groups, [self.cell_col], type(self).__name__, self.cell_col)
        yv = _y_array(y, len(X))
        cells, fold = self._folds(X, yv)
        for k in range(self.n_splits):
            test = fold == k
            train = ~test
            drop = cells.buffered(test, train, self.buffer_rings)
            yield k, np.flatnonzero(train & ~drop), np.flatnonzero(test), int(drop.sum())

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[_Split]:
        """Yield ``(train_idx, test_idx)`` row positions for each fold."""
        for _, tr, te, _ in self._iter(X, y, groups):
            yield tr, te

    def split_report(self, X: Any, y: Any = None, groups: Any = None) -> pd.DataFrame:
        """One row per fold: fold, n_train, n_test, n_dropped_by_buffer, test_positive_rate.

        ``test_positive_rate`` is the share of test rows with ``y > 0`` (NaN without y).
        """
        yv = None if y is None else np.asarray(y, dtype=float).ravel()
        rows = []
        for k, tr, te, dropped in self._iter(X, y, groups):
            rate = float(np.mean(yv[te] > 0)) if yv is not None and te.size else np.nan
            rows.append(
                {
                    "fold": k,
                    "n_train": tr.size,
                    "n_test": te.size,
                    "n_dropped_by_buffer": dropped,
                    "test_positive_rate": rate,
                }
            )
        return _report(rows)


class ForwardSplit(BaseCrossValidator):
    """Walk-forward split: train on earlier years, test on one year ``T`` at a time.

    Parameters
    ----------
    test_years : list of int or None
        Test years ``T`` (each must be present in ``X``). ``None``: every panel year with
        at least ``min_train_years`` distinct panel years ``<= T - 1 - gap``.
    min_train_years : int
        Minimum number of training years for the default ``test_years`` (>= 1).
    year_col : str
        Integer year column of ``X``.
    gap : int
        Extra years left out between train and test (>= 0).

    Notes
    -----
    Panel rows of year ``t`` carry the target of ``t + 1``. Test = rows with
    ``year == T`` (predicting ``T + 1``); train = rows with ``year <= T - 1 - gap``, whose
    targets lie in years ``<= T - gap``. No training target is from ``T + 1``, and no
    training features are from ``T`` or later.
    """

    def __init__(
        self,
        test_years: list[int] | None = None,
        min_train_years: int = 5,
        year_col: str = "year",
        gap: int = 0,
    ) -> None:
        self.test_years = _check_years(test_years)
        self.min_train_years = _check_int(min_train_years, "min_train_years", 1)
        self.year_col = _check_col(year_col, "year_col")
        self.gap = _check_int(gap, "gap", 0)

    def _resolve_years(self, years: np.ndarray) -> list[int]:
        present = np.unique(years)
        if self.test_years is None:
            out = [
                int(T)
                for T in present
                if np.count_nonzero(present <= T - 1 - self.gap) >= self.min_train_years
            ]
            if not out:
                raise SplitInputError(
                    f"no year of {self.year_col!r} (years {present.min() if present.size else '-'}"
                    f"..{present.max() if present.size else '-'}) has min_train_years="
                    f"{self.min_train_years} earlier training years with gap={self.gap}"
                )
            return out
        absent = [T for T in self.test_years if T not in set(present.tolist())]
        if absent:
            raise SplitInputError(f"test year(s) {absent} absent from column {self.year_col!r}")
        empty = [T for T in self.test_years if not (present <= T - 1 - self.gap).any()]
        if empty:
            raise SplitInputError(
                f"test year(s) {empty} have no training rows (year <= T - 1 - gap, gap={self.gap})"
            )
        return list(self.test_years)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of test years (needs ``X`` when ``test_years`` is None)."""
        if self.test_years is not None:
            return len(self.test_years)
        if X is None and groups is None:
            raise SplitParameterError(
                "ForwardSplit.get_n_splits needs X (or groups) when test_years is None"
            )
        return len(self._resolve_years(self._row_years(X, groups)))

    def _row_years(self, X: Any, groups: Any) -> np.ndarray:
        if X is None:
            X = np.zeros(len(groups))
        src = _source(X, groups, [self.year_col], type(self).__name__, self.year_col)
        return _years(src, self.year_col)

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[_Split]:
        """Yield ``(train_idx, test_idx)`` for each test year in ascending order."""
        years = self._row_years(X, groups)
        for T in self._resolve_years(years):
            yield np.flatnonzero(years <= T - 1 - self.gap), np.flatnonzero(years == T)


class SpatioTemporalSplit(_SpatialMixin, ForwardSplit):
    """Forward in time and across spatial blocks: one split per (test year, block fold).

    For test year ``T`` and spatial fold ``k``: test = rows with ``year == T`` in fold
    ``k``; train = rows with ``year <= T - 1 - gap`` outside fold ``k`` and outside the
    ``buffer_rings`` buffer around the test rows' cells. Blocks are assigned to folds once
    over all rows (stratified on ``y > 0`` of all rows), so a unit keeps its fold in every
    year. Splits are ordered by year, then fold. Parameters as in :class:`ForwardSplit`
    and :class:`SpatialBlockKFold`.

    Raises
    ------
    InputDataError
        From ``split`` if a (year, fold) has no test rows.
    """

    def __init__(
        self,
        test_years: list[int] | None = None,
        n_splits: int = 5,
        parent_res: int = 6,
        cell_col: str = "cell",
        buffer_rings: int = 1,
        stratify: bool = True,
        random_state: int | None = 42,
        min_train_years: int = 5,
        year_col: str = "year",
        gap: int = 0,
    ) -> None:
        ForwardSplit.__init__(self, test_years, min_train_years, year_col, gap)
        self._init_spatial(n_splits, parent_res, cell_col, buffer_rings, stratify, random_state)

    def _row_years(self, X: Any, groups: Any) -> np.ndarray:
        who = type(self).__name__
        src = _source(X, groups, [self.year_col, self.cell_col], who, self.cell_col)
        return _years(src, self.year_col)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of test years times ``n_splits``."""
        return ForwardSplit.get_n_splits(self, X, y, groups) * self.n_splits

    def _iter(
        self, X: Any, y: Any, groups: Any
    ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, int]]:
        who = type(self).__name__
        X = _source(X, groups, [self.year_col, self.cell_col], who, self.cell_col)
        years = _years(X, self.year_col)
        test_years = self._resolve_years(years)
        cells, fold = self._folds(X, _y_array(y, len(X)))
        for T in test_years:
            past = years <= T - 1 - self.gap
            now = years == T
            for k in range(self.n_splits):
                test = now & (fold == k)
                if not test.any():
                    raise SplitInputError(
                        f"spatial fold {k} has no rows in test year {T}; use fewer folds or "
                        "a coarser parent_res"
                    )
                train = past & (fold != k)
                drop = cells.buffered(test, train, self.buffer_rings)
                yield T, k, np.flatnonzero(train & ~drop), np.flatnonzero(test), int(drop.sum())

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[_Split]:
        """Yield ``(train_idx, test_idx)`` per (test year, fold)."""
        for _, _, tr, te, _ in self._iter(X, y, groups):
            yield tr, te

    def split_report(self, X: Any, y: Any = None, groups: Any = None) -> pd.DataFrame:
        """One row per split: year, fold, n_train, n_test, n_dropped_by_buffer, test_positive_rate."""
        yv = None if y is None else np.asarray(y, dtype=float).ravel()
        rows = []
        for T, k, tr, te, dropped in self._iter(X, y, groups):
            rate = float(np.mean(yv[te] > 0)) if yv is not None else np.nan
            rows.append(
                {
                    "year": T,
                    "fold": k,
                    "n_train": tr.size,
                    "n_test": te.size,
                    "n_dropped_by_buffer": dropped,
                    "test_positive_rate": rate,
                }
            )
        return _report(rows)


class RandomKFold(BaseCrossValidator):
    """Shuffled K-fold over rows, ignoring space, time and units.

    Overstates skill (neighbouring cells, and a unit's other years, leak into training);
    for comparison with the spatial and temporal splitters only. With ``groups`` (e.g.
    the unit ids) the rows of a group stay in one fold (shuffled ``GroupKFold``).
    """

    def __init__(self, n_splits: int = 5, random_state: int | None = 42) -> None:
        self.n_splits = _check_int(n_splits, "n_splits", 2)
        self.random_state = _check_seed(random_state)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of folds."""
        return self.n_splits

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[_Split]:
        """Yield ``(train_idx, test_idx)`` for each fold."""
        n = _n_rows(X)
        if n < self.n_splits:
            raise SplitInputError(f"X has {n} rows, fewer than n_splits={self.n_splits}")
        dummy = np.zeros((n, 1))
        if groups is None:
            kf = KFold(self.n_splits, shuffle=True, random_state=self.random_state)
            yield from kf.split(dummy)
            return
        g = _source(X, groups, ["group"], type(self).__name__, "group")["group"]
        if g.isna().any():
            raise SplitInputError(f"groups is null in {int(g.isna().sum())} row(s)")
        n_groups = g.nunique()
        if n_groups < self.n_splits:
            raise SplitInputError(
                f"groups has {n_groups} groups, fewer than n_splits={self.n_splits}"
            )
        gkf = GroupKFold(self.n_splits, shuffle=True, random_state=self.random_state)
        yield from gkf.split(dummy, groups=g.to_numpy())
