"""Every reach of the local server into aiortc's and aioice's private parts, in one place.

aiortc has no public API for these needs, so the server reads or sets what
aiortc keeps privately. Each reach is written against the tested versions
(:data:`TESTED_AIORTC`, :data:`TESTED_AIOICE`); on other versions it falls
back to doing nothing, which costs quality (no key frame on request, slower
bitrate ramp-up, ...) but never correctness. ``tests/test_aiortc_internals.py``
fails if a tested version stops having what is reached here.

Nothing here changes what an SDK client in the same process does: the client
only receives (the codec bitrates are read by encoders only), and the
loopback-candidate fallback applies to the server's own threads alone.
(The SDK's one reach, the jitter buffer, lives in ``odyssey_sync._jitter``.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import aioice
import aioice.ice
import aiortc
import aiortc.codecs.h264
import aiortc.codecs.vpx
from aiortc import RTCDataChannel, RTCPeerConnection, RTCRtpSender

__all__ = [
    "TESTED_AIOICE",
    "TESTED_AIORTC",
    "data_channel_backlog",
    "gather_loopback_on_this_thread",
    "guard_data_channel_receive",
    "set_codec_bitrates",
    "take_keyframe_request",
    "tested",
    "udp_transports",
]

logger = logging.getLogger("odyssey_sync.local.aiortc_internals")

TESTED_AIORTC = ("1.15.", "1.16.")
TESTED_AIOICE = ("0.10.", "0.11.", "0.12.", "0.13.")

# aiortc's RTCRtpSender keeps "a PLI or FIR arrived" in a name-mangled flag its own encoders read.
_KEYFRAME_FLAG = "_RTCRtpSender__force_keyframe"
# aiortc's SCTP transport: data not yet sent, and sent but not acknowledged.
_SCTP_QUEUES = ("_data_channel_queue", "_outbound_queue", "_sent_queue")
# The SCTP transport's coroutine that turns a received message into a channel event (or a DCEP open).
_DATA_CHANNEL_RECEIVE = "_data_channel_receive"


def tested() -> bool:
    """Whether the installed aiortc and aioice are versions this module was written against."""
    return aiortc.__version__.startswith(TESTED_AIORTC) and aioice.__version__.startswith(TESTED_AIOICE)


def take_keyframe_request(sender: RTCRtpSender | None) -> bool:
    """Whether the peer asked ``sender`` for a key frame (RTCP PLI or FIR) since the last call; clears it.

    The server sends packets it encoded itself, so aiortc's encoder, the flag's
    usual reader, never sees the request.
    """
    if sender is None or not tested() or not getattr(sender, _KEYFRAME_FLAG, False):
        return False
    setattr(sender, _KEYFRAME_FLAG, False)
    return True


def set_codec_bitrates(bitrate: int) -> None:
    """Start aiortc's VP8 and H.264 encoders at ``bitrate`` (bits/s), between 0.4x and 2.4x of it.

    aiortc starts VP8 at 0.5 Mbps and needs ~15 s of REMB to reach its 1.5 Mbps
    cap, which looks soft at 1280x704. There is no per-connection setting, so
    the module constants are set (read by encoders only; peers that only
    receive, as SDK clients do, never read them).
    """
    if not tested():
        logger.info("aiortc %s untested: leaving its codec bitrates alone", aiortc.__version__)
        return
    low, high = max(100_000, int(bitrate * 0.4)), int(bitrate * 2.4)
    for codec in (aiortc.codecs.vpx, aiortc.codecs.h264):
        codec.DEFAULT_BITRATE, codec.MIN_BITRATE, codec.MAX_BITRATE = int(bitrate), low, high  # type: ignore[attr-defined]  # module constants aiortc does not declare


_server_threads: set[int] = set()
_install_lock = threading.Lock()
_aioice_host_addresses: Callable[[bool, bool], list[str]] | None = None


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """aioice's host addresses, or 127.0.0.1 for a server thread on a machine with no other address."""
    assert _aioice_host_addresses is not None
    addresses = _aioice_host_addresses(use_ipv4, use_ipv6)
    if not addresses and use_ipv4 and threading.get_ident() in _server_threads:
        return ["127.0.0.1"]
    return addresses


def gather_loopback_on_this_thread() -> None:
    """Let ICE gather 127.0.0.1 for peers made on this thread when the machine has no other address.

    aioice skips loopback addresses, so in a loopback-only network namespace no
    candidate is gathered and every connection fails. The fallback applies to
    the calling thread only (the server's loop thread): SDK clients in the same
    process gather exactly as they would without a server.
    """
    global _aioice_host_addresses
    with _install_lock:
        _server_threads.add(threading.get_ident())
        if aioice.ice.get_host_addresses is _host_addresses or not tested():
            return
        _aioice_host_addresses = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _host_addresses


def forget_this_thread() -> None:
    """The server's loop thread is ending: its thread id may be reused by an SDK thread."""
    with _install_lock:
        _server_threads.discard(threading.get_ident())


def data_channel_backlog(channel: RTCDataChannel, pc: RTCPeerConnection | None) -> bool:
    """Whether data sent on ``channel`` is still queued or unacknowledged (aiortc has no delivery event)."""
    if channel.bufferedAmount:
        return True
    sctp = pc.sctp if pc is not None else None
    if sctp is None or not tested():
        return False
    return any(getattr(sctp, name, None) for name in _SCTP_QUEUES)


def guard_data_channel_receive(pc: RTCPeerConnection, on_refused: Callable[[Exception], None]) -> bool:
    """Keep one malformed data channel message from ending ``pc`` (the server's own peer only).

    aiortc reads a received message inside its SCTP receive path: it decodes a
    string message as UTF-8 and registers a channel open with an ``assert``.
    An undecodable string, or a second open for a live channel, raises there,
    and the exception ends the DTLS transport: the session's video and every
    later message stop without a word. Guarded, such a message is dropped and
    ``on_refused`` gets the exception; the peer carries on. Returns whether the
    guard is in place (``pc`` needs its data channels created first).
    """
    sctp = pc.sctp
    receive = getattr(sctp, _DATA_CHANNEL_RECEIVE, None)
    if sctp is None or receive is None or not tested():
        return False

    async def guarded(stream_id: int, pp_id: int, data: bytes) -> None:
        try:
            await receive(stream_id, pp_id, data)
        except Exception as exc:
            on_refused(exc)

    setattr(sctp, _DATA_CHANNEL_RECEIVE, guarded)  # this transport only; aiortc's class is untouched
    return True


def udp_transports(pc: RTCPeerConnection) -> list[Any]:
    """The UDP transports under a peer's ICE connections (for a fault that cuts them as a crash would)."""
    if not tested():
        return []
    dtls = [t.sender.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        dtls.append(pc.sctp.transport)
    found: list[Any] = []
    for transport in dtls:
        connection = getattr(getattr(transport, "transport", None), "_connection", None)
        for stun in getattr(connection, "_protocols", ()):
            udp = getattr(stun, "transport", None)
            if udp is not None and udp not in found:
                found.append(udp)
    return found

