"""Shared measuring helpers of the benchmark scripts: peak memory and timed phases."""

from __future__ import annotations

import argparse
import os
import platform
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "RssSampler",
    "cluster_arguments",
    "cpu_seconds",
    "machine",
    "maxrss_gb",
    "phase",
    "rss_bytes",
    "tree_rss_bytes",
]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Current resident set size of this process."""
    try:
        return int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1]) * _PAGE
    except OSError:  # not Linux: fall back to the lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for t in tasks:
        try:
            kids = [int(k) for k in (t / "children").read_text(encoding="ascii").split()]
        except OSError:
            continue
        for k in kids:
            out += [k, *_descendants(k)]
    return out


def tree_rss_bytes() -> int:
    """RSS of this process plus every descendant (the model stage's fold workers)."""
    total = rss_bytes()
    for pid in _descendants(os.getpid()):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text(encoding="ascii").split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):  # the worker just ended
            continue
    return total


def maxrss_gb() -> float:
    """Lifetime peak RSS of this process in GB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class RssSampler:
    """Background thread keeping the largest RSS seen since the last :meth:`reset`."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = rss_bytes()
        self.peak_tree = tree_rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())
            n += 1
            if n % 10 == 0:  # the process tree every 0.5 s: /proc walks cost more
                self.peak_tree = max(self.peak_tree, tree_rss_bytes())

    def reset(self) -> None:
        """Start a new peak from the current RSS."""
        self.peak = rss_bytes()
        self.peak_tree = tree_rss_bytes()

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._thread.join()


@contextmanager
def phase(sampler: RssSampler, out: dict[str, Any]) -> Iterator[None]:
    """Time the block into ``out['seconds']`` and its peak RSS into ``out['peak_rss_gb']``."""
    sampler.reset()
    start_gb = rss_bytes() / 2**30
    cpu0 = cpu_seconds()
    t = time.perf_counter()
    yield
    out["seconds"] = round(time.perf_counter() - t, 2)
    out["cpu_seconds"] = round(cpu_seconds() - cpu0, 2)
    out["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    sampler.peak = max(sampler.peak, rss_bytes())
    out["rss_at_start_gb"] = round(start_gb, 3)
    out["peak_rss_gb"] = round(sampler.peak / 2**30, 3)
    out["peak_rss_with_workers_gb"] = round(max(sampler.peak_tree, sampler.peak) / 2**30, 3)


def machine() -> dict[str, Any]:
    """The machine block of a benchmark's JSON (cores, Python, platform, load at start)."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def cluster_arguments(doc: str | None) -> argparse.ArgumentParser:
    """The options of a benchmark on a built project and a LocalCluster: ``--config``,
    ``--out``, ``--workers``, ``--worker-memory`` and ``--partition-rows``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None, help="the project's output folder")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-memory", default="8GiB")
    ap.add_argument("--partition-rows", type=int, default=50_000)
    return ap
