"""Project configuration (TOML) and package settings.

One file says which sources to read with which profiles, where results go and the
analysis settings; every CLI command reads it (``--config``). Secrets never live here:
they come from environment variables.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomli_w

from ._paths import data_dir
from .core.model_kinds import MODEL_KINDS
from .core.units import UNIT_TYPES, unit_type_names
from .core.vocab import DEFAULT_TIERS
from .errors import ConfigError
from .io.profiles import Profile, get_profile, load_profile_file

__all__ = [
    "Config",
    "FeatureConfig",
    "GraphConfig",
    "ModelConfig",
    "SourceConfig",
    "default_config",
    "load_config",
    "write_config",
]

_PROJECT_KEYS = {
    "name",
    "out",
    "store",
    "h3_resolution",
    "service_area_source",
    "service_area_buffer_m",
    "weather_coverage_threshold",
    "today",
}


@dataclass(frozen=True)
class SourceConfig:
    """One input: an id, a profile and one or more files (a folder or glob expands)."""

    id: str
    profile: str
    path: str
    enabled: bool = True

    def files(self, root: Path) -> list[Path]:
        """The files this source reads, sorted; a folder means every file in it."""
        p = Path(self.path)
        p = p if p.is_absolute() else root / p
        if any(ch in self.path for ch in "*?["):
            return sorted(Path(p.anchor).glob(str(p.relative_to(p.anchor))))
        if p.is_dir():
            return sorted(x for x in p.iterdir() if x.is_file() and not x.name.startswith("."))
        return [p]


@dataclass(frozen=True)
class FeatureConfig:
    """Settings of the spatial organisation and feature stage (``[features]``)."""

    parent_resolution: int = 7
    study_start: int | None = None
    study_end: int | None = None
    pipe_tolerance_m: float = 25.0
    street_tolerance_m: float = 50.0
    street_half_width_m: float = 15.0
    near_radius_m: float = 100.0
    decay_tau: float = 3.0
    distance_band_m: float = 250.0
    distance_graph: str = "knn"
    distance_knn: int = 8
    esda_permutations: int = 999
    seed: int = 42


_FEATURE_KEYS = {f for f in FeatureConfig.__dataclass_fields__}


@dataclass(frozen=True)
class GraphConfig:
    """Spatial graph settings of the feature stage (``[graphs]``).

    The distance graph of pipes and streets keeps its keys in ``[features]``
    (``distance_graph``, ``distance_knn``, ``distance_band_m``).
    """

    cell_order: int = 1
    cell_knn: int = 8
    neighbourhood_gap_m: float = 1.0
    neighbourhood_knn: int = 5
    pipe_end_tolerance_m: float = 1.0
    pipe_t_junctions: bool = True

    def to_toml(self) -> dict[str, Any]:
        """TOML-ready form."""
        return dict(self.__dict__)


_GRAPH_KEYS = {f for f in GraphConfig.__dataclass_fields__}

CV_SCHEMES = ("forward", "spatial", "spatiotemporal", "random")


@dataclass(frozen=True)
class ModelConfig:
    """Settings of the risk-model stage (``[model]``): validation, model, scoring, simulation."""

    unit_types: tuple[str, ...] = field(default_factory=lambda: unit_type_names(modelled=True))
    kind: str = "poisson"
    schemes: tuple[str, ...] = CV_SCHEMES
    forward_years: int = 8
    spatial_folds: int = 5
    block_resolution: int = 6
    buffer_rings: int = 1
    spatiotemporal_years: int = 3
    random_folds: int = 5
    max_iter: int = 100
    learning_rate: float = 0.1
    calibrate: bool = True
    importance_repeats: int = 3
    importance_max_rows: int = 50_000
    tiers: tuple[tuple[str, float], ...] = DEFAULT_TIERS
    horizon: int = 10
    n_sims: int = 1000
    unit_horizons: tuple[int, ...] = (1, 5, 10)
    annual_growth: float = 0.0
    renewal_km: float = 100.0
    renewal_units: int = 100
    renewal_residual: float = 0.1
    seed: int = 42

    def to_toml(self) -> dict[str, Any]:
        """TOML-ready form (tiers as a table name -> minimum percentile)."""
        doc = dict(self.__dict__)
        doc["unit_types"] = list(self.unit_types)
        doc["schemes"] = list(self.schemes)
        doc["unit_horizons"] = list(self.unit_horizons)
        doc["tiers"] = {name: pct for name, pct in self.tiers}
        return doc


_MODEL_KEYS = {f for f in ModelConfig.__dataclass_fields__}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _parse_model(doc: dict[str, Any], problems: list[str]) -> ModelConfig:
    """``[model]`` as a :class:`ModelConfig`, appending every problem found to ``problems``."""
    bad = sorted(set(doc) - _MODEL_KEYS)
    if bad:
        problems.append(f"[model] has unknown keys {bad}; allowed: {sorted(_MODEL_KEYS)}")
    kw = {k: v for k, v in doc.items() if k in _MODEL_KEYS}
    before = len(problems)
    for k in ("unit_types", "schemes", "unit_horizons"):
        if k in kw:
            if not isinstance(kw[k], list | tuple) or not kw[k]:
                problems.append(f"[model] {k} must be a non-empty list, got {kw[k]!r}")
            else:
                kw[k] = tuple(kw[k])
    if "tiers" in kw:
        t = kw["tiers"]
        if not isinstance(t, dict) or not t:
            problems.append(f"[model] tiers must be a table name = minimum percentile, got {t!r}")
        elif not all(_is_num(v) and 0 <= v <= 100 for v in t.values()):
            problems.append(f"[model] tiers percentiles must be numbers in 0..100, got {t!r}")
        else:
            tiers = sorted(((str(n), float(v)) for n, v in t.items()), key=lambda x: -x[1])
            if tiers[-1][1] != 0:
                problems.append("[model] tiers need one tier starting at 0 so every unit gets one")
            if len({v for _, v in tiers}) != len(tiers):
                problems.append(f"[model] tiers percentiles must differ, got {t!r}")
            kw["tiers"] = tuple(tiers)
    if len(problems) > before:
        return ModelConfig()
    m = ModelConfig(**kw)
    for u in m.unit_types:
        if u not in UNIT_TYPES:
            problems.append(
                f"[model] unit_types: {u!r} is not a unit type ({', '.join(UNIT_TYPES)})"
            )
    if m.kind not in MODEL_KINDS:
        problems.append(f"[model] kind must be one of {list(MODEL_KINDS)}, got {m.kind!r}")
    for s in m.schemes:
        if s not in CV_SCHEMES:
            problems.append(f"[model] schemes: {s!r} is not one of {list(CV_SCHEMES)}")
    ints = {
        "forward_years": 1,
        "spatial_folds": 2,
        "buffer_rings": 0,
        "spatiotemporal_years": 1,
        "random_folds": 2,
        "max_iter": 1,
        "importance_repeats": 0,
        "importance_max_rows": 100,
        "horizon": 1,
        "n_sims": 10,
        "renewal_units": 0,
        "seed": 0,
    }
    for k, lo in ints.items():
        v = getattr(m, k)
        if not _is_int(v) or v < lo:
            problems.append(f"[model] {k} must be an integer >= {lo}, got {v!r}")
    if _is_int(m.horizon) and m.horizon > 50:
        problems.append(f"[model] horizon must be at most 50 years, got {m.horizon}")
    br = m.block_resolution
    if not _is_int(br) or not 0 <= br <= 15:
        problems.append(f"[model] block_resolution must be an integer 0..15, got {br!r}")
    for h in m.unit_horizons:
        if not _is_int(h) or not 1 <= h <= (m.horizon if _is_int(m.horizon) else 50):
            problems.append(f"[model] unit_horizons must be integers in 1..horizon, got {h!r}")
    if not _is_num(m.learning_rate) or not 0 < m.learning_rate <= 1:
        problems.append(f"[model] learning_rate must be in (0, 1], got {m.learning_rate!r}")
    if not isinstance(m.calibrate, bool):
        problems.append(f"[model] calibrate must be true or false, got {m.calibrate!r}")
    if not _is_num(m.annual_growth) or m.annual_growth <= -1:
        problems.append(f"[model] annual_growth must be a number > -1, got {m.annual_growth!r}")
    if not _is_num(m.renewal_km) or m.renewal_km < 0:
        problems.append(f"[model] renewal_km must be a number >= 0, got {m.renewal_km!r}")
    if not _is_num(m.renewal_residual) or not 0 <= m.renewal_residual <= 1:
        problems.append(f"[model] renewal_residual must be in 0..1, got {m.renewal_residual!r}")
    return m


def _parse_graphs(doc: dict[str, Any], problems: list[str]) -> GraphConfig:
    """``[graphs]`` as a :class:`GraphConfig`, appending every problem found to ``problems``."""
    bad = sorted(set(doc) - _GRAPH_KEYS)
    if bad:
        problems.append(f"[graphs] has unknown keys {bad}; allowed: {sorted(_GRAPH_KEYS)}")
    g = GraphConfig(**{k: v for k, v in doc.items() if k in _GRAPH_KEYS})
    before = len(problems)
    for k in ("cell_order", "cell_knn", "neighbourhood_knn"):
        v = getattr(g, k)
        if not _is_int(v) or v < 1:
            problems.append(f"[graphs] {k} must be an integer >= 1, got {v!r}")
    for k in ("neighbourhood_gap_m", "pipe_end_tolerance_m"):
        v = getattr(g, k)
        if not _is_num(v) or not 0 <= v < float("inf"):
            problems.append(f"[graphs] {k} must be a number >= 0, got {v!r}")
    if not isinstance(g.pipe_t_junctions, bool):
        problems.append(
            f"[graphs] pipe_t_junctions must be true or false, got {g.pipe_t_junctions!r}"
        )
    if len(problems) > before:
        return GraphConfig()
    return replace(
        g,
        neighbourhood_gap_m=float(g.neighbourhood_gap_m),
        pipe_end_tolerance_m=float(g.pipe_end_tolerance_m),
    )


@dataclass(frozen=True)
class Config:
    """A project: sources, profiles, output folder and analysis settings."""

    name: str = "toronto"
    out: Path = Path("out")
    store: Path | None = None
    h3_resolution: int = 9
    service_area_source: str | None = "neighbourhoods"
    service_area_buffer_m: float = 250.0
    weather_coverage_threshold: float = 0.9
    today: dt.date | None = None
    features: FeatureConfig = field(default_factory=lambda: FeatureConfig())
    model: ModelConfig = field(default_factory=lambda: ModelConfig())
    graphs: GraphConfig = field(default_factory=lambda: GraphConfig())
    sources: tuple[SourceConfig, ...] = ()
    profile_files: tuple[str, ...] = ()
    root: Path = field(default_factory=Path.cwd)
    path: Path | None = None

    @property
    def out_dir(self) -> Path:
        """Absolute output folder."""
        return self.out if self.out.is_absolute() else self.root / self.out

    @property
    def store_path(self) -> Path:
        """The DuckDB file (``<out>/twmb.duckdb`` unless set)."""
        if self.store is None:
            return self.out_dir / "twmb.duckdb"
        return self.store if self.store.is_absolute() else self.root / self.store

    @property
    def run_date(self) -> dt.date:
        """The date used for 'future date' checks (``today`` unless pinned)."""
        return self.today or dt.date.today()

    def user_profiles(self) -> list[Profile]:
        """Profiles declared in the config's profile files."""
        out: list[Profile] = []
        for p in self.profile_files:
            path = Path(p) if Path(p).is_absolute() else self.root / p
            out.extend(load_profile_file(path))
        return out

    def profile(self, source: SourceConfig) -> Profile:
        """The profile of a source (user profiles first, then built-ins)."""
        return get_profile(source.profile, self.user_profiles())

    def source(self, source_id: str) -> SourceConfig:
        """Look a source up by id."""
        for s in self.sources:
            if s.id == source_id:
                return s
        raise ConfigError(
            f"no source {source_id!r} in the config; sources: {[s.id for s in self.sources]}"
        )

    def with_out(self, out: Path) -> Config:
        """A copy writing to another folder."""
        return replace(self, out=Path(out).resolve(), store=None)

    def to_toml(self) -> dict[str, Any]:
        """The config as a TOML-ready dict."""
        project: dict[str, Any] = {
            "name": self.name,
            "out": str(self.out),
            "h3_resolution": self.h3_resolution,
            "service_area_buffer_m": self.service_area_buffer_m,
            "weather_coverage_threshold": self.weather_coverage_threshold,
        }
        if self.store is not None:
            project["store"] = str(self.store)
        if self.service_area_source:
            project["service_area_source"] = self.service_area_source
        if self.today:
            project["today"] = self.today.isoformat()
        doc: dict[str, Any] = {"project": project}
        feats = {k: v for k, v in self.features.__dict__.items() if v is not None}
        doc["features"] = feats
        doc["model"] = self.model.to_toml()
        doc["graphs"] = self.graphs.to_toml()
        if self.profile_files:
            doc["profiles"] = {"files": list(self.profile_files)}
        doc["sources"] = [
            {
                "id": s.id,
                "profile": s.profile,
                "path": s.path,
                **({} if s.enabled else {"enabled": False}),
            }
            for s in self.sources
        ]
        return doc


