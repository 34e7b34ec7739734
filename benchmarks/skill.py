"""Skill benchmark: the champion's outer forward capture vs every baseline, across cities, as JSON.

For each city the package trains its models (``twmb_geo.model.stage.train_models``), and the
benchmark reads the ``champion`` block of every model card: the outer forward capture at 5 %
and 10 % of the whole (nested) selection procedure, each baseline's outer capture, the best
baseline, the lift (champion / best baseline - 1) and the outer years won. On synthetic cities
it also gives the Spearman correlation of the current (champion's) scores with the true hazard
of the target year. At the end, per unit type: the mean lift over the cities and whether the
champion was at least the best baseline (within the fold spread) everywhere.

Cities
------
* ``toronto``: the bundled Toronto data (H3 res-9 cells only: no pipe network); an existing
  store (``--toronto-store``) or ``twmb_geo.run(default_config(WORK/toronto), with_model=False,
  ...)`` into the work folder.
* Synthetic cities (``twmb_geo.synth``, seed 42, study window 1990-2016) of several sizes and
  two regimes (presets of :class:`~twmb_geo.synth.SynthParams` overrides, see ``REGIMES``):
  cell level ``c300``, ``c1000``, ``c6000`` (about 300, 1,000 and 6,000 cells; cells trained)
  and pipe level ``p2k``, ``p15k``, ``p50k`` (2k, 15k and 49k pipes; pipes and cells
  trained). ``c6000`` and ``p50k`` are the same city (the full Toronto-size city), set up and
  trained once. Window cities (fewer than 49,000 pipes) derive their service area from the
  network (``[project] service_area = "h3"``) so their cells cover the window and not all of
  Toronto; the full city keeps the neighbourhood boundary (Toronto's 6,024 cells).

Setup (generate, write, ingest, features) runs in a child process per city and is cached
under ``--work`` (reused with ``--reuse``; a store built by other ingest/feature code than the
running one is reused with a warning in the JSON); training, scoring and the measures run in
another child per city, one at a time, so each city's time and peak RSS are its own.
``--quick``: the smallest cell city (``c300``), the ``history`` regime and no Toronto (unless
``--toronto-store``). ``--self-check`` runs the reporting on a hand-made card and truth.

A card without a ``champion`` block (the model stage before champion selection) gives
``"champion": null``, the card's ``headline`` and the headline lift (model / best baseline -
1, forward CV) instead.

Work folder::

    WORK/toronto/                  twmb.duckdb, models/, setup.json (unless --toronto-store)
    WORK/synth/<regime>-n<pipes>/  city/ (published files, truth/, twmb.toml), twmb.duckdb,
                                   models/, setup.json

Usage::

    python benchmarks/skill.py [--work /tmp/twmb-skill] [--reuse] [--sizes c300,p2k,...]
        [--regimes history,attribute] [--toronto-store OUT/twmb.duckdb | --no-toronto]
        [--quick] [--setup-only] [--output FILE] [--self-check]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _bench import RssSampler, machine, maxrss_gb, phase

#: synthetic sizes: label -> (n_pipes, level, target)
SIZES: dict[str, tuple[int, str, str]] = {
    "c300": (2_600, "cell", "about 300 H3 res-9 cells"),
    "c1000": (10_800, "cell", "about 1,000 H3 res-9 cells"),
    "c6000": (49_000, "cell", "about 6,000 H3 res-9 cells (the full Toronto-size city)"),
    "p2k": (2_000, "pipe", "2k pipes"),
    "p15k": (15_000, "pipe", "15k pipes"),
    "p50k": (49_000, "pipe", "50k pipes (the default 49,000 active pipes fill Toronto)"),
}
FULL_CITY_PIPES = 49_000  # from here on the city fills the service area (SynthParams docs)
SEED = 42
QUICK_SIZES = ("c300",)
QUICK_REGIMES = ("history",)

#: regimes: SynthParams overrides (per-material tables are built by _regime_params)
REGIMES: dict[str, dict[str, Any]] = {
    "history": {
        "what": (
            "history-dominated: strong self-excitation (a break makes the next ones on the "
            "same pipe up to 7x likelier for 5 years), weak attribute effects"
        ),
        "repeat_alpha": 2.0,
        "repeat_cap": 3,
        "repeat_window": 5,
        "soil_beta": 0.1,
        "diameter_exponent": 0.15,
        "age_rate_factor": 0.25,
        "base_rate_power": 0.25,
    },
    "attribute": {
        "what": (
            "attribute-dominated: no self-excitation, strong age, material, diameter and "
            "soil effects"
        ),
        "repeat_alpha": 0.0,
        "soil_beta": 0.8,
        "diameter_exponent": 1.0,
        "age_rate_factor": 2.0,
        "base_rate_power": 1.5,
    },
}
_REGIME_NOTES = {
    "age_rate_factor": "every material's age_rate (ageing per year) times this",
    "base_rate_power": "base_rate[m] = base_rate[CI] * (default base_rate[m] / base_rate[CI]) ** power",
}
METRICS = ("capture_5pct", "capture_10pct")


def _progress(label: str) -> Any:
    t0 = time.perf_counter()

    def tick(msg: str, i: int, n: int) -> None:
        print(
            f"[{label} {time.perf_counter() - t0:7.1f}s] {msg} ({i}/{n})",
            file=sys.stderr,
            flush=True,
        )

    return tick


# --------------------------------------------------------------------------- cities


def _regime_params(regime: str) -> dict[str, Any]:
    """The SynthParams overrides of a regime (per-material tables resolved)."""
    from twmb_geo.synth.params import AGE_RATE, BASE_RATE

    spec = {k: v for k, v in REGIMES[regime].items() if k != "what"}
    age_f = spec.pop("age_rate_factor", 1.0)
    power = spec.pop("base_rate_power", 1.0)
    ref = dict(BASE_RATE)["CI"]
    spec["age_rate"] = tuple((m, round(g * age_f, 6)) for m, g in AGE_RATE)
    spec["base_rate"] = tuple((m, round(ref * (b / ref) ** power, 6)) for m, b in BASE_RATE)
    return spec


def _regimes_doc() -> dict[str, Any]:
    """The presets as they go into the JSON (tables as objects)."""
    out: dict[str, Any] = {}
    for name, spec in REGIMES.items():
        resolved = _regime_params(name)
        out[name] = {
            "what": spec["what"],
            "preset": {k: v for k, v in spec.items() if k != "what"},
            "synth_params_overrides": {
                k: dict(v) if k in ("age_rate", "base_rate") else v for k, v in resolved.items()
            },
        }
    out["notes"] = {
        **_REGIME_NOTES,
        "common": (
            f"seed {SEED}, study window 1990-2016, snapshot 2025, calibrated to Toronto's "
            "1,313.5 breaks a year x n_pipes / 49,000; other SynthParams at their defaults"
        ),
    }
    return out


def _synth_cities(sizes: list[str], regimes: list[str]) -> list[dict[str, Any]]:
    """One entry per (regime, n_pipes): the sizes it serves and the unit types to train."""
    cities: dict[tuple[str, int], dict[str, Any]] = {}
    for regime in regimes:
        for label in sizes:
            n, level, _ = SIZES[label]
            c = cities.setdefault(
                (regime, n),
                {
                    "id": f"synth-{regime}-n{n}",
                    "kind": "synthetic",
                    "regime": regime,
                    "n_pipes": n,
                    "serves": [],
                    "unit_types": [],
                },
            )
            c["serves"].append(label)
            for ut in ("pipe", "cell") if level == "pipe" else ("cell",):
                if ut not in c["unit_types"]:
                    c["unit_types"].append(ut)
    for c in cities.values():  # canonical order: pipes first
        c["unit_types"].sort(key=("pipe", "cell").index)
    return list(cities.values())


def _folder(work: Path, city: dict[str, Any]) -> Path:
    if city["kind"] == "toronto":
        return work / "toronto"
    return work / "synth" / f"{city['regime']}-n{city['n_pipes']}"


def _config(city: dict[str, Any], folder: Path) -> Any:
    """The project config of a city (its store and models under ``folder``)."""
    import dataclasses

    from twmb_geo.config import default_config, load_config

    if city["kind"] == "toronto":
        store = city.get("store")
        if store:
            store = Path(store).resolve()
            return dataclasses.replace(default_config(store.parent), store=store)
        return default_config(folder.resolve())
    return load_config(folder / "city" / "twmb.toml", out=folder.resolve())


def _set_service_area(toml_path: Path, n_pipes: int) -> str:
    """Window cities: cells from the network (``h3``), not from all of Toronto."""
    import tomllib

    import tomli_w

    method = "auto" if n_pipes >= FULL_CITY_PIPES else "h3"
    doc = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    doc.setdefault("project", {})["service_area"] = method
    header = "# synthetic city of benchmarks/skill.py (service_area set by the benchmark)\n"
    toml_path.write_text(header + tomli_w.dumps(doc), encoding="utf-8")
    return method


def _setup_child(spec: dict[str, Any]) -> None:
    """Set a city up (generate, write, ingest, features); print the timings as one JSON line."""
    import logging

    logging.disable(logging.WARNING)
    from twmb_geo.api import run

    work = Path(spec["work"])
    folder = _folder(work, spec)
    res: dict[str, Any] = {}
    t0 = time.perf_counter()
    if spec["kind"] == "synthetic":
        import dataclasses

        from twmb_geo.synth import SynthParams, make_city, write_city

        params = dataclasses.replace(
            SynthParams(), seed=SEED, n_pipes=spec["n_pipes"], **_regime_params(spec["regime"])
        )
        t = time.perf_counter()
        city = make_city(params)
        res["generate_s"] = round(time.perf_counter() - t, 2)
        res["synth_figures"] = {
            k: v for k, v in city.figures().items() if k != "material_shares_pct"
        }
        t = time.perf_counter()
        paths = write_city(city, folder / "city")
        res["write_s"] = round(time.perf_counter() - t, 2)
        del city
        res["service_area"] = _set_service_area(paths["config"], spec["n_pipes"])
    cfg = _config(spec, folder)
    t = time.perf_counter()
    summary = run(cfg, with_model=False, with_publish=False, with_report=False).summary
    res["ingest_features_s"] = round(time.perf_counter() - t, 2)
    feats = summary.get("features") or {}
    res["units"] = feats.get("units")
    res["years"] = feats.get("years")
    res["breaks_total"] = summary.get("breaks_total")
    res["setup_s"] = round(time.perf_counter() - t0, 2)
    res["peak_rss_gb"] = maxrss_gb()
    print(json.dumps(res, default=str))


def _child(args: list[str]) -> dict[str, Any]:
    """Run this script as a child; its last stdout line is JSON (stderr goes through)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        return {"error": f"child {args[0]} failed (exit {proc.returncode})"}
    return json.loads(lines[-1])


