"""What receiving video from an aiortc peer needs, shared by the client and the spectator.

Runs on the connection's event-loop thread.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from aiortc import RTCPeerConnection

__all__ = ["VIDEO_STALL_TIMEOUT_S", "transport_counters", "watch_video"]

VIDEO_STALL_TIMEOUT_S = 5.0
"""A connection with no decoded frame for this long is dead: the server sends video continuously
(~20 fps, before and between streams too), and ICE alone would notice only after ~30 s."""

# A sleep that overran by this much means the process or loop was frozen (a debugger, a suspended
# laptop), not the peer: the watchdog starts counting again.
_FROZEN_S = 1.0


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
