"""The skill benchmark's reporting (unit reports, summary, true rates, oracle) on hand-made
cards and truths: ``benchmarks/skill.py --self-check`` raises on any mismatch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _benchmark(script: str, *args: str) -> dict:
    """Run ``benchmarks/<script>`` with ``args``; its JSON output."""
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout)


def test_skill_benchmark_self_check() -> None:
    out = _benchmark("skill.py", "--self-check")
    assert out["self_check"] == "ok"
    # the true-rate ranking puts the unit with 2 of the year's 4 breaks in the top 5 %
    assert out["oracle_by_year"] == {"2010": 0.5, "2011": None, "2012": None}


def test_moran_benchmark_finds_esda_statistics_on_an_h3_grid() -> None:
    """``benchmarks/moran.py`` on a small hexagon grid: this package's yearly Moran statistics
    equal esda's own loop (its identity check is the benchmark's claim)."""
    out = _benchmark("moran.py", "--rings", "6", "--years", "3", "--permutations", "19")
    assert out["cells"] == 127 and out["years"] == 3
    assert out["identical"] == {"global_i_z_sim_p_sim": True, "local_i": True, "local_p_sim": True}
