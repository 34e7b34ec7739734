"""Locate the package's bundled resources (schemas, data) in a checkout or a wheel."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _resource(name: str) -> Path:
    wheel = _PKG / "_resources" / name
    if wheel.is_dir():
        return wheel
    return _PKG.parent / name


def schemas_dir() -> Path:
    """The folder holding the versioned table contracts (``schemas/``)."""
    return _resource("schemas")


def data_dir() -> Path:
    """The folder holding the bundled real data (``data/``)."""
    return _resource("data")


def profiles_dir() -> Path:
    """The folder holding the built-in source profiles (TOML)."""
    return _PKG / "io" / "profiles"
