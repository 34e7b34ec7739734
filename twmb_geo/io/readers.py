"""Read a source file into raw chunks: the publisher's columns, row numbers and geometry.

Readers do no validation beyond the file's shape (it exists, has the declared columns,
a known CRS); row-level checks happen in :mod:`twmb_geo.ingest`. CSV files are read in
chunks so memory stays bounded for large files.
"""

from __future__ import annotations

import codecs
import fnmatch
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from ..contracts import load_schema
from ..errors import InputDataError
from .profiles import Profile

__all__ = ["RawChunk", "detect_encoding", "iter_raw", "sha256_file"]


@dataclass
class RawChunk:
    """A block of raw rows from one file.

    ``frame`` holds the raw columns (object dtype, ``None`` for blanks) plus ``source_file``
    and ``source_row`` (1-based); ``geometry`` is aligned with it when the file has one.
    """

    frame: pd.DataFrame
    geometry: np.ndarray | None
    crs: CRS | None
    path: Path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    import hashlib

    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def detect_encoding(path: Path) -> str:
    """Return ``utf-8-sig`` when the whole file decodes as UTF-8, else ``cp1252``.

    Streams the file through an incremental decoder, so large files are not held in memory.
    """
    dec = codecs.getincrementaldecoder("utf-8")()
    try:
        with Path(path).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                dec.decode(block)
            dec.decode(b"", final=True)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8-sig"


def _required_and_optional(profile: Profile) -> tuple[list[str], list[str]]:
    """Split the raw columns a profile reads into required and optional ones."""
    cols = profile.raw_columns
    if not profile.raw_schema:
        return cols, []
    sch = load_schema(profile.raw_schema)
    req = {f.name for f in sch.fields if f.required}
    required = [c for c in cols if c in req]
    required += [f.name for f in sch.fields if f.required and f.name not in required]
    optional = [c for c in cols if c not in req]
    return required, optional


def _check_columns(present: list[str], profile: Profile, path: Path) -> None:
    required, _ = _required_and_optional(profile)
    missing = [c for c in required if c not in present]
    if missing:
        lower = {p.lower().replace(" ", "").replace("_", ""): p for p in present}
        hints = []
        for m in missing:
            near = lower.get(m.lower().replace(" ", "").replace("_", ""))
            if near:
                hints.append(f"{m!r} (found {near!r}: is the file a different release?)")
            else:
                hints.append(repr(m))
        raise InputDataError(
            f"{path}: columns {', '.join(hints)} required by profile {profile.id!r} are missing; "
            f"the file has {present}. Check the source's profile in the config, or its [columns] mapping",
        )


