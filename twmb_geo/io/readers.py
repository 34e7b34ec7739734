"""Read a source file into raw chunks: the publisher's columns, row numbers and geometry.

Readers do no validation beyond the file's shape (it exists, has the declared columns,
a known CRS); row-level checks happen in :mod:`twmb_geo.ingest`. CSV files are read in
chunks so memory stays bounded for large files.

Rows the reader itself cannot take are handed over apart (:attr:`RawChunk.rejected`) for the
ingest to quarantine, with a reason code: ``encoding_error`` (a byte not valid in the file's
encoding, in any column), ``extra_fields`` (more fields than the header; a CSV's one empty
trailing field is allowed), ``field_too_large`` (a field above the profile's
``max_field_bytes``; a CSV row is then cut out unread). See :mod:`twmb_geo.io.csvscan`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import struct
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pandas.io.parsers import TextFileReader
from pyproj import CRS
from pyproj.exceptions import CRSError

from ..contracts import load_schema
from ..errors import InputDataError
from .csvscan import CsvScan, archive_errors, detect_encoding, open_csv_without, scan_csv
from .profiles import Profile

__all__ = ["RawChunk", "Rejected", "detect_encoding", "iter_raw", "sha256_file", "split_rejected"]

log = logging.getLogger(__name__)


@dataclass
class Rejected:
    """Rows the reader refused, for the ingest to quarantine.

    ``frame`` is laid out as :attr:`RawChunk.frame` (raw columns, ``source_file``,
    ``source_row``); ``reason`` and ``detail`` hold a reason code and its explanation per row.
    """

    frame: pd.DataFrame
    reason: np.ndarray
    detail: np.ndarray
    geometry: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.frame)

    @staticmethod
    def join(parts: Iterable[Rejected | None]) -> Rejected | None:
        """One :class:`Rejected` of ``parts`` (in row order), or ``None`` when all are empty."""
        got = [r for r in parts if r is not None and len(r)]
        if not got:
            return None
        if len(got) == 1:
            return got[0]
        frame = pd.concat([r.frame for r in got], ignore_index=True)
        order = np.argsort(frame["source_row"].to_numpy(), kind="stable")
        geoms = [r.geometry for r in got if r.geometry is not None]
        geometry = np.concatenate(geoms)[order] if len(geoms) == len(got) else None
        return Rejected(
            frame.iloc[order].reset_index(drop=True),
            np.concatenate([r.reason for r in got])[order],
            np.concatenate([r.detail for r in got])[order],
            geometry,
        )


@dataclass
class RawChunk:
    """A block of raw rows from one file.

    ``frame`` holds the raw columns (object dtype, ``None`` for blanks) plus ``source_file``
    and ``source_row`` (1-based); ``geometry`` is aligned with it when the file has one.
    ``rejected`` holds the rows of the block the reader refused (not in ``frame``).
    """

    frame: pd.DataFrame
    geometry: np.ndarray | None
    crs: CRS | None
    path: Path
    rejected: Rejected | None = None


def split_rejected(chunks: Iterable[RawChunk], sink: list[Rejected]) -> Iterator[RawChunk]:
    """Move each chunk's refused rows to ``sink``; yield the chunks that still hold rows."""
    for chunk in chunks:
        if chunk.rejected is not None and len(chunk.rejected):
            sink.append(chunk.rejected)
            chunk = replace(chunk, rejected=None)
        if len(chunk.frame):
            yield chunk


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    import hashlib

    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def _check_duplicates(present: list[str], wanted: Iterable[str], path: Path) -> None:
    """A header name written twice is an error when the profile reads that column.

    Which of the two columns is meant cannot be known; a duplicate the profile does not
    read is harmless and only logged.
    """
    dups = [n for n, k in Counter(present).items() if k > 1]
    if not dups:
        return
    read = set(wanted)
    clash = [d for d in dups if d in read]
    if clash:
        where = "; ".join(
            f"{d!r} is column " + " and ".join(str(i + 1) for i, n in enumerate(present) if n == d)
            for d in clash
        )
        raise InputDataError(
            f"{path}: the header names {', '.join(map(repr, clash))} more than once ({where}); "
            "the profile reads that column, so which one is meant is unclear. Rename or drop "
            "the duplicate column in the file"
        )
    log.warning(
        "%s: the header names %s more than once; the profile does not read %s, so it is ignored",
        path,
        ", ".join(map(repr, dups)),
        "it" if len(dups) == 1 else "them",
    )


