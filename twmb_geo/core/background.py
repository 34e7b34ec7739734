"""Work in a second process that runs while this one works on something else.

Threads do not overlap here when one of them sits in an extension that holds the GIL
(pyturso inserts with it held: the publish's folder target in a thread slowed the Turso
file by a fifth and itself by two fifths). :func:`background_process` starts one spawned
process (its own interpreter) and runs functions there (:func:`run_in`), each handed back
as a future. The process runs on every core this one may use but one, left to this
process (on 2 cores: one each, so the background's own worker pools stay in it); it
exits if this one dies, so a killed run leaves no writer behind; its log records go to
stderr at the level this process logs at.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from .compute import release_workers

__all__ = ["background_process", "run_in"]

R = TypeVar("R")

#: seconds between the background process's looks at whether its parent is alive
_WATCH_SECONDS = 0.5

#: exit status of a background process whose parent died
ORPHAN_EXIT = 70


@contextmanager
def background_process() -> Iterator[ProcessPoolExecutor]:
    """An executor of one spawned worker process, shut down (waited for) on exit.

    Give it work with :func:`run_in` (module-level functions, picklable arguments); a
    worker that dies raises :class:`concurrent.futures.process.BrokenProcessPool` from
    its future.
    """
    ctx = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    with ProcessPoolExecutor(
        max_workers=1, mp_context=ctx, initializer=_start, initargs=(os.getpid(), level)
    ) as executor:
        with _main_as_spawn_can_load():
            executor.submit(os.getpid).result()  # the worker starts here
        yield executor


@contextmanager
def _main_as_spawn_can_load() -> Iterator[None]:
    """A spawned process runs the parent's main script again unless it is a module; a
    script read from stdin (``python - <<EOF``) has the path ``<stdin>``, which it cannot
    open. Such a path is hidden while the process starts (as for ``python -c``)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if (
        main is None
        or path is None
        or getattr(main, "__spec__", None) is not None
        or Path(path).is_file()
    ):
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def run_in(executor: ProcessPoolExecutor, fn: Callable[..., R], *args: Any) -> Future[R]:
    """``fn(*args)`` in the background process; its worker pools stopped when it is done
    (:func:`~.compute.release_workers`: the process would otherwise wait for them when it
    exits, up to 300 s)."""
    return executor.submit(_call, fn, args)


def _call(fn: Callable[..., R], args: tuple[Any, ...]) -> R:
    try:
        return fn(*args)
    finally:
        release_workers()


def _start(parent: int, level: int) -> None:
    """In the worker: every core but one, logs to stderr at the parent's level, and an
    exit when the parent is gone."""
    try:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > 1:
            os.sched_setaffinity(0, cores[1:])
    except (AttributeError, OSError):  # no affinity calls on this platform
        pass
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    threading.Thread(target=_watch, args=(parent,), daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_WATCH_SECONDS)
    os._exit(ORPHAN_EXIT)  # the parent died: whatever this process writes is unwanted
