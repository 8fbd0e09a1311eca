"""Saving what a client receives: frames to H.264 MP4 (at once or as they arrive) and stills.

::

    from odyssey_sync.save import Mp4Writer, record, save_image, write_mp4

    save_image(client.latest_frame(), "snapshot.png")           # or .jpg
    write_mp4(frames, "clip.mp4")                               # a list or any iterable of frames
    with Mp4Writer("run.mp4") as writer:                        # encodes on its own thread as frames
        for frame in client.frames():                           # arrive; memory stays flat
            writer.write(frame)
    summary = record(client, "stream.mp4", seconds=10)          # the same, pulling from the client

Timing: each frame's presentation time is its media clock (the server's
timestamp of the frame, ``media_timestamp_ms``) relative to the first frame written, so the video plays
at the pace the world was generated. Where the media clock jumps (a new
connection, a wrap-around) the arrival time (``received_at``) bridges the gap.
``fps=`` writes a constant frame rate instead (and is needed for plain arrays,
which carry no clock).

Files are written under a temporary name next to the target (``.name.part``)
and renamed into place when complete, so a crash or an error never leaves a
truncated file under the real name.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import attrs
import av
import numpy as np

from .frames import VideoFrame, check_timeout
from .images import _encode_jpeg, _encode_png
from .types import DEFAULT_TIMEOUT, StreamView, Timeout

__all__ = [
    "DEFAULT_PRESET",
    "STREAMING_PRESET",
    "FrameSource",
    "Mp4Writer",
    "VideoSummary",
    "record",
    "save_image",
    "write_mp4",
]

FrameLike = VideoFrame | np.ndarray
"""A :class:`VideoFrame` or an ``(height, width, 3)`` ``uint8`` RGB array."""

DEFAULT_PRESET = "veryfast"
"""x264 preset of :func:`write_mp4`, which has no clock to keep up with: the smallest files per CPU spent."""

STREAMING_PRESET = "ultrafast"
"""x264 preset of :class:`Mp4Writer` and :func:`record`, which must keep up with the stream: about half
the CPU of ``veryfast`` (8.6 vs 16 ms per 1280x704 frame here, 0.17 vs 0.32 of a core at 20 fps) for
files ~1.5x larger (``benchmarks/save_writer.py``)."""

DEFAULT_CRF = 23
"""x264 constant rate factor (quality; lower is better and larger)."""

DEFAULT_QUEUE = 40
"""Frames :class:`Mp4Writer` holds for its encoder (2 s at 20 fps) before it drops new ones."""

_TIME_BASE = Fraction(1, 1000)
_MAX_CLOCK_DISAGREEMENT_MS = 1000.0
_IMAGE_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


class FrameSource(Protocol):
    """Anything with the frame-pulling ``frames()`` call: ``Odyssey``, ``MediaStream``, ``SpectatorConnection``."""

    def frames(
        self, limit: int | None = ..., timeout: Timeout = ..., *, stream_id: StreamView = ...
    ) -> Iterator[VideoFrame]:
        """Frames in order; ends when the stream ends."""
        ...


@attrs.frozen
class VideoSummary:
    """What an MP4 writer wrote.

    ``frames`` were encoded; ``dropped`` were refused because the encoder fell
    more than its queue behind (always 0 for :func:`write_mp4`).
    ``duration_seconds`` runs from the first frame to the end of the last.
    """

    path: Path
    frames: int
    dropped: int
    width: int
    height: int
    duration_seconds: float


def save_image(frame: FrameLike, path: str | os.PathLike[str]) -> Path:
    """Save one frame as PNG (``.png``) or JPEG (``.jpg``/``.jpeg``, quality ~90); returns the path.

    ``frame`` is a :class:`VideoFrame` or an ``(height, width, 3)`` ``uint8``
    RGB array. The file is written atomically (temporary name, then rename).
    """
    target = Path(path)
    kind = _IMAGE_SUFFIXES.get(target.suffix.lower())
    if kind is None:
        raise ValueError(
            f"save_image() writes PNG or JPEG, chosen by the file's extension; {str(target)!r} has "
            f"{target.suffix or 'none'}: use .png, .jpg or .jpeg"
        )
    rgb = _rgb(frame)
    if kind == "png":
        data = _encode_png(rgb)
    else:
        even = rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2]  # 4:2:0 JPEG needs even sides
        if even.size == 0:
            raise ValueError(f"a JPEG needs at least 2x2 pixels; this frame is {rgb.shape[1]}x{rgb.shape[0]}: save it as .png")
        data = _encode_jpeg(av.VideoFrame.from_ndarray(np.ascontiguousarray(even), format="rgb24").reformat(format="yuvj420p"))
    _write_atomically(target, data)
    return target


def write_mp4(
    frames: Iterable[FrameLike],
    path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    preset: str = DEFAULT_PRESET,
    crf: int = DEFAULT_CRF,
) -> VideoSummary:
    """Encode ``frames`` (any iterable: a list, a generator, ``client.frames()``) to an H.264 MP4.

    Every frame is encoded (none dropped), in the caller's thread. Timing
    comes from each frame's media clock (see the module docstring) unless
    ``fps`` is given. All frames must have the size of the first. Raises
    ``ValueError`` for no frames, a size change or an array without ``fps``.
    """
    encoder = _Encoder(Path(path), fps=fps, preset=preset, crf=crf)
    try:
        for frame in frames:
            encoder.encode(encoder.prepare(frame))
        return encoder.close(dropped=0)
    except BaseException:
        encoder.abort()
        raise


class Mp4Writer:
    """Encode frames to an H.264 MP4 on a thread of its own, as they arrive, in constant memory.

    :meth:`write` never blocks: it timestamps the frame and queues it for the
    encoder thread, or, when the encoder is more than ``max_queue`` frames
    behind, drops it and counts it (:attr:`frames_dropped`), so a writer
    never falls behind without bound and holds at most ``max_queue`` frames.
    It returns the frame's position in the video (0 = first frame), or
    ``None`` if dropped. The default x264 preset is :data:`STREAMING_PRESET`. Use it
    as a context manager, or call :meth:`close`, which waits for the queue to
    drain and renames the finished file into place (an exception inside the
    ``with`` block discards the file instead). Thread-safe; it also works as
    an ``on_video_frame`` handler (``client.connect(on_video_frame=writer.write)``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fps: float | None = None,
        preset: str = STREAMING_PRESET,
        crf: int = DEFAULT_CRF,
        max_queue: int = DEFAULT_QUEUE,
    ) -> None:
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ValueError(f"max_queue must be an int >= 1, got {max_queue!r}")
        self._encoder = _Encoder(Path(path), fps=fps, preset=preset, crf=crf)
        self._queue: queue.Queue[_Prepared | None] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._accepted = 0
        self._dropped = 0
        self._closed = False
        self._error: BaseException | None = None
        self._summary: VideoSummary | None = None
        self._thread = threading.Thread(target=self._run, name="odyssey-mp4-writer", daemon=True)
        self._thread.start()

    @property
    def path(self) -> Path:
        """Where the finished MP4 goes."""
        return self._encoder.path

    @property
    def frames_written(self) -> int:
        """Frames accepted for the video so far (encoded or queued)."""
        return self._accepted

    @property
    def frames_dropped(self) -> int:
        """Frames refused because the encoder was ``max_queue`` frames behind."""
        return self._dropped

    def write(self, frame: FrameLike) -> int | None:
        """Queue ``frame``; its position in the video, or ``None`` if the encoder is behind and it was dropped.

        Raises ``ValueError`` for a frame whose size differs from the first
        one's, and the encoder's error if encoding failed.
        """
        with self._lock:
            if self._closed:
                raise ValueError(f"this Mp4Writer is closed ({self.path}); open a new one to write more")
            if self._error is not None:
                raise RuntimeError(f"encoding {self.path} failed: {self._error}") from self._error
            if self._queue.full():
                self._dropped += 1
                return None
            prepared = self._encoder.prepare(frame)
            self._queue.put_nowait(prepared)
            position = self._accepted
            self._accepted += 1
            return position

    def close(self, timeout: float | None = None) -> VideoSummary:
        """Finish the encode (waits for the queued frames) and move the file into place.

        ``timeout`` bounds the wait for the queue to drain (``None``: as long
        as the queued frames take, at most ``max_queue`` encodes). Raises the
        encoder's error, or ``ValueError`` if no frame was written (no file is left).
        """
        wait = check_timeout(timeout)
        if self._summary is not None:
            return self._summary
        with self._lock:
            first_close = not self._closed
            self._closed = True
        while first_close and self._thread.is_alive():  # the encoder is draining the queue, unless it failed
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join(wait)
        if self._thread.is_alive():
            raise TimeoutError(f"the MP4 encoder did not finish {self.path} within {wait:g} s")
        if self._error is not None:
            self._encoder.abort()
            raise RuntimeError(f"encoding {self.path} failed: {self._error}") from self._error
        self._summary = self._encoder.close(dropped=self._dropped)
        return self._summary

    def abort(self) -> None:
        """Stop encoding and discard the file (the encoder thread removes it if it is mid-frame). Idempotent."""
        with self._lock:
            self._closed = True
        self._encoder.cancel()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._encoder.abort()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if self._encoder.cancelled:
                self._encoder.abort()
                return
            if item is None:
                return
            try:
                self._encoder.encode(item)
            except Exception as error:  # carried to the caller: write() and close() raise it
                self._error = error
                return


