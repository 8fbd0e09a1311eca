"""Decoded video frames and the thread-safe buffer that hands them to callers.

The event-loop thread only stores references to decoded frames here; the
conversion to RGB happens in the caller's thread, on first access, so frames
nobody reads cost nothing.

Frames belong to streams. Video flows from the moment a connection is up,
before and between streams; those *idle* frames belong to no stream
(``stream_id`` is ``None``). The buffer keeps one queue per *view* (a stream
id, or ``None`` for idle video); the pulling calls read the *current* view by
default, the stream most recently started, and a read position only moves
forward: no call returns a frame older than one already handed out.
"""

from __future__ import annotations

import collections
import math
import numbers
import threading
import time
from typing import Any, Callable, Iterator, Optional

import av
import numpy as np

from ._deadline import Deadline
from .errors import OdysseyStateError, OdysseyTimeoutError
from .types import CURRENT_STREAM, DEFAULT_TIMEOUT, StreamView, Timeout

__all__ = ["VideoFrame", "FrameBuffer", "FrameNumbering", "MediaStream"]

_FPS_WINDOW = 40
# Views whose newest frame is remembered for latest_frame() (the current one is always kept).
_MAX_VIEWS = 8
# RTP timestamps are 32-bit and start at a random value: a stream's media time wraps with them.
_RTP_WRAP = 1 << 32

View = Optional[str]
"""A stream id, or ``None`` for idle video."""


class VideoFrame:
    """One decoded video frame; immutable.

    ``data`` is an RGB ``uint8`` array of shape ``(height, width, 3)``, read-only,
    converted on first access; ``to_ndarray("bgr24")`` gives OpenCV's layout.

    Where the frame belongs: ``stream_id`` (``None`` for idle video, which flows
    before and between streams), ``prompt`` (the applied prompt in force when the
    frame arrived; ``None`` for idle frames), ``index`` (the frame's number within
    its stream, 0 for the stream's first frame; idle frames count within their
    idle period) and ``timestamp_ms`` (media-clock milliseconds since the stream's
    first frame). Connection-wide: ``connection_index`` (frames since connect),
    ``media_timestamp_ms`` (the media clock as received) and ``received_at``
    (``time.monotonic()`` at decode).
    """

    __slots__ = (
        "_source",
        "_rgb",
        "_lock",
        "width",
        "height",
        "timestamp_ms",
        "index",
        "connection_index",
        "media_timestamp_ms",
        "received_at",
        "stream_id",
        "prompt",
    )

    _source: av.VideoFrame | None
    _rgb: np.ndarray | None
    _lock: threading.Lock
    width: int
    height: int
    timestamp_ms: int
    index: int
    connection_index: int
    media_timestamp_ms: int
    received_at: float
    stream_id: str | None
    prompt: str | None

    def __init__(
        self,
        source: av.VideoFrame | np.ndarray,
        *,
        index: int = 0,
        received_at: float | None = None,
        stream_id: str | None = None,
        prompt: str | None = None,
        timestamp_ms: int | None = None,
        connection_index: int | None = None,
        media_timestamp_ms: int | None = None,
    ) -> None:
        """Wrap a decoded PyAV frame (converted lazily) or an RGB array (copied unless read-only)."""
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
            media_ms = media_clock_ms(source)
        if media_timestamp_ms is not None:
            media_ms = media_timestamp_ms
        setter(self, "_lock", threading.Lock())
        setter(self, "width", width)
        setter(self, "height", height)
        setter(self, "timestamp_ms", media_ms if timestamp_ms is None else timestamp_ms)
        setter(self, "index", index)
        setter(self, "connection_index", index if connection_index is None else connection_index)
        setter(self, "media_timestamp_ms", media_ms)
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
                    assert self._source is not None  # a frame holds RGB or its decoded source
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
        """The frame in another layout, converted from the decoded source (not from ``data``).

        ``"bgr24"`` is OpenCV's layout (``cv2.imshow(name, frame.to_ndarray("bgr24"))``);
        ``"gray"``, ``"yuv420p"`` and the other PyAV formats work too. The result is a
        new, writable array on each call; ``data`` stays read-only (copy it,
        ``frame.data.copy()``, to draw on it).
        """
        if format == "rgb24":
            return self.data
        if self._source is None:
            if format == "bgr24":
                return np.ascontiguousarray(self.data[:, :, ::-1])
            raise ValueError(f"format {format!r} needs a decoded source frame; this frame holds RGB only")
        with self._lock:
            converted: np.ndarray = self._source.to_ndarray(format=format, threads=1)
            return converted

    def __repr__(self) -> str:
        return (
            f"VideoFrame(stream_id={self.stream_id!r}, index={self.index}, timestamp_ms={self.timestamp_ms}, "
            f"{self.width}x{self.height})"
        )




