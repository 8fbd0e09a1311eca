"""``Odyssey``: the blocking client.

Calls block the caller's thread; the WebRTC session lives on a loop thread
owned by the client, user handlers run on a dispatcher thread, and frames wait
in a bounded buffer until pulled. Every blocking call takes ``timeout=``.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from concurrent.futures import Future
from typing import Any, Callable, Iterator, Literal, NoReturn, cast, overload

import aiohttp

from . import images, protocol
from ._account import AccountMethods
from ._deadline import Deadline, acquire
from ._receiver import Phase, Receiver
from ._regions import measure_region_latencies
from ._session import Session
from ._version import __version__
from .errors import OdysseyError, OdysseyStateError, OdysseyStreamError, OdysseyTimeoutError
from .frames import MediaStream, VideoFrame, check_limit, check_timeout, check_view, moment_of
from .loop_thread import LoopThread, wait_future
from .rest import RestClient
from .spectator import SpectatorConnection, connect_to_stream
from .stream_protocol import Request
from .types import (
    CURRENT_STREAM,
    DEFAULT_TIMEOUT,
    Acknowledgement,
    AdvancedConfig,
    BroadcastInfo,
    ClientCredentials,
    ConnectionStatus,
    Stats,
    StreamerCapabilities,
    StreamView,
    Timeout,
)

logger = logging.getLogger("odyssey_sync.client")

DEFAULT_API_URL = "https://api.odyssey.ml"
# How long past its timeout a caller still waits for the loop to fail a stream request (a loop that stopped).
_BACKSTOP_S = 1.0
class _Connection(Receiver[Session]):
    """The runtime of one client connection, with the handlers given to ``connect()``."""

    def __init__(self, handlers: dict[str, Callable[..., Any] | None], buffer_size: int, timeout: float | None) -> None:
        super().__init__(
            name="odyssey-loop",
            buffer_size=buffer_size,
            timeout=timeout,
            on_error=lambda: self.handlers.get("on_error"),
        )
        self.handlers = handlers

    def post(self, name: str, *args: Any) -> None:
        """Run the handler ``name`` (if given) with ``args`` on the dispatcher thread."""
        self.dispatcher.post(self.handlers.get(name), *args)

    def close(self, *, discard: bool = True) -> None:
        """Release the connection: the session closes cleanly (``client_disconnecting``, close 1000)."""
        self.release(Session.close, discard=discard, what="disconnect")


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
        self._status = ConnectionStatus.DISCONNECTED
        self._conn: _Connection | None = None
        self._capabilities: StreamerCapabilities | None = None
        self._broadcast_info: BroadcastInfo | None = None
        self._finalizer: weakref.finalize[[_Connection], Odyssey] | None = None

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
                self._rest = RestClient(self._api_url, self._api_key, timeout=self._timeout)
            return self._rest

    def _call_timeout(self, timeout: Any) -> float | None:
        return self._timeout if timeout is DEFAULT_TIMEOUT else check_timeout(timeout)

    # -- connecting --------------------------------------------------------------------------------

    def connect(
        self,
        *,
        on_connected: Callable[[], Any] | None = None,
        on_disconnected: Callable[[], Any] | None = None,
        on_video_frame: Callable[[VideoFrame], Any] | None = None,
        on_stream_started: Callable[[str], Any] | None = None,
        on_stream_ended: Callable[[], Any] | None = None,
        on_interact_acknowledged: Callable[[str], Any] | None = None,
        on_broadcast_ready: Callable[[BroadcastInfo], Any] | None = None,
        on_stream_error: Callable[[str, str], Any] | None = None,
        on_error: Callable[[BaseException, bool], Any] | None = None,
        on_status_change: Callable[[ConnectionStatus, str | None], Any] | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        **unknown: NoReturn,
    ) -> MediaStream:
        """Connect with the API key; blocks until video flows and commands can be sent.

        The handlers run in order on the client's dispatcher thread, never on
        the event loop: ``on_connected()``, ``on_disconnected()`` (every end of
        the connection), ``on_video_frame(frame)``, ``on_stream_started(stream_id)``,
        ``on_stream_ended()``, ``on_interact_acknowledged(prompt)``,
        ``on_broadcast_ready(info)``, ``on_stream_error(reason, message)``,
        ``on_error(exc, fatal)`` (also for an exception raised by another
        handler) and ``on_status_change(status, message)``. Returns the
        connection's :class:`MediaStream`; if already connected it returns at
        once, and each handler given replaces that handler of the live
        connection (the others stay).
        """
        self._check_process()
        handlers = _check_handlers(
            unknown,
            on_connected=on_connected,
            on_disconnected=on_disconnected,
            on_video_frame=on_video_frame,
            on_stream_started=on_stream_started,
            on_stream_ended=on_stream_ended,
            on_interact_acknowledged=on_interact_acknowledged,
            on_broadcast_ready=on_broadcast_ready,
            on_stream_error=on_stream_error,
            on_error=on_error,
            on_status_change=on_status_change,
        )
        deadline = Deadline(self._call_timeout(timeout), "connect()")
        if self._api_key is None:
            raise OdysseyError(
                "No API key: pass Odyssey(api_key=...) or set ODYSSEY_API_KEY "
                "(or use connect_with_credentials() with credentials minted by your backend)"
            )
        return self._connect(handlers, deadline, credentials=None)

    def connect_with_credentials(
        self,
        credentials: ClientCredentials | dict[str, Any],
        *,
        on_connected: Callable[[], Any] | None = None,
        on_disconnected: Callable[[], Any] | None = None,
        on_video_frame: Callable[[VideoFrame], Any] | None = None,
        on_stream_started: Callable[[str], Any] | None = None,
        on_stream_ended: Callable[[], Any] | None = None,
        on_interact_acknowledged: Callable[[str], Any] | None = None,
        on_broadcast_ready: Callable[[BroadcastInfo], Any] | None = None,
        on_stream_error: Callable[[str, str], Any] | None = None,
        on_error: Callable[[BaseException, bool], Any] | None = None,
        on_status_change: Callable[[ConnectionStatus, str | None], Any] | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        **unknown: NoReturn,
    ) -> MediaStream:
        """Connect with credentials from :meth:`create_client_credentials` (no API key needed).

        The handlers are those of :meth:`connect`.
        """
        self._check_process()
        if isinstance(credentials, dict):
            credentials = ClientCredentials.from_dict(credentials)
        if not isinstance(credentials, ClientCredentials):
            raise TypeError("credentials must be a ClientCredentials or the dict from ClientCredentials.to_dict()")
        handlers = _check_handlers(
            unknown,
            on_connected=on_connected,
            on_disconnected=on_disconnected,
            on_video_frame=on_video_frame,
            on_stream_started=on_stream_started,
            on_stream_ended=on_stream_ended,
            on_interact_acknowledged=on_interact_acknowledged,
            on_broadcast_ready=on_broadcast_ready,
            on_stream_error=on_stream_error,
            on_error=on_error,
            on_status_change=on_status_change,
        )
        deadline = Deadline(self._call_timeout(timeout), "connect_with_credentials()")
        return self._connect(handlers, deadline, credentials=credentials)

    def create_client_credentials(self, *, timeout: Timeout = DEFAULT_TIMEOUT) -> ClientCredentials:
        """Mint session credentials with the API key, for a client that has no key (backend side)."""
        self._check_process()
        deadline = Deadline(self._call_timeout(timeout), "create_client_credentials()")
        if self._api_key is None:
            raise OdysseyError("create_client_credentials() needs an API key: pass api_key= or set ODYSSEY_API_KEY")
        return self._mint_credentials(deadline, loop=None)

    def _mint_credentials(self, deadline: Deadline, loop: LoopThread | None) -> ClientCredentials:
        rest = self._rest_client()
        rest.access_token(timeout=deadline)
        latencies = self._region_latencies(rest, deadline, loop)
        grant = rest.request_session(
            latencies, queue_timeout_s=self._advanced.queue_timeout_s, timeout=deadline
        )
        token, expires_in = rest.session_token(grant.session_id, timeout=deadline)
        return ClientCredentials(
            signaling_url=grant.signalling_url,
            session_token=token,
            expires_in=expires_in,
            capabilities=grant.capabilities,
        )

    def _region_latencies(self, rest: RestClient, deadline: Deadline, loop: LoopThread | None) -> dict[str, int]:
        regions = rest.regions(timeout=deadline)
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
            return runner.run(ping(), deadline, what="region pings")
        finally:
            if own_loop:
                runner.stop()

    def _connect(
        self,
        handlers: dict[str, Callable[..., Any] | None],
        deadline: Deadline,
        credentials: ClientCredentials | None,
    ) -> MediaStream:
        acquire(self._connect_lock, deadline)
        try:
            with self._lock:
                conn = self._conn
                if conn is not None and self._status is ConnectionStatus.CONNECTED and not conn.released:
                    conn.handlers.update({name: h for name, h in handlers.items() if h is not None})
                    return conn.media
            if conn is not None:
                conn.close()
            return self._open_connection(handlers, deadline, credentials)
        finally:
            self._connect_lock.release()

    def _open_connection(
        self,
        handlers: dict[str, Callable[..., Any] | None],
        deadline: Deadline,
        credentials: ClientCredentials | None,
    ) -> MediaStream:
        conn = _Connection(handlers, self._buffer_size, self._timeout)
        with self._lock:
            self._conn = conn
            self._broadcast_info = None
            self._capabilities = None
        self._finalizer = weakref.finalize(self, _Connection.close, conn)
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
            conn.session, conn.video = session, session.video
            conn.loop.run(session.open(), deadline)
        except BaseException as exc:
            interrupted = not isinstance(exc, Exception)
            conn.open_failed()
            if isinstance(exc, OdysseyError) and not isinstance(exc, OdysseyTimeoutError):
                self._set_status(ConnectionStatus.FAILED, str(exc))
                conn.post("on_error", exc, True)
            else:
                self._set_status(ConnectionStatus.DISCONNECTED, None if interrupted else str(exc))
            self._release(conn)
            raise
        with self._lock:
            self._status = ConnectionStatus.CONNECTED
        ended_already, error = conn.opened()
        conn.post("on_status_change", ConnectionStatus.CONNECTED, None)
        conn.post("on_connected")
        logger.info("connected to session %s", credentials.session_id)
        self._send_telemetry("session_connected", credentials.session_id, connect_duration_ms=round(deadline.elapsed_ms()))
        if ended_already:
            self._on_session_ended(conn, error)
        return conn.media

    def _set_status(self, status: ConnectionStatus, message: str | None) -> None:
        with self._lock:
            conn = self._conn
            if self._status is status:
                return
            self._status = status
        if conn is not None:
            conn.post("on_status_change", status, message)

    def _release(self, conn: _Connection, *, discard: bool = True) -> None:
        conn.close(discard=discard)
        with self._lock:
            if self._conn is conn and self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None

    def _on_session_ended(self, conn: _Connection, error: BaseException | None) -> None:
        """The server or the network ended the connection (from the loop thread, or from connect())."""
        if self._conn is not conn or not conn.server_ended(error):
            return  # an old connection, connect() still reports it itself, or disconnect() got there first
        if error is not None:
            self._set_status(ConnectionStatus.FAILED, str(error))
            conn.post("on_error", error, True)
        else:
            self._set_status(ConnectionStatus.DISCONNECTED, "The server closed the connection")
        conn.post("on_disconnected")
        # The frames that arrived stay readable until disconnect() or the next connect().
        threading.Thread(
            target=self._release, args=(conn,), kwargs={"discard": False}, name="odyssey-cleanup", daemon=True
        ).start()

    def disconnect(self) -> None:
        """End the stream and the connection, releasing every thread and socket.

        Idempotent, and bounded (about 2 s) even if the server is gone. Calls
        blocked in other threads fail with :class:`OdysseyConnectionError`.
        """
        if os.getpid() != self._pid:
            return
        with self._lock:
            conn = self._conn
        if conn is None:
            return
        previous = conn.leave()
        if previous in (Phase.OPENING, Phase.OPEN):  # after a failure the status stays and the handlers have fired
            self._set_status(ConnectionStatus.DISCONNECTED, None)
            if previous is Phase.OPEN:
                conn.post("on_disconnected")
        session = conn.session
        self._release(conn)
        if previous is Phase.OPEN and session is not None:
            self._send_telemetry("session_disconnected", session.session_id)

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
        stream_id: str | None = None,
    ) -> SpectatorConnection:
        """Watch a broadcast stream as a spectator (no API key needed); see :func:`odyssey_sync.connect_to_stream`."""
        return connect_to_stream(
            webrtc_url,
            spectator_token,
            on_video_frame=on_video_frame,
            on_disconnected=on_disconnected,
            buffer_size=buffer_size,
            timeout=timeout,
            stream_id=stream_id,
        )

    # -- streams -----------------------------------------------------------------------------------

    def _connected(self, what: str) -> tuple[_Connection, Session]:
        self._check_process()
        with self._lock:
            conn, status = self._conn, self._status
        session = conn.session if conn is not None else None
        if conn is None or session is None or status is not ConnectionStatus.CONNECTED or session.ended:
            cause = conn.end_error if conn is not None else None
            if cause is not None:
                raise OdysseyStateError(
                    f"Cannot {what}: the connection ended ({cause}); call connect() again", reason="connection_ended"
                ) from cause
            raise OdysseyStateError(f"Cannot {what}: client is {status.value}; call connect() first", reason="not_connected")
        return conn, session

    @overload
    def start_stream(
        self,
        prompt: str = "",
        *,
        portrait: bool = True,
        image: Any = None,
        bypass_prompt_expansion: bool | None = None,
        broadcast: bool = False,
        wait: Literal[True] = True,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> Acknowledgement: ...

    @overload
    def start_stream(
        self,
        prompt: str = "",
        *,
        portrait: bool = True,
        image: Any = None,
        bypass_prompt_expansion: bool | None = None,
        broadcast: bool = False,
        wait: Literal[False],
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> Future[Acknowledgement]: ...

    def start_stream(
        self,
        prompt: str = "",
        *,
        portrait: bool = True,
        image: Any = None,
        bypass_prompt_expansion: bool | None = None,
        broadcast: bool = False,
        wait: bool = True,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> Acknowledgement | Future[Acknowledgement]:
        """Start a stream; blocks until the server confirms it and returns the stream id.

        From then on the pulling calls return this stream's frames. ``image`` (a
        path, bytes, a data URL, a numpy RGB array or a PIL image) asks for
        image-to-video; it is checked, centre-cropped and resized before
        anything is sent. The returned id also works as ``wait_for_frame(after=...)``.
        With ``wait=False`` it returns at once a :class:`concurrent.futures.Future`
        of the id (see :meth:`interact`).
        """
        _check_prompt(prompt, required=False)
        _check_bool("portrait", portrait)
        _check_bool("broadcast", broadcast)
        _check_bool("wait", wait)
        if bypass_prompt_expansion is not None:
            _check_bool("bypass_prompt_expansion", bypass_prompt_expansion)
        seconds = self._call_timeout(timeout)
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
        request = Request(message, "start_stream()", via_signaling=image_url is not None)
        return cast("Acknowledgement | Future[Acknowledgement]", self._stream_request(session, request, seconds, wait))

    @overload
    def interact(self, prompt: str, *, wait: Literal[True] = True, timeout: Timeout = DEFAULT_TIMEOUT) -> Acknowledgement: ...

    @overload
    def interact(self, prompt: str, *, wait: Literal[False], timeout: Timeout = DEFAULT_TIMEOUT) -> Future[Acknowledgement]: ...

    def interact(
        self, prompt: str, *, wait: bool = True, timeout: Timeout = DEFAULT_TIMEOUT
    ) -> Acknowledgement | Future[Acknowledgement]:
        """Steer the running stream; blocks until acknowledged and returns the prompt as applied.

        The returned text also works as ``wait_for_frame(after=...)``. The
        acknowledgement takes a round trip to the streamer (45-150 ms on
        loopback): a control loop that must keep its period passes
        ``wait=False`` and gets a :class:`concurrent.futures.Future` of the
        acknowledgement at once. Requests leave in the order they were made;
        interacts do not wait for each other's acknowledgements. The future
        fails with :class:`OdysseyTimeoutError` after ``timeout``, or with the
        stream or connection error; cancelling it abandons the request.
        """
        _check_prompt(prompt, required=True)
        _check_bool("wait", wait)
        message = protocol.update(prompt)
        size = len(protocol.encode(message).encode("utf-8"))
        if size > protocol.DEFAULT_DATA_CHANNEL_LIMIT:
            raise ValueError(
                f"prompt is {size} bytes once encoded, more than a data-channel message may carry "
                f"({protocol.DEFAULT_DATA_CHANNEL_LIMIT}); shorten it (non-ASCII characters take up to 12 bytes each)"
            )
        seconds = self._call_timeout(timeout)
        conn, session = self._connected("interact")
        return cast("Acknowledgement | Future[Acknowledgement]", self._stream_request(session, Request(message, "interact()"), seconds, wait))

    @overload
    def end_stream(self, *, wait: Literal[True] = True, timeout: Timeout = DEFAULT_TIMEOUT) -> None: ...

    @overload
    def end_stream(self, *, wait: Literal[False], timeout: Timeout = DEFAULT_TIMEOUT) -> Future[None]: ...

    def end_stream(self, *, wait: bool = True, timeout: Timeout = DEFAULT_TIMEOUT) -> Future[None] | None:
        """End the running stream; blocks until the server confirms (``wait=False``: a future of ``None``)."""
        _check_bool("wait", wait)
        seconds = self._call_timeout(timeout)
        conn, session = self._connected("end stream")
        return cast("Future[None] | None", self._stream_request(session, Request(protocol.stream_end(), "end_stream()"), seconds, wait))

    def _stream_request(self, session: Session, request: Request, timeout: float | None, wait: bool) -> Any:
        """Queue ``request`` on the session; wait for its result, or hand back the future."""
        future = session.submit(request, timeout)
        if not wait:
            return future
        # The loop's timer fails the future at the deadline; this wait's own bound is a backstop. A caller that
        # stops waiting (Ctrl+C) cancels the future, which abandons the request.
        return wait_future(future, None if timeout is None else timeout + _BACKSTOP_S, what=request.what)

    # -- frames ------------------------------------------------------------------------------------

    def _media(self) -> MediaStream:
        self._check_process()
        with self._lock:
            conn = self._conn
        if conn is None:
            raise OdysseyStateError("Not connected: call connect() before pulling frames", reason="not_connected")
        return conn.media

    def get_frame(self, timeout: Timeout = DEFAULT_TIMEOUT, *, stream_id: StreamView = CURRENT_STREAM) -> VideoFrame:
        """The oldest unread frame of the current stream; waits for one (up to ``timeout`` s).

        After ``start_stream()`` only that stream's frames come back (idle video
        before the first start). ``stream_id=None`` reads idle video, a stream id
        that stream's frames still buffered. Raises :class:`OdysseyStateError`
        once the stream has ended and all its frames were handed out.
        """
        check_view(stream_id)
        wait = self._call_timeout(timeout)
        return self._media().get_frame(wait, stream_id=stream_id)

    def latest_frame(self, *, stream_id: StreamView = CURRENT_STREAM, peek: bool = False) -> VideoFrame | None:
        """The newest frame of the current stream, or ``None`` before its first; never waits.

        For control loops: older unread frames are skipped (``stats.frames_superseded``)
        and the same frame comes back until a newer one arrives. ``peek=True``
        looks without handing the frame out: another reader's ``get_frame()`` /
        ``frames()`` still gets every frame (a live preview beside a recorder).
        """
        _check_bool("peek", peek)
        return self._media().latest_frame(stream_id=stream_id, peek=peek)

    def wait_for_frame(
        self, after: Any = None, timeout: Timeout = DEFAULT_TIMEOUT, *, stream_id: StreamView = CURRENT_STREAM
    ) -> VideoFrame:
        """The first unread frame of the current stream received after ``after`` (a
        ``time.monotonic()`` value, or what ``interact()`` / ``start_stream()`` returned;
        default: now). Unread frames before it are skipped."""
        moment_of(after)
        check_view(stream_id)
        wait = self._call_timeout(timeout)
        return self._media().wait_for_frame(after, wait, stream_id=stream_id)

    def frames(
        self, limit: int | None = None, timeout: Timeout = DEFAULT_TIMEOUT, *, stream_id: StreamView = CURRENT_STREAM
    ) -> Iterator[VideoFrame]:
        """Iterate over the current stream's frames in order.

        Ends when the stream ends (by ``end_stream()`` or the server's duration
        limit) or the client disconnects; raises if the connection failed.
        Before any stream it yields idle frames and moves on to the first
        stream that starts. ``timeout`` bounds the wait for each frame.
        """
        check_limit(limit)
        check_view(stream_id)
        wait = self._call_timeout(timeout)
        return self._media().frames(limit, wait, stream_id=stream_id)

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
        """Frame counters, measured fps and bitrate of the current (or last) connection.

        Reading it does no I/O and never blocks: the transport counters behind
        ``bitrate_bps`` and ``packets_lost`` are refreshed on the loop every second.
        """
        conn = self._conn
        return conn.stats() if conn is not None else Stats()


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


def _check_handlers(unknown: dict[str, Any], **handlers: Any) -> dict[str, Callable[..., Any] | None]:
    for name in unknown:
        raise TypeError(f"unknown handler {name!r}; handlers are: {', '.join(handlers)}")
    for name, handler in handlers.items():
        if handler is not None and not callable(handler):
            raise TypeError(f"{name} must be callable or None, not {type(handler).__name__}")
    return handlers


def _check_prompt(prompt: Any, *, required: bool) -> None:
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, not {type(prompt).__name__}")
    if required and not prompt.strip():
        raise ValueError("prompt is empty; describe what should happen, e.g. interact('The cat jumps')")
    problem = protocol.prompt_problem(prompt)
    if problem is not None:
        raise ValueError(problem)


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
