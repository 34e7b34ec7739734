"""Readers: file shapes, encodings, chunking, and a round-trip property for CSV parsing."""

from __future__ import annotations

import zipfile
from dataclasses import replace

import pandas as pd
import pytest
from conftest import BREAKS_ZIP, NEIGHBOURHOODS_ZIP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import twmb_geo as tw
from twmb_geo.errors import InputDataError
from twmb_geo.io.readers import detect_encoding, iter_raw

CSV = tw.get_profile("toronto_breaks_csv")
HEADER = "BREAK_DATE,BREAK_YEAR,XCOORD,YCOORD,POINT_X,POINT_Y"


def test_shapefile_zip_reads_every_record() -> None:
    (chunk,) = list(iter_raw(BREAKS_ZIP, tw.get_profile("toronto_breaks_shapefile")))
    assert len(chunk.frame) == 35_465
    assert chunk.crs.to_epsg() == 3857
    assert chunk.frame["source_row"].tolist()[:3] == [1, 2, 3]


def test_zip_without_the_declared_member(tmp_path) -> None:
    bad = tmp_path / "nothing.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("readme.txt", "no shapefile here")
    with pytest.raises(InputDataError, match=r"no \*\.shp file"):
        list(iter_raw(bad, tw.get_profile("toronto_breaks_shapefile")))


def test_shapefile_without_prj_needs_a_crs(tmp_path) -> None:
    src = zipfile.ZipFile(NEIGHBOURHOODS_ZIP)
    out = tmp_path / "noprj.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for name in src.namelist():
            if not name.lower().endswith(".prj"):
                zf.writestr(name, src.read(name))
    with pytest.raises(InputDataError, match="no CRS"):
        list(iter_raw(out, tw.get_profile("toronto_neighbourhoods_140")))
    fixed = replace(tw.get_profile("toronto_neighbourhoods_140"), crs="EPSG:26717")
    (chunk,) = list(iter_raw(out, fixed))
    assert chunk.crs.to_epsg() == 26717


def test_missing_column_names_the_column_and_profile(tmp_path) -> None:
    p = tmp_path / "b.csv"
    p.write_text(HEADER.replace("BREAK_DATE", "BREAK DATE") + "\n2001-01-01,2001,1,2,3,4\n")
    with pytest.raises(InputDataError) as exc:
        list(iter_raw(p, CSV))
    msg = str(exc.value)
    assert "'BREAK_DATE'" in msg and "toronto_breaks_csv" in msg and "BREAK DATE" in msg


def test_empty_and_header_only_files(tmp_path) -> None:
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputDataError, match="empty"):
        list(iter_raw(empty, CSV))
    header = tmp_path / "h.csv"
    header.write_text(HEADER + "\n")
    with pytest.raises(InputDataError, match="no data rows"):
        list(iter_raw(header, CSV))


def test_encoding_detection(tmp_path) -> None:
    u = tmp_path / "u.csv"
    u.write_text("a\nSaint-Léonard\n", encoding="utf-8")
    c = tmp_path / "c.csv"
    c.write_text("a\nSaint-Léonard\n", encoding="cp1252")
    assert detect_encoding(u) == "utf-8-sig"
    assert detect_encoding(c) == "cp1252"


def test_csv_chunks_number_rows_continuously(tmp_path) -> None:
    p = tmp_path / "b.csv"
    rows = "\n".join(f"2001-01-{d:02d},2001,310000,4840000,-79.4,43.7" for d in range(1, 29))
    p.write_text(HEADER + "\n" + rows + "\n")
    chunks = list(iter_raw(p, replace(CSV, chunk_size=5)))
    assert len(chunks) == 6
    assert pd.concat([c.frame for c in chunks])["source_row"].tolist() == list(range(1, 29))


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_cell = st.text(
    alphabet=st.characters(codec="cp1252", exclude_categories=("Cs", "Cc")), max_size=15
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cells=st.lists(st.tuples(_cell, _cell), min_size=1, max_size=20),
    encoding=st.sampled_from(["utf-8", "cp1252"]),
)
def test_csv_round_trip(tmp_path, cells, encoding) -> None:
    """Whatever text a cell holds (commas, quotes, accents), the reader returns it unchanged."""
    df = pd.DataFrame(
        {
            "BREAK_DATE": [a for a, _ in cells],
            "BREAK_YEAR": [b for _, b in cells],
            "XCOORD": "1",
            "YCOORD": "2",
            "POINT_X": "3",
            "POINT_Y": "4",
        }
    )
    p = tmp_path / f"rt-{encoding}.csv"
    df.to_csv(p, index=False, encoding=encoding)
    frame = pd.concat([c.frame for c in iter_raw(p, CSV)], ignore_index=True)
    nulls = set(CSV.null_values)
    # cp1252 bytes that are also valid UTF-8 ("Â\xa0" is C2 A0, UTF-8 for a no-break space)
    # are read as UTF-8, as any reader must guess: then the cells are their UTF-8 reading
    ambiguous = encoding == "cp1252" and _is_utf8(p.read_bytes())

    def expect(v: str) -> str | None:
        if ambiguous:
            v = v.encode("cp1252").decode("utf-8")
        return None if v.strip() in nulls else v

    assert len(frame) == len(df)
    assert frame["BREAK_DATE"].tolist() == [expect(v) for v in df["BREAK_DATE"]]
    assert frame["BREAK_YEAR"].tolist() == [expect(v) for v in df["BREAK_YEAR"]]
