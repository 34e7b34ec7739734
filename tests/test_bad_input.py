"""Bad input through the CLI: each problem ends with a documented exit code, a one-message
``error:`` naming the file / column / profile at fault, no traceback, and an unchanged store.

A module fixture ingests the neighbourhoods and a good 300-row breaks CSV (cut from the
bundled shapefile) once; every test works on a copy of that store and re-ingests source
``breaks`` (or ``neighbourhoods``) from a bad file.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
from cli_helpers import error_text, ok_json, source, twmb
from click.testing import Result

from twmb_geo.store.duckdb_store import Store

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "toronto"
BREAKS_ZIP = DATA / "watermain_breaks_1990_2016_wgs84.zip"
NEIGHBOURHOODS_ZIP = DATA / "neighbourhood_planning_areas_utm6.zip"
CSV_COLUMNS = ["BREAK_DATE", "BREAK_YEAR", "XCOORD", "YCOORD", "POINT_X", "POINT_Y"]
GOOD_ROWS = 300
TABLES = ("breaks", "quarantine", "neighbourhoods", "service_area")


# --------------------------------------------------------------------------- helpers


def write_config(
    path: Path,
    breaks: Path | str,
    *,
    profile: str = "toronto_breaks_csv",
    neighbourhoods: Path = NEIGHBOURHOODS_ZIP,
    profile_files: tuple[str, ...] = (),
) -> Path:
    files = f"[profiles]\nfiles = {list(profile_files)!r}\n\n" if profile_files else ""
    path.write_text(
        '[project]\nname = "bad-input"\n\n'
        + files
        + f'[[sources]]\nid = "neighbourhoods"\nprofile = "toronto_neighbourhoods_140"\n'
        f'path = "{neighbourhoods}"\n\n'
        f'[[sources]]\nid = "breaks"\nprofile = "{profile}"\npath = "{breaks}"\n',
        encoding="utf-8",
    )
    return path


def snapshot(store_path: Path) -> dict[str, pd.DataFrame]:
    with Store(store_path, read_only=True) as store:
        return {t: store.read(t) for t in TABLES}


def as_csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Shapefile attributes in the toronto_breaks_csv layout (ISO dates)."""
    out = df[CSV_COLUMNS].copy()
    out["BREAK_DATE"] = pd.to_datetime(out["BREAK_DATE"]).dt.strftime("%Y-%m-%d")
    return out


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def city_breaks() -> pd.DataFrame:
    """Every record of the bundled breaks shapefile (attributes only), CSV layout."""
    return as_csv_frame(pyogrio.read_dataframe(BREAKS_ZIP, read_geometry=False))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, city_breaks: pd.DataFrame) -> Path:
    """An output folder holding neighbourhoods + the good breaks CSV."""
    root = tmp_path_factory.mktemp("base")
    city_breaks.head(GOOD_ROWS).to_csv(root / "good.csv", index=False)
    cfg = write_config(root / "good.toml", root / "good.csv")
    doc = ok_json(twmb("-q", "--config", cfg, "--out", root / "out", "ingest", "--json"))
    assert source(doc)["accepted"] == GOOD_ROWS
    return root / "out"


@dataclass
class Project:
    """A copy of the base store plus helpers to ingest a bad file into it."""

    dir: Path
    out: Path
    good: pd.DataFrame

    @property
    def store(self) -> Path:
        return self.out / "twmb.duckdb"

    def config(self, breaks: Path | str, **kw: object) -> Path:
        return write_config(self.dir / "cfg.toml", breaks, **kw)  # type: ignore[arg-type]

    def ingest(self, cfg: Path, *sources: str, json_: bool = False) -> Result:
        extra = ["--json"] if json_ else []
        return twmb("--config", cfg, "--out", self.out, "ingest", *sources, *extra)


@pytest.fixture
def project(tmp_path: Path, base: Path, city_breaks: pd.DataFrame) -> Project:
    shutil.copytree(base, tmp_path / "out")
    return Project(tmp_path, tmp_path / "out", city_breaks.head(GOOD_ROWS).copy())


def assert_store_unchanged(p: Project, before: dict[str, pd.DataFrame]) -> None:
    after = snapshot(p.store)
    for table, frame in before.items():
        pd.testing.assert_frame_equal(after[table], frame, obj=table)


