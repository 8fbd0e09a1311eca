"""Hostile input (issue 11): one bad request never stalls anyone else, and SDK deadlines hold.

Each numbered case of the issue is reproduced with real sockets and its fix
asserted. Attacks that must not stall other users (1, 3, 4, 6) run from a
process of their own (so building and sending 39 MB does not share the test
process's GIL) while a well-behaved client, also in a process of its own,
streams on another key: the worst gap between the server's renders of the
frames it received (read from their stamps) must stay under 250 ms, and it
must keep receiving. Those frame-gap tests are ``slow``: on a loaded 2-core
machine any one frame can be late for reasons of its own, so they run in the
full suite only, and they are not retried.

``tests/hostile_probe.py`` measures the same cases by hand, before and after.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import os
import socket
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hostile import (
    MIB,
    WEBRTC_DCEP,
    WEBRTC_STRING,
    ChildAttack,
    FakeWhep,
    QuietAttacker,
    RemoteWatcher,
    TrickleServer,
    attack_post,
    attack_signaling,
    attack_whep_flood,
    channel_open_message,
    fetch_big_reply,
    nested_json,
    never_connecting_offer,
    png_bomb,
    post,
    rss_mib,
    send_raw_data_channel,
)

import odyssey_sync
from odyssey_sync import (
    Odyssey,
    OdysseyAuthError,
    OdysseyConnectionError,
    OdysseyError,
    OdysseyTimeoutError,
    connect_to_stream,
    protocol,
)
from odyssey_sync.images import MAX_IMAGE_PIXELS, TooManyPixelsError, check_image, decode_to_rgb
from odyssey_sync.local import ApiKey, LocalOdyssey, script_fetch
from odyssey_sync.local.bodies import SDP_BODY_BYTES
from odyssey_sync.rest import MAX_REPLY_BYTES, RestClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

VICTIM = ApiKey("ody_hostile_victim_key_0000000000", name="victim")
ATTACKER = ApiKey("ody_hostile_attacker_key_00000000", name="attacker")
WORST_GAP_MS = 250.0
BIG = 39 * MIB
JOINING = 4
JOIN_TIMEOUT_S = 3.0
SCRIPT = [{"timestamp_ms": 0, "start": {"prompt": "A cat"}}, {"timestamp_ms": 1000, "end": {}}]


@pytest.fixture(scope="module")
def hostile() -> Iterator[LocalOdyssey]:
    """A server of its own: a victim key and an attacker key, a small per-token joining cap, quick join expiry."""
    with LocalOdyssey(
        api_keys=[VICTIM, ATTACKER],
        max_concurrent_per_key=10,
        max_joining_spectators=JOINING,
        spectator_join_timeout_s=JOIN_TIMEOUT_S,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def watcher(hostile: LocalOdyssey) -> Iterator[RemoteWatcher]:
    """A well-behaved client streaming on the victim's key, in a process of its own."""
    remote = RemoteWatcher(hostile.url, VICTIM.key).start()
    yield remote
    remote.stop()


def token_of(server: LocalOdyssey, key: ApiKey) -> str:
    return str(post(server.url, "/auth/token", json.dumps({"api_key": key.key}).encode()).json()["access_token"])


def bearer(server: LocalOdyssey, key: ApiKey = ATTACKER) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(server, key)}"}


def while_watched(watcher: RemoteWatcher, target: Callable[..., Any], *args: Any) -> tuple[Any, float, int]:
    """Prepare an attack in its own process, run it in a watched window: (its result, worst render gap ms, frames)."""
    with ChildAttack(target, *args) as attack:
        attack.wait_ready()
        assert watcher.wait_frames(3, timeout=10), "the watcher streams before the attack"
        with watcher.window() as gaps:
            attack.launch()
            result = attack.result()
    return result, gaps[0].worst_ms, gaps[0].frames


def assert_unharmed(worst_ms: float, frames: int) -> None:
    assert worst_ms < WORST_GAP_MS, f"a well-behaved client waited {worst_ms:.0f} ms for a frame"
    assert frames >= 5, "the well-behaved client kept receiving"


# -- 1. large bodies are refused while read, off everyone else's path ---------------------------


