"""Tests of twmb_geo.features.esda: yearly global/local Moran's I, BH FDR, hot-spot persistence."""

from __future__ import annotations

import warnings
from typing import Any

import esda
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from libpysal.graph import Graph
from scipy.stats import false_discovery_control

from twmb_geo.core.cluster import ClusterSpec, open_client
from twmb_geo.errors import InputDataError
from twmb_geo.features.esda import (
    CLUSTER_LABELS,
    GLOBAL_COLUMNS,
    LOCAL_COLUMNS,
    PERSISTENCE_CLASSES,
    PERSISTENCE_COLUMNS,
    benjamini_hochberg,
    global_moran_by_year,
    hotspot_persistence,
    local_moran_by_year,
)

SIDE = 10
IDS = [f"u{i:03d}" for i in range(SIDE * SIDE)]
ROW, COL = np.divmod(np.arange(SIDE * SIDE), SIDE)
#: 5 x 5 block in the lower-left corner of the lattice.
BLOCK = (ROW < 5) & (COL < 5)
PERMS = 99


def _lattice_frame(extra_islands: int = 0) -> gpd.GeoDataFrame:
    polys = [shapely.box(c, r, c + 1, r + 1) for r, c in zip(ROW, COL, strict=True)]
    ids = list(IDS)
    for k in range(extra_islands):  # far away from the lattice and from each other
        polys.append(shapely.box(50 + 5 * k, 50, 51 + 5 * k, 51))
        ids.append(f"z{k:02d}")
    return gpd.GeoDataFrame(geometry=polys, index=pd.Index(ids, name="unit_id"))


@pytest.fixture(scope="module")
def lattice() -> Graph:
    """10 x 10 rook contiguity, binary weights, ids u000..u099."""
    return Graph.build_contiguity(_lattice_frame(), rook=True)


@pytest.fixture(scope="module")
def lattice_islands() -> Graph:
    """The 10 x 10 lattice plus two isolated polygons z00, z01."""
    return Graph.build_contiguity(_lattice_frame(extra_islands=2), rook=True)


def make_panel(by_year: dict[int, np.ndarray], ids: list[str] | None = None) -> pd.DataFrame:
    """Long panel: breaks per unit and year, rate = breaks / 2 km."""
    ids = IDS if ids is None else ids
    frames = [
        pd.DataFrame({"unit_id": ids, "year": year, "breaks": np.asarray(v, dtype=float)})
        for year, v in by_year.items()
    ]
    panel = pd.concat(frames, ignore_index=True)
    panel["rate_per_km"] = panel["breaks"] / 2.0
    return panel


