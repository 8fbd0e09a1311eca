"""The ``odyssey`` command, run as a subprocess against the local server, and its error handling."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path
from typing import Any

import av
import pytest

from odyssey_sync import Odyssey, __version__, cli
from odyssey_sync.local import LocalOdyssey

# End to end: run on Python 3.11 (every test); the 3.10 and 3.12 passes skip them (see .ci/run).
pytestmark = pytest.mark.slow

JUMP, SLEEP = "The cat jumps", "The cat falls asleep"
SCRIPT = [
    {"timestamp_ms": 0, "start": {"prompt": "A cat on a windowsill"}},
    {"timestamp_ms": 1000, "interact": {"prompt": JUMP}},
    {"timestamp_ms": 2000, "end": {}},
]


def run_odyssey(
    server: LocalOdyssey | None, *args: str, stdin: str = "", key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``odyssey ARGS`` in a subprocess, with the SDK's environment variables pointing at ``server``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODYSSEY_")}
    if server is not None:
        env["ODYSSEY_API_URL"] = server.url
        env["ODYSSEY_API_KEY"] = key or server.api_key
    command = [sys.executable, "-m", "odyssey_sync.cli", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=120)


def decode(path: Path) -> tuple[tuple[int, int], int, float]:
    """Size, frame count and duration (s, from the last frame's time) of an MP4."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    assert frames, f"{path} holds no video"
    last = frames[-1]
    assert last.time is not None
    return (frames[0].width, frames[0].height), len(frames), float(last.time)


def field(output: str, name: str) -> str:
    """The value printed after ``name`` on its line (the first match)."""
    for line in output.splitlines():
        if line.startswith(name + " "):
            return line[len(name) :].strip()
    raise AssertionError(f"no {name!r} line in {output!r}")


def received_updates(server: LocalOdyssey, stream_id: str, folder: Path) -> list[dict[str, Any]]:
    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20) as client:
        paths = client.download_recording(stream_id, folder, what="events", progress=False)
    events = [json.loads(line) for line in paths["events"].read_text().splitlines()]
    return [event for event in events if event["type"] == "update"]


def test_stream_records_an_mp4_and_sends_timed_prompts_from_stdin(server: LocalOdyssey, tmp_path: Path) -> None:
    out = tmp_path / "cat.mp4"
    done = run_odyssey(
        server, "stream", "A cat on a windowsill", "--seconds", "3", "--out", str(out), "--interacts", "-",
        stdin=f"# seconds, prompt\n1.0 {JUMP}\n\n2 {SLEEP}\n",
    )
    assert done.returncode == 0, done.stderr
    assert "Recording" not in done.stderr, "no progress bar when stderr is not a terminal"
    size, count, duration = decode(out)
    assert size == (1280, 704)
    assert 50 <= count <= 60 and 2.4 <= duration < 3.0  # 3 s at 20 fps, timed by the media clock
    stream_id = field(done.stdout, "stream")
    updates = received_updates(server, stream_id, tmp_path)
    assert [event["prompt"] for event in updates] == [JUMP, SLEEP]
    # Sent on the stream's clock, never before its time (the server's clock starts before the client's).
    assert 1000 <= updates[0]["t_ms"] and 2000 <= updates[1]["t_ms"] and updates[0]["t_ms"] < updates[1]["t_ms"]
    assert f"1.0 s  {JUMP}" in done.stdout and f"2.0 s  {SLEEP}" in done.stdout, "the applied prompts are printed"