def test_1_small_routes_refuse_large_bodies_while_reading(hostile: LocalOdyssey) -> None:
    for path in ("/auth/token", "/telemetry", "/sessions/request", "/sessions/token"):
        declared = post(hostile.url, path, b"{" + b" " * (1 * MIB) + b"}", headers=bearer(hostile))
        assert declared.status == 413 and "too large" in declared.detail(), (path, declared)
        # No Content-Length: refused once the bytes read pass the limit, not after all 39 MB arrived.
        chunked = post(hostile.url, path, (b" " * 65536 for _ in range(600)), headers=bearer(hostile))
        assert chunked.status == 413 and "too large" in chunked.detail(), (path, chunked)
    ok = post(hostile.url, "/auth/token", json.dumps({"api_key": VICTIM.key}).encode())
    assert ok.status == 200, "the route still serves well-formed requests"


@pytest.mark.slow
def test_1_a_39_mb_post_does_not_stall_streams(hostile: LocalOdyssey, watcher: RemoteWatcher) -> None:
    for path in ("/auth/token", "/telemetry"):
        (answer,), worst, frames = while_watched(watcher, attack_post, hostile.url, path, ("values", BIG), {})
        assert answer.status == 413 and answer.seconds < 5, (path, answer.status, answer.seconds)
        assert_unharmed(worst, frames)


# -- 2. telemetry keeps little, whatever it is sent -----------------------------------------------


def test_2_telemetry_retention_is_bounded(hostile: LocalOdyssey) -> None:
    events: list[dict[str, Any]] = [{"event": "E" * 1000, "session_id": "S" * 1000} for _ in range(25)]
    events.append({"event": ["not", "a", "string"], "session_id": {"nested": True}})
    assert post(hostile.url, "/telemetry", json.dumps({"events": events}).encode()).status == 204
    kept = hostile.telemetry_events()
    assert 0 < len(kept) <= 100
    assert all(len(name) <= 128 and (sid is None or len(sid) <= 128) for name, sid in kept)
    assert kept[-1] == ("list", None), "a non-string name or id is kept as its type, not as its contents"

    before = rss_mib()
    with ChildAttack(attack_post, hostile.url, "/telemetry", ("event", BIG), {"X-Repeat": "8"}) as attack:
        attack.wait_ready()
        attack.launch()
        answers = attack.result()
    assert [a.status for a in answers] == [413] * 8
    assert rss_mib() - before < 64, "eight 39 MB posts leave the server's memory about where it was"


# -- 3. decompression bombs are refused from the header ---------------------------------------------


def test_3_a_pixel_bomb_is_refused_before_any_decoding() -> None:
    bomb = png_bomb(16000, 16000)  # 730 KB on disk, 768 MB decoded
    before, began = rss_mib(), time.monotonic()
    with pytest.raises(TooManyPixelsError, match=r"16000x16000 pixels \(256 megapixels\); the limit is 50"):
        decode_to_rgb(bomb, 1280, 704)
    with pytest.raises(TooManyPixelsError):
        odyssey_sync.images.prepare_image(bomb, portrait=False)
    assert time.monotonic() - began < 1.0 and rss_mib() - before < 32, "nothing was decoded"
    assert check_image(png_bomb(7000, 7000)) == (7000, 7000), "a 49-megapixel picture is within the limit"
    assert 7000 * 7000 <= MAX_IMAGE_PIXELS < 7100 * 7100


def test_3_a_bomb_in_a_simulation_is_refused_at_submission(hostile: LocalOdyssey) -> None:
    bomb_url = "data:image/png;base64," + base64.b64encode(png_bomb(16000, 16000)).decode()
    start = {"timestamp_ms": 0, "start": {"prompt": "A cat", "image": bomb_url}}
    body = {"script": [start, {"timestamp_ms": 1000, "end": {}}]}
    answer = post(hostile.url, "/simulation-jobs", json.dumps(body).encode(), headers=bearer(hostile))
    assert answer.status == 400 and "megapixels" in answer.detail()


@pytest.mark.slow
def test_3_a_bomb_as_a_start_image_does_not_stall_streams(hostile: LocalOdyssey, watcher: RemoteWatcher) -> None:
    url = "data:image/png;base64," + base64.b64encode(png_bomb(16000, 16000)).decode()
    message = protocol.stream_start("A cat", portrait=False, image_data_url=url)
    before = rss_mib()
    (reply, seconds), worst, frames = while_watched(watcher, attack_signaling, hostile.url, ATTACKER.key, message)
    assert reply["type"] == protocol.STREAM_ERROR and reply["reason"] == "invalid_image", reply
    assert "megapixels" in reply["message"] and seconds < 5
    assert rss_mib() - before < 64, "the bomb was never decoded"
    assert_unharmed(worst, frames)


