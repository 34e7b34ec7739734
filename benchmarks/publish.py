"""Publish benchmark: a 1M-row fact table to a local Turso server, end to end, as JSON.

Starts the Turso CLI (``turso --sync-server 127.0.0.1:<port>``, installed by ``make test``
under ``.tools/``) on a fresh database, builds a star schema whose ``fact_unit_year`` has
``--rows`` rows (the other tables are an empty store's: unknown rows only), and publishes it
with each mode in its own child process so each peak memory is its own:

* ``http``: ``POST /v2/pipeline`` batches (the default for speed; target >= 50k rows/s);
* ``sync``: ``turso.sync`` (write a local replica, push);
* ``file``: a local Turso database file (no server).

End to end = from the frames in memory to the pointer switched on the server: value
conversion, checksums, migrations, inserts, the count check and the switch. Each mode is
then checked: the server's row count and checksum of the table equal the published ones.

Usage::

    python benchmarks/publish.py [--rows 1000000] [--modes http,sync,file] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_ROWS_S = 50_000
TURSO_BIN = REPO / ".tools" / "node_modules" / ".bin" / "turso"


def child(mode: str, rows: int, url: str, work: Path) -> dict[str, Any]:
    """Publish once with ``mode``; timings and this process's peak RSS."""
    sys.path.insert(0, str(REPO / "tests"))
    from turso_server import star_with_fact

    from twmb_geo.publish.turso import TursoTarget, connect, publish_tables

    t0 = time.perf_counter()
    star = star_with_fact(rows)
    build_s = time.perf_counter() - t0
    if mode == "file":
        target = TursoTarget(mode="file", path=work / "bench-file.db")
    else:
        target = TursoTarget(mode=mode, url=url, replica=work / f"replica-{mode}.db")
    t1 = time.perf_counter()
    session = connect(target)
    try:
        res = publish_tables(session, star)
    finally:
        session.close()
    secs = time.perf_counter() - t1
    total = sum(res["rows"].values())
    return {
        "mode": mode,
        "rows_fact": res["rows"]["fact_unit_year"],
        "rows_total": total,
        "build_frames_s": round(build_s, 2),
        "publish_s": round(secs, 2),
        "rows_per_s": round(total / secs),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "checksum": res["checksums"]["fact_unit_year"],
        "publish_id": res["publish_id"],
    }


def verify(url: str, rows: int, checksum: str) -> dict[str, Any]:
    """Read the current fact table back over /v2/pipeline (paged) and check it."""
    sys.path.insert(0, str(REPO / "tests"))
    from turso_server import read_current

    from twmb_geo.publish.values import table_checksum

    t = time.perf_counter()
    got = read_current(url, "fact_unit_year", page=100_000)
    secs = time.perf_counter() - t
    return {
        "read_back_rows": len(got),
        "read_back_s": round(secs, 2),
        "checksum_ok": table_checksum(got) == checksum and len(got) == rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--modes", default="http,sync,file")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--url", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="twmb-bench-publish-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.url, work)))
        return
    if not TURSO_BIN.exists():
        sys.exit(f"the Turso CLI is missing at {TURSO_BIN}: run `make test` first")
    sys.path.insert(0, str(REPO / "tests"))
    from turso_server import TursoServer

    results = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        db = work / f"server-{mode}.db"
        for p in work.glob(f"server-{mode}.db*"):
            p.unlink()
        for p in work.glob(f"*{mode}.db*"):
            p.unlink()
        with TursoServer(db) as srv:
            t = time.perf_counter()
            out = subprocess.run(
                [
                    *(sys.executable, __file__, "--child", mode, "--rows", str(args.rows)),
                    *("--url", srv.url, "--work", str(work)),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            wall = time.perf_counter() - t
            res = json.loads(out.stdout.strip().splitlines()[-1])
            res["child_wall_s"] = round(wall, 2)
            if mode != "file":
                res.update(verify(srv.url, res["rows_fact"], res["checksum"]))
        res["target_rows_per_s"] = TARGET_ROWS_S
        res["meets_target"] = res["rows_per_s"] >= TARGET_ROWS_S
        results.append(res)
        print(json.dumps(res), file=sys.stderr)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "publish",
                "rows": args.rows,
                "machine": {
                    "python": platform.python_version(),
                    "cpus": __import__("os").cpu_count(),
                },
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
