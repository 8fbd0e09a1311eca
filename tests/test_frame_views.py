"""Frames belong to streams: the buffer's views, forward-only reads, honest counters, frame numbering.

Unit level (no WebRTC): the buffer is fed the way the session feeds it.
"""

from __future__ import annotations

import random
from fractions import Fraction

import av
import numpy as np
import pytest

from odyssey_sync import CURRENT_STREAM, OdysseyConnectionError, OdysseyStreamError, OdysseyTimeoutError, VideoFrame
from odyssey_sync.frames import FrameBuffer, FrameNumbering

_PIXELS = np.zeros((2, 2, 3), np.uint8)


class Feed:
    """Puts frames into a buffer as the session does: numbered, tagged with the running stream."""

    def __init__(self, buffer: FrameBuffer) -> None:
        self.buffer = buffer
        self.stream: str | None = None
        self.count = 0

    def frames(self, n: int) -> list[VideoFrame]:
        made = []
        for _ in range(n):
            frame = VideoFrame(
                _PIXELS, connection_index=self.count, received_at=float(self.count), stream_id=self.stream
            )
            self.count += 1
            self.buffer.put(frame)
            made.append(frame)
        return made

    def start(self, stream_id: str) -> None:
        self.stream = stream_id
        self.buffer.set_stream(stream_id)

    def end(self) -> None:
        self.stream = None
        self.buffer.set_stream(None)


def accounted(buffer: FrameBuffer) -> int:
    """Every frame received is in exactly one counter."""
    return buffer.delivered + buffer.superseded + buffer.dropped + buffer.unrequested + buffer.buffered


def test_after_a_start_pulls_return_only_that_streams_frames() -> None:
    buffer = FrameBuffer(32)
    feed = Feed(buffer)
    idle = feed.frames(5)
    feed.start("s1")
    ours = feed.frames(3)
    assert [buffer.get(0) for _ in range(3)] == ours
    assert all(f.stream_id == "s1" for f in ours)
    # Idle frames stay available to whoever asks for them.
    assert buffer.get(0, view=None) is idle[0]
    assert buffer.latest(view=None) is idle[-1]
    assert buffer.superseded == 3  # idle[1:4] were skipped by latest()
    assert accounted(buffer) == buffer.received == 8


def test_wait_for_frame_moves_the_read_position_forward() -> None:
    buffer = FrameBuffer(32)
    feed = Feed(buffer)
    feed.start("s1")
    made = feed.frames(10)
    assert buffer.wait_after(5.5, 0) is made[6]
    assert buffer.get(0) is made[7], "never an older frame than one already handed out"
    assert buffer.superseded == 6 and buffer.delivered == 2
    assert accounted(buffer) == 10


def test_latest_frame_supersedes_older_frames_and_repeats_the_newest() -> None:
    buffer = FrameBuffer(32)
    feed = Feed(buffer)
    assert buffer.latest() is None
    feed.start("s1")
    assert buffer.latest() is None, "a new stream has no frame yet"
    made = feed.frames(10)
    assert buffer.latest() is made[9]
    assert buffer.latest() is made[9], "the same newest frame again until a newer one arrives"
    assert (buffer.delivered, buffer.superseded) == (1, 9)
    newer = feed.frames(1)[0]
    assert buffer.latest() is newer
    with pytest.raises(OdysseyTimeoutError):
        buffer.get(0.01)  # nothing unread after the newest was handed out
    assert accounted(buffer) == 11


def test_overflow_lets_unrequested_idle_frames_go_before_the_pulled_streams() -> None:
    buffer = FrameBuffer(4)
    feed = Feed(buffer)
    feed.frames(3)  # idle video nobody reads
    feed.start("s1")
    made = feed.frames(6)
    assert buffer.unrequested == 3, "idle frames make room first"
    assert buffer.dropped == 2, "then the oldest unread frames of the stream"
    assert [buffer.get(0) for _ in range(4)] == made[2:]
    assert accounted(buffer) == buffer.received == 9


def test_an_ended_stream_is_drained_then_says_so() -> None:
    buffer = FrameBuffer(32)
    feed = Feed(buffer)
    feed.start("s1")
    made = feed.frames(3)
    feed.end()
    feed.frames(5)  # idle video after the stream does not leak into its view
    assert list(buffer.iterate(timeout=0)) == made, "frames() ends cleanly with the stream"
    with pytest.raises(OdysseyStreamError, match="has ended and every frame of it was handed out") as caught:
        buffer.get(0)
    assert caught.value.reason == "stream_ended"
    assert buffer.latest() is made[-1]


def test_frames_follows_the_first_stream_that_starts() -> None:
    buffer = FrameBuffer(32)
    feed = Feed(buffer)
    idle = feed.frames(2)
    iterator = buffer.iterate(timeout=0)
    assert [next(iterator), next(iterator)] == idle
    feed.start("s1")
    ours = feed.frames(3)
    feed.end()
    feed.frames(2)
    assert list(iterator) == ours


def test_an_explicit_idle_view_ends_when_a_stream_starts() -> None:
    buffer = FrameBuffer(32)
    feed = Feed(buffer)
    idle = feed.frames(2)
    feed.start("s1")
    feed.frames(2)
    assert list(buffer.iterate(timeout=0, view=None)) == idle