def _unique_names(present: list[str]) -> list[str]:
    """Header names for pandas: blanks as ``Unnamed: i``, later duplicates made unique."""
    seen: Counter[str] = Counter()
    out = []
    for i, name in enumerate(present):
        name = name or f"Unnamed: {i}"
        seen[name] += 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def _refuse(
    frame: pd.DataFrame,
    geometry: np.ndarray | None,
    checks: list[tuple[str, np.ndarray, np.ndarray]],
) -> tuple[pd.DataFrame, np.ndarray | None, Rejected | None]:
    """Split off the rows any check refuses (the first failing check names the reason)."""
    if not checks:
        return frame, geometry, None
    n = len(frame)
    reason = np.full(n, None, dtype=object)
    detail = np.full(n, None, dtype=object)
    for code, mask, text in checks:
        new = mask & (reason == None)  # noqa: E711 - elementwise on an object array
        reason[new] = code
        detail[new] = text[new]
    bad = reason != None  # noqa: E711
    if not bad.any():
        return frame, geometry, None
    rej = Rejected(
        frame.loc[bad].reset_index(drop=True),
        reason[bad],
        detail[bad],
        None if geometry is None else geometry[bad],
    )
    keep = frame.loc[~bad].reset_index(drop=True)
    return keep, None if geometry is None else geometry[~bad], rej


