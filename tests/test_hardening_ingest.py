"""Hardened ingest (issue 15, case 4 and the reader parts of case 10): one bad value, byte,
row or archive member no longer fails a whole source with exit 1.

Each test fails on the code before the change: a value is quarantined with a reason code
(``date_unparseable``, ``encoding_error``, ``extra_fields``, ``field_too_large``) and the
rest accepted, or the file fails with exit 3 and a message naming what is wrong. Every
result reconciles: rows in = accepted + quarantined (+ excluded).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import tracemalloc
import zipfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyogrio
import pytest
from cli_helpers import error_text, ok_json, source, twmb
from conftest import BREAKS_ZIP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import twmb_geo as tw
from twmb_geo.errors import ConfigError, InputDataError
from twmb_geo.ingest._common import IngestResult
from twmb_geo.io.csvscan import detect_encoding, scan_csv
from twmb_geo.io.profiles import parse_profile
from twmb_geo.io.readers import iter_raw

TODAY = dt.date(2026, 11, 25)
CSV = tw.get_profile("toronto_breaks_csv")
COLUMNS = ["BREAK_DATE", "BREAK_YEAR", "XCOORD", "YCOORD", "POINT_X", "POINT_Y"]


@pytest.fixture(scope="module")
def breaks() -> pd.DataFrame:
    """40 real breaks in the toronto_breaks_csv layout (ISO dates, text cells)."""
    df = pyogrio.read_dataframe(BREAKS_ZIP, read_geometry=False, max_features=40)[COLUMNS]
    df["BREAK_DATE"] = pd.to_datetime(df["BREAK_DATE"]).dt.strftime("%Y-%m-%d")
    return df.astype(str)


def read(path: Path, profile=CSV) -> IngestResult:
    res = tw.read_source(path, profile, source_id="breaks", today=TODAY)
    assert res.rows_in == res.accepted + len(res.quarantine) + res.excluded_rows
    return res


def quarantined(res: IngestResult) -> dict[int, str]:
    """source_row -> reason."""
    return dict(zip(res.quarantine["source_row"], res.quarantine["reason"], strict=True))


def accepted_rows(res: IngestResult) -> list[int]:
    return sorted(res.tables["breaks"]["source_row"].tolist())


def ingest(tmp_path: Path, path: Path, profile: str = "toronto_breaks_csv"):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(
        f'[project]\nname = "hardening"\ncrs = "EPSG:32617"\n\n[[sources]]\nid = "breaks"\n'
        f'profile = "{profile}"\npath = "{path}"\n',
        encoding="utf-8",
    )
    return twmb("-q", "--config", cfg, "--out", tmp_path / "out", "ingest", "--json")


# --------------------------------------------------------------------------- (a) time zones


def test_mixed_utc_offsets_are_read_per_row(tmp_path, breaks) -> None:
    """Before: 'Mixed timezones detected' (ValueError, exit 1) failed the whole source."""
    df = breaks.copy()
    df.loc[3, "BREAK_DATE"] = "2014-03-04T23:30:00-05:00"  # evening in Toronto
    df.loc[4, "BREAK_DATE"] = "2014-03-05T02:00:00+02:00"
    df.loc[5, "BREAK_DATE"] = "2014-03-06T04:30:00Z"
    df.loc[6, "BREAK_DATE"] = "2014-03-07T25:30:00-05:00"  # no such hour
    df.loc[3:6, "BREAK_YEAR"] = "2014"
    df.to_csv(tmp_path / "tz.csv", index=False)
    res = read(tmp_path / "tz.csv")
    assert quarantined(res) == {7: "date_unparseable"}
    got = res.tables["breaks"].set_index("source_row")["break_date"].dt.strftime("%Y-%m-%d")
    # each value keeps the calendar date written in it: the offset never moves a day
    assert [got[4], got[5], got[6]] == ["2014-03-04", "2014-03-05", "2014-03-06"]
    assert res.accepted == 39


# --------------------------------------------------------------------------- (b) encodings


def test_undecodable_cp1252_byte_quarantines_only_its_row(tmp_path, breaks) -> None:
    """Before: the file failed as a whole ('cannot be decoded as cp1252')."""
    df = breaks.copy()
    df.insert(2, "STREET", "Rue Sainte-Cécile")
    df.to_csv(tmp_path / "b.csv", index=False, encoding="cp1252")
    lines = (tmp_path / "b.csv").read_bytes().split(b"\n")
    lines[6] = lines[6].replace(b"C\xe9cile", b"C\x81cile")  # row 6: 0x81 is not cp1252
    lines[9] = lines[9].replace(b"2,", b"2\x8d,", 1)  # row 9, in a column the profile reads
    (tmp_path / "b.csv").write_bytes(b"\n".join(lines))
    res = read(tmp_path / "b.csv")
    assert quarantined(res) == {6: "encoding_error", 9: "encoding_error"}
    detail = res.quarantine.set_index("source_row")["detail"]
    assert "'STREET'" in detail[6] and "cp1252" in detail[6]
    assert res.accepted == 38
    assert any("encoding_error 2" in w for w in res.warnings)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_are_decoded(tmp_path, breaks, encoding) -> None:
    """Before: a mojibake column list ('ÿþB\\x00R\\x00...') and exit 3 for missing columns."""
    path = tmp_path / "wide.csv"
    breaks.to_csv(path, index=False, encoding=encoding)
    assert detect_encoding(path) == encoding
    res = read(path)
    assert res.accepted == 40 and res.quarantine.empty


def test_utf16_file_with_a_contradicting_encoding_fails_clearly(tmp_path, breaks) -> None:
    path = tmp_path / "wide.csv"
    breaks.to_csv(path, index=False, encoding="utf-16")
    with pytest.raises(InputDataError, match=r"UTF-16 text but the profile says encoding"):
        list(iter_raw(path, replace(CSV, encoding="cp1252")))


# --------------------------------------------------------------------------- (c) archives


def _corrupt(path: Path, name: str, data: bytes) -> Path:
    """A zip whose member ``name`` has damaged compressed bytes (the directory is intact)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    raw = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo(name)
    at = info.header_offset + 30 + len(name) + info.compress_size // 2
    raw[at : at + 16] = bytes(16)
    path.write_bytes(bytes(raw))
    return path


