"""Watching a broadcast: the blocking WHEP spectator.

::

    info = client.broadcast_info                     # after start_stream(..., broadcast=True)
    with odyssey_sync.connect_to_stream(info.webrtc_url, info.spectator_token) as spectator:
        frame = spectator.get_frame(timeout=5)
        for frame in spectator.frames(limit=100): ...

A spectator only watches (it cannot send prompts). Like the client, each
connection owns one loop thread (the WebRTC peer) and one dispatcher thread
(``on_video_frame`` and ``on_disconnected`` run there, never on the loop),
and neither outlives :meth:`SpectatorConnection.disconnect` or the end of the
broadcast. Frames wait in a bounded buffer until pulled, with the client's
pulling calls and semantics.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Callable, Iterator

from ._receiver import Phase, Receiver
from ._whep import WhepSession
from .errors import OdysseyConnectionError, OdysseyError, OdysseyStateError
from .frames import VideoFrame, check_limit, check_timeout, moment_of
from .protocol import jwt_payload, redact_url
from .types import CURRENT_STREAM, DEFAULT_TIMEOUT, Stats, StreamView, Timeout

__all__ = ["SpectatorConnection", "connect_to_stream"]

logger = logging.getLogger("odyssey_sync.spectator")

_ENDED_MESSAGE = "The broadcast ended (or this spectator disconnected); call connect_to_stream() to watch again"


class _Runtime(Receiver[WhepSession]):
    """The runtime of one spectator connection, and the listener of its WHEP session."""

    def __init__(self, buffer_size: int, timeout: float | None, handlers: dict[str, Callable[..., Any] | None]) -> None:
        super().__init__(
            name="odyssey-loop-spectator", buffer_size=buffer_size, timeout=timeout
        )
        self.handlers = handlers

    @property
    def ended_cleanly(self) -> bool:
        """Whether the broadcast ended or the spectator left (rather than the connection failing)."""
        return self.phase is Phase.LEFT or (self.phase is Phase.ENDED and self.end_error is None)

    # -- from the loop thread ----------------------------------------------------------------------

    def spectator_frame(self, frame: VideoFrame) -> None:
        self.dispatcher.post_frame(self.handlers.get("on_video_frame"), frame)

    def spectator_ended(self, error: BaseException | None) -> None:
        if not self.server_ended(error):
            return  # connect_to_stream() is still running and reports it itself, or the user left first
        self._report_end(error)

    def _report_end(self, error: BaseException | None) -> None:
        if error is not None:
            logger.warning("spectator connection lost: %s", error)
        self.buffer.close(error)  # before the handler runs: pullers already see the end
        self.dispatcher.post(self.handlers.get("on_disconnected"))
        # The frames that arrived stay readable until disconnect() or close().
        threading.Thread(
            target=self.close, kwargs={"discard": False}, name="odyssey-cleanup-spectator", daemon=True
        ).start()

    # -- from any thread -----------------------------------------------------------------------------

    def opened_now(self) -> None:
        """``connect_to_stream()`` succeeded; an end that came meanwhile is reported now."""
        ended, error = self.opened()
        if ended and self.server_ended(error):
            self._report_end(error)

    def end(self, *, delete: bool) -> None:
        """The user leaves: report the end once, then release."""
        if self.leave() is Phase.OPEN:
            self.buffer.close()
            self.dispatcher.post(self.handlers.get("on_disconnected"))
        self.close(delete=delete)

    def close(self, *, delete: bool = False, discard: bool = True) -> None:
        """Close the session (``DELETE`` first if ``delete``), stop both threads. Bounded; idempotent."""
        self.release(
            lambda session, deadline: session.close(delete=delete, deadline=deadline), discard=discard, what="spectator disconnect"
        )


def _release_at_exit(runtime: _Runtime) -> None:
    """Finalizer: a spectator that is garbage-collected or open at exit leaves politely."""
    runtime.close(delete=True)


class SpectatorConnection:
    """A blocking view of one broadcast stream over WHEP; made by :func:`connect_to_stream`.

    Pull frames with :meth:`get_frame`, :meth:`latest_frame`,
    :meth:`wait_for_frame` and :meth:`frames` (as on the client). Leave with
    :meth:`disconnect` (tells the server: WHEP ``DELETE``) or :meth:`close`
    (just closes the peer), or use it as a context manager (leaving the block
    disconnects). Every method is safe from any thread.
    """

    def __init__(self, runtime: _Runtime, webrtc_url: str) -> None:
        """Internal: use :func:`connect_to_stream`."""
        self._runtime = runtime
        self._webrtc_url = webrtc_url
        self._finalizer = weakref.finalize(self, _release_at_exit, runtime)

    def _open(self, token: str, stream_id: str | None, timeout: float | None) -> None:
        runtime = self._runtime
        try:
            runtime.loop.start()
            session = runtime.session = WhepSession(
                webrtc_url=self._webrtc_url, token=token, stream_id=stream_id, buffer=runtime.buffer, listener=runtime
            )
            runtime.video = session.video
            runtime.loop.run(session.open(), timeout, what="connect_to_stream()")
        except BaseException:
            runtime.open_failed()
            self._release(delete=True)
            raise
        logger.info("watching broadcast %s", redact_url(self._webrtc_url))
        runtime.opened_now()

    def _release(self, *, delete: bool) -> None:
        self._runtime.close(delete=delete)
        self._finalizer.detach()

    # -- lifecycle ---------------------------------------------------------------------------------

    def disconnect(self) -> None:
        """Leave the broadcast: WHEP ``DELETE`` (the server frees the seat at once), then close.

        Idempotent and bounded (about 2 s, even if the server is gone). Calls
        blocked in other threads wake with :class:`OdysseyConnectionError`.
        """
        if not self._runtime.in_this_process:
            return
        self._runtime.end(delete=True)
        self._finalizer.detach()

    def close(self) -> None:
        """Close the peer connection without telling the server (it notices when the peer goes)."""
        if not self._runtime.in_this_process:
            return
        self._runtime.end(delete=False)
        self._finalizer.detach()

    def __enter__(self) -> SpectatorConnection:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "disconnected"
        return f"SpectatorConnection({redact_url(self._webrtc_url)!r}, {state})"

    # -- frames ------------------------------------------------------------------------------------

    def get_frame(self, timeout: Timeout = DEFAULT_TIMEOUT, *, stream_id: StreamView = CURRENT_STREAM) -> VideoFrame:
        """The oldest unread frame; waits up to ``timeout`` s (default: the connection's)."""
        self._check_process()
        try:
            return self._runtime.media.get_frame(timeout, stream_id=stream_id)
        except OdysseyConnectionError as exc:
            self._raise_ended(exc)
            raise

    def latest_frame(self, *, stream_id: StreamView = CURRENT_STREAM, peek: bool = False) -> VideoFrame | None:
        """The newest frame, or ``None`` before the first; never waits (``peek=True``: without handing it out)."""
        self._check_process()
        return self._runtime.media.latest_frame(stream_id=stream_id, peek=peek)

    def wait_for_frame(
        self, after: Any = None, timeout: Timeout = DEFAULT_TIMEOUT, *, stream_id: StreamView = CURRENT_STREAM
    ) -> VideoFrame:
        """The first unread frame received after ``after`` (a ``time.monotonic()`` value; default: now)."""
        self._check_process()
        moment = moment_of(after)
        try:
            return self._runtime.media.wait_for_frame(moment, timeout, stream_id=stream_id)
        except OdysseyConnectionError as exc:
            self._raise_ended(exc)
            raise

    def frames(
        self, limit: int | None = None, timeout: Timeout = DEFAULT_TIMEOUT, *, stream_id: StreamView = CURRENT_STREAM
    ) -> Iterator[VideoFrame]:
        """Iterate over frames in order; ends when the broadcast ends or the spectator disconnects."""
        self._check_process()
        check_limit(limit)
        return self._runtime.media.frames(limit, timeout, stream_id=stream_id)

    def __iter__(self) -> Iterator[VideoFrame]:
        return self.frames()

    def _raise_ended(self, exc: OdysseyConnectionError) -> None:
        """After a clean end, the buffer's generic end-of-connection error says it in spectator words."""
        if self._runtime.ended_cleanly:
            raise OdysseyStateError(_ENDED_MESSAGE, reason="connection_ended") from exc

    def _check_process(self) -> None:
        if not self._runtime.in_this_process:
            raise OdysseyError(
                f"This spectator connection was created in process {self._runtime.pid} and cannot be used after "
                "os.fork(); call connect_to_stream() in the child process"
            )

    # -- properties --------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """Whether frames still arrive (the broadcast is on and the spectator has not left)."""
        runtime = self._runtime
        session = runtime.session
        return runtime.phase is Phase.OPEN and not runtime.released and session is not None and not session.ended

    @property
    def webrtc_url(self) -> str:
        """The broadcast's WHEP base URL (it carries no token)."""
        return self._webrtc_url

    @property
    def connection_state(self) -> str | None:
        """The WebRTC peer connection state (``new`` ... ``closed``), or ``None``."""
        session = self._runtime.session
        return session.connection_state if session is not None else None

    @property
    def stats(self) -> Stats:
        """Frame counters, measured fps and bitrate of this connection (no I/O; never blocks)."""
        return self._runtime.stats()


def connect_to_stream(
    webrtc_url: str,
    spectator_token: str,
    *,
    on_video_frame: Callable[[VideoFrame], Any] | None = None,
    on_disconnected: Callable[[], Any] | None = None,
    buffer_size: int = 32,
    timeout: float | None = 30.0,
    stream_id: str | None = None,
) -> SpectatorConnection:
    """Watch a broadcast stream: blocks until its first frame arrives.

    ``webrtc_url`` and ``spectator_token`` come from the broadcaster's
    ``broadcast_ready`` (``client.broadcast_info``). Frames carry the
    broadcast's ``stream_id``: the one given, else the ``stream_id`` claim of
    the spectator token when it is a JWT that has one, else ``None``
    (``BroadcastInfo.stream_id`` has it on the broadcasting side). Their
    ``prompt`` is ``None``: WHEP carries video only, no data channel, so a
    spectator does not learn the prompts. ``index`` and ``timestamp_ms`` count
    from the first frame this spectator received. ``on_video_frame(frame)``
    and ``on_disconnected()`` run on the connection's dispatcher thread;
    ``on_disconnected`` fires once, when the broadcast ends, the connection
    fails, or the spectator leaves. ``timeout`` bounds the connect and is the
    default of the pulling calls (``None`` waits forever).

    Raises :class:`~odyssey_sync.OdysseyAuthError` for a refused token,
    :class:`~odyssey_sync.OdysseyStreamError` (``reason="stream_not_found"``)
    when the stream is unknown or over, :class:`~odyssey_sync.OdysseyTimeoutError`
    on expiry and :class:`~odyssey_sync.OdysseyConnectionError` otherwise.
    """
    if not isinstance(webrtc_url, str):
        raise TypeError(f"webrtc_url must be a string, not {type(webrtc_url).__name__}")
    if not webrtc_url.startswith(("http://", "https://")):
        raise ValueError("webrtc_url must start with http:// or https:// (use BroadcastInfo.webrtc_url)")
    if not isinstance(spectator_token, str):
        raise TypeError(f"spectator_token must be a string, not {type(spectator_token).__name__}")
    if not spectator_token.strip():
        raise ValueError("spectator_token is empty; use BroadcastInfo.spectator_token")
    for name, handler in (("on_video_frame", on_video_frame), ("on_disconnected", on_disconnected)):
        if handler is not None and not callable(handler):
            raise TypeError(f"{name} must be callable or None, not {type(handler).__name__}")
    if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
        raise ValueError(f"buffer_size must be an int >= 1, got {buffer_size!r}")
    if stream_id is not None and (not isinstance(stream_id, str) or not stream_id.strip()):
        raise TypeError("stream_id must be a non-empty string or None (use BroadcastInfo.stream_id)")
    timeout = check_timeout(timeout)
    token = spectator_token.strip()
    runtime = _Runtime(buffer_size, timeout, {"on_video_frame": on_video_frame, "on_disconnected": on_disconnected})
    connection = SpectatorConnection(runtime, webrtc_url)
    connection._open(token, stream_id or _stream_id_claim(token), timeout)
    return connection


def _stream_id_claim(token: str) -> str | None:
    """The ``stream_id`` claim of a spectator token that is a JWT (read, not verified), else ``None``."""
    try:
        claim = jwt_payload(token).get("stream_id")
    except ValueError:
        return None
    return claim if isinstance(claim, str) and claim else None
