"""Validation splitters: spatial blocks with buffer, forward in time, both, random."""

from __future__ import annotations

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from twmb_geo.errors import ConfigError, InputDataError
from twmb_geo.model.splitters import (
    ForwardSplit,
    RandomKFold,
    SpatialBlockKFold,
    SpatioTemporalSplit,
    SplitInputError,
    SplitParameterError,
)

YEARS = list(range(2010, 2018))  # 8 years


def _cells(n: int = 24, step: float = 0.0025, res: int = 9) -> list[int]:
    """Distinct res-9 cells of a dense lat/lng grid near downtown Toronto (neighbours touch)."""
    lat = 43.7 + step * np.arange(n)
    lng = -79.4 + step * np.arange(n)
    return sorted({h3i.latlng_to_cell(a, b, res) for a in lat for b in lng})


def _panel(cells: list[int], years=YEARS, seed: int = 0, rate: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(h3i.int_to_str(c), y) for c in cells for y in years]
    df = pd.DataFrame(rows, columns=["unit_id", "year"])
    df.insert(0, "unit_type", "cell")
    df["f1"] = rng.normal(size=len(df))
    df["f2"] = rng.normal(size=len(df))
    df["target_any"] = (rng.random(len(df)) < rate).astype(np.int8)
    return df


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return _panel(_cells())


def _sbk(**kw) -> SpatialBlockKFold:
    kw.setdefault("cell_col", "unit_id")
    kw.setdefault("parent_res", 7)
    return SpatialBlockKFold(**kw)


def _blocks(df: pd.DataFrame, res: int = 7) -> np.ndarray:
    return np.array([h3i.cell_to_parent(h3i.str_to_int(s), res) for s in df["unit_id"]])


# --------------------------------------------------------------------------- spatial


def test_spatial_folds_partition_and_blocks_disjoint(panel):
    cv = _sbk(buffer_rings=0)
    y = panel["target_any"]
    seen = np.zeros(len(panel), dtype=int)
    blocks = _blocks(panel)
    for tr, te in cv.split(panel, y):
        assert tr.dtype.kind == "i" and te.dtype.kind == "i"
        seen[te] += 1
        assert not set(blocks[tr]) & set(blocks[te])
        assert np.intersect1d(tr, te).size == 0
        # without a buffer the training set is the complement
        assert tr.size + te.size == len(panel)
        # a unit's rows are never split
        assert not set(panel["unit_id"].iloc[tr]) & set(panel["unit_id"].iloc[te])
    assert (seen == 1).all()
    assert cv.get_n_splits() == 5


@pytest.mark.parametrize("rings", [1, 2])
def test_buffer_drops_exactly_rows_within_k_rings(panel, rings):
    cv = _sbk(buffer_rings=rings)
    cells = np.array([h3i.str_to_int(s) for s in panel["unit_id"]])
    ref = _sbk(buffer_rings=0)
    total_dropped = 0
    for (tr, te), (tr0, te0) in zip(
        cv.split(panel, panel["target_any"]), ref.split(panel, panel["target_any"]), strict=True
    ):
        np.testing.assert_array_equal(te, te0)
        test_cells = set(cells[te].tolist())
        expected = [
            i
            for i in tr0
            if min(h3i.grid_distance(int(cells[i]), int(t)) for t in test_cells) <= rings
        ]
        dropped = np.setdiff1d(tr0, tr)
        np.testing.assert_array_equal(np.sort(dropped), np.sort(np.asarray(expected, int)))
        assert np.isin(tr, tr0).all()
        total_dropped += dropped.size
    assert total_dropped > 0
    rep = cv.split_report(panel, panel["target_any"])
    assert list(rep.columns) == [
        "fold",
        "n_train",
        "n_test",
        "n_dropped_by_buffer",
        "test_positive_rate",
    ]
    assert rep["n_dropped_by_buffer"].sum() == total_dropped
    assert rep["n_test"].sum() == len(panel)
    assert (rep["n_train"] + rep["n_test"] + rep["n_dropped_by_buffer"] == len(panel)).all()


