"""Source profiles: how to read one publisher's file into one of the package's table kinds.

A profile is data (TOML), not code: column mapping, date format, coordinate pairs with
their CRS, id field, encoding and row checks. Built-in profiles live next to this module;
users add their own city with a TOML file (see ``docs/profiles.md``).
"""

from __future__ import annotations

import codecs
import copy
import datetime as dt
import json
import re
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
from ..core.locales import DATE_ORDERS, locale_date_order
from ..core.validation import fill_enums, is_number, plain, schema_problems
from ..core.vocab import (
    DEFAULT_MATERIALS,
    MATERIAL_CLASSES,
    MaterialCode,
    normalise_material_code,
)
from ..errors import ConfigError, ContractError
from .csvscan import DEFAULT_MAX_FIELD_BYTES

__all__ = [
    "DIAMETER_UNITS",
    "FORMATS",
    "KINDS",
    "LENGTH_UNITS",
    "WHERE_OPERATORS",
    "CoordinatePair",
    "Profile",
    "RowFilter",
    "builtin_profiles",
    "get_profile",
    "load_profile_file",
    "parse_profile",
    "profile_schema",
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
    "weather_daily": {
        "date": True,
        "station_id": False,
        "station_name": False,
        "max_temp_c": False,
        "min_temp_c": False,
        "mean_temp_c": False,
        "total_rain_mm": False,
        "total_snow_cm": False,
        "total_precip_mm": False,
        "snow_on_ground_cm": False,
    },
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
    "date_order",
    "locale",
    "crs",
    "columns",
    "coordinates",
    "checks",
    "geometry_column",
    "geometry_encoding",
    "null_values",
    "chunk_size",
    "max_field_bytes",
    "publisher",
    "licence",
    "temperature_unit",
    "precip_unit",
    "snow_unit",
    "materials",
    "diameter_unit",
    "length_unit",
    "where",
}
#: unit options of a generic ``weather_daily`` profile: key -> allowed values (default first)
_WEATHER_UNITS = {
    "temperature_unit": ("C", "F"),
    "precip_unit": ("mm", "in"),
    "snow_unit": ("cm", "mm", "in"),
}
#: ``diameter_unit`` -> factor to millimetres; ``length_unit`` -> factor to metres
DIAMETER_UNITS: dict[str, float] = {"mm": 1.0, "in": 25.4}
LENGTH_UNITS: dict[str, float] = {"m": 1.0, "ft": 0.3048}
#: ``[[where]]`` operators
WHERE_OPERATORS = ("equals", "in", "not_in", "not_null", "min", "max")
_MATERIAL_ENTRY_KEYS = {"class", "label", "lined"}
#: default duplicate tolerance (metres, analysis CRS)
DEFAULT_DUPLICATE_DISTANCE_M = 5.0


@dataclass(frozen=True)
class CoordinatePair:
    """One way a record states its location: two columns in a CRS, or the file geometry."""

    name: str
    crs: str | None
    x: str | None = None
    y: str | None = None
    geometry: bool = False


