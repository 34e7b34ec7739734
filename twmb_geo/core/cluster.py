"""Where per-partition work runs: in this process, or on a Dask cluster.

``[compute] scheduler`` (or ``twmb run --scheduler``) names it:

* ``""`` (default): in this process, one partition after another;
* ``"local"``: a Dask ``LocalCluster`` started for the command, ``[compute] workers``
  processes of one thread each, ``[compute] worker_memory`` each;
* ``"tcp://host:8786"`` (any Dask scheduler address): an existing cluster.

The same function runs the partitions either way (:func:`map_partitions`), so a laptop's
in-process run, its LocalCluster and a real cluster give the same results; results come
back in the order of the partitions given, whichever worker finished first. Dask
reschedules the task of a worker that dies (up to ``distributed.scheduler.allowed-failures``
times), so a killed worker costs time, not results.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
from scipy import sparse

from ..errors import ConfigError
from .compute import ThreadPlan, parallel_map, release_freed_memory
from .crs import current_crs, using_crs

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "TASKS_PER_WORKER",
    "WORKER_ENVIRON",
    "ClusterSpec",
    "aligned",
    "local_cluster",
    "map_largest_first",
    "map_partitions",
    "map_tasks",
    "open_client",
    "shared_data",
    "task_share",
    "worker_count",
]

R = TypeVar("R")

#: tasks in flight per worker (:func:`map_partitions`), and the split :func:`task_share` sizes
TASKS_PER_WORKER = 2


@dataclass(frozen=True)
class ClusterSpec:
    """Where partitions run: ``scheduler`` "" (this process), "local" or a Dask address."""

    scheduler: str = ""
    workers: int = 2
    worker_memory: str = "4GiB"

    def __post_init__(self) -> None:
        s = self.scheduler
        if s not in ("", "local") and "://" not in s:
            raise ConfigError(
                f'[compute] scheduler must be "", "local" or a Dask scheduler address '
                f"such as tcp://host:8786, got {s!r}"
            )
        if int(self.workers) < 1:
            raise ConfigError(f"[compute] workers must be >= 1, got {self.workers!r}")

    @property
    def distributed(self) -> bool:
        """Whether partitions run on a Dask cluster."""
        return bool(self.scheduler)

    @property
    def remote(self) -> bool:
        """Whether the cluster is an existing one named by its address (its workers may be
        other machines), not a LocalCluster on this machine's cores."""
        return self.scheduler not in ("", "local")


#: Environment of a LocalCluster's worker processes, set before they start (glibc reads it
#: then). Dask's default gives the heap back above 64 KiB, which also fixes glibc's mmap
#: threshold at 128 KiB: every array over 128 KiB is then a fresh mapping whose pages fault
#: again at each use. A block of the Monte Carlo outlook took 6.5 s that way (3.9 s in the
#: kernel) against 2.2 s with arrays up to 32 MiB from the heap and its top given back above
#: 128 MiB (2.7 s with glibc's own adaptive default). Variables set in the environment win;
#: other variables of Dask's ``distributed.nanny.pre-spawn-environ`` are kept.
WORKER_ENVIRON: dict[str, str] = {
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(128 << 20),
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}


@contextmanager
def local_cluster(workers: int, worker_memory: str) -> Iterator[Any]:
    """A Dask ``LocalCluster`` of ``workers`` single-threaded processes of ``worker_memory``
    each, their environment :data:`WORKER_ENVIRON`, closed at the end of the block.

    Dask's nanny writes the workers' environment into this process's ``os.environ`` before
    it starts them; it is put back afterwards, so processes this one starts later (fold
    workers, ``twmb run`` under a benchmark) keep their own malloc and thread settings.
    """
    import dask
    from distributed import LocalCluster

    saved = dict(os.environ)

    def restore() -> None:
        for k in set(os.environ) - set(saved):
            del os.environ[k]
        for k, v in saved.items():
            if os.environ.get(k) != v:
                os.environ[k] = v

    try:
        # on top of the configured variables (the keys here replace Dask's defaults)
        environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENVIRON}
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            cluster = LocalCluster(
                n_workers=int(workers),
                threads_per_worker=1,
                processes=True,
                memory_limit=worker_memory,
                dashboard_address=None,
            )
        restore()
        with cluster:
            yield cluster
    finally:
        restore()


@contextmanager
def open_client(spec: ClusterSpec) -> Iterator[Client | None]:
    """A Dask client for ``spec`` (None for in-process), closed (with its LocalCluster) at
    the end of the block."""
    if not spec.distributed:
        yield None
        return
    # imported on use: distributed adds 0.35-0.45 s to every command that never needs it
    from distributed import Client

    if spec.scheduler == "local":
        with local_cluster(spec.workers, spec.worker_memory) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(spec.scheduler, timeout="30s")
    except OSError as exc:
        raise ConfigError(
            f"[compute] scheduler {spec.scheduler}: cannot connect ({exc}); start the Dask "
            'scheduler or use scheduler = "local"'
        ) from exc
    try:
        yield client
    finally:
        client.close()


