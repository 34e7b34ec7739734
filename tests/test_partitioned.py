"""Spatial partitions with halos: break matching and the panel per partition (issue 16).

(Street links and the pipe-to-street apportionment: ``test_partitioned_streets.py``; on a
LocalCluster, in the synthetic city's test here.)

The partitioned matching must equal the whole-city matching exactly, at every partition
resolution (fine ones make most breaks sit near a partition edge), in this process and on a
Dask LocalCluster of two workers, and a worker killed in the middle of a task must change
nothing but the time. The partitioned panel (history, exposure, spatial lags of order 1 and
2, local density, near breaks) must equal the whole-city panel of every unit type.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from twmb_geo.core.cluster import (
    WORKER_ENVIRON,
    ClusterSpec,
    aligned,
    local_cluster,
    map_largest_first,
    map_partitions,
    open_client,
    shared_data,
)
from twmb_geo.core.compute import thread_plan
from twmb_geo.errors import ConfigError
from twmb_geo.features.partitioned import _codes, _present
from twmb_geo.spatial.partition import (
    choose_resolution,
    halo_members,
    home_cells,
    home_members,
)
from twmb_geo.spatial.partitioned import PartitionReport, link_breaks_to_pipes_partitioned
from twmb_geo.spatial.snapping import link_breaks_to_pipes
from twmb_geo.synth.matching import matching_case

X0, Y0 = 315_000.0, 4_840_000.0  # central Toronto, MTM zone 10 (the tests' analysis CRS)


@pytest.fixture(scope="module")
def town():
    """4,000 random pipes (about 11 km square) and 3,000 breaks near them."""
    return matching_case(4_000, 3_000, seed=7)


@pytest.fixture(scope="module")
def whole(town):
    breaks, pipes = town
    return link_breaks_to_pipes(breaks, pipes, tolerance_m=25.0)


@pytest.mark.parametrize("resolution", [5, 7, 8])
def test_partitioned_links_equal_the_whole_city(town, whole, resolution) -> None:
    breaks, pipes = town
    report = PartitionReport()
    got = link_breaks_to_pipes_partitioned(
        breaks, pipes, tolerance_m=25.0, resolution=resolution, report=report
    )
    pd.testing.assert_frame_equal(got, whole)
    assert report["resolution"] == resolution
    if resolution >= 8:  # hundreds of partitions: the halos matter
        assert report["partitions"] > 20 and report["halo_pipes"] > 100
    assert whole["status"].eq("matched").mean() > 0.8
    assert set(whole["method"].dropna()) == {"asset_id", "nearest"}
    assert {"no_pipe_in_tolerance", "no_pipe_in_service"} <= set(whole["reason"].dropna())


def test_resolution_is_chosen_from_the_data(town) -> None:
    breaks, pipes = town
    report = PartitionReport()
    link_breaks_to_pipes_partitioned(breaks, pipes, target_rows=200, report=report)
    assert report["largest"] <= 200
    coarser = choose_resolution(breaks["x"], breaks["y"], 3_000)
    assert coarser < report["resolution"]
    with pytest.raises(ConfigError, match="target_rows"):
        choose_resolution(breaks["x"], breaks["y"], 0)


def test_a_partitioning_made_again_is_remembered_not_shared(town) -> None:
    """The feature stage partitions the same units for their links, graphs and panel: the
    second time is remembered, and what a caller does to its homes changes nothing."""
    from twmb_geo.spatial import partition

    breaks, _ = town
    x, y = breaks["x"].to_numpy(dtype=float), breaks["y"].to_numpy(dtype=float)
    first = partition.partition_points(x, y, target_rows=300)
    made = partition._partition_points
    try:
        partition._partition_points = None  # a second making would fail
        again = partition.partition_points(x.copy(), y.copy(), target_rows=300)
    finally:
        partition._partition_points = made
    assert again[0] == first[0] and np.array_equal(again[1], first[1])
    again[1][:] = 0
    third = partition.partition_points(x, y, target_rows=300)
    assert np.array_equal(third[1], first[1])
    other = partition.partition_points(x, y + 1.0, target_rows=300)  # other points: made
    assert other[1].shape == first[1].shape


def test_breaks_without_coordinates_keep_their_id_links(town) -> None:
    breaks, pipes = town
    b = breaks.head(300).copy()
    b.loc[b.index[:40], ["x", "y"]] = np.nan
    want = link_breaks_to_pipes(b, pipes)
    pd.testing.assert_frame_equal(link_breaks_to_pipes_partitioned(b, pipes, resolution=9), want)


def test_no_pipe_geometry_anywhere_gives_the_whole_city_reasons(town) -> None:
    breaks, pipes = town
    p = pipes.assign(geometry=None)
    want = link_breaks_to_pipes(breaks.head(200), p)
    got = link_breaks_to_pipes_partitioned(breaks.head(200), p, resolution=8)
    pd.testing.assert_frame_equal(got, want)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 10_000),
    resolution=st.integers(6, 11),
    halo=st.floats(0.0, 300.0),
)
def test_halo_holds_every_line_within_reach_of_a_home_point(seed, resolution, halo) -> None:
    """Property: a line within ``halo`` of a point is in the halo of the point's partition."""
    rng = np.random.default_rng(seed)
    px, py = X0 + rng.uniform(-3000, 3000, 60), Y0 + rng.uniform(-3000, 3000, 60)
    sx, sy = X0 + rng.uniform(-3300, 3300, 200), Y0 + rng.uniform(-3300, 3300, 200)
    ex, ey = sx + rng.normal(0, 150, 200), sy + rng.normal(0, 150, 200)
    lines = shapely.linestrings(np.stack([np.stack([sx, sy], 1), np.stack([ex, ey], 1)], 1))
    homes = home_cells(px, py, resolution)
    members = home_members(homes)
    cells = np.array(sorted(members), dtype=np.uint64)
    halos = halo_members(cells, lines, halo, resolution)
    d = shapely.distance(shapely.points(px, py)[:, None], lines[None, :])
    for i in range(len(px)):
        near = set(np.flatnonzero(d[i] <= halo).tolist())
        assert near <= set(halos[int(homes[i])].tolist())
    assert sorted(np.concatenate(list(members.values())).tolist()) == list(range(len(px)))


