"""The handler dispatcher: one thread that runs user callbacks in order.

The event-loop thread only posts; user code never runs there, so a slow or
failing handler cannot stall media or signaling.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Callable

logger = logging.getLogger("odyssey_sync.dispatch")

_STOP = object()


class Dispatcher:
    """Runs posted callbacks one at a time, in order, on a daemon thread.

    An exception in a callback is logged and passed to the error handler in
    force, ``on_error()(exc, False)``.
    Frame callbacks are bounded: when more than ``max_pending_frames`` wait,
    the oldest is skipped and counted in ``frames_dropped``.
    """

    def __init__(
        self,
        on_error: Callable[[], Callable[[BaseException, bool], Any] | None] | None = None,
        *,
        max_pending_frames: int = 32,
        name: str = "odyssey-dispatch",
    ) -> None:
        """``on_error`` returns the error handler in force (looked up when a handler fails)."""
        self._on_error = on_error
        self._max_pending_frames = max_pending_frames
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[Any, tuple[Any, ...], bool]] = collections.deque()
        self._pending_frames = 0
        self.frames_dropped = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        """The dispatcher's thread."""
        return self._thread

    def post(self, callback: Callable[..., Any] | None, *args: Any) -> None:
        """Queue ``callback(*args)``; ``None`` callbacks are ignored."""
        if callback is None:
            return
        with self._cond:
            if self._stopping:
                return
            self._queue.append((callback, args, False))
            self._cond.notify()

    def post_frame(self, callback: Callable[..., Any] | None, frame: Any) -> None:
        """Queue a frame callback, skipping the oldest queued frame if too many wait."""
        if callback is None:
            return
        with self._cond:
            if self._stopping:
                return
            if self._pending_frames >= self._max_pending_frames:
                for i, (_, _, is_frame) in enumerate(self._queue):
                    if is_frame:
                        del self._queue[i]
                        self._pending_frames -= 1
                        self.frames_dropped += 1
                        break
            self._queue.append((callback, (frame,), True))
            self._pending_frames += 1
            self._cond.notify()

    def stop(self, timeout: float = 2.0) -> None:
        """Run what is queued, then end the thread; waits at most ``timeout``."""
        with self._cond:
            if not self._stopping:
                self._stopping = True
                self._queue.append((_STOP, (), False))
                self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("a handler is still running %.1f s after disconnect; leaving it behind", timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                callback, args, is_frame = self._queue.popleft()
                if is_frame:
                    self._pending_frames -= 1
            if callback is _STOP:
                return
            try:
                callback(*args)
            except BaseException as exc:  # a user handler: contain it (sys.exit() in a handler too)
                name = getattr(callback, "__qualname__", repr(callback))
                logger.exception("handler %s raised; delivery goes on", name)
                on_error = self._on_error() if self._on_error is not None else None
                if on_error is not None and callback is not on_error:
                    try:
                        on_error(exc, False)
                    except BaseException:
                        logger.exception("on_error handler raised")
