"""Batch ML: validation splitters, baselines, metrics, models (issue 4)."""
