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
from ..core.crs import TARGET_CRS, WGS84, TransformInfo, transform_xy
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
from .dates import parse_dates

__all__ = ["transform_breaks"]

log = logging.getLogger(__name__)

_PRIORITY = (
    "date_missing",
    "date_unparseable",
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


def _find_duplicates(
    seen: pd.DataFrame,
    h: np.ndarray,
    valid: np.ndarray,
    rows: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    profile: Profile,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose key was seen earlier (this chunk or before), in file order.

    ``seen`` maps key hash -> (row, x, y) of the first occurrence and is carried across
    chunks. Returns the updated ``seen``, duplicate and key-conflict masks and details.
    """
    n = len(h)
    dup = np.zeros(n, dtype=bool)
    conflict = np.zeros(n, dtype=bool)
    detail = np.full(n, "", dtype=object)
    kf = pd.DataFrame({"h": h, "row": rows, "x": x, "y": y, "i": np.arange(n)})[valid]
    first = ~kf["h"].duplicated() & ~kf["h"].isin(seen.index)
    seen = pd.concat([seen, kf.loc[first].set_index("h")[["row", "x", "y"]]])
    later = kf.loc[~first]
    if later.empty:
        return seen, dup, conflict, detail
    ref = seen.loc[later["h"].to_numpy()]
    dist = np.hypot(
        later["x"].to_numpy() - ref["x"].to_numpy(), later["y"].to_numpy() - ref["y"].to_numpy()
    )
    idx = later["i"].to_numpy()
    far = np.zeros(len(idx), dtype=bool)
    if profile.duplicate_max_distance_m is not None:
        far = dist > profile.duplicate_max_distance_m
    conflict[idx[far]] = True
    dup[idx[~far]] = True
    where = np.where(
        np.isfinite(dist),
        " ("
        + pd.Series(dist).round(0).map("{:.0f}".format).to_numpy(dtype=object)
        + " m from it by the coordinates used)",
        "",
    )
    text = (
        "same "
        + " + ".join(profile.duplicate_key)
        + " as row "
        + ref["row"].astype(str).to_numpy(dtype=object)
        + where
    )
    detail[idx] = text
    return seen, dup, conflict, detail


def _dedupe_keys(
    frame: pd.DataFrame, dates: pd.Series, profile: Profile, pairs: dict[str, _PairResult]
) -> pd.DataFrame | None:
    if not profile.duplicate_key:
        return None
    parts: dict[str, object] = {}
    for k in profile.duplicate_key:
        if k == "break_date":
            parts[k] = dates.to_numpy()
        elif k in pairs:
            parts[f"{k}_x"] = np.round(pairs[k].raw_x, 3)
            parts[f"{k}_y"] = np.round(pairs[k].raw_y, 3)
        else:
            parts[k] = frame[profile.columns[k]].astype(str).to_numpy()
    return pd.DataFrame(parts)


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

    seen: pd.DataFrame
    infos: dict[str, TransformInfo]
    measured: dict[str, list[np.ndarray]]

    @classmethod
    def start(cls) -> _Run:
        """Empty state before the first chunk."""
        seen = pd.DataFrame(
            {"row": np.array([], np.int64), "x": np.array([]), "y": np.array([])},
            index=pd.Index(np.array([], dtype=np.uint64), name="h"),
        )
        return cls(seen, {}, {})


def _check_dates(
    f: pd.DataFrame, profile: Profile, ctx: IngestContext, checks: RowChecks
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse the break dates; returns the dates and the missing and unparseable masks."""
    col = profile.columns
    dates, date_missing, date_bad = parse_dates(f[col["break_date"]], profile.date_format)
    checks.add("date_missing", date_missing, f"{col['break_date']} is empty")
    checks.add(
        "date_unparseable",
        date_bad,
        "'" + f[col["break_date"]].astype(str) + f"' in {col['break_date']} is not a date",
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
    """Quarantine repeats of the profile's duplicate key (across chunks)."""
    keys = _dedupe_keys(f, dates, profile, loc.pairs)
    if keys is None:
        return
    valid_key = keys.notna().all(axis=1).to_numpy() & ~date_invalid
    h = pd.util.hash_pandas_object(keys, index=False).to_numpy()
    run.seen, dup, conflict, detail = _find_duplicates(
        run.seen, h, valid_key, f["source_row"].to_numpy(), loc.x, loc.y, profile
    )
    flags.add("duplicate_key_conflict", conflict)
    checks.add("duplicate", dup, detail)


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
    lon, lat, _ = transform_xy(df["x"].to_numpy(), df["y"].to_numpy(), TARGET_CRS, WGS84)
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
    return finish_result(
        source_id, "breaks", {"breaks": df}, quarantine, rows_in, warnings, crs_records, flag_counts
    )
