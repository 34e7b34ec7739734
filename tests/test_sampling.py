"""Stratified samples of units for training at scale (issue 16): sizes, shares, probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twmb_geo.model.sampling import sample_units, unit_strata


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    sizes=st.lists(st.integers(1, 300), min_size=1, max_size=30),
    share=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**31),
)
def test_sample_has_its_size_and_every_stratum_its_share(sizes, share, seed) -> None:
    strata = np.repeat(np.arange(len(sizes)), sizes)
    np.random.default_rng(seed).shuffle(strata)
    n = max(1, int(share * len(strata)))
    keep = sample_units(strata, n, seed)
    assert keep.sum() == min(n, len(strata))
    got = pd.Series(keep).groupby(strata).sum().to_numpy()
    want = np.asarray(sizes) * n / len(strata)
    assert np.all(np.abs(got - want) < 1.0 + 1e-9), (got, want)


def test_every_unit_is_equally_likely() -> None:
    """Over 400 seeds each stratum's units are kept at the sampling rate (no unit or stratum
    favoured, so metrics on the sample estimate the city's without weights)."""
    strata = np.repeat([0, 1, 2, 3], [500, 50, 7, 143])
    n = 210  # f = 0.3
    freq = np.mean([sample_units(strata, n, seed) for seed in range(400)], axis=0)
    assert freq.mean() == pytest.approx(0.3)
    by_stratum = pd.Series(freq).groupby(strata).mean()
    assert np.allclose(by_stratum, 0.3, atol=0.01), by_stratum
    assert np.abs(freq - 0.3).max() < 0.12  # per unit: binomial(400, 0.3) noise only


def test_small_samples_and_bad_sizes() -> None:
    strata = np.zeros(10, dtype=np.int64)
    assert sample_units(strata, 10, 1).all() and sample_units(strata, 99, 1).all()
    assert sample_units(strata, 1, 1).sum() == 1
    with pytest.raises(ValueError, match="at least one unit"):
        sample_units(strata, 0, 1)
    a, b = sample_units(np.arange(1000) % 7, 100, 5), sample_units(np.arange(1000) % 7, 100, 5)
    assert (a == b).all()  # seeded


def test_strata_are_blocks_then_break_history() -> None:
    lon = np.array([-79.40, -79.40, -79.40, 120.0, np.nan])
    lat = np.array([43.70, 43.70, 43.70, 30.0, np.nan])
    broke = np.array([True, False, True, False, False])
    s = unit_strata(lon, lat, broke, 6)
    assert s[0] == s[2] != s[1] and s[1] // 2 == s[0] // 2
    assert s[3] // 2 != s[0] // 2 and s[4] // 2 == 0  # no location: block 0, first
