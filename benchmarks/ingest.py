"""Ingest benchmark: seconds and peak memory for the bundled data and a 10x replicated copy.

Each case runs in a fresh subprocess so peak RSS (ru_maxrss) belongs to that case alone.
Prints one JSON object. Usage: python benchmarks/ingest.py [--factor 10] [--keep DIR]
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

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "toronto"


def _case_bundled(out: str) -> dict:
    import twmb_geo as tw

    cfg = tw.default_config(out)
    t0 = time.perf_counter()
    report = tw.ingest_sources(cfg)
    secs = time.perf_counter() - t0
    return {
        "seconds": round(secs, 3),
        "rows_in": {s.source_id: s.rows_in for s in report.sources},
        "steps": report.manifest.steps,
    }


def _make_replica(path: Path, factor: int) -> int:
    """The bundled breaks as CSV (toronto_breaks_csv), repeated ``factor`` times.

    Copy k moves every point k * 0.7 m east and north, so copies are distinct records
    (not duplicates) and still inside the city.
    """
    import numpy as np
    import pandas as pd
    import pyogrio

    df = pyogrio.read_dataframe(DATA / "watermain_breaks_1990_2016_wgs84.zip", read_geometry=False)
    df["BREAK_DATE"] = pd.to_datetime(df["BREAK_DATE"]).dt.strftime("%Y-%m-%d")
    parts = []
    for k in range(factor):
        c = df.copy()
        c["XCOORD"] += 0.7 * k
        c["YCOORD"] += 0.7 * k
        c["POINT_X"] += 0.7 * k / (111_320 * np.cos(np.radians(43.7)))
        c["POINT_Y"] += 0.7 * k / 110_574
        parts.append(c)
    big = pd.concat(parts, ignore_index=True)
    big.insert(0, "_id", np.arange(1, len(big) + 1))
    big.to_csv(path, index=False, float_format="%.7f")
    return len(big)


def _case_replica(out: str, csv: str) -> dict:
    import twmb_geo as tw
    from twmb_geo.config import Config, SourceConfig

    nb = DATA / "neighbourhood_planning_areas_utm6.zip"
    cfg = Config(
        out=Path(out),
        sources=(
            SourceConfig("neighbourhoods", "toronto_neighbourhoods_140", str(nb)),
            SourceConfig("breaks", "toronto_breaks_csv", csv),
        ),
    )
    tw.ingest_sources(cfg, ["neighbourhoods"])
    t0 = time.perf_counter()
    report = tw.ingest_sources(cfg, ["breaks"])
    secs = time.perf_counter() - t0
    s = report.sources[0]
    return {
        "seconds": round(secs, 3),
        "rows_in": s.rows_in,
        "accepted": s.accepted,
        "quarantined_by_reason": s.quarantined_by_reason,
        "steps": report.manifest.steps,
    }


def _child(case: str, out: str, csv: str | None) -> None:
    import logging

    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    res = _case_bundled(out) if case == "bundled" else _case_replica(out, csv or "")
    res["wall_seconds_including_imports"] = round(time.perf_counter() - t0, 3)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(res))


def _run_child(case: str, out: Path, csv: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", case, "--out", str(out)] + (
        ["--csv", str(csv)] if csv else []
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--keep", type=Path, default=None, help="keep outputs in this folder")
    ap.add_argument("--child", choices=["bundled", "replica"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--csv", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.out, args.csv)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        bundled = _run_child("bundled", root / "bundled")
        csv = root / f"breaks_x{args.factor}.csv"
        rows = _make_replica(csv, args.factor)
        replica = _run_child("replica", root / "replica", csv)
    result = {
        "benchmark": "ingest",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "bundled": bundled,
        f"replica_x{args.factor}": {"csv_rows": rows, **replica},
        "targets": {"bundled_seconds": 5, "replica_x10_seconds": 30, "peak_rss_mb": 2048},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
