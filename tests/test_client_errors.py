"""Every documented error path of the client ends in its documented exception type."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

from odyssey_sync import (
    AccountSuspendedError,
    AdvancedConfig,
    ClientCredentials,
    ConcurrentLimitReachedError,
    ConnectionStatus,
    MonthlyLimitReachedError,
    Odyssey,
    OdysseyAuthError,
    OdysseyConnectionError,
    OdysseyError,
    OdysseyStreamError,
    OdysseyUsageError,
    RateLimitError,
    StreamDurationExceededError,
)
from odyssey_sync.local import ApiKey, LocalOdyssey

NORMAL = "ody_test_normal_key_0001"
SUSPENDED = "ody_test_suspended_key_02"
MONTHLY = "ody_test_monthly_key_0003"

FAST_RETRIES = AdvancedConfig(max_retries=1, initial_retry_delay_ms=50, max_retry_delay_ms=50, queue_timeout_s=5)


@pytest.fixture(scope="module")
def limited() -> Iterator[LocalOdyssey]:
    """A server with one session per key and keys in every account state."""
    keys = [
        ApiKey(NORMAL, name="normal"),
        ApiKey(SUSPENDED, name="suspended", suspended=True),
        ApiKey(MONTHLY, name="monthly", monthly_limit_reached=True),
    ]
    with LocalOdyssey(api_keys=keys, max_concurrent_per_key=1) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(limited: LocalOdyssey) -> Iterator[None]:
    yield
    limited.faults.reset()
    assert limited.wait_until(lambda: limited.session_count() == 0, timeout=10)


def make_client(server: LocalOdyssey, key: str = NORMAL, **kwargs: object) -> Odyssey:
    kwargs.setdefault("advanced", FAST_RETRIES)
    return Odyssey(api_key=key, api_url=server.url, timeout=20, **kwargs)  # type: ignore[arg-type]


class Recorder:
    """Collects handler calls; ``disconnected`` is an Event."""

    def __init__(self) -> None:
        self.errors: list[tuple[BaseException, bool]] = []
        self.stream_errors: list[tuple[str, str]] = []
        self.statuses: list[ConnectionStatus] = []
        self.disconnected = threading.Event()
        self.disconnects = 0

    def on_disconnected(self) -> None:
        self.disconnects += 1
        self.disconnected.set()

    def handlers(self) -> dict[str, object]:
        return {
            "on_error": lambda e, fatal: self.errors.append((e, fatal)),
            "on_stream_error": lambda r, m: self.stream_errors.append((r, m)),
            "on_status_change": lambda s, m: self.statuses.append(s),
            "on_disconnected": self.on_disconnected,
        }


# -- REST and auth ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ody_not_a_known_key_123", "not-even-a-key", SUSPENDED])
def test_refused_keys_raise_auth_errors(limited: LocalOdyssey, key: str) -> None:
    with make_client(limited, key) as client:
        with pytest.raises(OdysseyAuthError) as info:
            client.connect()
        assert key not in str(info.value)
        assert client.current_status is ConnectionStatus.FAILED


def test_missing_key_says_what_to_do(limited: LocalOdyssey, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ODYSSEY_API_KEY", raising=False)
    with Odyssey(api_url=limited.url) as client:
        with pytest.raises(OdysseyError, match="ODYSSEY_API_KEY"):
            client.connect()


def test_monthly_limit_is_a_usage_error(limited: LocalOdyssey) -> None:
    with make_client(limited, MONTHLY) as client:
        with pytest.raises(MonthlyLimitReachedError):
            client.connect()


def test_concurrency_limit_is_a_usage_error(limited: LocalOdyssey) -> None:
    with make_client(limited) as first, make_client(limited) as second:
        first.connect()
        with pytest.raises(ConcurrentLimitReachedError) as info:
            second.connect()
        assert info.value.details.get("limit") == 1
        first.disconnect()
        assert limited.wait_until(lambda: limited.session_count() == 0, timeout=10)
        second.connect()  # the slot is free again and the client is reusable
        assert second.is_connected


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("MONTHLY_LIMIT_REACHED", MonthlyLimitReachedError),
        ("CONCURRENT_LIMIT_REACHED", ConcurrentLimitReachedError),
        ("STREAM_DURATION_EXCEEDED", StreamDurationExceededError),
        ("ACCOUNT_SUSPENDED", AccountSuspendedError),
        ("RATE_LIMITED", RateLimitError),
    ],
)
@pytest.mark.parametrize("wrapped", [True, False])
def test_each_429_code(limited: LocalOdyssey, code: str, cls: type, wrapped: bool) -> None:
    limited.faults.usage_error = code
    limited.faults.usage_error_wrapped = wrapped
    recorder = Recorder()
    with make_client(limited) as client:
        with pytest.raises(cls) as info:
            client.connect(**recorder.handlers())
        assert isinstance(info.value, OdysseyUsageError) and info.value.code == code
        assert client.current_status is ConnectionStatus.FAILED
    assert any(fatal for _, fatal in recorder.errors)


def test_503_is_polled_until_a_streamer_frees(limited: LocalOdyssey) -> None:
    limited.faults.session_request_503 = 2
    with make_client(limited) as client:
        client.connect()
        assert client.is_connected


def test_503_with_zero_queue_timeout_fails_at_once(limited: LocalOdyssey) -> None:
    limited.faults.session_request_503 = -1
    config = AdvancedConfig(queue_timeout_s=0)
    with make_client(limited, advanced=config) as client:
        with pytest.raises(OdysseyConnectionError, match="queue_timeout_s"):
            client.connect()


def test_503_until_queue_timeout(limited: LocalOdyssey) -> None:
    limited.faults.session_request_503 = -1
    config = AdvancedConfig(queue_timeout_s=1.5)
    with make_client(limited, advanced=config) as client:
        with pytest.raises(OdysseyConnectionError):
            client.connect()


def test_bad_and_expired_session_tokens(limited: LocalOdyssey) -> None:
    with make_client(limited) as backend:
        good = backend.create_client_credentials()
    tampered = ClientCredentials(good.signaling_url, good.session_token[:-4] + "AAAA", capabilities=good.capabilities)
    expired = ClientCredentials(good.signaling_url, limited.mint_session_token(good.session_id, lifetime_s=-10))
    for credentials in (tampered, expired):
        with Odyssey(api_url=limited.url, timeout=20, advanced=FAST_RETRIES) as client:
            with pytest.raises(OdysseyAuthError, match="token"):
                client.connect_with_credentials(credentials)
            assert good.session_token not in repr(client)
    with Odyssey(api_url=limited.url, timeout=20) as client:  # the good one still works
        client.connect_with_credentials(good)
        assert client.is_connected


def test_unreachable_server(limited: LocalOdyssey) -> None:
    with Odyssey(api_key=NORMAL, api_url="http://127.0.0.1:9", timeout=5) as client:
        with pytest.raises(OdysseyConnectionError, match="127.0.0.1:9"):
            client.connect()


# -- signaling and stream errors ------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["streamer_not_available", "streamer_disconnected", "duration_limit_reached", "unknown"])
def test_signaling_error_reasons_fail_the_connection(limited: LocalOdyssey, reason: str) -> None:
    recorder = Recorder()
    with make_client(limited) as client:
        client.connect(**recorder.handlers())
        client.start_stream("A park", portrait=False)
        limited.faults.send_signaling_error(reason)
        with pytest.raises(OdysseyConnectionError) as info:
            for _ in client.frames(timeout=10):
                pass
        assert info.value.reason == reason
        assert recorder.disconnected.wait(5)
        assert client.current_status is ConnectionStatus.FAILED
        assert [fatal for _, fatal in recorder.errors] == [True]
        assert recorder.disconnects == 1
        with pytest.raises(OdysseyStreamError):
            client.interact("after the failure")
        client.connect()  # reusable
        assert client.is_connected


@pytest.mark.parametrize(
    ("reason", "cls"),
    [
        ("quota_exceeded", MonthlyLimitReachedError),
        ("concurrent_limit_exceeded", ConcurrentLimitReachedError),
        ("lease_denied", OdysseyStreamError),
        ("moderation_failed", OdysseyStreamError),
    ],
)
@pytest.mark.parametrize("during", ["start", "interact"])
def test_stream_error_reasons(limited: LocalOdyssey, reason: str, cls: type, during: str) -> None:
    recorder = Recorder()
    with make_client(limited) as client:
        client.connect(**recorder.handlers())
        if during == "start":
            limited.faults.stream_error_on_start = reason
            with pytest.raises(cls):
                client.start_stream("A desert", portrait=False)
        else:
            client.start_stream("A desert", portrait=False)
            limited.faults.stream_error_on_interact = reason
            with pytest.raises(cls):
                client.interact("A sandstorm")
        assert client.is_connected
        client.disconnect()
    assert recorder.stream_errors and recorder.stream_errors[0][0] == reason


@pytest.mark.parametrize("during", ["start", "interact"])
def test_session_timeout_reason_fails_the_connection(limited: LocalOdyssey, during: str) -> None:
    recorder = Recorder()
    with make_client(limited) as client:
        client.connect(**recorder.handlers())
        if during == "start":
            limited.faults.stream_error_on_start = "session_timeout"
            with pytest.raises(StreamDurationExceededError):
                client.start_stream("A glacier", portrait=False)
        else:
            client.start_stream("A glacier", portrait=False)
            limited.faults.stream_error_on_interact = "session_timeout"
            with pytest.raises(StreamDurationExceededError):
                client.interact("It melts")
        assert recorder.disconnected.wait(5)
        assert client.current_status is ConnectionStatus.FAILED


def test_stream_duration_limit(limited: LocalOdyssey) -> None:
    with LocalOdyssey(max_stream_seconds=1.0) as short:
        recorder = Recorder()
        with Odyssey(api_key=short.api_key, api_url=short.url, timeout=20) as client:
            client.connect(**recorder.handlers())
            client.start_stream("A short film", portrait=False)
            with pytest.raises(OdysseyConnectionError) as info:
                while True:
                    client.get_frame(timeout=10)
            assert isinstance(info.value.__cause__, StreamDurationExceededError)
            assert recorder.disconnected.wait(5)
            assert client.current_status is ConnectionStatus.FAILED
            assert recorder.stream_errors[0][0] == "session_timeout"
            assert short.wait_until(lambda: short.session_count() == 0, timeout=10)


@pytest.mark.parametrize("fault", ["drop_signaling", "fail_peer"])
def test_lost_connection(limited: LocalOdyssey, fault: str) -> None:
    recorder = Recorder()
    with make_client(limited) as client:
        client.connect(**recorder.handlers())
        getattr(limited.faults, fault)()
        with pytest.raises(OdysseyConnectionError):
            while True:
                client.get_frame(timeout=10)
        assert recorder.disconnected.wait(5)
        assert client.current_status is ConnectionStatus.FAILED


def test_non_json_channel_message_is_reported_not_fatal(limited: LocalOdyssey) -> None:
    recorder = Recorder()
    with make_client(limited) as client:
        client.connect(**recorder.handlers())
        client.start_stream("A river", portrait=False)
        limited.faults.send_raw_data("this is not json")
        assert client.interact("The river floods")  # replies after the bad one still arrive
        client.disconnect()
    assert [fatal for _, fatal in recorder.errors] == [False]


def test_a_raising_frame_handler_does_not_stop_delivery(limited: LocalOdyssey) -> None:
    seen: list[int] = []
    enough = threading.Event()
    errors: list[BaseException] = []

    def on_frame(frame: object) -> None:
        seen.append(1)
        if len(seen) >= 10:
            enough.set()
        raise RuntimeError("bug in user code")

    with make_client(limited) as client:
        client.connect(on_video_frame=on_frame, on_error=lambda e, fatal: errors.append(e))
        assert enough.wait(10)
        assert client.get_frame(timeout=5)
    assert all(isinstance(e, RuntimeError) for e in errors) and len(errors) >= 10
