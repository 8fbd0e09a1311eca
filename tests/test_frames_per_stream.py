"""Frames belong to streams, end to end over real WebRTC: views, metadata, honest stats, steering
that does not block, and the stream duration limit."""

from __future__ import annotations

import inspect
import threading
from concurrent.futures import Future
from typing import Callable, Iterator

import pytest

import odyssey_sync
from odyssey_sync import (
    Acknowledgement,
    MediaStream,
    Odyssey,
    OdysseyConnectionError,
    OdysseyStateError,
    OdysseyStreamError,
    OdysseyTimeoutError,
    SpectatorConnection,
    StreamDurationExceededError,
    VideoFrame,
)
from odyssey_sync.local import LocalOdyssey
from odyssey_sync.stamp import read_stamp


class FrameCounter:
    """An ``on_video_frame`` handler that lets a test wait for more frames to arrive (without reading them)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.count = 0

    def __call__(self, frame: VideoFrame) -> None:
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait_for_more(self, n: int, timeout: float = 10) -> None:
        with self._cond:
            target = self.count + n
            assert self._cond.wait_for(lambda: self.count >= target, timeout), f"{n} more frames did not arrive"


def stats_balance(client: Odyssey) -> None:
    stats = client.stats
    total = (
        stats.frames_delivered
        + stats.frames_superseded
        + stats.frames_dropped
        + stats.frames_unrequested
        + stats.frames_buffered
    )
    assert total == stats.frames_received, stats


def test_pulls_after_a_start_begin_with_the_streams_first_frame(client: Odyssey) -> None:
    counter = FrameCounter()
    client.connect(on_video_frame=counter)
    counter.wait_for_more(10)  # idle video fills the buffer before the stream
    stream_id = client.start_stream("A lighthouse at dusk", portrait=False)
    first = client.get_frame(timeout=10)
    assert (first.stream_id, first.index, first.timestamp_ms) == (stream_id, 0, 0)
    assert first.prompt == client.last_applied_prompt and "lighthouse" in (first.prompt or "")
    assert first.received_at > stream_id.received_at
    frames = [first] + [client.get_frame(timeout=10) for _ in range(9)]
    assert [f.index for f in frames] == list(range(10)), "no gaps: nothing was dropped"
    times = [f.timestamp_ms for f in frames]
    assert times == sorted(times) and 300 <= times[-1] <= 700, f"about 50 ms apart at 20 fps: {times}"
    connection = [f.connection_index for f in frames]
    assert connection == list(range(connection[0], connection[0] + 10)) and connection[0] >= 10
    stamps = [read_stamp(f.data) for f in frames]
    assert all(s is not None for s in stamps)
    # Idle frames from before the start are still there for whoever asks, and carry no prompt.
    idle = client.get_frame(timeout=10, stream_id=None)
    assert idle.stream_id is None and idle.prompt is None and idle.connection_index < connection[0]
    stats_balance(client)


def test_no_pull_returns_a_frame_older_than_one_handed_out(client: Odyssey) -> None:
    client.connect()
    client.start_stream("A harbour", portrait=False)
    client.wait_for_frame(timeout=10)
    ack = client.interact("Boats sail out")
    after = client.wait_for_frame(after=ack, timeout=10)
    assert after.received_at > ack.received_at and after.prompt == ack
    following = [client.get_frame(timeout=10) for _ in range(5)]
    indexes = [after.index] + [f.index for f in following]
    assert indexes == sorted(set(indexes)), f"reads only move forward: {indexes}"
    latest = client.latest_frame()
    assert latest is not None and latest.index >= following[-1].index
    nxt = client.get_frame(timeout=10)
    assert nxt.index > latest.index


def test_stats_tell_a_latest_frame_loop_the_truth(client: Odyssey) -> None:
    counter = FrameCounter()
    client.connect(on_video_frame=counter)
    client.start_stream("A forest path", portrait=False)
    client.wait_for_frame(timeout=10)
    seen: list[VideoFrame] = []
    for _ in range(8):
        counter.wait_for_more(3)
        frame = client.latest_frame()
        assert frame is not None
        seen.append(frame)
    stats = client.stats
    assert stats.frames_delivered == 1 + len({f.connection_index for f in seen})
    assert stats.frames_superseded >= 8, "a loop that reads every third frame supersedes the others"
    assert stats.frames_dropped == 0, "nothing was pushed out of the buffer"
    stats_balance(client)


def test_steering_without_waiting_returns_futures_that_resolve_in_order(client: Odyssey) -> None:
    client.connect()
    started = client.start_stream("A windmill", portrait=False, wait=False)
    prompts = ["The sails turn", "Rain begins", "A rainbow appears"]
    # Submitted before the start is acknowledged: each interact waits for the stream, none blocks the caller.
    futures = [client.interact(p, wait=False) for p in prompts]
    assert isinstance(started, Future) and all(isinstance(f, Future) for f in futures)
    stream_id = started.result(timeout=10)
    assert isinstance(stream_id, Acknowledgement) and stream_id == client.current_stream_id
    acks = [f.result(timeout=10) for f in futures]
    assert all(p in ack for p, ack in zip(prompts, acks)), acks
    assert [a.received_at for a in acks] == sorted(a.received_at for a in acks)
    assert client.last_applied_prompt == acks[-1]
    frame = client.wait_for_frame(after=acks[-1], timeout=10)
    assert frame.prompt == acks[-1]
    ended = client.end_stream(wait=False)
    assert ended.result(timeout=10) is None and client.current_stream_id is None


def test_an_unanswered_interact_future_times_out_and_the_client_stays_usable(client: Odyssey, server: LocalOdyssey) -> None:
    client.connect()
    client.start_stream("A glacier", portrait=False)
    server.faults.ignore_message_types.add("update")
    lost = client.interact("Never acknowledged", wait=False, timeout=0.5)
    with pytest.raises(OdysseyTimeoutError, match=r"interact\(\) timed out after 0.5 s"):
        lost.result(timeout=10)
    server.faults.ignore_message_types.clear()
    assert "The ice cracks" in client.interact("The ice cracks", timeout=10)


def test_cancelling_a_future_abandons_its_request(client: Odyssey, server: LocalOdyssey) -> None:
    client.connect()
    client.start_stream("A desert", portrait=False)
    server.faults.ignore_message_types.add("update")
    waiting = client.interact("Sand blows", wait=False)
    assert waiting.cancel() and waiting.cancelled()
    conn = client._conn  # white-box: once the loop has seen the cancel, nothing waits for a reply
    assert conn is not None and conn.session is not None
    stream = conn.session.stream

    async def pending() -> int:
        return stream.pending

    assert conn.loop.run(pending(), 5) == 0
    server.faults.ignore_message_types.clear()
    assert "Dunes shift" in client.interact("Dunes shift", timeout=10)


def test_wrong_state_errors_come_through_the_future(client: Odyssey) -> None:
    client.connect()
    future = client.interact("No stream yet", wait=False)
    with pytest.raises(OdysseyStreamError, match=r"call start_stream\(\) before interact\(\)"):
        future.result(timeout=10)
    with pytest.raises(TypeError, match="wait must be True or False"):
        client.interact("x", wait="no")  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def short_server() -> Iterator[LocalOdyssey]:
    """A server whose streams end after 1 s with ``session_timeout``."""
    with LocalOdyssey(max_stream_seconds=1.0) as local:
        yield local


def test_the_duration_limit_ends_frames_cleanly_and_later_calls_name_the_cause(short_server: LocalOdyssey) -> None:
    with Odyssey(api_key=short_server.api_key, api_url=short_server.url, timeout=20) as client:
        client.connect()
        stream_id = client.start_stream("A short film", portrait=False)
        frames = list(client.frames(timeout=10))
        assert frames and all(f.stream_id == stream_id for f in frames)
        assert [f.index for f in frames] == list(range(len(frames))), "every frame up to the limit is handed over"
        with pytest.raises(OdysseyStreamError, match="credit lease expired") as later:
            client.interact("Too late")
        assert isinstance(later.value.__cause__, StreamDurationExceededError)
        assert "call connect() again" in str(later.value)
        with pytest.raises(OdysseyConnectionError, match="credit lease expired") as pulled:
            client.get_frame(timeout=5)
        assert isinstance(pulled.value.__cause__, StreamDurationExceededError)


def test_timeout_defaults_read_well_in_help() -> None:
    """No public signature shows ``Ellipsis``; the defaults name what they stand for."""
    seen = 0
    for owner in (Odyssey, MediaStream, SpectatorConnection):
        for name, member in inspect.getmembers(owner, callable):
            if name.startswith("_"):
                continue
            for parameter in inspect.signature(member).parameters.values():
                assert parameter.default is not Ellipsis, f"{owner.__name__}.{name}({parameter.name}=...)"
                if parameter.name == "timeout" and parameter.default is odyssey_sync.DEFAULT_TIMEOUT:
                    seen += 1
    assert seen >= 15
    assert repr(odyssey_sync.DEFAULT_TIMEOUT) == "<client default>"
    assert repr(odyssey_sync.CURRENT_STREAM) == "<current stream>"
    assert "timeout: 'Timeout' = <client default>" in str(inspect.signature(Odyssey.get_frame))


def test_every_wrong_state_error_is_one_type_that_says_what_to_call(client: Odyssey, server: LocalOdyssey) -> None:
    def state_error(call: Callable[[], object], reason: str, advice: str) -> None:
        with pytest.raises(OdysseyStateError, match=advice) as caught:
            call()
        assert caught.value.reason == reason
        assert isinstance(caught.value, OdysseyStreamError) and isinstance(caught.value, OdysseyConnectionError)

    state_error(lambda: client.interact("Too early"), "not_connected", r"call connect\(\) first")
    state_error(lambda: client.get_frame(timeout=1), "not_connected", r"call connect\(\) before pulling frames")
    client.connect()
    state_error(lambda: client.interact("No stream"), "no_active_stream", r"call start_stream\(\) before interact\(\)")
    state_error(lambda: client.end_stream(), "no_active_stream", r"call start_stream\(\) first")
    stream_id = client.start_stream("A quarry", portrait=False)
    state_error(lambda: client.start_stream("Another"), "stream_already_active", r"call end_stream\(\) before starting another")
    client.end_stream()
    while True:  # what the stream sent stays readable, then the pull says the stream is over
        try:
            client.get_frame(timeout=5)
        except OdysseyStateError as exc:
            assert exc.reason == "stream_ended" and stream_id in str(exc) and "start_stream()" in str(exc)
            break
    client.disconnect()
    state_error(lambda: client.end_stream(), "not_connected", r"call connect\(\) first")


def _first_frames(server: LocalOdyssey, session_id: str, stream_id: str) -> list[int]:
    """The server's first frame number of each prompt the stream showed (start, then each interact)."""
    record = server.session(session_id)
    assert record is not None
    stream = next(s for s in record.streams if s.stream_id == stream_id)
    return [p.frame_number for p in stream.prompts]


