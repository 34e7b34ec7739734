"""History features: hand-checked values and the no-leakage property."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from twmb_geo.features.history import HISTORY_FEATURES, history_features, rolling_sum


def test_hand_checked_unit() -> None:
    c = np.array([[1, 0, 2, 0, 0, 1, 0]], dtype=float)
    f = history_features(c, prior_total=np.array([4.0]), tau=1.0)
    assert f["breaks"].tolist() == c.tolist()
    assert f["breaks_last3"][0].tolist() == [1, 1, 3, 2, 2, 1, 1]
    assert f["breaks_last5"][0].tolist() == [1, 1, 3, 3, 3, 3, 3]
    assert f["breaks_to_date"][0].tolist() == [5, 5, 7, 7, 7, 8, 8]
    ysl = f["years_since_last"][0]
    assert ysl.tolist() == [0, 1, 0, 1, 2, 0, 1]
    e = np.exp(-1.0)
    assert np.allclose(f["decayed"][0, :3], [1, e, e * e + 2])
    assert np.isnan(f["trend5"][0, :4]).all()
    # slope of [1, 0, 2, 0, 0] against -2..2 = (-2 + 0 + 0 + 0 + 0) / 10
    assert f["trend5"][0, 4] == -0.2


def test_no_break_yet_gives_nan_years_since_last() -> None:
    f = history_features(np.zeros((2, 4)))
    assert np.isnan(f["years_since_last"]).all()
    assert (f["decayed"] == 0).all()


def test_rolling_sum_matches_loop() -> None:
    rng = np.random.default_rng(1)
    c = rng.poisson(0.7, size=(20, 15)).astype(float)
    for w in (1, 3, 5, 10, 20):
        loop = np.array(
            [[c[i, max(0, j - w + 1) : j + 1].sum() for j in range(15)] for i in range(20)]
        )
        assert np.array_equal(rolling_sum(c, w), loop)


@settings(max_examples=60, deadline=None)
@given(
    counts=arrays(
        np.int64, st.tuples(st.integers(1, 6), st.integers(2, 14)), elements=st.integers(0, 5)
    ),
    cut=st.integers(0, 13),
    noise=st.integers(0, 2**31 - 1),
)
def test_features_of_year_t_ignore_the_future(counts, cut, noise) -> None:
    """Perturb every year after t: no feature of years <= t changes."""
    t = min(cut, counts.shape[1] - 1)
    base = history_features(counts.astype(float))
    changed = counts.astype(float).copy()
    rng = np.random.default_rng(noise)
    changed[:, t + 1 :] = rng.integers(0, 9, size=changed[:, t + 1 :].shape)
    after = history_features(changed)
    for name in HISTORY_FEATURES:
        np.testing.assert_array_equal(base[name][:, : t + 1], after[name][:, : t + 1], err_msg=name)
