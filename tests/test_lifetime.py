"""Lifetime: threads, finalizer, interpreter exit, fork, stats, capability checks."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from helpers import odyssey_threads

from odyssey_sync import Odyssey, OdysseyStreamError
from odyssey_sync.local import LocalOdyssey


def test_handlers_run_on_the_dispatcher_thread(client: Odyssey) -> None:
    names: dict[str, str] = {}
    started = threading.Event()

    def on_stream_started(stream_id: str) -> None:
        names["started"] = threading.current_thread().name
        started.set()

    def on_video_frame(frame: object) -> None:
        names.setdefault("frame", threading.current_thread().name)

    client.connect(on_stream_started=on_stream_started, on_video_frame=on_video_frame)
    client.start_stream("A canyon", portrait=False)
    assert started.wait(5)
    client.get_frame(timeout=10)
    client.disconnect()
    assert names["started"].startswith("odyssey-dispatch")
    assert names["frame"].startswith("odyssey-dispatch")


def test_one_loop_and_one_dispatcher_thread_while_connected(client: Odyssey) -> None:
    client.connect()
    names = sorted(t.name for t in odyssey_threads())
    assert names == ["odyssey-dispatch", "odyssey-loop"]
    client.disconnect()
    assert not odyssey_threads()


def test_unread_frames_are_never_converted(client: Odyssey) -> None:
    client.connect()
    client.start_stream("A valley", portrait=False)
    frames = [client.get_frame(timeout=10) for _ in range(5)]
    assert not any(f.is_converted for f in frames)
    assert frames[0].data.shape == (704, 1280, 3) and frames[0].is_converted


def test_stats_count_frames(client: Odyssey) -> None:
    client.connect()
    client.start_stream("A river delta", portrait=False)
    for _ in range(25):
        client.get_frame(timeout=10)
    stats = client.stats
    assert stats.frames_received >= 25 and stats.frames_delivered == 25
    assert 5 < stats.fps < 60
    assert stats.bytes_received > 0 and stats.bitrate_bps > 0


def test_latest_frame_never_waits(client: Odyssey) -> None:
    client.connect()
    frame = client.get_frame(timeout=10)
    latest = client.latest_frame()
    assert latest is not None and latest.index >= frame.index


def test_image_refused_when_the_streamer_cannot_do_it() -> None:
    with LocalOdyssey(image_to_video=False) as server, Odyssey(api_key=server.api_key, api_url=server.url) as client:
        client.connect()
        assert client.capabilities is not None and not client.capabilities.image_to_video
        with pytest.raises(OdysseyStreamError, match="image"):
            client.start_stream("A photo", image=np.zeros((64, 64, 3), np.uint8))
        assert client.start_stream("No photo", portrait=False)


def test_collected_client_releases_its_session(server: LocalOdyssey) -> None:
    before = server.session_count()
    client = Odyssey(api_key=server.api_key, api_url=server.url, timeout=20)
    client.connect()
    assert server.session_count() == before + 1
    del client
    gc.collect()
    assert server.wait_until(lambda: server.session_count() == before, timeout=10)
    assert not odyssey_threads()


def test_interpreter_exit_with_an_open_client(server: LocalOdyssey) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from odyssey_sync import Odyssey
        client = Odyssey(api_key={server.api_key!r}, api_url={server.url!r}, timeout=20)
        client.connect()
        client.start_stream("Left open", portrait=False)
        client.get_frame(timeout=10)
        print("connected", flush=True)
        """
    )
    before = server.session_count()
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "connected"
    began = time.monotonic()
    assert child.wait(timeout=10) == 0
    assert time.monotonic() - began < 3.0, "the process exits promptly with a client left open"
    assert server.wait_until(lambda: server.session_count() == before, timeout=10)


def test_fork_guard(server: LocalOdyssey) -> None:
    # The fork happens in a separate interpreter holding only a client: a process that also
    # hosts the server has encoder threads whose FFmpeg state a forked child cannot free.
    script = textwrap.dedent(
        f"""
        import os, warnings
        from odyssey_sync import Odyssey, OdysseyError
        client = Odyssey(api_key={server.api_key!r}, api_url={server.url!r}, timeout=20)
        client.connect()
        client.get_frame(timeout=10)
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            try:
                client.interact("from the child")
                verdict = b"used"
            except OdysseyError as exc:
                verdict = b"refused" if "fork" in str(exc) else b"wrong error"
            except BaseException:
                verdict = b"crashed"
            os.write(write_end, verdict)
            os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        print(os.read(read_end, 64).decode())
        print("parent-ok" if client.is_connected and client.get_frame(timeout=10) else "parent-broken")
        client.disconnect()
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["refused", "parent-ok"], result.stderr[-2000:]


def test_a_client_made_in_a_forked_child_works_and_releases(server: LocalOdyssey) -> None:
    script = textwrap.dedent(
        f"""
        import os, threading, time, warnings
        from odyssey_sync import Odyssey
        parent = Odyssey(api_key={server.api_key!r}, api_url={server.url!r}, timeout=20)
        parent.connect()
        parent.get_frame(timeout=10)
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            try:
                with Odyssey(api_key={server.api_key!r}, api_url={server.url!r}, timeout=20) as child:
                    child.connect()
                    got = child.get_frame(timeout=10) is not None
                deadline = time.monotonic() + 5
                while any(t.name.startswith("odyssey-") for t in threading.enumerate()) and time.monotonic() < deadline:
                    time.sleep(0.02)
                left = [t.name for t in threading.enumerate() if t.name.startswith("odyssey-")]
                verdict = f"frame={{got}} left={{left}}".encode()
            except BaseException as exc:
                verdict = f"crashed {{exc!r}}".encode()
            os.write(write_end, verdict)
            os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        print(os.read(read_end, 4096).decode())
        parent.disconnect()
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90)
    assert result.stdout.strip() == "frame=True left=[]", (result.stdout, result.stderr[-2000:])


def test_telemetry_is_sent_only_when_opted_in(server: LocalOdyssey) -> None:
    sessions = {}
    for opted_in in (False, True):  # the silent client goes first: its events would have arrived first
        with Odyssey(api_key=server.api_key, api_url=server.url, enable_telemetry=opted_in) as client:
            client.connect()
            sessions[opted_in] = client.current_session_id

    def sent(session_id: str | None) -> list[str]:
        return [event for event, sid in server.telemetry_events() if sid == session_id]

    assert server.wait_until(lambda: len(sent(sessions[True])) == 2, timeout=10)
    assert sent(sessions[True]) == ["session_connected", "session_disconnected"]
    assert sent(sessions[False]) == []


def test_converted_frames_keep_no_native_threads(client: Odyssey) -> None:
    client.connect()
    client.start_stream("A field of threads", portrait=False)
    client.get_frame(timeout=10).data
    before = len(os.listdir("/proc/self/task"))
    frames = [client.get_frame(timeout=10) for _ in range(30)]
    for frame in frames:
        frame.data  # each conversion once; held frames must not each keep a scaler thread pool
    assert len(os.listdir("/proc/self/task")) - before < 5