# -- 4. other big inputs: simulation bodies, prompts -------------------------------------------------


def test_4_one_prompt_limit_on_every_path(hostile: LocalOdyssey) -> None:
    long_prompt = "x" * protocol.MAX_PROMPT_CHARS

    async def scenario() -> None:
        async with QuietAttacker(hostile.url, ATTACKER.key) as attacker:
            await attacker.send_signaling(json.dumps(protocol.stream_start(long_prompt, portrait=True)))
            refused = await attacker.reply()
            assert refused["reason"] == "invalid_request" and "keep it under 10000" in refused["message"]
            attacker.send(json.dumps(protocol.stream_start("A cat", portrait=True)))
            assert (await attacker.reply())["type"] == protocol.STREAM_STARTED
            attacker.send(json.dumps(protocol.update(long_prompt)))
            refused = await attacker.reply()
            assert refused["reason"] == "invalid_request" and "keep it under 10000" in refused["message"]
            attacker.send(json.dumps(protocol.update("x" * (protocol.MAX_PROMPT_CHARS - 1))))
            assert (await attacker.reply())["type"] == protocol.UPDATE_ACKNOWLEDGED, "just under the limit is fine"

    asyncio.run(scenario())
    script = [{"timestamp_ms": 0, "start": {"prompt": long_prompt}}, {"timestamp_ms": 1000, "end": {}}]
    answer = post(hostile.url, "/simulation-jobs", json.dumps({"script": script}).encode(), headers=bearer(hostile))
    assert answer.status == 400 and "keep it under 10000" in answer.detail()


def test_4_a_large_job_body_with_too_many_values_is_refused_early(hostile: LocalOdyssey) -> None:
    body = b'{"portrait":true,"script":[' + b"0," * (2 * MIB) + b"0]}"
    answer = post(hostile.url, "/simulation-jobs", body, headers=bearer(hostile))
    assert answer.status == 413 and "too many JSON values" in answer.detail()


