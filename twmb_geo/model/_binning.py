"""Histogram boosting's bin thresholds from one sort of each feature, not an argsort.

scikit-learn's ``_BinMapper`` finds each feature's thresholds with an ``argsort`` (to carry
sample weights along) followed by ``np.unique``. Without weights, which is how the
boosters here bin (:class:`~twmb_geo.model.estimators._QuantileBins`), a plain sort and a
mask of value changes give the same distinct values and the same percentiles: 0.03 s ->
0.001 s per 200,000 rows of a count feature, most of a booster's binning. The thresholds
are equal to scikit-learn's (checked by the tests against its own mapper); categorical or
weighted binning is left to scikit-learn.

:func:`binned_raw_predict` walks a fitted booster's trees on the binned rows (one byte per
value) instead of the float rows, as scikit-learn does for its own training rows: a value
goes left of a split when its bin is at most the split's bin, which is when the value is at
most the split's threshold, so the sums are the same bits. 660,000 rows of 40 features
through 100 trees: 4.1 s -> 2.8 s (binning 1.4 s of it), one core.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from sklearn.ensemble._hist_gradient_boosting.binning import (
    _BinMapper,
    _find_binning_thresholds,
)
from sklearn.ensemble._hist_gradient_boosting.common import ALMOST_INF, X_DTYPE
from sklearn.utils import check_array, check_random_state
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads as _n_threads

__all__ = [
    "SortedBinMapper",
    "binned_raw_predict",
    "plain_mapper",
    "sorted_mapper",
    "sorted_thresholds",
]


def sorted_thresholds(col: NDArray[np.float64], max_bins: int) -> NDArray[np.float64]:
    """scikit-learn's unweighted ``_find_binning_thresholds`` of one feature, from a sort."""
    col = np.sort(col[~np.isnan(col)])
    if col.size < 2:
        return np.asarray(_find_binning_thresholds(col, max_bins), dtype=X_DTYPE)
    change = np.empty(col.size, dtype=bool)
    change[0] = True
    np.not_equal(col[1:], col[:-1], out=change[1:])
    distinct = col[change].astype(X_DTYPE)
    if distinct.size == 1:
        return np.asarray([])
    if distinct.size <= max_bins:
        thresholds = sliding_window_view(distinct, 2).mean(axis=1)
    else:
        percentiles = np.linspace(0, 100, num=max_bins + 1)[1:-1]
        thresholds = np.percentile(col, percentiles, method="averaged_inverted_cdf")
    unique = np.unique(thresholds)
    if unique.shape[0] != thresholds.shape[0]:
        thresholds = unique
    np.clip(thresholds, a_min=None, a_max=ALMOST_INF, out=thresholds)
    return thresholds


class SortedBinMapper(_BinMapper):
    """scikit-learn's bin mapper with :func:`sorted_thresholds` for numeric, unweighted data."""

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> SortedBinMapper:
        """The thresholds of every feature (scikit-learn's own fit when weighted or categorical)."""
        if (
            sample_weight is not None
            or self.is_categorical is not None
            or self.known_categories is not None
            or not 3 <= self.n_bins <= 256
        ):
            return super().fit(X, y, sample_weight)
        X = check_array(X, dtype=[X_DTYPE], ensure_all_finite=False)
        rng = check_random_state(self.random_state)
        if self.subsample is not None and X.shape[0] > self.subsample:
            # scikit-learn's own draw (with replacement), so the rows sampled are the same
            X = X.take(rng.choice(X.shape[0], self.subsample, p=None, replace=True), axis=0)
        n_features = X.shape[1]
        self.is_categorical_ = np.zeros(n_features, dtype=np.uint8)
        self.missing_values_bin_idx_ = self.n_bins - 1
        self.bin_thresholds_ = [
            sorted_thresholds(X[:, j], self.n_bins - 1) for j in range(n_features)
        ]
        self.n_bins_non_missing_ = np.array(
            [t.shape[0] + 1 for t in self.bin_thresholds_], dtype=np.uint32
        )
        return self


def sorted_mapper(mapper: Any) -> Any:
    """``mapper`` as a :class:`SortedBinMapper` with the same parameters, when it is
    scikit-learn's plain ``_BinMapper`` (anything else is returned as it is)."""
    if type(mapper) is not _BinMapper:
        return mapper
    return SortedBinMapper(**mapper.get_params())


def plain_mapper(mapper: Any) -> Any:
    """A fitted :class:`SortedBinMapper` as scikit-learn's ``_BinMapper`` with the same state
    (what a fitted booster keeps and a saved model holds); anything else as it is."""
    if type(mapper) is not SortedBinMapper:
        return mapper
    plain = _BinMapper.__new__(_BinMapper)
    plain.__dict__.update(mapper.__dict__)
    return plain


def binned_raw_predict(model: Any, X: Any, n_threads: int | None) -> NDArray[np.float64] | None:
    """The raw predictions of a fitted histogram booster ``model`` (its ``_raw_predict``),
    its trees walked on the binned rows; ``None`` when the booster has categorical
    features or a preprocessor, or its trees are read-only (loaded from a memory map,
    which scikit-learn's binned walk cannot read): its own path applies then."""
    if getattr(model, "_preprocessor", None) is not None or model.is_categorical_ is not None:
        return None
    if not all(tree.nodes.flags.writeable for trees in model._predictors for tree in trees):
        return None
    X = model._preprocess_X(X, reset=False)
    # C order: a tree reads one row's bytes at a time
    binned = np.ascontiguousarray(model._bin_mapper.transform(X))
    raw = np.zeros(
        (X.shape[0], model.n_trees_per_iteration_),
        dtype=model._baseline_prediction.dtype,
        order="F",
    )
    raw += model._baseline_prediction
    model._predict_iterations(binned, model._predictors, raw, True, _n_threads(n_threads))
    return raw
