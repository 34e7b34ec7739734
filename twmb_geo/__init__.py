"""twmb_geo: Toronto Water Main Break analytics and risk platform.

The public API (the CLI is a thin layer over it)::

    import twmb_geo as tw
    cfg = tw.default_config("out")            # or tw.load_config("twmb.toml")
    report = tw.ingest(cfg)                   # validate sources into the DuckDB store
    with tw.open_store(cfg.store_path) as s:
        breaks = s.read("breaks")
    result = tw.read_source("breaks.csv", "toronto_breaks_csv")   # no store: in memory
"""

from ._version import __version__
from .config import Config, SourceConfig, default_config, load_config, write_config
from .contracts import list_schemas, load_schema, validate_frame
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
from .io.ckan import fetch_toronto
from .io.profiles import Profile, builtin_profiles, get_profile, load_profile_file
from .pipeline import (
    IngestReport,
    SourceReport,
    features,
    ingest,
    make_maps,
    make_report,
    powerbi_kit,
    publish_star,
    read_source,
    run,
    score,
    simulate,
    summarize,
    train,
)
from .store.duckdb_store import Store, open_store

__all__ = [
    "Config",
    "ConfigError",
    "ContractError",
    "FetchError",
    "IngestReport",
    "InputDataError",
    "Profile",
    "PublishError",
    "ReconciliationError",
    "SourceConfig",
    "SourceReport",
    "Store",
    "StoreError",
    "TwmbError",
    "__version__",
    "builtin_profiles",
    "default_config",
    "features",
    "fetch_toronto",
    "get_profile",
    "ingest",
    "list_schemas",
    "load_config",
    "load_profile_file",
    "load_schema",
    "make_maps",
    "make_report",
    "open_store",
    "powerbi_kit",
    "publish_star",
    "read_source",
    "run",
    "score",
    "simulate",
    "summarize",
    "train",
    "validate_frame",
    "write_config",
]
