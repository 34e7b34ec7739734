"""Breaks: raw break records -> the curated ``breaks`` table plus quarantine.

Each record may state its location several ways (WGS84 columns, the file geometry, NAD27
MTM columns). Every pair is checked; the first good one in the profile's preference order
is used, the others only raise flags. Rows no pair can locate, rows with bad dates,
duplicates and year mismatches go to quarantine with a reason code.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from ..contracts import conform, validate_frame
from ..core.crs import WGS84, TransformInfo, analysis_crs, transform_xy
from ..errors import InputDataError
from ..io.profiles import DIAMETER_UNITS, Profile
from ..io.readers import RawChunk
from ._common import (
    IngestContext,
    IngestResult,
    RowChecks,
    build_quarantine,
    empty_quarantine,
    finish_result,
)
from ._lines import _text
from ._pairs import (
    _INVALID,
    _MISSING,
    _OK,
    _OUTSIDE,
    _STATUS_NAME,
    _SWAPPED,
    _check_pair,
    _crs_report,
    _numeric,
    _pair_details,
    _PairResult,
)
from .dates import read_dates, settle_chunks
from .duplicates import Candidates, DuplicateState, find_duplicates

__all__ = ["transform_breaks"]

log = logging.getLogger(__name__)

_PRIORITY = (
    "date_missing",
    "date_unparseable",
    "date_order_conflict",
    "date_out_of_range",
    "date_future",
    "duplicate",
    "coords_missing",
    "coords_invalid",
    "swapped_xy",
    "outside_service_area",
    "value_unparseable",
    "year_mismatch",
)


class _Flags:
    """Semicolon-joined quality flags per row, built with vectorised masks."""

    def __init__(self, n: int) -> None:
        self.text = np.full(n, "", dtype=object)

    def add(self, name: str, mask: np.ndarray) -> None:
        m = np.asarray(mask, dtype=bool)
        if m.any():
            cur = self.text[m]
            self.text[m] = np.where(cur == "", name, cur + ";" + name)


def _key_hash(frame: pd.DataFrame, dates: pd.Series, profile: Profile) -> np.ndarray:
    """Hash of the exact key fields (the date and mapped fields; not coordinate pairs)."""
    parts: dict[str, object] = {"_": np.zeros(len(frame), dtype=np.int8)}
    for k in profile.duplicate_key:
        if k == "break_date":
            parts[k] = dates.to_numpy()
        elif k in profile.columns:
            col = profile.columns[k]
            parts[k] = frame[col].astype(str).to_numpy() if col in frame else ""
    return pd.util.hash_pandas_object(pd.DataFrame(parts), index=False).to_numpy()


def _break_ids(dates: pd.Series, lon: np.ndarray, lat: np.ndarray) -> list[str]:
    base = pd.DataFrame(
        {
            "d": dates.dt.strftime("%Y-%m-%d").to_numpy(),
            "lon": np.round(lon, 6),
            "lat": np.round(lat, 6),
        }
    )
    occ = base.groupby(["d", "lon", "lat"], sort=False).cumcount().to_numpy()
    keys = [
        f"break|{d}|{lo:.6f}|{la:.6f}|{o}"
        for d, lo, la, o in zip(base["d"], base["lon"], base["lat"], occ, strict=True)
    ]
    return ["B" + hashlib.sha256(k.encode()).hexdigest()[:16] for k in keys]


@dataclass
class _Location:
    """The coordinates chosen for each row of a chunk."""

    pairs: dict[str, _PairResult]
    chosen: np.ndarray
    x: np.ndarray
    y: np.ndarray
    src: np.ndarray
    acc: np.ndarray

    @property
    def located(self) -> np.ndarray:
        """Rows some pair could locate."""
        return self.chosen >= 0


@dataclass
class _Run:
    """What :func:`transform_breaks` carries from one chunk to the next."""

    dups: DuplicateState
    infos: dict[str, TransformInfo]
    measured: dict[str, list[np.ndarray]]
    n_dup: int = 0
    n_conflict: int = 0

    @classmethod
    def start(cls) -> _Run:
        """Empty state before the first chunk."""
        return cls(DuplicateState(), {}, {})


def _check_dates(
    f: pd.DataFrame, profile: Profile, ctx: IngestContext, checks: RowChecks
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse the break dates; returns the dates and the missing and unparseable masks."""
    col = profile.columns
    raw = f[col["break_date"]]
    parsed = read_dates(raw, profile.date_format, profile.date_order, profile.locale)
    dates, date_missing = parsed.dates, parsed.missing
    date_bad = parsed.unparseable | parsed.conflict
    checks.add("date_missing", date_missing, f"{col['break_date']} is empty")
    checks.add(
        "date_unparseable",
        parsed.unparseable,
        "'" + raw.astype(str) + f"' in {col['break_date']} is not a date",
    )
    if parsed.decision is not None:
        checks.add(
            "date_order_conflict",
            parsed.conflict,
            "'" + raw.astype(str) + f"' in {col['break_date']} " + parsed.decision.conflict_text,
        )
    checks.add(
        "date_out_of_range",
        ~date_bad & ~date_missing & (dates < pd.Timestamp(profile.min_date)),
        f"{col['break_date']} is before {profile.min_date}",
    )
    checks.add(
        "date_future",
        ~date_bad & ~date_missing & (dates > pd.Timestamp(ctx.today)),
        f"{col['break_date']} is after today ({ctx.today})",
    )
    return dates, date_missing, date_bad


