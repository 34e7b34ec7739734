"""Champion selection by nested forward validation: the candidate a planner can trust.

The candidates of a unit type are its learned models (:mod:`twmb_geo.model.candidates`),
its baselines and blends of each model with the best baseline (the model "shrunk toward"
the rule: a weighted mean of the two percentiles). :func:`forward_folds` walks the test
year ``T`` forward, fitting every model and baseline on the years before ``T`` and keeping
their scores of year ``T``; blends cost nothing more.

Nested selection (:func:`select`): for each *outer* test year ``T`` the champion is chosen
on the ``selection_years`` fold years just before ``T`` (inner forward validation: the
models were trained on years before each of them, so the choice never sees year ``T``'s
targets; small cities look back further, see :func:`inner_years`), then scored on ``T`` with the candidate's own fit of the years before ``T``. The
mean over the outer years is the forward skill of the whole *procedure*, the number the
card headlines. The champion that is published is chosen the same way on the last
``selection_years`` fold years. Ties go to the simpler candidate (baseline, then blend,
then model), so a model must beat the rules to be published.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ..core.cluster import map_largest_first
from ..core.compute import ThreadPlan, thread_plan
from ..errors import InputDataError
from .champion import ChampionModel, Ecdf, RateCalibrator, fit_member, member_score
from .metrics import capture_curve, evaluate
from .reporting import MODEL

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = [
    "CHAMPION",
    "Candidate",
    "FoldScores",
    "Selection",
    "candidate_list",
    "fold_years",
    "forward_folds",
    "make_champion",
    "metric_rows",
    "select",
]

log = logging.getLogger(__name__)

#: model name of the selection procedure (and the published champion) in metric tables
CHAMPION = MODEL
Family = Literal["baseline", "blend", "model"]
_ORDER: dict[str, int] = {"baseline": 0, "blend": 1, "model": 2}


@dataclass(frozen=True)
class Candidate:
    """A candidate ranking: its members (model/baseline names) and blend weights."""

    name: str
    family: Family
    parts: tuple[str, ...]
    weights: tuple[float, ...] | None = None


@dataclass
class FoldScores:
    """One forward fold: test-year rows and every member's scores of them."""

    year: int
    n_train: int
    test: pd.DataFrame
    y: np.ndarray
    w: np.ndarray | None
    score: dict[str, np.ndarray] = field(default_factory=dict)
    pct: dict[str, np.ndarray] = field(default_factory=dict)


#: most fold years the selection of one outer year looks back over
MAX_SELECTION_YEARS = 10


def inner_years(
    T: int, done: Sequence[int], breaks: Mapping[int, float], min_years: int, min_breaks: float
) -> list[int]:
    """The fold years just before ``T`` the champion of ``T`` is chosen on.

    At least ``min_years`` (fewer only when fewer exist), more until their test years hold
    ``min_breaks`` breaks, at most :data:`MAX_SELECTION_YEARS`: small cities look back
    further so the choice rests on enough breaks.
    """
    prev = [y for y in done if y < T]
    out: list[int] = []
    for y in reversed(prev):
        out.insert(0, y)
        if len(out) >= MAX_SELECTION_YEARS:
            break
        if len(out) >= min_years and sum(breaks.get(z, 0.0) for z in out) >= min_breaks:
            break
    return out


def fold_years(
    labelled_years: Sequence[int],
    outer: int,
    breaks: Mapping[int, float],
    min_years: int,
    min_breaks: float,
) -> tuple[list[int], list[int]]:
    """(fold years to fit, outer test years): the last ``outer`` usable years that have at
    least one earlier usable year, plus the selection years of the first of them.

    A usable year leaves at least two earlier training years; ``breaks`` holds the observed
    next-year breaks per labelled year (see :func:`inner_years`).
    """
    years = sorted(int(y) for y in labelled_years)
    usable = years[2:]
    if len(usable) < 2:
        raise InputDataError(
            "forward validation with champion selection needs at least 4 labelled years "
            f"(two to train, one to select, one to test); the panel has {years}"
        )
    outer_years = usable[1:][-outer:]
    first = inner_years(outer_years[0], usable, breaks, min_years, min_breaks)
    return sorted({*first, *usable[usable.index(outer_years[0]) :]}), outer_years


