"""Date parsing for source columns: whatever the file holds -> day-resolution timestamps.

Numeric text dates that are not ISO 8601 (``03/04/2015``, ``3-4-15``, ``03.04.2015 14:30``)
are read in one day/month order per source, never guessed value by value: the order comes
from the profile's ``date_order``, else from the values that only one order makes valid
(a first field above 12 is a day), else from the profile's ``locale``, else month-first with
a warning. Values that only the other order makes valid are ``conflict`` rows (quarantined
as ``date_order_conflict``). See :func:`settle_chunks` for the per-source decision.

Time zones: a value with a UTC offset or zone after its time (``2015-03-04T23:30-05:00``,
``...Z``, ``... UTC``, ``... GMT+2``, ``... EST``) is read as the calendar date written in it
(its wall-clock date): the offset never moves a break to another day. This holds row by row,
so a column may mix offsets, or offsets and plain dates; a value that still does not parse is
unparseable (``date_unparseable``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..core.locales import locale_date_order
from ..io.profiles import Profile
from ..io.readers import RawChunk

__all__ = [
    "DateOrderDecision",
    "OrderEvidence",
    "ParsedDates",
    "decide_order",
    "order_evidence",
    "parse_dates",
    "read_dates",
    "settle_chunks",
]

_EXCEL_EPOCH = pd.Timestamp("1899-12-30")
_MIN_YEAR, _MAX_YEAR = 1800, 2100
#: ``auto`` reads a number as epoch milliseconds only from this size on (dates from 1973-03,
#: or before 1966-10): a smaller one is as likely epoch seconds or Excel serial days, and
#: read as milliseconds it would be a silently wrong day in January 1970
_MIN_EPOCH_MS = 1e11

#: day/month/year fields with one separator, optionally a time (ignored: dates are days)
_NUMERIC_DATE = (
    r"^(?P<a>\d{1,4})(?P<sep>[/.\-])(?P<b>\d{1,2})(?P=sep)(?P<c>\d{1,4})"
    r"(?:(?:\s+|T)(?:[01]?\d|2[0-4]):[0-5]\d(?::(?:[0-5]\d|60))?(?:[.,]\d+)?\s*(?:[AaPp]\.?[Mm]\.?)?"
    r"\s*(?:Z|UTC|GMT|[+-]\d{2}:?\d{2})?)?$"
)
#: a time, then a UTC offset or time zone: Z, +05:30, -0500, +01, UTC, GMT+2, EST
_TIME = r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[AaPp]\.?[Mm]\.?)?"
_ZONE = r"Z|(?:UTC|GMT)(?:\s*[+-]\d{1,2}(?::?\d{2})?)?|[+-]\d{2}(?::?\d{2})?|[A-Za-z]{3,5}"
_ZONE_AFTER_TIME = rf"{_TIME}\s*({_ZONE})\s*$"
_ZONE_STRIP = rf"({_TIME})\s*(?:{_ZONE})\s*$"
_LABEL = {"dmy": "day-first (dd/mm/yyyy)", "mdy": "month-first (mm/dd/yyyy)", "ymd": "year-first"}


@dataclass(frozen=True)
class OrderEvidence:
    """What a column's numeric text dates say about their day/month order."""

    day_first: int = 0  # valid only when read day-first (a first field above 12)
    month_first: int = 0  # valid only when read month-first
    ambiguous: int = 0  # valid both ways, as different dates
    same: int = 0  # valid both ways, the same date (day == month)
    example: str | None = None  # an ambiguous value, for messages

    def __add__(self, other: OrderEvidence) -> OrderEvidence:
        return OrderEvidence(
            self.day_first + other.day_first,
            self.month_first + other.month_first,
            self.ambiguous + other.ambiguous,
            self.same + other.same,
            self.example if self.example is not None else other.example,
        )

    @property
    def total(self) -> int:
        """Numeric text dates with a day/month choice (year last)."""
        return self.day_first + self.month_first + self.ambiguous + self.same


