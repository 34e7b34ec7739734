"""Publishing: analysis tables reshaped for BI tools (the Power BI star schema)."""

from __future__ import annotations

from .star import STAR_TABLES, build_star, check_keys

__all__ = ["STAR_TABLES", "build_star", "check_keys"]
