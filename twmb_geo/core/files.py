"""Atomic file writes: readers see the old file or the new one, never half of one.

The temporary file of a write is named after the target and the writing process's PID; a
process killed in the middle of a write (SIGKILL, power cut) leaves it behind, and the next
write of the same target removes the temporary files of processes that are gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import glob
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_path",
    "atomic_write",
    "dead_siblings",
    "exchange",
    "pid_alive",
    "remove_dead_leftovers",
    "sibling",
]


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

    Raises
    ------
    OSError
        Naming ``path`` (not the temporary file) when the write fails.
    """
    # .<name>.<pid>.<random>: the PID tells a killed writer's leftover from a live writer's
    _remove_dead_temps(path, f".{glob.escape(path.name)}.*", path.name.count(".") + 2)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:  # name the file being written, not the temporary one
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if mode is not None:
            tmp.chmod(mode)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
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


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _renameat2() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28 / not Linux
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``):
    a reader sees one or the other at each name, never neither.

    Returns False when the system or file system cannot (the caller falls back to two
    renames); other failures raise :class:`OSError` naming ``b``.
    """
    if _RENAMEAT2 is None:
        return False
    rc = _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def sibling(path: Path, kind: str) -> Path:
    """A hidden name beside ``path`` for a file or folder being written:
    ``.<name>.<kind>-<pid>-<random>`` (:func:`remove_dead_leftovers` knows it by the PID)."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def dead_siblings(path: Path, kinds: Sequence[str]) -> list[Path]:
    """The :func:`sibling` files and folders of ``path`` (of the given ``kinds``) whose
    writing process is gone, in name order."""
    out = []
    for p in sorted(path.parent.glob(f".{glob.escape(path.name)}.*")):
        kind, _, tag = p.name[len(path.name) + 2 :].partition("-")
        if kind not in kinds:
            continue
        pid = tag.split("-")[0]
        if tag and pid.isdigit() and pid_alive(int(pid)):
            continue
        out.append(p)
    return out


def remove_dead_leftovers(path: Path, kinds: Sequence[str]) -> list[Path]:
    """Remove the :func:`sibling` files and folders of ``path`` (of the given ``kinds``) whose
    process is gone (a killed or failed writer); those of a live process (another writer of
    the same file) are left alone. Returns what was removed."""
    removed = dead_siblings(path, kinds)
    for p in removed:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return removed
