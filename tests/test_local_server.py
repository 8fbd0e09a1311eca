"""The local server against a bare protocol client (tests/raw_client.py), without the SDK.

REST status codes and bodies, JWT checks before the upgrade, the interactive
sequence over real WebRTC on loopback, limits, fault knobs and recovery.
Waits are on server conditions (``wait_until``), queues and futures; the only
timed waits prove an absence (no frame while video is stalled).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any, Awaitable, Callable, Iterator

import aiohttp
import attrs
import av
import jwt
import numpy as np
import pytest
import requests

from odyssey_sync import protocol
from odyssey_sync.local import ApiKey, LocalOdyssey
from odyssey_sync.local.streamer import MAX_APPLIED_PROMPT_BYTES, expand_prompt
from odyssey_sync.local.world import World

try:
    from .raw_client import RawClient, RawConnection, frame_luma, frame_stamp
except ImportError:  # tests/ collected as a plain directory rather than a package
    from raw_client import RawClient, RawConnection, frame_luma, frame_stamp  # type: ignore[no-redef]

pytestmark = pytest.mark.timeout(60)

MAIN = ApiKey("ody_test_main", name="main")
PRIVILEGED = ApiKey("ody_test_privileged", name="privileged", bypass_privilege=True)
SUSPENDED = ApiKey("ody_test_suspended", name="suspended", suspended=True)
MONTHLY = ApiKey("ody_test_monthly", name="monthly", monthly_limit_reached=True)
OTHER = ApiKey("ody_test_other", name="other")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared() -> Iterator[LocalOdyssey]:
    with LocalOdyssey(api_keys=[MAIN, PRIVILEGED, SUSPENDED, MONTHLY, OTHER], max_concurrent_per_key=50) as server:
        yield server


@pytest.fixture
def local(shared: LocalOdyssey) -> Iterator[LocalOdyssey]:
    """The shared server with its knobs off; every connection must be gone after the test."""
    shared.faults.reset()
    yield shared
    shared.faults.reset()
    assert shared.wait_until(lambda: not any(s.connected for s in shared.sessions()), 10), "a connection outlived its test"


def run(coro: Awaitable[Any], timeout: float = 45.0) -> Any:
    """Run a test scenario on a fresh event loop (the server has its own, on its thread)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def wait_until(server: LocalOdyssey, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    assert await asyncio.to_thread(server.wait_until, predicate, timeout), "server condition not reached"


def access_token(server: LocalOdyssey, key: str | None = None) -> str:
    response = requests.post(f"{server.url}/auth/token", json={"api_key": key or server.api_key}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def request_session(server: LocalOdyssey, token: str) -> requests.Response:
    return requests.post(f"{server.url}/sessions/request", json={}, headers=bearer(token), timeout=10)


def record(server: LocalOdyssey, session_id: str) -> Any:
    snapshot = server.session(session_id)
    assert snapshot is not None
    return snapshot


def png_data_url(rgb: np.ndarray) -> str:
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb24"
    packets = codec.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")) + codec.encode(None)
    return "data:image/png;base64," + base64.b64encode(b"".join(bytes(p) for p in packets)).decode()


def luma_error(frame: av.VideoFrame, world: World, frame_number: int) -> float:
    """Mean absolute luma difference, below the stamp, between a received frame and ``world``'s render."""
    expected = world.render_planes(frame_number)[: world.height]
    got = frame_luma(frame)
    return float(np.abs(got[64:].astype(np.int16) - expected[64:].astype(np.int16)).mean())


async def connect(server: LocalOdyssey, key: str | None = None, **kwargs: Any) -> tuple[RawClient, RawConnection]:
    client = RawClient(server.url, key or server.api_key)
    try:
        return client, await client.connect(**kwargs)
    except BaseException:
        await client.close()
        raise


async def leave(client: RawClient, conn: RawConnection, *, clean: bool = True) -> None:
    await conn.close(clean=clean)
    await client.close()


# -- REST -------------------------------------------------------------------------------------


def test_auth_token_status_codes(local: LocalOdyssey) -> None:
    url = f"{local.url}/auth/token"
    for body in ({}, {"api_key": 123}, {"api_key": None}, {"api_key": "sk_not_odyssey"}):
        response = requests.post(url, json=body, timeout=10)
        assert response.status_code == 422, body
        assert "api_key" in response.json()["detail"]
    response = requests.post(url, json={"api_key": "ody_unknown"}, timeout=10)
    assert response.status_code == 401 and response.json()["detail"]
    response = requests.post(url, json={"api_key": SUSPENDED.key}, timeout=10)
    assert response.status_code == 403 and response.json() == {"detail": "API key access denied"}
    response = requests.post(url, json={"api_key": MAIN.key}, timeout=10)
    assert response.status_code == 200
    assert set(response.json()) == {"access_token", "expires_in"} and response.json()["expires_in"] == 3600


def test_bearer_is_required(local: LocalOdyssey) -> None:
    calls = [("GET", "/regions", None), ("POST", "/sessions/request", {}), ("POST", "/sessions/token", {"session_id": "x"})]
    for headers in ({}, bearer("not-a-token"), {"Authorization": f"Basic {access_token(local)}"}):
        for method, path, body in calls:
            response = requests.request(method, f"{local.url}{path}", json=body, headers=headers, timeout=10)
            assert response.status_code == 401, (path, headers)
            assert response.json()["detail"]


def test_rest_bodies(local: LocalOdyssey) -> None:
    token = access_token(local)
    regions = requests.get(f"{local.url}/regions", headers=bearer(token), timeout=10).json()
    assert regions == {"regions": [{"id": "local", "ping_url": f"{local.url}/ping"}]}
    assert requests.get(regions["regions"][0]["ping_url"], timeout=10).status_code == 200
    assert requests.get(f"{local.url}/config", timeout=10).json() == {"iceServers": []}
    assert requests.post(f"{local.url}/telemetry", json={"events": [{"x": 1}]}, timeout=10).status_code == 204

    response = requests.post(
        f"{local.url}/sessions/request", json={"region_latencies": {"local": 3}}, headers=bearer(token), timeout=10
    )
    assert response.status_code == 200
    info = response.json()
    assert set(info) == {"session_id", "signalling_url", "capabilities", "streamer_id", "model", "region"}
    assert info["signalling_url"] == local.url.replace("http://", "ws://")
    assert info["capabilities"] == {"image_to_video": True}
    assert info["model"] == "odyssey-local" and info["region"] == "local"

    for _ in range(2):  # may be called more than once per session
        minted = requests.post(
            f"{local.url}/sessions/token", json={"session_id": info["session_id"]}, headers=bearer(token), timeout=10
        )
        assert minted.status_code == 200 and minted.json()["expires_in"] == 600
        claims = protocol.jwt_payload(minted.json()["session_token"])
        assert claims["session_id"] == info["session_id"] and claims["exp"] - claims["iat"] == 600

    unknown = requests.post(f"{local.url}/sessions/token", json={"session_id": "nope"}, headers=bearer(token), timeout=10)
    assert unknown.status_code == 404
    other = access_token(local, OTHER.key)
    not_mine = requests.post(
        f"{local.url}/sessions/token", json={"session_id": info["session_id"]}, headers=bearer(other), timeout=10
    )
    assert not_mine.status_code == 404 and not_mine.json()["detail"]


def test_usage_errors_and_503_knobs(local: LocalOdyssey) -> None:
    token = access_token(local)
    monthly = request_session(local, access_token(local, MONTHLY.key))
    assert monthly.status_code == 429
    assert monthly.json()["detail"]["error"] == "MONTHLY_LIMIT_REACHED"
    assert set(monthly.json()["detail"]["details"]) == {"used_hours", "limit_hours", "reset_date"}

    local.faults.usage_error = "RATE_LIMITED"
    wrapped = request_session(local, token)
    assert wrapped.status_code == 429
    assert wrapped.json()["detail"]["error"] == "RATE_LIMITED" and wrapped.json()["detail"]["message"]
    local.faults.usage_error, local.faults.usage_error_wrapped = "CONCURRENT_LIMIT_REACHED", False
    top_level = request_session(local, token)
    assert top_level.status_code == 429
    assert top_level.json()["error"] == "CONCURRENT_LIMIT_REACHED" and "detail" not in top_level.json()
    assert request_session(local, token).status_code == 200  # one-shot

    local.faults.session_request_503 = 2
    statuses = [request_session(local, token).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    local.faults.session_request_503 = -1
    busy = [request_session(local, token) for _ in range(3)]
    assert [r.status_code for r in busy] == [503] * 3 and busy[0].json() == {"detail": "No available sessions"}
    local.faults.session_request_503 = 0
    assert request_session(local, token).status_code == 200


def test_concurrency_capacity_and_unclaimed_release() -> None:
    first, second = ApiKey("ody_test_first", name="first"), ApiKey("ody_test_second", name="second")
    with LocalOdyssey(api_keys=[first, second], max_concurrent_per_key=2, capacity=3, unclaimed_session_timeout_s=1.0) as server:
        a, b = access_token(server, first.key), access_token(server, second.key)
        assert [request_session(server, a).status_code for _ in range(2)] == [200, 200]
        refused = request_session(server, a)
        assert refused.status_code == 429
        assert refused.json() == {
            "detail": {
                "error": "CONCURRENT_LIMIT_REACHED",
                "message": "Maximum concurrent sessions (2) reached",
                "action": "End an active session and try again",
                "details": {"active_count": 2, "limit": 2},
            }
        }
        assert request_session(server, b).status_code == 200
        full = request_session(server, b)
        assert full.status_code == 503 and full.json() == {"detail": "No available sessions"}
        assert server.session_count() == 3 and server.session_count("first") == 2 and server.session_count(second) == 1

        # Never claimed by a socket: released after the unclaimed timeout.
        assert server.wait_until(lambda: server.session_count() == 0, 10)
        assert request_session(server, a).status_code == 200


def test_body_limit_and_malformed_json() -> None:
    with LocalOdyssey(max_body_bytes=1024) as server:
        url = f"{server.url}/auth/token"
        too_big = requests.post(url, data=b"{" + b" " * 4096 + b"}", headers={"Content-Type": "application/json"}, timeout=10)
        assert too_big.status_code == 413 and "1024" in too_big.json()["detail"]
        chunked = requests.post(url, data=iter([b"{", b" " * 4096, b"}"]), timeout=10)
        assert chunked.status_code == 413 and chunked.json()["detail"]
        bad = requests.post(url, data=b'{"api_key": ', headers={"Content-Type": "application/json"}, timeout=10)
        assert bad.status_code == 400 and "JSON" in bad.json()["detail"]
        not_object = requests.post(url, json=["ody_x"], timeout=10)
        assert not_object.status_code == 422 and "object" in not_object.json()["detail"]
        assert requests.get(f"{server.url}/nowhere", timeout=10).json() == {"detail": "Not Found"}
        assert requests.post(url, json={"api_key": server.api_key}, timeout=10).status_code == 200


def test_cors(local: LocalOdyssey) -> None:
    origin = "http://app.example:3000"
    preflight = requests.options(
        f"{local.url}/sessions/request",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=10,
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed

    denied = requests.get(f"{local.url}/regions", headers={"Origin": origin}, timeout=10)
    assert denied.status_code == 401 and denied.headers["Access-Control-Allow-Origin"] == origin
    assert requests.get(f"{local.url}/ping", timeout=10).headers["Access-Control-Allow-Origin"] == "*"


# -- signaling before the upgrade -------------------------------------------------------------


def test_signaling_refuses_bad_tokens_before_upgrading(local: LocalOdyssey) -> None:
    token = access_token(local)
    first, second = (request_session(local, token).json()["session_id"] for _ in range(2))
    ws_base = protocol.signaling_ws_base(local.url)

    async def handshake_status(session_id: str, jwt_token: str | None) -> int:
        url = f"{ws_base}/client/{session_id}" + ("" if jwt_token is None else f"?token={jwt_token}")
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(url):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    forged = jwt.encode({"session_id": first, "iat": int(time.time()), "exp": int(time.time()) + 600}, "x" * 32)

    async def scenario() -> None:
        assert await handshake_status(first, None) == 401
        assert await handshake_status(first, "not.a.jwt") == 401
        assert await handshake_status(first, forged) == 401
        assert await handshake_status(first, local.mint_session_token(first, lifetime_s=-5)) == 401
        assert await handshake_status(first, local.mint_session_token(second)) == 401
        assert await handshake_status("unknown-session", local.mint_session_token("unknown-session")) == 404
        plain = requests.get(f"{local.url}/client/{first}", params={"token": local.mint_session_token(first)}, timeout=10)
        assert plain.status_code == 400 and plain.json()["detail"]

        client = RawClient(local.url, local.api_key)
        client.access_token = token
        conn = RawConnection(client, {"session_id": first, "signalling_url": ws_base}, local.mint_session_token(first))
        try:
            await conn.open()
            assert await handshake_status(first, local.mint_session_token(first)) == 409
        finally:
            await leave(client, conn)

    run(scenario())
    assert local.wait_until(lambda: record(local, first).held is False, 10)


# -- the interactive sequence -------------------------------------------------------------------


def test_interactive_sequence(local: LocalOdyssey, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="odyssey_sync")
    first_prompt, second_prompt = "a red forest at dawn", "a frozen blue ocean"
    secrets: list[str] = [local.api_key]

    async def scenario() -> None:
        client, conn = await connect(local)
        secrets.extend([client.access_token or "", conn.token])
        assert conn.connect_seconds is not None and conn.connect_seconds < 5
        assert "m=video" in conn.offer_sdp and "m=application" in conn.offer_sdp  # the server offered
        try:
            idle = [await conn.next_frame() for _ in range(3)]
            assert all((f.width, f.height) == protocol.LANDSCAPE for f in idle)
            numbers = [frame_stamp(f).frame_number for f in idle]
            assert numbers == sorted(numbers) and len(set(numbers)) == 3

            conn.send(protocol.stream_start(first_prompt, portrait=True))
            started = await conn.next_message()
            assert started["type"] == "stream_started" and started["stream_id"]
            assert started["applied_prompt"] == expand_prompt(first_prompt) != first_prompt
            stream = record(local, conn.session_id).active_stream
            assert stream.stream_id == started["stream_id"] and stream.portrait
            shown_at = stream.prompts[0].frame_number
            before, before_stamp = await conn.fresh_frame(shown_at)
            assert (before.width, before.height) == protocol.PORTRAIT

            conn.send(protocol.update(second_prompt))
            acknowledged = await conn.next_message()
            assert acknowledged == {"type": "update_acknowledged", "prompt": expand_prompt(second_prompt)}
            stream = record(local, conn.session_id).active_stream
            assert [p.prompt for p in stream.prompts] == [first_prompt, second_prompt]
            updated_at = stream.prompts[1].frame_number
            assert updated_at > shown_at
            after, after_stamp = await conn.fresh_frame(updated_at)
            assert (after.width, after.height) == protocol.PORTRAIT

            # The picture is the world of each prompt: each frame matches its own prompt's render.
            old_world, new_world = World(*protocol.PORTRAIT), World(*protocol.PORTRAIT)
            old_world.set_prompt(first_prompt)
            new_world.set_prompt(second_prompt)
            assert luma_error(before, old_world, before_stamp.frame_number) * 2 < luma_error(
                before, new_world, before_stamp.frame_number
            )
            assert luma_error(after, new_world, after_stamp.frame_number) * 2 < luma_error(
                after, old_world, after_stamp.frame_number
            )

            conn.send(protocol.stream_end())
            assert await conn.next_message() == {"type": "stream_ended"}
            ended = record(local, conn.session_id).streams[-1]
            assert ended.end_reason == "ended" and ended.ended_at is not None
            last = after_stamp.frame_number
            while True:  # back to the landscape idle scene, numbering continues
                frame, stamp = await conn.fresh_frame(last + 1)
                assert stamp.frame_number > last
                last = stamp.frame_number
                if (frame.width, frame.height) == protocol.LANDSCAPE:
                    break
        finally:
            await leave(client, conn)
        await wait_until(local, lambda: not record(local, conn.session_id).held)

    run(scenario())
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "session" in logged
    for secret in secrets:
        assert secret and secret not in logged


def test_image_start_over_websocket_is_answered_once_the_channel_opens(local: LocalOdyssey) -> None:
    red = np.zeros((360, 640, 3), dtype=np.uint8)
    red[:] = (210, 30, 30)
    start = protocol.stream_start("", portrait=False, image_data_url=png_data_url(red))
    session_ids: list[str] = []

    async def started_before_answer() -> None:
        # No answer yet, so no data channel can be open: the reply must be queued.
        await wait_until(local, lambda: any(s.active_stream for s in local.sessions() if s.connected))

    async def scenario() -> None:
        client, conn = await connect(local, before_answer=[start], on_offer=started_before_answer)
        session_ids.append(conn.session_id)
        try:
            started = await conn.next_message()
            assert started["type"] == "stream_started" and started["applied_prompt"] == expand_prompt("")
            stream = record(local, conn.session_id).active_stream
            assert stream.has_image and not stream.portrait
            frame, _ = await conn.fresh_frame(stream.prompts[0].frame_number)
            assert (frame.width, frame.height) == protocol.LANDSCAPE
            v_plane = frame.to_ndarray(format="yuv420p")[frame.height + frame.height // 4 :]
            assert v_plane[v_plane.shape[0] // 2 :].mean() > 170  # red dominates (neutral chroma is 128)
        finally:
            await leave(client, conn)

    run(scenario())


def test_stream_message_errors(local: LocalOdyssey) -> None:
    async def scenario() -> None:
        client, conn = await connect(local)
        try:
            conn.send(protocol.update("too early"))
            assert (await conn.next_message())["reason"] == "no_active_stream"
            conn.send(protocol.stream_start("x", portrait=True, bypass_prompt_expansion=True))
            denied = await conn.next_message()
            assert denied["type"] == "interactive_stream_error" and denied["reason"] == "permission_denied"
            for image in ("data:image/png;base64,AAAA", "/etc/passwd"):
                conn.send(protocol.stream_start("x", portrait=True, image_data_url=image))
                refused = await conn.next_message()
                assert refused["reason"] == "invalid_image" and refused["message"]
            conn.send(protocol.stream_start("a castle", portrait=False))
            assert (await conn.next_message())["type"] == "stream_started"
            conn.send(protocol.stream_start("another", portrait=False))
            busy = await conn.next_message()
            assert busy["reason"] == "stream_already_active" and "end" in busy["message"]
            conn.send(protocol.stream_end())
            assert await conn.next_message() == {"type": "stream_ended"}
            conn.send(protocol.stream_end())
            assert await conn.next_message() == {"type": "stream_ended"}
        finally:
            await leave(client, conn)

        client, conn = await connect(local, PRIVILEGED.key)
        try:
            conn.send(protocol.stream_start("exactly this", portrait=False, bypass_prompt_expansion=True))
            assert (await conn.next_message())["applied_prompt"] == "exactly this"
            conn.send(protocol.update("and this"))
            assert await conn.next_message() == {"type": "update_acknowledged", "prompt": "and this"}
        finally:
            await leave(client, conn)

    run(scenario())


# -- limits ---------------------------------------------------------------------------------------


def test_stream_duration_limit_and_image_capability() -> None:
    with LocalOdyssey(max_stream_seconds=1.5, image_to_video=False) as server:
        token = access_token(server)
        assert request_session(server, token).json()["capabilities"] == {"image_to_video": False}

        async def scenario() -> None:
            client, conn = await connect(server)
            try:
                conn.send(protocol.stream_start("x", portrait=False, image_data_url="data:image/png;base64,AAAA"))
                assert (await conn.next_message())["reason"] == "image_to_video_unsupported"
                conn.send(protocol.stream_start("a short stream", portrait=False))
                assert (await conn.next_message())["type"] == "stream_started"
                started = time.monotonic()
                timeout = await conn.next_message(timeout=10)
                elapsed = time.monotonic() - started
                assert timeout == {
                    "type": "interactive_stream_error",
                    "reason": "session_timeout",
                    "message": protocol.SESSION_TIMEOUT_MESSAGE,
                }
                assert 1.0 < elapsed < 6.0
                assert await conn.wait_closed() == 1000
                await wait_until(server, lambda: not record(server, conn.session_id).held)
                assert record(server, conn.session_id).streams[-1].end_reason == "session_timeout"
            finally:
                await leave(client, conn)

        run(scenario())


def test_connection_duration_limit() -> None:
    with LocalOdyssey(max_connection_seconds=1.0) as server:

        async def scenario() -> None:
            client, conn = await connect(server)
            try:
                assert await conn.next_signaling() == {"type": "error", "reason": "duration_limit_reached"}
                assert await conn.wait_closed() in protocol.NORMAL_CLOSE_CODES
                await wait_until(server, lambda: server.session_count() == 0)
            finally:
                await leave(client, conn)

        run(scenario())


# -- fault knobs ------------------------------------------------------------------------------------


def test_stream_fault_knobs(local: LocalOdyssey) -> None:
    async def scenario() -> None:
        client, conn = await connect(local)
        try:
            local.faults.stream_error_on_start = "lease_denied"
            conn.send(protocol.stream_start("a", portrait=False))
            assert (await conn.next_message())["reason"] == "lease_denied"
            conn.send(protocol.stream_start("a", portrait=False))
            assert (await conn.next_message())["type"] == "stream_started"

            local.faults.stream_error_on_interact = "quota_exceeded"
            conn.send(protocol.update("b"))
            assert (await conn.next_message())["reason"] == "quota_exceeded"
            conn.send(protocol.update("c"))
            assert (await conn.next_message())["type"] == "update_acknowledged"

            local.faults.ignore_message_types = {protocol.UPDATE}
            conn.send(protocol.update("never answered"))
            conn.send(protocol.stream_end())
            assert await conn.next_message() == {"type": "stream_ended"}  # the update's reply never came
            local.faults.ignore_message_types = set()

            local.faults.stream_error_on_start = "session_timeout"
            conn.send(protocol.stream_start("a", portrait=False))
            assert (await conn.next_message())["reason"] == "session_timeout"
            assert await conn.wait_closed() == 1000
        finally:
            await leave(client, conn)

    run(scenario())


def test_session_fault_methods(local: LocalOdyssey) -> None:
    async def scenario() -> None:
        client, conn = await connect(local)
        try:
            assert await asyncio.to_thread(local.faults.send_signaling_error, "streamer_not_available") == 1
            assert await conn.next_signaling() == {"type": "error", "reason": "streamer_not_available"}
            await asyncio.to_thread(local.faults.send_raw_data, "this is not JSON")
            assert await conn.next_raw() == "this is not JSON"

            await conn.next_frame()
            await asyncio.to_thread(local.faults.stall_video, True)
            conn.drain_frames()
            late = 0
            with pytest.raises(asyncio.TimeoutError):
                while True:  # frames already in flight may still land; then nothing
                    await conn.next_frame(timeout=0.6)
                    late += 1
            assert late <= 3
            stalled_at = local.session(conn.session_id).frames_sent
            await asyncio.to_thread(local.faults.stall_video, False)
            _, stamp = await conn.fresh_frame(stalled_at)
            assert stamp.frame_number >= stalled_at

            await asyncio.to_thread(local.faults.fail_peer)
            await asyncio.wait_for(conn.track_ended.wait(), 10)
            assert not conn.ws_closed.done()  # the socket says nothing
        finally:
            await leave(client, conn)

        client, conn = await connect(local)
        try:
            assert await asyncio.to_thread(local.faults.drop_signaling, 4000) == 1
            assert await conn.wait_closed() == 4000
            await wait_until(local, lambda: not record(local, conn.session_id).held)
        finally:
            await leave(client, conn)

    run(scenario())


# -- going away and recovering -----------------------------------------------------------------------


def test_session_released_when_the_client_goes_away(local: LocalOdyssey) -> None:
    async def scenario() -> None:
        client, conn = await connect(local)
        conn.send(protocol.stream_start("a", portrait=False))
        assert (await conn.next_message())["type"] == "stream_started"
        await conn.ws.close(code=4001)  # no client_disconnecting, abnormal code
        await wait_until(local, lambda: not record(local, conn.session_id).held)
        assert record(local, conn.session_id).streams[-1].end_reason == "disconnected"
        await asyncio.wait_for(conn.track_ended.wait(), 10)  # the server closed its peer too
        await leave(client, conn)

    run(scenario())


def test_server_survives_a_bad_client(local: LocalOdyssey) -> None:
    async def scenario() -> None:
        client, conn = await connect(local)
        try:
            for junk in ("not json", '{"type": 5}', "[1, 2]", '{"type": "bogus"}', b"\x00\x01binary"):
                await conn.send_signaling(junk)
            await conn.send_signaling(protocol.answer("v=0 this is no SDP"))
            await conn.send_signaling(protocol.ice_candidate("candidate:garbage", "0", 0))
            await conn.send_signaling(protocol.ice_candidate("", None, None))
            for junk in ("garbage", '{"type": "bogus"}', '{"no_type": true}'):
                conn.send(junk)
            conn.send({"type": "update", "prompt": 5})
            assert (await conn.next_message())["reason"] == "invalid_request"
            conn.send(protocol.stream_start("still fine", portrait=True))
            assert (await conn.next_message())["type"] == "stream_started"
            await conn.next_frame()
        finally:
            await leave(client, conn)
        client, conn = await connect(local)
        await leave(client, conn)

    run(scenario())


def test_kill_cuts_connections_without_a_goodbye() -> None:
    server = LocalOdyssey().start()
    url = server.url

    async def scenario() -> None:
        client, conn = await connect(server)
        try:
            await asyncio.to_thread(server.kill)
            code = await conn.wait_closed()
            assert code not in protocol.NORMAL_CLOSE_CODES
            assert conn.signaling.empty()  # no error message, no close frame
        finally:
            await leave(client, conn)

    try:
        run(scenario())
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/ping", timeout=5)
    finally:
        server.stop()


def test_stop_says_goodbye_and_is_bounded() -> None:
    server = LocalOdyssey().start()

    async def scenario() -> None:
        client, conn = await connect(server)
        try:
            started = time.monotonic()
            await asyncio.to_thread(server.stop)
            assert time.monotonic() - started < 8
            assert await conn.next_signaling() == {"type": "error", "reason": "streamer_disconnected"}
            assert await conn.wait_closed() in protocol.NORMAL_CLOSE_CODES
            assert not server.sessions()[0].held and not server.is_running
        finally:
            await leave(client, conn)

    try:
        run(scenario())
    finally:
        server.stop()


def test_ice_servers_are_served_with_credentials() -> None:
    turn = {"urls": ["turn:127.0.0.1:3478?transport=udp"], "username": "user", "credential": "secret"}
    with LocalOdyssey(ice_servers=[turn]) as server:
        assert requests.get(f"{server.url}/config", timeout=10).json() == {"iceServers": [turn]}


# -- the server object and the CLI --------------------------------------------------------------------


def test_server_object(local: LocalOdyssey) -> None:
    assert local.url.startswith("http://127.0.0.1:")
    assert local.api_key == MAIN.key and "ody_test" not in repr(local) and "ody_test" not in repr(MAIN)
    assert local.wait_until(lambda: False, 0.05) is False
    snapshot = local.sessions()[0] if local.sessions() else None
    if snapshot is not None:
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            snapshot.held = False  # type: ignore[misc]
    with LocalOdyssey(api_keys=["ody_a", "ody_b"], fps=10.0) as other:
        assert other.api_key == "ody_a" and other.config.fps == 10.0
        assert access_token(other, "ody_b")
    with LocalOdyssey() as default:
        assert default.api_key.startswith("ody_local_")
    with pytest.raises(ValueError):
        LocalOdyssey(api_keys=["sk_nope"])


def test_cli_runs_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "odyssey_sync.local", "--port", "0", "--api-key", "ody_cli_key", "--fps", "10"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        exports = ""
        while "export" not in exports:
            line = process.stdout.readline()
            assert line, process.stderr.read()
            exports = line if line.startswith("export") else exports
        assert "ODYSSEY_API_KEY=ody_cli_key" in exports
        url = exports.split("ODYSSEY_API_URL=")[1].split()[0]
        assert requests.post(f"{url}/auth/token", json={"api_key": "ody_cli_key"}, timeout=10).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        process.stdout.close()
        process.stderr.close()


def test_applied_prompts_are_cut_to_fit_one_data_channel_message() -> None:
    assert expand_prompt("A cat").startswith("A cat, ") and expand_prompt("A cat", bypass=True) == "A cat"
    for prompt in ("x" * 300_000, "\u00e9" * 100_000, 'quote " and \\ ' * 20_000):
        for bypass in (False, True):
            applied = expand_prompt(prompt, bypass=bypass)
            assert prompt.startswith(applied[:1000])
            assert MAX_APPLIED_PROMPT_BYTES - 64 < len(json.dumps(applied)) <= MAX_APPLIED_PROMPT_BYTES
