"""The spatial organisation of a built project: in this process vs partitioned on a LocalCluster.

Issue 16. Reads the curated tables of an ingested project (``twmb ingest`` or ``twmb run``
done) and runs :func:`twmb_geo.spatial.units.organise` twice: in this process (every step
on the whole city), then with a Dask LocalCluster of ``--workers`` workers (the break
matching, the street links and the pipe-to-street apportionment partition by partition,
at most ``--partition-rows`` breaks or pipes each). The two results are checked equal
(links, apportionments, every unit table). Then the pipe-to-street apportionment alone,
whole vs on the cluster.

Printed as JSON: seconds, CPU seconds of this process, its peak memory (sampled) and that
with the workers, the partitions of each step.

Usage::

    python benchmarks/organise.py --config DIR/city/twmb-local.toml --out DIR/out \\
        [--workers 2] [--partition-rows 50000] [--skip-whole]
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


def main() -> None:
    ap = cluster_arguments(__doc__)
    ap.add_argument("--skip-whole", action="store_true", help="only the cluster run")
    args = ap.parse_args()
    logging.disable(logging.WARNING)

    import pandas as pd

    from twmb_geo.config import load_config
    from twmb_geo.core.cluster import ClusterSpec, open_client
    from twmb_geo.core.crs import using_crs
    from twmb_geo.features.build import _read_inputs
    from twmb_geo.spatial.partitioned import PartitionReport, pipes_to_streets_partitioned
    from twmb_geo.spatial.snapping import pipes_to_streets
    from twmb_geo.spatial.units import SpatialSettings, organise
    from twmb_geo.store.project import project_crs

    cfg = load_config(args.config, out=args.out)
    settings = SpatialSettings.from_config(cfg)
    sampler = RssSampler()
    result: dict[str, Any] = {"benchmark": "organise", "machine": machine(), "steps": {}}
    steps = result["steps"]
    with using_crs(project_crs(cfg)):
        steps["read"] = {}
        with phase(sampler, steps["read"]):
            breaks, nb, area, pipes, streets = _read_inputs(cfg)
        result["rows"] = {
            "breaks": len(breaks),
            "pipes": 0 if pipes is None else len(pipes),
            "streets": 0 if streets is None else len(streets),
        }
        kw: dict[str, Any] = {"pipes": pipes, "streets": streets, "settings": settings}
        here = None
        if not args.skip_whole:
            steps["organise, this process"] = {}
            with phase(sampler, steps["organise, this process"]):
                here = organise(breaks, nb, area, **kw)
            steps["organise, this process"]["steps"] = here.timings
        spec = ClusterSpec("local", workers=args.workers, worker_memory=args.worker_memory)
        with open_client(spec) as client:
            key = f"organise, LocalCluster of {args.workers}"
            steps[key] = {}
            with phase(sampler, steps[key]):
                there = organise(
                    breaks, nb, area, client=client, partition_rows=args.partition_rows, **kw
                )
            steps[key]["steps"] = there.timings
            steps[key]["partitions"] = dict(there.partitions)
            if here is not None:
                pd.testing.assert_frame_equal(there.links, here.links)
                pd.testing.assert_frame_equal(there.pipe_streets, here.pipe_streets)
                pd.testing.assert_frame_equal(there.pipe_cells, here.pipe_cells)
                for ut, units in here.units.items():
                    pd.testing.assert_frame_equal(there.units[ut], units, obj=ut)
                result["equal"] = True
            pu, su = there.units.get("pipe"), there.units.get("street")
            del here
            if pu is not None and su is not None:
                p = pd.DataFrame(
                    {
                        "pipe_id": pu["unit_id"],
                        "geometry": pu["geometry"],
                        "x": pu["x"],
                        "y": pu["y"],
                    }
                )
                s = pd.DataFrame(
                    {
                        "segment_id": su["unit_id"],
                        "is_street": su["is_street"],
                        "geometry": su["geometry"],
                    }
                )
                half = settings.street_half_width_m
                whole = None
                if not args.skip_whole:
                    steps["pipes_to_streets, this process"] = {}
                    with phase(sampler, steps["pipes_to_streets, this process"]):
                        whole = pipes_to_streets(p[["pipe_id", "geometry"]], s, half_width_m=half)
                key = f"pipes_to_streets, LocalCluster of {args.workers}"
                steps[key] = {}
                report = PartitionReport()
                with phase(sampler, steps[key]):
                    got = pipes_to_streets_partitioned(
                        p,
                        s,
                        half_width_m=half,
                        target_rows=args.partition_rows,
                        client=client,
                        report=report,
                    )
                steps[key]["partitions"] = report["pipe_streets"]
                if whole is not None:
                    pd.testing.assert_frame_equal(got, whole)
    sampler.stop()
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
