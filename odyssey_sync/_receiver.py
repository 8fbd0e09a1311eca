"""The runtime of one connection that receives video, shared by the client and the spectator.

A :class:`Receiver` owns one loop thread (the WebRTC session), one dispatcher
thread (user handlers), the frame buffer and its pulling calls, and knows
which :class:`Phase` the connection is in. Its phase changes under one lock,
so each end of a connection is reported exactly once, whoever sees it first:
the user leaving, or the server or the network ending it.
"""

from __future__ import annotations

import enum
import gc
import logging
import os
import threading
from typing import Any, Callable, Coroutine, Generic, TypeVar

from ._deadline import Deadline
from ._dispatch import Dispatcher
from ._heap import trim_heap
from ._media import VideoIn, media_stats
from .frames import FrameBuffer, MediaStream
from .loop_thread import LoopThread
from .types import Stats

__all__ = ["Phase", "Receiver"]

logger = logging.getLogger("odyssey_sync.receiver")

S = TypeVar("S")

CLOSE_BUDGET_S = 1.5
"""How long closing a session may take on ``disconnect()`` (signaling goodbye, WHEP DELETE, peer close,
each bounded by what is left); stopping the two threads afterwards keeps a disconnect within about 2 s."""


class Phase(enum.Enum):
    """Where a connection is in its life."""

    OPENING = "opening"
    """Connecting; the call that opens it reports how that went."""
    OPEN = "open"
    """Up: frames flow."""
    ENDED = "ended"
    """The server or the network ended it (with an error or cleanly); reported."""
    LEFT = "left"
    """The user left, or opening failed; reported."""


class Receiver(Generic[S]):
    """One connection's threads, buffer and session (of type ``S``); released exactly once.

    Holds no reference to the object that made it (client or spectator), so
    that object can be garbage-collected and its finalizer release this.
    """

    def __init__(
        self,
        *,
        name: str,
        buffer_size: int,
        timeout: float | None,
        on_error: Callable[[], Callable[[BaseException, bool], Any] | None] | None = None,
    ) -> None:
        """Threads named ``name``; ``timeout`` is the default of the pulling calls; ``on_error()``
        gives the handler that hears of exceptions raised by other handlers."""
        self.pid = os.getpid()
        self.loop = LoopThread(name)
        self.dispatcher = Dispatcher(on_error, max_pending_frames=buffer_size, name=name.replace("loop", "dispatch"))
        self.buffer = FrameBuffer(buffer_size)
        self.media = MediaStream(self.buffer, timeout)
        self.session: S | None = None
        self.video: VideoIn | None = None
        self.end_error: BaseException | None = None
        self._phase = Phase.OPENING
        self._ended_while_opening = False
        self._lock = threading.Lock()
        self._release_lock = threading.Lock()
        self._released = False

    @property
    def phase(self) -> Phase:
        """The connection's phase."""
        return self._phase

    @property
    def released(self) -> bool:
        """Whether the threads and the session are gone."""
        return self._released

    @property
    def in_this_process(self) -> bool:
        """False in a child process after ``os.fork()``: the threads and sockets are the parent's."""
        return os.getpid() == self.pid

    def stats(self) -> Stats:
        """The connection's counters; no I/O (transport counters are refreshed on the loop every second)."""
        handler_drops = self.dispatcher.frames_dropped
        if self.video is None:
            return media_stats(self.buffer, handler_drops, None, (0, 0))
        return self.video.stats(handler_drops)

    # -- phase changes (each under the lock; the return says whether to report) --------------------

    def opened(self) -> tuple[bool, BaseException | None]:
        """Opening succeeded: OPEN. Returns ``(ended, error)``: whether it already ended meanwhile
        (then report that now, as any later end), and with what error."""
        with self._lock:
            if self._phase is Phase.OPENING:
                self._phase = Phase.OPEN
            return self._ended_while_opening, self.end_error

    def open_failed(self) -> None:
        """Opening failed; the call that opened it reports why."""
        with self._lock:
            self._phase = Phase.LEFT

    def server_ended(self, error: BaseException | None) -> bool:
        """The server or the network ended the connection. True when the caller must report it (once)."""
        with self._lock:
            if self._phase is Phase.OPENING:
                self._ended_while_opening, self.end_error = True, error
                return False
            if self._phase is not Phase.OPEN:
                return False
            self._phase, self.end_error = Phase.ENDED, error
            return True

    def leave(self) -> Phase:
        """The user leaves: LEFT. Returns the phase it was in (OPEN: report the disconnect; ENDED/LEFT: reported)."""
        with self._lock:
            previous, self._phase = self._phase, Phase.LEFT
            if previous is Phase.ENDED:
                self._phase = Phase.ENDED
            return previous

    # -- teardown -----------------------------------------------------------------------------------

    def release(
        self, close: Callable[[S, Deadline], Coroutine[Any, Any, Any]], *, discard: bool = True, what: str
    ) -> None:
        """Close the session with ``close(session, deadline)`` on the loop, within the release budget;
        stop both threads; give the memory back.

        ``discard`` lets go of the frames still buffered (the user left);
        without it they stay readable until the user disconnects. Idempotent;
        a no-op in a forked child (its copies of the threads do not run).
        """
        if not self.in_this_process:
            return
        with self._release_lock:
            if self._released:
                if discard:
                    self.buffer.close(discard=True)
                return
            self._released = True
            session, self.session = self.session, None
            deadline = Deadline(CLOSE_BUDGET_S, what)
            coroutine = close(session, deadline) if session is not None else None
            if coroutine is not None:
                if self.loop.is_running:
                    try:
                        self.loop.run(coroutine, deadline)
                    except BaseException as exc:  # best effort: stopping the loop cancels what is left
                        logger.debug("%s: %r", what, exc)
                else:
                    coroutine.close()
            self.buffer.close(discard=discard)
            self.loop.stop(timeout=1.0)
            self.dispatcher.stop(timeout=0.5)
            # aiortc's peer objects live in reference cycles: collect them and return the pages to the OS.
            gc.collect()
            trim_heap()
