"""Receiving video from an aiortc peer, shared by the client and the spectator.

:class:`VideoIn` drains the track into the frame buffer, watches for
silence and keeps the transport counters that :class:`~odyssey_sync.Stats`
reports. It runs on the connection's event-loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import aiohttp
import av
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from ._deadline import Deadline
from .frames import FrameBuffer, FrameNumbering, VideoFrame
from .types import Stats

__all__ = ["VIDEO_STALL_TIMEOUT_S", "VideoIn", "close_peer", "media_stats", "transport_counters", "watch_video"]

logger = logging.getLogger(__name__)

VIDEO_STALL_TIMEOUT_S = 5.0
"""A connection with no decoded frame for this long is dead: the server sends video continuously
(~20 fps, before and between streams too), and ICE alone would notice only after ~30 s."""

# A sleep that overran by this much means the process or loop was frozen (a debugger, a suspended
# laptop), not the peer: the watchdog starts counting again.
_FROZEN_S = 1.0
# How often the transport counters behind Stats are read (off the caller's thread).
_COUNTERS_EVERY_S = 1.0


class VideoIn:
    """One connection's incoming video: frames into ``buffer``, a silence watchdog, transport counters.

    ``tag()`` says which stream (and prompt) a frame decoded now belongs to;
    ``on_frame(frame)`` hears of each frame once it is buffered.
    """

    def __init__(
        self,
        buffer: FrameBuffer,
        tag: Callable[[], tuple[str | None, str | None]],
        on_frame: Callable[[VideoFrame], None],
    ) -> None:
        self.buffer = buffer
        self._tag = tag
        self._on_frame = on_frame
        self._numbering = FrameNumbering()
        self.last_frame_at: float | None = None
        self.connected_at: float | None = None
        self.counters = (0, 0)

    async def pump(self, track: MediaStreamTrack) -> None:
        """Drain ``track`` continuously (aiortc queues decoded frames without bound); returns when it ends."""
        while True:
            try:
                decoded = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(decoded, av.VideoFrame):
                continue  # a video track yields frames; anything else is not ours to count
            stream_id, prompt = self._tag()
            frame = self._numbering.frame(decoded, stream_id=stream_id, prompt=prompt)
            self.last_frame_at = frame.received_at
            self.buffer.put(frame)
            self._on_frame(frame)

    async def watch(self, pc: RTCPeerConnection | None, over: Callable[[], bool], on_silence: Callable[[float], None]) -> None:
        """From the moment the connection is up: the watchdog, and the counters refreshed every second."""
        self.connected_at = time.monotonic()
        counting = asyncio.ensure_future(self._count(pc, over))
        try:
            await watch_video(lambda: self.last_frame_at, over, on_silence)
        finally:
            counting.cancel()
            await asyncio.gather(counting, return_exceptions=True)

    async def _count(self, pc: RTCPeerConnection | None, over: Callable[[], bool]) -> None:
        while not over():
            try:
                self.counters = await transport_counters(pc)
            except Exception as exc:  # stats are best effort; a closing peer may refuse them
                logger.debug("transport counters: %r", exc)
            await asyncio.sleep(_COUNTERS_EVERY_S)

    def stats(self, handler_frames_dropped: int) -> Stats:
        """The connection's :class:`Stats` now (no I/O: the counters are at most a second old)."""
        return media_stats(self.buffer, handler_frames_dropped, self.connected_at, self.counters)


async def watch_video(
    last_frame_at: Callable[[], float | None],
    over: Callable[[], bool],
    on_silence: Callable[[float], None],
) -> None:
    """Call ``on_silence(limit)`` once no frame has arrived for :data:`VIDEO_STALL_TIMEOUT_S`.

    ``last_frame_at()`` is the ``time.monotonic()`` of the latest frame (``None``
    before the first); the watch ends when ``over()`` is true.
    """
    loop = asyncio.get_running_loop()
    since = time.monotonic()
    while not over():
        limit = VIDEO_STALL_TIMEOUT_S
        silent = time.monotonic() - max(since, last_frame_at() or since)
        if silent >= limit:
            on_silence(limit)
            return
        wait = max(0.05, limit - silent)
        asked_at = loop.time()
        await asyncio.sleep(wait)
        if loop.time() - asked_at - wait > _FROZEN_S:
            since = time.monotonic()


async def transport_counters(pc: RTCPeerConnection | None) -> tuple[int, int]:
    """Bytes received by the transport (aiortc's inbound-rtp stats carry no bytes) and RTP packets lost."""
    if pc is None:
        return 0, 0
    report = await pc.getStats()
    received = sum(int(getattr(s, "bytesReceived", 0) or 0) for s in report.values() if s.type == "transport")
    lost = sum(int(getattr(s, "packetsLost", 0) or 0) for s in report.values() if s.type == "inbound-rtp")
    return received, lost


def media_stats(
    buffer: FrameBuffer, handler_frames_dropped: int, connected_at: float | None, counters: tuple[int, int]
) -> Stats:
    """A connection's :class:`Stats` from its frame buffer and :func:`transport_counters` (bitrate since ``connected_at``)."""
    bytes_received, packets_lost = counters
    elapsed = time.monotonic() - connected_at if connected_at else 0.0
    return Stats(
        frames_received=buffer.received,
        frames_delivered=buffer.delivered,
        frames_dropped=buffer.dropped,
        frames_superseded=buffer.superseded,
        frames_unrequested=buffer.unrequested,
        frames_buffered=buffer.buffered,
        fps=buffer.measured_fps(),
        bitrate_bps=bytes_received * 8 / elapsed if elapsed > 0 else 0.0,
        bytes_received=bytes_received,
        packets_lost=packets_lost,
        handler_frames_dropped=handler_frames_dropped,
    )


async def close_peer(pc: RTCPeerConnection | None, http: aiohttp.ClientSession | None, deadline: Deadline) -> None:
    """Close the peer connection (by ``deadline``) and then the HTTP session."""
    if pc is not None:
        try:
            await asyncio.wait_for(pc.close(), max(deadline.left(), 0.0))
        except (asyncio.TimeoutError, Exception) as exc:
            logger.debug("peer close: %r", exc)
    if http is not None:
        await http.close()
