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

``--whole-run``: instead, the whole ``twmb run`` (ingest, features, train, score,
simulate, publish, maps, report) of a synthetic city of each size (``make_city``, written in
City formats) with its partitioned work on a LocalCluster of ``--workers`` workers that this
script starts and hands to the run by address (as an existing cluster). Printed: seconds
per stage (the run's manifest), the run process's peak memory per stage (sampled every
0.2 s from ``/proc``) and overall, the peak of the run process and the processes it starts
summed (``tree_peak_gb``: the ingest's transform workers, the publish's background writer,
the maps beside the publish), each worker's peak (``VmHWM``), rows per second.

Usage: python benchmarks/scale.py [--sizes 50000 500000 2000000] [--workers 2]
       python benchmarks/scale.py --whole-run [--sizes 50000 500000] [--keep DIR]
           [--run-options "--no-model --no-publish --no-report"]
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


def _rss_gb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024**2
    return None


def _tree_rss_gb(pid: int) -> float | None:
    """RSS of ``pid`` and every process under it (the ingest's transform workers, the
    publish's background writer, the maps beside the publish), in GB."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total / 1024**3


def _bundled_here(cfg: Any) -> Any:
    """``cfg`` with its bundled sources read from this checkout: a kept city's config names
    the neighbourhoods and weather of the checkout that generated it, by absolute path."""
    from dataclasses import replace

    from twmb_geo._paths import data_dir

    def here(path: str) -> str:
        p = Path(path).as_posix()
        if not Path(path).is_absolute() or "/data/toronto/" not in p:
            return path
        return str(data_dir() / "toronto" / p.rsplit("/data/toronto/", 1)[1])

    return replace(cfg, sources=tuple(replace(s, path=here(s.path)) for s in cfg.sources))


def _whole_run(
    n_pipes: int,
    workers: int,
    worker_memory: str,
    rows: int,
    keep: str | None,
    run_options: list[str],
) -> dict:
    """One size through ``twmb run`` on a LocalCluster (see the module docstring)."""
    import datetime as dt
    import shutil
    import tempfile
    import threading
    from dataclasses import replace

    from distributed import Client

    from twmb_geo.config import load_config, write_config
    from twmb_geo.core.cluster import local_cluster
    from twmb_geo.synth import make_city, write_city

    res: dict[str, Any] = {"n_pipes": n_pipes, "workers": workers, "worker_memory": worker_memory}
    if run_options:
        res["run_options"] = run_options
    base = Path(keep) / f"city-{n_pipes}" if keep else Path(tempfile.mkdtemp(prefix="scale-"))
    city_dir, out = base / "city", base / "out"
    if not (city_dir / "twmb.toml").exists():
        t = time.perf_counter()
        city = make_city(n_pipes=n_pipes)
        res["city"] = {k: v for k, v in city.figures().items() if k != "material_shares_pct"}
        write_city(city, city_dir)
        del city
        res["generate_and_write_s"] = round(time.perf_counter() - t, 1)
    shutil.rmtree(out, ignore_errors=True)
    cfg = _bundled_here(load_config(city_dir / "twmb.toml"))
    cfg = replace(cfg, compute=replace(cfg.compute, partition_rows=rows))
    config = write_config(cfg, city_dir / "twmb-scale.toml", overwrite=True)
    twmb = str(Path(sys.executable).with_name("twmb"))
    # the cluster `twmb run --scheduler local` would start; this process's environment is
    # left as it was, so the run started below does not inherit the workers' settings
    with local_cluster(workers, worker_memory) as cluster, Client(cluster) as client:
        client.run(_worker_peak_gb)  # started
        cmd = [twmb, "--config", str(config), "--out", str(out), "run",
               "--scheduler", cluster.scheduler_address, *run_options]  # fmt: skip
        samples: list[tuple[float, float]] = []
        tree: list[tuple[float, float]] = []
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                v, w = _rss_gb(proc.pid), _tree_rss_gb(proc.pid)
                if v is not None:
                    samples.append((time.time(), v))
                if w is not None:
                    tree.append((time.time(), w))
                time.sleep(0.2)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        _, stderr = proc.communicate()
        done.set()
        th.join()
        res["wall_s"] = round(time.time() - t0, 1)
        res["exit"] = proc.returncode
        if proc.returncode:
            res["stderr"] = stderr.decode(errors="replace")[-3000:]
        peaks = client.run(_worker_peak_gb)
    res["worker_peak_gb"] = sorted(round(v, 2) for v in peaks.values())
    res["run_peak_gb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2, 2)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    stages = {}
    for st in manifest.get("stages", []):
        a = dt.datetime.fromisoformat(st["started_at"]).timestamp()
        b = dt.datetime.fromisoformat(st["finished_at"]).timestamp() if st["finished_at"] else a
        inside = [v for t, v in samples if a - 0.2 <= t <= b + 0.2]
        with_children = [v for t, v in tree if a - 0.2 <= t <= b + 0.2]
        stages[st["stage"]] = {
            "s": st["seconds"],
            "status": st["status"],
            "peak_gb": round(max(inside), 2) if inside else None,
            # the run process and the processes it started, summed at each sample
            "tree_peak_gb": round(max(with_children), 2) if with_children else None,
        }
    res["stages"] = stages
    summary = out / "summary.json"
    if summary.exists():
        doc = json.loads(summary.read_text(encoding="utf-8"))
        feats = doc.get("features") or {}
        res["units"] = feats.get("units")
        res["panel_rows"] = (feats.get("tables") or {}).get("panel")
        res["partitions"] = feats.get("partitions")
        if res["panel_rows"] and stages.get("features", {}).get("s"):
            res["panel_rows_per_s"] = round(res["panel_rows"] / stages["features"]["s"])
    res["total_gb_peak_sum"] = round(res["run_peak_gb"] + sum(res["worker_peak_gb"]), 2)
    if not keep:
        shutil.rmtree(base, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 500_000, 2_000_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partition-rows", type=int, default=50_000)
    ap.add_argument("--breaks-per-pipe", type=float, default=0.5)
    ap.add_argument("--whole-run", action="store_true", help="time the whole `twmb run`")
    ap.add_argument("--worker-memory", default="8GiB")
    ap.add_argument("--keep", help="--whole-run: keep (and reuse) each size's city here")
    ap.add_argument(
        "--run-options",
        default="",
        help="--whole-run: more options of `twmb run`, e.g. '--no-model --no-publish --no-report' "
        "(ingest and features only)",
    )
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.whole_run:
        runs = []
        for n in args.sizes:
            print(f"[scale] whole run, {n:,} pipes", file=sys.stderr, flush=True)
            runs.append(
                _whole_run(
                    n,
                    args.workers,
                    args.worker_memory,
                    args.partition_rows,
                    args.keep,
                    args.run_options.split(),
                )
            )
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
        doc = {"benchmark": "scale (whole run)", "machine": machine(), "runs": runs}
        print(json.dumps(doc, indent=2))
        return
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