def map_partitions(
    fn: Callable[..., R], items: Iterable[tuple[Any, ...]], client: Client | None = None
) -> list[R]:
    """``fn(*item)`` for every item, in this process or on the client's cluster; results in
    the order of ``items``.

    Tasks run under the caller's analysis CRS (:func:`~twmb_geo.core.crs.using_crs`).
    ``items`` is consumed as tasks are submitted, so a generator that slices each
    partition's data when asked keeps only the partitions in flight in memory.
    """
    if client is None:
        return [fn(*item) for item in items]
    from distributed import as_completed  # imported on use (see open_client)

    # a sliding window of tasks (two per worker): each task carries its partition's data,
    # so only a few partitions are in flight at a time and a worker's memory is bounded by
    # the partition size, not by the city
    window = TASKS_PER_WORKER * worker_count(client)
    crs = current_crs()
    results: dict[int, Any] = {}
    position: dict[Any, int] = {}  # future key -> item
    queue = iter(enumerate(items))

    def submit() -> Any:
        nxt = next(queue, None)
        if nxt is None:
            return None
        k, item = nxt
        with warnings.catch_warnings():
            # each task carries its partition's data on purpose (scattered data could not
            # be recomputed when a worker dies), so Dask's advice to scatter is noise here
            warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
            fut = client.submit(_apply, fn, item, crs, pure=False)
        position[fut.key] = k
        return fut

    running = as_completed([f for f in (submit() for _ in range(window)) if f is not None])
    for fut in running:
        results[position.pop(fut.key)] = fut.result()
        fut.release()
        new = submit()
        if new is not None:
            running.add(new)
    return [results[k] for k in range(len(results))]


def worker_count(client: Client | None) -> int:
    """Workers of the client's cluster (1 in this process): what a task split is sized by."""
    return 1 if client is None else max(1, len(client.scheduler_info()["workers"]))


def task_share(total: int, client: Client | None) -> int:
    """Items per task when ``total`` items are split evenly into :data:`TASKS_PER_WORKER`
    tasks per worker (so no worker waits alone on the last task)."""
    return max(1, -(-total // (TASKS_PER_WORKER * worker_count(client))))


def aligned(obj: Any) -> Any:
    """``obj`` with every NumPy array in it at an aligned address (inside tuples, lists,
    dicts, pandas frames and series and SciPy sparse arrays too), copying only what is not.

    Dask rebuilds the arrays a task receives over the bytes of the message that carried
    them, wherever they landed in it; NumPy's gathers and sums over an unaligned array take
    a slow path (a LISA task: 1.3 s on an unaligned copy of its values, 0.45 s aligned).
    """
    if isinstance(obj, np.ndarray):
        return obj if obj.flags.aligned else np.array(obj, order="K")
    if isinstance(obj, pd.DataFrame | pd.Series):
        columns = obj.items() if isinstance(obj, pd.DataFrame) else [(None, obj)]
        if all(_is_aligned(s) for _, s in columns):
            return obj
        return obj.copy(deep=True)
    if type(obj) is tuple or type(obj) is list:
        return type(obj)(aligned(v) for v in obj)
    if type(obj) is dict:
        return {k: aligned(v) for k, v in obj.items()}
    if sparse.issparse(obj) and hasattr(obj, "indptr"):
        parts = (obj.data, obj.indices, obj.indptr)
        return obj if all(a.flags.aligned for a in parts) else obj.copy()
    return obj


def _is_aligned(series: pd.Series) -> bool:
    """Whether a series' NumPy values (a view of its frame's block) are aligned."""
    if not isinstance(series.dtype, np.dtype):
        return True  # extension arrays (Arrow strings, nullable integers) hold their own
    return bool(series.to_numpy(copy=False).flags.aligned)


class _Aligned:
    """Data on its way to the workers: unpickled there, it is the data, its arrays aligned
    (:func:`aligned`) once per worker rather than once per task."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __reduce__(self) -> tuple[Callable[[Any], Any], tuple[Any]]:
        return aligned, (self.obj,)


def _apply(fn: Callable[..., R], item: tuple[Any, ...], crs: str | None) -> R:
    try:
        with using_crs(crs):  # the caller's analysis CRS, on whatever worker
            return fn(*aligned(item))
    finally:
        release_freed_memory()


@contextmanager
def shared_data(obj: Any, client: Client | None = None) -> Iterator[Any]:
    """``obj`` as tasks of :func:`map_tasks` take it: on a cluster, sent once to every
    worker (a future tasks take as an argument, released at the end of the block), else
    ``obj`` itself.

    For data every task reads whole (the training rows of every validation fold): sent
    with each task it would cross the network once per task. A copy on every worker keeps
    tasks runnable when one worker dies (Dask runs them on another that holds a copy).
    """
    if client is None:
        yield obj
        return
    future = client.scatter(_Aligned(obj), broadcast=True, hash=False)
    try:
        yield future
    finally:
        client.cancel([future])


def map_tasks(
    fn: Callable[..., R],
    jobs: Iterable[tuple[Any, ...]],
    plan: ThreadPlan,
    client: Client | None = None,
) -> Iterator[R]:
    """``fn(*args)`` for every ``args`` of ``jobs``: in ``plan``'s worker processes on this
    machine (:func:`~twmb_geo.core.compute.parallel_map`), or as tasks on the client's
    cluster (:func:`map_partitions`; Dask's nanny starts workers with one OpenMP/BLAS
    thread); results in the order of ``jobs`` either way."""
    if client is None:
        return parallel_map(fn, jobs, plan)
    return iter(map_partitions(fn, jobs, client))


def map_largest_first(
    fn: Callable[..., R],
    jobs: Sequence[tuple[Any, ...]],
    sizes: Sequence[float],
    plan: ThreadPlan,
    client: Client | None = None,
) -> Iterator[tuple[int, R]]:
    """:func:`map_tasks` with the largest jobs (by ``sizes``) started first; yields
    ``(position in jobs, result)`` as they come.

    Jobs of unequal cost (validation folds on growing training years) finish in order of
    size this way, so the workers end with a small job rather than one waiting alone for
    the largest. Equal sizes keep the order of ``jobs``.
    """
    order = sorted(range(len(jobs)), key=lambda k: -sizes[k])
    done = map_tasks(fn, (jobs[k] for k in order), plan, client)
    yield from zip(order, done, strict=True)
