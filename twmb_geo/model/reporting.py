"""Summaries of cross-validation metrics: fold means, headline, lifts, optimism, leakage.

The functions take the long-format metrics of :func:`twmb_geo.model.training.cross_validate`
(one row per scheme, model, fold and metric) or their :func:`summarise_cv` summary; the
champion (in forward validation: the nested selection procedure) is named :data:`MODEL`,
candidates and baselines by their own names.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .metrics import leakage_warnings, lift

__all__ = [
    "MODEL",
    "disagreement",
    "headline",
    "leakage",
    "lifts",
    "optimism",
    "scheme_means",
    "summarise_cv",
]

#: model name of the champion in the metric tables (candidates use their own names)
MODEL = "champion"


def summarise_cv(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and fold count per scheme, model and metric."""
    if metrics.empty:
        return pd.DataFrame(columns=["scheme", "model", "metric", "mean", "std", "n_folds"])
    g = metrics.groupby(["scheme", "model", "metric"], sort=True)["value"]
    return pd.DataFrame(
        {"mean": g.mean(), "std": g.std(ddof=1), "n_folds": g.count()}
    ).reset_index()


def scheme_means(summary: pd.DataFrame, scheme: str) -> dict[str, dict[str, float]]:
    """Mean of every metric per model name for one scheme."""
    s = summary[summary["scheme"] == scheme]
    out: dict[str, dict[str, float]] = {}
    for r in s.itertuples(index=False):
        out.setdefault(str(r.model), {})[str(r.metric)] = float(r.mean)
    return out


def leakage(metrics: pd.DataFrame, baselines: list[str] | None = None) -> list[str]:
    """Leakage guard per non-random scheme (random K-fold is optimistic by design).

    The champion is compared with ``baselines`` (every other model name when None).
    """
    summary = summarise_cv(metrics)
    out = []
    for scheme in summary["scheme"].unique():
        if scheme == "random":
            continue
        # units that never broke tie at zero under every history baseline, so their
        # capture is the random share: comparing against it would always "warn"
        means = {
            name: {k: v for k, v in m.items() if "_new_" not in k}
            for name, m in scheme_means(summary, scheme).items()
        }
        model = means.pop(MODEL, {})
        if baselines is not None:
            means = {k: v for k, v in means.items() if k in baselines}
        for w in leakage_warnings(model, means):
            out.append(f"{scheme}: {w}")
    return out


def disagreement(metrics: pd.DataFrame, metric: str = "capture_5pct") -> list[str]:
    """Warnings where a scheme's champion skill differs from forward by more than the spread.

    The spread is the larger of the two schemes' fold standard deviations; random K-fold
    is included (its optimism is the point of reporting it).
    """
    summary = summarise_cv(metrics)
    s = summary[(summary["model"] == MODEL) & (summary["metric"] == metric)].set_index("scheme")
    if "forward" not in s.index:
        return []
    fm, fs = float(s.at["forward", "mean"]), float(s.at["forward", "std"])
    out = []
    for scheme in s.index:
        if scheme == "forward":
            continue
        m, sd = float(s.at[scheme, "mean"]), float(s.at[scheme, "std"])
        spread = max(v for v in (fs, sd, 0.0) if math.isfinite(v))
        if math.isfinite(m) and math.isfinite(fm) and abs(m - fm) > spread:
            out.append(
                f"{scheme} validation gives {metric} {m:.3f} against {fm:.3f} forward, a "
                f"difference of {m - fm:+.3f}, more than the fold spread ({spread:.3f}): "
                "trust the forward figure for next year's ranking"
            )
    return out


def headline(summary: pd.DataFrame, baselines: list[str] | None = None) -> dict[str, Any]:
    """The figures a registry row and a dashboard need, from :func:`summarise_cv`.

    ``baselines`` names the baseline rankings (every non-champion name when None).
    """

    def get(scheme: str, model: str, metric: str) -> float | None:
        s = summary[
            (summary["scheme"] == scheme)
            & (summary["model"] == model)
            & (summary["metric"] == metric)
        ]
        if s.empty or not np.isfinite(s["mean"].iloc[0]):
            return None
        return float(s["mean"].iloc[0])

    fw = scheme_means(summary, "forward")
    base = {
        k: v.get("capture_5pct", math.nan)
        for k, v in fw.items()
        if k != MODEL and (baselines is None or k in baselines)
    }
    base = {k: v for k, v in base.items() if math.isfinite(v)}
    best = max(base, key=base.__getitem__) if base else None
    rnd, fwd = get("random", MODEL, "capture_5pct"), get("forward", MODEL, "capture_5pct")
    spa = get("spatial", MODEL, "capture_5pct")
    return {
        "forward_capture_5pct": get("forward", MODEL, "capture_5pct"),
        "forward_capture_10pct": get("forward", MODEL, "capture_10pct"),
        "forward_roc_auc": get("forward", MODEL, "roc_auc"),
        "spatial_capture_5pct": spa,
        "random_capture_5pct": rnd,
        "random_cv_optimism_5pct": None if rnd is None or fwd is None else rnd - fwd,
        "best_baseline": best,
        "best_baseline_capture_5pct": base.get(best) if best else None,
    }


def lifts(summary: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """Model / baseline capture ratios per scheme and baseline."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for scheme in summary["scheme"].unique():
        means = scheme_means(summary, scheme)
        model = means.pop(MODEL, {})
        out[str(scheme)] = {b: lift(model, m) for b, m in means.items()}
    return out


def optimism(summary: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """How much random K-fold overstates skill against spatial and forward validation."""
    out: dict[str, dict[str, float | None]] = {}
    means = {s: scheme_means(summary, s).get(MODEL, {}) for s in ("random", "spatial", "forward")}
    for metric in ("capture_5pct", "capture_10pct", "roc_auc", "pr_auc"):
        r = means["random"].get(metric)
        row: dict[str, float | None] = {}
        for other in ("spatial", "forward"):
            o = means[other].get(metric)
            ok = r is not None and o is not None and math.isfinite(r) and math.isfinite(o)
            row[f"random_minus_{other}"] = (r - o) if ok else None  # type: ignore[operator]
            row[f"random_over_{other}"] = (r / o) if ok and o else None  # type: ignore[operator]
        out[metric] = row
    return out
