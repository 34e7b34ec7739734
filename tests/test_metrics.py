"""Tests for twmb_geo.model.metrics: hand-computed captures, sklearn parity, warnings."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from twmb_geo.model import metrics as M

# y, score, length (km): ranked order is c (3.0), a (2.0), b/d tied (1.0), e (NaN)
Y = np.array([1.0, 0.0, 2.0, 1.0, 1.0])
S = np.array([2.0, 1.0, 3.0, 1.0, np.nan])
W = np.array([1.0, 2.0, 1.0, 2.0, 4.0])


def test_capture_hand_computed_unit_weights() -> None:
    # 5 units, total breaks 5; top 40 % = c, a -> 3 breaks
    assert M.capture_at(Y, S, 0.4) == pytest.approx(3 / 5)
    # top 50 % = 2.5 units: c, a and half of b (first of the b/d tie in input order, 0 breaks)
    assert M.capture_at(Y, S, 0.5) == pytest.approx(3 / 5)
    # top 70 % = 3.5 units: c, a, b, half of d -> 3 + 0.5
    assert M.capture_at(Y, S, 0.7) == pytest.approx(3.5 / 5)


def test_capture_ties_average_unit_weights() -> None:
    # b/d tie holds 1 break over 2 units: each unit of budget inside the tie catches 0.5
    assert M.capture_at(Y, S, 0.5, ties="average") == pytest.approx((3 + 0.25) / 5)
    assert M.capture_at(Y, S, 0.6, ties="average") == pytest.approx((3 + 0.5) / 5)
    assert M.capture_at(Y, S, 0.8, ties="average") == pytest.approx(4 / 5)


def test_capture_weighted_by_length_with_fractional_boundary() -> None:
    # total length 10 km; ranked c(1 km, 2), a(1 km, 1), b(2 km, 0), d(2 km, 1), e(4 km, 1)
    assert M.capture_at(Y, S, 0.1, weight=W) == pytest.approx(2 / 5)
    assert M.capture_at(Y, S, 0.15, weight=W) == pytest.approx(2.5 / 5)  # half of a
    assert M.capture_at(Y, S, 0.4, weight=W) == pytest.approx(3 / 5)  # c, a, b; d not reached
    assert M.capture_at(Y, S, 0.5, weight=W) == pytest.approx(3.5 / 5)  # half of d
    assert M.capture_at(Y, S, 0.6, weight=W) == pytest.approx(4 / 5)
    # average ties: b+d = 4 km holding 1 break; 1 km inside the tie -> 1/4 break
    assert M.capture_at(Y, S, 0.3, weight=W, ties="average") == pytest.approx(3.25 / 5)


def test_capture_input_order_breaks_ties_deterministically() -> None:
    y = np.array([0.0, 1.0])
    s = np.array([1.0, 1.0])
    assert M.capture_at(y, s, 0.5) == 0.0
    assert M.capture_at(y[::-1], s[::-1], 0.5) == 1.0
    assert M.capture_at(y, s, 0.5, ties="average") == 0.5


def test_capture_frac_one_and_zero() -> None:
    for ties in ("first", "average"):
        assert M.capture_at(Y, S, 1.0, weight=W, ties=ties) == 1.0
        assert M.capture_at(Y, S, 1.0, ties=ties) == 1.0
        assert M.capture_at(Y, S, 0.0, weight=W, ties=ties) == 0.0


def test_nan_scores_rank_last() -> None:
    y = np.array([1.0, 0.0, 0.0])
    s = np.array([np.nan, 0.0, -5.0])
    assert M.capture_at(y, s, 2 / 3) == pytest.approx(0.0)
    assert M.capture_at(y, s, 1.0) == 1.0
    assert M.precision_at_k(y, s, 2) == 0.0
    assert M.roc_auc(y, s) == pytest.approx(0.0)


def test_perfect_ranking_and_zero_weight_units() -> None:
    y = np.array([0, 0, 3, 1, 0], dtype=float)
    assert M.capture_at(y, y, 0.2) == pytest.approx(3 / 4)
    assert M.capture_at(y, y, 0.4) == 1.0
    # a zero-length unit on top is taken for free
    assert M.capture_at([1, 0, 1], [3, 2, 1], 0.01, weight=[0, 1, 1]) == pytest.approx(0.5)


def test_random_ranking_is_frac_on_average() -> None:
    rng = np.random.default_rng(0)
    y = rng.poisson(0.3, 2000).astype(float)
    caps = [M.capture_at(y, rng.random(2000), 0.1) for _ in range(30)]
    assert np.mean(caps) == pytest.approx(0.1, abs=0.02)


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 5), st.floats(0.01, 10.0)), min_size=1, max_size=30
    ).filter(lambda d: sum(c for c, _ in d) > 0),
    frac=st.floats(0.0, 1.0),
    weighted=st.booleans(),
    tie=st.sampled_from([0.5, np.nan]),
)
def test_all_tied_average_capture_equals_frac(data, frac, weighted, tie) -> None:
    y = np.array([c for c, _ in data], dtype=float)
    w = np.array([x for _, x in data]) if weighted else None
    s = np.full(len(y), tie)
    assert M.capture_at(y, s, frac, weight=w, ties="average") == pytest.approx(frac, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 4), st.floats(0.0, 5.0)),
        min_size=1,
        max_size=25,
    ).filter(lambda d: sum(c for c, _, _ in d) > 0 and sum(x for _, _, x in d) > 0),
)
def test_capture_curve_monotone_bounded(data) -> None:
    y = np.array([c for c, _, _ in data], dtype=float)
    s = np.array([v for _, v, _ in data], dtype=float)
    w = np.array([x for _, _, x in data])
    for ties in ("first", "average"):
        curve = M.capture_curve(y, s, weight=w, ties=ties)
        cap = curve["capture"].to_numpy()
        assert list(curve.columns) == ["frac", "capture", "random"]
        assert len(curve) == 101
        assert cap[0] == 0.0 and cap[-1] == 1.0
        assert np.all(np.diff(cap) >= -1e-12)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    data=st.lists(
        st.tuples(
            st.integers(0, 3),
            st.sampled_from([0.0, 0.5, 1.0, 2.0, np.nan]),
            st.floats(0.0, 5.0),
            st.booleans(),
        ),
        min_size=1,
        max_size=40,
    ),
    ties=st.sampled_from(["first", "average"]),
)
def test_evaluate_from_one_ranking_equals_each_metric_alone(data, ties) -> None:
    """``evaluate`` ranks a score once for every capture and precision: the same values as
    :func:`capture_at` and :func:`precision_at_k` computed one at a time."""
    y = np.array([c for c, _, _, _ in data], dtype=float)
    s = np.array([v for _, v, _, _ in data], dtype=float)
    w = np.array([x for _, _, x, _ in data])
    new = np.array([b for _, _, _, b in data])
    fracs = (0.01, 0.3, 0.5, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.MetricWarning)
        out = M.evaluate(y, s, weight=w, fracs=fracs, new_mask=new, ties=ties)
        for fr in fracs:
            key = M.frac_label(fr)
            want = M.capture_at(y, s, fr, w, ties=ties)
            assert out[f"capture_{key}"] == want or (
                math.isnan(want) and math.isnan(out[f"capture_{key}"])
            )
            k = max(1, round(fr * len(y)))
            assert out[f"precision_{key}"] == M.precision_at_k(y, s, k, ties=ties)
            if new.any():
                k_new = max(1, round(fr * int(new.sum())))
                got = out[f"precision_new_{key}"]
                assert got == M.precision_at_k(y[new], s[new], k_new, ties=ties)


def test_capture_undefined_without_breaks() -> None:
    with pytest.warns(M.MetricWarning):
        assert math.isnan(M.capture_at([0, 0], [1, 2], 0.5))


def test_capture_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        M.capture_at([1, 0], [1, 2], 1.5)
    with pytest.raises(ValueError):
        M.capture_at([1, np.nan], [1, 2], 0.5)
    with pytest.raises(ValueError):
        M.capture_at([1, 0], [1, 2], 0.5, weight=[1, np.nan])
    with pytest.raises(ValueError):
        M.capture_at([1, 0, 1], [1, 2], 0.5)


def test_precision_at_k() -> None:
    y = np.array([1, 0, 1, 0, 1])
    s = np.array([5, 4, 3, 3, 1])
    assert M.precision_at_k(y, s, 1) == 1.0
    assert M.precision_at_k(y, s, 2) == 0.5
    assert M.precision_at_k(y, s, 3) == pytest.approx(2 / 3)  # tie 3/3 -> input order
    assert M.precision_at_k(y, s, 3, ties="average") == pytest.approx(1.5 / 3)
    assert M.precision_at_k(y, s, 99) == pytest.approx(3 / 5)


def test_classification_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + 0.7 * rng.random(300), 0, 1)
    assert M.roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p))
    assert M.pr_auc(y, p) == pytest.approx(skm.average_precision_score(y, p))
    assert M.brier(y, p) == pytest.approx(skm.brier_score_loss(y, p))
    assert M.log_loss(y, p) == pytest.approx(skm.log_loss(y, p))


def test_single_class_gives_nan_with_note() -> None:
    y = np.zeros(4)
    p = np.array([0.1, 0.2, 0.3, 0.4])
    with pytest.warns(M.MetricWarning, match="single class"):
        assert math.isnan(M.roc_auc(y, p))
    with pytest.warns(M.MetricWarning, match="single class"):
        assert math.isnan(M.pr_auc(y, p))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert M.log_loss(y, p) == pytest.approx(-np.mean(np.log(1 - p)))
        assert M.brier(y, p) == pytest.approx(np.mean(p**2))
    out = M.evaluate(y, p, prob=p)
    assert math.isnan(out["roc_auc"]) and math.isnan(out["capture_5pct"])
    assert any("roc_auc" in n for n in out["notes"])


def test_calibration_table() -> None:
    rng = np.random.default_rng(2)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    for strategy in ("quantile", "uniform"):
        t = M.calibration_table(y, p, n_bins=10, strategy=strategy)
        assert list(t.columns) == [
            "bin", "prob_lo", "prob_hi", "n", "n_breaks", "mean_prob", "obs_rate"
        ]  # fmt: skip
        assert len(t) == 10
        assert t["n"].sum() == 1000
        assert t["n_breaks"].sum() == y.sum()
        assert np.all(np.diff(t["prob_lo"]) > 0)
        assert np.all(np.diff(t["mean_prob"]) > 0)
        assert np.all((t["mean_prob"] >= t["prob_lo"]) & (t["mean_prob"] <= t["prob_hi"]))
    q = M.calibration_table(y, p, strategy="quantile")
    assert q["n"].between(99, 101).all()
    # heavily tied probabilities merge quantile bins
    assert len(M.calibration_table([0, 1, 0, 1], [0.2, 0.2, 0.2, 0.9])) == 2


def test_evaluate_keys_and_new_units() -> None:
    y = np.array([0, 1, 2, 0, 0, 1, 0, 0, 0, 0], dtype=float)
    s = np.array([0.1, 0.5, 0.9, 0.2, 0.0, 0.3, 0.0, 0.0, 0.0, np.nan])
    w = np.linspace(1, 2, 10)
    new = np.array([1, 0, 0, 1, 1, 1, 1, 1, 1, 1], dtype=bool)
    out = M.evaluate(y, s, prob=np.clip(s, 0, 1, out=np.zeros(10), where=~np.isnan(s)),
                     weight=w, fracs=(0.1, 0.5), new_mask=new)  # fmt: skip
    for key in (
        "n", "n_breaks", "n_any", "capture_10pct", "capture_50pct", "precision_10pct",
        "roc_auc", "pr_auc", "brier", "log_loss", "n_new", "n_breaks_new",
        "capture_new_10pct", "precision_new_50pct", "notes",
    ):  # fmt: skip
        assert key in out
    assert out["n"] == 10 and out["n_breaks"] == 4.0 and out["n_any"] == 3
    assert out["capture_10pct"] == pytest.approx(M.capture_at(y, s, 0.1, w, ties="average"))
    assert out["precision_10pct"] == 1.0  # k = 1: the 0.9 unit broke
    assert out["n_new"] == 8 and out["n_breaks_new"] == 1.0
    assert out["capture_new_50pct"] == pytest.approx(
        M.capture_at(y[new], s[new], 0.5, w[new], ties="average")
    )
    assert out["notes"] == []


def test_lift_and_leakage_warnings() -> None:
    model = {"capture_1pct": 0.30, "capture_5pct": 0.40, "roc_auc": 0.80, "n": 10}
    base = {
        "past": {"capture_1pct": 0.10, "capture_5pct": 0.30, "roc_auc": 0.7},
        "age": {"capture_1pct": 0.05, "capture_5pct": 0.0, "roc_auc": 0.6},
    }
    assert M.lift(model, base["past"]) == pytest.approx(
        {"capture_1pct": 3.0, "capture_5pct": 4 / 3}
    )
    assert math.isnan(M.lift(model, base["age"])["capture_5pct"])
    warns = M.leakage_warnings(model, base)
    assert len(warns) == 1 and "capture_1pct" in warns[0] and "past" in warns[0]
    assert M.leakage_warnings({**model, "capture_1pct": 0.15}, base) == []
    high_auc = M.leakage_warnings({**model, "capture_1pct": 0.15, "roc_auc": 0.97}, base)
    assert len(high_auc) == 1 and "AUC" in high_auc[0]
    assert M.leakage_warnings(model, base, capture_ratio_limit=5.0) == []
    assert M.leakage_warnings({"roc_auc": math.nan}, {}) == []