def test_corrupt_zip_member_is_exit_3_naming_archive_and_member(tmp_path, breaks) -> None:
    """Before: 'unexpected error: BadZipFile / zlib error' and exit 1."""
    text = breaks.to_csv(index=False).encode() * 50
    bad = _corrupt(tmp_path / "breaks_csv.zip", "breaks.csv", text)
    msg = error_text(ingest(tmp_path, bad), 3)
    assert "breaks_csv.zip" in msg and "corrupt archive member 'breaks.csv'" in msg, msg


@pytest.mark.parametrize("at", [0.0, 0.5], ids=["zlib-error", "crc-error"])
def test_corrupt_shapefile_member_is_exit_3_naming_it(tmp_path, at) -> None:
    """Before: a zlib error in a member was 'unexpected error: error: Error -3 ...', exit 1."""
    src = zipfile.ZipFile(BREAKS_ZIP)
    dbf = next(n for n in src.namelist() if n.lower().endswith(".dbf"))
    bad = tmp_path / "shp.zip"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as zf:
        for n in src.namelist():
            zf.writestr(n, src.read(n))
    raw = bytearray(bad.read_bytes())
    info = zipfile.ZipFile(bad).getinfo(dbf)
    start = info.header_offset + 30 + len(dbf) + int(info.compress_size * at)
    raw[start : start + 8] = b"\xff" * 8
    bad.write_bytes(bytes(raw))
    msg = error_text(ingest(tmp_path, bad, "toronto_breaks_shapefile"), 3)
    assert f"shp.zip: corrupt archive member '{dbf}'" in msg, msg


