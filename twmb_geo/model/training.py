"""Model data, cross-validation under every scheme, permutation importance and the final fit.

One unit type at a time: :func:`model_data` joins the panel with the unit attributes
(material, diameter, lengths) and decides the feature columns, the length weights and the
H3 cell used for spatial blocks; :func:`cross_validate` runs the model and every baseline
through the same splitters and returns long-format metrics; :func:`permutation_importance`
measures each feature on held-out spatial folds; :func:`fit_final` fits on every labelled
row. Nothing here touches the store or the disk (see :mod:`twmb_geo.model.stage`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ..config import ModelConfig
from ..core.units import unit_type as unit_type_spec
from ..core.vocab import MATERIAL_GROUPS
from ..errors import ConfigError, InputDataError
from ..spatial.hexgrid import cell_str, points_to_cells
from .baselines import (
    AgeBaseline,
    EmpiricalBayesRateBaseline,
    MaterialDecadeBaseline,
    PastBreaksBaseline,
)
from .estimators import DEFAULT_FEATURES, RiskEstimator, make_estimator
from .metrics import (
    calibration_table,
    capture_at,
    capture_curve,
    evaluate,
    roc_auc,
)
from .reporting import MODEL, leakage
from .splitters import ForwardSplit, RandomKFold, SpatialBlockKFold, SpatioTemporalSplit

__all__ = [
    "FRACS",
    "SCHEME_TEXT",
    "CVResult",
    "ModelData",
    "cross_validate",
    "curves",
    "fit_final",
    "fit_model",
    "make_model",
    "model_data",
    "permutation_importance",
]

log = logging.getLogger(__name__)

#: shares of the network at which capture and precision are reported
FRACS = (0.01, 0.05, 0.10)
SCHEME_TEXT = {
    "forward": "train on years < T, test on year T (targets T + 1), T walking forward",
    "spatial": "K-fold over H3 parent blocks, training rows within the ring buffer dropped",
    "spatiotemporal": "test block and test year held out at once (forward x spatial folds)",
    "random": "random K-fold over unit-years: ignores space and time, overstates skill",
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
    """

    unit_type: str
    rows: pd.DataFrame
    features: list[str]
    weight_col: str | None
    baselines: dict[str, Callable[[], BaseEstimator]]
    notes: list[str] = field(default_factory=list)

    @property
    def labelled(self) -> pd.DataFrame:
        """Rows whose next-year target is known."""
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
    cands = [*DEFAULT_FEATURES, *spec.features]
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
    base: dict[str, Callable[[], BaseEstimator]] = {
        "past_breaks_5y": lambda: PastBreaksBaseline("breaks_last5"),
        "empirical_bayes": lambda: EmpiricalBayesRateBaseline(),
    }
    if rows.loc[lab, "age_mean"].notna().any():
        base["age"] = lambda: AgeBaseline()
    else:
        notes.append("age baseline left out: no install years")
    if "material" in rows and rows.loc[lab, "material"].notna().any():
        base["material_decade"] = lambda: MaterialDecadeBaseline()
    return ModelData(unit_type, rows, feats, weight_col, base, notes)


def make_model(md: ModelData, mc: ModelConfig) -> RiskEstimator:
    """The configured estimator on ``md``'s features."""
    return make_estimator(
        mc.kind,
        features=md.features,
        calibrate=mc.calibrate,
        random_state=mc.seed,
        learning_rate=mc.learning_rate,
        max_iter=mc.max_iter,
    )


def _labelled_years(df: pd.DataFrame) -> list[int]:
    return sorted(int(y) for y in df["year"].unique())


def _splitter(scheme: str, md: ModelData, mc: ModelConfig, lab: pd.DataFrame, res: int) -> Any:
    years = _labelled_years(lab)
    block = min(mc.block_resolution, res)
    spatial_kw: dict[str, Any] = {
        "parent_res": block,
        "cell_col": "block_cell",
        "buffer_rings": mc.buffer_rings,
        "random_state": mc.seed,
    }
    if scheme == "forward":
        return ForwardSplit(test_years=_test_years(years, mc.forward_years))
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


