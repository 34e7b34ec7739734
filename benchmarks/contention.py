"""Model training under CPU contention: quiet vs loaded, thread limits off vs on, as JSON.

Issue 15, case 11: ``twmb run`` on the bundled Toronto data took 29 minutes on a loaded
2-core machine against about 2.5 quiet, nearly all in model training. This script measures
the suspected cause and the fix (``[compute] threads``, :mod:`twmb_geo.core.compute`):

* ``fit``: one HistGradientBoosting Poisson fit in one process with 1 and with 2 OpenMP
  threads, quiet and loaded (the cause in isolation);
* ``train``: the model stage on the Toronto cells (``train_models`` then ``score_latest``,
  default ``[model]`` settings; ``--workload forward``, the default, keeps only the forward
  scheme, i.e. the champion selection and the final fit; ``full`` runs every scheme),
  quiet and loaded, limits off ("before": ``TWMB_THREAD_LIMITS=0``, the code as it was)
  and on ("after"). Each records the OpenMP/BLAS threads of the main process and of a fold
  worker (joblib ``loky``), the seconds of the validation (the folds, in the workers) and
  of the rest (final fit, card, scoring: in the main process, ``main_process_seconds``)
  with the main process's CPU seconds, the peak memory, and the champion and its forward
  capture (the same before and after). ``train.table`` sums it up.

"Loaded" means ``--load`` busy-loop processes (default 2, one per core here) started by
this script for the measurement. Each measurement runs in a fresh child process (fresh
worker pool, its own peak memory) whose environment has no ``OMP_NUM_THREADS`` and the
like, so the libraries' defaults show (``--omp-env N`` sets ``OMP_NUM_THREADS=N`` there
instead: joblib hands it on to the workers). Quiet is only as quiet as the machine: the
load average at the start and end of each measurement is in the JSON.

Usage (from the repository root, with the package importable)::

    python benchmarks/contention.py --toronto-store OUT/twmb.duckdb [--workload full]
    python benchmarks/contention.py --toronto-store OUT/twmb.duckdb --no-fit \
        --conditions loaded --omp-env 2 --forward-years 3

    python benchmarks/contention.py --no-fit --no-train --whole-run

``--whole-run`` times the whole ``twmb run`` on the bundled data, quiet and loaded, with the
seconds of each stage (from the run's manifest).

``OUT/twmb.duckdb`` comes from ``twmb --out OUT run`` (``--no-model`` is enough); it is
copied to ``--work`` first, the given store is not written to. One default run takes
10-12 minutes on 2 busy cores (each measurement 1-3 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _bench import RssSampler, machine, maxrss_gb, phase

#: environment variables that set thread pools; removed from the children's environment
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

# --------------------------------------------------------------------------- children


def _probe_task(_: int) -> dict[str, int]:
    """Run in a fold worker: its OpenMP/BLAS threads (after a pause, so every worker takes one)."""
    from twmb_geo.core.compute import thread_counts

    time.sleep(0.2)
    return thread_counts()


def _fit_child(threads: int, rows: int) -> None:
    """One HistGradientBoosting Poisson fit with ``threads`` OpenMP threads, as JSON."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 15))
    y = rng.poisson(np.exp(0.3 * X[:, 0] - 0.2 * X[:, 1] - 2.0))
    est = HistGradientBoostingRegressor(
        loss="poisson", max_iter=50, early_stopping=False, random_state=0
    )
    with threadpool_limits(limits=threads):
        t = time.perf_counter()
        est.fit(X, y)
        secs = time.perf_counter() - t
    print(json.dumps({"openmp_threads": threads, "rows": rows, "seconds": round(secs, 2)}))


