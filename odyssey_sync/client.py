"""``Odyssey``: the blocking client.

Calls block the caller's thread; the WebRTC session lives on a loop thread
owned by the client, user handlers run on a dispatcher thread, and frames wait
in a bounded buffer until pulled. Every blocking call takes ``timeout=``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import weakref
from typing import Any, Callable, Iterator

import aiohttp

from . import images, protocol
from ._account import AccountMethods
from ._version import __version__
from ._dispatch import Dispatcher
from ._loop import LoopThread, wait_future
from ._media import media_stats, transport_counters
from ._runtime import shut_down
from ._regions import measure_region_latencies
from ._session import Session
from .errors import OdysseyConnectionError, OdysseyError, OdysseyStreamError, OdysseyTimeoutError
from .frames import FrameBuffer, MediaStream, VideoFrame, check_limit, check_timeout, moment_of
from .rest import RestClient
from .spectator import SpectatorConnection, connect_to_stream
from .types import (
    Acknowledgement,
    AdvancedConfig,
    BroadcastInfo,
    ClientCredentials,
    ConnectionStatus,
    Stats,
    StreamerCapabilities,
)

logger = logging.getLogger("odyssey_sync.client")

DEFAULT_API_URL = "https://api.odyssey.ml"
MAX_PROMPT_CHARS = 10_000
_DISCONNECT_BUDGET_S = 1.5
_HANDLER_NAMES = (
    "on_connected",
    "on_disconnected",
    "on_video_frame",
    "on_stream_started",
    "on_stream_ended",
    "on_interact_acknowledged",
    "on_broadcast_ready",
    "on_stream_error",
    "on_error",
    "on_status_change",
)
_FORKED = False


def _after_fork_in_child() -> None:
    global _FORKED
    _FORKED = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Deadline:
    """What is left of one call's timeout."""

    def __init__(self, timeout: float | None, what: str) -> None:
        self.timeout = timeout
        self.what = what
        self.began = time.monotonic()
        self.end = None if timeout is None else self.began + timeout

    def elapsed_ms(self) -> float:
        """Milliseconds since the call began."""
        return (time.monotonic() - self.began) * 1000

    def rest_budget(self) -> float:
        """The remaining time as the REST layer takes it (``inf`` = unbounded)."""
        left = self.remaining()
        return math.inf if left is None else left

    def remaining(self) -> float | None:
        """Seconds left (``None`` = unbounded); raises once expired."""
        if self.end is None:
            return None
        left = self.end - time.monotonic()
        if left <= 0:
            raise OdysseyTimeoutError(f"{self.what} timed out after {self.timeout:g} s")
        return left


def _acquire(lock: threading.Lock, deadline: _Deadline) -> None:
    """Take ``lock`` within the deadline, in slices so Ctrl+C gets through."""
    while True:
        left = deadline.remaining()
        if lock.acquire(timeout=0.1 if left is None else min(left, 0.1)):
            return


class _Connection:
    """The threads and session of one connection; released exactly once."""

    def __init__(self, dispatcher: Dispatcher, buffer: FrameBuffer, timeout: float | None) -> None:
        self.pid = os.getpid()
        self.loop = LoopThread("odyssey-loop")
        self.dispatcher = dispatcher
        self.buffer = buffer
        self.media = MediaStream(buffer, timeout)
        self.session: Session | None = None
        self.handlers: dict[str, Callable[..., Any] | None] = {}
        self.was_connected = False
        self.ended = False
        self.ended_error: BaseException | None = None
        # Whether the end (failure, server close or disconnect()) was reported: status and handlers, once.
        self.end_reported = False
        self._release_lock = threading.Lock()
        self.released = False

    def release(self) -> None:
        """Close the session (bounded), stop the loop thread and the dispatcher. Idempotent."""
        if _FORKED or os.getpid() != self.pid:
            return
        with self._release_lock:
            if self.released:
                return
            self.released = True
            close = self.session.close() if self.session is not None else None
            self.session = None
            shut_down(self.loop, close, self.buffer, self.dispatcher, budget_s=_DISCONNECT_BUDGET_S, what="disconnect")


