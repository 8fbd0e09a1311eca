"""The files of a recording: MP4 video, JSONL events, JPEG thumbnail, MP4 preview.

Shared by live recordings (:mod:`.recorder`) and simulations (:mod:`.offline`).
The video is *muxed* from H.264 packets that were already encoded for
sending (FFmpeg's MP4 muxer takes the Annex-B packets as they are), so
recording costs no second encode. The thumbnail and the preview are derived
afterwards from the finished MP4 by :func:`write_stills`, in whatever worker
thread finalises the recording; nothing here runs on the server's loop.

Every file is written under a temporary name and renamed when complete, so
a reader never sees a partial file and a crash leaves no broken one.
"""

from __future__ import annotations

import contextlib
import fractions
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterable

import av
from av.video.reformatter import VideoReformatter

from .encoder import TIME_BASE
from .private import create_private, private_dir, private_opener

__all__ = [
    "ARTIFACT_FILES",
    "CONTENT_TYPES",
    "Mp4PacketWriter",
    "PREVIEW_FPS",
    "PREVIEW_MAX_SECONDS",
    "PREVIEW_WIDTH",
    "THUMBNAIL_AT_SECONDS",
    "write_events",
    "write_stills",
]

logger = logging.getLogger("odyssey_sync.local.media")

ARTIFACT_FILES: dict[str, str] = {
    "video": "video.mp4",
    "events": "events.jsonl",
    "thumbnail": "thumbnail.jpg",
    "preview": "preview.mp4",
}
"""Artifact name -> file name inside a recording's directory."""

CONTENT_TYPES: dict[str, str] = {
    "video.mp4": "video/mp4",
    "events.jsonl": "application/x-ndjson",
    "thumbnail.jpg": "image/jpeg",
    "preview.mp4": "video/mp4",
}
"""File name -> the Content-Type it is served with."""

PREVIEW_WIDTH = 320
PREVIEW_MAX_SECONDS = 10.0
PREVIEW_FPS = 10
THUMBNAIL_AT_SECONDS = 1.0
_JPEG_QSCALE = 3
_FF_QP2LAMBDA = 118


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.part")


class Mp4PacketWriter:
    """Muxes Annex-B H.264 packets (pts in 1/90000 from 0) into ``path`` without re-encoding.

    The container is opened at the first packet, which must be a key frame
    (earlier packets are refused). :meth:`close` finalises the file and
    renames it into place; with no packet written it leaves no file.
    Not thread-safe: one thread writes.
    """

    def __init__(self, path: Path, *, width: int, height: int, fps: float) -> None:
        """Prepare to write a ``width`` x ``height`` video at ``fps``."""
        self._path = path
        self._temp = _temp_name(path)
        self._width = width
        self._height = height
        self._fps = fps
        self._ticks = round(TIME_BASE.denominator / fps)
        self._container: Any = None
        self._stream: Any = None
        self._frames = 0
        self._last_pts = -1

    @property
    def frame_count(self) -> int:
        """Frames muxed so far."""
        return self._frames

    @property
    def duration_seconds(self) -> float:
        """Length of the video muxed so far (the last frame lasts one frame interval)."""
        if not self._frames:
            return 0.0
        return round((self._last_pts + self._ticks) / TIME_BASE.denominator, 3)

    def write(self, data: bytes, pts: int, keyframe: bool) -> bool:
        """Mux one frame's packet; False (and nothing written) before the first key frame or out of order."""
        if self._container is None:
            if not keyframe:
                return False
            self._open()
        if pts <= self._last_pts:
            return False
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.duration = self._ticks
        packet.time_base = TIME_BASE
        packet.is_keyframe = keyframe
        packet.stream = self._stream
        self._container.mux(packet)
        self._frames += 1
        self._last_pts = pts
        return True

    def close(self) -> bool:
        """Finalise and rename into place; whether a video file now exists."""
        container, self._container = self._container, None
        if container is None:
            return False
        try:
            container.close()
        except BaseException:
            self._discard()
            raise
        os.replace(self._temp, self._path)
        return True

    def abort(self) -> None:
        """Stop without a file (idempotent)."""
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        self._discard()

    def _open(self) -> None:
        private_dir(self._path.parent)
        container = av.open(str(create_private(self._temp)), "w", format="mp4", options={"movflags": "+faststart"})
        stream = container.add_stream("h264", rate=fractions.Fraction(self._fps).limit_denominator(1000))
        stream.width, stream.height = self._width, self._height
        stream.time_base = TIME_BASE
        self._container, self._stream = container, stream

    def _discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()


