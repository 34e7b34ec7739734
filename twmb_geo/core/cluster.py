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

import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError
from .compute import ThreadPlan, parallel_map
from .crs import current_crs, using_crs

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ClusterSpec", "map_partitions", "map_tasks", "open_client", "shared_data"]

R = TypeVar("R")


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


@contextmanager
def open_client(spec: ClusterSpec) -> Iterator[Client | None]:
    """A Dask client for ``spec`` (None for in-process), closed (with its LocalCluster) at
    the end of the block."""
    if not spec.distributed:
        yield None
        return
    # imported on use: distributed adds 0.35-0.45 s to every command that never needs it
    from distributed import Client, LocalCluster

    if spec.scheduler == "local":
        cluster = LocalCluster(
            n_workers=int(spec.workers),
            threads_per_worker=1,
            processes=True,
            memory_limit=spec.worker_memory,
            dashboard_address=None,
        )
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
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
    window = max(2, 2 * len(client.scheduler_info()["workers"]))
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


def _apply(fn: Callable[..., R], item: tuple[Any, ...], crs: str | None) -> R:
    with using_crs(crs):  # the caller's analysis CRS, on whatever worker
        return fn(*item)


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
    future = client.scatter(obj, broadcast=True, hash=False)
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