def clustered(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(BLOCK, 10 + rng.poisson(1.0, SIDE * SIDE), rng.poisson(0.5, SIDE * SIDE))


@pytest.fixture(scope="module")
def clustered_panel() -> pd.DataFrame:
    return make_panel({2020 + k: clustered(k) for k in range(3)})


@pytest.fixture(scope="module")
def noise_panel() -> pd.DataFrame:
    rng = np.random.default_rng(2024)
    return make_panel({2000 + k: rng.poisson(2.0, SIDE * SIDE) for k in range(10)})


# --------------------------------------------------------------------------- global


def test_clustered_pattern_has_significant_positive_global_moran(lattice, clustered_panel):
    out = global_moran_by_year(clustered_panel, lattice, permutations=PERMS)
    assert list(out.columns) == list(GLOBAL_COLUMNS)
    assert list(zip(out["year"], out["variable"], strict=True)) == [
        (y, v) for y in (2020, 2021, 2022) for v in ("breaks", "rate_per_km")
    ]
    assert (out["moran_i"] > 0.6).all()
    assert (out["z_norm"] > 5).all() and (out["z_sim"] > 5).all()
    assert (out["p_norm"] < 1e-6).all()
    assert np.allclose(out["p_sim"], 2 / (PERMS + 1))  # two-sided minimum
    assert (out["n"] == 100).all() and (out["n_islands_excluded"] == 0).all()
    assert np.allclose(out["expected_i"], -1 / 99)
    assert (out["permutations"] == PERMS).all() and out["note"].isna().all()
    # a rate proportional to the count has the same I
    b, r = out[out.variable == "breaks"], out[out.variable == "rate_per_km"]
    np.testing.assert_allclose(b["moran_i"].to_numpy(), r["moran_i"].to_numpy())


def test_checkerboard_has_negative_global_moran(lattice):
    board = ((ROW + COL) % 2).astype(float) * 3
    out = global_moran_by_year(make_panel({2021: board}), lattice, permutations=PERMS)
    assert np.allclose(out["moran_i"], -1.0)  # every rook neighbour is the opposite colour
    assert (out["z_norm"] < -5).all() and (out["p_sim"] <= 0.02).all()
    lisa = local_moran_by_year(make_panel({2021: board}), lattice, permutations=PERMS)
    assert (lisa["local_i"] < 0).all()
    assert set(lisa["quadrant"]) == {2, 4}  # only LH and HL
    assert not lisa["cluster"].isin(["hot spot", "cold spot"]).any()


def test_random_noise_is_mostly_not_significant(lattice, noise_panel):
    out = global_moran_by_year(noise_panel, lattice, value_cols=["breaks"], permutations=PERMS)
    assert (out["p_sim"] > 0.05).mean() >= 0.8
    assert out["moran_i"].abs().max() < 0.25
    lisa = local_moran_by_year(noise_panel, lattice, permutations=PERMS)
    assert (lisa["p_sim"] > 0.05).mean() > 0.9
    assert lisa["significant"].mean() < 0.01  # after FDR: (almost) nothing


def test_constant_year_gives_nan_with_note(lattice):
    panel = make_panel({2019: np.zeros(100), 2020: clustered(1)})
    out = global_moran_by_year(panel, lattice, permutations=PERMS)
    const = out[out["year"] == 2019]
    assert (const["note"] == "constant").all()
    for col in ("moran_i", "z_norm", "p_norm", "p_sim", "z_sim"):
        assert const[col].isna().all()
    assert out.loc[out["year"] == 2020, "moran_i"].notna().all()
    lisa = local_moran_by_year(panel, lattice, permutations=PERMS)
    c = lisa[lisa["year"] == 2019]
    assert c[["local_i", "p_sim", "q_value"]].isna().all().all()
    assert c["quadrant"].isna().all() and (c["cluster"] == "not significant").all()
    assert not c["significant"].any()


def test_binary_and_row_standardised_graphs_agree(lattice, clustered_panel):
    row_std = lattice.transform("r")
    a = global_moran_by_year(clustered_panel, lattice, permutations=PERMS)
    b = global_moran_by_year(clustered_panel, row_std, permutations=PERMS)
    pd.testing.assert_frame_equal(a, b)
    la = local_moran_by_year(clustered_panel, lattice, permutations=PERMS)
    lb = local_moran_by_year(clustered_panel, row_std, permutations=PERMS)
    pd.testing.assert_frame_equal(la, lb)


# --------------------------------------------------------------------------- local


def test_hot_spots_lie_in_the_high_block(lattice, clustered_panel):
    interior = np.array(IDS)[(ROW >= 1) & (ROW <= 3) & (COL >= 1) & (COL <= 3)]
    # raw p-values (no FDR), cheap: the block's 3 x 3 interior (four high neighbours each)
    raw = local_moran_by_year(clustered_panel, lattice, permutations=PERMS, fdr=False)
    in_block = raw["unit_id"].isin(np.array(IDS)[BLOCK])
    assert (raw.loc[raw["unit_id"].isin(interior), "cluster"] == "hot spot").all()
    assert (raw.loc[raw["cluster"] == "hot spot", "unit_id"].isin(np.array(IDS)[BLOCK])).all()
    assert not raw.loc[in_block, "cluster"].isin(["cold spot", "low outlier"]).any()

    # the one check with many permutations: two-sided p + BH FDR across 100 units needs
    # p_sim well below 0.05 * k / 100, out of reach of 999 permutations for a 25-unit plateau
    lisa = local_moran_by_year(clustered_panel, lattice, permutations=9999)
    assert list(lisa.columns) == list(LOCAL_COLUMNS)
    assert set(lisa["cluster"]) <= set(CLUSTER_LABELS)
    hot = lisa["cluster"] == "hot spot"
    assert lisa.loc[hot, "year"].nunique() == 3  # hot spots every year ...
    assert lisa.loc[hot, "unit_id"].isin(np.array(IDS)[BLOCK]).all()  # ... only in the block
    assert lisa.loc[hot, "unit_id"].isin(interior).mean() > 0.8  # ... mostly its interior
    assert (lisa.loc[hot, "quadrant"] == 1).all() and (lisa.loc[hot, "q_value"] < 0.05).all()
    assert hot.sum() >= 15


def test_local_output_shape_order_and_significance_rules(lattice, clustered_panel):
    shuffled = clustered_panel.sample(frac=1.0, random_state=3)
    lisa = local_moran_by_year(shuffled, lattice, permutations=PERMS, alpha=0.1)
    assert len(lisa) == 300
    expected = pd.MultiIndex.from_product([[2020, 2021, 2022], IDS])
    assert list(zip(lisa["year"], lisa["unit_id"], strict=True)) == list(expected)
    np.testing.assert_array_equal(
        lisa["value"].to_numpy(),
        clustered_panel.sort_values(["year", "unit_id"])["breaks"].to_numpy(),
    )
    for _, year in lisa.groupby("year"):
        np.testing.assert_allclose(year["q_value"], benjamini_hochberg(year["p_sim"]))
    assert (lisa["significant"] == (lisa["q_value"] < 0.1)).all()
    raw = local_moran_by_year(clustered_panel, lattice, permutations=PERMS, fdr=False, alpha=0.1)
    assert (raw["significant"] == (raw["p_sim"] < 0.1)).all()
    assert raw["significant"].sum() >= lisa["significant"].sum()
    labels = {1: "hot spot", 2: "low outlier", 3: "cold spot", 4: "high outlier"}
    sig = raw[raw["significant"]]
    assert (sig["cluster"] == sig["quadrant"].map(labels)).all()
    assert (raw.loc[~raw["significant"], "cluster"] == "not significant").all()


@pytest.fixture
def legacy_rng():
    """Restore NumPy's legacy global generator after a test that seeds it (as esda does)."""
    state = np.random.get_state()  # noqa: NPY002
    yield np.random
    np.random.set_state(state)  # noqa: NPY002


def irregular_city() -> tuple[Graph, dict[int, np.ndarray], pd.DataFrame]:
    """A distance-band graph of 150 points with uneven cardinalities, three years of counts
    and a constant year."""
    rng = np.random.default_rng(3)
    ids = [f"p{i:03d}" for i in range(150)]
    pts = gpd.GeoSeries(gpd.points_from_xy(*rng.random((2, 150))), index=pd.Index(ids))
    graph = Graph.build_distance_band(pts, 0.16)
    cards = graph.cardinalities
    assert cards.min() >= 1 and cards.nunique() > 5
    years = {2020 + k: rng.poisson(0.8 + k, 150).astype(float) for k in range(3)}
    years[2023] = np.ones(150)
    return graph, years, make_panel(years, ids)


def test_every_year_matches_esda_on_an_irregular_graph(legacy_rng, monkeypatch):
    """The draws made once for all years (in small blocks here) give esda's statistics
    year by year, bit for bit, on a graph of uneven cardinalities with a constant year."""
    from twmb_geo.features.esda import lisa, moran

    monkeypatch.setattr(lisa, "_DRAW_BLOCK", 700)
    monkeypatch.setattr(moran, "_PERMUTED_BLOCK", 900)
    graph, years, panel = irregular_city()
    perms, seed = 49, 9
    local = local_moran_by_year(panel, graph, permutations=perms, seed=seed, alternative="directed")
    two = local_moran_by_year(panel, graph, permutations=perms, seed=seed)
    glob = global_moran_by_year(
        panel, graph, value_cols=["breaks", "rate_per_km"], permutations=perms, seed=seed
    )
    assert local.loc[local["year"] == 2023, "p_sim"].isna().all()
    for year, y in list(years.items())[:3]:
        got = local[local["year"] == year]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ref = esda.Moran_Local(y, graph, permutations=perms, seed=seed, n_jobs=1)
        np.testing.assert_array_equal(got["local_i"].to_numpy(), ref.Is)
        np.testing.assert_array_equal(got["p_sim"].to_numpy(), ref.p_sim)
        greater = ((ref.rlisas >= ref.Is[:, None]).sum(1) + 1) / (perms + 1)
        lesser = ((ref.rlisas <= ref.Is[:, None]).sum(1) + 1) / (perms + 1)
        np.testing.assert_array_equal(
            two.loc[two["year"] == year, "p_sim"], np.minimum(1, 2 * np.minimum(greater, lesser))
        )
        for col in ("breaks", "rate_per_km"):
            values = panel.loc[panel["year"] == year, col].to_numpy()
            legacy_rng.seed(seed)
            gref = esda.Moran(values, graph, permutations=perms, two_tailed=True)
            row = glob[(glob["year"] == year) & (glob["variable"] == col)].iloc[0]
            sim_greater = ((gref.sim >= gref.I).sum() + 1) / (perms + 1)
            sim_lesser = ((gref.sim <= gref.I).sum() + 1) / (perms + 1)
            assert row["z_sim"] == gref.z_sim and row["moran_i"] == gref.I
            assert row["p_sim"] == min(1.0, 2 * min(sim_greater, sim_lesser))


def test_tasks_here_and_on_a_cluster_give_the_same_frames():
    """LISA's units and the global statistic's permutations split into tasks, in this
    process and on a Dask LocalCluster of two workers: the same frames as one task."""
    from distributed import get_task_stream

    graph, _, panel = irregular_city()
    kw: dict[str, Any] = {"permutations": 49, "seed": 9}
    local = local_moran_by_year(panel, graph, **kw)
    glob = global_moran_by_year(panel, graph, value_cols=["breaks", "rate_per_km"], **kw)
    pd.testing.assert_frame_equal(local_moran_by_year(panel, graph, block_units=7, **kw), local)
    pd.testing.assert_frame_equal(
        global_moran_by_year(
            panel, graph, value_cols=["breaks", "rate_per_km"], block_permutations=5, **kw
        ),
        glob,
    )
    with (
        open_client(ClusterSpec("local", workers=2, worker_memory="1GiB")) as client,
        get_task_stream(client) as tasks,
    ):
        there = local_moran_by_year(panel, graph, block_units=20, client=client, **kw)
        there_glob = global_moran_by_year(
            panel, graph, value_cols=["breaks", "rate_per_km"], client=client, **kw
        )
    pd.testing.assert_frame_equal(there, local)
    pd.testing.assert_frame_equal(there_glob, glob)
    # LISA: 8 tasks of at most 20 units; Moran: 4 of at most 13 permutations
    assert sum(t["key"].startswith("_apply") for t in tasks.data) == 8 + 4
    with pytest.raises(InputDataError, match="block_units must be a positive integer"):
        local_moran_by_year(panel, graph, block_units=0, **kw)


def test_same_seed_same_frames_and_caller_rng_untouched(lattice, clustered_panel, legacy_rng):
    legacy_rng.seed(123)
    before = legacy_rng.get_state()[1].copy()
    g1 = global_moran_by_year(clustered_panel, lattice, permutations=PERMS, seed=7)
    l1 = local_moran_by_year(clustered_panel, lattice, permutations=PERMS, seed=7)
    np.testing.assert_array_equal(legacy_rng.get_state()[1], before)
    legacy_rng.seed(999)  # a different global state must not matter
    g2 = global_moran_by_year(clustered_panel, lattice, permutations=PERMS, seed=7)
    l2 = local_moran_by_year(clustered_panel, lattice, permutations=PERMS, seed=7)
    pd.testing.assert_frame_equal(g1, g2)
    pd.testing.assert_frame_equal(l1, l2)
    l3 = local_moran_by_year(clustered_panel, lattice, permutations=PERMS, seed=8)
    assert not np.array_equal(l1["p_sim"].to_numpy(), l3["p_sim"].to_numpy())
    np.testing.assert_array_equal(l1["local_i"].to_numpy(), l3["local_i"].to_numpy())
    # a year's result does not depend on the other years in the panel
    one = local_moran_by_year(
        clustered_panel[clustered_panel["year"] == 2021], lattice, permutations=PERMS, seed=7
    )
    pd.testing.assert_frame_equal(one, l1[l1["year"] == 2021].reset_index(drop=True))


def test_wrapper_matches_esda_directly(lattice, legacy_rng):
    y = clustered(5).astype(float)
    panel = make_panel({2022: y})
    lisa = local_moran_by_year(panel, lattice, permutations=PERMS, seed=11, alternative="directed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref = esda.Moran_Local(y, lattice, permutations=PERMS, seed=11, n_jobs=1)
    np.testing.assert_array_equal(lisa["local_i"].to_numpy(), ref.Is)
    np.testing.assert_array_equal(lisa["p_sim"].to_numpy(), ref.p_sim)
    np.testing.assert_array_equal(lisa["quadrant"].to_numpy(dtype=int), ref.q)
    # two-sided = twice the smaller one-sided pseudo p-value of the same draws, capped at 1
    two = local_moran_by_year(panel, lattice, permutations=PERMS, seed=11)
    sims = ref.rlisas
    greater = ((sims >= ref.Is[:, None]).sum(1) + 1) / (PERMS + 1)
    lesser = ((sims <= ref.Is[:, None]).sum(1) + 1) / (PERMS + 1)
    np.testing.assert_allclose(two["p_sim"], np.minimum(1, 2 * np.minimum(greater, lesser)))
    assert (two["p_sim"] >= lisa["p_sim"]).all()
    greater_only = local_moran_by_year(
        panel, lattice, permutations=PERMS, seed=11, alternative="greater"
    )
    np.testing.assert_allclose(greater_only["p_sim"], greater)

    glob = global_moran_by_year(
        panel, lattice, value_cols=["breaks"], permutations=PERMS, seed=11, alternative="directed"
    )
    legacy_rng.seed(11)
    gref = esda.Moran(y, lattice, permutations=PERMS, two_tailed=True)
    row = glob.iloc[0]
    assert row["moran_i"] == pytest.approx(gref.I, abs=0, rel=1e-15)
    assert row["p_sim"] == gref.p_sim and row["z_sim"] == gref.z_sim
    assert row["z_norm"] == pytest.approx(gref.z_norm)
    assert row["p_norm"] == pytest.approx(gref.p_norm / 2)  # directed = one tail
    two_g = global_moran_by_year(panel, lattice, value_cols=["breaks"], permutations=PERMS, seed=11)
    assert two_g["p_norm"].iloc[0] == pytest.approx(gref.p_norm)  # esda two_tailed=True


def test_absent_unit_years_count_as_zero(lattice, clustered_panel):
    # drop zero rows, keeping one row per unit so that the graph still matches the panel
    first = ~clustered_panel["unit_id"].duplicated()
    sparse = clustered_panel[(clustered_panel["breaks"] > 0) | first]
    assert len(sparse) < len(clustered_panel) - 20
    pd.testing.assert_frame_equal(
        global_moran_by_year(sparse, lattice, permutations=PERMS),
        global_moran_by_year(clustered_panel, lattice, permutations=PERMS),
    )
    pd.testing.assert_frame_equal(
        local_moran_by_year(sparse, lattice, permutations=PERMS),
        local_moran_by_year(clustered_panel, lattice, permutations=PERMS),
    )


def test_islands_are_excluded_and_labelled(lattice, lattice_islands, clustered_panel):
    assert sorted(lattice_islands.isolates) == ["z00", "z01"]
    extra = pd.DataFrame(
        {"unit_id": ["z00", "z01", "z00"], "year": [2020, 2020, 2021], "breaks": [50.0, 0, 7]}
    )
    extra["rate_per_km"] = extra["breaks"] / 2
    panel = pd.concat([clustered_panel, extra], ignore_index=True)

    glob = global_moran_by_year(panel, lattice_islands, permutations=PERMS)
    assert (glob["n"] == 100).all() and (glob["n_islands_excluded"] == 2).all()
    pd.testing.assert_frame_equal(
        glob.drop(columns="n_islands_excluded"),
        global_moran_by_year(clustered_panel, lattice, permutations=PERMS).drop(
            columns="n_islands_excluded"
        ),
    )

    lisa = local_moran_by_year(panel, lattice_islands, permutations=PERMS)
    assert len(lisa) == 3 * 102
    isl = lisa[lisa["unit_id"].isin(["z00", "z01"])]
    assert (isl["cluster"] == "island").all() and not isl["significant"].any()
    assert isl[["local_i", "p_sim", "q_value"]].isna().all().all()
    assert isl["quadrant"].isna().all()
    assert isl.loc[isl["year"] == 2020, "value"].tolist() == [50.0, 0.0]
    assert isl.loc[isl["year"] == 2022, "value"].tolist() == [0.0, 0.0]  # absent -> 0
    rest = lisa[~lisa["unit_id"].isin(["z00", "z01"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        rest, local_moran_by_year(clustered_panel, lattice, permutations=PERMS)
    )
    pers = hotspot_persistence(lisa)
    assert pers.set_index("unit_id").loc[["z00", "z01"], "class"].eq("not assessed").all()


def test_integer_ids_and_custom_column_names():
    # a 2 x 3 grid from arrays, plus one island (id 6: zero-weight self-loop)
    edges = [(0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (1, 4), (2, 5)]
    focal = [a for a, b in edges] + [b for a, b in edges] + [6]
    neigh = [b for a, b in edges] + [a for a, b in edges] + [6]
    weight = [1.0] * (2 * len(edges)) + [0.0]
    graph = Graph.from_arrays(np.array(focal), np.array(neigh), np.array(weight))
    panel = pd.DataFrame(
        {"hood": list(range(7)) * 2, "yr": [2001] * 7 + [2000] * 7, "n": [5, 4, 0, 6, 1, 0, 2] * 2}
    )
    glob = global_moran_by_year(panel, graph, value_cols=["n"], unit_col="hood", year_col="yr")
    assert glob.columns[0] == "yr" and glob["yr"].tolist() == [2000, 2001]
    assert (glob["n"] == 6).all() and (glob["n_islands_excluded"] == 1).all()
    lisa = local_moran_by_year(
        panel, graph, value_col="n", unit_col="hood", year_col="yr", permutations=PERMS
    )
    assert list(lisa.columns[:2]) == ["hood", "yr"]
    assert lisa["hood"].tolist() == list(range(7)) * 2 and lisa["yr"].tolist()[0] == 2000
    pers = hotspot_persistence(lisa, unit_col="hood", year_col="yr")
    assert pers.columns[0] == "hood" and pers.loc[6, "class"] == "not assessed"


# --------------------------------------------------------------------------- BH FDR


def brute_force_bh(p: list[float]) -> list[float]:
    """q_i = min over p_j >= p_i of min(1, m p_j / #{l: p_l <= p_j})."""
    m = len(p)
    return [min(min(1.0, m * pj / sum(pl <= pj for pl in p)) for pj in p if pj >= pi) for pi in p]


def test_bh_hand_example_and_nans():
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.2])
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    q = benjamini_hochberg([np.nan, 0.01, 0.04, np.nan, 0.03, 0.2])
    assert np.isnan(q[[0, 3]]).all()
    np.testing.assert_allclose(q[[1, 2, 4, 5]], [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert benjamini_hochberg([]).shape == (0,)
    assert np.isnan(benjamini_hochberg([np.nan, np.nan])).all()
    np.testing.assert_allclose(benjamini_hochberg([0.9, 0.95, 0.99]), [0.99, 0.99, 0.99])
    with pytest.raises(InputDataError, match=r"\[0, 1\]"):
        benjamini_hochberg([0.5, 1.5])


# p-values on a coarse grid so that ties (as with permutation p-values) are common
p_lists = st.lists(
    st.one_of(
        st.integers(1, 100).map(lambda k: k / 100),
        st.floats(0, 1, allow_nan=False, allow_subnormal=False),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(p_lists)
def test_bh_matches_brute_force_and_properties(p):
    q = benjamini_hochberg(p)
    parr = np.asarray(p)
    np.testing.assert_allclose(q, brute_force_bh(p), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(q, false_discovery_control(parr, method="bh"), rtol=1e-12)
    assert (q >= parr - 1e-15).all()
    assert (q <= 1.0).all()
    order = np.argsort(parr, kind="stable")
    assert (np.diff(q[order]) >= -1e-15).all()  # monotone in p order
    ties = parr[:, None] == parr[None, :]
    assert all(q[i] == q[j] for i, j in zip(*np.nonzero(ties), strict=True))  # ties share q


# --------------------------------------------------------------------------- persistence

YEARS = list(range(2010, 2020))  # recent window (5 years) = 2015..2019
N = "not significant"
H = "hot spot"
C = "cold spot"
I = "island"  # noqa: E741


def lisa_table(patterns: dict[str, list[str]], years: list[int] = YEARS) -> pd.DataFrame:
    rows = [
        (unit, year, cl)
        for unit, seq in patterns.items()
        for year, cl in zip(years, seq, strict=True)
    ]
    return pd.DataFrame(rows, columns=["unit_id", "year", "cluster"])


PATTERNS: dict[str, tuple[list[str], str]] = {
    # unit: (clusters 2010..2019, expected class)
    "a_persistent": ([H] * 7 + [N] * 3, "persistent hot spot"),
    "b_emerging": ([N] * 7 + [H, H, N], "emerging hot spot"),
    # persistent beats emerging: hot all 5 recent years, never before, 5/6 assessed years
    "b2_persist_over_emerging": ([I] * 4 + [N] + [H] * 5, "persistent hot spot"),
    # emerging needs an assessed year before the window: island before, 2/5 -> intermittent
    "b3_no_history": ([I] * 5 + [H, H, N, N, N], "intermittent hot spot"),
    # hot before the window -> not emerging, 3/10 < 0.5 -> intermittent
    "c_intermittent": ([H, N, N, H, N, N, N, N, H, N], "intermittent hot spot"),
    "d_transient": ([N, N, H] + [N] * 7, "transient hot spot"),
    # a single assessed year that is hot: share 1.0, but persistence needs >= 2 hot years
    "d2_single_year": ([I] * 9 + [H], "transient hot spot"),
    # hot classes take precedence over cold ones
    "d3_hot_once_cold_often": ([H] + [C] * 9, "transient hot spot"),
    "e_persistent_cold": ([C] * 6 + [N] * 4, "persistent cold spot"),
    "f_cold_sometimes": ([N, C, C] + [N] * 7, "other significant"),
    "g_outlier_only": ([N] * 4 + ["high outlier"] + [N] * 4 + ["low outlier"], "other significant"),
    "h_never": ([N] * 10, "never significant"),
    "h2_single_cold": ([C] + [N] * 9, "other significant"),
    "i_island": ([I] * 10, "not assessed"),
}


def test_persistence_classes_and_precedence():
    table = lisa_table({u: seq for u, (seq, _) in PATTERNS.items()})
    out = hotspot_persistence(table.sample(frac=1.0, random_state=0), min_share=0.5)
    assert list(out.columns) == list(PERSISTENCE_COLUMNS)
    assert out["unit_id"].tolist() == sorted(PATTERNS)
    got = dict(zip(out["unit_id"], out["class"], strict=True))
    assert got == {u: cls for u, (_, cls) in PATTERNS.items()}
    assert set(got.values()) == set(PERSISTENCE_CLASSES)  # every class is covered
    r = out.set_index("unit_id")
    a = r.loc["a_persistent"]
    assert (a.years_observed, a.years_hot, a.first_hot, a.last_hot) == (10, 7, 2010, 2016)
    assert (a.longest_hot_run, a.years_hot_recent, a.hot_recent) == (7, 2, True)
    assert a.share_hot == pytest.approx(0.7)
    c = r.loc["c_intermittent"]
    assert (c.longest_hot_run, c.years_hot_recent, c.hot_recent) == (1, 1, True)
    assert r.loc["d2_single_year", "years_observed"] == 1
    assert r.loc["d2_single_year", "share_hot"] == 1.0
    e = r.loc["e_persistent_cold"]
    assert (e.years_cold, e.years_hot, e.share_cold) == (6, 0, 0.6)
    assert pd.isna(e.first_hot) and pd.isna(e.last_hot) and e.longest_hot_run == 0
    i = r.loc["i_island"]
    assert i.years_observed == 0 and np.isnan(i.share_hot) and not i.hot_recent
    # a lower threshold turns the intermittent unit persistent; recent_years moves the window
    assert (
        hotspot_persistence(table, min_share=0.3)
        .set_index("unit_id")
        .loc["c_intermittent", "class"]
        == "persistent hot spot"
    )
    wide = hotspot_persistence(table, recent_years=2).set_index("unit_id")
    assert wide.loc["b_emerging", "class"] == "intermittent hot spot"  # 2017 is outside
    assert not wide.loc["a_persistent", "hot_recent"]


def test_hot_runs_follow_the_tables_years():
    # 2002 is absent from the whole table: 2000, 2001, 2003 is one run
    table = lisa_table({"x": [H, H, H], "y": [H, N, H]}, years=[2000, 2001, 2003])
    r = hotspot_persistence(table).set_index("unit_id")
    assert r.loc["x", "longest_hot_run"] == 3 and r.loc["y", "longest_hot_run"] == 1
    # an island year breaks a run
    table = lisa_table({"x": [H, I, H, H], "y": [N] * 4}, years=[2000, 2001, 2002, 2003])
    r = hotspot_persistence(table).set_index("unit_id")
    assert r.loc["x", "longest_hot_run"] == 2 and r.loc["x", "years_observed"] == 3


def reference_class(seq: list[str], years: list[int], min_share: float, recent: int) -> str:
    """Plain-Python statement of the precedence rules in the module docstring."""
    cut = max(years) - recent
    obs = [c != I for c in seq]
    n_obs = sum(obs)
    hot = [c == H for c in seq]
    n_hot, n_cold = sum(hot), sum(c == C for c in seq)
    hot_recent = sum(h for h, y in zip(hot, years, strict=True) if y > cut)
    hot_before = sum(h for h, y in zip(hot, years, strict=True) if y <= cut)
    obs_before = sum(o for o, y in zip(obs, years, strict=True) if y <= cut)
    if n_obs == 0:
        return "not assessed"
    if n_hot >= 2 and n_hot / n_obs >= min_share:
        return "persistent hot spot"
    if hot_recent >= 2 and hot_before == 0 and obs_before > 0:
        return "emerging hot spot"
    if n_hot >= 2:
        return "intermittent hot spot"
    if n_hot == 1:
        return "transient hot spot"
    if n_cold >= 2 and n_cold / n_obs >= min_share:
        return "persistent cold spot"
    if any(c not in (N, I) for c in seq):
        return "other significant"
    return "never significant"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(CLUSTER_LABELS), min_size=8, max_size=8), min_size=1, max_size=12
    ),
    st.sampled_from([0.25, 0.5, 0.75, 1.0]),
    st.integers(1, 8),
)
def test_persistence_matches_reference_rules(seqs, min_share, recent):
    years = list(range(2001, 2009))
    patterns = {f"u{k:02d}": seq for k, seq in enumerate(seqs)}
    out = hotspot_persistence(lisa_table(patterns, years), min_share=min_share, recent_years=recent)
    assert out["class"].isin(PERSISTENCE_CLASSES).all()
    expected = [reference_class(patterns[u], years, min_share, recent) for u in out["unit_id"]]
    assert out["class"].tolist() == expected
    for row in out.itertuples(index=False):
        hot_years = [y for y, c in zip(years, patterns[row.unit_id], strict=True) if c == H]
        runs = "".join("1" if c == H else "0" for c in patterns[row.unit_id]).split("0")
        assert row.longest_hot_run == max(len(r) for r in runs)
        assert row.years_hot == len(hot_years)
        assert row.hot_recent == any(y > years[-1] - recent for y in hot_years)
        if hot_years:
            assert (row.first_hot, row.last_hot) == (hot_years[0], hot_years[-1])
        else:
            assert pd.isna(row.first_hot) and pd.isna(row.last_hot)


# --------------------------------------------------------------------------- bad input


def test_missing_columns_are_named(lattice, clustered_panel):
    with pytest.raises(InputDataError, match=r"missing column.*'rate_per_km'"):
        global_moran_by_year(clustered_panel.drop(columns="rate_per_km"), lattice)
    with pytest.raises(InputDataError, match=r"missing column.*'unit_id'.*'breaks'"):
        local_moran_by_year(clustered_panel.drop(columns=["unit_id", "breaks"]), lattice)
    with pytest.raises(InputDataError, match=r"missing column.*'cluster'"):
        hotspot_persistence(clustered_panel)


def test_graph_id_mismatch_reports_counts_and_examples(lattice, clustered_panel):
    panel = clustered_panel.copy()
    panel.loc[panel["unit_id"] == "u007", "unit_id"] = "zz1"
    panel = panel[panel["unit_id"] != "u008"]
    with pytest.raises(InputDataError, match="do not match") as err:
        global_moran_by_year(panel, lattice, permutations=PERMS)
    text = str(err.value)
    assert "1 panel unit(s) missing from the graph: 'zz1'" in text
    assert "2 graph id(s) absent from the panel: 'u007', 'u008'" in text
    ints = clustered_panel.assign(unit_id=clustered_panel["unit_id"].str[1:].astype(int))
    with pytest.raises(InputDataError, match="dtype str; panel: 100 units, dtype int64"):
        local_moran_by_year(ints, lattice, permutations=PERMS)


@pytest.mark.parametrize(
    ("mutate", "col", "match"),
    [
        (lambda p: p.assign(breaks=p["breaks"] - 20), "breaks", "'breaks' has .* negative value"),
        (
            lambda p: p.assign(rate_per_km=p["rate_per_km"].where(p.index != 5)),
            "rate_per_km",
            r"'rate_per_km' has 1 missing or infinite value\(s\) \(units 'u005'\)",
        ),
        (lambda p: p.assign(breaks=p["breaks"].astype(str)), "breaks", "'breaks' must be numeric"),
        (lambda p: pd.concat([p, p.iloc[:2]]), "breaks", r"2 duplicated \(unit_id, year\)"),
        (lambda p: p.assign(year=p["year"] + 0.5), "breaks", "whole-number years"),
        (lambda p: p.iloc[:0], "breaks", "panel has no rows"),
    ],
)
def test_bad_panel_values(lattice, clustered_panel, mutate, col, match):
    bad = mutate(clustered_panel)
    with pytest.raises(InputDataError, match=match):
        global_moran_by_year(bad, lattice, permutations=PERMS)
    with pytest.raises(InputDataError, match=match):
        local_moran_by_year(bad, lattice, value_col=col, permutations=PERMS)


def test_too_few_units_and_bad_graphs(clustered_panel):
    two = Graph.from_arrays(np.array(["a", "b"]), np.array(["b", "a"]), np.array([1.0, 1.0]))
    panel = pd.DataFrame({"unit_id": ["a", "b"], "year": 2020, "breaks": [1.0, 2.0]})
    with pytest.raises(InputDataError, match="at least 3 units; the graph has 2"):
        local_moran_by_year(panel, two)
    # four units, but two are islands
    g = Graph.from_arrays(
        np.array(["a", "b", "c", "d"]), np.array(["b", "a", "c", "d"]), np.array([1.0, 1, 0, 0])
    )
    panel = pd.DataFrame({"unit_id": list("abcd"), "year": 2020, "breaks": [1.0, 2, 3, 4]})
    with pytest.raises(
        InputDataError, match=r"3 units with neighbours.*2 of its 4 units are islands"
    ):
        global_moran_by_year(panel, g, value_cols=["breaks"])
    with pytest.raises(InputDataError, match=r"libpysal\.graph\.Graph"):
        global_moran_by_year(clustered_panel, g.to_W())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.0}, "alpha must be in"),
        ({"alpha": 1.5}, "alpha must be in"),
        ({"permutations": 0}, "permutations must be >= 1"),
        ({"permutations": 9.5}, "permutations must be an integer"),
        ({"alternative": "two_sided"}, "alternative='two_sided' is not supported"),
        ({"seed": -1}, "seed must be"),
        ({"value_col": ["breaks"]}, "value_col must be one column name"),
    ],
)
def test_bad_local_parameters(lattice, clustered_panel, kwargs, match):
    with pytest.raises(InputDataError, match=match):
        local_moran_by_year(clustered_panel, lattice, **kwargs)


def test_bad_global_and_persistence_parameters(lattice, clustered_panel):
    with pytest.raises(InputDataError, match="value_cols must name"):
        global_moran_by_year(clustered_panel, lattice, value_cols=[])
    with pytest.raises(InputDataError, match="duplicates"):
        global_moran_by_year(clustered_panel, lattice, value_cols=["breaks", "breaks"])
    out = global_moran_by_year(clustered_panel, lattice, value_cols="breaks", permutations=0)
    assert out["p_sim"].isna().all() and out["p_norm"].notna().all()
    table = lisa_table({"x": [N] * 10})
    with pytest.raises(InputDataError, match="min_share must be in"):
        hotspot_persistence(table, min_share=0)
    with pytest.raises(InputDataError, match="recent_years must be"):
        hotspot_persistence(table, recent_years=0)
    with pytest.raises(InputDataError, match=r"unknown label.*'HH'"):
        hotspot_persistence(table.assign(cluster="HH"))
    with pytest.raises(InputDataError, match="duplicated"):
        hotspot_persistence(pd.concat([table, table.iloc[:1]]))
