"""Forward validation of next-year break risk on Toronto H3 cells (the anchor figure of docs/model.md).

For each test year T in 2008..2015: train on cell rows with ``year <= T - 1`` (targets
up to T), score the rows with ``year == T`` (target = breaks in T + 1, i.e. 2009..2016).
Metric: share of next-year breaks in the riskiest 5 % (and 10 %) of cells,
``capture_at(target_count, score, frac, ties="average")``, averaged over the 8 years.

Build the store first::

    cd /tmp && twmb -q --out /tmp/tor run

then::

    python benchmarks/toronto_forward.py --store /tmp/tor/twmb.duckdb [--quick]

Prints one JSON document: per model/baseline the mean capture at 5 % and 10 %, the
per-year values and timings. The blend weight (model rank vs. past-5-year rank) is
chosen per test year T by an inner forward validation on training years only
(fit on ``year <= T - 2``, validate on ``year == T - 1``); test years are never used
to choose anything.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from twmb_geo.features.history import HISTORY_FEATURES
from twmb_geo.model.baselines import EmpiricalBayesRateBaseline, PastBreaksBaseline
from twmb_geo.model.estimators import BreakCountRegressor, BreakRiskClassifier
from twmb_geo.model.metrics import capture_at
from twmb_geo.model.splitters import ForwardSplit

TEST_YEARS = list(range(2008, 2016))
FRACS = (0.05, 0.10)
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: boosting settings the figures of this benchmark were measured with
BOOST = {"learning_rate": 0.05, "max_iter": 200}

HISTORY = [*HISTORY_FEATURES, "density_last5_per_km2"]
LAGS_ADJ = [
    "lag1_breaks_last5_adj",
    "lag2_breaks_last5_adj",
    "lag1_decayed_adj",
    "lag2_decayed_adj",
    "lag1_rate_adj",
]


def load_panel(store: str) -> pd.DataFrame:
    import twmb_geo

    s = twmb_geo.open_store(store, read_only=True)
    p = s.read("panel", "unit_type = 'cell'")
    return p.sort_values(["unit_id", "year"], kind="stable").reset_index(drop=True)


def rank01(s: np.ndarray) -> np.ndarray:
    """Average-tie percentile rank in [0, 1] (NaN -> 0)."""
    r = pd.Series(np.nan_to_num(s, nan=-np.inf)).rank(method="average").to_numpy()
    return (r - 1.0) / max(len(r) - 1, 1)


def caps(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return {f"{f:.2f}": capture_at(y, score, f, ties="average") for f in FRACS}


def fit_score(make: Callable[[], Any], tr: pd.DataFrame, te: pd.DataFrame, ycol: str) -> np.ndarray:
    m = make()
    m.fit(tr, tr[ycol].to_numpy())
    return np.asarray(m.risk_score(te), dtype=float)


def blend_score(model_s: np.ndarray, past_s: np.ndarray, w: float) -> np.ndarray:
    return w * rank01(model_s) + (1.0 - w) * rank01(past_s)


def run(panel: pd.DataFrame, quick: bool = False) -> dict[str, Any]:
    years = TEST_YEARS[-2:] if quick else TEST_YEARS
    split = ForwardSplit(test_years=years)
    specs: dict[str, tuple[Callable[[], Any], str]] = {
        "past5 (breaks_last5)": (lambda: PastBreaksBaseline("breaks_last5"), "target_any"),
        "decayed": (lambda: PastBreaksBaseline("decayed"), "target_any"),
        "empirical_bayes": (lambda: EmpiricalBayesRateBaseline(), "target_any"),
        "hgb_classifier_calibrated": (lambda: BreakRiskClassifier(**BOOST), "target_any"),
        "hgb_classifier_raw": (
            lambda: BreakRiskClassifier(calibrate=False, **BOOST),
            "target_any",
        ),
        "hgb_poisson": (lambda: BreakCountRegressor(calibrate=False, **BOOST), "target_count"),
        "hgb_poisson_history_only": (
            lambda: BreakCountRegressor(features=HISTORY, calibrate=False, **BOOST),
            "target_count",
        ),
        "hgb_poisson_history_adjlags": (
            lambda: BreakCountRegressor(features=HISTORY + LAGS_ADJ, calibrate=False, **BOOST),
            "target_count",
        ),
        "logistic": (
            lambda: BreakRiskClassifier("logistic", calibrate=False, **BOOST),
            "target_any",
        ),
    }
    blend_of = ["hgb_poisson", "hgb_classifier_raw"]
    out: dict[str, dict[str, Any]] = {
        k: {"per_year": {}, "fit_predict_seconds": 0.0} for k in specs
    }
    for b in blend_of:
        out[f"blend({b}, past5) inner-tuned"] = {
            "per_year": {},
            "weights": {},
            "fit_predict_seconds": 0.0,
        }
    for tr_idx, te_idx in split.split(panel):
        tr, te = panel.iloc[tr_idx], panel.iloc[te_idx]
        T = int(te["year"].iloc[0])
        y = te["target_count"].to_numpy(dtype=float)
        scores: dict[str, np.ndarray] = {}
        for name, (make, ycol) in specs.items():
            t0 = time.perf_counter()
            scores[name] = fit_score(make, tr, te, ycol)
            out[name]["fit_predict_seconds"] += time.perf_counter() - t0
            out[name]["per_year"][T] = caps(y, scores[name])
        # inner validation for the blend weight: fit <= T-2, validate on T-1
        inner_tr = tr[tr["year"] <= T - 2]
        inner_va = tr[tr["year"] == T - 1]
        yv = inner_va["target_count"].to_numpy(dtype=float)
        for b in blend_of:
            key = f"blend({b}, past5) inner-tuned"
            t0 = time.perf_counter()
            make, ycol = specs[b]
            sv = fit_score(make, inner_tr, inner_va, ycol)
            pv = inner_va["breaks_last5"].to_numpy(dtype=float)
            val = {
                w: capture_at(yv, blend_score(sv, pv, w), 0.05, ties="average")
                for w in BLEND_WEIGHTS
            }
            w_best = max(BLEND_WEIGHTS, key=lambda w: (val[w], -abs(w - 0.5)))
            s = blend_score(scores[b], te["breaks_last5"].to_numpy(dtype=float), w_best)
            out[key]["fit_predict_seconds"] += time.perf_counter() - t0  # inner fit only
            out[key]["weights"][T] = w_best
            out[key]["per_year"][T] = caps(y, s)
        # fixed 50/50 blend (no tuning at all) for reference
        key = "blend(hgb_poisson, past5) fixed 0.5"
        out.setdefault(key, {"per_year": {}})
        s = blend_score(scores["hgb_poisson"], te["breaks_last5"].to_numpy(dtype=float), 0.5)
        out[key]["per_year"][T] = caps(y, s)
    for res in out.values():
        py = res["per_year"]
        for f in FRACS:
            res[f"mean_capture_at_{f:.2f}"] = float(np.mean([v[f"{f:.2f}"] for v in py.values()]))
        if "fit_predict_seconds" in res:
            res["fit_predict_seconds"] = round(res["fit_predict_seconds"], 2)
    return {
        "setup": {
            "units": "H3 res-9 cells",
            "n_cells": int(panel["unit_id"].nunique()),
            "test_years_T": years,
            "target_years": [T + 1 for T in years],
            "metric": "capture_at(target_count, score, frac, ties='average'), mean over years",
        },
        "results": out,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="/tmp/tor/twmb.duckdb")
    ap.add_argument("--quick", action="store_true", help="only the last two test years")
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = run(load_panel(args.store), quick=args.quick)
    res["total_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
