"""Measure the hostile-input cases of issue 11 against the local server (run by hand, before and after).

    python tests/hostile_probe.py            # every case
    python tests/hostile_probe.py 1 3 9      # some
    # the code of another commit, e.g. before the fix (case 5 then really fetches its URLs):
    git archive <commit> | tar -x -C /tmp/before && PYTHONPATH=/tmp/before python tests/hostile_probe.py 1 2 3 4 6

Prints one line per measurement: the answer the attack got, how long it took,
and where it matters the worst frame gaps of a well-behaved client streaming on
another key meanwhile (``worst_gap_ms=<between renders>/<between arrivals>``:
the first from the frames' stamps, the second from their arrival times), and
the process's RSS. Uses only public APIs and raw
sockets, so the same script runs on the code before and after the fix.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import http.server
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

sys.path.insert(0, str(Path(__file__).parent))

from hostile import (
    MIB,
    WEBRTC_DCEP,
    WEBRTC_STRING,
    ChildAttack,
    RemoteWatcher,
    TrickleServer,
    Watcher,
    attack_post,
    attack_signaling,
    attack_whep_flood,
    channel_open_message,
    nested_json,
    png_bomb,
    post,
    rss_mib,
    send_raw_data_channel,
)
from raw_client import RawClient

import odyssey_sync
from odyssey_sync import Odyssey
from odyssey_sync.local import ApiKey, LocalOdyssey
from odyssey_sync.rest import RestClient

VICTIM = ApiKey("ody_probe_victim_0000000000000000", name="victim")
ATTACKER = ApiKey("ody_probe_attacker_00000000000000", name="attacker")
BIG = 39 * MIB


def say(case: str, what: str, **figures: Any) -> None:
    shown = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(f"[{case}] {what}: {shown}", flush=True)


def access_token(server: LocalOdyssey, key: ApiKey) -> str:
    return str(post(server.url, "/auth/token", json.dumps({"api_key": key.key}).encode()).json()["access_token"])


def bounded(fn: Callable[[], Any], limit: float) -> tuple[Any, float]:
    """Run ``fn`` on a thread; (result or exception or 'still blocked', seconds)."""
    out: list[Any] = []
    began = time.monotonic()

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    return (out[0] if out else "still blocked"), time.monotonic() - began


def describe(value: Any) -> str:
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {str(value)[:160]}"
    return repr(value)[:160]


# -- cases ------------------------------------------------------------------------------------


def measured(watcher: Watcher, target: Any, *args: Any) -> tuple[Any, str]:
    """Prepare ``target`` in a child process, then run it inside a watcher window.

    Returns its result and the worst gaps seen, "<render gap>/<arrival gap>" in ms.
    """
    with ChildAttack(target, *args) as attack:
        attack.wait_ready()
        watcher.wait_frames(5, timeout=5)
        with watcher.window() as gaps:
            attack.launch()
            result = attack.result()
    return result, f"{gaps[0].worst_ms:.0f}/{gaps[0].arrival_worst_ms:.0f}"


def case_1(server: LocalOdyssey, watcher: Watcher) -> None:
    for path in ("/auth/token", "/telemetry"):
        (answer,), worst = measured(watcher, attack_post, server.url, path, ("values", BIG), {})
        say("1", f"39 MB JSON POST {path}", status=answer.status, seconds=answer.seconds, worst_gap_ms=worst)


def case_2(server: LocalOdyssey, watcher: Watcher) -> None:
    gc.collect()
    before = rss_mib()
    answers, _ = measured(watcher, attack_post, server.url, "/telemetry", ("event", BIG), {"X-Repeat": "8"})
    after = rss_mib()
    gc.collect()
    watcher.wait_frames(40, timeout=5)
    say("2", "eight 39 MB /telemetry posts", statuses=[a.status for a in answers], rss_before=before, rss_after=after,
        rss_idle=rss_mib())


def case_3(server: LocalOdyssey, watcher: Watcher) -> None:
    bomb = png_bomb(16000, 16000)
    url = "data:image/png;base64," + base64.b64encode(bomb).decode()
    gc.collect()
    before = rss_mib()
    message = odyssey_sync.protocol.stream_start("A cat", portrait=False, image_data_url=url)
    (reply, seconds), worst = measured(watcher, attack_signaling, server.url, ATTACKER.key, message)
    say("3", f"16000x16000 PNG bomb ({len(bomb) // 1024} KB) as a start image", reply=describe(reply), seconds=seconds,
        rss_growth_mib=rss_mib() - before, worst_gap_ms=worst)


def case_4(server: LocalOdyssey, watcher: Watcher) -> None:
    token = access_token(server, ATTACKER)
    (answer,), worst = measured(
        watcher, attack_post, server.url, "/simulation-jobs", ("script", int(37.7 * MIB)), {"Authorization": f"Bearer {token}"}
    )
    say("4", "37.7 MB simulation body", status=answer.status, detail=answer.detail()[:80], seconds=answer.seconds,
        worst_gap_ms=worst)
    gc.collect()
    before = rss_mib()
    prompt = "A cat on a windowsill. " * (30 * MIB // 23)
    message = odyssey_sync.protocol.stream_start(prompt, portrait=False)
    (reply, seconds), worst = measured(watcher, attack_signaling, server.url, ATTACKER.key, message)
    del prompt, message
    gc.collect()
    events = sorted(server.data_dir.glob("recordings/*/events.jsonl"), key=lambda p: p.stat().st_mtime)
    size = events[-1].stat().st_size / MIB if events else 0.0
    say("4", "30 MB prompt over signaling", reply=describe(reply), seconds=seconds, worst_gap_ms=worst,
        rss_kept_mib=rss_mib() - before, newest_events_file_mib=size)


class _Redirect(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.target)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def case_5(server: LocalOdyssey, watcher: Watcher) -> None:
    token = access_token(server, ATTACKER)
    auth = {"Authorization": f"Bearer {token}"}
    redirector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    _Redirect.target = f"{server.url}/ping"
    threading.Thread(target=redirector.serve_forever, daemon=True).start()
    closed = TrickleServer()
    closed_port = closed.url.rsplit(":", 1)[1]
    closed.stop()
    targets = {
        "loopback, open port": f"{server.url}/ping",
        "loopback, closed port": f"http://127.0.0.1:{closed_port}/x.json",
        "link-local": "http://169.254.0.1/x.json",
        "ipv4-mapped ipv6 loopback": f"http://[::ffff:127.0.0.1]:{server.url.rsplit(':', 1)[1]}/ping",
        "redirect to loopback": f"http://127.0.0.1:{redirector.server_address[1]}/r",
    }
    for name, url in targets.items():
        answer = post(server.url, "/simulation-jobs", json.dumps({"script_url": url}).encode(), headers=auth)
        if answer.status != 200:
            say("5", name, submit_status=answer.status, detail=answer.detail()[:120])
            continue
        job_id = answer.json()["job_id"]
        deadline = time.monotonic() + 30
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = json.loads(post(server.url, f"/simulation-jobs/{job_id}", b"", method="GET", headers=auth).body)
            if job.get("status") in ("failed", "completed", "cancelled"):
                break
            time.sleep(0.2)
        say("5", name, status=job.get("status"), error=job.get("error_message"))
    redirector.shutdown()


def case_6(server: LocalOdyssey, watcher: Watcher) -> None:
    ready = threading.Event()
    broadcaster = Odyssey(api_key=VICTIM.key, api_url=server.url, timeout=20)
    broadcaster.connect(on_broadcast_ready=lambda info: ready.set())
    try:
        broadcaster.start_stream("A lighthouse", portrait=False, broadcast=True)
        ready.wait(10)
        info = broadcaster.broadcast_info
        assert info is not None
        path = "/" + info.webrtc_url.split("/", 3)[3] + "/whep?token=" + info.spectator_token
        (statuses, flood_s), worst = measured(watcher, attack_whep_flood, server.url, path, 50)
        say("6", "50 never-connecting offers with one token", created=statuses.count(201),
            refused={s: statuses.count(s) for s in set(statuses) if s != 201}, seconds=flood_s,
            worst_gap_ms=worst)
        began = time.monotonic()
        joined: Any = None
        while time.monotonic() - began < 40:
            try:
                with odyssey_sync.connect_to_stream(info.webrtc_url, info.spectator_token, timeout=10) as spectator:
                    spectator.get_frame(timeout=5)
                    joined = time.monotonic() - began
                break
            except odyssey_sync.OdysseyError as exc:
                joined = exc
                time.sleep(0.5)
        say("6", "a legitimate viewer after the flood", joined_after_s=describe(joined))
        chunks = (b"v=0\r\n" + b"a=x-pad:" + b"p" * 65000 + b"\r\n" for _ in range(600))
        answer = post(server.url, path, chunks, content_type="application/sdp")
        say("6", "a chunked 39 MB offer", status=answer.status, seconds=answer.seconds, detail=answer.detail()[:80])
        answer = post(server.url, path, b"v=0\r\n\xff\xfe\xfd", content_type="application/sdp")
        say("7", "non-UTF-8 WHEP body", status=answer.status, detail=answer.detail()[:80])
    finally:
        broadcaster.disconnect()


def case_7(server: LocalOdyssey, watcher: Watcher) -> None:
    token = access_token(server, ATTACKER)
    auth = {"Authorization": f"Bearer {token}"}
    answer = post(server.url, "/stream-recordings?offset=9223372036854775808", b"", method="GET", headers=auth)
    say("7", "offset=2**63", status=answer.status, detail=answer.detail()[:80])
    for path in ("/auth/token", "/simulation-jobs", "/sessions/token"):
        answer = post(server.url, path, nested_json(5_000), headers=auth)
        say("7", f"nested JSON on {path}", status=answer.status, detail=answer.detail()[:80])

    async def then_a_start(what: str, attack: Callable[[Any], Awaitable[None]]) -> None:
        async with RawClient(server.url, ATTACKER.key) as client:
            conn = await client.connect()
            try:
                await attack(conn)
                conn.send(odyssey_sync.protocol.stream_start(f"after the {what}", portrait=True))
                replies: list[str] = []
                try:
                    while not replies or replies[-1] == "interactive_stream_error":
                        replies.append((await conn.next_message(timeout=5))["type"])
                except asyncio.TimeoutError:
                    replies.append("no reply in 5 s")
                conn.drain_frames()
                try:
                    await conn.next_frame(timeout=3)
                    video = "flowing"
                except asyncio.TimeoutError:
                    video = "stopped"
                say("7", f"{what} on the data channel, then a start", replies=replies, video=video)
            finally:
                await conn.close()

    async def nested(conn: Any) -> None:
        conn.send('{"type":"update","prompt":' + "[" * 30_000 + "]" * 30_000 + "}")

    async def not_utf8(conn: Any) -> None:
        channel = conn.channels[odyssey_sync.protocol.CLIENT_TO_STREAMER]
        await send_raw_data_channel(channel, WEBRTC_STRING, b'{"type":"update","prompt":"\xff\xfe"}')

    async def second_open(conn: Any) -> None:
        channel = conn.channels[odyssey_sync.protocol.CLIENT_TO_STREAMER]
        await send_raw_data_channel(channel, WEBRTC_DCEP, channel_open_message("again"))

    async def data_channel() -> None:
        await then_a_start("nested JSON", nested)
        await then_a_start("non-UTF-8 string message", not_utf8)
        await then_a_start("second open of a live channel", second_open)

        async with RawClient(server.url, ATTACKER.key) as client:
            conn = await client.connect()
            try:
                conn.send('{"type":"interactive_stream_start","prompt":"A \\ud800 cat","portrait":true}')
                say("7", "lone-surrogate prompt", reply=describe(await conn.next_message(timeout=10)))
            finally:
                await conn.close()

    asyncio.run(data_channel())
    body = b'{"script":[{"timestamp_ms":0,"start":{"prompt":"A \\ud800 cat"}},{"timestamp_ms":1000,"end":{}}]}'
    answer = post(server.url, "/simulation-jobs", body, headers=auth)
    job = "-"
    if answer.status == 200:
        job_id = answer.json()["job_id"]
        for _ in range(100):
            state = json.loads(post(server.url, f"/simulation-jobs/{job_id}", b"", method="GET", headers=auth).body)
            if state["status"] in ("failed", "completed"):
                job = f"{state['status']}: {state['error_message']}"
                break
            time.sleep(0.2)
    say("7", "lone-surrogate prompt in a simulation", submit_status=answer.status, job=job)


def case_8(_server: LocalOdyssey, _watcher: Watcher) -> None:
    with tempfile.TemporaryDirectory() as parent:
        data_dir = Path(parent) / "data"
        with LocalOdyssey(api_keys=[VICTIM], data_dir=data_dir) as server:
            with Odyssey(api_key=VICTIM.key, api_url=server.url, timeout=20) as client:
                client.connect()
                client.start_stream("A cat", portrait=False)
                client.get_frame(timeout=10)
                client.end_stream()
            server.wait_until(lambda: True, 0.1)
        modes: dict[str, int] = {}
        for root, dirs, files in os.walk(data_dir):
            for name in [*dirs, *files]:
                path = Path(root) / name
                modes[str(path.relative_to(data_dir))] = path.stat().st_mode & 0o777
        modes["."] = data_dir.stat().st_mode & 0o777
        loose = {k: oct(v) for k, v in modes.items() if v & 0o077}
        say("8", "--data-dir modes", entries=len(modes), group_or_world_accessible=len(loose),
            examples=dict(list(loose.items())[:4]))


def case_9(_server: LocalOdyssey, _watcher: Watcher) -> None:
    for mode in ("headers", "body"):
        with TrickleServer(mode) as trickle:
            rest = RestClient(trickle.url, VICTIM.key, timeout=30)
            result, seconds = bounded(lambda rest=rest: rest.access_token(timeout=2), 25)
            say("9", f"RestClient.access_token(timeout=2), server trickles {mode}", result=describe(result), seconds=seconds)
        with TrickleServer(mode) as trickle:
            client = Odyssey(api_key=VICTIM.key, api_url=trickle.url, timeout=30)
            result, seconds = bounded(lambda client=client: client.connect(timeout=2), 25)
            say("9", f"Odyssey.connect(timeout=2), server trickles {mode}", result=describe(result), seconds=seconds)


def case_10(_server: LocalOdyssey, _watcher: Watcher) -> None:
    from hostile import FakeWhep

    secret = "spectator.token.SECRET123"
    with FakeWhep() as fake:
        fake.answers["s"] = [(201, b"this is not SDP", {"Content-Type": "application/sdp"})]
        fake.answers["t"] = [(401, json.dumps({"detail": f"bad token {secret}"}).encode(), {"Content-Type": "application/json"})]
        result, _ = bounded(lambda: odyssey_sync.connect_to_stream(f"{fake.url}/broadcast/s", "tok", timeout=10), 15)
        say("10", "unusable WHEP answer", result=describe(result))
        result, _ = bounded(lambda: odyssey_sync.connect_to_stream(f"{fake.url}/broadcast/t", secret, timeout=10), 15)
        say("10", "401 body echoing the token", result=describe(result), token_in_text=secret in str(result))


def case_11(_server: LocalOdyssey, _watcher: Watcher) -> None:
    from hostile import fetch_big_reply

    for chunked in (False, True):
        with TrickleServer("big", body_bytes=300 * MIB, chunked=chunked) as big, ChildAttack(fetch_big_reply, big.url) as run:
            run.wait_ready()
            run.launch()
            outcome, seconds, grown = run.result()
        say("11", f"a 300 MiB JSON reply ({'chunked' if chunked else 'Content-Length'})", result=outcome[:120],
            seconds=seconds, peak_rss_growth_mib=grown)


CASES = {str(i): globals()[f"case_{i}"] for i in range(1, 12)}


def main(selected: list[str]) -> None:
    with LocalOdyssey(api_keys=[VICTIM, ATTACKER], max_concurrent_per_key=10) as server:
        watcher = RemoteWatcher(server.url, VICTIM.key).start()
        try:
            with watcher.window() as gaps:
                watcher.wait_frames(60, timeout=10)
            say("0", "baseline, nothing happening", worst_gap_ms=f"{gaps[0].worst_ms:.0f}/{gaps[0].arrival_worst_ms:.0f}",
                frames=gaps[0].frames)
            for name in selected or list(CASES):
                CASES[name](server, watcher)
        finally:
            watcher.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
