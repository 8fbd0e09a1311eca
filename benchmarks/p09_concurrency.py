"""P9: concurrent interactive sessions the local server holds at >= 95 % of the target fps on 2 cores
(clients included): >= 3.

Step N = 1, 2, ...: N client processes each connect, start a stream, read
every frame (``data`` and stamp) and ``interact()`` every 5 s; over a common
window each counts the distinct frames delivered. N holds when every session
delivers >= 95 % of 20 fps. The figure is the largest N that holds (steps stop
at the first failure or at ``p9_max``); a failing step is tried a second time,
since other processes on a shared machine can starve one try (both attempts
are in the details, with the load average).
"""

from __future__ import annotations

import os
import time

from benchmarks.harness import Context, Figure, WorkerError, guarded
from benchmarks.metrics import cpu_seconds

FIGURE = "P9"
TITLE = "concurrent interactive sessions held at >= 95% of 20 fps (2 cores, clients included)"
FPS = 20.0
HOLD = 0.95


def run(ctx: Context) -> list[Figure]:
    """One figure."""

    def body(figure: Figure) -> None:
        window = ctx.param("p9_window_s")
        server = ctx.server(fps=FPS)
        steps = []
        held = 0
        for n in range(1, int(ctx.param("p9_max")) + 1):
            # A step that fails is tried once more: other processes on a shared machine can starve one try.
            attempts = [_step(ctx, server, n, window)]
            if not attempts[0]["held"]:
                time.sleep(2.0)
                attempts.append(_step(ctx, server, n, window))
            step = dict(attempts[-1], attempts=len(attempts))
            if len(attempts) > 1:
                step["first_attempt"] = attempts[0]
            steps.append(step)
            if not step["held"]:
                break
            held = n
            time.sleep(2.0)
        figure.measured = float(held)
        figure.checked = figure.measured
        figure.met = held >= 3
        tried = steps[-1]["sessions"] if steps else 0
        if held == tried:
            figure.note = f"held every step tried (up to {tried}; raise --param p9_max to go further)"
        else:
            figure.note = f"{tried} sessions: {steps[-1]['delivered_fps']} fps delivered"
        figure.details = {"window_s": window, "steps": steps}

    return [guarded(ctx, Figure(id="P9", title=TITLE, unit="sessions", target=">= 3"), body)]


def _step(ctx: Context, server: dict, n: int, window: float) -> dict:
    """Run ``n`` concurrent sessions over one common window; whether every one held the frame rate."""
    ctx.log(f"P9: {n} concurrent sessions")
    load = os.getloadavg()[0]
    start_at = time.time() + 3.0 + 0.8 * n
    workers = ctx.start_workers(
        "benchmarks.sdk_workloads:interactive",
        [{"server": server, "fps": FPS, "start_at": start_at, "seconds": window, "index": i} for i in range(n)],
    )
    time.sleep(max(0.0, start_at - time.time()))
    cpu0, t0 = cpu_seconds(server["pid"]), time.monotonic()
    time.sleep(window)
    server_cpu = (cpu_seconds(server["pid"]) - cpu0) / (time.monotonic() - t0)
    results, errors = [], []
    for worker in workers:
        try:
            results.append(worker.result(timeout=window + 90))
        except WorkerError as exc:
            errors.append(str(exc))
    fps_each = [round(r["delivered_fps"], 2) for r in results]
    held = not errors and len(results) == n and all(f >= HOLD * FPS for f in fps_each)
    ctx.log(f"P9: {n} sessions -> {fps_each} fps, server {server_cpu:.2f} CPU, held={held}")
    return {
        "sessions": n, "held": held, "delivered_fps": fps_each,
        "server_fps": [round(r["server_fps"], 2) for r in results],
        "latency_p50_ms": [r["latency_ms"].get("p50") for r in results],
        "client_cpu_per_s": [round(r["client_cpu_per_s"] or 0, 3) for r in results],
        "server_cpu_per_s": round(server_cpu, 3), "errors": errors,
        "loadavg_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
    }