def media_clock_ms(source: av.VideoFrame) -> int:
    """The media clock of a decoded frame in milliseconds (0 without a timestamp)."""
    if source.pts is None or not source.time_base:
        return 0
    return int(source.pts * source.time_base * 1000)


class FrameNumbering:
    """Numbers one connection's decoded frames: across the connection, and within each stream.

    Used on the loop thread by the session that decodes the frames. A new
    stream (or a new idle period) restarts ``index`` at 0 and ``timestamp_ms``
    at 0, measured on the media clock from the stream's first frame.
    """

    _NO_VIEW = object()

    def __init__(self) -> None:
        self._connection_index = 0
        self._view: object = self._NO_VIEW
        self._index = 0
        self._first: tuple[int, Any] | None = None
        self._first_received_at = 0.0

    def frame(self, decoded: av.VideoFrame, *, stream_id: str | None, prompt: str | None) -> VideoFrame:
        """Wrap ``decoded``, received now, as a frame of ``stream_id`` (``None``: idle)."""
        received_at = time.monotonic()
        if stream_id != self._view:
            self._view, self._index, self._first = stream_id, 0, None
        if self._first is None:
            self._first = (decoded.pts, decoded.time_base) if decoded.pts is not None and decoded.time_base else (0, None)
            self._first_received_at = received_at
        first_pts, time_base = self._first
        if time_base is not None and decoded.pts is not None and decoded.time_base == time_base:
            ticks = decoded.pts - first_pts
            if ticks < 0:
                ticks += _RTP_WRAP
            stream_ms = int(ticks * time_base * 1000)
        else:
            stream_ms = int((received_at - self._first_received_at) * 1000)
        frame = VideoFrame(
            decoded,
            index=self._index,
            connection_index=self._connection_index,
            timestamp_ms=stream_ms,
            received_at=received_at,
            stream_id=stream_id,
            prompt=prompt if stream_id is not None else None,
        )
        self._index += 1
        self._connection_index += 1
        return frame


