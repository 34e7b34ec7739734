"""CPU threads of the model stage: one budget shared by this process and its fold workers.

``[compute] threads`` is the number of CPU threads a job may use (default: the cores this
process may run on). The model stage runs its validation folds in ``[model] n_jobs``
worker processes (joblib's ``loky``); :func:`thread_plan` caps the workers at the budget
and gives this process and every worker ``max(1, threads // workers)`` OpenMP and BLAS
threads (HistGradientBoosting, the GLMs' linear algebra). :func:`limit_threads` applies
that limit in this process (``threadpoolctl.threadpool_limits``) and :func:`parallel_map`
in each worker: the limit is set in the workers' environment when they start (joblib's
``inner_max_num_threads``) and again around every task, so a reused worker started
under another limit obeys this one too.

Why: OpenMP threads that outnumber the free cores wait for each other at every parallel
step of a boosting fit; on 2 busy cores one fit with 2 threads took 6 to 60 times as long
as with one (``benchmarks/contention.py``, ``docs/model.md``). joblib already gives its
``loky`` workers ``cores // workers`` threads unless ``OMP_NUM_THREADS`` is set, but not
the main process, which fits the final model and scores.

Set the environment variable ``TWMB_THREAD_LIMITS=0`` to switch every limit off (the
behaviour before ``[compute]``: worker count as configured, library defaults for
threads); it exists for that benchmark.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
from joblib import Parallel, delayed, parallel_config
from joblib.externals.loky import get_reusable_executor
from threadpoolctl import threadpool_info, threadpool_limits

__all__ = [
    "LIMITS_ENV",
    "ThreadPlan",
    "available_cores",
    "available_memory",
    "env_threads",
    "jobs_plan",
    "limit_threads",
    "limits_enabled",
    "parallel_map",
    "release_freed_memory",
    "release_workers",
    "thread_counts",
    "thread_plan",
]

#: environment variable switching the thread limits off when set to ``0``
LIMITS_ENV = "TWMB_THREAD_LIMITS"

R = TypeVar("R")


def available_cores() -> int:
    """The CPU cores this process may run on.

    Returns
    -------
    int
        ``len(os.sched_getaffinity(0))`` (the affinity mask, e.g. ``taskset`` or a
        container's cpuset), else ``os.cpu_count()``, at least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity call on this platform
        return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes of memory the system can give without swapping (``MemAvailable`` of
    ``/proc/meminfo``: free memory and the page cache it can drop), None where unknown."""
    try:
        text = Path("/proc/meminfo").read_text(encoding="ascii")
        line = next((x for x in text.splitlines() if x.startswith("MemAvailable:")), None)
        return None if line is None else int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None


def env_threads() -> int | None:
    """The threads per process set by ``OMP_NUM_THREADS`` (its first level), if any.

    Returns
    -------
    int or None
        A positive integer, or None when the variable is unset or not one.
    """
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def limits_enabled() -> bool:
    """Whether thread limits apply (``TWMB_THREAD_LIMITS`` is not ``0``).

    Returns
    -------
    bool
        False when the environment variable is ``0``, ``false``, ``no`` or ``off``.
    """
    return os.environ.get(LIMITS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class ThreadPlan:
    """How the model stage spends its thread budget.

    Attributes
    ----------
    threads : int
        The budget (``[compute] threads``).
    n_jobs : int
        Worker processes of the folds (1: the folds run in this process), as passed to
        ``joblib.Parallel``; at most ``threads`` when limited.
    per_process : int or None
        OpenMP/BLAS threads of this process and of each worker; None when the limits are
        off (the libraries' defaults).
    limited : bool
        Whether the limits apply (see :func:`limits_enabled`).
    """

    threads: int
    n_jobs: int
    per_process: int | None
    limited: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The plan as recorded in the model card (``compute``).

        Returns
        -------
        dict
            ``threads``, ``n_jobs``, ``threads_per_process`` and ``limited``.
        """
        return {
            "threads": self.threads,
            "n_jobs": self.n_jobs,
            "threads_per_process": self.per_process,
            "limited": self.limited,
        }


def thread_plan(threads: int | None, n_jobs: int) -> ThreadPlan:
    """Split a thread budget between worker processes.

    Parameters
    ----------
    threads : int or None
        Total CPU threads the job may use; None: :func:`available_cores`, and then no
        process gets more threads than ``OMP_NUM_THREADS`` says when it is set
        (:func:`env_threads`; a given ``threads`` overrides the variable).
    n_jobs : int
        Requested worker processes (``[model] n_jobs``; -1: one per thread of the budget).

    Returns
    -------
    ThreadPlan
        ``min(n_jobs, threads)`` workers of ``max(1, threads // workers)`` threads each;
        with the limits off, ``n_jobs`` unchanged and no per-process limit.

    Raises
    ------
    ValueError
        ``threads`` below 1 or ``n_jobs`` 0 or below -1.
    """
    budget = available_cores() if threads is None else int(threads)
    if budget < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    if n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be >= 1 or -1, got {n_jobs!r}")
    if not limits_enabled():
        return ThreadPlan(budget, n_jobs, None, limited=False)
    workers = budget if n_jobs == -1 else min(n_jobs, budget)
    each = max(1, budget // workers)
    cap = env_threads() if threads is None else None
    return ThreadPlan(budget, workers, each if cap is None else min(each, cap))


def jobs_plan(threads: int | None, jobs: int) -> ThreadPlan:
    """:func:`thread_plan` of one worker per job, at most one per thread of the budget
    (``threads``; None: the cores available): a few large jobs start no idle workers."""
    budget = available_cores() if threads is None else int(threads)
    return thread_plan(threads, max(1, min(int(jobs), budget)))


def _load_runtimes() -> None:
    """Load scikit-learn's OpenMP runtime and NumPy's BLAS, so a limit set next reaches them."""
    import numpy  # noqa: F401
    import sklearn.utils._openmp_helpers  # noqa: F401


def thread_counts() -> dict[str, int]:
    """The threads of this process's OpenMP and BLAS pools (the largest of each kind).

    Loads scikit-learn's OpenMP runtime first, so a worker that has not fitted anything
    yet reports it too.

    Returns
    -------
    dict of str to int
        ``{"openmp": n, "blas": m}`` as ``threadpoolctl.threadpool_info`` sees them (a kind
        with no library loaded is left out).
    """
    _load_runtimes()
    out: dict[str, int] = {}
    for pool in threadpool_info():
        api = str(pool["user_api"])
        out[api] = max(out.get(api, 0), int(pool["num_threads"]))
    return out


@contextmanager
def limit_threads(plan: ThreadPlan) -> Iterator[ThreadPlan]:
    """Limit this process's OpenMP and BLAS threads to ``plan.per_process`` in the block.

    Parameters
    ----------
    plan : ThreadPlan
        From :func:`thread_plan`; a plan without limits changes nothing.

    Yields
    ------
    ThreadPlan
        ``plan``. The previous limits are restored on exit.
    """
    if plan.per_process is None:
        yield plan
        return
    _load_runtimes()
    with threadpool_limits(limits=plan.per_process):
        yield plan


def release_freed_memory() -> None:
    """Hand the memory Arrow's allocator has freed back to the operating system.

    Arrow keeps freed blocks for reuse, so a process that has read a large Parquet row
    group looks as large afterwards as while it held it. loky measures a worker after each
    task and replaces one that has grown 300 MB since its first task, warning "A worker
    stopped while some jobs were given to the executor ... memory leak": the publish's
    checksum workers, given row groups of 500,000 rows after a small first one, were
    replaced that way (both workers, in two of three runs at 500,000 pipes). A Dask worker's
    memory limits count the same retained blocks. About 20 ms after a 5-million-row table.
    """
    pa.default_memory_pool().release_unused()


def _task(limit: int | None, fn: Callable[..., R], args: tuple[Any, ...]) -> R:
    """Run ``fn(*args)`` in a worker: with at most ``limit`` OpenMP/BLAS threads (None:
    the libraries' own), then :func:`release_freed_memory`."""
    try:
        if limit is None:
            return fn(*args)
        _load_runtimes()
        with threadpool_limits(limits=limit):
            return fn(*args)
    finally:
        release_freed_memory()


def parallel_map(
    fn: Callable[..., R],
    jobs: Iterable[tuple[Any, ...]],
    plan: ThreadPlan,
    *,
    window: int | None = None,
) -> Iterator[R]:
    """``fn(*args)`` for every ``args`` of ``jobs``, in ``plan.n_jobs`` worker processes.

    Results come back in the order of ``jobs`` (a generator: each as soon as it and those
    before it are done). Each task runs with ``plan.per_process`` OpenMP/BLAS threads,
    set in the worker's environment when it starts and around the task; with one job the
    tasks run in this process, under the same limit. After each task the memory Arrow
    freed is handed back (:func:`release_freed_memory`). The workers do not wait for the
    results to be taken: with large results and a slow consumer, ``window`` runs the jobs
    that many at a time, so at most that many results are held.

    Parameters
    ----------
    fn : callable
        A picklable function (module level).
    jobs : iterable of tuple
        The positional arguments of each call.
    plan : ThreadPlan
        From :func:`thread_plan`.
    window : int or None
        Jobs run at a time (None: all).

    Returns
    -------
    iterator
        The results, in order.
    """
    if window is not None:
        return _windows(fn, iter(jobs), plan, max(1, int(window)))
    limit = plan.per_process
    tasks = (delayed(_task)(limit, fn, args) for args in jobs)
    if limit is None:
        return iter(Parallel(n_jobs=plan.n_jobs, return_as="generator")(tasks))
    with parallel_config(backend="loky", inner_max_num_threads=limit):
        return iter(Parallel(n_jobs=plan.n_jobs, return_as="generator")(tasks))


def release_workers() -> None:
    """Stop the idle worker processes :func:`parallel_map` keeps for reuse.

    They stop by themselves at this process's normal exit, or after 300 s idle; a process
    started by :mod:`multiprocessing` exits without the normal exit's handlers and waits
    for its children first, so it would wait for that timeout.
    """
    # reuse=True takes the pool as it is: without it, a pool of another size is first
    # resized, which can start workers only to stop them
    get_reusable_executor(reuse=True).shutdown(wait=True, kill_workers=True)


def _windows(
    fn: Callable[..., R], jobs: Iterator[tuple[Any, ...]], plan: ThreadPlan, window: int
) -> Iterator[R]:
    """:func:`parallel_map` of ``window`` jobs at a time."""
    while batch := list(islice(jobs, window)):
        yield from parallel_map(fn, batch, plan)
