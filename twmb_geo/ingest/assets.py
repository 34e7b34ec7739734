"""Assets: watermain and centreline line layers -> curated ``pipes`` / ``street_segments``.

Both kinds are line layers read through a profile (the City's GeoJSON copies in EPSG:4326,
its CSV copies in a projected CRS with the geometry as GeoJSON text, or another city's file).
Every row is checked with vectorised shapely/pandas operations; a failing row goes to
quarantine with a reason code (the first failing check, in the order of ``_PRIORITY``),
a fixable one is repaired and flagged.

Geometry (shared by both kinds):

* null or empty geometry -> ``geometry_missing``;
* geometry text a CSV reader could not parse, a geometry that is not a line (point,
  polygon), a line with zero length (all vertices coincide) or coordinates that cannot be
  transformed to the analysis CRS -> ``geometry_invalid``;
* invalid but repairable lines (e.g. a MultiLineString with a degenerate part) are
  repaired with :func:`shapely.make_valid`, keeping the line parts -> flag
  ``geometry_repaired``; lines that cross themselves are valid OGC lines and are kept with
  the flag ``self_intersecting``; more than one part -> kept as a MultiLineString with the
  flag ``multipart``;
* a line entirely outside ``ctx.service_area`` -> ``outside_service_area``. Without a
  service area the area of use of the source CRS is the reference,
  so a record located in another province still fails.

Ids: a missing id -> ``id_missing``; the same id again -> ``id_duplicate`` for every later
row (the detail says whether it is an identical copy, same id and geometry, or a
conflicting record). Only rows that pass every other check take part, so a broken first
copy does not push out a good second one.

Pipes: numbers that do not parse -> ``value_unparseable`` (type, diameter, construction
year, measured length, install date); diameter <= 0 or > 3000 mm, years before 1800 or
after today's year, dates after today, negative measured length, type outside 0/1/2 ->
``value_out_of_range``. Diameters and measured lengths are converted from the profile's
``diameter_unit`` / ``length_unit`` to mm / m. Materials: the published code (kept in
``material_raw``) is matched case- and whitespace-insensitively against the profile's
``[materials]`` (over the built-in defaults) for ``material_class``; empty or a code of
class ``unknown`` -> null ``material`` with the flag ``material_missing``; a code not in
the mapping -> class ``unknown``, flag ``material_unrecognised`` and a run warning that
lists the codes. Measured length differing from the geometry
length by more than 20 % and more than 5 m -> flag ``length_mismatch``. Install dates use
the profile's ``date_format`` (``epoch_ms``, ``epoch_s``, ``excel``, ``year``, a strftime
pattern, or ``auto``: whole numbers 1800-2100 are years, ``yyyymmdd`` numbers days, other
numbers epoch milliseconds, text ISO 8601 or numeric dates in the source's day/month order;
a date valid only in the other order -> ``date_order_conflict``).

Streets: ``is_street`` comes from FEATURE_CODE_DESC (:data:`STREET_CLASSES` /
:data:`NON_STREET_CLASSES`); an unknown class falls back on the bundled centreline's feature code
(2011xx-2018xx are road classes) and is flagged ``feature_class_unrecognised``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely

from ..contracts import conform, validate_frame
from ..core.crs import TransformInfo
from ..errors import InputDataError
from ..io.profiles import Profile
from ..io.readers import RawChunk
from ._common import (
    IngestContext,
    IngestResult,
    RowChecks,
    build_quarantine,
    empty_quarantine,
    finish_result,
)
from ._lines import (
    _Attributes,
    _check_lines,
    _duplicates,
    _flag_text,
    _Lines,
    _no_lines,
    _Problems,
    _text,
    reads_no_geometry,
)
from .dates import settle_chunks
from .pipes import WATERMAIN_TYPES, _pipe_attributes, parse_install_dates
from .streets import NON_STREET_CLASSES, STREET_CLASSES, _street_attributes, derive_nodes

__all__ = [
    "NON_STREET_CLASSES",
    "STREET_CLASSES",
    "WATERMAIN_TYPES",
    "parse_install_dates",
    "transform_pipes",
    "transform_streets",
]

_PRIORITY = (
    "id_missing",
    "geometry_missing",
    "geometry_invalid",
    "outside_service_area",
    "value_unparseable",
    "date_order_conflict",
    "value_out_of_range",
    "id_duplicate",
)


@dataclass(frozen=True)
class _Spec:
    kind: str
    table: str
    id_field: str
    key: str
    attributes: _Attributes
    #: rows may come without geometry (an attribute-only CSV/Excel inventory)
    geometry_optional: bool = False


_PIPES = _Spec("pipes", "pipes", "asset_id", "pipe_id", _pipe_attributes, geometry_optional=True)
_STREETS = _Spec("streets", "street_segments", "centreline_id", "segment_id", _street_attributes)


@dataclass
class _Run:
    """What :func:`_transform_lines` carries from one chunk to the next."""

    seen: dict[str, tuple[int, shapely.Geometry]] = field(default_factory=dict)
    infos: dict[str, TransformInfo] = field(default_factory=dict)
    flag_counts: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)


def _quarantined(
    chunk: RawChunk, profile: Profile, source_id: str, checks: RowChecks, bad: np.ndarray
) -> pd.DataFrame:
    """Quarantine rows of the failing rows of a chunk."""
    f = chunk.frame
    reasons, details = checks.lists()
    # a CSV keeps its geometry text in the frame: quarantine it as published
    raw_geom = (
        None if (profile.geometry_column and profile.geometry_column in f) else chunk.geometry
    )
    return build_quarantine(
        source_id, f.loc[bad], reasons, details, None if raw_geom is None else raw_geom[bad]
    )


def _accepted(
    f: pd.DataFrame,
    keep: np.ndarray,
    spec: _Spec,
    ids: np.ndarray,
    cols: dict[str, Any],
    lines: _Lines,
    flags: list[tuple[str, np.ndarray]],
    source_id: str,
) -> pd.DataFrame:
    """The kept rows of a chunk, in curated column names."""
    acc = np.nan
    if lines.info is not None and lines.info.accuracy_m is not None:
        acc = lines.info.accuracy_m
    out = {spec.key: ids[keep]}
    out.update({k: np.asarray(v)[keep] for k, v in cols.items()})
    out.update(
        {
            "length_m": lines.length[keep],
            "centroid_lon": lines.lon[keep],
            "centroid_lat": lines.lat[keep],
            "coord_accuracy_m": np.full(int(keep.sum()), acc, dtype=float),
            "flags": _flag_text(flags, len(f))[keep],
            "source_id": np.full(int(keep.sum()), source_id, dtype=object),
            "source_file": f["source_file"].to_numpy(dtype=object)[keep],
            "source_row": f["source_row"].to_numpy(dtype=np.int64)[keep],
            "geometry": shapely.to_wkb(lines.geometry[keep]),
        }
    )
    return pd.DataFrame(out)


def _transform_chunk(
    chunk: RawChunk,
    source_id: str,
    profile: Profile,
    ctx: IngestContext,
    spec: _Spec,
    run: _Run,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Accepted rows and quarantined rows (or ``None``) of one non-empty chunk."""
    f = chunk.frame
    n = len(f)
    id_col = profile.columns[spec.id_field]
    checks = RowChecks(n)
    ids = _text(f[id_col]) if id_col in f else np.full(n, None, dtype=object)
    checks.add("id_missing", pd.isna(ids), f"{id_col} is empty")
    attribute_only = spec.geometry_optional and reads_no_geometry(profile)
    lines = _no_lines(n) if attribute_only else _check_lines(chunk, profile, ctx, checks)
    if lines.info is not None:
        run.infos.setdefault(lines.info.source_crs, lines.info)
    probs = _Problems(n)
    cols, attr_flags = spec.attributes(f, profile, ctx, probs, lines.length)
    for name, m in attr_flags:
        if name == "material_unrecognised" and m.any():
            codes = pd.Series(np.asarray(cols["material_raw"], dtype=object)[m]).value_counts()
            for code, c in codes.items():
                run.unmapped[str(code)] = run.unmapped.get(str(code), 0) + int(c)
    probs.flush(checks)
    if attribute_only:
        _length_from_attributes(f, profile, cols, lines, checks)
    rows = f["source_row"].to_numpy(dtype=np.int64)
    dup, dup_detail = _duplicates(ids, lines.geometry, ~checks.failed, rows, id_col, run.seen)
    checks.add("id_duplicate", dup, dup_detail)
    checks.order(_PRIORITY)
    bad = checks.failed
    quarantined = _quarantined(chunk, profile, source_id, checks, bad) if bad.any() else None
    keep = ~bad
    flags = [*lines.flags, *attr_flags]
    for name, m in flags:
        c = int(np.count_nonzero(m & keep))
        if c:
            run.flag_counts[name] = run.flag_counts.get(name, 0) + c
    return _accepted(f, keep, spec, ids, cols, lines, flags, source_id), quarantined