def test_cluster_spec_is_checked() -> None:
    with pytest.raises(ConfigError, match="scheduler"):
        ClusterSpec("cluster-a")
    with pytest.raises(ConfigError, match="workers"):
        ClusterSpec("local", workers=0)
    assert not ClusterSpec().distributed and ClusterSpec("tcp://h:8786").distributed


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    with open_client(ClusterSpec("local", workers=2, worker_memory="2GiB")) as c:
        yield c


def test_local_cluster_gives_the_same_links(town, whole, client) -> None:
    breaks, pipes = town
    got = link_breaks_to_pipes_partitioned(breaks, pipes, resolution=8, client=client)
    pd.testing.assert_frame_equal(got, whole)
    assert len(client.scheduler_info()["workers"]) == 2


def _environ(keys: list[str]) -> dict[str, str | None]:
    return {k: os.environ.get(k) for k in keys}


def test_local_workers_get_their_settings_and_this_process_keeps_its_own(monkeypatch) -> None:
    """The workers start with WORKER_ENVIRON (a variable of the environment wins); Dask's
    nanny writes it into this process's environment to start them, and that is undone."""
    import dask
    from distributed import Client

    for k in [*WORKER_ENVIRON, "TWMB_TEST_NANNY_VAR"]:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "262144")
    before = dict(os.environ)
    configured = {"distributed.nanny.pre-spawn-environ.TWMB_TEST_NANNY_VAR": "kept"}
    with (
        dask.config.set(configured),
        local_cluster(1, "1GiB") as cluster,
        Client(cluster) as c,
    ):
        assert dict(os.environ) == before
        (env,) = c.run(_environ, [*WORKER_ENVIRON, "TWMB_TEST_NANNY_VAR"]).values()
    want = {**WORKER_ENVIRON, "MALLOC_TRIM_THRESHOLD_": "262144", "TWMB_TEST_NANNY_VAR": "kept"}
    assert env == want
    assert dict(os.environ) == before


