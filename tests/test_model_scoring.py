"""Tests of twmb_geo.model.scoring: ranks, percentiles, tiers, contributions, drivers."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from twmb_geo.core.cluster import ClusterSpec, open_client
from twmb_geo.model import scoring
from twmb_geo.model.baselines import PastBreaksBaseline
from twmb_geo.model.champion import ChampionModel, fit_member
from twmb_geo.model.estimators import BreakCountRegressor, RiskEstimator, make_estimator
from twmb_geo.model.scoring import (
    DEFAULT_TIERS,
    assign_tiers,
    contributions,
    rank_units,
    score_units,
    top_drivers,
)

FEATURES = ["breaks_last5", "decayed", "age_mean"]
COLUMNS = [
    "unit_id",
    "risk_score",
    "probability",
    "expected_breaks",
    "rank",
    "percentile",
    "tier",
    "drivers",
]


def _panel(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Latest-year panel-like rows; next-year breaks rise with all three features."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "unit_type": "cell",
            "unit_id": [f"c{i:05d}" for i in range(n)],
            "year": 2015,
            "breaks_last5": rng.poisson(0.8, n).astype(float),
            "decayed": rng.gamma(1.0, 0.5, n),
            "age_mean": rng.uniform(10.0, 90.0, n),
        }
    )
    mu = np.exp(-2.0 + 0.5 * X["breaks_last5"] + 0.6 * X["decayed"] + 0.01 * (X["age_mean"] - 50))
    X["target_count"] = rng.poisson(mu).astype(float)
    return X


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    # HistGradientBoosting's OpenMP threads slow down sharply on a busy machine;
    # one thread keeps this module's runtime predictable (results are identical).
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return _panel()


def _fit(kind: str, panel: pd.DataFrame, **params: object) -> RiskEstimator:
    """The estimator of ``kind`` fitted on break counts (binarised for classifiers)."""
    est = make_estimator(kind, learning_rate=0.05, **params)
    return fit_member(est, panel, panel["target_count"].to_numpy(dtype=float))


@pytest.fixture(scope="module", params=["poisson", "hgb"])
def model(request: pytest.FixtureRequest, panel: pd.DataFrame) -> RiskEstimator:
    return _fit(request.param, panel, calibrate=False, max_iter=50)


# --------------------------------------------------------------------------- rank_units


def test_rank_units_example() -> None:
    rank, pct = rank_units([0.1, 0.5, 0.5, np.nan, 0.2])
    assert rank.dtype == np.int64 and pct.dtype == np.float64
    assert rank.tolist() == [4, 1, 2, 5, 3]  # tie in input order, NaN last
    np.testing.assert_allclose(pct, [20.0, 80.0, 60.0, 0.0, 40.0])


def test_rank_units_weighted_example() -> None:
    rank, pct = rank_units([3.0, 1.0, 2.0], weight=[1.0, 2.0, 7.0])
    assert rank.tolist() == [1, 3, 2]
    np.testing.assert_allclose(pct, [90.0, 0.0, 20.0])


def test_rank_units_empty_and_single() -> None:
    rank, pct = rank_units([])
    assert rank.shape == (0,) and pct.shape == (0,)
    assert rank.dtype == np.int64 and pct.dtype == np.float64
    rank, pct = rank_units([2.0], weight=[0.5])
    assert rank.tolist() == [1] and pct.tolist() == [0.0]


@pytest.mark.parametrize(
    ("score", "weight", "match"),
    [
        ([1.0, 2.0], [1.0], "weight has length 1"),
        ([1.0, 2.0], [1.0, -1.0], "weight must be non-negative"),
        ([1.0, 2.0], [1.0, np.nan], "weight must be finite"),
        ([1.0, 2.0], [1.0, np.inf], "weight must be finite"),
        ([1.0, 2.0], [0.0, 0.0], "weight is zero for every unit"),
        ([[1.0, 2.0]], None, "score must be one-dimensional"),
        (["a", "b"], None, "score must be numeric"),
    ],
)
def test_rank_units_validation(score: list, weight: list | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rank_units(score, weight)


scores = st.lists(
    st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False),
        st.sampled_from([0.0, 1.0, np.nan]),  # ties and NaN are common
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), score=scores, use_weight=st.booleans())
def test_rank_units_properties(data: st.DataObject, score: list[float], use_weight: bool) -> None:
    n = len(score)
    weight = None
    if use_weight:
        weight = data.draw(st.lists(st.floats(0.0, 100.0), min_size=n, max_size=n))
        if sum(weight) <= 0:
            weight[0] = 1.0
    rank, pct = rank_units(score, weight)
    s = np.asarray(score, dtype=float)
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=float)

    assert sorted(rank.tolist()) == list(range(1, n + 1))
    order = np.argsort(rank)
    assert np.all(np.diff(pct[order]) <= 0)  # non-increasing in rank
    assert pct[order[0]] == pct.max()
    assert pct.min() >= 0.0 and pct.max() <= 100.0
    assert pct[order[-1]] == 0.0
    # percentile = 100 × weight share of the units ranked after
    expected = np.array([100.0 * w[rank > rank[i]].sum() / w.sum() for i in range(n)])
    np.testing.assert_allclose(pct, expected, rtol=1e-9, atol=1e-9)
    # ordering: finite (descending) before NaN; ties in input order
    ranked = s[order]
    finite = ~np.isnan(ranked)
    assert not np.any(finite[np.argmin(finite) :]) or finite.all()
    assert np.all(np.diff(ranked[finite]) <= 0)
    for a, b in itertools.pairwise(order):
        if s[a] == s[b] or (np.isnan(s[a]) and np.isnan(s[b])):
            assert a < b


# --------------------------------------------------------------------------- tiers


def test_assign_tiers_boundaries() -> None:
    pct = [100.0, 99.0, 98.999, 95.0, 94.9, 80.0, 79.99, 0.0]
    got = assign_tiers(pct)
    assert got.dtype == object
    assert got.tolist() == [
        "very_high",
        "very_high",
        "high",
        "high",
        "elevated",
        "elevated",
        "low",
        "low",
    ]
    assert assign_tiers([]).tolist() == []


def test_assign_tiers_custom() -> None:
    tiers = [("top", 50), ("rest", 0)]
    assert assign_tiers([50.0, 49.9, 0.0], tiers).tolist() == ["top", "rest", "rest"]
    assert assign_tiers([0.0, 100.0], [("all", 0.0)]).tolist() == ["all", "all"]


def test_assign_tiers_lists_every_problem() -> None:
    bad = [("high", 90.0), ("", 95.0), ("high", 150.0), ("low", 5.0)]
    with pytest.raises(ValueError) as exc:
        assign_tiers([50.0], bad)
    msg = str(exc.value)
    assert "tier 1 name must be a non-empty string" in msg
    assert "repeated: ['high']" in msg
    assert "tier 2 ('high') minimum 150.0 is not in [0, 100]" in msg
    assert "strictly decreasing: tier 1 ('') has 95 after 90" in msg
    assert "tier 2 ('high') has 150 after 95" in msg
    assert "last tier ('low') must have minimum 0" in msg
    assert msg.count("\n  - ") == 6


@pytest.mark.parametrize(
    ("tiers", "match"),
    [
        ([], "tiers is empty"),
        ("low", "must be a sequence"),
        ([("a", 50.0, 1)], "tier 0 must be a .name, minimum percentile. pair"),
        ([("a", "x"), ("b", 0.0)], "tier 0 \\('a'\\) minimum must be a number"),
        ([(1, 0.0)], "tier 0 name must be a non-empty string"),
        ([("a", 50.0), ("b", 50.0), ("c", 0.0)], "strictly decreasing"),
    ],
)
def test_assign_tiers_validation(tiers: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        assign_tiers([10.0], tiers)  # type: ignore[arg-type]


@pytest.mark.parametrize("pct", [[np.nan], [-1.0], [100.5]])
def test_assign_tiers_bad_percentile(pct: list[float]) -> None:
    with pytest.raises(ValueError, match=r"percentile must lie in \[0, 100\]"):
        assign_tiers(pct)


# --------------------------------------------------------------------------- contributions


def _link(model: RiskEstimator, X: pd.DataFrame) -> np.ndarray:
    r = model.risk_score(X)
    if model.kind == "poisson":
        return np.log(np.maximum(r, 1e-9))
    p = np.clip(r, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def test_contributions_match_naive(model: RiskEstimator, panel: pd.DataFrame) -> None:
    X = panel.iloc[:40]
    ref = X[FEATURES].median()  # the default reference: medians over X
    c = contributions(model, X)
    assert list(c.columns) == list(model.feature_names_in_) == FEATURES
    assert c.index.equals(X.index)
    base = _link(model, X)
    for f in FEATURES:
        Xs = X.copy()
        Xs[f] = ref[f]
        np.testing.assert_allclose(c[f].to_numpy(), base - _link(model, Xs), atol=1e-10)


@pytest.mark.parametrize(
    ("kind", "calibrate"), [("logistic", False), ("hgb", True), ("poisson", True)]
)
def test_contributions_other_models(panel: pd.DataFrame, kind: str, calibrate: bool) -> None:
    m = _fit(kind, panel, calibrate=calibrate, max_iter=20)
    X = panel.iloc[:30]
    c = contributions(m, X)
    ref = X[FEATURES].median()
    for f in FEATURES:
        np.testing.assert_allclose(
            c[f].to_numpy(), _link(m, X) - _link(m, X.assign(**{f: ref[f]})), atol=1e-10
        )
    out = score_units(m, X)
    assert list(out.columns) == COLUMNS
    if kind != "poisson":
        np.testing.assert_allclose(-np.expm1(-out["expected_breaks"]), out["probability"])


def test_contributions_zero_at_reference(model: RiskEstimator, panel: pd.DataFrame) -> None:
    X = panel.iloc[:200]
    ref = X[FEATURES].iloc[7]  # unit 7 is the reference: all its contributions vanish
    c = contributions(model, X, reference=ref)
    assert (c.iloc[7] == 0.0).all()
    # any feature equal to its (median) reference contributes exactly 0
    c = contributions(model, X)
    med = X[FEATURES].median()
    at_ref = X[FEATURES].eq(med)
    assert at_ref.to_numpy().any()
    assert (c[at_ref] == 0.0).sum().sum() == at_ref.sum().sum()


def test_contributions_sign_of_main_driver(model: RiskEstimator, panel: pd.DataFrame) -> None:
    X = panel.iloc[:50].copy()
    X.loc[X.index[0], "breaks_last5"] = 6.0
    X.loc[X.index[1], "decayed"] = 3.0
    X.loc[X.index[2], ["breaks_last5", "decayed"]] = 0.0
    c = contributions(model, X)
    assert c.iloc[0]["breaks_last5"] > 0.1
    assert c.iloc[1]["decayed"] > 0.1
    assert c.iloc[2]["breaks_last5"] <= 0 and c.iloc[2]["decayed"] < 0


def test_contributions_nan(panel: pd.DataFrame) -> None:
    X = panel.iloc[:300].copy()
    X["age_mean"] = np.nan
    m = BreakCountRegressor(
        features=FEATURES, calibrate=False, max_iter=20, learning_rate=0.05
    ).fit(
        panel.assign(age_mean=np.where(np.arange(len(panel)) % 3 == 0, np.nan, panel.age_mean)),
        panel["target_count"],
    )
    c = contributions(m, X)  # the reference of the all-NaN column is NaN: both NaN -> 0
    assert (c["age_mean"] == 0.0).all()
    ref = X[FEATURES].median().fillna(50.0)
    c = contributions(m, X, reference=ref)
    Xs = X.copy()
    Xs["age_mean"] = 50.0
    np.testing.assert_allclose(c["age_mean"], _link(m, X) - _link(m, Xs), atol=1e-10)


def test_contributions_chunking(
    model: RiskEstimator, panel: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    X = panel.iloc[:300]
    whole = contributions(model, X)
    monkeypatch.setattr(scoring, "_CHUNK_BYTES", 8 * 3 * 7)  # 7 rows per chunk
    pd.testing.assert_frame_equal(contributions(model, X), whole)


def test_contributions_reference_and_empty(model: RiskEstimator, panel: pd.DataFrame) -> None:
    with pytest.raises(
        ValueError, match=r"reference lacks a value for feature\(s\) \['age_mean'\]"
    ):
        contributions(model, panel.iloc[:5], reference=pd.Series({"breaks_last5": 1, "decayed": 0}))
    empty = contributions(model, panel.iloc[:0])
    assert empty.shape == (0, 3) and list(empty.columns) == FEATURES


# --------------------------------------------------------------------------- top_drivers


def test_top_drivers_format() -> None:
    X = pd.DataFrame(
        {
            "breaks_last5": [3.0, 1.0, 2.0, 0.5],
            "lag1_decayed_adj": [1.25, 12345.678, 0.123456, np.nan],
            "age_mean": [60.0, 10.0, 70.0, 40.0],
            "decayed": [0.1, 0.2, 0.3, 0.4],
        },
        index=[10, 11, 12, 13],
    )
    contrib = pd.DataFrame(
        {
            "breaks_last5": [0.82, 0.006, 0.3, -1.0],
            "lag1_decayed_adj": [0.40, 0.5, 0.3, 0.004],
            "age_mean": [0.1, -0.2, 0.3, 0.005],
            "decayed": [0.05, 0.0, 0.3, 0.0],
        },
        index=X.index,
    )
    got = top_drivers(contrib, X)
    assert got == [
        "breaks_last5=3 (+0.82); lag1_decayed_adj=1.25 (+0.40); age_mean=60 (+0.10)",
        "lag1_decayed_adj=1.235e+04 (+0.50); breaks_last5=1 (+0.01)",
        # ties broken by column order
        "breaks_last5=2 (+0.30); lag1_decayed_adj=0.1235 (+0.30); age_mean=70 (+0.30)",
        "none above reference",
    ]
    assert top_drivers(contrib, X, k=1)[0] == "breaks_last5=3 (+0.82)"
    assert top_drivers(contrib, X, k=10)[2].count(";") == 3
    assert top_drivers(contrib.iloc[:0], X.iloc[:0]) == []


def test_top_drivers_validation() -> None:
    X = pd.DataFrame({"a": [1.0, 2.0]})
    c = pd.DataFrame({"a": [0.1, 0.2]})
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            top_drivers(c, X, k=k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same index"):
        top_drivers(c, X.set_axis([5, 6]))
    with pytest.raises(ValueError, match=r"X lacks the contribution column\(s\) \['b'\]"):
        top_drivers(c.assign(b=0.0), X)


def test_top_drivers_many_units() -> None:
    # speed sanity (50k units; well below a second, not asserted)
    rng = np.random.default_rng(1)
    cols = [f"f{j}" for j in range(20)]
    X = pd.DataFrame(rng.normal(size=(50_000, 20)), columns=cols)
    c = pd.DataFrame(rng.normal(0, 0.1, size=(50_000, 20)), columns=cols)
    got = top_drivers(c, X)
    assert len(got) == 50_000
    i = int(np.argmax(c.to_numpy().max(axis=1)))
    assert got[i].startswith(f"{cols[int(np.argmax(c.iloc[i]))]}=")


# --------------------------------------------------------------------------- score_units


def test_score_units(model: RiskEstimator, panel: pd.DataFrame) -> None:
    X = panel.sample(frac=1.0, random_state=3)
    out = score_units(model, X)
    assert list(out.columns) == COLUMNS
    assert len(out) == len(X)
    assert out.index.equals(pd.RangeIndex(len(X)))
    assert out["rank"].dtype == np.int64
    assert out["rank"].tolist() == list(range(1, len(X) + 1))
    assert out["risk_score"].is_monotonic_decreasing
    assert out["percentile"].is_monotonic_decreasing
    assert out["percentile"].iloc[-1] == 0.0
    assert all(isinstance(u, str) for u in out["unit_id"])
    assert set(out["unit_id"]) == set(X["unit_id"])

    by_id = out.set_index("unit_id").loc[X["unit_id"]]
    np.testing.assert_array_equal(by_id["risk_score"], model.risk_score(X))
    np.testing.assert_array_equal(by_id["probability"], model.break_probability(X))
    if model.kind == "poisson":
        np.testing.assert_array_equal(out["expected_breaks"], out["risk_score"])
    else:
        np.testing.assert_allclose(-np.expm1(-out["expected_breaks"]), out["probability"])
    np.testing.assert_array_equal(out["tier"], assign_tiers(out["percentile"]))
    share = out["tier"].value_counts(normalize=True)
    assert share["very_high"] == pytest.approx(0.01, abs=0.002)
    assert share["low"] == pytest.approx(0.80, abs=0.002)
    assert out["drivers"].str.len().gt(0).all()
    # the riskiest units owe their risk to high break history
    assert out["drivers"].iloc[:20].str.contains("breaks_last5|decayed").all()


def test_score_units_deterministic(model: RiskEstimator, panel: pd.DataFrame) -> None:
    a = score_units(model, panel)
    b = score_units(model, panel.copy())
    pd.testing.assert_frame_equal(a, b)


def test_score_units_options(model: RiskEstimator, panel: pd.DataFrame) -> None:
    X = panel.iloc[:500]
    w = np.linspace(0.1, 2.0, len(X))
    out = score_units(model, X, weight=w, tiers=[("top", 90.0), ("rest", 0.0)], n_drivers=1)
    rank, pct = rank_units(model.risk_score(X), w)
    by_id = out.set_index("unit_id").loc[X["unit_id"]]
    np.testing.assert_array_equal(by_id["rank"], rank)
    np.testing.assert_array_equal(by_id["percentile"], pct)
    assert set(out["tier"]) == {"top", "rest"}
    assert not out["drivers"].str.contains(";").any()
    ref = X[FEATURES].iloc[0]
    out = score_units(model, X, reference=ref)
    assert out.loc[out["unit_id"] == X["unit_id"].iloc[0], "drivers"].item() == (
        "none above reference"
    )


def test_score_units_errors(model: RiskEstimator, panel: pd.DataFrame) -> None:
    X = panel.iloc[:20].copy()
    with pytest.raises(ValueError, match="no rows"):
        score_units(model, X.iloc[:0])
    with pytest.raises(ValueError, match="lacks the unit_id column"):
        score_units(model, X.drop(columns="unit_id"))
    dup = X.copy()
    dup.loc[dup.index[[3, 5, 9]], "unit_id"] = ["c00001", "c00002", "c00001"]
    with pytest.raises(ValueError, match=r"2 duplicated, e.g. \['c00001', 'c00002'\]"):
        score_units(model, dup)
    with pytest.raises(ValueError, match="invalid tiers"):
        score_units(model, X, tiers=[("a", 10.0)])
    with pytest.raises(ValueError, match="weight has length"):
        score_units(model, X, weight=[1.0])
    with pytest.raises(ValueError, match="n_drivers"):
        score_units(model, X, n_drivers=0)


def test_score_units_large(panel: pd.DataFrame) -> None:
    # speed sanity: 50k units with the classifier (not timed)
    big = pd.concat([panel] * 25, ignore_index=True)
    big["unit_id"] = [f"u{i}" for i in range(len(big))]
    m = _fit("hgb", panel, calibrate=False, max_iter=50)
    out = score_units(m, big)
    assert len(out) == 50_000
    assert out["rank"].is_monotonic_increasing
    assert (out["tier"] == "very_high").sum() == 500


def test_default_tiers() -> None:
    assert DEFAULT_TIERS[-1][1] == 0.0
    assert [t for _, t in DEFAULT_TIERS] == sorted((t for _, t in DEFAULT_TIERS), reverse=True)
    assert set(scoring.__all__) == {
        "BLOCK_ROWS",
        "DEFAULT_TIERS",
        "assign_tiers",
        "contributions",
        "rank_units",
        "reference_values",
        "score_units",
        "top_drivers",
    }


def _champion(panel: pd.DataFrame) -> ChampionModel:
    """A blend champion (a GLM and the past-breaks baseline): its drivers come from the
    frame path of :func:`contributions`."""
    y = panel["target_count"].to_numpy(dtype=float)
    return ChampionModel(
        "blend",
        [
            ("glm", make_estimator("glm", features=["breaks_last5", "decayed"], calibrate=False)),
            ("past", PastBreaksBaseline("breaks_last5")),
        ],
        weights=(0.5, 0.5),
    ).fit(panel, y)


@pytest.fixture(scope="module", params=["estimator", "champion"])
def any_model(request: pytest.FixtureRequest, model: RiskEstimator, panel: pd.DataFrame):
    return model if request.param == "estimator" else _champion(panel)


def test_reference_values_are_the_default_reference(any_model, panel: pd.DataFrame) -> None:
    """The reference worked out once for the whole network is the one each call would
    work out itself: explicit and implicit give the same contributions."""
    X = panel.iloc[:400]
    ref = scoring.reference_values(any_model, X)
    assert ref.index.tolist() == [
        c
        for c in map(str, any_model.feature_names_in_)
        if c != getattr(any_model, "density_col", None)
    ]
    pd.testing.assert_frame_equal(contributions(any_model, X, ref), contributions(any_model, X))
    with pytest.raises(ValueError, match="reference lacks a value"):
        contributions(any_model, X, ref.iloc[1:])


def test_champion_contributions_are_the_whole_frame_substitutions(panel: pd.DataFrame) -> None:
    """A champion scores again only the rows that differ from the reference: the same
    values as substituting the feature in every row, and exactly 0 where it is the
    reference (most rows have no recent break)."""
    m = _champion(panel)
    X = panel.iloc[:500]
    ref = scoring.reference_values(m, X)
    got = contributions(m, X, ref)
    base = m.link(X)
    for f in got.columns:
        same = (X[f] == ref[f]).to_numpy()
        Xs = X.copy()
        Xs[f] = ref[f]
        want = np.where(same, 0.0, base - m.link(Xs))
        np.testing.assert_array_equal(got[f].to_numpy(), want)
        assert 0 < same.sum() < len(X) or f != "breaks_last5"
    assert got.index.equals(X.index)


@pytest.mark.parametrize("block_rows", [7, 333])
def test_score_units_in_blocks_equals_one_block(any_model, panel, block_rows) -> None:
    """Drivers worked out a block of units at a time (the scoring's cost, bounded by the
    block) against the network's reference: the same scores, ranks and drivers as one
    block, for any block size."""
    X = panel.iloc[:1000]
    whole = score_units(any_model, X, block_rows=len(X))
    pd.testing.assert_frame_equal(score_units(any_model, X, block_rows=block_rows), whole)
    assert whole["drivers"].ne("none above reference").any()  # drivers are compared, not blanks
    with pytest.raises(ValueError, match="block_rows must be a positive integer"):
        score_units(any_model, X, block_rows=0)


def test_score_units_on_a_cluster_equals_in_process(panel: pd.DataFrame) -> None:
    """The blocks on a Dask LocalCluster of two workers: the same table as in this
    process."""
    m = _fit("hgb", panel, calibrate=False, max_iter=50)
    here = score_units(m, panel, block_rows=300)
    with open_client(ClusterSpec("local", workers=2, worker_memory="2GiB")) as client:
        there = score_units(m, panel, block_rows=300, client=client)
    pd.testing.assert_frame_equal(there, here)
