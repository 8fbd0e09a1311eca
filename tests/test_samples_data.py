"""The quickstart and the dataset sample run as a user runs them (subprocesses, embedded local server), in fast mode."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from video_checks import decode, decode_image

from odyssey_sync.dataset import Dataset

# End to end: run on Python 3.11 (every test); the 3.10 and 3.12 passes skip them (see .ci/run).
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_sample(name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("ODYSSEY_API_KEY", "ODYSSEY_API_URL")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run([sys.executable, str(REPO_ROOT / "samples" / name), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT, env=env, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.mark.timeout(150)
def test_quickstart_writes_the_video_and_the_snapshot(tmp_path: Path) -> None:
    done = run_sample("quickstart.py", "--seconds", "0.5", "--out", str(tmp_path))
    assert "target:       local server at http://127.0.0.1:" in done.stdout
    video = decode(tmp_path / "quickstart.mp4")
    written = int(re.search(r"video:\s+(\d+) frames at 1280x704", done.stdout).group(1))  # type: ignore[union-attr]
    assert video.count == written >= 3  # three steps of 0.5 s (20 fps; fewer on a loaded machine)
    stamps = [stamp for stamp in video.stamps if stamp is not None]
    assert len(stamps) == video.count and stamps == sorted(stamps)
    counters = re.search(r"frames:\s+(\d+) received, (\d+) handed to this script, (\d+) superseded, "
                         r"(\d+) dropped by buffer overflow, (\d+) dropped by the encoder", done.stdout)
    assert counters is not None, done.stdout
    received, handed, superseded, overflow, encoder = (int(n) for n in counters.groups())
    assert handed == written and superseded == overflow == encoder == 0 and received >= handed
    assert decode_image(tmp_path / "snapshot.png").shape == (704, 1280, 3)
    assert done.stdout.count("prompt ") == 3


@pytest.mark.timeout(200)
def test_collect_dataset_sample_writes_a_dataset_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "data"
    done = run_sample("collect_dataset.py", "--fast", "--out", str(out), timeout=180)
    assert re.search(r"live-000\s+written", done.stdout) and re.search(r"simulation-001\s+written", done.stdout)
    dataset = Dataset(out)
    assert dataset.complete_episodes() == ["live-000", "simulation-001"]
    table = dataset.read()
    assert f"dataset: {table.num_rows} frame rows" in done.stdout
    assert set(table.column("source").to_pylist()) == {"live", "simulation"}

    again = run_sample("collect_dataset.py", "--fast", "--out", str(out), timeout=180)
    assert re.search(r"live-000\s+skipped", again.stdout) and re.search(r"simulation-001\s+skipped", again.stdout)
