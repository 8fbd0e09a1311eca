"""A minimal, bare client of the Odyssey protocol (aiohttp + aiortc), for driving a server in tests.

It follows protocol.md section 7 step by step and hides nothing: every step
is a method, so a test can stop half-way (send a start before answering the
offer, present a bad token, never open the socket) or misbehave on purpose.
It does not use the SDK.

    async with RawClient(server.url, server.api_key) as client:
        conn = await client.connect()
        conn.send({"type": "interactive_stream_start", ...})
        reply = await conn.next_message()
        frame = await conn.next_frame()
        await conn.close()
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Awaitable, Callable

import aiohttp
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

from odyssey_sync import protocol
from odyssey_sync.stamp import Stamp, read_stamp

__all__ = ["HttpStatusError", "RawClient", "RawConnection", "frame_luma", "frame_stamp"]

_FRAME_QUEUE = 64


class HttpStatusError(Exception):
    """A REST call answered with a non-2xx status; ``body`` is the parsed JSON (or text)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body!r}")
        self.status = status
        self.body = body


def frame_luma(frame: av.VideoFrame) -> Any:
    """The (height, width) luma plane of a decoded frame as a numpy array."""
    return frame.to_ndarray(format="yuv420p")[: frame.height]


def frame_stamp(frame: av.VideoFrame) -> Stamp | None:
    """The server's stamp in a decoded frame, or ``None``."""
    return read_stamp(frame_luma(frame))


class RawClient:
    """REST half of the protocol plus :meth:`connect` for the whole sequence."""

    def __init__(self, base_url: str, api_key: str) -> None:
        """Talk to the server at ``base_url`` with ``api_key``."""
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.http = aiohttp.ClientSession()
        self.access_token: str | None = None

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.http.close()

    async def call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        """One JSON REST call; raises :class:`HttpStatusError` on a non-2xx answer."""
        headers = {"Authorization": f"Bearer {self.access_token}"} if auth and self.access_token else {}
        url = path if "://" in path else f"{self.base_url}{path}"
        async with self.http.request(method, url, json=body, headers=headers) as response:
            text = await response.text()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = text
            if response.status >= 300:
                raise HttpStatusError(response.status, parsed)
            return parsed

    async def authenticate(self) -> str:
        """``POST /auth/token``; remembers and returns the access token."""
        body = await self.call("POST", "/auth/token", {"api_key": self.api_key}, auth=False)
        self.access_token = body["access_token"]
        return self.access_token

    async def request_session(self) -> dict[str, Any]:
        """``POST /sessions/request`` with the latency of every region (pinged once)."""
        latencies = {}
        for region in (await self.call("GET", "/regions"))["regions"]:
            start = time.monotonic()
            await self.call("GET", region["ping_url"], auth=False)
            latencies[region["id"]] = round((time.monotonic() - start) * 1000)
        return await self.call("POST", "/sessions/request", {"region_latencies": latencies})

    async def session_token(self, session_id: str) -> str:
        """``POST /sessions/token``: the JWT that opens the signaling socket."""
        return (await self.call("POST", "/sessions/token", {"session_id": session_id}))["session_token"]

    async def ice_servers(self, signalling_url: str) -> list[RTCIceServer]:
        """``GET <signalling>/config`` as aiortc ICE servers (username and credential kept)."""
        body = await self.call("GET", protocol.ice_config_url(signalling_url), auth=False)
        return [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in protocol.parse_ice_servers(body)
        ]

    async def open_signaling(self, signalling_url: str, session_id: str, token: str) -> aiohttp.ClientWebSocketResponse:
        """Open the signaling socket (raises ``aiohttp.WSServerHandshakeError`` on refusal)."""
        url = protocol.signaling_client_url(signalling_url, session_id, token)
        return await self.http.ws_connect(url, max_msg_size=64 * 1024 * 1024, autoping=True)

    async def connect(
        self,
        *,
        timeout: float = 15.0,
        before_answer: list[dict[str, Any]] | None = None,
        on_offer: Callable[[], Awaitable[None]] | None = None,
    ) -> RawConnection:
        """The whole sequence up to *connected* (video track arrived and ``clientToStreamer`` open).

        ``before_answer`` messages are sent on the signaling socket after the
        offer arrives and before the answer (e.g. an image start); then
        ``on_offer()`` is awaited, still before answering.
        """
        if self.access_token is None:
            await self.authenticate()
        info = await self.request_session()
        token = await self.session_token(info["session_id"])
        conn = RawConnection(self, info, token)
        await conn.open(timeout=timeout, before_answer=before_answer, on_offer=on_offer)
        return conn