#: the packages whose code makes a setup (a change there makes a cached store stale)
_SETUP_CODE = ("core", "features", "ingest", "io", "spatial", "store", "synth")


def _setup_code_digest() -> str:
    """Digest of the setup stages' source (``twmb_geo`` as imported, model stage excluded)."""
    import hashlib

    import twmb_geo

    root = Path(twmb_geo.__file__).parent
    h = hashlib.sha256()
    for sub in ("", *_SETUP_CODE):
        pattern = "*.py" if not sub else "**/*.py"
        for f in sorted((root / sub).glob(pattern)):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _setup(city: dict[str, Any], work: Path, reuse: bool) -> dict[str, Any]:
    """Set ``city`` up unless a cached setup of the same spec is reused."""
    if city["kind"] == "toronto" and city.get("store"):
        return {"source": "given", "store": city["store"]}
    folder = _folder(work, city)
    marker = folder / "setup.json"
    key = {k: city[k] for k in ("kind", "regime", "n_pipes") if k in city}
    if city["kind"] == "synthetic":
        key["params"] = _regimes_doc()[city["regime"]]["synth_params_overrides"]
        key["seed"] = SEED
    code = _setup_code_digest()
    if reuse and marker.exists() and (folder / "twmb.duckdb").exists():
        prev = json.loads(marker.read_text(encoding="utf-8"))
        if prev.get("key") == json.loads(json.dumps(key)):
            rep = {"source": "reused", **prev["setup"]}
            if prev.get("code") != code:
                rep["warning"] = (
                    "the ingest/feature code changed since this store was built "
                    f"(digest {prev.get('code')} -> {code}); run without --reuse to rebuild"
                )
                print(f"{city['id']}: {rep['warning']}", file=sys.stderr, flush=True)
            return rep
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"setup {city['id']} ...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    rep = _child(["--setup-child", json.dumps({**city, "work": str(work)})])
    rep["total_s"] = round(time.perf_counter() - t, 2)
    if "error" not in rep:
        doc = {"key": key, "code": code, "setup": rep}
        marker.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    print(f"setup {city['id']}: {rep['total_s']} s", file=sys.stderr, flush=True)
    return {"source": "generated", **rep}


