"""Fast unit tests of the sans-I/O parts: protocol, errors, types, frames, dispatcher, loop."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time

import av
import numpy as np
import pytest

from odyssey_sync import (
    AccountSuspendedError,
    AdvancedConfig,
    ClientCredentials,
    ConcurrentLimitReachedError,
    MonthlyLimitReachedError,
    OdysseyConnectionError,
    OdysseyStreamError,
    OdysseyTimeoutError,
    OdysseyUsageError,
    RateLimitError,
    StreamDurationExceededError,
    VideoFrame,
    protocol,
)
from odyssey_sync._dispatch import Dispatcher
from odyssey_sync.errors import connection_error_from_reason, stream_error_from_reason, usage_error_from_body
from odyssey_sync.frames import FrameBuffer, check_timeout
from odyssey_sync.loop_thread import LoopThread


def make_jwt(payload: dict) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}.c2lnbmF0dXJl"


# -- protocol -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://sig.example/", "wss://sig.example/client/s%2F1?token=a.b%2Bc"),
        ("http://127.0.0.1:8080", "ws://127.0.0.1:8080/client/s%2F1?token=a.b%2Bc"),
        ("wss://sig.example", "wss://sig.example/client/s%2F1?token=a.b%2Bc"),
        ("sig.example:9000/", "ws://sig.example:9000/client/s%2F1?token=a.b%2Bc"),
    ],
)
def test_signaling_url_rules(given: str, expected: str) -> None:
    assert protocol.signaling_client_url(given, "s/1", "a.b+c") == expected


def test_ice_config_url_and_servers_keep_turn_credentials() -> None:
    assert protocol.ice_config_url("wss://sig.example/") == "https://sig.example/config"
    servers = protocol.parse_ice_servers(
        {"iceServers": [{"urls": ["turn:t.example"], "username": "u", "credential": "c"}, {"urls": "stun:s"}]}
    )
    assert servers[0] == {"urls": ["turn:t.example"], "username": "u", "credential": "c"}
    assert servers[1] == {"urls": "stun:s"}
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_ice_servers({"iceServers": [{"username": "x"}]})


def test_start_message_shape() -> None:
    message = protocol.stream_start("A cat", portrait=False)
    assert message == {
        "type": "interactive_stream_start",
        "prompt": "A cat",
        "portrait": False,
        "input_image_base64": None,
        "broadcast": False,
    }
    assert protocol.stream_start("x", portrait=True, bypass_prompt_expansion=False)["bypass_vlm_expansion"] is False


@pytest.mark.parametrize("raw", ["not json", "[1,2]", '{"no_type": 1}', b"\xff\xfe", '{"type": 5}'])
def test_decode_rejects_bad_messages(raw: object) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(raw)  # type: ignore[arg-type]


def test_scrub_and_redact_hide_tokens() -> None:
    assert "secret" not in protocol.redact_url("ws://h/client/s?token=secret")
    assert "secret" not in protocol.scrub_urls("failed ws://h/client/s?token=secret: refused")


def test_session_id_from_token() -> None:
    assert protocol.session_id_from_token(make_jwt({"session_id": "abc"})) == "abc"
    for bad in ("", "a.b", "a.!!!.c", make_jwt({"other": 1})):
        with pytest.raises(ValueError):
            protocol.session_id_from_token(bad)


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("MONTHLY_LIMIT_REACHED", MonthlyLimitReachedError),
        ("CONCURRENT_LIMIT_REACHED", ConcurrentLimitReachedError),
        ("STREAM_DURATION_EXCEEDED", StreamDurationExceededError),
        ("ACCOUNT_SUSPENDED", AccountSuspendedError),
        ("RATE_LIMITED", RateLimitError),
        ("SOMETHING_NEW", OdysseyUsageError),
    ],
)
@pytest.mark.parametrize("wrapped", [True, False])
@pytest.mark.parametrize("field", ["error", "code"])
def test_usage_bodies_map_to_classes(code: str, cls: type, wrapped: bool, field: str) -> None:
    inner = {field: code, "message": "Limit hit", "action": "Do something", "details": {"retry_after_seconds": 3}}
    error = usage_error_from_body({"detail": inner} if wrapped else inner)
    assert type(error) is cls
    assert error is not None and error.code == code and "Limit hit" in str(error) and "Do something" in str(error)


def test_non_usage_bodies() -> None:
    assert usage_error_from_body({"detail": "Too many"}) is None
    assert usage_error_from_body("text") is None


def test_rate_limit_retry_after() -> None:
    error = usage_error_from_body({"error": "RATE_LIMITED", "message": "Slow down", "details": {"retry_after_seconds": 2}})
    assert isinstance(error, RateLimitError) and error.retry_after == 2.0 and "2 s" in str(error)


@pytest.mark.parametrize(
    ("reason", "cls"),
    [
        ("quota_exceeded", MonthlyLimitReachedError),
        ("concurrent_limit_exceeded", ConcurrentLimitReachedError),
        ("session_timeout", StreamDurationExceededError),
        ("lease_denied", OdysseyStreamError),
        ("moderation_failed", OdysseyStreamError),
    ],
)
def test_stream_error_reasons(reason: str, cls: type) -> None:
    assert type(stream_error_from_reason(reason, "msg")) is cls


def test_signaling_reasons() -> None:
    for reason in protocol.SIGNALING_ERROR_REASONS + ("brand_new",):
        error = connection_error_from_reason(reason)
        assert isinstance(error, OdysseyConnectionError) and error.reason == reason and str(error)


# -- types ----------------------------------------------------------------------------------------


def test_credentials_round_trip_and_repr() -> None:
    token = make_jwt({"session_id": "sess-1"})
    camel = {"signalingUrl": "wss://s", "sessionToken": token, "expiresIn": 600, "capabilities": {"image_to_video": True}}
    creds = ClientCredentials.from_dict(camel)
    assert creds.session_id == "sess-1" and creds.capabilities and creds.capabilities.image_to_video
    assert ClientCredentials.from_dict(creds.to_dict()) == creds
    assert token not in repr(creds)


@pytest.mark.parametrize(
    "bad",
    [
        {"signaling_url": "wss://s", "expires_in": 600},
        {"signaling_url": "", "session_token": make_jwt({"session_id": "x"}), "expires_in": 600},
        {"signaling_url": "wss://s", "session_token": "not-a-jwt", "expires_in": 600},
        {"signaling_url": "wss://s", "session_token": make_jwt({"session_id": "x"}), "expires_in": "soon"},
        {"signaling_url": "wss://s", "session_token": make_jwt({"session_id": "x"}), "expires_in": 1.5},
    ],
)
def test_malformed_credentials(bad: dict) -> None:
    with pytest.raises(ValueError):
        ClientCredentials.from_dict(bad)


def test_advanced_config_backoff() -> None:
    config = AdvancedConfig()
    assert [config.retry_delay(n) for n in range(4)] == [1.0, 2.0, 2.0, 2.0]
    with pytest.raises(ValueError):
        AdvancedConfig(max_retries=-1)


# -- frames ---------------------------------------------------------------------------------------


def yuv_frame(width: int = 64, height: int = 32, value: int = 100) -> av.VideoFrame:
    rgb = np.full((height, width, 3), value, np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    frame.pts = 9000
    frame.time_base = __import__("fractions").Fraction(1, 90000)
    return frame


def test_video_frame_is_lazy_and_read_only() -> None:
    frame = VideoFrame(yuv_frame(), index=3, stream_id="s")
    assert not frame.is_converted
    assert frame.timestamp_ms == 100
    data = frame.data
    assert frame.is_converted and data.shape == (32, 64, 3) and not data.flags.writeable
    assert frame.data is data
    assert frame.to_ndarray("bgr24").shape == (32, 64, 3)
    with pytest.raises(AttributeError):
        frame.index = 4  # type: ignore[misc]


def test_buffer_drops_oldest_and_counts() -> None:
    buffer = FrameBuffer(3)
    for i in range(5):
        buffer.put(VideoFrame(np.zeros((2, 2, 3), np.uint8), index=i))
    assert buffer.dropped == 2
    assert [buffer.get(0).index for _ in range(3)] == [2, 3, 4]
    assert buffer.latest().index == 4
    with pytest.raises(OdysseyTimeoutError):
        buffer.get(0.05)


def test_buffer_close_wakes_waiters_with_the_error() -> None:
    buffer = FrameBuffer(2)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            buffer.get(None)
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    buffer.close(OdysseyConnectionError("gone"))
    waiter.join(2)
    assert not waiter.is_alive() and isinstance(outcome[0], OdysseyConnectionError)


def test_frames_iterator_follows_one_stream() -> None:
    buffer = FrameBuffer(10)
    buffer.set_stream("s1")
    for i in range(3):
        buffer.put(VideoFrame(np.zeros((2, 2, 3), np.uint8), index=i, stream_id="s1"))
    buffer.set_stream(None)
    buffer.put(VideoFrame(np.zeros((2, 2, 3), np.uint8), index=3, stream_id=None))
    assert [f.index for f in buffer.iterate(timeout=1)] == [0, 1, 2]


def test_wait_after_returns_first_frame_after_moment() -> None:
    buffer = FrameBuffer(10)
    buffer.put(VideoFrame(np.zeros((2, 2, 3), np.uint8), index=0, received_at=1.0))
    buffer.put(VideoFrame(np.zeros((2, 2, 3), np.uint8), index=1, received_at=2.0))
    buffer.put(VideoFrame(np.zeros((2, 2, 3), np.uint8), index=2, received_at=3.0))
    assert buffer.wait_after(1.5, timeout=0).index == 1


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_bad_timeouts(bad: float) -> None:
    with pytest.raises(ValueError):
        check_timeout(bad)
    with pytest.raises(TypeError):
        check_timeout("5")


# -- dispatcher and loop ----------------------------------------------------------------------------


def test_dispatcher_runs_in_order_and_contains_errors() -> None:
    seen: list[object] = []
    errors: list[tuple[BaseException, bool]] = []
    on_error = lambda e, fatal: errors.append((e, fatal))  # noqa: E731
    dispatcher = Dispatcher(lambda: on_error)  # the error handler in force, looked up when one is needed

    def boom() -> None:
        raise RuntimeError("handler bug")

    dispatcher.post(seen.append, 1)
    dispatcher.post(boom)
    dispatcher.post(seen.append, 2)
    dispatcher.stop(timeout=2)
    assert seen == [1, 2]
    assert isinstance(errors[0][0], RuntimeError) and errors[0][1] is False
    assert not dispatcher.thread.is_alive()


def test_dispatcher_bounds_pending_frames() -> None:
    gate = threading.Event()
    got: list[int] = []
    dispatcher = Dispatcher(max_pending_frames=2)
    dispatcher.post(gate.wait)
    for i in range(5):
        dispatcher.post_frame(got.append, i)
    gate.set()
    dispatcher.stop(timeout=2)
    assert got == [3, 4] and dispatcher.frames_dropped == 3


def test_loop_thread_runs_times_out_and_stops() -> None:
    loop = LoopThread("odyssey-test-loop")
    loop.start()

    async def answer() -> int:
        return 42

    async def forever() -> None:
        await asyncio.sleep(3600)

    assert loop.run(answer(), 5) == 42
    started = time.monotonic()
    with pytest.raises(OdysseyTimeoutError):
        loop.run(forever(), 0.2)
    assert time.monotonic() - started < 2
    thread = loop.thread
    loop.stop()
    assert thread is not None and not thread.is_alive()


def test_measured_fps_does_not_depend_on_buffer_size() -> None:
    buffer = FrameBuffer(2)
    for i in range(10):
        buffer.put(VideoFrame(np.zeros((2, 2, 3), np.uint8), index=i, received_at=100.0 + i * 0.05))
    assert buffer.measured_fps() == pytest.approx(20.0)