def _die_once(marker: str, value: int) -> tuple[int, int]:
    """Kill this worker process the first time any task runs; then work."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return value * 2, os.getpid()
    os.close(fd)
    os._exit(1)


def test_a_worker_killed_mid_task_changes_nothing(client, tmp_path: Path) -> None:
    marker = str(tmp_path / "died")
    got = map_partitions(_die_once, [(marker, v) for v in range(8)], client)
    assert [g[0] for g in got] == [v * 2 for v in range(8)]
    assert Path(marker).exists()  # a worker did die


def _crs_of_task(value: int) -> tuple[int, str | None]:
    from twmb_geo.core.crs import current_crs

    return value, current_crs()


def test_tasks_run_under_the_callers_analysis_crs(client) -> None:
    from twmb_geo.core.crs import current_crs, using_crs

    with using_crs("EPSG:7856"):
        got = map_partitions(_crs_of_task, [(v,) for v in range(4)], client)
        here = map_partitions(_crs_of_task, [(v,) for v in range(4)])
    assert got == here == [(v, "EPSG:7856") for v in range(4)]
    with using_crs(None):
        assert map_partitions(_crs_of_task, [(1,)], client) == [(1, None)]
    assert current_crs() != "EPSG:7856"


def _unaligned(values: np.ndarray) -> np.ndarray:
    """``values`` over a buffer one byte off an aligned address (as Dask may build them)."""
    raw = bytearray(values.nbytes + 1)
    out = np.frombuffer(memoryview(raw)[1:], dtype=values.dtype).reshape(values.shape)
    out[...] = values
    assert not out.flags.aligned
    return out


def _odd_bytes(data: memoryview) -> memoryview:
    """A copy of ``data`` starting one byte off an aligned address."""
    raw = memoryview(bytearray(data.nbytes + 1))[1:]
    raw[:] = data
    return raw


def test_arrays_are_aligned_once_and_only_when_they_are_not() -> None:
    from scipy import sparse

    values = np.arange(12.0).reshape(3, 4)
    fine = np.arange(5)
    odd = sparse.csr_array((_unaligned(np.ones(3)), ([0, 1, 2], [2, 0, 1])), shape=(3, 3))
    got = aligned(({"z": _unaligned(values), "ok": fine}, [_unaligned(values.T)], odd, "x"))
    z, ok = got[0]["z"], got[0]["ok"]
    assert z.flags.aligned and z.flags.c_contiguous and z.flags.writeable
    np.testing.assert_array_equal(z, values)
    assert ok is fine  # an aligned array is not copied
    assert got[1][0].flags.aligned and np.array_equal(got[1][0], values.T)
    assert got[2].data.flags.aligned and (got[2] != odd).nnz == 0
    assert got[3] == "x"
    # a frame unpickled over buffers one byte off, as out of a Dask message
    frame = pd.DataFrame({"a": np.arange(5.0), "b": np.arange(5), "s": list("vwxyz")})
    assert aligned(frame) is frame
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(frame, protocol=5, buffer_callback=buffers.append)
    odd_frame = pickle.loads(data, buffers=[_odd_bytes(b.raw()) for b in buffers])
    assert not odd_frame["a"].to_numpy(copy=False).flags.aligned
    fixed = aligned(odd_frame)
    assert all(fixed[c].to_numpy(copy=False).flags.aligned for c in ("a", "b"))
    pd.testing.assert_frame_equal(fixed, frame)
    assert aligned(odd_frame["b"]).to_numpy(copy=False).flags.aligned


def _alignment(shared: tuple[np.ndarray, ...], own: np.ndarray, frame: pd.DataFrame) -> list[bool]:
    columns = [frame[c].to_numpy(copy=False) for c in frame]
    return [a.flags.aligned for a in (*shared, own, *columns)]


def test_tasks_get_aligned_arrays_on_a_cluster(client) -> None:
    """What a task and the data shared with every task hold on a worker are aligned,
    whatever offsets Dask's messages put them at."""
    rng = np.random.default_rng(0)
    big = [rng.random((27, 6211 + k)) for k in range(3)]
    frames = [
        pd.DataFrame({"a": rng.random(n), "b": rng.random(n).astype("float32"), "c": n})
        for n in (333, 5003, 100003)
    ]
    with shared_data(tuple(big), client) as shared:
        jobs = [(shared, b[:, 1:], f) for b, f in zip(big, frames, strict=True)]
        got = map_partitions(_alignment, jobs, client)
    assert got == [[True] * 7] * 3