def _fold_iter(
    scheme: str, splitter: Any, lab: pd.DataFrame
) -> Iterator[tuple[int, int | None, np.ndarray, np.ndarray]]:
    y = lab["target_count"].to_numpy(dtype=float)
    for k, (tr, te) in enumerate(splitter.split(lab, y)):
        years = lab["year"].to_numpy()[te]
        ty = int(years[0]) if scheme in ("forward", "spatiotemporal") and len(te) else None
        yield k, ty, tr, te


def _metric_rows(
    md: ModelData,
    scheme: str,
    name: str,
    fold: int,
    year: int | None,
    ntr: int,
    te: pd.DataFrame,
    score: np.ndarray,
    prob: np.ndarray,
) -> list[dict[str, Any]]:
    m = evaluate(
        te["target_count"].to_numpy(dtype=float),
        score,
        prob,
        weight=md.weight(te),
        fracs=FRACS,
        new_mask=te["breaks_to_date"].fillna(0).to_numpy() == 0,
    )
    out = []
    for metric, value in m.items():
        if metric == "notes":
            continue
        v = float(value)  # type: ignore[arg-type]
        out.append(
            {
                "scheme": scheme,
                "model": name,
                "fold": fold,
                "test_year": year,
                "n_train": ntr,
                "n_test": len(te),
                "metric": metric,
                "value": v if math.isfinite(v) else None,
            }
        )
    return out


