"""Maps and report benchmark: timings of every map output and the report, as JSON.

On an existing output folder (a store written by ``twmb run``; default: run the bundled
job into ``--work`` first, which is timed separately) it times ``map_layers``, each export
format, the PNG maps, the HTML map and the report, and reports sizes and the peak RSS.
Outputs go to a scratch folder, never into the run's own ``maps/`` or ``report/``.

``--stage`` times the maps stage as ``twmb map`` runs it instead (``make_maps``: a block of
``[compute] partition_rows`` features at a time, or ``--block-rows``; the HTML map cut to
``[maps] html_max_features``) and then the report, with the peak RSS of the process;
``--config`` points at any project (e.g. a city from ``benchmarks/scale.py``), whose
``[project] out`` (or ``--out``) holds the store.

Usage::

    python benchmarks/maps.py [--out OUT_WITH_STORE] [--work /tmp/twmb-bench-maps]
    python benchmarks/maps.py --config city/twmb.toml --stage [--block-rows 50000]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import twmb_geo as tw
from twmb_geo.core.crs import using_crs
from twmb_geo.maps.exports import export_layers
from twmb_geo.maps.interactive import write_html_map
from twmb_geo.maps.layers import map_layers
from twmb_geo.maps.report import write_report
from twmb_geo.maps.stage import make_maps, make_report
from twmb_geo.maps.static import render_maps
from twmb_geo.store.duckdb_store import Store
from twmb_geo.store.project import project_crs


def _timed(fn: Any, *args: Any, **kw: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    res = fn(*args, **kw)
    return res, round(time.perf_counter() - t, 3)


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="a twmb output folder with a store")
    ap.add_argument("--work", type=Path, default=Path("/tmp/twmb-bench-maps"))
    ap.add_argument("--config", type=Path, default=None, help="project config (default: bundled)")
    ap.add_argument("--stage", action="store_true", help="time the maps stage and the report")
    ap.add_argument(
        "--block-rows", type=int, default=None, help="features per block (default: the config's)"
    )
    args = ap.parse_args()

    result: dict[str, Any] = {"benchmark": "maps", "python": platform.python_version()}
    out = args.out
    if args.config is not None:
        cfg = tw.load_config(args.config, out=out)
    else:
        if out is None:
            out = args.work / "run"
            if not (out / "twmb.duckdb").exists():
                _, result["setup_run_s"] = _timed(tw.run, tw.default_config(out), with_report=False)
        cfg = tw.default_config(out)
    if args.block_rows is not None:
        cfg = replace(cfg, compute=replace(cfg.compute, partition_rows=args.block_rows))
    result["block_rows"] = cfg.compute.partition_rows
    scratch = args.work / "outputs"
    shutil.rmtree(scratch, ignore_errors=True)
    if args.stage:
        maps, result["maps_stage_s"] = _timed(make_maps, cfg, folder=scratch / "maps")
        result["features"] = maps["rows"]
        result["html_map_features"] = maps["html"]["layers"]
        result["html_map_mb"] = round(maps["html"]["bytes"] / 2**20, 2)
        result["maps_stage_peak_rss_mb"] = _peak_mb()
        _, result["report_s"] = _timed(make_report, cfg, folder=scratch / "report", maps=maps)
        result["peak_rss_mb"] = _peak_mb()
        print(json.dumps(result, indent=2))
        return
    with using_crs(project_crs(cfg)):
        with Store(cfg.store_path, read_only=True) as store:
            layers, result["map_layers_s"] = _timed(map_layers, store)
        result["features"] = {k: len(v) for k, v in layers.items()}
        for fmt in ("geojson", "gpkg", "geoparquet"):
            _, result[f"export_{fmt}_s"] = _timed(export_layers, layers, scratch / "maps", [fmt])
        pngs, result["png_maps_s"] = _timed(render_maps, layers, scratch / "maps" / "png")
        result["png_maps"] = sorted(pngs)
        html, result["html_map_s"] = _timed(write_html_map, layers, scratch / "maps" / "map.html")
        result["html_map_mb"] = round(html["bytes"] / 2**20, 2)
        rep, result["report_s"] = _timed(
            write_report, cfg, scratch / "report", map_images=pngs, html_map=Path(html["path"])
        )
        result["report_html_mb"] = round(Path(rep["html"]).stat().st_size / 2**20, 2)
    result["peak_rss_mb"] = _peak_mb()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