def _started(log: str, value: int) -> int:
    with Path(log).open("a") as fh:
        fh.write(f"{value}\n")
    return value * 10


def test_largest_jobs_start_first_and_keep_their_positions(client, tmp_path: Path) -> None:
    sizes = [1.0, 5.0, 3.0, 5.0, 0.0]
    plan = thread_plan(1, 1)
    log = str(tmp_path / "here.log")
    here = list(map_largest_first(_started, [(log, v) for v in range(5)], sizes, plan))
    # largest first, equal sizes in the order of the jobs
    assert [k for k, _ in here] == [1, 3, 2, 0, 4]
    assert Path(log).read_text().split() == ["1", "3", "2", "0", "4"]
    assert dict(here) == {v: v * 10 for v in range(5)}
    far = str(tmp_path / "far.log")
    there = list(map_largest_first(_started, [(far, v) for v in range(5)], sizes, plan, client))
    assert there == here


def test_a_local_cluster_gives_the_in_process_features_scores_and_star(
    tmp_path: Path, client
) -> None:
    """A synthetic city: the spatial organisation with the cluster's client equals the one in
    this process (links and every unit table), and the feature stage with
    ``[compute] scheduler = "local"`` (matching and panel partition by partition, the
    panel written as Parquet by the workers) stores the tables of the in-process stage, and
    the model trained, scored and published from either store gives the same scores and the
    same star."""
    from dataclasses import replace

    import duckdb

    import twmb_geo as tw
    from twmb_geo.core.crs import using_crs
    from twmb_geo.features.build import _read_inputs
    from twmb_geo.spatial.units import SpatialSettings, organise
    from twmb_geo.store.duckdb_store import Store
    from twmb_geo.store.project import project_crs
    from twmb_geo.synth import make_city, write_city

    paths = write_city(make_city(n_pipes=500, seed=5), tmp_path / "city")
    cfg = tw.load_config(paths["config"], out=tmp_path / "out")
    cfg = replace(
        cfg,
        features=replace(cfg.features, esda_permutations=9),
        compute=replace(cfg.compute, scheduler="local", workers=2, partition_rows=120),
    )
    tw.ingest_sources(cfg)
    with using_crs(project_crs(cfg)):
        breaks, nb, area, pipes, streets = _read_inputs(cfg)
        kw = {"pipes": pipes, "streets": streets, "settings": SpatialSettings()}
        here = organise(breaks, nb, area, **kw)
        there = organise(breaks, nb, area, client=client, partition_rows=120, **kw)
    assert there.partitions["partitions"] > 5 and not here.partitions
    # street links and the pipe-to-street apportionment partition by partition too
    assert there.partitions["street_links"]["partitions"] > 5
    assert there.partitions["pipe_streets"]["partitions"] > 5
    pd.testing.assert_frame_equal(there.links, here.links)
    pd.testing.assert_frame_equal(there.pipe_streets, here.pipe_streets)
    pd.testing.assert_frame_equal(there.pipe_cells, here.pipe_cells)
    assert here.pipe_streets["segment_id"].notna().mean() > 0.5
    for ut, units in here.units.items():
        pd.testing.assert_frame_equal(there.units[ut], units, obj=ut)
    assert here.links["status"].eq("matched").any()

    tables = (
        "panel",
        "moran_global",
        "lisa",
        "hotspot_persistence",
        "break_links",
        "graph_edges",
        "graph_summary",
    )

    def stored() -> dict[str, pd.DataFrame]:
        with Store(cfg.store_path) as store:
            return {t: store.read(t) for t in tables}

    rep = tw.build_features(cfg)
    assert rep.partitions["scheduler"] == "local" and rep.partitions["partitions"] > 5
    panel_rep = rep.partitions["panel"]
    assert set(panel_rep) == {"pipe", "street", "cell"}
    assert all(r["partitions"] > 1 and r["halo_units"] > 0 for r in panel_rep.values())
    # the pipes' line network was built partition by partition too
    graph_rep = rep.partitions["graphs"]
    assert set(graph_rep) == {"pipe"} and set(graph_rep["pipe"]) == {"adj"}
    assert graph_rep["pipe"]["adj"]["partitions"] > 5
    assert graph_rep["pipe"]["adj"]["halo_units"] > 0
    # the store reads the panel where the workers wrote it (plus the neighbourhoods' file),
    # through paths relative to its folder
    (run_folder,) = (cfg.out_dir / "partitions" / "panel").iterdir()
    parts = sorted(run_folder.glob("*/part-*.parquet"))
    assert len(parts) == sum(r["partitions"] for r in panel_rep.values()) + 1
    with Store(cfg.store_path, read_only=True) as store:
        assert store.is_view("panel") and f"partitions/panel/{run_folder.name}/" in store.view_sql(
            "panel"
        )
        assert str(tmp_path) not in store.view_sql("panel")
    there_t = stored()
    with duckdb.connect(str(cfg.store_path), read_only=True) as con:
        got_links = con.execute(
            "SELECT break_id, unit_id FROM break_links WHERE unit_type = 'pipe' ORDER BY break_id"
        ).df()
    want = here.links[here.links["unit_type"] == "pipe"].sort_values("break_id")
    got = got_links["unit_id"].astype(object)
    assert got.where(got.notna(), None).tolist() == want["unit_id"].tolist()

    import shutil

    from conftest import FAST_MODEL

    from twmb_geo.publish.star import build_star

    cluster_cfg = replace(cfg, out=tmp_path / "out-cluster", store=None)
    shutil.copytree(cfg.out_dir, cluster_cfg.out_dir)

    # the same stage in this process: the same panel, ESDA and links; the panel is a table
    # again and the files of the cluster's run are gone (the copied project keeps its own)
    tw.build_features(replace(cfg, compute=replace(cfg.compute, scheduler="")))
    here_t = stored()
    with Store(cfg.store_path, read_only=True) as store:
        assert not store.is_view("panel") and store.has_table("panel")
    assert not run_folder.exists()
    assert list((cluster_cfg.out_dir / "partitions" / "panel").iterdir())
    for t in tables:
        pd.testing.assert_frame_equal(there_t[t], here_t[t], check_exact=False, rtol=1e-12, obj=t)
    assert len(here_t["panel"]) > 10_000

    # ... and so the same scores and the same star downstream
    cheap = replace(
        FAST_MODEL, unit_types=("pipe",), candidates=("glm",), schemes=("forward",), n_sims=50
    )
    per_run = ["run_id", "scored_at", "created_at", "model_version", "publish_id"]
    outcome = {}
    # trained, scored and published in this process, and with the cluster named by its
    # address (a "remote" cluster: the validation folds run there too)
    address = client.scheduler.address
    for name, c in (("here", cfg), ("cluster", cluster_cfg)):
        scheduler = address if name == "cluster" else ""
        c = replace(c, model=cheap, compute=replace(c.compute, scheduler=scheduler))
        tw.train_models(c)
        tw.score_units(c)
        with Store(c.store_path) as store:
            scores = store.read("risk_scores")
            star = build_star(store)
        outcome[name] = {"risk_scores": scores, **star}
    assert len(outcome["here"]["risk_scores"]) > 400
    for t, want_df in outcome["here"].items():
        drop = [col for col in per_run if col in want_df]
        pd.testing.assert_frame_equal(
            outcome["cluster"][t].drop(columns=drop),
            want_df.drop(columns=drop),
            check_exact=False,
            rtol=1e-9,
            obj=t,
        )