class FrameBuffer:
    """A bounded, thread-safe store of frames, one queue per view, with forward-only reads.

    Fed by the event-loop thread (:meth:`put`, :meth:`set_stream`, :meth:`close`);
    read by any number of caller threads. A view is a stream id, or ``None`` for
    idle video; the *current* view is the stream most recently started (idle
    video before any). At most ``capacity`` unread frames are held in all: when
    full, frames of views nobody pulls go first (``unrequested``), then the
    oldest of a pulled view (``dropped``). Queues hold only unread frames, so a
    read position never moves back.

    ``close()`` wakes every waiter. Frames already received stay readable (a
    puller gets them, then the error or the end) until ``close(discard=True)``.
    """

    def __init__(self, capacity: int = 32) -> None:
        """A buffer that holds at most ``capacity`` unread frames."""
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"buffer_size must be an int >= 1, got {capacity!r}")
        self.capacity = capacity
        self._cond = threading.Condition()
        self._queues: dict[View, collections.deque[VideoFrame]] = {}
        self._newest: dict[View, VideoFrame] = {}
        self._pulled: set[View] = set()
        self._held = 0
        self._arrivals: collections.deque[float] = collections.deque(maxlen=_FPS_WINDOW)
        self._current: View = None
        self._running: View = None
        self._closed = False
        self._error: BaseException | None = None
        self.received = 0
        self.delivered = 0
        self.superseded = 0
        self.dropped = 0
        self.unrequested = 0

    # -- producer side (event-loop thread) ---------------------------------------------------

    def put(self, frame: VideoFrame) -> None:
        """Add a frame to its view, making room if the buffer is full."""
        with self._cond:
            if self._closed:
                return
            view = frame.stream_id
            self._queues.setdefault(view, collections.deque()).append(frame)
            self._held += 1
            self._newest.pop(view, None)
            self._newest[view] = frame
            if len(self._newest) > _MAX_VIEWS:
                self._forget_oldest_view()
            self._arrivals.append(frame.received_at)
            self.received += 1
            if self._held > self.capacity:
                self._make_room()
            self._cond.notify_all()

    def set_stream(self, stream_id: str | None) -> None:
        """A stream started (its id: it becomes the current view) or the running one ended (``None``)."""
        with self._cond:
            self._running = stream_id
            if stream_id is not None:
                self._current = stream_id
            self._cond.notify_all()

    def close(self, error: BaseException | None = None, *, discard: bool = False, end_stream: bool = False) -> None:
        """Stop taking frames; waiters get ``error`` if given, else a clean end. Idempotent.

        ``discard`` also lets go of every frame held (the caller left);
        ``end_stream`` ends the running stream in the same step (the server's
        duration limit ends the stream and the connection together).
        """
        with self._cond:
            if end_stream:
                self._running = None
            if not self._closed:
                self._closed = True
                self._error = error
            if discard:
                self.unrequested += self._held
                self._queues.clear()
                self._newest.clear()
                self._held = 0
            self._cond.notify_all()

    def _make_room(self) -> None:
        """Let one frame go: first from views nobody pulls, else the oldest of a pulled view."""
        for wanted in (False, True):
            for view, queue in self._queues.items():
                if queue and ((view == self._current or view in self._pulled) is wanted):
                    queue.popleft()
                    self._held -= 1
                    if wanted:
                        self.dropped += 1
                    else:
                        self.unrequested += 1
                    return

    def _forget_oldest_view(self) -> None:
        for view in self._newest:
            if view is not None and view != self._current:
                del self._newest[view]
                queue = self._queues.pop(view, None)
                if queue:
                    self._held -= len(queue)
                    self.unrequested += len(queue)
                self._pulled.discard(view)
                return

    # -- consumer side (any thread) ------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the connection behind the buffer is gone."""
        return self._closed

    @property
    def buffered(self) -> int:
        """Unread frames held now, over every view."""
        return self._held

    @property
    def current_view(self) -> View:
        """The stream most recently started (``None`` before any)."""
        return self._current

    def measured_fps(self) -> float:
        """Frames per second over the last :data:`_FPS_WINDOW` frames received."""
        with self._cond:
            times = self._arrivals
            if len(times) < 2:
                return 0.0
            span = times[-1] - times[0]
            return (len(times) - 1) / span if span > 0 else 0.0

    def get(self, timeout: float | None = None, view: StreamView = CURRENT_STREAM) -> VideoFrame:
        """The oldest unread frame of ``view``, waiting up to ``timeout`` seconds for one."""
        with self._cond:
            self._wait(lambda: self._has_unread(self._resolve(view)) or self._over(self._resolve(view)), timeout, "get_frame")
            chosen = self._resolve(view)
            queue = self._queues.get(chosen)
            if queue:
                return self._hand_out(chosen, queue, queue.popleft())
            raise self._no_more(chosen)

    def latest(self, view: StreamView = CURRENT_STREAM, *, peek: bool = False) -> VideoFrame | None:
        """The newest frame of ``view`` (unread ones first), or ``None``; never waits.

        Older unread frames of the view count as superseded. After the
        connection failed and every frame was read, raises its error.
        ``peek`` looks without handing anything out: no read position moves.
        """
        with self._cond:
            chosen = self._resolve(view)
            queue = self._queues.get(chosen)
            if peek:
                if self._closed and self._error is not None and not queue:
                    raise self._error_copy()
                return queue[-1] if queue else None if self._closed else self._newest.get(chosen)
            if queue:
                newest = queue.pop()
                self.superseded += len(queue)
                self._held -= len(queue)
                queue.clear()
                return self._hand_out(chosen, queue, newest)
            if self._closed:
                if self._error is not None:
                    raise self._error_copy()
                return None
            return self._newest.get(chosen)

    def wait_after(self, moment: float, timeout: float | None = None, view: StreamView = CURRENT_STREAM) -> VideoFrame:
        """The first unread frame of ``view`` received strictly after ``moment`` (``time.monotonic()``).

        Unread frames before it count as superseded.
        """

        def found(chosen: View) -> VideoFrame | None:
            for frame in self._queues.get(chosen, ()):
                if frame.received_at > moment:
                    return frame
            return None

        with self._cond:
            self._wait(lambda: found(self._resolve(view)) is not None or self._over(self._resolve(view)), timeout, "wait_for_frame")
            chosen = self._resolve(view)
            frame = found(chosen)
            if frame is None:
                raise self._no_more(chosen)
            queue = self._queues[chosen]
            while queue[0] is not frame:
                queue.popleft()
                self._held -= 1
                self.superseded += 1
            return self._hand_out(chosen, queue, queue.popleft())

    def iterate(self, limit: int | None = None, timeout: float | None = None, view: StreamView = CURRENT_STREAM) -> Iterator[VideoFrame]:
        """Yield the frames of ``view`` in order until ``limit``, the end of its stream, or the connection's end.

        The current view (the default) before any stream started yields idle
        frames and moves on to the first stream that starts. An explicit idle
        view (``None``) ends when a stream starts.
        """
        with self._cond:
            follow_next = view is CURRENT_STREAM and self._current is None
            followed: View = self._resolve(view)
        count = 0
        while limit is None or count < limit:
            with self._cond:

                def ready(followed: View = followed, follow_next: bool = follow_next) -> bool:
                    if follow_next and self._current is not None:
                        return True
                    return self._has_unread(followed) or self._ended(followed) or self._closed

                self._wait(ready, timeout, "frames")
                if follow_next and self._current is not None:
                    followed, follow_next = self._current, False
                queue = self._queues.get(followed)
                if queue:
                    frame = self._hand_out(followed, queue, queue.popleft())
                elif self._ended(followed):
                    return
                elif self._error is not None:
                    raise self._error_copy()
                else:
                    return
            count += 1
            yield frame

    # -- helpers (the condition is held) -----------------------------------------------------

    def _resolve(self, view: StreamView) -> View:
        return self._current if view is CURRENT_STREAM else view

    def _has_unread(self, view: View) -> bool:
        return bool(self._queues.get(view))

    def _ended(self, view: View) -> bool:
        """A stream view whose stream is over, or the idle view while a stream runs."""
        if view is None:
            return self._running is not None
        return view != self._running

    def _over(self, view: View) -> bool:
        """Nothing more will come to ``view``: its stream ended, or the connection did."""
        return self._closed or (view is not None and view != self._running)

    def _hand_out(self, view: View, queue: collections.deque[VideoFrame], frame: VideoFrame) -> VideoFrame:
        self._held -= 1
        self.delivered += 1
        self._pulled.add(view)
        return frame

    def _no_more(self, view: View) -> BaseException:
        if self._closed:
            if self._error is not None:
                return self._error_copy()
            return OdysseyStateError("the client is disconnected; call connect() to receive frames again", reason="not_connected")
        return OdysseyStateError(
            f"Stream {view} has ended and every frame of it was handed out; call start_stream() for a new one "
            "(or pass stream_id=None for idle video)",
            reason="stream_ended",
        )

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

    def _wait(self, predicate: Callable[[], bool], timeout: float | None, what: str) -> None:
        deadline = Deadline(timeout, what)
        while not predicate():
            if deadline.expired():
                raise OdysseyTimeoutError(f"no frame within {timeout:g} s ({what})")
            self._cond.wait(deadline.slice())


