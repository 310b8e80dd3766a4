"""A short run of bench/soak.py: the real application dialing on a fast clock, the list
filtered again and again, the details dialog open; it must not abort and the reference
counts of True and None must not fall (docs/benchmarks.md, "Soak", has the 8-hour run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_short_soak_runs_to_the_end_with_flat_reference_counts():
    arguments = [
        "--batch-calls",
        "500",
        "--active",
        "3",
        "--recipients",
        "300",
        "--hours",
        "1",
        "--min-emissions",
        "1000",
        "--filter-every",
        "0.2",
        "--max-minutes",
        "3",
        "--sample-every",
        "1",
    ]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "result: ok" in result.stdout
    assert "all listed: yes" in result.stdout
