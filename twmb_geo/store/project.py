"""The project's analysis CRS in the store: chosen once, read by every stage.

The first ingest settles it (``[project] crs``, or chosen from the sources' combined
extent by :func:`twmb_geo.core.crs.choose_crs`) and writes it to the ``project_crs`` table;
later stages run inside it (:func:`in_project_crs`), so a store never mixes CRSs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import pandas as pd

from ..config import Config, SourceConfig
from ..contracts import conform
from ..core.crs import (
    AnalysisCRSError,
    CRSChoice,
    check_analysis_crs,
    choose_crs,
    crs_name,
    merge_bounds,
    source_datum,
    using_crs,
)
from ..errors import ConfigError, InputDataError
from ..ingest.extent import source_extent
from .duckdb_store import Store

__all__ = ["in_project_crs", "project_crs", "resolve_analysis_crs", "stored_crs"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def stored_crs(store: Store) -> str | None:
    """The analysis CRS recorded in the store, if any."""
    if not store.has_table("project_crs") or not store.count("project_crs"):
        return None
    return str(store.read("project_crs")["crs"].iloc[0])


def configured_crs(cfg: Config) -> str | None:
    """``[project] crs`` checked (projected, metres); None when it is unset or ``auto``."""
    if not cfg.crs or cfg.crs == "auto":
        return None
    try:
        return check_analysis_crs(cfg.crs)
    except AnalysisCRSError as exc:
        raise ConfigError(f"[project] crs: {exc}") from None


def _choose(cfg: Config, sources: Sequence[SourceConfig]) -> tuple[CRSChoice, tuple | None]:
    boxes: list[tuple[float, float, float, float]] = []
    crss: list[str] = []
    for src in sources:
        files = [f for f in src.files(cfg.root) if f.exists()]
        ext = source_extent(files, cfg.profile(src)) if files else None
        if ext is not None:
            boxes.append(ext.bounds)
            crss.extend(ext.crss)
    bounds = merge_bounds(boxes)
    if bounds is None:
        raise InputDataError(
            "cannot choose an analysis CRS: no source has coordinates; set [project] crs "
            "(a projected CRS in metres, e.g. the UTM zone of the city)"
        )
    return choose_crs(bounds, source_datum(crss)), bounds


def resolve_analysis_crs(store: Store, cfg: Config) -> dict[str, Any]:
    """The store's analysis CRS, settling and recording it on the first ingest.

    Returns the ``project_crs`` row as a dict. A config CRS that differs from the one the
    store was built in is refused: the curated tables would mix CRSs.
    """
    wanted = configured_crs(cfg)
    stored = stored_crs(store)
    if stored is not None:
        if wanted is not None and wanted != stored:
            raise ConfigError(
                f"[project] crs is {crs_name(wanted)} but the store {cfg.store_path} was built in "
                f"{crs_name(stored)}; use another output folder (--out) or delete the store to "
                "change the analysis CRS"
            )
        return dict(store.read("project_crs").iloc[0])
    bounds: tuple | None = None
    if wanted is not None:
        row = {"crs": wanted, "name": crs_name(wanted), "method": "config"}
        row["reason"] = "[project] crs"
    else:
        choice, bounds = _choose(cfg, [s for s in cfg.sources if s.enabled])
        row = {"crs": choice.crs, "name": choice.name, "method": "auto", "reason": choice.reason}
        log.info("analysis CRS chosen from the data: %s (%s)", choice.name, choice.reason)
    w, s, e, n = bounds if bounds is not None else (None, None, None, None)
    row.update(west=w, south=s, east=e, north=n)
    store.replace_rows("project_crs", conform(pd.DataFrame([row]), "store/project_crs"))
    return row


def project_crs(cfg: Config) -> str:
    """The analysis CRS of the project's store (the config's when the store has none yet)."""
    if cfg.store_path.exists():
        with Store(cfg.store_path, read_only=True) as store:
            stored = stored_crs(store)
        if stored is not None:
            return stored
    wanted = configured_crs(cfg)
    if wanted is None:
        raise InputDataError(
            f"the store {cfg.store_path} has no analysis CRS yet; run `twmb ingest` (or "
            "`twmb run`) first"
        )
    return wanted


def in_project_crs(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a stage ``fn(cfg, ...)`` inside the project's analysis CRS (:func:`project_crs`)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        cfg = args[0] if args else kwargs["cfg"]
        if not isinstance(cfg, Config):
            raise TypeError(f"{fn.__name__} needs a Config as its first argument")
        with using_crs(project_crs(cfg)):
            return fn(*args, **kwargs)

    return wrapper
