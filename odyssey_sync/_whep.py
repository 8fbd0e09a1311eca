"""The asynchronous WHEP spectator session: ICE config, offer, POST, answer, frames.

Everything here runs on the spectator's event-loop thread. It never calls
user code: it stores frames in a :class:`FrameBuffer` and reports to a
listener (the blocking facade) through short, thread-safe methods.

The flow (draft-ietf-wish-whep, as the official clients speak it):
``GET <origin>/config`` for ICE servers; an offer with recvonly video and
audio transceivers, every candidate gathered; ``POST <webrtc_url>/whep?token=``
with ``application/sdp``; ``201`` with the answer and ``Location``; video
until the broadcast ends. ``DELETE <Location>`` leaves.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Protocol
from urllib.parse import quote, urljoin

import aiohttp
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from . import _jitter, protocol
from ._deadline import Deadline
from ._media import VideoIn, close_peer
from ._signaling import describe
from .errors import OdysseyAuthError, OdysseyConnectionError, OdysseyStreamError
from .frames import FrameBuffer, VideoFrame
from .loop_thread import cancel_and_wait, create_task

__all__ = ["SpectatorListener", "WhepSession", "whep_endpoint"]

logger = logging.getLogger("odyssey_sync.spectator")

_CONFIG_TIMEOUT_S = 5.0
_POST_TIMEOUT_S = 10.0
# Largest ICE config or SDP answer read: real ones are a few kilobytes.
_MAX_REPLY_BYTES = 1024 * 1024
# A 429 with Retry-After (too many spectators joining at once) is retried for this long, each wait at most
# _MAX_RETRY_AFTER_S; the caller's timeout bounds it too.
_JOIN_RETRY_BUDGET_S = 20.0
_MAX_RETRY_AFTER_S = 10.0
_REDACTED = "<redacted>"
_DELETE_TIMEOUT_S = 1.0
# How long a teardown the session starts itself (after a failure) may take; disconnect() passes its own deadline.
_TEARDOWN_S = 2.0
# A broadcast sends ~20 frames a second; this long without one means it is gone.


class SpectatorListener(Protocol):
    """What the session tells its owner; called on the loop thread, must be quick."""

    def spectator_frame(self, frame: VideoFrame) -> None: ...
    def spectator_ended(self, error: BaseException | None) -> None: ...


def whep_endpoint(webrtc_url: str) -> str:
    """``<webrtc_url>/whep``, the URL a spectator POSTs its offer to (without the token)."""
    return f"{webrtc_url.rstrip('/')}/whep"


def _refusal(status: int, detail: str | None, token: str = "") -> Exception:
    """The typed error of a refused WHEP offer; the server's ``detail`` is quoted with ``token`` removed."""
    if detail and token:
        detail = detail.replace(token, _REDACTED)
    if detail:
        detail = protocol.scrub_urls(detail)[:300]
    said = f": {detail}" if detail else ""
    if status in (401, 403):
        return OdysseyAuthError(
            f"Invalid spectator token (HTTP {status}){said}. Use the spectator_token of this stream's "
            "broadcast_ready (client.broadcast_info); tokens expire"
        )
    if status == 404:
        return OdysseyStreamError(
            "Stream not found or already ended (HTTP 404); spectators can only join a running broadcast stream",
            reason="stream_not_found",
        )
    if status == 503:
        return OdysseyConnectionError(f"The broadcast cannot take more spectators now (HTTP 503){said}; try again later")
    if status == 429:
        return OdysseyConnectionError(f"Too many spectators are joining this broadcast at once (HTTP 429){said}")
    return OdysseyConnectionError(f"WHEP connection failed: HTTP {status}{said}")


def _retry_after(value: str | None) -> float | None:
    """The seconds of a ``Retry-After: <seconds>`` header, capped; ``None`` when absent or a date."""
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), _MAX_RETRY_AFTER_S)


async def _read_limited(response: aiohttp.ClientResponse, what: str) -> bytes:
    """The body, or :class:`OdysseyConnectionError` once it passes :data:`_MAX_REPLY_BYTES`."""
    too_large = OdysseyConnectionError(
        f"The broadcast server's {what} is larger than {_MAX_REPLY_BYTES} bytes; check the webrtc_url"
    )
    if response.content_length is not None and response.content_length > _MAX_REPLY_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > _MAX_REPLY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