@pytest.mark.slow
def test_4_big_bodies_and_prompts_do_not_stall_streams(hostile: LocalOdyssey, watcher: RemoteWatcher) -> None:
    headers = bearer(hostile)
    (answer,), worst, frames = while_watched(
        watcher, attack_post, hostile.url, "/simulation-jobs", ("script", int(37.7 * MIB)), headers
    )
    assert answer.status == 413 and answer.seconds < 5
    assert_unharmed(worst, frames)

    recordings_before = len(list(hostile.data_dir.glob("recordings/*")))
    prompt = "A cat on a windowsill. " * (30 * MIB // 23)
    message = protocol.stream_start(prompt, portrait=False)
    (reply, seconds), worst, frames = while_watched(watcher, attack_signaling, hostile.url, ATTACKER.key, message)
    assert reply["type"] == protocol.STREAM_ERROR and reply["reason"] == "invalid_request", reply
    assert "Prompts must be under 10000" in reply["message"]
    assert len(list(hostile.data_dir.glob("recordings/*"))) == recordings_before, "nothing was recorded for it"
    assert_unharmed(worst, frames)


# -- 5. script_url reaches public addresses only -----------------------------------------------------


@pytest.mark.parametrize(
    "address, reason",
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("192.168.0.10", "a private address"),
        ("172.16.5.4", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("2002:7f00:1::", "a loopback address"),  # 6to4 around 127.0.0.1
        ("100.64.0.1", "a reserved address"),  # carrier-grade NAT
        ("fd00::1", "a private address"),
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
    ],
)
def test_5_address_classes(address: str, reason: str | None) -> None:
    assert script_fetch.non_public_reason(address) == reason


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/s.json",
        "http://[::1]/s.json",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/s.json",
        "http://10.0.0.1/s.json",
        "https://localhost/s.json",
        "http://0.0.0.0:80/",
    ],
)
def test_5_non_public_script_urls_are_refused_at_submission(hostile: LocalOdyssey, url: str) -> None:
    answer = post(hostile.url, "/simulation-jobs", json.dumps({"script_url": url}).encode(), headers=bearer(hostile))
    assert answer.status == 400 and "only public http(s) URLs are fetched" in answer.detail(), answer


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Serves a script, or redirects, and records every request it gets."""

    seen: list[str] = []
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        status, headers, body = type(self).routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def script_servers() -> Iterator[dict[str, http.server.ThreadingHTTPServer]]:
    """Two script servers, each recording its own requests: "public" on 127.0.0.2 (the tests' stand-in
    for a public host), "private" on 127.0.0.1."""
    servers = {
        name: http.server.ThreadingHTTPServer(
            (host, 0), type(f"{name}Handler", (_Recorder,), {"seen": [], "routes": {}})
        )
        for name, host in (("public", "127.0.0.2"), ("private", "127.0.0.1"))
    }
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield servers
    for server in servers.values():
        server.shutdown()
        server.server_close()


def _url(server: http.server.ThreadingHTTPServer, path: str) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}{path}"


def test_5_every_redirect_hop_is_checked(
    script_servers: dict[str, http.server.ThreadingHTTPServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    public, private = script_servers["public"], script_servers["private"]
    real = script_fetch.non_public_reason
    monkeypatch.setattr(script_fetch, "non_public_reason", lambda a: None if a == "127.0.0.2" else real(a))
    routes = public.RequestHandlerClass.routes  # type: ignore[attr-defined]
    script_body = json.dumps(SCRIPT).encode()
    routes["/script.json"] = (200, {"Content-Type": "application/json"}, script_body)
    routes["/hop"] = (302, {"Location": "/script.json"}, b"")
    routes["/to-private"] = (302, {"Location": _url(private, "/script.json")}, b"")
    routes["/loop"] = (302, {"Location": "/loop"}, b"")
    routes["/big"] = (200, {}, b" " * 4096)

    def fetch(path: str, *, limit: int = MIB) -> bytes:
        return asyncio.run(script_fetch.fetch_script_document(_url(public, path), limit=limit, allow_private=False))

    assert fetch("/hop") == script_body, "a redirect to a public address is followed"
    with pytest.raises(script_fetch.ScriptFetchError, match="redirects to a non-public address"):
        fetch("/to-private")
    assert private.RequestHandlerClass.seen == [], "the private target was never contacted"  # type: ignore[attr-defined]
    with pytest.raises(script_fetch.ScriptFetchError, match="redirected more than 5 times"):
        fetch("/loop")
    with pytest.raises(script_fetch.ScriptFetchError, match="larger than 1024 bytes"):
        fetch("/big", limit=1024)
    with pytest.raises(script_fetch.ScriptFetchError) as failed:
        fetch("/missing")
    assert "404" not in str(failed.value) and "200 OK" in str(failed.value), "the status is not echoed"


def test_5_a_host_name_resolving_to_a_private_address_is_refused(
    script_servers: dict[str, http.server.ThreadingHTTPServer],
) -> None:
    name = socket.gethostname()
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except OSError:
        pytest.skip("this machine's host name does not resolve")
    if any(script_fetch.non_public_reason(a) is None for a in addresses):
        pytest.skip(f"{name} resolves to a public address here")
    port = script_servers["private"].server_address[1]
    with pytest.raises(script_fetch.ScriptFetchError, match="resolves to a non-public address"):
        asyncio.run(
            script_fetch.fetch_script_document(f"http://{name}:{port}/script.json", limit=MIB, allow_private=False)
        )
    assert script_servers["private"].RequestHandlerClass.seen == []  # type: ignore[attr-defined]


def test_5_a_slow_script_url_is_given_up_on_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script_fetch, "FETCH_TIMEOUT_S", 1.0)
    with TrickleServer("body", interval_s=0.05) as slow:
        began = time.monotonic()
        with pytest.raises(script_fetch.ScriptFetchError, match="could not be fetched"):
            asyncio.run(script_fetch.fetch_script_document(slow.url + "/s.json", limit=MIB, allow_private=True))
        assert time.monotonic() - began < 3


def test_5_a_job_whose_host_is_private_fails_without_echoing_the_target(hostile: LocalOdyssey) -> None:
    name = socket.gethostname()
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except OSError:
        pytest.skip("this machine's host name does not resolve")
    if any(script_fetch.non_public_reason(a) is None for a in addresses):
        pytest.skip(f"{name} resolves to a public address here")
    url = f"http://{name}:{hostile.url.rsplit(':', 1)[1]}/ping"
    with Odyssey(api_key=ATTACKER.key, api_url=hostile.url, timeout=20) as client:
        job = client.simulate(script_url=url)  # accepted: a host name is only resolved when the job runs
        done = client.wait_for_simulation(job, timeout=30)
    assert done.status == "failed" and "resolves to a non-public address" in (done.error_message or ""), done


def test_5_the_operator_opts_in_to_private_script_urls_on_the_command_line() -> None:
    from odyssey_sync.local.__main__ import _parser

    assert _parser().parse_args(["--allow-private-script-urls"]).allow_private_script_urls is True
    assert _parser().parse_args([]).allow_private_script_urls is False


# -- 6. WHEP: a token cannot fill the viewer slots ------------------------------------------------------


@pytest.fixture
def broadcast(hostile: LocalOdyssey) -> Iterator[odyssey_sync.BroadcastInfo]:
    ready = threading.Event()
    with Odyssey(api_key=VICTIM.key, api_url=hostile.url, timeout=20) as broadcaster:
        broadcaster.connect(on_broadcast_ready=lambda info: ready.set())
        broadcaster.start_stream("A lighthouse", portrait=False, broadcast=True)
        assert ready.wait(10)
        assert broadcaster.broadcast_info is not None
        yield broadcaster.broadcast_info


def _joining_allowed(seconds: float) -> int:
    """Most offers one token can have answered in ``seconds``: the cap, refilled as unconnected ones expire."""
    return JOINING * (1 + int(seconds // JOIN_TIMEOUT_S))


def _whep_path(info: odyssey_sync.BroadcastInfo) -> str:
    return "/" + info.webrtc_url.split("/", 3)[3] + "/whep?token=" + info.spectator_token


def test_6_offers_are_capped_per_token_expired_and_sized_while_read(
    hostile: LocalOdyssey, broadcast: odyssey_sync.BroadcastInfo
) -> None:
    path = _whep_path(broadcast)
    stream_id = broadcast.webrtc_url.rsplit("/", 1)[1]
    with ChildAttack(attack_whep_flood, hostile.url, path, 20) as flood:
        flood.wait_ready()
        flood.launch()
        statuses, seconds = flood.result()
    assert set(statuses) == {201, 429}
    assert JOINING <= statuses.count(201) <= _joining_allowed(seconds), (statuses, seconds)
    busy = post(hostile.url, path, b"v=0\r\n", content_type="application/sdp")
    assert busy.status == 429 and "joining with this token" in busy.detail()
    assert hostile.wait_for_spectators(0, stream_id=stream_id, timeout=JOIN_TIMEOUT_S + 5), "unconnected offers expire"

    chunks = (b"a=x-pad:" + b"p" * 65000 + b"\r\n" for _ in range(600))  # 39 MB, no Content-Length
    too_big = post(hostile.url, path, chunks, content_type="application/sdp")
    assert too_big.status == 413 and str(SDP_BODY_BYTES) in too_big.detail()
    not_text = post(hostile.url, path, b"v=0\r\n\xff\xfe\xfd", content_type="application/sdp")
    assert not_text.status == 400 and "UTF-8" in not_text.detail()
    candidates = "".join(f"a=candidate:{i} 1 udp 1 198.51.100.{i % 250} 9 typ host\r\n" for i in range(100))
    many = post(hostile.url, path, (never_connecting_offer() + candidates).encode(), content_type="application/sdp")
    assert many.status == 400 and "ICE candidates" in many.detail()


@pytest.mark.slow
def test_6_a_flood_of_offers_does_not_lock_out_viewers_or_stall_streams(
    hostile: LocalOdyssey, watcher: RemoteWatcher, broadcast: odyssey_sync.BroadcastInfo
) -> None:
    path = _whep_path(broadcast)
    (statuses, seconds), worst, frames = while_watched(watcher, attack_whep_flood, hostile.url, path, 50)
    assert set(statuses) == {201, 429} and statuses.count(201) <= _joining_allowed(seconds), (statuses, seconds)
    assert_unharmed(worst, frames)
    began = time.monotonic()
    # The SDK waits out the 429's Retry-After: the flood's offers expire and the viewer gets in.
    with connect_to_stream(broadcast.webrtc_url, broadcast.spectator_token, timeout=JOIN_TIMEOUT_S + 10) as viewer:
        assert viewer.get_frame(timeout=5) is not None
    assert time.monotonic() - began < JOIN_TIMEOUT_S + 10


# -- 7. bad input is a 4xx with a message, never a 500 or a dead session ------------------------------------


def test_7_rest_answers_4xx_to_bad_input(hostile: LocalOdyssey, broadcast: odyssey_sync.BroadcastInfo) -> None:
    headers = bearer(hostile)
    for query in ("offset=9223372036854775808", "offset=-1", "limit=0", "offset=" + "9" * 5000, "limit=x"):
        answer = post(hostile.url, f"/stream-recordings?{query}", b"", method="GET", headers=headers)
        assert answer.status == 422 and answer.detail(), (query, answer)
    for path in ("/auth/token", "/sessions/request", "/sessions/token", "/simulation-jobs", "/telemetry"):
        answer = post(hostile.url, path, nested_json(5_000), headers=headers)
        assert answer.status == 400 and "nested too deeply" in answer.detail(), (path, answer)
        answer = post(hostile.url, path, b'{"a": "\xff\xfe"}', headers=headers)
        assert answer.status == 400 and "UTF-8" in answer.detail(), (path, answer)
    surrogate = b'{"script":[{"timestamp_ms":0,"start":{"prompt":"A \\ud800 cat"}},{"timestamp_ms":1000,"end":{}}]}'
    answer = post(hostile.url, "/simulation-jobs", surrogate, headers=headers)
    assert answer.status == 400 and "lone surrogate" in answer.detail()
    for url in ("http://[::1", "http://example.com:99999/s.json", "http://\ud800.example/s.json"):
        answer = post(hostile.url, "/simulation-jobs", json.dumps({"script_url": url}).encode(), headers=headers)
        assert answer.status == 400 and "not a valid URL" in answer.detail(), (url, answer)


def test_7_the_data_channel_survives_nested_json_and_bad_text(hostile: LocalOdyssey) -> None:
    from raw_client import RawClient

    async def scenario() -> None:
        async with RawClient(hostile.url, ATTACKER.key) as client:
            conn = await client.connect()
            try:
                conn.send('{"type":"update","prompt":' + "[" * 30_000 + "]" * 30_000 + "}")  # 60 KB, 30000 deep
                conn.send(json.dumps({"type": "interactive_stream_start", "prompt": "A \ud800 cat", "portrait": True}))
                refused = await conn.next_message()
                assert refused["reason"] == "invalid_request" and "lone surrogate" in refused["message"], refused
                conn.send("x" * (70 * 1024))
                refused = await conn.next_message()
                assert refused["reason"] == "invalid_request" and "at most 65536" in refused["message"]
                conn.send(protocol.stream_start("still serving", portrait=True))
                assert (await conn.next_message())["type"] == protocol.STREAM_STARTED
                conn.send(json.dumps(protocol.update("A \udfff dog")))
                refused = await conn.next_message()
                assert refused["reason"] == "invalid_request" and "lone surrogate" in refused["message"]
                conn.drain_frames()
                await conn.next_frame(timeout=5)  # the video goes on
            finally:
                await conn.close()

    asyncio.run(scenario())


def test_7_a_data_channel_message_aiortc_cannot_read_is_refused_not_fatal(hostile: LocalOdyssey) -> None:
    """An undecodable string message, or a second open for a live channel, raised inside aiortc's SCTP
    receive path and ended the session's DTLS transport: no reply, no video, nothing logged."""
    from raw_client import RawClient

    async def scenario() -> None:
        async with RawClient(hostile.url, ATTACKER.key) as client:
            conn = await client.connect()
            try:
                channel = conn.channels[protocol.CLIENT_TO_STREAMER]
                await send_raw_data_channel(channel, WEBRTC_STRING, b'{"type":"update","prompt":"\xff\xfe"}')
                refused = await conn.next_message()
                assert refused["reason"] == "invalid_request" and "not UTF-8" in refused["message"], refused
                await send_raw_data_channel(channel, WEBRTC_DCEP, channel_open_message("again"))
                conn.send(protocol.stream_start("still serving", portrait=True))
                assert (await conn.next_message())["type"] == protocol.STREAM_STARTED
                conn.drain_frames()
                await conn.next_frame(timeout=5)  # the video goes on
            finally:
                await conn.close()

    asyncio.run(scenario())


