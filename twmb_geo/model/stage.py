"""The model stage on the store: ``train``, ``score``, ``simulate`` (``twmb train|score|simulate``).

``train`` cross-validates the configured model and the baselines under every scheme,
fits the final model on all labelled years, saves it with its card under
``<out>/models/<version>/`` and writes ``models``, ``cv_metrics`` and
``feature_importance``. ``score`` ranks every unit for the year after the latest data
year with the newest (or a named) model and appends to ``risk_scores`` (the new rows
flagged current). ``simulate`` runs the Monte Carlo and the renewal scenario from the
current scores.

With ``[compute] scheduler`` set to a Dask address, ``train`` runs the validation folds
as tasks on that cluster (:func:`~twmb_geo.model.training.cross_validate`); with
``"local"`` they stay in ``[model] n_jobs`` processes here: a LocalCluster's workers
share this machine's cores, and the fold processes need no transfer of the training rows
nor Dask's memory trimming (500,000-pipe city, 2 cores: 591-608 s here, 622-733 s on a
two-worker LocalCluster). ``score`` and ``simulate`` use any cluster.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd
import sklearn

from .._version import __version__
from ..config import Config, ModelConfig
from ..contracts import conform
from ..core.cluster import open_client
from ..core.compute import limit_threads
from ..core.types import Progress
from ..core.units import unit_type as unit_type_spec
from ..errors import InputDataError, StoreError
from ..features.coverage import last_year_coverage
from ..store.duckdb_store import Store
from ..store.manifest import new_run_id
from ..store.project import in_project_crs
from .champion import ChampionModel
from .registry import load_model, save_model
from .reporting import headline, lifts, optimism, summarise_cv
from .sampling import sample_units, unit_strata
from .scoring import score_units
from .selection import summary_block
from .simulate import simulate_with_renewal, year_factor_cv
from .training import (
    SCHEME_TEXT,
    CVResult,
    ModelData,
    cross_validate,
    curves,
    fit_final,
    model_data,
    unit_model_spec,
)

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["list_models", "run_simulation", "score_latest", "train_models"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def _thread_limited(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a stage ``fn(cfg, ...)`` under the thread limit of ``cfg.compute``.

    This process uses ``max(1, threads // workers)`` OpenMP/BLAS threads, as each fold
    worker does (:mod:`twmb_geo.core.compute`).
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        cfg = args[0] if args else kwargs["cfg"]
        if not isinstance(cfg, Config):
            raise TypeError(f"{fn.__name__} needs a Config as its first argument")
        with limit_threads(cfg.compute.plan(cfg.model.n_jobs)):
            return fn(*args, **kwargs)

    return wrapper


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)


def _unit_types(store: Store, wanted: Sequence[str]) -> list[str]:
    if not store.has_table("panel") or store.count("panel") == 0:
        raise StoreError(
            f"store {store.path} has no panel; run `twmb features` (or `twmb run`) first"
        )
    present = set(store.query("SELECT DISTINCT unit_type FROM panel")["unit_type"])
    types = [u for u in wanted if u in present]
    if not types:
        raise InputDataError(
            f"none of the unit types {list(wanted)} is in the panel (it has {sorted(present)}); "
            "set [model] unit_types"
        )
    return types


def _load_data(
    store: Store, cfg: Config, unit_type: str, *, latest_only: bool = False
) -> ModelData:
    """The model rows of ``unit_type``; ``latest_only``: the latest panel year alone (what
    scoring ranks: every feature of a row comes from its own year's cross-section)."""
    where = "unit_type = ?"
    if latest_only:
        where += " AND year = (SELECT max(year) FROM panel WHERE unit_type = ?)"
    panel = store.read("panel", where, [unit_type] * (2 if latest_only else 1))
    units = store.read(unit_type_spec(unit_type).table)
    return model_data(panel, units, unit_type, h3_resolution=cfg.h3_resolution)


def _training_data(store: Store, cfg: Config, unit_type: str) -> ModelData:
    """The model rows of ``unit_type`` to train and validate on: every unit, or a stratified
    sample of ``[model] max_train_units`` (:mod:`~twmb_geo.model.sampling`) read without
    the rest of the panel."""
    mc = cfg.model
    hist = store.query(
        "SELECT unit_id, bool_or(breaks > 0) AS broke FROM panel WHERE unit_type = ? "
        "GROUP BY unit_id ORDER BY unit_id",
        [unit_type],
    )
    if len(hist) <= mc.max_train_units:
        return _load_data(store, cfg, unit_type)
    table = unit_type_spec(unit_type).table
    where = store.query(f'SELECT unit_id, centroid_lon, centroid_lat FROM "{table}"')
    hist = hist.merge(where, on="unit_id", how="left", validate="one_to_one")
    strata = unit_strata(
        hist["centroid_lon"].to_numpy(dtype=float),
        hist["centroid_lat"].to_numpy(dtype=float),
        hist["broke"].to_numpy(dtype=bool),
        mc.block_resolution,
    )
    keep = sample_units(strata, mc.max_train_units, mc.seed)
    chosen = hist.loc[keep, ["unit_id"]].reset_index(drop=True)
    sampled = "unit_id IN (SELECT unit_id FROM _sampled_units)"
    with store.registered("_sampled_units", chosen):
        panel = store.read("panel", f"unit_type = ? AND {sampled}", [unit_type])
        units = store.read(table, sampled)
    md = model_data(panel, units, unit_type, h3_resolution=cfg.h3_resolution)
    md.sample = {
        "units": len(chosen),
        "of": len(hist),
        "fraction": round(len(chosen) / len(hist), 6),
        "seed": mc.seed,
        "strata": f"H3 block (resolution {mc.block_resolution}) x ever broke",
        "strata_count": int(np.unique(strata).size),
    }
    log.info(
        "%s: training and validation on a stratified sample of %d of %d units",
        unit_type,
        len(chosen),
        len(hist),
    )
    return md


def _data_inputs(store: Store) -> tuple[str | None, list[dict[str, Any]]]:
    """The inputs the store's data came from: per source, its latest ingest (whatever the
    outcome of the command around it: inside ``run`` the command is still running)."""
    if not store.has_table("run_inputs") or store.count("run_inputs") == 0:
        return None, []
    inp = store.query(
        "SELECT run_id, source_id, file, sha256, rows_in FROM ("
        " SELECT i.*, dense_rank() OVER (PARTITION BY i.source_id"
        "  ORDER BY r.started_at DESC, i.run_id DESC) AS k"
        " FROM run_inputs i JOIN runs r USING (run_id)) WHERE k = 1 ORDER BY source_id, file"
    )
    if inp.empty:
        return None, []
    rid = str(inp["run_id"].max())
    return rid, [
        {"source_id": r.source_id, "path": r.file, "sha256": r.sha256, "rows": int(r.rows_in)}
        for r in inp.itertuples(index=False)
    ]


def _version(md: ModelData, cfg: Config, inputs: list[dict[str, Any]]) -> str:
    """Content-addressed version: same data, features and settings give the same version."""
    lab = md.labelled
    cols = ["unit_id", "year", *md.features, "target_count"]
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(lab[cols], index=False).to_numpy().tobytes())
    h.update(json.dumps(cfg.model.to_toml(), sort_keys=True, default=str).encode())
    h.update(json.dumps([i["sha256"] for i in inputs]).encode())
    h.update(__version__.encode())
    return f"{md.unit_type}-{cfg.model.kind}-{h.hexdigest()[:12]}"


