"""The marker-bit jitter buffer: frames leave when complete, aiortc's behaviour otherwise."""

from __future__ import annotations

from typing import Iterator

import aiortc
import aiortc.rtcrtpreceiver
import pytest
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from odyssey_sync import Odyssey, _jitter
from odyssey_sync._jitter import MarkerJitterBuffer
from odyssey_sync.local import LocalOdyssey
from odyssey_sync.stamp import read_stamp


def packet(seq: int, timestamp: int, data: bytes, marker: bool = False) -> RtpPacket:
    rtp = RtpPacket(payload_type=96, sequence_number=seq, timestamp=timestamp, marker=int(marker))
    rtp._data = data  # type: ignore[attr-defined]  # what aiortc's receiver sets after depayloading
    return rtp


def feed(buffer: JitterBuffer, packets: list[RtpPacket]) -> list[tuple[int, bytes] | None]:
    out = []
    for rtp in packets:
        _, frame = buffer.add(rtp)
        out.append((frame.timestamp, frame.data) if frame is not None else None)
    return out


def test_the_supported_aiortc_is_the_one_installed() -> None:
    assert aiortc.__version__.startswith(_jitter.SUPPORTED_AIORTC), "re-check MarkerJitterBuffer against this aiortc"


def test_a_frame_leaves_with_its_marker_packet() -> None:
    frame = [packet(10, 1000, b"a"), packet(11, 1000, b"b"), packet(12, 1000, b"c", marker=True)]
    assert feed(MarkerJitterBuffer(512, is_video=True), frame) == [None, None, (1000, b"abc")]
    # aiortc's own buffer waits for the next frame's first packet
    assert feed(JitterBuffer(512, is_video=True), frame) == [None, None, None]


def test_reordered_packets_complete_the_frame_when_the_gap_fills() -> None:
    packets = [packet(10, 1000, b"a"), packet(12, 1000, b"c", marker=True), packet(11, 1000, b"b")]
    assert feed(MarkerJitterBuffer(512, is_video=True), packets) == [None, None, (1000, b"abc")]


def test_a_missing_packet_holds_the_frame_back() -> None:
    packets = [packet(10, 1000, b"a"), packet(12, 1000, b"c", marker=True), packet(13, 2000, b"d", marker=True)]
    assert feed(MarkerJitterBuffer(512, is_video=True), packets) == [None, None, None]


def test_consecutive_frames_and_frames_without_marker() -> None:
    buffer = MarkerJitterBuffer(512, is_video=True)
    assert feed(buffer, [packet(1, 100, b"x", marker=True), packet(2, 200, b"y"), packet(3, 200, b"z", marker=True)]) == [
        (100, b"x"),
        None,
        (200, b"yz"),
    ]
    # no marker: released when the next frame starts, as aiortc does
    assert feed(buffer, [packet(4, 300, b"p"), packet(5, 400, b"q")]) == [None, (300, b"p")]


def test_audio_buffers_keep_aiortc_behaviour() -> None:
    audio = MarkerJitterBuffer(16, prefetch=4)
    plain = JitterBuffer(16, prefetch=4)
    packets = [packet(i, i * 960, bytes([i]), marker=True) for i in range(1, 8)]
    assert feed(audio, packets) == feed(plain, packets)


@pytest.fixture
def restore_receiver_buffer() -> Iterator[None]:
    original = aiortc.rtcrtpreceiver.JitterBuffer
    yield
    aiortc.rtcrtpreceiver.JitterBuffer = original  # type: ignore[misc]


def test_install_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, restore_receiver_buffer: None) -> None:
    aiortc.rtcrtpreceiver.JitterBuffer = JitterBuffer  # type: ignore[misc]
    monkeypatch.setenv("ODYSSEY_SYNC_MARKER_RELEASE", "0")
    assert not _jitter.install() and aiortc.rtcrtpreceiver.JitterBuffer is JitterBuffer
    monkeypatch.delenv("ODYSSEY_SYNC_MARKER_RELEASE")
    assert _jitter.install() and aiortc.rtcrtpreceiver.JitterBuffer is MarkerJitterBuffer


def test_frames_stay_whole_and_in_order_end_to_end(server: LocalOdyssey) -> None:
    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20) as client:
        client.connect()
        assert aiortc.rtcrtpreceiver.JitterBuffer is MarkerJitterBuffer
        client.start_stream("A marker-bit test", portrait=False)
        client.wait_for_frame(timeout=10)
        numbers = []
        for frame in client.frames(limit=40, timeout=10):
            stamp = read_stamp(frame.data)
            assert stamp is not None, "every frame decodes whole"
            numbers.append(stamp.frame_number)
    assert numbers == sorted(numbers)
    gaps = sum(b - a - 1 for a, b in zip(numbers, numbers[1:]))
    assert gaps == 0, f"{gaps} frames lost on loopback"