def _resolve_member(path: Path, profile: Profile) -> str:
    """Return a GDAL path for a zipped vector file, choosing the member by pattern."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            bad = zf.testzip()
    except zipfile.BadZipFile:
        raise InputDataError(f"{path}: not a valid zip archive") from None
    if bad:
        raise InputDataError(f"{path}: zip member {bad!r} is corrupt (CRC check failed)")
    pattern = profile.member or {"shapefile": "*.shp", "geojson": "*.*json", "gpkg": "*.gpkg"}.get(
        profile.format, "*"
    )
    members = [n for n in names if fnmatch.fnmatch(n.lower(), pattern.lower())]
    if not members:
        raise InputDataError(
            f"{path}: the zip holds no {pattern} file (members: {names}); "
            f"profile {profile.id!r} expects a {profile.format}"
        )
    if len(members) > 1:
        raise InputDataError(
            f"{path}: several {pattern} files in the zip {members}; set 'member' in the profile"
        )
    member = members[0]
    if profile.format == "shapefile":
        stem = member[: -len(".shp")]
        for ext in (".shx", ".dbf"):
            if not any(n.lower() == (stem + ext).lower() for n in names):
                raise InputDataError(f"{path}: shapefile {member!r} has no {ext} file in the zip")
    return f"/vsizip/{path}/{member}"


def _vector_crs(meta_crs: str | None, profile: Profile, path: Path) -> CRS | None:
    if meta_crs:
        try:
            return CRS.from_user_input(meta_crs)
        except CRSError:
            if not profile.crs:
                raise InputDataError(
                    f"{path}: the file's CRS {meta_crs!r} is not recognised; "
                    "set 'crs' in the profile to override it"
                ) from None
    if profile.crs:
        return CRS.from_user_input(profile.crs)
    if profile.uses_geometry:
        raise InputDataError(
            f"{path}: the file has no CRS (missing .prj?) and profile {profile.id!r} declares none; "
            "add crs = 'EPSG:....' to the profile"
        )
    return None


def _object_frame(df: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Object columns with every blank or profile null value (e.g. "None") as ``None``."""
    nulls = list(profile.null_values)
    cols = {}
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_string_dtype(s.dtype) and not pd.api.types.is_object_dtype(s.dtype):
            blank = s.isna() | s.str.strip().isin(nulls)
        elif pd.api.types.is_object_dtype(s.dtype):
            is_str = s.map(lambda v: isinstance(v, str)).astype(bool)
            blank = s.isna()
            if is_str.any():
                blank |= is_str & s.where(is_str, "").astype(str).str.strip().isin(nulls)
        else:
            blank = s.isna()
        cols[c] = s.astype(object).where(~blank.to_numpy(), None)
    return pd.DataFrame(cols, index=df.index)


def _check_shp_length(path: Path, gdal_path: str) -> None:
    """Fail on a truncated or corrupt .shp (GDAL would silently return null geometries)."""
    if gdal_path.startswith("/vsizip/"):
        member = gdal_path[len(f"/vsizip/{path}/") :]
        with zipfile.ZipFile(path) as zf:
            size = zf.getinfo(member).file_size
            with zf.open(member) as fh:
                head = fh.read(100)
    else:
        member = path.name
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(100)
    if len(head) < 100 or head[:4] != b"\x00\x00\x27\x0a":
        raise InputDataError(
            f"{path}: {member} is not a valid shapefile (bad header); download the file again"
        )
    declared = struct.unpack(">i", head[24:28])[0] * 2
    if declared != size:
        raise InputDataError(
            f"{path}: {member}: the .shp is truncated or corrupt (header says {declared:,} bytes, "
            f"file has {size:,}); download the file again"
        )


def _read_vector(path: Path, profile: Profile) -> Iterator[RawChunk]:
    gdal_path = str(path)
    if zipfile.is_zipfile(path):
        gdal_path = _resolve_member(path, profile)
    elif profile.format == "shapefile" and path.suffix.lower() == ".shp":
        for ext in (".shx", ".dbf"):
            if not path.with_suffix(ext).exists():
                raise InputDataError(f"{path}: shapefile has no {ext} file beside it")
    if profile.format == "shapefile":
        _check_shp_length(path, gdal_path)
    try:
        info = pyogrio.read_info(gdal_path, layer=profile.layer)
        present = [str(c) for c in info["fields"]]
        _check_columns(present, profile, path)
        crs = _vector_crs(info.get("crs"), profile, path)
        _, optional = _required_and_optional(profile)
        cols = [c for c in dict.fromkeys([*profile.raw_columns, *optional]) if c in present]
        meta, _, geom, data = pyogrio.raw.read(gdal_path, layer=profile.layer, columns=cols)
    except InputDataError:
        raise
    except Exception as exc:
        raise InputDataError(f"{path}: cannot be read as {profile.format} ({exc})") from exc
    frame = pd.DataFrame({name: arr for name, arr in zip(meta["fields"], data, strict=True)})
    n = len(frame)
    if n == 0:
        raise InputDataError(f"{path}: the file has no records")
    geometry = shapely.from_wkb(geom) if geom is not None else None
    frame = _object_frame(frame, profile)
    frame["source_file"] = path.name
    frame["source_row"] = np.arange(1, n + 1, dtype=np.int64)
    yield RawChunk(frame=frame.reset_index(drop=True), geometry=geometry, crs=crs, path=path)