@dataclass(frozen=True)
class RowFilter:
    """One ``[[where]]`` condition on a raw column; a row is kept when every one holds.

    ``op`` is one of :data:`WHERE_OPERATORS`; ``min``/``max`` are inclusive bounds. A
    range on both sides is one entry with ``min`` and ``max`` (``value`` is then the
    pair ``(min, max)``, either side ``None``).
    """

    column: str
    op: str
    value: Any = None

    @property
    def label(self) -> str:
        """The exclusion reason of rows failing this condition, e.g. ``where:TYPE in ['A']``."""
        if self.op == "not_null":
            return f"where:{self.column} not_null"
        if self.op == "range":
            lo, hi = self.value
            parts = [f">= {lo}" if lo is not None else "", f"<= {hi}" if hi is not None else ""]
            return f"where:{self.column} " + " and ".join(p for p in parts if p)
        shown = list(self.value) if self.op in ("in", "not_in") else repr(self.value)
        op = "==" if self.op == "equals" else self.op.replace("_", " ")
        return f"where:{self.column} {op} {shown}"


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
    date_order: str = "auto"
    locale: str | None = None
    crs: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    coordinates: tuple[CoordinatePair, ...] = ()
    geometry_column: str | None = None
    geometry_encoding: str = "geojson"
    null_values: tuple[str, ...] = ("", "None", "NULL", "null", "NaN", "nan", "N/A")
    chunk_size: int = 200_000
    #: a field longer than this (bytes as stored; characters for Excel and vector files)
    #: quarantines its row as ``field_too_large``; a CSV row is cut out unread
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES
    duplicate_key: tuple[str, ...] = ()
    year_mismatch: str = "quarantine"
    min_date: str = "1850-01-01"
    conflict_tolerance_m: float = 100.0
    duplicate_max_distance_m: float | None = None
    duplicate_distance_m: float = DEFAULT_DUPLICATE_DISTANCE_M
    duplicate_record_id: str = "distinct"
    publisher: str = ""
    licence: str = ""
    temperature_unit: str = "C"
    precip_unit: str = "mm"
    snow_unit: str = "cm"
    materials: Mapping[str, MaterialCode] = field(default_factory=dict)
    diameter_unit: str = "mm"
    length_unit: str = "m"
    where: tuple[RowFilter, ...] = ()
    origin: str = "built-in"

    @property
    def material_map(self) -> dict[str, MaterialCode]:
        """Normalised code -> meaning: the built-in defaults overridden by ``[materials]``."""
        return {**DEFAULT_MATERIALS, **self.materials}

    @property
    def raw_columns(self) -> list[str]:
        """Every raw column the profile reads (mapped fields, coordinates, row filters)."""
        cols = list(self.columns.values())
        cols.extend(w.column for w in self.where)
        for pair in self.coordinates:
            cols.extend(c for c in (pair.x, pair.y) if c)
        if self.geometry_column:
            cols.append(self.geometry_column)
        return list(dict.fromkeys(cols))

    @property
    def duplicate_pair(self) -> str | None:
        """The coordinate pair named in ``duplicate_key`` (compared as recorded), if any."""
        names = {p.name for p in self.coordinates}
        return next((k for k in self.duplicate_key if k in names), None)

    @property
    def uses_geometry(self) -> bool:
        """Whether records are located by the file geometry (a shapefile, GeoJSON, ...)."""
        return self.kind in _GEOMETRY_KINDS or any(p.geometry for p in self.coordinates)


def _check_crs(value: str, where: str, problems: list[str]) -> None:
    try:
        CRS.from_user_input(value)
    except CRSError:
        problems.append(
            f"{where}: unknown CRS {value!r} (use an EPSG code such as 'EPSG:4326' or 'EPSG:32617')"
        )


def _check_columns(columns: Any, kind: Any, fmt: Any, problems: list[str]) -> None:
    """The ``[columns]`` table must map known fields, and every required one."""
    if kind not in KINDS or not isinstance(columns, Mapping):
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
    """The ``[[coordinates]]`` pairs, and the profile's own ``crs``.

    Entries of the wrong type are left to the schema (they are skipped here).
    """
    pairs: list[CoordinatePair] = []
    entries = doc.get("coordinates", [])
    own_crs = doc.get("crs") if isinstance(doc.get("crs"), str) else None
    for i, c in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(c, Mapping):
            continue
        raw_name = c.get("name")
        name = raw_name if isinstance(raw_name, str) and raw_name else f"pair{i + 1}"
        geom = c.get("geometry", False) is True
        crs = c.get("crs") or (own_crs if geom else None)
        if not geom and not (c.get("x") and c.get("y")):
            problems.append(
                f"[[coordinates]] {name!r} needs 'x' and 'y' columns or geometry = true"
            )
        if not geom and not crs:
            problems.append(f"[[coordinates]] {name!r} needs a 'crs'")
        if isinstance(crs, str) and crs:
            _check_crs(crs, f"[[coordinates]] {name!r}", problems)
        pairs.append(CoordinatePair(name=name, crs=crs, x=c.get("x"), y=c.get("y"), geometry=geom))
    if kind == "breaks" and not pairs and isinstance(entries, list):
        problems.append("a breaks profile needs at least one [[coordinates]] entry")
    if own_crs:
        _check_crs(own_crs, "'crs'", problems)
    return pairs


def _number(checks: Mapping[str, Any], key: str) -> float | None:
    """A number from ``[checks]`` (``None`` when absent or not a number: the schema says so)."""
    v: Any = checks.get(key)
    return float(v) if is_number(None, v) else None


@dataclass(frozen=True)
class _Checks:
    key: tuple[str, ...]
    year_mismatch: Any
    distance_m: float
    max_distance_m: float | None
    record_id: Any