# --------------------------------------------------------------------------- reporting


def _r(x: Any, nd: int = 4) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return round(f, nd) if math.isfinite(f) else None


def _stat(block: Any, metric: str, key: str = "mean") -> float | None:
    return _r(((block or {}).get(metric) or {}).get(key))


def _by_year(block: Any, metric: str) -> dict[str, float]:
    by = ((block or {}).get(metric) or {}).get("by_year") or {}
    return {str(y): v for y, v in by.items() if _r(v) is not None}


def unit_report(card: dict[str, Any]) -> dict[str, Any]:
    """The skill figures of one trained model from its card's ``champion`` block.

    Without a ``champion`` block (a card of the model stage before champion selection):
    ``"champion": null`` plus the card's ``headline`` and the lift of its headline figures.
    """
    out: dict[str, Any] = {
        "model_version": card.get("model_version"),
        "unit_type": card.get("unit_type"),
    }
    ch = card.get("champion")
    if not isinstance(ch, dict) or not ch:
        head = card.get("headline") or {}
        m5, b5 = _r(head.get("forward_capture_5pct")), _r(head.get("best_baseline_capture_5pct"))
        out["champion"] = None
        out["headline"] = head
        out["headline_lift_5pct"] = None if not (m5 and b5) else _r(m5 / b5 - 1)
        out["note"] = "the card has no champion block: the headline (model, forward CV) instead"
        return out
    outer = ch.get("outer") or {}
    champ = outer.get("champion") or {}
    cands = outer.get("candidates") or {}
    baselines = list(outer.get("baselines") or [])
    base = {
        b: {
            **{m: _stat(cands.get(b), m) for m in METRICS},
            "capture_5pct_std": _stat(cands.get(b), "capture_5pct", "std"),
        }
        for b in baselines
    }
    ranked = {b: v["capture_5pct"] for b, v in base.items() if v["capture_5pct"] is not None}
    best = outer.get("best_baseline") or (max(ranked, key=ranked.__getitem__) if ranked else None)
    best5 = _r(outer.get("best_baseline_capture_5pct"))
    if best5 is None and best in ranked:
        best5 = ranked[best]
    c5, c10 = _stat(champ, "capture_5pct"), _stat(champ, "capture_10pct")
    s5, s10 = _stat(champ, "capture_5pct", "std"), _stat(champ, "capture_10pct", "std")
    best10 = (base.get(best) or {}).get("capture_10pct") if best else None
    best_std = (base.get(best) or {}).get("capture_5pct_std") if best else None
    # per outer year: champion vs best baseline (wins recounted where the years are given)
    cy, by = _by_year(champ, "capture_5pct"), _by_year(cands.get(best), "capture_5pct")
    years = [str(y) for y in outer.get("years") or sorted(cy)]
    both = [y for y in years if y in cy and y in by]
    wins_check = sum(float(cy[y]) >= float(by[y]) for y in both) if both else None
    diffs = [float(cy[y]) - float(by[y]) for y in both]
    mean_d = sum(diffs) / len(diffs) if diffs else None
    sd_d = (
        math.sqrt(sum((d - mean_d) ** 2 for d in diffs) / (len(diffs) - 1))
        if mean_d is not None and len(diffs) > 1
        else None
    )
    spread = max((s for s in (s5, best_std) if s is not None), default=None)
    others = {n: {m: _stat(v, m) for m in METRICS} for n, v in cands.items() if n not in baselines}
    out.update(
        {
            "champion": {
                "name": ch.get("name"),
                "family": ch.get("family"),
                "statement": ch.get("statement"),
                "metric": ch.get("metric"),
            },
            "outer_years": [int(y) for y in years],
            "picks": outer.get("picks"),
            "champion_capture_5pct": {"mean": c5, "std": s5},
            "champion_capture_10pct": {"mean": c10, "std": s10},
            "baselines": base,
            "other_candidates": others,
            "best_baseline": best,
            "best_baseline_capture_5pct": best5,
            "best_baseline_capture_10pct": best10,
            "lift_5pct": None if c5 is None or not best5 else _r(c5 / best5 - 1),
            "lift_10pct": None if c10 is None or not best10 else _r(c10 / best10 - 1),
            "wins": outer.get("wins", wins_check),
            "n_years": outer.get("n_years", len(years) or None),
            "wins_recounted": wins_check,
            "by_year_capture_5pct": {
                y: {"champion": _r(cy.get(y)), "best_baseline": _r(by.get(y))} for y in years
            },
            "paired_diff_5pct": {"mean": _r(mean_d), "std": _r(sd_d)},
            "ge_best_baseline": None if c5 is None or best5 is None else c5 >= best5,
            "ge_best_baseline_within_spread": (
                None if c5 is None or best5 is None else c5 + (spread or 0.0) >= best5
            ),
        }
    )
    return out