def _length_from_attributes(
    f: pd.DataFrame, profile: Profile, cols: dict[str, Any], lines: _Lines, checks: RowChecks
) -> None:
    """Rows without geometry: their length is the measured length (> 0), else quarantined."""
    measured = np.asarray(cols["measured_length_m"], dtype=float)
    name = profile.columns.get("measured_length_m")
    unusable = ~(measured > 0) & ~checks.failed
    detail: str | np.ndarray
    if name is None:
        detail = "no geometry and no length: map measured_length_m in the profile's [columns]"
    else:
        shown = f[name].to_numpy(dtype=object) if name in f else np.full(len(f), None)
        detail = np.array(
            [f"no geometry and {name}={str(v)[:40]!r} gives no length > 0 m" for v in shown],
            dtype=object,
        )
    checks.add("geometry_missing", unusable, detail)
    lines.length = np.where(measured > 0, measured, np.nan)


def _line_warnings(
    source_id: str,
    spec: _Spec,
    infos: dict[str, TransformInfo],
    df: pd.DataFrame,
    quarantine: pd.DataFrame,
    rows_in: int,
) -> tuple[list[dict[str, Any]], list[str]]:
    """CRS records and warnings (imprecise transformations, nothing accepted, quarantine)."""
    crs_records: list[dict[str, Any]] = []
    warnings: list[str] = []
    for info in infos.values():
        crs_records.append({"source_id": source_id, "pair": "geometry", **info.to_dict()})
        if info.ballpark or (info.accuracy_m or 0) > 1:
            warnings.append(
                f"source {source_id!r}: {info.source_crs} -> {info.target_crs} "
                f"uses {info.description!r} "
                f"(accuracy {info.accuracy_m if info.accuracy_m is not None else 'unknown'} m; "
                f"missing datum grids: {', '.join(info.missing_grids) or 'none'})"
            )
    if df.empty:
        warnings.append(f"source {source_id!r}: no {spec.table} row was accepted (see quarantine)")
    if len(quarantine):
        counts = quarantine["reason"].value_counts()
        warnings.append(
            f"source {source_id!r}: {len(quarantine)} of {rows_in} rows quarantined: "
            + ", ".join(f"{k}={int(counts[k])}" for k in sorted(counts.index))
        )
    return crs_records, warnings


