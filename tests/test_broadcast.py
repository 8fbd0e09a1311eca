"""Broadcast: one broadcaster, many WHEP spectators, over real WebRTC on loopback."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import socket
import threading
import time
from typing import Any, Callable, Iterator

import av
import numpy as np
import pytest
import requests
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError

import odyssey_sync
from odyssey_sync import (
    BroadcastInfo,
    Odyssey,
    OdysseyAuthError,
    OdysseyConnectionError,
    OdysseyStreamError,
    OdysseyTimeoutError,
    SpectatorConnection,
    VideoFrame,
    connect_to_stream,
)
from odyssey_sync.local import LocalOdyssey
from odyssey_sync.local.broadcast import RelayTrack
from odyssey_sync.stamp import read_stamp

MAX_SPECTATORS = 3
SPECTATOR_THREAD_MARK = "spectator"


@pytest.fixture(scope="module")
def broadcast_server() -> Iterator[LocalOdyssey]:
    """A server of its own, with room for three spectators per broadcast."""
    with LocalOdyssey(max_spectators=MAX_SPECTATORS, max_concurrent_per_key=10) as local:
        yield local


class Broadcaster:
    """A connected client running a broadcast stream."""

    def __init__(self, local: LocalOdyssey) -> None:
        self.client = Odyssey(api_key=local.api_key, api_url=local.url, timeout=20)
        ready = threading.Event()
        self.client.connect(on_broadcast_ready=lambda info: ready.set())
        self.stream_id = self.client.start_stream("A lighthouse on a cliff", portrait=False, broadcast=True)
        assert ready.wait(5), "broadcast_ready arrives after the start"
        info = self.client.broadcast_info
        assert isinstance(info, BroadcastInfo)
        self.info = info


@pytest.fixture
def start_broadcast(broadcast_server: LocalOdyssey) -> Iterator[Callable[[], Broadcaster]]:
    """Start broadcasters on demand; every one is disconnected after the test."""
    made: list[Broadcaster] = []

    def start() -> Broadcaster:
        made.append(Broadcaster(broadcast_server))
        return made[-1]

    yield start
    for broadcaster in made:
        broadcaster.client.disconnect()


@pytest.fixture
def spectate() -> Iterator[Callable[..., SpectatorConnection]]:
    """Connect spectators on demand; every one is disconnected after the test."""
    made: list[SpectatorConnection] = []

    def connect(info: BroadcastInfo, **kwargs: Any) -> SpectatorConnection:
        kwargs.setdefault("timeout", 15)
        made.append(connect_to_stream(info.webrtc_url, info.spectator_token, **kwargs))
        return made[-1]

    yield connect
    for spectator in made:
        spectator.disconnect()


def spectator_threads() -> list[threading.Thread]:
    """The loop, dispatcher and cleanup threads of spectator connections still alive."""
    return [t for t in threading.enumerate() if t.name.startswith("odyssey-") and SPECTATOR_THREAD_MARK in t.name]


def join_spectator_threads(timeout: float) -> list[threading.Thread]:
    """Wait (bounded) for every spectator thread to end; those still alive."""
    deadline = time.monotonic() + timeout
    for thread in spectator_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    return spectator_threads()


def frame_number(frame: VideoFrame) -> int:
    """The server's frame number stamped into ``frame``."""
    stamp = read_stamp(frame.data)
    assert stamp is not None, "every relayed frame carries the server's stamp"
    return stamp.frame_number


