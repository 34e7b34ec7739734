"""Work in a second process that runs while this one works on something else.

Threads do not overlap here when one of them sits in an extension that holds the GIL
(pyturso inserts with it held: the publish's folder target in a thread slowed the Turso
file by a fifth and itself by two fifths). :func:`background_process` starts one spawned
process (its own interpreter), runs a function there and hands back a future. The process
exits if this one dies, so a killed run leaves no writer behind; its log records reach
this process's handlers (stderr in the CLI) at the level this process logs at.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

__all__ = ["background_process"]

#: seconds between the background process's looks at whether its parent is alive
_WATCH_SECONDS = 0.5

#: exit status of a background process whose parent died
ORPHAN_EXIT = 70


@contextmanager
def background_process() -> Iterator[ProcessPoolExecutor]:
    """An executor of one spawned worker process, shut down (waited for) on exit.

    Submit module-level functions with picklable arguments; a worker that dies raises
    :class:`concurrent.futures.process.BrokenProcessPool` from its future.
    """
    ctx = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    with ProcessPoolExecutor(
        max_workers=1, mp_context=ctx, initializer=_start, initargs=(os.getpid(), level)
    ) as executor:
        yield executor


def _start(parent: int, level: int) -> None:
    """In the worker: log to stderr at the parent's level; exit when the parent is gone."""
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    threading.Thread(target=_watch, args=(parent,), daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_WATCH_SECONDS)
    os._exit(ORPHAN_EXIT)  # the parent died: whatever this process writes is unwanted