def _train_child(store: str, workload: str, forward_years: int | None) -> None:
    """Probe the threads, then time ``train_models`` and ``score_latest``; print JSON."""
    import logging
    from dataclasses import replace

    logging.disable(logging.WARNING)
    import twmb_geo as tw
    from twmb_geo.core.compute import limit_threads, limits_enabled, parallel_map, thread_counts
    from twmb_geo.model.stage import score_latest, train_models

    cfg = tw.default_config(Path(store).parent)
    if workload == "forward":
        cfg = replace(cfg, model=replace(cfg.model, schemes=("forward",)))
    if forward_years:
        cfg = replace(cfg, model=replace(cfg.model, forward_years=forward_years))
    plan = cfg.compute.plan(cfg.model.n_jobs)
    with limit_threads(plan):
        main_threads = thread_counts()
        workers = list(parallel_map(_probe_task, ((i,) for i in range(4)), plan))
    res: dict[str, Any] = {
        "limits": limits_enabled(),
        "plan": plan.to_dict(),
        "threads_main": main_threads,
        "threads_workers": [
            json.loads(w) for w in sorted({json.dumps(w, sort_keys=True) for w in workers})
        ],
    }
    sampler = RssSampler()
    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def progress(msg: str, i: int, n: int) -> None:
        if "final fit" in msg and "final_fit" not in marks:
            marks["final_fit"] = time.perf_counter() - t0

    train: dict[str, Any] = {}
    with phase(sampler, train):
        trained = train_models(cfg, progress=progress)
    if "final_fit" in marks:
        train["validation_seconds"] = round(marks["final_fit"], 2)
        train["final_fit_and_save_seconds"] = round(train["seconds"] - marks["final_fit"], 2)
    m = trained["models"][0]
    card = json.loads((Path(m["path"]) / "card.json").read_text(encoding="utf-8"))
    train["compute_in_card"] = card.get("compute")
    train["champion"] = m["champion"]
    train["forward_capture_5pct"] = m["forward_capture_5pct"]
    score: dict[str, Any] = {}
    with phase(sampler, score):
        scored = score_latest(cfg)
    score["expected_breaks"] = scored["scores"][0]["expected_breaks"]
    sampler.stop()
    res["train"] = train
    res["score"] = score
    res["stage_seconds"] = round(train["seconds"] + score["seconds"], 2)
    if "validation_seconds" in train:  # what runs in this process: final fit, card, score
        res["main_process_seconds"] = round(res["stage_seconds"] - train["validation_seconds"], 2)
    res["main_process_cpu_seconds"] = round(train["cpu_seconds"] + score["cpu_seconds"], 2)
    res["process_maxrss_gb"] = maxrss_gb()
    print(json.dumps(res))


# --------------------------------------------------------------------------- parent


