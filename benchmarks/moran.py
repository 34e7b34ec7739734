"""Moran benchmark: yearly global and local Moran's I on an H3 grid, against esda's own loop.

A grid of H3 cells (a disk of ``--rings`` rings at resolution 9: 6,211 cells for 45 rings,
about the bundled city's 6,024), its contiguity graph (cells sharing an edge), and ``--years``
years of break counts clustered in a few hot areas. It times this package's
``global_moran_by_year`` (breaks and a rate) and ``local_moran_by_year`` on that panel, then
the same statistics made as esda makes them (``esda.Moran`` and ``esda.Moran_Local`` year by
year with the permutations), and checks the two give the same statistics: I, ``z_sim`` and
``p_sim`` of every global test, local I and ``p_sim`` of every cell-year (``"directed"``,
esda's own p-value). With ``--workers N`` it also times the same two functions with their
tasks on a Dask LocalCluster of N single-threaded workers started first (LISA's units and
the global permutations in tasks, as ``twmb run`` makes them with a scheduler) and checks
that they give the same frames as in this process. ``--skip-esda`` leaves out esda's loop
(hours on grids of 100,000 cells). Prints timings and peak memory as JSON.

Usage::

    python benchmarks/moran.py [--rings 45] [--years 27] [--permutations 999]
        [--workers 2] [--skip-esda]
"""

from __future__ import annotations

import argparse
import json
import warnings

import esda
import h3.api.basic_int as h3
import numpy as np
import pandas as pd
from _bench import RssSampler, machine, phase
from libpysal.graph import Graph
from scipy import sparse

from twmb_geo.core.cluster import ClusterSpec, open_client
from twmb_geo.features.esda import global_moran_by_year, local_moran_by_year

#: a resolution-9 cell near the bundled city's centre (any cell would do)
CENTRE = h3.latlng_to_cell(43.70, -79.40, 9)


def grid(rings: int) -> tuple[pd.Index, Graph]:
    """The cells of a disk and their edge-sharing graph (binary weights)."""
    cells = np.sort(np.asarray(h3.grid_disk(CENTRE, rings), dtype=np.uint64))
    ids = pd.Index([h3.int_to_str(int(c)) for c in cells], name="unit_id")
    pos = {int(c): k for k, c in enumerate(cells)}
    rows, cols = [], []
    for k, c in enumerate(cells):
        for n in h3.grid_ring(int(c), 1):
            if n in pos:
                rows.append(k)
                cols.append(pos[n])
    adj = sparse.csr_array((np.ones(len(rows)), (rows, cols)), shape=(len(cells), len(cells)))
    return ids, Graph.from_sparse(adj, ids=ids)


def panel(ids: pd.Index, years: int, seed: int = 7) -> pd.DataFrame:
    """Yearly break counts, higher in a few clustered areas (about 0.2 breaks per cell-year)."""
    rng = np.random.default_rng(seed)
    n = len(ids)
    base = rng.gamma(0.5, 0.3, n)
    hot = rng.choice(n, size=8, replace=False)
    base[hot] += 3.0
    frames = []
    for y in range(years):
        counts = rng.poisson(base * rng.uniform(0.6, 1.4))
        frames.append(
            pd.DataFrame(
                {"unit_id": ids, "year": 1990 + y, "breaks": counts, "rate_per_km": counts / 0.1}
            )
        )
    return pd.concat(frames, ignore_index=True)


def esda_loop(
    wide: dict[str, pd.DataFrame], graph: Graph, permutations: int, seed: int
) -> tuple[list[tuple[float, float, float]], np.ndarray, np.ndarray]:
    """The statistics as esda makes them, one test after another."""
    glob = []
    for col in ("breaks", "rate_per_km"):
        for year in wide[col].columns:
            state = np.random.get_state()  # noqa: NPY002 - esda.Moran draws from it
            np.random.seed(seed)  # noqa: NPY002
            mi = esda.Moran(wide[col][year].to_numpy(float), graph, permutations=permutations)
            np.random.set_state(state)  # noqa: NPY002
            glob.append((float(mi.I), float(mi.z_sim), float(mi.p_sim)))
    local_i, p_sim = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for year in wide["breaks"].columns:
            lm = esda.Moran_Local(
                wide["breaks"][year].to_numpy(float),
                graph,
                permutations=permutations,
                seed=seed,
                n_jobs=1,
            )
            local_i.append(lm.Is)
            p_sim.append(lm.p_sim)
    return glob, np.concatenate(local_i), np.concatenate(p_sim)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rings", type=int, default=45)
    ap.add_argument("--years", type=int, default=27)
    ap.add_argument("--permutations", type=int, default=999)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workers", type=int, default=0, help="also on a LocalCluster of N workers")
    ap.add_argument("--skip-esda", action="store_true", help="leave out esda's own loop")
    args = ap.parse_args()

    ids, graph = grid(args.rings)
    p = panel(ids, args.years)
    wide = {
        c: p.pivot(index="unit_id", columns="year", values=c) for c in ("breaks", "rate_per_km")
    }
    perms, seed = args.permutations, args.seed
    sampler = RssSampler()
    out: dict = {
        "benchmark": "moran (global and local, year by year)",
        "machine": machine(),
        "cells": len(ids),
        "edges": int(graph.n_edges),
        "years": args.years,
        "permutations": perms,
        "breaks_per_cell_year": round(float(p["breaks"].mean()), 3),
    }

    def statistics(client: object = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        kw = {"permutations": perms, "seed": seed, "alternative": "directed", "client": client}
        glob = global_moran_by_year(p, graph, value_cols=("breaks", "rate_per_km"), **kw)
        return glob, local_moran_by_year(p, graph, **kw)

    here: dict = {}
    with phase(sampler, here):
        glob, lisa = statistics()
    out["twmb_geo"] = here
    if args.workers:
        spec = ClusterSpec("local", workers=args.workers, worker_memory="4GiB")
        with open_client(spec) as client:
            cluster: dict = {"workers": args.workers}
            with phase(sampler, cluster):
                glob_c, lisa_c = statistics(client)
        out["twmb_geo_cluster"] = cluster
        out["cluster_speed_up"] = round(here["seconds"] / max(cluster["seconds"], 1e-9), 2)
        out["cluster_identical"] = bool(glob_c.equals(glob) and lisa_c.equals(lisa))
    if args.skip_esda:
        sampler.stop()
        print(json.dumps(out, indent=2))
        return
    there: dict = {}
    with phase(sampler, there):
        ref_glob, ref_i, ref_p = esda_loop(wide, graph, perms, seed)
    sampler.stop()
    # this package sorts global rows by (year, variable) and local rows by (year, unit)
    glob = glob.sort_values(["variable", "year"], kind="stable")
    got_glob = list(zip(glob["moran_i"], glob["z_sim"], glob["p_sim"], strict=True))
    out["esda_loop"] = there
    out["speed_up"] = round(there["seconds"] / max(here["seconds"], 1e-9), 1)
    out["identical"] = {
        "global_i_z_sim_p_sim": got_glob == ref_glob,
        "local_i": bool(np.array_equal(lisa["local_i"].to_numpy(), ref_i)),
        "local_p_sim": bool(np.array_equal(lisa["p_sim"].to_numpy(), ref_p)),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