def record(
    source: FrameSource,
    path: str | os.PathLike[str],
    *,
    seconds: float | None = None,
    fps: float | None = None,
    preset: str = STREAMING_PRESET,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> VideoSummary:
    """Record the frames ``source`` delivers to an MP4 until its stream ends or ``seconds`` pass.

    ``source`` is a connected :class:`~odyssey_sync.Odyssey`, a
    :class:`~odyssey_sync.MediaStream` or a spectator connection; frames are
    pulled with ``frames()`` (the current stream's view) and encoded on an
    :class:`Mp4Writer` thread as they arrive, so memory stays flat however
    long it runs. ``seconds`` counts from the first frame; ``timeout`` bounds
    each wait for a frame (default: the source's; ``OdysseyTimeoutError`` beyond).
    """
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0):
        raise ValueError(f"seconds must be a number > 0 (or None: until the stream ends), got {seconds!r}")
    with Mp4Writer(path, fps=fps, preset=preset) as writer:
        until: float | None = None
        for frame in source.frames(timeout=timeout):
            if until is None and seconds is not None:
                until = frame.received_at + seconds
            if until is not None and frame.received_at >= until:
                break
            writer.write(frame)
        if writer.frames_written == 0:
            raise ValueError(f"no frame arrived to record into {path}: is a stream running?")
        return writer.close()


