"""Stratified samples of units: what the model stage trains and validates on at scale.

A city with more units of a type than ``[model] max_train_units`` (a national dataset, a
large utility's pipes) trains and cross-validates on a sample of its units, read from the
store without the rest of the panel ever entering memory; every unit is still scored.

The sample is **systematic over units ordered by stratum**, then by a seeded random key
(implicit stratification): every unit has the same inclusion probability
``f = max_units / units`` (so metrics such as capture at 5 % of length estimate the city's
without weights), and every stratum (spatial block at ``[model] block_resolution`` × whether
the unit ever broke in the study years) gets its proportional share, give or take one unit.
A unit is kept or left with its whole history, so history features and forward validation
see whole units.
"""

from __future__ import annotations

import numpy as np

from ..core.h3cells import points_to_cells

__all__ = ["sample_units", "unit_strata"]


def unit_strata(lon: np.ndarray, lat: np.ndarray, broke: np.ndarray, resolution: int) -> np.ndarray:
    """The stratum of each unit, as an ``int64`` code ordered by H3 block at ``resolution``
    (units without a location first), then by whether the unit ever broke."""
    cells = points_to_cells(
        np.asarray(lon, dtype=float), np.asarray(lat, dtype=float), int(resolution)
    )
    block = np.unique(cells, return_inverse=True)[1].astype(np.int64)
    return 2 * block + np.asarray(broke, dtype=bool)


def sample_units(strata: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Which units a systematic sample of ``n`` over ``strata`` keeps (boolean per unit).

    Parameters
    ----------
    strata : numpy.ndarray
        One sortable code per unit (:func:`unit_strata`).
    n : int
        Units to keep; all of them when there are not more.
    seed : int
        Seeds the order within strata and the random start.

    Returns
    -------
    numpy.ndarray of bool
        Exactly ``min(n, units)`` true values; each unit kept with probability ``n / units``
        and each stratum's count within one of its share.
    """
    total = len(strata)
    if n >= total:
        return np.ones(total, dtype=bool)
    if n < 1:
        raise ValueError(f"a sample needs at least one unit, got n={n!r}")
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(total), np.asarray(strata)))
    step = total / n
    picks = np.floor(rng.random() * step + step * np.arange(n)).astype(np.int64)
    keep = np.zeros(total, dtype=bool)
    keep[order[np.minimum(picks, total - 1)]] = True
    return keep