def test_truncated_zip_is_reported_as_a_truncated_archive(tmp_path) -> None:
    """Before: 'not a valid shapefile (bad header)'."""
    cut = tmp_path / "half.zip"
    cut.write_bytes(BREAKS_ZIP.read_bytes()[: BREAKS_ZIP.stat().st_size // 2])
    msg = error_text(ingest(tmp_path, cut, "toronto_breaks_shapefile"), 3)
    assert "half.zip" in msg and "truncated or corrupt zip archive" in msg, msg
    assert "bad header" not in msg


# --------------------------------------------------------------------------- (d) field size


def test_oversize_field_quarantines_its_row_unread(tmp_path, breaks) -> None:
    """A ~20 MB field with max_field_bytes lowered to 1 MB: the row is skipped while the
    file is read (never in memory) and quarantined; before, it was read and accepted."""
    path = tmp_path / "big.csv"
    df = breaks.copy()
    df.insert(2, "NOTES", "ok")
    df.to_csv(path, index=False)
    lines = path.read_text().splitlines()
    cells = lines[8].split(",")
    cells[2] = '"' + "y" * 20_000_000 + '"'
    lines[8] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    prof = replace(CSV, max_field_bytes=1_000_000)
    tracemalloc.start()
    try:
        res = read(path, prof)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 15_000_000, f"{peak:,} bytes traced: the field was loaded"
    assert quarantined(res) == {8: "field_too_large"}
    detail = res.quarantine["detail"].iloc[0]
    assert "'NOTES'" in detail and "max_field_bytes (1,000,000)" in detail
    assert accepted_rows(res) == [r for r in range(1, 41) if r != 8]  # rows keep their numbers


def test_oversize_field_in_an_irregular_file_is_exit_3_naming_the_row(tmp_path) -> None:
    """A literal quote (12" main) leaves the row structure to the csv module, which cannot
    skip an oversize field: the read stops with exit 3, naming the file and row."""
    path = tmp_path / "odd.csv"
    path.write_text(
        ",".join(COLUMNS) + ',NOTES\n2001-01-01,2001,1,2,3,4,12" main\n'
        "2001-01-02,2001,1,2,3,4," + "z" * 5000 + "\n"
    )
    with pytest.raises(InputDataError, match=r"odd\.csv: row 2 has a field longer than"):
        list(iter_raw(path, replace(CSV, max_field_bytes=1000)))


def test_max_field_bytes_is_a_profile_key() -> None:
    doc = {
        "id": "p",
        "kind": "breaks",
        "format": "csv",
        "max_field_bytes": 4096,
        "columns": {"break_date": "D"},
        "coordinates": [{"name": "w", "x": "X", "y": "Y", "crs": "EPSG:4326"}],
    }
    assert parse_profile(doc).max_field_bytes == 4096
    with pytest.raises(ConfigError, match="'max_field_bytes' must be an integer"):
        parse_profile({**doc, "max_field_bytes": 0})


# --------------------------------------------------------------------------- rows and headers


def test_rows_with_extra_fields_are_quarantined(tmp_path, breaks) -> None:
    """Before: the extra value was dropped and the row accepted silently."""
    path = tmp_path / "extra.csv"
    breaks.to_csv(path, index=False)
    lines = path.read_text().splitlines()
    lines[3] += ",EXTRA"  # row 3: one value too many
    lines[10] += ","  # row 10: a trailing delimiter (one empty field): read as usual
    lines[12] += ",,x"  # row 12
    path.write_text("\r\n".join(lines) + "\r\n")
    res = read(path)
    assert quarantined(res) == {3: "extra_fields", 12: "extra_fields"}
    q = res.quarantine.set_index("source_row")
    assert "7 fields but the header 6" in q.loc[3, "detail"] and "'EXTRA'" in q.loc[3, "detail"]
    assert '"(extra 1)": "EXTRA"' in q.loc[3, "raw_record"]
    assert accepted_rows(res) == [r for r in range(1, 41) if r not in (3, 12)]


def test_extra_fields_with_irregular_quotes_and_quoted_line_breaks(tmp_path, breaks) -> None:
    """Literal quotes (12" main) and quoted line breaks: rows still numbered right."""
    path = tmp_path / "odd.csv"
    df = breaks.copy()
    df["NOTES"] = ['12" main', '"multi\nline"'] * 20
    text = ",".join(df.columns) + "\n"
    text += "\n".join(",".join(r) for r in df.astype(str).to_numpy().tolist()) + "\n"
    lines = text.split("\n")
    lines[4] += ",more"  # data row 3 (row 2 spans lines 2-3: a quoted line break)
    path.write_text("\n".join(lines))
    res = read(path)
    assert quarantined(res) == {3: "extra_fields"}
    assert res.accepted == 39


def test_duplicate_header_names(tmp_path, breaks) -> None:
    """Before: pandas renamed the second BREAK_DATE to BREAK_DATE.1 and ingested silently."""
    read_twice = tmp_path / "dup.csv"
    breaks.assign(**{"BREAK_DATE.x": "1999-01-01"}).to_csv(read_twice, index=False)
    text = read_twice.read_text().replace("BREAK_DATE.x", "BREAK_DATE", 1)
    read_twice.write_text(text)
    msg = error_text(ingest(tmp_path, read_twice), 3)
    assert "dup.csv" in msg and "'BREAK_DATE' more than once" in msg and "1 and 7" in msg, msg
    # a duplicate the profile does not read is harmless: ignored (logged)
    unread = tmp_path / "dup_unread.csv"
    breaks.assign(NOTE="a", NOTE2="b").to_csv(unread, index=False)
    unread.write_text(unread.read_text().replace("NOTE2", "NOTE", 1))
    assert read(unread).accepted == 40


def test_duplicate_header_names_in_excel(tmp_path, breaks) -> None:
    path = tmp_path / "dup.xlsx"
    df = breaks[["BREAK_DATE", "BREAK_YEAR", "XCOORD", "YCOORD"]].assign(again="2001")
    df.columns = ["BREAK DATE", "BREAK YEAR", "X COORD", "Y COORD", "BREAK YEAR"]
    df.to_excel(path, index=False)
    prof = replace(tw.get_profile("toronto_breaks_xlsx"), raw_schema=None)
    with pytest.raises(InputDataError, match=r"'BREAK YEAR' more than once \('BREAK YEAR' is"):
        list(iter_raw(path, prof))


def test_every_row_refused_while_reading_fails_clearly(tmp_path, breaks) -> None:
    path = tmp_path / "all_extra.csv"
    breaks.head(3).to_csv(path, index=False)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *(ln + ",x" for ln in lines[1:])]) + "\n")
    msg = error_text(ingest(tmp_path, path), 3)
    assert "extra_fields 3" in msg and "all_extra.csv row 1: extra_fields" in msg, msg


