"""The public API: every verb called twice in one process, typed results, no name collisions."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
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


def test_every_public_name_resolves_to_its_module_s_object() -> None:
    """The names are loaded on first use: each is its defining module's object, listed by
    ``dir``, and submodules are reachable as attributes."""
    for name in tw.__all__:
        if name == "__version__":
            continue
        home = importlib.import_module(tw._EXPORTS[name], "twmb_geo")
        assert getattr(tw, name) is getattr(home, name), name
        assert name in dir(tw)
    assert tw.publish.build_star is importlib.import_module("twmb_geo.publish").build_star
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = tw.no_such_name


def test_one_module_imports_without_the_whole_package() -> None:
    """A worker process unpickling a publish task imports ``twmb_geo.publish.base``: that
    must not import the API and with it every layer (features, models, maps). Before the
    package's names were loaded on first use, it did (4.6 against 1.5 s on a busy day)."""
    heavy = ["twmb_geo.api", "twmb_geo.features.build", "twmb_geo.model.selection",
             "twmb_geo.maps.stage", "libpysal", "sklearn", "matplotlib"]  # fmt: skip
    code = (
        "import sys, twmb_geo.publish.base, twmb_geo.store.load\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
        "import twmb_geo as tw; from twmb_geo import *\n"
        "print(callable(run), tw.Store is Store, 'twmb_geo.api' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["[]", "True True True"]


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