def _read_xlsx(path: Path, profile: Profile) -> Iterator[RawChunk]:
    try:
        df = pd.read_excel(path, sheet_name=profile.sheet, dtype=object, engine="openpyxl")
    except Exception as exc:
        raise InputDataError(f"{path}: cannot be read as an Excel workbook ({exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    _check_columns(list(df.columns), profile, path)
    if df.empty:
        raise InputDataError(f"{path}: the sheet has no data rows")
    frame = _object_frame(df, profile)
    frame["source_file"] = path.name
    # Row 1 is the header, so data row i sits on sheet row i + 1; we number data rows from 1.
    frame["source_row"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    yield RawChunk(frame=frame, geometry=None, crs=None, path=path)


def _read_csv(path: Path, profile: Profile) -> Iterator[RawChunk]:
    encoding = detect_encoding(path) if profile.encoding == "auto" else profile.encoding
    try:
        header = pd.read_csv(path, nrows=0, encoding=encoding).columns
    except pd.errors.EmptyDataError:
        raise InputDataError(f"{path}: the file is empty") from None
    except (UnicodeDecodeError, LookupError) as exc:
        raise InputDataError(
            f"{path}: cannot be decoded as {encoding} ({exc}); set 'encoding' in the profile"
        ) from None
    present = [str(c).strip() for c in header]
    _check_columns(present, profile, path)
    _, optional = _required_and_optional(profile)
    wanted = [c for c in dict.fromkeys([*profile.raw_columns, *optional]) if c in present]
    crs = CRS.from_user_input(profile.crs) if profile.crs else None
    start = 1
    any_rows = False
    reader = pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        encoding=encoding,
        usecols=lambda c: str(c).strip() in wanted,
        chunksize=profile.chunk_size,
    )
    with reader:
        while True:
            try:
                chunk = next(reader)
            except StopIteration:
                break
            except pd.errors.ParserError as exc:
                raise InputDataError(
                    f"{path}: malformed CSV ({exc}); fix the line or re-export the file"
                ) from None
            if chunk.empty:
                continue
            chunk.columns = [str(c).strip() for c in chunk.columns]
            any_rows = True
            geometry = None
            if profile.geometry_column and profile.geometry_column in chunk:
                col = chunk[profile.geometry_column].astype(object)
                txt = col.where(col.notna() & (col != ""), None)
                try:
                    if profile.geometry_encoding == "wkt":
                        geometry = shapely.from_wkt(txt.to_numpy(), on_invalid="ignore")
                    else:
                        geometry = shapely.from_geojson(txt.to_numpy(), on_invalid="ignore")
                except Exception as exc:
                    raise InputDataError(
                        f"{path}: geometry column {profile.geometry_column!r} is unreadable ({exc})"
                    ) from exc
            frame = _object_frame(chunk.reset_index(drop=True), profile)
            frame["source_file"] = path.name
            frame["source_row"] = np.arange(start, start + len(frame), dtype=np.int64)
            start += len(frame)
            yield RawChunk(frame=frame, geometry=geometry, crs=crs, path=path)
    if not any_rows:
        raise InputDataError(f"{path}: the file has a header but no data rows")


def iter_raw(path: Path, profile: Profile) -> Iterator[RawChunk]:
    """Yield the raw rows of ``path`` read with ``profile`` (several chunks for large CSVs)."""
    path = Path(path)
    if not path.exists():
        raise InputDataError(f"{path}: file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise InputDataError(f"{path}: the file is empty")
    if profile.format in ("shapefile", "geojson", "gpkg"):
        yield from _read_vector(path, profile)
    elif profile.format == "xlsx":
        yield from _read_xlsx(path, profile)
    elif profile.format == "csv":
        yield from _read_csv(path, profile)
    else:
        raise InputDataError(f"{path}: format {profile.format!r} is not read by iter_raw")
