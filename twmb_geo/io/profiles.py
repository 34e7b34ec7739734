"""Source profiles: how to read one publisher's file into one of the package's table kinds.

A profile is data (TOML), not code: column mapping, date format, coordinate pairs with
their CRS, id field, encoding and row checks. Built-in profiles live next to this module;
users add their own city with a TOML file (see ``docs/profiles.md``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pyproj import CRS
from pyproj.exceptions import CRSError

from .._paths import profiles_dir
from ..contracts import load_schema
from ..errors import ConfigError, ContractError

__all__ = [
    "FORMATS",
    "KINDS",
    "CoordinatePair",
    "Profile",
    "builtin_profiles",
    "get_profile",
    "load_profile_file",
    "parse_profile",
]

FORMATS = ("shapefile", "csv", "geojson", "gpkg", "xlsx", "eccc_daily_csv")

#: canonical fields per kind: name -> required?
KINDS: dict[str, dict[str, bool]] = {
    "breaks": {
        "break_date": True,
        "break_year": False,
        "material": False,
        "diameter_mm": False,
        "asset_id": False,
        "street_segment_id": False,
        "record_id": False,
    },
    "neighbourhoods": {"area_code": True, "area_name": True},
    "weather_daily": {},
    "pipes": {
        "asset_id": True,
        "watermain_type": False,
        "diameter_mm": False,
        "material": False,
        "install_date": False,
        "construction_year": False,
        "measured_length_m": False,
        "location_desc": False,
        "removal_year": False,
        "street_segment_id": False,
        "record_id": False,
    },
    "streets": {
        "centreline_id": True,
        "linear_name_full": False,
        "feature_code": False,
        "feature_code_desc": False,
        "from_node": False,
        "to_node": False,
        "jurisdiction": False,
        "status": False,
        "oneway_dir_code": False,
        "linear_name_id": False,
        "record_id": False,
    },
}
_GEOMETRY_KINDS = {"neighbourhoods", "pipes", "streets"}
_KEYS = {
    "id",
    "kind",
    "description",
    "format",
    "raw_schema",
    "encoding",
    "member",
    "layer",
    "sheet",
    "date_format",
    "crs",
    "columns",
    "coordinates",
    "checks",
    "geometry_column",
    "geometry_encoding",
    "null_values",
    "chunk_size",
    "publisher",
    "licence",
}
_CHECK_KEYS = {
    "duplicate_key",
    "year_mismatch",
    "min_date",
    "conflict_tolerance_m",
    "duplicate_max_distance_m",
}


@dataclass(frozen=True)
class CoordinatePair:
    """One way a record states its location: two columns in a CRS, or the file geometry."""

    name: str
    crs: str | None
    x: str | None = None
    y: str | None = None
    geometry: bool = False


@dataclass(frozen=True)
class Profile:
    """How to read a publisher's file: format, columns, dates, CRS, encoding and checks."""

    id: str
    kind: str
    format: str
    description: str
    raw_schema: str | None = None
    encoding: str = "auto"
    member: str | None = None
    layer: str | None = None
    sheet: str | int = 0
    date_format: str = "auto"
    crs: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    coordinates: tuple[CoordinatePair, ...] = ()
    geometry_column: str | None = None
    geometry_encoding: str = "geojson"
    null_values: tuple[str, ...] = ("", "None", "NULL", "null", "NaN", "nan", "N/A")
    chunk_size: int = 200_000
    duplicate_key: tuple[str, ...] = ()
    year_mismatch: str = "quarantine"
    min_date: str = "1850-01-01"
    conflict_tolerance_m: float = 100.0
    duplicate_max_distance_m: float | None = None
    publisher: str = ""
    licence: str = ""
    origin: str = "built-in"

    @property
    def raw_columns(self) -> list[str]:
        """Every raw column the profile reads (mapped fields and coordinate columns)."""
        cols = list(self.columns.values())
        for pair in self.coordinates:
            cols.extend(c for c in (pair.x, pair.y) if c)
        if self.geometry_column:
            cols.append(self.geometry_column)
        return list(dict.fromkeys(cols))

    @property
    def uses_geometry(self) -> bool:
        """Whether records are located by the file geometry (a shapefile, GeoJSON, ...)."""
        return self.kind in _GEOMETRY_KINDS or any(p.geometry for p in self.coordinates)


