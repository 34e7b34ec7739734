"""Exploratory spatial data analysis of water-main break hot spots (Moran's I, LISA).

Three steps, validated and deterministic, giving :mod:`esda`'s statistics bit for bit:

* :func:`global_moran_by_year` - global Moran's I of each value column, year by year.
* :func:`local_moran_by_year` - local Moran's I (LISA) of one value column, year by year,
  with Benjamini-Hochberg false-discovery-rate control across the units of each year and
  a cluster label per unit.
* :func:`hotspot_persistence` - a per-unit summary of the yearly LISA labels into one
  persistence class.

Conventions
-----------
Panel
    A long table with one row per (unit, year) and non-negative numeric value columns
    (break counts, break rates). A unit of the graph that has no row in a year is treated
    as **zero for every value column** in that year: the panel is a count panel, and an
    absent row means no recorded breaks (so the count and the rate are both 0). Every
    graph unit must appear in the panel in at least one year and every panel unit must be
    in the graph; NaN/inf and negative values are rejected rather than guessed at.
Graph
    A plain :class:`libpysal.graph.Graph` whose ``unique_ids`` are the panel's units. The
    weights may be binary or already row-standardised: both functions ask esda to
    row-standardise (``transformation="r"``), which is idempotent, so either gives the
    same result. Self-weights are not expected.
Islands
    Units without neighbours (``graph.isolates``) have no spatial lag. They are removed
    before any statistic is computed (their values do not enter the mean or variance),
    counted in ``n_islands_excluded`` by the global statistic, and labelled ``"island"``
    with NaN statistics by the local one.
Inference
    ``p_sim`` is a permutation pseudo p-value, ``(M + 1) / (R + 1)`` for ``R``
    permutations. ``alternative`` chooses what counts as "as extreme" (M):
    ``"two-sided"`` (default; twice the smaller one-sided pseudo p-value, capped at 1,
    the choice esda recommends from its next major release), ``"greater"`` (positive
    autocorrelation / clusters only), ``"lesser"`` (negative autocorrelation / outliers
    only) or ``"directed"`` (esda 2.9's and GeoDa's historical default: the smaller
    one-sided tail, without doubling; this reproduces ``esda.Moran(...).p_sim`` and
    ``esda.Moran_Local(...).p_sim`` exactly). The normal-approximation ``p_norm`` of the
    global statistic follows the same alternative (``"directed"`` = one tail, in the
    direction of the observed z). Power: with ``R`` permutations no ``p_sim`` is below
    ``1/(R+1)`` (``2/(R+1)`` two-sided), and BH across ``m`` units rejects the ``k``
    smallest only when they are below ``alpha * k / m``; a plateau of equally high units
    also caps each unit's conditional-permutation p-value. On ~100 units, two-sided LISA
    with FDR therefore needs about 9999 permutations to flag a 5 x 5 block reliably.
Determinism
    The permutation draws are esda's, bit for bit: the global permutations come from
    NumPy's legacy generator seeded with ``seed``, the local (conditional) ones from
    ``esda.crand``'s draws with ``seed``. Both are made here with a private generator, so
    the same data and seed give identical frames and the caller's random state is left
    untouched (``seed=None`` continues from a copy of the global generator's state and
    gives non-reproducible draws). Each year (and each variable) uses the same seed, so
    the result for a year does not depend on which other years are in the panel.
Speed
    esda computes the local statistics (``permutations=0``); the global ones follow esda's
    formulas here, with the graph's weight sums computed once (esda sums the graph again
    for every test). esda permutes one copy (global) or one unit (local) at a time in
    Python when numba is absent, and redraws the same positions for every year. Here each
    block of draws is made once for every year and variable and evaluated with
    whole-array NumPy and one sparse product per block, with identical output (figures in
    ``docs/features.md``). Given a Dask ``client``, LISA's units and the global
    statistic's permutations are split into tasks on its cluster; the frames do not depend
    on the split.
Degenerate years
    A variable that is constant over the non-island units in a year has no defined
    Moran's I: the global row gets NaN statistics and ``note="constant"``; the local rows
    get NaN statistics and the cluster ``"not significant"``.

LISA cluster labels
-------------------
Quadrants follow esda (``geoda_quads=False``): 1 = HH (high value, high lag),
2 = LH, 3 = LL, 4 = HL, where "high" means above the year's mean of the non-island units.
A unit is significant when its Benjamini-Hochberg q-value (``fdr=True``) or its ``p_sim``
(``fdr=False``) is below ``alpha``. Significant units are labelled ``"hot spot"`` (HH),
``"cold spot"`` (LL), ``"high outlier"`` (HL) or ``"low outlier"`` (LH); all others are
``"not significant"``; islands are ``"island"``.

Persistence classes
-------------------
:func:`hotspot_persistence` counts, per unit, the years in which it was assessed
(``years_observed``: rows whose cluster is not ``"island"``), hot (``"hot spot"``) and cold
(``"cold spot"``). The *recent window* is the last ``recent_years`` calendar years of the
whole table (``year > max_year - recent_years``). Each unit gets exactly one class: the
first rule below that it satisfies, in this order of precedence:

1. ``"not assessed"`` - no assessed year (an island in every year).
2. ``"persistent hot spot"`` - hot in at least 2 years and ``share_hot >= min_share``.
3. ``"emerging hot spot"`` - hot in at least 2 years of the recent window, never hot
   before it, and assessed in at least one year before it (so "new" means something).
4. ``"intermittent hot spot"`` - hot in at least 2 years (and, by precedence, neither
   persistent nor emerging, i.e. ``share_hot < min_share``).
5. ``"transient hot spot"`` - hot in exactly 1 year (even when that was its only assessed
   year: persistence needs repetition).
6. ``"persistent cold spot"`` - never hot, cold in at least 2 years and
   ``share_cold >= min_share``.
7. ``"other significant"`` - never hot and not a persistent cold spot, but significant in
   at least one year (a cold spot below ``min_share``, or a spatial outlier).
8. ``"never significant"`` - assessed, but never significant.

Hot-spot classes take precedence over cold-spot ones: a unit that was a hot spot in any
year is reported as some kind of hot spot. ``longest_hot_run`` counts consecutive hot
years along the table's own sequence of years (a year absent from the whole table does not
break a run; a year in which the unit was not hot, or was an island, does).
"""

from ...core.vocab import CLUSTER_LABELS, PERSISTENCE_CLASSES, QUADRANT_LABELS
from ._common import (
    GLOBAL_COLUMNS,
    LOCAL_COLUMNS,
    PERSISTENCE_COLUMNS,
    Alternative,
)
from .lisa import benjamini_hochberg, local_moran_by_year
from .moran import global_moran_by_year
from .persistence import hotspot_persistence

__all__ = [
    "CLUSTER_LABELS",
    "GLOBAL_COLUMNS",
    "LOCAL_COLUMNS",
    "PERSISTENCE_CLASSES",
    "PERSISTENCE_COLUMNS",
    "QUADRANT_LABELS",
    "Alternative",
    "benjamini_hochberg",
    "global_moran_by_year",
    "hotspot_persistence",
    "local_moran_by_year",
]
