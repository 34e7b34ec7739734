"""Batch ML: validation splitters, baselines, metrics, estimators, scoring and simulation."""
