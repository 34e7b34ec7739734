"""The core layer: what every other layer may import, and which imports nothing of ours above it.

``crs`` (coordinate transformations and their accuracy), ``vocab`` (tiers, hot-spot classes,
material codes), ``files`` (atomic writes) and ``types`` (shared type aliases).
"""