def test_a_named_view_reads_an_earlier_stream_still_buffered() -> None:
    buffer = FrameBuffer(32)
    feed = Feed(buffer)
    feed.start("s1")
    first = feed.frames(2)
    feed.end()
    feed.start("s2")
    second = feed.frames(2)
    assert buffer.get(0) is second[0]
    assert list(buffer.iterate(timeout=0, view="s1")) == first
    assert buffer.get(0, view=CURRENT_STREAM) is second[1]


def test_a_failed_connection_hands_over_what_arrived_then_raises() -> None:
    buffer = FrameBuffer(32)
    feed = Feed(buffer)
    feed.start("s1")
    made = feed.frames(2)
    buffer.close(OdysseyConnectionError("gone"))
    assert [buffer.get(0), buffer.get(0)] == made
    with pytest.raises(OdysseyConnectionError, match="gone"):
        buffer.get(0)
    with pytest.raises(OdysseyConnectionError, match="gone"):
        buffer.latest()
    with pytest.raises(OdysseyConnectionError, match="gone"):
        list(buffer.iterate(timeout=0))


def test_the_duration_limit_ends_frames_cleanly_and_later_pulls_name_the_cause() -> None:
    buffer = FrameBuffer(32)
    feed = Feed(buffer)
    feed.start("s1")
    made = feed.frames(3)
    iterator = buffer.iterate(timeout=0)
    assert next(iterator) is made[0]
    buffer.close(OdysseyConnectionError("The connection ended: duration limit"), end_stream=True)
    assert list(iterator) == made[1:], "the iteration ends cleanly after the last frame"
    with pytest.raises(OdysseyConnectionError, match="duration limit"):
        buffer.get(0)


def test_discarding_lets_every_frame_go() -> None:
    buffer = FrameBuffer(32)
    feed = Feed(buffer)
    feed.frames(4)
    buffer.close(discard=True)
    assert buffer.buffered == 0 and buffer.unrequested == 4
    with pytest.raises(OdysseyConnectionError, match="disconnected"):
        buffer.get(0)
    assert buffer.latest() is None


@pytest.mark.parametrize("seed", range(20))
def test_random_use_keeps_reads_forward_and_the_books_balanced(seed: int) -> None:
    rng = random.Random(seed)
    buffer = FrameBuffer(rng.randint(1, 8))
    feed = Feed(buffer)
    last_seen: dict[str | None, int] = {}
    streams = 0
    for _ in range(300):
        action = rng.random()
        view = rng.choice([CURRENT_STREAM, CURRENT_STREAM, None, feed.stream])
        try:
            if action < 0.4:
                feed.frames(rng.randint(1, 3))
                continue
            if action < 0.48:
                if feed.stream is None:
                    streams += 1
                    feed.start(f"s{streams}")
                else:
                    feed.end()
                continue
            if action < 0.65:
                frame = buffer.get(0, view=view)
            elif action < 0.8:
                frame = buffer.latest(view=view)
            elif action < 0.9:
                frame = buffer.wait_after(rng.uniform(0, feed.count), 0, view=view)
            else:
                frame = next(buffer.iterate(timeout=0, view=view), None)
        except (OdysseyTimeoutError, OdysseyStreamError):
            continue
        if frame is not None:
            before = last_seen.get(frame.stream_id, -1)
            assert frame.connection_index >= before, "a view never goes back"
            last_seen[frame.stream_id] = frame.connection_index
        assert accounted(buffer) == buffer.received
        assert buffer.buffered <= buffer.capacity


def _decoded(pts: int, time_base: Fraction = Fraction(1, 90000)) -> av.VideoFrame:
    frame = av.VideoFrame(16, 16, "yuv420p")
    frame.pts = pts
    frame.time_base = time_base
    return frame


def test_numbering_restarts_per_stream_and_idle_frames_carry_no_prompt() -> None:
    numbering = FrameNumbering()
    idle = [numbering.frame(_decoded(1000 + i * 4500), stream_id=None, prompt="stale") for i in range(3)]
    ours = [numbering.frame(_decoded(20000 + i * 4500), stream_id="s1", prompt="A cat") for i in range(3)]
    assert [f.index for f in idle] == [0, 1, 2] and all(f.prompt is None for f in idle)
    assert [f.index for f in ours] == [0, 1, 2] and all(f.prompt == "A cat" for f in ours)
    assert [f.connection_index for f in idle + ours] == list(range(6))
    assert [f.timestamp_ms for f in ours] == [0, 50, 100], "media time since the stream's first frame"
    assert ours[1].media_timestamp_ms == int((20000 + 4500) / 90)


def test_numbering_survives_the_rtp_clock_wrapping() -> None:
    numbering = FrameNumbering()
    near_wrap = (1 << 32) - 4500
    frames = [numbering.frame(_decoded(pts), stream_id="s1", prompt="p") for pts in (near_wrap, 0, 4500)]
    assert [f.timestamp_ms for f in frames] == [0, 50, 100]


def test_peeking_hands_nothing_out() -> None:
    buffer = FrameBuffer(32)
    feed = Feed(buffer)
    assert buffer.latest(peek=True) is None
    feed.start("s1")
    made = feed.frames(5)
    assert buffer.latest(peek=True) is made[-1]
    assert (buffer.delivered, buffer.superseded) == (0, 0)
    assert [buffer.get(0) for _ in range(5)] == made, "a reader still gets every frame"
    assert buffer.latest(peek=True) is made[-1], "the newest frame, already handed out, is still there to look at"
    buffer.close(OdysseyConnectionError("gone"))
    with pytest.raises(OdysseyConnectionError):
        buffer.latest(peek=True)