class RawConnection:
    """One signaling socket and peer connection, with queues for what the server sends."""

    def __init__(self, client: RawClient, info: dict[str, Any], token: str) -> None:
        """Prepare to connect to the session ``info`` describes, with session ``token``."""
        self.client = client
        self.info = info
        self.session_id: str = info["session_id"]
        self.token = token
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pc: RTCPeerConnection | None = None
        self.track: MediaStreamTrack | None = None
        self.channels: dict[str, Any] = {}
        self.messages: asyncio.Queue[str] = asyncio.Queue()
        self.signaling: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames: asyncio.Queue[av.VideoFrame] = asyncio.Queue(_FRAME_QUEUE)
        self.ws_closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.track_ended = asyncio.Event()
        self.connect_seconds: float | None = None
        self.offer_sdp: str | None = None
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    async def open(
        self,
        *,
        timeout: float = 15.0,
        before_answer: list[dict[str, Any]] | None = None,
        on_offer: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Config, socket, offer/answer, then wait until connected (see :meth:`RawClient.connect`)."""
        started = time.monotonic()
        ice_servers = await self.client.ice_servers(self.info["signalling_url"])
        self.ws = await self.client.open_signaling(self.info["signalling_url"], self.session_id, self.token)
        offer = await asyncio.wait_for(self.ws.receive_json(), timeout)
        assert offer["type"] == protocol.OFFER, offer
        self.offer_sdp = offer["sdp"]
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers))
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        for message in before_answer or []:
            await self.send_signaling(message)
        if on_offer is not None:
            await on_offer()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.send_signaling(protocol.answer(pc.localDescription.sdp))
        self._tasks.append(asyncio.ensure_future(self._read_signaling()))
        await asyncio.wait_for(self._ready.wait(), timeout)
        self.connect_seconds = time.monotonic() - started

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self.track = track
            self._tasks.append(asyncio.ensure_future(self._pump_frames(track)))
            self._check_ready()

    def _on_datachannel(self, channel: Any) -> None:
        self.channels[channel.label] = channel
        if channel.label == protocol.STREAMER_TO_CLIENT:
            channel.on("message", self.messages.put_nowait)
        self._check_ready()

    def _check_ready(self) -> None:
        if self.track is not None and protocol.CLIENT_TO_STREAMER in self.channels:
            self._ready.set()

    async def _pump_frames(self, track: MediaStreamTrack) -> None:
        """Drain the track continuously (aiortc buffers without bound); keep the newest frames."""
        try:
            while True:
                frame = await track.recv()
                if self.frames.full():
                    self.frames.get_nowait()
                self.frames.put_nowait(frame)
        except MediaStreamError:
            pass
        finally:
            self.track_ended.set()

    async def _read_signaling(self) -> None:
        assert self.ws is not None and self.pc is not None
        try:
            async for message in self.ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(message.data)
                if data.get("type") == protocol.ICE_CANDIDATE and data.get("candidate"):
                    candidate = candidate_from_sdp(data["candidate"].removeprefix("candidate:"))
                    candidate.sdpMid, candidate.sdpMLineIndex = data.get("sdpMid"), data.get("sdpMLineIndex")
                    await self.pc.addIceCandidate(candidate)
                else:
                    self.signaling.put_nowait(data)
        finally:
            if not self.ws_closed.done():
                self.ws_closed.set_result(self.ws.close_code)

    # -- sending -----------------------------------------------------------------------------

    def send(self, message: dict[str, Any] | str) -> None:
        """Send on ``clientToStreamer`` (a dict as JSON, a str as is)."""
        text = message if isinstance(message, str) else protocol.encode(message)
        self.channels[protocol.CLIENT_TO_STREAMER].send(text)

    async def send_signaling(self, message: dict[str, Any] | str | bytes) -> None:
        """Send on the signaling socket (a dict as JSON, a str as text, bytes as binary)."""
        assert self.ws is not None
        if isinstance(message, bytes):
            await self.ws.send_bytes(message)
        else:
            await self.ws.send_str(message if isinstance(message, str) else protocol.encode(message))

    # -- receiving ---------------------------------------------------------------------------

    async def next_raw(self, timeout: float = 10.0) -> str:
        """The next text received on ``streamerToClient``, as is."""
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def next_message(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next JSON message received on ``streamerToClient``."""
        return json.loads(await self.next_raw(timeout))

    async def next_signaling(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next non-candidate message received on the signaling socket."""
        return await asyncio.wait_for(self.signaling.get(), timeout)

    async def next_frame(self, timeout: float = 10.0) -> av.VideoFrame:
        """The next decoded video frame."""
        return await asyncio.wait_for(self.frames.get(), timeout)

    async def fresh_frame(self, min_frame_number: int = 0, timeout: float = 10.0) -> tuple[av.VideoFrame, Stamp]:
        """The first frame whose stamp reads at least ``min_frame_number`` (older ones are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.next_frame(max(0.01, deadline - time.monotonic()))
            stamp = frame_stamp(frame)
            if stamp is not None and stamp.frame_number >= min_frame_number:
                return frame, stamp

    def drain_frames(self) -> int:
        """Forget the frames received so far; how many there were."""
        count = 0
        while not self.frames.empty():
            self.frames.get_nowait()
            count += 1
        return count

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        """Wait until the server closes the socket; the close code."""
        return await asyncio.wait_for(asyncio.shield(self.ws_closed), timeout)

    # -- closing -----------------------------------------------------------------------------

    async def close(self, *, clean: bool = True) -> None:
        """Leave: ``client_disconnecting`` and close 1000 when ``clean``, then close the peer."""
        if self.ws is not None and not self.ws.closed:
            if clean:
                try:
                    await self.send_signaling(protocol.client_disconnecting())
                except ConnectionError:
                    pass
                await self.ws.close(code=1000, message=protocol.CLIENT_CLOSE_REASON.encode())
            else:
                await self.ws.close(code=4001)
        await self.shutdown_peer()

    async def shutdown_peer(self) -> None:
        """Close the peer and stop the helper tasks."""
        if self.pc is not None:
            await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