class MediaStream:
    """The video of one connection, with the frame-pulling calls.

    Returned by :meth:`Odyssey.connect`; the client's own pulling calls act on
    the stream of its current connection. Each pulling call reads a *view*:
    by default (``stream_id=CURRENT_STREAM``) the stream most recently started,
    so after ``start_stream()`` only that stream's frames come back; pass
    ``stream_id=None`` for idle video (before and between streams) or a stream
    id for the frames of that stream still buffered.
    """

    def __init__(self, buffer: FrameBuffer, default_timeout: float | None) -> None:
        """Pulling calls over ``buffer``; ``default_timeout`` stands for :data:`DEFAULT_TIMEOUT`."""
        self._buffer = buffer
        self._default_timeout = default_timeout

    @property
    def active(self) -> bool:
        """Whether the connection behind this stream is still up."""
        return not self._buffer.closed

    def get_frame(self, timeout: Timeout = DEFAULT_TIMEOUT, *, stream_id: StreamView = CURRENT_STREAM) -> VideoFrame:
        """The oldest unread frame of the view; waits up to ``timeout`` s (default: the client's).

        Raises :class:`OdysseyStateError` when the view's stream has ended and
        every frame of it was handed out.
        """
        return self._buffer.get(self._timeout(timeout), check_view(stream_id))

    def latest_frame(self, *, stream_id: StreamView = CURRENT_STREAM, peek: bool = False) -> VideoFrame | None:
        """The newest frame of the view, or ``None`` before its first; never waits.

        For control loops. Unread older frames are skipped (counted as
        superseded); the same frame comes back until a newer one arrives.
        ``peek=True`` looks without handing the frame out, so another reader's
        ``get_frame()`` / ``frames()`` still gets every frame (a preview beside a recorder).
        """
        return self._buffer.latest(check_view(stream_id), peek=peek)

    def wait_for_frame(
        self, after: Any = None, timeout: Timeout = DEFAULT_TIMEOUT, *, stream_id: StreamView = CURRENT_STREAM
    ) -> VideoFrame:
        """The first unread frame of the view received after ``after``: a ``time.monotonic()``
        value or what ``interact()`` / ``start_stream()`` returned (default: now)."""
        return self._buffer.wait_after(moment_of(after), self._timeout(timeout), check_view(stream_id))

    def frames(
        self, limit: int | None = None, timeout: Timeout = DEFAULT_TIMEOUT, *, stream_id: StreamView = CURRENT_STREAM
    ) -> Iterator[VideoFrame]:
        """Iterate over the view's frames in order; ends when its stream ends (also by the
        server's duration limit) or the client disconnects, and raises if the connection failed.

        ``timeout`` bounds the wait for each frame.
        """
        check_limit(limit)
        return self._buffer.iterate(limit, self._timeout(timeout), check_view(stream_id))

    def _timeout(self, timeout: Any) -> float | None:
        return self._default_timeout if timeout is DEFAULT_TIMEOUT else check_timeout(timeout)

    def __iter__(self) -> Iterator[VideoFrame]:
        return self.frames()


def check_view(stream_id: Any) -> StreamView:
    """Validate ``stream_id=`` of a pulling call: a stream id, ``None`` (idle video) or :data:`CURRENT_STREAM`."""
    if stream_id is CURRENT_STREAM or stream_id is None or (isinstance(stream_id, str) and stream_id):
        return stream_id
    raise TypeError(
        f"stream_id must be a stream id string, None (idle video) or CURRENT_STREAM, not {stream_id!r}"
    )


def moment_of(after: Any) -> float:
    """A ``time.monotonic()`` moment from a number, an acknowledgement, or ``None`` (now)."""
    if after is None:
        return time.monotonic()
    moment = getattr(after, "received_at", None)
    if isinstance(moment, float):
        return moment
    if not isinstance(after, bool) and isinstance(after, numbers.Real):
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