def _too_large(
    frame: pd.DataFrame, columns: Iterable[str], limit: int
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``field_too_large`` for text values above ``limit`` characters (Excel, vector files)."""
    out = []
    for c in columns:
        s = frame[c]
        if not pd.api.types.is_object_dtype(s.dtype) and not pd.api.types.is_string_dtype(s.dtype):
            continue
        try:
            size = s.str.len().to_numpy(dtype=float, na_value=0.0)
        except AttributeError:  # no text in the column (dates, numbers)
            continue
        big = size > limit
        if big.any():
            text = np.full(len(s), "", dtype=object)
            text[big] = (
                f"{c!r} holds "
                + pd.Series(size[big]).map("{:,.0f}".format).to_numpy(dtype=object)
                + f" characters, above max_field_bytes ({limit:,}); shorten the value, or "
                "raise max_field_bytes in the profile"
            )
            out.append(("field_too_large", big, text))
    return out


def _unbuildable(wkb: np.ndarray, geometry: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``geometry_invalid`` for geometries GDAL read that GEOS cannot build (a line of one
    point, a ring of fewer than four): refused here, with their raw attributes kept."""
    bad = pd.notna(pd.Series(wkb, dtype=object)).to_numpy() & shapely.is_missing(geometry)
    if not bad.any():
        return []
    text = np.full(len(wkb), "", dtype=object)
    text[bad] = "geometry cannot be built (too few points for its type)"
    return [("geometry_invalid", bad, text)]


def _undecodable(
    frame: pd.DataFrame, columns: Iterable[str], encoding: str
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``encoding_error`` for values holding U+FFFD: bytes ``encoding`` does not define."""
    out = []
    for c in columns:
        s = frame[c]
        bad = s.str.contains("\ufffd", regex=False, na=False).to_numpy(dtype=bool)
        if bad.any():
            text = np.full(len(s), "", dtype=object)
            text[bad] = (
                f"{c!r} holds a byte that is not valid {encoding} (shown as U+FFFD in '"
                + s[bad].astype(str).str.slice(0, 80).to_numpy(dtype=object)
                + "'); the row may mix encodings: fix it, or set 'encoding' in the profile"
            )
            out.append(("encoding_error", bad, text))
    return out


def _test_members(zf: zipfile.ZipFile, path: Path) -> None:
    """Read every member through (streamed): a damaged one fails naming it (exit 3)."""
    for info in zf.infolist():
        try:
            with zf.open(info) as fh:
                while fh.read(1 << 20):
                    pass
        except archive_errors as exc:
            raise InputDataError(
                f"{path}: corrupt archive member {info.filename!r} ({exc}); download the file again"
            ) from None


def _looks_like_zip(path: Path) -> bool:
    """A zip by name or by its first bytes (a truncated zip is no ``zipfile.is_zipfile``)."""
    if path.suffix.lower() == ".zip":
        return True
    with path.open("rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def _resolve_member(path: Path, profile: Profile) -> str:
    """Return a GDAL path for a zipped vector file, choosing the member by pattern."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            _test_members(zf, path)
    except zipfile.BadZipFile as exc:
        raise InputDataError(
            f"{path}: truncated or corrupt zip archive ({exc}); download the file again"
        ) from None
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
    if path.is_file() and _looks_like_zip(path):
        gdal_path = _resolve_member(path, profile)
    elif profile.format == "shapefile" and path.suffix.lower() == ".shp":
        for ext in (".shx", ".dbf"):
            if not path.with_suffix(ext).exists():
                raise InputDataError(f"{path}: shapefile has no {ext} file beside it")
    if profile.format == "shapefile":
        _check_shp_length(path, gdal_path)
    required, optional = _required_and_optional(profile)
    wanted = list(dict.fromkeys([*profile.raw_columns, *optional]))
    try:
        # one pass over the file (the columns it lacks are left out): a GeoJSON's fields
        # are known only once it is parsed, so reading its header first parsed it twice
        meta, _, geom, data = pyogrio.raw.read(gdal_path, layer=profile.layer, columns=wanted)
        got = [str(c) for c in meta["fields"]]
        if any(c not in got for c in required):
            info = pyogrio.read_info(gdal_path, layer=profile.layer)
            _check_columns([str(c) for c in info["fields"]], profile, path)
        crs = _vector_crs(meta.get("crs"), profile, path)
    except InputDataError:
        raise
    except Exception as exc:
        raise InputDataError(f"{path}: cannot be read as {profile.format} ({exc})") from exc
    cols = [c for c in wanted if c in got]
    by_name = dict(zip(got, data, strict=True))
    frame = pd.DataFrame({name: by_name[name] for name in cols})
    n = len(frame)
    if n == 0:
        raise InputDataError(f"{path}: the file has no records")
    geometry = shapely.from_wkb(geom, on_invalid="ignore") if geom is not None else None
    frame = _object_frame(frame, profile)
    frame["source_file"] = path.name
    frame["source_row"] = np.arange(1, n + 1, dtype=np.int64)
    checks = _too_large(frame, cols, profile.max_field_bytes)
    if geom is not None and geometry is not None:
        checks += _unbuildable(geom, geometry)
    frame, geometry, rejected = _refuse(frame.reset_index(drop=True), geometry, checks)
    yield RawChunk(frame=frame, geometry=geometry, crs=crs, path=path, rejected=rejected)


def _read_xlsx(path: Path, profile: Profile) -> Iterator[RawChunk]:
    try:
        sheet = pd.read_excel(
            path, sheet_name=profile.sheet, dtype=object, engine="openpyxl", header=None
        )
    except Exception as exc:
        raise InputDataError(f"{path}: cannot be read as an Excel workbook ({exc})") from exc
    if sheet.empty:
        raise InputDataError(f"{path}: the sheet has no data rows")
    present = ["" if pd.isna(c) else str(c).strip() for c in sheet.iloc[0]]
    _, optional = _required_and_optional(profile)
    _check_duplicates(present, [*profile.raw_columns, *optional], path)
    df = sheet.iloc[1:].reset_index(drop=True)
    df.columns = _unique_names(present)
    _check_columns(list(df.columns), profile, path)
    if df.empty:
        raise InputDataError(f"{path}: the sheet has no data rows")
    frame = _object_frame(df, profile)
    frame["source_file"] = path.name
    # Row 1 is the header, so data row i sits on sheet row i + 1; we number data rows from 1.
    frame["source_row"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    frame, _, rejected = _refuse(
        frame, None, _too_large(frame, df.columns, profile.max_field_bytes)
    )
    yield RawChunk(frame=frame, geometry=None, crs=None, path=path, rejected=rejected)


def _scan_rejects(
    scan: CsvScan, path: Path, wanted: list[str], profile: Profile
) -> Rejected | None:
    """The rows the scan refused: extra fields, fields above ``max_field_bytes``."""
    parts: list[Rejected | None] = []
    n_head = len(scan.header)
    if scan.extra_rows is not None and len(scan.extra_rows):
        rows = scan.extra_rows
        extras = list(rows.columns[n_head:])
        named = _unique_names(scan.header)
        rows.columns = [*named, *extras]
        frame = _object_frame(rows[[*[c for c in wanted if c in named], *extras]], profile)
        frame["source_file"] = path.name
        frame["source_row"] = scan.extra_ordinal + 1
        first = rows[extras[0]].astype(str).str.slice(0, 80).to_numpy(dtype=object)
        detail = (
            "the row has "
            + pd.Series(scan.extra_fields).astype(str).to_numpy(dtype=object)
            + f" fields but the header {n_head} (first extra value: '"
            + first
            + "'): a value with an unquoted delimiter, or a shifted row; quote the value or "
            "fix the row"
        )
        parts.append(Rejected(frame, np.full(len(frame), "extra_fields", dtype=object), detail))
    if len(scan.big_ordinal):
        n = len(scan.big_ordinal)
        frame = pd.DataFrame({c: np.full(n, None, dtype=object) for c in wanted})
        frame["source_file"] = path.name
        frame["source_row"] = scan.big_ordinal + 1
        names = np.array([*scan.header, "(extra field)"], dtype=object)
        col = names[np.minimum(scan.big_column, n_head)]
        size = np.where(
            scan.big_size < 0,
            f"more than {scan.limit:,}",
            pd.Series(scan.big_size).map("{:,}".format).to_numpy(dtype=object),
        )
        detail = (
            "'"
            + col.astype(str)
            + "' holds "
            + size.astype(object)
            + " bytes (the row has "
            + pd.Series(scan.big_row_size).map("{:,}".format).to_numpy(dtype=object)
            + f"), above max_field_bytes ({scan.limit:,}); the row was not read. "
            "Shorten the value, or raise max_field_bytes in the profile"
        )
        parts.append(Rejected(frame, np.full(n, "field_too_large", dtype=object), detail))
    return Rejected.join(parts)


def _csv_geometry(frame: pd.DataFrame, profile: Profile, path: Path) -> np.ndarray | None:
    if not (profile.geometry_column and profile.geometry_column in frame):
        return None
    col = frame[profile.geometry_column].astype(object)
    txt = col.where(col.notna() & (col != ""), None)
    try:
        if profile.geometry_encoding == "wkt":
            return shapely.from_wkt(txt.to_numpy(), on_invalid="ignore")
        return shapely.from_geojson(txt.to_numpy(), on_invalid="ignore")
    except Exception as exc:
        raise InputDataError(
            f"{path}: geometry column {profile.geometry_column!r} is unreadable ({exc})"
        ) from exc


def _empty_frame(columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    frame["source_file"] = pd.Series(dtype=object)
    frame["source_row"] = pd.Series(dtype=np.int64)
    return frame


def _read_csv(path: Path, profile: Profile) -> Iterator[RawChunk]:
    scan = scan_csv(path, profile.encoding, profile.max_field_bytes)
    present = scan.header
    _, optional = _required_and_optional(profile)
    _check_duplicates(present, [*profile.raw_columns, *optional], path)
    _check_columns(present, profile, path)
    wanted = [c for c in dict.fromkeys([*profile.raw_columns, *optional]) if c in present]
    if scan.rows == 0:
        raise InputDataError(f"{path}: the file has a header but no data rows")
    crs = CRS.from_user_input(profile.crs) if profile.crs else None
    rejected = _scan_rejects(scan, path, wanted, profile)
    if scan.rows == len(scan.anomalies):  # nothing left for pandas to read
        yield RawChunk(_empty_frame(wanted), None, crs, path, rejected)
        return
    names = _unique_names(present)
    with contextlib.ExitStack() as stack:
        source: Path | IO[bytes] = path
        if len(scan.big_spans):  # oversize rows are cut out of the bytes pandas reads
            source = stack.enter_context(open_csv_without(path, scan.big_spans))
        yield from _csv_chunks(source, path, profile, scan, names, wanted, crs, rejected)


def _open_reader(
    source: Path | IO[bytes], profile: Profile, scan: CsvScan, names: list[str], wanted: list[str]
) -> TextFileReader:
    """pandas' chunked reader for a scanned CSV (``source``: the file, or its bytes)."""
    return pd.read_csv(
        source,
        # the header line is read by pandas (it sets the field count) but named by us:
        # duplicates are not renamed a.1, and index_col=False keeps a trailing delimiter on
        # the first data row from turning the first column into an index (shifting all)
        header=0,
        names=names,
        index_col=False,
        # with undecodable bytes every column is read, so that the byte is found wherever it is
        usecols=names if scan.decode_errors else wanted,
        dtype=str,
        keep_default_na=False,
        encoding=scan.encoding,
        encoding_errors="replace" if scan.decode_errors else "strict",
        compression="infer" if isinstance(source, Path) else None,
        chunksize=profile.chunk_size,
    )


def _csv_chunks(
    source: Path | IO[bytes],
    path: Path,
    profile: Profile,
    scan: CsvScan,
    names: list[str],
    wanted: list[str],
    crs: CRS | None,
    rejected: Rejected | None,
) -> Iterator[RawChunk]:
    """The chunks pandas reads from ``source`` (the file, or its bytes less oversize rows)."""
    n_read = scan.rows - len(scan.big_ordinal)  # rows pandas delivers
    try:
        reader = _open_reader(source, profile, scan, names, wanted)
    except pd.errors.ParserError as exc:
        raise InputDataError(
            f"{path}: malformed CSV ({exc}); fix the line or re-export the file"
        ) from None
    start = 0
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
            frame = _object_frame(chunk.reset_index(drop=True), profile)
            frame["source_file"] = path.name
            ordinal = scan.kept_ordinals(start, len(frame))
            frame["source_row"] = ordinal + 1
            start += len(frame)
            if len(scan.extra_ordinal):  # refused already, with their extra values
                keep = ~np.isin(ordinal, scan.extra_ordinal)
                frame = frame.loc[keep].reset_index(drop=True)
            bad = None
            if scan.decode_errors:  # the whole row is kept for the quarantine's raw record
                raw_cols = [c for c in frame.columns if c not in ("source_file", "source_row")]
                frame, _, bad = _refuse(frame, None, _undecodable(frame, raw_cols, scan.encoding))
                frame = frame[[*wanted, "source_file", "source_row"]]
            yield RawChunk(
                frame=frame,
                geometry=_csv_geometry(frame, profile, path),
                crs=crs,
                path=path,
                rejected=Rejected.join([rejected, bad]),
            )
            rejected = None
    if rejected is not None:
        yield RawChunk(_empty_frame(wanted), None, crs, path, rejected)
    if start != n_read and len(scan.anomalies):
        raise InputDataError(
            f"{path}: {start:,} rows were read but the pre-scan counted {n_read:,}; the rows "
            "could not be numbered reliably. Re-export the file as plain RFC 4180 CSV"
        )


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
