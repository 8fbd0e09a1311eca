"""HLS output of a broadcast: the relayed H.264 packets muxed into a live playlist.

No second encode: each packet the broadcaster's track already encoded is
copied (the shared packet is never touched) and handed to PyAV's ``hls``
muxer, which cuts MPEG-TS segments at key frames (the encoder makes one at
least every second). Muxing and file writes run on a thread of their own so
they never hold up the event loop; when that thread falls behind, packets are
dropped up to the next key frame rather than queued without bound.

The playlist is a sliding window of recent segments (older ones are deleted)
until :meth:`HlsWriter.close`, which ends it with ``#EXT-X-ENDLIST`` and then
removes the directory.
"""

from __future__ import annotations

import fractions
import logging
import os
import queue
import re
import shutil
import tempfile
import threading
from typing import Any

import av

from .encoder import TIME_BASE

__all__ = ["PLAYLIST_NAME", "HlsWriter", "content_type_of"]

logger = logging.getLogger("odyssey_sync.local.hls")

PLAYLIST_NAME = "index.m3u8"
_SEGMENT_PATTERN = "seg%d.ts"
_SERVABLE = re.compile(r"^(index\.m3u8|seg\d{1,9}\.ts)$")
_CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t"}
_QUEUE_PACKETS = 64
_CLOSE_TIMEOUT_S = 5.0
_STOP = None


def content_type_of(name: str) -> str:
    """The HTTP content type of a playlist or segment file name."""
    return _CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream")


class HlsWriter:
    """Muxes one broadcast's packets into ``index.m3u8`` and ``seg<N>.ts`` in a fresh temporary directory."""

    def __init__(self, *, fps: float, segment_seconds: float = 1.0, window: int = 6, name: str = "broadcast") -> None:
        """Create the directory and start the muxing thread; nothing is written before the first key frame."""
        self._fps = fps
        self._segment_seconds = segment_seconds
        self._window = window
        self._directory = tempfile.mkdtemp(prefix="odyssey-hls-")
        self._queue: queue.Queue[tuple[bytes, int, bool, int, int] | None] = queue.Queue(_QUEUE_PACKETS)
        self._waiting_for_keyframe = True
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"local-odyssey-hls-{name[:8]}", daemon=True)
        self._thread.start()

    @property
    def directory(self) -> str:
        """Where the playlist and segments are written."""
        return self._directory

    def path_of(self, name: str) -> str | None:
        """The file of a servable name (the playlist or a segment) if it exists now, else ``None``."""
        if not _SERVABLE.match(name):
            return None
        path = os.path.join(self._directory, name)
        return path if os.path.isfile(path) else None

    def feed(self, packet: av.Packet[Any], width: int, height: int) -> None:
        """Queue a copy of ``packet`` (a ``width`` x ``height`` frame); never blocks. Loop thread."""
        if self._closed:
            return
        keyframe = bool(packet.is_keyframe)
        if self._waiting_for_keyframe and not keyframe:
            return
        try:
            self._queue.put_nowait((bytes(packet), int(packet.pts or 0), keyframe, width, height))
            self._waiting_for_keyframe = False
        except queue.Full:
            self._waiting_for_keyframe = True  # a segment cannot start mid-GOP

    def close(self) -> None:
        """End the playlist, stop the thread and remove the directory. Blocking and bounded; idempotent."""
        if not self._closed:
            self._closed = True
            while True:
                try:
                    self._queue.put_nowait(_STOP)
                    break
                except queue.Full:
                    self._drain_one()
        if threading.current_thread() is not self._thread:
            self._thread.join(_CLOSE_TIMEOUT_S)
        shutil.rmtree(self._directory, ignore_errors=True)

    def _drain_one(self) -> None:
        try:
            self._queue.get_nowait()
        except queue.Empty:
            pass

    def _run(self) -> None:
        container: Any = None
        stream: Any = None
        first_pts = 0
        failed = False
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            if failed:
                continue
            data, pts, keyframe, width, height = item
            try:
                if container is None:
                    container, stream = self._open(width, height)
                    first_pts = pts
                copy = av.Packet(data)
                copy.pts = copy.dts = pts - first_pts
                copy.time_base = TIME_BASE
                copy.is_keyframe = keyframe
                copy.stream = stream
                container.mux(copy)
            except Exception:
                logger.exception("HLS muxing failed; the playlist stops here")
                failed = True
        if container is not None:
            try:
                container.close()
            except Exception:
                logger.warning("closing the HLS muxer failed", exc_info=True)

    def _open(self, width: int, height: int) -> tuple[Any, Any]:
        container = av.open(
            os.path.join(self._directory, PLAYLIST_NAME),
            "w",
            format="hls",
            options={
                "hls_time": f"{self._segment_seconds:g}",
                "hls_list_size": str(self._window),
                "hls_flags": "delete_segments+independent_segments+temp_file",
                "hls_segment_filename": os.path.join(self._directory, _SEGMENT_PATTERN),
            },
        )
        stream = container.add_stream("h264", rate=fractions.Fraction(self._fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = TIME_BASE
        # The muxer opens this (never used) encoder when it starts; keep that cheap.
        stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency"}
        stream.codec_context.thread_count = 1
        return container, stream
