"""Quickstart: ingest the bundled Toronto data and look at it with the library API.

Run:  python examples/quickstart.py [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import twmb_geo as tw


def main(out: Path) -> None:
    # 1. A project: the bundled Toronto sources (neighbourhoods, breaks, weather).
    cfg = tw.default_config(out)

    # 2. Validate every source into the DuckDB store; rows in = accepted + quarantined.
    report = tw.ingest_sources(cfg)
    for s in report.sources:
        print(
            f"{s.source_id:15s} {s.rows_in:>7,} in {s.accepted:>7,} accepted "
            f"{s.quarantined:>4} quarantined {s.quarantined_by_reason}"
        )

    # 3. Read curated tables back (geometry is WKB in EPSG:2952; lon/lat are WGS84).
    with tw.open_store(cfg.store_path, read_only=True) as store:
        breaks = store.read("breaks")
        quarantine = store.read("quarantine", "source_id = ?", ["breaks"])
        winters = store.read("weather_winters")
    per_year = breaks.groupby("year").size()
    print(f"\n{len(breaks):,} breaks, busiest year {per_year.idxmax()} ({per_year.max():,})")
    print(quarantine[["source_row", "reason", "detail"]].head(5).to_string(index=False))
    cold = winters[winters["coverage_ok"]].nlargest(3, "freezing_degree_days")
    print("\nSevere winters (freezing degree-days):")
    print(cold[["winter", "freezing_degree_days", "freeze_thaw_cycles"]].to_string(index=False))

    # 4. One source in memory, no store: the Excel release (NAD27 coordinates only).
    xlsx = tw.read_source(
        tw.default_config().source("breaks").files(cfg.root)[0].parent
        / "watermain_breaks_1990_2016_mtm_nad27.xlsx",
        "toronto_breaks_xlsx",
    )
    print(f"\nxlsx release: {xlsx.rows_in:,} rows, quarantined {xlsx.quarantined_by_reason}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/quickstart"))
