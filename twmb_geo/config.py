"""Project configuration (TOML) and package settings.

One file says which sources to read with which profiles, where results go and the
analysis settings; every CLI command reads it (``--config``). Secrets never live here:
they come from environment variables.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from ._paths import data_dir
from .core.cluster import ClusterSpec
from .core.compute import ThreadPlan, available_cores, thread_plan
from .core.crs import TORONTO_CRS, AnalysisCRSError, check_analysis_crs
from .core.model_kinds import MODEL_CANDIDATES, MODEL_KINDS
from .core.units import UNIT_TYPES, unit_type_names
from .core.validation import fill_enums, is_integer, is_number, plain, schema_problems
from .core.vocab import DEFAULT_TIERS
from .errors import ConfigError
from .io.profiles import Profile, get_profile, load_profile_file

__all__ = [
    "ComputeConfig",
    "Config",
    "FeatureConfig",
    "GraphConfig",
    "MapsConfig",
    "ModelConfig",
    "SourceConfig",
    "config_schema",
    "default_config",
    "load_config",
    "write_config",
]


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
    partial_year: str = "auto"
    partial_year_min_coverage: float = 0.9
    partial_year_break_ratio: float = 0.5
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
    street_node_tolerance_m: float = 1.0

    def to_toml(self) -> dict[str, Any]:
        """TOML-ready form."""
        return dict(self.__dict__)


#: how a source kind is named in the derived licence line
_KIND_LABELS = {
    "breaks": "breaks",
    "pipes": "water mains",
    "streets": "streets",
    "neighbourhoods": "neighbourhoods",
    "weather_daily": "weather",
}

CV_SCHEMES = ("forward", "spatial", "spatiotemporal", "random")


@dataclass(frozen=True)
class ModelConfig:
    """Settings of the risk-model stage (``[model]``): validation, model, scoring, simulation."""

    unit_types: tuple[str, ...] = field(default_factory=lambda: unit_type_names(modelled=True))
    kind: str = "poisson"
    candidates: tuple[str, ...] = ("boost", "boost_small", "glm", "pwe")
    champion: str = "auto"
    selection_years: int = 3
    selection_breaks: float = 3000.0
    blend_weights: tuple[float, ...] = (0.5,)
    max_train_rows: int = 200_000
    #: more units of a type than this: train and validate on a stratified sample of this
    #: many units (:mod:`~twmb_geo.model.sampling`); every unit is still scored
    max_train_units: int = 150_000
    schemes: tuple[str, ...] = CV_SCHEMES
    forward_years: int = 8
    spatial_folds: int = 5
    block_resolution: int = 6
    buffer_rings: int = 1
    spatiotemporal_years: int = 2
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
    n_jobs: int = 2

    def to_toml(self) -> dict[str, Any]:
        """TOML-ready form (tiers as a table name -> minimum percentile)."""
        doc = dict(self.__dict__)
        doc["unit_types"] = list(self.unit_types)
        doc["schemes"] = list(self.schemes)
        doc["candidates"] = list(self.candidates)
        doc["blend_weights"] = list(self.blend_weights)
        doc["unit_horizons"] = list(self.unit_horizons)
        doc["tiers"] = {name: pct for name, pct in self.tiers}
        return doc


def _changed(settings: Any) -> dict[str, Any]:
    """The fields of a settings dataclass whose values differ from their defaults."""
    return {
        f.name: getattr(settings, f.name)
        for f in fields(settings)
        if getattr(settings, f.name) != f.default
    }


@dataclass(frozen=True)
class ComputeConfig:
    """CPU use of the job (``[compute]``).

    ``threads`` is the total number of CPU threads the job may use; None (the key left out)
    means the cores available to the process (:func:`~twmb_geo.core.compute.available_cores`:
    its CPU affinity, else ``os.cpu_count()``; an ``OMP_NUM_THREADS`` in the environment
    then caps the threads of each process). The model stage runs at most that many fold
    workers (``[model] n_jobs``) and gives this process and each worker
    ``max(1, threads // workers)`` OpenMP/BLAS threads (see :mod:`twmb_geo.core.compute`).
    """

    threads: int | None = None
    #: where partitioned work runs: "" this process, "local" a Dask LocalCluster, or the
    #: address of a Dask scheduler (:mod:`twmb_geo.core.cluster`)
    scheduler: str = ""
    #: LocalCluster worker processes and the memory limit of each
    workers: int = 2
    worker_memory: str = "4GiB"
    #: most rows per spatial partition: breaks for the matching, units for the panel (the
    #: partition resolution is chosen from it)
    partition_rows: int = 50_000
    #: folder or fsspec URL (s3://, gs://, abfs://) where partitioned work writes its
    #: intermediate tables; "" for ``<out>/partitions``
    partition_store: str = ""

    @property
    def cluster(self) -> ClusterSpec:
        """Where partitioned work runs (:class:`~twmb_geo.core.cluster.ClusterSpec`)."""
        return ClusterSpec(self.scheduler, self.workers, self.worker_memory)

    def partition_folder(self, out_dir: Path) -> str:
        """Where partitioned work writes (``partition_store``, else ``<out_dir>/partitions``)."""
        return self.partition_store or str(out_dir / "partitions")

    @property
    def effective_threads(self) -> int:
        """``threads``, or the cores available to the process when it is not set."""
        return available_cores() if self.threads is None else self.threads

    def plan(self, n_jobs: int) -> ThreadPlan:
        """The thread plan for ``n_jobs`` fold workers (:func:`~twmb_geo.core.compute.thread_plan`).

        Parameters
        ----------
        n_jobs : int
            Requested worker processes (``[model] n_jobs``).

        Returns
        -------
        ThreadPlan
            Workers, threads per process and the budget.
        """
        return thread_plan(self.threads, n_jobs)

    def to_toml(self) -> dict[str, Any]:
        """TOML-ready form (``threads`` left out when it follows the machine; the other keys
        only when they differ from the defaults)."""
        out: dict[str, Any] = {} if self.threads is None else {"threads": self.threads}
        return out | {k: v for k, v in _changed(self).items() if k != "threads"}


@dataclass(frozen=True)
class MapsConfig:
    """Map outputs (``[maps]``)."""

    #: most features per layer in the offline HTML map: larger layers keep their
    #: highest-risk units (breaks: the latest years), so a browser can open the page; the
    #: file exports always hold every feature
    html_max_features: int = 100_000

    def to_toml(self) -> dict[str, Any]:
        """TOML-ready form: the keys that differ from the defaults."""
        return _changed(self)


@dataclass(frozen=True)
class Config:
    """A project: sources, profiles, output folder and analysis settings."""

    name: str = "toronto"
    city: str = ""
    licence: str = ""
    attribution: str = ""
    out: Path = Path("out")
    crs: str | None = None
    store: Path | None = None
    h3_resolution: int = 9
    service_area_source: str | None = None
    service_area: str = "auto"
    service_area_buffer_m: float = 250.0
    weather_coverage_threshold: float = 0.9
    today: dt.date | None = None
    features: FeatureConfig = field(default_factory=lambda: FeatureConfig())
    model: ModelConfig = field(default_factory=lambda: ModelConfig())
    graphs: GraphConfig = field(default_factory=lambda: GraphConfig())
    compute: ComputeConfig = field(default_factory=lambda: ComputeConfig())
    maps: MapsConfig = field(default_factory=lambda: MapsConfig())
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

    @property
    def city_name(self) -> str:
        """Display name of the city in titles: ``city``, else ``name`` capitalised."""
        return self.city or self.name[:1].upper() + self.name[1:]

    def licence_line(self) -> str:
        """The data licence line: ``licence``, else derived from the sources' profiles.

        The derived form groups the enabled sources by publisher and licence, e.g.
        ``"Breaks, pipes: City of X Open Data, Open Data Licence X; weather: ..."``; sources
        whose profile states neither are left out ("" when none states one).
        """
        if self.licence:
            return self.licence
        groups: dict[tuple[str, str], list[str]] = {}
        user = self.user_profiles()
        for s in self.sources:
            if not s.enabled:
                continue
            prof = get_profile(s.profile, user)
            key = (prof.publisher.strip(), prof.licence.strip())
            label = _KIND_LABELS.get(prof.kind, prof.kind)
            if any(key) and label not in groups.setdefault(key, []):
                groups[key].append(label)
        parts = [
            f"{', '.join(labels)}: {', '.join(k for k in key if k)}"
            for key, labels in groups.items()
        ]
        line = "; ".join(parts)
        return line[:1].upper() + line[1:]

    def credit_line(self) -> str:
        """The licence line and the attribution as sentences, printed under every map."""
        parts = [self.licence_line(), self.attribution]
        return " ".join(p if p.endswith(".") else f"{p}." for p in parts if p.strip())

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

    def boundary_source(self) -> str | None:
        """The source whose polygons bound the service area, or None (derived or none).

        ``service_area_source`` when set; with ``service_area = "auto"`` and no
        ``service_area_source``, the one enabled ``neighbourhoods`` source if there is exactly
        one; otherwise None.
        """
        if self.service_area == "none":
            return None
        if self.service_area_source:
            return self.service_area_source
        if self.service_area != "auto":
            return None
        user = self.user_profiles()
        nb = [
            s.id
            for s in self.sources
            if s.enabled and get_profile(s.profile, user).kind == "neighbourhoods"
        ]
        return nb[0] if len(nb) == 1 else None

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
            **{k: v for k in ("city", "licence", "attribution") if (v := getattr(self, k))},
            "out": str(self.out),
            **({"crs": self.crs} if self.crs else {}),
            "h3_resolution": self.h3_resolution,
            "service_area": self.service_area,
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
        if compute := self.compute.to_toml():
            doc["compute"] = compute
        if maps := self.maps.to_toml():
            doc["maps"] = maps
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
    return Config(
        out=Path(out),
        crs=TORONTO_CRS,
        city="Toronto",
        licence="Contains information licensed under the Open Government Licence – Toronto.",
        sources=_bundled_sources(),
        service_area_source="neighbourhoods",
    )


_SCHEMA_FILE = Path(__file__).with_name("config_schema.json")


def config_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of the project file, enums filled from the registries.

    Unit types, model kinds and validation schemes come from :data:`UNIT_TYPES`,
    :data:`MODEL_KINDS` and :data:`CV_SCHEMES` as registered when this is called.
    """
    schema: dict[str, Any] = json.loads(_SCHEMA_FILE.read_text(encoding="utf-8"))
    names = {
        "unit_types": list(UNIT_TYPES),
        "model_kinds": list(MODEL_KINDS),
        "model_candidates": list(MODEL_CANDIDATES),
        "cv_schemes": list(CV_SCHEMES),
    }
    fill_enums(schema, names)
    return schema


def _schema_problems(doc: dict[str, Any]) -> list[str]:
    """Every schema error of ``doc``, sorted by path, as messages (each once)."""
    return schema_problems(doc, config_schema())


def _table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    return value if isinstance(value, dict) else {}


def _int(table: dict[str, Any], key: str, default: int | None) -> int | None:
    """``table[key]`` (``default`` when absent), None when it is not an integer."""
    value = table.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _source_problems(doc: dict[str, Any]) -> list[str]:
    """``[[sources]]`` ids used twice, and a service-area source that is not one of them."""
    sources = doc.get("sources")
    if not isinstance(sources, list):
        return []
    problems: list[str] = []
    ids: list[str] = []
    for i, s in enumerate(sources):
        sid = s.get("id") if isinstance(s, dict) else None
        if not isinstance(sid, str) or not sid:
            continue
        if sid in ids:
            problems.append(f"[[sources]] #{i + 1}: source id {sid!r} is used twice")
        ids.append(sid)
    proj = _table(doc, "project")
    sa = proj.get("service_area_source")
    if ids and isinstance(sa, str) and sa and sa not in ids:
        problems.append(
            f"[project] service_area_source {sa!r} is not a source id; sources: {sorted(set(ids))}"
        )
    if proj.get("service_area") == "none" and isinstance(sa, str) and sa:
        problems.append(
            f"[project] service_area = 'none' but service_area_source = {sa!r}; remove one of them"
        )
    return problems


def _feature_problems(doc: dict[str, Any]) -> list[str]:
    """``[features]`` parent resolution against the H3 resolution, and the study years."""
    feats, problems = _table(doc, "features"), []
    pr = _int(feats, "parent_resolution", FeatureConfig.parent_resolution)
    res = _int(_table(doc, "project"), "h3_resolution", Config.h3_resolution)
    if pr is not None and res is not None and 0 <= pr <= 15 and 0 <= res <= 15 and pr > res:
        problems.append(
            f"[features] parent_resolution ({pr}) must not be finer than h3_resolution ({res})"
        )
    start, end = _int(feats, "study_start", None), _int(feats, "study_end", None)
    if start is not None and end is not None and start > end:
        problems.append(f"[features] study_start {start} is after study_end {end}")
    return problems


def _crs_problems(doc: dict[str, Any]) -> list[str]:
    """``[project] crs``: a projected CRS in metres (or ``auto``)."""
    crs = _table(doc, "project").get("crs")
    if not isinstance(crs, str) or not crs or crs == "auto":
        return []
    try:
        check_analysis_crs(crs)
    except AnalysisCRSError as exc:
        return [f"[project] crs: {exc}"]
    return []


def _percent(value: Any) -> bool:
    return is_number(None, value) and 0 <= value <= 100


def _model_problems(doc: dict[str, Any]) -> list[str]:
    """``[model]`` tiers (one starting at 0, all different) and unit horizons within the horizon.

    The tier rules look at the percentiles that are valid, so one tier out of range (a
    schema error) does not hide a missing 0 tier or a repeated percentile.
    """
    model, problems = _table(doc, "model"), []
    tiers = model.get("tiers")
    values = [float(v) for v in tiers.values() if _percent(v)] if isinstance(tiers, dict) else []
    if values:
        if min(values) != 0:
            problems.append("[model] tiers need one tier starting at 0 so every unit gets one")
        if len(set(values)) != len(values):
            problems.append(f"[model] tiers percentiles must differ, got {tiers!r}")
    horizon = _int(model, "horizon", ModelConfig.horizon)
    horizons = model.get("unit_horizons", list(ModelConfig.unit_horizons))
    if horizon is not None and 1 <= horizon <= 50 and isinstance(horizons, list):
        problems.extend(
            f"[model] unit_horizons must be integers in 1..horizon, got {h!r}"
            for h in horizons
            if is_integer(None, h) and horizon < h <= 50
        )
    return problems


def _nested(exc: ConfigError) -> str:
    """``exc`` as one problem of the config: its message, its own problems indented below."""
    return exc.message + "".join(f"\n    - {p}" for p in exc.problems)


def _profile_problems(doc: dict[str, Any], root: Path) -> list[str]:
    """Profile files that cannot be loaded, and sources naming a profile that does not exist.

    Every profile file is read (each lists all its problems); the sources' profile ids are
    looked up only when every file loaded, so a broken file does not also report its ids as
    unknown. Values of the wrong type are left to the schema.
    """
    files = _table(doc, "profiles").get("files", [])
    if not isinstance(files, list):
        return []
    problems: list[str] = []
    user: list[Profile] = []
    for f in files:
        if not isinstance(f, str) or not f:
            continue
        path = Path(f) if Path(f).is_absolute() else root / f
        try:
            user.extend(load_profile_file(path))
        except ConfigError as exc:
            problems.append(_nested(exc))
    sources = doc.get("sources")
    if problems or not isinstance(sources, list):
        return problems
    for i, s in enumerate(sources):
        pid = s.get("profile") if isinstance(s, dict) else None
        if not isinstance(pid, str) or not pid:
            continue
        sid = s.get("id")
        where = f"#{i + 1} ({sid})" if isinstance(sid, str) and sid else f"#{i + 1}"
        try:
            get_profile(pid, user)
        except ConfigError as exc:
            problems.append(f"[[sources]] {where} profile: {exc.message}")
    return problems


def _problems(doc: dict[str, Any], root: Path) -> list[str]:
    """Every problem of a project document: schema errors, the cross-field rules, profiles."""
    return [
        *_schema_problems(doc),
        *_source_problems(doc),
        *_crs_problems(doc),
        *_feature_problems(doc),
        *_model_problems(doc),
        *_profile_problems(doc, root),
    ]


def _model_config(doc: dict[str, Any]) -> ModelConfig:
    kw = dict(_table(doc, "model"))
    for k in ("unit_types", "schemes", "unit_horizons", "candidates", "blend_weights"):
        if k in kw:
            kw[k] = tuple(kw[k])
    if "tiers" in kw:
        tiers = ((str(n), float(v)) for n, v in kw["tiers"].items())
        kw["tiers"] = tuple(sorted(tiers, key=lambda x: -x[1]))
    return ModelConfig(**kw)


def _graph_config(doc: dict[str, Any]) -> GraphConfig:
    g = GraphConfig(**_table(doc, "graphs"))
    return replace(
        g,
        neighbourhood_gap_m=float(g.neighbourhood_gap_m),
        pipe_end_tolerance_m=float(g.pipe_end_tolerance_m),
        street_node_tolerance_m=float(g.street_node_tolerance_m),
    )


def _build(doc: dict[str, Any], path: Path) -> Config:
    """A valid project document as a :class:`Config` rooted at the file's folder."""
    proj = _table(doc, "project")
    today = proj.get("today")
    return Config(
        name=str(proj.get("name", "project")),
        city=str(proj.get("city", "")).strip(),
        licence=str(proj.get("licence", "")).strip(),
        attribution=str(proj.get("attribution", "")).strip(),
        out=Path(proj.get("out", "out")),
        crs=str(proj["crs"]) if proj.get("crs") and proj.get("crs") != "auto" else None,
        store=Path(proj["store"]) if proj.get("store") else None,
        h3_resolution=int(proj.get("h3_resolution", 9)),
        service_area_source=proj.get("service_area_source") or None,
        service_area=str(proj.get("service_area", "auto")),
        service_area_buffer_m=float(proj.get("service_area_buffer_m", 250.0)),
        weather_coverage_threshold=float(proj.get("weather_coverage_threshold", 0.9)),
        today=dt.date.fromisoformat(today) if today else None,
        features=FeatureConfig(**_table(doc, "features")),
        model=_model_config(doc),
        graphs=_graph_config(doc),
        compute=ComputeConfig(**_table(doc, "compute")),
        maps=MapsConfig(**_table(doc, "maps")),
        sources=tuple(
            SourceConfig(s["id"], s["profile"], s["path"], s.get("enabled", True))
            for s in doc["sources"]
        ),
        profile_files=tuple(_table(doc, "profiles").get("files", [])),
        root=path.resolve().parent,
        path=path.resolve(),
    )


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; create one with `twmb init`")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def load_config(path: Path | str | None, *, out: Path | str | None = None) -> Config:
    """Read a project config; ``None`` gives :func:`default_config`.

    The file is checked against :func:`config_schema`, the cross-field rules and its
    profiles (every profile file loaded with :func:`~twmb_geo.io.profiles.load_profile_file`,
    every source's profile resolved); one :class:`ConfigError` lists every problem, each
    naming its key path (``[features] esda_permutations ...``, ``[[sources]] #2 (breaks)
    ...``, a profile file's problems under its name).

    Parameters
    ----------
    path : Path or str, optional
        The ``twmb.toml``; ``None`` for the bundled project.
    out : Path or str, optional
        An output folder overriding ``[project] out``.

    Returns
    -------
    Config
        The project, rooted at the file's folder.

    Raises
    ------
    ConfigError
        The file is missing, not TOML, or invalid (exit code 2 in the CLI).
    """
    if path is None:
        cfg = default_config()
    else:
        path = Path(path)
        doc = plain(_read_toml(path))
        problems = _problems(doc, path.resolve().parent)
        if problems:
            raise ConfigError(f"config file {path} is invalid", problems)
        cfg = _build(doc, path)
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
