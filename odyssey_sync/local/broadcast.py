"""Broadcast: one world, many viewers, encoded once.

A :class:`Broadcast` registers one packet sink on the broadcaster's
:class:`~.track.WorldVideoTrack` and relays every H.264 packet the session
already encoded, as the same ``av.Packet`` object, to each WHEP viewer's
peer connection (aiortc packetises pre-encoded packets without re-encoding;
it only reads their bytes, ``pts`` and ``time_base``) and to the HLS writer.
No viewer costs an encode.

Each viewer has a bounded queue. A viewer that falls behind loses whole GOPs:
its queue is emptied and it resumes at the next key frame, so it never
decodes a broken picture and never delays the others. Packets go to a viewer
only once its peer is connected (so it never starts with a backlog), and a
newly connected viewer (or a viewer's PLI/FIR) asks the broadcaster's track
for a key frame, so its picture starts at once instead of at the next
scheduled IDR.

Ending the stream, the broadcaster disconnecting or the stream limit ends the
broadcast: the sink is removed, every viewer's peer connection is closed and
the broadcast is forgotten (its URLs answer 404 from then on).

Everything here runs on the server's loop thread, except the counters and
:meth:`BroadcastHub.wait_until`, which any thread may use.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from typing import Any, Callable

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription

from .aiortc_internals import take_keyframe_request
from .auth import Authority
from .config import ServerConfig
from .hls import PLAYLIST_NAME, HlsWriter
from .streamer import ice_servers_for
from .track import WorldVideoTrack

__all__ = [
    "Broadcast",
    "BroadcastEnded",
    "BroadcastFull",
    "BroadcastHub",
    "OfferRejected",
    "RelayTrack",
    "TooManyJoining",
    "Viewer",
]

logger = logging.getLogger("odyssey_sync.local.broadcast")

# Seconds of video a viewer may lag before it loses what is queued.
_VIEWER_QUEUE_SECONDS = 2.0
_PEER_CLOSE_TIMEOUT_S = 5.0
_CLOSE_ALL_TIMEOUT_S = 8.0
MAX_OFFER_CANDIDATES = 64
"""Most ICE candidates a viewer's offer may carry (a browser's has a handful); each one is probed."""
_MIN_KEYFRAME_INTERVAL_S = 0.5


class BroadcastEnded(Exception):
    """The broadcast ended (or never existed) while a viewer was joining."""


class BroadcastFull(Exception):
    """The broadcast already has ``max_spectators`` viewers."""


class TooManyJoining(Exception):
    """One spectator token already has ``max_joining_spectators`` viewers whose peers have not connected."""

    def __init__(self, joining: int, retry_after_s: float) -> None:
        super().__init__(f"{joining} viewers of this token are still joining")
        self.joining = joining
        self.retry_after_s = retry_after_s


class OfferRejected(Exception):
    """A viewer's SDP offer cannot be answered; ``status`` is the HTTP status to send (400 or 406)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RelayTrack(MediaStreamTrack):
    """One viewer's video track: the relayed packets, through a bounded queue."""

    kind = "video"

    def __init__(self, capacity: int) -> None:
        """Hold at most ``capacity`` packets; the first one delivered is a key frame."""
        super().__init__()
        self._queue: asyncio.Queue[av.Packet[Any] | None] = asyncio.Queue(capacity)
        self._waiting_for_keyframe = True
        self.gops_dropped = 0
        """How many times the viewer lagged and lost what was queued."""

    def offer(self, packet: av.Packet[Any]) -> None:
        """Queue ``packet`` unless the viewer waits for a key frame; never blocks."""
        if self.readyState != "live":
            return
        keyframe = bool(packet.is_keyframe)
        if self._waiting_for_keyframe and not keyframe:
            return
        if self._queue.full():
            self._clear()
            self.gops_dropped += 1
            if not keyframe:
                self._waiting_for_keyframe = True
                return
        self._waiting_for_keyframe = False
        self._queue.put_nowait(packet)

    def stop(self) -> None:
        """End the track and wake a pending :meth:`recv`."""
        super().stop()
        self._clear()
        self._queue.put_nowait(None)

    async def recv(self) -> av.Packet[Any]:
        """The next relayed packet; raises :class:`MediaStreamError` once stopped."""
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        if packet is None:
            raise MediaStreamError
        return packet

    def _clear(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()


class Viewer:
    """One WHEP session: its id, peer connection and relay track."""

    def __init__(
        self, viewer_id: str, pc: RTCPeerConnection, track: RelayTrack, sender: Any, token_key: str | None = None
    ) -> None:
        """Bind the parts of one viewer; ``token_key`` identifies the spectator token it joined with."""
        self.viewer_id = viewer_id
        self.token_key = token_key
        self.pc = pc
        self.track = track
        self.sender = sender
        self.answer_sdp = ""
        self.connected = False
        """Whether media flows; packets are relayed only from then on (no backlog burst at join)."""
        self.closed = False

    def take_keyframe_request(self) -> bool:
        """Whether the viewer asked for a key frame (PLI/FIR) since the last call."""
        return take_keyframe_request(self.sender)


def check_offer(sdp: str) -> None:
    """Raise :class:`OfferRejected` unless ``sdp`` is an offer with a video m-line that can take H.264
    and at most :data:`MAX_OFFER_CANDIDATES` ICE candidates (the server would probe every one)."""
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:
        raise OfferRejected(400, f"the body is not a valid SDP offer: {exc}") from None
    candidates = sum(len(media.ice_candidates) for media in description.media)
    if candidates > MAX_OFFER_CANDIDATES:
        raise OfferRejected(
            400, f"the SDP offer has {candidates} ICE candidates; at most {MAX_OFFER_CANDIDATES} are taken"
        )
    video = [media for media in description.media if media.kind == "video"]
    if not video:
        raise OfferRejected(400, "the SDP offer has no video m-line; offer a recvonly video transceiver")
    if not any(codec.mimeType.lower() == "video/h264" for media in video for codec in media.rtp.codecs):
        raise OfferRejected(406, "the SDP offer has no H.264 codec; broadcasts are sent as H.264 only")


def _h264_only() -> list[Any]:
    return [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/H264", "video/rtx")]


class Broadcast:
    """The relay of one broadcast stream to its WHEP viewers and its HLS playlist."""

    def __init__(
        self,
        *,
        stream_id: str,
        track: WorldVideoTrack,
        first_frame: int,
        config: ServerConfig,
        webrtc_url: str,
        spectator_token: str,
        hls: HlsWriter | None,
        hls_url: str | None,
        on_change: Callable[[], None],
        on_ended: Callable[[Broadcast], None],
    ) -> None:
        """Bind the parts; :meth:`start` attaches the sink."""
        self.stream_id = stream_id
        self.webrtc_url = webrtc_url
        self.spectator_token = spectator_token
        self.hls = hls
        self.hls_url = hls_url
        self._track = track
        self._first_frame = first_frame
        self._config = config
        self._queue_packets = max(4, round(_VIEWER_QUEUE_SECONDS * config.fps))
        self._on_change = on_change
        self._on_ended = on_ended
        self._viewers: dict[str, Viewer] = {}
        self._remove_sink: Callable[[], None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._last_keyframe_request = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def ended(self) -> bool:
        """Whether the broadcast has ended."""
        return self._closing is not None

    @property
    def viewer_count(self) -> int:
        """Viewers joined (or joining) now."""
        return len(self._viewers)

    def start(self) -> None:
        """Relay from the stream's first frame on."""
        self._remove_sink = self._track.add_sink(self._on_packet)

    # -- relaying ------------------------------------------------------------------------------

    def _on_packet(self, packet: av.Packet[Any], frame_number: int, frame: av.VideoFrame) -> None:
        if frame_number < self._first_frame or self._closing is not None:
            return
        keyframe_wanted = False
        for viewer in list(self._viewers.values()):
            if viewer.connected:
                viewer.track.offer(packet)
                keyframe_wanted = viewer.take_keyframe_request() or keyframe_wanted
        if self.hls is not None:
            self.hls.feed(packet, frame.width, frame.height)
        if keyframe_wanted:
            self._request_keyframe()

    def _request_keyframe(self) -> None:
        now = time.monotonic()
        if now - self._last_keyframe_request >= _MIN_KEYFRAME_INTERVAL_S:
            self._last_keyframe_request = now
            self._track.request_keyframe()

    # -- viewers -------------------------------------------------------------------------------

    async def add_viewer(self, offer_sdp: str, *, token_key: str | None = None) -> Viewer:
        """Answer a viewer's offer; once its peer connects it receives every packet from a fresh key frame.

        A viewer whose peer has not connected ``spectator_join_timeout_s``
        later is dropped. ``token_key`` identifies the spectator token: one
        token may have ``max_joining_spectators`` viewers not yet connected.

        Raises :class:`BroadcastEnded`, :class:`BroadcastFull`, :class:`TooManyJoining`
        or :class:`OfferRejected`.
        """
        if self._closing is not None:
            raise BroadcastEnded(self.stream_id)
        if len(self._viewers) >= self._config.max_spectators:
            raise BroadcastFull(self.stream_id)
        joining = sum(1 for v in self._viewers.values() if v.token_key == token_key and not v.connected)
        if joining >= self._config.max_joining_spectators:
            raise TooManyJoining(joining, self._config.spectator_join_timeout_s)
        check_offer(offer_sdp)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers_for(self._config)))
        track = RelayTrack(self._queue_packets)
        # H.264 must be chosen before the offer is applied: an answerer's later preferences are ignored.
        transceiver = pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(_h264_only())
        viewer = Viewer(secrets.token_urlsafe(16), pc, track, transceiver.sender, token_key)
        self._viewers[viewer.viewer_id] = viewer
        self._on_change()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self._drop(viewer)
            raise OfferRejected(400, f"the SDP offer cannot be answered: {exc}") from None
        if self.ended:  # it ended while the answer was being made
            await self._drop(viewer)
            raise BroadcastEnded(self.stream_id)
        viewer.answer_sdp = pc.localDescription.sdp
        pc.on("connectionstatechange", lambda: self._on_viewer_state(viewer))
        asyncio.get_running_loop().call_later(
            self._config.spectator_join_timeout_s, self._drop_if_unconnected, viewer
        )
        logger.info("broadcast %s: viewer %s joined (%d watching)", self.stream_id[:8], viewer.viewer_id[:6], len(self._viewers))
        return viewer

    async def remove_viewer(self, viewer_id: str) -> bool:
        """End one viewer (WHEP DELETE); whether it existed."""
        viewer = self._viewers.get(viewer_id)
        if viewer is None:
            return False
        await self._drop(viewer)
        logger.info("broadcast %s: viewer %s left (%d watching)", self.stream_id[:8], viewer_id[:6], len(self._viewers))
        return True

    def _on_viewer_state(self, viewer: Viewer) -> None:
        if viewer.pc.connectionState == "connected" and not viewer.connected and not viewer.closed:
            viewer.connected = True
            self._track.request_keyframe()  # its picture starts at once, not at the next scheduled IDR
        elif viewer.pc.connectionState in ("failed", "closed") and not viewer.closed:
            logger.info("broadcast %s: viewer %s %s", self.stream_id[:8], viewer.viewer_id[:6], viewer.pc.connectionState)
            self._spawn(self._drop(viewer))

    def _drop_if_unconnected(self, viewer: Viewer) -> None:
        if not viewer.closed and not viewer.connected:
            logger.info("broadcast %s: viewer %s never connected; dropped", self.stream_id[:8], viewer.viewer_id[:6])
            self._spawn(self._drop(viewer))

    async def _drop(self, viewer: Viewer) -> None:
        if self._viewers.get(viewer.viewer_id) is viewer:
            del self._viewers[viewer.viewer_id]
            self._on_change()
        if viewer.closed:
            return
        viewer.closed = True
        viewer.track.stop()
        try:
            await asyncio.wait_for(viewer.pc.close(), _PEER_CLOSE_TIMEOUT_S)
        except Exception:
            logger.warning("closing a viewer's peer connection failed", exc_info=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- ending --------------------------------------------------------------------------------

    def end(self) -> asyncio.Task[None]:
        """End the broadcast: no more packets, every viewer closed, HLS finished. Idempotent.

        Returns the task doing the (asynchronous) closing; the broadcast is
        unreachable from the moment this returns.
        """
        if self._closing is None:
            if self._remove_sink is not None:
                self._remove_sink()
            for viewer in self._viewers.values():
                viewer.track.stop()
            self._closing = asyncio.ensure_future(self._close())
            self._on_ended(self)
            logger.info("broadcast %s ended", self.stream_id[:8])
        return self._closing

    async def _close(self) -> None:
        viewers = list(self._viewers.values())
        await asyncio.gather(*(self._drop(viewer) for viewer in viewers), return_exceptions=True)
        if self.hls is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.hls.close)


class BroadcastHub:
    """The live broadcasts of one server, by stream id, and the spectator tokens that open them."""

    def __init__(self, config: ServerConfig, authority: Authority) -> None:
        """Serve broadcasts under ``config``'s limits, with tokens signed by ``authority``."""
        self._config = config
        self._authority = authority
        self._broadcasts: dict[str, Broadcast] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._changed = threading.Condition()

    def open(self, *, stream_id: str, track: WorldVideoTrack, first_frame: int, base_url: str) -> Broadcast:
        """Start broadcasting ``stream_id`` from ``first_frame`` of ``track``; ``base_url`` is the server's origin."""
        webrtc_url = f"{base_url}/broadcast/{stream_id}"
        hls = HlsWriter(fps=self._config.fps, name=stream_id) if self._config.broadcast_hls else None
        broadcast = Broadcast(
            stream_id=stream_id,
            track=track,
            first_frame=first_frame,
            config=self._config,
            webrtc_url=webrtc_url,
            spectator_token=self._authority.mint_spectator_token(stream_id),
            hls=hls,
            hls_url=f"{webrtc_url}/{PLAYLIST_NAME}" if hls is not None else None,
            on_change=self._notify,
            on_ended=self._forget,
        )
        previous = self._broadcasts.get(stream_id)
        if previous is not None:
            previous.end()
        self._broadcasts[stream_id] = broadcast
        broadcast.start()
        self._notify()
        logger.info("broadcast %s started", stream_id[:8])
        return broadcast

    def get(self, stream_id: str) -> Broadcast | None:
        """The live broadcast of ``stream_id``, or ``None``."""
        return self._broadcasts.get(stream_id)

    def verify_token(self, token: str | None, stream_id: str) -> None:
        """Raise :class:`~.auth.TokenError` unless ``token`` opens ``stream_id``'s broadcast."""
        self._authority.verify_spectator_token(token, stream_id)

    def viewer_count(self, stream_id: str | None = None) -> int:
        """Viewers of one broadcast, or of all of them. Any thread."""
        broadcasts = list(self._broadcasts.values())
        return sum(b.viewer_count for b in broadcasts if stream_id is None or b.stream_id == stream_id)

    def broadcast_ids(self) -> list[str]:
        """Stream ids of the live broadcasts. Any thread."""
        return list(self._broadcasts)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` holds, re-checked on every viewer or broadcast change. Any thread but the loop's."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    async def close_all(self) -> None:
        """End every broadcast and wait (bounded) until their viewers are closed."""
        for broadcast in list(self._broadcasts.values()):
            broadcast.end()
        pending = [task for task in self._closing if not task.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=_CLOSE_ALL_TIMEOUT_S)
            if late:
                logger.warning("%d broadcasts did not close in time", len(late))

    def _forget(self, broadcast: Broadcast) -> None:
        if self._broadcasts.get(broadcast.stream_id) is broadcast:
            del self._broadcasts[broadcast.stream_id]
        task = broadcast.end()
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        self._notify()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()