def _bundled_sources() -> tuple[SourceConfig, ...]:
    d = data_dir() / "toronto"
    return (
        SourceConfig(
            "neighbourhoods",
            "toronto_neighbourhoods_140",
            str(d / "neighbourhood_planning_areas_utm6.zip"),
        ),
        SourceConfig(
            "breaks", "toronto_breaks_shapefile", str(d / "watermain_breaks_1990_2016_wgs84.zip")
        ),
        SourceConfig("weather", "eccc_daily", str(d / "weather_daily_6158350" / "eng-daily-*.csv")),
    )


def default_config(out: Path | str = "out") -> Config:
    """The built-in project: the bundled Toronto data, results under ``out``."""
    return Config(out=Path(out), sources=_bundled_sources())


def load_config(path: Path | str | None, *, out: Path | str | None = None) -> Config:
    """Read a project config; ``None`` gives :func:`default_config`. All problems are reported."""
    if path is None:
        cfg = default_config()
        return cfg.with_out(Path(out)) if out else cfg
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; create one with `twmb init`")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    problems: list[str] = []
    proj = doc.get("project", {})
    unknown = sorted(set(proj) - _PROJECT_KEYS)
    if unknown:
        problems.append(f"[project] has unknown keys {unknown}; allowed: {sorted(_PROJECT_KEYS)}")
    unknown_top = sorted(
        set(doc) - {"project", "sources", "profiles", "features", "model", "graphs"}
    )
    if unknown_top:
        problems.append(
            f"unknown sections {unknown_top}; allowed: project, sources, profiles, features, "
            "model, graphs"
        )
    model = _parse_model(doc.get("model", {}), problems)
    graphs = _parse_graphs(doc.get("graphs", {}), problems)
    feats_doc = doc.get("features", {})
    bad_feat = sorted(set(feats_doc) - _FEATURE_KEYS)
    if bad_feat:
        problems.append(f"[features] has unknown keys {bad_feat}; allowed: {sorted(_FEATURE_KEYS)}")
    features = FeatureConfig()
    try:
        features = FeatureConfig(**{k: v for k, v in feats_doc.items() if k in _FEATURE_KEYS})
    except TypeError as exc:
        problems.append(f"[features]: {exc}")
    for k in (
        "pipe_tolerance_m",
        "street_tolerance_m",
        "street_half_width_m",
        "near_radius_m",
        "decay_tau",
        "distance_band_m",
    ):
        v = getattr(features, k)
        if not isinstance(v, int | float) or isinstance(v, bool) or v <= 0:
            problems.append(f"[features] {k} must be a number > 0, got {v!r}")
    pr = features.parent_resolution
    if not isinstance(pr, int) or isinstance(pr, bool) or not 0 <= pr <= 15:
        problems.append(f"[features] parent_resolution must be an integer 0..15, got {pr!r}")
    elif isinstance(h3res := proj.get("h3_resolution", 9), int) and pr > h3res:
        problems.append(
            f"[features] parent_resolution ({pr}) must not be finer than h3_resolution ({h3res})"
        )
    if features.distance_graph not in ("knn", "band"):
        problems.append(
            f"[features] distance_graph must be 'knn' or 'band', got {features.distance_graph!r}"
        )
    if (
        not isinstance(features.distance_knn, int)
        or isinstance(features.distance_knn, bool)
        or features.distance_knn < 1
    ):
        problems.append(
            f"[features] distance_knn must be an integer >= 1, got {features.distance_knn!r}"
        )
    if (
        not isinstance(features.esda_permutations, int)
        or isinstance(features.esda_permutations, bool)
        or features.esda_permutations < 1
    ):
        problems.append(
            f"[features] esda_permutations must be an integer >= 1, got {features.esda_permutations!r}"
        )
    for k in ("study_start", "study_end"):
        v = getattr(features, k)
        if v is not None and (not isinstance(v, int) or not 1800 <= v <= 2100):
            problems.append(f"[features] {k} must be a year, got {v!r}")
    if (
        isinstance(features.study_start, int)
        and isinstance(features.study_end, int)
        and features.study_start > features.study_end
    ):
        problems.append(
            f"[features] study_start {features.study_start} is after study_end {features.study_end}"
        )
    res = proj.get("h3_resolution", 9)
    if not isinstance(res, int) or not 0 <= res <= 15:
        problems.append(f"[project] h3_resolution must be an integer 0..15, got {res!r}")
    buf = proj.get("service_area_buffer_m", 250.0)
    if not isinstance(buf, int | float) or buf < 0:
        problems.append(f"[project] service_area_buffer_m must be a number >= 0, got {buf!r}")
    thr = proj.get("weather_coverage_threshold", 0.9)
    if not isinstance(thr, int | float) or not 0 < thr <= 1:
        problems.append(f"[project] weather_coverage_threshold must be in (0, 1], got {thr!r}")
    today = proj.get("today")
    if today is not None and not isinstance(today, dt.date):
        try:
            today = dt.date.fromisoformat(str(today))
        except ValueError:
            problems.append(f"[project] today must be a date (YYYY-MM-DD), got {today!r}")
            today = None
    sources: list[SourceConfig] = []
    ids: set[str] = set()
    for i, s in enumerate(doc.get("sources", [])):
        where = f"[[sources]] #{i + 1}"
        missing = [k for k in ("id", "profile", "path") if not s.get(k)]
        if missing:
            problems.append(f"{where} is missing {missing}")
            continue
        bad = sorted(set(s) - {"id", "profile", "path", "enabled"})
        if bad:
            problems.append(f"{where} ({s['id']}) has unknown keys {bad}")
        if s["id"] in ids:
            problems.append(f"{where}: source id {s['id']!r} is used twice")
        ids.add(s["id"])
        sources.append(
            SourceConfig(
                str(s["id"]), str(s["profile"]), str(s["path"]), bool(s.get("enabled", True))
            )
        )
    if not sources:
        problems.append("no [[sources]] declared")
    sa = proj.get("service_area_source", "neighbourhoods")
    if sa and sa not in ids and sources:
        problems.append(
            f"[project] service_area_source {sa!r} is not a source id; sources: {sorted(ids)}"
        )
    profile_files = tuple(str(p) for p in doc.get("profiles", {}).get("files", []))
    if problems:
        raise ConfigError(f"config file {path} is invalid", problems)
    cfg = Config(
        name=str(proj.get("name", "project")),
        out=Path(proj.get("out", "out")),
        store=Path(proj["store"]) if proj.get("store") else None,
        h3_resolution=int(res),
        service_area_source=sa or None,
        service_area_buffer_m=float(buf),
        weather_coverage_threshold=float(thr),
        today=today,
        features=features,
        model=model,
        graphs=graphs,
        sources=tuple(sources),
        profile_files=profile_files,
        root=path.resolve().parent,
        path=path.resolve(),
    )
    # Resolve every profile now so a typo fails before any work starts.
    errs: list[str] = []
    user: list[Profile] = []
    for p in profile_files:
        ppath = Path(p) if Path(p).is_absolute() else cfg.root / p
        try:
            user.extend(load_profile_file(ppath))
        except ConfigError as exc:
            errs.append(str(exc))
    if not errs:
        for s in cfg.sources:
            try:
                get_profile(s.profile, user)
            except ConfigError as exc:
                errs.append(f"source {s.id!r}: {exc}")
    if errs:
        raise ConfigError(f"config file {path} refers to unusable profiles", errs)
    return cfg.with_out(Path(out)) if out else cfg


def write_config(cfg: Config, path: Path | str, *, overwrite: bool = False) -> Path:
    """Write ``cfg`` as TOML (refuses to overwrite unless asked)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# twmb_geo project config: sources (file + profile), output folder and settings.\n"
        "# Paths are relative to this file. Docs: docs/configuration.md\n"
    )
    path.write_text(header + tomli_w.dumps(cfg.to_toml()), encoding="utf-8")
    return path