def _summary(cities: list[dict[str, Any]]) -> dict[str, Any]:
    """Per unit type: mean lift over the cities and the within-spread test everywhere."""
    per: dict[str, dict[str, Any]] = {}
    for c in cities:
        for ut, u in (c.get("units") or {}).items():
            s = per.setdefault(
                ut,
                {
                    "cities": [],
                    "lifts": [],
                    "headline_lifts": [],
                    "not_ge_within_spread": [],
                    "no_champion": [],
                    "headrooms": [],
                },
            )
            s["cities"].append(c["id"])
            if u.get("error"):
                s["no_champion"].append(f"{c['id']}: {u['error']}")
                continue
            if u.get("champion") is None:
                s["no_champion"].append(c["id"])
                if u.get("headline_lift_5pct") is not None:
                    s["headline_lifts"].append(u["headline_lift_5pct"])
                continue
            if u.get("lift_5pct") is not None:
                s["lifts"].append(u["lift_5pct"])
            if (u.get("oracle") or {}).get("headroom_5pct") is not None:
                s["headrooms"].append(u["oracle"]["headroom_5pct"])
            if u.get("ge_best_baseline_within_spread") is False:
                s["not_ge_within_spread"].append(c["id"])
    out: dict[str, Any] = {}
    for ut, s in per.items():
        lifts, hl, room = s.pop("lifts"), s.pop("headline_lifts"), s.pop("headrooms")
        out[ut] = {
            **s,
            "n_cities": len(s["cities"]),
            "n_with_champion": len(lifts),
            "mean_lift_5pct": _r(sum(lifts) / len(lifts)) if lifts else None,
            "min_lift_5pct": _r(min(lifts)) if lifts else None,
            "champion_ge_best_within_spread_everywhere": (
                None if not lifts else not s["not_ge_within_spread"]
            ),
            # the lift the true rates reach over the same best baseline (synthetic only)
            "mean_oracle_headroom_5pct": _r(sum(room) / len(room)) if room else None,
        }
        if hl:  # cards without a champion block: the model's headline lift instead
            out[ut]["no_champion_mean_headline_lift_5pct"] = _r(sum(hl) / len(hl))
    return out


