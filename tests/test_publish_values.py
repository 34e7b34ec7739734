"""The publish checksum: the column-wise fast path hashes exactly what the row definition says."""

from __future__ import annotations

import hashlib
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from twmb_geo.publish.values import (
    RowDigests,
    _canonical_floats,
    _token,
    table_checksum,
)


def reference(rows: list[tuple]) -> str:
    """The checksum as documented: sha256 of the row count and of the four sums, modulo
    2**64, of the little-endian 64-bit words of each row's sha256 (of its token text)."""
    sums = [0, 0, 0, 0]
    for r in rows:
        digest = hashlib.sha256("\t".join(_token(v) for v in r).encode("utf-8")).digest()
        for i in range(4):
            word = int.from_bytes(digest[8 * i : 8 * i + 8], "little")
            sums[i] = (sums[i] + word) % 2**64
    blob = len(rows).to_bytes(8, "little") + b"".join(v.to_bytes(8, "little") for v in sums)
    return hashlib.sha256(blob).hexdigest()


floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1.0, 1e16])
texts = st.text(alphabet=st.sampled_from("ab\\\t\n\r é→"), max_size=6)
values = {
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": floats,
    "text": texts,
    "bool": st.booleans(),
}


@st.composite
def tables(draw: st.DrawFn) -> list[tuple]:
    kinds = draw(st.lists(st.sampled_from([*values, "mixed"]), min_size=1, max_size=5))
    n = draw(st.integers(0, 30))
    cols = []
    for k in kinds:
        value = st.one_of(*values.values()) if k == "mixed" else values[k]
        nullable = draw(st.booleans())
        cols.append(
            draw(st.lists(st.none() | value if nullable else value, min_size=n, max_size=n))
        )
    return list(zip(*cols, strict=True))


@settings(max_examples=300, derandomize=True, deadline=None)
@given(tables())
def test_fast_checksum_is_the_row_definition(rows: list[tuple]) -> None:
    want = reference(rows)
    assert table_checksum(rows) == want
    acc = RowDigests()
    cols = [[r[i] for r in rows] for i in range(len(rows[0]))] if rows else []
    half = len(rows) // 2  # fed in two batches: the checksum does not see batches
    acc.add_columns([c[:half] for c in cols])
    acc.add_columns([c[half:] for c in cols])
    assert acc.hexdigest() == want


def test_tokens_that_must_differ_do() -> None:
    """1 and 1.0, NaN and NULL, and a tab inside text and a column break all hash apart."""
    pairs = [
        ([(1,)], [(1.0,)]),
        ([(math.nan,)], [(None,)]),
        ([("a\tb",)], [("a", "b")]),
        ([(0.1 + 0.2,)], [(0.3,)]),  # equal to 12 significant digits: the same on purpose
    ]
    results = [table_checksum(a) == table_checksum(b) for a, b in pairs]
    assert results == [False, False, False, True]
    # a multiset: order does not count, repeats do (a row twice is not the row once)
    rows = [(1, "a"), (2, "b"), (2, "b")]
    assert table_checksum(rows) == table_checksum(rows[::-1])
    assert table_checksum(rows) != table_checksum(rows[:2])
    assert table_checksum([]) != table_checksum([(1, "a")])
    assert np.float64(-0.0) == 0.0 and table_checksum([(-0.0,)]) != table_checksum([(0,)])


pools = st.lists(floats | st.none(), min_size=1, max_size=40)


@settings(max_examples=120, derandomize=True, deadline=None)
@given(pools, st.integers(1024, 3000), st.integers(0, 2**32 - 1))
def test_long_float_columns_convert_as_value_by_value(pool, n, seed) -> None:
    """Columns long enough to convert each distinct value once give, value for value, the
    canonical floats of the value-by-value definition (-0.0, NaN, infinities, nulls; few
    distinct values, and as many as rows)."""
    rng = np.random.default_rng(seed)
    picks = [pool[i] for i in rng.integers(0, len(pool), n)]
    for column in (picks, [*picks[: n // 4], *rng.normal(size=n - n // 4).tolist()]):
        arr = np.array([math.nan if v is None else v for v in column], dtype=np.float64)
        want = [None if math.isnan(v) else float(f"{v:.15g}") + 0.0 for v in arr.tolist()]
        got = _canonical_floats(arr)
        assert [repr(v) for v in got] == [repr(v) for v in want]
