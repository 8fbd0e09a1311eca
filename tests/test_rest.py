"""RestClient and region probes against a scripted HTTP server on loopback.

The server here is a test double: each test scripts the statuses and bodies a
route answers, and the assertions check how the client maps them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import traceback
from typing import Any, Iterator

import aiohttp
import pytest
import requests
from scripted import Reply, ScriptedServer, serving

from odyssey_sync._regions import UNREACHABLE_MS, measure_region_latencies
from odyssey_sync.errors import (
    AccountSuspendedError,
    ConcurrentLimitReachedError,
    MonthlyLimitReachedError,
    OdysseyAuthError,
    OdysseyConnectionError,
    OdysseyError,
    OdysseyTimeoutError,
    OdysseyUsageError,
    RateLimitError,
    StreamDurationExceededError,
)
from odyssey_sync.rest import RestClient, SessionGrant
from odyssey_sync.types import StreamerCapabilities

pytestmark = pytest.mark.timeout(20)

KEY = "ody_test_secret_key_0123456789"
TOKEN = "access-token-that-must-stay-secret"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzZXNzaW9uX2lkIjoiczEifQ.c2ln"
GRANT = {
    "session_id": "s1",
    "signalling_url": "wss://signalling.example/",
    "capabilities": {"image_to_video": True},
    "streamer_id": "st-1",
    "model": "odyssey-2",
    "region": "eu",
}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with serving(TOKEN) as srv:
        yield srv


@pytest.fixture
def client(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[RestClient]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    rest = RestClient(server.url, KEY, timeout=5.0)
    try:
        yield rest
    finally:
        rest.close()


@pytest.fixture
def short_client(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[RestClient]:
    """A client whose default budget (1 s) is shorter than the queueing in the test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with RestClient(server.url, KEY, timeout=1.0) as rest:
        yield rest


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose kernel completes TCP handshakes but where nobody ever answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


# -- construction -------------------------------------------------------------------------


def test_repr_shows_only_the_url() -> None:
    rest = RestClient("https://api.example/", KEY)
    assert repr(rest) == "RestClient(api_url='https://api.example')"
    assert rest.api_url == "https://api.example"
    rest.close()


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"api_url": "api.example"}, ValueError),
        ({"api_url": 5}, TypeError),
        ({"api_key": 5}, TypeError),
        ({"timeout": 0}, ValueError),
        ({"timeout": float("inf")}, ValueError),
        ({"timeout": "5"}, TypeError),
    ],
)
def test_bad_arguments_fail_before_io(kwargs: dict[str, Any], exc: type[Exception]) -> None:
    args = {"api_url": "https://api.example", "api_key": KEY} | kwargs
    with pytest.raises(exc):
        RestClient(args.pop("api_url"), args.pop("api_key"), **args)


# -- access token -------------------------------------------------------------------------


def test_token_is_fetched_once_and_cached(server: ScriptedServer, client: RestClient) -> None:
    assert client.access_token() == TOKEN
    assert client.access_token() == TOKEN
    calls = server.seen("/auth/token")
    assert len(calls) == 1
    assert calls[0].body == {"api_key": KEY}
    assert "Authorization" not in calls[0].headers


