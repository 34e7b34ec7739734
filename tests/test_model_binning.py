"""The boosters' bin thresholds from a sort equal scikit-learn's own (model/_binning.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.ensemble._hist_gradient_boosting.binning import (
    _BinMapper,
    _find_binning_thresholds,
)

from twmb_geo.model._binning import (
    SortedBinMapper,
    binned_raw_predict,
    sorted_mapper,
    sorted_thresholds,
)
from twmb_geo.model.estimators import BreakCountRegressor, _BoostedClassifier, _Booster

_VALUES = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, 2.0, 3.0, np.nan, np.inf, -np.inf, 1e300, -5.5]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    col=arrays(np.float64, st.integers(0, 400), elements=_VALUES),
    max_bins=st.sampled_from([2, 3, 5, 255]),
)
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf - inf, both sides
def test_thresholds_equal_scikit_learns(col: np.ndarray, max_bins: int) -> None:
    try:
        want = _find_binning_thresholds(col.copy(), max_bins)
    except ValueError as exc:  # scikit-learn refuses an empty or all-missing column
        with pytest.raises(type(exc)):
            sorted_thresholds(col.copy(), max_bins)
        return
    got = sorted_thresholds(col.copy(), max_bins)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype


@pytest.mark.parametrize("rows", [50, 1_000])
def test_mapper_equals_scikit_learns_with_its_subsample(rows: int) -> None:
    rng = np.random.default_rng(3)
    X = np.column_stack(
        [
            rng.poisson(0.3, rows).astype(float),  # counts: few distinct values
            rng.normal(size=rows),  # continuous: percentiles
            np.where(rng.random(rows) < 0.2, np.nan, rng.integers(0, 400, rows)),
            np.full(rows, 7.0),  # constant
        ]
    )
    for subsample in (None, 300):
        ref = _BinMapper(n_bins=256, subsample=subsample, random_state=11).fit(X)
        got = SortedBinMapper(n_bins=256, subsample=subsample, random_state=11).fit(X)
        assert len(got.bin_thresholds_) == len(ref.bin_thresholds_)
        for a, b in zip(got.bin_thresholds_, ref.bin_thresholds_, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(got.n_bins_non_missing_, ref.n_bins_non_missing_)
        np.testing.assert_array_equal(got.is_categorical_, ref.is_categorical_)
        assert got.missing_values_bin_idx_ == ref.missing_values_bin_idx_
        np.testing.assert_array_equal(got.transform(X), ref.transform(X))


def test_weighted_or_categorical_binning_is_scikit_learns() -> None:
    X = np.arange(40, dtype=float).reshape(20, 2) % 5
    w = np.linspace(0.5, 2.0, 20)
    ref = _BinMapper(n_bins=10, random_state=0).fit(X, sample_weight=w)
    got = SortedBinMapper(n_bins=10, random_state=0).fit(X, sample_weight=w)
    for a, b in zip(got.bin_thresholds_, ref.bin_thresholds_, strict=True):
        np.testing.assert_array_equal(a, b)
    cats = [np.arange(5, dtype=float), None]
    cat = SortedBinMapper(
        n_bins=10, is_categorical=np.array([1, 0], dtype=np.uint8), known_categories=cats
    ).fit(X)
    np.testing.assert_array_equal(cat.bin_thresholds_[0], np.arange(5, dtype=float))
    assert sorted_mapper(cat) is cat


def test_booster_bins_with_the_sorted_mapper_and_keeps_sklearns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.poisson(0.5, 3_000), rng.normal(size=3_000)]).astype(float)
    y = rng.poisson(np.exp(0.3 * X[:, 0] - 1.0)).astype(float)
    seen: list[type] = []
    real = SortedBinMapper.fit

    def spy(self: SortedBinMapper, *args: object, **kwargs: object) -> SortedBinMapper:
        seen.append(type(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SortedBinMapper, "fit", spy)
    fitted = BreakCountRegressor(calibrate=False, max_iter=20).fit(X, y)
    assert seen == [SortedBinMapper]
    # the fitted booster keeps scikit-learn's own class (a saved model holds no other)
    mapper = fitted.model_._bin_mapper
    assert type(mapper) is _BinMapper
    ref = _BinMapper(**mapper.get_params()).fit(X)
    for a, b in zip(mapper.bin_thresholds_, ref.bin_thresholds_, strict=True):
        np.testing.assert_array_equal(a, b)


def _fitted_boosters() -> list[object]:
    """A Poisson booster and a classifier on counts, continuous values and missing values
    (one feature never missing in training), with few and many distinct values."""
    rng = np.random.default_rng(8)
    n = 2_000
    X = np.column_stack(
        [
            rng.poisson(0.4, n).astype(float),
            rng.normal(size=n),
            np.where(rng.random(n) < 0.3, np.nan, rng.integers(0, 9, n)),
            rng.integers(0, 600, n).astype(float),
        ]
    )
    y = rng.poisson(np.exp(0.5 * X[:, 0] + 0.3 * np.nan_to_num(X[:, 2]) / 4 - 1.2))
    w = np.where(y > 0, 1.0, 2.5)
    reg = _Booster(loss="poisson", max_iter=30, max_leaf_nodes=15, random_state=0)
    clf = _BoostedClassifier(max_iter=20, max_leaf_nodes=7, random_state=0)
    return [reg.fit(X, y, sample_weight=w), clf.fit(X, (y > 0).astype(int))]


_BOOSTERS = _fitted_boosters()


@settings(max_examples=60, derandomize=True, deadline=None)
@given(data=st.data(), rows=st.integers(1, 60))
def test_binned_predictions_are_scikit_learns_bits(data: st.DataObject, rows: int) -> None:
    """Rows drawn from every split threshold, its neighbours, missing and infinite values
    and values outside the training range walk the trees as scikit-learn's float path."""
    for model in _BOOSTERS:
        pool = [np.nan, np.inf, -np.inf, -1e9, 1e9, 0.0]
        for thr in model._bin_mapper.bin_thresholds_:
            pool += [*thr, *np.nextafter(thr, np.inf), *np.nextafter(thr, -np.inf)]
        values = st.sampled_from(pool)
        X = data.draw(arrays(np.float64, (rows, 4), elements=values))
        want = type(model).__mro__[2]._raw_predict(model, X)  # scikit-learn's own class
        got = model._raw_predict(X)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype and got.shape == want.shape


