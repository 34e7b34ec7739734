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
from .errors import ConfigError
from .io.profiles import Profile, get_profile, load_profile_file

__all__ = [
    "Config",
    "FeatureConfig",
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
    unknown_top = sorted(set(doc) - {"project", "sources", "profiles", "features"})
    if unknown_top:
        problems.append(
            f"unknown sections {unknown_top}; allowed: project, sources, profiles, features"
        )
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
    if not isinstance(features.esda_permutations, int) or features.esda_permutations < 0:
        problems.append(
            f"[features] esda_permutations must be an integer >= 0, got {features.esda_permutations!r}"
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
