"""The video track a session sends: a :class:`World` rendered at a fixed frame rate.

Frames are numbered from 0 for the whole connection (the number is also in
each frame's stamp) and timestamped ``frame_number * 90000 / fps`` in a
1/90000 time base. Pacing follows ``time.monotonic()``: the track sleeps
until the next slot and, when it is late, sends at once without trying to
catch up (no bursts).

Rendering a frame of a prepared scene takes well under a millisecond
(measured about 0.1 ms at 1280x704), so it happens on the loop thread;
preparing a new scene takes 0.2-0.4 s, so the streamer does that on a
second world in an executor and then points the track at it (:meth:`show`).

Each frame is encoded once, to H.264, in an executor (:mod:`.encoder`). The
packets go to every sink (recorder, broadcast relay) and, once the peer has
negotiated H.264 (:attr:`passthrough`), to the WebRTC sender as they are; a
peer that negotiated another codec gets the raw frames, encoded by aiortc.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from typing import Any, Callable

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from .aiortc_internals import take_keyframe_request
from .encoder import TIME_BASE, H264Encoder
from .world import World

__all__ = ["PacketSink", "VIDEO_CLOCK_RATE", "WorldVideoTrack", "idle_world"]

VIDEO_CLOCK_RATE = 90000
PacketSink = Callable[["av.Packet[Any]", int, av.VideoFrame], None]
"""Called on the loop thread with each encoded packet, its frame number and the frame it encodes."""


@functools.cache
def idle_world(fps: float) -> World:
    """The landscape idle scene shown before and between streams, shared process-wide.

    Only its prompt-less scene is ever rendered, so every session (of every
    server in the process) can share it; it is never resized or re-prompted.
    """
    return World(1280, 704, fps=fps)


class WorldVideoTrack(MediaStreamTrack):
    """A live video track rendering whichever world it is told to :meth:`show`."""

    kind = "video"

    def __init__(
        self,
        world: World,
        *,
        fps: float,
        encoder: H264Encoder,
        executor: concurrent.futures.Executor | None = None,
        stalled: bool = False,
        on_frame: Callable[[int], None] | None = None,
    ) -> None:
        """Render ``world`` at ``fps``; ``on_frame(frame_number)`` is called for each frame produced."""
        super().__init__()
        self._world = world
        self._encoder = encoder
        self._executor = executor
        self._sinks: list[PacketSink] = []
        self._keyframe_wanted = False
        self.passthrough = False
        """Send the H.264 packets themselves (set once the peer negotiated H.264)."""
        self.sender: Any = None
        """The aiortc sender, whose key-frame requests (PLI/FIR) are honoured in passthrough."""
        self._interval = 1.0 / fps
        self._ticks_per_frame = VIDEO_CLOCK_RATE / fps
        self._next_frame = 0
        self._next_slot: float | None = None
        self._running = asyncio.Event()
        if not stalled:
            self._running.set()
        self._on_frame = on_frame
        self._sent = -1
        self._sending: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def next_frame_number(self) -> int:
        """The number the next rendered frame will carry."""
        return self._next_frame

    @property
    def world(self) -> World:
        """The world currently rendered."""
        return self._world

    async def until_sent(self, frame_number: int, timeout: float) -> bool:
        """Wait until frame ``frame_number`` goes to the sender (or the track stops); False after ``timeout``.

        The streamer answers a start or an interact at that moment, so the client
        hears of the new stream or prompt just before its first frame, not while
        frames of the old picture are still on their way.
        """
        if frame_number <= self._sent or self.readyState != "live":
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sending.append((frame_number, waiter))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            if (frame_number, waiter) in self._sending:
                self._sending.remove((frame_number, waiter))

    def _mark_sent(self, frame_number: int) -> None:
        self._sent = frame_number
        for number, waiter in list(self._sending):
            if number <= frame_number and not waiter.done():
                waiter.set_result(None)

    def show(self, world: World) -> int:
        """Render ``world`` from the next frame on; returns that frame's number."""
        self._world = world
        return self._next_frame

    def add_sink(self, sink: PacketSink) -> Callable[[], None]:
        """Also hand every encoded packet to ``sink``; returns a function that removes it.

        The next frame is a key frame, so a new sink can start decoding at once.
        """
        self._sinks.append(sink)
        self._keyframe_wanted = True
        return lambda: self._sinks.remove(sink) if sink in self._sinks else None

    def request_keyframe(self) -> None:
        """Make the next frame a key frame."""
        self._keyframe_wanted = True

    def _take_keyframe_request(self) -> bool:
        wanted, self._keyframe_wanted = self._keyframe_wanted, False
        return take_keyframe_request(self.sender) or wanted

    def set_stalled(self, stalled: bool) -> None:
        """Stop producing frames (``True``) or resume (``False``, without a catch-up burst)."""
        if stalled:
            self._running.clear()
        else:
            self._running.set()

    def stop(self) -> None:
        """End the track and wake a pending :meth:`recv` and :meth:`until_sent`."""
        super().stop()
        self._running.set()
        self._mark_sent(self._next_frame)

    async def recv(self) -> av.Packet[Any] | av.VideoFrame:
        """The next frame's packet (or frame, without passthrough), at its slot.

        Raises :class:`MediaStreamError` once stopped.
        """
        while True:
            frame = await self._next_frame_at_slot()
            number = self._next_frame - 1
            keyframe = self._take_keyframe_request()
            loop = asyncio.get_running_loop()
            packets = await loop.run_in_executor(self._executor, functools.partial(self._encoder.encode, frame, keyframe=keyframe))
            if self.readyState != "live":
                raise MediaStreamError
            if not packets:
                continue
            packet = packets[0] if len(packets) == 1 else _joined(packets)
            for sink in list(self._sinks):
                sink(packet, number, frame)
            if self._on_frame is not None:
                self._on_frame(number)
            self._mark_sent(number)
            return packet if self.passthrough else frame

    async def _next_frame_at_slot(self) -> av.VideoFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if not self._running.is_set():
                await self._running.wait()
                self._next_slot = None
                continue
            now = time.monotonic()
            if self._next_slot is None:
                self._next_slot = now
            delay = self._next_slot - now
            if delay <= 0:
                break
            await asyncio.sleep(delay)

        number = self._next_frame
        self._next_frame += 1
        frame = self._world.render(number)
        frame.pts = round(number * self._ticks_per_frame)
        frame.time_base = TIME_BASE
        self._next_slot = max(self._next_slot + self._interval, time.monotonic())
        return frame


def _joined(packets: list[av.Packet[Any]]) -> av.Packet[Any]:
    """One Annex-B packet carrying several (the encoder split a frame)."""
    packet = av.Packet(b"".join(bytes(p) for p in packets))
    packet.pts, packet.dts, packet.time_base = packets[0].pts, packets[0].dts, TIME_BASE
    packet.is_keyframe = any(p.is_keyframe for p in packets)
    return packet
