"""Atomic file writes: readers see the old file or the new one, never half of one.

The temporary file of a write is named after the target and the writing process's PID; a
process killed in the middle of a write (SIGKILL, power cut) leaves it behind, and the next
write of the same target removes the temporary files of processes that are gone.
"""

from __future__ import annotations

import glob
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "pid_alive"]


def pid_alive(pid: int) -> bool:
    """Whether the process ``pid`` exists on this machine (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_dead_temps(path: Path, pattern: str, pid_at: int) -> None:
    """Remove the temporary files of ``path`` (``pattern`` in its folder; the PID is the
    ``pid_at``-th dot-separated part of the name) whose writing process is gone."""
    for p in path.parent.glob(pattern):  # pattern: the caller escapes the target's name
        parts = p.name.split(".")
        pid = parts[pid_at] if len(parts) > pid_at else ""
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            p.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes, *, mode: int | None = 0o644) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    Parameters
    ----------
    path
        The file to (re)place.
    data
        The bytes to write.
    mode
        Permission bits of the new file; ``None`` keeps the temporary file's 0600.

    Returns
    -------
    Path
        ``path``.
    """
    # .<name>.<pid>.<random>: the PID tells a killed writer's leftover from a live writer's
    _remove_dead_temps(path, f".{glob.escape(path.name)}.*", path.name.count(".") + 2)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if mode is not None:
            tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix), renamed onto it when the block succeeds.

    For writers that want a file name rather than bytes (GDAL, matplotlib).
    """
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    # .<stem>.<pid>.tmp<suffix>
    pattern = f".{glob.escape(path.stem)}.*.tmp{glob.escape(path.suffix)}"
    _remove_dead_temps(path, pattern, path.stem.count(".") + 2)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
