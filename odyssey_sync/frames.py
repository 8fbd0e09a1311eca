"""Decoded video frames and the thread-safe buffer that hands them to callers.

The event-loop thread only stores references to decoded frames here; the
conversion to RGB happens in the caller's thread, on first access, so frames
nobody reads cost nothing.
"""

from __future__ import annotations

import collections
import math
import numbers
import threading
import time
from typing import Any, Iterator, Optional

import av
import numpy as np

from .errors import OdysseyConnectionError, OdysseyTimeoutError

__all__ = ["VideoFrame", "FrameBuffer", "MediaStream"]

_FPS_WINDOW = 40


class VideoFrame:
    """One decoded video frame; immutable.

    ``data`` is an RGB ``uint8`` array of shape ``(height, width, 3)``, read-only,
    converted on first access. ``timestamp_ms`` is the media clock, ``index``
    counts frames since connect, ``received_at`` is the ``time.monotonic()`` of
    decoding, ``stream_id`` and ``prompt`` are the stream and the last applied
    prompt when the frame arrived.
    """

    __slots__ = (
        "_source",
        "_rgb",
        "_lock",
        "width",
        "height",
        "timestamp_ms",
        "index",
        "received_at",
        "stream_id",
        "prompt",
    )

    width: int
    height: int
    timestamp_ms: int
    index: int
    received_at: float
    stream_id: Optional[str]
    prompt: Optional[str]

    def __init__(
        self,
        source: av.VideoFrame | np.ndarray,
        *,
        index: int = 0,
        received_at: float | None = None,
        stream_id: str | None = None,
        prompt: str | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        setter = object.__setattr__
        if isinstance(source, np.ndarray):
            if source.dtype != np.uint8 or source.ndim != 3 or source.shape[2] != 3:
                raise ValueError("VideoFrame needs an (height, width, 3) uint8 RGB array")
            rgb = source.copy() if source.flags.writeable else source
            rgb.flags.writeable = False
            setter(self, "_source", None)
            setter(self, "_rgb", rgb)
            height, width = rgb.shape[:2]
            media_ms = 0
        else:
            setter(self, "_source", source)
            setter(self, "_rgb", None)
            width, height = source.width, source.height
            media_ms = int(source.pts * source.time_base * 1000) if source.pts is not None and source.time_base else 0
        setter(self, "_lock", threading.Lock())
        setter(self, "width", width)
        setter(self, "height", height)
        setter(self, "timestamp_ms", media_ms if timestamp_ms is None else timestamp_ms)
        setter(self, "index", index)
        setter(self, "received_at", time.monotonic() if received_at is None else received_at)
        setter(self, "stream_id", stream_id)
        setter(self, "prompt", prompt)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("VideoFrame is immutable")

    @property
    def data(self) -> np.ndarray:
        """The frame as a read-only RGB ``uint8`` array, shape ``(height, width, 3)``."""
        rgb = self._rgb
        if rgb is None:
            # One conversion per frame, whichever thread asks first: PyAV's
            # reformatter is not safe to share between threads.
            with self._lock:
                rgb = self._rgb
                if rgb is None:
                    # One scaler thread: cheaper per frame here, and no thread pool kept alive per frame.
                    rgb = self._source.to_ndarray(format="rgb24", threads=1)
                    rgb.flags.writeable = False
                    object.__setattr__(self, "_rgb", rgb)
        return rgb

    @property
    def is_converted(self) -> bool:
        """Whether the RGB array exists already (frames never read are never converted)."""
        return self._rgb is not None

    def to_ndarray(self, format: str = "rgb24") -> np.ndarray:
        """The frame in another layout (``"bgr24"``, ``"gray"``, ``"yuv420p"``, ...), converted once from the source."""
        if format == "rgb24":
            return self.data
        if self._source is None:
            if format == "bgr24":
                return np.ascontiguousarray(self.data[:, :, ::-1])
            raise ValueError(f"format {format!r} needs a decoded source frame; this frame holds RGB only")
        with self._lock:
            return self._source.to_ndarray(format=format, threads=1)

    def __repr__(self) -> str:
        return (
            f"VideoFrame(index={self.index}, {self.width}x{self.height}, timestamp_ms={self.timestamp_ms}, "
            f"stream_id={self.stream_id!r})"
        )


class FrameBuffer:
    """A bounded, thread-safe FIFO of frames that drops the oldest when full.

    Fed by the event-loop thread; read by any number of caller threads. It also
    remembers the newest frame and a short history for ``wait_for_frame``.
    ``close()`` wakes every waiter, with the given error or cleanly; every
    frame it holds is then dropped (they belong to a connection that is gone).
    """

    def __init__(self, capacity: int = 32) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"buffer_size must be an int >= 1, got {capacity!r}")
        self.capacity = capacity
        self._cond = threading.Condition()
        self._fifo: collections.deque[VideoFrame] = collections.deque()
        self._history: collections.deque[VideoFrame] = collections.deque(maxlen=capacity)
        self._arrivals: collections.deque[float] = collections.deque(maxlen=_FPS_WINDOW)
        self._latest: VideoFrame | None = None
        self._stream_id: str | None = None
        self._closed = False
        self._error: BaseException | None = None
        self.received = 0
        self.delivered = 0
        self.dropped = 0

    # -- producer side (event-loop thread) ---------------------------------------------------

    def put(self, frame: VideoFrame) -> None:
        """Add a frame, dropping the oldest unread one if the buffer is full."""
        with self._cond:
            if self._closed:
                return
            self._fifo.append(frame)
            if len(self._fifo) > self.capacity:
                self._fifo.popleft()
                self.dropped += 1
            self._history.append(frame)
            self._arrivals.append(frame.received_at)
            self._latest = frame
            self.received += 1
            self._cond.notify_all()

    def set_stream(self, stream_id: str | None) -> None:
        """Record that a stream started (an id) or ended (``None``); wakes ``frames()``."""
        with self._cond:
            self._stream_id = stream_id
            self._cond.notify_all()

    def close(self, error: BaseException | None = None) -> None:
        """Stop the buffer; waiters get ``error`` if given, else a clean end. Idempotent."""
        with self._cond:
            if not self._closed:
                self._closed = True
                self._error = error
                self._fifo.clear()
                self._history.clear()
                self._latest = None
            self._cond.notify_all()

    # -- consumer side (any thread) ------------------------------------------------------------

    def measured_fps(self) -> float:
        """Frames per second over the last :data:`_FPS_WINDOW` frames received."""
        with self._cond:
            times = self._arrivals
            if len(times) < 2:
                return 0.0
            span = times[-1] - times[0]
            return (len(times) - 1) / span if span > 0 else 0.0

    @property
    def closed(self) -> bool:
        """Whether the connection behind the buffer is gone."""
        return self._closed

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error_copy()

    def _error_copy(self) -> BaseException:
        # A fresh instance per raise keeps tracebacks of different threads apart.
        error = self._error
        assert error is not None
        try:
            clone = type(error).__new__(type(error))
            clone.__dict__.update(error.__dict__)
            clone.args = error.args
            clone.__cause__ = error.__cause__
            return clone
        except Exception:
            return error

    def _wait(self, predicate: Any, timeout: float | None, what: str) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not predicate():
            if deadline is None:
                self._cond.wait(0.25)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OdysseyTimeoutError(f"no frame within {timeout:g} s ({what})")
            self._cond.wait(min(remaining, 0.25))

    def get(self, timeout: float | None = None) -> VideoFrame:
        """The oldest buffered frame, waiting up to ``timeout`` seconds for one."""
        with self._cond:
            self._raise_if_failed()
            self._wait(lambda: bool(self._fifo) or self._closed, timeout, "get_frame")
            self._raise_if_failed()
            if self._closed:
                raise OdysseyConnectionError("the client is disconnected; call connect() to receive frames again")
            self.delivered += 1
            return self._fifo.popleft()

    def latest(self) -> VideoFrame | None:
        """The newest frame received, or ``None``; never waits."""
        with self._cond:
            self._raise_if_failed()
            return self._latest

    def wait_after(self, moment: float, timeout: float | None = None) -> VideoFrame:
        """The first frame received strictly after ``moment`` (``time.monotonic()``)."""

        def found() -> VideoFrame | None:
            for frame in self._history:
                if frame.received_at > moment:
                    return frame
            return None

        with self._cond:
            self._raise_if_failed()
            self._wait(lambda: found() is not None or self._closed, timeout, "wait_for_frame")
            frame = found()
            if frame is None:
                self._raise_if_failed()
                raise OdysseyConnectionError("the client disconnected before a frame arrived")
            return frame

    def iterate(self, limit: int | None = None, timeout: float | None = None) -> Iterator[VideoFrame]:
        """Yield frames in order until ``limit``, the end of the stream, or disconnect.

        The iteration follows the stream running when it begins (or the first
        one to start while it runs) and ends when that stream ends.
        """
        followed: str | None = None
        count = 0
        while limit is None or count < limit:
            with self._cond:
                self._raise_if_failed()
                if followed is None:
                    followed = self._stream_id

                def ready() -> bool:
                    if self._fifo or self._closed:
                        return True
                    return followed is not None and self._stream_id != followed

                self._wait(ready, timeout, "frames")
                self._raise_if_failed()
                if self._closed:
                    return
                if self._fifo:
                    frame = self._fifo[0]
                    if followed is None and frame.stream_id is not None:
                        followed = frame.stream_id
                    elif followed is not None and frame.stream_id != followed and self._stream_id != followed:
                        return
                    self._fifo.popleft()
                    self.delivered += 1
                elif followed is not None and self._stream_id != followed:
                    return
                else:  # pragma: no cover - ready() guarantees one of the above
                    continue
            count += 1
            yield frame