@pytest.fixture(scope="module")
def synth_city(tmp_path_factory):
    """A 500-pipe synthetic city, ingested: its config and its whole-city organisation."""
    import twmb_geo as tw
    from twmb_geo.core.crs import using_crs
    from twmb_geo.features.build import _read_inputs, _study_years, build_graphs
    from twmb_geo.spatial.units import SpatialSettings, organise
    from twmb_geo.store.project import project_crs
    from twmb_geo.synth import make_city, write_city

    root = tmp_path_factory.mktemp("synth_city")
    paths = write_city(make_city(n_pipes=500, seed=5), root / "city")
    cfg = tw.load_config(paths["config"], out=root / "out")
    tw.ingest_sources(cfg)
    crs = project_crs(cfg)
    with using_crs(crs):
        breaks, nb, area, pipes, streets = _read_inputs(cfg)
        org = organise(breaks, nb, area, pipes=pipes, streets=streets, settings=SpatialSettings())
        graphs = build_graphs(org, cfg.graphs, cfg.features)
    y0, y1, _ = _study_years(cfg, breaks)
    return cfg, crs, breaks, org, graphs, (y0, y1)


def _nbhd_panel(org, breaks, graphs, ps):
    """The neighbourhood panel of an organisation (its rates feed every other panel)."""
    from twmb_geo.features.panel import build_panel

    return build_panel(
        "neighbourhood",
        org.units["neighbourhood"],
        org.links[org.links["unit_type"] == "neighbourhood"],
        breaks,
        ps,
        graphs=graphs["neighbourhood"],
        pipes=org.units["pipe"],
        pipe_units_of=org.apportion("neighbourhood"),
    )


