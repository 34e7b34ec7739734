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
"""

from ._version import __version__
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
from .io.profiles import Profile, builtin_profiles, get_profile, load_profile_file
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
    "fetch_toronto",
    "get_profile",
    "ingest_sources",
    "list_models",
    "list_schemas",
    "load_config",
    "load_profile_file",
    "load_schema",
    "open_store",
    "publish_star",
    "read_source",
    "register_unit_type",
    "render_maps",
    "run",
    "score_units",
    "simulate_breaks",
    "summarize",
    "synthetic_example",
    "train_models",
    "validate_frame",
    "write_config",
    "write_powerbi_kit",
    "write_report",
]
