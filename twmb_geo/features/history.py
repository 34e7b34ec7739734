"""History features of a unit-year panel, computed so that year t sees only years <= t.

Every feature goes through :func:`history_features`, which works on a dense
units x years count matrix with cumulative sums and forward recursions along the year
axis: column t of each output is a function of columns 0..t of the input only. That is
the structural guarantee against leakage; ``tests/test_panel.py`` proves it by perturbing
the future.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HISTORY_FEATURES", "history_features", "rolling_sum"]

HISTORY_FEATURES = (
    "breaks",
    "breaks_last3",
    "breaks_last5",
    "breaks_last10",
    "breaks_to_date",
    "years_since_last",
    "decayed",
    "trend5",
)


def rolling_sum(counts: np.ndarray, window: int) -> np.ndarray:
    """Sum over the last ``window`` years up to and including each year (axis 1)."""
    cs = np.cumsum(counts, axis=1, dtype=float)
    out = cs.copy()
    if window < counts.shape[1]:
        out[:, window:] -= cs[:, :-window]
    return out


def history_features(
    counts: np.ndarray, *, prior_total: np.ndarray | None = None, tau: float = 3.0
) -> dict[str, np.ndarray]:
    """Break-history features for every unit (rows) and year (columns).

    Parameters
    ----------
    counts
        Breaks per unit and year, years ascending and contiguous.
    prior_total
        Breaks per unit before the first year (added to ``breaks_to_date``), if known.
    tau
        Decay time in years of ``decayed`` (weight exp(-(t - s) / tau) for a break in year s).

    Returns
    -------
    Arrays shaped like ``counts``: ``breaks`` (year t), ``breaks_last3/5/10`` (years
    t-2..t, t-4..t, t-9..t), ``breaks_to_date``, ``years_since_last`` (NaN before the first
    break), ``decayed`` and ``trend5`` (least-squares slope over t-4..t; NaN until five
    years of history exist).
    """
    c = np.asarray(counts, dtype=float)
    n, t = c.shape
    out: dict[str, np.ndarray] = {"breaks": c.copy()}
    for w in (3, 5, 10):
        out[f"breaks_last{w}"] = rolling_sum(c, w)
    to_date = np.cumsum(c, axis=1)
    if prior_total is not None:
        to_date += np.asarray(prior_total, dtype=float)[:, None]
    out["breaks_to_date"] = to_date
    year_idx = np.broadcast_to(np.arange(t, dtype=float), (n, t))
    last = np.where(c > 0, year_idx, -np.inf)
    last = np.maximum.accumulate(last, axis=1)
    out["years_since_last"] = np.where(np.isfinite(last), year_idx - last, np.nan)
    decay = np.exp(-1.0 / tau)
    dec = np.empty_like(c)
    acc = np.zeros(n)
    for j in range(t):
        acc = acc * decay + c[:, j]
        dec[:, j] = acc
    out["decayed"] = dec
    trend = np.full_like(c, np.nan)
    if t >= 5:
        xs = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
        for j in range(4, t):
            trend[:, j] = c[:, j - 4 : j + 1] @ xs / 10.0
    out["trend5"] = trend
    return out