def bottom_mean(frame: VideoFrame) -> np.ndarray:
    """Mean RGB of the lower half (the stamp sits top-left)."""
    return frame.data[frame.height // 2 :].reshape(-1, 3).mean(axis=0)


def whep_post(info: BroadcastInfo, sdp: str = "v=0\r\n", *, token: str | None = None, **kwargs: Any) -> requests.Response:
    """A raw WHEP POST."""
    params = {"token": info.spectator_token if token is None else token}
    headers = {"Content-Type": "application/sdp", **kwargs.pop("headers", {})}
    return requests.post(f"{info.webrtc_url}/whep", params=params, data=sdp, headers=headers, timeout=10, **kwargs)


def offer_sdp(mime: str) -> str:
    """An aiortc spectator offer (recvonly video and audio) whose video only offers ``mime``."""

    async def make() -> str:
        pc = RTCPeerConnection()
        try:
            video = pc.addTransceiver("video", direction="recvonly")
            codecs = RTCRtpSender.getCapabilities("video").codecs
            video.setCodecPreferences([c for c in codecs if c.mimeType in (mime, "video/rtx")])
            pc.addTransceiver("audio", direction="recvonly")
            return (await pc.createOffer()).sdp
        finally:
            await pc.close()

    return asyncio.run(make())


# -- the acceptance criteria --------------------------------------------------------------


def test_one_broadcaster_and_three_spectators_receive_frames_at_once(
    broadcast_server: LocalOdyssey, start_broadcast: Callable[[], Broadcaster], spectate: Callable[..., SpectatorConnection]
) -> None:
    broadcaster = start_broadcast()
    info = broadcaster.info
    assert info.webrtc_url == f"{broadcast_server.url}/broadcast/{broadcaster.stream_id}"
    assert info.spectator_token and info.spectator_token not in repr(info)
    handler_threads: list[set[str]] = [set() for _ in range(3)]
    spectators = [
        spectate(info, on_video_frame=lambda frame, seen=seen: seen.add(threading.current_thread().name))
        for seen in handler_threads
    ]
    assert all(s.is_connected for s in spectators)
    assert broadcast_server.spectator_count(broadcaster.stream_id) == 3

    moment = time.monotonic()
    own = broadcaster.client.wait_for_frame(after=moment, timeout=10)
    seen = [s.wait_for_frame(after=moment, timeout=10) for s in spectators]
    arrivals = [own.received_at] + [frame.received_at for frame in seen]
    assert max(arrivals) - moment < 2.0, "everyone receives frames at the same time"
    numbers = [frame_number(frame) for frame in seen]
    assert max(numbers) - min(numbers) <= 10, "spectators watch the same live frames"
    for spectator in spectators:
        frames = list(spectator.frames(limit=10, timeout=10))
        stamps = [frame_number(frame) for frame in frames]
        assert stamps == sorted(stamps) and len(set(stamps)) == 10
        assert frames[0].width == 1280 and frames[0].height == 704
        stats = spectator.stats
        assert stats.frames_received >= 10 and stats.bytes_received > 0
    for names in handler_threads:
        assert names and all(name.startswith("odyssey-dispatch-spectator") for name in names)


def test_spectator_frames_carry_the_broadcast_stream(
    start_broadcast: Callable[[], Broadcaster], spectate: Callable[..., SpectatorConnection]
) -> None:
    broadcaster = start_broadcast()
    assert broadcaster.info.stream_id == broadcaster.stream_id
    spectator = spectate(broadcaster.info)  # the stream id comes from the spectator token's claim
    frames = [spectator.get_frame(timeout=10) for _ in range(5)]
    assert all(f.stream_id == broadcaster.stream_id and f.prompt is None for f in frames)
    assert [f.index for f in frames] == list(range(5)) and frames[0].timestamp_ms == 0
    named = spectate(broadcaster.info, stream_id="as-the-caller-names-it")
    assert named.get_frame(timeout=10).stream_id == "as-the-caller-names-it"


def test_spectator_sees_the_picture_change_after_interact(
    broadcast_server: LocalOdyssey, start_broadcast: Callable[[], Broadcaster], spectate: Callable[..., SpectatorConnection]
) -> None:
    broadcaster = start_broadcast()
    spectator = spectate(broadcaster.info)
    before = spectator.wait_for_frame(timeout=10)
    broadcaster.client.interact("The lighthouse turns into a volcano")
    record = broadcast_server.session(broadcaster.client.current_session_id or "")
    assert record is not None and record.active_stream is not None
    first_new = record.active_stream.prompts[-1].frame_number
    changed = next(f for f in spectator.frames(timeout=10) if frame_number(f) >= first_new + 2)
    assert np.abs(bottom_mean(changed) - bottom_mean(before)).max() > 20, "the spectator sees the new scene"


def test_bad_tokens_are_refused(
    broadcast_server: LocalOdyssey,
    start_broadcast: Callable[[], Broadcaster],
    spectate: Callable[..., SpectatorConnection],
) -> None:
    first, second = start_broadcast(), start_broadcast()
    with pytest.raises(OdysseyAuthError, match="Invalid spectator token"):
        connect_to_stream(first.info.webrtc_url, "not-a-token", timeout=10)
    with pytest.raises(OdysseyAuthError, match="another stream"):
        connect_to_stream(second.info.webrtc_url, first.info.spectator_token, timeout=10)
    session_token = broadcast_server.mint_session_token(first.client.current_session_id or "")
    with pytest.raises(OdysseyAuthError):
        connect_to_stream(first.info.webrtc_url, session_token, timeout=10)
    assert whep_post(first.info, token="not-a-token").status_code == 401
    assert join_spectator_threads(3.0) == [], "a refused connect leaves no thread behind"
    assert spectate(first.info).is_connected, "the right token still works"


def test_ending_the_stream_disconnects_every_spectator_within_2_s(
    broadcast_server: LocalOdyssey, start_broadcast: Callable[[], Broadcaster], spectate: Callable[..., SpectatorConnection]
) -> None:
    broadcaster = start_broadcast()
    gone = [threading.Event() for _ in range(3)]
    spectators = [spectate(broadcaster.info, on_disconnected=event.set) for event in gone]
    for spectator in spectators:
        spectator.get_frame(timeout=10)
    outcomes: dict[str, Any] = {}

    def blocked(name: str, call: Callable[[], Any]) -> None:
        try:
            outcomes[name] = call()
        except BaseException as exc:
            outcomes[name] = exc

    far_future = time.monotonic() + 3600
    pullers = [
        threading.Thread(target=blocked, args=("wait", lambda: spectators[0].wait_for_frame(after=far_future, timeout=None))),
        threading.Thread(target=blocked, args=("frames", lambda: sum(1 for _ in spectators[1].frames(timeout=None)))),
    ]
    for thread in pullers:
        thread.start()
    time.sleep(0.2)  # let the pullers block

    broadcaster.client.end_stream()
    ended_at = time.monotonic()
    assert all(event.wait(max(0.0, ended_at + 2.0 - time.monotonic())) for event in gone), "on_disconnected within 2 s"
    for thread in pullers:
        thread.join(2.0)
        assert not thread.is_alive(), "blocked pullers wake"
    assert isinstance(outcomes["wait"], OdysseyConnectionError)
    assert isinstance(outcomes["frames"], int), "frames() ends cleanly when the broadcast ends"
    with pytest.raises(OdysseyConnectionError, match="broadcast ended"):
        for _ in range(64):  # what arrived before the end stays readable (at most buffer_size frames), then the end
            spectators[2].get_frame(timeout=5)
    assert not any(s.is_connected for s in spectators)
    assert broadcast_server.wait_for_spectators(0, stream_id=broadcaster.stream_id, timeout=5)
    assert join_spectator_threads(5.0) == [], "no spectator thread outlives the broadcast"
    for event in gone:  # exactly once: leaving afterwards does not fire it again
        event.clear()
    for spectator in spectators:
        spectator.disconnect()
    assert not any(event.is_set() for event in gone)


def test_broadcaster_disconnecting_closes_every_spectator(
    start_broadcast: Callable[[], Broadcaster], spectate: Callable[..., SpectatorConnection]
) -> None:
    broadcaster = start_broadcast()
    gone = [threading.Event(), threading.Event()]
    handler_threads: list[str] = []

    def on_disconnected(event: threading.Event) -> None:
        handler_threads.append(threading.current_thread().name)
        event.set()

    for event in gone:
        spectate(broadcaster.info, on_disconnected=lambda event=event: on_disconnected(event))
    broadcaster.client.disconnect()
    assert all(event.wait(2.0) for event in gone)
    assert len(handler_threads) == 2 and all(n.startswith("odyssey-dispatch-spectator") for n in handler_threads)


# -- WHEP resource lifecycle ----------------------------------------------------------------------------


def test_disconnect_deletes_the_viewer_and_close_does_not(
    broadcast_server: LocalOdyssey,
    start_broadcast: Callable[[], Broadcaster],
    spectate: Callable[..., SpectatorConnection],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broadcaster = start_broadcast()
    stream_id = broadcaster.stream_id
    caplog.set_level(logging.INFO, logger="odyssey_sync.local.broadcast")
    leaving, closing = spectate(broadcaster.info), spectate(broadcaster.info)
    assert broadcast_server.spectator_count(stream_id) == 2
    gone = threading.Event()
    with spectate(broadcaster.info, on_disconnected=gone.set) as third:
        assert broadcast_server.spectator_count(stream_id) == 3
    assert gone.is_set() and not third.is_connected, "leaving the block disconnects"
    assert broadcast_server.spectator_count(stream_id) == 2, "the DELETE ended the viewer before disconnect() returned"

    leaving.disconnect()
    assert broadcast_server.spectator_count(stream_id) == 1
    closing.close()
    assert broadcast_server.wait_for_spectators(0, stream_id=stream_id, timeout=5), "a closed peer is noticed"
    left = [r.getMessage() for r in caplog.records if " left " in r.getMessage()]
    dropped = [r.getMessage() for r in caplog.records if r.getMessage().endswith(" closed")]
    assert len(left) == 2 and len(dropped) == 1, "disconnect() sends DELETE, close() does not"
    with pytest.raises(OdysseyConnectionError):
        closing.get_frame(timeout=1)
    assert join_spectator_threads(3.0) == []


def test_raw_whep_exchange(broadcast_server: LocalOdyssey, start_broadcast: Callable[[], Broadcaster]) -> None:
    broadcaster = start_broadcast()
    info = broadcaster.info
    response = whep_post(info, offer_sdp("video/H264"))
    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/sdp")
    assert "a=sendonly" in response.text and "H264" in response.text and "VP8" not in response.text
    location = response.headers["Location"]
    assert location.startswith(f"/broadcast/{broadcaster.stream_id}/whep/")
    assert "Location" in response.headers.get("Access-Control-Expose-Headers", "")
    assert broadcast_server.spectator_count(broadcaster.stream_id) == 1
    assert requests.patch(broadcast_server.url + location, timeout=10).status_code == 405
    assert requests.delete(broadcast_server.url + location, timeout=10).status_code == 200
    assert broadcast_server.spectator_count(broadcaster.stream_id) == 0
    assert requests.delete(broadcast_server.url + location, timeout=10).status_code == 404

    assert whep_post(info, offer_sdp("video/VP8")).status_code == 406
    assert whep_post(info, "not sdp at all", headers={"Content-Type": "text/plain"}).status_code == 415
    preflight = requests.options(
        f"{info.webrtc_url}/whep",
        headers={"Origin": "https://viewer.example", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert preflight.status_code == 204 and "POST" in preflight.headers["Access-Control-Allow-Methods"]
    config = requests.get(f"{odyssey_sync.protocol.origin_of(info.webrtc_url)}/config", timeout=10)
    assert config.status_code == 200 and "iceServers" in config.json()


def test_spectator_limit_answers_503(
    start_broadcast: Callable[[], Broadcaster], spectate: Callable[..., SpectatorConnection]
) -> None:
    broadcaster = start_broadcast()
    for _ in range(MAX_SPECTATORS):
        spectate(broadcaster.info)
    with pytest.raises(OdysseyConnectionError, match="503"):
        connect_to_stream(broadcaster.info.webrtc_url, broadcaster.info.spectator_token, timeout=10)


def test_ended_stream_answers_404(broadcast_server: LocalOdyssey, start_broadcast: Callable[[], Broadcaster]) -> None:
    broadcaster = start_broadcast()
    info = broadcaster.info
    broadcaster.client.end_stream()
    with pytest.raises(OdysseyStreamError, match="not found or already ended") as caught:
        Odyssey.connect_to_stream(info.webrtc_url, info.spectator_token, timeout=10)
    assert caught.value.reason == "stream_not_found"
    assert whep_post(info).status_code == 404
    assert info.hls_url is not None and requests.get(info.hls_url, timeout=10).status_code == 404
    assert broadcaster.client.is_connected, "the broadcaster's own connection goes on"


def test_hls_playlist_plays(start_broadcast: Callable[[], Broadcaster]) -> None:
    broadcaster = start_broadcast()
    hls_url = broadcaster.info.hls_url
    assert hls_url and hls_url.endswith("/index.m3u8")
    deadline = time.monotonic() + 10
    segments: list[str] = []
    while not segments and time.monotonic() < deadline:
        response = requests.get(hls_url, timeout=10)
        if response.status_code == 200:
            assert response.headers["Content-Type"] == "application/vnd.apple.mpegurl"
            assert response.text.startswith("#EXTM3U")
            segments = [line for line in response.text.splitlines() if line.endswith(".ts")]
        if not segments:
            broadcaster.client.wait_for_frame(timeout=10)  # a segment needs frames: wait for some
    assert segments, "a segment is listed within 10 s"
    segment = requests.get(hls_url.rsplit("/", 1)[0] + "/" + segments[0], timeout=10)
    assert segment.status_code == 200 and segment.headers["Content-Type"] == "video/mp2t"
    with av.open(io.BytesIO(segment.content)) as container:
        frames = list(container.decode(video=0))
    assert frames and (frames[0].width, frames[0].height) == (1280, 704)
    assert read_stamp(frames[0].to_ndarray(format="rgb24")) is not None, "the segment holds the relayed frames"


# -- SDK behaviour --------------------------------------------------------------------------------------


def test_arguments_are_checked_before_any_io() -> None:
    with pytest.raises(TypeError):
        connect_to_stream(None, "token")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        connect_to_stream("ws://example/broadcast/x", "token")
    with pytest.raises(ValueError):
        connect_to_stream("http://127.0.0.1:9/broadcast/x", "  ")
    with pytest.raises(TypeError):
        connect_to_stream("http://127.0.0.1:9/broadcast/x", "token", on_disconnected="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        connect_to_stream("http://127.0.0.1:9/broadcast/x", "token", buffer_size=0)
    with pytest.raises(ValueError):
        connect_to_stream("http://127.0.0.1:9/broadcast/x", "token", timeout=-1)
    assert spectator_threads() == []


def test_connect_times_out_against_a_silent_server() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(OdysseyTimeoutError):
            connect_to_stream(f"http://127.0.0.1:{port}/broadcast/x", "token", timeout=1.0)
        assert time.monotonic() - started < 4.0
    assert join_spectator_threads(3.0) == []


def test_connection_refused_is_a_connection_error() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(OdysseyConnectionError) as caught:
        connect_to_stream(f"http://127.0.0.1:{port}/broadcast/x", "secret-token", timeout=10)
    assert "secret-token" not in str(caught.value)


def test_without_hls_broadcast_url_is_null() -> None:
    with LocalOdyssey(broadcast_hls=False) as local:
        broadcaster = Broadcaster(local)
        try:
            assert broadcaster.info.hls_url is None
            assert requests.get(f"{broadcaster.info.webrtc_url}/index.m3u8", timeout=10).status_code == 404
        finally:
            broadcaster.client.disconnect()


def test_a_lagging_viewer_loses_whole_gops() -> None:
    def packet(keyframe: bool) -> av.Packet:
        made = av.Packet(b"\x00\x00\x00\x01\x65" if keyframe else b"\x00\x00\x00\x01\x41")
        made.is_keyframe = keyframe
        return made

    async def scenario() -> None:
        track = RelayTrack(capacity=3)
        track.offer(packet(False))  # a viewer starts at a key frame
        first = [packet(True), packet(False), packet(False)]
        for p in first:
            track.offer(p)
        track.offer(packet(False))  # full: what is queued goes, and the viewer waits for a key frame
        track.offer(packet(False))
        assert track.gops_dropped == 1
        resume = packet(True)
        track.offer(resume)
        assert await track.recv() is resume, "the shared packet itself is relayed, never a copy"
        track.stop()
        with pytest.raises(MediaStreamError):
            await track.recv()

    asyncio.run(scenario())


def test_the_stream_limit_closes_every_spectator() -> None:
    with LocalOdyssey(max_stream_seconds=2.0) as local:
        broadcaster = Broadcaster(local)
        try:
            gone = threading.Event()
            spectator = connect_to_stream(
                broadcaster.info.webrtc_url, broadcaster.info.spectator_token, on_disconnected=gone.set, timeout=10
            )
            assert gone.wait(6.0), "the broadcast ends with the stream"
            assert not spectator.is_connected
            assert local.wait_for_spectators(0, timeout=5)
        finally:
            broadcaster.client.disconnect()
    assert not [t for t in threading.enumerate() if t.name.startswith("local-odyssey-hls")], "HLS threads end"


def test_a_forgotten_spectator_leaves_when_collected(
    broadcast_server: LocalOdyssey, start_broadcast: Callable[[], Broadcaster]
) -> None:
    broadcaster = start_broadcast()
    spectator = connect_to_stream(broadcaster.info.webrtc_url, broadcaster.info.spectator_token, timeout=10)
    assert broadcast_server.spectator_count(broadcaster.stream_id) == 1
    del spectator
    gc.collect()
    assert broadcast_server.spectator_count(broadcaster.stream_id) == 0, "the finalizer sent the DELETE"
    assert join_spectator_threads(3.0) == []
