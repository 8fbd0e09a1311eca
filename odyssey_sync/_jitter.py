"""Release a video frame as soon as its last RTP packet arrives.

aiortc's video jitter buffer hands a frame to the decoder only when the first
packet of the *next* frame arrives (it detects a frame's end by a timestamp
change), which adds one frame interval (50 ms at 20 fps) to every frame's
latency. Senders set the RTP marker bit on a frame's last packet (RFC 6184 for
H.264, RFC 7741 for VP8), so a frame whose packets are all present up to a
marked one is complete and can go at once.

This replaces aiortc's buffer for *video* receivers only, and only for the
aiortc versions whose buffer it was written against (1.15 and 1.16, checked
by the regression tests in ``tests/test_jitter.py``). Set the environment
variable ``ODYSSEY_SYNC_MARKER_RELEASE=0`` to keep aiortc's behaviour.
"""

from __future__ import annotations

import logging
import os

import aiortc
import aiortc.rtcrtpreceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame

__all__ = ["MarkerJitterBuffer", "install"]

logger = logging.getLogger("odyssey_sync.jitter")

SUPPORTED_AIORTC = ("1.15.", "1.16.")


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, except that a video frame leaves when its marker packet completes it."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if not self._is_video or self._prefetch:
            return super()._remove_frame(sequence_number)
        assert self._origin is not None
        packets = []
        timestamp = None
        for count in range(self._capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                # The previous frame ended without a marker: release it the way aiortc does.
                frame = JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)  # type: ignore[attr-defined]  # RtpPacket._data: the payload aiortc keeps privately
                self.remove(count)
                return frame
            packets.append(packet)
            if packet.marker:
                frame = JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)  # type: ignore[attr-defined]  # RtpPacket._data: the payload aiortc keeps privately
                self.remove(count + 1)
                return frame
        return None


def install() -> bool:
    """Make new aiortc receivers use :class:`MarkerJitterBuffer`; True if it is in use.

    Idempotent. Does nothing for an untested aiortc version or when
    ``ODYSSEY_SYNC_MARKER_RELEASE=0``.
    """
    if os.environ.get("ODYSSEY_SYNC_MARKER_RELEASE", "1") == "0":
        return False
    if not aiortc.__version__.startswith(SUPPORTED_AIORTC):
        logger.debug("aiortc %s untested: keeping its jitter buffer", aiortc.__version__)
        return False
    module = aiortc.rtcrtpreceiver
    current = getattr(module, "JitterBuffer")  # noqa: B009  # the receiver module's own import of the class
    if current is not MarkerJitterBuffer:
        if current is not JitterBuffer:
            return False  # someone else replaced it: leave theirs alone
        setattr(module, "JitterBuffer", MarkerJitterBuffer)  # noqa: B010  # what new receivers construct
    return True
