"""Soak: one long session with an ``interact`` every 2 s (run by hand, not in CI).

    python -m benchmarks.soak [--seconds 600] [--interval 2]

The server runs in its own process (the CLI), so the RSS measured is the
client's. Checks: every interact acknowledged, no frame-index gaps beyond
the drops the SDK counted, no lost stamps (server frames never received),
RSS flat within 20 MB after a 30 s warm-up. Prints a JSON summary; exit 1
if a check fails.
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import subprocess
import sys
import threading
import time

from odyssey_sync import Odyssey
from odyssey_sync.stamp import read_stamp

WARMUP_S = 30.0
RSS_LIMIT_MB = 20.0


def rss_mb() -> float:
    """This process's resident set size in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(seconds: float) -> tuple[subprocess.Popen[str], str, str]:
    """The local server in a child process; returns it, its URL and its key."""
    port, key = free_port(), f"ody_soak_{secrets.token_hex(8)}"
    command = [
        sys.executable, "-m", "odyssey_sync.local", "--port", str(port), "--api-key", key,
        "--max-stream-seconds", str(seconds + 120), "--no-recording",
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if "ODYSSEY_API_URL" in line or "http://127.0.0.1" in line:
            threading.Thread(target=server.stdout.read, daemon=True).start()  # keep the pipe drained
            return server, f"http://127.0.0.1:{port}", key
    server.kill()
    raise RuntimeError("the local server did not start")


def soak(seconds: float, interval: float) -> dict[str, object]:
    """Run the soak and return its figures."""
    server, url, key = start_server(seconds)
    try:
        with Odyssey(api_key=key, api_url=url, timeout=30) as client:
            client.connect()
            client.start_stream("A long walk through a changing forest", portrait=False)
            stop = threading.Event()
            seen = {"frames": 0, "index_gaps": 0, "stamp_gaps": 0, "unreadable": 0}

            def pull() -> None:
                last_index = last_stamp = None
                while not stop.is_set():
                    frame = client.get_frame(timeout=10)
                    seen["frames"] += 1
                    if last_index is not None and frame.index != last_index + 1:
                        seen["index_gaps"] += frame.index - last_index - 1
                    last_index = frame.index
                    stamp = read_stamp(frame.data)
                    if stamp is None:
                        seen["unreadable"] += 1
                        continue
                    if last_stamp is not None and stamp.frame_number != last_stamp + 1:
                        seen["stamp_gaps"] += max(0, stamp.frame_number - last_stamp - 1)
                    last_stamp = stamp.frame_number

            puller = threading.Thread(target=pull, name="soak-puller", daemon=True)
            puller.start()
            began = time.monotonic()
            acks = sent = 0
            rss_series: list[tuple[float, float]] = []
            next_sample = began
            while time.monotonic() - began < seconds:
                sent += 1
                if client.interact(f"Step {sent}: the path turns toward something new"):
                    acks += 1
                now = time.monotonic()
                if now >= next_sample:
                    rss_series.append((round(now - began, 1), round(rss_mb(), 1)))
                    next_sample = now + 10
                time.sleep(max(0.0, began + sent * interval - time.monotonic()))
            stop.set()
            puller.join(15)
            stats = client.stats
            client.end_stream()
    finally:
        server.terminate()
        server.wait(10)
    settled = [rss for t, rss in rss_series if t >= WARMUP_S]
    growth = (settled[-1] - settled[0]) if len(settled) >= 2 else 0.0
    figures = {
        "seconds": seconds,
        "interacts_sent": sent,
        "acks_received": acks,
        "frames_pulled": seen["frames"],
        "index_gaps": seen["index_gaps"],
        "frames_dropped_counted": stats.frames_dropped,
        "stamp_gaps": seen["stamp_gaps"],
        "unreadable_stamps": seen["unreadable"],
        "rss_after_warmup_mb": settled[0] if settled else None,
        "rss_end_mb": settled[-1] if settled else None,
        "rss_max_mb": max(settled) if settled else None,
        "rss_growth_mb": round(growth, 1),
        "fps": round(stats.fps, 1),
    }
    figures["ok"] = (
        acks == sent
        and seen["index_gaps"] <= stats.frames_dropped
        and growth <= RSS_LIMIT_MB
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run from the command line; exit 0 when every check holds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    figures = soak(args.seconds, args.interval)
    print(json.dumps(figures, indent=1))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