# -- 8. the data directory is private ---------------------------------------------------------------------


def test_8_data_dir_files_and_folders_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    old = data_dir / "recordings" / "0ld-recording"
    old.mkdir(parents=True, mode=0o755)
    os.chmod(old, 0o755)  # as an earlier version left it
    os.chmod(data_dir, 0o700)
    with LocalOdyssey(api_keys=[VICTIM], data_dir=data_dir) as server:
        with Odyssey(api_key=VICTIM.key, api_url=server.url, timeout=20) as client:
            client.connect()
            stream_id = client.start_stream("A cat on a windowsill", portrait=False)
            client.wait_for_frame(after=stream_id, timeout=10)
            client.wait_for_frame(timeout=10)
            client.end_stream()
            recording = client.get_recording(stream_id)
            assert recording.video_url is not None
            job = client.simulate(script=SCRIPT, portrait=False)
            assert client.wait_for_simulation(job, timeout=60).status == "completed"
        wal = [p.name for p in data_dir.glob("*-wal")]
        assert wal and all((data_dir / name).stat().st_mode & 0o777 == 0o600 for name in wal), "sqlite's files too"
    files = list(data_dir.rglob("*"))  # the server has stopped: nothing is being written
    assert any(p.name == "video.mp4" for p in files) and any(p.name == "events.jsonl" for p in files)
    loose = {str(p.relative_to(data_dir)): oct(p.stat().st_mode & 0o777) for p in files if p.stat().st_mode & 0o077}
    assert loose == {}, f"readable by others: {loose}"
    assert all(p.stat().st_mode & 0o777 == (0o700 if p.is_dir() else 0o600) for p in files)


