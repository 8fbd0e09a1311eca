"""Client workloads that use the SDK (``odyssey_sync.Odyssey``), each run in a fresh process.

Each function takes the server description printed by
:mod:`benchmarks.server_proc` (``url``, ``api_key``, ``pid``, ``control_url``)
plus its own parameters, and returns a JSON-ready dict. Frames are read the
way a caller reads them: ``frame.data`` (the RGB array, converted on first
access), then the stamp; "in hand" times are taken right after ``data``.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

from benchmarks.metrics import (
    DeliveryWindow,
    ServerMeter,
    control_sessions,
    cpu_seconds,
    cycles_report,
    jitter_buffer_in_use,
    latency_ms,
    minor_faults,
    negotiated_codec,
    process_sample,
    rss_mb,
    settled_sample,
    summarize,
    wall_ms,
)
from odyssey_sync import Odyssey, OdysseyTimeoutError
from odyssey_sync.stamp import read_stamp

__all__ = ["broadcast", "connects", "cycles", "interactive", "memory_stream", "starts", "steering", "stream"]

_LANDSCAPE = False


def _client(server: dict[str, Any]) -> Odyssey:
    return Odyssey(api_key=server["api_key"], api_url=server["url"], timeout=30)


def _codec(client: Odyssey) -> str | None:
    """The negotiated video codec, read from the SDK's peer (a private attribute: benchmarks only)."""
    try:
        return negotiated_codec(client._conn.session.pc.localDescription.sdp)  # type: ignore[union-attr]
    except AttributeError:
        return None


def _warm(client: Odyssey, seconds: float) -> None:
    end = time.monotonic() + seconds
    for frame in client.frames(timeout=10):
        frame.data
        if time.monotonic() >= end:
            return


def stream(
    server: dict[str, Any],
    fps: float,
    seconds: float,
    warmup: float = 2.0,
    mode: str = "frames",
    rate_hz: float = 10.0,
    prompt: str = "A calm lake at dawn",
) -> dict[str, Any]:
    """Stream for ``seconds`` after ``warmup``; ``mode`` "frames" reads every frame through ``frames()``,
    "latest" runs a ``rate_hz`` control loop on ``latest_frame()``. Client and server CPU, loss, latency."""
    with _client(server) as client:
        client.connect()
        client.start_stream(prompt, portrait=_LANDSCAPE)
        _warm(client, warmup)
        meter = ServerMeter(server.get("pid"), server.get("control_url"), client.current_session_id)
        if mode == "frames":
            result = _consume_frames(client, meter, fps, seconds)
        elif mode == "latest":
            result = _control_loop(client, meter, seconds, rate_hz)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        stats = client.stats
        result.update(
            process=process_sample(time.monotonic()),
            jitter_buffer=jitter_buffer_in_use(),
            client="sdk",
            mode=mode,
            codec=_codec(client),
            sdk_stats={
                "frames_received": stats.frames_received,
                "frames_delivered": stats.frames_delivered,
                "frames_dropped": stats.frames_dropped,
                "bitrate_bps": round(stats.bitrate_bps),
                "packets_lost": stats.packets_lost,
            },
        )
        client.end_stream()
    return result


def _consume_frames(client: Odyssey, meter: ServerMeter, fps: float, seconds: float) -> dict[str, Any]:
    window = DeliveryWindow(round(seconds * fps))
    queued_ms: list[float] = []
    meter.start()
    faults0 = minor_faults()
    cpu0, t0 = cpu_seconds(), time.monotonic()
    deadline = t0 + seconds + 10
    try:
        for frame in client.frames(timeout=5):
            rgb = frame.data
            now = wall_ms()
            queued_ms.append((time.monotonic() - frame.received_at) * 1000)
            stamp = read_stamp(rgb)
            if window.add(stamp, latency_ms(stamp, now) if stamp else None) or time.monotonic() > deadline:
                break
    except OdysseyTimeoutError:
        pass
    cpu1, t1 = cpu_seconds(), time.monotonic()
    server_window = meter.stop()
    result = window.result()
    result.update(
        wall_s=round(t1 - t0, 3),
        client_cpu_s=round(cpu1 - cpu0, 4),
        client_cpu_ms_per_frame=(cpu1 - cpu0) * 1000 / result["delivered"] if result["delivered"] else None,
        client_cpu_per_s=(cpu1 - cpu0) / (t1 - t0),
        minor_faults_per_frame=(minor_faults() - faults0) / max(1, result["delivered"]),
        decode_to_caller_ms=summarize(queued_ms),
        server=server_window,
    )
    return result