def _check_crs(value: str, where: str, problems: list[str]) -> None:
    try:
        CRS.from_user_input(value)
    except CRSError:
        problems.append(f"{where}: unknown CRS {value!r} (use an EPSG code such as 'EPSG:2952')")


def _check_columns(columns: dict[str, Any], kind: Any, fmt: Any, problems: list[str]) -> None:
    """The ``[columns]`` table must map known fields, and every required one."""
    if kind not in KINDS:
        return
    allowed = KINDS[kind]
    bad = sorted(set(columns) - set(allowed))
    if bad:
        problems.append(
            f"[columns] has fields {bad} that kind {kind!r} does not know; known: {sorted(allowed)}"
        )
    missing = sorted(k for k, req in allowed.items() if req and k not in columns)
    if missing and fmt != "eccc_daily_csv":
        problems.append(f"[columns] must map the required fields {missing}")


def _parse_pairs(doc: Mapping[str, Any], kind: Any, problems: list[str]) -> list[CoordinatePair]:
    """The ``[[coordinates]]`` pairs, and the profile's own ``crs``."""
    pairs: list[CoordinatePair] = []
    for i, c in enumerate(doc.get("coordinates", [])):
        name = c.get("name") or f"pair{i + 1}"
        geom = bool(c.get("geometry", False))
        crs = c.get("crs") or (doc.get("crs") if geom else None)
        if not geom and not (c.get("x") and c.get("y")):
            problems.append(
                f"[[coordinates]] {name!r} needs 'x' and 'y' columns or geometry = true"
            )
        if not geom and not crs:
            problems.append(f"[[coordinates]] {name!r} needs a 'crs'")
        if crs:
            _check_crs(crs, f"[[coordinates]] {name!r}", problems)
        pairs.append(CoordinatePair(name=name, crs=crs, x=c.get("x"), y=c.get("y"), geometry=geom))
    if kind == "breaks" and not pairs:
        problems.append("a breaks profile needs at least one [[coordinates]] entry")
    if doc.get("crs"):
        _check_crs(doc["crs"], "'crs'", problems)
    return pairs


def _parse_checks(
    checks: dict[str, Any],
    columns: dict[str, Any],
    pairs: list[CoordinatePair],
    problems: list[str],
) -> tuple[tuple[str, ...], Any]:
    """The ``[checks]`` table; returns the duplicate key and the year-mismatch action."""
    bad_checks = sorted(set(checks) - _CHECK_KEYS)
    if bad_checks:
        problems.append(f"[checks] has unknown keys {bad_checks}; allowed: {sorted(_CHECK_KEYS)}")
    ym = checks.get("year_mismatch", "quarantine")
    if ym not in ("quarantine", "flag"):
        problems.append(f"[checks] year_mismatch must be 'quarantine' or 'flag', got {ym!r}")
    dup = tuple(checks.get("duplicate_key", ()))
    pair_names = {p.name for p in pairs}
    for k in dup:
        if k not in columns and k not in pair_names:
            problems.append(
                f"[checks] duplicate_key entry {k!r} is neither a mapped field nor a coordinate pair"
            )
    return dup, ym


def _check_raw_schema(
    raw_schema: Any, columns: dict[str, Any], pairs: list[CoordinatePair], problems: list[str]
) -> None:
    """Every column the profile reads must be declared in its raw schema."""
    if not raw_schema:
        return
    try:
        sch = load_schema(raw_schema)
    except ContractError as exc:
        problems.append(str(exc))
        return
    declared = set(sch.columns)
    used = [c for c in [*columns.values(), *(p.x for p in pairs), *(p.y for p in pairs)] if c]
    undeclared = sorted({c for c in used if c not in declared})
    if undeclared:
        problems.append(f"columns {undeclared} are not declared in raw schema {raw_schema}")


