"""A run whose star is large makes its maps and report in a second process beside the
publish: the same files as one after the other, the stages recorded in the same order with
their own times, and an error on either side raised (the publish's first) with the other
side finished and recorded."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FAST_MODEL

import twmb_geo as tw
from twmb_geo import api
from twmb_geo.errors import PublishError, StoreError
from twmb_geo.publish import stage
from twmb_geo.store.runlog import command
from twmb_geo.synth import make_city, write_city


def _config(root: Path, out: str) -> tw.Config:
    paths = write_city(make_city(n_pipes=400, seed=23), root / "city")
    cfg = tw.load_config(paths["config"], out=root / out)
    keep = {"breaks", "neighbourhoods"}  # cells and neighbourhoods: the stages, not the city
    return replace(
        cfg,
        h3_resolution=7,
        sources=tuple(replace(s, enabled=s.id in keep) for s in cfg.sources),
        features=replace(cfg.features, esda_permutations=9),
        model=replace(
            FAST_MODEL, unit_types=("cell",), schemes=("forward",), forward_years=2, n_sims=50
        ),
        compute=replace(cfg.compute, threads=2),
    )


@pytest.fixture(scope="module")
def beside_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[tw.Config, dict, list[bool]]:
    """A whole run of a small city, its star taken as large: the maps and the report are
    made beside the publish."""
    cfg = _config(tmp_path_factory.mktemp("beside"), "out")
    routed: list[bool] = []
    real = api._publish_beside_maps

    def watched(cfg: tw.Config, progress: object) -> object:
        routed.append(True)
        return real(cfg, progress)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(api, "is_large", lambda cfg: True)
        mp.setattr(api, "_publish_beside_maps", watched)
        summary = tw.run(cfg, with_model=False).summary  # the stages beside, not the model
    return cfg, summary, routed


def _files(folder: Path, *suffixes: str) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix in suffixes
    }


def _stages(out: Path) -> list[tuple[str, str]]:
    doc = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return [(s["stage"], s["status"]) for s in doc["stages"]]


def _copy(cfg: tw.Config, to: Path, *remove: str) -> tw.Config:
    shutil.copytree(cfg.out_dir, to / "out")
    for name in remove:
        shutil.rmtree(to / "out" / name)
    return replace(cfg, out=to / "out", store=None)


def test_is_large_counts_the_panel_against_the_background_threshold(
    beside_run: tuple[tw.Config, dict, list[bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = beside_run[0]
    assert not stage.is_large(cfg)
    monkeypatch.setattr(stage, "BACKGROUND_ROWS", 1)
    assert stage.is_large(cfg)


def test_maps_beside_the_publish_make_what_one_after_the_other_makes(
    beside_run: tuple[tw.Config, dict, list[bool]], tmp_path: Path
) -> None:
    """The run's star, map exports and PNG maps equal byte for byte those the publish, the
    maps and the report make one after the other from the same store; the manifest lists
    publish, maps and report in that order, each ok with its own time."""
    cfg, summary, routed = beside_run
    assert routed, "the maps were not made beside the publish"
    assert _stages(cfg.out_dir)[-3:] == [("publish", "ok"), ("maps", "ok"), ("report", "ok")]
    doc = json.loads((cfg.out_dir / "manifest.json").read_text(encoding="utf-8"))
    assert all(s["seconds"] is not None for s in doc["stages"])
    assert Path(summary["report"]["html"]) == cfg.out_dir / "report" / "report.html"
    seq = _copy(cfg, tmp_path, "star", "maps", "report", "turso")
    with command(seq.out_dir, seq.store_path, "run", as_stage=False):
        published = tw.publish_star(seq)
        tw.write_report(seq, maps=tw.render_maps(seq))
    assert published.publish_id == summary["publish"]["publish_id"]
    for sub, suffixes in (
        ("star", (".parquet", ".csv")),
        ("maps", (".geojson", ".parquet", ".png", ".html")),
    ):
        want, got = _files(seq.out_dir / sub, *suffixes), _files(cfg.out_dir / sub, *suffixes)
        assert want and want.keys() == got.keys()
        assert [k for k in want if want[k] != got[k]] == []


def _beside(cfg: tw.Config) -> None:
    with command(cfg.out_dir, cfg.store_path, "run", as_stage=False):
        api._publish_beside_maps(cfg, None)


def test_a_maps_failure_beside_is_raised_after_the_publish(
    beside_run: tuple[tw.Config, dict, list[bool]], tmp_path: Path
) -> None:
    """The maps folder cannot be made (a file is in its place): the maps stage's own error
    (naming the folder) is raised once the publish is done, which stays written."""
    cfg = _copy(beside_run[0], tmp_path, "maps", "star")
    (cfg.out_dir / "maps").write_text("a file where the maps folder should be")
    with pytest.raises(StoreError, match="maps"):
        _beside(cfg)
    assert _stages(cfg.out_dir) == [("publish", "ok"), ("maps", "failed")]
    assert (cfg.out_dir / "star" / "parquet" / "fact_unit_year.parquet").is_file()


def test_a_publish_failure_beside_is_raised_and_the_maps_are_made(
    beside_run: tuple[tw.Config, dict, list[bool]], tmp_path: Path
) -> None:
    """The Turso file cannot be written (a file is in its folder's place): the publish's
    error is raised; the maps and the report beside it are made and recorded."""
    cfg = _copy(beside_run[0], tmp_path, "maps", "report", "turso")
    (cfg.out_dir / "turso").write_text("a file where the Turso folder should be")
    with pytest.raises(PublishError, match="turso"):
        _beside(cfg)
    assert _stages(cfg.out_dir) == [("publish", "failed"), ("maps", "ok"), ("report", "ok")]
    assert (cfg.out_dir / "report" / "report.html").is_file()
    assert list((cfg.out_dir / "maps" / "png").glob("*.png"))