def _parse_checks(
    checks: dict[str, Any],
    columns: dict[str, Any],
    pairs: list[CoordinatePair],
    problems: list[str],
) -> _Checks:
    """The ``[checks]`` table (duplicate key and tolerances, year-mismatch action).

    Keys, types, ranges and choices are the schema's; here the duplicate key's names and
    the old tolerance alias are checked.
    """
    default_key = ("break_date",) if "break_date" in columns else ()
    raw_key = checks.get("duplicate_key", default_key)
    ok_key = isinstance(raw_key, list | tuple) and all(isinstance(k, str) for k in raw_key)
    dup: tuple[str, ...] = tuple(raw_key) if ok_key else ()
    pair_names = {p.name for p in pairs}
    for k in dup:
        if k not in columns and k not in pair_names:
            problems.append(
                f"[checks] duplicate_key entry {k!r} is neither a mapped field nor a coordinate pair"
            )
    if len([k for k in dup if k in pair_names]) > 1:
        problems.append("[checks] duplicate_key may name at most one coordinate pair")
    ym = checks.get("year_mismatch", "quarantine")
    rid = checks.get("duplicate_record_id", "distinct")
    dist = _number(checks, "duplicate_distance_m")
    max_dist = _number(checks, "duplicate_max_distance_m")
    if max_dist is not None and not any(k in pair_names for k in dup):
        # Without a coordinate pair in the key, "same key within X m" is exactly the
        # distance tolerance: the old key is an alias of duplicate_distance_m.
        if dist is not None and dist != max_dist:
            problems.append(
                "[checks] duplicate_max_distance_m is the old name of duplicate_distance_m when"
                " duplicate_key names no coordinate pair; set only duplicate_distance_m"
                f" (got {max_dist} and {dist})"
            )
        dist, max_dist = max_dist, None
    return _Checks(
        dup,
        ym,
        DEFAULT_DUPLICATE_DISTANCE_M if dist is None else dist,
        max_dist,
        rid,
    )


#: ``date_format`` keywords; anything else must be a strftime pattern (with a ``%``)
DATE_FORMATS = ("auto", "epoch_ms", "epoch_s", "excel", "year")


#: strptime directives a ``date_format`` pattern may use (``%%`` is a literal ``%``)
_STRFTIME_DIRECTIVES = frozenset("aAbBcdfGHIjmMpSuUVwWxXyYzZ%")
_DIRECTIVE = re.compile(r"%(.?)", re.DOTALL)


def _check_strftime(fmt: str, problems: list[str]) -> None:
    """A ``date_format`` that is not a keyword must be a strftime pattern pandas can use."""
    found = [m.group(1) for m in _DIRECTIVE.finditer(fmt)]
    bad = sorted({f"%{d}" for d in found if d not in _STRFTIME_DIRECTIVES})
    if bad:
        known = " ".join(f"%{d}" for d in sorted(_STRFTIME_DIRECTIVES - {"%"}))
        problems.append(
            f"'date_format' {fmt!r} has invalid strftime directives {bad}; known: {known} "
            "(and %% for a percent sign), e.g. '%d/%m/%Y'"
        )
    elif not [d for d in found if d != "%"]:
        problems.append(
            f"'date_format' must be one of {list(DATE_FORMATS)} or a strftime pattern such as "
            f"'%d/%m/%Y', got {fmt!r}"
        )


def _check_dates(doc: Mapping[str, Any], problems: list[str]) -> None:
    """``date_format`` (a keyword or a valid strftime pattern) and ``locale`` must be understood.

    Types and the ``date_order`` choices are the schema's.
    """
    fmt = doc.get("date_format", "auto")
    if isinstance(fmt, str) and fmt and fmt not in DATE_FORMATS:
        _check_strftime(fmt, problems)
    loc = doc.get("locale")
    if isinstance(loc, str) and loc:
        try:
            locale_date_order(loc)
        except KeyError as exc:
            problems.append(f"'locale': {exc.args[0]}")


def _check_encoding(doc: Mapping[str, Any], problems: list[str]) -> None:
    """``encoding`` must be ``auto`` or a codec Python knows."""
    enc = doc.get("encoding", "auto")
    if not isinstance(enc, str) or not enc or enc == "auto":
        return
    try:
        codecs.lookup(enc)
    except LookupError:
        problems.append(
            f"'encoding' {enc!r} is not a known text encoding; use 'auto' or a name such as "
            "'utf-8', 'utf-8-sig', 'cp1252' or 'latin-1'"
        )