def test_8_a_new_data_dir_is_created_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    with LocalOdyssey(api_keys=[VICTIM], data_dir=data_dir) as server:
        assert server.data_dir == data_dir.resolve()
    assert data_dir.stat().st_mode & 0o777 == 0o700


# -- 9. SDK deadlines hold whatever the server does ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_9_timeout_is_a_total_deadline_against_a_trickling_api(mode: str) -> None:
    with TrickleServer(mode, interval_s=0.05) as trickle:
        calls: dict[str, Callable[[], Any]] = {
            "RestClient.access_token": lambda: RestClient(trickle.url, VICTIM.key, timeout=30).access_token(timeout=2),
            "Odyssey.connect": lambda: Odyssey(api_key=VICTIM.key, api_url=trickle.url, timeout=30).connect(timeout=2),
        }
        for name, call in calls.items():
            began = time.monotonic()
            with pytest.raises(OdysseyTimeoutError) as caught:
                call()
            assert time.monotonic() - began < 2.5, f"{name}(timeout=2) took {time.monotonic() - began:.1f} s"
            assert not isinstance(caught.value, OdysseyAuthError)
        # timeout=inf lifts the call's budget, but every request stays bounded by the client's timeout.
        bounded = RestClient(trickle.url, VICTIM.key, timeout=1.5)
        began = time.monotonic()
        with pytest.raises(OdysseyTimeoutError):
            bounded.request_json("GET", "/regions", auth=False, timeout=float("inf"))
        assert time.monotonic() - began < 2.0