# -- the encoder behind both writers -----------------------------------------------------------


@attrs.frozen
class _Prepared:
    """A frame checked and timestamped in the caller's thread, waiting for the encoder."""

    frame: FrameLike
    pts_ms: int


class _Encoder:
    """One MP4 being written: size and timing checks, then libx264 into a temporary file.

    ``prepare`` runs in the caller's thread (cheap: checks and a timestamp);
    ``encode`` may run in another thread, one at a time.
    """

    def __init__(self, path: Path, *, fps: float | None, preset: str, crf: int) -> None:
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < math.inf):
            raise ValueError(f"fps must be a number > 0 (or None: each frame's own clock), got {fps!r}")
        if not isinstance(preset, str) or not preset:
            raise TypeError(f"preset must be an x264 preset name such as 'veryfast', not {preset!r}")
        if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
            raise ValueError(f"crf must be an int in 0..51 (23 is x264's default), got {crf!r}")
        if path.suffix.lower() != ".mp4":
            raise ValueError(f"the MP4 writers write .mp4 files; name the file e.g. {path.with_suffix('.mp4').name!r}")
        self.path = path
        self._temp = path.with_name(f".{path.name}.part")
        self._fps = fps
        self._options = {"preset": preset, "crf": str(crf)}
        self._size: tuple[int, int] | None = None
        self._clock = _Timeline(fps)
        self._container: Any = None
        self._stream: Any = None
        self._encoded = 0
        self._cancel = threading.Event()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancel.is_set()

    def prepare(self, frame: FrameLike) -> _Prepared:
        """Check ``frame`` against the video so far and give it its presentation time."""
        if isinstance(frame, VideoFrame):
            size = (frame.width, frame.height)
        elif isinstance(frame, np.ndarray):
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"an array frame must be (height, width, 3) uint8 RGB, got {frame.dtype} {frame.shape}")
            if self._fps is None:
                raise ValueError("an array carries no timing: pass fps= (e.g. write_mp4(arrays, path, fps=20))")
            size = (frame.shape[1], frame.shape[0])
        else:
            raise TypeError(f"a frame must be an odyssey_sync.VideoFrame or an RGB numpy array, not {type(frame).__name__}")
        if self._size is None:
            if size[0] % 2 or size[1] % 2:
                raise ValueError(f"H.264 MP4 needs even width and height; this frame is {size[0]}x{size[1]}: crop it by a pixel")
            self._size = size
        elif size != self._size:
            raise ValueError(
                f"frame is {size[0]}x{size[1]} but this video is {self._size[0]}x{self._size[1]}; "
                "write each stream (portrait or landscape) to a file of its own"
            )
        return _Prepared(frame, self._clock.pts_ms(frame))

    def encode(self, item: _Prepared) -> None:
        """Encode one prepared frame (opens the file at the first)."""
        if self._container is None:
            self._open()
        picture = _to_av(item.frame)
        picture.pts, picture.time_base = item.pts_ms, _TIME_BASE
        self._container.mux(self._stream.encode(picture))
        self._encoded += 1

    def close(self, dropped: int) -> VideoSummary:
        """Flush the encoder and rename the file into place."""
        if self._container is None:
            raise ValueError(f"no frames to write into {self.path}")
        self._container.mux(self._stream.encode(None))
        self._container.close()
        self._container = None
        os.replace(self._temp, self.path)
        assert self._size is not None
        return VideoSummary(
            path=self.path,
            frames=self._encoded,
            dropped=dropped,
            width=self._size[0],
            height=self._size[1],
            duration_seconds=self._clock.duration_seconds(),
        )

    def cancel(self) -> None:
        """Ask the encoding thread to stop at the next frame."""
        self._cancel.set()

    def abort(self) -> None:
        """Close and delete the temporary file. Idempotent."""
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()

    def _open(self) -> None:
        assert self._size is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self._temp), mode="w", format="mp4", options={"movflags": "+faststart"})
        try:
            rate = Fraction(self._fps).limit_denominator(1001) if self._fps is not None else 20
            stream = container.add_stream("libx264", rate=rate, options=self._options)
            stream.width, stream.height = self._size
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = _TIME_BASE
        except BaseException:
            container.close()
            raise
        self._container, self._stream = container, stream


