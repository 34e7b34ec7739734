"""One source in, curated tables and quarantine out: the transform registry and ``read_source``.

Each source kind (``breaks``, ``neighbourhoods``, ``weather_daily``, ``pipes``, ``streets``)
has one transform, registered in :data:`TRANSFORMS`; a profile's ``kind`` picks it. Adding a
source kind is one transform module plus its curated contracts and a ``register_transform``
call here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
import shapely

from ..contracts import conform
from ..core.crs import choose_crs, current_crs, source_datum, using_crs
from ..errors import InputDataError
from ..io.profiles import Profile, get_profile
from ..io.readers import RawChunk, iter_raw, split_rejected
from ._common import IngestContext, IngestResult, rejected_quarantine
from .assets import transform_pipes, transform_streets
from .breaks import transform_breaks
from .extent import LOCATED_KINDS, source_extent
from .filters import filter_chunks, filter_frame
from .neighbourhoods import transform_neighbourhoods
from .weather import read_eccc_daily, transform_weather
from .weather_csv import read_weather_table

__all__ = ["TRANSFORMS", "Transform", "read_source", "register_transform", "transform_source"]

#: called as ``transform(files, source_id, profile, ctx)``
Transform = Callable[[list[Path], str, Profile, IngestContext], IngestResult]


def _raw_chunks(files: Sequence[Path], profile: Profile, ctx: IngestContext) -> Iterator[RawChunk]:
    for f in files:
        yield from split_rejected(iter_raw(f, profile), ctx.rejected)


def _chunks(files: Sequence[Path], profile: Profile, ctx: IngestContext) -> Iterator[RawChunk]:
    """The raw chunks of ``files``, with the profile's ``[[where]]`` row filters applied.

    Rows the reader refused go to ``ctx.rejected`` (quarantined by :func:`transform_source`).
    """
    return filter_chunks(_raw_chunks(files, profile, ctx), profile, ctx.excluded)


def _breaks(
    files: list[Path], source_id: str, profile: Profile, ctx: IngestContext
) -> IngestResult:
    return transform_breaks(_chunks(files, profile, ctx), source_id, profile, ctx)


def _neighbourhoods(
    files: list[Path], source_id: str, profile: Profile, ctx: IngestContext
) -> IngestResult:
    return transform_neighbourhoods(_chunks(files, profile, ctx), source_id, profile, ctx)


def _pipes(files: list[Path], source_id: str, profile: Profile, ctx: IngestContext) -> IngestResult:
    return transform_pipes(_chunks(files, profile, ctx), source_id, profile, ctx)


def _streets(
    files: list[Path], source_id: str, profile: Profile, ctx: IngestContext
) -> IngestResult:
    return transform_streets(_chunks(files, profile, ctx), source_id, profile, ctx)


def _weather(
    files: list[Path], source_id: str, profile: Profile, ctx: IngestContext
) -> IngestResult:
    if profile.format == "eccc_daily_csv":
        raw, fmt = read_eccc_daily(files), None
    else:
        raw, fmt = read_weather_table(files, profile, source_id, ctx.rejected)
    raw = filter_frame(raw, profile, ", ".join(str(f) for f in files), ctx.excluded)
    w = transform_weather(
        raw,
        source_id,
        today=ctx.today,
        coverage_threshold=ctx.weather_coverage_threshold,
        fmt=fmt,
    )
    res = IngestResult(
        source_id,
        "weather_daily",
        {
            "weather_daily": conform(w.daily, "curated/weather_daily"),
            "weather_monthly": conform(
                w.monthly.assign(source_id=source_id), "curated/weather_monthly"
            ),
            "weather_winters": conform(
                w.winters.assign(source_id=source_id), "curated/weather_winters"
            ),
        },
        w.quarantine,
        w.rows_in,
        [*(fmt.notes if fmt else []), *w.warnings],
    )
    res.reconcile()
    return res


#: source kind -> transform
TRANSFORMS: dict[str, Transform] = {
    "breaks": _breaks,
    "neighbourhoods": _neighbourhoods,
    "weather_daily": _weather,
    "pipes": _pipes,
    "streets": _streets,
}


def register_transform(kind: str, transform: Transform) -> None:
    """Make profiles of ``kind`` ingestible with ``transform``."""
    if kind in TRANSFORMS:
        raise ValueError(f"source kind {kind!r} already has a transform")
    TRANSFORMS[kind] = transform


def transform_source(
    files: list[Path], source_id: str, profile: Profile, ctx: IngestContext
) -> IngestResult:
    """Run the transform of ``profile.kind`` on ``files``.

    The profile's ``[[where]]`` row filters apply to the raw rows as they are read; the
    rows they drop are counted in ``result.excluded`` (per condition) and added to
    ``result.rows_in``, so rows in = accepted + quarantined + excluded.
    """
    fn = TRANSFORMS.get(profile.kind)
    if fn is None:
        raise InputDataError(f"profile {profile.id!r}: kind {profile.kind!r} cannot be ingested")
    ctx = replace(ctx, excluded={}, rejected=[])
    try:
        result = fn(files, source_id, profile, ctx)
    except InputDataError as exc:
        notes = []
        if ctx.excluded:
            rules = ", ".join(f"{k} ({v})" for k, v in sorted(ctx.excluded.items()))
            notes.append(f"the profile's [[where]] row filters excluded: {rules}")
        if ctx.rejected:
            notes.append(f"rows refused while reading: {_reasons(ctx)}")
        named = any(f.name in exc.message for f in files)
        if not notes and named:
            raise
        message = exc.message if named else f"{', '.join(map(str, files))}: {exc.message}"
        problems = [*exc.problems, *_rejected_examples(ctx)]
        tail = f" ({'; '.join(notes)})" if notes else ""
        raise InputDataError(message + tail, problems) from exc
    if ctx.rejected:
        q = rejected_quarantine(source_id, ctx.rejected)
        result.quarantine = pd.concat([result.quarantine, q], ignore_index=True)
        result.rows_in += len(q)
        result.warnings.append(
            f"source {source_id!r}: {len(q):,} row(s) quarantined while reading the file: "
            f"{_reasons(ctx)}"
        )
    if ctx.excluded:
        result.excluded = dict(sorted(ctx.excluded.items()))
        result.rows_in += result.excluded_rows
        result.warnings.append(
            f"source {source_id!r}: {result.excluded_rows} of {result.rows_in} rows excluded by "
            "the profile's [[where]] row filters: "
            + ", ".join(f"{k} ({v})" for k, v in result.excluded.items())
        )
    result.reconcile()
    return result


def _reasons(ctx: IngestContext) -> str:
    """``encoding_error 2, extra_fields 1``: reader refusals per reason code."""
    counts: dict[str, int] = {}
    for r in ctx.rejected:
        for code in r.reason:
            counts[str(code)] = counts.get(str(code), 0) + 1
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))


def _rejected_examples(ctx: IngestContext, n: int = 3) -> list[str]:
    out = []
    for r in ctx.rejected:
        f = r.frame
        for file, row, code, detail in zip(
            f["source_file"], f["source_row"], r.reason, r.detail, strict=True
        ):
            out.append(f"{file} row {row}: {code}: {detail}")
            if len(out) == n:
                return out
    return out


def read_source(
    path: Path | str | Sequence[Path | str],
    profile: Profile | str,
    *,
    source_id: str = "source",
    service_area: shapely.Geometry | None = None,
    today: dt.date | None = None,
    crs: str | None = None,
) -> IngestResult:
    """Read and validate one source without a store: curated tables and quarantine in memory.

    Parameters
    ----------
    path
        A file, or several files of one source (e.g. yearly weather CSVs).
    profile
        A :class:`~twmb_geo.io.profiles.Profile` or the id of a built-in profile.
    source_id
        The ``source_id`` written into every row.
    service_area
        Buffered boundary in the analysis CRS for the outside-area check (optional).
    today
        The day that future dates are checked against (default: today).
    crs
        The analysis CRS of the curated tables (projected, metres). Default: the one in
        force (:func:`~twmb_geo.core.crs.using_crs`), else chosen from this source's extent
        (:func:`~twmb_geo.core.crs.choose_crs`); the result's ``analysis_crs`` says which.

    Returns
    -------
    IngestResult
        Curated tables, the quarantine, rows in and warnings.

    Examples
    --------
    >>> import twmb_geo as tw
    >>> res = tw.read_source("breaks.csv", "toronto_breaks_csv")  # doctest: +SKIP
    >>> res.rows_in == res.accepted + len(res.quarantine)  # doctest: +SKIP
    True
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    files = [Path(p) for p in ([path] if isinstance(path, str | Path) else path)]
    ctx = IngestContext(today=today or dt.date.today(), service_area=service_area)
    if crs is None:
        crs = current_crs()
    if crs is None and prof.kind in LOCATED_KINDS:
        ext = source_extent(files, prof)
        if ext is None:
            raise InputDataError(
                f"{', '.join(str(f) for f in files)}: cannot choose an analysis CRS: no record "
                "has usable coordinates; pass crs= (a projected CRS in metres, e.g. the UTM "
                "zone of the city) or check the profile's coordinate columns"
            )
        crs = choose_crs(ext.bounds, source_datum(list(ext.crss))).crs
    if crs is None:
        result = transform_source(files, source_id, prof, ctx)  # no locations to project
    else:
        with using_crs(crs) as label:
            result = transform_source(files, source_id, prof, ctx)
            result.analysis_crs = label
    return result
