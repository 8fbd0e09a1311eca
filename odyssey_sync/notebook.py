"""A live preview of a stream inside Jupyter (needs the ``notebook`` extra: ipywidgets).

::

    from odyssey_sync.notebook import preview

    client.connect()
    view = preview(client)           # shows itself as the cell's output; updates in the background
    client.start_stream("A cat on a windowsill", portrait=False)
    client.interact("The cat jumps")
    view.stop()                      # or it stops by itself when the client disconnects

A background thread peeks at ``latest_frame(peek=True)`` at most ``fps`` times a second,
JPEG-encodes new frames with PyAV (scaled to ``width`` pixels) and puts them
in an ``ipywidgets.Image``. The kernel is never blocked, and frames nobody
previews cost nothing. A preview of a client follows its current stream: after
``end_stream()`` it keeps the last frame, and the next ``start_stream()`` brings
it back to life.

The preview only peeks: ``get_frame()`` / ``frames()`` in the same notebook
(a recorder, a dataset writer) still get every frame.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
from fractions import Fraction
from typing import Any, Protocol

import av
import numpy as np

from ._extras import require
from .errors import OdysseyError, OdysseyTimeoutError
from .frames import VideoFrame, check_timeout, moment_of

__all__ = ["FrameSource", "Preview", "preview"]

_widgets = require("ipywidgets", "notebook", "The notebook preview (odyssey_sync.notebook)")

logger = logging.getLogger("odyssey_sync.notebook")

_STOP_TIMEOUT_S = 2.0


class FrameSource(Protocol):
    """What a preview reads: :class:`~odyssey_sync.Odyssey`, a ``MediaStream`` or a ``SpectatorConnection``."""

    def latest_frame(self, *, peek: bool = ...) -> VideoFrame | None:
        """The newest frame, or ``None``; never waits (``peek=True``: without handing it out)."""


class Preview:
    """A live view of a frame source in an ``ipywidgets.Image``; made by :func:`preview`.

    ``widget`` is the image (display it, or let the preview display itself as
    a cell's value). ``frames_shown`` counts the frames put in it and
    ``last_shown`` is the newest. The background thread stops on :meth:`stop`,
    when the source disconnects, or when reading fails (``error`` then holds
    the exception).
    """

    def __init__(self, source: FrameSource, *, fps: float = 10.0, width: int | None = 640, quality: int = 5) -> None:
        if not callable(getattr(source, "latest_frame", None)):
            raise TypeError(
                f"preview() needs a client, MediaStream or SpectatorConnection (with latest_frame()), "
                f"not {type(source).__name__}"
            )
        self._source = source
        self._interval = 1.0 / _check_fps(fps)
        self._width = _check_width(width)
        self._quality = _check_quality(quality)
        self.widget: Any = _widgets.Image(format="jpeg")
        self.frames_shown = 0
        self.last_shown: VideoFrame | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._shown = threading.Condition()
        self._active = False

    @property
    def running(self) -> bool:
        """Whether the background thread is updating the widget."""
        return self._active

    def start(self) -> Preview:
        """Start updating the widget (again, after a stop); returns the preview."""
        if not _connected(self._source):
            raise OdysseyError("the source is not connected; call connect() before preview()")
        with self._lock:
            if self.running:
                return self
            self._stop = threading.Event()
            self.error = None
            self._active = True
            self._thread = threading.Thread(target=self._run, args=(self._stop,), name="odyssey-preview", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = _STOP_TIMEOUT_S) -> bool:
        """Stop updating the widget (it keeps the last image); returns whether the thread ended in time."""
        self._stop.set()
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the preview stops (``stop()``, a disconnect or an error); returns whether it did."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def wait_for_frame(self, after: Any = None, timeout: float | None = 10.0) -> VideoFrame:
        """The first frame shown that was received after ``after`` (a ``time.monotonic()``
        value, or what ``interact()`` / ``start_stream()`` returned; default: now).

        Raises :class:`OdysseyTimeoutError` after ``timeout`` seconds, and
        :class:`OdysseyError` if the preview stops first.
        """
        moment = moment_of(after)
        timeout = check_timeout(timeout)

        def shown_after() -> bool:
            frame = self.last_shown
            return frame is not None and frame.received_at > moment

        with self._shown:
            if not self._shown.wait_for(lambda: shown_after() or not self.running, timeout):
                raise OdysseyTimeoutError(f"the preview showed no new frame within {timeout:g} s")
            if not shown_after():
                raise OdysseyError("the preview stopped before showing a frame (the source disconnected or failed)")
            frame = self.last_shown
        assert frame is not None
        return frame

    def _run(self, stop: threading.Event) -> None:
        try:
            self._show_frames(stop)
        finally:
            with self._shown:
                if self._thread is threading.current_thread():  # not a thread that a restart replaced
                    self._active = False
                self._shown.notify_all()

    def _show_frames(self, stop: threading.Event) -> None:
        encoder = _JpegEncoder(self._width, self._quality)
        shown: VideoFrame | None = None
        while not stop.is_set() and _connected(self._source):
            try:
                frame = self._source.latest_frame(peek=True)
            except OdysseyError as exc:
                self.error = exc
                return
            if frame is not None and frame is not shown:
                try:
                    self.widget.value = encoder.encode(frame.data)
                except Exception as exc:  # a widget or encoder failure ends the preview, never the kernel
                    logger.warning("the preview stopped: %s", exc)
                    self.error = exc
                    return
                with self._shown:
                    shown = self.last_shown = frame
                    self.frames_shown += 1
                    self._shown.notify_all()
            stop.wait(self._interval)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __enter__(self) -> Preview:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Preview({state}, frames_shown={self.frames_shown})"


def preview(
    source: FrameSource, *, fps: float = 10.0, width: int | None = 640, quality: int = 5, start: bool = True
) -> Preview:
    """A live preview of ``source`` (a connected client, ``MediaStream`` or ``SpectatorConnection``).

    Shows at most ``fps`` frames a second, scaled to ``width`` pixels wide
    (``None``: full size), JPEG ``quality`` 2 (best) to 31. Started at once
    unless ``start=False``. Evaluate it as a cell's last expression, or
    ``display(p.widget)``, to see it.
    """
    view = Preview(source, fps=fps, width=width, quality=quality)
    return view.start() if start else view


class _JpegEncoder:
    """A PyAV MJPEG encoder kept across frames (rebuilt when the size changes).

    Kept rather than made per frame as ``images._encode_jpeg`` does: at 640 px
    that is 1.0 instead of ~3.9 ms a frame, a third of what the preview costs.
    """

    def __init__(self, width: int | None, quality: int) -> None:
        self._width = width
        self._quality = quality
        self._context: Any = None
        self._pts = 0

    def encode(self, rgb: np.ndarray) -> bytes:
        height, width = rgb.shape[:2]
        out_w, out_h = _scaled(width, height, self._width)
        context = self._context
        if context is None or (context.width, context.height) != (out_w, out_h):
            context = av.CodecContext.create("mjpeg", "w")
            context.width, context.height, context.pix_fmt = out_w, out_h, "yuvj420p"
            context.time_base = Fraction(1, 1000)
            context.options = {"qmin": str(self._quality), "qmax": str(self._quality)}
            self._context = context
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        # Fast bilinear: about half the time of the default bilinear scaler, and plenty for a preview.
        image = image.reformat(width=out_w, height=out_h, format="yuvj420p", interpolation="FAST_BILINEAR")
        image.pts = self._pts
        self._pts += 1
        return b"".join(bytes(packet) for packet in context.encode(image))


def _scaled(width: int, height: int, target: int | None) -> tuple[int, int]:
    if target is None or target >= width:
        return width - width % 2, height - height % 2
    scaled_h = max(2, round(height * target / width))
    return target - target % 2, scaled_h - scaled_h % 2


def _connected(source: object) -> bool:
    for name in ("is_connected", "active"):
        value = getattr(source, name, None)
        if isinstance(value, bool):
            return value
    return True


def _check_fps(fps: Any) -> float:
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not 0 < float(fps) < math.inf:
        raise ValueError(f"fps must be a number > 0 (frames shown per second), got {fps!r}")
    return float(fps)


def _check_width(width: Any) -> int | None:
    if width is None:
        return None
    if isinstance(width, bool) or not isinstance(width, int) or width < 16:
        raise ValueError(f"width must be None (full size) or a number of pixels >= 16, got {width!r}")
    return width


def _check_quality(quality: Any) -> int:
    if isinstance(quality, bool) or not isinstance(quality, int) or not 2 <= quality <= 31:
        raise ValueError(f"quality must be an int from 2 (best) to 31 (smallest), got {quality!r}")
    return quality
