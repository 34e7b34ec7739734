"""Map outputs: layers in WGS84, file exports, static PNG maps, the interactive HTML map, the run report."""

from __future__ import annotations

from .layers import LAYERS, map_layers

__all__ = ["LAYERS", "map_layers"]
