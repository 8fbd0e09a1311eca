"""End to end over real WebRTC on loopback: the blocking client against the local server."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from helpers import odyssey_threads, open_fds

from odyssey_sync import (
    ClientCredentials,
    ConnectionStatus,
    MediaStream,
    Odyssey,
    OdysseyConnectionError,
    OdysseyStreamError,
    OdysseyTimeoutError,
    VideoFrame,
)
from odyssey_sync.local import LocalOdyssey
from odyssey_sync.stamp import read_stamp


def bottom_mean(frame: VideoFrame) -> np.ndarray:
    """Mean RGB of the lower half (the stamp sits top-left)."""
    return frame.data[frame.height // 2 :].reshape(-1, 3).mean(axis=0)


def test_landscape_stream_end_to_end(client: Odyssey, server: LocalOdyssey) -> None:
    events: list[tuple[str, object]] = []
    connected = threading.Event()
    media = client.connect(
        on_connected=connected.set,
        on_stream_started=lambda sid: events.append(("started", sid)),
        on_interact_acknowledged=lambda p: events.append(("ack", p)),
        on_stream_ended=lambda: events.append(("ended", None)),
    )
    assert isinstance(media, MediaStream)
    assert client.is_connected and client.current_status is ConnectionStatus.CONNECTED
    assert client.current_session_id
    assert connected.wait(5)

    stream_id = client.start_stream("A cat on a windowsill", portrait=False)
    assert stream_id and client.current_stream_id == stream_id
    assert client.last_applied_prompt and "A cat on a windowsill" in client.last_applied_prompt
    first = client.wait_for_frame(after=stream_id, timeout=10)
    assert first.data.shape == (704, 1280, 3)
    assert first.data.dtype == np.uint8 and not first.data.flags.writeable

    indexes, stamps = [], []
    for frame in client.frames(limit=20, timeout=10):
        indexes.append(frame.index)
        stamp = read_stamp(frame.data)
        assert stamp is not None
        stamps.append(stamp.frame_number)
    assert indexes == sorted(indexes) and len(set(indexes)) == 20
    assert stamps == sorted(stamps), "frames arrive in the order they were rendered"

    before = client.wait_for_frame(timeout=10)
    ack = client.interact("The cat turns into a dragon")
    assert "The cat turns into a dragon" in ack
    assert client.last_applied_prompt == ack
    after = client.wait_for_frame(after=ack, timeout=10)
    later = [client.get_frame(timeout=10) for _ in range(8)]
    assert after.received_at > ack.received_at
    changed = later[-1]
    assert changed.prompt == ack
    assert np.abs(bottom_mean(changed) - bottom_mean(before)).max() > 20, "the picture changes after interact"

    client.end_stream()
    assert client.current_stream_id is None
    client.disconnect()
    assert client.current_status is ConnectionStatus.DISCONNECTED
    assert [e[0] for e in events] == ["started", "ack", "ended"]
    assert events[0][1] == stream_id


def test_portrait_frames_are_tall(client: Odyssey) -> None:
    client.connect()
    stream_id = client.start_stream("A lighthouse", portrait=True)
    frame = client.wait_for_frame(after=stream_id, timeout=10)
    deadline = time.monotonic() + 10
    while frame.data.shape != (1280, 704, 3) and time.monotonic() < deadline:
        frame = client.get_frame(timeout=10)
    assert frame.data.shape == (1280, 704, 3)
    assert frame.stream_id == stream_id


def test_frames_iterator_ends_with_the_stream(client: Odyssey) -> None:
    client.connect()
    client.start_stream("A forest", portrait=False)
    seen: list[VideoFrame] = []
    ender = threading.Timer(0.5, client.end_stream)
    ender.start()
    try:
        for frame in client.frames(timeout=10):
            seen.append(frame)
            assert len(seen) < 500, "frames() must end when the stream ends"
    finally:
        ender.join()
    assert seen, "frames arrived before the stream ended"


def test_image_to_video(client: Odyssey, server: LocalOdyssey) -> None:
    client.connect()
    assert client.capabilities is not None and client.capabilities.image_to_video
    image = np.zeros((300, 600, 3), np.uint8)
    image[:, :, 0] = 230  # a red picture
    stream_id = client.start_stream("A red room", portrait=False, image=image)
    frame = client.wait_for_frame(after=stream_id, timeout=10)
    for _ in range(5):
        frame = client.get_frame(timeout=10)
    r, g, b = bottom_mean(frame)
    assert r > g + 40 and r > b + 40, "the world is seeded from the image"


def test_a_prompt_too_big_for_the_data_channel_starts_and_interacts(client: Odyssey) -> None:
    # 9000 emoji are 108 KB of JSON (surrogate escapes), so the start goes over the signaling socket.
    # The applied prompt that comes back is bounded to 48 KiB of JSON: a reply over the peer's
    # data-channel limit (64 KiB declared by aiortc, 256 KiB by browsers) could not be sent at all.
    prompt = "\N{CAT FACE}" * 9000
    client.connect()
    client.start_stream(prompt, portrait=False)
    applied = client.last_applied_prompt
    assert applied is not None and prompt.startswith(applied[:4000]) and len(json.dumps(applied)) <= 48 * 1024
    assert client.interact("The cat sleeps") == client.last_applied_prompt != applied


def test_credentials_path(server: LocalOdyssey) -> None:
    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20) as backend:
        credentials = backend.create_client_credentials()
    assert isinstance(credentials, ClientCredentials)
    assert credentials.session_token[:8] in repr(credentials) and credentials.session_token not in repr(credentials)
    as_dict = credentials.to_dict()
    with Odyssey(api_key=None, api_url="https://unused.invalid", timeout=20) as browser_side:
        browser_side._api_key = None
        browser_side.connect_with_credentials(as_dict)
        assert browser_side.current_session_id == credentials.session_id
        browser_side.start_stream("A beach", portrait=False)
        assert browser_side.get_frame(timeout=10).width in (1280, 704)


def test_two_threads_interacting_get_their_own_acks(client: Odyssey) -> None:
    client.connect()
    client.start_stream("A city street", portrait=False)
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def steer(prompt: str) -> None:
        try:
            results[prompt] = client.interact(prompt)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=steer, args=(p,)) for p in ("It starts to rain", "A bus drives past")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert set(results) == {"It starts to rain", "A bus drives past"}
    for prompt, ack in results.items():
        assert prompt in ack


def test_killed_connection_wakes_blocked_calls(server: LocalOdyssey) -> None:
    with LocalOdyssey() as doomed, Odyssey(api_key=doomed.api_key, api_url=doomed.url, timeout=30) as client:
        disconnected = threading.Event()
        fatal: list[tuple[BaseException, bool]] = []
        client.connect(on_disconnected=disconnected.set, on_error=lambda e, f: fatal.append((e, f)))
        client.start_stream("A quiet lake", portrait=False)
        doomed.faults.ignore_message_types.add("update")
        outcomes: dict[str, BaseException] = {}
        started = threading.Barrier(4)

        def blocked(name: str, call) -> None:
            started.wait()
            try:
                if name == "frames":
                    for _ in call():
                        pass
                    outcomes[name] = StopIteration()
                    return
                call()
            except BaseException as exc:
                outcomes[name] = exc

        def drain_then_wait() -> None:
            while True:
                client.get_frame(timeout=30)

        workers = [
            threading.Thread(target=blocked, args=("interact", lambda: client.interact("Never acknowledged"))),
            threading.Thread(target=blocked, args=("get_frame", drain_then_wait)),
            threading.Thread(target=blocked, args=("frames", lambda: client.frames(timeout=30))),
        ]
        for worker in workers:
            worker.start()
        started.wait()
        time.sleep(0.3)  # let the calls block; the assertion below does not depend on it
        killed_at = time.monotonic()
        doomed.kill()
        for worker in workers:
            worker.join(10)
        woken_in = time.monotonic() - killed_at
        assert woken_in < 2.0, f"blocked calls woke after {woken_in:.2f} s"
        assert isinstance(outcomes["interact"], OdysseyConnectionError)
        assert isinstance(outcomes["get_frame"], OdysseyConnectionError)
        assert isinstance(outcomes["frames"], OdysseyConnectionError)
        assert disconnected.wait(5)
        assert client.current_status is ConnectionStatus.FAILED
        assert any(f for _, f in fatal)


def test_stream_calls_in_the_wrong_state(client: Odyssey) -> None:
    with pytest.raises(OdysseyStreamError, match="connect"):
        client.start_stream("too early")
    client.connect()
    with pytest.raises(OdysseyStreamError, match="start_stream"):
        client.interact("no stream yet")
    with pytest.raises(OdysseyStreamError, match="start_stream"):
        client.end_stream()
    client.start_stream("A meadow", portrait=False)
    with pytest.raises(OdysseyStreamError, match="end_stream"):
        client.start_stream("twice")
    assert client.interact("Flowers bloom")  # still usable
    client.disconnect()
    with pytest.raises(OdysseyStreamError):
        client.interact("after disconnect")
    with pytest.raises(OdysseyConnectionError):
        client.get_frame(timeout=1)


def test_reply_that_never_comes_times_out_and_client_stays_usable(client: Odyssey, server: LocalOdyssey) -> None:
    client.connect()
    client.start_stream("A harbour", portrait=False)
    server.faults.ignore_message_types.add("update")
    with pytest.raises(OdysseyTimeoutError):
        client.interact("Lost in transit", timeout=1.0)
    server.faults.ignore_message_types.clear()
    ack = client.interact("Boats sail out")
    assert "Boats sail out" in ack
    client.end_stream()


def test_unbounded_timeouts_work(server: LocalOdyssey) -> None:
    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=None) as client:
        client.connect()
        assert client.start_stream("No deadlines", portrait=False)
        assert client.interact("Still none")
        assert client.get_frame(timeout=None)
        client.end_stream()


def test_connect_is_idempotent_and_reconnect_works(client: Odyssey) -> None:
    first = client.connect()
    assert client.connect() is first
    session = client.current_session_id
    client.disconnect()
    client.disconnect()
    client.connect()
    assert client.current_session_id not in (None, session)
    assert client.get_frame(timeout=10)


@pytest.mark.slow
def test_fifty_cycles_leak_no_threads_or_fds(server: LocalOdyssey) -> None:
    def cycle() -> None:
        with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20) as client:
            client.connect()
            client.get_frame(timeout=10)

    for _ in range(3):  # warm up pools that grow once (server executor, import caches)
        cycle()
    assert server.wait_until(lambda: server.session_count() == 0, timeout=10)
    threads_before, fds_before = threading.active_count(), open_fds()
    for _ in range(50):
        cycle()
    assert server.wait_until(lambda: server.session_count() == 0, timeout=10)
    assert not odyssey_threads(), [t.name for t in odyssey_threads()]
    deadline = time.monotonic() + 5
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads_before, [t.name for t in threading.enumerate()]
    assert open_fds() <= fds_before + 2
