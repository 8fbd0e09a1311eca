"""The bare aiortc baseline: a minimal receiver of an Odyssey session with no SDK.

aiohttp for REST and signaling, aiortc for the peer, the protocol steps of
``protocol.md`` section 7 one after the other (copied, trimmed, from the
project's test client ``tests/raw_client.py``). Its receive loop converts
**every** frame to RGB with ``to_ndarray(format="rgb24")``, as the official
async SDK does, and reads the stamp there: that loop is the "caller".

The workloads (:func:`stream`, :func:`connects`, :func:`starts`,
:func:`probe`) are run in a fresh process each by :mod:`benchmarks.worker`
and return JSON-ready dicts.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from typing import Any

import aiohttp
import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

from benchmarks.metrics import (
    DeliveryWindow,
    ServerMeter,
    control_sessions,
    cpu_seconds,
    cycles_report,
    jitter_buffer_in_use,
    latency_ms,
    minor_faults,
    negotiated_codec,
    process_sample,
    settled_sample,
    summarize,
    wall_ms,
)
from odyssey_sync import protocol
from odyssey_sync.stamp import Stamp, read_stamp

__all__ = ["BareSession", "connects", "cycles", "probe", "starts", "stream"]


class BareSession:
    """One session of the bare client: REST, signaling socket, peer, channels and the video track."""

    def __init__(self, base_url: str, api_key: str) -> None:
        """Prepare a session with ``base_url`` and ``api_key``; :meth:`open` connects."""
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pc: RTCPeerConnection | None = None
        self.track: MediaStreamTrack | None = None
        self.session_id: str | None = None
        self.channels: dict[str, Any] = {}
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._token: str | None = None

    # -- REST ----------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {self._token}"} if auth and self._token else {}
        url = path if "://" in path else f"{self.base_url}{path}"
        async with self.http.request(method, url, json=body, headers=headers) as response:
            text = await response.text()
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: HTTP {response.status}: {text[:200]}")
            return json.loads(text) if text else None

    # -- connecting ------------------------------------------------------------------------------

    async def open(self, timeout: float = 15.0) -> None:
        """The whole sequence up to connected: video track arrived and ``clientToStreamer`` open."""
        self.http = aiohttp.ClientSession()
        self._token = (await self._call("POST", "/auth/token", {"api_key": self.api_key}, auth=False))["access_token"]
        latencies = {}
        for region in (await self._call("GET", "/regions"))["regions"]:
            started = time.monotonic()
            await self._call("GET", region["ping_url"], auth=False)
            latencies[region["id"]] = round((time.monotonic() - started) * 1000)
        info = await self._call("POST", "/sessions/request", {"region_latencies": latencies})
        self.session_id = info["session_id"]
        token = (await self._call("POST", "/sessions/token", {"session_id": self.session_id}))["session_token"]
        signalling = info["signalling_url"]
        config = await self._call("GET", protocol.ice_config_url(signalling), auth=False)
        ice = [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in protocol.parse_ice_servers(config)
        ]
        self.ws = await self.http.ws_connect(protocol.signaling_client_url(signalling, self.session_id, token))
        offer = await asyncio.wait_for(self.ws.receive_json(), timeout)
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice))
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.ws.send_str(protocol.encode(protocol.answer(pc.localDescription.sdp)))
        self._tasks.append(asyncio.ensure_future(self._read_signaling()))
        await asyncio.wait_for(self._ready.wait(), timeout)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video" and self.track is None:
            self.track = track
            self._check_ready()

    def _on_datachannel(self, channel: Any) -> None:
        self.channels[channel.label] = channel
        if channel.label == protocol.STREAMER_TO_CLIENT:
            channel.on("message", lambda raw: self.messages.put_nowait(json.loads(raw)))
        elif channel.label == protocol.CLIENT_TO_STREAMER:
            channel.on("open", self._check_ready)
        self._check_ready()

    def _check_ready(self) -> None:
        channel = self.channels.get(protocol.CLIENT_TO_STREAMER)
        if self.track is not None and channel is not None and channel.readyState == "open":
            self._ready.set()

    async def _read_signaling(self) -> None:
        assert self.ws is not None and self.pc is not None
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if data.get("type") == protocol.ICE_CANDIDATE and data.get("candidate"):
                candidate = candidate_from_sdp(data["candidate"].removeprefix("candidate:"))
                candidate.sdpMid, candidate.sdpMLineIndex = data.get("sdpMid"), data.get("sdpMLineIndex")
                await self.pc.addIceCandidate(candidate)
            elif data.get("type") in (protocol.STREAM_STARTED, protocol.UPDATE_ACKNOWLEDGED, protocol.STREAM_ENDED,
                                      protocol.STREAM_ERROR, protocol.BROADCAST_READY):
                self.messages.put_nowait(data)

    @property
    def codec(self) -> str | None:
        """The negotiated video codec (from the answer)."""
        return negotiated_codec(self.pc.localDescription.sdp if self.pc and self.pc.localDescription else None)

    # -- stream messages --------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        """Send a message on ``clientToStreamer``."""
        self.channels[protocol.CLIENT_TO_STREAMER].send(protocol.encode(message))

    async def wait_message(self, kind: str, timeout: float = 15.0) -> dict[str, Any]:
        """The next ``streamerToClient`` message of type ``kind`` (others before it are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            message = await asyncio.wait_for(self.messages.get(), max(0.01, deadline - time.monotonic()))
            if message.get("type") == kind:
                return message
            if message.get("type") == protocol.STREAM_ERROR:
                raise RuntimeError(f"stream error: {message}")

    async def start_stream(self, prompt: str, *, broadcast: bool = False) -> dict[str, Any]:
        """Start a landscape stream and wait for ``stream_started``."""
        self.send(protocol.stream_start(prompt, portrait=False, broadcast=broadcast))
        return await self.wait_message(protocol.STREAM_STARTED)

    async def end_stream(self) -> None:
        """End the stream and wait for ``stream_ended``."""
        self.send(protocol.stream_end())
        await self.wait_message(protocol.STREAM_ENDED)

    # -- frames ---------------------------------------------------------------------------------

    async def next_rgb(self) -> tuple[av.VideoFrame, Any, float, Stamp | None]:
        """The next frame, converted to RGB as the official SDK does, the wall ms it was in hand, its stamp."""
        assert self.track is not None
        frame = await self.track.recv()
        rgb = frame.to_ndarray(format="rgb24")
        now = wall_ms()
        return frame, rgb, now, read_stamp(rgb)

    # -- closing --------------------------------------------------------------------------------

    async def close(self) -> None:
        """``client_disconnecting``, close 1000, peer closed, tasks stopped, HTTP closed."""
        if self.ws is not None and not self.ws.closed:
            try:
                await self.ws.send_str(protocol.encode(protocol.client_disconnecting()))
            except ConnectionError:
                pass
            await self.ws.close(code=1000, message=protocol.CLIENT_CLOSE_REASON.encode())
        if self.pc is not None:
            await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.close()


# -- workloads ------------------------------------------------------------------------------------


async def _stream(server: dict[str, Any], fps: float, seconds: float, warmup: float, prompt: str) -> dict[str, Any]:
    session = BareSession(server["url"], server["api_key"])
    try:
        await session.open()
        await session.start_stream(prompt)
        warm_end = time.monotonic() + warmup
        while time.monotonic() < warm_end:
            await session.next_rgb()
        window = DeliveryWindow(round(seconds * fps))
        meter = ServerMeter(server.get("pid"), server.get("control_url"), session.session_id)
        meter.start()
        faults0 = minor_faults()
        cpu0, t0 = cpu_seconds(), time.monotonic()
        deadline = t0 + seconds + 10
        while time.monotonic() < deadline:
            try:
                _, _, now, stamp = await asyncio.wait_for(session.next_rgb(), 5)
            except (asyncio.TimeoutError, MediaStreamError):
                break
            if window.add(stamp, latency_ms(stamp, now) if stamp else None):
                break
        cpu1, t1 = cpu_seconds(), time.monotonic()
        server_window = meter.stop()
        result = window.result()
        result.update(
            process=process_sample(time.monotonic()),
            jitter_buffer=jitter_buffer_in_use(),
            client="bare",
            codec=session.codec,
            wall_s=round(t1 - t0, 3),
            client_cpu_s=round(cpu1 - cpu0, 4),
            client_cpu_ms_per_frame=(cpu1 - cpu0) * 1000 / result["delivered"] if result["delivered"] else None,
            client_cpu_per_s=(cpu1 - cpu0) / (t1 - t0),
            minor_faults_per_frame=(minor_faults() - faults0) / max(1, result["delivered"]),
            server=server_window,
        )
        await session.end_stream()
        return result
    finally:
        await session.close()


def stream(server: dict[str, Any], fps: float, seconds: float, warmup: float = 2.0, prompt: str = "A calm lake at dawn") -> dict[str, Any]:
    """Receive a landscape stream for ``seconds`` (after ``warmup``), converting every frame; window metrics."""
    return asyncio.run(_stream(server, fps, seconds, warmup, prompt))


async def _connects(server: dict[str, Any], n: int, pause: float) -> dict[str, Any]:
    times = []
    for i in range(n + 1):
        session = BareSession(server["url"], server["api_key"])
        started = time.monotonic()
        try:
            await session.open()
            elapsed = (time.monotonic() - started) * 1000
        finally:
            await session.close()
        if i > 0:  # the first connect warms the process up (codecs, imports); not counted
            times.append(elapsed)
        await asyncio.sleep(pause)
    return {"client": "bare", "connect_ms": summarize(times), "samples": [round(t, 1) for t in times]}


def connects(server: dict[str, Any], n: int, pause: float = 0.2) -> dict[str, Any]:
    """Time ``n`` complete connects (authentication to video flowing and channel open), after one warm-up."""
    return asyncio.run(_connects(server, n, pause))


async def _starts(server: dict[str, Any], n: int, collect: float) -> dict[str, Any]:
    session = BareSession(server["url"], server["api_key"])
    arrivals: list[tuple[int, float]] = []

    async def receive() -> None:
        while True:
            _, _, _, stamp = await session.next_rgb()
            if stamp is not None:
                arrivals.append((stamp.frame_number, time.monotonic()))

    samples = []
    try:
        await session.open()
        receiver = asyncio.ensure_future(receive())
        await asyncio.sleep(1.0)
        for i in range(n):
            await session.start_stream(f"Benchmark start {i}: a lighthouse on a cliff")
            returned = time.monotonic()
            await asyncio.sleep(collect)
            first = _first_frame_of_stream(server["control_url"], session.session_id)
            hit = next((t for number, t in arrivals if number >= first), None)
            samples.append(None if hit is None else (hit - returned) * 1000)
            await session.end_stream()
            await asyncio.sleep(0.3)
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    finally:
        await session.close()
    found = [s for s in samples if s is not None]
    return {"client": "bare", "first_frame_ms": summarize(found), "missing": len(samples) - len(found),
            "samples": [None if s is None else round(s, 1) for s in samples]}


def starts(server: dict[str, Any], n: int, collect: float = 1.5) -> dict[str, Any]:
    """Time ``n`` stream starts: start reply in hand to the first frame of the new stream in hand."""
    return asyncio.run(_starts(server, n, collect))


def _first_frame_of_stream(control_url: str, session_id: str | None) -> int:
    """The server's first frame number of the session's latest stream (its start prompt)."""
    for record in control_sessions(control_url):
        if record["session_id"] == session_id and record["streams"]:
            return int(record["streams"][-1]["prompts"][0]["frame_number"])
    raise RuntimeError(f"session {session_id} has no stream on the server")


async def _probe(server: dict[str, Any]) -> dict[str, Any]:
    session = BareSession(server["url"], server["api_key"])
    result: dict[str, Any] = {}
    try:
        started = time.monotonic()
        await session.open()
        result["connect_ms"] = round((time.monotonic() - started) * 1000, 1)
        result["codec"] = session.codec
        _, rgb, _, stamp = await asyncio.wait_for(session.next_rgb(), 10)
        result["frame_shape"] = list(rgb.shape)
        result["stamp_readable"] = stamp is not None
        await session.start_stream("Benchmark probe: a broadcast test", broadcast=True)
        try:
            ready = await session.wait_message(protocol.BROADCAST_READY, timeout=3.0)
            result["broadcast"] = {"webrtc_url": ready.get("webrtc_url"), "has_token": bool(ready.get("spectator_token"))}
        except (asyncio.TimeoutError, RuntimeError) as exc:
            result["broadcast"] = None
            result["broadcast_reason"] = f"no broadcast_ready within 3 s ({type(exc).__name__})"
        # A landscape frame of the stream: the size every figure is measured at.
        for _ in range(5):
            _, rgb, _, _ = await asyncio.wait_for(session.next_rgb(), 10)
        result["stream_frame_shape"] = list(rgb.shape)
        await session.end_stream()
    finally:
        await session.close()
    return result


def probe(server: dict[str, Any]) -> dict[str, Any]:
    """What the server does: the negotiated codec, frame size, stamp readability, broadcast support."""
    return asyncio.run(_probe(server))


async def _cycles(n: int, server: dict[str, Any], warmup_cycles: int) -> dict[str, Any]:
    t0 = time.monotonic()
    before = process_sample(t0)

    async def cycle() -> None:
        session = BareSession(server["url"], server["api_key"])
        try:
            await session.open()
            await asyncio.wait_for(session.next_rgb(), 10)
        finally:
            await session.close()

    for _ in range(warmup_cycles):
        await cycle()
    gc.collect()
    await asyncio.sleep(0.5)
    baseline = settled_sample(t0, None)
    durations = []
    for _ in range(n):
        started = time.monotonic()
        await cycle()
        durations.append((time.monotonic() - started) * 1000)
    gc.collect()
    await asyncio.sleep(0.5)
    after = settled_sample(t0, baseline)
    return cycles_report("bare", before, baseline, after, durations)


def cycles(server: dict[str, Any], n: int, warmup_cycles: int = 1) -> dict[str, Any]:
    """``n`` cycles of connect, read one frame, close (one event loop for all, as a bare asyncio app)."""
    return asyncio.run(_cycles(n, server, warmup_cycles))
