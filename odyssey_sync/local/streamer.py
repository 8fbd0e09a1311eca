"""One session's streamer: the signaling socket, the aiortc peer and the stream lifecycle.

The server offers (as the hosted service does): it adds its world video track
and creates both data channels, then sends ``offer`` on the socket and waits
for the ``answer``. Stream messages arrive on ``clientToStreamer`` (the start
also on the socket) and are handled one at a time, in order; replies go on
``streamerToClient`` and are queued until that channel opens, never dropped.

When the socket closes, however it closes, the peer is closed and the session
released. Anything unexpected from the client is logged and ignored.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import WSMsgType, web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.sdp import SessionDescription, candidate_from_sdp

from .. import protocol
from ..images import decode_to_rgb
from ..stream_protocol import Refusal, StartRequest, UpdateRequest, parse_request, state_refusal
from .aiortc_internals import data_channel_backlog, guard_data_channel_receive, udp_transports
from .bodies import INLINE_JSON_BYTES, BodyError, parse_json
from .config import ApiKey, ServerConfig
from .encoder import H264Encoder
from .faults import Faults
from .sessions import PromptRecord, Session, SessionRegistry, StreamRecord
from .track import WorldVideoTrack
from .world import World

if TYPE_CHECKING:
    from .archive import Archive
    from .broadcast import Broadcast, BroadcastHub
    from .recorder import LiveRecording

__all__ = [
    "WS_CLOSE_TIMEOUT_S",
    "Streamer",
    "expand_prompt",
    "ice_servers_for",
    "large_message_problem",
]

logger = logging.getLogger("odyssey_sync.local.streamer")

DEFAULT_SCENE = "A quiet procedural landscape of rolling hills under a wide sky"
EXPANSION_SUFFIX = "cinematic lighting, smooth camera motion, rich detail"

# Close code for a connection the server ends because of an internal failure.
_CLOSE_INTERNAL_ERROR = 1011
_CLOSE_GOING_AWAY = 1001
# How long a final data-channel message may take to be acknowledged before the peer closes.
_DRAIN_TIMEOUT_S = 1.0
_DRAIN_POLL_S = 0.01
_PEER_CLOSE_TIMEOUT_S = 5.0
# Seconds to wait for the client's reply to a close frame (also the WebSocketResponse timeout).
WS_CLOSE_TIMEOUT_S = 2.0

_STREAM_ERROR_TEXT = {
    "session_timeout": protocol.SESSION_TIMEOUT_MESSAGE,
    "quota_exceeded": "Monthly usage quota exceeded",
    "concurrent_limit_exceeded": "Too many concurrent streams for this API key",
    "lease_denied": "Credit lease denied",
}


# Largest data-channel message taken: what aiortc declares as its max-message-size in the SDP. A larger
# start (one with an image) belongs on the signaling socket, as protocol.md says.
DATA_MESSAGE_LIMIT = 64 * 1024

# Most ICE candidates taken from one client (a browser trickles a handful): the server probes each one.
MAX_REMOTE_CANDIDATES = 64

# The applied prompt goes back in one ``streamerToClient`` message, which every client must be able
# to take: aiortc peers declare 64 KiB, browsers 256 KiB, and a message over the declared limit cannot be
# sent at all (the client would wait for ``stream_started`` forever). So it is cut to fit; the
# world still renders the prompt as the client sent it.
MAX_APPLIED_PROMPT_BYTES = 48 * 1024


def expand_prompt(prompt: str, *, bypass: bool = False) -> str:
    """The local stand-in for the hosted prompt expansion: deterministic, visibly longer.

    An empty prompt becomes a default scene; ``bypass`` (for keys with the
    privilege) returns the prompt unchanged. Either way the result is cut so
    that its JSON encoding takes at most :data:`MAX_APPLIED_PROMPT_BYTES`.
    """
    if bypass:
        return _bounded(prompt)
    base = prompt.strip() or DEFAULT_SCENE
    return _bounded(f"{base}, {EXPANSION_SUFFIX}")


def _bounded(text: str) -> str:
    """``text``, or its longest prefix whose JSON encoding fits :data:`MAX_APPLIED_PROMPT_BYTES`."""

    def size(candidate: str) -> int:
        return len(json.dumps(candidate).encode("utf-8"))  # as protocol.encode writes it

    if size(text) <= MAX_APPLIED_PROMPT_BYTES:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if size(text[:middle]) <= MAX_APPLIED_PROMPT_BYTES:
            low = middle
        else:
            high = middle - 1
    return text[:low]


# What a start may hold besides its image: the longest prompt with every character escaped as JSON
# (a surrogate pair, 12 bytes), and the other fields.
LARGE_MESSAGE_REST = protocol.MAX_PROMPT_CHARS * 12 + 4096
_IMAGE_VALUE = re.compile(r'"input_image_base64"\s*:\s*"')
_IMAGE_VALUE_BYTES = re.compile(rb'"input_image_base64"\s*:\s*"')


def large_message_problem(text: str | bytes) -> str | None:
    """Why a signaling message over :data:`~.bodies.INLINE_JSON_BYTES` characters cannot be valid, or ``None``.

    Only a start with an image needs that much: its bulk is the image's data
    URL, one JSON string without quotes or escapes inside. Everything else
    must fit in :data:`LARGE_MESSAGE_REST`. Checked with two C-speed
    searches before the message is parsed, so a 30 MB prompt is refused
    without the ~100 ms of holding the GIL that parsing it would take.
    """
    start, end = 0, -1
    if isinstance(text, str):
        found = _IMAGE_VALUE.search(text)
        if found is not None:
            start, end = found.end(), text.find('"', found.end())
    else:
        found_bytes = _IMAGE_VALUE_BYTES.search(text)
        if found_bytes is not None:
            start, end = found_bytes.end(), text.find(b'"', found_bytes.end())
    bulk = end - start if end >= 0 else 0
    rest = len(text) - bulk
    if rest <= LARGE_MESSAGE_REST:
        return None
    return (
        f"The signaling message has {rest} characters besides its image; only a start's input_image_base64 "
        f"may be large, the rest of a message must fit in {LARGE_MESSAGE_REST}. Prompts must be under "
        f"{protocol.MAX_PROMPT_CHARS} characters"
    )


def prefer_h264(transceiver: Any) -> None:
    """Offer H.264 first (the encode-once packets), VP8 after it for peers without H.264."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    order = {"video/H264": 0, "video/VP8": 1, "video/rtx": 2}
    transceiver.setCodecPreferences(sorted((c for c in codecs if c.mimeType in order), key=lambda c: order[c.mimeType]))


