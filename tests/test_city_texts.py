"""City name, licence and attribution come from the config in every map, report and kit text.

A copy of the Springfield fixture with ``[project] city`` and ``attribution`` set is ingested
once; its maps, report and Power BI kit must name Springfield and its licence, never Toronto.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib.text
import pytest
from matplotlib.figure import Figure

import twmb_geo as tw
from twmb_geo.config import Config, SourceConfig, default_config, load_config
from twmb_geo.contracts import load_schema
from twmb_geo.errors import ConfigError
from twmb_geo.maps import static

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "springfield"
PACKAGE = Path(tw.__file__).resolve().parent
CREDIT = "Neighbourhoods, breaks: City of Springfield (fictional), CC0. Basemap: none."


def _project(dest: Path, extra: str) -> Path:
    shutil.copytree(FIXTURE, dest)
    cfg = dest / "springfield.toml"
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text.replace('name = "springfield"\n', f'name = "springfield"\n{extra}'))
    return cfg


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = _project(
        tmp_path_factory.mktemp("city") / "sp",
        'city = "Springfield"\nattribution = "Basemap: none"\n',
    )
    load_schema.cache_clear()  # the fixture's raw schema path is relative to its folder
    cfg = load_config(path)
    tw.ingest_sources(cfg)
    return cfg


def test_config_city_licence_attribution(tmp_path: Path, city: Config) -> None:
    assert city.city_name == "Springfield"
    assert city.licence == "" and city.licence_line() == CREDIT.split(". Basemap")[0]
    assert city.credit_line() == CREDIT
    plain = load_config(_project(tmp_path / "a", 'licence = "Open Data Licence X"\n'))
    assert plain.city_name == "Springfield"  # the project name, capitalised
    assert plain.credit_line() == "Open Data Licence X."
    doc = city.to_toml()["project"]
    assert (doc["city"], doc["attribution"]) == ("Springfield", "Basemap: none")
    assert "licence" not in doc  # derived, not written


def test_bundled_config_keeps_the_toronto_texts() -> None:
    cfg = default_config()
    assert cfg.city_name == "Toronto"
    assert cfg.credit_line() == (
        "Contains information licensed under the Open Government Licence – Toronto."
    )
    derived = Config(sources=(SourceConfig("w", "eccc_daily", "x.csv"),))
    assert derived.licence_line() == (
        "Weather: Environment and Climate Change Canada, Open Government Licence - Canada"
    )


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (
            "city = 3\n",
            "[project] city must be a non-empty string (the display name in titles), got 3",
        ),
        ('city = ""\n', "[project] city must be a non-empty string"),
        (
            "licence = true\n",
            "[project] licence must be a string (the data licence line), got True",
        ),
        ("attribution = [1]\n", "[project] attribution must be a string (extra credits), got [1]"),
    ],
)
def test_bad_keys_are_named(tmp_path: Path, line: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(_project(tmp_path / "p", line))
    assert needle in str(exc.value), str(exc.value)


def test_maps_and_report_name_the_city(
    city: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts: list[str] = []
    save = static.save

    def spy(fig: Figure, path: Path) -> Path:
        texts.extend(t.get_text() for t in fig.findobj(matplotlib.text.Text))
        return save(fig, path)

    monkeypatch.setattr(static, "save", spy)
    maps = tw.render_maps(city, folder=tmp_path / "maps", formats=())
    assert list(maps.png) == ["break_density"]
    assert any(t.startswith("Springfield — water-main break density") for t in texts), texts
    assert any(t.startswith(f"{CREDIT} twmb_geo.\n") for t in texts), texts
    page = Path(maps.html["path"]).read_text(encoding="utf-8")
    assert "<title>Springfield water main breaks</title>" in page
    assert "<h1>Springfield water main breaks</h1>" in page
    assert f'<div class="source" id="source">{CREDIT}<span' in page
    rep = tw.write_report(city, folder=tmp_path / "report", maps=maps)
    for path in (rep.html, rep.markdown):
        text = path.read_text(encoding="utf-8")
        assert "Water-main break report: Springfield" in text
        assert f"Data: {CREDIT}" in text
    for text in [*texts, page, rep.html.read_text(), rep.markdown.read_text()]:
        assert "Toronto" not in text


def test_powerbi_kit_names_the_city(city: Config, tmp_path: Path) -> None:
    kit = tw.write_powerbi_kit(city, folder=tmp_path / "kit")
    readme = (kit.folder / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# TWMB Power BI kit: Springfield\n")
    assert f"Data: {CREDIT}" in readme
    model = (kit.folder / "TWMB.SemanticModel" / "definition" / "model.tmdl").read_text()
    assert model.startswith(
        f"/// Water main breaks of Springfield (twmb_geo star schema). {CREDIT}\nmodel Model\n"
    )
    page = kit.folder / "TWMB.Report/definition/pages/risk_map/page.json"
    assert json.loads(page.read_text(encoding="utf-8"))["displayName"] == "Springfield — risk map"
    for rel in kit.files:
        assert "Toronto" not in (kit.folder / rel).read_text(encoding="utf-8"), rel


#: where the package may name the bundled city: the core, the bundled default project, the
#: City's CKAN portal defaults and the synthetic city (built on the bundled footprint).
#: Lower-case identifiers of the bundled data (profile ids ``toronto_*``, ``twmb fetch
#: toronto``, ``--example toronto``) are names, not texts, and are not searched for.
ALLOWED = ("core/", "config.py", "io/ckan/", "synth/")


def test_no_city_name_in_package_code() -> None:
    hits = []
    for path in sorted(PACKAGE.rglob("*")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not path.is_file() or path.suffix not in {".py", ".js", ".css", ".html", ".json"}:
            continue
        if rel.startswith(ALLOWED):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "Toronto" in line:
                hits.append(f"{rel}:{n}: {line.strip()}")
    assert not hits, "city name outside the allowed places:\n" + "\n".join(hits)
