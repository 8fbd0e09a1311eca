#!/usr/bin/env python3
"""Run Odyssey's official async Python SDK (package ``odyssey``) against ``odyssey_sync.local``.

By-hand interop check; not part of the test suite. This file contains none of
the official SDK's code: it imports the ``odyssey`` package from a checkout of
odysseyml/odyssey-python that you point it at (see README.md next to this file).

    python interop/python_sdk/run.py /path/to/odyssey-python      # or ODYSSEY_PYTHON_SDK=/path
    python interop/python_sdk/run.py /path/to/odyssey-python --only connect,landscape -v

Starts a LocalOdyssey in-process (loopback only), runs each flow with bounded
waits, prints a PASS/FAIL table and exits 1 if any flow failed (2 on setup errors).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import logging
import os
import sys
import time
import traceback
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

LANDSCAPE = (704, 1280, 3)
PORTRAIT = (1280, 704, 3)
EXPECTED_FPS = 20.0
T_CONNECT = 45.0  # the SDK itself waits 30 s for track + data channel
T_OP = 15.0  # start_stream / interact / end_stream (the SDK has no timeouts of its own)
T_FRAMES = 10.0


# ---------------------------------------------------------------------------------------
# Loading the SDK from a checkout
# ---------------------------------------------------------------------------------------


def load_sdk(checkout: str | None) -> Any:
    """Import ``odyssey``; prefer the installed copy, else ``<checkout>/src``."""
    if checkout:
        src = Path(checkout).expanduser().resolve() / "src"
        if not (src / "odyssey" / "__init__.py").is_file():
            print(f"not an odyssey-python checkout (no src/odyssey): {checkout}", file=sys.stderr)
            raise SystemExit(2)
        try:
            mod = importlib.import_module("odyssey")
        except ImportError:
            sys.path.insert(0, str(src))
            mod = importlib.import_module("odyssey")
    else:
        mod = importlib.import_module("odyssey")
    if not hasattr(mod, "Odyssey"):
        print(f"imported {mod.__file__}, which is not the Odyssey SDK (no Odyssey class)", file=sys.stderr)
        raise SystemExit(2)
    return mod


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


class Check(Exception):
    """A flow's expectation failed."""


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise Check(msg)


