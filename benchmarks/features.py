"""Feature-stage benchmark on synthetic cities: seconds and peak memory as JSON.

For each size: generate the city (timed), write it in City formats and ingest it (timed),
then run the feature stage (organise + graphs + panel with lags + ESDA + store), each step
timed. Each size runs in a fresh subprocess so peak RSS belongs to that size alone.

Usage: python benchmarks/features.py [--sizes 49000 500000] [--permutations 999]
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


def _child(n_pipes: int, out: str, permutations: int, gps_sigma: float | None) -> None:
    import logging
    from dataclasses import replace

    logging.disable(logging.WARNING)
    import twmb_geo as tw
    from twmb_geo.features.build import build_features
    from twmb_geo.synth import make_city, write_city
    from twmb_geo.synth.evaluation import evaluate_matching

    res: dict = {"n_pipes": n_pipes}
    t = time.perf_counter()
    city = make_city(n_pipes=n_pipes, **({} if gps_sigma is None else {"gps_sigma_m": gps_sigma}))
    res["gps_sigma_m"] = city.params.gps_sigma_m
    res["generate_s"] = round(time.perf_counter() - t, 2)
    res["city"] = {k: v for k, v in city.figures().items() if k != "material_shares_pct"}
    t = time.perf_counter()
    paths = write_city(city, Path(out) / "city")
    res["write_s"] = round(time.perf_counter() - t, 2)
    del city
    cfg = tw.load_config(paths["config"], out=Path(out))
    cfg = replace(
        cfg,
        sources=tuple(s for s in cfg.sources if s.id != "weather"),
        features=replace(cfg.features, esda_permutations=permutations),
    )
    t = time.perf_counter()
    tw.ingest_sources(cfg)
    res["ingest_s"] = round(time.perf_counter() - t, 2)
    rep = build_features(cfg)
    res["feature_steps_s"] = rep.timings
    res["peak_rss_mb_after_step"] = rep.peak_rss_mb
    core = sum(rep.timings[k] for k in ("read", "organise", "graphs", "panel"))
    res["organise_panel_weights_lag_s"] = round(core, 2)
    res["feature_stage_total_s"] = round(sum(rep.timings.values()), 2)
    res["units"] = rep.units
    res["panel_rows"] = rep.tables["panel"]
    with tw.open_store(cfg.store_path, read_only=True) as store:
        res["match_accuracy"] = evaluate_matching(store, paths["break_truth"])
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[49_000, 500_000])
    ap.add_argument("--permutations", type=int, default=999)
    ap.add_argument(
        "--gps-sigma", type=float, default=None, help="override the synthetic GPS noise (m)"
    )
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.out, args.permutations, args.gps_sigma)
        return
    results = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                str(n),
                "--out",
                tmp,
                "--permutations",
                str(args.permutations),
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
