"""Winter-severity indices of curated daily weather: per month and per winter season."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .eccc import _MAX_LISTED

#: Sums are rounded to this many decimals: exact for ECCC's 0.1 resolution, and free of
#: float summation noise, so they equal a plain decimal sum.
SUM_DECIMALS = 3
WINTER_MONTHS = (11, 12, 1, 2, 3)
MONTHLY_COLUMNS: tuple[str, ...] = (
    "station_id", "year", "month", "days_in_month", "days_observed", "days_with_temp",
    "temp_coverage", "coverage_ok", "freezing_degree_days", "freeze_thaw_cycles",
    "days_below_minus10", "min_temp_c", "mean_temp_c", "total_precip_mm", "total_rain_mm",
    "total_snow_cm", "precip_coverage",
)  # fmt: skip
WINTER_COLUMNS: tuple[str, ...] = (
    "station_id", "winter", "days_in_season", "days_with_temp", "temp_coverage", "coverage_ok",
    "freezing_degree_days", "freeze_thaw_cycles", "days_below_minus10", "min_temp_c",
    "total_snow_cm", "total_precip_mm",
)  # fmt: skip


def _daily_terms(daily: pd.DataFrame) -> pd.DataFrame:
    """Per-day terms that the monthly and winter indices sum up."""
    tmax, tmin = daily["max_temp_c"], daily["min_temp_c"]
    tmean = daily["mean_temp_c"].fillna((tmax + tmin) / 2)
    has_temp = tmax.notna() & tmin.notna()
    return pd.DataFrame(
        {
            "station_id": daily["station_id"],
            "observed": 1,
            "has_temp": has_temp.astype(np.int64),
            "has_tmean": tmean.notna().astype(np.int64),
            "has_min": tmin.notna().astype(np.int64),
            "fdd": (-tmean).clip(lower=0.0),
            "ft": (has_temp & (tmax > 0) & (tmin < 0)).astype(np.int64),
            "below": (tmin < -10).astype(np.int64),
            "tmin": tmin,
            "tmean": tmean,
            "precip": daily["total_precip_mm"],
            "rain": daily["total_rain_mm"],
            "snow": daily["total_snow_cm"],
            "has_precip": daily["total_precip_mm"].notna().astype(np.int64),
        },
        index=daily.index,
    )


_COUNT_TERMS = {
    "observed": "days_observed",
    "has_temp": "days_with_temp",
    "has_tmean": "n_tmean",
    "has_min": "n_min",
    "ft": "freeze_thaw_cycles",
    "below": "days_below_minus10",
    "has_precip": "days_with_precip",
}
_SUM_TERMS = {
    "fdd": "freezing_degree_days",
    "precip": "total_precip_mm",
    "rain": "total_rain_mm",
    "snow": "total_snow_cm",
}
_AGG_COLUMNS = (*_COUNT_TERMS.values(), *_SUM_TERMS.values(), "min_temp_c", "mean_temp_c")


def _aggregate(terms: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sum/min/mean the daily terms per key; sums of no observation are NaN."""
    g = terms.groupby(keys, sort=True)
    agg = pd.concat(
        [
            g[list(_COUNT_TERMS)].sum().rename(columns=_COUNT_TERMS),
            g[list(_SUM_TERMS)].sum(min_count=1).rename(columns=_SUM_TERMS),
            g["tmin"].min().rename("min_temp_c"),
            g["tmean"].mean().rename("mean_temp_c"),
        ],
        axis=1,
    )
    return agg.reset_index()


def _finish_indices(frame: pd.DataFrame, days_col: str, threshold: float) -> pd.DataFrame:
    """Fill empty periods, apply the NaN rules and coverage on an aggregated grid."""
    for col in ("days_observed", "days_with_temp", "n_tmean", "n_min", "days_with_precip"):
        frame[col] = frame[col].fillna(0).astype(np.int32)
    days = frame[days_col].to_numpy(dtype=np.float64)
    frame["temp_coverage"] = frame["days_with_temp"] / days
    frame["coverage_ok"] = (frame["temp_coverage"] >= threshold).astype(bool)
    frame["precip_coverage"] = frame["days_with_precip"] / days
    no_temp = frame["days_with_temp"] == 0
    frame["freezing_degree_days"] = frame["freezing_degree_days"].where(frame["n_tmean"] > 0)
    frame["freeze_thaw_cycles"] = frame["freeze_thaw_cycles"].astype(np.float64).where(~no_temp)
    frame["days_below_minus10"] = (
        frame["days_below_minus10"].astype(np.float64).where(frame["n_min"] > 0)
    )
    for col in ("freezing_degree_days", "total_precip_mm", "total_rain_mm", "total_snow_cm"):
        frame[col] = frame[col].astype(np.float64).round(SUM_DECIMALS)
    for col in ("min_temp_c", "mean_temp_c"):
        frame[col] = frame[col].astype(np.float64)
    return frame