class WhepSession:
    """One spectator connection to a broadcast: open it, receive frames, close it.

    The broadcast ending (the server closes the peer, or the video track
    ends) ends the session cleanly; the peer failing or the video stalling for
    :data:`~odyssey_sync._media.VIDEO_STALL_TIMEOUT_S` ends it with an error. Either way every
    frame puller wakes.
    """

    def __init__(
        self, *, webrtc_url: str, token: str, stream_id: str | None, buffer: FrameBuffer, listener: SpectatorListener
    ) -> None:
        """Bind the parts; nothing happens until :meth:`open`. Frames are tagged with ``stream_id``."""
        self.webrtc_url = webrtc_url.rstrip("/")
        self._token = token
        self.stream_id = stream_id
        self.buffer = buffer
        self.video = VideoIn(buffer, tag=lambda: (self.stream_id, None), on_frame=self._on_frame)
        self._listener = listener
        self._http: aiohttp.ClientSession | None = None
        self.pc: RTCPeerConnection | None = None
        self.location: str | None = None
        self._ready: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._video: MediaStreamTrack | None = None
        self._ended = False
        self._closing = False
        self._teardown_task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    @property
    def ended(self) -> bool:
        """Whether the session is over (closed, ended by the server, or failed)."""
        return self._ended

    @property
    def connection_state(self) -> str | None:
        """The peer connection's state."""
        return self.pc.connectionState if self.pc is not None else None

    # -- opening ---------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, and return once the first video frame is decoded."""
        self._ready = asyncio.get_running_loop().create_future()
        self.buffer.set_stream(self.stream_id)
        self._http = aiohttp.ClientSession()
        try:
            ice_servers = await self._fetch_ice_servers()
            _jitter.install()
            self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers))
            self._wire_peer(self.pc)
            self.pc.addTransceiver("video", direction="recvonly")
            self.pc.addTransceiver("audio", direction="recvonly")
            # aiortc gathers every candidate inside setLocalDescription (no trickle).
            await self.pc.setLocalDescription(await self.pc.createOffer())
            answer = await self._post_offer(self.pc.localDescription.sdp)
            await _apply_answer(self.pc, answer, self._token)
            await asyncio.shield(self._ready)
        except BaseException as exc:
            self._ended = True
            error = exc if isinstance(exc, (OdysseyAuthError, OdysseyConnectionError, OdysseyStreamError)) else None
            await self._start_teardown(error, delete=True)
            raise
        self._tasks.append(create_task(self._watch_video(), name="odyssey-spectator-watchdog"))

    async def _fetch_ice_servers(self) -> list[RTCIceServer] | None:
        """``GET <origin>/config``; ``None`` (aiortc's default STUN, as the official client) when the
        server answers without one. A server that cannot be reached raises :class:`OdysseyConnectionError`."""
        assert self._http is not None
        url = f"{protocol.origin_of(self.webrtc_url)}/config"
        try:
            async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=_CONFIG_TIMEOUT_S)) as response:
                body = await _read_limited(response, "ICE config")
                status = response.status
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise OdysseyConnectionError(f"Cannot reach the broadcast server: {describe(exc)}") from None
        try:
            if status != 200:
                raise ValueError(f"HTTP {status}")
            servers = protocol.parse_ice_servers(json.loads(body))
        except (ValueError, RecursionError, protocol.ProtocolError) as exc:
            logger.info("no ICE config from %s (%s); using the default STUN server", url, exc)
            return None
        return [RTCIceServer(**server) for server in servers]

    async def _post_offer(self, offer: str) -> str:
        """POST the offer; the answer SDP, with :attr:`location` set. Refusals raise typed errors.

        A 429 with ``Retry-After`` (too many spectators joining with this
        token at once) is retried after the time it names, for up to
        :data:`_JOIN_RETRY_BUDGET_S`.
        """
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + _JOIN_RETRY_BUDGET_S
        while True:
            status, body, headers = await self._post_once(offer)
            wait = _retry_after(headers.get("Retry-After")) if status == 429 else None
            if wait is None or loop.time() + wait > give_up_at:
                break
            logger.info("the broadcast answered 429 (spectators joining at once); retrying in %g s", wait)
            await asyncio.sleep(wait)
        if not 200 <= status < 300:
            raise _refusal(status, _detail_of(body), self._token)
        if not body.strip():
            raise OdysseyConnectionError(f"WHEP connection failed: HTTP {status} without an SDP answer")
        url = whep_endpoint(self.webrtc_url)
        location = headers.get("Location")
        self.location = urljoin(url, location) if location else None
        if self.location is None:
            logger.warning("the WHEP answer has no Location header; disconnect() cannot tell the server")
        logger.debug("WHEP session %s", protocol.redact_url(self.location or ""))
        return body

    async def _post_once(self, offer: str) -> tuple[int, str, dict[str, str]]:
        """One POST of the offer: status, body (at most :data:`_MAX_REPLY_BYTES`) and headers."""
        assert self._http is not None
        url = f"{whep_endpoint(self.webrtc_url)}?token={quote(self._token, safe='')}"
        try:
            async with self._http.post(
                url,
                data=offer.encode("utf-8"),
                headers={"Content-Type": "application/sdp"},
                timeout=aiohttp.ClientTimeout(total=_POST_TIMEOUT_S),
            ) as response:
                body = (await _read_limited(response, "WHEP answer")).decode("utf-8", "replace")
                return response.status, body, dict(response.headers)
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise OdysseyConnectionError(f"WHEP connection failed: {describe(exc)}") from None

    def _wire_peer(self, pc: RTCPeerConnection) -> None:
        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and self._video is None:
                self._video = track
                self._tasks.append(create_task(self._pump(track), name="odyssey-spectator-frames"))
            elif track.kind == "audio":
                self._tasks.append(create_task(_drain(track), name="odyssey-spectator-audio"))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            logger.debug("spectator peer connection %s", state)
            if self._closing:
                return
            if state == "failed":
                self._end(OdysseyConnectionError("The spectator connection failed (ICE/DTLS); call connect_to_stream() again"))
            elif state == "closed":
                self._end(None)  # the server closed it: the broadcast is over

    # -- media -----------------------------------------------------------------------------------

    async def _pump(self, track: MediaStreamTrack) -> None:
        await self.video.pump(track)
        if not self._closing:
            self._end(None)  # the track ended: the broadcast is over

    def _on_frame(self, frame: VideoFrame) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        try:
            self._listener.spectator_frame(frame)
        except Exception:
            logger.exception("spectator listener failed")

    async def _watch_video(self) -> None:
        await self.video.watch(
            self.pc,
            lambda: self._ended,
            lambda limit: self._end(
                OdysseyConnectionError(
                    f"No video from the broadcast for {limit:g} s: the connection is dead; call connect_to_stream() again"
                )
            ),
        )

    # -- ending ----------------------------------------------------------------------------------

    def _end(self, error: BaseException | None) -> None:
        """The server or the network ended the session (``error`` None: the broadcast ended)."""
        if self._ended:
            return
        self._ended = True
        self.error = error
        if error is None:
            self.buffer.set_stream(None)  # the broadcast is over: frames() ends cleanly
        try:
            self._listener.spectator_ended(error)
        except Exception:
            logger.exception("spectator listener failed")
        self.buffer.close(error)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error or OdysseyConnectionError("The broadcast ended before the first frame arrived"))
            self._ready.exception()  # retrieved: open() re-raises it
        # After a failure the server may still hold the viewer: tell it (bounded).
        self._start_teardown(error, delete=error is not None)

    async def close(self, *, delete: bool, deadline: Deadline) -> None:
        """Leave: ``DELETE <Location>`` first if ``delete``, then close the peer. Bounded; idempotent."""
        if self._teardown_task is not None:
            await asyncio.shield(self._teardown_task)
            return
        self._ended = True
        self.buffer.close(self.error)
        await self._start_teardown(self.error, delete=delete, deadline=deadline)

    def _start_teardown(
        self, error: BaseException | None, *, delete: bool, deadline: Deadline | None = None
    ) -> asyncio.Future[None]:
        if self._teardown_task is None:
            deadline = deadline or Deadline(_TEARDOWN_S, "spectator teardown")
            self._closing = True
            self._teardown_task = create_task(self._teardown(error, delete, deadline), name="odyssey-spectator-teardown")
        return asyncio.shield(self._teardown_task)

    async def _teardown(self, error: BaseException | None, delete: bool, deadline: Deadline) -> None:
        for task in self._tasks:
            if task is not asyncio.current_task():
                await cancel_and_wait(task)
        if delete and self.location is not None and self._http is not None:
            await self._delete(deadline)
        await close_peer(self.pc, self._http, deadline)
        self.buffer.close(error)

    async def _delete(self, deadline: Deadline) -> None:
        assert self._http is not None and self.location is not None
        try:
            async with self._http.delete(self.location, timeout=aiohttp.ClientTimeout(total=deadline.within(_DELETE_TIMEOUT_S))) as response:
                logger.debug("WHEP DELETE -> HTTP %d", response.status)
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
            logger.debug("WHEP DELETE failed: %s", describe(exc))


async def _drain(track: MediaStreamTrack) -> None:
    """Read and drop a track nobody consumes, so aiortc does not queue it without bound."""
    while True:
        try:
            await track.recv()
        except MediaStreamError:
            return


async def _apply_answer(pc: RTCPeerConnection, answer: str, token: str) -> None:
    """Apply the server's answer SDP; one the peer cannot use is an :class:`OdysseyConnectionError`."""
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        reason = protocol.scrub_urls(str(exc)[:200]).replace(token, _REDACTED) if token else str(exc)[:200]
        raise OdysseyConnectionError(
            f"The broadcast server's WHEP answer cannot be used ({type(exc).__name__}: {reason}); "
            "check that webrtc_url is a WHEP endpoint"
        ) from None


def _detail_of(body: str) -> str | None:
    """The ``detail`` of a JSON error body, if it is one."""
    try:
        return protocol.error_detail(json.loads(body))
    except (ValueError, RecursionError):
        return None