def test_9_every_rest_call_honours_its_deadline() -> None:
    calls: dict[str, Callable[[Odyssey], Any]] = {
        "create_client_credentials": lambda c: c.create_client_credentials(timeout=0.6),
        "get_recording": lambda c: c.get_recording("abc", timeout=0.6),
        "list_stream_recordings": lambda c: c.list_stream_recordings(timeout=0.6),
        "simulate": lambda c: c.simulate(script=SCRIPT, timeout=0.6),
        "get_simulate_status": lambda c: c.get_simulate_status("job", timeout=0.6),
        "list_simulations": lambda c: c.list_simulations(timeout=0.6),
        "cancel_simulation": lambda c: c.cancel_simulation("job", timeout=0.6),
        "wait_for_simulation": lambda c: c.wait_for_simulation("job", timeout=0.6),
    }
    # The sign-in answers at once, so each call reaches its own endpoint, whose headers trickle forever.
    with TrickleServer("headers", interval_s=0.05, access_token="tok") as trickle:
        for name, call in calls.items():
            with Odyssey(api_key=VICTIM.key, api_url=trickle.url, timeout=30) as client:
                began = time.monotonic()
                with pytest.raises(OdysseyTimeoutError):
                    call(client)
                assert time.monotonic() - began < 1.1, f"{name}(timeout=0.6) took {time.monotonic() - began:.1f} s"