def write_events(path: Path, events: Iterable[dict[str, Any]]) -> None:
    """Write one JSON object per line, atomically."""
    temp = _temp_name(path)
    private_dir(path.parent)
    with open(temp, "w", encoding="utf-8", opener=private_opener) as out:
        for event in events:
            out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
            out.write("\n")
    os.replace(temp, path)


def write_stills(video: Path, thumbnail: Path, preview: Path) -> list[str]:
    """Derive the thumbnail and the preview from a finished MP4; the artifact names written.

    Thumbnail: the frame at :data:`THUMBNAIL_AT_SECONDS` (or the last one),
    :data:`PREVIEW_WIDTH` wide, as JPEG. Preview: :data:`PREVIEW_WIDTH` wide
    MP4 of at most :data:`PREVIEW_MAX_SECONDS` and :data:`PREVIEW_FPS`: the
    whole video when it is short enough, otherwise a time-lapse of its key
    frames (one a second), so a long video costs the decoding of a twentieth
    of its frames. Failures of one artifact are logged and leave it out.
    """
    written: list[str] = []
    thumb_source = None
    scaler = VideoReformatter()
    with av.open(str(video)) as source:
        stream = source.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
        fps = float(stream.average_rate or PREVIEW_FPS)
        size = _scaled_size(stream.codec_context.width, stream.codec_context.height, PREVIEW_WIDTH)
        if duration > PREVIEW_MAX_SECONDS:
            stream.codec_context.skip_frame = "NONKEY"
            step = 1
            out_fps = max(1, min(PREVIEW_FPS, math.ceil(math.ceil(duration) / PREVIEW_MAX_SECONDS)))
            limit = int(PREVIEW_MAX_SECONDS * out_fps)
        else:
            step = max(1, round(fps / PREVIEW_FPS))
            out_fps, limit = max(1, round(fps / step)), None
        writer = _PreviewWriter(preview, size, out_fps)
        try:
            for index, frame in enumerate(source.decode(stream)):
                at = frame.time or 0.0
                if thumb_source is None or at <= THUMBNAIL_AT_SECONDS:
                    thumb_source = frame
                full = limit is not None and writer.count >= limit
                if full and at > THUMBNAIL_AT_SECONDS:
                    break
                if not full and index % step == 0:
                    writer.add(_shrink(scaler, frame, size))
            if writer.close():
                written.append("preview")
        except Exception:
            writer.abort()
            logger.warning("could not write the preview %s", preview, exc_info=True)
    if thumb_source is not None:
        try:
            _write_jpeg(thumbnail, _shrink(scaler, thumb_source, size))
            written.append("thumbnail")
        except Exception:
            logger.warning("could not write the thumbnail %s", thumbnail, exc_info=True)
    return written


def _shrink(scaler: VideoReformatter, frame: av.VideoFrame, size: tuple[int, int]) -> av.VideoFrame:
    return scaler.reformat(frame, width=size[0], height=size[1], format="yuv420p", interpolation="AREA")


def _scaled_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """``target_width`` (never wider than the source) and the height keeping the aspect, both even."""
    out_w = min(target_width, width) // 2 * 2
    out_h = max(2, round(height * out_w / width / 2) * 2)
    return out_w, out_h


class _PreviewWriter:
    """A small libx264 MP4, written under a temporary name."""

    def __init__(self, path: Path, size: tuple[int, int], fps: int) -> None:
        self._path = path
        self._temp = _temp_name(path)
        self._container = av.open(
            str(create_private(self._temp)), "w", format="mp4", options={"movflags": "+faststart"}
        )
        options = {"preset": "ultrafast", "crf": "30", "threads": "1"}
        stream = self._container.add_stream("libx264", rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        self._stream = stream
        self._time_base = fractions.Fraction(1, fps)
        self.count = 0

    def add(self, frame: av.VideoFrame) -> None:
        frame.pts, frame.time_base = self.count, self._time_base
        self._container.mux(self._stream.encode(frame))
        self.count += 1

    def close(self) -> bool:
        if not self.count:
            self.abort()
            return False
        self._container.mux(self._stream.encode(None))
        self._container.close()
        os.replace(self._temp, self._path)
        return True

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._container.close()
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()


def _write_jpeg(path: Path, frame: av.VideoFrame) -> None:
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "yuvj420p"
    codec.time_base = fractions.Fraction(1, 1)
    codec.qscale = True
    codec.global_quality = _JPEG_QSCALE * _FF_QP2LAMBDA
    image = frame.reformat(format="yuvj420p")
    image.pts = 0
    data = b"".join(bytes(packet) for packet in [*codec.encode(image), *codec.encode(None)])
    temp = _temp_name(path)
    with open(temp, "wb", opener=private_opener) as out:
        out.write(data)
    os.replace(temp, path)