def _check_raw_schema(
    raw_schema: Any, columns: Mapping[str, Any], pairs: list[CoordinatePair], problems: list[str]
) -> None:
    """Every column the profile reads must be declared in its raw schema."""
    if not isinstance(raw_schema, str) or not raw_schema:
        return
    try:
        sch = load_schema(raw_schema)
    except ContractError as exc:
        problems.append(str(exc))
        return
    declared = set(sch.columns)
    used = [
        c
        for c in [*columns.values(), *(p.x for p in pairs), *(p.y for p in pairs)]
        if isinstance(c, str) and c
    ]
    undeclared = sorted({c for c in used if c not in declared})
    if undeclared:
        problems.append(f"columns {undeclared} are not declared in raw schema {raw_schema}")


def _weather_units(doc: Mapping[str, Any], problems: list[str]) -> dict[str, str]:
    """The unit keys of a weather profile (``snow_unit`` follows ``precip_unit = "in"``).

    The allowed values are the schema's; here the keys are kept to weather profiles.
    """
    units = {k: str(doc.get(k, allowed[0])) for k, allowed in _WEATHER_UNITS.items()}
    if "snow_unit" not in doc and units["precip_unit"] == "in":
        units["snow_unit"] = "in"
    given = sorted(k for k in _WEATHER_UNITS if k in doc)
    if given and doc.get("kind") != "weather_daily":
        problems.append(f"{given} apply to kind 'weather_daily' only")
    return units


def _parse_materials(table: Any, problems: list[str]) -> dict[str, MaterialCode]:
    """The ``[materials]`` table: code -> class name, or ``{class, label, lined}``."""
    if table is None:
        return {}
    if not isinstance(table, Mapping):
        problems.append("[materials] must be a table of code = class")
        return {}
    out: dict[str, MaterialCode] = {}
    classes = sorted(MATERIAL_CLASSES)
    for code, entry in table.items():
        where = f"[materials] {code!r}"
        spec = {"class": entry} if isinstance(entry, str) else entry
        if not isinstance(spec, Mapping):
            problems.append(f"{where}: give a class name or {{ class = ..., label = ... }}")
            continue
        bad = sorted(set(spec) - _MATERIAL_ENTRY_KEYS)
        if bad:
            problems.append(f"{where}: unknown keys {bad}; allowed: {sorted(_MATERIAL_ENTRY_KEYS)}")
        cls = spec.get("class")
        if cls not in MATERIAL_CLASSES:
            problems.append(f"{where}: class must be one of {classes}, got {cls!r}")
            continue
        label = spec.get("label")
        lined = spec.get("lined", False)
        if not isinstance(lined, bool):
            problems.append(f"{where}: lined must be true or false, got {lined!r}")
        key = normalise_material_code(code) or ""
        if key in out:
            problems.append(f"{where}: the code is listed twice (codes match case-insensitively)")
        # an empty label means the publisher gives the code no meaning (null material_desc)
        out[key] = MaterialCode(cls, str(label) if label is not None else None, bool(lined))
    return out


def _bound(value: Any, where: str, problems: list[str]) -> Any:
    """A ``min``/``max`` bound: a number, a TOML date or an ISO date text."""
    if isinstance(value, bool):
        problems.append(f"{where}: a bound must be a number or an ISO date, got {value!r}")
    elif isinstance(value, str):
        try:
            dt.date.fromisoformat(value[:10])
        except ValueError:
            problems.append(f"{where}: {value!r} is neither a number nor an ISO date")
    elif not isinstance(value, int | float | dt.date):
        problems.append(f"{where}: a bound must be a number or an ISO date, got {value!r}")
    return value


