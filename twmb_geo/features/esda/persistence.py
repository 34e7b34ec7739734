"""Hot-spot persistence: one class per unit from its yearly LISA clusters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...core.vocab import CLUSTER_LABELS, PERSISTENCE_CLASSES
from ...errors import InputDataError
from ._common import (
    _check_columns,
    _check_keys,
    _examples,
)

__all__ = ["hotspot_persistence"]


def _unit_counts(df: pd.DataFrame, unit_col: str, year_col: str, recent_years: int) -> pd.DataFrame:
    """Per unit: assessed, hot, cold, significant and recent/earlier year counts; first/last hot."""
    cluster = df["cluster"]
    observed = cluster.ne("island")
    hot = cluster.eq("hot spot")
    recent = df[year_col] > df[year_col].max() - recent_years
    parts = pd.DataFrame(
        {
            "observed": observed,
            "hot": hot,
            "cold": cluster.eq("cold spot"),
            "signif": cluster.isin(["hot spot", "cold spot", "high outlier", "low outlier"]),
            "hot_recent": hot & recent,
            "hot_before": hot & ~recent,
            "obs_before": observed & ~recent,
            "hot_year": df[year_col].where(hot),
        }
    )
    g = parts.groupby(df[unit_col], sort=True)
    agg = g[["observed", "hot", "cold", "signif", "hot_recent", "hot_before", "obs_before"]].sum()
    agg["first_hot"] = g["hot_year"].min()
    agg["last_hot"] = g["hot_year"].max()
    return agg


def _longest_hot_run(df: pd.DataFrame, hot: pd.Series, unit_col: str, year_col: str) -> pd.Series:
    """Per unit, the longest run of consecutive hot years along the table's own years."""
    position = df[year_col].map({y: i for i, y in enumerate(np.sort(df[year_col].unique()))})
    units = df[unit_col]
    hot_rows = pd.DataFrame({"u": units[hot], "pos": position[hot]})
    new_run = hot_rows["u"].ne(hot_rows["u"].shift()) | hot_rows["pos"].diff().ne(1)
    run_len = hot_rows.groupby([hot_rows["u"], new_run.cumsum()], sort=False).size()
    return run_len.groupby(level=0, sort=False).max()


def _classify(
    agg: pd.DataFrame,
    years_observed: pd.Series,
    years_hot: pd.Series,
    years_cold: pd.Series,
    share_hot: pd.Series,
    share_cold: pd.Series,
    min_share: float,
) -> np.ndarray:
    """The persistence class of each unit: the first rule that matches (module docstring)."""
    years_hot_recent = agg["hot_recent"].astype(np.int64)
    conditions = [
        years_observed.eq(0),
        years_hot.ge(2) & share_hot.ge(min_share),
        years_hot_recent.ge(2) & agg["hot_before"].eq(0) & agg["obs_before"].gt(0),
        years_hot.ge(2),
        years_hot.eq(1),
        years_cold.ge(2) & share_cold.ge(min_share),
        agg["signif"].gt(0),
    ]
    return np.select(
        [c.to_numpy(dtype=bool) for c in conditions],
        list(PERSISTENCE_CLASSES[:-1]),
        default=PERSISTENCE_CLASSES[-1],
    )


def hotspot_persistence(
    lisa: pd.DataFrame,
    *,
    min_share: float = 0.5,
    recent_years: int = 5,
    unit_col: str = "unit_id",
    year_col: str = "year",
) -> pd.DataFrame:
    """Summarise yearly LISA clusters into one hot-spot persistence class per unit.

    Parameters
    ----------
    lisa : pandas.DataFrame
        Output of :func:`local_moran_by_year` (at least ``unit_col``, ``year_col`` and
        ``cluster``), one row per (unit, year).
    min_share : float, default 0.5
        Share of assessed years, in (0, 1], that makes a hot (cold) spot persistent.
    recent_years : int, default 5
        Length of the recent window: the last ``recent_years`` calendar years of the table.
    unit_col, year_col : str
        Names of the unit and year columns.

    Returns
    -------
    pandas.DataFrame
        One row per unit, sorted by unit, with columns ``unit_col``, ``years_observed``
        (non-island years), ``years_hot``, ``years_cold``, ``share_hot``, ``share_cold``
        (NaN when never assessed), ``first_hot``, ``last_hot`` (nullable years),
        ``longest_hot_run``, ``years_hot_recent``, ``hot_recent`` (hot in at least one
        recent year) and ``class`` (one of :data:`PERSISTENCE_CLASSES`; the rules and
        their precedence are in the module docstring).

    Raises
    ------
    twmb_geo.errors.InputDataError
        Missing columns, duplicated (unit, year) rows, unknown cluster labels, or bad
        ``min_share``/``recent_years``.
    """
    if not (isinstance(min_share, float | int) and 0 < min_share <= 1):
        raise InputDataError(f"min_share must be in (0, 1], got {min_share!r}")
    if isinstance(recent_years, bool) or not isinstance(recent_years, int) or recent_years < 1:
        raise InputDataError(f"recent_years must be a positive integer, got {recent_years!r}")
    _check_columns(lisa, [unit_col, year_col, "cluster"], "lisa")
    _check_keys(lisa, unit_col, year_col, "lisa")
    unknown = pd.Index(lisa["cluster"].unique()).difference(pd.Index(CLUSTER_LABELS))
    if len(unknown):
        raise InputDataError(
            f"lisa column 'cluster' has unknown label(s) {_examples(unknown)}; expected "
            f"{', '.join(CLUSTER_LABELS)}"
        )

    df = lisa[[unit_col, year_col, "cluster"]].sort_values([unit_col, year_col], kind="stable")
    agg = _unit_counts(df, unit_col, year_col, recent_years)
    hot = df["cluster"].eq("hot spot")
    years_observed = agg["observed"].astype(np.int64)
    years_hot = agg["hot"].astype(np.int64)
    years_cold = agg["cold"].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share_hot = (years_hot / years_observed.where(years_observed > 0)).astype(float)
        share_cold = (years_cold / years_observed.where(years_observed > 0)).astype(float)
    years_hot_recent = agg["hot_recent"].astype(np.int64)

    klass = _classify(agg, years_observed, years_hot, years_cold, share_hot, share_cold, min_share)
    out = pd.DataFrame(
        {
            "years_observed": years_observed,
            "years_hot": years_hot,
            "years_cold": years_cold,
            "share_hot": share_hot,
            "share_cold": share_cold,
            "first_hot": agg["first_hot"].astype("Int64"),
            "last_hot": agg["last_hot"].astype("Int64"),
            "longest_hot_run": _longest_hot_run(df, hot, unit_col, year_col)
            .reindex(agg.index, fill_value=0)
            .astype(np.int64),
            "years_hot_recent": years_hot_recent,
            "hot_recent": years_hot_recent.gt(0),
            "class": klass.astype(str),
        },
        index=agg.index,
    )
    out.index.name = unit_col
    return out.reset_index()
