"""Encode once: one H.264 encode per rendered frame, shared by every consumer.

The packets go to the session's WebRTC sender unchanged (aiortc packetises
pre-encoded ``av.Packet`` objects), and to any other sink — the recorder, the
broadcast relay — without a second encode.

x264 runs with ``ultrafast``/``zerolatency`` and the Baseline profile (what
every WebRTC stack decodes), one packet per frame, SPS/PPS repeated before
every IDR so a decoder can start at any key frame, and a key frame at least
once a second.
"""

from __future__ import annotations

import fractions
import threading
from typing import Any

import av

__all__ = ["H264Encoder", "TIME_BASE"]

TIME_BASE = fractions.Fraction(1, 90000)


class H264Encoder:
    """A libx264 encoder that follows frame-size changes and forced key frames.

    ``encode`` may run in a worker thread (PyAV releases the GIL while
    encoding); calls must not overlap.
    """

    def __init__(self, *, fps: float, bitrate: int) -> None:
        self._fps = fps
        self._bitrate = bitrate
        self._context: av.video.codeccontext.VideoCodecContext | None = None
        self._lock = threading.Lock()

    def _open(self, width: int, height: int) -> av.video.codeccontext.VideoCodecContext:
        keyint = max(1, round(self._fps))
        context = av.CodecContext.create("libx264", "w")
        context.width, context.height, context.pix_fmt = width, height, "yuv420p"
        context.time_base = TIME_BASE
        context.framerate = fractions.Fraction(self._fps).limit_denominator(1000)
        context.bit_rate = self._bitrate
        context.gop_size = keyint
        context.thread_count = 1
        context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "level": "3.1",
            "x264-params": f"repeat-headers=1:scenecut=0:keyint={keyint}:min-keyint={keyint}",
        }
        return context

    def encode(self, frame: av.VideoFrame, *, keyframe: bool = False) -> list[av.Packet[Any]]:
        """Encode one yuv420p frame (pts in 1/90000); returns its packets, pts and time base set."""
        with self._lock:
            context = self._context
            if context is None or (context.width, context.height) != (frame.width, frame.height):
                context = self._context = self._open(frame.width, frame.height)
            elif keyframe:
                frame.pict_type = av.video.frame.PictureType.I
            packets = context.encode(frame)
            for packet in packets:
                packet.time_base = TIME_BASE
            return packets

    def close(self) -> None:
        """Release the codec (PyAV frees it with the last reference)."""
        with self._lock:
            self._context = None
