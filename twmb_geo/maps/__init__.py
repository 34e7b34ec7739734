"""Map outputs: layers in WGS84, file exports, static PNG maps, the interactive HTML map, the run report.

Import the output modules directly (``twmb_geo.maps.exports``, ``.static``,
``.interactive``, ``.report``); ``twmb_geo.make_maps`` and ``twmb_geo.make_report`` run them
all on a store.
"""

from __future__ import annotations

from .layers import LAYER_COLUMNS, LAYERS, map_layers

__all__ = ["LAYERS", "LAYER_COLUMNS", "map_layers"]
