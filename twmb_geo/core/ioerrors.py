"""I/O failures in plain words: disk full, read-only, a file where a folder should be.

Operating-system errors (``OSError`` and its errno), DuckDB errors (``Could not write file
"...": No space left on device``), pyarrow and pyturso errors (``pwritev: FileTooLarge``)
all describe the same few causes differently. :func:`io_cause` names the cause,
:func:`io_path` the file, and :func:`io_error` turns the failure into the package error of
the stage it happened in (:data:`STAGE_ERRORS`), so the CLI prints one line and exits with
a documented code instead of a traceback.

A write that fails because a file may not grow any more (``EFBIG``, what a process under
``RLIMIT_FSIZE`` gets) is reported like a full disk: both mean "no room to write".
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import FetchError, PublishError, StoreError, TwmbError

__all__ = [
    "DISK_FULL",
    "NOT_A_FOLDER",
    "READ_ONLY",
    "STAGE_ERRORS",
    "describe",
    "io_cause",
    "io_error",
    "io_guard",
    "io_kind",
    "io_path",
    "probe_write_error",
    "sqlite_write_failed",
]

DISK_FULL = "disk full"
READ_ONLY = "read-only"
NOT_A_FOLDER = "is a file, not a folder"

#: errno -> (kind, plain words)
_ERRNO: dict[int, tuple[str, str]] = {
    errno.ENOSPC: (DISK_FULL, "disk full (no space left on device)"),
    errno.EFBIG: (DISK_FULL, "disk full (file size limit reached)"),
    errno.EDQUOT: (DISK_FULL, "disk full (disk quota exceeded)"),
    errno.EROFS: (READ_ONLY, "read-only (read-only file system)"),
    errno.EACCES: (READ_ONLY, "read-only (permission denied)"),
    errno.EPERM: (READ_ONLY, "read-only (operation not permitted)"),
    errno.ENOTDIR: (NOT_A_FOLDER, NOT_A_FOLDER),
    errno.EEXIST: (NOT_A_FOLDER, NOT_A_FOLDER),
    errno.EISDIR: ("is a folder", "is a folder, not a file"),
    errno.EIO: ("i/o error", "input/output error (a failing disk or network share?)"),
}

#: words in the messages of DuckDB, pyarrow and pyturso (lower case, without spaces,
#: underscores or dashes) -> the errno they stand for
_TEXT: tuple[tuple[str, int], ...] = (
    ("nospaceleftondevice", errno.ENOSPC),
    ("storagefull", errno.ENOSPC),
    ("diskisfull", errno.ENOSPC),
    ("filetoolarge", errno.EFBIG),
    ("quotaexceeded", errno.EDQUOT),
    ("diskquota", errno.EDQUOT),
    ("readonlyfilesystem", errno.EROFS),
    ("readonlydatabase", errno.EROFS),
    ("permissiondenied", errno.EACCES),
    ("operationnotpermitted", errno.EPERM),
    ("notadirectory", errno.ENOTDIR),
)

_ADVICE = {
    DISK_FULL: "free some disk space (or choose another output folder with --out) and run again",
    READ_ONLY: "make it writable (or choose another output folder with --out) and run again",
    NOT_A_FOLDER: "move the file away or point the path at a folder",
}

_QUOTED_PATH = re.compile(r"""["'](/[^"']+)["']""")

#: the error class of an I/O failure in each stage (command); any other stage writes the
#: store or files under the output folder: :class:`StoreError` (exit 5)
STAGE_ERRORS: dict[str, type[TwmbError]] = {"publish": PublishError, "fetch": FetchError}


def _errno_of(exc: BaseException) -> int | None:
    if isinstance(exc, OSError) and exc.errno == errno.EEXIST:
        # mkdir(exist_ok=True) on a file; any other "exists" (O_EXCL, ...) is no I/O failure
        name = exc.filename
        if name is None or not Path(name).exists() or Path(name).is_dir():
            return None
        return errno.EEXIST
    if isinstance(exc, OSError) and exc.errno in _ERRNO:
        return exc.errno
    text = re.sub(r"[\s_\-]", "", str(exc)).lower()
    for words, code in _TEXT:
        if words in text:
            return code
    if isinstance(exc, OSError) and exc.errno is None:  # pyarrow: "[errno 28] ..." in the text
        m = re.search(r"errno (\d+)", str(exc))
        if m and int(m[1]) in _ERRNO:
            return int(m[1])
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 10:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def io_kind(exc: BaseException) -> str | None:
    """The kind of I/O failure (:data:`DISK_FULL`, :data:`READ_ONLY`, ...) or None."""
    for e in _chain(exc):
        code = _errno_of(e)
        if code is not None:
            return _ERRNO[code][0]
    return None


def io_cause(exc: BaseException) -> str | None:
    """The cause of an I/O failure in plain words, or None when ``exc`` is not one.

    Looks at ``exc`` and the exceptions it was raised from. ``EFBIG`` (the file size limit)
    reads like ``ENOSPC``: "disk full (file size limit reached)".
    """
    for e in _chain(exc):
        code = _errno_of(e)
        if code is not None:
            return _ERRNO[code][1]
    return None


def _culprit(path: Path) -> Path:
    """For "not a folder": the first part of ``path`` that exists and is not a folder."""
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            return p if not p.is_dir() else path
    return path


def io_path(exc: BaseException, default: Path | str | None = None) -> Path | None:
    """The file an I/O failure is about: the error's file name, a quoted absolute path in its
    message, else ``default``."""
    for e in _chain(exc):
        name = getattr(e, "filename", None)
        if isinstance(name, str | Path) and str(name):
            path = Path(name)
            if io_kind(e) == NOT_A_FOLDER:
                path = _culprit(path)
            return path
        m = _QUOTED_PATH.search(str(e))
        if m:
            return Path(m[1])
    return Path(default) if default is not None else None


def describe(
    exc: BaseException, default: Path | str | None = None, *, at: Path | str | None = None
) -> str | None:
    """``"cannot write <file>: <cause>; <advice>"`` for an I/O failure, else None.

    The file is ``at`` when given (a writer that knows which file it was writing), else
    :func:`io_path` with ``default``.
    """
    cause = io_cause(exc)
    if cause is None:
        return None
    kind = io_kind(exc)
    path = Path(at) if at is not None else io_path(exc, default)
    where = f" {path}" if path is not None else ""
    if kind == NOT_A_FOLDER:
        head = f"{path or 'a path'} {NOT_A_FOLDER}"
    elif kind in (DISK_FULL, READ_ONLY):
        head = f"cannot write{where}: {cause}"
    else:
        head = f"{cause} on{where or ' a file'}"
    advice = _ADVICE.get(kind or "")
    return f"{head}; {advice}" if advice else head


def io_error(
    exc: BaseException,
    stage: str,
    default: Path | str | None = None,
    *,
    folder: Path | str | None = None,
) -> TwmbError | None:
    """``exc`` as the package error of ``stage`` when it is an I/O failure, else None.

    Parameters
    ----------
    exc
        What was raised (a :class:`~twmb_geo.errors.TwmbError` has its exit code already:
        None).
    stage
        The stage (command) it happened in: ``publish`` gives a
        :class:`~twmb_geo.errors.PublishError` (exit 7), ``fetch`` a
        :class:`~twmb_geo.errors.FetchError` (exit 6), any other a
        :class:`~twmb_geo.errors.StoreError` (exit 5).
    default
        The file to name when the error does not say which (the output folder).
    folder
        The failure is about the output folder itself (its lock, ``manifest.json``), not
        the stage's own work: a :class:`~twmb_geo.errors.StoreError` (exit 5) naming it.
    """
    if isinstance(exc, TwmbError):
        return None
    text = describe(exc, default)
    if text is None:
        return None
    if folder is not None:
        return StoreError(f"{stage}: cannot use the output folder {folder}: {text}")
    cls = STAGE_ERRORS.get(stage, StoreError)
    return cls(f"{stage} failed: {text}")


@contextmanager
def io_guard(
    stage: str, default: Path | str | None = None, *, folder: Path | str | None = None
) -> Iterator[None]:
    """Re-raise an I/O failure in the block as the error of ``stage`` (:func:`io_error`);
    anything else goes through unchanged."""
    try:
        yield
    except Exception as exc:
        err = io_error(exc, stage, default, folder=folder)
        if err is None:
            raise
        raise err from exc


def sqlite_write_failed(exc: BaseException) -> bool:
    """Whether SQLite failed to write (its message, "disk I/O error", says no more: SQLite
    keeps the system's error to itself; :func:`probe_write_error` asks the system)."""
    name = getattr(exc, "sqlite_errorname", "")
    return isinstance(exc, sqlite3.Error) and name.startswith(("SQLITE_FULL", "SQLITE_IOERR"))


#: bytes :func:`probe_write_error` tries to add to a file, at most
_PROBE_BYTES = 1 << 20


def probe_write_error(path: Path) -> OSError | None:
    """What the system says when the file ``path`` grows: ``ENOSPC`` on a full disk,
    ``EFBIG`` at the file size limit; None when it grows. Only for a file about to be
    discarded (a write into it failed): what is written does not matter."""
    chunk = b"\0" * (64 << 10)
    try:
        with path.open("ab", buffering=0) as f:
            for _ in range(_PROBE_BYTES // len(chunk)):
                f.write(chunk)
            os.fsync(f.fileno())
    except OSError as exc:
        return exc
    return None
