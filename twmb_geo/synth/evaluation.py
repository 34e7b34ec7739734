"""How well breaks were matched to pipes, against a synthetic city's truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..store.duckdb_store import Store

__all__ = ["evaluate_matching"]


def evaluate_matching(store: Store, truth_csv: Path, source_id: str = "breaks") -> dict[str, Any]:
    """Break-to-pipe match accuracy against a synthetic city's truth (``truth/break_truth.csv``).

    The truth gives, per row of the published breaks CSV, the pipe that really broke.
    Accuracy = share of breaks linked to their true pipe, over all breaks of the source
    (unmatched and quarantined breaks count as misses), and over the linked ones.
    """
    truth = pd.read_csv(truth_csv, dtype={"asset_id": str})
    breaks = store.query("SELECT break_id, source_row FROM breaks WHERE source_id = ?", [source_id])
    links = store.query(
        "SELECT break_id, unit_id, status, reason FROM break_links WHERE unit_type = 'pipe'"
    )
    df = truth.merge(breaks, left_on="row", right_on="source_row", how="left").merge(
        links, on="break_id", how="left"
    )
    correct = (df["unit_id"].astype(str) == df["asset_id"].astype(str)) & (
        df["status"] == "matched"
    )
    linked = df["status"] == "matched"
    reasons = df.loc[~linked & df["break_id"].notna(), "reason"].value_counts()
    return {
        "breaks": len(df),
        "ingested": int(df["break_id"].notna().sum()),
        "linked": int(linked.sum()),
        "correct": int(correct.sum()),
        "accuracy": round(float(correct.mean()), 4) if len(df) else None,
        "accuracy_of_linked": round(float(correct[linked].mean()), 4) if linked.any() else None,
        "unmatched_by_reason": {str(k): int(v) for k, v in sorted(reasons.items())},
    }