def test_token_is_refreshed_when_it_expires_within_a_minute(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/auth/token", Reply(json={"access_token": "t1", "expires_in": 30}), Reply(json={"access_token": "t2", "expires_in": 3600}))
    assert client.access_token() == "t1"
    assert client.access_token() == "t2"
    assert client.access_token() == "t2"
    assert len(server.seen("/auth/token")) == 2


def test_token_is_shared_between_threads(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/auth/token", Reply(json={"access_token": TOKEN, "expires_in": 3600}, delay=0.2))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(client.access_token())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [TOKEN] * 4
    assert len(server.seen("/auth/token")) == 1


def test_no_key_says_how_to_provide_one(server: ScriptedServer) -> None:
    rest = RestClient(server.url, None)
    with pytest.raises(OdysseyAuthError, match="No API key: pass api_key= .*ODYSSEY_API_KEY"):
        rest.access_token()
    assert server.requests == []
    rest.close()


@pytest.mark.parametrize(
    ("status", "body", "pattern"),
    [
        (401, {"detail": "Invalid API key"}, r"API key was rejected \(401\): check the key"),
        (403, {"detail": "Key disabled by admin"}, r"denied \(403\): Key disabled by admin"),
        (422, {"detail": [{"loc": ["body", "api_key"], "msg": "bad", "input": KEY}]}, r"malformed \(422\).*'ody_'"),
    ],
)
def test_auth_token_errors(server: ScriptedServer, client: RestClient, status: int, body: Any, pattern: str) -> None:
    server.script("POST", "/auth/token", Reply(status, body))
    with pytest.raises(OdysseyAuthError, match=pattern):
        client.access_token()


def test_authenticated_calls_send_the_bearer_token(server: ScriptedServer, client: RestClient) -> None:
    server.script("GET", "/stream-recordings", Reply(json={"recordings": [], "total": 0}))
    assert client.request_json("GET", "/stream-recordings", params={"limit": 5}) == {"recordings": [], "total": 0}
    call = server.seen("/stream-recordings")[0]
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_refused_cached_token_is_replaced_once(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/auth/token", Reply(json={"access_token": "old", "expires_in": 3600}), Reply(json={"access_token": "new", "expires_in": 3600}))
    server.script("GET", "/thing", Reply(json={"ok": 1}), Reply(401, {"detail": "token revoked"}), Reply(json={"ok": 2}))
    assert client.request_json("GET", "/thing") == {"ok": 1}
    assert client.request_json("GET", "/thing") == {"ok": 2}
    assert [c.headers["Authorization"] for c in server.seen("/thing")] == ["Bearer old", "Bearer old", "Bearer new"]


def test_401_elsewhere_is_an_auth_error(server: ScriptedServer, client: RestClient) -> None:
    server.script("GET", "/thing", Reply(401, {"detail": "Not authorized"}))
    with pytest.raises(OdysseyAuthError, match=r"Not authorized \(401\) on GET /thing"):
        client.request_json("GET", "/thing")
    assert len(server.seen("/auth/token")) == 1


# -- usage errors (429) -------------------------------------------------------------------

USAGE_CASES = [
    ("MONTHLY_LIMIT_REACHED", MonthlyLimitReachedError, {"used_hours": 10, "limit_hours": 10, "reset_date": "2026-06-01"}, "Used 10 of 10 hours"),
    ("CONCURRENT_LIMIT_REACHED", ConcurrentLimitReachedError, {"active_count": 5, "limit": 5}, "5 of 5 concurrent"),
    ("STREAM_DURATION_EXCEEDED", StreamDurationExceededError, {"max_duration_seconds": 150}, "150 s per stream"),
    ("ACCOUNT_SUSPENDED", AccountSuspendedError, {"reason": "payment overdue"}, "payment overdue"),
    ("RATE_LIMITED", RateLimitError, {"retry_after_seconds": 12}, "Retry after 12 s"),
]


def _usage_body(code: str, details: dict[str, Any], form: str) -> Any:
    fields = {"message": f"{code} happened", "action": "Do the thing", "action_url": "https://portal.example", "details": details}
    if form == "detail":
        return {"detail": {"error": code, **fields}}
    if form == "top-level":
        return {"error": code, **fields}
    return {"detail": {"code": code, **fields}}


@pytest.mark.parametrize("form", ["detail", "top-level", "legacy-code"])
@pytest.mark.parametrize(("code", "cls", "details", "text"), USAGE_CASES, ids=[c[0] for c in USAGE_CASES])
def test_429_usage_bodies(
    server: ScriptedServer, client: RestClient, form: str, code: str, cls: type, details: dict[str, Any], text: str
) -> None:
    server.script("POST", "/sessions/request", Reply(429, _usage_body(code, details, form)))
    with pytest.raises(cls) as info:
        client.request_session()
    err = info.value
    assert type(err) is cls
    assert (err.code, err.message, err.action, err.action_url) == (code, f"{code} happened", "Do the thing", "https://portal.example")
    assert err.details == details
    assert text in str(err) and "Do the thing." in str(err)


@pytest.mark.parametrize(("method", "path"), [("POST", "/auth/token"), ("GET", "/regions-x"), ("POST", "/simulation-jobs")])
def test_429_maps_on_every_endpoint(server: ScriptedServer, client: RestClient, method: str, path: str) -> None:
    body = _usage_body("MONTHLY_LIMIT_REACHED", {"used_hours": 1, "limit_hours": 1}, "detail")
    server.script(method, path, Reply(429, body))
    with pytest.raises(MonthlyLimitReachedError):
        if path == "/auth/token":
            client.access_token()
        else:
            client.request_json(method, path, json={})


def test_429_without_usage_body_and_retry_after(server: ScriptedServer, client: RestClient) -> None:
    server.script("GET", "/thing", Reply(429, {"detail": "Slow down"}, headers={"Retry-After": "3"}))
    with pytest.raises(RateLimitError) as info:
        client.request_json("GET", "/thing")
    assert info.value.code == "RATE_LIMITED"
    assert info.value.retry_after == 3
    assert str(info.value) == "Slow down. Retry after 3 s. Wait and retry."


def test_429_without_usage_body(server: ScriptedServer, client: RestClient) -> None:
    server.script("GET", "/thing", Reply(429, text="<html>busy</html>"))
    with pytest.raises(OdysseyUsageError) as info:
        client.request_json("GET", "/thing")
    assert type(info.value) is OdysseyUsageError
    assert (info.value.code, info.value.message, info.value.action) == ("UNKNOWN", "Request limit exceeded", "Wait and retry")


def test_429_legacy_concurrent_text(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/sessions/request", Reply(429, {"detail": "Maximum concurrent sessions (5) reached"}))
    with pytest.raises(ConcurrentLimitReachedError) as info:
        client.request_session()
    assert info.value.details == {"limit": 5}


# -- session request and queueing ---------------------------------------------------------


def test_request_session_parses_the_grant(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/sessions/request", Reply(json=GRANT))
    grant = client.request_session({"eu": 20, "us": 9999})
    assert grant == SessionGrant("s1", "wss://signalling.example/", StreamerCapabilities(True), "st-1", "odyssey-2", "eu")
    assert server.seen("/sessions/request")[0].body == {"region_latencies": {"eu": 20, "us": 9999}}


def test_request_session_sends_empty_body_without_latencies(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/sessions/request", Reply(json={"session_id": "s1", "signalling_url": "ws://x"}))
    grant = client.request_session({})
    assert grant.capabilities.image_to_video is False
    assert (grant.streamer_id, grant.model, grant.region) == (None, None, None)
    assert server.seen("/sessions/request")[0].body == {}


def test_request_session_rejects_bad_latencies_before_io(server: ScriptedServer, client: RestClient) -> None:
    with pytest.raises(TypeError):
        client.request_session({"eu": 1.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        client.request_session(queue_timeout_s=-1)
    assert server.seen("/sessions/request") == []


def test_request_session_missing_fields(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/sessions/request", Reply(json={"session_id": "s1"}))
    with pytest.raises(OdysseyConnectionError, match="missing session_id or signalling_url"):
        client.request_session()


def test_503_is_polled_until_a_streamer_is_free(server: ScriptedServer, client: RestClient) -> None:
    busy = Reply(503, {"detail": "No available sessions"})
    server.script("POST", "/sessions/request", busy, busy, Reply(json=GRANT))
    started = time.monotonic()
    grant = client.request_session(queue_timeout_s=10)
    elapsed = time.monotonic() - started
    assert grant.session_id == "s1"
    assert len(server.seen("/sessions/request")) == 3
    assert 1.8 <= elapsed < 4


def test_503_with_zero_queue_timeout_fails_at_once(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/sessions/request", Reply(503, {"detail": "No available sessions"}))
    started = time.monotonic()
    with pytest.raises(OdysseyConnectionError, match="No streamer is free"):
        client.request_session(queue_timeout_s=0)
    assert time.monotonic() - started < 0.5
    assert len(server.seen("/sessions/request")) == 1


def test_503_forever_fails_after_the_queue_timeout(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/sessions/request", Reply(503, {"detail": "No available sessions"}))
    started = time.monotonic()
    with pytest.raises(OdysseyConnectionError, match=r"No streamer became free within 1.5 s; .*queue_timeout_s"):
        client.request_session(queue_timeout_s=1.5)
    assert 1.4 <= time.monotonic() - started < 2.5
    assert len(server.seen("/sessions/request")) >= 2


def test_default_budget_leaves_room_for_the_queue(server: ScriptedServer, short_client: RestClient) -> None:
    busy = Reply(503, {"detail": "No available sessions"})
    server.script("POST", "/sessions/request", busy, busy, Reply(json=GRANT))
    assert short_client.request_session(queue_timeout_s=5).session_id == "s1"


def test_queueing_is_bounded_by_the_call_timeout(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/sessions/request", Reply(503, {"detail": "No available sessions"}))
    started = time.monotonic()
    with pytest.raises(OdysseyTimeoutError):
        client.request_session(queue_timeout_s=30, timeout=1.2)
    assert 1.1 <= time.monotonic() - started < 2.0


# -- session token and other statuses -----------------------------------------------------


def test_session_token(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/sessions/token", Reply(json={"session_token": JWT}))
    assert client.session_token("s1") == (JWT, 600)
    assert server.seen("/sessions/token")[0].body == {"session_id": "s1"}


def test_session_token_404(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/sessions/token", Reply(404, {"detail": "Session not found"}))
    with pytest.raises(OdysseyConnectionError, match="Session not found or not yours"):
        client.session_token("s1")


def test_generic_404_uses_the_callers_error(server: ScriptedServer, client: RestClient) -> None:
    server.script("GET", "/recordings/abc", Reply(404, {"detail": "Recording not found"}))
    with pytest.raises(KeyError):
        client.request_json("GET", "/recordings/abc", not_found=lambda d: KeyError(d))  # type: ignore[arg-type,return-value]
    with pytest.raises(OdysseyError, match=r"Not found \(404\) on GET /recordings/abc: Recording not found"):
        client.request_json("GET", "/recordings/abc")


@pytest.mark.parametrize("status", [400, 422])
def test_client_errors_carry_the_server_detail(server: ScriptedServer, client: RestClient, status: int) -> None:
    server.script("POST", "/simulation-jobs", Reply(status, {"detail": "First entry must be start at 0"}))
    with pytest.raises(OdysseyError) as info:
        client.request_json("POST", "/simulation-jobs", json={"script": []})
    assert type(info.value) is OdysseyError
    assert str(info.value) == f"First entry must be start at 0 ({status} on POST /simulation-jobs)"


def test_403_elsewhere_carries_the_detail(server: ScriptedServer, client: RestClient) -> None:
    server.script("GET", "/simulation-jobs/j1", Reply(403, {"detail": "Not your job"}))
    with pytest.raises(OdysseyAuthError, match="Not your job"):
        client.request_json("GET", "/simulation-jobs/j1")


def test_5xx(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/sessions/request", Reply(500, {"detail": "database down"}))
    with pytest.raises(OdysseyConnectionError, match=r"^Odyssey API error 500 on POST /sessions/request: database down$"):
        client.request_session()
    server.script("GET", "/thing", Reply(502, text="<html>bad gateway</html>"))
    with pytest.raises(OdysseyConnectionError, match=r"^Odyssey API error 502 on GET /thing: Bad Gateway$"):
        client.request_json("GET", "/thing")


def test_redirects_are_not_followed(server: ScriptedServer, client: RestClient) -> None:
    server.script("POST", "/auth/token", Reply(307, {}, headers={"Location": "http://elsewhere.example/auth/token?x=1"}))
    with pytest.raises(OdysseyConnectionError, match="redirected .*set api_url"):
        client.access_token()
    assert len(server.requests) == 1


def test_non_json_success_body(server: ScriptedServer, client: RestClient) -> None:
    server.script("GET", "/thing", Reply(200, text="<html>hello</html>"))
    with pytest.raises(OdysseyConnectionError, match="non-JSON body"):
        client.request_json("GET", "/thing")


def test_204_gives_none(server: ScriptedServer, client: RestClient) -> None:
    server.script("DELETE", "/thing", Reply(204))
    assert client.request_json("DELETE", "/thing") is None


def test_unreachable_server(closed_port: int) -> None:
    rest = RestClient(f"http://127.0.0.1:{closed_port}", KEY, timeout=5)
    started = time.monotonic()
    with pytest.raises(OdysseyConnectionError, match=rf"^Could not reach http://127.0.0.1:{closed_port}: .*refused") as info:
        rest.access_token()
    assert time.monotonic() - started < 2
    assert isinstance(info.value.__cause__, requests.RequestException)
    rest.close()


def test_slow_server_times_out(server: ScriptedServer, client: RestClient) -> None:
    server.script("GET", "/slow", Reply(json={}, delay=3))
    client.access_token()
    started = time.monotonic()
    with pytest.raises(OdysseyTimeoutError, match="GET /slow timed out") as info:
        client.request_json("GET", "/slow", timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert isinstance(info.value, TimeoutError)


def test_trickling_body_times_out_at_the_deadline(server: ScriptedServer, client: RestClient) -> None:
    server.script("GET", "/trickle", Reply(json={"padding": "x" * 40}, trickle_s=0.1, chunk=1))
    client.access_token()
    started = time.monotonic()
    with pytest.raises(OdysseyTimeoutError, match="GET /trickle timed out"):
        client.request_json("GET", "/trickle", timeout=0.8)
    assert time.monotonic() - started < 1.3


def test_silent_server_times_out(silent_port: int) -> None:
    rest = RestClient(f"http://127.0.0.1:{silent_port}", KEY, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(OdysseyTimeoutError):
        rest.access_token()
    assert time.monotonic() - started < 1.2
    rest.close()


def test_closed_client_refuses_calls(server: ScriptedServer, client: RestClient) -> None:
    client.close()
    client.close()
    with pytest.raises(OdysseyConnectionError, match="closed"):
        client.access_token()


# -- regions and telemetry ----------------------------------------------------------------


def test_regions(server: ScriptedServer, client: RestClient) -> None:
    server.script("GET", "/regions", Reply(json={"regions": [{"id": "eu", "ping_url": "http://a/ping"}, {"id": 3}]}))
    assert client.regions() == [("eu", "http://a/ping")]


def test_regions_failure_is_empty(server: ScriptedServer, client: RestClient, closed_port: int) -> None:
    server.script("GET", "/regions", Reply(500, {"detail": "oops"}))
    assert client.regions() == []
    with RestClient(f"http://127.0.0.1:{closed_port}", KEY) as unreachable, RestClient(server.url, None) as keyless:
        assert unreachable.regions() == []
        assert keyless.regions() == []


def test_telemetry_is_unauthenticated_and_never_raises(server: ScriptedServer, client: RestClient, closed_port: int) -> None:
    server.script("POST", "/telemetry", Reply(500, {"detail": "nope"}))
    client.send_telemetry([{"event": "session_connecting"}])
    call = server.seen("/telemetry")[0]
    assert call.body == {"events": [{"event": "session_connecting"}]}
    assert "Authorization" not in call.headers
    with RestClient(f"http://127.0.0.1:{closed_port}", KEY) as unreachable:
        unreachable.send_telemetry([{"event": "x"}])


# -- secrets ------------------------------------------------------------------------------


def test_key_and_token_never_leak(
    server: ScriptedServer, client: RestClient, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    failures: list[BaseException] = []

    def attempt(call: Any) -> None:
        try:
            call()
        except OdysseyError as exc:
            failures.append(exc)

    echo = f"bad key {KEY} / token {TOKEN}"
    client.access_token()
    server.script("GET", "/e500", Reply(500, {"detail": echo}))
    server.script("GET", "/e400", Reply(400, {"detail": echo}))
    server.script("GET", "/e403", Reply(403, {"detail": echo}))
    server.script("GET", "/e429", Reply(429, {"detail": {"error": "RATE_LIMITED", "message": echo, "action": echo}}))
    server.script("GET", "/e429b", Reply(429, {"detail": echo}))
    for path in ("/e500", "/e400", "/e403", "/e429", "/e429b"):
        attempt(lambda path=path: client.request_json("GET", path))
    server.script("POST", "/auth/token", Reply(422, {"detail": [{"loc": ["body", "api_key"], "msg": echo, "input": KEY}]}))
    attempt(lambda: client.request_json("GET", "/e400", auth=False))
    with RestClient(server.url, KEY) as fresh:
        attempt(fresh.access_token)
    with RestClient(f"http://127.0.0.1:{closed_port}", KEY) as unreachable:
        attempt(unreachable.access_token)

    assert len(failures) == 8
    texts = [repr(client), repr(fresh), caplog.text]
    for exc in failures:
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    joined = "\n".join(texts)
    assert KEY not in joined
    assert TOKEN not in joined
    assert "<redacted>" in joined


# -- region pings -------------------------------------------------------------------------


def test_region_pings(server: ScriptedServer, silent_port: int, closed_port: int) -> None:
    server.script("GET", "/ping", Reply(json={}))
    server.script("GET", "/ping-404", Reply(404, {}))
    regions = [
        ("fast", f"{server.url}/ping"),
        ("silent", f"http://127.0.0.1:{silent_port}/ping"),
        ("refused", f"http://127.0.0.1:{closed_port}/ping"),
        ("not-2xx", f"{server.url}/ping-404"),
        ("garbage", "not a url"),
    ]

    async def measure() -> dict[str, int]:
        async with aiohttp.ClientSession() as session:
            return await measure_region_latencies(session, regions, deadline_s=1.0)

    started = time.monotonic()
    latencies = asyncio.run(measure())
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.6
    assert 0 <= latencies["fast"] < 500
    assert isinstance(latencies["fast"], int)
    for region in ("silent", "refused", "not-2xx", "garbage"):
        assert latencies[region] == UNREACHABLE_MS


def test_region_pings_return_early_when_all_answer(server: ScriptedServer) -> None:
    server.script("GET", "/ping", Reply(json={}))

    async def measure() -> dict[str, int]:
        async with aiohttp.ClientSession() as session:
            assert await measure_region_latencies(session, []) == {}
            return await measure_region_latencies(session, [("a", f"{server.url}/ping"), ("b", f"{server.url}/ping")])

    started = time.monotonic()
    latencies = asyncio.run(measure())
    assert time.monotonic() - started < 0.8
    assert set(latencies) == {"a", "b"} and all(v < 500 for v in latencies.values())
