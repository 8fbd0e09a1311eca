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
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import time
from typing import Callable

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from .world import World

__all__ = ["VIDEO_CLOCK_RATE", "WorldVideoTrack", "idle_world"]

VIDEO_CLOCK_RATE = 90000
_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)


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
        stalled: bool = False,
        on_frame: Callable[[int], None] | None = None,
    ) -> None:
        """Render ``world`` at ``fps``; ``on_frame(frame_number)`` is called for each frame produced."""
        super().__init__()
        self._world = world
        self._interval = 1.0 / fps
        self._ticks_per_frame = VIDEO_CLOCK_RATE / fps
        self._next_frame = 0
        self._next_slot: float | None = None
        self._running = asyncio.Event()
        if not stalled:
            self._running.set()
        self._on_frame = on_frame

    @property
    def next_frame_number(self) -> int:
        """The number the next rendered frame will carry."""
        return self._next_frame

    @property
    def world(self) -> World:
        """The world currently rendered."""
        return self._world

    def show(self, world: World) -> int:
        """Render ``world`` from the next frame on; returns that frame's number."""
        self._world = world
        return self._next_frame

    def set_stalled(self, stalled: bool) -> None:
        """Stop producing frames (``True``) or resume (``False``, without a catch-up burst)."""
        if stalled:
            self._running.clear()
        else:
            self._running.set()

    def stop(self) -> None:
        """End the track and wake a pending :meth:`recv`."""
        super().stop()
        self._running.set()

    async def recv(self) -> av.VideoFrame:
        """The next frame, at its slot; raises :class:`MediaStreamError` once stopped."""
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
        frame.time_base = _TIME_BASE
        self._next_slot = max(self._next_slot + self._interval, time.monotonic())
        if self._on_frame is not None:
            self._on_frame(number)
        return frame
