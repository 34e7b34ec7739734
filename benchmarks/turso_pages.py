"""A Power BI refresh of one star table, page by page, on a Turso file: seconds, as JSON.

Reads every row of the current publish of ``--table`` the way the generated Power Query
does, 50,000 rows a page, straight on the database engine (pyturso, no HTTP, so what is
timed is the engine's work per page, not the JSON transport):

* ``keyset`` (the reader since schema step 3): ``reader_sql(table, paged=True)``, each page
  binding the previous page's last rowid;
* ``offset`` (the reader of schema step 2): the same columns ``ORDER BY`` the contract's
  sort order with ``LIMIT ? OFFSET ?``; its database had a (publish_id, sort order) index
  for it (a database without that index sorts the table for every page instead).

Prints the pages, rows, total seconds, the first, middle and last page's seconds, a
checksum of the rows (``values.table_checksum``) and the peak RSS. ``--pages N`` stops
after N pages (a sample of a deep read). Usage::

    python benchmarks/turso_pages.py --db out/turso/twmb_star.db --table fact_unit_year \\
        --reader keyset
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def _offset_sql(table: str) -> str:
    """The paged reader of schema step 2: ``publish_id, limit, offset``."""
    from twmb_geo.publish.sql import PUBLISH_COLUMN, quote, star_schema

    schema = star_schema(table)
    cols = ", ".join(quote(c) for c in schema.columns)
    order = ", ".join(quote(c) for c in (schema.sort_by or schema.primary_key))
    return (
        f"SELECT {cols} FROM {quote(schema.name)} WHERE {quote(PUBLISH_COLUMN)} = ? "
        f"ORDER BY {order} LIMIT ? OFFSET ?"
    )


def read(db: Path, table: str, reader: str, page: int, max_pages: int | None) -> dict[str, Any]:
    """Read the table's current rows page by page; the timings and a checksum."""
    import turso
    from _bench import maxrss_gb

    from twmb_geo.publish.sql import CURRENT_SQL, reader_sql
    from twmb_geo.publish.values import RowDigests

    con = turso.connect(str(db))
    (pid,) = con.execute(CURRENT_SQL).fetchone()
    sql = reader_sql(table, paged=True) if reader == "keyset" else _offset_sql(table)
    digests = RowDigests()
    times: list[float] = []
    rows = after = 0
    t0 = time.perf_counter()
    while max_pages is None or len(times) < max_pages:
        t = time.perf_counter()
        if reader == "keyset":
            got = con.execute(sql, (pid, after, page)).fetchall()
            if got:
                after = got[-1][0]
            got = [r[1:] for r in got]
        else:
            got = con.execute(sql, (pid, page, rows)).fetchall()
        times.append(time.perf_counter() - t)
        digests.add(got)
        rows += len(got)
        if len(got) < page:
            break
    total = time.perf_counter() - t0
    con.close()
    return {
        "table": table,
        "reader": reader,
        "page_rows": page,
        "pages": len(times),
        "rows": rows,
        "complete": max_pages is None or len(times) < max_pages,
        "seconds": round(total, 2),
        "query_seconds": round(sum(times), 2),
        "first_page_s": round(times[0], 3),
        "middle_page_s": round(times[len(times) // 2], 3),
        "last_page_s": round(times[-1], 3),
        "checksum": digests.hexdigest(),
        "peak_rss_gb": round(maxrss_gb(), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--db", type=Path, required=True, help="a Turso (SQLite) star file")
    ap.add_argument("--table", default="fact_unit_year")
    ap.add_argument("--reader", choices=("keyset", "offset"), default="keyset")
    ap.add_argument("--page", type=int, default=50_000)
    ap.add_argument("--pages", type=int, default=None, help="stop after this many pages")
    args = ap.parse_args()
    print(json.dumps(read(args.db, args.table, args.reader, args.page, args.pages)))


if __name__ == "__main__":
    main()