@pytest.mark.parametrize("portrait", [False, True])
def test_every_frame_tagged_with_a_stream_or_prompt_shows_it(client: Odyssey, server: LocalOdyssey, portrait: bool) -> None:
    client.connect()
    session_id = client.current_session_id
    assert session_id is not None
    for attempt in range(3):  # three starts: the race between the answer and the last old frames, thrice
        stream_id = client.start_stream(f"A canyon, take {attempt}", portrait=portrait)
        frames = [client.get_frame(timeout=10) for _ in range(6)]
        ack = client.interact(f"Rain falls, take {attempt}")
        after = client.wait_for_frame(after=ack, timeout=10)
        later = [after] + [client.get_frame(timeout=10) for _ in range(3)]
        start_frame, interact_frame = _first_frames(server, session_id, stream_id)
        for frame in frames + later:
            stamp = read_stamp(frame.data)
            assert stamp is not None and stamp.frame_number >= start_frame, (
                f"frame {stamp} tagged with stream {stream_id} is from before its first frame #{start_frame}"
            )
            assert frame.data.shape == ((1280, 704, 3) if portrait else (704, 1280, 3))
        for frame in later:
            stamp = read_stamp(frame.data)
            assert stamp is not None and stamp.frame_number >= interact_frame, (
                f"the first frame after the acknowledgement (#{stamp.frame_number}) predates the prompt (#{interact_frame})"
            )
            assert frame.prompt == ack
        client.end_stream()
