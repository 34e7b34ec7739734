"""Config validation: the settings the stages rely on are checked when the config is read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import twmb_geo as tw
from twmb_geo.core.units import unit_type_names


@pytest.mark.parametrize("bad", [0, -5, True])
def test_esda_permutations_must_be_a_positive_integer(tmp_path: Path, bad: object) -> None:
    cfg = tw.default_config(tmp_path / "out")
    path = tmp_path / "twmb.toml"
    tw.write_config(replace(cfg, features=replace(cfg.features, esda_permutations=bad)), path)
    with pytest.raises(tw.ConfigError) as err:
        tw.load_config(path)
    assert any("esda_permutations must be an integer >= 1" in p for p in err.value.problems)


def test_model_unit_types_come_from_the_registry(tmp_path: Path) -> None:
    cfg = tw.default_config(tmp_path / "out")
    assert cfg.model.unit_types == unit_type_names(modelled=True) == ("pipe", "street", "cell")
    path = tmp_path / "twmb.toml"
    tw.write_config(replace(cfg, model=replace(cfg.model, unit_types=("cell", "zone"))), path)
    with pytest.raises(tw.ConfigError) as err:
        tw.load_config(path)
    assert any("'zone' is not a unit type (pipe, street, cell, neighbourhood)" in p for p in err.value.problems)