@pytest.mark.slow
def test_stream_portrait_into_a_folder_with_a_json_interacts_file(server: LocalOdyssey, tmp_path: Path) -> None:
    interacts = tmp_path / "steps.json"
    interacts.write_text(json.dumps([{"timestamp_ms": 500, "interact": {"prompt": JUMP}}]))
    done = run_odyssey(
        server, "stream", "A cat", "--seconds", "1.5", "--portrait", "--out", f"{tmp_path}/videos/",
        "--interacts", str(interacts), "-q",
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "--quiet: no progress bar"
    stream_id = field(done.stdout, "stream")
    size, count, _ = decode(tmp_path / "videos" / f"{stream_id}.mp4")
    assert size == (704, 1280) and count >= 20
    assert [event["prompt"] for event in received_updates(server, stream_id, tmp_path)] == [JUMP]


@pytest.mark.slow
def test_ctrl_c_ends_the_recording_and_keeps_the_video(server: LocalOdyssey, tmp_path: Path) -> None:
    out = tmp_path / "interrupted.mp4"
    env = {**os.environ, "ODYSSEY_API_URL": server.url, "ODYSSEY_API_KEY": server.api_key}
    command = [sys.executable, "-m", "odyssey_sync.cli", "stream", "A cat", "--seconds", "60", "--out", str(out)]
    terminal, child_end = pty.openpty()  # stderr on a terminal, 100 columns wide: the progress bar shows
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=child_end, env=env)
    os.close(child_end)
    recording = threading.Event()
    progress = bytearray()

    def watch_progress() -> None:
        while True:
            try:
                chunk = os.read(terminal, 1024)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            progress.extend(chunk)
            if re.search(rb"Recording [1-9]\.\d/60 s of video", progress):  # a second of video is written
                recording.set()

    reader = threading.Thread(target=watch_progress, daemon=True)
    reader.start()
    try:
        assert recording.wait(60), progress.decode(errors="replace")
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    reader.join(10)
    os.close(terminal)
    assert process.returncode == 130
    assert b"interrupted after" in progress
    frames = int(re.search(rb"\((\d+) frames", stdout).group(1))  # type: ignore[union-attr]
    size, count, _ = decode(out)
    assert size == (1280, 704) and count == frames >= 20


@pytest.mark.slow
def test_the_servers_stream_limit_ends_the_recording_with_a_note(tmp_path: Path) -> None:
    with LocalOdyssey(max_stream_seconds=1.0) as limited:
        done = run_odyssey(limited, "stream", "A cat", "--seconds", "10", "--out", str(tmp_path / "short.mp4"))
    assert done.returncode == 0, done.stderr
    assert re.search(r"note: the stream ended after [\d.]+ s: Stream exceeded maximum duration", done.stderr)
    _, count, _ = decode(tmp_path / "short.mp4")
    assert 10 <= count <= 21  # the 1 s the stream lasted, at 20 fps (frames at 0, 50, ..., 1000 ms)


def test_recordings_list_and_download(server: LocalOdyssey, tmp_path: Path) -> None:
    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20) as client:
        client.connect()
        stream_id = client.start_stream("A lighthouse at dusk", portrait=False)
        assert len(list(client.frames(limit=10, timeout=10))) == 10  # half a second of video to record
        client.end_stream()
        client.get_recording(stream_id)  # the server finishes the files first; then the recording is listed

    listed = run_odyssey(server, "recordings", "list", "--limit", "3", "--json")
    assert listed.returncode == 0, listed.stderr
    recent = {item["stream_id"]: item for item in json.loads(listed.stdout)}
    assert 1 <= len(recent) <= 3
    assert stream_id in recent, f"{stream_id} is among the newest: {listed.stdout}"
    assert (recent[stream_id]["width"], recent[stream_id]["height"]) == (1280, 704)
    table = run_odyssey(server, "recordings", "list", "--limit", "3")
    assert table.stdout.splitlines()[0].startswith("STREAM ID") and stream_id in table.stdout

    fetched = run_odyssey(server, "recordings", "download", stream_id, "--what", "video", "events", "--dest", str(tmp_path))
    assert fetched.returncode == 0, fetched.stderr
    video, events = tmp_path / f"{stream_id}.mp4", tmp_path / f"{stream_id}.events.jsonl"
    assert field(fetched.stdout, "video") == str(video) and field(fetched.stdout, "events") == str(events)
    assert decode(video)[0] == (1280, 704)
    assert json.loads(events.read_text().splitlines()[0])["type"] == "start"


def test_simulate_waits_and_downloads_the_videos(server: LocalOdyssey, tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    done = run_odyssey(server, "simulate", str(script), "--download", str(tmp_path / "out"), "--what", "all")
    assert done.returncode == 0, done.stderr
    assert field(done.stdout, "status") == "completed"
    stream_id = field(done.stdout, "stream").split()[0]
    size, count, _ = decode(tmp_path / "out" / f"{stream_id}.mp4")
    assert size == (1280, 704) and count == 40  # 2 s at 20 fps
    names = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert names == sorted(f"{stream_id}{suffix}" for suffix in (".mp4", ".events.jsonl", ".jpg", ".preview.mp4"))


@pytest.mark.slow
def test_simulate_without_wait_prints_the_queued_job(server: LocalOdyssey) -> None:
    done = run_odyssey(server, "simulate", "-", "--portrait", stdin=json.dumps({"script": SCRIPT}))
    assert done.returncode == 0, done.stderr
    job_id = field(done.stdout, "job").split()[0]
    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20) as client:
        assert client.wait_for_simulation(job_id, timeout=60, progress=False).status.value == "completed"


