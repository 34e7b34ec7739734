"""A spooled star table's CSV, written by DuckDB from its spool, has the bytes pandas
writes for the same table (``publish.files._csv_text``): every contract type, nulls, and
the text a spreadsheet would run or a CSV reader would split."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twmb_geo.contracts import Field, TableSchema, conform
from twmb_geo.publish.files import _csv_text, _write_one
from twmb_geo.publish.tables import SpooledTable, spool_table

SCHEMA = TableSchema(
    name="csv_parity",
    layer="star",
    version="1",
    description="every contract type a star table has",
    fields=(
        Field("key", "int64", "a key"),
        Field("small", "int32", "a small integer"),
        Field("value", "float64", "a float"),
        Field("name", "string", "a text"),
        Field("flag", "bool", "a boolean"),
        Field("day", "date", "a date"),
        Field("at", "timestamp", "a timestamp"),
    ),
)

#: text that a spreadsheet runs, a CSV reader splits, or DuckDB writes its own way
NASTY = [
    '=HYPERLINK("http://x.test","y")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A9)",
    "\tcmd",
    "\rx",
    "-12.5",
    "+3",
    "-1e3",
    ".5",
    "-",
    "-٣",  # not an ASCII digit: a spreadsheet does not read it as a number
    "",
    "a,b",
    'say "hi"',
    "two\nlines",
    "#hash",
    "a#b",
    " lead",
    "trail ",
    "ünïcødé",
    "back\\slash",
    "NULL",
    "nan",
    "'quoted'",
]

FLOATS = [
    0.0,
    -0.0,
    1e-05,
    3e-05,
    1e-4,
    0.1,
    0.30000000000000004,
    100.0,
    1e15,
    1e16,
    1e16 + 2,
    1e21,
    1e22,
    1.5e300,
    5e-324,
    -1.25e-07,
    123456789.123,
    12345678901234567.0,
    float("nan"),
]


def _csv_pair(df: pd.DataFrame, tmp: Path) -> tuple[bytes, bytes]:
    """The CSV of ``df`` as pandas writes it for a frame, and as DuckDB writes it from
    the table spooled in row groups of 7 rows."""
    frame = conform(df, SCHEMA)
    want = _csv_text(frame, header=True).encode("utf-8")
    spool = tmp / "spool.parquet"
    spool.unlink(missing_ok=True)
    chunks = [frame.iloc[i : i + 7] for i in range(0, len(frame), 7)]
    table = spool_table(spool, SCHEMA, chunks)
    assert isinstance(table, SpooledTable)
    out = tmp / "out.csv"
    _write_one(table, SCHEMA.name, out, "csv", threads=2)
    return want, out.read_bytes()


def _frame(n: int, names: list[str | None], values: list[float | None]) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    return pd.DataFrame(
        {
            "key": np.arange(-2, n - 2, dtype=np.int64) * 1_000_003,
            "small": pd.array([None if i % 5 == 3 else i - 7 for i in range(n)], dtype="Int32"),
            "value": values,
            "name": names,
            "flag": pd.array([(None, True, False)[i % 3] for i in range(n)], dtype="boolean"),
            "day": [
                None if i % 4 == 1 else date(1990 + i % 40, 1 + i % 12, 1 + i % 28)
                for i in range(n)
            ],
            "at": [
                None
                if i % 6 == 2
                else datetime(
                    2026,
                    1 + i % 12,
                    1 + i % 28,
                    i % 24,
                    i % 60,
                    i % 60,
                    int(rng.integers(0, 999_999)),
                )
                for i in range(n)
            ],
        }
    )


def test_nasty_values_are_written_as_pandas_writes_them(tmp_path: Path) -> None:
    n = max(len(NASTY), len(FLOATS)) + 5
    names = [*NASTY, None, *NASTY][:n]
    values = [*FLOATS, None, *FLOATS][:n]
    want, got = _csv_pair(_frame(n, names, values), tmp_path)
    assert got == want
    # what the bytes say: formulas escaped, numbers as text kept, the CR quoted, "#" bare
    text = got.decode("utf-8")
    assert "\r\n" in text and "'=HYPERLINK" in text and ",'-٣," in text and ",-12.5," in text
    assert ",#hash," in text and '"\'\rx"' in text and ",True," in text and ",-0.0," in text


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    names=st.lists(
        st.one_of(st.none(), st.text(max_size=12), st.sampled_from(NASTY)), min_size=1, max_size=40
    ),
    values=st.lists(
        st.one_of(st.none(), st.floats(allow_infinity=False, width=64), st.sampled_from(FLOATS)),
        min_size=40,
        max_size=40,
    ),
)
def test_any_text_and_float_is_written_as_pandas_writes_it(
    tmp_path: Path, names: list[str | None], values: list[float | None]
) -> None:
    names = [None if s is not None and "\x00" in s else s for s in names]  # no NUL in text
    n = len(names)
    want, got = _csv_pair(_frame(n, names, values[:n]), tmp_path)
    assert got == want


@pytest.mark.parametrize("rows", [1, 7, 8])
def test_small_spools_and_their_headers(tmp_path: Path, rows: int) -> None:
    names = (NASTY * 2)[:rows]
    values = [v if not (isinstance(v, float) and math.isnan(v)) else None for v in FLOATS * 2][
        :rows
    ]
    want, got = _csv_pair(_frame(rows, names, values), tmp_path)
    assert got == want and got.startswith(b"key,small,value,name,flag,day,at\r\n")


_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
import numpy as np, pandas as pd
from twmb_geo.errors import PublishError
from twmb_geo.publish.files import write_star_folder
from twmb_geo.publish.sql import star_schema
from twmb_geo.publish.star import build_star
from twmb_geo.publish.tables import SpooledTable, spool_table
from twmb_geo.store.duckdb_store import Store

tmp = Path(sys.argv[1])
with Store(tmp / "empty.duckdb") as s:
    tables = build_star(s)
schema = star_schema("fact_unit_year")
n = 100_000
kinds = {"int32": np.arange(n), "int64": np.arange(n), "float64": np.arange(n) / 7,
         "string": ["pipe"] * n, "bool": [True] * n}
frame = pd.DataFrame({f.name: kinds[f.type] for f in schema.fields})
tables["fact_unit_year"] = spool_table(tmp / "fact.parquet", schema, [frame])
assert isinstance(tables["fact_unit_year"], SpooledTable)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))  # a nearly full disk
try:
    write_star_folder(tables, tmp / "star", formats=("csv",))
except PublishError as exc:
    print(exc)
"""


def test_a_full_disk_while_duckdb_writes_a_csv_is_a_publish_error(tmp_path: Path) -> None:
    """DuckDB's own I/O error (not an OSError) becomes the folder's "disk full" error,
    naming the file, and no staging folder is left."""
    res = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    msg = res.stdout
    assert "disk full (file size limit reached)" in msg, msg
    assert f"{tmp_path / 'star' / 'csv' / 'fact_unit_year.csv'}" in msg, msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.duckdb", "fact.parquet"]