class _Timeline:
    """Presentation times in ms from the first frame: constant rate, or each frame's media clock."""

    def __init__(self, fps: float | None) -> None:
        self._fps = fps
        self._count = 0
        self._last_pts = 0
        self._last_media: int | None = None
        self._last_arrival = 0.0

    def pts_ms(self, frame: FrameLike) -> int:
        """The next frame's presentation time; strictly increasing."""
        count, self._count = self._count, self._count + 1
        if self._fps is not None:
            pts = round(count * 1000 / self._fps)
            pts = max(pts, self._last_pts + 1) if count else 0
        else:
            assert isinstance(frame, VideoFrame)
            media, arrival = frame.media_timestamp_ms, frame.received_at
            if self._last_media is None:
                pts = 0
            else:
                media_step = media - self._last_media
                arrival_step = (arrival - self._last_arrival) * 1000
                continuous = 0 < media_step and abs(media_step - arrival_step) <= _MAX_CLOCK_DISAGREEMENT_MS
                pts = self._last_pts + max(1, round(media_step if continuous else arrival_step))
            self._last_media, self._last_arrival = media, arrival
        self._last_pts = pts
        return pts

    def duration_seconds(self) -> float:
        """From the first frame to the end of the last (the last lasting the mean frame interval)."""
        if self._count <= 1:
            return 1 / self._fps if self._fps else 0.0
        return self._last_pts / 1000 * self._count / (self._count - 1)




def _rgb(frame: FrameLike) -> np.ndarray:
    if isinstance(frame, VideoFrame):
        return frame.data
    if isinstance(frame, np.ndarray):
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
            raise ValueError(f"an array frame must be (height, width, 3) uint8 RGB, got {frame.dtype} {frame.shape}")
        return np.ascontiguousarray(frame)
    raise TypeError(f"a frame must be an odyssey_sync.VideoFrame or an RGB numpy array, not {type(frame).__name__}")


def _to_av(frame: FrameLike) -> av.VideoFrame:
    """An encoder input: the decoded YUV planes when the frame has them (no RGB round trip), else its RGB."""
    if isinstance(frame, VideoFrame):
        with contextlib.suppress(ValueError):  # a frame made from an RGB array has no YUV planes
            return av.VideoFrame.from_ndarray(frame.to_ndarray("yuv420p"), format="yuv420p")
    return av.VideoFrame.from_ndarray(_rgb(frame), format="rgb24")


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.part")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