class Load:
    """``n`` busy-loop processes while the block runs (none for ``n = 0``)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Load:
        cmd = [sys.executable, "-c", "while True: pass"]
        self.procs = [subprocess.Popen(cmd) for _ in range(self.n)]
        time.sleep(1.0 if self.n else 0.0)  # let the scheduler see them
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def _child_env(limits: bool, omp: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["TWMB_THREAD_LIMITS"] = "1" if limits else "0"
    if omp:
        env["OMP_NUM_THREADS"] = str(omp)
    return env


def _run_child(args: list[str], limits: bool, load: int, omp: int | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, *args]
    with Load(load):
        la0 = os.getloadavg()[0]
        t = time.perf_counter()
        env = _child_env(limits, omp)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        la1 = os.getloadavg()[0]
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"child {args} failed (exit {proc.returncode})")
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    res["busy_loops"] = load
    res["child_wall_seconds"] = round(wall, 2)
    res["loadavg_1m"] = [round(la0, 2), round(la1, 2)]
    return res


def _whole_run(folder: Path, limits: bool, load: int) -> dict[str, Any]:
    """``twmb --out FOLDER run`` on the bundled data (a fresh folder), timed, with the
    seconds of each stage from its manifest."""
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [sys.executable, "-m", "twmb_geo.cli", "-q", "--out", str(folder), "run"]
    with Load(load):
        la0 = os.getloadavg()[0]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(limits, None))
        wall = time.perf_counter() - t
        la1 = os.getloadavg()[0]
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"twmb run failed (exit {proc.returncode})")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return {
        "busy_loops": load,
        "thread_limits": limits,
        "wall_seconds": round(wall, 1),
        "stage_seconds": {s["stage"]: s.get("seconds") for s in manifest.get("stages", [])},
        "status": manifest.get("status"),
        "loadavg_1m": [round(la0, 2), round(la1, 2)],
    }


def _log(msg: str) -> None:
    print(f"[contention {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--toronto-store", help="store of `twmb run` on the bundled data")
    ap.add_argument("--work", default="/tmp/twmb-bench-contention")
    ap.add_argument("--workload", choices=("forward", "full"), default="forward")
    ap.add_argument("--forward-years", type=int, help="[model] forward_years (default 8)")
    ap.add_argument(
        "--omp-env",
        type=int,
        help="OMP_NUM_THREADS in the training children (default: unset, the libraries decide)",
    )
    ap.add_argument("--conditions", default="quiet,loaded", help="quiet, loaded or both")
    ap.add_argument("--load", type=int, default=2, help="busy-loop processes when loaded")
    ap.add_argument("--fit-rows", type=int, default=50_000)
    ap.add_argument("--no-fit", action="store_true", help="skip the single-fit measurement")
    ap.add_argument("--no-train", action="store_true", help="skip the model-stage measurement")
    ap.add_argument(
        "--whole-run",
        action="store_true",
        help="also time the whole `twmb run` on the bundled data per condition (limits on; "
        "--whole-run-before adds limits off)",
    )
    ap.add_argument("--whole-run-before", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--fit-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--train-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fit_child:
        _fit_child(args.fit_child, args.fit_rows)
        return
    if args.train_child:
        _train_child(args.train_child, args.workload, args.forward_years)
        return
    if not args.no_train and not args.toronto_store:
        ap.error("give --toronto-store OUT/twmb.duckdb (from `twmb --out OUT run`) or --no-train")

    out: dict[str, Any] = {"benchmark": "contention", "machine": machine()}
    out["machine"]["affinity_cores"] = len(os.sched_getaffinity(0))
    wanted = [c.strip() for c in args.conditions.split(",")]
    conditions = [(n, k) for n, k in (("quiet", 0), ("loaded", args.load)) if n in wanted]
    if not args.no_fit:
        fit: dict[str, Any] = {}
        for name, load in conditions:
            for threads in (1, 2):
                _log(f"fit {name}, {threads} OpenMP thread(s)")
                key = f"{name}_omp{threads}"
                fit[key] = _run_child(
                    ["--fit-child", str(threads), "--fit-rows", str(args.fit_rows)], True, load
                )
        out["fit"] = fit
    if not args.no_train:
        work = Path(args.work)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        store = work / "twmb.duckdb"
        shutil.copy2(args.toronto_store, store)
        train: dict[str, Any] = {
            "workload": args.workload,
            "forward_years": args.forward_years or 8,
            "omp_num_threads_env": args.omp_env,
            "store": args.toronto_store,
        }
        child = ["--train-child", str(store), "--workload", args.workload]
        if args.forward_years:
            child += ["--forward-years", str(args.forward_years)]
        for name, load in conditions:
            for label, limits in (("before", False), ("after", True)):
                _log(f"train {name}, {label} (limits {'on' if limits else 'off'})")
                res = _run_child(child, limits, load, args.omp_env)
                train[f"{name}_{label}"] = res
                _log(f"  {res['stage_seconds']} s")
        keys = ("stage_seconds", "main_process_seconds", "main_process_cpu_seconds")
        train["table"] = {
            key: {
                name: {label: train[f"{name}_{label}"].get(key) for label in ("before", "after")}
                for name, _ in conditions
            }
            for key in keys
        }
        out["train"] = train
    if args.whole_run:
        runs: dict[str, Any] = {}
        labels = [("after", True)] + ([("before", False)] if args.whole_run_before else [])
        for name, load in conditions:
            for label, limits in labels:
                _log(f"twmb run {name}, {label}")
                runs[f"{name}_{label}"] = _whole_run(
                    Path(args.work) / f"run-{name}-{label}", limits, load
                )
                _log(f"  {runs[f'{name}_{label}']['wall_seconds']} s")
        out["whole_run"] = runs
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