class Odyssey(AccountMethods):
    """A blocking client of Odyssey's interactive world-model video API.

    Use it as a context manager, or call :meth:`disconnect` when done::

        with Odyssey() as client:
            client.connect()
            client.start_stream("A cat", portrait=False)
            frame = client.get_frame(timeout=5)

    ``api_key`` defaults to ``$ODYSSEY_API_KEY`` and ``api_url`` to
    ``$ODYSSEY_API_URL``, then ``https://api.odyssey.ml``. ``timeout`` is the
    default of every blocking call (``None`` waits forever). ``buffer_size``
    bounds the frame buffer (oldest frames drop first). ``debug`` turns on
    verbose logging; ``enable_telemetry=True`` opts in to the official SDK's
    usage events (connected / disconnected, with the session id and SDK
    version, never the key); nothing is sent by default.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        api_url: str | None = None,
        timeout: float | None = 30.0,
        advanced: AdvancedConfig | None = None,
        buffer_size: int = 32,
        debug: bool = False,
        enable_telemetry: bool = False,
    ) -> None:
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError(f"api_key must be a string or None, not {type(api_key).__name__}")
        if api_url is not None and not isinstance(api_url, str):
            raise TypeError(f"api_url must be a string or None, not {type(api_url).__name__}")
        if advanced is not None and not isinstance(advanced, AdvancedConfig):
            raise TypeError("advanced must be an odyssey_sync.AdvancedConfig")
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
            raise ValueError(f"buffer_size must be an int >= 1, got {buffer_size!r}")
        self._timeout = check_timeout(timeout)
        key = api_key if api_key is not None else os.environ.get("ODYSSEY_API_KEY")
        self._api_key = key.strip() if key and key.strip() else None
        url = api_url or os.environ.get("ODYSSEY_API_URL") or DEFAULT_API_URL
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"api_url must start with http:// or https://, got {url!r}")
        self._api_url = url.rstrip("/")
        self._advanced = advanced or AdvancedConfig()
        self._buffer_size = buffer_size
        self._telemetry = bool(enable_telemetry)
        if debug:
            _enable_debug_logging()
        self._pid = os.getpid()
        self._rest: RestClient | None = None
        self._lock = threading.RLock()
        self._connect_lock = threading.Lock()
        self._stream_lock = threading.Lock()
        self._status = ConnectionStatus.DISCONNECTED
        self._conn: _Connection | None = None
        self._capabilities: StreamerCapabilities | None = None
        self._broadcast_info: BroadcastInfo | None = None
        self._finalizer: weakref.finalize | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Odyssey:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        return (
            f"Odyssey(api_url={self._api_url!r}, status={self._status.value!r}, "
            f"session_id={self.current_session_id!r}, stream_id={self.current_stream_id!r})"
        )

    def _check_process(self) -> None:
        if os.getpid() != self._pid:
            raise OdysseyError(
                f"This Odyssey client was created in process {self._pid} and cannot be used after os.fork(); "
                "create a new Odyssey() in the child process"
            )

    def _rest_client(self) -> RestClient:
        with self._lock:
            if self._rest is None:
                self._rest = RestClient(self._api_url, self._api_key, timeout=self._timeout or 30.0)
            return self._rest

    def _call_timeout(self, timeout: Any) -> float | None:
        return self._timeout if timeout is ... else check_timeout(timeout)

    # -- connecting --------------------------------------------------------------------------------

    def connect(self, *, timeout: float | None = ..., **handlers: Callable[..., Any] | None) -> MediaStream:  # type: ignore[assignment]
        """Connect with the API key; blocks until video flows and commands can be sent.

        Handlers (all optional keyword arguments): ``on_connected()``,
        ``on_disconnected()``, ``on_video_frame(frame)``, ``on_stream_started(stream_id)``,
        ``on_stream_ended()``, ``on_interact_acknowledged(prompt)``,
        ``on_broadcast_ready(info)``, ``on_stream_error(reason, message)``,
        ``on_error(exc, fatal)``, ``on_status_change(status, message)``. They run
        in order on the client's dispatcher thread. Returns the connection's
        :class:`MediaStream`; returns at once if already connected.
        """
        self._check_process()
        checked = _check_handlers(handlers)
        deadline = _Deadline(self._call_timeout(timeout), "connect()")
        if self._api_key is None:
            raise OdysseyError(
                "No API key: pass Odyssey(api_key=...) or set ODYSSEY_API_KEY "
                "(or use connect_with_credentials() with credentials minted by your backend)"
            )
        return self._connect(checked, deadline, credentials=None)

    def connect_with_credentials(
        self,
        credentials: ClientCredentials | dict[str, Any],
        *,
        timeout: float | None = ...,  # type: ignore[assignment]
        **handlers: Callable[..., Any] | None,
    ) -> MediaStream:
        """Connect with credentials from :meth:`create_client_credentials` (no API key needed)."""
        self._check_process()
        if isinstance(credentials, dict):
            credentials = ClientCredentials.from_dict(credentials)
        if not isinstance(credentials, ClientCredentials):
            raise TypeError("credentials must be a ClientCredentials or the dict from ClientCredentials.to_dict()")
        checked = _check_handlers(handlers)
        deadline = _Deadline(self._call_timeout(timeout), "connect_with_credentials()")
        return self._connect(checked, deadline, credentials=credentials)

    def create_client_credentials(self, *, timeout: float | None = ...) -> ClientCredentials:  # type: ignore[assignment]
        """Mint session credentials with the API key, for a client that has no key (backend side)."""
        self._check_process()
        deadline = _Deadline(self._call_timeout(timeout), "create_client_credentials()")
        if self._api_key is None:
            raise OdysseyError("create_client_credentials() needs an API key: pass api_key= or set ODYSSEY_API_KEY")
        return self._mint_credentials(deadline, loop=None)

    def _mint_credentials(self, deadline: _Deadline, loop: LoopThread | None) -> ClientCredentials:
        rest = self._rest_client()
        rest.access_token(timeout=deadline.rest_budget())
        latencies = self._region_latencies(rest, deadline, loop)
        grant = rest.request_session(
            latencies, queue_timeout_s=self._advanced.queue_timeout_s, timeout=deadline.rest_budget()
        )
        token, expires_in = rest.session_token(grant.session_id, timeout=deadline.rest_budget())
        return ClientCredentials(
            signaling_url=grant.signalling_url,
            session_token=token,
            expires_in=expires_in,
            capabilities=grant.capabilities,
        )

    def _region_latencies(self, rest: RestClient, deadline: _Deadline, loop: LoopThread | None) -> dict[str, int]:
        regions = rest.regions(timeout=deadline.rest_budget())
        if not regions:
            return {}

        async def ping() -> dict[str, int]:
            async with aiohttp.ClientSession() as http:
                return await measure_region_latencies(http, regions, deadline_s=1.0)

        own_loop = loop is None
        runner = LoopThread("odyssey-ping") if own_loop else loop
        assert runner is not None
        try:
            runner.start()
            return runner.run(ping(), deadline.remaining(), what="region pings")
        finally:
            if own_loop:
                runner.stop()

    def _connect(
        self,
        handlers: dict[str, Callable[..., Any] | None],
        deadline: _Deadline,
        credentials: ClientCredentials | None,
    ) -> MediaStream:
        _acquire(self._connect_lock, deadline)
        try:
            with self._lock:
                conn = self._conn
                if conn is not None and self._status is ConnectionStatus.CONNECTED and not conn.released:
                    return conn.media
            if conn is not None:
                conn.release()
            return self._open_connection(handlers, deadline, credentials)
        finally:
            self._connect_lock.release()

    def _open_connection(
        self,
        handlers: dict[str, Callable[..., Any] | None],
        deadline: _Deadline,
        credentials: ClientCredentials | None,
    ) -> MediaStream:
        dispatcher = Dispatcher(handlers.get("on_error"), max_pending_frames=self._buffer_size)
        conn = _Connection(dispatcher, FrameBuffer(self._buffer_size), self._timeout)
        conn.handlers = handlers
        with self._lock:
            self._conn = conn
            self._broadcast_info = None
            self._capabilities = None
        self._finalizer = weakref.finalize(self, _Connection.release, conn)
        try:
            conn.loop.start()
            if credentials is None:
                self._set_status(ConnectionStatus.AUTHENTICATING, "Connecting to Odyssey...")
                credentials = self._mint_credentials(deadline, conn.loop)
                self._set_status(ConnectionStatus.CONNECTING, "Connecting to signaling server...")
            else:
                self._set_status(ConnectionStatus.CONNECTING, "Connecting with pre-minted credentials...")
            with self._lock:
                self._capabilities = credentials.capabilities or StreamerCapabilities()
            session = Session(
                signalling_url=credentials.signaling_url,
                session_id=credentials.session_id,
                token=credentials.session_token,
                advanced=self._advanced,
                buffer=conn.buffer,
                listener=_Listener(self, conn),
            )
            conn.session = session
            conn.loop.run(session.open(), deadline.remaining(), what="connect()")
        except BaseException as exc:
            interrupted = not isinstance(exc, Exception)
            with self._lock:
                conn.end_reported = True
            if isinstance(exc, OdysseyError) and not isinstance(exc, OdysseyTimeoutError):
                self._set_status(ConnectionStatus.FAILED, str(exc))
                dispatcher.post(handlers.get("on_error"), exc, True)
            else:
                self._set_status(ConnectionStatus.DISCONNECTED, None if interrupted else str(exc))
            self._release(conn)
            raise
        with self._lock:
            conn.was_connected = True
            self._status = ConnectionStatus.CONNECTED
            ended_already = conn.ended
        dispatcher.post(handlers.get("on_status_change"), ConnectionStatus.CONNECTED, None)
        dispatcher.post(handlers.get("on_connected"))
        logger.info("connected to session %s", credentials.session_id)
        self._send_telemetry("session_connected", credentials.session_id, connect_duration_ms=round(deadline.elapsed_ms()))
        if ended_already:
            self._handle_ended(conn, conn.ended_error)
        return conn.media

    def _set_status(self, status: ConnectionStatus, message: str | None) -> None:
        with self._lock:
            conn = self._conn
            if self._status is status:
                return
            self._status = status
        if conn is not None:
            conn.dispatcher.post(conn.handlers.get("on_status_change"), status, message)

    def _release(self, conn: _Connection) -> None:
        conn.release()
        with self._lock:
            if self._conn is conn and self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None

    def _on_session_ended(self, conn: _Connection, error: BaseException | None) -> None:
        """From the loop thread: the server or the network ended the connection."""
        with self._lock:
            conn.ended, conn.ended_error = True, error
            if self._conn is not conn or conn.released or not conn.was_connected:
                return  # connect() is still running and reports it itself
        self._handle_ended(conn, error)

    def _handle_ended(self, conn: _Connection, error: BaseException | None) -> None:
        with self._lock:
            if conn.end_reported:
                return  # disconnect() got there first
            conn.end_reported = True
        if error is not None:
            self._set_status(ConnectionStatus.FAILED, str(error))
            conn.dispatcher.post(conn.handlers.get("on_error"), error, True)
        else:
            self._set_status(ConnectionStatus.DISCONNECTED, "The server closed the connection")
        if conn.was_connected:
            conn.dispatcher.post(conn.handlers.get("on_disconnected"))
        threading.Thread(target=self._release, args=(conn,), name="odyssey-cleanup", daemon=True).start()

    def disconnect(self) -> None:
        """End the stream and the connection, releasing every thread and socket.

        Idempotent, and bounded (about 2 s) even if the server is gone. Calls
        blocked in other threads fail with :class:`OdysseyConnectionError`.
        """
        if os.getpid() != self._pid:
            return
        with self._lock:
            conn = self._conn
            if conn is None or conn.released:
                return
            report = not conn.end_reported
            conn.end_reported = True
            was_connected = conn.was_connected and self._status is ConnectionStatus.CONNECTED
        if report:  # after a failure the status stays FAILED and the handlers have fired already
            self._set_status(ConnectionStatus.DISCONNECTED, None)
            if was_connected:
                conn.dispatcher.post(conn.handlers.get("on_disconnected"))
        session_id = conn.session.session_id if conn.session is not None else None
        self._release(conn)
        if was_connected and session_id is not None:
            self._send_telemetry("session_disconnected", session_id)

    def _send_telemetry(self, event: str, session_id: str, **fields: Any) -> None:
        """Opt-in (``enable_telemetry=True``) usage events, sent in the background; never the key."""
        if not self._telemetry:
            return
        payload = {"event": event, "session_id": session_id, "sdk_version": __version__, "sdk_platform": "python-sync"}
        payload.update(fields)
        rest = self._rest_client()
        threading.Thread(
            target=rest.send_telemetry, args=([payload],), kwargs={"timeout": 5.0}, name="odyssey-telemetry", daemon=True
        ).start()

    def close(self) -> None:
        """Alias of :meth:`disconnect`, for ``contextlib.closing``."""
        self.disconnect()

    @staticmethod
    def connect_to_stream(
        webrtc_url: str,
        spectator_token: str,
        *,
        on_video_frame: Callable[[VideoFrame], Any] | None = None,
        on_disconnected: Callable[[], Any] | None = None,
        buffer_size: int = 32,
        timeout: float | None = 30.0,
    ) -> SpectatorConnection:
        """Watch a broadcast stream as a spectator (no API key needed); see :func:`odyssey_sync.connect_to_stream`."""
        return connect_to_stream(
            webrtc_url,
            spectator_token,
            on_video_frame=on_video_frame,
            on_disconnected=on_disconnected,
            buffer_size=buffer_size,
            timeout=timeout,
        )

    # -- streams -----------------------------------------------------------------------------------

    def _connected(self, what: str) -> tuple[_Connection, Session]:
        self._check_process()
        with self._lock:
            conn, status = self._conn, self._status
        session = conn.session if conn is not None else None
        if conn is None or session is None or status is not ConnectionStatus.CONNECTED or session.ended:
            raise OdysseyStreamError(f"Cannot {what}: client is {status.value}; call connect() first")
        return conn, session

    def start_stream(
        self,
        prompt: str = "",
        *,
        portrait: bool = True,
        image: Any = None,
        bypass_prompt_expansion: bool | None = None,
        broadcast: bool = False,
        timeout: float | None = ...,  # type: ignore[assignment]
    ) -> Acknowledgement:
        """Start a stream; blocks until the server confirms it and returns the stream id.

        ``image`` (a path, bytes, a data URL, a numpy RGB array or a PIL image)
        asks for image-to-video; it is checked, centre-cropped and resized
        before anything is sent. The returned id also works as
        ``wait_for_frame(after=...)``.
        """
        _check_prompt(prompt, required=False)
        _check_bool("portrait", portrait)
        _check_bool("broadcast", broadcast)
        if bypass_prompt_expansion is not None:
            _check_bool("bypass_prompt_expansion", bypass_prompt_expansion)
        deadline = _Deadline(self._call_timeout(timeout), "start_stream()")
        conn, session = self._connected("start stream")
        image_url = None
        if image is not None:
            capabilities = self.capabilities
            if capabilities is None or not capabilities.image_to_video:
                raise OdysseyStreamError(
                    "Image-to-video is not supported by this streamer (capabilities.image_to_video is false); "
                    "start the stream without image="
                )
            image_url = images.prepare_image(image, portrait=portrait)
        message = protocol.stream_start(
            prompt,
            portrait=portrait,
            image_data_url=image_url,
            broadcast=broadcast,
            bypass_prompt_expansion=bypass_prompt_expansion,
        )
        with self._stream_operation(deadline, session):
            if session.stream_id is not None:
                raise OdysseyStreamError(
                    f"A stream is already running ({session.stream_id}); call end_stream() before starting another"
                )
            reply = self._request(conn, session, message, protocol.STREAM_STARTED, deadline, image_url is not None)
        return Acknowledgement(reply["stream_id"], reply["_received_at"])

    def interact(self, prompt: str, *, timeout: float | None = ...) -> Acknowledgement:  # type: ignore[assignment]
        """Steer the running stream; blocks until acknowledged and returns the prompt as applied.

        The returned text also works as ``wait_for_frame(after=...)``.
        """
        _check_prompt(prompt, required=True)
        message = protocol.update(prompt)
        size = len(protocol.encode(message).encode("utf-8"))
        if size > protocol.DEFAULT_DATA_CHANNEL_LIMIT:
            raise ValueError(
                f"prompt is {size} bytes once encoded, more than a data-channel message may carry "
                f"({protocol.DEFAULT_DATA_CHANNEL_LIMIT}); shorten it (non-ASCII characters take up to 12 bytes each)"
            )
        deadline = _Deadline(self._call_timeout(timeout), "interact()")
        conn, session = self._connected("interact")
        with self._stream_operation(deadline, session):
            if session.stream_id is None:
                raise OdysseyStreamError("No stream is running; call start_stream() before interact()")
            reply = self._request(conn, session, message, protocol.UPDATE_ACKNOWLEDGED, deadline)
        return Acknowledgement(reply.get("prompt") or "", reply["_received_at"])

    def end_stream(self, *, timeout: float | None = ...) -> None:  # type: ignore[assignment]
        """End the running stream; blocks until the server confirms."""
        deadline = _Deadline(self._call_timeout(timeout), "end_stream()")
        conn, session = self._connected("end stream")
        with self._stream_operation(deadline, session):
            if session.stream_id is None:
                raise OdysseyStreamError("No stream is running; nothing to end (call start_stream() first)")
            self._request(conn, session, protocol.stream_end(), protocol.STREAM_ENDED, deadline)

    @contextlib.contextmanager
    def _stream_operation(self, deadline: _Deadline, session: Session) -> Iterator[None]:
        """Hold the stream lock (one stream operation at a time) on a session that is still up."""
        _acquire(self._stream_lock, deadline)
        try:
            if session.ended:  # it ended while this call waited its turn
                raise OdysseyConnectionError(
                    f"{deadline.what} failed: the connection ended ({session.error or 'closed'}); call connect() again"
                ) from session.error
            yield
        finally:
            self._stream_lock.release()

    def _request(
        self,
        conn: _Connection,
        session: Session,
        message: dict[str, Any],
        reply_type: str,
        deadline: _Deadline,
        via_signaling: bool = False,
    ) -> dict[str, Any]:
        future = conn.loop.submit(session.request(message, reply_type, via_signaling=via_signaling))
        return wait_future(future, deadline.remaining(), what=deadline.what)

    # -- frames ------------------------------------------------------------------------------------

    def _media(self) -> MediaStream:
        self._check_process()
        with self._lock:
            conn = self._conn
        if conn is None:
            raise OdysseyConnectionError("Not connected: call connect() before pulling frames")
        return conn.media

    def get_frame(self, timeout: float | None = ...) -> VideoFrame:  # type: ignore[assignment]
        """The oldest buffered frame; waits for one (up to ``timeout`` s)."""
        wait = self._call_timeout(timeout)
        return self._media().get_frame(wait)

    def latest_frame(self) -> VideoFrame | None:
        """The newest frame, or ``None`` before the first; never waits. For control loops."""
        return self._media().latest_frame()

    def wait_for_frame(self, after: Any = None, timeout: float | None = ...) -> VideoFrame:  # type: ignore[assignment]
        """The first frame received after ``after`` (a ``time.monotonic()`` value, or what
        ``interact()`` / ``start_stream()`` returned; default: now)."""
        moment_of(after)
        wait = self._call_timeout(timeout)
        return self._media().wait_for_frame(after, wait)

    def frames(self, limit: int | None = None, timeout: float | None = ...) -> Iterator[VideoFrame]:  # type: ignore[assignment]
        """Iterate over frames in order; ends when the stream ends or the client disconnects."""
        check_limit(limit)
        wait = self._call_timeout(timeout)
        return self._media().frames(limit, wait)

    # -- properties --------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """Whether the client is connected and ready for stream calls."""
        return self._status is ConnectionStatus.CONNECTED

    @property
    def current_status(self) -> ConnectionStatus:
        """The connection status."""
        return self._status

    def _session(self) -> Session | None:
        conn = self._conn
        if conn is None or conn.released:
            return None
        return conn.session

    @property
    def current_session_id(self) -> str | None:
        """The session id while connected."""
        session = self._session()
        return session.session_id if session is not None and not session.ended else None

    @property
    def current_stream_id(self) -> str | None:
        """The running stream's id, or ``None``."""
        session = self._session()
        return session.stream_id if session is not None and not session.ended else None

    @property
    def last_applied_prompt(self) -> str | None:
        """The prompt as the server last applied it (expanded by the server)."""
        session = self._session()
        return session.prompt if session is not None else None

    @property
    def capabilities(self) -> StreamerCapabilities | None:
        """What the assigned streamer can do (known once connecting)."""
        return self._capabilities

    @property
    def broadcast_info(self) -> BroadcastInfo | None:
        """Spectator details of the current broadcast stream, once ready."""
        return self._broadcast_info

    @property
    def media_stream(self) -> MediaStream | None:
        """The current connection's :class:`MediaStream`."""
        conn = self._conn
        return conn.media if conn is not None and not conn.released else None

    @property
    def connection_state(self) -> str | None:
        """The WebRTC peer connection state (``new`` ... ``closed``), or ``None``."""
        session = self._session()
        return session.connection_state if session is not None else None

    @property
    def ice_connection_state(self) -> str | None:
        """The ICE connection state, or ``None``."""
        session = self._session()
        return session.ice_connection_state if session is not None else None

    @property
    def stats(self) -> Stats:
        """Frame counters, measured fps and bitrate of the current (or last) connection."""
        conn = self._conn
        if conn is None:
            return Stats()
        counters = (0, 0)
        session = conn.session
        if session is not None and not conn.released and conn.loop.is_running and session.pc is not None:
            try:
                counters = conn.loop.run(transport_counters(session.pc), 1.0, what="stats")
            except (OdysseyError, RuntimeError):
                pass
        connected_at = session.connected_at if session is not None else None
        return media_stats(conn.buffer, conn.dispatcher.frames_dropped, connected_at, counters)