def _choose_pairs(pairs: dict[str, _PairResult], n: int, flags: _Flags) -> _Location:
    """Take the first good pair per row, else a swapped pair that lands inside once repaired."""
    status = np.stack([pr.status for pr in pairs.values()])  # pairs x rows
    ok = status == _OK
    chosen = np.where(ok.any(axis=0), ok.argmax(axis=0), -1)
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    src = np.full(n, "", dtype=object)
    acc = np.full(n, np.nan)
    for k, name in enumerate(pairs):
        m = chosen == k
        x[m], y[m] = pairs[name].x[m], pairs[name].y[m]
        src[m] = name
        info = pairs[name].info
        acc[m] = np.nan if info is None or info.accuracy_m is None else info.accuracy_m
    for k, (name, pr) in enumerate(pairs.items()):
        m = (chosen == -1) & (pr.status == _SWAPPED) & pr.swap_inside
        if m.any():
            x[m], y[m], src[m] = pr.swap_x[m], pr.swap_y[m], name
            chosen[m] = k
            flags.add(f"{name}_swapped_xy_repaired", m)
    return _Location(pairs, chosen, x, y, src, acc)


def _flag_other_pairs(loc: _Location, profile: Profile, run: _Run, flags: _Flags) -> None:
    """Flag the bad pairs of located rows, conflicting good pairs and ballpark errors."""
    located = loc.located
    for name, pr in loc.pairs.items():
        for code, label in _STATUS_NAME.items():
            if code == _MISSING:
                continue
            flags.add(f"{name}_{label}", located & (pr.status == code) & (loc.src != name))
    for name, pr in loc.pairs.items():
        both = located & (pr.status == _OK) & (loc.src != name)
        if not both.any():
            continue
        d = np.hypot(pr.x - loc.x, pr.y - loc.y)
        if pr.info is not None and pr.info.ballpark:
            run.measured.setdefault(name, []).append(d[both])
        flags.add("coord_conflict", both & (d > profile.conflict_tolerance_m))


def _check_location(loc: _Location, n: int, checks: RowChecks) -> None:
    """Quarantine checks for rows no pair could locate."""
    st = np.stack([pr.status for pr in loc.pairs.values()])
    unlocated = ~loc.located
    any_swapped = (st == _SWAPPED).any(axis=0)
    any_outside = (st == _OUTSIDE).any(axis=0)
    any_invalid = (st == _INVALID).any(axis=0)
    all_missing = (st == _MISSING).all(axis=0)
    checks.add(
        "coords_missing", unlocated & all_missing, "no coordinates in " + ", ".join(loc.pairs)
    )
    pair_desc = _pair_details(loc.pairs, n, unlocated)
    checks.add(
        "coords_invalid",
        unlocated & ~all_missing & any_invalid & ~any_swapped & ~any_outside,
        pair_desc,
    )
    checks.add("swapped_xy", unlocated & any_swapped, pair_desc)
    checks.add("outside_service_area", unlocated & ~any_swapped & any_outside, pair_desc)


def _locate(
    chunk: RawChunk,
    profile: Profile,
    ctx: IngestContext,
    run: _Run,
    checks: RowChecks,
    flags: _Flags,
) -> _Location:
    """Check every coordinate pair of a chunk and choose one per row."""
    pairs = {p.name: _check_pair(p, chunk, ctx) for p in profile.coordinates}
    for name, pr in pairs.items():
        if pr.info is not None:
            run.infos.setdefault(name, pr.info)
    n = len(chunk.frame)
    loc = _choose_pairs(pairs, n, flags)
    _flag_other_pairs(loc, profile, run, flags)
    _check_location(loc, n, checks)
    return loc


