"""Every private reach into aiortc and aioice, on both sides, checked against the installed versions.

If aiortc or aioice change what ``odyssey_sync._jitter`` (the SDK) or
``odyssey_sync.local.aiortc_internals`` (the server) reach into, these fail.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

import aioice.ice
import aiortc
import aiortc.codecs.h264
import aiortc.codecs.vpx
import aiortc.rtcrtpreceiver
import aiortc.rtcsctptransport
from aiortc import RTCPeerConnection, VideoStreamTrack
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket

from odyssey_sync import _jitter
from odyssey_sync.local import aiortc_internals as internals


def test_the_installed_versions_are_the_tested_ones() -> None:
    assert internals.tested(), (aiortc.__version__, aioice.__version__)
    assert aiortc.__version__.startswith(_jitter.SUPPORTED_AIORTC)


def test_the_sdk_jitter_buffer_replacement_still_fits_aiortc() -> None:
    assert issubclass(_jitter.MarkerJitterBuffer, JitterBuffer)
    assert "_remove_frame" in vars(JitterBuffer), "aiortc's buffer still releases frames in _remove_frame"
    assert hasattr(aiortc.rtcrtpreceiver, "JitterBuffer"), "receivers still look the buffer up in their module"
    fields = {"_origin", "_packets", "_capacity", "_is_video", "_prefetch"}
    source = inspect.getsource(JitterBuffer.__init__)
    assert all(f"self.{name}" in source for name in fields), "the buffer fields the replacement reads"


def _with_sender(body: Any) -> Any:
    async def run() -> Any:
        pc = RTCPeerConnection()
        try:
            sender = pc.addTransceiver(VideoStreamTrack(), direction="sendonly").sender
            return await body(sender)
        finally:
            await pc.close()

    return asyncio.run(run())


def test_a_key_frame_request_is_read_and_cleared() -> None:
    async def body(sender: Any) -> tuple[bool, bool, bool]:
        before = internals.take_keyframe_request(sender)
        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc))
        return before, internals.take_keyframe_request(sender), internals.take_keyframe_request(sender)

    assert _with_sender(body) == (False, True, False), "a PLI sets aiortc's flag; reading it clears it"
    assert internals.take_keyframe_request(None) is False


def test_codec_bitrates_are_module_constants_encoders_read() -> None:
    saved = {m: (m.DEFAULT_BITRATE, m.MIN_BITRATE, m.MAX_BITRATE) for m in (aiortc.codecs.vpx, aiortc.codecs.h264)}
    try:
        internals.set_codec_bitrates(2_000_000)
        for module in saved:
            assert (module.DEFAULT_BITRATE, module.MIN_BITRATE, module.MAX_BITRATE) == (2_000_000, 800_000, 4_800_000)
        assert "DEFAULT_BITRATE" in inspect.getsource(aiortc.codecs.vpx.Vp8Encoder)
    finally:
        for module, (default, low, high) in saved.items():
            module.DEFAULT_BITRATE, module.MIN_BITRATE, module.MAX_BITRATE = default, low, high


def test_the_loopback_fallback_applies_to_server_threads_only(monkeypatch: Any) -> None:
    internals.gather_loopback_on_this_thread()  # installs the wrapper (once) and marks this thread
    assert aioice.ice.get_host_addresses is internals._host_addresses
    original = internals._aioice_host_addresses
    assert original is not None and list(inspect.signature(original).parameters) == ["use_ipv4", "use_ipv6"]
    assert "get_host_addresses(" in inspect.getsource(aioice.ice.Connection.gather_candidates)
    # A machine with no address but loopback:
    monkeypatch.setattr(internals, "_aioice_host_addresses", lambda use_ipv4, use_ipv6: [])
    assert internals._host_addresses(True, False) == ["127.0.0.1"], "the server's thread gets a loopback candidate"
    seen: list[list[str]] = []
    client = threading.Thread(target=lambda: seen.append(internals._host_addresses(True, False)))
    client.start()
    client.join(5)
    assert seen == [[]], "an SDK thread gathers exactly what aioice gathers"
    internals.forget_this_thread()
    assert internals._host_addresses(True, False) == []


async def _negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


def test_sctp_queues_and_udp_transports_are_where_they_are_reached() -> None:
    async def run() -> tuple[bool, bool, int]:
        offerer, answerer = RTCPeerConnection(), RTCPeerConnection()
        try:
            channel = offerer.createDataChannel("probe")
            opened = asyncio.Event()
            channel.on("open", opened.set)
            await _negotiate(offerer, answerer)
            await asyncio.wait_for(opened.wait(), 10)
            assert offerer.sctp is not None
            queues = all(hasattr(offerer.sctp, name) for name in internals._SCTP_QUEUES)
            channel.send("x" * 200_000)
            backlog = internals.data_channel_backlog(channel, offerer)
            return queues, backlog, len(internals.udp_transports(offerer))
        finally:
            await offerer.close()
            await answerer.close()

    queues, backlog, transports = asyncio.run(run())
    assert queues, "aiortc's SCTP transport keeps its send queues under these names"
    assert backlog, "a large message just sent is still queued"
    assert transports >= 1, "a connected peer's ICE connection has UDP transports"


def test_a_guarded_peer_survives_a_message_aiortc_cannot_read() -> None:
    from hostile import WEBRTC_STRING, send_raw_data_channel

    original = aiortc.rtcsctptransport.RTCSctpTransport._data_channel_receive
    assert "self._data_channel_receive(" in inspect.getsource(aiortc.rtcsctptransport.RTCSctpTransport)
    assert "decode(\"utf8\")" in inspect.getsource(aiortc.rtcsctptransport.RTCSctpTransport._data_channel_receive)

    async def run() -> tuple[bool, list[str], list[str], bool]:
        guarded, sender = RTCPeerConnection(), RTCPeerConnection()
        refused: list[str] = []
        received: list[str] = []
        got = asyncio.Event()
        try:
            inbound = guarded.createDataChannel("in")
            installed = internals.guard_data_channel_receive(guarded, lambda exc: refused.append(type(exc).__name__))
            inbound.on("message", lambda message: (received.append(message), got.set()))
            opened = asyncio.Event()
            channels: list[Any] = []
            sender.on("datachannel", lambda channel: (channels.append(channel), opened.set()))
            await _negotiate(guarded, sender)
            await asyncio.wait_for(opened.wait(), 10)
            await send_raw_data_channel(channels[0], WEBRTC_STRING, b"\xff\xfe not text")
            channels[0].send("still open")
            await asyncio.wait_for(got.wait(), 10)
            return installed, refused, received, guarded.sctp is not None and guarded.sctp.state == "connected"
        finally:
            await guarded.close()
            await sender.close()

    installed, refused, received, connected = asyncio.run(run())
    assert installed
    assert refused == ["UnicodeDecodeError"], "the undecodable message reached the guard"
    assert received == ["still open"] and connected, "the next message arrives on a transport still connected"
    assert aiortc.rtcsctptransport.RTCSctpTransport._data_channel_receive is original, "aiortc's class is untouched"