def copy_zip(src: Path, dst: Path, *, drop: str = "", transform: dict | None = None) -> Path:
    """Copy a zip, leaving out members ending in ``drop`` and rewriting others."""
    transform = transform or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            if drop and name.lower().endswith(drop):
                continue
            data = zin.read(name)
            for suffix, fn in transform.items():
                if name.lower().endswith(suffix):
                    data = fn(data)
            zout.writestr(name, data)
    return dst


# --------------------------------------------------------------------------- files
def test_missing_file(project: Project) -> None:
    before = snapshot(project.store)
    r = project.ingest(project.config(project.dir / "no_such_breaks.csv"), "breaks")
    msg = error_text(r, 3)
    assert "no_such_breaks.csv" in msg and "not found" in msg and "'breaks'" in msg, msg
    assert_store_unchanged(project, before)


def test_empty_file(project: Project) -> None:
    (project.dir / "empty.csv").write_bytes(b"")
    before = snapshot(project.store)
    r = project.ingest(project.config(project.dir / "empty.csv"), "breaks", json_=True)
    msg = error_text(r, 3)
    assert "empty.csv" in msg and "empty" in msg.replace("empty.csv", ""), msg
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 3 and "empty.csv" in doc["error"]
    assert_store_unchanged(project, before)


def test_header_only_file(project: Project) -> None:
    (project.dir / "header_only.csv").write_text(",".join(CSV_COLUMNS) + "\n", encoding="utf-8")
    before = snapshot(project.store)
    r = project.ingest(project.config(project.dir / "header_only.csv"), "breaks")
    msg = error_text(r, 3)
    assert "header_only.csv" in msg and "no data rows" in msg, msg
    assert_store_unchanged(project, before)


def test_zip_without_shapefile(project: Project) -> None:
    bad = project.dir / "breaks_download.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("readme.txt", "Watermain breaks: see the CSV")
        z.writestr("breaks.csv", ",".join(CSV_COLUMNS) + "\n")
    before = snapshot(project.store)
    r = project.ingest(project.config(bad, profile="toronto_breaks_shapefile"), "breaks")
    msg = error_text(r, 3)
    assert "breaks_download.zip" in msg and "*.shp" in msg, msg
    assert "'toronto_breaks_shapefile'" in msg, msg
    assert_store_unchanged(project, before)


def test_corrupt_shapefile(project: Project) -> None:
    """Garbage bytes in the .shp next to the real .shx/.dbf/.prj."""
    folder = project.dir / "corrupt"
    folder.mkdir()
    with zipfile.ZipFile(BREAKS_ZIP) as z:
        for name in z.namelist():
            if name.lower().endswith((".shx", ".dbf", ".prj")):
                (folder / name).write_bytes(z.read(name))
                stem = Path(name).stem
    shp = folder / f"{stem}.shp"
    shp.write_bytes(bytes(range(256)) * 40)
    before = snapshot(project.store)
    r = project.ingest(project.config(shp, profile="toronto_breaks_shapefile"), "breaks")
    msg = error_text(r, 3)
    assert shp.name in msg and "shapefile" in msg, msg
    assert_store_unchanged(project, before)


def test_truncated_shapefile_in_zip(project: Project) -> None:
    bad = copy_zip(
        BREAKS_ZIP, project.dir / "truncated.zip", transform={".shp": lambda b: b[:5000]}
    )
    before = snapshot(project.store)
    r = project.ingest(project.config(bad, profile="toronto_breaks_shapefile"), "breaks")
    msg = error_text(r, 3)
    assert "truncated.zip" in msg, msg
    assert_store_unchanged(project, before)


