"""Smoke test of the benchmark harness (``python -m benchmarks``): it runs and writes a well-formed report.

Only the structure is checked, never a performance number: CI machines are
loaded, and the figures are for the hand-run harness (see benchmarks/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIGURE_FIELDS = {"id", "title", "unit", "measured", "baseline", "baseline_label", "ratio", "target", "checked", "met",
                 "status", "note", "details"}


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_quick_run_of_two_figures_writes_the_report(tmp_path: Path) -> None:
    started = time.monotonic()
    command = [
        sys.executable, "-m", "benchmarks", "--quick", "--only", "P1,P5", "--out", str(tmp_path), "--quiet",
        "--param", "stream_s=2", "--param", "warmup_s=0.5", "--param", "connects=3",
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=80)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["quick"] is True
    machine = report["machine"]
    for key in ("date", "nproc", "cpu_model", "python", "versions", "loadavg_start"):
        assert key in machine, key
    assert {"aiortc", "av"} <= set(machine["versions"])

    figures = {figure["id"]: figure for figure in report["figures"]}
    assert set(figures) == {"P1 20 fps", "P1 30 fps", "P5 p50", "P5 p95"}
    for figure in figures.values():
        assert FIGURE_FIELDS <= set(figure), figure["id"]
        assert figure["status"] == "ok", (figure["id"], figure["note"])
        for key in ("measured", "baseline", "ratio", "checked"):
            assert isinstance(figure[key], (int, float)), (figure["id"], key)
        assert isinstance(figure["met"], bool)
    assert figures["P1 20 fps"]["details"]["sdk"]["sent"] > 0
    assert any(key.startswith("sdk-stream") for key in report["runs"])
    assert any(key.startswith("bare-stream") for key in report["runs"])

    markdown = (tmp_path / "report.md").read_text()
    assert "| Figure | What | Measured | Baseline | Ratio | Target | Checked | Met? |" in markdown
    assert "P5 p95" in markdown
    table = done.stdout
    assert "figure" in table and "P1 30 fps" in table and "met?" in table
    print(f"smoke run: {elapsed:.1f} s")  # about 25 s on an idle 2-core machine; not asserted (loaded CI)