def _control_loop(client: Odyssey, meter: ServerMeter, seconds: float, rate_hz: float) -> dict[str, Any]:
    period = 1.0 / rate_hz
    ages: list[float] = []
    reads = misses = 0
    last = None
    meter.start()
    cpu0, t0 = cpu_seconds(), time.monotonic()
    tick = t0
    end = t0 + seconds
    while True:
        frame = client.latest_frame()
        if frame is not None and frame is not last:
            last = frame
            rgb = frame.data
            now = wall_ms()
            stamp = read_stamp(rgb)
            reads += 1
            if stamp is not None:
                ages.append(latency_ms(stamp, now))
        else:
            misses += 1
        tick += period
        if tick >= end:
            break
        time.sleep(max(0.0, tick - time.monotonic()))
    cpu1, t1 = cpu_seconds(), time.monotonic()
    server_window = meter.stop()
    return {
        "wall_s": round(t1 - t0, 3),
        "reads": reads,
        "no_new_frame": misses,
        "client_cpu_s": round(cpu1 - cpu0, 4),
        "client_cpu_per_s": (cpu1 - cpu0) / (t1 - t0),
        "frame_age_ms": summarize(ages),
        "server": server_window,
    }


def steering(
    server: dict[str, Any], seconds: float, rate_hz: float, wait: bool, steer_every: int = 5, warmup: float = 2.0
) -> dict[str, Any]:
    """A ``rate_hz`` control loop that reads ``latest_frame()`` every step and steers with ``interact()``
    every ``steer_every`` steps (a policy that changes its mind twice a second at 10 Hz and 5; 0 never steers).

    ``wait=True`` blocks on each acknowledgement; ``wait=False`` takes the
    future and checks it on later steps. Reports the loop's periods (tick to
    tick, as the loop experiences them), the time spent inside ``interact()``
    calls, and the acknowledgement round trips (call to reply).
    """
    period = 1.0 / rate_hz
    periods: list[float] = []
    calls: list[float] = []
    acks: list[float] = []
    failures = 0
    pending: list[tuple[float, Any]] = []

    def collect(block: bool) -> None:
        nonlocal failures, pending
        still = []
        for began, future in pending:
            if not block and not future.done():
                still.append((began, future))
                continue
            try:
                acks.append((future.result(timeout=10).received_at - began) * 1000)
            except Exception:
                failures += 1
        pending = still

    with _client(server) as client:
        client.connect()
        client.start_stream("A robot arm over a table", portrait=_LANDSCAPE)
        _warm(client, warmup)
        t0 = time.monotonic()
        tick = last = t0
        step = 0
        while tick < t0 + seconds:
            frame = client.latest_frame()
            if frame is not None:
                frame.data
            if steer_every and step % steer_every == 0:
                sent = time.monotonic()
                prompt = f"The arm moves to position {step}"
                if wait:
                    try:
                        ack = client.interact(prompt, timeout=10)
                        acks.append((ack.received_at - sent) * 1000)
                    except Exception:
                        failures += 1
                else:
                    pending.append((sent, client.interact(prompt, wait=False, timeout=10)))
                calls.append((time.monotonic() - sent) * 1000)
            collect(block=False)
            step += 1
            tick += period
            time.sleep(max(0.0, tick - time.monotonic()))
            now = time.monotonic()
            periods.append((now - last) * 1000)
            last = now
        collect(block=True)
        client.end_stream()
    return {"steps": step, "steer_every": steer_every, "period_ms": summarize(periods), "call_ms": summarize(calls),
            "ack_ms": summarize(acks), "failures": failures}


def connects(server: dict[str, Any], n: int, pause: float = 0.2) -> dict[str, Any]:
    """Time ``n`` ``connect()`` calls of fresh clients, after one warm-up connect; each is then disconnected."""
    times = []
    for i in range(n + 1):
        client = _client(server)
        try:
            started = time.monotonic()
            client.connect()
            elapsed = (time.monotonic() - started) * 1000
        finally:
            client.disconnect()
        if i > 0:  # the first connect warms the process up (codecs, imports); not counted
            times.append(elapsed)
        time.sleep(pause)
    return {"client": "sdk", "connect_ms": summarize(times), "samples": [round(t, 1) for t in times]}


def starts(server: dict[str, Any], n: int, collect: float = 1.5) -> dict[str, Any]:
    """Time ``n`` ``start_stream()`` calls: return to the first frame of the new stream in the caller's hands.

    After each return the caller follows frames with ``wait_for_frame(after=...)``
    (every frame received after the acknowledgement, none converted before it)
    and reads each one's stamp; the server says afterwards which frame number
    its new stream began at.
    """
    samples: list[float | None] = []
    with _client(server) as client:
        client.connect()
        _warm_idle(client, 1.0)
        for i in range(n):
            ack = client.start_stream(f"Benchmark start {i}: a lighthouse on a cliff", portrait=_LANDSCAPE)
            returned = time.monotonic()
            arrivals = []
            after: Any = ack
            while time.monotonic() < returned + collect:
                frame = client.wait_for_frame(after=after, timeout=5)
                stamp = read_stamp(frame.data)
                in_hand = time.monotonic()
                after = frame.received_at
                if stamp is not None:
                    arrivals.append((stamp.frame_number, in_hand))
            first = _first_frame_of_stream(server["control_url"], client.current_session_id)
            hit = next((t for number, t in arrivals if number >= first), None)
            samples.append(None if hit is None else (hit - returned) * 1000)
            client.end_stream()
            time.sleep(0.3)
    found = [s for s in samples if s is not None]
    return {"client": "sdk", "first_frame_ms": summarize(found), "missing": len(samples) - len(found),
            "samples": [None if s is None else round(s, 1) for s in samples]}


