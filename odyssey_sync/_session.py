"""The asynchronous WebRTC session: signaling, the aiortc peer, data channels, frames.

Everything here runs on the client's event-loop thread. It never calls user
code: it reports to a listener (the blocking facade) through short,
thread-safe methods, and stores frames in a :class:`FrameBuffer`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from typing import Any, Protocol

import aiohttp
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.sdp import candidate_from_sdp

from . import _jitter, protocol
from ._deadline import Deadline
from ._media import VideoIn, close_peer
from ._signaling import SignalingChannel, connect_with_retries
from .errors import (
    OdysseyConnectionError,
    OdysseyError,
    OdysseyStateError,
    OdysseyStreamError,
    OdysseyTimeoutError,
    connection_error_from_reason,
)
from .frames import FrameBuffer, VideoFrame
from .loop_thread import cancel_and_wait, create_task
from .stream_protocol import (
    BroadcastReady,
    InteractAcknowledged,
    MessageIgnored,
    Request,
    RequestDone,
    StreamEnded,
    StreamErrorReceived,
    StreamProtocol,
    StreamStarted,
)
from .types import AdvancedConfig, BroadcastInfo

logger = logging.getLogger("odyssey_sync.session")

# How long a teardown the session starts itself (after a failure) may take; disconnect() passes its own deadline.
_TEARDOWN_S = 2.0
# After a normal signaling close, how long the data channel may still deliver the server's last words.
_MEDIA_GRACE_S = 1.0


class SessionListener(Protocol):
    """What the session tells its owner; every method is called on the loop thread and must be quick."""

    def session_connected(self) -> None: ...
    def session_frame(self, frame: VideoFrame) -> None: ...
    def session_stream_started(self, stream_id: str, applied_prompt: str) -> None: ...
    def session_interact_acknowledged(self, prompt: str) -> None: ...
    def session_stream_ended(self) -> None: ...
    def session_stream_error(self, reason: str, message: str) -> None: ...
    def session_broadcast_ready(self, info: BroadcastInfo) -> None: ...
    def session_error(self, error: BaseException) -> None: ...
    def session_ended(self, error: BaseException | None) -> None: ...


class Session:
    """One connection to a streamer: open it, send stream requests, end it.

    Fatal problems (abnormal signaling close, a signaling ``error``, the peer
    failing, the video track ending, ``session_timeout``) end the session with
    an error that fails every pending request and wakes every frame puller.
    """

    def __init__(
        self,
        *,
        signalling_url: str,
        session_id: str,
        token: str,
        advanced: AdvancedConfig,
        buffer: FrameBuffer,
        listener: SessionListener,
    ) -> None:
        self.signalling_url = signalling_url
        self.session_id = session_id
        self._token = token
        self._advanced = advanced
        self.buffer = buffer
        self._listener_obj = listener
        self._http: aiohttp.ClientSession | None = None
        self._signaling: SignalingChannel | None = None
        self.pc: RTCPeerConnection | None = None
        self._to_streamer: RTCDataChannel | None = None
        self._from_streamer: RTCDataChannel | None = None
        self._track: MediaStreamTrack | None = None
        self._ready: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.stream = StreamProtocol()
        self.video = VideoIn(
            buffer,
            tag=lambda: (self.stream.stream_id, self.stream.prompt),
            on_frame=lambda frame: self._notify("session_frame", frame),
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended = False
        self._closing = False
        self._signaling_closed_normally = False
        self._media_gone = asyncio.Event()
        self._teardown_task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    # -- helpers -------------------------------------------------------------------------------

    def _notify(self, method: str, *args: Any) -> None:
        try:
            getattr(self._listener_obj, method)(*args)
        except Exception:  # the listener is ours, but never let it break the loop
            logger.exception("session listener %s failed", method)

    @property
    def ended(self) -> bool:
        """Whether the session is over (closed or failed)."""
        return self._ended

    @property
    def stream_id(self) -> str | None:
        """The running stream's id."""
        return self.stream.stream_id

    @property
    def prompt(self) -> str | None:
        """The prompt in force on the running stream, as the server applied it."""
        return self.stream.prompt

    @property
    def connection_state(self) -> str | None:
        """The peer connection's state."""
        return self.pc.connectionState if self.pc is not None else None

    @property
    def ice_connection_state(self) -> str | None:
        """The ICE transport's state."""
        return self.pc.iceConnectionState if self.pc is not None else None

    # -- opening ---------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect: ICE config, signaling, offer/answer, until video and ``clientToStreamer`` are up."""
        loop = self._loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._http = aiohttp.ClientSession()
        try:
            self._signaling, ice_servers = await connect_with_retries(
                self._http, self.signalling_url, self.session_id, self._token, self._advanced
            )
            _jitter.install()
            self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers))
            self._wire_peer(self.pc)
            self._tasks.append(create_task(self._read_signaling(), name="odyssey-signaling"))
            self._tasks.append(create_task(self._keepalive(), name="odyssey-keepalive"))
            await asyncio.shield(self._ready)
        except BaseException as exc:
            self._ended = True
            await self._start_teardown(exc if isinstance(exc, OdysseyError) else None, goodbye=False)
            raise
        if not self._ended:
            self._tasks.append(create_task(self._watch_video(), name="odyssey-video-watchdog"))

    def _wire_peer(self, pc: RTCPeerConnection) -> None:
        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and self._track is None:
                self._track = track
                self._tasks.append(create_task(self._pump(track), name="odyssey-frames"))
                self._check_ready()

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if channel.label == protocol.CLIENT_TO_STREAMER:
                self._to_streamer = channel
                channel.on("open", self._check_ready)
                channel.on("close", lambda: self._channel_closed(channel.label))
                self._check_ready()
            elif channel.label == protocol.STREAMER_TO_CLIENT:
                self._from_streamer = channel
                channel.on("message", self._on_channel_message)
                channel.on("close", lambda: self._channel_closed(channel.label))
            else:
                logger.warning("ignoring unexpected data channel %r", channel.label)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            logger.debug("peer connection %s", state)
            if state in ("failed", "closed") and not self._closing:
                if self._signaling_closed_normally:
                    self._media_gone.set()
                    return
                self.fail(OdysseyConnectionError(f"WebRTC connection {state}; connect again"))

    def _check_ready(self) -> None:
        ready = self._ready
        channel = self._to_streamer
        if (
            ready is not None
            and not ready.done()
            and self._track is not None
            and channel is not None
            and channel.readyState == "open"
        ):
            ready.set_result(None)
            self._notify("session_connected")

    def _channel_closed(self, label: str) -> None:
        if self._signaling_closed_normally:
            self._media_gone.set()
        elif not self._closing:
            self.fail(OdysseyConnectionError(f"data channel {label} closed by the server; connect again"))

    # -- signaling -------------------------------------------------------------------------------

    async def _read_signaling(self) -> None:
        assert self._signaling is not None
        try:
            async for message in self._signaling.messages():
                if isinstance(message, protocol.ProtocolError):
                    self._nonfatal(OdysseyConnectionError(f"ignored a bad signaling message: {message}"))
                    continue
                await self._on_signaling_message(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket broke under us
            logger.debug("signaling reader stopped: %r", exc)
        if self._closing or self._ended:
            return
        code = self._signaling.close_code
        if code in protocol.NORMAL_CLOSE_CODES:
            # The server's last data-channel messages (a session_timeout, say) travel on another
            # transport and may land after the socket closed: let them in until the peer closes too.
            self._signaling_closed_normally = True
            try:
                await asyncio.wait_for(self._media_gone.wait(), _MEDIA_GRACE_S)
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(0)  # messages queued with the close event run first
            self._end(None)  # no-op if one of them ended the session already
        else:
            self.fail(OdysseyConnectionError(f"Signaling disconnected (close code {code}); connect again"))

    async def _on_signaling_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == protocol.OFFER:
            await self._answer(message.get("sdp"))
        elif kind == protocol.ICE_CANDIDATE:
            await self._add_remote_candidate(message)
        elif kind == protocol.ERROR:
            self.fail(connection_error_from_reason(str(message.get("reason", "unknown"))))
        elif kind in _CHANNEL_MESSAGE_TYPES:
            self._route(message)
        else:
            logger.debug("ignoring signaling message %r", kind)

    async def _answer(self, sdp: Any) -> None:
        assert self.pc is not None and self._signaling is not None
        if not isinstance(sdp, str):
            self.fail(OdysseyConnectionError("server sent an offer without SDP"))
            return
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self._signaling.send(protocol.answer(self.pc.localDescription.sdp))
        except Exception as exc:
            self.fail(OdysseyConnectionError(f"WebRTC negotiation failed: {exc}"))

    async def _add_remote_candidate(self, message: dict[str, Any]) -> None:
        assert self.pc is not None
        text = message.get("candidate")
        if not isinstance(text, str) or not text.strip():
            return
        try:
            candidate = candidate_from_sdp(text.split(":", 1)[1] if text.startswith("candidate:") else text)
            candidate.sdpMid = message.get("sdpMid")
            candidate.sdpMLineIndex = message.get("sdpMLineIndex")
            await self.pc.addIceCandidate(candidate)
        except Exception as exc:
            logger.debug("ignored remote ICE candidate: %r", exc)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(protocol.KEEPALIVE_INTERVAL_S)
            if self._signaling is None or self._signaling.closed:
                return
            try:
                await self._signaling.send(protocol.keepalive())
            except Exception as exc:
                logger.debug("keepalive failed: %r", exc)

    # -- media -------------------------------------------------------------------------------------

    async def _pump(self, track: MediaStreamTrack) -> None:
        await self.video.pump(track)
        if not self._closing and not self._ended:
            self.fail(OdysseyConnectionError("the video track ended; connect again"))

    async def _watch_video(self) -> None:
        """Fail the session when no frame has been decoded for :data:`~odyssey_sync._media.VIDEO_STALL_TIMEOUT_S`."""
        await self.video.watch(
            self.pc,
            lambda: self._ended,
            lambda limit: self.fail(
                OdysseyConnectionError(f"No video from the streamer for {limit:g} s: the connection is dead; connect again")
            ),
        )

    # -- data channel ------------------------------------------------------------------------------

    def _on_channel_message(self, raw: Any) -> None:
        try:
            message = protocol.decode(raw)
        except protocol.ProtocolError as exc:
            self._nonfatal(OdysseyStreamError(f"ignored a bad message from the streamer: {exc}"))
            return
        self._route(message)

    def _route(self, message: dict[str, Any]) -> None:
        self.stream.receive(message, time.monotonic())
        self._pump_protocol()

    # -- requests --------------------------------------------------------------------------------

    def submit(self, request: Request, timeout: float | None) -> concurrent.futures.Future[Any]:
        """From any thread: queue a stream request; the future resolves with its reply's result.

        ``timeout`` (seconds, counted from now, queueing included) fails the
        future with :class:`OdysseyTimeoutError`; cancelling the future abandons
        the request (never sent if it has not left yet; its late reply ignored if it has).
        """
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        request.handle = future
        loop = self._loop
        try:
            if loop is None or loop.is_closed():
                raise RuntimeError("the loop is gone")
            loop.call_soon_threadsafe(self._submit, request, timeout)
        except RuntimeError:  # the loop stopped under us
            future.set_exception(self._gone_error())
            return future
        future.add_done_callback(lambda done: self._abandon_threadsafe(request) if done.cancelled() else None)
        return future

    def _submit(self, request: Request, timeout: float | None) -> None:
        future: concurrent.futures.Future[Any] = request.handle
        if future.done():
            return  # cancelled before it reached the loop
        if self._ended:
            self.stream.fail(self._gone_error())
        if timeout is not None:
            timer = asyncio.get_running_loop().call_later(timeout, self._expire, request, timeout)
            future.add_done_callback(lambda _: timer.cancel())
        self.stream.submit(request)
        self._pump_protocol()

    def _expire(self, request: Request, timeout: float) -> None:
        self.stream.abandon(request, OdysseyTimeoutError(f"{request.what} timed out after {timeout:g} s"))
        self._pump_protocol()

    def _abandon_threadsafe(self, request: Request) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._abandon, request)
            except RuntimeError:
                pass

    def _abandon(self, request: Request) -> None:
        self.stream.abandon(request, OdysseyConnectionError(f"{request.what} was abandoned by its caller"))
        self._pump_protocol()

    def _pump_protocol(self) -> None:
        """Send what the stream protocol releases, then act on what it reports, in order."""
        for request in self.stream.requests_to_send():
            try:
                self._send(request.message, request.via_signaling)
            except OdysseyError as exc:
                self.stream.abandon(request, exc, sent=False)
        for event in self.stream.events_received():
            self._on_stream_event(event)

    def _on_stream_event(self, event: Any) -> None:
        if isinstance(event, RequestDone):
            future: concurrent.futures.Future[Any] = event.request.handle
            try:
                if event.error is not None:
                    future.set_exception(event.error)
                else:
                    future.set_result(event.result)
            except concurrent.futures.InvalidStateError:
                pass  # the caller cancelled it meanwhile
        elif isinstance(event, StreamStarted):
            self.buffer.set_stream(event.stream_id)
            self._notify("session_stream_started", event.stream_id, event.applied_prompt)
        elif isinstance(event, InteractAcknowledged):
            self._notify("session_interact_acknowledged", event.prompt)
        elif isinstance(event, StreamEnded):
            if event.error is None:
                self.buffer.set_stream(None)
                self._notify("session_stream_ended")
            else:  # the server ended the stream and closes the connection: both at once for pullers
                self.buffer.close(as_connection_error(event.error), end_stream=True)
        elif isinstance(event, StreamErrorReceived):
            self._notify("session_stream_error", event.reason, event.message)
            if event.fatal:
                self.fail(event.error)
        elif isinstance(event, BroadcastReady):
            if event.info is not None:
                self._notify("session_broadcast_ready", event.info)
            else:
                self._notify("session_stream_error", "broadcast_error", "Broadcast setup incomplete: missing playback URL or token")
        elif isinstance(event, MessageIgnored):
            self._nonfatal(event.error)

    def _send(self, message: dict[str, Any], via_signaling: bool) -> None:
        text = protocol.encode(message)
        channel = self._to_streamer
        fits = len(text.encode("utf-8")) <= protocol.DEFAULT_DATA_CHANNEL_LIMIT
        if not via_signaling and fits and channel is not None and channel.readyState == "open":
            channel.send(text)
            return
        if message["type"] != protocol.STREAM_START:
            if not fits:
                raise OdysseyStreamError(
                    f"the {message['type']} message is larger than a data-channel message may be "
                    f"({protocol.DEFAULT_DATA_CHANNEL_LIMIT} bytes); shorten it"
                )
            raise OdysseyConnectionError("the clientToStreamer channel is not open; connect again")
        if self._signaling is None or self._signaling.closed:
            raise OdysseyConnectionError("the signaling connection is closed; connect again")
        create_task(self._signaling.send(message), name="odyssey-ws-start")

    def _gone_error(self) -> BaseException:
        if self.error is not None:
            return self.error
        return OdysseyStateError("the connection is closed; call connect() first", reason="connection_ended")

    # -- ending ----------------------------------------------------------------------------------

    def _nonfatal(self, error: BaseException) -> None:
        logger.debug("%s", error)
        self._notify("session_error", error)

    def fail(self, error: BaseException) -> None:
        """End the session because of ``error`` (idempotent; the first error wins)."""
        if self._ended:
            return
        self._end(error)

    def _end(self, error: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        self.error = error
        gone = error or OdysseyConnectionError("the server closed the connection; connect again")
        # The owner hears first, so callers woken below already see the failed status.
        self._notify("session_ended", error)
        self.stream.fail(gone)
        self._pump_protocol()
        self.buffer.close(as_connection_error(error))
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(gone)
            self._ready.exception()  # retrieved: open() re-raises it
        self._start_teardown(error, goodbye=False)

    async def close(self, deadline: Deadline) -> None:
        """Close cleanly by ``deadline``: ``client_disconnecting``, close code 1000, peer closed."""
        if self._teardown_task is not None:
            await asyncio.shield(self._teardown_task)
            return
        already_ended = self._ended
        self._ended = True
        self.stream.fail(OdysseyConnectionError("disconnect() was called"))
        self._pump_protocol()
        self.buffer.close(self.error)
        await self._start_teardown(self.error, goodbye=not already_ended, deadline=deadline)

    def _start_teardown(
        self, error: BaseException | None, *, goodbye: bool, deadline: Deadline | None = None
    ) -> asyncio.Future[None]:
        """Start tearing down once; every caller gets the same (shielded) task to await."""
        if self._teardown_task is None:
            self._closing = True
            deadline = deadline or Deadline(_TEARDOWN_S, "session teardown")
            self._teardown_task = create_task(self._teardown(error, goodbye, deadline), name="odyssey-teardown")
        return asyncio.shield(self._teardown_task)

    async def _teardown(self, error: BaseException | None, goodbye: bool, deadline: Deadline) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        if self._signaling is not None:
            await self._signaling.close(goodbye=goodbye, deadline=deadline)
        await close_peer(self.pc, self._http, deadline)
        self.buffer.close(error)


def as_connection_error(error: BaseException | None) -> BaseException | None:
    """What frame pullers get when a connection ends: always an :class:`OdysseyConnectionError`.

    A stream error that ended the connection (``session_timeout``) stays the
    ``__cause__``, so ``except OdysseyConnectionError`` catches every end.
    """
    if error is None or isinstance(error, OdysseyConnectionError):
        return error
    wrapped = OdysseyConnectionError(f"The connection ended: {error}", reason=getattr(error, "reason", None))
    wrapped.__cause__ = error
    return wrapped


_CHANNEL_MESSAGE_TYPES = frozenset(
    {
        protocol.STREAM_STARTED,
        protocol.UPDATE_ACKNOWLEDGED,
        protocol.STREAM_ENDED,
        protocol.STREAM_ERROR,
        protocol.BROADCAST_READY,
    }
)
