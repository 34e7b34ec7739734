"""Forward validation of the break-risk model against "breaks in the last 5 years", by hand.

The building blocks of ``twmb train`` used directly: a splitter, a baseline, the model and
the capture metric. Run after ``make run`` (or ``twmb run``)::

    python examples/risk_model.py out/twmb.duckdb [N_YEARS]

It prints, for each of the last N_YEARS test years (default 3), the share of next-year
breaks found in the riskiest 5 % of Toronto's H3 cells by each ranking.
"""

from __future__ import annotations

import sys

import twmb_geo as tw
from twmb_geo.model.baselines import PastBreaksBaseline
from twmb_geo.model.estimators import BreakCountRegressor
from twmb_geo.model.metrics import capture_at
from twmb_geo.model.splitters import ForwardSplit


def main(store_path: str, n_years: int = 3) -> None:
    with tw.open_store(store_path, read_only=True) as store:
        panel = store.read("panel", "unit_type = ?", ["cell"])
    labelled = panel[panel["target_count"].notna()].reset_index(drop=True)
    years = sorted(labelled["year"].unique())[-n_years:]
    print("test year  target year  model@5%  past-5-years@5%")
    for train_idx, test_idx in ForwardSplit(test_years=[int(y) for y in years]).split(labelled):
        train, test = labelled.iloc[train_idx], labelled.iloc[test_idx]
        y_train, y_test = train["target_count"], test["target_count"]
        model = BreakCountRegressor(calibrate=False, max_iter=100, learning_rate=0.1)
        model.fit(train, y_train)
        base = PastBreaksBaseline("breaks_last5").fit(train, y_train)
        t = int(test["year"].iloc[0])
        m = capture_at(y_test, model.predict(test), 0.05, ties="average")
        b = capture_at(y_test, base.predict(test), 0.05, ties="average")
        print(f"{t:9d}  {t + 1:11d}  {m:8.3f}  {b:15.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/twmb.duckdb", *map(int, sys.argv[2:3]))