def _warm_idle(client: Odyssey, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        client.get_frame(timeout=5).data


def _first_frame_of_stream(control_url: str, session_id: str | None) -> int:
    for record in control_sessions(control_url):
        if record["session_id"] == session_id and record["streams"]:
            return int(record["streams"][-1]["prompts"][0]["frame_number"])
    raise RuntimeError(f"session {session_id} has no stream on the server")


def memory_stream(
    server: dict[str, Any], fps: float, seconds: float, warmup: float = 30.0, sample_every: float = 5.0
) -> dict[str, Any]:
    """Read every frame of one stream for ``seconds``; RSS, threads and fds sampled every ``sample_every`` s.

    Growth is the RSS at the end minus the RSS once ``warmup`` seconds have
    passed (allocator pools, codec buffers and the frame buffer fill first).
    """
    t0 = time.monotonic()
    samples = [process_sample(t0)]
    window = DeliveryWindow(round(seconds * fps))
    with _client(server) as client:
        client.connect()
        client.start_stream("A long walk through a forest", portrait=_LANDSCAPE)
        start = time.monotonic()
        warm_rss = None
        next_sample = start + sample_every
        end = start + seconds
        try:
            for frame in client.frames(timeout=5):
                stamp = read_stamp(frame.data)
                window.add(stamp, None)
                now = time.monotonic()
                if warm_rss is None and now >= start + warmup:
                    warm_rss = rss_mb()
                    samples.append({**process_sample(t0), "mark": "warm"})
                if now >= next_sample:
                    samples.append(process_sample(t0))
                    next_sample += sample_every
                if now >= end:
                    break
        except OdysseyTimeoutError:
            pass
        end_sample = process_sample(t0)
        client.end_stream()
    window_result = window.result()
    return {
        "client": "sdk",
        "seconds": round(time.monotonic() - start, 1),
        "warmup_s": warmup,
        "rss_warm_mb": warm_rss,
        "rss_end_mb": end_sample["rss_mb"],
        "rss_growth_mb": None if warm_rss is None else round(end_sample["rss_mb"] - warm_rss, 2),
        "rss_max_mb": max(s["rss_mb"] for s in samples + [end_sample]),
        "frames_delivered": window_result["delivered"],
        "delivered_fraction": window_result["delivered_fraction"],
        "samples": samples + [end_sample],
    }


def cycles(server: dict[str, Any], n: int, warmup_cycles: int = 1) -> dict[str, Any]:
    """``n`` cycles of connect, read one frame, disconnect; RSS, threads and fds before and after.

    The baseline is taken after ``warmup_cycles`` (one-time costs such as
    codec tables are not leaks); the counts before any connect are reported too.
    """
    t0 = time.monotonic()
    before = process_sample(t0)

    def cycle() -> None:
        with _client(server) as client:
            client.connect()
            client.get_frame(timeout=10).data

    for _ in range(warmup_cycles):
        cycle()
    gc.collect()
    baseline = settled_sample(t0, None)
    series = [baseline]
    durations = []
    for i in range(n):
        started = time.monotonic()
        cycle()
        durations.append((time.monotonic() - started) * 1000)
        if (i + 1) % max(1, n // 10) == 0:
            series.append(process_sample(t0))
    gc.collect()
    after = settled_sample(t0, baseline)
    return {
        **cycles_report("sdk", before, baseline, after, durations),
        "python_threads_after": sorted(t.name for t in threading.enumerate()),
        "series": series,
    }


def interactive(
    server: dict[str, Any],
    fps: float,
    start_at: float,
    seconds: float,
    index: int = 0,
    interact_every: float = 5.0,
) -> dict[str, Any]:
    """One interactive session among several: read every frame, ``interact()`` every few seconds from
    a second thread, and count the frames delivered between wall times ``start_at`` and ``start_at + seconds``."""
    from benchmarks.worker import emit

    numbers: set[int] = set()
    latencies: list[float] = []
    acks: list[float] = []
    stop = threading.Event()
    with _client(server) as client:
        client.connect()
        client.start_stream(f"Benchmark session {index}: a busy harbour", portrait=_LANDSCAPE)
        emit("ready", index=index)

        def steer() -> None:
            count = 0
            while not stop.wait(interact_every):
                count += 1
                started = time.monotonic()
                try:
                    client.interact(f"Benchmark session {index}: a boat sails away, take {count}", timeout=10)
                    acks.append((time.monotonic() - started) * 1000)
                except Exception:
                    return

        steerer = threading.Thread(target=steer, name="bench-steer", daemon=True)
        steerer.start()
        cpu0 = None
        t_cpu0 = t_cpu1 = cpu1 = 0.0
        end_at = start_at + seconds
        try:
            for frame in client.frames(timeout=5):
                rgb = frame.data
                now = wall_ms()
                stamp = read_stamp(rgb)
                wall = now / 1000.0
                if wall < start_at:
                    continue
                if cpu0 is None:
                    cpu0, t_cpu0 = cpu_seconds(), time.monotonic()
                if wall >= end_at:
                    break
                if stamp is not None and stamp.frame_number not in numbers:
                    numbers.add(stamp.frame_number)
                    latencies.append(latency_ms(stamp, now))
        except OdysseyTimeoutError:
            pass
        cpu1, t_cpu1 = cpu_seconds(), time.monotonic()
        stop.set()
        steerer.join(timeout=12)
        late = time.time() - end_at
        client.end_stream()
    span = (max(numbers) - min(numbers) + 1) if numbers else 0
    return {
        "client": "sdk",
        "index": index,
        "delivered": len(numbers),
        "delivered_fps": len(numbers) / seconds,
        "server_fps": span / seconds,
        "delivered_fraction": len(numbers) / span if span else None,
        "latency_ms": summarize(latencies),
        "interact_ack_ms": summarize(acks),
        "client_cpu_per_s": (cpu1 - cpu0) / (t_cpu1 - t_cpu0) if cpu0 is not None and t_cpu1 > t_cpu0 else None,
        "ended_late_s": round(late, 2),
    }


def broadcast(
    server: dict[str, Any], seconds: float, spectators: int, warmup: float = 3.0, fps: float = 20.0
) -> dict[str, Any]:
    """A broadcast stream: server CPU per second without spectators, with ``spectators`` WHEP viewers,
    then without again.

    The viewers run in a child process (:func:`benchmarks.whep.spectators`),
    so neither their CPU nor this client's counts as the server's.
    """
    import json
    import subprocess
    import sys

    from benchmarks.worker import EVENT_MARKER, RESULT_MARKER

    stop = threading.Event()
    with _client(server) as client:
        client.connect()
        client.start_stream("A broadcast of a mountain pass", portrait=_LANDSCAPE, broadcast=True)
        deadline = time.monotonic() + 5
        while client.broadcast_info is None and time.monotonic() < deadline:
            time.sleep(0.05)
        info = client.broadcast_info
        if info is None:
            return {"error": "no broadcast_ready within 5 s of a start with broadcast=True"}

        def drain() -> None:
            try:
                for _ in client.frames(timeout=5):
                    if stop.is_set():
                        return
            except Exception:
                return

        reader = threading.Thread(target=drain, name="bench-drain", daemon=True)
        reader.start()
        time.sleep(warmup)
        meter = ServerMeter(server.get("pid"), server.get("control_url"), client.current_session_id)
        meter.start()
        time.sleep(seconds)
        alone = meter.stop()
        args = {"webrtc_url": info.webrtc_url, "token": info.spectator_token, "n": spectators, "max_seconds": seconds * 3 + 60}
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", "benchmarks.whep:spectators", json.dumps(args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert child.stdout is not None and child.stdin is not None
        ready = False
        viewers: dict[str, Any] = {}
        for line in child.stdout:
            if line.startswith(EVENT_MARKER) and json.loads(line[len(EVENT_MARKER):])["event"] == "ready":
                ready = True
                break
            if line.startswith(RESULT_MARKER):
                viewers = json.loads(line[len(RESULT_MARKER):])
                break
        with_viewers = None
        if ready:
            time.sleep(warmup)
            meter.start()
            time.sleep(seconds)
            with_viewers = meter.stop()
        child.stdin.close()
        for line in child.stdout:
            if line.startswith(RESULT_MARKER):
                viewers = json.loads(line[len(RESULT_MARKER):])
        child.wait(timeout=30)
        # Alone again once the viewers are gone, so drift in the machine's load can be averaged out.
        time.sleep(warmup)
        meter.start()
        time.sleep(seconds)
        alone_after = meter.stop()
        stop.set()
        client.end_stream()
    return {"client": "sdk", "spectators": spectators, "alone": alone, "with_spectators": with_viewers,
            "alone_after": alone_after, "viewers": viewers}
