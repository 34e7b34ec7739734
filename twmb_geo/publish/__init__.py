"""Publishing: analysis tables reshaped for BI tools (the Power BI star schema)."""

from __future__ import annotations

from .base import PreparedStar, PublishTarget, TargetOptions, TargetResult, prepare_star
from .star import STAR_TABLES, build_star, check_keys
from .targets import TARGETS, register_target

__all__ = [
    "STAR_TABLES",
    "TARGETS",
    "PreparedStar",
    "PublishTarget",
    "TargetOptions",
    "TargetResult",
    "build_star",
    "check_keys",
    "prepare_star",
    "register_target",
]