def test_9_a_spectator_times_out_against_a_trickling_server() -> None:
    with TrickleServer("headers", interval_s=0.05) as trickle:
        began = time.monotonic()
        with pytest.raises(OdysseyTimeoutError):
            connect_to_stream(f"{trickle.url}/broadcast/x", "token", timeout=2)
        assert time.monotonic() - began < 2.5


# -- 10. spectator errors are typed and keep the token secret ---------------------------------------------------


def test_10_whep_errors_are_typed_and_scrubbed() -> None:
    secret = "spectator.token.SECRET-123"
    with FakeWhep() as fake:
        fake.answers["garbage"] = [(201, b"this is not SDP", {"Content-Type": "application/sdp"})]
        fake.answers["echo"] = [(401, json.dumps({"detail": f"bad token {secret}"}).encode(), {})]
        fake.answers["huge"] = [(201, b"v=0\r\n" + b"a=x\r\n" * 400_000, {"Content-Type": "application/sdp"})]
        with pytest.raises(OdysseyConnectionError, match="WHEP answer cannot be used"):
            connect_to_stream(f"{fake.url}/broadcast/garbage", secret, timeout=10)
        with pytest.raises(OdysseyAuthError) as caught:
            connect_to_stream(f"{fake.url}/broadcast/echo", secret, timeout=10)
        texts = [str(caught.value), repr(caught.value), "".join(traceback.format_exception(caught.value))]
        assert all(secret not in text for text in texts) and "<redacted>" in str(caught.value)
        with pytest.raises(OdysseyConnectionError, match="larger than"):
            connect_to_stream(f"{fake.url}/broadcast/huge", secret, timeout=10)


def test_10_a_429_with_retry_after_is_waited_out() -> None:
    with FakeWhep() as fake:
        fake.answers["busy"] = [
            (429, json.dumps({"detail": "joining"}).encode(), {"Retry-After": "1"}),
            (201, b"not sdp either", {"Content-Type": "application/sdp"}),
        ]
        began = time.monotonic()
        with pytest.raises(OdysseyConnectionError, match="WHEP answer cannot be used"):
            connect_to_stream(f"{fake.url}/broadcast/busy", "tok", timeout=10)
        assert fake.posts["busy"] == 2 and time.monotonic() - began >= 1.0


def test_10_nested_json_replies_are_typed_errors() -> None:
    from scripted import Reply, ScriptedServer

    api = ScriptedServer()
    api.start()
    try:
        api.script("GET", "/nested", Reply(status=200, body=nested_json(100_000), headers={"Content-Type": "application/json"}))
        with pytest.raises(OdysseyConnectionError, match="non-JSON body"):
            RestClient(api.url, None, timeout=10).request_json("GET", "/nested", auth=False)
    finally:
        api.stop()
    with FakeWhep() as fake:
        fake.answers["nested"] = [(401, nested_json(100_000), {"Content-Type": "application/json"})]
        with pytest.raises(OdysseyAuthError):
            connect_to_stream(f"{fake.url}/broadcast/nested", "tok", timeout=10)


# -- 11. replies have a size cap ----------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
def test_11_a_huge_reply_is_refused_without_reading_it_whole(chunked: bool) -> None:
    with (
        TrickleServer("big", body_bytes=300 * MIB, chunked=chunked) as big,
        ChildAttack(fetch_big_reply, big.url) as run,
    ):
        run.wait_ready()
        run.launch()
        outcome, seconds, grown_mib = run.result()
    assert outcome.startswith("OdysseyConnectionError") and f"more than {MAX_REPLY_BYTES} bytes" in outcome, outcome
    assert seconds < 5 and grown_mib < 64, (seconds, grown_mib)


def test_errors_are_odyssey_errors() -> None:
    """Every SDK failure above is an OdysseyError subclass (checked once here for the types used)."""
    for error in (OdysseyTimeoutError, OdysseyConnectionError, OdysseyAuthError):
        assert issubclass(error, OdysseyError)
