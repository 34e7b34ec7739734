"""The public API: every verb called twice in one process, typed results, no name collisions."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FAST_MODEL

import twmb_geo as tw
from twmb_geo import results
from twmb_geo.synth import make_city, write_city

VERBS = (
    "ingest_sources",
    "build_features",
    "train_models",
    "list_models",
    "score_units",
    "simulate_breaks",
    "publish_star",
    "render_maps",
    "write_report",
    "write_powerbi_kit",
    "summarize",
    "read_source",
    "run",
)


def _import_every_module() -> None:
    """Import every submodule, as a user's code or a lazy import inside the package would."""
    for info in pkgutil.walk_packages(tw.__path__, "twmb_geo."):
        importlib.import_module(info.name)


def test_no_public_name_is_shadowed_by_a_subpackage() -> None:
    _import_every_module()
    for name in tw.__all__:
        obj = getattr(tw, name)
        assert not inspect.ismodule(obj), f"tw.{name} is the module {obj.__name__}"
    for verb in VERBS:
        assert callable(getattr(tw, verb)), verb
        assert verb in tw.__all__


def test_every_public_name_is_documented() -> None:
    api_doc = (Path(__file__).parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [n for n in tw.__all__ if n != "__version__" and f"`{n}" not in api_doc]
    assert not missing, f"not in docs/api.md: {missing}"


@pytest.fixture(scope="module")
def small_city(tmp_path_factory: pytest.TempPathFactory) -> tw.Config:
    root = tmp_path_factory.mktemp("api")
    paths = write_city(make_city(n_pipes=600, seed=11), root / "city")
    cfg = tw.load_config(paths["config"], out=root / "out")
    keep = {"breaks", "neighbourhoods"}  # cells and neighbourhoods only: the verbs, not the city
    return replace(
        cfg,
        h3_resolution=7,  # a few hundred cells: the verbs, not the city, are under test
        sources=tuple(replace(s, enabled=s.id in keep) for s in cfg.sources),
        features=replace(cfg.features, esda_permutations=9),
        model=replace(
            FAST_MODEL,
            unit_types=("cell",),
            schemes=("forward",),
            forward_years=2,
            n_sims=50,
        ),
    )


def test_every_verb_twice_in_one_process(small_city: tw.Config, tmp_path: Path) -> None:
    cfg = small_city
    for _ in range(2):
        rep = tw.ingest_sources(cfg)
        assert isinstance(rep, tw.IngestReport) and rep.ok
        _import_every_module()  # a lazy import must not rebind a verb
        feats = tw.build_features(cfg)
        assert isinstance(feats, tw.FeatureReport) and feats.to_dict()["units"]["cell"] > 0
        trained = tw.train_models(cfg)
        assert isinstance(trained, results.TrainResult)
        assert [m["unit_type"] for m in trained.models] == ["cell"]
        assert len(tw.list_models(cfg))
        scored = tw.score_units(cfg)
        assert isinstance(scored, results.ScoreResult) and scored.scores
        sims = tw.simulate_breaks(cfg, horizon=2, n_sims=20)
        assert isinstance(sims, results.SimulationResult) and sims.simulations
        pub = tw.publish_star(cfg, targets=["folder"], folder=tmp_path / "star")
        assert isinstance(pub, results.PublishResult) and pub.rows["fact_break"] > 0
        maps = tw.render_maps(cfg, formats=("geojson",), html=False)
        assert isinstance(maps, results.MapsResult) and maps.png
        report = tw.write_report(cfg, maps=maps)
        assert isinstance(report, results.ReportResult) and report.html.exists()
        kit = tw.write_powerbi_kit(cfg, folder=tmp_path / "kit")
        assert isinstance(kit, results.PowerBIKitResult) and kit.tables > 0
        with tw.open_store(cfg.store_path, read_only=True) as store:
            assert tw.summarize(store)["breaks_total"] > 0
        src = cfg.source("breaks")
        res = tw.read_source(src.files(cfg.root), cfg.profile(src))
        assert res.rows_in == res.accepted + len(res.quarantine)
        ran = tw.run(cfg, with_features=False, with_publish=False)
        assert isinstance(ran, results.RunResult) and ran.summary_path.exists()
        assert ran.to_dict()["summary_path"] == str(ran.summary_path)