def _validation_block(summary: pd.DataFrame, metrics: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scheme in summary["scheme"].unique():
        s = summary[summary["scheme"] == scheme]
        models: dict[str, dict[str, Any]] = {}
        for r in s.itertuples(index=False):
            models.setdefault(str(r.model), {})[str(r.metric)] = {
                "mean": None if pd.isna(r.mean) else float(r.mean),
                "std": None if pd.isna(r.std) else float(r.std),
                "n_folds": int(r.n_folds),
            }
        folds = metrics[metrics["scheme"] == scheme]["fold"].nunique()
        out[str(scheme)] = {
            "description": SCHEME_TEXT[str(scheme)],
            "folds": int(folds),
            "models": models,
        }
    return out


def _coverage_notes(store: Store, cfg: Config, md: ModelData) -> list[str]:
    """The note on a partial last year of the break record, when the panel reflects one."""
    if cfg.features.study_end is not None or not store.has_table("breaks"):
        return []
    fc = cfg.features
    cov = last_year_coverage(
        store.query("SELECT break_date FROM breaks")["break_date"],
        min_coverage=fc.partial_year_min_coverage,
        break_ratio=fc.partial_year_break_ratio,
    )
    if cov is None or not cov.partial:
        return []
    if cov.year == md.latest_year + 1:
        return [cov.note(kept=False)]
    if cov.year == md.latest_year:
        return [cov.note(kept=True)]
    return []


def _baselines(cv: CVResult) -> list[str]:
    return [n for n, f in cv.families.items() if f == "baseline"]


def _pct(v: float) -> str:
    return f"{v:+.0%}"


def champion_statement(block: dict[str, Any]) -> str:
    """The card's first line: what is published, how it validated and against what."""
    o = block["outer"]
    c5 = o["champion"]["capture_5pct"]
    best, bb = o["best_baseline"], o["best_baseline_capture_5pct"]
    mean = c5["mean"]
    if mean is None or best is None or bb is None:
        return f"The published ranking is '{block['name']}' ({block['family']})."
    spread = c5["std"] or 0.0
    vs = f"{mean:.3f} ± {spread:.3f} against {bb:.3f} for the best baseline '{best}'"
    lift = f" ({_pct(mean / bb - 1)})" if bb > 0 else ""
    years = f"at least as good in {o['wins']} of {o['n_years']} outer years"
    if block["family"] == "baseline":
        models = {
            k: v["capture_5pct"]["mean"]
            for k, v in o["candidates"].items()
            if k not in o["baselines"] and v["capture_5pct"]["mean"] is not None
        }
        bm = max(models, key=models.__getitem__) if models else None
        tail = f"; the best learned candidate '{bm}' scored {models[bm]:.3f}" if bm else ""
        return (
            f"No learned ranking beat the baselines here: the published ranking is the baseline "
            f"'{block['name']}'. The selection procedure's outer forward capture at 5 % is "
            f"{vs}{lift}, {years}{tail}."
        )
    return (
        f"The published ranking is '{block['name']}' ({block['family']}), chosen by nested "
        f"forward validation: outer forward capture at 5 % {vs}{lift}, {years}."
    )


def _why(block: dict[str, Any]) -> str:
    sc = {k: v for k, v in block["selection"]["scores"].items() if v is not None}
    top = sorted(sc.items(), key=lambda kv: -kv[1])[:4]
    yrs = block["selection"]["inner_years"]
    return (
        f"Chosen on the forward test years {yrs[0]}–{yrs[-1]} (each scored by a fit on the "
        "years before it) by mean capture at 5 % and 10 %: "
        + ", ".join(f"{k} {v:.3f}" for k, v in top)
        + "; ties go to the simpler candidate."
    )


def _limitations(md: ModelData, year_cv: float) -> list[str]:
    out = [
        "Learns from breaks the utility recorded; unrecorded breaks and changes in recording "
        "practice over the years bias both the history features and the targets.",
        "Ranks units for one year ahead assuming it resembles the training years; weather "
        f"swings city-wide totals (estimated extra year-to-year variation {year_cv:.2f}), which "
        "moves counts far more than the ranking.",
        "Expected breaks are an isotonic map of the champion's score fitted on its forward "
        "out-of-fold predictions of the selection years; P(break) = 1 - exp(-expected).",
        "Random K-fold is reported only to show how much ignoring space and time overstates "
        "skill; spatial and random folds are scored on the forward test years only; trust "
        "the forward figures.",
    ]
    note = unit_model_spec(md.unit_type).card_note
    if note:
        out.append(note)
    if md.sample:
        out.append(
            f"Trained and validated on a stratified sample of {md.sample['units']:,} of "
            f"{md.sample['of']:,} units ({md.sample['fraction']:.1%}; spatial blocks x ever "
            "broke, every unit equally likely), so the validation figures estimate the "
            "whole network's; every unit is scored."
        )
    return out


def _params(est: Any) -> dict[str, Any]:
    return {k: v for k, v in est.get_params(deep=False).items() if k != "features"}


def _card(
    md: ModelData,
    cfg: Config,
    cv: CVResult,
    final: ChampionModel,
    summary: pd.DataFrame,
    version: str,
    run: dict[str, Any],
    store_path: str,
    year_cv: float,
) -> dict[str, Any]:
    """The model card (``card.json``) of a trained model."""
    mc, lab, ft = cfg.model, md.labelled, cv.forward_totals
    unit_type, created, run_id = md.unit_type, run["created"], run["run_id"]
    data_run, inputs = run["data_run"], run["inputs"]
    head = headline(summary, _baselines(cv))
    block = summary_block(cv.selection, cv.families)
    block["statement"] = champion_statement(block)
    block["why"] = _why(block)
    block["candidates"] = {
        n: {"family": cv.families[n], "params": _params(e)} for n, e in cv.estimators.items()
    }
    return {
        "model_version": version,
        "unit_type": unit_type,
        "kind": mc.kind,
        "champion": block,
        "created_at": created.isoformat() + "Z",
        "run_id": run_id,
        "package_version": __version__,
        "sklearn_version": sklearn.__version__,
        "data": {"run_id": data_run, "store": store_path, "inputs": inputs},
        "training_window": {
            "feature_years": [int(lab["year"].min()), int(lab["year"].max())],
            "target_years": [int(lab["year"].min()) + 1, int(lab["year"].max()) + 1],
            "rows": len(lab),
            "units": int(lab["unit_id"].nunique()),
            "breaks": float(lab["target_count"].sum()),
            "sample": md.sample or None,
        },
        "scoring": {"feature_year": md.latest_year, "target_year": md.latest_year + 1},
        "weight": md.weight_col,
        "features": list(final.feature_names_in_),
        "feature_notes": md.notes,
        "params": {n: _params(m) for n, m in final.members_},
        "config": mc.to_toml(),
        "compute": cv.plan.to_dict() if cv.plan else None,
        "headline": head,
        "leakage_warnings": cv.warnings,
        "scheme_warnings": cv.scheme_warnings,
        "skipped_schemes": cv.skipped,
        "random_cv_optimism": optimism(summary),
        "lift": lifts(summary),
        "validation": _validation_block(summary, cv.metrics),
        "importance": cv.importance.drop(columns="unit_type").to_dict(orient="records"),
        "forward": {
            **curves(cv.forward_predictions, md),
            "totals": ft.to_dict(orient="records"),
            "year_cv": year_cv,
        },
        "limitations": _limitations(md, year_cv),
    }


def _registry_row(
    card: dict[str, Any],
    md: ModelData,
    run: dict[str, Any],
    folder: str,
    year_cv: float,
    cv: CVResult,
) -> pd.DataFrame:
    """The ``models`` table row of a trained model."""
    mc, lab, head = card["config"], md.labelled, card["headline"]
    version, unit_type = card["model_version"], md.unit_type
    run_id, created, data_run = run["run_id"], run["created"], run["data_run"]
    return pd.DataFrame(
        [
            {
                "model_version": version,
                "unit_type": unit_type,
                "kind": mc["kind"],
                "champion": card["champion"]["name"],
                "champion_family": card["champion"]["family"],
                "run_id": run_id,
                "created_at": created,
                "data_run_id": data_run,
                "train_start": card["training_window"]["feature_years"][0],
                "train_end": card["training_window"]["feature_years"][1],
                "n_train_rows": len(lab),
                "n_units": int(md.rows["unit_id"].nunique()),
                "features": json.dumps(card["features"]),
                "params": json.dumps(card["params"], sort_keys=True, default=str),
                **{
                    k: head[k]
                    for k in (
                        "forward_capture_5pct",
                        "forward_capture_10pct",
                        "forward_roc_auc",
                        "spatial_capture_5pct",
                        "random_capture_5pct",
                        "random_cv_optimism_5pct",
                        "best_baseline",
                        "best_baseline_capture_5pct",
                    )
                },
                "year_cv": year_cv,
                "warnings": json.dumps(cv.warnings + cv.scheme_warnings),
                "path": folder,
            }
        ]
    )


def _train_one(
    store: Store,
    cfg: Config,
    unit_type: str,
    run_id: str,
    data_run: str | None,
    inputs: list[dict[str, Any]],
    tick: Callable[[str], None],
    client: Client | None,
) -> dict[str, Any]:
    mc = cfg.model
    md = _training_data(store, cfg, unit_type)
    threads = cfg.compute.threads
    cv = cross_validate(
        md,
        mc,
        h3_resolution=cfg.h3_resolution,
        progress=tick,
        threads=threads,
        client=client,
        final=True,
    )
    final = fit_final(md, mc, cv, threads=threads)
    summary = summarise_cv(cv.metrics)
    ft = cv.forward_totals
    year_cv = float(year_factor_cv(ft["observed"], ft["expected"])) if len(ft) >= 3 else 0.0
    version = _version(md, cfg, inputs)
    created = _now()
    run = {"run_id": run_id, "created": created, "data_run": data_run, "inputs": inputs}
    card = _card(md, cfg, cv, final, summary, version, run, str(store.path), year_cv)
    head = card["headline"]
    coverage = _coverage_notes(store, cfg, md)
    card["limitations"].extend(coverage)
    folder = save_model(cfg.out_dir / "models", version, final, card)
    reg = _registry_row(card, md, run, str(folder), year_cv, cv)
    metrics = cv.metrics.assign(model_version=version, unit_type=unit_type)
    imp = cv.importance.assign(model_version=version)
    with store.transaction():
        for name, df in (("models", reg), ("cv_metrics", metrics), ("feature_importance", imp)):
            store.delete(name, "model_version = ?", [version])
            store.insert(name, conform(df, f"model/{name}"))
    return {
        "model_version": version,
        "unit_type": unit_type,
        "path": str(folder),
        "card": str(folder / "card.md"),
        "champion": card["champion"]["name"],
        "champion_family": card["champion"]["family"],
        "statement": card["champion"]["statement"],
        **head,
        "year_cv": year_cv,
        "warnings": cv.warnings + cv.scheme_warnings,
        "notes": md.notes + cv.skipped + coverage,
    }


@in_project_crs
@_thread_limited
def train_models(
    cfg: Config, *, unit_types: Sequence[str] | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Cross-validate, fit and register one model per unit type (see the module docstring)."""
    run_id = new_run_id()
    # folds on a remote cluster only (see the module doc)
    spec = cfg.compute.cluster
    on = open_client(spec) if spec.remote else contextlib.nullcontext(None)
    with Store(cfg.store_path) as store, on as client:
        types = _unit_types(store, unit_types or cfg.model.unit_types)
        data_run, inputs = _data_inputs(store)
        out = []
        for i, ut in enumerate(types):

            def tick(msg: str, i: int = i) -> None:
                if progress:
                    progress(f"train {msg}", i, len(types))

            out.append(_train_one(store, cfg, ut, run_id, data_run, inputs, tick, client))
    if progress:
        progress("train", len(types), len(types))
    return {"run_id": run_id, "models": out}


def list_models(cfg: Config) -> pd.DataFrame:
    """The registry table (newest first within each unit type)."""
    with Store(cfg.store_path, read_only=True) as store:
        if store.count("models") == 0:
            return pd.DataFrame(columns=["model_version", "unit_type", "kind", "created_at"])
        return store.query(
            "SELECT * FROM models ORDER BY unit_type, created_at DESC, model_version"
        )


def _model_row(store: Store, unit_type: str, version: str | None) -> pd.Series:
    if version:
        df = store.query("SELECT * FROM models WHERE model_version = ?", [version])
        if df.empty:
            raise InputDataError(
                f"model {version!r} is not in the registry; see `twmb models list`"
            )
        return df.iloc[0]
    df = (
        store.query(
            "SELECT * FROM models WHERE unit_type = ? ORDER BY created_at DESC, model_version LIMIT 1",
            [unit_type],
        )
        if store.count("models")
        else pd.DataFrame()
    )
    if df.empty:
        raise InputDataError(
            f"no trained {unit_type} model in the registry; run `twmb train` first"
        )
    return df.iloc[0]


@in_project_crs
@_thread_limited
def score_latest(
    cfg: Config,
    *,
    unit_types: Sequence[str] | None = None,
    model_version: str | None = None,
    top: int = 10,
) -> dict[str, Any]:
    """Score the latest year of every unit with the newest (or given) model per unit type.

    The drivers of ``[compute] partition_rows`` units at a time, on the configured cluster
    when there is one (``[compute] scheduler``).
    """
    run_id = new_run_id()
    out = []
    with Store(cfg.store_path) as store, open_client(cfg.compute.cluster) as client:
        if model_version:
            rows = {str(r["unit_type"]): r for r in [_model_row(store, "", model_version)]}
        else:
            types = _unit_types(store, unit_types or cfg.model.unit_types)
            rows = {ut: _model_row(store, ut, None) for ut in types}
        for ut, row in rows.items():
            version = str(row["model_version"])
            model = load_model(cfg.out_dir / "models", version)
            md = _load_data(store, cfg, ut, latest_only=True)
            latest = md.latest
            scores = score_units(
                model,
                latest,
                weight=md.weight(latest),
                tiers=cfg.model.tiers,
                block_rows=cfg.compute.partition_rows,
                client=client,
            )
            length = latest.set_index("unit_id")["length_km"]
            scores = scores.assign(
                run_id=run_id,
                model_version=version,
                unit_type=ut,
                feature_year=md.latest_year,
                target_year=md.latest_year + 1,
                length_km=scores["unit_id"].map(length).to_numpy(dtype=float),
                is_current=True,
                scored_at=_now(),
            )
            with store.transaction():
                store.ensure_table("risk_scores")
                store.execute("UPDATE risk_scores SET is_current = false WHERE unit_type = ?", [ut])
                store.insert("risk_scores", conform(scores, "model/risk_scores"))
            tiers = scores.groupby("tier", sort=False).agg(
                units=("unit_id", "size"),
                km=("length_km", "sum"),
                expected=("expected_breaks", "sum"),
            )
            out.append(
                {
                    "unit_type": ut,
                    "model_version": version,
                    "units": len(scores),
                    "feature_year": md.latest_year,
                    "target_year": md.latest_year + 1,
                    "expected_breaks": round(float(scores["expected_breaks"].sum()), 1),
                    "tiers": {
                        str(k): {
                            "units": int(v.units),
                            "km": round(float(v.km), 1) if md.weight_col else None,
                            "expected_breaks": round(float(v.expected), 1),
                        }
                        for k, v in tiers.iterrows()
                    },
                    "top": scores.head(top)[
                        ["rank", "unit_id", "expected_breaks", "probability", "tier", "drivers"]
                    ].to_dict(orient="records"),
                }
            )
    return {"run_id": run_id, "scores": out}


def _current_scores(store: Store, unit_type: str) -> pd.DataFrame:
    if store.count("risk_scores") == 0:
        raise InputDataError("no risk scores in the store; run `twmb score` first")
    df = store.query(
        "SELECT * FROM risk_scores WHERE unit_type = ? AND is_current ORDER BY rank", [unit_type]
    )
    if df.empty:
        raise InputDataError(f"no current {unit_type} scores; run `twmb score` first")
    return df


def _renewal_row(
    common: dict[str, Any],
    horizon: int,
    rk: float | None,
    ru: int | None,
    ren: dict[str, Any],
    residual: float,
) -> pd.DataFrame:
    """The ``renewal`` table row of one scenario."""
    return pd.DataFrame(
        [
            {
                **common,
                "horizon": horizon,
                "replace_km": rk,
                "replace_units": ru,
                "units_replaced": ren["units_replaced"],
                "km_replaced": ren["km_replaced"],
                "share_replaced": (
                    ren["share_of_length"]
                    if ren.get("share_of_length") is not None
                    else ren["share_of_units"]
                ),
                "residual": residual,
                "expected_breaks_baseline": ren["expected_breaks_baseline"],
                "expected_breaks_after": ren["expected_breaks_after"],
                "expected_breaks_avoided": ren["expected_breaks_avoided"],
                "avoided_p10": ren["avoided_p10"],
                "avoided_p50": ren["avoided_p50"],
                "avoided_p90": ren["avoided_p90"],
                "breaks_avoided_per_km": ren["breaks_avoided_per_km"],
                "is_current": True,
            }
        ]
    )


def _simulate_one(
    store: Store, mc: ModelConfig, ut: str, run_id: str, opts: dict[str, Any]
) -> dict[str, Any]:
    """Simulate one unit type from its current scores and store the results."""
    horizon, n_sims, seed, unit_h = opts["horizon"], opts["n_sims"], opts["seed"], opts["unit_h"]
    replace_km, replace_units = opts["replace_km"], opts["replace_units"]
    sc = _current_scores(store, ut)
    version = str(sc["model_version"].iloc[0])
    reg = store.query("SELECT year_cv FROM models WHERE model_version = ?", [version])
    year_cv = (
        float(reg["year_cv"].iloc[0]) if not reg.empty and pd.notna(reg["year_cv"].iloc[0]) else 0.0
    )
    mu = sc["expected_breaks"].to_numpy(dtype=float)
    ids = sc["unit_id"].astype(str).tolist()
    kw = {
        "horizon": horizon,
        "n_sims": n_sims,
        "seed": seed,
        "year_cv": year_cv,
        "annual_growth": mc.annual_growth,
    }
    on = {"block_units": opts["block_units"], "client": opts["client"]}
    length = sc["length_km"].to_numpy(dtype=float)
    has_len = bool(np.isfinite(length).all() and (length > 0).any())
    rk = replace_km if replace_km is not None else (mc.renewal_km if has_len else None)
    # the config's default programme is capped at the whole network (a small city may
    # have fewer units than it); a number the user gives is checked as given
    ru = (
        None
        if rk is not None
        else (replace_units if replace_units is not None else min(mc.renewal_units, len(mu)))
    )
    if rk is not None and not has_len:
        raise InputDataError(
            f"{ut} units have no length, so 'replace the riskiest N km' is undefined; "
            "use --replace-units"
        )
    # the baseline and the breaks the programme avoids from one pass over the same draws
    base, after, ren, _ = simulate_with_renewal(
        mu,
        sc["risk_score"].to_numpy(dtype=float),
        unit_ids=ids,
        unit_horizons=unit_h,
        length_km=length if has_len else None,
        replace_km=rk,
        replace_units=ru,
        residual=mc.renewal_residual,
        **kw,
        **on,
    )
    common = {"run_id": run_id, "model_version": version, "unit_type": ut}
    city = pd.concat(
        [base.city.assign(scenario="baseline"), after.assign(scenario="renewal")],
        ignore_index=True,
    ).assign(**common, n_sims=n_sims, seed=seed, is_current=True)
    units = base.units.assign(**common, is_current=True)
    renewal_row = _renewal_row(common, horizon, rk, ru, ren, mc.renewal_residual)
    with store.transaction():
        for name, df in (
            ("simulation_city", city),
            ("simulation_unit", units),
            ("renewal", renewal_row),
        ):
            store.ensure_table(name)
            store.execute(f'UPDATE "{name}" SET is_current = false WHERE unit_type = ?', [ut])
            store.insert(name, conform(df, f"model/{name}"))
    last = base.city.iloc[-1]
    return {
        "unit_type": ut,
        "model_version": version,
        "horizon": horizon,
        "n_sims": n_sims,
        "year_cv": year_cv,
        "city": base.city.to_dict(orient="records"),
        f"breaks_over_{horizon}_years": {
            k: round(float(last[k]), 1) for k in ("expected", "p10", "p50", "p90", "p95")
        },
        "renewal": ren,
    }


@in_project_crs
@_thread_limited
def run_simulation(
    cfg: Config,
    *,
    unit_types: Sequence[str] | None = None,
    horizon: int | None = None,
    n_sims: int | None = None,
    replace_km: float | None = None,
    replace_units: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Monte Carlo of breaks over 1..horizon years and the renewal scenario, from current scores.

    The units are simulated ``[compute] partition_rows`` at a time, on the configured
    cluster when there is one (``[compute] scheduler``); the result is the same.
    """
    mc = cfg.model
    horizon = horizon or mc.horizon
    n_sims = n_sims or mc.n_sims
    seed = mc.seed if seed is None else seed
    if not 1 <= horizon <= 50:
        raise InputDataError(f"horizon must be 1..50 years, got {horizon}")
    unit_h = sorted({h for h in mc.unit_horizons if h <= horizon} | {horizon})
    run_id = new_run_id()
    out = []
    opts = {
        "horizon": horizon,
        "n_sims": n_sims,
        "seed": seed,
        "unit_h": unit_h,
        "replace_km": replace_km,
        "replace_units": replace_units,
    }
    with Store(cfg.store_path) as store:
        if store.count("risk_scores") == 0:
            raise InputDataError("no risk scores in the store; run `twmb score` first")
        have = set(
            store.query("SELECT DISTINCT unit_type FROM risk_scores WHERE is_current")["unit_type"]
        )
        types = [u for u in (unit_types or mc.unit_types) if u in have]
        if not types:
            raise InputDataError(
                f"no current scores for {list(unit_types or mc.unit_types)}; run `twmb score`"
            )
        with open_client(cfg.compute.cluster) as client:
            opts["client"] = client
            opts["block_units"] = cfg.compute.partition_rows
            for ut in types:
                out.append(_simulate_one(store, mc, ut, run_id, opts))
    return {"run_id": run_id, "simulations": out}
