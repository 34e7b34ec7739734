"""Contracts: every schema file is valid, and tables that drift from them are caught."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import CURATED

import twmb_geo as tw
from twmb_geo.contracts import (
    conform,
    conform_chunks,
    list_schemas,
    load_schema,
    validate_frame,
)
from twmb_geo.errors import ContractError
from twmb_geo.store.duckdb_store import TABLES


def test_every_schema_file_loads_and_is_versioned() -> None:
    names = list_schemas()
    assert {
        "curated/breaks",
        "curated/quarantine",
        "curated/neighbourhoods",
        "curated/weather_daily",
        "curated/weather_monthly",
        "curated/weather_winters",
        "curated/pipes",
        "curated/street_segments",
        "store/runs",
        "store/run_inputs",
    } <= set(names)
    assert any(n.startswith("raw/") for n in names)
    for name in names:
        sch = load_schema(name)
        assert sch.version.count(".") == 2
        assert sch.layer == name.split("/")[0]
        assert sch.name == name.split("/")[1]
        for f in sch.fields:
            assert f.description


def test_every_store_table_has_a_contract() -> None:
    for table, ref in TABLES.items():
        assert load_schema(ref).name == table


def test_raw_schema_for_every_builtin_profile() -> None:
    for prof in tw.builtin_profiles().values():
        if prof.format == "eccc_daily_csv":
            continue
        assert prof.raw_schema, prof.id
        sch = load_schema(prof.raw_schema)
        assert set(prof.raw_columns) <= set(sch.columns)


def test_meta_schema_rejects_a_bad_contract(tmp_path) -> None:
    bad = {
        "name": "Bad Name",
        "layer": "curated",
        "version": "1",
        "description": "x",
        "fields": [{"name": "a", "type": "complex", "description": "?"}],
    }
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(ContractError) as exc:
        load_schema(str(p))
    text = str(exc.value)
    # every problem is listed, not only the first
    assert "name" in text and "version" in text and "type" in text


def _good_breaks() -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "break_id": ["B0123456789abcdef"],
            "break_date": [pd.Timestamp("2001-02-03")],
            "year": [2001],
            "month": [2],
            "x": [315000.0],
            "y": [4840000.0],
            "lon": [-79.4],
            "lat": [43.7],
            "coord_source": ["wgs84"],
            "coord_accuracy_m": [1.0],
            "material": [None],
            "diameter_mm": [np.nan],
            "asset_id": [None],
            "street_segment_id": [None],
            "flags": [""],
            "source_id": ["s"],
            "source_file": ["f.csv"],
            "source_row": [1],
            "geometry": [b"\x01\x01\x00\x00\x00" + bytes(16)],
        }
    )
    return conform(df, "curated/breaks")


def test_conform_then_validate_passes() -> None:
    assert validate_frame(_good_breaks(), "curated/breaks") == []


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (lambda d: d.assign(extra=1), "not in the contract"),
        (lambda d: d.drop(columns=["lat"]), "missing columns"),
        (lambda d: d[[*d.columns[1:], d.columns[0]]], "column order"),
        (lambda d: d.assign(year=d["year"].astype("float64")), "dtype"),
        (lambda d: d.assign(month=np.int32(13)), "above maximum"),
        (lambda d: d.assign(x=-5.0e6), "outside the area of use"),
        (lambda d: d.assign(break_id="nope"), "not matching"),
        (lambda d: d.assign(source_id=None), "null values"),
        (lambda d: pd.concat([d, d], ignore_index=True), "primary key"),
        (lambda d: d.assign(geometry=[b"x"]), "WKB"),
    ],
)
def test_drift_is_caught(mutate, expect) -> None:
    with pytest.raises(ContractError) as exc:
        validate_frame(mutate(_good_breaks()), "curated/breaks")
    assert expect in str(exc.value)


def test_all_problems_reported_at_once() -> None:
    df = _good_breaks().assign(month=np.int32(13), x=-5.0e6, break_id="nope")
    problems = validate_frame(df, "curated/breaks", raise_=False)
    assert len(problems) == 3


def test_quarantine_reason_enum_is_enforced() -> None:
    q = pd.DataFrame(
        {
            "source_id": ["s"],
            "source_file": ["f"],
            "source_row": [1],
            "reason": ["made_up"],
            "reasons": ["made_up"],
            "detail": ["d"],
            "raw_record": ["{}"],
        }
    )
    with pytest.raises(ContractError, match="allowed set"):
        validate_frame(conform(q, "curated/quarantine"), "curated/quarantine")


def test_curated_tables_in_the_store_match_their_contracts(bundled_run, bundled_cfg) -> None:
    """Fails when any stored table drifts from its schema file (columns, types, values)."""
    with tw.open_store(bundled_cfg.store_path, read_only=True) as store:
        present = store.table_names()
        for table in (*CURATED, "runs", "run_inputs"):
            assert table in present
            sch = load_schema(TABLES[table])
            cols = store.query(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position",
                [table],
            )
            assert list(cols["column_name"]) == sch.columns
            df = store.read(table)
            validate_frame(conform(df, sch), sch)


@pytest.mark.parametrize("rows", [1, 3, 7, 100])
def test_conform_chunks_are_the_conformed_table_in_blocks(rows: int) -> None:
    df = pd.DataFrame(
        {
            "length_m": np.arange(7, dtype=np.int64),  # cast to float64 by the contract
            "cell": [f"88{i:013x}" for i in range(7)],
            "pipe_id": [1, 2, 3, 4, 5, 6, 7],  # cast to strings
            "other": 0,  # dropped
        },
        index=range(10, 17),
    )
    blocks = list(conform_chunks(df, "features/pipe_cells", rows))
    assert len(blocks) == -(-7 // rows) and all(len(b) <= rows for b in blocks)
    got = pd.concat(blocks, ignore_index=True)
    pd.testing.assert_frame_equal(got, conform(df, "features/pipe_cells"))
    assert all(validate_frame(b, "features/pipe_cells") == [] for b in blocks)


def test_conform_chunks_check_the_key_over_every_block() -> None:
    """A key repeated in two blocks is a contract error, as it is in one whole frame."""
    df = pd.DataFrame({"pipe_id": ["a", "b", "a"], "cell": "c", "length_m": 1.0})
    with pytest.raises(ContractError) as err:
        list(conform_chunks(df, "features/pipe_cells", rows=2))
    assert "primary key" in str(err.value) and "'a'" in str(err.value)
    empty = list(conform_chunks(df.iloc[:0], "features/pipe_cells"))
    assert len(empty) == 1 and empty[0].empty
    assert list(empty[0].columns) == ["pipe_id", "cell", "length_m"]
    with pytest.raises(ValueError, match="rows"):
        list(conform_chunks(df, "features/pipe_cells", rows=0))
