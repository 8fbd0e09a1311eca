"""The bare encode baseline: the server's world renderer plus a PyAV encode of the same frames, no WebRTC.

It renders landscape frames of a prompt with :class:`odyssey_sync.local.world.World`
(stamp included, exactly as the server's track does) and encodes them at the
server's codec, size, frame rate and bitrate, paced at the frame rate like a
live track. What it costs per frame is the floor of what the server can cost
per streamed frame (P8) and "one session's encode cost" (P10).

Codecs (``codec`` parameter, recorded in the report):

* ``libvpx`` (VP8): aiortc's ``Vp8Encoder`` settings (realtime, cpu-used -6,
  CBR at the bitrate, its thread count rule), as the server's aiortc sender;
* ``libx264`` (H.264): ``preset`` (default ultrafast), tune zerolatency,
  profile baseline, level 3.1, a key frame every second, one thread: the
  settings of the server's encode-once pipeline (``local/encoder.py``).
"""

from __future__ import annotations

import fractions
import multiprocessing
import time
from typing import Any

import av

from benchmarks.metrics import cpu_seconds, minor_faults, summarize
from odyssey_sync.local.world import World

__all__ = ["CODEC_FOR_SDP", "encode", "make_encoder"]

CODEC_FOR_SDP: dict[str, str] = {"vp8": "libvpx", "h264": "libx264"}
"""The PyAV encoder for a codec name as it appears in SDP."""

TIME_BASE = fractions.Fraction(1, 90000)
"""The RTP video clock, the time base the server stamps its frames in."""


def make_encoder(codec: str, width: int, height: int, fps: float, bitrate: int, *, preset: str = "ultrafast",
                 threads: int | None = None) -> av.VideoCodecContext:
    """An encoder context for ``codec`` ("libvpx" or "libx264") with the settings described above."""
    context = av.CodecContext.create(codec, "w")
    context.width = width
    context.height = height
    context.pix_fmt = "yuv420p"
    context.bit_rate = int(bitrate)
    context.framerate = fractions.Fraction(fps).limit_denominator(1000)
    context.time_base = TIME_BASE
    if codec == "libvpx":
        from aiortc.codecs.vpx import number_of_threads

        context.gop_size = 3000
        context.qmin = 2
        context.qmax = 56
        context.options = {
            "bufsize": str(int(bitrate)),
            "cpu-used": "-6",
            "deadline": "realtime",
            "lag-in-frames": "0",
            "minrate": str(int(bitrate)),
            "maxrate": str(int(bitrate)),
            "noise-sensitivity": "4",
            "overshoot-pct": "15",
            "partitions": "0",
            "static-thresh": "1",
            "undershoot-pct": "100",
        }
        context.thread_count = threads if threads is not None else number_of_threads(width * height, multiprocessing.cpu_count())
    elif codec == "libx264":
        # The local server's encode-once settings (odyssey_sync/local/encoder.py): key frame every second,
        # one thread, SPS/PPS before every IDR, no scene-cut key frames.
        keyint = max(1, round(fps))
        context.time_base = TIME_BASE
        context.gop_size = keyint
        context.thread_count = 1 if threads is None else threads
        context.options = {
            "preset": preset,
            "tune": "zerolatency",
            "profile": "baseline",
            "level": "3.1",
            "x264-params": f"repeat-headers=1:scenecut=0:keyint={keyint}:min-keyint={keyint}",
        }
    else:
        raise ValueError(f"unsupported codec {codec!r}: use 'libvpx' or 'libx264'")
    return context


def encode(
    codec: str,
    fps: float,
    seconds: float,
    bitrate: int,
    width: int = 1280,
    height: int = 704,
    prompt: str = "A calm lake at dawn",
    preset: str = "ultrafast",
    threads: int | None = None,
    paced: bool = True,
    warmup_frames: int = 20,
) -> dict[str, Any]:
    """Render and encode ``seconds`` of frames; CPU per frame and per second, split render / encode (wall)."""
    world = World(width, height, fps=fps)
    world.set_prompt(prompt)
    context = make_encoder(codec, width, height, fps, bitrate, preset=preset, threads=threads)
    number = 0
    ticks = 90000 / fps
    for _ in range(warmup_frames):  # builds the scene (~0.3 s) and primes the encoder
        frame = world.render(number)
        frame.pts, frame.time_base = round(number * ticks), TIME_BASE
        context.encode(frame)
        number += 1
    frames = round(seconds * fps)
    interval = 1.0 / fps
    render_ms: list[float] = []
    encode_ms: list[float] = []
    encoded_bytes = 0
    faults0 = minor_faults()
    cpu0, t0 = cpu_seconds(), time.monotonic()
    slot = t0
    for _ in range(frames):
        started = time.perf_counter()
        frame = world.render(number)
        frame.pts, frame.time_base = round(number * ticks), TIME_BASE
        rendered = time.perf_counter()
        for packet in context.encode(frame):
            encoded_bytes += packet.size
        done = time.perf_counter()
        render_ms.append((rendered - started) * 1000)
        encode_ms.append((done - rendered) * 1000)
        number += 1
        if paced:
            slot += interval
            delay = slot - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    cpu1, t1 = cpu_seconds(), time.monotonic()
    cpu = cpu1 - cpu0
    return {
        "codec": codec,
        "preset": preset if codec == "libx264" else None,
        "thread_count": context.thread_count,
        "size": [width, height],
        "fps": fps,
        "bitrate": int(bitrate),
        "frames": frames,
        "wall_s": round(t1 - t0, 3),
        "cpu_s": round(cpu, 4),
        "cpu_ms_per_frame": cpu * 1000 / frames,
        "cpu_per_s": cpu / (t1 - t0),
        "minor_faults_per_frame": (minor_faults() - faults0) / frames,
        "render_wall_ms": summarize(render_ms),
        "encode_wall_ms": summarize(encode_ms),
        "actual_bitrate": round(encoded_bytes * 8 * fps / frames),
    }