def test_predictions_walk_the_binned_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The float walk is not used (a booster with categorical features still uses it)."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the float rows were walked")

    reg, clf = _BOOSTERS
    X = np.array([[1.0, 0.2, np.nan, 300.0], [0.0, -1.0, 4.0, 12.0]])
    want = reg.predict(X), clf.predict_proba(X)
    monkeypatch.setattr(TreePredictor, "predict", refuse)
    np.testing.assert_array_equal(reg.predict(X), want[0])
    np.testing.assert_array_equal(clf.predict_proba(X), want[1])
    cat = _Booster(max_iter=5, categorical_features=[0]).fit(
        np.array([[0.0], [1.0], [2.0], [1.0]] * 10), np.arange(40) % 3
    )
    assert binned_raw_predict(cat, np.array([[1.0]]), None) is None
    with pytest.raises(AssertionError, match="float rows"):
        cat.predict(np.array([[1.0]]))
    # trees loaded from a memory map are read-only: scikit-learn's float walk reads them
    frozen = pickle.loads(pickle.dumps(reg))
    for trees in frozen._predictors:
        for tree in trees:
            tree.nodes.flags.writeable = False
    assert binned_raw_predict(frozen, X, None) is None
    monkeypatch.undo()
    np.testing.assert_array_equal(frozen.predict(X), want[0])
