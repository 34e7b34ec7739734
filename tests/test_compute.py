"""``[compute] threads``: parsing and validation, the thread plan, and the limit in fold workers.

The model stage's folds run in joblib ``loky`` workers; the OpenMP/BLAS threads of each
worker (and of the main process) must be ``max(1, threads // workers)`` as the config says,
whatever the libraries would pick on their own (issue 15, case 11).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import twmb_geo as tw
from twmb_geo.config import ComputeConfig, config_schema
from twmb_geo.core import compute
from twmb_geo.core.compute import (
    LIMITS_ENV,
    ThreadPlan,
    available_cores,
    jobs_plan,
    limit_threads,
    parallel_map,
    release_workers,
    thread_counts,
    thread_plan,
)

SOURCE = (
    '[[sources]]\nid = "neighbourhoods"\nprofile = "toronto_neighbourhoods_140"\npath = "n.zip"\n'
)


def _load(tmp_path: Path, text: str) -> tw.Config:
    path = tmp_path / "twmb.toml"
    path.write_text(text, encoding="utf-8")
    return tw.load_config(path)


def test_threads_parsed_and_split_between_workers(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "[compute]\nthreads = 3\n\n" + SOURCE)
    assert cfg.compute == ComputeConfig(threads=3)
    assert cfg.compute.effective_threads == 3
    assert cfg.compute.plan(cfg.model.n_jobs) == ThreadPlan(3, 2, 1)


@pytest.mark.parametrize("bad", ["0", "-2", "true", "false", "2.0", '"4"', '"auto"'])
def test_threads_must_be_an_integer_of_at_least_one(tmp_path: Path, bad: str) -> None:
    with pytest.raises(tw.ConfigError) as err:
        _load(tmp_path, f"[compute]\nthreads = {bad}\n\n" + SOURCE)
    assert any("[compute] threads must be an integer >= 1" in p for p in err.value.problems), (
        err.value.problems
    )


def test_compute_section_refuses_unknown_keys_and_non_tables(tmp_path: Path) -> None:
    with pytest.raises(tw.ConfigError) as err:
        _load(tmp_path, "[compute]\nthreds = 2\n\n" + SOURCE)
    assert any("[compute] has unknown keys ['threds']" in p for p in err.value.problems)
    with pytest.raises(tw.ConfigError) as err:
        _load(tmp_path, "compute = 2\n" + SOURCE)
    assert any("[compute] must be a table, got 2" in p for p in err.value.problems)


def test_schema_covers_the_compute_section() -> None:
    props = config_schema()["properties"]["compute"]["properties"]
    assert set(props) == set(ComputeConfig.__dataclass_fields__)


def test_default_threads_are_the_cores_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _load(tmp_path, SOURCE)
    assert cfg.compute.threads is None
    assert cfg.compute.effective_threads == len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert available_cores() == 3 == ComputeConfig().effective_threads
    monkeypatch.delattr(os, "sched_getaffinity")  # not Linux
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert available_cores() == 7
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert available_cores() == 1


def test_threads_round_trip_through_toml(tmp_path: Path) -> None:
    cfg = tw.default_config(tmp_path / "out")
    path = tw.write_config(replace(cfg, compute=ComputeConfig(threads=5)), tmp_path / "a.toml")
    assert "[compute]\nthreads = 5" in path.read_text(encoding="utf-8")
    assert tw.load_config(path).compute.threads == 5
    path = tw.write_config(cfg, tmp_path / "b.toml")  # following the machine: left out
    assert "[compute]" not in path.read_text(encoding="utf-8")
    assert tw.load_config(path).compute.threads is None


@pytest.mark.parametrize(
    ("threads", "n_jobs", "workers", "each"),
    [
        (2, 2, 2, 1),
        (1, 2, 1, 1),  # never more workers than threads
        (4, 2, 2, 2),
        (5, 2, 2, 2),
        (8, 1, 1, 8),
        (3, -1, 3, 1),  # -1: one worker per thread
    ],
)
def test_thread_plan(threads: int, n_jobs: int, workers: int, each: int) -> None:
    assert thread_plan(threads, n_jobs) == ThreadPlan(threads, workers, each)


def test_omp_num_threads_caps_the_default_budget_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compute, "available_cores", lambda: 4)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert thread_plan(None, 1) == ThreadPlan(4, 1, 1)
    assert ComputeConfig().plan(2) == ThreadPlan(4, 2, 1)
    assert ComputeConfig(threads=4).plan(1) == ThreadPlan(4, 1, 4)  # the config wins
    monkeypatch.setenv("OMP_NUM_THREADS", "3,1")
    assert thread_plan(None, 1) == ThreadPlan(4, 1, 3)
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert thread_plan(None, 1) == ThreadPlan(4, 1, 4)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert thread_plan(None, 2) == ThreadPlan(4, 2, 2)


def test_thread_plan_without_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LIMITS_ENV, "0")
    assert thread_plan(1, 2) == ThreadPlan(1, 2, None, limited=False)
    assert thread_plan(1, 2).to_dict()["threads_per_process"] is None
    with pytest.raises(ValueError, match="threads must be >= 1"):
        thread_plan(0, 2)


def test_fold_workers_use_the_configured_threads() -> None:
    """The folds' mechanism (:func:`parallel_map`) in real loky workers: 6 threads for 2
    workers means 3 OpenMP and BLAS threads each, where joblib alone would give them 1 here
    (cores // workers); a limit set around a task wins over the worker's environment."""
    plan = thread_plan(6, 2)
    seen = list(parallel_map(thread_counts, [()] * 4, plan))
    assert seen == [{"openmp": 3, "blas": 3}] * 4
    inner = list(parallel_map(compute._task, [(1, thread_counts, ())] * 2, plan))
    assert inner == [{"openmp": 1, "blas": 1}] * 2


def _free_arrow_memory(mb: int) -> int:
    """Fill ``mb`` MB of Arrow's memory a MB at a time, free it, and wait out loky's one
    second between memory checks; the worker's process id."""
    held = [pa.allocate_buffer(2**20) for _ in range(mb)]
    for i, buf in enumerate(held):
        np.frombuffer(buf, dtype=np.uint8)[:] = i % 251
    del held
    time.sleep(1.1)
    return os.getpid()


def test_workers_reading_large_arrow_data_are_not_replaced_as_leaking() -> None:
    """loky replaces a worker that has grown 300 MB since its first task, warning of a
    memory leak: Arrow keeps what it freed, so the publish's checksum workers were replaced
    after a large row group that followed a small first one. After each task that memory
    goes back (``release_freed_memory``): the same two workers run every task, no warning.
    Without it, both workers were replaced here."""
    release_workers()  # fresh workers: their first task sets loky's reference size
    jobs = [(1,), (1,), (400,), (400,), (1,), (1,), (1,), (1,)]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        pids = list(parallel_map(_free_arrow_memory, jobs, jobs_plan(2, len(jobs))))
    release_workers()
    stopped = [str(w.message) for w in seen if "worker stopped" in str(w.message)]
    assert not stopped
    assert len(set(pids)) == 2


@pytest.mark.parametrize("window", [None, 1, 3, 100])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_parallel_map_in_windows_keeps_the_order(window: int | None, n_jobs: int) -> None:
    """Jobs run a window at a time give every result once, in the order of the jobs."""
    jobs = ((i, i % 4 + 1) for i in range(11))  # a generator: consumed a window at a time
    got = list(parallel_map(divmod, jobs, thread_plan(2, n_jobs), window=window))
    assert got == [divmod(i, i % 4 + 1) for i in range(11)]


@pytest.mark.parametrize(
    ("threads", "jobs", "workers"), [(4, 2, 2), (4, 9, 4), (1, 5, 1), (3, 0, 1)]
)
def test_jobs_plan_starts_no_more_workers_than_jobs(threads: int, jobs: int, workers: int) -> None:
    assert jobs_plan(threads, jobs).n_jobs == workers


@pytest.mark.parametrize(("threads", "n_jobs", "each"), [(2, 2, 1), (6, 2, 3), (3, 1, 3)])
def test_main_process_uses_its_share(threads: int, n_jobs: int, each: int) -> None:
    plan = thread_plan(threads, n_jobs)
    before = thread_counts()
    with limit_threads(plan):
        assert thread_counts() == {"openmp": each, "blas": each}
        # one job: the tasks run in this process, under the same limit
        if plan.n_jobs == 1:
            assert list(parallel_map(thread_counts, [()], plan)) == [{"openmp": each, "blas": each}]
    assert thread_counts() == before