@pytest.mark.parametrize(("unit_type", "rows"), [("pipe", 120), ("street", 150), ("cell", 1500)])
def test_partitioned_panel_equals_the_whole_city_panel(
    synth_city, unit_type: str, rows: int, tmp_path: Path
) -> None:
    import pyarrow as pa

    from twmb_geo.core.crs import using_crs
    from twmb_geo.features.panel import PanelSettings, build_panel
    from twmb_geo.features.partitioned import build_panel_partitioned, read_panel_parts

    _, crs, breaks, org, graphs, (y0, y1) = synth_city
    ps = PanelSettings(start_year=y0, end_year=y1)
    pu = org.units["pipe"]
    nbhd = _nbhd_panel(org, breaks, graphs, ps)
    args = (
        unit_type,
        org.units[unit_type],
        org.links[org.links["unit_type"] == unit_type],
        breaks[breaks["year"].between(y0, y1)] if unit_type != "cell" else breaks,
        ps,
    )
    kw = {
        "graphs": graphs[unit_type],
        "pipes": pu,
        "pipe_units_of": None if unit_type == "pipe" else org.apportion(unit_type),
        "nbhd_rate": nbhd[["unit_id", "year", "nbhd_rate_last5"]],
    }
    whole = build_panel(*args, **kw)
    rep: dict = {}
    with using_crs(crs):
        parts = build_panel_partitioned(*args, str(tmp_path), target_rows=rows, report=rep, **kw)
    assert rep["partitions"] == len(parts) > 5 and rep["halo_units"] > 0, rep
    got = pa.Table.from_batches(list(read_panel_parts(parts))).to_pandas()
    assert sum(p.rows for p in parts) == len(got) == len(whole)
    key = ["unit_id", "year"]
    got = got.sort_values(key).reset_index(drop=True)
    whole = whole.sort_values(key).reset_index(drop=True)
    # lag columns of rows at partition edges are the point; some must be set
    assert whole["lag2_decayed_adj"].notna().any() and whole["lag1_decayed_dist"].notna().any()
    pd.testing.assert_frame_equal(got, whole, check_dtype=False, check_exact=False, rtol=1e-12)


