"""The examples run as documented."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_quickstart_runs(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py"), str(tmp_path / "qs")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "35,465 in" in proc.stdout
    assert "busiest year 1994 (2,076)" in proc.stdout
    assert "Severe winters" in proc.stdout
    assert "'swapped_xy': 1" in proc.stdout  # the xlsx release, read in memory
    assert (tmp_path / "qs" / "twmb.duckdb").exists()


def test_risk_model_example_runs(bundled_run: dict, bundled_cfg) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "risk_model.py"),
            str(bundled_cfg.store_path),
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("test year") and lines[1].split()[:2] == ["2015", "2016"]
    model, base = map(float, lines[1].split()[2:4])
    assert 0 < model <= 1 and 0 < base <= 1