class MediaStream:
    """The video of one connection, with the frame-pulling calls.

    Returned by :meth:`Odyssey.connect`; the client's own pulling calls act on
    the stream of its current connection.
    """

    def __init__(self, buffer: FrameBuffer, default_timeout: float | None) -> None:
        self._buffer = buffer
        self._default_timeout = default_timeout

    @property
    def active(self) -> bool:
        """Whether the connection behind this stream is still up."""
        return not self._buffer.closed

    def get_frame(self, timeout: float | None = ...) -> VideoFrame:  # type: ignore[assignment]
        """The oldest buffered frame; waits up to ``timeout`` s (default: the client's)."""
        return self._buffer.get(self._timeout(timeout))

    def latest_frame(self) -> VideoFrame | None:
        """The newest frame, or ``None`` before the first; never waits."""
        return self._buffer.latest()

    def wait_for_frame(self, after: Any = None, timeout: float | None = ...) -> VideoFrame:  # type: ignore[assignment]
        """The first frame received after ``after``: a ``time.monotonic()`` value or what
        ``interact()`` / ``start_stream()`` returned (default: now)."""
        return self._buffer.wait_after(moment_of(after), self._timeout(timeout))

    def frames(self, limit: int | None = None, timeout: float | None = ...) -> Iterator[VideoFrame]:  # type: ignore[assignment]
        """Iterate over frames in order; ends when the stream ends or the client disconnects."""
        check_limit(limit)
        return self._buffer.iterate(limit, self._timeout(timeout))

    def _timeout(self, timeout: Any) -> float | None:
        return self._default_timeout if timeout is ... else check_timeout(timeout)

    def __iter__(self) -> Iterator[VideoFrame]:
        return self.frames()


def moment_of(after: Any) -> float:
    """A ``time.monotonic()`` moment from a number, an acknowledgement, or ``None`` (now)."""
    if after is None:
        return time.monotonic()
    moment = getattr(after, "received_at", None)
    if isinstance(moment, float):
        return moment
    if isinstance(after, numbers.Real) and not isinstance(after, bool):
        moment = float(after)
        if not math.isfinite(moment):
            raise ValueError(f"after= must be a finite time.monotonic() value, got {after!r}")
        return moment
    raise TypeError(
        "after= takes a time.monotonic() value or the value returned by interact()/start_stream(), "
        f"not {type(after).__name__}"
    )


def check_timeout(timeout: Any) -> float | None:
    """Validate a timeout argument: ``None`` or a finite number >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")
    seconds = float(timeout)
    if not 0 <= seconds < math.inf:
        raise ValueError(f"timeout must be a finite number of seconds >= 0 (or None to wait forever), got {timeout!r}")
    return seconds


def check_limit(limit: Any) -> None:
    """Validate ``frames(limit=)``: ``None`` or an int >= 0."""
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int or None, not {type(limit).__name__}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