def negotiated_video_codec(sdp: str) -> str | None:
    """The mime type of the first video codec of a session description (what the sender uses)."""
    for media in SessionDescription.parse(sdp).media:
        if media.kind == "video":
            for codec in media.rtp.codecs:
                if codec.mimeType.lower() != "video/rtx":
                    return codec.mimeType
    return None


def ice_servers_for(config: ServerConfig) -> list[RTCIceServer]:
    """The configured ICE servers as aiortc objects (an empty list: no STUN at all)."""
    return [RTCIceServer(**server) for server in protocol.parse_ice_servers({"iceServers": list(config.ice_servers)})]


if TYPE_CHECKING:
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:  # subscriptable at run time only from Python 3.11
    _LoggerAdapter = logging.LoggerAdapter


class _SessionLog(_LoggerAdapter):
    """Prefixes every record with the (non-secret) session id."""

    def __init__(self, base: logging.Logger, session_id: str) -> None:
        super().__init__(base, {})
        self._prefix = f"session {session_id[:8]}: "

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return self._prefix + str(msg), kwargs


@attrs.define
class _ActiveStream:
    stream_id: str
    width: int
    height: int
    bypass: bool
    seed: Any
    deadline: asyncio.TimerHandle | None = None
    recording: LiveRecording | None = None
    broadcast: Broadcast | None = None