class FrameSink:
    """Collects frames delivered to ``on_video_frame`` (called on the loop thread)."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, tuple[int, ...], float, int]] = []  # (t, shape, mean, ts_ms)
        self.errors: list[str] = []
        self._event = asyncio.Event()

    def __call__(self, frame: Any) -> None:
        try:
            data = frame.data
            mean = float(data[::16, ::16].mean())
            self.frames.append((time.monotonic(), tuple(data.shape), mean, int(frame.timestamp_ms)))
            if (frame.height, frame.width) != data.shape[:2]:
                self.errors.append(f"width/height {frame.width}x{frame.height} disagree with data {data.shape}")
            self._event.set()
        except Exception as exc:  # never raise into the SDK: it would stop delivery for good
            self.errors.append(repr(exc))

    def mark(self) -> int:
        return len(self.frames)

    async def wait_count(self, since: int, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.frames) - since < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Check(f"only {len(self.frames) - since}/{n} frames within {timeout:.0f}s")
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), timeout=min(left, 1.0))
            except TimeoutError:
                pass

    def window(self, since: int) -> list[tuple[float, tuple[int, ...], float, int]]:
        return self.frames[since:]


def fps_of(window: list[tuple[float, tuple[int, ...], float, int]]) -> float:
    if len(window) < 2:
        return 0.0
    span = window[-1][0] - window[0][0]
    return (len(window) - 1) / span if span > 0 else 0.0


def describe_frames(window: list[tuple[float, tuple[int, ...], float, int]]) -> str:
    shapes = sorted({w[1] for w in window})
    return f"{len(window)} frames, shapes {shapes}, {fps_of(window):.1f} fps, mean luma {min(w[2] for w in window):.0f}..{max(w[2] for w in window):.0f}"


async def check_video(sink: FrameSink, shape: tuple[int, int, int], seconds: float = 2.5) -> str:
    """Frames arrive with ``shape``, are not black, and come at roughly 20 fps."""
    start = sink.mark()
    # Skip a little so frames from before the stream (or the other orientation) drain.
    await sink.wait_count(start, 5, T_FRAMES)
    start = sink.mark()
    await asyncio.sleep(seconds)
    win = sink.window(start)
    expect(len(win) >= 10, f"only {len(win)} frames in {seconds}s")
    bad = [w[1] for w in win if w[1] != shape]
    expect(not bad, f"expected shape {shape}, got {sorted(set(bad))}")
    expect(max(w[2] for w in win) > 8.0, f"frames look black (max mean {max(w[2] for w in win):.1f})")
    fps = fps_of(win)
    expect(0.6 * EXPECTED_FPS <= fps <= 1.5 * EXPECTED_FPS, f"frame rate {fps:.1f} fps, expected ~{EXPECTED_FPS:.0f}")
    ts = [w[3] for w in win]
    expect(all(b >= a for a, b in zip(ts, ts[1:], strict=False)), "timestamp_ms not monotonic")
    expect(not sink.errors, f"frame errors: {sink.errors[:3]}")
    return describe_frames(win)


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read()


# ---------------------------------------------------------------------------------------
# The flows
# ---------------------------------------------------------------------------------------


class Ctx:
    def __init__(self, sdk: Any, server: Any) -> None:
        self.sdk = sdk
        self.server = server
        self.url = server.url
        self.key = server.api_key
        self.client: Any = None
        self.sink = FrameSink()
        self.events: dict[str, list[Any]] = {}
        self.stream_ids: list[tuple[str, tuple[int, int, int]]] = []

    def handlers(self) -> dict[str, Callable[..., None]]:
        def rec(name: str) -> Callable[..., None]:
            def cb(*args: Any) -> None:
                self.events.setdefault(name, []).append(args)

            return cb

        return {
            "on_connected": rec("connected"),
            "on_disconnected": rec("disconnected"),
            "on_video_frame": self.sink,
            "on_stream_started": rec("stream_started"),
            "on_stream_ended": rec("stream_ended"),
            "on_interact_acknowledged": rec("interact_ack"),
            "on_broadcast_ready": rec("broadcast_ready"),
            "on_stream_error": rec("stream_error"),
            "on_error": rec("error"),
            "on_status_change": rec("status"),
        }

    def new_client(self, api_key: str | None = None) -> Any:
        return self.sdk.Odyssey(api_key=self.key if api_key is None else api_key, api_url=self.url)

    async def ensure_connected(self) -> Any:
        if self.client is None or not self.client.is_connected:
            self.client = self.new_client()
            await asyncio.wait_for(self.client.connect(**self.handlers()), T_CONNECT)
        return self.client


async def flow_connect(c: Ctx) -> str:
    t0 = time.monotonic()
    client = await c.ensure_connected()
    dt = time.monotonic() - t0
    expect(client.is_connected, f"status {client.current_status}")
    expect(bool(client.current_session_id), "no session id")
    expect(len(c.events.get("connected", [])) == 1, "on_connected did not fire once")
    statuses = [a[0].value for a in c.events.get("status", [])]
    expect(statuses[:1] == ["authenticating"] and statuses[-1] == "connected", f"status sequence {statuses}")
    return f"connected in {dt:.2f}s, session {client.current_session_id}, statuses {statuses}"


async def _stream(c: Ctx, portrait: bool, shape: tuple[int, int, int], **kw: Any) -> tuple[str, str]:
    client = await c.ensure_connected()
    n_started = len(c.events.get("stream_started", []))
    sid = await asyncio.wait_for(client.start_stream("A cat", portrait=portrait, **kw), T_OP)
    expect(isinstance(sid, str) and sid, f"bad stream id {sid!r}")
    started = c.events.get("stream_started", [])
    expect(len(started) == n_started + 1 and started[-1][0] == sid, "on_stream_started missing or different id")
    video = await check_video(c.sink, shape)
    return sid, video


async def _end(c: Ctx) -> None:
    n_ended = len(c.events.get("stream_ended", []))
    await asyncio.wait_for(c.client.end_stream(), T_OP)
    expect(len(c.events.get("stream_ended", [])) == n_ended + 1, "on_stream_ended did not fire")


async def flow_landscape(c: Ctx) -> str:
    sid, video = await _stream(c, False, LANDSCAPE)
    c.stream_ids.append((sid, LANDSCAPE))
    applied = c.client.last_applied_prompt
    n_ack = len(c.events.get("interact_ack", []))
    ack = await asyncio.wait_for(c.client.interact("The cat jumps onto the table"), T_OP)
    expect(isinstance(ack, str) and ack, f"interact returned {ack!r}")
    acks = c.events.get("interact_ack", [])
    expect(len(acks) == n_ack + 1 and acks[-1][0] == ack, "on_interact_acknowledged missing or different")
    await _end(c)
    return f"stream {sid}: {video}; applied_prompt={applied!r}; ack={ack!r}"


async def flow_portrait(c: Ctx) -> str:
    sid, video = await _stream(c, True, PORTRAIT)
    c.stream_ids.append((sid, PORTRAIT))
    await _end(c)
    return f"stream {sid}: {video}"


async def flow_image_to_video(c: Ctx) -> str:
    try:
        from PIL import Image
    except ImportError as exc:
        raise Check("Pillow not installed (the SDK needs it for PIL/ndarray images)") from exc
    img = Image.new("RGB", (640, 480), (200, 80, 40))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    sid, video = await _stream(c, False, LANDSCAPE, image=buf.getvalue())  # bytes: goes over the WS
    c.stream_ids.append((sid, LANDSCAPE))
    await _end(c)
    return f"stream {sid} (image, via signaling WS): {video}"


async def flow_broadcast(c: Ctx) -> str:
    client = await c.ensure_connected()
    n_ready = len(c.events.get("broadcast_ready", []))
    sid = await asyncio.wait_for(client.start_stream("A cat", portrait=False, broadcast=True), T_OP)
    c.stream_ids.append((sid, LANDSCAPE))
    deadline = time.monotonic() + T_OP
    while len(c.events.get("broadcast_ready", [])) == n_ready:
        expect(time.monotonic() < deadline, "on_broadcast_ready did not fire")
        await asyncio.sleep(0.1)
    info = c.events["broadcast_ready"][-1][0]
    spec_sink = FrameSink()
    spec_disc: list[int] = []
    conn = await asyncio.wait_for(
        c.sdk.connect_to_stream(
            info.webrtc_url, info.spectator_token, on_video_frame=spec_sink, on_disconnected=lambda: spec_disc.append(1)
        ),
        30.0,
    )
    try:
        expect(conn.is_connected, "spectator not connected")
        video = await check_video(spec_sink, LANDSCAPE)
    finally:
        await asyncio.wait_for(conn.disconnect(), 10.0)
    hls = ""
    if info.hls_url:
        status, body = await asyncio.to_thread(http_get, info.hls_url)
        expect(status == 200 and b"#EXTM3U" in body, f"HLS playlist: {status} {body[:60]!r}")
        hls = ", HLS playlist ok"
    await _end(c)
    return f"stream {sid}; spectator: {video}{hls}"


async def flow_disconnect(c: Ctx) -> str:
    client = await c.ensure_connected()
    sid = client.current_session_id
    await asyncio.wait_for(client.disconnect(), 15.0)
    expect(not client.is_connected and client.current_status.value == "disconnected", f"status {client.current_status}")
    deadline = time.monotonic() + 10.0
    while True:
        rec = c.server.session(sid)
        expect(rec is not None, f"server has no record of session {sid}")
        if not rec.held and not rec.connected:
            break
        if time.monotonic() > deadline:
            raise Check(f"server still holds session {sid} (held={rec.held}, connected={rec.connected}) 10s after disconnect")
        await asyncio.sleep(0.2)
    return f"disconnected; server released session {sid}"


async def flow_recordings(c: Ctx) -> str:
    expect(bool(c.stream_ids), "no streams were recorded by earlier flows")
    client = c.new_client()
    try:
        notes = []
        for sid, _ in c.stream_ids:
            deadline = time.monotonic() + 30.0
            while True:
                try:
                    rec = await asyncio.wait_for(client.get_recording(sid), 10.0)
                    if rec.video_url:
                        break
                except ValueError:
                    pass
                expect(time.monotonic() < deadline, f"recording of {sid} not ready in 30s")
                await asyncio.sleep(0.5)
            expect(rec.stream_id == sid, "stream_id mismatch")
            status, body = await asyncio.to_thread(http_get, rec.video_url)
            expect(status == 200 and len(body) > 1000, f"video_url fetch: {status}, {len(body)} bytes")
            for name in ("events_url", "thumbnail_url", "preview_url"):
                url = getattr(rec, name)
                if url:
                    st, _ = await asyncio.to_thread(http_get, url)
                    expect(st == 200, f"{name}: HTTP {st}")
            notes.append(f"{sid[:8]}: {rec.frame_count} frames/{rec.duration_seconds}s")
        lst = await asyncio.wait_for(client.list_stream_recordings(limit=50), 10.0)
        by_id = {r.stream_id: r for r in lst.recordings}
        for sid, shape in c.stream_ids:
            expect(sid in by_id, f"{sid} missing from list_stream_recordings")
            r = by_id[sid]
            expect((r.height, r.width) == shape[:2], f"{sid}: list says {r.width}x{r.height}, stream was {shape}")
        page = await asyncio.wait_for(client.list_stream_recordings(limit=1, offset=1), 10.0)
        expect(page.limit == 1 and page.offset == 1 and len(page.recordings) <= 1, f"pagination {page.limit}/{page.offset}")
        try:
            await asyncio.wait_for(client.get_recording("no-such-stream"), 10.0)
            raise Check("get_recording(unknown) did not raise")
        except ValueError as exc:
            expect("not found" in str(exc).lower(), f"unknown recording: {exc}")
        return f"{len(c.stream_ids)} recordings ok ({'; '.join(notes)}); list total={lst.total}"
    finally:
        await client.disconnect()


async def flow_simulate(c: Ctx) -> str:
    client = c.new_client()
    S = c.sdk.SimulationJobStatus
    try:
        script = [
            {"timestamp_ms": 0, "start": {"prompt": "A cat"}},
            {"timestamp_ms": 1000, "interact": {"prompt": "The cat yawns"}},
            {"timestamp_ms": 2000, "end": {}},
        ]
        job = await asyncio.wait_for(client.simulate(script=script, portrait=False), 15.0)
        expect(job.status in (S.PENDING, S.DISPATCHED, S.PROCESSING), f"new job status {job.status}")
        # A second job queued behind the first (one worker) is cancellable while pending.
        job2 = await asyncio.wait_for(client.simulate(script=script, portrait=True), 15.0)
        try:
            cancelled = await asyncio.wait_for(client.cancel_simulation(job2.job_id), 10.0)
            cancel_note = f"cancel -> {cancelled.status.value}"
            expect(cancelled.status == S.CANCELLED, f"cancel returned {cancelled.status}")
        except ValueError as exc:  # 400: it was already processing
            cancel_note = f"cancel refused: {exc}"
        deadline = time.monotonic() + 120.0
        while True:
            st = await asyncio.wait_for(client.get_simulate_status(job.job_id), 10.0)
            if st.status in (S.COMPLETED, S.FAILED, S.CANCELLED):
                break
            expect(time.monotonic() < deadline, f"job still {st.status.value} after 120s")
            await asyncio.sleep(1.0)
        expect(st.status == S.COMPLETED, f"job ended {st.status.value}: {st.error_message}")
        expect(len(st.streams) == 1 and st.streams[0].video_url, f"streams {st.streams}")
        status, body = await asyncio.to_thread(http_get, st.streams[0].video_url)
        expect(status == 200 and len(body) > 1000, f"simulation video fetch {status} {len(body)}")
        lst = await asyncio.wait_for(client.list_simulations(limit=10), 10.0)
        ids = {j.job_id for j in lst.jobs}
        expect(job.job_id in ids and job2.job_id in ids, "jobs missing from list_simulations")
        act = await asyncio.wait_for(client.list_simulations(active=True), 10.0)
        expect(job.job_id not in {j.job_id for j in act.jobs}, "completed job listed as active")
        done = await asyncio.wait_for(client.list_simulations(status=S.COMPLETED), 10.0)
        expect(job.job_id in {j.job_id for j in done.jobs}, "status=completed filter misses the job")
        try:
            await asyncio.wait_for(client.cancel_simulation(job.job_id), 10.0)
            raise Check("cancelling a completed job did not raise")
        except ValueError:
            pass
        return (
            f"job {job.job_id[:8]} completed, {st.streams[0].frame_count} frames; {cancel_note}; "
            f"list total={lst.total}"
        )
    finally:
        await client.disconnect()


async def flow_credentials(c: Ctx) -> str:
    minter = c.new_client()
    creds = await asyncio.wait_for(minter.create_client_credentials(), 15.0)
    expect(creds.session_id and creds.expires_in > 0, f"credentials {creds!r}")
    round_trip = type(creds).from_dict(creds.to_dict())
    expect(round_trip.session_id == creds.session_id, "to_dict/from_dict changed the session id")
    client = c.sdk.Odyssey(api_url=c.url)  # no API key
    sink = FrameSink()
    try:
        await asyncio.wait_for(client.connect_with_credentials(round_trip, on_video_frame=sink), T_CONNECT)
        expect(client.current_session_id == creds.session_id, "session id differs")
        sid = await asyncio.wait_for(client.start_stream("A cat", portrait=True), T_OP)
        c.stream_ids.append((sid, PORTRAIT))
        video = await check_video(sink, PORTRAIT, seconds=1.5)
        await asyncio.wait_for(client.end_stream(), T_OP)
        try:
            await client.get_recording(sid)
            raise Check("recordings without an API key did not raise")
        except ValueError:
            pass
    finally:
        await asyncio.wait_for(client.disconnect(), 15.0)
    return f"session {creds.session_id}: stream {sid}: {video}"


async def flow_bad_key(c: Ctx) -> str:
    client = c.new_client(api_key="ody_" + "x" * 40)
    client._config.advanced = c.sdk.AdvancedConfig(max_retries=0)
    try:
        await asyncio.wait_for(client.connect(), 15.0)
        raise Check("connect with a bad key succeeded")
    except c.sdk.OdysseyAuthError as exc:
        return f"OdysseyAuthError: {exc}"
    finally:
        await client.disconnect()


async def flow_telemetry(c: Ctx) -> str:
    events = c.server.telemetry_events()
    kinds = sorted({e[0] for e in events})
    expect(any("session_connected" in str(e) for e in events), f"no session_connected telemetry seen: {events[:5]}")
    return f"{len(events)} telemetry events accepted: {kinds}"


async def flow_stream_errors(c: Ctx) -> str:
    """Server refusals reach the SDK as interactive_stream_error -> OdysseyStreamError + on_stream_error."""
    client = await c.ensure_connected()
    notes = []
    for label, call in (
        ("interact w/o stream", lambda: client.interact("x")),
        ("bypass w/o privilege", lambda: client.start_stream("A cat", bypass_prompt_expansion=True)),
    ):
        try:
            await asyncio.wait_for(call(), T_OP)
            raise Check(f"{label}: no error")
        except c.sdk.OdysseyStreamError as exc:
            notes.append(f"{label}: {str(exc).split(':')[0]}")
    await asyncio.wait_for(client.start_stream("A cat"), T_OP)
    try:
        await asyncio.wait_for(client.start_stream("A cat"), T_OP)
        raise Check("second start_stream: no error")
    except c.sdk.OdysseyStreamError as exc:
        notes.append(f"double start: {str(exc).split(':')[0]}")
    await _end(c)
    await asyncio.wait_for(client.end_stream(), T_OP)  # no stream: still answered with stream_ended
    return "; ".join(notes) + "; end w/o stream returns"


async def flow_limits(c: Ctx) -> str:
    """Per-stream limit (session_timeout), 429 concurrency, 503 queue timeout, each on its own server."""
    from odyssey_sync.local import LocalOdyssey

    notes = []
    with LocalOdyssey(max_stream_seconds=1.5) as srv:
        errs: list[tuple[str, str]] = []
        cl = c.sdk.Odyssey(api_key=srv.api_key, api_url=srv.url)
        try:
            await asyncio.wait_for(cl.connect(on_stream_error=lambda r, m: errs.append((r, m))), T_CONNECT)
            await asyncio.wait_for(cl.start_stream("A cat"), T_OP)
            await asyncio.sleep(2.5)
            expect(errs and errs[0][0] == "session_timeout", f"stream errors {errs}")
            notes.append(f"stream limit -> on_stream_error{errs[0]}")
        finally:
            await asyncio.wait_for(cl.disconnect(), 15.0)
    with LocalOdyssey(max_concurrent_per_key=1) as srv:
        first = c.sdk.Odyssey(api_key=srv.api_key, api_url=srv.url)
        second = c.sdk.Odyssey(api_key=srv.api_key, api_url=srv.url)
        try:
            await asyncio.wait_for(first.connect(), T_CONNECT)
            try:
                await asyncio.wait_for(second.connect(), T_CONNECT)
                raise Check("second session over the per-key limit was allowed")
            except c.sdk.OdysseyUsageError as exc:
                notes.append(f"429 -> {type(exc).__name__}({exc.code})")
        finally:
            await asyncio.wait_for(second.disconnect(), 15.0)
            await asyncio.wait_for(first.disconnect(), 15.0)
    with LocalOdyssey(capacity=1) as srv:
        first = c.sdk.Odyssey(api_key=srv.api_key, api_url=srv.url)
        second = c.sdk.Odyssey(api_key=srv.api_key, api_url=srv.url, advanced=c.sdk.AdvancedConfig(queue_timeout_s=2))
        try:
            await asyncio.wait_for(first.connect(), T_CONNECT)
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(second.connect(), 20.0)
                raise Check("connected beyond capacity")
            except c.sdk.OdysseyConnectionError as exc:
                notes.append(f"503 queue -> {exc} after {time.monotonic() - t0:.1f}s")
        finally:
            await asyncio.wait_for(second.disconnect(), 15.0)
            await asyncio.wait_for(first.disconnect(), 15.0)
    return "; ".join(notes)


FLOWS: list[tuple[str, Callable[[Ctx], Awaitable[str]]]] = [
    ("connect", flow_connect),
    ("landscape", flow_landscape),
    ("portrait", flow_portrait),
    ("image_to_video", flow_image_to_video),
    ("broadcast_whep", flow_broadcast),
    ("stream_errors", flow_stream_errors),
    ("disconnect", flow_disconnect),
    ("credentials", flow_credentials),
    ("recordings", flow_recordings),
    ("simulate", flow_simulate),
    ("bad_key", flow_bad_key),
    ("limits", flow_limits),
    ("telemetry", flow_telemetry),
]


async def run_all(sdk: Any, server: Any, only: set[str] | None) -> list[tuple[str, bool, float, str]]:
    c = Ctx(sdk, server)
    results = []
    for name, fn in FLOWS:
        if only and name not in only:
            continue
        t0 = time.monotonic()
        try:
            note = await asyncio.wait_for(fn(c), 240.0)
            ok = True
        except Check as exc:
            ok, note = False, str(exc)
        except Exception as exc:
            ok, note = False, f"{type(exc).__name__}: {exc}"
            logging.debug("flow %s\n%s", name, traceback.format_exc())
        results.append((name, ok, time.monotonic() - t0, note))
        print(f"[{'PASS' if ok else 'FAIL'}] {name} ({time.monotonic() - t0:.1f}s): {note}", flush=True)
    if c.client is not None:
        try:
            await asyncio.wait_for(c.client.disconnect(), 15.0)
        except Exception:
            pass
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkout", nargs="?", default=os.environ.get("ODYSSEY_PYTHON_SDK"),
                    help="path of an odyssey-python checkout (or env ODYSSEY_PYTHON_SDK)")
    ap.add_argument("--only", help="comma-separated flow names: " + ",".join(n for n, _ in FLOWS))
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.verbose:
        # The SDK leaves aiohttp sessions open (telemetry sends scheduled after close); asyncio logs
        # "Unclosed client session" for each. SDK-side noise, hidden unless -v.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    if not args.checkout:
        ap.error("give the odyssey-python checkout path (argument or ODYSSEY_PYTHON_SDK)")
    if sys.version_info < (3, 12):
        print("the official SDK needs Python >= 3.12", file=sys.stderr)
        return 2
    sdk = load_sdk(args.checkout)
    from odyssey_sync.local import LocalOdyssey

    print(f"odyssey SDK {getattr(sdk, '__version__', '?')} from {sdk.__file__}")
    t0 = time.monotonic()
    with LocalOdyssey(simulation_workers=1, simulation_speed=4.0) as server:
        print(f"LocalOdyssey at {server.url}")
        results = asyncio.run(run_all(sdk, server, set(args.only.split(",")) if args.only else None))
    width = max(len(r[0]) for r in results) if results else 10
    print("\n" + "=" * 72)
    for name, ok, dt, note in results:
        print(f"{name:<{width}}  {'PASS' if ok else 'FAIL'}  {dt:6.1f}s  {note[:200]}")
    failed = [r[0] for r in results if not r[1]]
    print("=" * 72)
    print(f"{len(results) - len(failed)}/{len(results)} passed in {time.monotonic() - t0:.1f}s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
