"""Fault knobs: make the local server misbehave on purpose, the way the hosted one can.

Attribute knobs are consulted by the next matching request and (for the
one-shot ones) cleared by it; methods act at once on every live session.
Everything here is thread-safe: tests set knobs from their own thread while
the server runs on its loop thread.
"""

from __future__ import annotations

import threading
from typing import Awaitable, Callable, Protocol

__all__ = ["FaultTarget", "Faults"]


class FaultTarget(Protocol):
    """What a live session offers to the fault methods (implemented by the streamer)."""

    async def drop_signaling(self, code: int) -> None:
        """Close the signaling socket with ``code``."""

    async def send_signaling_error(self, reason: str) -> None:
        """Send a signaling ``error`` with ``reason``."""

    async def send_raw_data(self, text: str) -> None:
        """Send ``text`` as is on ``streamerToClient``."""

    async def fail_peer(self) -> None:
        """Close the peer connection without any signaling message."""

    async def set_video_stalled(self, stalled: bool) -> None:
        """Stop or resume sending video frames."""


Action = Callable[[FaultTarget], Awaitable[None]]


class Faults:
    """The fault knobs of one server (``server.faults``).

    Request knobs:

    * ``session_request_503``: answer the next N ``/sessions/request`` with 503
      (``-1``: every one, until set back to 0).
    * ``usage_error``: answer the next ``/sessions/request`` with 429 and the
      body of this usage code (e.g. ``"MONTHLY_LIMIT_REACHED"``), inside
      ``{"detail": ...}`` when ``usage_error_wrapped`` (default) or top-level.
    * ``stream_error_on_start`` / ``stream_error_on_interact``: answer the next
      ``interactive_stream_start`` / ``update`` with ``interactive_stream_error``
      of this reason instead of the normal reply; ``"session_timeout"`` then
      closes the connection like the real limit.
    * ``ignore_message_types``: incoming messages (signaling or data channel) of
      these types are dropped unread, so their reply never comes.

    Methods (each acts on every live session and returns how many it reached):
    :meth:`drop_signaling`, :meth:`send_signaling_error`, :meth:`send_raw_data`,
    :meth:`fail_peer`, :meth:`stall_video`.
    """

    def __init__(self) -> None:
        """All knobs off; no session methods until a server attaches."""
        self._lock = threading.Lock()
        self._session_request_503 = 0
        self._usage_error: str | None = None
        self._usage_error_wrapped = True
        self._stream_error_on_start: str | None = None
        self._stream_error_on_interact: str | None = None
        self._ignore_message_types: set[str] = set()
        self._video_stalled = False
        self._act: Callable[[Action], int] | None = None

    # -- request knobs ---------------------------------------------------------------------

    @property
    def session_request_503(self) -> int:
        """How many coming ``/sessions/request`` answer 503 (``-1``: all)."""
        with self._lock:
            return self._session_request_503

    @session_request_503.setter
    def session_request_503(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise ValueError(f"session_request_503 must be an int >= -1, got {value!r}")
        with self._lock:
            self._session_request_503 = value

    @property
    def usage_error(self) -> str | None:
        """The usage code the next ``/sessions/request`` answers 429 with, if any."""
        with self._lock:
            return self._usage_error

    @usage_error.setter
    def usage_error(self, value: str | None) -> None:
        with self._lock:
            self._usage_error = value

    @property
    def usage_error_wrapped(self) -> bool:
        """Whether the 429 body is ``{"detail": {...}}`` (True) or top-level (False)."""
        with self._lock:
            return self._usage_error_wrapped

    @usage_error_wrapped.setter
    def usage_error_wrapped(self, value: bool) -> None:
        with self._lock:
            self._usage_error_wrapped = bool(value)

    @property
    def stream_error_on_start(self) -> str | None:
        """The reason the next start is refused with, if any."""
        with self._lock:
            return self._stream_error_on_start

    @stream_error_on_start.setter
    def stream_error_on_start(self, value: str | None) -> None:
        with self._lock:
            self._stream_error_on_start = value

    @property
    def stream_error_on_interact(self) -> str | None:
        """The reason the next update is refused with, if any."""
        with self._lock:
            return self._stream_error_on_interact

    @stream_error_on_interact.setter
    def stream_error_on_interact(self, value: str | None) -> None:
        with self._lock:
            self._stream_error_on_interact = value

    @property
    def ignore_message_types(self) -> set[str]:
        """Incoming message types dropped unread (a live set: ``.add()`` works)."""
        return self._ignore_message_types

    @ignore_message_types.setter
    def ignore_message_types(self, value: set[str]) -> None:
        with self._lock:
            self._ignore_message_types = set(value)

    @property
    def video_stalled(self) -> bool:
        """Whether video is stalled (new sessions start stalled too)."""
        with self._lock:
            return self._video_stalled

    def reset(self) -> None:
        """Turn every knob off and resume video."""
        with self._lock:
            self._session_request_503 = 0
            self._usage_error = None
            self._usage_error_wrapped = True
            self._stream_error_on_start = None
            self._stream_error_on_interact = None
            self._ignore_message_types = set()
        self.stall_video(False)

    # -- consumed by the server ------------------------------------------------------------

    def take_session_request_503(self) -> bool:
        """Whether this ``/sessions/request`` must answer 503 (counts one down)."""
        with self._lock:
            if self._session_request_503 == -1:
                return True
            if self._session_request_503 > 0:
                self._session_request_503 -= 1
                return True
            return False

    def take_usage_error(self) -> tuple[str, bool] | None:
        """``(code, wrapped)`` for this ``/sessions/request``, clearing the knob; or ``None``."""
        with self._lock:
            code, self._usage_error = self._usage_error, None
            return None if code is None else (code, self._usage_error_wrapped)

    def take_stream_error_on_start(self) -> str | None:
        """The reason to refuse this start with, clearing the knob; or ``None``."""
        with self._lock:
            reason, self._stream_error_on_start = self._stream_error_on_start, None
            return reason

    def take_stream_error_on_interact(self) -> str | None:
        """The reason to refuse this update with, clearing the knob; or ``None``."""
        with self._lock:
            reason, self._stream_error_on_interact = self._stream_error_on_interact, None
            return reason

    def ignores(self, message_type: str) -> bool:
        """Whether incoming messages of this type are dropped."""
        return message_type in self._ignore_message_types

    # -- acting on live sessions -------------------------------------------------------------

    def attach(self, act: Callable[[Action], int] | None) -> None:
        """Called by the server: ``act(action)`` runs ``action`` on every live session, blocking."""
        with self._lock:
            self._act = act

    def _broadcast(self, action: Action) -> int:
        with self._lock:
            act = self._act
        return 0 if act is None else act(action)

    def drop_signaling(self, code: int = 4000) -> int:
        """Close every signaling socket with ``code`` (abnormal by default): clients see a fatal close."""
        return self._broadcast(lambda target: target.drop_signaling(code))

    def send_signaling_error(self, reason: str) -> int:
        """Send a signaling ``error`` with ``reason`` on every socket (the socket stays open)."""
        return self._broadcast(lambda target: target.send_signaling_error(reason))

    def send_raw_data(self, text: str) -> int:
        """Send ``text`` (typically not JSON) on every ``streamerToClient`` channel."""
        return self._broadcast(lambda target: target.send_raw_data(text))

    def fail_peer(self) -> int:
        """Close every peer connection without any signaling message: media and ICE stop."""
        return self._broadcast(lambda target: target.fail_peer())

    def stall_video(self, on: bool = True) -> int:
        """Stop (``on=True``) or resume sending video on every session, and on new ones."""
        with self._lock:
            self._video_stalled = bool(on)
        return self._broadcast(lambda target: target.set_video_stalled(bool(on)))
