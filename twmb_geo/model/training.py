"""Model data, champion selection, validation under every scheme, importance and the final fit.

One unit type at a time: :func:`model_data` joins the panel with the unit attributes
(material, diameter, lengths), adds the empirical-Bayes and smoothed rates, and decides the
feature columns, the length weights and the H3 cell used for spatial blocks;
:func:`cross_validate` chooses the champion by nested forward validation
(:mod:`twmb_geo.model.selection`) and runs it beside every baseline through the other
schemes; :func:`permutation_importance` measures each feature on held-out spatial folds;
:func:`fit_final` fits the champion on every labelled row. Nothing here touches the store
or the disk (see :mod:`twmb_geo.model.stage`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ..config import ModelConfig
from ..core.cluster import map_largest_first, shared_data
from ..core.compute import ThreadPlan, limit_threads, thread_plan
from ..core.units import unit_type as unit_type_spec
from ..core.vocab import MATERIAL_GROUPS
from ..errors import ConfigError, InputDataError
from ..spatial.hexgrid import cell_str, points_to_cells
from .baselines import (
    AgeBaseline,
    EmpiricalBayesRateBaseline,
    MaterialDecadeBaseline,
    PastBreaksBaseline,
    cross_section_eb,
)
from .candidates import DERIVED_FEATURES, UnitFeatures, build_candidates
from .champion import ChampionModel, fit_member, member_score
from .estimators import DEFAULT_FEATURES
from .metrics import (
    calibration_table,
    capture_at,
    capture_curve,
    roc_auc,
)
from .reporting import disagreement, leakage
from .selection import (
    CHAMPION,
    Candidate,
    Selection,
    fold_years,
    forward_folds,
    make_champion,
    metric_rows,
    select,
)
from .splitters import RandomKFold, SpatialBlockKFold, SpatioTemporalSplit

__all__ = [
    "FRACS",
    "SCHEME_TEXT",
    "CVResult",
    "ModelData",
    "cross_validate",
    "curves",
    "fit_final",
    "model_data",
    "model_estimators",
    "permutation_importance",
]

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from distributed import Client

#: shares of the network at which capture and precision are reported
FRACS = (0.01, 0.05, 0.10)
SCHEME_TEXT = {
    "forward": "train on years < T, test on year T (targets T + 1), T walking forward; "
    "'champion' is the nested selection procedure (chosen on the years before T)",
    "spatial": "K-fold over H3 parent blocks, training rows within the ring buffer dropped; "
    "scored on the forward test years only",
    "spatiotemporal": "test block and test year held out at once (forward x spatial folds)",
    "random": "random K-fold over unit-years: ignores space and time, overstates skill; "
    "scored on the forward test years only",
}
_MATERIAL_EXTRA = ("other",)


@dataclass
class ModelData:
    """Labelled and latest-year rows of one unit type, ready for the models.

    Attributes
    ----------
    unit_type : str
    rows : pandas.DataFrame
        Panel rows (pipes: in service only) joined with unit attributes, sorted by
        ``unit_id, year``; ``target_count`` is null in the latest year.
    features : list of str
        Model feature columns (defaults present and not all null).
    weight_col : str or None
        ``length_km`` for pipes and streets (capture by share of length), else None.
    baselines : dict of name -> factory
    notes : list of str
        Why a baseline or feature was left out.
    sample : dict
        The sample of units the rows are, when the stage sampled (empty: every unit).
    """

    unit_type: str
    rows: pd.DataFrame
    features: list[str]
    weight_col: str | None
    baselines: dict[str, Callable[[], BaseEstimator]]
    notes: list[str] = field(default_factory=list)
    #: the stratified sample of units the rows are (:mod:`~twmb_geo.model.sampling`):
    #: ``units``, ``of``, ``fraction``, ``seed``, ``strata``; empty: every unit
    sample: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def labelled(self) -> pd.DataFrame:
        """Rows whose next-year target is known (made once: validation, the final fit, the
        version and the card all read it; ``rows`` is not changed after construction)."""
        return self.rows[self.rows["target_count"].notna()].reset_index(drop=True)

    @property
    def latest_year(self) -> int:
        """Latest panel year (the year scored)."""
        return int(self.rows["year"].max())

    @property
    def latest(self) -> pd.DataFrame:
        """Rows of the latest panel year (what batch scoring ranks)."""
        return self.rows[self.rows["year"] == self.latest_year].reset_index(drop=True)

    def weight(self, df: pd.DataFrame) -> np.ndarray | None:
        """Length weights of ``df`` rows, or None for count-weighted units."""
        return None if self.weight_col is None else df[self.weight_col].to_numpy(dtype=float)

    @property
    def density_col(self) -> str | None:
        """The length column learned models are ranked per km of (length-weighted units)."""
        return self.weight_col


def _material_onehots(material_class: pd.Series) -> pd.DataFrame:
    """``mat_<group>`` one-hots of canonical material classes (:data:`MATERIAL_GROUPS`)."""
    codes = material_class.fillna("").astype(str).str.strip()
    out = {}
    known: set[str] = set()
    for group, members in MATERIAL_GROUPS.items():
        out[f"mat_{group}"] = codes.isin(members).astype(float)
        known.update(members)
    out["mat_other"] = (~codes.isin(known)).astype(float)
    return pd.DataFrame(out, index=material_class.index)


def _cell_columns(units: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {"block_cell": units["unit_id"].astype(str).to_numpy()}
    for c in ("pipe_km", "street_km", "mean_install_year"):
        out[c] = units[c].to_numpy(dtype=float)
    pk = units["pipe_km"].to_numpy(dtype=float)
    for g in MATERIAL_GROUPS:
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"share_{g}"] = np.where(pk > 0, units[f"pipe_km_{g}"].to_numpy(float) / pk, np.nan)
    out["length_km"] = pk
    return out


def _pipe_columns(units: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {
        "length_km": units["length_m"].to_numpy(dtype=float) / 1000.0,
        "material": units["material"].astype("string").to_numpy(),
        "install_year": units["install_year"].to_numpy(dtype=float),
        "diameter_mm": units["diameter_mm"].to_numpy(dtype=float),
        "lined": units["lined"].astype("float").to_numpy(),
    }
    onehots = _material_onehots(units["material_class"])
    out.update({c: onehots[c].to_numpy() for c in onehots.columns})
    return out


def _street_columns(units: pd.DataFrame) -> dict[str, Any]:
    return {
        "length_km": units["length_m"].to_numpy(dtype=float) / 1000.0,
        "pipe_km": units["pipe_km"].to_numpy(dtype=float),
    }


def _area_columns(units: pd.DataFrame) -> dict[str, Any]:
    return {
        "length_km": units["pipe_km"].to_numpy(dtype=float),
        "street_km": units["street_km"].to_numpy(dtype=float),
    }


def _length_columns(units: pd.DataFrame) -> dict[str, Any]:
    length = units["length_m"].to_numpy(dtype=float) / 1000.0 if "length_m" in units else np.nan
    return {"length_km": np.broadcast_to(np.asarray(length, dtype=float), (len(units),)).copy()}


@dataclass(frozen=True)
class UnitModelSpec:
    """What the model stage adds for one unit type: per-unit columns and extra features.

    ``columns`` returns the per-unit columns joined to the panel (``length_km`` at least;
    ``block_cell`` when the unit is its own spatial block, otherwise the H3 cell of its
    centroid is used); ``features`` are extra feature candidates among them;
    ``in_service_only`` drops unit-years without exposure (a pipe before it was laid or
    after it was removed); ``card_note`` is a limitation the model card states for it.
    """

    columns: Callable[[pd.DataFrame], dict[str, Any]] = _length_columns
    features: tuple[str, ...] = ()
    in_service_only: bool = False
    card_note: str = ""


#: unit type -> its model columns (a unit type without an entry gets its length only)
UNIT_MODEL_SPECS: dict[str, UnitModelSpec] = {
    "pipe": UnitModelSpec(
        _pipe_columns,
        ("diameter_mm", "lined", *(f"mat_{g}" for g in (*MATERIAL_GROUPS, *_MATERIAL_EXTRA))),
        in_service_only=True,
        card_note="Pipe-level histories are short and sparse; breaks that could not be linked to "
        "a pipe within the tolerance are missing from pipe histories (see break_links).",
    ),
    "street": UnitModelSpec(_street_columns, ("length_km", "pipe_km")),
    "cell": UnitModelSpec(
        _cell_columns,
        ("pipe_km", "street_km", "mean_install_year", *(f"share_{g}" for g in MATERIAL_GROUPS)),
        card_note="Cells are ranked by count of cells, not length: a cell with more pipe carries "
        "more risk; without pipe data the exposure of a cell is unknown.",
    ),
    "neighbourhood": UnitModelSpec(_area_columns, ("street_km",)),
}


def unit_model_spec(unit_type: str) -> UnitModelSpec:
    """The model columns of ``unit_type`` (its length only when it has no entry)."""
    return UNIT_MODEL_SPECS.get(unit_type, UnitModelSpec())


def _unit_attributes(units: pd.DataFrame, spec: UnitModelSpec, h3_res: int) -> pd.DataFrame:
    """Per-unit columns joined to the panel: weights, block cell and extra features."""
    cols = spec.columns(units)
    a = pd.DataFrame({"unit_id": units["unit_id"].astype(str)})
    if "block_cell" not in cols:
        cells = cell_str(
            points_to_cells(
                units["centroid_lon"].to_numpy(float), units["centroid_lat"].to_numpy(float), h3_res
            )
        )
        block = np.asarray(cells, dtype=object)
        block[block == ""] = None
        a["block_cell"] = block
    return pd.concat([a, pd.DataFrame(cols, index=a.index)], axis=1)


def _derived_features(rows: pd.DataFrame) -> pd.DataFrame:
    """Empirical-Bayes rates (to date, last 5 years) and the ring-smoothed 5-year count.

    The Gamma-Poisson prior is fitted on each year's cross-section of units, from the
    features of that year only, so a row never sees a later year.
    """
    out = {"eb_rate": np.full(len(rows), np.nan), "eb_rate_last5": np.full(len(rows), np.nan)}
    # the columns the rates read, sliced year by year (not the whole rows)
    eb = EmpiricalBayesRateBaseline()
    basis = rows[list(dict.fromkeys([eb.count_col, eb.exposure_col, eb.years_col]))]
    recent = basis.assign(
        breaks_to_date=rows["breaks_last5"],
        history_years=np.minimum(rows["history_years"].to_numpy(dtype=float), 5.0),
    )
    for idx in rows.groupby("year", sort=True).indices.values():
        out["eb_rate"][idx] = cross_section_eb(basis.iloc[idx])
        out["eb_rate_last5"][idx] = cross_section_eb(recent.iloc[idx])
    extra = pd.DataFrame(out, index=rows.index)
    if "lag1_breaks_last5_adj" in rows and rows["lag1_breaks_last5_adj"].notna().any():
        lag = rows["lag1_breaks_last5_adj"].to_numpy(dtype=float)
        own = rows["breaks_last5"].to_numpy(dtype=float)
        extra["smooth_last5"] = np.where(np.isfinite(lag), 0.5 * (own + lag), own)
    return pd.concat([rows, extra], axis=1)


def model_data(
    panel: pd.DataFrame, units: pd.DataFrame, unit_type: str, *, h3_resolution: int
) -> ModelData:
    """Join panel rows of ``unit_type`` with their unit table and choose features.

    Parameters
    ----------
    panel : pandas.DataFrame
        Panel rows of this unit type (``schemas/features/panel.json``).
    units : pandas.DataFrame
        The unit table (``unit_pipe``, ``unit_street``, ``unit_cell`` or
        ``unit_neighbourhood``).
    unit_type : str
    h3_resolution : int
        Resolution of the block cells of non-cell units (their centroid's cell).
    """
    if panel.empty:
        raise InputDataError(f"the panel has no {unit_type} rows; run `twmb features` first")
    spec = unit_model_spec(unit_type)
    attrs = _unit_attributes(units, spec, h3_resolution)
    rows = panel.merge(attrs, on="unit_id", how="left", validate="many_to_one")
    notes: list[str] = []
    if spec.in_service_only:
        in_service = rows["exposure_km"].fillna(0) > 0
        if (~in_service).any():
            notes.append(f"{int((~in_service).sum())} pipe-years out of service left out")
        rows = rows[in_service]
    no_cell = rows["block_cell"].isna()
    if no_cell.any():
        bad = rows.loc[no_cell, "unit_id"].unique()
        notes.append(f"{len(bad)} {unit_type} units without a location left out: {list(bad[:5])}")
        rows = rows[~no_cell]
    rows = rows.sort_values(["unit_id", "year"], kind="stable").reset_index(drop=True)
    rows = _derived_features(rows)
    cands = [*DEFAULT_FEATURES, *DERIVED_FEATURES, *spec.features]
    lab = rows["target_count"].notna()
    feats = []
    for c in dict.fromkeys(cands):
        if c not in rows.columns:
            continue
        v = pd.to_numeric(rows.loc[lab, c], errors="coerce")
        if v.notna().any() and v.nunique(dropna=True) > 1:
            feats.append(c)
        else:
            notes.append(f"feature {c} left out: no variation in the labelled rows")
    weight_col = unit_type_spec(unit_type).weight_column
    if weight_col and not (rows[weight_col].fillna(0) > 0).any():
        weight_col = None
        notes.append(f"{unit_type} lengths unknown: capture is by share of units")
    # rankings only: the folds and a champion's members read a baseline's score, and the
    # champion is calibrated on its own, so the baselines' isotonic maps are not fitted
    base: dict[str, Callable[[], BaseEstimator]] = {
        "past_breaks_5y": lambda: PastBreaksBaseline("breaks_last5", calibrate=False),
        "empirical_bayes": lambda: EmpiricalBayesRateBaseline(calibrate=False),
    }
    if weight_col and rows.loc[lab, "rate_last5_per_km"].notna().any():
        base["past_rate_5y"] = lambda: PastBreaksBaseline("rate_last5_per_km", calibrate=False)
    if "smooth_last5" in rows:
        base["smoothed_5y"] = lambda: PastBreaksBaseline("smooth_last5", calibrate=False)
    if rows.loc[lab, "age_mean"].notna().any():
        base["age"] = lambda: AgeBaseline(calibrate=False)
    else:
        notes.append("age baseline left out: no install years")
    if "material" in rows and rows.loc[lab, "material"].notna().any():
        base["material_decade"] = lambda: MaterialDecadeBaseline(calibrate=False)
    return ModelData(unit_type, rows, feats, weight_col, base, notes)


def model_estimators(md: ModelData, mc: ModelConfig) -> dict[str, BaseEstimator]:
    """Unfitted members of the champion selection: learned candidates, then baselines."""
    spec = unit_model_spec(md.unit_type)
    unit = UnitFeatures(tuple(md.features), spec.features, md.density_col)
    out = dict(build_candidates(mc.candidates, unit, mc))
    out.update({name: make() for name, make in md.baselines.items()})
    return out


def _labelled_years(df: pd.DataFrame) -> list[int]:
    return sorted(int(y) for y in df["year"].unique())


def _splitter(scheme: str, mc: ModelConfig, lab: pd.DataFrame, res: int) -> Any:
    years = _labelled_years(lab)
    block = min(mc.block_resolution, res)
    spatial_kw: dict[str, Any] = {
        "parent_res": block,
        "cell_col": "block_cell",
        "buffer_rings": mc.buffer_rings,
        "random_state": mc.seed,
    }
    if scheme == "spatial":
        return SpatialBlockKFold(n_splits=mc.spatial_folds, **spatial_kw)
    if scheme == "spatiotemporal":
        return SpatioTemporalSplit(
            test_years=_test_years(years, mc.spatiotemporal_years),
            n_splits=mc.spatial_folds,
            **spatial_kw,
        )
    return RandomKFold(n_splits=mc.random_folds, random_state=mc.seed)


def _test_years(years: list[int], n: int) -> list[int]:
    """The last ``n`` labelled years that leave at least two earlier training years."""
    usable = years[2:]
    if not usable:
        raise InputDataError(
            f"forward validation needs at least 3 labelled years, the panel has {years}"
        )
    return usable[-n:]


def _metric_rows(
    md: ModelData,
    scheme: str,
    name: str,
    fold: int,
    year: int | None,
    ntr: int,
    te: pd.DataFrame,
    score: np.ndarray,
    prob: np.ndarray | None,
) -> list[dict[str, Any]]:
    key = {
        "scheme": scheme,
        "model": name,
        "fold": fold,
        "test_year": year,
        "n_train": ntr,
        "n_test": len(te),
    }
    y = te["target_count"].to_numpy(dtype=float)
    return metric_rows(key, te, y, md.weight(te), score, prob, FRACS)


@dataclass
class CVResult:
    """Everything cross-validation and the champion selection measured for one unit type."""

    metrics: pd.DataFrame
    forward_totals: pd.DataFrame
    forward_predictions: pd.DataFrame
    importance: pd.DataFrame
    warnings: list[str]
    selection: Selection
    estimators: dict[str, BaseEstimator]
    families: dict[str, str]
    skipped: list[str] = field(default_factory=list)
    scheme_warnings: list[str] = field(default_factory=list)
    #: the workers and threads the validation ran with (see :func:`cross_validate`)
    plan: ThreadPlan | None = None
    #: the champion fitted on every labelled row (``cross_validate(final=True)``), else None
    final: ChampionModel | None = None

    @property
    def champion(self) -> Candidate:
        """The candidate chosen for publication."""
        return self.selection.final.pick


@dataclass(frozen=True)
class _Runner:
    """Where the folds run: ``plan``'s processes here, or the ``client``'s cluster, with
    the labelled rows as the tasks take them (``data``: the frame, or its future)."""

    plan: ThreadPlan
    client: Client | None
    data: Any


@dataclass
class _Parts:
    """What the folds of the other schemes accumulate."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    imp: list[pd.DataFrame] = field(default_factory=list)
    final: ChampionModel | None = None


def _era(lab: pd.DataFrame, years: Sequence[int]) -> np.ndarray:
    """Row mask of the forward test years (the era other schemes are scored on)."""
    return np.isin(lab["year"].to_numpy(), np.asarray(list(years)))


#: a scheme's folds as (training rows, test rows), or why the scheme is skipped
Splits = dict[str, list[tuple[np.ndarray, np.ndarray]] | str]


def _scheme_splits(md: ModelData, mc: ModelConfig, lab: pd.DataFrame, res: int) -> Splits:
    """The folds of every non-forward scheme of ``mc.schemes`` (row positions as int32
    when they fit: the folds of every scheme are held at once), or why one is skipped."""
    small = len(lab) < np.iinfo(np.int32).max
    out: Splits = {}
    for scheme in mc.schemes:
        if scheme == "forward":
            continue
        try:
            splitter = _splitter(scheme, mc, lab, res)
            folds = splitter.split(lab, lab["target_count"].to_numpy(dtype=float))
            out[scheme] = [
                (tr.astype(np.int32), te.astype(np.int32)) if small else (tr, te)
                for tr, te in folds
            ]
        except (InputDataError, ConfigError) as exc:
            out[scheme] = (
                f"{md.unit_type}: {scheme} validation skipped: {exc} "
                "([model] block_resolution and spatial_folds set the spatial blocks)"
            )
    return out


def _other_schemes(
    splits: Splits,
    md: ModelData,
    mc: ModelConfig,
    cv: tuple[Selection, dict[str, BaseEstimator]],
    lab: pd.DataFrame,
    parts: _Parts,
    progress: Callable[[str], None] | None,
    run: _Runner,
    final: bool,
) -> list[str]:
    """Run the champion and the baselines through every non-forward scheme's folds; the
    reasons of the schemes skipped.

    Spatial and random folds are scored on the forward test years only (time-aware), so
    the schemes compare like with like; training rows are every row the splitter allows.
    The folds of all schemes run as one batch, the largest first, with the final fit on
    every labelled row when ``final`` (into ``parts.final``); the metric rows come out in
    the order of the schemes and their folds.
    """
    sel, ests = cv
    slim = dataclasses.replace(md, rows=md.rows.iloc[:0])
    skipped = [why for why in splits.values() if isinstance(why, str)]
    keys: list[tuple[str, int]] = []
    jobs: list[tuple[Any, ...]] = []
    sizes: list[float] = []
    for scheme, folds in splits.items():
        if isinstance(folds, str):
            continue
        era = _era(lab, sel.outer_years) if scheme in ("spatial", "random") else None
        for k, (tr, te) in enumerate(folds):
            test = te if era is None else te[era[te]]
            keys.append((scheme, k))
            jobs.append(
                (_scheme_fold, scheme, k, run.data, tr, test, sel.final.pick, ests, slim, mc)
            )
            sizes.append(float(len(tr)))
    if final:
        pick = (sel.final.pick, ests, md.density_col, sel.calibration)
        jobs.append((_final_fit, run.data, *pick))
        sizes.append(float(len(lab)))
    done: dict[int, Any] = {}
    for i, result in map_largest_first(_call, jobs, sizes, run.plan, run.client):
        done[i] = result
        if progress:
            what = "validation folds and final fit" if final else "validation folds"
            progress(f"{md.unit_type}: {what} {len(done)}/{len(jobs)}")
    if final:
        parts.final = done[len(keys)]
    for i, (scheme, k) in enumerate(keys):
        rows, imp = done[i]
        if rows is None:
            log.warning("%s %s fold %d skipped: no breaks or no test rows", md.unit_type, scheme, k)
            continue
        parts.rows += rows
        if imp is not None:
            parts.imp.append(imp)
    return skipped


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def _final_fit(
    lab: pd.DataFrame,
    pick: Candidate,
    ests: dict[str, BaseEstimator],
    density_col: str | None,
    calibration: Any,
) -> ChampionModel:
    """The champion fitted on every labelled row (:func:`fit_final`, as a task)."""
    y = lab["target_count"].to_numpy(dtype=float)
    return make_champion(pick, ests, density_col).fit(lab, y, calibration=calibration)


def _scheme_fold(
    scheme: str,
    k: int,
    lab: pd.DataFrame,
    tr: np.ndarray,
    te: np.ndarray,
    pick: Candidate,
    ests: dict[str, BaseEstimator],
    md: ModelData,
    mc: ModelConfig,
) -> tuple[list[dict[str, Any]] | None, pd.DataFrame | None]:
    """One fold of a non-forward scheme: the champion's and the baselines' metric rows and,
    in spatial folds, the champion's permutation importance (rows None: fold skipped).

    ``md`` needs no rows (its weight and density columns are read); the importance sample
    and permutations are seeded by ``(seed, k)``, so folds can run in any order.
    """
    trd, ted = lab.iloc[tr], lab.iloc[te]
    ytr = trd["target_count"].to_numpy(dtype=float)
    if (ytr > 0).sum() == 0 or len(ted) == 0:
        return None, None
    year = int(ted["year"].iloc[0]) if scheme == "spatiotemporal" else None
    champ = make_champion(pick, ests, md.density_col).fit(trd, ytr)
    head = (md, scheme)
    scores = champ.evaluate(ted)
    rows = _metric_rows(
        *head, CHAMPION, k, year, len(trd), ted, scores.risk_score, scores.probability
    )
    for name in md.baselines:
        m = fit_member(ests[name], trd, ytr)
        rows += _metric_rows(*head, name, k, year, len(trd), ted, member_score(m, ted, None), None)
    imp = None
    if scheme == "spatial" and mc.importance_repeats > 0 and champ.model_members:
        rng = np.random.default_rng([mc.seed, k])
        n_take = max(100, mc.importance_max_rows // max(mc.spatial_folds, 1))
        take = np.sort(rng.permutation(len(ted))[:n_take]) if len(ted) > n_take else None
        sample = ted if take is None else ted.iloc[take]
        imp = permutation_importance(champ, sample, md, mc.importance_repeats, rng)
    return rows, imp


def cross_validate(
    md: ModelData,
    mc: ModelConfig,
    *,
    h3_resolution: int,
    progress: Callable[[str], None] | None = None,
    threads: int | None = None,
    client: Client | None = None,
    final: bool = False,
) -> CVResult:
    """Champion selection by nested forward validation, then the champion under every scheme.

    Forward validation always runs (it is how the champion is chosen, see
    :mod:`twmb_geo.model.selection`); the spatial, spatio-temporal and random schemes of
    ``mc.schemes`` then validate the chosen candidate beside the baselines, and the spatial
    folds measure its permutation importance. Returns long-format metrics (one row per
    scheme, model, fold and metric; the selection procedure and the champion are named
    ``champion``), the forward folds' observed and expected city totals, the pooled forward
    predictions and the importance.

    The folds run in ``mc.n_jobs`` worker processes, at most ``threads`` (``[compute]
    threads``; None: the cores available), and this process and each worker use
    ``max(1, threads // workers)`` OpenMP/BLAS threads
    (:func:`~twmb_geo.core.compute.thread_plan`, recorded in :attr:`CVResult.plan`).
    With a Dask ``client`` the folds run as tasks on its cluster instead (the labelled
    rows sent to every worker once), with the same results: every fold is seeded by its
    own number, wherever it runs.

    With ``final`` the champion is also fitted on every labelled row, as :func:`fit_final`
    would, but as one more task beside the other schemes' folds (where a worker would
    otherwise wait); it is :attr:`CVResult.final`.
    """
    plan = thread_plan(threads, mc.n_jobs)
    lab = md.labelled
    with limit_threads(plan), shared_data(lab, client) as data:
        run = _Runner(plan, client, data)
        return _cross_validate(md, lab, mc, h3_resolution, progress, run, final)


def _cross_validate(
    md: ModelData,
    lab: pd.DataFrame,
    mc: ModelConfig,
    h3_resolution: int,
    progress: Callable[[str], None] | None,
    run: _Runner,
    final: bool,
) -> CVResult:
    """:func:`cross_validate` of ``md``'s labelled rows ``lab``, its folds run by ``run``."""
    ests = model_estimators(md, mc)
    models = [n for n in ests if n not in md.baselines]
    baselines = list(md.baselines)
    fam = {**{n: "model" for n in models}, **{n: "baseline" for n in baselines}}
    breaks = lab.groupby("year")["target_count"].sum()
    fit_years, outer = fold_years(
        _labelled_years(lab),
        mc.forward_years,
        {int(k): float(v) for k, v in breaks.items()},
        mc.selection_years,
        mc.selection_breaks,
    )
    # the other schemes' folds are drawn in a thread while the forward folds run
    with ThreadPoolExecutor(1, thread_name_prefix="twmb-splits") as pool:
        drawn = pool.submit(_scheme_splits, md, mc, lab, h3_resolution)
        folds = forward_folds(
            run.data,
            ests,
            fit_years,
            density_col=md.density_col,
            weight_col=md.weight_col,
            progress=progress,
            label=f"{md.unit_type}: ",
            plan=run.plan,
            client=run.client,
        )
        forced = None if mc.champion == "auto" else mc.champion
        sel = select(
            folds,
            outer,
            models,
            baselines,
            min_years=mc.selection_years,
            min_breaks=mc.selection_breaks,
            blend_weights=mc.blend_weights,
            density_col=md.density_col,
            fracs=FRACS,
            forced=forced,
        )
        splits = drawn.result()
    parts = _Parts()
    skipped = _other_schemes(splits, md, mc, (sel, ests), lab, parts, progress, run, final)
    for why in skipped:
        log.warning(why)
    metrics = pd.DataFrame([*sel.metrics, *parts.rows])
    return CVResult(
        metrics=metrics,
        forward_totals=pd.DataFrame(sel.totals, columns=["test_year", "observed", "expected"]),
        forward_predictions=sel.preds,
        importance=_importance_summary(parts.imp, md.unit_type),
        warnings=leakage(metrics, baselines),
        scheme_warnings=disagreement(metrics),
        selection=sel,
        estimators=ests,
        families=fam,
        skipped=skipped,
        plan=run.plan,
        final=parts.final,
    )


def _score_drop(
    y: np.ndarray, w: np.ndarray | None, base: np.ndarray, perm: np.ndarray
) -> dict[str, float]:
    out = {}
    yb = (y > 0).astype(float)
    if yb.min() != yb.max():
        out["roc_auc"] = roc_auc(yb, base) - roc_auc(yb, perm)
    if y.sum() > 0:
        out["capture_5pct"] = capture_at(y, base, 0.05, w, ties="average") - capture_at(
            y, perm, 0.05, w, ties="average"
        )
    return out


def permutation_importance(
    model: Any,
    test: pd.DataFrame,
    md: ModelData,
    repeats: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Drop in held-out ROC AUC and capture at 5 % when each feature is shuffled.

    One row per feature, metric and repeat; each column the model reads (the length
    column of a density ranking excepted) is permuted across the test rows with ``rng``
    while the others stay fixed; ``model`` is a fitted champion or risk estimator. A
    feature's repeats are scored in one call, the test rows stacked once per repeat (the
    scores are per row).
    """
    y = test["target_count"].to_numpy(dtype=float)
    w = md.weight(test)
    base = model.risk_score(test)
    rows = []
    skip = {md.density_col} if md.density_col else set()
    n = len(test)
    stacked = pd.concat([test] * repeats, ignore_index=True) if repeats > 0 else test
    for feat in model.feature_names_in_:
        if feat in skip or repeats < 1:
            continue
        col = test[feat].to_numpy()
        shuffled = np.concatenate([col[rng.permutation(n)] for _ in range(repeats)])
        scores = model.risk_score(stacked.assign(**{str(feat): shuffled}))
        for r in range(repeats):
            perm = scores[r * n : (r + 1) * n]
            for metric, drop in _score_drop(y, w, base, perm).items():
                rows.append({"feature": str(feat), "metric": metric, "repeat": r, "drop": drop})
    return pd.DataFrame(rows, columns=["feature", "metric", "repeat", "drop"])


def _importance_summary(parts: list[pd.DataFrame], unit_type: str) -> pd.DataFrame:
    cols = ["unit_type", "feature", "metric", "importance_mean", "importance_std", "rank"]
    if not parts:
        return pd.DataFrame(columns=cols)
    df = pd.concat(parts, ignore_index=True)
    g = df.groupby(["metric", "feature"], sort=True)["drop"]
    s = pd.DataFrame({"importance_mean": g.mean(), "importance_std": g.std(ddof=0)}).reset_index()
    s = s.sort_values(
        ["metric", "importance_mean", "feature"], ascending=[True, False, True], kind="stable"
    )
    s["rank"] = s.groupby("metric").cumcount() + 1
    s["unit_type"] = unit_type
    return s[cols].reset_index(drop=True)


def curves(preds: pd.DataFrame, md: ModelData) -> dict[str, Any]:
    """Pooled outer forward capture curves (champion, candidates, baselines) and calibration."""
    if preds.empty:
        return {"capture_curves": {}, "calibration": []}
    fr = np.round(np.linspace(0, 1, 51), 4)
    w = preds["weight"].to_numpy(dtype=float) if md.weight_col else None
    names = [c for c in preds.columns if c not in ("test_year", "y", "prob", "weight")]
    cc = {
        n: [
            round(float(v), 6)
            for v in capture_curve(preds["y"], preds[n], w, fr, ties="average")["capture"]
        ]
        for n in names
    }
    cal = calibration_table((preds["y"] > 0).astype(float), preds["prob"], n_bins=10)
    return {
        "fracs": fr.tolist(),
        "capture_curves": cc,
        "calibration": cal.to_dict(orient="records"),
    }


def fit_final(
    md: ModelData, mc: ModelConfig, cv: CVResult, *, threads: int | None = None
) -> ChampionModel:
    """Fit the selected champion on every labelled row, calibrated on its forward predictions.

    The fit runs in this process with the OpenMP/BLAS threads of one process of
    :func:`cross_validate`: ``max(1, threads // workers)`` (``threads`` None: the cores
    available; workers: ``mc.n_jobs``, at most ``threads``). A ``cv`` of
    ``cross_validate(final=True)`` already holds this fit: it is returned.
    """
    if cv.final is not None:
        return cv.final
    lab = md.labelled
    y = lab["target_count"].to_numpy(dtype=float)
    if (y > 0).sum() == 0:
        raise InputDataError(f"no {md.unit_type} breaks in the labelled years: nothing to learn")
    with limit_threads(thread_plan(threads, mc.n_jobs)):
        return _final_fit(lab, cv.champion, cv.estimators, md.density_col, cv.selection.calibration)