class _Listener:
    """Turns session events (loop thread) into client state and handler calls (dispatcher)."""

    def __init__(self, client: Odyssey, conn: _Connection) -> None:
        self._client = weakref.ref(client)
        self._conn = conn
        self._post = conn.dispatcher.post
        self._handlers = conn.handlers

    def session_connected(self) -> None:
        pass

    def session_frame(self, frame: VideoFrame) -> None:
        handler = self._handlers.get("on_video_frame")
        if handler is not None:
            self._conn.dispatcher.post_frame(handler, frame)

    def session_stream_started(self, stream_id: str, applied_prompt: str) -> None:
        self._post(self._handlers.get("on_stream_started"), stream_id)

    def session_interact_acknowledged(self, prompt: str) -> None:
        self._post(self._handlers.get("on_interact_acknowledged"), prompt)

    def session_stream_ended(self) -> None:
        self._post(self._handlers.get("on_stream_ended"))

    def session_stream_error(self, reason: str, message: str) -> None:
        self._post(self._handlers.get("on_stream_error"), reason, message)

    def session_broadcast_ready(self, info: BroadcastInfo) -> None:
        client = self._client()
        if client is not None:
            client._broadcast_info = info
        self._post(self._handlers.get("on_broadcast_ready"), info)

    def session_error(self, error: BaseException) -> None:
        self._post(self._handlers.get("on_error"), error, False)

    def session_ended(self, error: BaseException | None) -> None:
        client = self._client()
        if client is not None:
            client._on_session_ended(self._conn, error)


def _check_handlers(handlers: dict[str, Any]) -> dict[str, Callable[..., Any] | None]:
    for name, handler in handlers.items():
        if name not in _HANDLER_NAMES:
            raise TypeError(f"unknown handler {name!r}; handlers are: {', '.join(_HANDLER_NAMES)}")
        if handler is not None and not callable(handler):
            raise TypeError(f"{name} must be callable or None, not {type(handler).__name__}")
    return dict(handlers)


def _check_prompt(prompt: Any, *, required: bool) -> None:
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, not {type(prompt).__name__}")
    if required and not prompt.strip():
        raise ValueError("prompt is empty; describe what should happen, e.g. interact('The cat jumps')")
    if len(prompt) >= MAX_PROMPT_CHARS:
        raise ValueError(f"prompt is {len(prompt)} characters; keep it under {MAX_PROMPT_CHARS} (a sentence or two works best)")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {type(value).__name__}")


def _enable_debug_logging() -> None:
    package_logger = logging.getLogger("odyssey_sync")
    package_logger.setLevel(logging.DEBUG)
    if not package_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        package_logger.addHandler(handler)
