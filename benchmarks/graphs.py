"""The pipes' line network of a built project: whole in this process vs partition by
partition on a LocalCluster.

Issue 16. Reads the pipe units of a project whose feature stage has run and builds their
line network (the graph the feature stage builds on a cluster): whole in this process, then
with :mod:`twmb_geo.spatial.partitioned_graphs` on a Dask LocalCluster of ``--workers``
workers (at most ``--partition-rows`` pipes per partition), and checks the two equal, bit
for bit. Each in a process of its own (``--only whole`` or ``--only cluster``) starts from
the same memory, so their peaks compare.

Printed as JSON: seconds, CPU seconds of this process, its peak memory (sampled) and that
with the workers, and what the partitioning did.

Usage::

    python benchmarks/graphs.py --config DIR/city/twmb-local.toml --out DIR/out \\
        [--workers 2] [--partition-rows 50000] [--only whole|cluster]
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from _bench import RssSampler, cluster_arguments, machine, phase

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _same(a: Any, b: Any) -> bool:
    x, y = a.sparse.tocsr(), b.sparse.tocsr()
    x.sort_indices()
    y.sort_indices()
    return bool(
        list(a.unique_ids) == list(b.unique_ids)
        and (x.indptr == y.indptr).all()
        and (x.indices == y.indices).all()
        and x.data.tobytes() == y.data.tobytes()
    )


def main() -> None:
    ap = cluster_arguments(__doc__)
    ap.add_argument("--only", choices=["whole", "cluster"], default=None)
    args = ap.parse_args()
    logging.disable(logging.WARNING)

    import shapely

    from twmb_geo.config import load_config
    from twmb_geo.core.cluster import ClusterSpec, open_client
    from twmb_geo.core.crs import using_crs
    from twmb_geo.spatial import graphs as gb
    from twmb_geo.spatial.partitioned_graphs import line_network_partitioned
    from twmb_geo.store.duckdb_store import Store
    from twmb_geo.store.project import project_crs

    cfg = load_config(args.config, out=args.out)
    gc = cfg.graphs
    sampler = RssSampler()
    result: dict[str, Any] = {"benchmark": "graphs", "machine": machine()}
    with using_crs(project_crs(cfg)), Store(cfg.store_path, read_only=True) as store:
        pipes = store.read("unit_pipe", columns=["unit_id", "geometry", "x", "y"])
    pipes = pipes[pipes["geometry"].notna()]
    result["pipes"] = len(pipes)
    ids, wkb = pipes["unit_id"].to_numpy(), pipes["geometry"].to_numpy(dtype=object)
    x, y = pipes["x"].to_numpy(), pipes["y"].to_numpy()
    tol, tj = gc.pipe_end_tolerance_m, gc.pipe_t_junctions
    spec = ClusterSpec("local", workers=args.workers, worker_memory=args.worker_memory)
    with using_crs(project_crs(cfg)), open_client(spec) as client:
        whole = None
        if args.only in (None, "whole"):
            result["this process"] = {}
            with phase(sampler, result["this process"]):
                whole = gb.line_network(ids, shapely.from_wkb(wkb), tol, t_junctions=tj)
        if args.only in (None, "cluster"):
            key = f"LocalCluster of {args.workers}"
            result[key] = {}
            report: dict[str, Any] = {}
            with phase(sampler, result[key]):
                got = line_network_partitioned(
                    ids,
                    wkb,
                    x,
                    y,
                    tol,
                    t_junctions=tj,
                    target_rows=args.partition_rows,
                    client=client,
                    report=report,
                )
            result[key]["partitions"] = report
            if whole is not None:
                result["equal"] = _same(got, whole)
                assert result["equal"]
    sampler.stop()
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
