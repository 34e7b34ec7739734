"""twmb_geo: water main break analytics and risk platform.

The public API (the CLI is a thin layer over it)::

    import twmb_geo as tw
    cfg = tw.default_config("out")            # or tw.load_config("twmb.toml")
    report = tw.ingest_sources(cfg)           # validate sources into the DuckDB store
    feats = tw.build_features(cfg)            # units, links, panel, lags, hot spots
    models = tw.train_models(cfg)             # validated risk models, cards, registry
    scores = tw.score_units(cfg)              # current risk scores and tiers
    outlook = tw.simulate_breaks(cfg)         # Monte Carlo outlook and renewal scenario
    star = tw.publish_star(cfg)               # Power BI star schema to the local targets
    maps = tw.render_maps(cfg)                # GeoJSON/GPKG/GeoParquet, PNG, HTML map
    rep = tw.write_report(cfg, maps=maps)     # the run report
    with tw.open_store(cfg.store_path) as s:
        breaks = s.read("breaks")
    result = tw.read_source("breaks.csv", "toronto_breaks_csv")   # no store: in memory

The names are loaded on first use (:func:`__getattr__`): ``import twmb_geo`` and a worker
process unpickling one task of a submodule (``twmb_geo.publish.base``) import that
submodule and what it needs, not the whole package.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .api import (
        build_features,
        ingest_sources,
        list_models,
        publish_star,
        render_maps,
        run,
        score_units,
        simulate_breaks,
        summarize,
        synthetic_example,
        train_models,
        write_powerbi_kit,
        write_report,
    )
    from .config import Config, SourceConfig, default_config, load_config, write_config
    from .contracts import list_schemas, load_schema, validate_frame
    from .core.units import UNIT_TYPES, UnitType, register_unit_type
    from .errors import (
        ConfigError,
        ContractError,
        FetchError,
        InputDataError,
        PublishError,
        ReconciliationError,
        StoreError,
        TwmbError,
    )
    from .features.build import FeatureReport
    from .ingest._common import IngestResult
    from .ingest.sources import read_source
    from .io.ckan import fetch_toronto
    from .io.inspect import draft_project, inspect_file
    from .io.profiles import Profile, builtin_profiles, get_profile, load_profile_file
    from .model.registry import load_card, render_card
    from .results import (
        MapsResult,
        PowerBIKitResult,
        PublishResult,
        ReportResult,
        RunResult,
        ScoreResult,
        SimulationResult,
        TrainResult,
    )
    from .store.duckdb_store import Store, open_store
    from .store.load import IngestReport, SourceReport
    from .synth import make_city, write_city

#: where each public name is defined (imported on first use)
_EXPORTS: dict[str, str] = {
    "build_features": ".api",
    "ingest_sources": ".api",
    "list_models": ".api",
    "publish_star": ".api",
    "render_maps": ".api",
    "run": ".api",
    "score_units": ".api",
    "simulate_breaks": ".api",
    "summarize": ".api",
    "synthetic_example": ".api",
    "train_models": ".api",
    "write_powerbi_kit": ".api",
    "write_report": ".api",
    "Config": ".config",
    "SourceConfig": ".config",
    "default_config": ".config",
    "load_config": ".config",
    "write_config": ".config",
    "list_schemas": ".contracts",
    "load_schema": ".contracts",
    "validate_frame": ".contracts",
    "UNIT_TYPES": ".core.units",
    "UnitType": ".core.units",
    "register_unit_type": ".core.units",
    "ConfigError": ".errors",
    "ContractError": ".errors",
    "FetchError": ".errors",
    "InputDataError": ".errors",
    "PublishError": ".errors",
    "ReconciliationError": ".errors",
    "StoreError": ".errors",
    "TwmbError": ".errors",
    "FeatureReport": ".features.build",
    "IngestResult": ".ingest._common",
    "read_source": ".ingest.sources",
    "fetch_toronto": ".io.ckan",
    "draft_project": ".io.inspect",
    "inspect_file": ".io.inspect",
    "Profile": ".io.profiles",
    "builtin_profiles": ".io.profiles",
    "get_profile": ".io.profiles",
    "load_profile_file": ".io.profiles",
    "MapsResult": ".results",
    "PowerBIKitResult": ".results",
    "PublishResult": ".results",
    "ReportResult": ".results",
    "RunResult": ".results",
    "ScoreResult": ".results",
    "SimulationResult": ".results",
    "TrainResult": ".results",
    "load_card": ".model.registry",
    "render_card": ".model.registry",
    "Store": ".store.duckdb_store",
    "open_store": ".store.duckdb_store",
    "IngestReport": ".store.load",
    "SourceReport": ".store.load",
    "make_city": ".synth",
    "write_city": ".synth",
}

__all__ = [
    "UNIT_TYPES",
    "Config",
    "ConfigError",
    "ContractError",
    "FeatureReport",
    "FetchError",
    "IngestReport",
    "IngestResult",
    "InputDataError",
    "MapsResult",
    "PowerBIKitResult",
    "Profile",
    "PublishError",
    "PublishResult",
    "ReconciliationError",
    "ReportResult",
    "RunResult",
    "ScoreResult",
    "SimulationResult",
    "SourceConfig",
    "SourceReport",
    "Store",
    "StoreError",
    "TrainResult",
    "TwmbError",
    "UnitType",
    "__version__",
    "build_features",
    "builtin_profiles",
    "default_config",
    "draft_project",
    "fetch_toronto",
    "get_profile",
    "ingest_sources",
    "inspect_file",
    "list_models",
    "list_schemas",
    "load_card",
    "load_config",
    "load_profile_file",
    "load_schema",
    "make_city",
    "open_store",
    "publish_star",
    "read_source",
    "register_unit_type",
    "render_card",
    "render_maps",
    "run",
    "score_units",
    "simulate_breaks",
    "summarize",
    "synthetic_example",
    "train_models",
    "validate_frame",
    "write_city",
    "write_config",
    "write_powerbi_kit",
    "write_report",
]


#: the subpackages and modules reachable as attributes (``twmb_geo.publish``)
_SUBMODULES = frozenset(m.name for m in pkgutil.iter_modules(__path__) if m.name[0] != "_")


def __getattr__(name: str) -> Any:
    """Import a public name's module, or a submodule, on first use (PEP 562); the name is
    then kept here."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