def test_partitioned_panel_of_units_without_a_location_and_on_a_url(
    synth_city, tmp_path: Path
) -> None:
    """Units without a point form their own partition; an fsspec URL works as the store."""
    import pyarrow as pa

    from twmb_geo.core.crs import using_crs
    from twmb_geo.features.panel import PanelSettings, build_panel
    from twmb_geo.features.partitioned import build_panel_partitioned, read_panel_parts

    _, crs, breaks, org, graphs, (y0, y1) = synth_city
    ps = PanelSettings(start_year=y0, end_year=y1)
    units = org.units["pipe"].copy()
    lost = units.index[::7]
    units.loc[lost, ["x", "y"]] = np.nan
    args = ("pipe", units, org.links[org.links["unit_type"] == "pipe"], breaks, ps)
    whole = build_panel(*args, graphs=graphs["pipe"], pipes=units)
    stale = tmp_path / "pipe" / "part-99999.parquet"  # an earlier run's: removed
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    rep: dict = {}
    with using_crs(crs):
        parts = build_panel_partitioned(
            *args, f"file://{tmp_path}", graphs=graphs["pipe"], target_rows=200, report=rep
        )
    assert not stale.exists()
    assert parts[-1].home_units == len(lost) and rep["partitions"] == len(parts) > 2
    got = pa.Table.from_batches(list(read_panel_parts(parts))).to_pandas()
    key = ["unit_id", "year"]
    pd.testing.assert_frame_equal(
        got.sort_values(key).reset_index(drop=True),
        whole.sort_values(key).reset_index(drop=True),
        check_dtype=False,
    )
    assert (tmp_path / "pipe" / "part-00000.parquet").exists()


def test_unusable_partition_store_is_a_clear_config_error(synth_city) -> None:
    from twmb_geo.features.panel import PanelSettings
    from twmb_geo.features.partitioned import build_panel_partitioned

    _, _, breaks, org, _, (y0, y1) = synth_city
    with pytest.raises(ConfigError, match=r"\[compute\] partition_store 'nosuchscheme://b/p'"):
        build_panel_partitioned(
            "cell",
            org.units["cell"],
            org.links[org.links["unit_type"] == "cell"],
            breaks,
            PanelSettings(start_year=y0, end_year=y1),
            "nosuchscheme://b/p",
        )


_KEY = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "e"]))