def test_errors_are_one_line_with_an_exit_code_and_never_show_the_key(server: LocalOdyssey) -> None:
    wrong_key = "ody_local_not_the_right_secret_42"
    done = run_odyssey(server, "recordings", "list", key=wrong_key)
    assert done.returncode == 1
    assert "rejected" in done.stderr and "Traceback" not in done.stderr
    assert wrong_key not in done.stderr + done.stdout

    done = run_odyssey(None, "stream", "A cat")
    assert done.returncode == 2 and "no API key" in done.stderr and "ODYSSEY_API_KEY" in done.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (["stream", "A cat", "--out", "cat.txt"], "", 2, "name an .mp4 file or a folder"),
        (["stream", "A cat", "--interacts", "-"], "soon The cat jumps\n", 2, r"stdin: line 1: 'soon' is not a number"),
        (["stream", "A cat", "--interacts", "-"], "2\n", 2, r"line 1: expected 'SECONDS PROMPT'"),
        (["stream", "A cat", "--seconds", "2", "--interacts", "-"], "5 Late\n", 2, "comes after the recording ends"),
        (["stream", "A cat", "--interacts", "-"], '[{"timestamp_ms": 0, "start": {}}]', 2, "only interact entries"),
        (["stream", "A cat", "--interacts", "/no/such/file"], "", 2, "cannot read --interacts"),
        (["stream", "  "], "", 2, "PROMPT is blank"),
        (["simulate", "-"], '[{"timestamp_ms": 5, "start": {"prompt": "A cat"}}]', 2, "entry 0: the start entry"),
        (["simulate", "-"], "{not json", 2, "not valid JSON"),
        (["simulate", "/no/such/script.json"], "", 2, "cannot read the script"),
        (["recordings", "download", "no-such-stream"], "", 1, "Recording not found"),
    ],
)
def test_usage_and_service_errors(
    server: LocalOdyssey,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    stdin: str,
    code: int,
    message: str,
) -> None:
    monkeypatch.setenv("ODYSSEY_API_KEY", server.api_key)
    monkeypatch.setenv("ODYSSEY_API_URL", server.url)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert cli.main([*args, "-q"]) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("odyssey ")
    assert re.search(message, err), err


def test_argparse_rejects_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["stream", "A cat", "--seconds", "-1"], ["recordings", "list", "--limit", "0"], ["nope"]):
        with pytest.raises(SystemExit) as stopped:
            cli.main(args)
        assert stopped.value.code == 2
    assert "must be a number of seconds > 0" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["stream"], ["recordings"], ["recordings", "list"], ["recordings", "download"], ["simulate"]])
def test_help_explains_each_command_with_an_example(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main([*command, "--help"])
    assert stopped.value.code == 0
    assert "Example" in capsys.readouterr().out


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "odyssey"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"odyssey {__version__}"
    local_help = subprocess.run([str(script), "local", "--help"], capture_output=True, text=True, timeout=60)
    assert local_help.returncode == 0 and "--max-stream-seconds" in local_help.stdout
    as_module = subprocess.run([sys.executable, "-m", "odyssey_sync", "--version"], capture_output=True, text=True, timeout=60)
    assert as_module.returncode == 0 and as_module.stdout == done.stdout


def test_read_interacts_sorts_and_accepts_both_json_forms() -> None:
    text = json.dumps([{"at": 2.5, "prompt": " B "}, {"timestamp_ms": 1000, "interact": {"prompt": "A"}}])
    assert cli.read_interacts(text) == [cli.TimedPrompt(1.0, "A"), cli.TimedPrompt(2.5, "B")]
    assert cli.read_interacts("3 C\n1 A b c\n") == [cli.TimedPrompt(1.0, "A b c"), cli.TimedPrompt(3.0, "C")]
    with pytest.raises(cli.UsageError, match="entry 0: the time must be"):
        cli.read_interacts('[{"at": -1, "prompt": "A"}]')
