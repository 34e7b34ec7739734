"""Model artefacts: ``model.skops`` round-trips, and loading a model never runs code.

A crafted file in the models folder (a pickle under the old name ``model.joblib``, a skops
file naming a type twmb_geo does not trust, a boosting tree with out-of-range node indices)
is refused with a clear message, by the API and by ``twmb score``; a changed file fails the
sha256 check of the card.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from cli_helpers import error_text, twmb
from conftest import small_cells_city
from sklearn.base import BaseEstimator
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import twmb_geo as tw
from twmb_geo.config import Config, write_config
from twmb_geo.errors import InputDataError, TwmbError
from twmb_geo.model import registry, stage
from twmb_geo.model.baselines import (
    AgeBaseline,
    EmpiricalBayesRateBaseline,
    MaterialDecadeBaseline,
    PastBreaksBaseline,
)
from twmb_geo.model.champion import ChampionModel
from twmb_geo.model.estimators import make_estimator
from twmb_geo.model.registry import (
    ARTEFACT,
    LEGACY_ARTEFACT,
    TRUSTED_TYPES,
    load_card,
    load_model,
    save_model,
)

# ---------------------------------------------------------------- code a crafted file runs


def _write_marker(path: str) -> None:
    """What a crafted artefact runs when loaded: leaves a file behind."""
    Path(path).write_text("code ran", encoding="utf-8")


class _PickleBomb:
    """Unpickling this calls :func:`_write_marker` (``__reduce__``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return (_write_marker, (self.marker,))


class _SetstateBomb(BaseEstimator):
    """Building this from a skops file calls :func:`_write_marker` (``__setstate__``)."""

    def __init__(self, marker: str = "") -> None:
        self.marker = marker

    def __setstate__(self, state: dict[str, Any]) -> None:
        _write_marker(state["marker"])
        self.__dict__.update(state)


# ---------------------------------------------------------------- a small trained project


@dataclass
class Project:
    cfg: Config
    config_file: Path
    version: str
    trained: ChampionModel  # the model object train_models saved, before any round trip
    rows: pd.DataFrame  # the model rows of the unit type


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A synthetic city (cells only) with a boosting champion trained the normal way."""
    root = tmp_path_factory.mktemp("artefacts")
    cfg = small_cells_city(
        root,
        n_pipes=600,
        seed=11,
        champion="boost",  # a learned model: trees, calibration and all
        n_sims=50,
    )
    tw.ingest_sources(cfg)
    tw.build_features(cfg)
    saved: list[ChampionModel] = []

    def spy(root: Path, version: str, model: ChampionModel, card: dict[str, Any]) -> Path:
        saved.append(model)
        return save_model(root, version, model, card)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stage, "save_model", spy)
        trained = tw.train_models(cfg)
    with tw.open_store(cfg.store_path, read_only=True) as store:
        rows = stage._load_data(store, cfg, "cell").rows
    config_file = write_config(cfg, root / "city" / "artefacts.toml")
    return Project(cfg, config_file, trained.models[0]["model_version"], saved[0], rows)


@pytest.fixture
def private(project: Project, tmp_path: Path) -> Project:
    """The project with a private copy of its output folder (tests here change it)."""
    out = tmp_path / "out"
    shutil.copytree(project.cfg.out_dir, out)
    return replace(project, cfg=replace(project.cfg, out=out, store=None))


def _folder(p: Project) -> Path:
    return p.cfg.out_dir / "models" / p.version


def _score_cli(p: Project) -> str:
    """``twmb score`` on the project: a clean failure (exit 3); its message."""
    r = twmb("-q", "--config", p.config_file, "--out", p.cfg.out_dir, "score")
    return error_text(r, 3)


def _plant(p: Project, data: bytes) -> Path:
    """Replace ``model.skops`` by ``data`` and record its sha256 in the card, as someone who
    can write the models folder could: the type checks, not the digest, must refuse it."""
    path = _folder(p) / ARTEFACT
    path.write_bytes(data)
    card_path = _folder(p) / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["artefact"]["sha256"] = hashlib.sha256(data).hexdigest()
    card_path.write_text(json.dumps(card), encoding="utf-8")
    return path


def _predictions(m: ChampionModel, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "risk_score": m.risk_score(rows),
        "expected_breaks": m.expected_breaks(rows),
        "break_probability": m.break_probability(rows),
        "link": m.link(rows),
    }


# ---------------------------------------------------------------- (a) round trip


def test_trained_model_round_trips_and_predicts_identically(project: Project) -> None:
    folder = _folder(project)
    assert (folder / ARTEFACT).is_file() and not (folder / LEGACY_ARTEFACT).exists()
    card = load_card(project.cfg.out_dir / "models", project.version)
    data = (folder / ARTEFACT).read_bytes()
    assert card["artefact"] == {
        "file": ARTEFACT,
        "format": card["artefact"]["format"],
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }
    assert card["artefact"]["format"].startswith("skops ")
    assert set(sio.get_untrusted_types(data=data)) <= TRUSTED_TYPES
    loaded = load_model(project.cfg.out_dir / "models", project.version)
    assert loaded is not project.trained and loaded.model_members  # a learned model
    before = _predictions(project.trained, project.rows)
    after = _predictions(loaded, project.rows)
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v, err_msg=k)
    assert loaded.get_params()["name"] == project.trained.name == "boost"


def _panel(n_units: int = 150, years: int = 8, seed: int = 0) -> pd.DataFrame:
    """Unit-years with the columns every member kind reads (history, age, material, length)."""
    rng = np.random.default_rng(seed)
    level = rng.gamma(0.6, 0.4, n_units)
    counts = rng.poisson(level[:, None], (n_units, years + 1)).astype(float)
    rows = []
    for i in range(n_units):
        for t in range(years):
            past = counts[i, : t + 1]
            rows.append(
                {
                    "unit_id": f"u{i}",
                    "year": 2000 + t,
                    "history_years": t + 1,
                    "breaks_last5": past[-5:].sum(),
                    "breaks_to_date": past.sum(),
                    "decayed": float((past * 0.7 ** np.arange(t, -1, -1)).sum()),
                    "target_count": counts[i, t + 1],
                }
            )
    p = pd.DataFrame(rows)
    p["exposure_km"] = rng.uniform(0.1, 2.0, len(p))
    p["age_mean"] = rng.uniform(5.0, 90.0, len(p))
    p["material"] = rng.choice(np.array(["CI", "DI", None], dtype=object), len(p))
    p["install_year"] = rng.choice([1950.0, 1980.0, np.nan], len(p))
    p["mat_ci"] = (p["material"] == "CI").astype(float)
    p["diameter_mm"] = rng.choice([150.0, 200.0, 300.0], len(p))
    return p


_FEATS = ["breaks_last5", "decayed", "breaks_to_date", "age_mean"]


def _members(kind: str) -> list[tuple[str, BaseEstimator]]:
    learned = {
        "poisson": lambda: make_estimator("poisson", features=_FEATS, max_iter=10, max_rows=500),
        "hgb": lambda: make_estimator("hgb", features=_FEATS, max_iter=10),
        "logistic": lambda: make_estimator("logistic", features=_FEATS),
        "glm": lambda: make_estimator("glm", features=_FEATS, calibrate=False),
        "pwe": lambda: make_estimator(
            "pwe", features=[*_FEATS, "mat_ci", "diameter_mm"], exposure="exposure_km"
        ),
        "lightgbm": lambda: make_estimator("lightgbm", features=_FEATS, max_iter=10),
        "past_breaks": PastBreaksBaseline,
        "age": AgeBaseline,
        "material_decade": MaterialDecadeBaseline,
        "empirical_bayes": EmpiricalBayesRateBaseline,
    }
    if kind == "blend":
        return [("glm", learned["glm"]()), ("empirical_bayes", EmpiricalBayesRateBaseline())]
    return [(kind, learned[kind]())]


def _card(version: str) -> dict[str, Any]:
    """The least card :func:`render_card` writes."""
    return {
        "model_version": version,
        "unit_type": "pipe",
        "kind": "poisson",
        "created_at": "2026-01-01T00:00:00Z",
        "run_id": "test",
        "training_window": {
            "feature_years": [2000, 2006],
            "target_years": [2001, 2007],
            "rows": 1,
            "units": 1,
            "breaks": 1.0,
        },
        "scoring": {"feature_year": 2007, "target_year": 2008},
        "data": {},
        "features": [],
        "params": {},
    }


@pytest.mark.parametrize(
    "kind",
    [
        "poisson",
        "hgb",
        "logistic",
        "glm",
        "pwe",
        "lightgbm",
        "past_breaks",
        "age",
        "material_decade",
        "empirical_bayes",
        "blend",
    ],
)
def test_every_kind_of_model_holds_only_trusted_types(kind: str, tmp_path: Path) -> None:
    if kind == "lightgbm":
        pytest.importorskip("lightgbm")
    p = _panel()
    lab = p[p["year"] < 2007]
    members = _members(kind)
    weights = [0.5, 0.5] if len(members) > 1 else None
    m = ChampionModel(name=kind, members=members, weights=weights, density_col="exposure_km")
    m.fit(lab, lab["target_count"].to_numpy())
    save_model(tmp_path, kind, m, _card(kind))
    data = (tmp_path / kind / ARTEFACT).read_bytes()
    assert set(sio.get_untrusted_types(data=data)) <= TRUSTED_TYPES
    loaded = load_model(tmp_path, kind)
    for k, v in _predictions(m, p).items():
        np.testing.assert_array_equal(_predictions(loaded, p)[k], v, err_msg=k)


# ---------------------------------------------------------------- (b) crafted artefacts


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "code-ran.txt"
    yield path
    path.unlink(missing_ok=True)


def test_crafted_pickles_really_run_code(marker: Path) -> None:
    """Sanity of the tests below: the crafted files do run code when trusted."""
    pickle.loads(pickle.dumps(_PickleBomb(marker)))
    assert marker.read_text(encoding="utf-8") == "code ran"
    marker.unlink()
    data = sio.dumps(_SetstateBomb(str(marker)))
    sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert marker.exists()


def test_legacy_joblib_pickle_is_refused_and_never_opened(private: Project, marker: Path) -> None:
    folder = _folder(private)
    (folder / ARTEFACT).unlink()
    joblib.dump(_PickleBomb(marker), folder / LEGACY_ARTEFACT)
    with pytest.raises(InputDataError) as err:
        load_model(private.cfg.out_dir / "models", private.version)
    msg = str(err.value)
    assert str(folder / LEGACY_ARTEFACT) in msg and "twmb train" in msg and "pickle" in msg
    assert not marker.exists()
    msg = _score_cli(private)
    assert LEGACY_ARTEFACT in msg and "twmb train" in msg
    assert not marker.exists()
    # the card of an old folder stays readable (`twmb models show`)
    assert load_card(private.cfg.out_dir / "models", private.version)["model_version"]


def test_a_pickle_named_model_skops_is_refused(private: Project, marker: Path) -> None:
    path = _plant(private, pickle.dumps(_PickleBomb(marker)))
    with pytest.raises(InputDataError, match="not a readable skops model file") as err:
        load_model(private.cfg.out_dir / "models", private.version)
    assert str(path) in str(err.value) and "twmb train" in str(err.value)
    assert not marker.exists()
    assert ARTEFACT in _score_cli(private)
    assert not marker.exists()


def _with_setstate_bomb(m: ChampionModel, marker: Path) -> ChampionModel:
    m.members_ = [*m.members_, ("evil", _SetstateBomb(str(marker)))]
    return m


def _with_eval(m: ChampionModel, marker: Path) -> ChampionModel:
    # a learner whose first step calls eval() on the input when the model predicts
    m.members_[0][1].model_ = make_pipeline(FunctionTransformer(eval), m.members_[0][1].model_)
    return m


@pytest.mark.parametrize(
    ("craft", "bad_type"),
    [(_with_setstate_bomb, "_SetstateBomb"), (_with_eval, "builtins.eval")],
    ids=["setstate", "eval"],
)
def test_skops_file_with_an_untrusted_type_is_refused(
    private: Project,
    marker: Path,
    craft: Callable[[ChampionModel, Path], ChampionModel],
    bad_type: str,
) -> None:
    model = craft(load_model(private.cfg.out_dir / "models", private.version), marker)
    path = _plant(private, sio.dumps(model))
    with pytest.raises(InputDataError) as err:
        load_model(private.cfg.out_dir / "models", private.version)
    msg = str(err.value)
    assert str(path) in msg and bad_type in msg and "does not trust" in msg
    assert "twmb train" in msg
    assert not marker.exists()
    msg = _score_cli(private)
    assert bad_type in msg and "twmb train" in msg
    assert not marker.exists()


def test_untrusted_module_is_never_imported(
    private: Project, marker: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing a module runs its code: a module a file names is not imported to check it."""
    (tmp_path / "planted_mod.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('code ran')\n"
        "class Payload:\n"
        "    pass\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import planted_mod  # type: ignore[import-not-found]

    model = load_model(private.cfg.out_dir / "models", private.version)
    model.members_ = [*model.members_, ("payload", planted_mod.Payload())]
    _plant(private, sio.dumps(model))
    monkeypatch.delitem(sys.modules, "planted_mod")
    marker.unlink()
    with pytest.raises(InputDataError, match=r"planted_mod\.Payload"):
        load_model(private.cfg.out_dir / "models", private.version)
    assert "planted_mod.Payload" in _score_cli(private)
    assert not marker.exists() and "planted_mod" not in sys.modules


def test_boosting_tree_with_out_of_range_nodes_is_refused(private: Project) -> None:
    root = private.cfg.out_dir / "models"
    model = load_model(root, private.version)
    booster = model.model_members[0].model_
    tree = booster._predictors[0][0]
    split = np.flatnonzero(tree.nodes["is_leaf"] == 0)[0]
    tree.nodes["left"][split] = 10**6  # predict() would read far past the nodes array
    with pytest.raises(TwmbError, match="left child is out of range"):
        save_model(root, "never-written", model, load_card(root, private.version))
    assert not (root / "never-written").exists()
    path = _plant(private, sio.dumps(model))
    with pytest.raises(InputDataError, match="left child is out of range") as err:
        load_model(root, private.version)
    assert str(path) in str(err.value) and "twmb train" in str(err.value)


def test_saving_a_model_with_an_untrusted_type_fails_and_writes_nothing(
    private: Project, tmp_path: Path
) -> None:
    model = _with_setstate_bomb(
        load_model(private.cfg.out_dir / "models", private.version), tmp_path / "m"
    )
    with pytest.raises(TwmbError, match="register_trusted_type") as err:
        save_model(tmp_path / "models", "v", model, _card("v"))
    assert "_SetstateBomb" in str(err.value)
    assert not (tmp_path / "models").exists()
    with pytest.raises(ValueError, match="fully qualified"):
        registry.register_trusted_type("eval")


# ---------------------------------------------------------------- (c) tampering


def test_changed_artefact_fails_the_sha256_check(private: Project) -> None:
    folder = _folder(private)
    path = folder / ARTEFACT
    expected = load_card(private.cfg.out_dir / "models", private.version)["artefact"]["sha256"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(InputDataError) as err:
        load_model(private.cfg.out_dir / "models", private.version)
    msg = str(err.value)
    assert str(path) in msg and expected in msg and actual in msg and "twmb train" in msg
    msg = _score_cli(private)
    assert expected in msg and actual in msg


def test_card_without_a_digest_is_refused(private: Project) -> None:
    card_path = _folder(private) / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    del card["artefact"]
    card_path.write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(InputDataError, match="records no sha256") as err:
        load_model(private.cfg.out_dir / "models", private.version)
    assert str(card_path) in str(err.value)


def test_artefact_is_a_compressed_skops_zip(project: Project) -> None:
    with zipfile.ZipFile(_folder(project) / ARTEFACT) as z:
        assert "schema.json" in z.namelist()
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