def _street_nodes(df: pd.DataFrame, source_id: str, ctx: IngestContext) -> str | None:
    """Fill missing from/to node ids of accepted segments in place; the note saying how many."""
    if df.empty:
        df["node_source"] = pd.Series(dtype=object)
        return None
    tol = ctx.street_node_tolerance_m
    f, t, src, c = derive_nodes(
        df["from_node"].to_numpy(dtype=object),
        df["to_node"].to_numpy(dtype=object),
        shapely.from_wkb(df["geometry"].to_numpy()),
        tol,
    )
    df["from_node"], df["to_node"], df["node_source"] = f, t, src
    if not c["ends_derived"]:
        return None
    return (
        f"source {source_id!r}: {c['ends_derived']} of {2 * len(df)} segment ends had no "
        f"from/to node id: derived from end points within {tol:g} m "
        f"({c['nodes_new']} new node(s), {c['ends_joined']} end(s) joined a source node)"
    )


def unmapped_material_warning(source_id: str, counts: dict[str, int]) -> str:
    """The run warning listing material codes the profile's ``[materials]`` does not map."""
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    listed = ", ".join(f"{code!r} ({n} rows)" for code, n in order)
    return (
        f"source {source_id!r}: {len(counts)} material codes not in [materials]: {listed} "
        "mapped to unknown; add them to the profile's [materials] table"
    )


