"""Client workloads of ``benchmarks.save_writer``: each runs in a fresh process (``benchmarks.worker``).

* :func:`capture`: receive a 20 fps stream for ``seconds`` and either encode each frame as it arrives
  with :class:`odyssey_sync.save.Mp4Writer` (``mode="streaming"``) or keep every frame in a list and
  write the MP4 at the end with :func:`odyssey_sync.save.write_mp4` (``mode="list"``, what the quickstart
  did); RSS is sampled every ``sample_s`` seconds.
* :func:`encode_speed`: receive ``frames`` frames, then encode them with each x264 preset; CPU and wall
  time per frame, bytes per frame.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.metrics import rss_mb
from odyssey_sync import Odyssey, VideoFrame
from odyssey_sync.save import STREAMING_PRESET, Mp4Writer, write_mp4

__all__ = ["capture", "encode_speed"]


def _client(server: dict[str, Any]) -> Odyssey:
    return Odyssey(api_key=server["api_key"], api_url=server["url"], timeout=30, buffer_size=64)


def capture(server: dict[str, Any], mode: str, seconds: float, sample_s: float = 10.0,
            preset: str = STREAMING_PRESET) -> dict[str, Any]:
    """RSS over a ``seconds`` capture, streaming to an MP4 or collecting a list first."""
    if mode not in ("streaming", "list"):
        raise ValueError(f"mode is 'streaming' or 'list', not {mode!r}")
    out = Path(tempfile.mkdtemp(prefix="bench-save-")) / "capture.mp4"
    samples: list[tuple[float, float]] = []
    with _client(server) as client:
        client.connect()
        stream_id = client.start_stream("A lighthouse on a cliff at dusk", portrait=False)
        frames: list[VideoFrame] = []
        writer = Mp4Writer(out, preset=preset) if mode == "streaming" else None
        began = time.monotonic()
        next_sample = began
        received = 0
        for frame in client.frames(timeout=30):
            if frame.stream_id != stream_id:
                continue
            received += 1
            if writer is not None:
                writer.write(frame)
            else:
                frames.append(frame)
            now = time.monotonic()
            if now >= next_sample:
                samples.append((round(now - began, 1), round(rss_mb(), 1)))
                next_sample += sample_s
            if now - began >= seconds:
                break
        stats = client.stats
        client.end_stream()
        write_began = time.monotonic()
        if writer is not None:
            summary = writer.close()
        else:
            summary = write_mp4(frames, out, preset=preset)
        samples.append((round(time.monotonic() - began, 1), round(rss_mb(), 1)))
        peak = _peak_rss_mb()
    size = out.stat().st_size
    os.remove(out)
    return {
        "mode": mode,
        "preset": preset,
        "seconds": seconds,
        "frames_received": received,
        "frames_written": summary.frames,
        "frames_dropped_by_writer": summary.dropped,
        "frames_dropped_by_client_buffer": stats.frames_dropped,
        "write_after_capture_s": round(time.monotonic() - write_began, 2),
        "rss_samples": samples,
        "rss_start_mb": samples[0][1],
        "rss_end_mb": samples[-1][1],
        "rss_peak_mb": peak,
        "bytes_per_frame": round(size / max(1, summary.frames)),
    }


def encode_speed(server: dict[str, Any], frames: int = 200, presets: list[str] | None = None) -> dict[str, Any]:
    """CPU and wall ms per 1280x704 frame for each x264 preset, on frames received from the server."""
    presets = presets or ["ultrafast", "superfast", "veryfast"]
    with _client(server) as client:
        client.connect()
        stream_id = client.start_stream("A lighthouse on a cliff at dusk", portrait=False)
        received: list[VideoFrame] = []
        for frame in client.frames(timeout=30):
            if frame.stream_id == stream_id:
                received.append(frame)
            if len(received) >= frames:
                break
        client.end_stream()
    client_cpu_baseline = time.process_time()
    out = Path(tempfile.mkdtemp(prefix="bench-encode-")) / "speed.mp4"
    results: dict[str, Any] = {"frames": len(received), "width": received[0].width, "height": received[0].height}
    for preset in presets:
        cpu, wall = time.process_time(), time.perf_counter()
        summary = write_mp4(received, out, preset=preset)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        results[preset] = {
            "cpu_ms_per_frame": round(cpu * 1000 / summary.frames, 2),
            "wall_ms_per_frame": round(wall * 1000 / summary.frames, 2),
            "fps_capacity": round(summary.frames / wall, 1),
            "bytes_per_frame": round(out.stat().st_size / summary.frames),
        }
        os.remove(out)
    results["note"] = f"client process CPU before encoding: {client_cpu_baseline:.1f} s"
    return results


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0