def _month_grid(daily: pd.DataFrame) -> pd.DataFrame:
    """Every (station, year, month) between each station's first and last accepted day."""
    mi = daily["year"].astype(np.int64) * 12 + daily["month"].astype(np.int64) - 1
    span = mi.groupby(daily["station_id"]).agg(["min", "max"])
    counts = (span["max"] - span["min"] + 1).to_numpy()
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    month_index = np.repeat(span["min"].to_numpy(), counts) + offsets
    grid = pd.DataFrame(
        {
            "station_id": pd.Series(np.repeat(span.index.to_numpy(), counts), dtype="str"),
            "year": (month_index // 12).astype(np.int32),
            "month": (month_index % 12 + 1).astype(np.int32),
        }
    )
    firsts = pd.to_datetime(pd.DataFrame({"year": grid["year"], "month": grid["month"], "day": 1}))
    grid["days_in_month"] = firsts.dt.days_in_month.astype(np.int32)
    return grid


def _winter_grid(daily: pd.DataFrame) -> pd.DataFrame:
    """Every winter season overlapping each station's span, with its days inside the span."""
    span = daily.groupby("station_id")["date"].agg(["min", "max"])
    lo, hi = span["min"], span["max"]
    w_min = np.where(lo.dt.month <= 3, lo.dt.year, lo.dt.year + 1)
    w_max = np.where(hi.dt.month >= 11, hi.dt.year + 1, hi.dt.year)
    counts = np.clip(w_max - w_min + 1, 0, None)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    winter = np.repeat(w_min, counts) + offsets
    grid = pd.DataFrame(
        {
            "station_id": pd.Series(np.repeat(span.index.to_numpy(), counts), dtype="str"),
            "winter": winter.astype(np.int32),
        }
    )
    season_start = pd.to_datetime(pd.DataFrame({"year": winter - 1, "month": 11, "day": 1}))
    season_end = pd.to_datetime(pd.DataFrame({"year": winter, "month": 3, "day": 31}))
    start = np.maximum(season_start.to_numpy(), np.repeat(lo.to_numpy(), counts))
    end = np.minimum(season_end.to_numpy(), np.repeat(hi.to_numpy(), counts))
    grid["days_in_season"] = ((end - start) // np.timedelta64(1, "D") + 1).astype(np.int32)
    grid["full_days"] = ((season_end - season_start).dt.days + 1).to_numpy()
    return grid


def _indices(
    daily: pd.DataFrame, grid: pd.DataFrame, keys: list[str], days_col: str, threshold: float
) -> pd.DataFrame:
    """Aggregate daily rows onto a period grid (periods without rows get counts of 0)."""
    if daily.empty:
        out = grid.assign(**{col: np.nan for col in _AGG_COLUMNS})
    else:
        terms = _daily_terms(daily)
        for key in keys[1:]:
            terms[key] = daily[key].to_numpy()
        agg = _aggregate(terms, keys)
        agg["station_id"] = agg["station_id"].astype("str")
        out = grid.merge(agg, on=keys, how="left")
    return _finish_indices(out, days_col, threshold)


def _monthly(daily: pd.DataFrame, threshold: float) -> pd.DataFrame:
    if daily.empty:
        return _empty_monthly()
    keys = ["station_id", "year", "month"]
    out = _indices(daily, _month_grid(daily), keys, "days_in_month", threshold)
    return out[list(MONTHLY_COLUMNS)].reset_index(drop=True)


def _winters(daily: pd.DataFrame, threshold: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Winter-season indices and the (station, winter) pairs only partly inside the span."""
    grid = _winter_grid(daily) if not daily.empty else pd.DataFrame()
    if grid.empty:
        return _empty_winters(), pd.DataFrame({"station_id": [], "winter": []})
    sub = daily.loc[daily["month"].isin(WINTER_MONTHS).to_numpy()]
    sub = sub.assign(
        winter=np.where(sub["month"] >= 11, sub["year"] + 1, sub["year"]).astype(np.int32)
    )
    out = _indices(sub, grid, ["station_id", "winter"], "days_in_season", threshold)
    partial = out.loc[out["days_in_season"] < out["full_days"], ["station_id", "winter"]]
    return out[list(WINTER_COLUMNS)].reset_index(drop=True), partial


def _empty_monthly() -> pd.DataFrame:
    return pd.DataFrame(
        {
            col: pd.Series(
                dtype="str" if col == "station_id"
                else bool if col == "coverage_ok"
                else np.int32 if col in ("year", "month", "days_in_month", "days_observed",
                                         "days_with_temp")
                else np.float64
            )
            for col in MONTHLY_COLUMNS
        }
    )  # fmt: skip


def _empty_winters() -> pd.DataFrame:
    return pd.DataFrame(
        {
            col: pd.Series(
                dtype="str" if col == "station_id"
                else bool if col == "coverage_ok"
                else np.int32 if col in ("winter", "days_in_season", "days_with_temp")
                else np.float64
            )
            for col in WINTER_COLUMNS
        }
    )  # fmt: skip


def _coverage_warnings(monthly: pd.DataFrame, threshold: float) -> list[str]:
    low = monthly.loc[~monthly["coverage_ok"], ["station_id", "year", "month"]]
    out: list[str] = []
    if low.empty:
        return out
    mi = low["year"].astype(np.int64) * 12 + low["month"].astype(np.int64) - 1
    new_run = (mi.diff() != 1) | (low["station_id"] != low["station_id"].shift())
    run_id = new_run.cumsum()
    runs = (
        pd.DataFrame({"s": low["station_id"], "mi": mi, "run": run_id})
        .groupby("run")
        .agg(s=("s", "first"), a=("mi", "min"), b=("mi", "max"))
    )

    def label(m: int) -> str:
        return f"{m // 12:04d}-{m % 12 + 1:02d}"

    for station, grp in runs.groupby("s", sort=True):
        texts = [
            label(a) if a == b else f"{label(a)}..{label(b)}"
            for a, b in zip(grp["a"].tolist(), grp["b"].tolist(), strict=True)
        ]
        shown = ", ".join(texts[:_MAX_LISTED])
        if len(texts) > _MAX_LISTED:
            shown += f" and {len(texts) - _MAX_LISTED} more periods"
        n = int((low["station_id"] == station).sum())
        out.append(
            f"station {station}: temperature coverage < {threshold * 100:g} % in {shown} "
            f"({n} month{'s' if n != 1 else ''})"
        )
    return out
