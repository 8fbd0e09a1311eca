"""Bare WHEP spectators (aiohttp + aiortc, protocol.md section 6), used to load a broadcast.

The spectators only drain their video (no RGB conversion): they exist to make
the server send to them; their own CPU is not what P10 measures.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from odyssey_sync import protocol

__all__ = ["Spectator", "spectators"]


class Spectator:
    """One WHEP viewer of a broadcast."""

    def __init__(self, http: aiohttp.ClientSession, webrtc_url: str, token: str) -> None:
        """Watch the broadcast at ``webrtc_url`` with ``token``; :meth:`open` connects."""
        self.http = http
        self.webrtc_url = webrtc_url.rstrip("/")
        self.token = token
        self.pc: RTCPeerConnection | None = None
        self.location: str | None = None
        self.frames = 0
        self.first_frame = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Config, offer (recvonly video and audio), POST, answer; then drain the video."""
        parts = urlsplit(self.webrtc_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        async with self.http.get(f"{origin}/config") as response:
            config = await response.json() if response.status < 300 else {"iceServers": []}
        ice = [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in protocol.parse_ice_servers(config)
        ]
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice))
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        pc.on("track", self._on_track)
        await pc.setLocalDescription(await pc.createOffer())
        url = f"{self.webrtc_url}/whep?token={quote(self.token, safe='')}"
        async with self.http.post(url, data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}) as response:
            body = await response.text()
            if response.status != 201:
                raise RuntimeError(f"WHEP POST answered {response.status}: {body[:200]}")
            location = response.headers.get("Location")
            self.location = urljoin(url, location) if location else None
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))

    def _on_track(self, track: Any) -> None:
        if track.kind == "video" and self._task is None:
            self._task = asyncio.ensure_future(self._drain(track))

    async def _drain(self, track: Any) -> None:
        try:
            while True:
                await track.recv()
                self.frames += 1
                self.first_frame.set()
        except MediaStreamError:
            pass

    async def close(self) -> None:
        """DELETE the WHEP resource and close the peer."""
        if self.location:
            try:
                async with self.http.delete(self.location):
                    pass
            except aiohttp.ClientError:
                pass
        if self.pc is not None:
            await self.pc.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def _spectators(webrtc_url: str, token: str, n: int, max_seconds: float) -> dict[str, Any]:
    from benchmarks.worker import emit

    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    async with aiohttp.ClientSession() as http:
        viewers = [Spectator(http, webrtc_url, token) for _ in range(n)]
        try:
            await asyncio.gather(*(v.open() for v in viewers))
            await asyncio.wait_for(asyncio.gather(*(v.first_frame.wait() for v in viewers)), 15)
            emit("ready", n=n)
            started = time.monotonic()
            counts0 = [v.frames for v in viewers]
            await asyncio.wait({stdin_closed}, timeout=max_seconds)
            elapsed = time.monotonic() - started
            return {
                "spectators": n,
                "fps_each": [round((v.frames - c) / elapsed, 2) for v, c in zip(viewers, counts0)],
                "seconds": round(elapsed, 1),
            }
        finally:
            await asyncio.gather(*(v.close() for v in viewers), return_exceptions=True)


def spectators(webrtc_url: str, token: str, n: int, max_seconds: float = 120.0) -> dict[str, Any]:
    """Connect ``n`` spectators, announce "ready" once each has a frame, watch until stdin closes."""
    return asyncio.run(_spectators(webrtc_url, token, n, max_seconds))
