"""The run lock: one command at a time per output folder.

A command that writes to ``<out>`` holds an exclusive ``flock`` on ``<out>/.twmb.lock`` from its
start to its end; the file records who holds it (command, PID, host, start time) so a second
command is refused with a message naming the first. The operating system releases the lock
when its process dies (even by SIGKILL), so a lock file left behind by a dead process is taken
over with a warning instead of blocking the folder. Nested acquisitions in the same process
(``run`` calling ``ingest``) share the outer lock.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StoreError
from .ioerrors import NOT_A_FOLDER, describe, io_kind, io_path

__all__ = ["LOCK_NAME", "FolderLockedError", "holder", "run_lock"]

LOCK_NAME = ".twmb.lock"
log = logging.getLogger(__name__)

_held: dict[Path, int] = {}
_guard = threading.Lock()


class FolderLockedError(StoreError):
    """Another command holds the output folder (exit 5)."""


def _describe(info: dict[str, Any]) -> str:
    return (
        f"`twmb {info.get('command', '?')}` (PID {info.get('pid', '?')} on "
        f"{info.get('host', '?')}, started {info.get('started_at', '?')})"
    )


def holder(folder: Path | str) -> dict[str, Any] | None:
    """Who holds (or last held) the lock of ``folder``, from its lock file; None without one."""
    path = Path(folder) / LOCK_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        info = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return {"command": "?", "unreadable": text[:200]}
    return info if isinstance(info, dict) else None


def _open_lock(root: Path, path: Path) -> int:
    """Create the output folder and open its lock file; an output folder that is a file is a
    config error (exit 2), one that cannot be written a store error (exit 5)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if io_kind(exc) == NOT_A_FOLDER:
            culprit = io_path(exc, root)
            where = "" if culprit == root else f" cannot be created: {culprit}"
            raise ConfigError(
                f"the output folder {root}{where} {NOT_A_FOLDER}; set [project] out (or "
                "--out) to a folder, or move the file away"
            ) from exc
        text = describe(exc, path)
        if text is None:
            raise
        raise StoreError(f"cannot use the output folder {root}: {text}") from exc


@contextmanager
def run_lock(folder: Path | str, command: str) -> Iterator[dict[str, Any]]:
    """Hold the output folder's lock for the duration of the block.

    Parameters
    ----------
    folder
        The output folder (created if missing).
    command
        The command's name, recorded for whoever is refused.

    Yields
    ------
    dict
        The lock record (command, pid, host, started_at; ``took_over`` when a dead
        process's record was replaced).

    Raises
    ------
    FolderLockedError
        Another live process holds the folder.
    """
    root = Path(folder).resolve()
    with _guard:
        if root in _held:  # nested in a command of this process
            _held[root] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield holder(root) or {}
        finally:
            with _guard:
                _held[root] -= 1
        return
    path = root / LOCK_NAME
    fd = _open_lock(root, path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = holder(root) or {}
            raise FolderLockedError(
                f"output folder {root} is in use by {_describe(info)}; wait for it to finish "
                f"(or stop it) and run again; a lock held by a dead process is released by the "
                f"system and taken over automatically"
            ) from None
        previous = holder(root)
        record: dict[str, Any] = {
            "command": command,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        if previous:
            record["took_over"] = previous
            log.warning(
                "took over the lock of %s left by %s, which ended without releasing it "
                "(killed?); check its outputs",
                root,
                _describe(previous),
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        with _guard:
            _held[root] = 1
        try:
            yield record
        finally:
            with _guard:
                _held.pop(root, None)
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
