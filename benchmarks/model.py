"""Model-stage benchmark: the whole stage (train, score, simulate) per unit type, as JSON.

The model stage is champion selection by nested forward validation of every learned
candidate, baseline and blend, then the champion under the spatial, spatio-temporal and
random schemes (with permutation importance), the final fit, scoring with drivers and the
Monte Carlo outlook with the renewal scenario (``twmb train``, ``score``, ``simulate``, all
with the project's default ``[model]`` settings).

Cities:

* ``--toronto-store OUT/twmb.duckdb``: the bundled Toronto data (cells), a store written by
  ``twmb --out OUT run`` (or ``--no-toronto``);
* a synthetic Toronto-scale network (``--pipes``, default 49,000 pipes with their streets
  and H3 cells), generated, written, ingested and featured once in a child process (its
  memory does not count) and cached under ``--work`` (``--reuse``).

Targets (issue 13): the whole model stage on Toronto cells < 3 minutes; on the
Toronto-scale network (pipes, streets, cells) < 10 minutes on 2 cores. Peak memory:
``ru_maxrss`` plus the largest RSS a sampling thread saw (``/proc/self/statm``, 50 ms).
Skill figures are in ``benchmarks/skill.py``.

Usage::

    python benchmarks/model.py --toronto-store /tmp/tor/twmb.duckdb [--pipes 49000] [--reuse]
    python benchmarks/model.py --no-toronto --store OUT/twmb.duckdb --city CITY_FOLDER
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _bench import RssSampler, machine, maxrss_gb, phase

TARGET_TORONTO_S = 180.0
TARGET_NETWORK_S = 600.0
# --------------------------------------------------------------------------- timing


# --------------------------------------------------------------------------- setup


def _setup_child(n_pipes: int, work: str) -> None:
    """Generate, write, ingest and build features; print the timings as one JSON line."""
    import logging

    logging.disable(logging.WARNING)
    from twmb_geo.api import run
    from twmb_geo.config import load_config
    from twmb_geo.synth import make_city, write_city

    res: dict[str, Any] = {"n_pipes": n_pipes}
    t = time.perf_counter()
    city = make_city(n_pipes=n_pipes, seed=42)
    res["generate_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    paths = write_city(city, Path(work) / "city")
    res["write_s"] = round(time.perf_counter() - t, 2)
    del city
    cfg = load_config(paths["config"], out=Path(work))
    t = time.perf_counter()
    summary = run(cfg, with_model=False)
    res["ingest_features_s"] = round(time.perf_counter() - t, 2)
    res["panel_rows"] = (summary.get("features") or {}).get("tables", {}).get("panel")
    res["peak_rss_gb"] = maxrss_gb()
    print(json.dumps(res))


def _setup(args: argparse.Namespace) -> tuple[Path, Path, dict[str, Any]]:
    """Store path, city folder and the setup report (generated, reused or given)."""
    if args.store or args.city:
        if not (args.store and args.city):
            raise SystemExit("--store and --city go together")
        return Path(args.store), Path(args.city), {"source": "given"}
    work = Path(args.work)
    city, store, marker = work / "city", work / "twmb.duckdb", work / "setup.json"
    if args.reuse and store.exists() and marker.exists():
        prev = json.loads(marker.read_text(encoding="utf-8"))
        if prev.get("n_pipes") == args.pipes:
            return store, city, {"source": "reused", **prev}
    shutil.rmtree(city, ignore_errors=True)
    for p in work.glob("twmb.duckdb*"):
        p.unlink()
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    cmd = [
        sys.executable,
        __file__,
        "--setup-child",
        "--pipes",
        str(args.pipes),
        "--work",
        str(work),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"setup failed (exit {proc.returncode})")
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    rep["total_s"] = round(time.perf_counter() - t, 2)
    marker.write_text(json.dumps(rep), encoding="utf-8")
    return store, city, {"source": "generated", **rep}


# --------------------------------------------------------------------------- the stage


def _stage(cfg: Any, sampler: RssSampler, label: str) -> dict[str, Any]:
    """Time ``train_models``, ``score_latest`` and ``run_simulation`` with per-unit splits."""
    from twmb_geo.model.stage import run_simulation, score_latest, train_models

    res: dict[str, Any] = {}
    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()

    def progress(msg: str, i: int, n: int) -> None:
        unit = msg.split(" ", 1)[-1].split(":", 1)[0]
        if not marks or marks[-1][0] != unit:
            marks.append((unit, time.perf_counter() - t0))
            print(f"[{label} {time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    train: dict[str, Any] = {}
    with phase(sampler, train):
        trained = train_models(cfg, progress=progress)
    ends = [t for _, t in marks[1:]] + [train["seconds"]]
    train["seconds_by_unit_type"] = {
        u: round(e - t, 1) for (u, t), e in zip(marks, ends, strict=True) if u != "train"
    }
    train["models"] = [
        {
            k: m.get(k)
            for k in (
                "unit_type",
                "champion",
                "champion_family",
                "forward_capture_5pct",
                "best_baseline",
                "best_baseline_capture_5pct",
                "statement",
            )
        }
        for m in trained["models"]
    ]
    res["train"] = train
    score: dict[str, Any] = {}
    with phase(sampler, score):
        scored = score_latest(cfg)
    score["units"] = {s["unit_type"]: s["units"] for s in scored["scores"]}
    res["score"] = score
    sim: dict[str, Any] = {}
    with phase(sampler, sim):
        run_simulation(cfg)
    res["simulate"] = sim
    res["stage_seconds"] = round(train["seconds"] + score["seconds"] + sim["seconds"], 1)
    res["peak_rss_gb"] = max(train["peak_rss_gb"], score["peak_rss_gb"], sim["peak_rss_gb"])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipes", type=int, default=49_000)
    ap.add_argument("--work", default="/tmp/twmb-bench-model")
    ap.add_argument("--reuse", action="store_true", help="reuse the store in --work if any")
    ap.add_argument("--store", help="existing synthetic store (twmb.duckdb); needs --city")
    ap.add_argument("--city", help="synthetic city folder of --store (twmb.toml)")
    ap.add_argument("--toronto-store", help="store of `twmb run` on the bundled data")
    ap.add_argument("--no-toronto", action="store_true")
    ap.add_argument("--no-network", action="store_true", help="leave the synthetic city out")
    ap.add_argument("--setup-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.setup_child:
        _setup_child(args.pipes, args.work)
        return
    if not args.no_toronto and not args.toronto_store:
        ap.error("give --toronto-store OUT/twmb.duckdb (from `twmb --out OUT run`) or --no-toronto")

    import logging

    logging.disable(logging.WARNING)
    import twmb_geo as tw
    from twmb_geo.config import load_config

    sampler = RssSampler()
    out: dict[str, Any] = {
        "benchmark": "model",
        "machine": machine(),
    }
    if not args.no_toronto:
        tor = Path(args.toronto_store)
        cfg = tw.default_config(tor.parent)
        res = _stage(cfg, sampler, "toronto")
        res["target_seconds"] = TARGET_TORONTO_S
        res["pass"] = res["stage_seconds"] < TARGET_TORONTO_S
        out["toronto_cells"] = {"store": str(tor), **res}
    if not args.no_network:
        store_path, city, setup = _setup(args)
        cfg = load_config(city / "twmb.toml", out=store_path.parent)
        res = _stage(cfg, sampler, "network")
        res["target_seconds"] = TARGET_NETWORK_S
        res["pass"] = res["stage_seconds"] < TARGET_NETWORK_S
        out["network"] = {"store": str(store_path), "setup": setup, **res}
    out["process_maxrss_gb"] = maxrss_gb()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