def _parse_where(entries: Any, problems: list[str]) -> list[RowFilter]:
    """The ``[[where]]`` row filters: ``column`` and exactly one condition each."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        problems.append("'where' must be an array of tables ([[where]] entries)")
        return []
    out: list[RowFilter] = []
    ops = list(WHERE_OPERATORS)
    for i, e in enumerate(entries):
        where = f"[[where]] entry {i + 1}"
        if not isinstance(e, Mapping):
            problems.append(f"{where}: must be a table with 'column' and one of {ops}")
            continue
        col = e.get("column")
        if not isinstance(col, str) or not col:
            problems.append(f"{where}: needs 'column' (a raw column name of the file)")
            continue
        where = f"[[where]] {col!r}"
        bad = sorted(set(e) - {"column", *ops})
        if bad:
            problems.append(f"{where}: unknown operators {bad}; allowed: {ops}")
        given = [k for k in ops if k in e]
        is_range = bool(given) and set(given) <= {"min", "max"}
        if not given or (len(given) > 1 and not is_range):
            problems.append(
                f"{where}: give exactly one of {ops} (min and max together for a range), "
                f"got {given or 'none'}"
            )
            continue
        if is_range:
            lo = _bound(e["min"], where, problems) if "min" in e else None
            hi = _bound(e["max"], where, problems) if "max" in e else None
            out.append(RowFilter(col, "range", (lo, hi)))
            continue
        op = given[0]
        v = e[op]
        if op in ("in", "not_in"):
            if not isinstance(v, list) or not v:
                problems.append(f"{where}: '{op}' needs a non-empty list of values")
                continue
            v = tuple(v)
        elif op == "not_null" and v is not True:
            problems.append(f"{where}: 'not_null' must be true")
            continue
        elif op == "equals" and isinstance(v, list | Mapping):
            problems.append(f"{where}: 'equals' needs one value (use 'in' for a list)")
            continue
        out.append(RowFilter(col, op, v))
    return out


_SCHEMA_FILE = Path(__file__).with_name("profile_schema.json")


@cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(_SCHEMA_FILE.read_text(encoding="utf-8"))
    names = {
        "profile_kinds": sorted(KINDS),
        "profile_formats": list(FORMATS),
        "date_orders": list(DATE_ORDERS),
        "diameter_units": list(DIAMETER_UNITS),
        "length_units": list(LENGTH_UNITS),
        **{f"{k.removesuffix('_unit')}_units": list(v) for k, v in _WEATHER_UNITS.items()},
    }
    fill_enums(schema, names)
    return schema


def profile_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of one profile, enums filled from the registries.

    Returns
    -------
    dict
        A copy of ``twmb_geo/io/profile_schema.json`` with ``enum`` set on every node
        naming a registry in ``enumFrom`` (kinds, formats, date orders, units).
    """
    return copy.deepcopy(_schema())


def parse_profile(doc: Mapping[str, Any], origin: str = "built-in") -> Profile:
    """Build a :class:`Profile` from a parsed TOML table; every problem is reported at once.

    The table is checked against :func:`profile_schema` (keys, types, ranges, choices),
    then against the rules across keys (required columns of the kind, coordinate pairs,
    duplicate key, strftime directives, CRS, locale, encoding, raw schema, ``[materials]``,
    ``[[where]]``).

    Parameters
    ----------
    doc : Mapping
        One profile (a top-level profile file, or one ``[[profile]]`` entry).
    origin : str
        Where it comes from (a file path, or ``"built-in"``), for messages.

    Returns
    -------
    Profile
        The profile.

    Raises
    ------
    ConfigError
        Listing every problem of ``doc`` (``problems``), each naming its key.
    """
    if not isinstance(doc, Mapping):
        problem = f"a profile must be a table of profile keys, got {doc!r}"
        raise ConfigError(f"profile ({origin}) is invalid", [problem])
    raw_id = doc.get("id")
    pid = raw_id.strip() if isinstance(raw_id, str) else ""
    label = f"profile {pid or '(no id)'} ({origin})"
    problems = schema_problems(plain(dict(doc)), _schema())
    kind, fmt = doc.get("kind"), doc.get("format")
    raw_columns = doc.get("columns", {})
    columns = dict(raw_columns) if isinstance(raw_columns, Mapping) else {}
    _check_columns(raw_columns, kind, fmt, problems)
    _check_dates(doc, problems)
    _check_encoding(doc, problems)
    pairs = _parse_pairs(doc, kind, problems)
    raw_checks = doc.get("checks", {})
    checks = dict(raw_checks) if isinstance(raw_checks, Mapping) else {}
    chk = _parse_checks(checks, columns, pairs, problems)
    raw_schema = doc.get("raw_schema")
    _check_raw_schema(raw_schema, columns, pairs, problems)
    units = _weather_units(doc, problems)
    materials = _parse_materials(doc.get("materials"), problems)
    where = _parse_where(doc.get("where"), problems)
    if problems:
        raise ConfigError(f"{label} is invalid", list(dict.fromkeys(problems)))
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
        date_order=str(doc.get("date_order", "auto")),
        locale=doc.get("locale"),
        crs=doc.get("crs"),
        columns=columns,
        coordinates=tuple(pairs),
        geometry_column=doc.get("geometry_column"),
        geometry_encoding=str(doc.get("geometry_encoding", "geojson")),
        null_values=tuple(doc.get("null_values", Profile.null_values)),
        chunk_size=int(doc.get("chunk_size", 200_000)),
        max_field_bytes=int(doc.get("max_field_bytes", Profile.max_field_bytes)),
        duplicate_key=chk.key,
        year_mismatch=chk.year_mismatch,
        min_date=str(checks.get("min_date", "1850-01-01")),
        conflict_tolerance_m=float(checks.get("conflict_tolerance_m", 100.0)),
        duplicate_max_distance_m=chk.max_distance_m,
        duplicate_distance_m=chk.distance_m,
        duplicate_record_id=chk.record_id,
        publisher=str(doc.get("publisher", "")),
        licence=str(doc.get("licence", "")),
        **units,
        materials=materials,
        diameter_unit=str(doc.get("diameter_unit", "mm")),
        length_unit=str(doc.get("length_unit", "m")),
        where=tuple(where),
        origin=origin,
    )