@dataclass(frozen=True)
class DateOrderDecision:
    """The day/month order a source's numeric text dates are read in, and why."""

    order: str  # "dmy" | "mdy" | "ymd"
    basis: str  # "date_order" | "evidence" | "locale" | "default"
    evidence: OrderEvidence
    locale: str | None = None

    @property
    def contradicting(self) -> int:
        """Values valid only in the other order (quarantined as ``date_order_conflict``)."""
        if self.order == "dmy":
            return self.evidence.month_first
        if self.order == "mdy":
            return self.evidence.day_first
        return self.evidence.day_first + self.evidence.month_first + self.evidence.ambiguous

    @property
    def conflict_text(self) -> str:
        """Why a contradicting value is quarantined (the quarantine ``detail``)."""
        other = "with the year last" if self.order == "ymd" else "in the other day/month order"
        return (
            f"is a date only {other}, but this source's dates are read {_LABEL[self.order]} "
            "(set date_order in the profile if that is wrong)"
        )

    def warning(self, source_id: str, profile_id: str) -> str | None:
        """The message saying how the dates were read (``None`` when nothing was to decide)."""
        ev = self.evidence
        if ev.total == 0 or self.basis == "date_order":
            return None
        how = _LABEL[self.order]
        quarantined = f"{self.contradicting:,} contradicting quarantined (date_order_conflict)"
        if self.basis == "evidence":
            unamb = ev.day_first if self.order == "dmy" else ev.month_first
            return (
                f"source {source_id!r}: dates read {how} from {unamb:,} unambiguous values; "
                f"{ev.ambiguous:,} ambiguous read the same way; {quarantined}"
            )
        if ev.ambiguous == 0 and self.contradicting == 0:
            return None
        if self.basis == "locale":
            return (
                f"source {source_id!r}: no value settles the day/month order; {ev.ambiguous:,} "
                f"ambiguous dates read {how} by locale {self.locale!r}; {quarantined}"
            )
        return (
            f"source {source_id!r}: the day/month order of {ev.ambiguous:,} ambiguous dates "
            f"(e.g. {ev.example!r}) could not be determined from the values; read {how}. "
            f'Set date_order = "dmy" or "mdy" (or locale) in profile {profile_id!r}; '
            f"{quarantined}"
        )


@dataclass(frozen=True)
class ParsedDates:
    """A parsed date column: dates at midnight and masks of what did not parse."""

    dates: pd.Series  # datetime64[s], NaT where not parsed
    missing: np.ndarray  # empty values
    unparseable: np.ndarray  # not a date in any order
    conflict: np.ndarray  # a date only in the other day/month order
    decision: DateOrderDecision | None  # how numeric text dates were read (None: none seen)


@dataclass(frozen=True)
class _Fields:
    """Numeric text dates split into fields, with their day-first / month-first readings."""

    rows: np.ndarray  # positions (in the text column) of the values that matched
    a: np.ndarray
    b: np.ndarray
    dmy: np.ndarray  # datetime64[s]
    mdy: np.ndarray
    ymd: np.ndarray
    year_last: np.ndarray  # a has 1-2 digits, c 2 or 4: the year is last
    first_year: np.ndarray  # a has 4 digits: a year whatever the order


def _year(field: pd.Series) -> np.ndarray:
    """Year fields: 4 digits as written, 2 digits pivoted as strptime does (69-99 -> 19xx)."""
    v = pd.to_numeric(field).to_numpy(dtype=np.int64)
    short = field.str.len().to_numpy() <= 2
    return np.where(short, np.where(v < 69, 2000 + v, 1900 + v), v)


