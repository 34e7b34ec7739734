"""The extension points are registries: every layer reads them, and adding an entry works."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import PoissonRegressor
from sklearn.model_selection import cross_val_score

from twmb_geo.cli.analysis import train_cmd
from twmb_geo.core.model_kinds import MODEL_KINDS, ModelKind, model_kind
from twmb_geo.core.units import UNIT_TYPES, UnitType, register_unit_type, unit_type_names
from twmb_geo.errors import StoreError
from twmb_geo.features.build import GRAPH_RECIPES
from twmb_geo.ingest.sources import TRANSFORMS, register_transform
from twmb_geo.io.profiles import builtin_profiles
from twmb_geo.maps.layers import UNIT_LAYERS
from twmb_geo.model import estimators
from twmb_geo.model.estimators import (
    LEARNERS,
    BreakCountRegressor,
    make_estimator,
    register_learner,
)
from twmb_geo.model.scorers import capture_scorer
from twmb_geo.publish.targets import TARGETS
from twmb_geo.spatial.units import UNIT_BUILDERS, register_unit_builder
from twmb_geo.store.duckdb_store import contract_of


def test_every_unit_type_has_a_builder_graphs_a_table_and_a_layer() -> None:
    assert unit_type_names() == ("pipe", "street", "cell", "neighbourhood")
    assert set(UNIT_BUILDERS) == set(UNIT_TYPES) == set(GRAPH_RECIPES) == set(UNIT_LAYERS)
    for spec in UNIT_TYPES.values():
        assert contract_of(spec.table) == f"features/{spec.table}"
        assert spec.linear == (spec.weight_column is not None)


def test_unit_type_specs_are_checked() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_unit_type(UNIT_TYPES["pipe"])
    with pytest.raises(ValueError, match="needs a weight column"):
        UnitType(
            "zone",
            "unit_zone",
            "zones",
            "unit_zone",
            "zone",
            "zones",
            True,
            None,
            "dim_zone",
            "zone_key",
            "unit_id",
        )
    with pytest.raises(ValueError, match="register the unit type"):
        register_unit_builder("zone", lambda ctx: None, lambda ctx, b: None)


def test_a_registered_unit_type_reaches_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = UnitType(
        "zone",
        "unit_zone",
        "zones",
        "unit_zone",
        "pressure zone",
        "pressure zones",
        False,
        None,
        "dim_zone",
        "zone_key",
        "unit_id",
    )
    monkeypatch.setitem(UNIT_TYPES, "zone", spec)
    assert contract_of("unit_zone") == "features/unit_zone"
    assert "zone" in unit_type_names()
    monkeypatch.delitem(UNIT_TYPES, "zone")
    with pytest.raises(StoreError, match="has no contract"):
        contract_of("unit_zone")


def test_the_cli_offers_the_registered_unit_types() -> None:
    option = next(p for p in train_cmd.params if p.name == "unit_types")
    assert tuple(option.type.choices) == unit_type_names()


def test_a_new_model_kind_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODEL_KINDS, "glm_test", ModelKind("glm_test", "count", "Poisson GLM"))
    monkeypatch.setattr(estimators, "LEARNERS", dict(LEARNERS))
    register_learner("glm_test", lambda est: PoissonRegressor(alpha=1e-3, max_iter=300))
    est = make_estimator("glm_test")
    assert isinstance(est, BreakCountRegressor) and model_kind("glm_test").task == "count"
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(300, 3))
    y = rng.poisson(np.exp(1.5 * X[:, 0]))
    scores = cross_val_score(est, X, y, cv=3, scoring=capture_scorer(frac=0.1))
    assert np.all((scores >= 0) & (scores <= 1)) and scores.mean() > 0.1
    with pytest.raises(ValueError, match="kind must be one of"):
        make_estimator("no_such_kind")


def test_source_kinds_and_publish_targets_are_registries() -> None:
    kinds = {p.kind for p in builtin_profiles().values()}
    assert kinds <= set(TRANSFORMS)
    with pytest.raises(ValueError, match="already has a transform"):
        register_transform("breaks", TRANSFORMS["breaks"])
    assert {"folder", "duckdb", "turso-file", "turso"} <= set(TARGETS)