def test_stratification_keeps_positive_rates_close():
    df = _panel(_cells(), rate=0.1, seed=3)
    y = df["target_any"].to_numpy()
    rep = _sbk(buffer_rings=0, n_splits=4, parent_res=8).split_report(df, y)
    overall = (y > 0).mean()
    assert (rep["test_positive_rate"] - overall).abs().max() < 0.03


def test_pipe_units_with_cell_column_and_unit_consistency(panel):
    # pipes: several units per cell, the cell column joined from the unit table
    cells = _cells(10)
    rows = [
        ("pipe", f"p{i}-{j}", h3i.int_to_str(c), y)
        for i, c in enumerate(cells)
        for j in range(2)
        for y in YEARS
    ]
    df = pd.DataFrame(rows, columns=["unit_type", "unit_id", "cell", "year"])
    cv = SpatialBlockKFold(n_splits=3, parent_res=8)
    for tr, te in cv.split(df):
        assert not set(df["unit_id"].iloc[tr]) & set(df["unit_id"].iloc[te])
    # integer cells work too and give the same folds
    df_int = df.assign(cell=[h3i.str_to_int(s) for s in df["cell"]])
    for (a, b), (c, d) in zip(cv.split(df), cv.split(df_int), strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    bad = df.copy()
    bad.loc[0, "cell"] = h3i.int_to_str(cells[-1])
    with pytest.raises(InputDataError, match="more than one"):
        list(cv.split(bad))


def test_determinism_and_seed(panel):
    y = panel["target_any"]
    a = [te.tolist() for _, te in _sbk(random_state=7).split(panel, y)]
    b = [te.tolist() for _, te in _sbk(random_state=7).split(panel, y)]
    assert a == b
    # the seed changes unstratified block assignment (StratifiedGroupKFold only uses it
    # to break ties between blocks)
    d7 = [te.tolist() for _, te in _sbk(random_state=7, stratify=False).split(panel, y)]
    d8 = [te.tolist() for _, te in _sbk(random_state=8, stratify=False).split(panel, y)]
    assert d7 == [te.tolist() for _, te in _sbk(random_state=7, stratify=False).split(panel)]
    assert d7 != d8
    r1 = [te.tolist() for _, te in RandomKFold(random_state=1).split(panel)]
    assert r1 == [te.tolist() for _, te in RandomKFold(random_state=1).split(panel)]
    assert "SpatialBlockKFold(" in repr(_sbk()) and "parent_res=7" in repr(_sbk())


# --------------------------------------------------------------------------- temporal


@pytest.mark.parametrize("gap", [0, 1])
def test_forward_split_never_trains_on_test_target_year(panel, gap):
    cv = ForwardSplit(min_train_years=3, gap=gap)
    years = panel["year"].to_numpy()
    splits = list(cv.split(panel))
    assert len(splits) == cv.get_n_splits(panel) == len(YEARS) - 3 - gap
    tested = []
    for tr, te in splits:
        T = int(np.unique(years[te]).item())
        tested.append(T)
        assert years[tr].max() <= T - 1 - gap  # features strictly before T
        # panel rows of year t carry the target of t + 1
        assert (years[tr] + 1).max() <= T - gap
        assert not ((years[tr] + 1) == T + 1).any()
        np.testing.assert_array_equal(tr, np.flatnonzero(years <= T - 1 - gap))
    assert tested == sorted(tested) and tested[0] == YEARS[0] + 3 + gap


def test_forward_split_explicit_years_and_errors(panel):
    cv = ForwardSplit(test_years=[2016, 2015])
    assert cv.get_n_splits() == 2
    assert [int(panel["year"].iloc[te].iloc[0]) for _, te in cv.split(panel)] == [2015, 2016]
    with pytest.raises(InputDataError, match="2030"):
        list(ForwardSplit(test_years=[2030]).split(panel))
    with pytest.raises(InputDataError, match="no training rows"):
        list(ForwardSplit(test_years=[2010]).split(panel))
    with pytest.raises(InputDataError, match="year"):
        list(ForwardSplit().split(panel.drop(columns="year")))


def test_spatiotemporal_combines_both(panel):
    cv = SpatioTemporalSplit(
        test_years=[2015, 2017], n_splits=3, parent_res=7, cell_col="unit_id", buffer_rings=1
    )
    y = panel["target_any"]
    years = panel["year"].to_numpy()
    blocks = _blocks(panel)
    cells = np.array([h3i.str_to_int(s) for s in panel["unit_id"]])
    splits = list(cv.split(panel, y))
    assert len(splits) == cv.get_n_splits(panel) == 6
    for T in (2015, 2017):
        per_year = splits[:3] if T == 2015 else splits[3:]
        seen = np.zeros(len(panel), int)
        for tr, te in per_year:
            seen[te] += 1
            assert (years[te] == T).all()
            assert years[tr].max() <= T - 1
            assert not set(blocks[tr]) & set(blocks[te])
            tc = set(cells[te].tolist())
            assert all(
                min(h3i.grid_distance(int(cells[i]), int(t)) for t in tc) > 1
                for i in np.unique(tr)[:: max(1, tr.size // 200)]
            )
        assert (seen[years == T] == 1).all() and seen[years != T].sum() == 0
    rep = cv.split_report(panel, y)
    assert len(rep) == 6 and (rep["n_dropped_by_buffer"] > 0).any()


# --------------------------------------------------------------------------- sklearn


def test_cross_val_score(panel):
    model = make_pipeline(
        ColumnTransformer([("num", "passthrough", ["f1", "f2"])]),
        LogisticRegression(),
    )
    y = panel["target_any"]
    for cv, n in [
        (_sbk(n_splits=3), 3),
        (ForwardSplit(min_train_years=5), 3),
        (SpatioTemporalSplit(test_years=[2016], n_splits=3, parent_res=7, cell_col="unit_id"), 3),
        (RandomKFold(3), 3),
    ]:
        scores = cross_val_score(model, panel, y, cv=cv, scoring="roc_auc")
        assert scores.shape == (n,) and np.isfinite(scores).all()


# --------------------------------------------------------------------------- validation


def test_bad_parameters_and_inputs(panel):
    for kw, name in [
        ({"n_splits": 1}, "n_splits"),
        ({"parent_res": 16}, "parent_res"),
        ({"buffer_rings": -1}, "buffer_rings"),
        ({"stratify": "yes"}, "stratify"),
        ({"random_state": 1.5}, "random_state"),
        ({"cell_col": ""}, "cell_col"),
    ]:
        with pytest.raises(ConfigError, match=name):
            SpatialBlockKFold(**kw)
    with pytest.raises(ConfigError, match="gap"):
        ForwardSplit(gap=-1)
    with pytest.raises(ConfigError, match="test_years"):
        ForwardSplit(test_years=[2015.0])
    with pytest.raises(ConfigError, match="parent_res"):
        list(_sbk(parent_res=10).split(panel))
    with pytest.raises(InputDataError, match="'cell'"):
        list(SpatialBlockKFold().split(panel))
    with pytest.raises(InputDataError, match="spatial block"):
        list(_sbk(parent_res=3).split(panel))
    with pytest.raises(InputDataError, match="rows"):
        list(_sbk().split(panel, panel["target_any"].iloc[:10]))
    with pytest.raises(InputDataError, match="DataFrame"):
        list(_sbk().split(panel.to_numpy()))


# --------------------------------------------------------------------------- groups


def _as_lists(splits) -> list[tuple[list[int], list[int]]]:
    return [(tr.tolist(), te.tolist()) for tr, te in splits]


def test_groups_give_the_cells_and_years(panel):
    y = panel["target_any"]
    X = panel[["f1", "f2"]].to_numpy()
    by_col = _as_lists(_sbk().split(panel, y))
    assert _as_lists(_sbk().split(X, y, groups=panel["unit_id"])) == by_col
    assert _as_lists(_sbk().split(X, y, groups=panel[["unit_id"]])) == by_col
    fw = ForwardSplit(min_train_years=5)
    assert _as_lists(fw.split(X, groups=panel["year"])) == _as_lists(fw.split(panel))
    assert fw.get_n_splits(X, groups=panel["year"]) == fw.get_n_splits(panel) == 3
    st_kw = {"test_years": [2016], "n_splits": 3, "parent_res": 7, "cell_col": "unit_id"}
    st = SpatioTemporalSplit(**st_kw)
    frame = _as_lists(st.split(panel, y))
    assert _as_lists(st.split(panel[["year"]], y, groups=panel["unit_id"])) == frame
    assert _as_lists(st.split(X, y, groups=panel[["year", "unit_id"]])) == frame


def test_groups_are_not_ignored(panel):
    """Groups that differ from the columns of X change the folds."""
    y = panel["target_any"]
    moved = panel.assign(year=panel["year"] + 1)
    fw = ForwardSplit(test_years=[2016])
    ((_tr_x, te_x),) = fw.split(panel)
    ((_tr_g, te_g),) = fw.split(panel, groups=moved["year"])
    assert te_g.size == te_x.size and not np.array_equal(te_g, te_x)
    shuffled = panel["unit_id"].sample(frac=1.0, random_state=3).to_numpy()
    assert _as_lists(_sbk(stratify=False).split(panel, y, groups=shuffled)) != _as_lists(
        _sbk(stratify=False).split(panel, y)
    )
    units = panel["unit_id"].to_numpy()
    for tr, te in RandomKFold(4).split(panel, groups=units):
        assert not set(units[tr]) & set(units[te])
    plain = _as_lists(RandomKFold(4).split(panel))
    assert _as_lists(RandomKFold(4).split(panel, groups=units)) != plain


def test_cross_val_score_passes_groups(panel):
    model = LogisticRegression()
    X = panel[["f1", "f2"]].to_numpy()
    y = panel["target_any"].to_numpy()
    scores = cross_val_score(
        model, X, y, groups=panel["unit_id"].to_numpy(), cv=_sbk(n_splits=3), scoring="roc_auc"
    )
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_every_input_problem_is_a_value_error(panel):
    X = panel[["f1", "f2"]].to_numpy()
    cases = [
        lambda: list(_sbk().split(X)),
        lambda: list(_sbk().split(X, groups=panel["unit_id"].iloc[:5])),
        lambda: list(_sbk().split(X, groups=np.zeros((len(X), 2)))),
        lambda: list(ForwardSplit().split(X)),
        lambda: list(ForwardSplit().split(X, groups=["x"] * len(X))),
        lambda: ForwardSplit().get_n_splits(),
        lambda: list(SpatioTemporalSplit(cell_col="unit_id").split(X, groups=panel["unit_id"])),
        lambda: list(RandomKFold(3).split(X, groups=["a", "b"] * (len(X) // 2))),
        lambda: list(RandomKFold(3).split(X[:2])),
        lambda: list(_sbk().split(panel, panel["target_any"].iloc[:10])),
        lambda: SpatialBlockKFold(n_splits=1),
        lambda: ForwardSplit(test_years=[2015.5]),
        lambda: RandomKFold(random_state=-1),
    ]
    for case in cases:
        with pytest.raises(ValueError) as info:
            case()
        assert isinstance(info.value, SplitInputError | SplitParameterError)
        assert str(info.value)


# --------------------------------------------------------------------------- property


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(4, 12),
    n_splits=st.integers(2, 4),
    parent_res=st.integers(6, 8),
    rings=st.integers(0, 2),
    stratify=st.booleans(),
    seed=st.integers(0, 1000),
    n_years=st.integers(2, 5),
    rate=st.floats(0.0, 1.0),
)
def test_property_folds_partition(n, n_splits, parent_res, rings, stratify, seed, n_years, rate):
    rng = np.random.default_rng(seed)
    cells = _cells(n, step=float(rng.uniform(0.002, 0.01)))
    keep = rng.random(len(cells)) < 0.8
    cells = [c for c, k in zip(cells, keep, strict=True) if k] or cells[:1]
    df = _panel(cells, years=list(range(2000, 2000 + n_years)), seed=seed, rate=rate)
    n_blocks = len(set(_blocks(df, parent_res).tolist()))
    cv = SpatialBlockKFold(n_splits, parent_res, "unit_id", rings, stratify, seed)
    if n_blocks < n_splits:
        with pytest.raises(InputDataError):
            list(cv.split(df, df["target_any"]))
        return
    seen = np.zeros(len(df), int)
    for tr, te in cv.split(df, df["target_any"]):
        assert te.size > 0
        assert np.intersect1d(tr, te).size == 0
        assert np.unique(tr).size == tr.size
        seen[te] += 1
    assert (seen == 1).all()
    ft = ForwardSplit(min_train_years=1)
    years = df["year"].to_numpy()
    for tr, te in ft.split(df):
        assert np.intersect1d(tr, te).size == 0
        assert years[tr].max() < years[te].min()


# --------------------------------------------------------------------------- fast paths


@settings(max_examples=80, derandomize=True, deadline=None)
@given(
    n_groups=st.integers(3, 40),
    n_splits=st.integers(2, 5),
    rows=st.integers(40, 400),
    rate=st.floats(0.05, 0.6),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
def test_stratified_group_folds_are_scikit_learns(n_groups, n_splits, rows, rate, seed, data):
    """The array form gives the folds of StratifiedGroupKFold's own split, row for row."""
    from sklearn.model_selection import StratifiedGroupKFold

    from twmb_geo.model.splitters import _stratified_group_folds

    rng = np.random.default_rng(data.draw(st.integers(0, 10_000)))
    group = np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, rows)])
    rng.shuffle(group)
    pos = rng.random(group.size) < rate
    if min(pos.sum(), (~pos).sum()) < n_splits or n_groups < n_splits:
        return
    want = np.full(group.size, -1)
    cv = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
    for k, (_, te) in enumerate(cv.split(np.zeros((group.size, 1)), pos, group)):
        want[te] = k
    np.testing.assert_array_equal(_stratified_group_folds(pos, group, n_splits, seed), want)


@pytest.mark.parametrize("dtype", ["object", "string[pyarrow]", "string[python]"])
def test_unique_strings_equal_numpys(dtype):
    from twmb_geo.model.splitters import _unique_strings

    values = ["8a2", "89f", None, "8a2", "", "89f", "8a0", None, "ä", "8a0"]
    col = pd.Series(values, dtype=dtype)
    raw = col.astype(object).where(col.notna(), "").astype(str).to_numpy()
    want_u, want_inv = np.unique(raw, return_inverse=True)
    got_u, got_inv = _unique_strings(col)
    np.testing.assert_array_equal(got_u, want_u)
    np.testing.assert_array_equal(got_inv, want_inv)


def test_unit_check_ignores_rows_without_a_unit_id():
    """Only units with an id must keep one cell (as the grouped check did)."""
    cells = [h3i.int_to_str(c) for c in _cells(6)]
    df = pd.DataFrame(
        {
            "unit_type": "pipe",
            "unit_id": ["a", "a", None, None, "b", "b"] * 2,
            "cell": [cells[0], cells[0], cells[1], cells[2], cells[3], cells[3]] * 2,
            "year": np.repeat([2010, 2011], 6),
        }
    )
    assert len(list(SpatialBlockKFold(n_splits=2, parent_res=8).split(df))) == 2
    df.loc[4, "cell"] = cells[5]
    with pytest.raises(InputDataError, match="1 unit"):
        list(SpatialBlockKFold(n_splits=2, parent_res=8).split(df))
