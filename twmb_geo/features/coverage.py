"""Coverage of the last year of the break record: is it a partial year?

A file that ends on 9 January makes its last year look like a year with almost no breaks:
as a validation target the model "captures" nothing there, and scores built on it rest on
nine days of data. The rule (thresholds are ``[features]`` settings):

* covered fraction = (last break date - 1 January + 1) / days in that year;
* expected breaks = the median count of the up to 5 years before it (at least 3 needed);
* the last year is **partial** when covered < ``partial_year_min_coverage`` (0.9) **and**
  its breaks < ``partial_year_break_ratio`` (0.5) x the expected count.

Both conditions are needed: a short record alone may be a quiet autumn in a small utility,
a low count alone may be a mild year.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["YearCoverage", "last_year_coverage"]

#: previous years whose median is the expected count (most recent first), and the minimum
_HISTORY_YEARS, _MIN_HISTORY = 5, 3


@dataclass(frozen=True)
class YearCoverage:
    """How complete the last year of the record is, and whether it counts as partial."""

    year: int
    last_date: pd.Timestamp
    days_covered: int
    days_in_year: int
    breaks: int
    expected: float | None
    partial: bool

    @property
    def covered(self) -> float:
        """Fraction of the year up to the last break date."""
        return self.days_covered / self.days_in_year

    def note(self, kept: bool) -> str:
        """One line for warnings, the manifest and the model card."""
        exp = "" if self.expected is None else f", expected ~{self.expected:.0f}"
        head = (
            f"{self.year} has {self.days_covered} day(s) of data "
            f"({self.breaks} breaks{exp}; last break {self.last_date:%Y-%m-%d})"
        )
        if kept:
            return (
                head
                + ": partial, kept as a target and score basis ([features] partial_year = 'keep')"
            )
        return head + ": treated as partial, not used as a target or score basis"


def last_year_coverage(
    dates: pd.Series, *, min_coverage: float = 0.9, break_ratio: float = 0.5
) -> YearCoverage | None:
    """Coverage of the last year of ``dates`` (break dates); ``None`` without dates."""
    d = pd.to_datetime(dates).dropna()
    if d.empty:
        return None
    last = pd.Timestamp(d.max()).normalize()
    year = int(last.year)
    start = pd.Timestamp(year=year, month=1, day=1)
    days_in_year = 366 if start.is_leap_year else 365
    days = int((last - start).days) + 1
    counts = d.dt.year.value_counts()
    n = int(counts.get(year, 0))
    first_year = int(d.dt.year.min())
    prev = [
        int(counts.get(y, 0))
        for y in range(year - 1, max(first_year, year - _HISTORY_YEARS) - 1, -1)
    ]
    expected = float(pd.Series(prev).median()) if len(prev) >= _MIN_HISTORY else None
    partial = (
        expected is not None and days / days_in_year < min_coverage and n < break_ratio * expected
    )
    return YearCoverage(year, last, days, days_in_year, n, expected, bool(partial))