def parse_profile(doc: Mapping[str, Any], origin: str = "built-in") -> Profile:
    """Build a :class:`Profile` from a parsed TOML table; every problem is reported at once."""
    problems: list[str] = []
    pid = str(doc.get("id", "")).strip()
    label = f"profile {pid or '(no id)'} ({origin})"
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        problems.append(f"unknown keys {unknown}; allowed: {sorted(_KEYS)}")
    if not pid:
        problems.append("missing 'id'")
    kind = doc.get("kind")
    if kind not in KINDS:
        problems.append(f"'kind' must be one of {sorted(KINDS)}, got {kind!r}")
    fmt = doc.get("format")
    if fmt not in FORMATS:
        problems.append(f"'format' must be one of {list(FORMATS)}, got {fmt!r}")
    columns = dict(doc.get("columns", {}))
    _check_columns(columns, kind, fmt, problems)
    pairs = _parse_pairs(doc, kind, problems)
    checks = dict(doc.get("checks", {}))
    dup, ym = _parse_checks(checks, columns, pairs, problems)
    raw_schema = doc.get("raw_schema")
    _check_raw_schema(raw_schema, columns, pairs, problems)
    if problems:
        raise ConfigError(f"{label} is invalid", problems)
    assert isinstance(kind, str) and isinstance(fmt, str), "checked against KINDS and FORMATS"
    return Profile(
        id=pid,
        kind=kind,
        format=fmt,
        description=str(doc.get("description", "")),
        raw_schema=raw_schema,
        encoding=str(doc.get("encoding", "auto")),
        member=doc.get("member"),
        layer=doc.get("layer"),
        sheet=doc.get("sheet", 0),
        date_format=str(doc.get("date_format", "auto")),
        crs=doc.get("crs"),
        columns=columns,
        coordinates=tuple(pairs),
        geometry_column=doc.get("geometry_column"),
        geometry_encoding=str(doc.get("geometry_encoding", "geojson")),
        null_values=tuple(doc.get("null_values", Profile.null_values)),
        chunk_size=int(doc.get("chunk_size", 200_000)),
        duplicate_key=dup,
        year_mismatch=ym,
        min_date=str(checks.get("min_date", "1850-01-01")),
        conflict_tolerance_m=float(checks.get("conflict_tolerance_m", 100.0)),
        duplicate_max_distance_m=(
            float(checks["duplicate_max_distance_m"])
            if "duplicate_max_distance_m" in checks
            else None
        ),
        publisher=str(doc.get("publisher", "")),
        licence=str(doc.get("licence", "")),
        origin=origin,
    )


def load_profile_file(path: Path, origin: str | None = None) -> list[Profile]:
    """Load the profiles in a TOML file (one top-level profile, or a ``[[profile]]`` list).

    A relative ``raw_schema`` path is resolved against the profile file's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"profile file {path} not found")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile file {path} is not valid TOML: {exc}") from None
    docs = doc["profile"] if isinstance(doc.get("profile"), list) else [doc]
    out = []
    for d in docs:
        rs = d.get("raw_schema")
        if isinstance(rs, str) and Path(rs).suffix and not Path(rs).is_absolute():
            d = {**d, "raw_schema": str((path.parent / rs).resolve())}
        out.append(parse_profile(d, origin=origin or str(path)))
    return out


@cache
def builtin_profiles() -> dict[str, Profile]:
    """The profiles shipped with the package, by id."""
    out: dict[str, Profile] = {}
    for path in sorted(profiles_dir().glob("*.toml")):
        for prof in load_profile_file(path, origin="built-in"):
            out[prof.id] = prof
    return out


def get_profile(profile_id: str, extra: Iterable[Profile] = ()) -> Profile:
    """Look a profile up by id among ``extra`` (user profiles) first, then the built-ins."""
    for prof in extra:
        if prof.id == profile_id:
            return prof
    builtins = builtin_profiles()
    if profile_id in builtins:
        return builtins[profile_id]
    known = sorted({*builtins, *(p.id for p in extra)})
    raise ConfigError(f"unknown source profile {profile_id!r}; known profiles: {', '.join(known)}")