def _file_entries(doc: dict[str, Any], problems: list[str]) -> list[tuple[str, Any]]:
    """The profiles of a file, each with the label naming it in messages.

    A file holds one profile at the top level, or a non-empty ``[[profile]]`` array of
    tables beside an optional shared ``[materials]`` table.
    """
    if "profile" not in doc:
        return [("profile", doc)]
    entries = doc["profile"]
    if not isinstance(entries, list) or not entries:
        problems.append(
            "'profile' must be a non-empty array of tables ([[profile]] entries, each a "
            f"table with id, kind, format, ...), got {entries!r}"
        )
        return []
    extra = sorted(set(doc) - {"profile", "materials"})
    if extra:
        problems.append(
            f"keys {extra} are outside every [[profile]] entry; beside [[profile]] a file "
            "may hold only a shared [materials] table"
        )
    shared = doc.get("materials")
    if shared is not None and not isinstance(shared, Mapping):
        problems.append(
            "[materials] (shared by every [[profile]] of the file) must be a table of "
            f"code = class, got {shared!r}"
        )
    return [(f"[[profile]] #{i + 1}", e) for i, e in enumerate(entries)]


def _with_shared(d: Mapping[str, Any], shared: Any, folder: Path) -> dict[str, Any]:
    """``d`` with the file's shared ``[materials]`` merged in and ``raw_schema`` resolved."""
    out = dict(d)
    if isinstance(shared, Mapping):
        own = d.get("materials")
        mine = dict(own) if isinstance(own, Mapping) else {}
        keys = {normalise_material_code(k) for k in mine}
        base = {k: v for k, v in shared.items() if normalise_material_code(k) not in keys}
        out["materials"] = {**base, **mine} if isinstance(own, Mapping | None) else own
    rs = d.get("raw_schema")
    if isinstance(rs, str) and Path(rs).suffix and not Path(rs).is_absolute():
        out["raw_schema"] = str((folder / rs).resolve())
    return out


def load_profile_file(path: Path, origin: str | None = None) -> list[Profile]:
    """Load the profiles in a TOML file (one top-level profile, or a ``[[profile]]`` list).

    A relative ``raw_schema`` path is resolved against the profile file's folder. In a
    ``[[profile]]`` list, a top-level ``[materials]`` table is shared by every profile of
    the file (a profile's own ``[materials]`` entries override it).

    Parameters
    ----------
    path : Path
        The profile file.
    origin : str, optional
        Where the profiles come from in messages and :attr:`Profile.origin`; the path
        when not given.

    Returns
    -------
    list of Profile
        The file's profiles, in file order.

    Raises
    ------
    ConfigError
        When the file is missing or not TOML, or with every problem of every profile of
        the file listed together, each prefixed by the profile (``[[profile]] #2 (id): ...``).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"profile file {path} not found")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile file {path} is not valid TOML: {exc}") from None
    problems: list[str] = []
    entries = _file_entries(doc, problems)
    shared = doc.get("materials") if "profile" in doc else None
    out: list[Profile] = []
    seen: set[str] = set()
    for label, d in entries:
        if not isinstance(d, Mapping):
            problems.append(f"{label} must be a table of profile keys, got {d!r}")
            continue
        pid = d.get("id")
        if isinstance(pid, str) and pid.strip():
            label = f"{label} ({pid})" if label.startswith("[[") else f"profile {pid!r}"
            if pid in seen:
                problems.append(f"{label}: the id is used by an earlier profile of the file")
            seen.add(pid)
        try:
            out.append(
                parse_profile(_with_shared(d, shared, path.parent), origin=origin or str(path))
            )
        except ConfigError as exc:
            problems.extend(f"{label}: {p}" for p in exc.problems or [exc.message])
    if problems:
        raise ConfigError(f"profile file {path} is invalid", problems)
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
