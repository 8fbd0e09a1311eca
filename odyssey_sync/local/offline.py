"""Rendering one simulation script offline: the live renderer, without a clock.

A script (validated by :func:`odyssey_sync.scripts.validate_script`) becomes
the same files as a recorded stream: frames ``0 .. end`` rendered by the
same :class:`~.world.World` and encoded by the same
:class:`~.encoder.H264Encoder` as a live session, each prompt taking effect
at the first frame at or after its timestamp, a start image seeding the
world. Nothing waits for wall-clock time, so it runs many times faster than
real time (``speed`` caps it). The frame stamps carry the video time, so a
script always renders to the same pictures.

Runs in a worker thread; ``stop`` is checked between frames.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import attrs

from ..images import decode_to_rgb
from .encoder import TIME_BASE, H264Encoder
from .media import ARTIFACT_FILES, Mp4PacketWriter, write_events, write_stills
from .streamer import expand_prompt
from .world import World

__all__ = ["RenderInterrupted", "RenderResult", "render_script"]


class RenderInterrupted(Exception):
    """``stop`` was set while rendering; nothing was kept."""


@attrs.frozen
class RenderResult:
    """What one script rendered to: the recording's numbers, its artifacts and the render time."""

    frame_count: int
    duration_seconds: float
    artifacts: list[str]
    render_seconds: float

    @property
    def speed(self) -> float:
        """Video seconds rendered per wall-clock second."""
        return self.duration_seconds / self.render_seconds if self.render_seconds > 0 else math.inf


def render_script(
    script: Sequence[dict[str, Any]],
    *,
    directory: Path,
    width: int,
    height: int,
    fps: float,
    bitrate: int,
    bypass: bool = False,
    stop: threading.Event | None = None,
    speed: float | None = None,
) -> RenderResult:
    """Render ``script`` into ``directory`` (video, events, thumbnail, preview).

    Raises:
        ValueError: the start image cannot be decoded.
        RenderInterrupted: ``stop`` was set; partial files are removed.
    """
    began = time.perf_counter()
    start = script[0]["start"]
    end_ms = int(script[-1]["timestamp_ms"])
    total = max(1, round(end_ms * fps / 1000))
    ticks = TIME_BASE.denominator / fps
    world = World(width, height, fps=fps)
    if start.get("image"):
        try:
            world.set_seed_image(decode_to_rgb(start["image"], width, height))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the start image cannot be used: {exc}") from None
    changes = _prompt_changes(script, fps, total, bypass)
    events: list[dict[str, Any]] = []
    encoder = H264Encoder(fps=fps, bitrate=bitrate)
    writer = Mp4PacketWriter(directory / ARTIFACT_FILES["video"], width=width, height=height, fps=fps)
    try:
        for number in range(total):
            if stop is not None and stop.is_set():
                raise RenderInterrupted
            while changes and changes[0][0] == number:
                _, entry_ms, kind, prompt, applied = changes.pop(0)
                world.set_prompt(prompt)
                event = {"t_ms": entry_ms, "type": kind, "prompt": prompt, "applied_prompt": applied}
                if kind == "start":
                    event.update(portrait=height > width, has_image=world.has_seed_image)
                events.append({**event, "frame_number": number})
            frame = world.render(number, stamp_time_ms=round(number * 1000 / fps))
            pts = round(number * ticks)
            frame.pts, frame.time_base = pts, TIME_BASE
            for packet in encoder.encode(frame, keyframe=number == 0):
                writer.write(bytes(packet), pts if packet.pts is None else packet.pts, packet.is_keyframe)
            if speed is not None:
                _keep_pace(began, (number + 1) / fps / speed, stop)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        encoder.close()
    events.append(
        {
            "t_ms": end_ms,
            "type": "end",
            "reason": "ended",
            "frame_count": writer.frame_count,
            "duration_seconds": writer.duration_seconds,
        }
    )
    write_events(directory / ARTIFACT_FILES["events"], events)
    artifacts = ["video", "events"]
    video, thumbnail, preview = (directory / ARTIFACT_FILES[name] for name in ("video", "thumbnail", "preview"))
    artifacts += write_stills(video, thumbnail, preview)
    return RenderResult(writer.frame_count, writer.duration_seconds, artifacts, time.perf_counter() - began)


def _prompt_changes(
    script: Sequence[dict[str, Any]], fps: float, total: int, bypass: bool
) -> list[tuple[int, int, str, str, str]]:
    """``(first frame, timestamp, kind, prompt, applied prompt)`` of each prompt that gets at least one frame.

    Two prompts less than a frame apart share that frame; the later one is what it shows.
    """
    changes: list[tuple[int, int, str, str, str]] = []
    for entry in script:
        kind = "start" if "start" in entry else "update" if "interact" in entry else None
        if kind is None:
            continue
        prompt = entry["start" if kind == "start" else "interact"]["prompt"]
        frame = math.ceil(entry["timestamp_ms"] * fps / 1000 - 1e-9)
        if frame >= total:
            break
        changes.append((frame, int(entry["timestamp_ms"]), kind, prompt, expand_prompt(prompt, bypass=bypass)))
    return changes


def _keep_pace(began: float, due_s: float, stop: threading.Event | None) -> None:
    delay = began + due_s - time.perf_counter()
    if delay > 0:
        if stop is not None:
            stop.wait(delay)
        else:
            time.sleep(delay)
