"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_path",
    "atomic_write",
    "pid_alive",
    "remove_dead_leftovers",
    "sibling",
]


def atomic_write(path: Path, data: bytes, *, mode: int | None = 0o644) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    Parameters
    ----------
    path
        The file to (re)place.
    data
        The bytes to write.
    mode
        Permission bits of the new file (``mkstemp`` makes 0600); ``None`` keeps 0600.

    Returns
    -------
    Path
        ``path``.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:  # name the file being written, not the temporary one
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if mode is not None:
            Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix), renamed onto it when the block succeeds.

    For writers that want a file name rather than bytes (GDAL, matplotlib).
    """
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def sibling(path: Path, kind: str) -> Path:
    """A hidden name beside ``path`` for a file or folder being written:
    ``.<name>.<kind>-<pid>-<random>`` (:func:`remove_dead_leftovers` knows it by the PID)."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` is running (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_dead_leftovers(path: Path, kinds: Sequence[str]) -> list[Path]:
    """Remove the :func:`sibling` files and folders of ``path`` (of the given ``kinds``) whose
    process is gone (a killed or failed writer); those of a live process (another writer of
    the same file) are left alone. Returns what was removed."""
    removed = []
    for p in sorted(path.parent.glob(f".{path.name}.*")):
        suffix = p.name[len(path.name) + 2 :]
        kind, _, tag = suffix.partition("-")
        if kind not in kinds:
            continue
        pid = tag.split("-")[0]
        if tag and pid.isdigit() and pid_alive(int(pid)):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed
