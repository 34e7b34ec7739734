"""Look at a city's files and draft the profiles and project config that read them.

``twmb init --from FILE...`` calls :func:`inspect_file` on each file (format, encoding,
columns, sample values, geometry and its CRS, date formats, units, material codes), then
:func:`draft_profile` and :func:`draft_project` write TOML for the user to review. Nothing
here is certain: every value that is not read straight from the file is written with a
``# GUESS:`` comment giving its evidence, and every value that could not be guessed is
written as ``"CHECK"`` (which the profile parser rejects, so it cannot be forgotten).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import zipfile
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from ..core.crs import WGS84, choose_crs, crs_label, merge_bounds, source_datum, utm_epsg
from ..core.vocab import DEFAULT_MATERIALS, MATERIAL_CLASSES, normalise_material_code
from ..errors import InputDataError
from .profiles import KINDS
from .readers import detect_encoding

__all__ = [
    "CHECK",
    "ColumnInfo",
    "DraftProject",
    "FileGuess",
    "Guess",
    "draft_profile",
    "draft_project",
    "guess_material_class",
    "inspect_file",
    "sniff_date_format",
    "utm_zone_crs",
]

#: The placeholder written where no guess was possible; the parsers reject it.
CHECK = "CHECK"
#: Rows read per file: enough to see the codes and value ranges, fast on big files.
SAMPLE_ROWS = 20_000
#: Raw material code patterns (upper case, punctuation as spaces), first match wins.
_MATERIAL_RULES: tuple[tuple[str, str], ...] = (
    ("unknown", r"^(|UNK|UNKN|UNKNOWN|NONE|NULL|NA|N A|TBD|\?+)$"),
    ("ductile_iron", r"\bDUCTILE\b|^Y?DI[PL]?\b|\bDICL\b|\bDI$|\bDIP\b"),
    ("cast_iron", r"\bCAST\b|^G?CI[PL]?\b|\bCICL\b|\bCI$|\bGREY IRON\b|\bGRAY IRON\b|^IRON$"),
    ("asbestos_cement", r"\bASBESTOS\b|^A ?C[P]?$|^AC\b|\bTRANSITE\b"),
    ("pvc", r"PVC|\bC ?90[05]\b|\bC ?909\b|\bPOLYVINYL\b|\bVINYL\b"),
    ("hdpe", r"\bHDPE\b|^PE\b|\bPOLYETHYLENE\b|^POLY$|\bMDPE\b"),
    ("steel", r"\bSTEEL\b|^STL?\b|^GS$|\bGALV|^WS$"),
    ("concrete", r"\bCONC|\bCONCRETE\b|^RCP?$|^PCCP$|^CCP$|^CPP$|\bPRESTRESSED\b|^CON$|^BCCP$"),
    ("copper", r"\bCOPPER\b|^CU$|^COP$"),
    ("other", r"\bLEAD\b|\bWOOD\b|\bCLAY\b|\bBRASS\b|\bFIBERGLASS\b|\bGRP\b|\bOTHER\b"),
)

# Column-name patterns per canonical field: normalised names (lower case, alphanumerics only)
# tried in order, exact names first, then regular expressions.
# fmt: off
_FIELD_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "breaks": {
        "break_date": (
            "breakdate", "dateofbreak", "mainbreakdate", "failuredate", "incidentdate",
            "eventdate", "reporteddate", "datereported", "reportdate", "workorderdate",
            "opendate", "dateopened", "createddate", "requesteddate", "date",
            "re:break.*date|date.*break", "re:date",
        ),
        "break_year": ("breakyear", "year", "yr", "re:year$"),
        "material": ("material", "mat", "matl", "pipematerial", "mainmaterial", "re:material"),
        "diameter_mm": (
            "diameter", "diam", "dia", "pipesize", "mainsize", "size", "pipediameter",
            "re:diam", "re:size$",
        ),
        "asset_id": (
            "assetid", "facilityid", "mainid", "pipeid", "watermainid", "mainassetid",
            "assetnumber", "assetno", "gisid", "re:asset.*id|facility.*id",
        ),
        "record_id": (
            "breakid", "mainbreakid", "incidentid", "workorderid", "workorder", "woid",
            "recordid", "uniqueid", "objectid", "fid", "id", "globalid",
        ),
    },
    "pipes": {
        "asset_id": (
            "facilityid", "assetid", "mainid", "pipeid", "watermainid", "watermainassetidentification",
            "assetnumber", "assetno", "gisid", "re:asset.*id|facility.*id", "objectid",
        ),
        "diameter_mm": (
            "diameter", "diam", "dia", "pipesize", "mainsize", "size", "pipediameter",
            "nominaldiameter", "nomdia", "re:diam", "re:size$",
        ),
        "material": ("material", "mat", "matl", "pipematerial", "mainmaterial", "re:material"),
        "install_date": (
            "installdate", "installationdate", "dateinstalled", "installeddate", "instdate",
            "re:install.*date|date.*install",
        ),
        "construction_year": (
            "yearinstalled", "installyear", "installationyear", "constructionyear",
            "yearbuilt", "yearconstructed", "yrinstalled", "yrinst", "re:install.*y(ea)?r|constr.*year",
        ),
        "measured_length_m": (
            "measuredlength", "pipelength", "mainlength", "length", "lengthft", "lengthm",
            "shapelength", "re:length|^len",
        ),
        "location_desc": ("locationdesc", "locationdescription", "location", "streetname", "street"),
        "removal_year": ("removalyear", "yearabandoned", "abandonedyear", "retiredyear", "yearremoved"),
        "record_id": ("objectid", "fid", "id", "globalid"),
    },
    "streets": {
        "centreline_id": (
            "centrelineid", "centerlineid", "roadsegmentid", "streetsegmentid", "segmentid",
            "segid", "streetid", "roadid", "linkid", "re:segment.*id|centr?e?line.*id", "objectid",
        ),
        "linear_name_full": (
            "linearnamefull", "fullname", "fullstreetname", "streetname", "stname", "strname",
            "roadname", "street", "name", "re:street.*name|road.*name|full.*name",
        ),
        "feature_code": ("featurecode", "fcode", "roadclasscode", "classcode"),
        "feature_code_desc": (
            "featurecodedesc", "roadclass", "functionalclass", "class", "roadtype", "streettype",
            "re:class|road.*type",
        ),
        "from_node": ("fromnode", "fromnodeid", "fnode", "fromintersectionid", "startnode", "fromid"),
        "to_node": ("tonode", "tonodeid", "tnode", "tointersectionid", "endnode", "toid"),
        "jurisdiction": ("jurisdiction", "owner", "ownership", "maintainedby", "maintby"),
        "status": ("status", "centrelinestatus", "lifecyclestatus"),
        "oneway_dir_code": ("onewaydircode", "oneway", "onewaydir"),
        "linear_name_id": ("linearnameid", "streetnameid"),
        "record_id": ("globalid", "fid", "id"),
    },
    "neighbourhoods": {
        "area_code": (
            "areacode", "neighbourhoodnumber", "neighborhoodnumber", "nbhdnum", "nbhdid", "hoodid",
            "areaid", "code", "areashortcode", "re:code$|num(ber)?$|_?id$", "objectid",
        ),
        "area_name": (
            "areaname", "neighbourhood", "neighborhood", "neighbourhoodname", "neighborhoodname",
            "nbhdname", "hoodname", "name", "re:name",
        ),
    },
}
_LON = ("longitude", "lon", "long", "lng", "pointx", "xlong", "longdd", "re:^lon|longitude")
_LAT = ("latitude", "lat", "pointy", "ylat", "latdd", "re:^lat|latitude")
_X = ("x", "xcoord", "xcoordinate", "easting", "east", "pointx", "re:^x|x$|easting")
_Y = ("y", "ycoord", "ycoordinate", "northing", "north", "pointy", "re:^y|y$|northing")
# fmt: on
_TEMP = re.compile(r"temp|tmax|tmin|tavg|tmean")
_PRECIP = re.compile(r"precip|prcp|rain|snow")
# fmt: off
_FILTER = (
    "breaktype", "type", "category", "failuretype", "eventtype", "incidenttype", "worktype",
    "problemtype", "problem", "assettype", "breakcategory", "re:type$|category",
)
# fmt: on
_STREET_HINT = re.compile(r"street|road|fullname|stname|linearname|^name$")
_PIPE_HINT = re.compile(r"diam|material|^mat$|install|pipe|main")

_DMY = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2}|\d{4})\b")
_YMD_SLASH = re.compile(r"^\s*(\d{4})[/.](\d{1,2})[/.](\d{1,2})\b")
_ISO = re.compile(
    r"^\s*\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_POINT_WKT = re.compile(r"^\s*POINT\s*\(\s*(-?[\d.]+)\s+(-?[\d.]+)\s*\)\s*$", re.I)
_POINT_PAREN = re.compile(r"^\s*\(\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)\s*$")


@dataclass(frozen=True)
class Guess:
    """One decision taken from the file: what, the value, and why.

    ``certain`` values are read straight from the file (a .prj CRS, a BOM); the others are
    guesses the user must check.
    """

    what: str
    value: str
    evidence: str
    certain: bool = False

    def comment(self) -> str:
        """The TOML comment written after the value."""
        return f"# {'from file' if self.certain else 'GUESS'}: {self.evidence}"


@dataclass(frozen=True)
class ColumnInfo:
    """A column's sample: non-empty count, distinct values, numeric range and a few values."""

    name: str
    non_empty: int
    distinct: int
    samples: tuple[str, ...]
    numeric: bool
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class CoordinateGuess:
    """A way the records are located: two columns, a geometry-text column or the geometry."""

    name: str
    crs: str
    x: str | None = None
    y: str | None = None
    geometry: bool = False
    guess: Guess | None = None
    enabled: bool = True


@dataclass
class FileGuess:
    """What :func:`inspect_file` found in one file (see the module docstring)."""

    path: Path
    format: str
    rows: int
    columns: tuple[ColumnInfo, ...]
    encoding: str | None = None
    bom: bool = False
    member: str | None = None
    layer: str | None = None
    geometry_type: str | None = None
    file_crs: str | None = None
    geometry_column: str | None = None
    geometry_encoding: str | None = None
    kind: str | None = None
    builtin_profile: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    coordinates: list[CoordinateGuess] = field(default_factory=list)
    date_format: str | None = None
    date_order: str | None = None
    date_pattern: str | None = None
    diameter_unit: str | None = None
    length_unit: str | None = None
    materials: dict[str, str] = field(default_factory=dict)
    filter_column: str | None = None
    filter_values: tuple[tuple[str, int], ...] = ()
    lonlat_bounds: tuple[float, float, float, float] | None = None
    guesses: dict[str, Guess] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, what: str, value: Any, evidence: str, certain: bool = False) -> None:
        """Record a guess (or a fact read from the file)."""
        self.guesses[what] = Guess(what, str(value), evidence, certain)

    @property
    def to_check(self) -> list[Guess]:
        """The guesses the user must review (``CHECK`` placeholders first)."""
        gs = [g for g in self.guesses.values() if not g.certain]
        return sorted(gs, key=lambda g: (g.value != CHECK, g.what))


# ----------------------------------------------------------------------------- reading


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _match(
    columns: Iterable[str], patterns: Sequence[str], taken: Collection[str] = frozenset()
) -> str | None:
    """The first column matching a pattern (exact normalised names, then ``re:`` patterns)."""
    cols = [c for c in columns if c not in taken]
    norm = {c: _norm(c) for c in cols}
    for pat in patterns:
        if pat.startswith("re:"):
            rx = re.compile(pat[3:])
            hits = [c for c in cols if rx.search(norm[c])]
        else:
            hits = [c for c in cols if norm[c] == pat]
        if hits:
            return hits[0]
    return None


def _zip_member(path: Path) -> tuple[str, str]:
    """The vector (or CSV) member of a zip and its format."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/") and "__MACOSX" not in n]
    except zipfile.BadZipFile:
        raise InputDataError(f"{path}: not a valid zip archive") from None
    for ext, fmt in (
        (".shp", "shapefile"),
        (".gpkg", "gpkg"),
        (".geojson", "geojson"),
        (".json", "geojson"),
    ):
        hits = sorted(n for n in names if n.lower().endswith(ext))
        if hits:
            return hits[0], fmt
    raise InputDataError(
        f"{path}: the zip holds no shapefile, GeoPackage or GeoJSON (members: {names}); "
        "unzip it and pass the file itself"
    )


def _text_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every column as stripped text (``None`` for blanks), keeping datetimes as ISO text."""
    out = {}
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            txt = s.dt.strftime("%Y-%m-%d")
        else:
            txt = s.map(
                lambda v: (
                    None
                    if v is None or (isinstance(v, float) and np.isnan(v))
                    else (v.isoformat() if isinstance(v, dt.date) else str(v).strip())
                )
            )
        txt = txt.astype(object).where(txt.notna(), None)
        out[str(c).strip()] = txt.where(
            txt.map(lambda v: v not in ("", "None", "NULL", "null", "NaN", "nan", "N/A")), None
        )
    return pd.DataFrame(out)


def _read_sample(path: Path, g: FileGuess) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Up to :data:`SAMPLE_ROWS` rows as text, and the geometry if any; fills format facts."""
    suffix = path.suffix.lower()
    if g.format == "csv":
        with path.open("rb") as fh:
            g.bom = fh.read(3) == b"\xef\xbb\xbf"
        g.encoding = detect_encoding(path)
        if g.bom:
            g.add(
                "encoding",
                "auto",
                "the file starts with a UTF-8 byte-order mark (read as utf-8-sig)",
                True,
            )
        elif g.encoding == "cp1252":
            g.add("encoding", "cp1252", "the file is not valid UTF-8; cp1252 (Windows) assumed")
        elif g.encoding.startswith(("utf-16", "utf-32")):
            g.add(
                "encoding",
                "auto",
                f"the file is {g.encoding.upper()} text (a byte-order mark or NUL-byte pattern)",
                True,
            )
        try:
            df = pd.read_csv(
                path, dtype=str, keep_default_na=False, encoding=g.encoding, nrows=SAMPLE_ROWS
            )
        except pd.errors.EmptyDataError:
            raise InputDataError(f"{path}: the file is empty") from None
        with path.open("rb") as fh:
            g.rows = max(
                sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b"")) - 1,
                len(df),
            )
        return _text_frame(df), None
    if g.format == "xlsx":
        df = pd.read_excel(path, dtype=object, engine="openpyxl", nrows=SAMPLE_ROWS)
        g.rows = len(df)
        return _text_frame(df), None
    gdal_path = str(path)
    if suffix == ".zip":
        g.member, g.format = _zip_member(path)
        gdal_path = f"/vsizip/{path}/{g.member}"
    info = pyogrio.read_info(gdal_path)
    g.rows = int(info.get("features") or 0)
    g.geometry_type = str(info.get("geometry_type") or "") or None
    if info.get("crs"):
        try:
            g.file_crs = crs_label(CRS.from_user_input(info["crs"]))
            src = ".prj" if g.format == "shapefile" else "the file"
            g.add("crs", g.file_crs, f"geometry CRS read from {src}", True)
        except CRSError:
            g.notes.append(f"the file's CRS is not recognised ({str(info['crs'])[:60]}); set crs")
    meta, _, geom, data = pyogrio.raw.read(gdal_path, max_features=SAMPLE_ROWS)
    df = pd.DataFrame({str(n): arr for n, arr in zip(meta["fields"], data, strict=True)})
    geometry = shapely.from_wkb(geom) if geom is not None else None
    return _text_frame(df), geometry


def _numeric(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s.dropna(), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _column_info(df: pd.DataFrame) -> tuple[ColumnInfo, ...]:
    out = []
    for c in df.columns:
        s = df[c].dropna()
        num = _numeric(s)
        is_num = len(s) > 0 and bool(np.isfinite(num).all())
        vc = s.value_counts(sort=True)
        out.append(
            ColumnInfo(
                name=c,
                non_empty=len(s),
                distinct=len(vc),
                samples=tuple(str(v) for v in vc.index[:5]),
                numeric=is_num,
                min=float(np.nanmin(num)) if is_num else None,
                max=float(np.nanmax(num)) if is_num else None,
            )
        )
    return tuple(out)


# ----------------------------------------------------------------------------- dates


def sniff_date_format(values: Sequence[str]) -> tuple[str, str | None, str | None, str]:
    """Guess how a date column is written.

    Returns ``(date_format, date_order, strftime_pattern, evidence)``: ``date_format`` is
    ``auto``, ``epoch_ms``, ``epoch_s``, ``excel``, ``year`` (a year, not a date) or
    :data:`CHECK`; ``date_order`` is ``dmy``/``mdy``/``ymd``, ``auto`` (undecided) or None
    when the form has no order question (ISO, epoch); the pattern is a strftime pattern
    every value matches, when there is one.
    """
    vals = [str(v).strip() for v in values if v is not None and str(v).strip()]
    if not vals:
        return CHECK, None, None, "the column is empty in the sample"
    n = len(vals)
    num = pd.to_numeric(pd.Series(vals), errors="coerce").to_numpy(dtype=float)
    if np.isfinite(num).all():
        med = float(np.median(np.abs(num)))
        if 1e11 <= med < 1e14:
            return "epoch_ms", None, None, f"numbers ~{med:.2g} are epoch milliseconds ({n} values)"
        if 1e8 <= med < 1e11:
            return "epoch_s", None, None, f"numbers ~{med:.2g} are epoch seconds ({n} values)"
        if (num == np.round(num)).all() and num.min() >= 1800 and num.max() <= 2100:
            return "year", None, None, f"whole numbers {num.min():.0f}..{num.max():.0f} are years"
        if num.min() >= 1 and num.max() <= 80_000:
            return (
                "excel",
                None,
                None,
                f"numbers {num.min():.0f}..{num.max():.0f} look like Excel serial days",
            )
        return (
            CHECK,
            None,
            None,
            f"numbers {num.min():g}..{num.max():g} are not a known date encoding",
        )
    if all(_ISO.match(v) for v in vals):
        return "auto", None, None, f"all {n} values are ISO 8601 (yyyy-mm-dd)"
    ymd = [m for m in (_YMD_SLASH.match(v) for v in vals) if m]
    if len(ymd) == n:
        return "auto", "ymd", None, f"all {n} values are year-first (yyyy/mm/dd)"
    parts = [m for m in (_DMY.match(v) for v in vals) if m]
    if len(parts) < n:
        return (
            "auto",
            None,
            None,
            (
                f"{n - len(parts)} of {n} values are not numeric dates (e.g. {vals[0]!r}); "
                "read by the general date parser"
            ),
        )
    first = np.array([int(m.group(1)) for m in parts])
    second = np.array([int(m.group(2)) for m in parts])
    day_first = int((first > 12).sum())
    month_first = int((second > 12).sum())
    sep = parts[0].group(0)[len(parts[0].group(1))]
    year = "%Y" if len(parts[0].group(3)) == 4 else "%y"
    plain = all(m.group(0).strip() == v for m, v in zip(parts, vals, strict=True))
    if day_first and month_first:
        return (
            "auto",
            "auto",
            None,
            (
                f"contradictory: {day_first} values have a first field > 12 and {month_first} a "
                "second field > 12; CHECK the column"
            ),
        )
    if day_first:
        pat = f"%d{sep}%m{sep}{year}" if plain else None
        return "auto", "dmy", pat, f"day-first: {day_first} of {n} values have a first field > 12"
    if month_first:
        pat = f"%m{sep}%d{sep}{year}" if plain else None
        return (
            "auto",
            "mdy",
            pat,
            f"month-first: {month_first} of {n} values have a second field > 12",
        )
    return (
        "auto",
        "auto",
        None,
        (
            f"undecided: no value has a field > 12 ({n} values), day-first and month-first both fit; CHECK"
        ),
    )


# ----------------------------------------------------------------------------- coordinates


def utm_zone_crs(lon: float, lat: float) -> str | None:
    """The WGS 84 UTM zone CRS (``EPSG:326zz`` north, ``327zz`` south) of a lon/lat point."""
    if not (np.isfinite(lon) and np.isfinite(lat)):
        return None
    return f"EPSG:{utm_epsg(max(min(lon, 179.999), -179.999), lat)}"


def _lonlat_ok(x: np.ndarray, y: np.ndarray) -> bool:
    ok = np.isfinite(x) & np.isfinite(y)
    return bool(ok.any()) and bool((np.abs(x[ok]) <= 180).all() and (np.abs(y[ok]) <= 90).all())


def _bounds(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float] | None:
    ok = np.isfinite(x) & np.isfinite(y) & ~((x == 0) & (y == 0))
    if not ok.any():
        return None
    return (float(x[ok].min()), float(y[ok].min()), float(x[ok].max()), float(y[ok].max()))


def _fit_projected(
    x: np.ndarray, y: np.ndarray, lon: np.ndarray, lat: np.ndarray, candidates: Iterable[str]
) -> tuple[str, float] | None:
    """The candidate CRS in which the lon/lat points land on (x, y) within 10 m (median)."""
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(lon) & np.isfinite(lat)
    if ok.sum() < 3:
        return None
    for crs in dict.fromkeys(candidates):
        tr = Transformer.from_crs(WGS84, crs, always_xy=True)
        px, py = tr.transform(lon[ok], lat[ok])
        err = float(np.median(np.hypot(np.asarray(px) - x[ok], np.asarray(py) - y[ok])))
        if err < 10:
            return crs, err
    return None


def _point_text(s: pd.Series) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Lon/lat of a Socrata-style location column (``POINT (lon lat)`` or ``(lat, lon)``)."""
    vals = s.dropna().astype(str)
    if vals.empty:
        return None
    for rx, order, enc in ((_POINT_WKT, (1, 2), "wkt"), (_POINT_PAREN, (2, 1), "paren")):
        m = vals.str.extract(rx)
        if m.notna().all(axis=None):
            x = m[order[0] - 1].astype(float).to_numpy()
            y = m[order[1] - 1].astype(float).to_numpy()
            return x, y, enc
    return None


def _geometry_text(s: pd.Series) -> tuple[np.ndarray, str] | None:
    """Geometries of a column of GeoJSON or WKT text, with the encoding."""
    vals = s.dropna().astype(str).head(2000)
    if vals.empty:
        return None
    first = vals.iloc[0].lstrip()
    if first.startswith("{") and '"coordinates"' in first:
        geoms = shapely.from_geojson(vals.to_numpy(), on_invalid="ignore")
        return geoms, "geojson"
    if re.match(r"^(MULTI)?(POINT|LINESTRING|POLYGON)\s*\(", first, re.I):
        return shapely.from_wkt(vals.to_numpy(), on_invalid="ignore"), "wkt"
    return None


def _geom_family(geoms: np.ndarray) -> str | None:
    types = shapely.get_type_id(geoms[~shapely.is_missing(geoms)])
    if types.size == 0:
        return None
    fam = {0: "Point", 4: "Point", 1: "LineString", 5: "LineString", 3: "Polygon", 6: "Polygon"}
    vals, counts = np.unique(types, return_counts=True)
    return fam.get(int(vals[np.argmax(counts)]))


def _locate(df: pd.DataFrame, geometry: np.ndarray | None, g: FileGuess) -> None:
    """Geometry, coordinate columns and a lon/lat extent."""
    cols = list(df.columns)
    xy_geom: tuple[np.ndarray, np.ndarray] | None = None
    if geometry is None:
        for c in cols:
            got = _geometry_text(df[c])
            if (
                got is not None
                and _geom_family(got[0]) == "Point"
                and _match(cols, _LON)
                and _match(cols, _LAT)
            ):
                g.notes.append(
                    f"column {c!r} holds point text too; the longitude/latitude columns are used"
                )
                continue
            if got is not None:
                geometry, enc = got
                g.geometry_column, g.geometry_encoding = c, enc
                g.add("geometry_column", c, f"column {c!r} holds {enc.upper()} geometry text")
                break
    if geometry is not None and len(geometry):
        fam = _geom_family(np.asarray(geometry))
        g.geometry_type = fam or g.geometry_type
        valid = np.asarray(geometry)[~shapely.is_missing(geometry)]
        if valid.size:
            pts = shapely.get_coordinates(shapely.centroid(valid))
            xy_geom = (pts[:, 0], pts[:, 1])
            if g.file_crs is None:
                if _lonlat_ok(*xy_geom):
                    g.file_crs = WGS84
                    g.add(
                        "crs",
                        WGS84,
                        "the geometry has no CRS but every coordinate is within lon/lat ranges",
                    )
                else:
                    g.add(
                        "crs",
                        CHECK,
                        "the geometry has no CRS (missing .prj?) and is projected; set its EPSG code",
                    )
    ll_geom: tuple[np.ndarray, np.ndarray] | None = None
    if xy_geom is not None and g.file_crs not in (None, CHECK):
        if CRS.from_user_input(g.file_crs).is_geographic:
            ll_geom = xy_geom
        else:
            tr = Transformer.from_crs(g.file_crs, WGS84, always_xy=True)
            lx, ly = tr.transform(*xy_geom)
            ll_geom = (np.asarray(lx), np.asarray(ly))
    # coordinate columns
    taken: set[str] = set()
    lon_c = _match(cols, _LON)
    lat_c = _match(cols, _LAT)
    pairs: list[tuple[str, str]] = []
    if lon_c and lat_c and lon_c != lat_c:
        pairs.append((lon_c, lat_c))
        taken |= {lon_c, lat_c}
    x_c, y_c = _match(cols, _X, taken), _match(cols, _Y, taken)
    if x_c and y_c and x_c != y_c:
        pairs.append((x_c, y_c))
    ll_cols: tuple[np.ndarray, np.ndarray] | None = None
    projected: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    for xc, yc in pairs:
        x = pd.to_numeric(df[xc], errors="coerce").to_numpy(dtype=float)
        y = pd.to_numeric(df[yc], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(x).any():
            continue
        if _lonlat_ok(x, y):
            name = (
                "wgs84"
                if not any(c.name == "wgs84" for c in g.coordinates)
                else f"wgs84_{xc.lower()}"
            )
            ev = f"{xc}/{yc} values are within lon/lat ranges (|x| <= 180, |y| <= 90): WGS 84 assumed"
            g.coordinates.append(
                CoordinateGuess(name, WGS84, xc, yc, guess=Guess(f"coordinates.{name}", WGS84, ev))
            )
            g.add(f"coordinates.{name}", WGS84, ev)
            ll_cols = ll_cols or (x, y)
        else:
            projected.append((xc, yc, x, y))
    loc = _match(cols, ("location", "geolocation", "point", "locationpoint", "the_geom", "thegeom"))
    if loc and not g.coordinates and g.geometry_column is None:
        pt = _point_text(df[loc])
        if pt is not None and _lonlat_ok(pt[0], pt[1]):
            ll_cols = (pt[0], pt[1])
            if pt[2] == "wkt":
                g.geometry_column, g.geometry_encoding = loc, "wkt"
                ev = f"column {loc!r} holds POINT (lon lat) text within lon/lat ranges: WGS 84 assumed"
                g.file_crs = WGS84
                g.add("geometry_column", loc, ev)
                g.add("crs", WGS84, ev)
                geometry = shapely.from_wkt(df[loc].to_numpy(), on_invalid="ignore")
                g.geometry_type = "Point"
            else:
                g.notes.append(
                    f"column {loc!r} holds '(lat, lon)' text: no reader for it yet; "
                    "export latitude/longitude columns instead"
                )
    ref = ll_cols or ll_geom
    for xc, yc, x, y in projected:
        cands: list[str] = []
        if g.file_crs and g.file_crs != CHECK and not CRS.from_user_input(g.file_crs).is_geographic:
            cands.append(g.file_crs)
        if ref is not None:
            b = _bounds(*ref)
            if b:
                z = utm_zone_crs((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
                if z:
                    cands.append(z)
        fit = None
        if ref is not None and len(ref[0]) == len(x):
            fit = _fit_projected(x, y, ref[0], ref[1], cands)
        name = (
            "projected"
            if not any(c.name == "projected" for c in g.coordinates)
            else f"xy_{xc.lower()}"
        )
        if fit:
            ev = f"{xc}/{yc} match the lon/lat of the same rows projected to {fit[0]} (median {fit[1]:.1f} m)"
            g.coordinates.append(
                CoordinateGuess(
                    name, fit[0], xc, yc, guess=Guess(f"coordinates.{name}", fit[0], ev)
                )
            )
            g.add(f"coordinates.{name}", fit[0], ev)
        else:
            ev = (
                f"{xc}/{yc} are projected ({np.nanmin(x):,.0f}..{np.nanmax(x):,.0f} / "
                f"{np.nanmin(y):,.0f}..{np.nanmax(y):,.0f}); set their EPSG code"
            )
            g.coordinates.append(
                CoordinateGuess(
                    name,
                    CHECK,
                    xc,
                    yc,
                    guess=Guess(f"coordinates.{name}", CHECK, ev),
                    enabled=not g.coordinates,
                )
            )
            g.add(f"coordinates.{name}", CHECK, ev)
    if geometry is not None and g.geometry_type == "Point":
        g.coordinates.append(CoordinateGuess("geometry", g.file_crs or CHECK, geometry=True))
    if ref is not None:
        g.lonlat_bounds = _bounds(*ref)


# ----------------------------------------------------------------------------- kinds and columns


def _weather_like(cols: list[str]) -> tuple[bool, bool]:
    n = [_norm(c) for c in cols]
    return any(_TEMP.search(c) for c in n), any(_PRECIP.search(c) for c in n)


def _guess_kind(df: pd.DataFrame, g: FileGuess) -> None:
    cols = list(df.columns)
    norm = [_norm(c) for c in cols]
    if (
        any(c == "datetime" for c in norm)
        and any(re.match(r"maxtemp", c) for c in norm)
        and any("totalprecip" in c for c in norm)
    ):
        g.kind, g.builtin_profile = "weather_daily", "eccc_daily"
        g.add(
            "kind",
            "weather_daily",
            "ECCC daily climate columns (Date/Time, Max Temp, Total Precip): built-in profile eccc_daily",
        )
        return
    has_temp, has_precip = _weather_like(cols)
    date_c = _match(cols, ("date", "day", "re:date"))
    pipe_cols = [c for c in cols if _PIPE_HINT.search(_norm(c))]
    street_cols = [c for c in cols if _STREET_HINT.search(_norm(c))]
    dated = [c for c in cols if "date" in _norm(c) and "install" not in _norm(c)]
    geom = g.geometry_type or ""
    located = bool(g.coordinates)
    if "Polygon" in geom:
        g.kind, ev = "neighbourhoods", f"{geom} geometry (areas)"
    elif "LineString" in geom:
        if pipe_cols:
            g.kind, ev = "pipes", f"line geometry with pipe columns {pipe_cols[:4]}"
        elif street_cols:
            g.kind, ev = "streets", f"line geometry with street-name columns {street_cols[:3]}"
        else:
            g.kind, ev = (
                "pipes",
                "line geometry without pipe or street columns; CHECK pipes vs streets",
            )
    elif date_c and (has_temp or has_precip) and not located:
        g.kind, ev = (
            "weather_daily",
            f"a date column {date_c!r} with temperature/precipitation columns",
        )
    elif located and dated:
        g.kind, ev = "breaks", f"point locations with date column(s) {dated[:3]}"
    elif pipe_cols and not located:
        g.kind, ev = (
            "pipes",
            f"no geometry, inventory columns {pipe_cols[:4]} (pipes linked by asset id)",
        )
        g.notes.append("a pipe inventory without geometry needs the id-link support (issue 12)")
    elif dated:
        g.kind, ev = "breaks", f"date column(s) {dated[:3]}, no coordinates found: CHECK"
    else:
        g.kind, ev = None, "no geometry type, date or pipe columns to go by"
    g.add("kind", g.kind or CHECK, ev)


def _map_columns(df: pd.DataFrame, g: FileGuess) -> None:
    if g.kind not in _FIELD_NAMES:
        return
    cols = [c for c in df.columns if c != g.geometry_column]
    taken: set[str] = {c for p in g.coordinates for c in (p.x, p.y) if c}
    for fld, pats in _FIELD_NAMES[g.kind].items():
        c = _match(cols, pats, taken)
        if c is None:
            if KINDS[g.kind].get(fld):
                g.add(
                    f"columns.{fld}",
                    CHECK,
                    f"no column looks like {fld} (required); columns: {cols}",
                )
            continue
        if fld in ("asset_id", "centreline_id", "area_code") and _norm(c) == "objectid":
            ev = f"no id column found; {c!r} (the exporter's row number) is not a stable id: CHECK"
        else:
            ev = f"column name {c!r}"
        g.mapping[fld] = c
        taken.add(c)
        g.add(f"columns.{fld}", c, ev)


def _dates(df: pd.DataFrame, g: FileGuess) -> None:
    fld = {"breaks": "break_date", "pipes": "install_date"}.get(g.kind or "")
    col = g.mapping.get(fld) if fld else None
    if col is None and g.kind == "weather_daily":
        col = _match(list(df.columns), ("date", "day", "re:date"))
    if col is None:
        return
    fmt, order, pat, ev = sniff_date_format(df[col].dropna().tolist())
    if fmt == "year" and fld:
        yfld = {"break_date": "break_year", "install_date": "construction_year"}[fld]
        del g.mapping[fld]
        g.guesses.pop(f"columns.{fld}", None)
        if yfld not in g.mapping:
            g.mapping[yfld] = col
            g.add(f"columns.{yfld}", col, f"{col!r}: {ev}")
        if KINDS[g.kind or ""].get(fld):
            g.add(f"columns.{fld}", CHECK, f"{col!r} holds years, not dates ({ev})")
        return
    g.date_format, g.date_order, g.date_pattern = fmt, order, pat
    if order:
        g.add(
            "date_format", fmt, f"{col!r}: numeric dates with separators; the order is date_order"
        )
        g.add("date_order", order, f"{col!r}: {ev}")
    else:
        g.add("date_format", fmt, f"{col!r}: {ev}")


def _units(df: pd.DataFrame, geometry: np.ndarray | None, g: FileGuess) -> None:
    col = g.mapping.get("diameter_mm")
    if col:
        d = _numeric(df[col])
        d = d[np.isfinite(d) & (d > 0)]
        name = _norm(col)
        if "inch" in name or name.endswith("in"):
            g.diameter_unit = "in"
            g.add("diameter_unit", "in", f"column name {col!r} says inches")
        elif name.endswith("mm"):
            g.diameter_unit = "mm"
            g.add("diameter_unit", "mm", f"column name {col!r} says millimetres")
        elif d.size:
            share = float((d < 60).mean())
            med = float(np.median(d))
            if share >= 0.9:
                g.diameter_unit = "in"
                g.add(
                    "diameter_unit",
                    "in",
                    f"{share:.0%} of {d.size} diameters are < 60 (median {med:g}): inches",
                )
            else:
                g.diameter_unit = "mm"
                g.add(
                    "diameter_unit",
                    "mm",
                    f"median diameter {med:g} ({share:.0%} < 60): millimetres",
                )
    col = g.mapping.get("measured_length_m")
    if col:
        name = _norm(col)
        if name.endswith("ft") or "feet" in name or "foot" in name:
            unit, ev = "ft", f"column name {col!r} says feet"
        elif name.endswith("m") and not name.endswith("lm"):
            unit, ev = "m", f"column name {col!r} says metres"
        elif geometry is not None and g.file_crs not in (None, CHECK):
            got = _length_unit_from_geometry(df[col], geometry, g.file_crs)
            if got is None:
                del g.mapping["measured_length_m"]
                g.guesses.pop("columns.measured_length_m", None)
                g.notes.append(
                    f"{col!r} is not the lines' length in metres or feet (the exporter's CRS units?); "
                    "left unmapped: lengths come from the geometry"
                )
                return
            unit, ev = got
        elif g.diameter_unit == "in":
            unit, ev = (
                "ft",
                f"{col!r} has no unit in its name; feet assumed because diameters are in inches",
            )
        else:
            unit, ev = "m", f"{col!r} has no unit in its name; metres assumed"
        g.length_unit = unit
        g.add("length_unit", unit, ev)


def _length_unit_from_geometry(
    values: pd.Series, geometry: np.ndarray, crs: str
) -> tuple[str, str] | None:
    """``m`` or ``ft`` when a length column matches the lines' true length, else None."""
    geoms = np.asarray(geometry)[: len(values)]
    num = pd.to_numeric(values.reset_index(drop=True), errors="coerce").to_numpy(dtype=float)
    ok = ~shapely.is_missing(geoms) & np.isfinite(num) & (num > 0)
    if ok.sum() < 3:
        return None
    c = shapely.get_coordinates(shapely.centroid(geoms[ok]))
    if not CRS.from_user_input(crs).is_geographic:
        lon, lat = Transformer.from_crs(crs, WGS84, always_xy=True).transform(c[:, 0], c[:, 1])
    else:
        lon, lat = c[:, 0], c[:, 1]
    utm = utm_zone_crs(float(np.median(lon)), float(np.median(lat)))
    if utm is None:
        return None
    tr = Transformer.from_crs(crs, utm, always_xy=True)
    metres = shapely.length(
        shapely.transform(geoms[ok], lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    )
    ratio = float(np.median(num[ok] / np.maximum(metres, 1e-9)))
    if abs(ratio - 1) < 0.03:
        return "m", f"the values match the lines' length in metres (median ratio {ratio:.3f})"
    if abs(ratio / 3.28084 - 1) < 0.03:
        return "ft", f"the values match the lines' length in feet (median ratio {ratio:.3f} = ft/m)"
    return None


def guess_material_class(code: str) -> str | None:
    """The canonical material class of a raw code: the ingest defaults, else by pattern.

    None when neither knows the code.
    """
    known = DEFAULT_MATERIALS.get(normalise_material_code(code) or "")
    if known is not None:
        return known.material_class
    text = re.sub(r"[^A-Z0-9?]+", " ", str(code).upper()).strip()
    for cls, rx in _MATERIAL_RULES:
        if re.search(rx, text):
            return cls
    return None


def _materials(df: pd.DataFrame, g: FileGuess) -> None:
    col = g.mapping.get("material")
    if not col:
        return
    counts = df[col].dropna().astype(str).value_counts()
    for code in sorted(counts.index):
        cls = guess_material_class(code)
        g.materials[code] = cls or "other"
        n = int(counts[code])
        if cls is None:
            g.add(f"materials.{code}", "other", f"{n} rows; no rule matched the code: CHECK")
        else:
            g.add(f"materials.{code}", cls, f"{n} rows")


def _row_filter(df: pd.DataFrame, g: FileGuess) -> None:
    if g.kind not in ("breaks", "pipes"):
        return
    used = set(g.mapping.values())
    col = _match([c for c in df.columns if c not in used], _FILTER)
    if not col:
        return
    counts = df[col].dropna().astype(str).value_counts()
    if 2 <= len(counts) <= 30:
        g.filter_column = col
        g.filter_values = tuple((str(k), int(v)) for k, v in counts.items())


def inspect_file(path: Path | str) -> FileGuess:
    """Look at one file: format, encoding, columns, geometry and CRS, kind, mapping, dates, units.

    Raises
    ------
    InputDataError
        When the file does not exist or cannot be read as CSV, Excel or a vector file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    fmt = {
        ".csv": "csv",
        ".txt": "csv",
        ".tsv": "csv",
        ".xlsx": "xlsx",
        ".xls": "xlsx",
        ".shp": "shapefile",
        ".geojson": "geojson",
        ".json": "geojson",
        ".gpkg": "gpkg",
        ".zip": "zip",
    }.get(suffix)
    if fmt is None:
        raise InputDataError(
            f"{path}: unknown file type {suffix!r}; twmb reads .csv, .xlsx, .zip (shapefile), "
            ".shp, .geojson/.json and .gpkg"
        )
    g = FileGuess(path=path, format=fmt, rows=0, columns=())
    try:
        df, geometry = _read_sample(path, g)
    except InputDataError:
        raise
    except Exception as exc:
        raise InputDataError(f"{path}: cannot be read as {g.format} ({exc})") from exc
    if df.empty and not g.rows:
        raise InputDataError(f"{path}: the file has no records")
    g.columns = _column_info(df)
    _locate(df, geometry, g)
    _guess_kind(df, g)
    if g.builtin_profile:
        return g
    _map_columns(df, g)
    _dates(df, g)
    _units(df, geometry, g)
    _materials(df, g)
    _row_filter(df, g)
    return g


# ----------------------------------------------------------------------------- TOML drafting


def _q(value: Any) -> str:
    """A TOML value (strings as basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_q(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _q(name)


def _line(key: str, value: Any, g: Guess | None = None, pad: int = 40) -> str:
    text = f"{_key(key)} = {_q(value)}"
    return f"{text.ljust(pad)} {g.comment()}" if g else text


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "source"


def draft_profile(g: FileGuess, profile_id: str) -> str:
    """The ``[[profile]]`` TOML of one inspected file, every guess commented."""
    if g.builtin_profile:
        return ""
    G = g.guesses
    out = [
        f"# {g.path.name}: {g.rows:,} records, {len(g.columns)} columns"
        + (f", {g.geometry_type} geometry" if g.geometry_type else ", no geometry"),
        "[[profile]]",
        _line("id", profile_id),
        _line("kind", g.kind or CHECK, G.get("kind")),
        _line("format", g.format),
        _line(
            "description", f"{g.path.name} (drafted by twmb init --from; review the GUESS lines)"
        ),
    ]
    if g.format == "csv":
        out.append(
            _line("encoding", "cp1252" if g.encoding == "cp1252" else "auto", G.get("encoding"))
        )
    if g.member:
        out.append(
            _line("member", g.member, Guess("member", g.member, "the zip's only vector file", True))
        )
    if "crs" in G and G["crs"].certain:
        out.append(
            f"# crs = {_q(G['crs'].value)}  {G['crs'].comment()}; set crs only to override it"
        )
    elif "crs" in G:
        out.append(_line("crs", G["crs"].value, G["crs"]))
    if g.geometry_column:
        out.append(_line("geometry_column", g.geometry_column, G.get("geometry_column")))
        out.append(_line("geometry_encoding", g.geometry_encoding or "geojson"))
    if g.date_format and g.date_format != "year":
        out.append(_line("date_format", g.date_format, G.get("date_format")))
        if g.date_order:
            out.append(_line("date_order", g.date_order, G.get("date_order")))
        if g.date_pattern:
            out.append(
                f"# or, strictly: date_format = {_q(g.date_pattern)}  (every sampled value matches)"
            )
    if g.diameter_unit:
        out.append(_line("diameter_unit", g.diameter_unit, G.get("diameter_unit")))
    if g.length_unit:
        out.append(_line("length_unit", g.length_unit, G.get("length_unit")))
    if g.kind in KINDS and g.kind != "weather_daily":
        out.append("")
        out.append(
            f"[profile.columns]   # canonical field = the file's column; fields of {g.kind}: {', '.join(KINDS[g.kind])}"
        )
        for fld in KINDS[g.kind]:
            if fld in g.mapping:
                out.append(_line(fld, g.mapping[fld], G.get(f"columns.{fld}")))
            elif f"columns.{fld}" in G:
                out.append(_line(fld, CHECK, G[f"columns.{fld}"]))
        unmapped = [
            c.name
            for c in g.columns
            if c.name not in g.mapping.values()
            and c.name not in {p.x for p in g.coordinates} | {p.y for p in g.coordinates}
            and c.name != g.geometry_column
        ]
        if unmapped:
            out.append(f"# not mapped: {', '.join(unmapped)}")
    elif g.kind == "weather_daily":
        out.append(
            "# a generic daily-weather CSV needs the weather columns mapping (not in this version):"
        )
        out += [f"#   {c.name} (e.g. {', '.join(c.samples[:2])})" for c in g.columns]
    for p in g.coordinates:
        out.append("")
        pre = "" if p.enabled else "# "
        out.append(
            pre
            + "[[profile.coordinates]]"
            + ("" if p.enabled else "   # a second pair: enable once its crs is set")
        )
        out.append(pre + _line("name", p.name))
        if p.geometry:
            out.append(pre + _line("geometry", True))
        else:
            out.append(pre + _line("x", p.x))
            out.append(pre + _line("y", p.y))
            out.append(pre + _line("crs", p.crs, p.guess))
    if g.materials:
        out.append("")
        out.append(
            "[profile.materials]   # raw code = canonical class: " + ", ".join(MATERIAL_CLASSES)
        )
        for code, cls in g.materials.items():
            out.append(_line(code, cls, G.get(f"materials.{code}")))
    if g.filter_column:
        vals = ", ".join(f"{v!r} ({n})" for v, n in g.filter_values[:12])
        keep = [v for v, _ in g.filter_values if re.search(r"main|break", v, re.I)] or [
            g.filter_values[0][0]
        ]
        out += [
            "",
            f"# GUESS: column {g.filter_column!r} looks like a record type with {len(g.filter_values)} values: {vals}",
            "# keep only main breaks? uncomment and edit:",
            "# [[profile.where]]",
            f"# column = {_q(g.filter_column)}",
            f"# in = {_q(keep)}",
        ]
    for note in g.notes:
        out.append(f"# NOTE: {note}")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class DraftProject:
    """The drafted ``profiles.toml`` and ``twmb.toml`` texts, and what they were drafted from."""

    profiles_toml: str
    config_toml: str
    files: tuple[FileGuess, ...]
    profile_ids: tuple[str | None, ...]
    source_ids: tuple[str, ...]
    project_crs: str
    project_crs_guess: Guess

    @property
    def to_check(self) -> list[tuple[str, Guess]]:
        """``(file name, guess)`` for every guess to review, ``CHECK`` placeholders first."""
        out = [(f.path.name, g) for f in self.files for g in f.to_check]
        return sorted(out, key=lambda t: t[1].value != CHECK)


def _project_crs(files: Sequence[FileGuess]) -> tuple[str, Guess]:
    """The analysis CRS the pipeline would choose for these files (``choose_crs``), or auto."""
    bounds = merge_bounds([f.lonlat_bounds for f in files if f.lonlat_bounds])
    if bounds is None:
        return "auto", Guess(
            "project.crs",
            "auto",
            "no lon/lat extent found; chosen from the data's UTM zone at run time",
        )
    crss = [c.crs for f in files for c in f.coordinates if c.crs != CHECK]
    choice = choose_crs(bounds, source_datum(crss))
    if not choice.crs.startswith("EPSG:"):  # a projection centred on a wide extent
        return "auto", Guess("project.crs", "auto", f"{choice.reason}; chosen at run time")
    return choice.crs, Guess("project.crs", choice.crs, f"{choice.name}: {choice.reason}")


def _relpath(path: Path, folder: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()
    except ValueError:
        return str(path.resolve())


def draft_project(
    files: Sequence[FileGuess], folder: Path | str, name: str | None = None
) -> DraftProject:
    """Draft ``profiles.toml`` and ``twmb.toml`` for the inspected files, to be written in ``folder``."""
    folder = Path(folder)
    project = name or _slug(folder.resolve().name)
    pids: list[str | None] = []
    sids: list[str] = []
    chunks = [
        "# Source profiles drafted by `twmb init --from` from the files below.",
        '# Review every line marked GUESS; replace every "CHECK" (the profile does not load until then).',
        "# Format: docs/profiles.md",
        "",
    ]
    for g in files:
        kind = g.kind or "source"
        sid = {"weather_daily": "weather"}.get(kind, kind)
        sid = sid if sid not in sids else f"{sid}_{_slug(g.path.stem)}"
        while sid in sids:
            sid += "_2"
        sids.append(sid)
        if g.builtin_profile:
            pids.append(g.builtin_profile)
            continue
        pid = f"{project}_{sid}"
        pids.append(pid)
        chunks.append(draft_profile(g, pid))
    crs, crs_guess = _project_crs(files)
    nbhd = [s for s, f in zip(sids, files, strict=True) if f.kind == "neighbourhoods"]
    lines = [
        "# twmb_geo project config drafted by `twmb init --from` "
        f"on {dt.date.today().isoformat()}.",
        "# Review every GUESS / CHECK here and in profiles.toml, then: twmb --config twmb.toml ingest",
        "# Paths are relative to this file. Docs: docs/configuration.md",
        "",
        "[project]",
        _line("name", project, Guess("project.name", project, "the folder's name")),
        _line("out", "out"),
        '# the analysis CRS (metres): "auto" = the UTM zone of the data\'s extent',
        _line("crs", crs, crs_guess),
    ]
    if nbhd:
        lines.append(
            _line(
                "service_area_source", nbhd[0], Guess("service_area", nbhd[0], "the polygon layer")
            )
        )
    else:
        lines.append(
            _line(
                "service_area_source",
                "",
                Guess("service_area", "", "no boundary/area layer among the files"),
            )
        )
    lines += ["", "[profiles]", _line("files", ["profiles.toml"])]
    for g, sid, source_pid in zip(files, sids, pids, strict=True):
        lines += [
            "",
            "[[sources]]",
            _line("id", sid),
            _line("profile", source_pid or CHECK),
            _line("path", _relpath(g.path, folder)),
        ]
    return DraftProject(
        profiles_toml="\n".join(chunks),
        config_toml="\n".join(lines) + "\n",
        files=tuple(files),
        profile_ids=tuple(pids),
        source_ids=tuple(sids),
        project_crs=crs,
        project_crs_guess=crs_guess,
    )
