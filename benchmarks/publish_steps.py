"""Publish of a built project, step by step: seconds and peak memory of each, as JSON.

Runs what ``twmb publish`` runs on an existing store (``twmb run`` done), one step at a
time in this process, sampling its resident memory every 0.2 s: the star built with its
unit-year fact spooled (``spool_star``), the key check, the checksums (``prepare_star``),
then each local target (``folder``, ``duckdb``, ``turso-file``) written under ``--work``,
then (``--republish K``) the Turso file published K more times as new publishes (the
second keeps the first as the previous publish; the third and later drop the oldest).
Used for the 500,000-pipe city of ``benchmarks/scale.py --whole-run --keep DIR``.

Usage::

    python benchmarks/publish_steps.py --config DIR/city/twmb-scale.toml --out DIR/out \\
        --work /tmp/publish-steps [--targets folder,duckdb,turso-file] [--republish 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _rss_gb() -> float:
    with Path("/proc/self/status").open(encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1e6
    return 0.0


class _Peak:
    """The highest resident memory since :meth:`reset`, sampled in a thread."""

    def __init__(self) -> None:
        self.value = _rss_gb()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            self.value = max(self.value, _rss_gb())
            time.sleep(0.2)

    def reset(self) -> None:
        self.value = _rss_gb()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None, help="the project's output folder")
    ap.add_argument("--work", type=Path, required=True, help="where the targets are written")
    ap.add_argument("--targets", default="folder,duckdb,turso-file")
    ap.add_argument(
        "--republish",
        type=int,
        default=0,
        help="then publish the Turso file this many more times, each as a new publish (its "
        "id changed): the file holds a publish (the second) and one to drop (the third on)",
    )
    args = ap.parse_args()

    from twmb_geo.config import load_config
    from twmb_geo.core.crs import using_crs
    from twmb_geo.publish.base import TargetOptions, prepare_star
    from twmb_geo.publish.star import check_keys, spool_star
    from twmb_geo.publish.targets import make_target
    from twmb_geo.publish.turso import SCHEMA_VERSION
    from twmb_geo.store.duckdb_store import Store
    from twmb_geo.store.project import project_crs

    cfg = load_config(args.config, out=args.out)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    peak = _Peak()
    steps: dict[str, dict[str, float]] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        peak.reset()
        t0 = time.perf_counter()
        out = fn()
        steps[name] = {
            "s": round(time.perf_counter() - t0, 1),
            "peak_gb": round(peak.value, 2),
            "after_gb": round(_rss_gb(), 2),
        }
        print(f"[publish-steps] {name}: {steps[name]}", file=sys.stderr, flush=True)
        return out

    with using_crs(project_crs(cfg)):
        with Store(cfg.store_path, read_only=True) as store:
            tables = step("build_star (spooled)", lambda: spool_star(store, args.work / "spool"))
        problems = step("check_keys", lambda: check_keys(tables))
        if problems:
            raise SystemExit(f"keys do not resolve: {problems}")
        names = args.targets.split(",")
        rows_dir = None
        if "turso-file" in names or args.republish:  # as the publish stage asks for them
            rows_dir = args.work / "spool" / "rows"
            rows_dir.mkdir()
        star = step("prepare_star (checksums)", lambda: prepare_star(tables, row_files=rows_dir))
        options = TargetOptions(
            out_dir=args.work,
            source=str(cfg.store_path),
            schema_version=SCHEMA_VERSION,
            folder=args.work / "star",
            formats=("parquet", "csv"),
            duckdb_path=args.work / "star.duckdb",
            turso_file=args.work / "twmb_star.db",
            turso_url=None,
            turso_mode="http",
            token=None,
            progress=None,
        )
        for name in names:
            target = make_target(name, options)
            target.check()
            try:
                step(name, lambda t=target: t.write(tables, star))
            finally:
                target.close()
        for i in range(args.republish):
            again = replace(star, publish_id=f"{star.publish_id}-{i + 1}")
            target = make_target("turso-file", options)
            target.check()
            try:
                step(
                    f"turso-file, publish {i + 2}",
                    lambda t=target, s=again: t.write(tables, s),
                )
            finally:
                target.close()
    print(
        json.dumps(
            {
                "benchmark": "publish steps",
                "machine": {"python": platform.python_version(), "platform": platform.platform()},
                "rows": {t: len(tables[t]) for t in tables},
                "steps": steps,
                "total_s": round(sum(s["s"] for s in steps.values()), 1),
                "peak_gb": max(s["peak_gb"] for s in steps.values()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