@settings(max_examples=80, derandomize=True, deadline=None)
@given(
    st.lists(_KEY, max_size=12),
    st.lists(_KEY, max_size=12),
    st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_task_rows_by_codes_are_the_rows_whose_key_is_among_the_tasks(
    keys: list, other: list, pick: list
) -> None:
    """A task's rows by key codes: the rows of ``other`` whose key is among the picked
    ``keys`` (``isin``), a null key matching nothing."""
    a, b, n = _codes(pd.Series(keys, dtype=object), pd.Series(other, dtype=object))
    chosen = np.flatnonzero(pick[: len(keys)])
    got = _present(a[chosen], n)[b]
    wanted = {keys[i] for i in chosen} - {None}
    assert got.tolist() == [v is not None and v in wanted for v in other]


def test_subgraph_keeps_rows_whose_neighbours_are_kept() -> None:
    from libpysal.graph import Graph

    from twmb_geo.spatial.graphs import subgraph

    g = Graph.from_arrays(
        np.array(["a", "a", "b", "b", "c", "c", "d"]),
        np.array(["b", "c", "a", "c", "a", "b", "c"]),
        np.ones(7),
    ).transform("r")
    sub = subgraph(g, ["d", "b", "c", "x"])
    assert list(sub.unique_ids) == ["b", "c", "d"] and sub.transformation == "R"
    assert dict(sub[("d")]) == dict(g["d"])  # all of d's neighbours kept: the same row
    assert dict(sub["b"]) == {"c": 0.5}  # a dropped: b keeps its weight to c, not renormalised
    assert list(subgraph(g, ["a"]).isolates) == ["a"]


def test_store_refuses_arrow_rows_of_another_shape(tmp_path: Path) -> None:
    import pyarrow as pa

    from twmb_geo.errors import StoreError
    from twmb_geo.store.duckdb_store import Store

    with Store(tmp_path / "s.duckdb") as store:
        bad = pa.record_batch({"unit_type": ["pipe"], "unit_id": ["p1"]})
        with pytest.raises(StoreError, match="contract's columns"):
            store.insert_arrow("panel", [bad])
        assert store.count("panel") == 0


def test_run_scheduler_option_is_checked(tmp_path: Path) -> None:
    from cli_helpers import show, twmb

    r = twmb("--out", tmp_path / "x", "run", "--scheduler", "nope")
    assert r.exit_code == 2 and "[compute] scheduler" in r.stderr, show(r)


def test_the_feature_stage_lets_the_curated_layers_go_once_organised(
    synth_city, monkeypatch
) -> None:
    """The curated pipes and streets are no longer held once the units are built: the
    graphs, the panel and the store step of a 2,000,000-pipe city would carry them."""
    import gc
    import weakref
    from dataclasses import replace

    from twmb_geo.features import build as fb

    cfg = synth_city[0]
    cfg = replace(cfg, features=replace(cfg.features, esda_permutations=9))
    refs: dict[str, weakref.ref] = {}
    alive: dict[str, bool] = {}
    read, graphs = fb._read_inputs, fb.build_graphs

    def reading(c):
        out = read(c)
        refs.update(pipes=weakref.ref(out[3]), streets=weakref.ref(out[4]))
        return out

    def building(*args, **kwargs):
        gc.collect()
        alive.update({name: ref() is not None for name, ref in refs.items()})
        return graphs(*args, **kwargs)

    monkeypatch.setattr(fb, "_read_inputs", reading)
    monkeypatch.setattr(fb, "build_graphs", building)
    rep = fb.build_features(cfg)
    assert alive == {"pipes": False, "streets": False}
    assert rep.units["pipe"] > 0 and rep.units["street"] > 0
    assert {"organise: build street", "organise: link pipe"} <= set(rep.timings)


@pytest.mark.parametrize("unit_type", ["pipe", "street", "cell", "neighbourhood"])
def test_the_panel_of_the_cut_organisation_equals_the_whole(synth_city, unit_type: str) -> None:
    """The feature stage holds only the unit columns and links the panel reads once the
    organisation is stored; the panel built from them is the one built from everything
    (a column the panel reads conditionally, such as ``length_m``, must not be cut)."""
    from twmb_geo.features.build import _panel_inputs
    from twmb_geo.features.panel import PANEL_UNIT_COLUMNS, PanelSettings, build_panel

    _, _, breaks, org, graphs, (y0, y1) = synth_city
    cut = _panel_inputs(org)
    assert set(cut.links["status"]) == {"matched"} and len(cut.links) < len(org.links)
    for ut, units in cut.units.items():
        assert set(units.columns) <= set(PANEL_UNIT_COLUMNS), ut
        assert list(units.columns) == [c for c in org.units[ut].columns if c in units.columns]
    assert len(cut.units["pipe"].columns) < len(org.units["pipe"].columns)
    ps = PanelSettings(start_year=y0, end_year=y1)

    def panel(o):
        nbhd = _nbhd_panel(o, breaks, graphs, ps)
        if unit_type == "neighbourhood":
            return nbhd
        return build_panel(
            unit_type,
            o.units[unit_type],
            o.links[o.links["unit_type"] == unit_type],
            breaks[breaks["year"].between(y0, y1)] if unit_type != "cell" else breaks,
            ps,
            graphs=graphs[unit_type],
            pipes=o.units["pipe"],
            pipe_units_of=None if unit_type == "pipe" else o.apportion(unit_type),
            nbhd_rate=nbhd[["unit_id", "year", "nbhd_rate_last5"]],
        )

    whole = panel(org)
    assert whole["breaks"].sum() > 0
    pd.testing.assert_frame_equal(panel(cut), whole)