def _forward_fold(
    lab: pd.DataFrame,
    members: Mapping[str, BaseEstimator],
    T: int,
    density_col: str | None,
    weight_col: str | None,
) -> FoldScores | None:
    """Fit every member on the years before ``T`` and score year ``T`` (None: no breaks to
    learn from or no test rows)."""
    year = lab["year"].to_numpy()
    tr, te = lab[year <= T - 1], lab[year == T]
    ytr = tr["target_count"].to_numpy(dtype=float)
    if len(te) == 0 or (ytr > 0).sum() == 0:
        return None
    ref = tr[tr["year"].to_numpy() == tr["year"].max()]
    f = FoldScores(
        year=int(T),
        n_train=len(tr),
        test=te,
        y=te["target_count"].to_numpy(dtype=float),
        w=None if weight_col is None else te[weight_col].to_numpy(dtype=float),
    )
    for name, est in members.items():
        m = fit_member(est, tr, ytr)
        f.score[name] = member_score(m, te, density_col)
        f.pct[name] = Ecdf(member_score(m, ref, density_col))(f.score[name])
    return f


def forward_folds(
    lab: pd.DataFrame | Future,
    members: Mapping[str, BaseEstimator],
    years: Sequence[int],
    *,
    density_col: str | None,
    weight_col: str | None,
    progress: Callable[[str], None] | None = None,
    label: str = "",
    n_jobs: int = 1,
    plan: ThreadPlan | None = None,
    client: Client | None = None,
) -> list[FoldScores]:
    """Fit every member on the years before each test year and score the test year.

    The folds are independent: with ``n_jobs`` other than 1 they run in that many worker
    processes (joblib's ``loky``; -1: one per core), each with its share of the threads
    (``plan``, default :func:`~twmb_geo.core.compute.thread_plan` of the cores available
    and ``n_jobs``; a given plan sets the workers instead of ``n_jobs``). With a Dask
    ``client`` they run as tasks on its cluster instead, ``lab`` then best sent to the
    workers once (:func:`~twmb_geo.core.cluster.shared_data`: a future of the rows). The
    latest test years, the folds with the most training rows, start first. The result does
    not depend on where or in which order they run.
    """
    plan = plan or thread_plan(None, n_jobs)
    jobs = [(lab, members, int(T), density_col, weight_col) for T in years]
    # a later test year trains on more years: the largest folds go first
    done: dict[int, FoldScores | None] = {}
    for k, f in map_largest_first(_forward_fold, jobs, [float(T) for T in years], plan, client):
        done[k] = f
        if progress:
            progress(f"{label}forward fold {len(done)}/{len(years)}")
    out: list[FoldScores] = []
    for k, T in enumerate(years):
        f = done[k]
        if f is None:
            log.warning("%sforward year %d skipped: no breaks in its training rows", label, T)
            continue
        out.append(f)
    return out


def candidate_list(
    models: Sequence[str],
    baselines: Sequence[str],
    best_baseline: str | None,
    weights: Sequence[float],
) -> list[Candidate]:
    """Baselines, blends of each model with ``best_baseline``, then models."""
    out = [Candidate(b, "baseline", (b,)) for b in baselines]
    if best_baseline is not None:
        for m in models:
            for w in weights:
                out.append(
                    Candidate(
                        f"blend_{m}_{best_baseline}_{w:g}",
                        "blend",
                        (m, best_baseline),
                        (float(w), 1.0 - float(w)),
                    )
                )
    out += [Candidate(m, "model", (m,)) for m in models]
    return out


def cand_score(f: FoldScores, c: Candidate) -> np.ndarray:
    """The candidate's score of fold ``f``'s test rows."""
    if c.weights is None:
        return f.score[c.parts[0]]
    return np.sum([w * f.pct[p] for w, p in zip(c.weights, c.parts, strict=True)], axis=0)


def selection_score(f: FoldScores, s: np.ndarray) -> float:
    """What selection maximises: mean capture at 5 % and 10 % (steadier than 5 % alone).

    Both from one ranking of the fold (:func:`~.metrics.capture_curve`: the values
    :func:`~.metrics.capture_at` gives one share at a time).
    """
    if f.y.sum() <= 0:
        return float("nan")
    cap = capture_curve(f.y, s, f.w, [0.05, 0.10], ties="average")["capture"].to_numpy()
    return float(0.5 * (cap[0] + cap[1]))


#: selection scores already worked out, by (fold year, candidate name): the folds of one
#: outer year are the inner folds of the next ones too
ScoreCache = dict[tuple[int, str], float]


def _cached_score(f: FoldScores, c: Candidate, cache: ScoreCache | None) -> float:
    if cache is None:
        return selection_score(f, cand_score(f, c))
    key = (f.year, c.name)
    if key not in cache:
        cache[key] = selection_score(f, cand_score(f, c))
    return cache[key]