def _check_duplicates(
    f: pd.DataFrame,
    dates: pd.Series,
    date_invalid: np.ndarray,
    profile: Profile,
    loc: _Location,
    run: _Run,
    checks: RowChecks,
    flags: _Flags,
) -> None:
    """Quarantine repeats of an earlier row (same key, within the tolerance; across chunks)."""
    if not profile.duplicate_key:
        return
    pair = profile.duplicate_pair
    px, py = (loc.pairs[pair].x, loc.pairs[pair].y) if pair else (loc.x, loc.y)
    ok = ~date_invalid & np.isfinite(px) & np.isfinite(py)
    idx = np.flatnonzero(ok)
    rows = f["source_row"].to_numpy()
    cand = Candidates(
        h=_key_hash(f, dates, profile)[idx],
        row=rows[idx],
        px=px[idx],
        py=py[idx],
        cx=loc.x[idx],
        cy=loc.y[idx],
        rid=_ids(f, profile.columns, "record_id")[idx],
        aid=_ids(f, profile.columns, "asset_id")[idx],
        i=idx,
    )
    run.dups, res = find_duplicates(
        run.dups,
        cand,
        len(f),
        profile.duplicate_distance_m,
        record_ids_distinct=profile.duplicate_record_id == "distinct",
        max_used_distance_m=profile.duplicate_max_distance_m if pair else None,
    )
    flags.add("duplicate_key_conflict", res.conflict)
    run.n_dup += int(res.dup.sum())
    run.n_conflict += int(res.conflict.sum())
    if not res.dup.any():
        return
    m = res.dup
    detail = np.full(len(f), "", dtype=object)
    fmt = "{:.1f}".format
    text = (
        "same "
        + " + ".join(profile.duplicate_key)
        + " as row "
        + pd.Series(res.kept_row[m]).astype(str).to_numpy(dtype=object)
        + " (kept), "
        + pd.Series(res.distance_m[m]).map(fmt).to_numpy(dtype=object)
        + f" m apart{f' on {pair}' if pair else ''}"
        + f" (tolerance {profile.duplicate_distance_m:g} m)"
    )
    if pair:
        used = pd.Series(res.used_distance_m[m])
        text = text + np.where(
            used.notna() & (used > profile.duplicate_distance_m),
            "; " + used.map("{:.0f}".format).to_numpy(dtype=object) + " m by the coordinates used",
            "",
        )
    detail[m] = text
    checks.add("duplicate", m, detail)


def _duplicate_warning(source_id: str, profile: Profile, run: _Run) -> list[str]:
    """One line on the duplicate rule and what it found (only when it found something)."""
    if not (run.n_dup or run.n_conflict):
        return []
    pair = profile.duplicate_pair
    where = f"on {pair} as recorded" if pair else "in the analysis CRS"
    ids = "different asset ids" + (
        " or record ids" if profile.duplicate_record_id == "distinct" else ""
    )
    text = (
        f"source {source_id!r}: {run.n_dup} row(s) quarantined as duplicates (same "
        + " + ".join(k for k in profile.duplicate_key if k != pair)
        + f", within {profile.duplicate_distance_m:g} m {where}; rows with {ids} kept apart)"
    )
    if run.n_conflict:
        text += (
            f"; {run.n_conflict} key match(es) more than {profile.duplicate_max_distance_m:g} m"
            " apart by the coordinates used were kept (flag duplicate_key_conflict)"
        )
    return [text]


def _check_year(
    f: pd.DataFrame,
    dates: pd.Series,
    date_invalid: np.ndarray,
    profile: Profile,
    checks: RowChecks,
    flags: _Flags,
) -> None:
    """Check the optional year column against the break date."""
    col = profile.columns
    if "break_year" not in col or col["break_year"] not in f:
        return
    year, year_bad = _numeric(f[col["break_year"]])
    checks.add(
        "value_unparseable",
        year_bad,
        "'" + f[col["break_year"]].astype(str) + f"' in {col['break_year']} is not a year",
    )
    mismatch = (
        ~year_bad
        & ~np.isnan(year)
        & ~date_invalid
        & (year != dates.dt.year.to_numpy(dtype=float, na_value=np.nan))
    )
    if profile.year_mismatch == "quarantine":
        checks.add(
            "year_mismatch",
            mismatch,
            f"{col['break_year']}="
            + pd.Series(year).map("{:.0f}".format)
            + " but the date is "
            + dates.dt.strftime("%Y-%m-%d").fillna(""),
        )
    else:
        flags.add("year_mismatch", mismatch)


def _ids(f: pd.DataFrame, col: Mapping[str, str], key: str) -> np.ndarray:
    """Trimmed id text of mapped field ``key`` (None for blanks; '42.0' read as a float is '42')."""
    if key in col and col[key] in f:
        return _text(f[col[key]])
    return np.full(len(f), None, dtype=object)


