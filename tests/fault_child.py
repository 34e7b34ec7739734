"""``twmb`` with a freeze point, for the fault suite (tests/test_faults.py).

    python fault_child.py POINT MARK_FILE -- <twmb arguments>

Runs the ``twmb`` command line unchanged except at the named point: when the run gets
there it writes ``MARK_FILE`` (its PID and the ``twmb_geo`` it imported) and stops there,
waiting for the test to SIGKILL it. A freeze point only decides *where* the kill lands,
so the kill is at the same place on every run (no timing), and what the code does up to
that point is untouched.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _freeze(mark: Path) -> None:
    import twmb_geo

    tmp = mark.with_name(mark.name + ".tmp")
    tmp.write_text(f"{os.getpid()}\n{twmb_geo.__file__}\n", encoding="utf-8")
    tmp.replace(mark)  # the test sees the whole mark or none
    while True:  # until SIGKILL
        time.sleep(3600)


def _hook(
    mark: Path,
    target: str,
    *,
    before: bool = False,
    nth: int = 1,
    when: Callable[..., bool] | None = None,
) -> None:
    """Freeze before or after the ``nth`` call of ``module:attr`` (that ``when`` accepts)."""
    module, _, name = target.partition(":")
    owner: Any = importlib.import_module(module)
    *path, attr = name.split(".")
    for part in path:
        owner = getattr(owner, part)
    fn = getattr(owner, attr)
    seen = 0

    @functools.wraps(fn)
    def hooked(*args: Any, **kwargs: Any) -> Any:
        nonlocal seen
        hit = when is None or when(*args, **kwargs)
        if hit:
            seen += 1
        if hit and seen == nth and before:
            _freeze(mark)
        out = fn(*args, **kwargs)
        if hit and seen == nth:
            _freeze(mark)
        return out

    setattr(owner, attr, hooked)


def _after_stage(stage: str) -> Callable[..., bool]:
    """A manifest save that records ``stage`` finished ok (the boundary to the next stage)."""

    def when(manifest: Any, *args: Any, **kwargs: Any) -> bool:
        last = manifest.stages[-1] if manifest.stages else {}
        return bool(last.get("stage") == stage and last.get("status") == "ok")

    return when


def _is_gpkg(*args: Any, **kwargs: Any) -> bool:
    return bool(kwargs.get("driver") == "GPKG")


#: the freeze points: what state the killed run leaves behind
POINTS: dict[str, Callable[[Path], None]] = {
    # ingest: the first source (neighbourhoods + service area) committed, breaks not yet
    "ingest": lambda m: _hook(m, "twmb_geo.store.load:_ingest_one"),
    # features: panels written inside the feature transaction, not committed
    "features": lambda m: _hook(m, "twmb_geo.features.build:run_esda"),
    # train: model files saved under models/<version>/, the registry rows not written
    "train": lambda m: _hook(m, "twmb_geo.model.stage:save_model"),
    # between score and simulate: new current scores without their simulation
    "after-score": lambda m: _hook(
        m, "twmb_geo.store.manifest:RunManifest.save", when=_after_stage("score")
    ),
    # between publish and maps: every star target holds this run's publish
    "after-publish": lambda m: _hook(
        m, "twmb_geo.store.manifest:RunManifest.save", when=_after_stage("publish")
    ),
    # publish, Turso file target: every row loaded, the pointer not switched, not committed
    # (the folder and DuckDB targets already hold the new publish)
    "publish-turso": lambda m: _hook(m, "twmb_geo.publish.turso.protocol:_switch", before=True),
    # maps: the first layer's GeoJSON written, the GeoPackage half written (that layer)
    "maps": lambda m: _hook(m, "twmb_geo.maps.exports:write_arrow", when=_is_gpkg),
}


def main(argv: list[str]) -> None:
    point, mark, sep, *args = argv
    if sep != "--" or point not in POINTS:
        raise SystemExit(f"usage: fault_child.py {{{','.join(POINTS)}}} MARK -- ARGS")
    POINTS[point](Path(mark))
    from twmb_geo.cli import main as twmb

    twmb(args=args, prog_name="twmb")


def forked(argv: list[str], log: str, env: dict[str, str], cwd: str) -> None:
    """:func:`main` in a process forked by multiprocessing's forkserver (the fault suite's
    killed runs): the environment and folder of a new ``python fault_child.py``, stdout to
    /dev/null and stderr to ``log``."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
    main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