def _targets(cities: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    """The issue's skill targets, checked on what was run (None: not measured)."""
    tor = next((c for c in cities if c["kind"] == "toronto"), None)
    tor5 = (((tor or {}).get("units") or {}).get("cell") or {}).get("champion_capture_5pct")
    pipe_c5, pipe_sp, pipe_sp_km = [], [], []
    for c in cities:
        u = (c.get("units") or {}).get("pipe") or {}
        if c["kind"] == "synthetic" and u.get("champion"):
            pipe_c5.append(((u.get("champion_capture_5pct") or {}).get("mean"), c["id"]))
            sp = u.get("spearman") or {}
            pipe_sp.append((sp.get("expected_breaks_vs_true_rate"), c["id"]))
            pipe_sp_km.append((sp.get("risk_per_km_vs_true_rate_per_km"), c["id"]))
    return {
        "every_city_champion_ge_best_within_spread": {
            ut: s["champion_ge_best_within_spread_everywhere"] for ut, s in summary.items()
        },
        "mean_lift_at_least_10pct": {
            ut: None if s["mean_lift_5pct"] is None else s["mean_lift_5pct"] >= 0.10
            for ut, s in summary.items()
        },
        "toronto_cells_at_least_0.180": None
        if not tor5 or tor5.get("mean") is None
        else tor5["mean"] >= 0.180,
        "synthetic_pipes_capture_5pct_at_least_0.16": None
        if not pipe_c5
        else {cid: None if v is None else v >= 0.16 for v, cid in pipe_c5},
        "synthetic_pipes_spearman_at_least_0.95": None
        if not pipe_sp
        else {cid: None if v is None else v >= 0.95 for v, cid in pipe_sp},
        "synthetic_pipes_spearman_per_km_at_least_0.95": None
        if not pipe_sp_km
        else {cid: None if v is None else v >= 0.95 for v, cid in pipe_sp_km},
        "spearman_used": "per pipe: the champion's expected breaks vs the pipe's true rate "
        "(lambda) in the target year; per km: both divided by the pipe's length",
    }


# --------------------------------------------------------------------------- truth


def _spearman(a: Any, b: Any) -> float | None:
    import numpy as np
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return None
    return _r(spearmanr(a[ok], b[ok]).statistic)


def true_rates(city_dir: Path, year: int) -> tuple[Any, dict[str, Any]]:
    """True break rate of every pipe in service in ``year``, by asset id.

    The truth (``truth/pipe_hazard.parquet``) ends with the study window; the target year
    is the one after it, so its rate is projected exactly from the last truth year ``T``:
    the repeat term is recomputed with the breaks of ``T+1-k .. T`` and the ageing factor
    moves one year (both from the truth tables and ``truth/params.json``). The winter factor
    and the calibration constant are common to every pipe and leave ranks unchanged; pipes
    retired in ``year`` are left out.
    """
    import numpy as np
    import pandas as pd

    truth = city_dir / "truth"
    hz = pd.read_parquet(truth / "pipe_hazard.parquet")
    hz["asset_id"] = hz["asset_id"].astype(str)
    last = int(hz["year"].max())
    info: dict[str, Any] = {"target_year": year, "truth_years": [int(hz["year"].min()), last]}
    if (hz["year"] == year).any() or year != last + 1:
        used = year if (hz["year"] == year).any() else last
        if used != year:
            info["note"] = f"no truth for {year}; the {used} rates used"
        h = hz.loc[hz["year"] == used].groupby("asset_id", sort=False)["rate"].sum()
        info["method"] = f"truth rates of {used}"
        return h.astype(float), info
    p = json.loads((truth / "params.json").read_text(encoding="utf-8"))["params"]
    alpha, cap, k = float(p["repeat_alpha"]), float(p["repeat_cap"]), int(p["repeat_window"])
    cur = hz.loc[hz["year"] == last, ["asset_id", "rate", "prior_breaks"]].set_index("asset_id")
    # breaks per pipe and year (true pipe) from the published file and the truth
    bt = pd.read_csv(
        truth / "break_truth.csv", usecols=["row", "asset_id"], dtype={"asset_id": str}
    )
    br = pd.read_csv(city_dir / "watermain_breaks.csv", usecols=["_id", "BREAK_YEAR"])
    bt = bt.merge(br, left_on="row", right_on="_id", how="left")
    n_last = bt[bt["BREAK_YEAR"] == last].groupby("asset_id").size()
    n_drop = bt[bt["BREAK_YEAR"] == last - k].groupby("asset_id").size()
    h_old = cur["prior_breaks"].astype(float)
    h_new = (
        h_old
        + n_last.reindex(cur.index, fill_value=0).to_numpy()
        - n_drop.reindex(cur.index, fill_value=0).to_numpy()
    ).clip(lower=0)
    rep = (1 + alpha * np.minimum(h_new, cap)) / (1 + alpha * np.minimum(h_old, cap))
    pipes = pd.read_parquet(truth / "pipes.parquet")
    pipes = pipes.assign(asset_id=pipes["asset_id"].astype(str)).set_index("asset_id")
    pipes = pipes.reindex(cur.index)
    gamma = pipes["material"].astype(str).map(p["age_rate"]).astype(float).fillna(0.0)
    age = last - pipes["install_year"].astype(float) + 0.5
    a_cap = float(p["age_cap"])
    ageing = np.exp(gamma * (np.minimum(age + 1, a_cap) - np.minimum(age, a_cap)))
    removal = pipes["removal_year"].astype(float)
    alive = ~(removal <= year).to_numpy()
    rate = (cur["rate"].astype(float) * rep * ageing)[alive]
    info.update(
        {
            "method": (
                f"projected from {last}: repeat term with the breaks of {year - k}..{last}, "
                "ageing one year (winter and calibration are common factors)"
            ),
            "pipes_in_service": len(rate),
            "pipes_retired_in_target_year": int((~alive).sum()),
        }
    )
    return rate, info


def _spearman_block(
    store_path: Path, city_dir: Path, unit_type: str, h3_resolution: int
) -> dict[str, Any]:
    """Spearman of the current scores with the true hazard of their target year."""
    from twmb_geo.spatial.hexgrid import cell_str, points_to_cells
    from twmb_geo.store.duckdb_store import open_store

    with open_store(store_path, read_only=True) as store:
        sc = store.query(
            "SELECT unit_id, risk_score, expected_breaks, length_km, target_year, model_version "
            "FROM risk_scores WHERE unit_type = ? AND is_current",
            [unit_type],
        )
        up = store.read("unit_pipe")
    if sc.empty:
        return {"error": f"no current {unit_type} scores"}
    year = int(sc["target_year"].iloc[0])
    truth, info = true_rates(city_dir, year)
    out: dict[str, Any] = {**info, "scored_model_version": str(sc["model_version"].iloc[0])}
    up = up.assign(unit_id=up["unit_id"].astype(str), asset_id=up["asset_id"].astype(str))
    sc = sc.assign(unit_id=sc["unit_id"].astype(str))
    if unit_type == "pipe":
        df = sc.merge(up[["unit_id", "asset_id"]], on="unit_id", how="left")
        df["true_rate"] = df["asset_id"].map(truth)
        have = df["true_rate"].notna()
        out["n_units_scored"] = len(df)
        out["n_units_with_truth"] = int(have.sum())
        df = df[have]
        km = df["length_km"].to_numpy(dtype=float)
        tr = df["true_rate"].to_numpy(dtype=float)
        rs, eb = df["risk_score"].to_numpy(float), df["expected_breaks"].to_numpy(float)
        out.update(
            {
                "expected_breaks_vs_true_rate": _spearman(eb, tr),
                "risk_score_vs_true_rate": _spearman(rs, tr),
                "risk_score_vs_true_rate_per_km": _spearman(rs, tr / km),
                "risk_per_km_vs_true_rate": _spearman(eb / km, tr),
                "risk_per_km_vs_true_rate_per_km": _spearman(eb / km, tr / km),
                "risk_per_km": "expected_breaks / length_km",
            }
        )
        return out
    # cells: the pipe rates summed by the cell of the pipe's centroid
    lon, lat = up["centroid_lon"].to_numpy(float), up["centroid_lat"].to_numpy(float)
    cells = cell_str(points_to_cells(lon, lat, h3_resolution))
    cell_of = dict(zip(up["asset_id"], cells, strict=True))
    t = truth.rename(index=cell_of)
    t = t[t.index.isin(set(cells)) & (t.index != "")].groupby(level=0).sum()
    df = sc.assign(true_rate=sc["unit_id"].map(t).fillna(0.0))
    out["n_units_scored"] = len(df)
    out["n_cells_with_pipes"] = int(df["unit_id"].isin(t.index).sum())
    out["truth_not_in_scored_cells"] = _r(float(t[~t.index.isin(set(df["unit_id"]))].sum()), 2)
    tr = df["true_rate"].to_numpy(dtype=float)
    with_pipes = df["unit_id"].isin(t.index).to_numpy()
    out.update(
        {
            "risk_score_vs_true_rate": _spearman(df["risk_score"], tr),
            "expected_breaks_vs_true_rate": _spearman(df["expected_breaks"], tr),
            "risk_score_vs_true_rate_cells_with_pipes": _spearman(
                df["risk_score"].to_numpy(float)[with_pipes], tr[with_pipes]
            ),
            "true_rate": f"sum of the pipe rates by the H3 res-{h3_resolution} cell of the "
            "pipe's centroid; cells without a pipe count 0",
        }
    )
    return out


def _truth_by_unit(store: Any, city_dir: Path, unit_type: str) -> Any:
    """True rates per (unit id, year): pipes by asset id; cells by the pipe length in each
    cell (``pipe_cells``), the way breaks on a pipe fall into cells."""
    import pandas as pd

    hz = pd.read_parquet(
        city_dir / "truth" / "pipe_hazard.parquet", columns=["asset_id", "year", "rate"]
    )
    hz["asset_id"] = hz["asset_id"].astype(str)
    if unit_type == "pipe":
        up = store.query("SELECT unit_id, asset_id FROM unit_pipe")
        key = dict(zip(up["asset_id"].astype(str), up["unit_id"].astype(str), strict=True))
        hz["unit_id"] = hz["asset_id"].map(key)
        hz = hz[hz["unit_id"].notna()]
        return hz.groupby(["unit_id", "year"], sort=False)["rate"].sum()
    pc = store.query(
        "SELECT pipe_id AS asset_id, cell AS unit_id, "
        "length_m / sum(length_m) OVER (PARTITION BY pipe_id) AS share FROM pipe_cells"
    )
    pc["asset_id"] = pc["asset_id"].astype(str)
    m = hz.merge(pc, on="asset_id", how="inner")
    m["rate"] = m["rate"] * m["share"]
    return m.groupby(["unit_id", "year"], sort=False)["rate"].sum()


def oracle_by_year(pan: Any, truth: Any, outer_years: list[int]) -> dict[str, float | None]:
    """Capture at 5 % per outer year ``T`` of the ranking by the true rate of ``T + 1``.

    ``pan``: panel rows (``unit_id``, ``year``, ``target_count``, optional ``km`` weight);
    ``truth``: rates indexed by (``unit_id``, ``year``). None where a year has no truth or
    no breaks.
    """
    from twmb_geo.model.metrics import capture_at

    out: dict[str, float | None] = {}
    truth_years = set(truth.index.get_level_values(1))
    for y in outer_years:
        te = pan[pan["year"] == y]
        yc = te["target_count"].to_numpy(dtype=float)
        if (y + 1) not in truth_years or len(te) == 0 or yc.sum() <= 0:
            out[str(y)] = None
            continue
        t = truth.xs(y + 1, level=1)
        s = te["unit_id"].astype(str).map(t).fillna(0.0).to_numpy(dtype=float)
        w = te["km"].fillna(0.0).to_numpy(dtype=float) if "km" in te else None
        out[str(y)] = _r(capture_at(yc, s, 0.05, w, ties="average"))
    return out


def oracle_block(
    store_path: Path,
    city_dir: Path,
    unit_type: str,
    h3_resolution: int,
    outer_years: list[int],
    best_baseline_5pct: float | None,
    champion_5pct: float | None,
) -> dict[str, Any]:
    """The ceiling: outer capture of a ranking by the true rate of each target year.

    Ranking the units of outer year ``T`` by the simulator's true break rate of ``T+1``
    (what ``target_count`` counts) and scoring it like every candidate (capture at 5 %,
    of length for pipes, ties averaged) gives the best any ranking can expect on these
    years: the rest is Poisson noise. ``headroom`` = oracle / best baseline - 1 bounds the
    lift a model can reach; ``share_of_headroom`` = (champion - baseline) / (oracle - baseline).
    """
    import numpy as np

    from twmb_geo.store.duckdb_store import open_store

    with open_store(store_path, read_only=True) as store:
        pan = store.query(
            "SELECT unit_id, year, target_count FROM panel "
            "WHERE unit_type = ? AND target_count IS NOT NULL ORDER BY year, unit_id",
            [unit_type],
        )
        if unit_type == "pipe":  # capture by length, as the selection scores pipes
            km = store.query("SELECT unit_id, length_m / 1000 AS km FROM unit_pipe")
            pan = pan.merge(km, on="unit_id", how="left")
        truth = _truth_by_unit(store, city_dir, unit_type)
    by_year = oracle_by_year(pan, truth, outer_years)
    vals = [v for v in by_year.values() if v is not None]
    o5 = float(np.mean(vals)) if vals else None
    head = None if o5 is None or not best_baseline_5pct else o5 / best_baseline_5pct - 1
    share = (
        None
        if o5 is None
        or best_baseline_5pct is None
        or champion_5pct is None
        or o5 <= best_baseline_5pct
        else (champion_5pct - best_baseline_5pct) / (o5 - best_baseline_5pct)
    )
    return {
        "capture_5pct": {
            "mean": _r(o5),
            "std": _r(float(np.std(vals, ddof=1))) if len(vals) > 1 else None,
        },
        "by_year_capture_5pct": by_year,
        "headroom_5pct": _r(head),
        "share_of_headroom": _r(share),
        "what": "outer capture at 5 % of a ranking by the true rate of each target year",
    }


# --------------------------------------------------------------------------- one city


def _sizes(store_path: Path) -> dict[str, Any]:
    """Units, breaks and years of a city's store."""
    from twmb_geo.store.duckdb_store import open_store

    out: dict[str, Any] = {}
    with open_store(store_path, read_only=True) as store:
        for ut, table in (("cells", "unit_cell"), ("pipes", "unit_pipe")):
            out[ut] = store.count(table) if store.has_table(table) else 0
        out["breaks_ingested"] = store.count("breaks")
        pan = store.query(
            "SELECT unit_type, count(DISTINCT unit_id) AS units, min(year) AS y0, "
            "max(year) AS y1, sum(breaks) AS breaks FROM panel GROUP BY unit_type"
        )
        if out["pipes"]:
            out["pipes_in_latest_year"] = int(
                store.query(
                    "SELECT count(*) AS n FROM panel WHERE unit_type = 'pipe' "
                    "AND year = (SELECT max(year) FROM panel WHERE unit_type = 'pipe')"
                )["n"].iloc[0]
            )
            km = store.query("SELECT sum(length_m) / 1000 AS km FROM unit_pipe")["km"].iloc[0]
            out["pipe_km"] = _r(km, 1)
    out["panel"] = {
        str(r.unit_type): {
            "units": int(r.units),
            "years": [int(r.y0), int(r.y1)],
            "n_years": int(r.y1) - int(r.y0) + 1,
            "breaks": int(r.breaks),
        }
        for r in pan.itertuples(index=False)
    }
    cell = out["panel"].get("cell") or next(iter(out["panel"].values()), {})
    out["years"] = cell.get("years")
    out["breaks"] = cell.get("breaks")
    return out


def _card_of(cfg: Any, model: dict[str, Any]) -> dict[str, Any]:
    path = (
        Path(model["path"])
        if model.get("path")
        else cfg.out_dir / "models" / model["model_version"]
    )
    return json.loads((path / "card.json").read_text(encoding="utf-8"))


def _eval_child(spec: dict[str, Any]) -> None:
    """Train, score and measure one city; print the result as one JSON line."""
    import logging

    logging.disable(logging.WARNING)
    from twmb_geo.model import stage

    folder = _folder(Path(spec["work"]), spec)
    cfg = _config(spec, folder)
    sampler = RssSampler()
    out: dict[str, Any] = {"sizes": _sizes(cfg.store_path)}
    starts: dict[int, float] = {}
    tick = _progress(f"train {spec['id']}")
    t0 = time.perf_counter()

    def progress(msg: str, i: int, n: int) -> None:
        starts.setdefault(i, time.perf_counter() - t0)
        tick(msg, i, n)

    train: dict[str, Any] = {}
    with phase(sampler, train):
        res = stage.train_models(cfg, unit_types=spec["unit_types"], progress=progress)
    models = res["models"]
    ends = [starts.get(i + 1, train["seconds"]) for i in range(len(models))]
    train["seconds_by_unit_type"] = {
        m["unit_type"]: round(ends[i] - starts.get(i, 0.0), 1) for i, m in enumerate(models)
    }
    score: dict[str, Any] = {}
    with phase(sampler, score):
        scored = stage.score_latest(cfg, unit_types=spec["unit_types"])
    score["scores"] = {
        s["unit_type"]: {
            k: s.get(k)
            for k in ("model_version", "units", "feature_year", "target_year", "expected_breaks")
        }
        for s in scored["scores"]
    }
    units: dict[str, Any] = {}
    for m in models:
        ut = m["unit_type"]
        try:
            u = unit_report(_card_of(cfg, m))
            if spec["kind"] == "synthetic":
                u["spearman"] = _spearman_block(
                    cfg.store_path, folder / "city", ut, cfg.h3_resolution
                )
                if u.get("champion"):
                    u["oracle"] = oracle_block(
                        cfg.store_path,
                        folder / "city",
                        ut,
                        cfg.h3_resolution,
                        u["outer_years"],
                        u.get("best_baseline_capture_5pct"),
                        (u.get("champion_capture_5pct") or {}).get("mean"),
                    )
        except Exception as exc:  # noqa: BLE001 - one unit's report must not lose the city
            u = {"unit_type": ut, "error": f"{type(exc).__name__}: {exc}"}
        units[ut] = u
    sampler.stop()
    train["process_maxrss_gb"] = maxrss_gb()
    out.update({"train": train, "score": score, "units": units})
    print(json.dumps(out, default=str))


# --------------------------------------------------------------------------- self-check


def _fake_card(with_champion: bool = True) -> dict[str, Any]:
    years = list(range(2009, 2017))
    champ = [0.20, 0.18, 0.21, 0.19, 0.17, 0.22, 0.20, 0.19]
    past = [0.17, 0.18, 0.18, 0.16, 0.18, 0.17, 0.15, 0.16]
    eb = [0.15, 0.16, 0.17, 0.15, 0.16, 0.16, 0.14, 0.15]

    def block(v5: list[float]) -> dict[str, Any]:
        def one(v: list[float]) -> dict[str, Any]:
            m = sum(v) / len(v)
            sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
            return {
                "mean": m,
                "std": sd,
                "by_year": {str(y): x for y, x in zip(years, v, strict=True)},
            }

        return {"capture_5pct": one(v5), "capture_10pct": one([x * 1.6 for x in v5])}

    card: dict[str, Any] = {
        "model_version": "cell-fake",
        "unit_type": "cell",
        "headline": {"forward_capture_5pct": 0.179, "best_baseline": "past_breaks_5y",
                     "best_baseline_capture_5pct": 0.164},
    }  # fmt: skip
    if with_champion:
        card["champion"] = {
            "name": "blend_boost_empirical_bayes_0.5",
            "family": "blend",
            "statement": "A blend wins: +17 % over past breaks in 7 of 8 outer years.",
            "metric": "capture_5pct",
            "outer": {
                "years": years,
                "picks": {str(y): "blend_boost_empirical_bayes_0.5" for y in years},
                "champion": block(champ),
                "candidates": {
                    "boost": block([x - 0.01 for x in champ]),
                    "past_breaks_5y": block(past),
                    "empirical_bayes": block(eb),
                },
                "baselines": ["past_breaks_5y", "empirical_bayes"],
                "best_baseline": "past_breaks_5y",
                "best_baseline_capture_5pct": sum(past) / len(past),
                "wins": 7,
                "n_years": 8,
            },
        }
    return card


def _fake_truth(folder: Path) -> None:
    """A two-pipe truth: pipe A broke in 2011 and twice in 2016, pipe B is retired in 2017."""
    import pandas as pd

    t = folder / "truth"
    t.mkdir(parents=True)
    pd.DataFrame(
        {"asset_id": ["A", "B", "A", "B"], "year": [2015, 2015, 2016, 2016],
         "rate": [0.3, 0.2, 0.3, 0.2], "prior_breaks": [1, 0, 1, 0]}
    ).to_parquet(t / "pipe_hazard.parquet")  # fmt: skip
    pd.DataFrame({"row": [1, 2, 3], "asset_id": ["A", "A", "A"]}).to_csv(t / "break_truth.csv")
    pd.DataFrame({"_id": [1, 2, 3], "BREAK_YEAR": [2011, 2016, 2016]}).to_csv(
        folder / "watermain_breaks.csv"
    )
    pd.DataFrame(
        {"asset_id": ["A", "B"], "material": ["CI", "PVC"], "install_year": [1950, 1990],
         "removal_year": [None, 2017]}
    ).to_parquet(t / "pipes.parquet")  # fmt: skip
    params = {"repeat_alpha": 2.0, "repeat_cap": 3, "repeat_window": 5, "age_cap": 100.0,
              "age_rate": {"CI": 0.01, "PVC": 0.01}}  # fmt: skip
    (t / "params.json").write_text(json.dumps({"params": params}), encoding="utf-8")


def self_check() -> dict[str, Any]:
    """The reporting on hand-made cards and a tiny truth; raises AssertionError on a mismatch."""
    import tempfile

    with_c, without = unit_report(_fake_card()), unit_report(_fake_card(False))
    past5 = with_c["best_baseline_capture_5pct"]
    c5 = with_c["champion_capture_5pct"]["mean"]
    assert with_c["champion"]["family"] == "blend", with_c
    assert with_c["best_baseline"] == "past_breaks_5y", with_c
    assert abs(with_c["lift_5pct"] - (c5 / past5 - 1)) < 1e-3, with_c
    assert with_c["wins"] == 7 and with_c["wins_recounted"] == 7, with_c
    assert set(with_c["baselines"]) == {"past_breaks_5y", "empirical_bayes"}, with_c
    assert set(with_c["other_candidates"]) == {"boost"}, with_c
    assert with_c["ge_best_baseline"] and with_c["ge_best_baseline_within_spread"], with_c
    assert without["champion"] is None and without["headline"]["forward_capture_5pct"] == 0.179
    assert abs(without["headline_lift_5pct"] - (0.179 / 0.164 - 1)) < 1e-3, without
    cities = [
        {"id": "a", "kind": "synthetic", "units": {"cell": with_c, "pipe": with_c}},
        {"id": "b", "kind": "toronto", "units": {"cell": without}},
    ]
    summ = _summary(cities)
    assert summ["cell"]["n_cities"] == 2 and summ["cell"]["no_champion"] == ["b"], summ
    assert summ["cell"]["champion_ge_best_within_spread_everywhere"] is True, summ
    targets = _targets(cities, summ)
    with tempfile.TemporaryDirectory() as tmp:
        _fake_truth(Path(tmp))
        rate, info = true_rates(Path(tmp), 2017)
        # A: H 1 -> 1 + 2 - 1 = 2, repeat term 3 -> 5, ageing exp(0.01); B retired
        assert list(rate.index) == ["A"], rate
        assert abs(rate["A"] - 0.3 * 5 / 3 * math.exp(0.01)) < 1e-6, rate
        assert info["pipes_retired_in_target_year"] == 1, info
    # oracle: 20 units, the true rate ranks unit 19 first; its 2 breaks of 4 fall in the top 5 %
    import pandas as pd

    pan = pd.DataFrame(
        {
            "unit_id": [f"u{i}" for i in range(20)] * 2,
            "year": [2010] * 20 + [2011] * 20,
            "target_count": [0.0] * 17 + [1.0, 1.0, 2.0] + [0.0] * 20,
        }
    )
    idx = pd.MultiIndex.from_product([[f"u{i}" for i in range(20)], [2011, 2012]])
    truth = pd.Series([float(i // 2) for i in range(40)], index=idx)
    oracle = oracle_by_year(pan, truth, [2010, 2011, 2012])
    assert oracle == {"2010": 0.5, "2011": None, "2012": None}, oracle
    return {
        "self_check": "ok",
        "oracle_by_year": oracle,
        "unit_report_with_champion": with_c,
        "unit_report_without_champion": without,
        "summary": summ,
        "targets": targets,
        "true_rates_projection": info,
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/twmb-skill", help="setups and models (cached)")
    ap.add_argument("--reuse", action="store_true", help="reuse cached city setups in --work")
    ap.add_argument(
        "--sizes",
        default=",".join(SIZES),
        help=f"synthetic sizes, comma-separated, of {', '.join(SIZES)} (default: all)",
    )
    ap.add_argument(
        "--regimes",
        default=",".join(REGIMES),
        help=f"synthetic regimes of {', '.join(REGIMES)} (default: both)",
    )
    ap.add_argument("--toronto-store", help="an existing `twmb run` store of the bundled data")
    ap.add_argument("--no-toronto", action="store_true", help="leave the Toronto city out")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"sizes {','.join(QUICK_SIZES)}, regime {','.join(QUICK_REGIMES)}, no Toronto "
        "(unless --toronto-store)",
    )
    ap.add_argument("--setup-only", action="store_true", help="set the cities up, no training")
    ap.add_argument("--output", help="also write the JSON to this file")
    ap.add_argument("--self-check", action="store_true", help="the reporting on a fake card")
    ap.add_argument("--setup-child", help=argparse.SUPPRESS)
    ap.add_argument("--eval-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.setup_child:
        _setup_child(json.loads(args.setup_child))
        return
    if args.eval_child:
        _eval_child(json.loads(args.eval_child))
        return
    if args.self_check:
        print(json.dumps(self_check(), indent=2, default=str))
        return

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    regimes = [r.strip() for r in args.regimes.split(",") if r.strip()]
    with_toronto = not args.no_toronto
    if args.quick:
        sizes, regimes = list(QUICK_SIZES), list(QUICK_REGIMES)
        with_toronto = bool(args.toronto_store) and not args.no_toronto
    if bad := [s for s in sizes if s not in SIZES]:
        ap.error(f"unknown sizes {bad}; choose from {list(SIZES)}")
    if bad := [r for r in regimes if r not in REGIMES]:
        ap.error(f"unknown regimes {bad}; choose from {list(REGIMES)}")
    if args.toronto_store and not Path(args.toronto_store).is_file():
        ap.error(f"--toronto-store {args.toronto_store} is not a file")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)

    cities: list[dict[str, Any]] = []
    if with_toronto:
        cities.append(
            {
                "id": "toronto",
                "kind": "toronto",
                "serves": ["toronto"],
                "unit_types": ["cell"],
                "store": str(Path(args.toronto_store).resolve()) if args.toronto_store else None,
            }
        )
    cities += _synth_cities(sizes, regimes) if sizes and regimes else []

    t_all = time.perf_counter()
    out: dict[str, Any] = {
        "benchmark": "skill",
        "machine": machine(),
        "work": str(work),
        "mode": "setup-only" if args.setup_only else "full",
        "sizes": {
            s: {"n_pipes": SIZES[s][0], "level": SIZES[s][1], "target": SIZES[s][2]} for s in sizes
        },
        "regimes": {r: _regimes_doc()[r] for r in regimes} | {"notes": _regimes_doc()["notes"]},
        "what": {
            "capture": "outer forward capture at 5 % / 10 % (of length for pipes, of cells for "
            "cells) of the card's champion block: years never seen by the champion's selection",
            "lift": "champion / best baseline - 1 (outer capture at 5 %)",
            "ge_best_baseline_within_spread": "champion mean + spread >= best baseline mean; "
            "spread = the larger of the champion's and the best baseline's std over outer years",
            "wins": "outer years with the champion >= the best baseline (from the card)",
            "oracle": "synthetic cities: the same outer capture of a ranking by the true rate "
            "of each target year (the ceiling); headroom = oracle / best baseline - 1",
        },
    }
    results = []
    for city in cities:
        entry = dict(city)
        entry["setup"] = _setup(city, work, args.reuse)
        if "error" not in entry["setup"] and not args.setup_only:
            print(f"train {city['id']} ({', '.join(city['unit_types'])}) ...", file=sys.stderr)
            entry.update(_child(["--eval-child", json.dumps({**city, "work": str(work)})]))
        results.append(entry)
    out["cities"] = results
    if not args.setup_only:
        out["summary"] = _summary(results)
        out["targets"] = _targets(results, out["summary"])
    out["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out["total_s"] = round(time.perf_counter() - t_all, 2)
    text = json.dumps(out, indent=2, default=str)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