def test_cp1252_csv_with_extra_non_ascii_column(project: Project) -> None:
    df = project.good.copy()
    df.insert(2, "Rue_Nommée", ["Rue Sainte-Cécile – côté nord", "Chemin de l'Érablière"] * 150)
    df.to_csv(project.dir / "export_cp1252.csv", index=False, encoding="cp1252")
    raw = (project.dir / "export_cp1252.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # really not UTF-8
    before = snapshot(project.store)["breaks"]
    r = project.ingest(project.config(project.dir / "export_cp1252.csv"), "breaks", json_=True)
    s = source(ok_json(r))
    assert s["rows_in"] == s["accepted"] == GOOD_ROWS
    assert s["quarantined"] == 0
    after = snapshot(project.store)["breaks"]
    assert set(after["source_file"]) == {"export_cp1252.csv"}
    same = [c for c in before.columns if c != "source_file"]
    pd.testing.assert_frame_equal(after[same], before[same])


@pytest.mark.parametrize(
    ("rename", "drop", "missing", "found"),
    [
        ({"BREAK_DATE": "BREAK DATE"}, None, "BREAK_DATE", "BREAK DATE"),
        ({"POINT_Y": "Latitude"}, "POINT_X", "POINT_X", None),
    ],
    ids=["misnamed", "missing"],
)
def test_missing_or_misnamed_columns(
    project: Project, rename: dict, drop: str | None, missing: str, found: str | None
) -> None:
    df = project.good.rename(columns=rename)
    if drop:
        df = df.drop(columns=[drop])
    df.to_csv(project.dir / "renamed.csv", index=False)
    before = snapshot(project.store)
    r = project.ingest(project.config(project.dir / "renamed.csv"), "breaks")
    msg = error_text(r, 3)
    assert "renamed.csv" in msg, msg
    assert f"'{missing}'" in msg, msg
    assert "'toronto_breaks_csv'" in msg, msg
    if found:
        assert f"'{found}'" in msg, msg
    if "POINT_Y" in rename:  # both POINT_X and POINT_Y are gone: both are named
        assert "'POINT_Y'" in msg, msg
    assert_store_unchanged(project, before)


# --------------------------------------------------------------------------- CRS
MTM_ONLY_PROFILE = """\
[[profile]]
id = "toronto_breaks_mtm_only"
kind = "breaks"
format = "csv"
description = "Toronto breaks with the NAD27 MTM pair only"
columns = {{ break_date = "BREAK_DATE", break_year = "BREAK_YEAR" }}
coordinates = [{{ name = "mtm_nad27", x = "XCOORD", y = "YCOORD", crs = "{crs}" }}]
checks = {{ duplicate_key = ["break_date", "mtm_nad27"], duplicate_distance_m = 0.001 }}
"""


def test_unknown_crs_in_profile(project: Project) -> None:
    (project.dir / "profiles.toml").write_text(
        MTM_ONLY_PROFILE.format(crs="EPSG:999999"), encoding="utf-8"
    )
    project.good.to_csv(project.dir / "breaks.csv", index=False)
    cfg = project.config(
        project.dir / "breaks.csv",
        profile="toronto_breaks_mtm_only",
        profile_files=("profiles.toml",),
    )
    before = snapshot(project.store)
    r = project.ingest(cfg, "breaks", json_=True)
    msg = error_text(r, 2)
    assert "'EPSG:999999'" in msg and "unknown CRS" in msg, msg
    assert "toronto_breaks_mtm_only" in msg and "profiles.toml" in msg, msg
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 2 and "EPSG:999999" in doc["error"]
    assert_store_unchanged(project, before)


def test_shapefile_without_prj(project: Project) -> None:
    bad = copy_zip(NEIGHBOURHOODS_ZIP, project.dir / "neighbourhoods_no_prj.zip", drop=".prj")
    cfg = project.config(project.dir / "unused.csv", neighbourhoods=bad)
    before = snapshot(project.store)
    r = project.ingest(cfg, "neighbourhoods")
    msg = error_text(r, 3)
    assert "neighbourhoods_no_prj.zip" in msg, msg
    assert "no CRS" in msg and ".prj" in msg, msg
    assert "'toronto_neighbourhoods_140'" in msg and "crs =" in msg, msg  # how to fix it
    assert_store_unchanged(project, before)


# --------------------------------------------------------------------------- rows
def test_every_row_invalid(project: Project) -> None:
    df = project.good.copy()
    df["BREAK_DATE"] = "not a date"
    df.to_csv(project.dir / "garbage_dates.csv", index=False)
    before = snapshot(project.store)
    r = project.ingest(project.config(project.dir / "garbage_dates.csv"), "breaks")
    msg = error_text(r, 3)
    assert "'breaks'" in msg and "date_unparseable" in msg, msg
    assert "garbage_dates.csv" in msg and "'toronto_breaks_csv'" in msg, msg
    assert_store_unchanged(project, before)


def test_swapped_pairs_repaired_from_the_other_pair(project: Project) -> None:
    """XCOORD/YCOORD swapped on rows 1-5, POINT_X/POINT_Y swapped on rows 11-13."""
    df = project.good.copy()
    rows = np.arange(len(df))
    mtm_swapped, wgs_swapped = rows < 5, (rows >= 10) & (rows < 13)
    x, y = df["XCOORD"].to_numpy(), df["YCOORD"].to_numpy()
    lon, lat = df["POINT_X"].to_numpy(), df["POINT_Y"].to_numpy()
    df["XCOORD"], df["YCOORD"] = np.where(mtm_swapped, y, x), np.where(mtm_swapped, x, y)
    df["POINT_X"], df["POINT_Y"] = np.where(wgs_swapped, lat, lon), np.where(wgs_swapped, lon, lat)
    df.to_csv(project.dir / "swapped.csv", index=False)
    before = snapshot(project.store)["breaks"].set_index("source_row")
    s = source(
        ok_json(project.ingest(project.config(project.dir / "swapped.csv"), "breaks", json_=True))
    )
    assert s["rows_in"] == s["accepted"] == GOOD_ROWS
    assert s["flags"] == {"mtm_nad27_swapped_xy": 5, "wgs84_swapped_xy": 3}
    after = snapshot(project.store)["breaks"].set_index("source_row")
    for row in range(1, 6):
        assert after.loc[row, "flags"] == "mtm_nad27_swapped_xy"
        assert after.loc[row, "coord_source"] == "wgs84"
    for row in range(11, 14):
        assert after.loc[row, "flags"] == "wgs84_swapped_xy"
        assert after.loc[row, "coord_source"] == "mtm_nad27"
    untouched = [r for r in after.index if r not in range(1, 6) and r not in range(11, 14)]
    assert set(after.loc[untouched, "flags"]) == {""}
    # every repaired break sits where the good file put it (NAD27 ballpark: < 25 m)
    dist = np.hypot(after["x"] - before["x"], after["y"] - before["y"])
    assert dist.max() < 25, dist.sort_values().tail()


def test_mtm_only_swapped_pair(project: Project) -> None:
    """One MTM pair: swap back when that lands in the city, else quarantine swapped_xy."""
    (project.dir / "profiles.toml").write_text(
        MTM_ONLY_PROFILE.format(crs="EPSG:2019"), encoding="utf-8"
    )
    df = project.good[["BREAK_DATE", "BREAK_YEAR", "XCOORD", "YCOORD"]].copy()  # no WGS84
    swapped = np.arange(len(df)) < 3
    x, y = df["XCOORD"].to_numpy(), df["YCOORD"].to_numpy()
    df["XCOORD"], df["YCOORD"] = np.where(swapped, y, x), np.where(swapped, x, y)
    # row 6: swapped, and swapping back lands in Lake Ontario ~6 km off the shore
    df.loc[5, ["XCOORD", "YCOORD"]] = [4_824_000.0, 315_000.0]
    df.to_csv(project.dir / "mtm_only.csv", index=False)
    cfg = project.config(
        project.dir / "mtm_only.csv",
        profile="toronto_breaks_mtm_only",
        profile_files=("profiles.toml",),
    )
    before = snapshot(project.store)["breaks"].set_index("source_row")
    s = source(ok_json(project.ingest(cfg, "breaks", json_=True)))
    assert s["rows_in"] == GOOD_ROWS
    assert s["accepted"] == GOOD_ROWS - 1
    assert s["quarantined_by_reason"] == {"swapped_xy": 1}
    assert s["flags"] == {"mtm_nad27_swapped_xy_repaired": 3}
    snap = snapshot(project.store)
    after = snap["breaks"].set_index("source_row")
    assert after.loc[[1, 2, 3], "flags"].tolist() == ["mtm_nad27_swapped_xy_repaired"] * 3
    assert set(after.loc[[r for r in after.index if r > 3], "flags"]) == {""}
    assert set(after["coord_source"]) == {"mtm_nad27"}
    common = after.index.intersection(before.index)
    dist = np.hypot(
        after.loc[common, "x"] - before.loc[common, "x"],
        after.loc[common, "y"] - before.loc[common, "y"],
    )
    assert dist.max() < 25, dist.sort_values().tail()
    q = snap["quarantine"]
    q = q[q["source_id"] == "breaks"]
    assert q["source_row"].tolist() == [6]
    assert q["reason"].tolist() == ["swapped_xy"]
    assert "XCOORD" in q["detail"].iloc[0]


# --------------------------------------------------------------------------- config
SEVERAL_PROBLEMS = """\
[project]
name = "broken"
colour = "blue"
h3_resolution = 42

[[sources]]
id = "neighbourhoods"
profile = "toronto_neighbourhoods_140"
path = "{nb}"

[[sources]]
id = "breaks"
profile = "toronto_breaks_csv"
path = "a.csv"

[[sources]]
id = "breaks"
profile = "toronto_breaks_csv"
path = "b.csv"
"""


@pytest.fixture
def several_problems(tmp_path: Path) -> Path:
    cfg = tmp_path / "broken.toml"
    cfg.write_text(SEVERAL_PROBLEMS.format(nb=NEIGHBOURHOODS_ZIP), encoding="utf-8")
    return cfg


def test_config_reports_all_problems_at_once(several_problems: Path, tmp_path: Path) -> None:
    r = twmb("--config", several_problems, "--out", tmp_path / "out", "ingest", "--json")
    msg = error_text(r, 2)
    assert "broken.toml" in msg, msg
    assert "unknown keys ['colour']" in msg, msg
    assert "h3_resolution must be an integer 0..15, got 42" in msg, msg
    assert "source id 'breaks' is used twice" in msg, msg
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 2
    for problem in (
        "[project] has unknown keys ['colour']",
        "[project] h3_resolution must be an integer 0..15, got 42",
        "[[sources]] #3: source id 'breaks' is used twice",
    ):
        assert problem in doc["error"], doc["error"]
    assert not (tmp_path / "out" / "twmb.duckdb").exists()


def test_config_error_keeps_section_names(several_problems: Path, tmp_path: Path) -> None:
    r = twmb("--config", several_problems, "--out", tmp_path / "out", "ingest")
    msg = error_text(r, 2)
    assert "[project] has unknown keys ['colour']" in msg, msg
    assert "[[sources]] #3: source id 'breaks' is used twice" in msg, msg


# --------------------------------------------------------------------------- volume
CHUNKED_PROFILE = """\
[[profile]]
id = "toronto_breaks_csv_chunked"
kind = "breaks"
format = "csv"
description = "toronto_breaks_csv read 50,000 rows at a time"
raw_schema = "raw/toronto_breaks_csv"
chunk_size = 50000
columns = { break_date = "BREAK_DATE", break_year = "BREAK_YEAR" }
coordinates = [
    { name = "wgs84", x = "POINT_X", y = "POINT_Y", crs = "EPSG:4326" },
    { name = "mtm_nad27", x = "XCOORD", y = "YCOORD", crs = "EPSG:2019" },
]
checks = { duplicate_key = ["break_date", "mtm_nad27"], duplicate_distance_m = 0.001, year_mismatch = "quarantine" }
"""


@pytest.mark.slow
def test_ten_times_larger_csv_in_chunks(project: Project, city_breaks: pd.DataFrame) -> None:
    """The bundled breaks 10 times (copy k moved k years back): 354,650 rows in 8 chunks."""
    copies = []
    for k in range(10):
        c = city_breaks.copy()
        c["BREAK_DATE"] = (pd.to_datetime(c["BREAK_DATE"]) - pd.DateOffset(years=k)).dt.strftime(
            "%Y-%m-%d"
        )
        c["BREAK_YEAR"] = c["BREAK_YEAR"] - k  # keeps the City's 8 year mismatches per copy
        copies.append(c)
    pd.concat(copies, ignore_index=True).to_csv(project.dir / "breaks_x10.csv", index=False)
    (project.dir / "profiles.toml").write_text(CHUNKED_PROFILE, encoding="utf-8")
    cfg = project.config(
        project.dir / "breaks_x10.csv",
        profile="toronto_breaks_csv_chunked",
        profile_files=("profiles.toml",),
    )
    r = twmb("-q", "--config", cfg, "--out", project.out, "ingest", "breaks", "--json")
    s = source(ok_json(r))
    assert s["rows_in"] == 10 * len(city_breaks) == 354_650
    assert s["rows_in"] == s["accepted"] + s["quarantined"]
    # duplicates are found across chunk boundaries too; copies never collide
    assert s["quarantined_by_reason"] == {"duplicate": 180, "year_mismatch": 80}
    assert s["flags"]["mtm_nad27_swapped_xy"] == 10
    with Store(project.store, read_only=True) as store:
        assert store.count("breaks") == s["accepted"]
        n = store.query("SELECT count(*) AS n FROM quarantine WHERE source_id = 'breaks'")
        assert int(n["n"].iloc[0]) == s["quarantined"]
        rows = store.query(
            "SELECT min(source_row) AS lo, max(source_row) AS hi, "
            "count(DISTINCT source_row) AS n FROM breaks"
        )
    assert rows.iloc[0].tolist() == [1, 354_650, s["accepted"]]
