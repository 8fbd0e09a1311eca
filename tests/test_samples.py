"""Each sample, run as a user would (a subprocess, no API key: an embedded local server), in its fast mode."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import av
import pytest

from odyssey_sync.stamp import read_stamp

# End to end: run on Python 3.11 (every test); the 3.10 and 3.12 passes skip them (see .ci/run).
pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def run_sample(name: str, *args: str, cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python samples/NAME ARGS`` without ODYSSEY_* variables or a display; fails the test on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODYSSEY_") and k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(SAMPLES / name), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=180
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    assert "local server at http://127.0.0.1:" in done.stdout
    return done


def line(output: str, label: str) -> str:
    for text in output.splitlines():
        if text.startswith(label):
            return text[len(label) :].strip()
    raise AssertionError(f"no {label!r} line in:\n{output}")


def test_robot_loop(tmp_path: Path) -> None:
    done = run_sample("robot_loop.py", "--seconds", "2", cwd=tmp_path)
    assert re.fullmatch(r"20 at 10 Hz, \d+ with a new frame", line(done.stdout, "ticks:"))
    assert re.fullmatch(r"p50 [\d.]+ ms, max [\d.]+ ms \(target 100 ms\)", line(done.stdout, "period:"))
    sent = re.fullmatch(r"(\d+) sent, round trip p50 \d+ ms, max \d+ ms \(never waited for\)", line(done.stdout, "interact:"))
    assert sent is not None and int(sent.group(1)) >= 1


def saved_frames(done: subprocess.CompletedProcess[str], cwd: Path) -> list[Path]:
    """The JPEGs the viewer says it saved, checked against the folder."""
    listed = [cwd / text.split("saved:")[1].strip() for text in done.stdout.splitlines() if text.startswith("saved:")]
    assert listed == sorted((cwd / "shots").glob("frame-*.jpg")) and len(listed) >= 2
    return listed


def test_opencv_viewer_headless_saves_bgr_frames(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    done = run_sample("opencv_viewer.py", "--seconds", "2", "--out", "shots", cwd=tmp_path)
    assert line(done.stdout, "mode:") == "files (OpenCV found)"
    image = cv2.imread(str(saved_frames(done, tmp_path)[-1]))
    assert image.shape == (704, 1280, 3) and read_stamp(image) is not None


@pytest.mark.slow
def test_opencv_viewer_without_opencv_saves_with_the_sdk(tmp_path: Path) -> None:
    shadow = tmp_path / "no_cv2"
    (shadow / "cv2").mkdir(parents=True)
    (shadow / "cv2" / "__init__.py").write_text("raise ImportError('cv2 is hidden for this test')\n")
    done = run_sample("opencv_viewer.py", "--seconds", "2", "--out", "shots", cwd=tmp_path, extra_path=shadow)
    assert line(done.stdout, "mode:") == "files (OpenCV not installed)"
    reports = [text for text in done.stdout.splitlines() if text.startswith("frame ")]
    assert len(reports) >= 2 and all(re.search(r"1280x704  mean BGR \(\d+, \d+, \d+\)  -> shots/", text) for text in reports)
    with av.open(str(saved_frames(done, tmp_path)[-1])) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert image.shape == (704, 1280, 3) and read_stamp(image) is not None


@pytest.mark.slow
def test_broadcast_viewer_runs_a_viewer_process(tmp_path: Path) -> None:
    done = run_sample("broadcast_viewer.py", "--seconds", "2", cwd=tmp_path)
    pids = re.fullmatch(r"(\d+) \(this process: (\d+)\)", line(done.stdout, "viewer pid:"))
    assert pids is not None and pids.group(1) != pids.group(2)
    broadcast = line(done.stdout, "broadcast:").split()[0]
    saw = re.fullmatch(r"(\d+) frames of (\S+) at 1280x704 in ([\d.]+) s", line(done.stdout, "viewer saw:"))
    assert saw is not None and saw.group(2) == broadcast
    assert int(saw.group(1)) >= 10 and float(saw.group(3)) >= 2.0
    sent = int(line(done.stdout, "server sent:").split()[0])
    assert sent >= int(saw.group(1)), "the stamps count what the broadcast sent while the viewer watched (loss is load-dependent)"
    assert len([text for text in done.stdout.splitlines() if text.startswith("steered:")]) == 2


@pytest.mark.slow
def test_gym_random_agent(tmp_path: Path) -> None:
    pytest.importorskip("gymnasium")
    done = run_sample("gym_random_agent.py", "--episodes", "2", "--steps", "10", cwd=tmp_path)
    episodes = re.findall(r"^episode (\d): 10 steps in .*, stream (\S+), frame (\d+), ended by the step limit", done.stdout, re.M)
    assert [episode for episode, _, _ in episodes] == ["0", "1"]
    assert episodes[0][1] != episodes[1][1], "each episode is a stream of its own"
    assert all(int(frame) >= 10 for _, _, frame in episodes)
    assert line(done.stdout, "observations:") == "Box(0, 255, (704, 1280, 3), uint8)"