def _accepted_rows(
    f: pd.DataFrame,
    keep: np.ndarray,
    dates: pd.Series,
    loc: _Location,
    flags: _Flags,
    profile: Profile,
    source_id: str,
) -> pd.DataFrame:
    """The kept rows of a chunk, in curated column names."""
    col = profile.columns
    return pd.DataFrame(
        {
            "break_date": dates[keep].to_numpy(),
            "x": loc.x[keep],
            "y": loc.y[keep],
            "coord_source": loc.src[keep],
            "coord_accuracy_m": loc.acc[keep],
            "material": f[col["material"]][keep].to_numpy()
            if "material" in col and col["material"] in f
            else None,
            "diameter_mm": _numeric(f[col["diameter_mm"]])[0][keep]
            * DIAMETER_UNITS[profile.diameter_unit]
            if "diameter_mm" in col and col["diameter_mm"] in f
            else np.nan,
            "asset_id": _ids(f, col, "asset_id")[keep],
            "street_segment_id": _ids(f, col, "street_segment_id")[keep],
            "flags": flags.text[keep],
            "source_id": source_id,
            "source_file": f["source_file"][keep].to_numpy(),
            "source_row": f["source_row"][keep].to_numpy(),
        }
    )


def _transform_chunk(
    chunk: RawChunk, source_id: str, profile: Profile, ctx: IngestContext, run: _Run
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Accepted rows and quarantined rows (or ``None``) of one chunk."""
    f = chunk.frame
    checks = RowChecks(len(f))
    flags = _Flags(len(f))
    dates, date_missing, date_bad = _check_dates(f, profile, ctx, checks)
    loc = _locate(chunk, profile, ctx, run, checks, flags)
    _check_duplicates(f, dates, date_missing | date_bad, profile, loc, run, checks, flags)
    _check_year(f, dates, date_bad | date_missing, profile, checks, flags)
    checks.order(_PRIORITY)
    bad = checks.failed
    quarantined = None
    if bad.any():
        reasons, details = checks.lists()
        quarantined = build_quarantine(
            source_id,
            f.loc[bad],
            reasons,
            details,
            None if chunk.geometry is None else chunk.geometry[bad],
        )
    return _accepted_rows(f, ~bad, dates, loc, flags, profile, source_id), quarantined


def _assemble(accepted: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate accepted rows and derive lon/lat, year, month, ids and geometry."""
    df = pd.concat(accepted, ignore_index=True) if accepted else pd.DataFrame()
    lon, lat, _ = transform_xy(df["x"].to_numpy(), df["y"].to_numpy(), analysis_crs(), WGS84)
    df["lon"], df["lat"] = lon, lat
    df["break_date"] = pd.to_datetime(df["break_date"])
    df["year"] = df["break_date"].dt.year.astype(np.int32)
    df["month"] = df["break_date"].dt.month.astype(np.int32)
    df["break_id"] = _break_ids(df["break_date"], lon, lat)
    df["geometry"] = (
        shapely.to_wkb(shapely.points(df["x"].to_numpy(), df["y"].to_numpy())) if len(df) else []
    )
    df = conform(df.sort_values(["source_file", "source_row"], kind="stable"), "curated/breaks")
    validate_frame(df, "curated/breaks")
    return df


def transform_breaks(
    chunks: Iterable[RawChunk], source_id: str, profile: Profile, ctx: IngestContext
) -> IngestResult:
    """Validate raw break chunks into the curated ``breaks`` table and quarantine rows."""
    accepted: list[pd.DataFrame] = []
    quarantined: list[pd.DataFrame] = []
    rows_in = 0
    run = _Run.start()
    chunks, profile, order = settle_chunks(chunks, profile, "break_date")
    for chunk in chunks:
        rows_in += len(chunk.frame)
        out, bad = _transform_chunk(chunk, source_id, profile, ctx, run)
        if bad is not None:
            quarantined.append(bad)
        accepted.append(out)
    if rows_in == 0:
        raise InputDataError(f"source {source_id!r}: no rows were read")
    df = _assemble(accepted)
    quarantine = pd.concat(quarantined, ignore_index=True) if quarantined else empty_quarantine()
    flag_counts: dict[str, int] = {}
    for fl in df["flags"]:
        for name in filter(None, fl.split(";")):
            flag_counts[name] = flag_counts.get(name, 0) + 1
    crs_records, warnings = _crs_report(source_id, run.infos, run.measured)
    order_note = order.warning(source_id, profile.id) if order else None
    if order_note:
        warnings.insert(0, order_note)
    warnings.extend(_duplicate_warning(source_id, profile, run))
    return finish_result(
        source_id, "breaks", {"breaks": df}, quarantine, rows_in, warnings, crs_records, flag_counts
    )