def _mean(vals: list[float]) -> float:
    v = [x for x in vals if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


@dataclass
class Choice:
    """The candidate chosen on some inner years and every candidate's inner mean."""

    pick: Candidate
    inner_years: list[int]
    means: dict[str, float]
    best_baseline: str | None


def choose(
    folds: Sequence[FoldScores],
    models: Sequence[str],
    baselines: Sequence[str],
    weights: Sequence[float],
    forced: str | None = None,
    cache: ScoreCache | None = None,
) -> Choice:
    """The candidate with the best mean :func:`selection_score` over ``folds`` (ties: simplest).

    ``cache`` keeps the scores of (fold, candidate) between calls on overlapping folds.
    """
    base_means = {
        b: _mean([_cached_score(f, Candidate(b, "baseline", (b,)), cache) for f in folds])
        for b in baselines
    }
    finite = {b: v for b, v in base_means.items() if np.isfinite(v)}
    best_b = max(finite, key=lambda b: (finite[b], -list(baselines).index(b))) if finite else None
    cands = candidate_list(models, baselines, best_b, weights)
    means = {c.name: _mean([_cached_score(f, c, cache) for f in folds]) for c in cands}
    if forced is not None:
        by_name = {c.name: c for c in cands}
        if forced not in by_name:
            raise InputDataError(
                f"[model] champion = {forced!r} is not a candidate here; candidates: "
                f"{list(by_name)} (or 'auto')"
            )
        pick = by_name[forced]
    else:
        pick = cands[0]
        for c in cands[1:]:  # strictly better only: ties stay with the simpler candidate
            if np.isfinite(means[c.name]) and not means[c.name] <= means[pick.name]:
                pick = c
    return Choice(pick, [f.year for f in folds], means, best_b)


@dataclass
class Selection:
    """What the nested selection measured and chose."""

    final: Choice
    outer: dict[int, Choice]
    metrics: list[dict[str, Any]]
    totals: list[dict[str, Any]]
    preds: pd.DataFrame
    calibration: tuple[np.ndarray, np.ndarray, np.ndarray | None]
    outer_years: list[int]
    member_names: list[str]


def _pool(
    folds: Sequence[FoldScores], c: Candidate
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    s = np.concatenate([cand_score(f, c) for f in folds])
    y = np.concatenate([f.y for f in folds])
    ws = [f.w for f in folds if f.w is not None]
    w = np.concatenate(ws) if ws and len(ws) == len(folds) else None
    return s, y, w


def _calibrated(
    folds: Sequence[FoldScores], c: Candidate, density_col: str | None, f: FoldScores
) -> tuple[np.ndarray, np.ndarray]:
    """Expected breaks and P(break) of fold ``f`` from the calibration on ``folds``."""
    s, y, w = _pool(folds, c)
    rate = RateCalibrator().fit(s, y, w if density_col else None).rate(cand_score(f, c))
    exp = rate if f.w is None or density_col is None else rate * np.where(f.w > 0, f.w, 0.0)
    return exp, -np.expm1(-np.maximum(exp, 0.0))


def metric_rows(
    key: Mapping[str, Any],
    test: pd.DataFrame,
    y: np.ndarray,
    w: np.ndarray | None,
    score: np.ndarray,
    prob: np.ndarray | None,
    fracs: Sequence[float],
) -> list[dict[str, Any]]:
    """Long-format metric rows (``key`` columns + ``metric``, ``value``) of one ranking of
    ``test`` rows with observed counts ``y`` (units that never broke: ``breaks_to_date`` 0)."""
    m = evaluate(
        y,
        score,
        prob,
        weight=w,
        fracs=fracs,
        new_mask=test["breaks_to_date"].fillna(0).to_numpy() == 0,
    )
    out = []
    for metric, value in m.items():
        if metric == "notes":
            continue
        v = float(value)  # type: ignore[arg-type]
        out.append({**key, "metric": metric, "value": v if np.isfinite(v) else None})
    return out


def _rows(
    name: str, f: FoldScores, score: np.ndarray, prob: np.ndarray | None, fracs: Sequence[float]
) -> list[dict[str, Any]]:
    key = {
        "scheme": "forward",
        "model": name,
        "fold": f.year,
        "test_year": f.year,
        "n_train": f.n_train,
        "n_test": len(f.test),
    }
    return metric_rows(key, f.test, f.y, f.w, score, prob, fracs)


def select(
    folds: Sequence[FoldScores],
    outer_years: Sequence[int],
    models: Sequence[str],
    baselines: Sequence[str],
    *,
    min_years: int,
    min_breaks: float,
    blend_weights: Sequence[float],
    density_col: str | None,
    fracs: Sequence[float],
    forced: str | None = None,
) -> Selection:
    """Nested champion selection over the forward ``folds`` (see the module docstring)."""
    by_year = {f.year: f for f in folds}
    done = sorted(by_year)
    breaks = {f.year: float(f.y.sum()) for f in folds}
    if not done:
        raise InputDataError("no forward fold could be fitted: no breaks in any training window")
    choices: dict[int, Choice] = {}
    cache: ScoreCache = {}
    rows: list[dict[str, Any]] = []
    totals: list[dict[str, Any]] = []
    preds: list[pd.DataFrame] = []
    members = [*models, *baselines]
    for T in outer_years:
        if T not in by_year:
            continue
        inner = [by_year[y] for y in inner_years(T, done, breaks, min_years, min_breaks)]
        if not inner:
            continue
        ch = choose(inner, models, baselines, blend_weights, forced, cache)
        choices[T] = ch
        f = by_year[T]
        s = cand_score(f, ch.pick)
        exp, prob = _calibrated(inner, ch.pick, density_col, f)
        rows += _rows(CHAMPION, f, s, prob, fracs)
        for name in members:
            rows += _rows(name, f, f.score[name], None, fracs)
        totals.append({"test_year": T, "observed": float(f.y.sum()), "expected": float(exp.sum())})
        preds.append(
            pd.DataFrame(
                {
                    "test_year": T,
                    "y": f.y,
                    "prob": prob,
                    "weight": f.w if f.w is not None else 1.0,
                    CHAMPION: s,
                    **{n: f.score[n] for n in members},
                }
            )
        )
    if not choices:
        raise InputDataError(
            "no outer forward year has an earlier year to select on; the panel needs more "
            "labelled years (or a smaller [model] selection_years)"
        )
    last = [by_year[y] for y in inner_years(done[-1] + 1, done, breaks, min_years, min_breaks)]
    final = choose(last, models, baselines, blend_weights, forced, cache)
    return Selection(
        final=final,
        outer=choices,
        metrics=rows,
        totals=totals,
        preds=pd.concat(preds, ignore_index=True),
        calibration=_pool(last, final.pick),
        outer_years=sorted(choices),
        member_names=members,
    )


def make_champion(
    c: Candidate, estimators: Mapping[str, BaseEstimator], density_col: str | None
) -> ChampionModel:
    """The unfitted :class:`ChampionModel` of candidate ``c``."""
    return ChampionModel(
        name=c.name,
        members=[(p, estimators[p]) for p in c.parts],
        weights=c.weights,
        density_col=density_col,
    )


def summary_block(sel: Selection, families: Mapping[str, str]) -> dict[str, Any]:
    """The card's ``champion`` block (see docs/model.md, "Champion selection")."""
    met = pd.DataFrame(sel.metrics)

    def stats(name: str, metric: str) -> dict[str, Any]:
        s = met[(met["model"] == name) & (met["metric"] == metric)]
        vals = s.set_index("test_year")["value"].astype(float)
        return {
            "mean": float(vals.mean()) if len(vals) else None,
            "std": float(vals.std(ddof=1)) if len(vals) > 1 else None,
            "by_year": {str(int(k)): (None if pd.isna(v) else float(v)) for k, v in vals.items()},
        }

    metrics = ("capture_5pct", "capture_10pct")
    champ = {m: stats(CHAMPION, m) for m in metrics}
    cands = {n: {m: stats(n, m) for m in metrics} for n in sel.member_names}
    baselines = [n for n in sel.member_names if families.get(n) == "baseline"]
    base5 = {b: cands[b]["capture_5pct"]["mean"] for b in baselines}
    base5 = {b: v for b, v in base5.items() if v is not None and np.isfinite(v)}
    best = max(base5, key=base5.__getitem__) if base5 else None
    c5 = champ["capture_5pct"]
    wins = 0
    if best is not None:
        bb = cands[best]["capture_5pct"]["by_year"]
        wins = sum(
            1
            for y, v in c5["by_year"].items()
            if v is not None and bb.get(y) is not None and v >= bb[y] - 1e-12
        )
    fp = sel.final.pick
    return {
        "name": fp.name,
        "family": fp.family,
        "members": list(fp.parts),
        "weights": None if fp.weights is None else list(fp.weights),
        "metric": "capture_5pct",
        "selection_metric": "mean of capture at 5 % and 10 % over the selection years",
        "selection": {
            "inner_years": sel.final.inner_years,
            "best_baseline": sel.final.best_baseline,
            "scores": {k: (None if not np.isfinite(v) else v) for k, v in sel.final.means.items()},
        },
        "outer": {
            "years": sel.outer_years,
            "picks": {str(y): ch.pick.name for y, ch in sorted(sel.outer.items())},
            "champion": champ,
            "candidates": cands,
            "baselines": baselines,
            "best_baseline": best,
            "best_baseline_capture_5pct": base5.get(best) if best else None,
            "wins": wins,
            "n_years": len(sel.outer_years),
        },
    }