class Streamer:
    """Serves one signaling socket: peer, data channels, world and stream lifecycle."""

    def __init__(
        self,
        *,
        session: Session,
        ws: web.WebSocketResponse,
        request: web.Request,
        config: ServerConfig,
        faults: Faults,
        registry: SessionRegistry,
        idle: World,
        idle_ready: asyncio.Future[None],
        executor: concurrent.futures.Executor,
        inputs: concurrent.futures.Executor | None = None,
        archive: Archive | None = None,
        broadcasts: BroadcastHub | None = None,
    ) -> None:
        """Bind the parts; nothing happens until :meth:`run`. Streams are recorded into ``archive``.

        Frames are encoded on ``executor``; large messages are parsed and
        start images decoded on ``inputs`` (default: ``executor``).
        """
        self._session = session
        self._ws = ws
        self._request = request
        self._config = config
        self._faults = faults
        self._registry = registry
        self._idle = idle
        self._idle_ready = idle_ready
        self._executor = executor
        self._inputs = inputs or executor
        self._archive = archive
        self._broadcasts = broadcasts
        self._log = _SessionLog(logger, session.session_id)
        self._worlds = (World(1280, 704, fps=config.fps), World(1280, 704, fps=config.fps))
        self._front = 0
        self._pc: RTCPeerConnection | None = None
        self._track: WorldVideoTrack | None = None
        self._encoder = H264Encoder(fps=config.fps, bitrate=config.video_bitrate)
        self._out: Any = None
        self._pending: list[str] = []
        self._remote_candidates = 0
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._stream: _ActiveStream | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inbox_task: asyncio.Task[Any] | None = None
        self._connection_deadline: asyncio.TimerHandle | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def session(self) -> Session:
        """The session this streamer serves."""
        return self._session

    @property
    def closed(self) -> asyncio.Future[None]:
        """Resolved once the peer is closed and the session released."""
        return self._closed

    @property
    def key(self) -> ApiKey:
        """The API key that holds the session."""
        return self._session.key

    # -- lifetime --------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the (already upgraded) socket until it closes, then tear everything down."""
        loop = asyncio.get_running_loop()
        self._connection_deadline = loop.call_later(self._config.max_connection_seconds, self._on_connection_limit)
        self._inbox_task = self._spawn(self._process_inbox(), "inbox")
        try:
            await self._open_peer()
            async for message in self._ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_signaling_text(message.data)
                elif message.type == WSMsgType.BINARY:
                    self._log.warning("ignoring a binary signaling frame of %d bytes", len(message.data))
                elif message.type == WSMsgType.ERROR:
                    self._log.info("signaling socket error: %s", self._ws.exception())
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log.exception("streamer failed; closing the connection")
            if not self._ws.closed:
                await self._send_signaling(protocol.signaling_error("unknown"))
                await self._ws.close(code=_CLOSE_INTERNAL_ERROR)
        finally:
            await self._teardown()

    async def close(self, *, reason: str = "streamer_disconnected", code: int = _CLOSE_GOING_AWAY) -> None:
        """End the connection from the server side: signaling ``error``, then close the socket."""
        if self._closing or self._ws.closed:
            return
        self._closing = True
        await self._send_signaling(protocol.signaling_error(reason))
        await self._ws.close(code=code)

    def abort(self) -> None:
        """Cut the socket and the peer's UDP sockets without a word, as a crash would."""
        self._closing = True
        transport = self._request.transport
        if transport is not None:
            transport.abort()
        if self._pc is not None:
            for udp in udp_transports(self._pc):
                udp.abort()

    def begin_close(self, *, reason: str = "streamer_disconnected") -> None:
        """Start :meth:`close` without waiting; :attr:`closed` tells when it is done."""
        self._spawn(self.close(reason=reason), "close")

    async def _teardown(self) -> None:
        self._closing = True
        if self._connection_deadline is not None:
            self._connection_deadline.cancel()
        if self._stream is not None and self._stream.deadline is not None:
            self._stream.deadline.cancel()
        if self._stream is not None:
            _end_recording(self._stream, "disconnected")
            _end_broadcast(self._stream)
        if self._inbox_task is not None:
            self._inbox_task.cancel()
        if self._pc is not None:
            try:
                await asyncio.wait_for(self._pc.close(), _PEER_CLOSE_TIMEOUT_S)
            except Exception:
                self._log.warning("closing the peer connection failed", exc_info=True)
        if self._track is not None:
            self._track.stop()
        self._encoder.close()
        if not self._ws.closed:
            await self._ws.close()
        # Closing handshakes still running end within the socket's close timeout.
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current and not t.done()]
        if others:
            _, late = await asyncio.wait(others, timeout=WS_CLOSE_TIMEOUT_S)
            for task in late:
                task.cancel()
        self._registry.release(self._session)
        if not self._closed.done():
            self._closed.set_result(None)
        self._log.info("session closed")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(f"local-odyssey-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("task %s failed", task.get_name(), exc_info=task.exception())

    # -- peer ------------------------------------------------------------------------------

    async def _open_peer(self) -> None:
        await self._idle_ready
        pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers_for(self._config)))
        self._pc = pc
        self._track = WorldVideoTrack(
            self._idle,
            fps=self._config.fps,
            encoder=self._encoder,
            executor=self._executor,
            stalled=self._faults.video_stalled,
            on_frame=self._on_frame,
        )
        prefer_h264(pc.addTransceiver(self._track, direction="sendonly"))
        inbound = pc.createDataChannel(protocol.CLIENT_TO_STREAMER)
        self._out = pc.createDataChannel(protocol.STREAMER_TO_CLIENT)
        inbound.on("message", self._on_data_message)
        self._out.on("message", self._on_data_message)
        self._out.on("open", self._flush_pending)
        guard_data_channel_receive(pc, self._on_unreadable_data)
        pc.on("connectionstatechange", self._on_connection_state)
        await pc.setLocalDescription(await pc.createOffer())
        await self._send_signaling(protocol.offer(pc.localDescription.sdp))

    def _on_connection_state(self) -> None:
        if self._pc is not None:
            self._log.info("peer connection %s", self._pc.connectionState)

    def _on_frame(self, frame_number: int) -> None:
        self._session.frames_sent = frame_number + 1

    # -- signaling -------------------------------------------------------------------------

    async def _send_signaling(self, message: dict[str, Any]) -> None:
        if self._ws.closed:
            return
        try:
            await self._ws.send_str(protocol.encode(message))
        except (ConnectionError, RuntimeError) as exc:
            self._log.info("could not send %s on the signaling socket: %s", message.get("type"), exc)

    async def _on_signaling_text(self, text: str | bytes) -> None:
        try:
            message = await self._decode_signaling(text)
        except protocol.ProtocolError as exc:
            self._log.warning("ignoring a signaling message: %s", exc)
            return
        except BodyError as exc:
            self._log.warning("refusing a signaling message: %s", exc.detail)
            self._reply(protocol.stream_error("invalid_request", exc.detail))
            return
        kind = message["type"]
        self._log.debug("signaling: %s", kind)
        if self._faults.ignores(kind):
            self._log.info("fault knob: dropping signaling %s", kind)
        elif kind == protocol.ANSWER:
            await self._on_answer(message)
        elif kind == protocol.ICE_CANDIDATE:
            await self._on_remote_candidate(message)
        elif kind == protocol.KEEPALIVE:
            pass
        elif kind == protocol.CLIENT_DISCONNECTING:
            self._log.info("client is disconnecting")
            self._closing = True
            await self._ws.close(code=1000)
        elif kind in (protocol.STREAM_START, protocol.UPDATE, protocol.STREAM_END):
            self._inbox.put_nowait(message)
        else:
            self._log.warning("ignoring unknown signaling message type %r", kind)

    async def _decode_signaling(self, text: str | bytes) -> dict[str, Any]:
        """One signaling message; a large one (a start with an image) is parsed off the loop.

        Raises :class:`~odyssey_sync.protocol.ProtocolError` for anything that
        is not a protocol message, :class:`~.bodies.BodyError` (413) for a
        document with too many values to parse safely.
        """
        if len(text) <= INLINE_JSON_BYTES:
            return protocol.decode(text)
        problem = large_message_problem(text)
        if problem is not None:
            raise BodyError(413, problem)
        try:
            message = await parse_json(text, self._inputs, "The signaling message", counted=True)
        except BodyError as exc:
            if exc.status != 413:
                raise protocol.ProtocolError(exc.detail) from None
            raise
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise protocol.ProtocolError("message is not a JSON object with a string 'type'")
        return message

    async def _on_answer(self, message: dict[str, Any]) -> None:
        pc = self._pc
        sdp = message.get("sdp")
        if pc is None or pc.signalingState != "have-local-offer" or not isinstance(sdp, str):
            self._log.warning("ignoring an answer (state %s)", pc.signalingState if pc else "no peer")
            return
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:
            self._log.warning("ignoring an answer that cannot be applied: %s", exc)
            return
        codec = negotiated_video_codec(sdp)
        if self._track is not None:
            self._track.passthrough = (codec or "").lower() == "video/h264"
            self._track.sender = next((t.sender for t in pc.getTransceivers() if t.kind == "video"), None)
        self._log.info("video codec %s (%s)", codec, "encoded once" if self._track and self._track.passthrough else "aiortc encodes")

    async def _on_remote_candidate(self, message: dict[str, Any]) -> None:
        text, mid, index = message.get("candidate"), message.get("sdpMid"), message.get("sdpMLineIndex")
        init = text
        if isinstance(init, dict):  # an RTCIceCandidateInit object instead of flat fields
            text, mid, index = init.get("candidate"), init.get("sdpMid", mid), init.get("sdpMLineIndex", index)
        if self._pc is None or not isinstance(text, str) or not text.strip():
            return  # end-of-candidates, or nothing usable
        if self._remote_candidates >= MAX_REMOTE_CANDIDATES:
            self._log.warning("ignoring an ICE candidate: the client sent more than %d", MAX_REMOTE_CANDIDATES)
            return
        self._remote_candidates += 1
        text = text.strip()
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        try:
            candidate = candidate_from_sdp(text)
            candidate.sdpMid, candidate.sdpMLineIndex = mid, index
            await self._pc.addIceCandidate(candidate)
        except Exception as exc:
            self._log.warning("ignoring an ICE candidate: %s", exc)

    # -- data channels ---------------------------------------------------------------------

    def _on_data_message(self, data: str | bytes) -> None:
        """Take one data channel message. Never raises: aiortc calls this from its receive loop, which
        an exception would end, and with it the session's video and every later message."""
        try:
            self._take_data_message(data)
        except Exception:
            self._log.exception("failed to take a data channel message; the session carries on")

    def _on_unreadable_data(self, exc: Exception) -> None:
        """aiortc could not read a data channel message (see ``guard_data_channel_receive``); it was dropped."""
        if isinstance(exc, UnicodeDecodeError):
            self._log.warning("refusing a data channel message that is not UTF-8 text")
            self._reply(
                protocol.stream_error(
                    "invalid_request", "A data channel message was not UTF-8 text; send each message as JSON text"
                )
            )
        else:
            self._log.warning("dropping a data channel message aiortc could not take (%s)", type(exc).__name__)

    def _take_data_message(self, data: str | bytes) -> None:
        if len(data) > DATA_MESSAGE_LIMIT:
            self._log.warning("refusing a data channel message of %d bytes", len(data))
            self._reply(
                protocol.stream_error(
                    "invalid_request",
                    f"The message is {len(data)} characters; a data channel message may be at most "
                    f"{DATA_MESSAGE_LIMIT}. Send a start with an image on the signaling socket",
                )
            )
            return
        try:
            message = protocol.decode(data)
        except protocol.ProtocolError as exc:
            self._log.warning("ignoring a data channel message: %s", exc)
            return
        kind = message["type"]
        self._log.debug("data channel: %s", kind)
        if self._faults.ignores(kind):
            self._log.info("fault knob: dropping %s", kind)
        elif kind in (protocol.STREAM_START, protocol.UPDATE, protocol.STREAM_END):
            self._inbox.put_nowait(message)
        else:
            self._log.warning("ignoring unknown data channel message type %r", kind)

    def _reply(self, message: dict[str, Any]) -> None:
        self._send_data(protocol.encode(message))

    def _send_data(self, text: str) -> None:
        channel = self._out
        if channel is not None and channel.readyState == "open":
            try:
                channel.send(text)
            except Exception as exc:
                self._log.warning("could not send on %s: %s", protocol.STREAMER_TO_CLIENT, exc)
        elif channel is None or channel.readyState == "connecting":
            self._pending.append(text)
        else:
            self._log.info("dropping a reply: %s is %s", protocol.STREAMER_TO_CLIENT, channel.readyState)

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, []
        for text in pending:
            self._send_data(text)

    async def _drain_data(self) -> None:
        """Wait (bounded) until what was sent on the data channel has been acknowledged.

        Replies made while the channel is still opening (the client can send on
        its side before the server's side is open) wait in ``_pending`` and count
        too: they go out when it opens.
        """
        channel = self._out
        deadline = time.monotonic() + _DRAIN_TIMEOUT_S
        while channel is not None and channel.readyState in ("connecting", "open") and time.monotonic() < deadline:
            if not self._pending and not data_channel_backlog(channel, self._pc):
                return
            await asyncio.sleep(_DRAIN_POLL_S)

    # -- stream lifecycle ------------------------------------------------------------------

    async def _process_inbox(self) -> None:
        while True:
            message = await self._inbox.get()
            if self._closing:
                continue
            try:
                request = parse_request(message)
                kind = message.get("type", "")
                refusal = request if isinstance(request, Refusal) else state_refusal(kind, self._stream_id())
                if refusal is not None:
                    self._reply(refusal.to_message())
                elif isinstance(request, StartRequest):
                    await self._on_start(request)
                elif isinstance(request, UpdateRequest):
                    await self._on_update(request)
                else:
                    self._on_end()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._log.exception("failed to handle %s", message.get("type"))
                self._reply(protocol.stream_error("internal_error", "The local server failed to handle the message"))

    def _stream_id(self) -> str | None:
        return self._stream.stream_id if self._stream is not None else None

    async def _on_start(self, request: StartRequest) -> None:
        prompt, portrait, image, bypass = request.prompt, request.portrait, request.image_data_url, request.bypass_prompt_expansion
        if bypass and not self.key.bypass_privilege:
            self._reply(
                protocol.stream_error("permission_denied", "This API key is not allowed to bypass prompt expansion")
            )
            return
        if image and not self._config.image_to_video:
            self._reply(
                protocol.stream_error("image_to_video_unsupported", "This streamer does not support image-to-video")
            )
            return
        fault = self._faults.take_stream_error_on_start()
        if fault is not None:
            await self._stream_error(fault)
            return

        width, height = protocol.PORTRAIT if portrait else protocol.LANDSCAPE
        seed = None
        if image:
            loop = asyncio.get_running_loop()
            try:
                seed = await loop.run_in_executor(self._inputs, decode_to_rgb, image, width, height)
            except (ValueError, TypeError) as exc:
                self._reply(protocol.stream_error("invalid_image", str(exc)))
                return

        stream = _ActiveStream(str(uuid.uuid4()), width, height, bypass, seed)
        applied = expand_prompt(prompt, bypass=bypass)
        frame_number = await self._show(prompt, stream)
        if frame_number is None:
            return
        self._stream = stream
        stream.deadline = asyncio.get_running_loop().call_later(
            self._config.max_stream_seconds, self._on_stream_limit, stream.stream_id
        )
        now = time.time()
        self._registry.start_stream(
            self._session,
            StreamRecord(
                stream_id=stream.stream_id,
                prompt=prompt,
                portrait=portrait,
                has_image=seed is not None,
                prompts=(PromptRecord(prompt, applied, frame_number, now),),
                started_at=now,
            ),
        )
        stream.recording = self._record(stream, prompt, applied, frame_number, portrait)
        self._log.info("stream %s started (%dx%d)", stream.stream_id, width, height)
        await self._until_sent(frame_number)
        self._reply(protocol.stream_started(stream.stream_id, applied))
        if request.broadcast:
            self._start_broadcast(stream, frame_number)

    async def _on_update(self, request: UpdateRequest) -> None:
        prompt, stream = request.prompt, self._stream
        assert stream is not None  # state_refusal let the update through
        fault = self._faults.take_stream_error_on_interact()
        if fault is not None:
            await self._stream_error(fault)
            return
        applied = expand_prompt(prompt, bypass=stream.bypass)
        frame_number = await self._show(prompt, stream)
        if frame_number is None or self._stream is not stream:
            return
        self._registry.add_prompt(self._session, PromptRecord(prompt, applied, frame_number, time.time()))
        if stream.recording is not None:
            stream.recording.update(prompt, applied, frame_number)
        await self._until_sent(frame_number)
        self._reply(protocol.update_acknowledged(applied))

    def _on_end(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            if stream.deadline is not None:
                stream.deadline.cancel()
            if self._track is not None:
                self._track.show(self._idle)
            self._registry.end_stream(self._session, "ended")
            _end_recording(stream, "ended")
            _end_broadcast(stream)
            self._log.info("stream %s ended", stream.stream_id)
        self._reply(protocol.stream_ended())

    async def _until_sent(self, frame_number: int) -> None:
        """Answer when the first frame of the new picture goes out (bounded: a stalled track answers anyway)."""
        if self._track is not None:
            await self._track.until_sent(frame_number, max(0.25, 3.0 / self._config.fps))

    async def _show(self, prompt: str, stream: _ActiveStream) -> int | None:
        """Prepare the back world for ``prompt`` off the loop, then swap it in; the first frame number showing it."""
        world = self._worlds[1 - self._front]
        world.resize(stream.width, stream.height)
        world.set_seed_image(stream.seed)
        world.set_prompt(prompt)
        assert self._track is not None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, world.render_planes, self._track.next_frame_number)
        if self._closing:
            return None
        self._front = 1 - self._front
        return self._track.show(world)

    def _record(
        self, stream: _ActiveStream, prompt: str, applied: str, frame_number: int, portrait: bool
    ) -> LiveRecording | None:
        if self._archive is None or self._track is None:
            return None
        return self._archive.record_stream(
            self._track,
            stream_id=stream.stream_id,
            key_name=self.key.name,
            width=stream.width,
            height=stream.height,
            start_frame=frame_number,
            prompt=prompt,
            applied_prompt=applied,
            portrait=portrait,
            has_image=stream.seed is not None,
        )

    def _record_error(self, reason: str, message: str) -> None:
        if self._stream is not None and self._stream.recording is not None:
            self._stream.recording.error(reason, message)

    async def _stream_error(self, reason: str) -> None:
        message = _STREAM_ERROR_TEXT.get(reason, f"Stream error: {reason}")
        self._record_error(reason, message)
        self._reply(protocol.stream_error(reason, message))
        if reason == "session_timeout":
            await self._end_connection_after_timeout()

    def _on_stream_limit(self, stream_id: str) -> None:
        if self._stream is None or self._stream.stream_id != stream_id or self._closing:
            return
        self._log.info("stream %s reached %g s", stream_id, self._config.max_stream_seconds)
        self._record_error("session_timeout", protocol.SESSION_TIMEOUT_MESSAGE)
        self._reply(protocol.stream_error("session_timeout", protocol.SESSION_TIMEOUT_MESSAGE))
        self._spawn(self._end_connection_after_timeout(), "stream-limit")

    async def _end_connection_after_timeout(self) -> None:
        if self._stream is not None:
            self._registry.end_stream(self._session, "session_timeout")
            _end_recording(self._stream, "session_timeout")
            _end_broadcast(self._stream)
            self._stream = None
        self._closing = True
        await self._drain_data()
        if not self._ws.closed:
            await self._ws.close(code=1000)

    def _on_connection_limit(self) -> None:
        if self._closing:
            return
        self._log.info("connection reached %g s", self._config.max_connection_seconds)
        if self._stream is not None:
            self._registry.end_stream(self._session, "duration_limit_reached")
            _end_recording(self._stream, "duration_limit_reached")
            _end_broadcast(self._stream)
            self._stream = None
        self._spawn(self.close(reason="duration_limit_reached", code=1000), "connection-limit")

    def _start_broadcast(self, stream: _ActiveStream, first_frame: int) -> None:
        """Relay the stream to spectators from ``first_frame`` on and tell the client where they watch."""
        if self._broadcasts is None or self._track is None:
            self._reply(protocol.stream_error("broadcast_unavailable", "This server cannot broadcast streams"))
            return
        base_url = f"{self._request.scheme}://{self._request.host}"
        stream.broadcast = self._broadcasts.open(
            stream_id=stream.stream_id, track=self._track, first_frame=first_frame, base_url=base_url
        )
        self._reply(
            protocol.broadcast_ready(stream.broadcast.hls_url, stream.broadcast.webrtc_url, stream.broadcast.spectator_token)
        )

    # -- fault targets ---------------------------------------------------------------------

    async def drop_signaling(self, code: int) -> None:
        """Close the signaling socket with ``code`` and no error message."""
        self._closing = True
        if not self._ws.closed:
            await self._ws.close(code=code)

    async def send_signaling_error(self, reason: str) -> None:
        """Send a signaling ``error``; the socket stays open."""
        await self._send_signaling(protocol.signaling_error(reason))

    async def send_raw_data(self, text: str) -> None:
        """Send ``text`` unchanged on ``streamerToClient`` (queued until it opens)."""
        self._send_data(text)

    async def fail_peer(self) -> None:
        """Close the peer connection, leaving the socket open and silent."""
        if self._pc is not None:
            await self._pc.close()

    async def set_video_stalled(self, stalled: bool) -> None:
        """Stop or resume the video frames."""
        if self._track is not None:
            self._track.set_stalled(stalled)


def _end_recording(stream: _ActiveStream, reason: str) -> None:
    """Finish the stream's recording, if it has one."""
    if stream.recording is not None:
        stream.recording.finish(reason)


def _end_broadcast(stream: _ActiveStream) -> None:
    """End the stream's broadcast, if it has one: every spectator is closed (in the background)."""
    if stream.broadcast is not None:
        stream.broadcast.end()
        stream.broadcast = None
