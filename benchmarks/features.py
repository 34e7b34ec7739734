"""Feature-stage benchmark on synthetic cities: seconds and peak memory as JSON.

For each size: generate the city (timed), write it in City formats and ingest it (timed),
then run the feature stage (organise + graphs + panel with lags + ESDA + store), each step
timed. Each size runs in a fresh subprocess so peak RSS belongs to that size alone.

``--scheduler local`` runs the stage's partitioned work (break matching, the panel) on a
Dask LocalCluster of ``--workers`` workers that the benchmark starts and hands to the stage
by its address (as a real cluster would be), and reports each worker's own peak memory
(``VmHWM``). ``--keep DIR`` keeps the generated and ingested city of each size under DIR and
reuses it on the next call (the feature stage then starts from the same store).

Usage: python benchmarks/features.py [--sizes 49000 500000] [--permutations 999]
       [--scheduler local --workers 2 --worker-memory 8GiB --partition-rows 50000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _worker_peak_gb() -> float:
    """A worker process's own peak RSS (``VmHWM``; ``ru_maxrss`` would carry its parent's)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _child(n_pipes: int, out: str, permutations: int, gps_sigma: float | None, dist: dict) -> None:
    import logging
    from contextlib import ExitStack
    from dataclasses import replace

    logging.disable(logging.WARNING)
    import twmb_geo as tw
    from twmb_geo.features.build import build_features
    from twmb_geo.synth import make_city, write_city
    from twmb_geo.synth.evaluation import evaluate_matching

    res: dict = {"n_pipes": n_pipes}
    city_dir = Path(out) / "city"
    if (Path(out) / "twmb.duckdb").exists():
        res["reused_city"] = str(city_dir)
    else:
        t = time.perf_counter()
        city = make_city(
            n_pipes=n_pipes, **({} if gps_sigma is None else {"gps_sigma_m": gps_sigma})
        )
        res["gps_sigma_m"] = city.params.gps_sigma_m
        res["generate_s"] = round(time.perf_counter() - t, 2)
        res["city"] = {k: v for k, v in city.figures().items() if k != "material_shares_pct"}
        t = time.perf_counter()
        write_city(city, city_dir)
        res["write_s"] = round(time.perf_counter() - t, 2)
        del city
    cfg = tw.load_config(city_dir / "twmb.toml", out=Path(out))
    cfg = replace(
        cfg,
        sources=tuple(s for s in cfg.sources if s.id != "weather"),
        features=replace(cfg.features, esda_permutations=permutations),
    )
    if "reused_city" not in res:
        t = time.perf_counter()
        tw.ingest_sources(cfg)
        res["ingest_s"] = round(time.perf_counter() - t, 2)
    with ExitStack() as stack:
        client = None
        if dist["scheduler"]:
            from distributed import Client

            from twmb_geo.core.cluster import local_cluster

            cluster = stack.enter_context(local_cluster(dist["workers"], dist["worker_memory"]))
            client = stack.enter_context(Client(cluster))
            cfg = replace(
                cfg,
                compute=replace(
                    cfg.compute,
                    scheduler=cluster.scheduler_address,
                    partition_rows=dist["partition_rows"],
                ),
            )
            res["cluster"] = dict(dist)
        t = time.perf_counter()
        rep = build_features(cfg)
        res["feature_stage_wall_s"] = round(time.perf_counter() - t, 2)
        if client is not None:
            peaks = client.run(_worker_peak_gb)
            res["worker_peak_gb"] = sorted(round(v, 2) for v in peaks.values())
            res["partitions"] = rep.partitions
    res["feature_steps_s"] = rep.timings
    res["peak_rss_mb_after_step"] = rep.peak_rss_mb
    core = sum(rep.timings[k] for k in ("read", "organise", "graphs", "panel"))
    res["organise_panel_weights_lag_s"] = round(core, 2)
    res["feature_stage_total_s"] = round(sum(rep.timings.values()), 2)
    res["units"] = rep.units
    res["panel_rows"] = rep.tables["panel"]
    with tw.open_store(cfg.store_path, read_only=True) as store:
        res["match_accuracy"] = evaluate_matching(store, city_dir / "truth" / "break_truth.csv")
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[49_000, 500_000])
    ap.add_argument("--permutations", type=int, default=999)
    ap.add_argument(
        "--gps-sigma", type=float, default=None, help="override the synthetic GPS noise (m)"
    )
    ap.add_argument("--scheduler", choices=["", "local"], default="")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-memory", default="8GiB")
    ap.add_argument("--partition-rows", type=int, default=50_000)
    ap.add_argument("--keep", help="keep (and reuse) each size's ingested city under this folder")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    dist = {
        "scheduler": args.scheduler,
        "workers": args.workers,
        "worker_memory": args.worker_memory,
        "partition_rows": args.partition_rows,
    }
    if args.child:
        _child(args.child, args.out, args.permutations, args.gps_sigma, dist)
        return
    results = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as scratch:
            tmp = scratch
            if args.keep:
                tmp = str(Path(args.keep) / f"city-{n}")
                Path(tmp).mkdir(parents=True, exist_ok=True)
            cmd = [
                sys.executable,
                __file__,
                "--child",
                str(n),
                "--out",
                tmp,
                "--permutations",
                str(args.permutations),
                "--scheduler",
                args.scheduler,
                "--workers",
                str(args.workers),
                "--worker-memory",
                args.worker_memory,
                "--partition-rows",
                str(args.partition_rows),
            ]
            if args.gps_sigma is not None:
                cmd += ["--gps-sigma", str(args.gps_sigma)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode:
                results.append(
                    {"n_pipes": n, "returncode": proc.returncode, "error": proc.stderr[-2000:]}
                )
            else:
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(
        json.dumps(
            {
                "benchmark": "features",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "targets": {
                    "49k": {"organise_panel_weights_lag_s": 60, "peak_rss_mb": 4096},
                    "500k": {"organise_panel_weights_lag_s": 600, "peak_rss_mb": 16384},
                },
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
