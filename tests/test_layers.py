"""The package's import graph: layers import downward only, no cycles, no hidden imports."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

import twmb_geo

PACKAGE = Path(twmb_geo.__file__).parent

#: module prefix -> layer rank (lower layers never import higher ones; layers of the same
#: rank, such as publish and maps, never import each other)
LAYERS: dict[str, float] = {
    "twmb_geo._version": 0,
    "twmb_geo._paths": 0,
    "twmb_geo.errors": 0,
    "twmb_geo.contracts": 0,
    "twmb_geo.core": 0,
    "twmb_geo.io": 1,
    "twmb_geo.config": 1.5,
    "twmb_geo.ingest": 2,
    "twmb_geo.store": 3,
    "twmb_geo.spatial": 4,
    "twmb_geo.features": 5,
    "twmb_geo.synth": 6,
    "twmb_geo.model": 7,
    "twmb_geo.publish": 8,
    "twmb_geo.maps": 8,
    "twmb_geo.results": 9,
    "twmb_geo.api": 9.5,
    "twmb_geo": 10,
    "twmb_geo.cli": 11,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> tuple[str, float]:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return best, LAYERS[best]


@cache
def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported twmb_geo module, line, at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    nested = {
        id(sub)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for sub in ast.walk(fn)
    }
    out = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            if mod.startswith("twmb_geo"):
                targets.append(mod)
                # ``from . import x`` / ``from .pkg import sub``: the submodule counts
                targets += [
                    f"{mod}.{a.name}"
                    for a in node.names
                    if (PACKAGE.parent / f"{mod}.{a.name}".replace(".", "/"))
                    .with_suffix(".py")
                    .exists()
                    or (PACKAGE.parent / f"{mod}.{a.name}".replace(".", "/")).is_dir()
                ]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.startswith("twmb_geo")]
        for t in targets:
            out.append((t, node.lineno, id(node) not in nested))
    return out


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        name, _ = _layer(_module_name(path))
        assert name in LAYERS


def test_no_upward_or_sideways_imports() -> None:
    problems = []
    for path in MODULES:
        me = _module_name(path)
        my_prefix, my_rank = _layer(me)
        for target, line, _ in _imports(path):
            prefix, rank = _layer(target)
            if rank > my_rank or (rank == my_rank and prefix != my_prefix and rank > 0):
                problems.append(f"{me}:{line} imports {target} ({prefix} is above {my_prefix})")
    assert not problems, "\n".join(problems)


def test_no_function_level_imports_of_the_package() -> None:
    problems = [
        f"{_module_name(path)}:{line} imports {target} inside a function"
        for path in MODULES
        for target, line, at_top in _imports(path)
        if not at_top
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("lower", "upper"),
    [("twmb_geo.core.crs", "twmb_geo.ingest"), ("twmb_geo.maps.report", "twmb_geo.api")],
)
def test_the_check_sees_an_upward_import(lower: str, upper: str) -> None:
    assert _layer(upper)[1] > _layer(lower)[1]