def _transform_lines(
    chunks: Iterable[RawChunk], source_id: str, profile: Profile, ctx: IngestContext, spec: _Spec
) -> IngestResult:
    """Validate the chunks of a line layer into the curated table of ``spec``."""
    if profile.kind != spec.kind:
        raise InputDataError(
            f"profile {profile.id!r} is of kind {profile.kind!r}, not {spec.kind!r}"
        )
    schema = f"curated/{spec.table}"
    frames: list[pd.DataFrame] = []
    quarantined: list[pd.DataFrame] = []
    rows_in = 0
    run = _Run()
    order = None
    if spec.kind == "pipes":
        chunks, profile, order = settle_chunks(chunks, profile, "install_date")
    for chunk in chunks:
        rows_in += len(chunk.frame)
        if len(chunk.frame) == 0:
            continue
        out, bad = _transform_chunk(chunk, source_id, profile, ctx, spec, run)
        if bad is not None:
            quarantined.append(bad)
        frames.append(out)
    if rows_in == 0:
        raise InputDataError(f"source {source_id!r}: no rows were read (profile {profile.id!r})")
    no_geometry = spec.geometry_optional and reads_no_geometry(profile)
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values([spec.key, "source_file", "source_row"], kind="stable")
    node_note = _street_nodes(df, source_id, ctx) if spec.kind == "streets" else None
    df = conform(df, schema)
    validate_frame(df, schema)
    quarantine = pd.concat(quarantined, ignore_index=True) if quarantined else empty_quarantine()
    crs_records, warnings = _line_warnings(source_id, spec, run.infos, df, quarantine, rows_in)
    order_note = order.warning(source_id, profile.id) if order else None
    if order_note:
        warnings.insert(0, order_note)
    if node_note:
        warnings.append(node_note)
    if run.unmapped:
        warnings.append(unmapped_material_warning(source_id, run.unmapped))
    if no_geometry:
        warnings.append(
            f"source {source_id!r}: profile {profile.id!r} reads no geometry (no geometry_column): "
            f"{len(df)} {spec.table} without location, located through their street segment id or "
            "their breaks' asset ids; lengths from measured_length_m"
        )
    return finish_result(
        source_id,
        spec.kind,
        {spec.table: df},
        quarantine,
        rows_in,
        warnings,
        crs_records,
        run.flag_counts,
    )


def transform_pipes(
    chunks: Iterable[RawChunk], source_id: str, profile: Profile, ctx: IngestContext
) -> IngestResult:
    """Validate raw watermain chunks into the curated ``pipes`` table and quarantine rows.

    ``profile`` is a ``pipes`` profile; its ``date_format`` parses the install date. The
    result's table is ``"pipes"``, sorted by ``pipe_id``, conformed to and validated
    against ``schemas/curated/pipes.json``; rows in = accepted + quarantined.
    """
    return _transform_lines(chunks, source_id, profile, ctx, _PIPES)


def transform_streets(
    chunks: Iterable[RawChunk], source_id: str, profile: Profile, ctx: IngestContext
) -> IngestResult:
    """Validate raw centreline chunks into the curated ``street_segments`` table and quarantine.

    ``profile`` is a ``streets`` profile. The table is sorted by ``segment_id``, conformed
    to and validated against ``schemas/curated/street_segments.json``.
    """
    return _transform_lines(chunks, source_id, profile, ctx, _STREETS)
