"""The run report (``twmb_geo.maps.report.write_report``) on the bundled run.

The report is written under ``tmp_path`` (never into the session run's out folder) and
checked for what a reader relies on: every section, figures embedded or linked, no
external reference, the numbers of the store, stable bytes, notes instead of failures
when the model tables are absent, and escaped data text.
"""

from __future__ import annotations

import base64
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import MODEL_TABLES
from matplotlib.figure import Figure

from twmb_geo.config import Config
from twmb_geo.maps.report import SECTIONS, write_report
from twmb_geo.store.duckdb_store import Store

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MD_FIGURE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")
HTML_DATA_IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
NASTY = '<b>&"x'


def _tiny_png(path: Path) -> Path:
    """A small real PNG standing in for a rendered map."""
    fig = Figure(figsize=(0.6, 0.4), dpi=50)
    fig.add_subplot().plot([0, 1], [1, 0])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.png")} | {
        name: (folder / name).read_bytes() for name in ("report.html", "report.md")
    }


@pytest.fixture(scope="module")
def maps_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in maps folder: one PNG map and an HTML map file."""
    root = tmp_path_factory.mktemp("report_maps")
    _tiny_png(root / "maps" / "png" / "risk_cells.png")
    (root / "maps" / "twmb_map.html").write_text("<html></html>\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def report(bundled_run: dict, bundled_cfg: Config, maps_dir: Path) -> dict[str, Any]:
    """The report of the bundled run, written next to the stand-in maps."""
    return write_report(
        bundled_cfg,
        maps_dir / "report",
        map_images={"risk_cells": maps_dir / "maps" / "png" / "risk_cells.png"},
        html_map=maps_dir / "maps" / "twmb_map.html",
    )


@pytest.fixture(scope="module")
def texts(report: dict[str, Any]) -> tuple[str, str]:
    """(HTML, Markdown) of the bundled report."""
    html = Path(report["html"]).read_text(encoding="utf-8")
    md = Path(report["markdown"]).read_text(encoding="utf-8")
    return html, md


@pytest.fixture(scope="module")
def no_model_cfg(
    bundled_run: dict, bundled_cfg: Config, tmp_path_factory: pytest.TempPathFactory
) -> Config:
    """A copy of the bundled store without the model tables and with hostile neighbourhood names."""
    out = tmp_path_factory.mktemp("report_no_model") / "out"
    cfg = replace(bundled_cfg, out=out, store=None)
    out.mkdir(parents=True)
    shutil.copyfile(bundled_cfg.store_path, cfg.store_path)
    wal = bundled_cfg.store_path.with_name(bundled_cfg.store_path.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, cfg.store_path.with_name(cfg.store_path.name + ".wal"))
    with Store(cfg.store_path) as store:
        for table in MODEL_TABLES:
            store.execute(f'DROP TABLE IF EXISTS "{table}"')
        store.execute("UPDATE neighbourhoods SET area_name = ? || area_name", [NASTY])
    return cfg


@pytest.fixture(scope="module")
def no_model_report(no_model_cfg: Config) -> dict[str, Any]:
    """The report of the model-less copy, in its default folder ``<out>/report``."""
    return write_report(no_model_cfg)


# --------------------------------------------------------------------------- structure
def test_both_files_and_every_section(report: dict[str, Any], texts: tuple[str, str]) -> None:
    html, md = texts
    assert Path(report["html"]).name == "report.html"
    assert Path(report["markdown"]).name == "report.md"
    assert report["sections"] == list(SECTIONS)
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in html, title
        assert f"\n## {title}\n" in md, title
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # a model run shows the card, the riskiest units and the simulation, not the notes
    for title in ("Validation schemes side by side", "Random-CV optimism", "Leakage guard"):
        assert f"#### {title}" in md
    assert "No model was trained" not in md
    assert "No risk scores" not in md


def test_html_is_self_contained(report: dict[str, Any], texts: tuple[str, str]) -> None:
    html, _ = texts
    images = HTML_DATA_IMG.findall(html)
    assert len(images) == len(report["figures"]) >= 8
    for data in images:
        assert base64.b64decode(data).startswith(PNG_SIGNATURE)
    assert html.count("<img ") == len(images)
    for bad in ('src="http', 'href="http', "src='http", "<script", "<link", "@import", "url("):
        assert bad not in html, bad
    assert "<style>" in html


def test_figures_cover_every_chart(report: dict[str, Any]) -> None:
    figures = set(report["figures"])
    expected = {"breaks_by_year.png", "breaks_by_month.png", "moran_by_year.png"}
    expected |= {"map_risk_cells.png", "capture_cell.png", "calibration_cell.png"}
    expected |= {"importance_cell.png", "simulation_cell.png"}
    assert expected <= figures


# --------------------------------------------------------------------------- numbers
def test_data_summary_matches_the_store(bundled_cfg: Config, texts: tuple[str, str]) -> None:
    html, md = texts
    with Store(bundled_cfg.store_path, read_only=True) as store:
        src = store.query(
            "SELECT rows_in, accepted, quarantined FROM run_inputs WHERE source_id = 'breaks' "
            "ORDER BY run_id DESC LIMIT 1"
        ).iloc[0]
        reasons = store.query(
            "SELECT reason, count(*) AS n FROM quarantine WHERE source_id = 'breaks' "
            "GROUP BY reason ORDER BY reason"
        )
        # the latest run as the report names it: by start time (two runs started within
        # one second have run ids in random order)
        run_id = store.query(
            "SELECT run_id AS r FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1"
        )["r"].iloc[0]
    row = f"| {src.rows_in:,} | {src.accepted:,} | {src.quarantined:,} |"
    assert row in md
    assert f'<td class="num">{src.accepted:,}</td><td class="num">{src.quarantined:,}</td>' in html
    assert src.quarantined > 0 and len(reasons) >= 1
    for r in reasons.itertuples():
        assert f"| breaks | {r.reason} | {r.n:,} |" in md
    assert f"`{run_id}`" in md and f"<code>{run_id}</code>" in html


def test_breaks_and_neighbourhoods_match_the_store(
    bundled_cfg: Config, texts: tuple[str, str]
) -> None:
    from twmb_geo.store.summary import summarize

    html, md = texts
    with Store(bundled_cfg.store_path, read_only=True) as store:
        summ = summarize(store, top=10)
    assert f"{summ['breaks_total']:,} curated breaks" in md
    assert f"{summ['breaks_total']:,} curated breaks" in html
    first = summ["top_neighbourhoods"][0]
    assert f"| 1 | {first['area_name']} | {first['area_code']} | {first['breaks']:,} |" in md


def test_riskiest_units_and_renewal_match_the_store(
    bundled_cfg: Config, texts: tuple[str, str]
) -> None:
    html, md = texts
    with Store(bundled_cfg.store_path, read_only=True) as store:
        top = store.query(
            "SELECT unit_type, unit_id, expected_breaks FROM risk_scores "
            "WHERE is_current AND rank = 1 ORDER BY unit_type"
        )
        ren = store.query("SELECT * FROM renewal WHERE is_current ORDER BY unit_type")
        sim = store.query(
            "SELECT unit_type, p90 FROM simulation_city WHERE is_current "
            "AND scenario = 'baseline' AND horizon = 1 ORDER BY unit_type"
        )
    assert not top.empty and not ren.empty and not sim.empty
    for r in top.itertuples():
        assert f"| 1 | {r.unit_id} |" in md
        assert f'<td class="num">1</td><td>{r.unit_id}</td>' in html
    tables = md.split("### Renewal scenario", 1)[1]
    for r in ren.itertuples():
        avoided = (
            f"| {r.expected_breaks_avoided:,.1f} | {r.avoided_p10:,.0f}–{r.avoided_p90:,.0f} |"
        )
        assert avoided in tables
    for r in sim.itertuples():
        assert f"| {r.p90:,.0f} |" in md


# --------------------------------------------------------------------------- files
def test_markdown_figure_links_resolve(report: dict[str, Any], texts: tuple[str, str]) -> None:
    _, md = texts
    folder = Path(report["markdown"]).parent
    links = MD_FIGURE.findall(md)
    assert sorted(links) == sorted(f"figures/{name}" for name in report["figures"])
    for link in links:
        assert not link.startswith(("/", "http"))
        assert (folder / link).read_bytes().startswith(PNG_SIGNATURE)
    on_disk = sorted(p.name for p in (folder / "figures").glob("*.png"))
    assert on_disk == sorted(report["figures"])


def test_map_images_embedded_and_html_map_linked(
    report: dict[str, Any], texts: tuple[str, str], maps_dir: Path
) -> None:
    html, md = texts
    png = (maps_dir / "maps" / "png" / "risk_cells.png").read_bytes()
    assert base64.b64encode(png).decode("ascii") in html
    assert (Path(report["markdown"]).parent / "figures" / "map_risk_cells.png").read_bytes() == png
    assert 'href="../maps/twmb_map.html"' in html
    assert "](../maps/twmb_map.html)" in md
    assert "No static map was rendered" not in md


def test_second_run_is_byte_identical_and_drops_stale_figures(
    report: dict[str, Any], bundled_cfg: Config, maps_dir: Path
) -> None:
    folder = Path(report["html"]).parent
    before = _snapshot(folder)
    (folder / "figures" / "stale.png").write_bytes(PNG_SIGNATURE)
    again = write_report(
        bundled_cfg,
        folder,
        map_images={"risk_cells": maps_dir / "maps" / "png" / "risk_cells.png"},
        html_map=maps_dir / "maps" / "twmb_map.html",
    )
    assert again["figures"] == report["figures"]
    after = _snapshot(folder)
    assert sorted(after) == sorted(before)
    changed = [name for name in before if before[name] != after[name]]
    assert changed == []


# --------------------------------------------------------------------------- degraded
def test_without_model_tables_sections_give_notes(
    no_model_cfg: Config, no_model_report: dict[str, Any]
) -> None:
    assert Path(no_model_report["html"]) == no_model_cfg.out_dir / "report" / "report.html"
    md = Path(no_model_report["markdown"]).read_text(encoding="utf-8")
    html = Path(no_model_report["html"]).read_text(encoding="utf-8")
    assert no_model_report["sections"] == list(SECTIONS)
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in html
    for note in (
        "No model was trained in this run",
        "No risk scores in the store",
        "No Monte Carlo simulation in the store",
        "No renewal scenario in the store",
        "No static map was rendered for this report",
    ):
        assert f"> {note}" in md, note
        assert f'<p class="note">{note}' in html, note
    figures = no_model_report["figures"]
    assert "breaks_by_year.png" in figures and "moran_by_year.png" in figures
    assert not [f for f in figures if f.startswith(("capture_", "simulation_", "map_"))]


def test_data_text_is_escaped(no_model_report: dict[str, Any]) -> None:
    html = Path(no_model_report["html"]).read_text(encoding="utf-8")
    md = Path(no_model_report["markdown"]).read_text(encoding="utf-8")
    assert NASTY not in html
    assert "&lt;b&gt;&amp;&quot;x" in html  # the neighbourhood names of the top-10 table
    assert re.search(r"(?<!\\)<b>", md) is None  # every "<" of data text is escaped
    assert '\\<b>&"x' in md