@dataclass
class CVResult:
    """Everything cross-validation measured for one unit type."""

    metrics: pd.DataFrame
    forward_totals: pd.DataFrame
    forward_predictions: pd.DataFrame
    importance: pd.DataFrame
    warnings: list[str]
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Parts:
    """What the folds of :func:`cross_validate` accumulate."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: list[dict[str, Any]] = field(default_factory=list)
    preds: list[pd.DataFrame] = field(default_factory=list)
    imp: list[pd.DataFrame] = field(default_factory=list)


@dataclass
class _Fold:
    """One validation fold: scheme, fold number, test year, training and test rows."""

    scheme: str
    k: int
    year: int | None
    train: pd.DataFrame
    test: pd.DataFrame


def _run_fold(
    md: ModelData, mc: ModelConfig, f: _Fold, rng: np.random.Generator, parts: _Parts
) -> None:
    """Fit the model and every baseline on one fold and record what it measured."""
    trd, ted = f.train, f.test
    ytr = trd["target_count"].to_numpy(dtype=float)
    if (ytr > 0).sum() == 0 or len(ted) == 0:
        log.warning(
            "%s %s fold %d skipped: no breaks in training rows", md.unit_type, f.scheme, f.k
        )
        return
    model = fit_model(make_model(md, mc), trd, ytr)
    score = model.risk_score(ted)
    prob = model.break_probability(ted)
    head = (md, f.scheme)
    parts.rows += _metric_rows(*head, MODEL, f.k, f.year, len(trd), ted, score, prob)
    fold_preds = {MODEL: score}
    for name, make in md.baselines.items():
        b = make().fit(trd, ytr)
        bs = b.risk_score(ted)
        bp = b.break_probability(ted)
        parts.rows += _metric_rows(*head, name, f.k, f.year, len(trd), ted, bs, bp)
        fold_preds[name] = bs
    if f.scheme == "forward":
        parts.totals.append(
            {
                "test_year": f.year,
                "observed": float(ted["target_count"].sum()),
                "expected": float(model.expected_breaks(ted).sum()),
            }
        )
        parts.preds.append(
            pd.DataFrame(
                {
                    "test_year": f.year,
                    "y": ted["target_count"].to_numpy(dtype=float),
                    "prob": prob,
                    "weight": md.weight(ted) if md.weight_col else 1.0,
                    **fold_preds,
                }
            )
        )
    if f.scheme == "spatial" and mc.importance_repeats > 0:
        n_take = max(100, mc.importance_max_rows // max(mc.spatial_folds, 1))
        take = (
            np.sort(rng.permutation(len(ted))[:n_take])
            if len(ted) > n_take
            else np.arange(len(ted))
        )
        parts.imp.append(
            permutation_importance(model, ted.iloc[take], md, mc.importance_repeats, rng)
        )


def cross_validate(
    md: ModelData,
    mc: ModelConfig,
    *,
    h3_resolution: int,
    progress: Callable[[str], None] | None = None,
) -> CVResult:
    """Run the model and every baseline through each configured validation scheme.

    Returns long-format metrics (one row per scheme, model, fold and metric), the
    forward folds' observed and expected city totals (for the simulation's year-to-year
    spread), the pooled forward predictions (capture curves, calibration) and the
    permutation importance on the spatial folds.
    """
    lab = md.labelled
    parts = _Parts()
    rng = np.random.default_rng(mc.seed)
    skipped: list[str] = []
    for scheme in mc.schemes:
        try:
            folds = list(_fold_iter(scheme, _splitter(scheme, md, mc, lab, h3_resolution), lab))
        except (InputDataError, ConfigError) as exc:
            if scheme == "forward":
                raise
            msg = (
                f"{md.unit_type}: {scheme} validation skipped: {exc} "
                "([model] block_resolution and spatial_folds set the spatial blocks)"
            )
            log.warning(msg)
            skipped.append(msg)
            continue
        for k, year, tr, te in folds:
            if progress:
                progress(f"{md.unit_type}: {scheme} fold {k + 1}")
            _run_fold(md, mc, _Fold(scheme, k, year, lab.iloc[tr], lab.iloc[te]), rng, parts)
    metrics = pd.DataFrame(parts.rows)
    warns = leakage(metrics)
    importance = _importance_summary(parts.imp, md.unit_type)
    preds = parts.preds
    return CVResult(
        metrics=metrics,
        forward_totals=pd.DataFrame(parts.totals, columns=["test_year", "observed", "expected"]),
        forward_predictions=pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(),
        importance=importance,
        warnings=warns,
        skipped=skipped,
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
    model: RiskEstimator,
    test: pd.DataFrame,
    md: ModelData,
    repeats: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Drop in held-out ROC AUC and capture at 5 % when each feature is shuffled.

    One row per feature, metric and repeat; feature columns are permuted across the
    test rows with ``rng`` while the others stay fixed.
    """
    A = model.feature_matrix(test)
    y = test["target_count"].to_numpy(dtype=float)
    w = md.weight(test)
    base = model.risk_score_matrix(A)
    rows = []
    for j, feat in enumerate(model.feature_names_in_):
        for r in range(repeats):
            B = A.copy()
            B[:, j] = A[rng.permutation(len(A)), j]
            for metric, drop in _score_drop(y, w, base, model.risk_score_matrix(B)).items():
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
    """Pooled forward-validation capture curves (model and baselines) and calibration."""
    if preds.empty:
        return {"capture_curves": {}, "calibration": []}
    fr = np.round(np.linspace(0, 1, 51), 4)
    w = preds["weight"].to_numpy(dtype=float) if md.weight_col else None
    names = [MODEL, *md.baselines]
    cc = {
        n: [
            round(float(v), 6)
            for v in capture_curve(preds["y"], preds[n], w, fr, ties="average")["capture"]
        ]
        for n in names
        if n in preds
    }
    cal = calibration_table((preds["y"] > 0).astype(float), preds["prob"], n_bins=10)
    return {
        "fracs": fr.tolist(),
        "capture_curves": cc,
        "calibration": cal.to_dict(orient="records"),
    }


def fit_final(md: ModelData, mc: ModelConfig) -> RiskEstimator:
    """Fit the configured model on every labelled row."""
    lab = md.labelled
    y = lab["target_count"].to_numpy(dtype=float)
    if (y > 0).sum() == 0:
        raise InputDataError(f"no {md.unit_type} breaks in the labelled years: nothing to learn")
    return fit_model(make_model(md, mc), lab, y)


def fit_model(model: RiskEstimator, X: pd.DataFrame, y_count: np.ndarray) -> RiskEstimator:
    """Fit ``model`` on break counts: the count itself, or ``y > 0`` for a classifier."""
    if model.predicts_counts:
        return model.fit(X, y_count)
    return model.fit(X, np.where(np.isnan(y_count), np.nan, y_count > 0))