def _ymd(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Dates from year/month/day arrays; NaT where they make no date."""
    frame = pd.DataFrame({"year": y, "month": m, "day": d})
    ok = (y >= 1) & (m >= 1) & (m <= 12) & (d >= 1) & (d <= 31)
    out = np.full(len(y), np.datetime64("NaT"), dtype="datetime64[s]")
    if ok.any():
        conv = pd.to_datetime(frame[ok], errors="coerce")
        out[ok] = conv.to_numpy(dtype="datetime64[s]")
    return out


def _fields(text: pd.Series) -> _Fields:
    """Split the numeric text dates of ``text`` (stripped strings) into their readings."""
    parts = text.str.extract(_NUMERIC_DATE)
    hit = parts["a"].notna().to_numpy()
    p = parts[hit]
    a_len = p["a"].str.len().to_numpy()
    c_len = p["c"].str.len().to_numpy()
    a = pd.to_numeric(p["a"]).to_numpy(dtype=np.int64)
    b = pd.to_numeric(p["b"]).to_numpy(dtype=np.int64)
    c = pd.to_numeric(p["c"]).to_numpy(dtype=np.int64)
    year_last = (a_len <= 2) & np.isin(c_len, (2, 4))
    yl = _year(p["c"])
    nat = np.full(len(p), np.datetime64("NaT"), dtype="datetime64[s]")
    dmy = np.where(year_last, _ymd(yl, b, a), nat)
    mdy = np.where(year_last, _ymd(yl, a, b), nat)
    first_year = (a_len == 4) & (c_len <= 2)
    short_first = (a_len <= 2) & (c_len <= 2)
    ymd = np.where(first_year | short_first, _ymd(_year(p["a"]), b, c), nat)
    return _Fields(np.flatnonzero(hit), a, b, dmy, mdy, ymd, year_last, first_year)


def _evidence(f: _Fields, text: pd.Series) -> OrderEvidence:
    vd, vm = ~np.isnat(f.dmy), ~np.isnat(f.mdy)
    amb = vd & vm & (f.a != f.b)
    example = str(text.iloc[f.rows[np.argmax(amb)]]) if amb.any() else None
    return OrderEvidence(
        int(np.count_nonzero(vd & ~vm)),
        int(np.count_nonzero(vm & ~vd)),
        int(np.count_nonzero(amb)),
        int(np.count_nonzero(vd & vm & (f.a == f.b))),
        example,
    )


def order_evidence(values: pd.Series) -> OrderEvidence:
    """Count the values of a raw column that settle, or leave open, the day/month order."""
    s = values.dropna()
    s = s[s.map(lambda v: isinstance(v, str))].astype(str).str.strip().reset_index(drop=True)
    if s.empty:
        return OrderEvidence()
    return _evidence(_fields(s), s)


def decide_order(
    evidence: OrderEvidence, date_order: str = "auto", locale: str | None = None
) -> DateOrderDecision:
    """The order to read a source in: ``date_order``, else evidence, else ``locale``, else mdy.

    Evidence is the majority of the unambiguous values (a tie settles nothing). The
    ``"default"`` basis (month-first) always comes with a warning
    (:meth:`DateOrderDecision.warning`).
    """
    if date_order != "auto":
        return DateOrderDecision(date_order, "date_order", evidence, locale)
    if evidence.day_first > evidence.month_first:
        return DateOrderDecision("dmy", "evidence", evidence, locale)
    if evidence.month_first > evidence.day_first:
        return DateOrderDecision("mdy", "evidence", evidence, locale)
    by_locale = locale_date_order(locale) if locale else None
    if by_locale in ("dmy", "mdy"):
        return DateOrderDecision(by_locale, "locale", evidence, locale)
    return DateOrderDecision("mdy", "default", evidence, locale)


def _numbers(num: np.ndarray) -> np.ndarray:
    """``auto`` for numbers: whole 1800-2100 -> that year's 1 January; whole yyyymmdd in
    that range -> that day; else epoch milliseconds when at least 1e11 in size; anything
    else (epoch seconds, Excel serial days, ...) is not parsed (``NaT``)."""
    out = np.full(len(num), np.datetime64("NaT"), dtype="datetime64[s]")
    whole = np.isfinite(num) & (np.floor(num) == num)
    year = whole & (num >= _MIN_YEAR) & (num <= _MAX_YEAR)
    if year.any():
        out[year] = num[year].astype(np.int64).astype(str).astype("datetime64[Y]")
    ymd = whole & (num >= _MIN_YEAR * 10_000 + 101) & (num <= _MAX_YEAR * 10_000 + 1231)
    if ymd.any():
        v = num[ymd].astype(np.int64)
        out[ymd] = _ymd(v // 10_000, v // 100 % 100, v % 100)
    rest = ~year & ~ymd & np.isfinite(num) & (np.abs(num) >= _MIN_EPOCH_MS)
    if rest.any():
        out[rest] = _to_days(pd.to_datetime(pd.Series(num[rest]), unit="ms", errors="coerce"))
    return out


def _auto_text(
    text: pd.Series, order: str, locale: str | None
) -> tuple[np.ndarray, np.ndarray, DateOrderDecision | None]:
    """``auto`` for text: numbers, ISO 8601, numeric dates in one order, then other forms."""
    n = len(text)
    days = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    conflict = np.zeros(n, dtype=bool)
    num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    numeric = ~np.isnan(num)
    if numeric.any():
        days[numeric] = _numbers(num[numeric])
    rest = ~numeric
    if rest.any():
        days[rest] = _parse_days(text[rest], format="ISO8601")
    left = np.flatnonzero(np.isnat(days) & ~numeric)
    decision = None
    if len(left):
        sub = text.iloc[left].reset_index(drop=True)
        f = _fields(sub)
        if len(f.rows):
            decision = decide_order(_evidence(f, sub), order, locale)
            read = {"dmy": f.dmy, "mdy": f.mdy, "ymd": f.ymd}[decision.order]
            if decision.order != "ymd":  # a 4-digit first field is a year whatever the order
                read = np.where(f.year_last, read, np.where(f.first_year, f.ymd, read))
            other = np.where(np.isnat(f.dmy), f.mdy, f.dmy)
            days[left[f.rows]] = read
            conflict[left[f.rows]] = np.isnat(read) & ~np.isnat(other)
        others = np.ones(len(sub), dtype=bool)
        others[f.rows] = False
        if others.any():
            days[left[others]] = _parse_days(sub[others], format="mixed")
    days[conflict] = np.datetime64("NaT")
    return days, conflict, decision


def read_dates(
    values: pd.Series, date_format: str = "auto", order: str = "auto", locale: str | None = None
) -> ParsedDates:
    """Parse a raw date column.

    Parameters
    ----------
    values
        Raw values: timestamps, ``datetime``/``date`` objects, text or numbers.
    date_format
        ``"auto"``: timestamps as they are; numbers (and digit strings) as a year when whole
        and 1800-2100, as ``yyyymmdd`` when whole and 18000101-21001231, else as epoch
        milliseconds when at least 1e11 in size (smaller numbers are not parsed: they may
        be epoch seconds or Excel serial days; say which with ``date_format``); text as ISO 8601, then numeric dates (``03/04/2015``, ``3-4-15``, with
        or without a time) in one day/month ``order``, then other common forms (month
        names). Or ``"epoch_ms"``, ``"epoch_s"``, ``"excel"`` (serial days), ``"year"`` or
        a ``strftime`` pattern such as ``"%d/%m/%Y"``.
    order, locale
        The profile's ``date_order`` and ``locale`` (see :func:`decide_order`); with
        ``"auto"`` the order is settled from ``values`` themselves. Callers reading a source
        in chunks settle it once with :func:`settle_chunks` and pass the result.
    """
    s = values.reset_index(drop=True).astype(object)
    n = len(s)
    missing = s.isna().to_numpy()
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    conflict = np.zeros(n, dtype=bool)
    decision = None
    is_dt = s.map(lambda v: isinstance(v, dt.date | pd.Timestamp | np.datetime64)).to_numpy(
        dtype=bool
    )
    if is_dt.any():
        out[is_dt] = _parse_days(s[is_dt])
    rest = ~is_dt & ~missing
    if rest.any():
        raw = s[rest].reset_index(drop=True)
        if date_format in ("epoch_ms", "epoch_s", "excel", "year"):
            num = pd.to_numeric(raw, errors="coerce")
            if date_format == "excel":
                conv = _EXCEL_EPOCH + pd.to_timedelta(num, unit="D")
            elif date_format == "year":
                whole = num.where((num == np.floor(num)) & num.between(1, 9999))
                conv = pd.to_datetime(
                    whole.astype("Int64").astype("string"), format="%Y", errors="coerce"
                )
            else:
                unit = "ms" if date_format == "epoch_ms" else "s"
                conv = pd.to_datetime(num, unit=unit, errors="coerce")
            days = _to_days(conv)
        elif date_format == "auto":
            text = raw.astype(str).str.strip()
            days, conf, decision = _auto_text(text, order, locale)
            conflict[rest] = conf
        else:
            days = _parse_days(raw.astype(str).str.strip(), format=date_format)
        out[rest] = days
    bad = ~missing & np.isnat(out) & ~conflict
    return ParsedDates(pd.Series(out, dtype="datetime64[s]"), missing, bad, conflict, decision)


def parse_dates(
    values: pd.Series, date_format: str = "auto", order: str = "auto", locale: str | None = None
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """:func:`read_dates` as ``(dates, missing, not parsed)``; conflicts count as not parsed."""
    p = read_dates(values, date_format, order, locale)
    return p.dates, p.missing, p.unparseable | p.conflict


def settle_chunks(
    chunks: Iterable[RawChunk], profile: Profile, field: str
) -> tuple[Iterable[RawChunk], Profile, DateOrderDecision | None]:
    """Settle the day/month order of a source's ``field`` once, over all of its chunks.

    With ``date_format = "auto"`` and ``date_order = "auto"`` the chunks are held in memory
    (a list) so every value of the source counts; the returned profile carries the decided
    order, so each chunk is then read the same way. Otherwise nothing is read ahead.
    """
    col = profile.columns.get(field)
    if profile.date_format != "auto" or profile.date_order != "auto" or col is None:
        return chunks, profile, None
    held = list(chunks)
    ev = OrderEvidence()
    for c in held:
        if col in c.frame:
            ev = ev + order_evidence(c.frame[col])
    if ev.total == 0:
        return held, profile, None
    decision = decide_order(ev, "auto", profile.locale)
    return held, replace(profile, date_order=decision.order), decision


def _parse_days(values: pd.Series, **kw: str) -> np.ndarray:
    """``pd.to_datetime(values, errors="coerce", **kw)`` as days, at each value's wall-clock date.

    pandas refuses a column that mixes UTC offsets (or offsets and plain dates), and leaves
    zone names it does not know (``EST``) unparsed: such values are read again without their
    zone, which keeps the date written in them. A pattern with ``%z``/``%Z`` needs the
    offsets, so it is applied once per distinct offset instead.
    """
    fmt = kw.get("format", "")
    keep_zone = "%z" in fmt or "%Z" in fmt
    try:
        out = _to_days(pd.to_datetime(values, errors="coerce", **kw))
    except (ValueError, TypeError):  # "Mixed timezones detected"
        if keep_zone:
            return _per_zone(values, **kw)
        out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[s]")
        todo = np.ones(len(values), dtype=bool)
    else:
        todo = np.isnat(out) & values.notna().to_numpy(dtype=bool)
        if keep_zone or not todo.any():
            return out
    text = values[todo].astype(str)
    naive = text.str.replace(_ZONE_STRIP, r"\1", regex=True)
    if (naive != text).any():
        # a value pandas still refuses is left NaT: the caller reports it as unparseable
        with contextlib.suppress(ValueError, TypeError):
            out[todo] = _to_days(pd.to_datetime(naive, errors="coerce", **kw))
    return out


def _per_zone(values: pd.Series, **kw: str) -> np.ndarray:
    """Parse with a ``%z`` pattern once per distinct offset (pandas refuses them mixed)."""
    zone = values.astype(str).str.extract(_ZONE_AFTER_TIME, expand=False).fillna("")
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[s]")
    for idx in zone.groupby(zone.to_numpy(), sort=False).indices.values():
        with contextlib.suppress(ValueError, TypeError):  # left NaT: unparseable
            out[idx] = _to_days(pd.to_datetime(values.iloc[idx], errors="coerce", **kw))
    return out


def _to_days(conv: pd.Series | pd.Index) -> np.ndarray:
    """Timestamps of any unit/timezone -> numpy ``datetime64[s]`` at midnight (NaT kept)."""
    ser = pd.Series(conv)
    if not pd.api.types.is_datetime64_any_dtype(ser.dtype):
        ser = pd.to_datetime(ser, errors="coerce")
    if getattr(ser.dt, "tz", None) is not None:
        ser = ser.dt.tz_localize(None)
    return np.array(ser.dt.floor("D").to_numpy(dtype="datetime64[s]"), copy=True)