def test_a_good_file_through_the_cli(tmp_path, breaks) -> None:
    breaks.to_csv(tmp_path / "good.csv", index=False)
    s = source(ok_json(ingest(tmp_path, tmp_path / "good.csv")))
    assert s["rows_in"] == s["accepted"] == 40 and s["quarantined"] == 0


# --------------------------------------------------------------------------- scanner property

_text_cell = st.text(alphabet=st.sampled_from(list('ab,"\n 12é')), max_size=6)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.lists(_text_cell, min_size=1, max_size=5), min_size=1, max_size=25),
    blank=st.lists(st.integers(0, 24), max_size=3),
    crlf=st.booleans(),
    limit=st.sampled_from([3, 8, 1 << 20]),
)
def test_scan_agrees_with_the_csv_module(tmp_path, rows, blank, crlf, limit) -> None:
    """Any properly quoted file: every data row is delivered or refused, numbered as the csv
    module counts rows, with its values intact; the field counts decide extra_fields."""
    header = ["h0", "h1", "h2"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
    w.writerow(header)
    for i, r in enumerate(rows):
        if i in blank:
            buf.write("\r\n" if crlf else "\n")
        w.writerow(r)
    path = tmp_path / "p.csv"
    path.write_bytes(buf.getvalue().encode("utf-8"))
    prof = replace(
        CSV,
        columns={"break_date": "h0"},
        coordinates=(),
        raw_schema=None,
        chunk_size=7,
        max_field_bytes=limit,
    )
    # the reference: the rows as written; a line of spaces is blank (pandas skips it)
    ref = [r for r in rows if not (len(r) == 1 and r[0] and not r[0].strip(" "))]
    got: dict[int, tuple[str, object]] = {}
    if not ref:
        with pytest.raises(InputDataError, match="no data rows"):
            list(iter_raw(path, prof))
        return
    for chunk in iter_raw(path, prof):
        for row, v in zip(chunk.frame["source_row"], chunk.frame["h0"], strict=True):
            got[int(row)] = ("ok", v)
        if chunk.rejected is not None:
            for row, reason in zip(
                chunk.rejected.frame["source_row"], chunk.rejected.reason, strict=True
            ):
                got[int(row)] = (str(reason), None)
    assert sorted(got) == list(range(1, len(ref) + 1))
    for i, r in enumerate(ref, start=1):
        size = [len(c.encode()) for c in r]  # as written: at most 2 quotes + 1 per quote more
        extra = len(r) > 4 or (len(r) == 4 and r[3] != "")
        kind, value = got[i]
        if kind == "ok":
            assert not extra and max(size) <= limit
            assert value == (r[0] if r[0].strip() not in prof.null_values else None)
        elif kind == "extra_fields":
            assert extra
        else:
            assert kind == "field_too_large"
            assert any(n + 2 + c.count('"') > limit for n, c in zip(size, r, strict=True))


def test_scan_reports_what_it_skips(tmp_path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(b'\n\na,b\n1,2\n\n3,4,5\n6,"7\n8",\nxxxxxxxxxx,1\n9,10\n')
    s = scan_csv(path, limit=8)
    assert (s.header, s.header_record, s.rows, s.trailing) == (["a", "b"], 2, 5, 1)
    assert s.extra_ordinal.tolist() == [1] and s.extra_fields.tolist() == [3]
    assert (s.big_ordinal.tolist(), s.big_column.tolist(), s.big_size.tolist()) == ([3], [0], [10])
    ((a, b),) = s.big_spans.tolist()  # the oversize row is cut out of what pandas reads
    assert path.read_bytes()[a:b] == b"xxxxxxxxxx,1\n"
    assert s.kept_ordinals(0, 4).tolist() == [0, 1, 2, 4]
    assert s.anomalies.tolist() == [1, 3]


def test_init_from_reads_utf16_columns(tmp_path, breaks) -> None:
    """``twmb init --from`` drafted a profile from the mojibake names ('ÿþB\\x00R...')."""
    from twmb_geo.io.inspect import inspect_file

    path = tmp_path / "u16.csv"
    breaks.to_csv(path, index=False, encoding="utf-16")
    g = inspect_file(path)
    assert g.encoding == "utf-16" and [c.name for c in g.columns] == COLUMNS
