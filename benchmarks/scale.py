"""Break matching at scale: whole city vs spatial partitions, in-process and on a LocalCluster.

Issue 16 (first part). For each size a random network (:func:`twmb_geo.synth.matching_case`:
short pipes, breaks near them, ids, service years) is matched three ways, each checked
equal to the first:

* ``whole``: :func:`~twmb_geo.spatial.snapping.link_breaks_to_pipes` on the whole city;
* ``partitioned``: :func:`~twmb_geo.spatial.partitioned.link_breaks_to_pipes_partitioned`
  in this process (partitions of at most ``--partition-rows`` breaks);
* ``cluster``: the same on a Dask LocalCluster of ``--workers`` workers (one thread each).

Printed as JSON: seconds per way, rows per second, partitions, the largest task, the peak
memory of the measuring process (each size in a fresh child process) and of each worker
(``VmHWM``, read from the workers at the end), so the memory per worker can be seen to
stay flat as the city grows.

Usage: python benchmarks/scale.py [--sizes 50000 500000 2000000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _bench import machine, maxrss_gb


def _worker_peak_gb() -> float:
    """The worker process's own peak RSS (``VmHWM``: ``ru_maxrss`` would carry the peak of
    the process that started it, preserved across fork and exec)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _child(n_pipes: int, workers: int, partition_rows: int, breaks_per_pipe: float) -> None:
    import logging

    import pandas as pd

    logging.disable(logging.WARNING)
    from twmb_geo.core.cluster import ClusterSpec, open_client
    from twmb_geo.core.crs import TORONTO_CRS, using_crs
    from twmb_geo.spatial.partitioned import PartitionReport, link_breaks_to_pipes_partitioned
    from twmb_geo.spatial.snapping import link_breaks_to_pipes
    from twmb_geo.synth.matching import matching_case

    n_breaks = int(n_pipes * breaks_per_pipe)
    res: dict[str, Any] = {"n_pipes": n_pipes, "n_breaks": n_breaks}
    t = time.perf_counter()
    breaks, pipes = matching_case(n_pipes, n_breaks, seed=1)
    res["generate_s"] = round(time.perf_counter() - t, 2)
    with using_crs(TORONTO_CRS):
        t = time.perf_counter()
        whole = link_breaks_to_pipes(breaks, pipes)
        res["whole_s"] = round(time.perf_counter() - t, 2)
        res["peak_gb_after_whole"] = round(maxrss_gb(), 2)
        rep = PartitionReport()
        t = time.perf_counter()
        part = link_breaks_to_pipes_partitioned(
            breaks, pipes, target_rows=partition_rows, report=rep
        )
        res["partitioned_s"] = round(time.perf_counter() - t, 2)
        pd.testing.assert_frame_equal(part, whole)
        res["partitions"] = dict(rep)
        t = time.perf_counter()
        with open_client(ClusterSpec("local", workers=workers, worker_memory="8GiB")) as client:
            res["cluster_start_s"] = round(time.perf_counter() - t, 2)
            t = time.perf_counter()
            dist = link_breaks_to_pipes_partitioned(
                breaks, pipes, target_rows=partition_rows, client=client
            )
            res["cluster_s"] = round(time.perf_counter() - t, 2)
            peaks = client.run(_worker_peak_gb)
        pd.testing.assert_frame_equal(dist, whole)
    res["equal"] = True
    res["worker_peak_gb"] = sorted(round(v, 2) for v in peaks.values())
    res["main_peak_gb"] = round(maxrss_gb(), 2)
    res["breaks_per_s"] = {
        k: round(n_breaks / res[f"{k}_s"]) for k in ("whole", "partitioned", "cluster")
    }
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 500_000, 2_000_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partition-rows", type=int, default=50_000)
    ap.add_argument("--breaks-per-pipe", type=float, default=0.5)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.workers, args.partition_rows, args.breaks_per_pipe)
        return
    out: dict[str, Any] = {"benchmark": "scale (break matching)", "machine": machine()}
    out["settings"] = {
        "workers": args.workers,
        "partition_rows": args.partition_rows,
        "breaks_per_pipe": args.breaks_per_pipe,
    }
    runs = []
    for n in args.sizes:
        print(f"[scale] {n:,} pipes", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--child", str(n), "--workers", str(args.workers),
               "--partition-rows", str(args.partition_rows),
               "--breaks-per-pipe", str(args.breaks_per_pipe)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.stderr.write(proc.stderr[-3000:])
            runs.append({"n_pipes": n, "error": f"exit {proc.returncode}"})
            continue
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    out["runs"] = runs
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
